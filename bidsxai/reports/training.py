"""The training report of a bundle: cross-validated and test metrics with Wilson intervals, every
fold model's learning curves and metrics, and (gated attention) the attention weights."""

from collections import Counter

from bidsxai.reports import figures
from bidsxai.reports.render import methods_text, render_report

METRICS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1", "loss")


def metric_rows(metrics):
    """(label, metrics) rows of the summary table, headline figures first."""
    rows = [("cross-validation, pooled out of fold (repeat 1)", metrics["cross_validation"])]
    if "test" in metrics:
        rows.append((f"test set, final model ({metrics['final_member']})", metrics["test"]))
    for label, key in (("cross-validation", "cross_validation"), ("test", "test")):
        if key in metrics.get("slices", {}):
            rows.append((f"{label}, slices on their own", metrics["slices"][key]))
    return rows


def write_training_report(settings, folder, meta, arch):
    metrics = meta["metrics"]
    counts = Counter(
        "test" if v == "test" else f"fold {v}" for v in meta["assignments"][0].values()
    )
    histories = {name: m["history"] for name, m in meta["training"]["members"].items()}
    confusion_source = metrics.get("test", metrics["cross_validation"])
    render_report(
        "training.html.j2",
        folder / "report.html",
        name=meta["name"],
        meta=meta,
        source=arch.source,
        counts=dict(sorted(counts.items())),
        keys=METRICS,
        rows=metric_rows(metrics),
        curves=figures.learning_curves(histories),
        confusion=figures.confusion_plot(confusion_source["confusion_matrix"], meta["classes"]),
        confusion_label="test set, final model"
        if "test" in metrics
        else "cross-validation, out of fold",
        methods=methods_text(settings, meta),
    )
