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

GRID_OPTIONS = (("output_space", "--output-spaces"), ("resolution", "--resolution"))


def run_grid(settings, given, meta=None):
    """``settings`` on the grid of the bundle ``meta`` (read by the caller; None without
    ``--model``), or of the outputs; ``given`` names the Settings fields the user set."""
    if meta is not None and settings.level != "train":
        grid = (meta["input"]["space"], float(meta["input"]["resolution"]))
        source = f"--model {settings.model}, trained on"
        normalisation = meta["input"].get("normalisation", settings.normalisation)
        if "normalisation" in given and settings.normalisation != normalisation:
            raise UsageError(
                f"--normalisation {settings.normalisation} contradicts --model {settings.model}, "
                f"which reads {normalisation} images"
            )
        settings = dataclasses.replace(settings, normalisation=normalisation)
    elif settings.level == "group" or settings.reports_only:
        grids = output_grids(settings.output_dir)
        if len(grids) != 1:
            return settings  # none or several: the options say which, as before
        grid = grids[0]
        source = f"the outputs in {settings.output_dir}, which are on"
    else:
        return settings
    found = dict(zip(("output_space", "resolution"), grid))
    for field, flag in GRID_OPTIONS:
        value = getattr(settings, field)
        if field in given and value != found[field]:
            raise UsageError(
                f"{flag} {value:g} contradicts {source} {found[field]:g} mm"
                if field == "resolution"
                else f"{flag} {value} contradicts {source} {found[field]}"
            )
    return dataclasses.replace(settings, **found)
