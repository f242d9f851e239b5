"""The group report: draws the figures of each method x class analysis and renders group.html."""

import pandas as pd

from bidsxai.outputs import group_report_path
from bidsxai.reports import brain_figures, figures, svg
from bidsxai.reports.render import methods_text, methods_views, render_report

REPORTED_MEASURES = ("p95", "mass_above_half")  # the rest are in group/measures.tsv


def write_group_report(out_dir, analyses, settings, template, n_subjects, comparison=None):
    sections = [_section(a, template) for a in analyses]
    render_report(
        "group.html.j2",
        group_report_path(out_dir),
        n_subjects=n_subjects,
        group_column=settings.target,
        sections=sections,
        settings=settings,
        atlas=settings.atlas,
        **methods_views(methods_text(settings)),
        comparison=_comparison(comparison),
    )


def _comparison(comparison):
    """The method-comparison table as text cells "mean [low, high]", its ranking and curves."""
    if comparison is None:
        return None
    table, primary, statements, curves = comparison
    measures = [c for c in table.columns if f"{c}_low" in table.columns]
    rows = [
        [r["method"], r["n"]]
        + [
            f"{r[m]:.3f} [{r[m + '_low']:.3f}, {r[m + '_high']:.3f}]" if r[m] == r[m] else "n/a"
            for m in measures
        ]
        for r in table.to_dict("records")
    ]
    return {
        "columns": ["method", "n", *measures],
        "rows": rows,
        "primary": primary,
        "statements": statements,
        "figure": figures.inverting_curves(curves) if curves else None,
    }


def _section(analysis, template):
    key = {"method": analysis.method, "target": analysis.target}
    return dict(
        key,
        id=f"{analysis.method}-{analysis.target}".replace(" ", "_"),
        measures=_measure_figures(analysis),
        voxelwise=[
            dict(v.row, clusters=v.clusters, figure=_voxelwise_figures(v, template))
            for v in analysis.voxelwise
        ],
        coverage=[dict(c.row, clusters=c.clusters) for c in analysis.coverage],
        session_change=[
            dict(v.row, clusters=v.clusters, figure=_voxelwise_figures(v, template))
            for v in analysis.session_change
        ],
        session_measures=[
            t for t in analysis.session_measure_tests if t["measure"] in REPORTED_MEASURES
        ],
        lobes=_lobe_table(analysis.lobes),
        similarity=analysis.similarity,
        correlation=_correlation(analysis.correlation),
    )


def _measure_figures(analysis):
    measures = pd.DataFrame(analysis.measures)
    shown = []
    for name in REPORTED_MEASURES:
        rows = [t for t in analysis.measure_tests if t["measure"] == name]
        by_group = {
            g: list(zip(part["subject"], part[name]))
            for g, part in sorted(measures.groupby("group"), key=lambda kv: str(kv[0]))
        }
        plot = svg.strip_plot(by_group, name, lambda subject: f"{subject}.html")
        shown.append({"name": name, "rows": rows, "figure": plot})
    return shown


def _voxelwise_figures(test, template):
    return brain_figures.statistic_views(test.t, template, test.significant)


def _lobe_table(rows):
    """Group means of each subject's share per lobe, as {columns, data} for the template."""
    if not rows:
        return None
    table = pd.DataFrame(rows)
    return (
        table.pivot_table(
            index="lobe", columns="group", values="share", aggfunc="mean", fill_value=0.0
        )
        .round(3)
        .reset_index()
        .to_dict("split")
    )


def _correlation(correlation):
    if correlation is None:
        return None
    score = correlation.row["score"]
    return dict(
        correlation.row,
        figure=figures.correlation_scatter(correlation.x, correlation.y, correlation.label, score),
    )
