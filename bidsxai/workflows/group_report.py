"""``group --reports-only``: group.html rewritten from the tables, maps and kept figures that a
group run wrote, with that run's settings; no statistic is computed again.

It imports no module that runs a model or a permutation, so the rewrite does not wait for torch
(``tests/test_reports_from_disk.py`` checks it).
"""

import dataclasses
from pathlib import Path

from bidsxai.bids import read_participants
from bidsxai.config import described_settings
from bidsxai.errors import NoInputError
from bidsxai.group.atlas import atlas_name, atlas_spec
from bidsxai.outputs import group_table_path
from bidsxai.reports.group import write_group_report
from bidsxai.template import load_template
from bidsxai.workflows.group_inputs import find_heatmaps, of_one_model, rated
from bidsxai.workflows.method_comparison import first_sessions_comparison


def report_group(settings):
    """Rewrite group.html in ``settings.output_dir``; every statistic stays as it is on disk."""
    out = Path(settings.output_dir)
    if not group_table_path(out, "measures").is_file():
        raise NoInputError(f"--reports-only: no group results in {out}; run the group level first")
    settings = described_settings(settings)
    participants = read_participants(settings.bids_dir)
    template = load_template(settings.resolution, settings.output_space)
    heatmaps = of_one_model(find_heatmaps(out, template), settings.model, out)
    heatmaps, _ = rated(heatmaps, settings.exclude_file)  # as the group run left them out
    # The run's record names the atlas --atlas auto meant; its tables are on disk.
    spec = atlas_spec(settings.atlas)
    settings = dataclasses.replace(settings, atlas=atlas_name(spec) if spec else None)
    comparison = first_sessions_comparison(out, heatmaps, participants, settings, template)
    write_group_report(
        out,
        settings,
        template,
        heatmaps["model"].iloc[0],
        heatmaps,
        comparison,
        reuse_figures=True,
    )
