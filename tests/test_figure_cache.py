"""Report figures kept between runs: read back when the same figure is asked for again, drawn
again when anything it shows changes, and drawn each time where nothing can be kept."""

import numpy as np

from bidsxai.reports.brain_figures import Figure
from bidsxai.reports.figure_cache import cached_figure


def _toy(drawn):
    @cached_figure
    def toy(volume, chosen, references=()):
        drawn.append(float(volume.sum()))
        return Figure(f"data:image/png;base64,{len(drawn)}", 10, 5)

    return toy


def test_a_figure_is_read_back_until_what_it_shows_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    drawn = []
    toy = _toy(drawn)
    volume, cuts = np.zeros((3, 3, 3), np.float32), {"x": [1.0, 2.0]}
    first = toy(volume, cuts)
    assert toy(volume.copy(), dict(cuts)) == first and len(drawn) == 1  # equal inputs: read back
    changed = volume.copy()
    changed[1, 1, 1] = 1e-6
    toy(changed, cuts)  # one voxel
    toy(volume, {"x": [1.0, 2.5]})  # a cut
    toy(volume.astype(np.float64), cuts)  # the dtype
    toy(volume, cuts, references={"lesion": volume > 0}.values())  # an outline
    assert len(drawn) == 5
    assert toy(volume, cuts, references={"lesion": volume > 0}.values()) == Figure(
        "data:image/png;base64,5", 10, 5
    )
    assert len(list((tmp_path / "bidsxai" / "figures").glob("*.json"))) == 5


def test_without_a_key_or_a_writable_folder_the_figure_is_drawn_each_time(tmp_path, monkeypatch):
    drawn = []
    toy = _toy(drawn)
    volume = np.zeros((3, 3, 3), np.float32)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    toy(volume, {}, references=object())  # no key for an object whose repr may hide a change
    toy(volume, {}, references=object())
    assert len(drawn) == 2
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # no folder can be made under a file
    toy(volume, {})
    toy(volume, {})
    assert len(drawn) == 4
