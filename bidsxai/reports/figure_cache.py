"""Report figures kept between runs, in ``$XDG_CACHE_HOME/bidsxai/figures``.

A subject's report is written again by every participant run that includes the subject (after
preprocessing, after explaining, with ``--reports-only``), and most of its figures show the same
images: the preprocessed contrasts on the template, and the heatmaps of an unchanged explanation.
Drawing one of nilearn's three-plane mosaics takes about half a second at 6 mm, most of a report's
time. A figure is therefore named by a digest of everything it is drawn from (the arrays' bytes,
the template's, the cuts and options) and of the code and libraries that draw it, and read back
when the same figure is asked for again: a changed image, option or drawing code is a new name,
never a stale figure. Where the folder cannot be written, figures are drawn each time.
"""

import contextlib
import dataclasses
import functools
import hashlib
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np

from bidsxai.atomic import write_text
from bidsxai.template import user_cache_dir

# The code that draws (the figures, and the template's images they are drawn from), the libraries
# it draws with: a new version is a new figure.
_DRAWING = "|".join(
    [
        hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (
            Path(__file__).with_name("brain_figures.py"),
            Path(__file__).parents[1] / "template.py",
        )
    ]
    + [f"{n} {version(n)}" for n in ("nilearn", "matplotlib", "pillow", "nibabel", "numpy")]
)
_TEMPLATE_DIGESTS = {}  # id -> (template, digest): a template's arrays are hashed once per process


def _update(digest, value):
    if isinstance(value, np.ndarray):
        digest.update(f"array {value.shape} {value.dtype}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value):  # the template
        known = _TEMPLATE_DIGESTS.get(id(value))
        if known is None or known[0] is not value:
            own = hashlib.sha256(type(value).__name__.encode())
            for field in dataclasses.fields(value):
                _update(own, getattr(value, field.name))
            known = _TEMPLATE_DIGESTS[id(value)] = (value, own.hexdigest())
        digest.update(known[1].encode())
    elif isinstance(value, (list, tuple, type({}.values()))):
        digest.update(f"sequence {len(value)}".encode())
        for item in value:
            _update(digest, item)
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}".encode())
        for key in sorted(value):
            _update(digest, key)
            _update(digest, value[key])
    elif value is None or isinstance(value, (str, int, float, np.generic)):
        digest.update(f"{type(value).__name__} {value!r}".encode())
    else:  # nothing whose repr might not tell two values apart
        raise TypeError(f"no figure key for a {type(value).__name__}")


def figure_key(name, args, kwargs):
    """The digest naming a figure drawn by ``name`` from ``args`` and ``kwargs``."""
    digest = hashlib.sha256(_DRAWING.encode())
    _update(digest, [name, list(args), dict(kwargs)])
    return digest.hexdigest()[:32]


def cached_figure(draw):
    """``draw`` (returning a ``Figure``), read back from the cache where it was drawn before."""

    @functools.wraps(draw)
    def cached(*args, **kwargs):
        from bidsxai.reports.brain_figures import Figure  # which draws with this decorator

        try:
            key = figure_key(draw.__name__, args, kwargs)
        except TypeError:
            return draw(*args, **kwargs)
        path = user_cache_dir("figures") / f"{key}.json"
        try:
            return Figure(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            pass
        figure = draw(*args, **kwargs)
        with contextlib.suppress(OSError):  # an unwritable cache: drawn again next time
            write_text(path, json.dumps(dataclasses.asdict(figure)))
        return figure

    return cached
