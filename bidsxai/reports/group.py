"""The group report, drawn from the files the group level wrote: its tables (``group/*.tsv``) and
its t and corrected-p maps. Nothing is recomputed, so ``group --reports-only`` rewrites
``group.html`` from disk and the report always shows what the files hold."""

import json

import nibabel as nib
import numpy as np
import pandas as pd

from bidsxai.evaluate.evaluations import column_notes
from bidsxai.outputs import (
    bundle_meta_path,
    group_figure_path,
    group_mosaic_path,
    group_report_path,
    group_statmap_path,
    group_table_path,
)
from bidsxai.qc_ratings import COLUMNS, RATINGS
from bidsxai.reports import brain_figures, figures, svg
from bidsxai.reports.kept_figures import kept_views
from bidsxai.reports.mosaic import cohort_mosaic
from bidsxai.reports.render import methods_text, methods_views, page_script, render_report
from bidsxai.reports.sections import METHODS, Section

REPORTED_MEASURES = ("p95", "mass_above_half")  # the rest are in group/measures.tsv
ALPHA = 0.05  # the level the significant-voxel figures show, as the group level tested it
# Labels are text even where they look like numbers (class "1", session "01").
LABEL_COLUMNS = ("method", "target", "subject", "group", "group_a", "group_b")
LABEL_COLUMNS += ("session_before", "session_after", "test", "correction")


class GroupTables(dict):
    """The group tables of OUTPUT_DIR by name, each read once when first asked for; an empty
    frame for a table not written, or written without rows."""

    def __init__(self, out_dir):
        super().__init__()
        self.out_dir = out_dir

    def __missing__(self, name):
        try:
            table = pd.read_csv(
                group_table_path(self.out_dir, name),
                sep="\t",
                dtype={c: str for c in LABEL_COLUMNS},
                keep_default_na=False,
                na_values=[""],
            )
        except (FileNotFoundError, pd.errors.EmptyDataError):
            table = pd.DataFrame()
        self[name] = table
        return table


def _records(table):
    """Rows as dicts, an empty cell as None (a test not run, a value not defined)."""
    return [
        {k: (None if v is None or v != v else v) for k, v in row.items()}
        for row in table.astype(object).to_dict("records")
    ]


def _select(table, **key):
    """The rows of ``table`` whose columns equal ``key``'s values (None: the cell is empty; True:
    it is not)."""
    if table.empty:
        return table
    keep = np.ones(len(table), bool)
    for column, value in key.items():
        if column not in table.columns:
            keep &= value is None
        elif value is None:
            keep &= table[column].isna().to_numpy()
        elif value is True:
            keep &= table[column].notna().to_numpy()
        else:
            keep &= (table[column] == value).to_numpy()
    return table[keep]


def write_group_report(
    out_dir, settings, template, model, heatmaps, comparison=None, reuse_figures=False
):
    """``group.html`` from the group tables and maps in ``out_dir``; ``model`` names the bundle
    that made the heatmaps, ``heatmaps`` lists the files analysed (``workflows.group``'s table)
    for the mosaic of every subject; ``comparison`` is the method comparison
    (``workflows.method_comparison``), recomputed cheaply from the subjects' evaluations by the
    caller. A group run draws the stat maps' views and keeps them;
    ``reuse_figures`` (``--reports-only``) reads them back (``reports.kept_figures``)."""
    tables = GroupTables(out_dir)
    measures = tables["measures"]
    context = {
        "out_dir": out_dir,
        "tables": tables,
        "template": template,
        "comparison": comparison,
        "heatmaps": heatmaps,
        "reuse_figures": reuse_figures,
        "methods": methods_views(methods_text(settings)),
    }
    render_report(
        group_report_path(out_dir),
        SECTIONS,
        context,
        title="bidsxai group report",
        heading="Group report",
        header="group/header.html.j2",
        n_subjects=measures["subject"].nunique() if not measures.empty else 0,
        group_column=settings.target,
        settings=settings,
        atlas=settings.atlas,
        model=model,
        external=_is_external(out_dir, model),
        qc_excluded=_records(tables["qc_excluded"]),
        qc_columns=list(COLUMNS),
        ratings=RATINGS,
        scripts=[page_script("qc_ratings.js")],
    )


