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
