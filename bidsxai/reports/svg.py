"""Small inline SVG charts whose marks are links: each point names its subject (a tooltip and a
``data-subject`` attribute that the group report's mosaic highlights with) and opens that
subject's report. Inline, so the report stays one offline file."""

from markupsafe import Markup, escape

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 420, 240, 56, 34, 12
POINT = "#0072B2"  # Okabe-Ito blue


def _ticks(low, high, n=5):
    step = (high - low) / (n - 1) if high > low else 1.0
    return [low + i * step for i in range(n)]


def strip_plot(points_by_group, label, link):
    """One column per group of (subject, value) points with the group's median as a bar;
    ``link(subject)`` is each point's target."""
    values = [v for points in points_by_group.values() for _, v in points if v == v]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high == low:
        low, high = low - 0.5, high + 0.5
    pad = 0.05 * (high - low)
    low, high = low - pad, high + pad
    plot_h = HEIGHT - BOTTOM - TOP
    column = (WIDTH - LEFT - 10) / max(1, len(points_by_group))

    def y(v):
        return TOP + plot_h * (high - v) / (high - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="strip" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)} per subject by group; each point links to its report">',
        f"<title>{escape(label)} per subject by group</title>",
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#555"/>',
        f'<text x="12" y="{TOP + plot_h / 2}" transform="rotate(-90 12 {TOP + plot_h / 2})" '
        f'text-anchor="middle" font-size="12">{escape(label)}</text>',
    ]
    for tick in _ticks(low + pad, high - pad):
        parts.append(
            f'<text x="{LEFT - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10">'
            f"{tick:.3g}</text>"
            f'<line x1="{LEFT - 2}" y1="{y(tick):.1f}" x2="{LEFT}" y2="{y(tick):.1f}" '
            'stroke="#555"/>'
        )
    for i, (group, points) in enumerate(points_by_group.items()):
        centre = LEFT + column * (i + 0.5)
        parts.append(
            f'<text x="{centre:.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="12">'
            f"{escape(group)} (n = {len(points)})</text>"
        )
        finite = sorted(v for _, v in points if v == v)
        if finite:
            mid = len(finite) // 2
            median = finite[mid] if len(finite) % 2 else (finite[mid - 1] + finite[mid]) / 2
            parts.append(
                f'<line x1="{centre - column * 0.3:.1f}" y1="{y(median):.1f}" '
                f'x2="{centre + column * 0.3:.1f}" y2="{y(median):.1f}" stroke="#222" '
                'stroke-width="2"><title>median</title></line>'
            )
        for j, (subject, value) in enumerate(points):
            if value != value:
                continue
            offset = ((j * 7) % 11 - 5) / 5 * column * 0.2  # a fixed jitter, same every time
            parts.append(
                f'<a href="{escape(link(subject))}" data-subject="{escape(subject)}">'
                f'<circle cx="{centre + offset:.1f}" '
                f'cy="{y(value):.1f}" r="4.5" fill="{POINT}" fill-opacity="0.8">'
                f"<title>{escape(subject)}: {value:.4g}</title></circle></a>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


KINDS = {  # what a row of a trust measure is, and its colour (Okabe-Ito)
    "method": ("#0072B2", "explanation method"),
    "baseline": ("#777777", "model-free baseline"),
    "control": ("#E69F00", "control"),
}


def kind_of(name):
    """A row's kind from its name in the evaluation tables: ``baseline-<name>``, ``control-<name>``
    or a method."""
    prefix = str(name).split("-", 1)[0]
    return prefix if prefix in KINDS and "-" in str(name) else "method"


def localisation_label(column):
    """The axis label of an evaluation table's localisation AUROC or pointing-game column
    (``auroc_<mask>``, ``pointing_<mask>``; not their margins), else None."""
    measure, _, mask = column.partition("_")
    if measure in ("auroc", "pointing") and mask and not mask.startswith("margin_"):
        return f"{'AUROC' if measure == 'auroc' else 'pointing game'} against {mask}"
    return None


def score_dots(rows, label, domain=(0.0, 1.0)):
    """One measure per row on a shared axis: ``rows`` are (name, value, low, high) with the kind
    read from the name (``kind_of``) and an interval where low and high are not None; a dashed
    line at the best model-free baseline, so each method's margin over it is read off."""
    order = list(KINDS)
    rows = sorted((r for r in rows if r[1] == r[1]), key=lambda r: order.index(kind_of(r[0])))
    row_h, left, right = 18, 210, 16
    width, height = 560, TOP + row_h * len(rows) + BOTTOM
    lo, hi = domain
    values = [v for r in rows for v in r[1:] if v is not None and v == v]
    lo, hi = min([lo, *values]), max([hi, *values])

    def x(v):
        return left + (width - left - right) * (v - lo) / ((hi - lo) or 1.0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dots" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)} of each method beside the baselines and controls">',
        f"<title>{escape(label)} of each method beside the baselines and controls</title>",
        f'<line x1="{left}" y1="{height - BOTTOM}" x2="{width - right}" y2="{height - BOTTOM}" '
        'stroke="#555"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle" '
        f'font-size="12">{escape(label)}</text>',
    ]
    for tick in _ticks(lo, hi):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - BOTTOM + 14}" text-anchor="middle" '
            f'font-size="10">{tick:.3g}</text>'
        )
    baselines = [r[1] for r in rows if kind_of(r[0]) == "baseline"]
    if baselines:
        best = max(baselines)
        parts.append(
            f'<line x1="{x(best):.1f}" y1="{TOP - 4}" x2="{x(best):.1f}" '
            f'y2="{height - BOTTOM}" stroke="#777" stroke-dasharray="4 3">'
            f"<title>best model-free baseline: {best:.3g}</title></line>"
        )
    for i, (name, value, low, high) in enumerate(rows):
        colour, kind = KINDS[kind_of(name)]
        y = TOP + row_h * (i + 0.5)
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{colour}">{escape(name)}</text>'
        )
        if low is not None and high is not None:
            parts.append(
                f'<line x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        parts.append(
            f'<circle cx="{x(value):.1f}" cy="{y:.1f}" r="5" fill="{colour}">'
            f"<title>{escape(name)} ({kind}): {value:.3g}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