def _is_external(out_dir, model):
    """Whether the bundle named ``model`` under OUTPUT_DIR/models was imported."""
    path = bundle_meta_path(out_dir, model) if model else None
    return bool(path and path.is_file() and "external" in json.loads(path.read_text()))


def _comparison(context):
    """The method-comparison table as text cells "mean [low, high]", its ranking and curves."""
    if context["comparison"] is None:
        return None
    table, primary, statements, curves, tests = context["comparison"]
    measures = [c for c in table.columns if f"{c}_low" in table.columns]

    def cell(r, m):
        if r[m] != r[m]:
            return "n/a"
        n = f" (n={r[m + '_n']})" if r[m + "_n"] != r["n"] else ""
        return f"{r[m]:.3f} [{r[m + '_low']:.3f}, {r[m + '_high']:.3f}]{n}"

    rows = [
        [r["method"], r["n"]] + [cell(r, m) for m in measures] for r in table.to_dict("records")
    ]
    pairs = [
        [
            f"{t['method_a']} − {t['method_b']}",
            t["n"],
            f"{t['mean_difference']:+.3f}"
            if t["mean_difference"] == t["mean_difference"]
            else "n/a",
            f"{t['p']:.3g}" if t["p"] == t["p"] else "n/a",
            f"{t['p_holm']:.3g}" if t["p_holm"] == t["p_holm"] else "n/a",
        ]
        for t in (tests.to_dict("records") if tests is not None else [])
    ]
    return {
        "columns": ["method", "n", *measures],
        "notes": column_notes(measures),
        "rows": rows,
        "primary": primary,
        "statements": statements,
        "pairs": pairs,
        "figure": figures.inverting_curves(curves) if curves else None,
        "beside": [
            {
                "label": label,
                "figure": svg.score_dots(
                    [
                        (r["method"], r[m], r[f"{m}_low"], r[f"{m}_high"])
                        for r in table.to_dict("records")
                    ],
                    label,
                ),
            }
            for m in measures
            for label in [svg.localisation_label(m)]
            if label
        ],
    }


def _analyses(context):
    """One section per method and class, in the order of the measures table."""
    measures = context["tables"]["measures"]
    if measures.empty:
        return []
    keys = sorted(set(zip(measures["method"], measures["target"])))
    return [
        (
            f"{method}-{target}".replace(" ", "_"),
            f"{method}, {target}",
            _analysis(context, method, target),
        )
        for method, target in keys
    ]


def _analysis(context, method, target):
    tables, key = context["tables"], {"method": method, "target": target}
    two_sample = _select(tables["voxelwise"], **key, session_before=None)
    change = _select(tables["voxelwise"], **key, session_before=True)
    similarity = _records(_select(tables["similarity"], **key))
    return dict(
        key,
        measures=_measure_figures(tables, key),
        mosaic=_mosaic(context, key),
        voxelwise=[
            _voxelwise(context, key, row, (row["group_a"], row["group_b"]), "two-sample")
            for row in _records(two_sample)
        ],
        session_change=[
            _voxelwise(
                context,
                key,
                row,
                (f"ses-{row['session_before']}", f"ses-{row['session_after']}"),
                "paired",
            )
            for row in _records(change)
        ],
        coverage=[
            dict(row, clusters=_clusters(tables, key, "coverage", group=row["group"]))
            for row in _records(_select(tables["coverage"], **key))
        ],
        session_measures=[
            row
            for row in _records(_select(tables["session_measure_tests"], **key))
            if row["measure"] in REPORTED_MEASURES
        ],
        lobes=_lobe_table(_select(tables["lobes"], **key)),
        similarity=similarity[0] if similarity else None,
        correlation=_correlation(tables, key),
    )


