"""Figures a group run draws once and ``--reports-only`` reads back.

Drawing the stat maps' views (nilearn's glass brain and orthogonal cuts) and reading every
subject's map for the cohort mosaic are most of the group report's cost, so the group run keeps
them in ``group/figures/`` (``outputs.group_figure_path``: one JSON per stat map of the figures'
PNG data URIs and sizes, the peak and whether voxels survive; ``outputs.group_mosaic_path``: the
mosaic's thumbnails), and a ``--reports-only`` run embeds them as they are instead of drawing them
again. A figure that was never kept (outputs from an older release) is drawn, and not kept:
``--reports-only`` writes nothing but the report.
"""

import dataclasses
import json

from bidsxai.atomic import write_json
from bidsxai.reports.brain_figures import Figure


def kept_views(path, draw, reuse):
    """The figures dict of one stat map or mosaic: read from ``path`` when ``reuse`` and it is
    there, else ``draw()`` and, when not ``reuse`` (a group run), kept at ``path``."""
    if reuse and path.is_file():
        return {
            k: Figure(**v) if isinstance(v, dict) else v
            for k, v in json.loads(path.read_text()).items()
        }
    views = draw()
    if not reuse:
        write_json(
            path,
            {k: dataclasses.asdict(v) if isinstance(v, Figure) else v for k, v in views.items()},
        )
    return views
