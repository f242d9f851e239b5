"""The training report of a bundle: cross-validated and test metrics with Wilson intervals, every
fold model's learning curves and metrics, and (gated attention) the attention weights."""

from collections import Counter

from bidsxai.reports import figures
from bidsxai.reports.render import methods_text, methods_views, render_report
from bidsxai.reports.sections import METHODS, Section
from bidsxai.training.metrics import wilson_interval

METRICS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity", "f1", "loss")


def metric_rows(metrics):
    """(label, metrics) rows of the summary table, headline figures first."""
    rows = [("cross-validation, pooled out of fold (repeat 1)", metrics["cross_validation"])]
    if "test" in metrics:
        rows.append((f"test set, final model ({metrics['final_member']})", metrics["test"]))
    for label, key in (("cross-validation", "cross_validation"), ("test", "test")):
        if key in metrics.get("slices", {}):
            rows.append((f"{label}, slices on their own", metrics["slices"][key]))
    baseline = metrics.get("baseline", {})
    for label, key in (
        ("cross-validation, pooled out of fold", "cross_validation"),
        ("test", "test"),
    ):
        if key in baseline:
            rows.append((f"simple baseline, {label}", baseline[key]))
    return rows


def write_training_report(settings, folder, meta, arch):
    """``report.html`` of the bundle in ``folder``, from its ``model.json`` (``meta``) alone, so
    that ``train --reports-only`` can rewrite it without training."""
    context = {"meta": meta, "arch": arch, "methods": methods_views(methods_text(settings, meta))}
    warning = meta.get("warning")
    render_report(
        folder / "report.html",
        SECTIONS,
        context,
        title=f"bidsxai training: {meta['name']}",
        heading=f"Training report: {meta['name']}",
        header=None,
        warning=warning and ("Warning:", warning),
        meta=meta,
        keys=METRICS,
    )


def _model(context):
    meta = context["meta"]
    counts = Counter(
        "test" if v == "test" else f"fold {v}" for v in meta["assignments"][0].values()
    )
    return {
        "source": context["arch"].source,
        "counts": dict(sorted(counts.items())),
        "crop": _crop_rows(meta["input"]["crop"]),
    }


def _metrics(context):
    meta = context["meta"]
    metrics = meta["metrics"]
    roc_sets = {
        label: curves
        for label, curves in (
            ("out of fold", metrics.get("roc", {}).get("cross_validation")),
            ("test set, final model", metrics.get("roc", {}).get("test")),
        )
        if curves
    }
    return {
        "rows": metric_rows(metrics),
        "confusions": [
            _confusion(label, metrics[key]["confusion_matrix"], meta["classes"])
            for label, key in (
                ("pooled out of fold (repeat 1)", "cross_validation"),
                ("test set, final model", "test"),
            )
            if key in metrics
        ],
        "roc": figures.roc_curves(roc_sets, meta["classes"]) if roc_sets else None,
    }


def _folds(context):
    members = context["meta"]["training"]["members"]
    histories = {name: m["history"] for name, m in members.items()}
    chosen = {name: m["best_epoch"] for name, m in members.items()}
    return {"curves": figures.learning_curves(histories, chosen)}


# The training report, in order.
SECTIONS = (
    Section("model", "Model and input", _model, "training/model.html.j2"),
    Section("metrics", "Metrics", _metrics, "training/metrics.html.j2"),
    Section("folds", "Fold models", _folds, "training/folds.html.j2"),
    Section(
        "attention",
        "Attention",
        lambda context: context["meta"].get("attention"),
        "training/attention.html.j2",
    ),
    METHODS,
)


def _confusion(label, matrix, classes):
    """The confusion matrix figure and each true class's recall with its Wilson interval."""
    rows = []
    for k, counts in enumerate(matrix):
        n = int(sum(counts))
        if n:
            low, high = wilson_interval(int(counts[k]), n)
            rows.append({"class": classes[k], "n": n, "recall": counts[k] / n, "ci": (low, high)})
    n = int(sum(map(sum, matrix)))
    return {
        "label": label,
        "n": n,
        "figure": figures.confusion_plot(matrix, classes),
        "rows": rows,
    }


def _crop_rows(box):
    """The model's brain crop as (axis, first voxel, last voxel, voxels) rows."""
    return [(axis, lo, hi - 1, hi - lo) for axis, (lo, hi) in zip("xyz", box)]