def _clusters(tables, key, test, **groups):
    return _records(_select(tables["clusters"], **key, test=test, **groups))


def _voxelwise(context, key, row, comparison, test):
    """A voxel-wise test's row, its clusters and its figures, from its t and corrected-p maps."""
    group_dir = context["out_dir"] / "group"
    space = context["template"].space

    def path(stat, correction=None):
        method, target = key["method"], key["target"]
        return group_statmap_path(group_dir, method, target, comparison, stat, space, correction)

    def load(stat, correction=None):
        return np.asarray(nib.load(str(path(stat, correction))).dataobj, np.float32)

    def draw():
        # The map holds -log10 p in float32: compare there, so p = ALPHA itself stays out.
        significant = load("logp", row["correction"]) > np.float32(-np.log10(ALPHA))
        return brain_figures.statistic_views(load("t"), context["template"], significant)

    if test == "two-sample":
        groups = {"group_a": row["group_a"], "group_b": row["group_b"]}
    else:
        groups = {"session_before": row["session_before"], "session_after": row["session_after"]}
    return dict(
        row,
        clusters=_clusters(context["tables"], key, test, **groups),
        figure=kept_views(group_figure_path(path("t")), draw, context["reuse_figures"]),
    )


def _measure_figures(tables, key):
    measures = _select(tables["measures"], **key)
    tests = _records(_select(tables["measure_tests"], **key))
    shown = []
    for name in REPORTED_MEASURES:
        by_group = {
            g: list(zip(part["subject"], part[name]))
            for g, part in sorted(measures.groupby("group"), key=lambda kv: str(kv[0]))
        }
        plot = svg.strip_plot(by_group, name, lambda subject: f"{subject}.html")
        rows = [t for t in tests if t["measure"] == name]
        shown.append({"name": name, "rows": rows, "figure": plot})
    return shown


def _mosaic(context, key):
    """Every subject's first-session map of this method and class, by the group it was analysed
    in (``reports.mosaic``)."""
    heatmaps, measures = context["heatmaps"], _select(context["tables"]["measures"], **key)
    chosen = heatmaps[
        (heatmaps["method"] == key["method"])
        & (heatmaps["target"] == key["target"])
        & heatmaps["first"]
    ]
    groups = dict(zip(measures["subject"], measures["group"]))
    rows = [
        (f"sub-{s}", f"ses-{ses}" if isinstance(ses, str) and ses else "n/a", p)
        for s, ses, p in zip(chosen["subject"], chosen["session"], chosen["path"])
    ]
    template = context["template"]
    path = group_mosaic_path(context["out_dir"] / "group", **key, space=template.space)
    return kept_views(path, lambda: cohort_mosaic(rows, groups, template), context["reuse_figures"])


def _lobe_table(table):
    """Group means of each subject's share per lobe, as {columns, data} for the template."""
    if table.empty:
        return None
    return (
        table.pivot_table(
            index="lobe", columns="group", values="share", aggfunc="mean", fill_value=0.0
        )
        .round(3)
        .reset_index()
        .to_dict("split")
    )


def _correlation(tables, key):
    rows = _records(_select(tables["correlations"], **key))
    if not rows:
        return None
    row = rows[0]
    points = _select(tables["correlation_points"], **key)
    label = f"mean {row['image']} in the {row['mask']} mask"
    figure = figures.correlation_scatter(
        list(points["image_mean"]), list(points["score_value"]), label, row["score"]
    )
    return dict(row, figure=figure)


# The group report, in order: the method comparison, then one section per method and class.
SECTIONS = (
    Section("method-comparison", "Method comparison", _comparison, "group/comparison.html.j2"),
    Section("analyses", "Analyses", _analyses, "group/analysis.html.j2", repeated=True),
    METHODS,
)
