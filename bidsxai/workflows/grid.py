"""The template grid (space and resolution) of a run that reads what earlier runs made.

A bundle records the space, resolution and intensity normalisation its model reads, so
``--model`` sets them; a run without a bundle that only reads outputs (``group``,
``--reports-only``) takes the grid from OUTPUT_DIR where it holds one grid only. An option
given on the command line (or in ``--config-file``) that says otherwise is refused, naming both,
rather than silently replaced.
"""

import dataclasses

from bidsxai.errors import UsageError
from bidsxai.outputs import output_grids

# What a bundle or the outputs fix, in the order of a grid tuple (the outputs give the first two).
GRID_OPTIONS = (
    ("output_space", "--output-spaces"),
    ("resolution", "--resolution"),
    ("normalisation", "--normalisation"),
)


def run_grid(settings, given, meta=None):
    """``settings`` on the grid of the bundle ``meta`` (read by the caller; None without
    ``--model``), or of the outputs; ``given`` names the Settings fields the user set."""
    if meta is not None and settings.level != "train":
        spec = meta["input"]
        grid = (spec["space"], float(spec["resolution"]))
        source = f"--model {settings.model}, which reads"
        if "normalisation" in spec:
            grid += (spec["normalisation"],)
    elif settings.level == "group" or settings.reports_only:
        grids = output_grids(settings.output_dir)
        if len(grids) != 1:
            return settings  # none or several: the options say which, as before
        grid = grids[0]
        source = f"the outputs in {settings.output_dir}, which are on"
    else:
        return settings
    found = dict(zip((field for field, _ in GRID_OPTIONS), grid))
    for field, flag in GRID_OPTIONS:
        value = getattr(settings, field)
        if field in found and field in given and value != found[field]:
            raise UsageError(
                f"{flag} {value:g} contradicts {source} {found[field]:g} mm"
                if field == "resolution"
                else f"{flag} {value} contradicts {source} {found[field]}"
            )
    return dataclasses.replace(settings, **found)
