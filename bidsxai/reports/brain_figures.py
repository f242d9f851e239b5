"""Brain figures for the reports: nilearn's cuts in three planes, with left/right marks and slice
coordinates, drawn at twice the size they are shown at so that they stay sharp on high-density
screens, and stored as palette PNG data URIs so that a report stays one small file.

Colours are told apart with the common colour-vision deficiencies: contours use Okabe and Ito's
palette, heatmaps the perceptually uniform "inferno" (dark to bright, so also readable in grey),
statistic maps the diverging "RdBu_r". Heatmaps fade to transparent just above a stated display
threshold instead of painting near-zero values.
"""

import base64
import io
from dataclasses import dataclass
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from PIL import Image  # noqa: E402

from bidsxai.reports.figure_cache import cached_figure  # noqa: E402

TISSUE_COLOURS = {"grey matter": "#E69F00", "white matter": "#56B4E9", "brain mask": "#009E73"}
OWN_MASK_COLOUR = "#CC79A7"  # the subject's own brain mask (deepbet), where there is one
REFERENCE_COLOUR = "#56B4E9"
DISPLAY_THRESHOLD = 0.2  # of the map's maximum: weaker values are not painted
FADE = 0.15  # from transparent at the threshold to opaque at threshold + FADE
CUTS_PER_PLANE = 4
SCALE = 2  # pixels drawn per pixel shown
# How every mosaic (three planes, CUTS_PER_PLANE cuts each) is drawn on its black background.
_MOSAIC = {
    "display_mode": "mosaic",
    "annotate": True,
    "draw_cross": False,
    "black_bg": True,
    "dim": 0,
}


@dataclass(frozen=True)
class Figure:
    src: str  # data URI
    width: int  # shown size in CSS pixels
    height: int


def _figure(draw, size, background="black"):
    """Draw into a new figure of ``size`` inches, then encode it: the canvas's pixels are
    quantised to a palette directly (no intermediate PNG to write and read back)."""
    fig = plt.figure(figsize=size, dpi=80 * SCALE, facecolor=background)
    draw(fig)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    plt.close(fig)
    image = Image.fromarray(pixels).quantize(256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    src = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")
    return Figure(src, image.width // SCALE, image.height // SCALE)


def cuts(template, n=CUTS_PER_PLANE):
    """World coordinates of ``n`` cuts per plane through the middle 70 % of the brain, shared by
    every figure of a report so that they can be compared cut by cut."""
    voxels = np.nonzero(template.brain_mask)
    chosen = {}
    for axis, plane in enumerate("xyz"):
        lo, hi = voxels[axis].min(), voxels[axis].max()
        index = np.round(np.linspace(lo + 0.15 * (hi - lo), hi - 0.15 * (hi - lo), n))
        chosen[plane] = [
            float(template.affine[axis, axis] * i + template.affine[axis, 3]) for i in index
        ]
    return chosen


def _contours(display, template):
    for colour, volume in zip(
        TISSUE_COLOURS.values(), (template.gm, template.wm, template.brain_mask)
    ):
        display.add_contours(
            template.image(volume.astype(np.float32)), levels=[0.5], colors=[colour], linewidths=0.7
        )


@cached_figure
def with_contours(volume, template, chosen, own_mask=None):
    """An image on the template grid with the template's grey-matter, white-matter and
    brain-mask boundaries, on the report's cuts (the subject's, and the template's own for the
    flicker), and the subject's own brain mask where it has one."""
    from nilearn import plotting

    def on(fig):
        display = plotting.plot_anat(
            template.image(volume), cut_coords=chosen, figure=fig, colorbar=False, **_MOSAIC
        )
        _contours(display, template)
        if own_mask is not None:
            display.add_contours(
                template.image(own_mask.astype(np.float32)),
                levels=[0.5],
                colors=[OWN_MASK_COLOUR],
                linewidths=0.9,
            )

    return _figure(on, (9, 6.4))


@lru_cache(maxsize=2)
def template_with_contours(resolution, space, home):
    """The template's own figure on its default cuts, drawn once per process and grid (the other
    half of every subject report's flicker); ``home`` is the TemplateFlow home it came from."""
    from bidsxai.template import load_template

    template = load_template(resolution, space)
    return with_contours(template.t1w, template, cuts(template))


def fading_inferno(threshold=DISPLAY_THRESHOLD, fade=FADE):
    """'inferno' over [0, 1], transparent below ``threshold`` and fading in over ``fade``."""
    values = np.linspace(0, 1, 256)
    colours = plt.get_cmap("inferno")(np.linspace(0.25, 1, 256))
    colours[:, 3] = np.clip((values - threshold) / fade, 0, 1)
    return ListedColormap(colours, name="inferno_fading")


@cached_figure
def heatmap(background, values, template, chosen, references=()):
    """A map scaled to [0, 1] over the subject's image, with a colour bar, the reference masks'
    outlines where given, on the report's shared cuts."""
    from nilearn import plotting

    def on(fig):
        display = plotting.plot_stat_map(
            template.image(np.clip(values, 0, 1)),
            bg_img=template.image(background),
            cut_coords=chosen,
            figure=fig,
            cmap=fading_inferno(),
            vmin=0,
            vmax=1,
            threshold=DISPLAY_THRESHOLD,
            symmetric_cbar=False,
            colorbar=True,
            **_MOSAIC,
        )
        for mask in references:
            display.add_contours(
                template.image(mask.astype(np.float32)),
                levels=[0.5],
                colors=[REFERENCE_COLOUR],
                linewidths=1.0,
            )

    return _figure(on, (9, 6.4))


def statistic_views(statistic, template, significant):
    """The unthresholded statistic (every voxel it was computed in; exact zeros, the voxels not
    tested, stay clear so the anatomy shows) as a glass brain and in three planes through its
    peak, and, where voxels survive, the glass brain of those voxels alone."""
    from nilearn import plotting

    image = template.image(statistic)
    inside = np.where(template.brain_mask, np.abs(statistic), 0)
    peak = np.unravel_index(int(np.argmax(inside)), statistic.shape)
    centre = (template.affine @ [*peak, 1])[:3]
    limit = float(inside.max()) or 1.0
    common = {"cmap": "RdBu_r", "vmax": limit, "colorbar": True, "annotate": True}

    def glass(shown):
        return _figure(
            lambda fig: plotting.plot_glass_brain(
                shown, plot_abs=False, threshold=1e-6, figure=fig, symmetric_cbar=True, **common
            ),
            (8, 2.8),
            "white",
        )

    views = {
        "glass": glass(image),
        "cuts": _figure(
            lambda fig: plotting.plot_stat_map(
                image,
                bg_img=template.image(template.t1w),
                display_mode="ortho",
                cut_coords=centre,
                figure=fig,
                threshold=1e-6,
                draw_cross=True,
                black_bg=False,
                dim=0,
                **common,
            ),
            (8, 2.8),
            "white",
        ),
        "peak": [round(float(c), 1) for c in centre],
        "significant": None,
    }
    if significant.any():
        views["significant"] = glass(template.image(np.where(significant, statistic, 0.0)))
    return views
