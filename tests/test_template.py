"""The template: nilearn's MNI152 copy is symmetric, so its space label is MNI152NLin2009aSym;
it seeds a TemplateFlow home, from which any template is read."""

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nilearn import datasets

from bidsxai import template as template_module
from bidsxai.errors import NoInputError, UsageError
from bidsxai.outputs import templateflow_path
from bidsxai.template import load_template, template_cache_dir
from bidsxai.template_files import DEFAULT_SPACE as SPACE
from bidsxai.template_files import check_space_name, seed_default_space, template_files


@pytest.mark.parametrize(
    "load",
    [
        datasets.load_mni152_template,
        datasets.load_mni152_gm_template,
        datasets.load_mni152_wm_template,
        datasets.load_mni152_brain_mask,
    ],
)
def test_nilearns_mni152_equals_its_mirror_image_voxel_for_voxel(load):
    image = load()
    data = image.get_fdata()
    assert np.array_equal(data, data[::-1])
    first, last = image.affine @ [0, 0, 0, 1], image.affine @ [data.shape[0] - 1, 0, 0, 1]
    assert first[0] == -last[0]  # the mirror plane is x = 0
    assert SPACE == "MNI152NLin2009aSym"


@pytest.mark.parametrize("resolution", [2, 4])
def test_grids_that_keep_x_0_at_their_centre_stay_symmetric(resolution):
    """Grids whose spacing divides the 192 mm from x = -96 to 96 (the default 2 mm among them)."""
    template = load_template(resolution)
    for volume in (template.t1w, template.gm, template.brain_mask):
        assert np.allclose(volume, volume[::-1], atol=1e-6)


def test_the_seeded_home_holds_nilearns_template_on_templateflows_res_1_grid(tmp_path):
    """Crop and pad only: every stored value of nilearn's copy is kept, no brain is cut, and the
    grid is the one TemplateFlow declares for MNI152NLin2009aSym res-1."""
    folder = seed_default_space(tmp_path)
    for kind, load in (
        ("desc-brain_T1w", datasets.load_mni152_template),
        ("desc-brain_mask", datasets.load_mni152_brain_mask),
        ("label-GM_probseg", datasets.load_mni152_gm_template),
    ):
        seeded = nib.load(templateflow_path(tmp_path, SPACE, "1", kind))
        original = load()
        assert seeded.shape == (193, 229, 193)
        assert np.allclose(seeded.affine[:3, 3], [-96, -132, -78])
        data, source = seeded.get_fdata(), original.get_fdata()
        assert data.sum() == pytest.approx(source.sum(), rel=1e-6)  # nothing inside the brain lost
        # The voxel at world (0, 0, 0) holds the same value in both.
        centre = np.linalg.solve(seeded.affine, [0, 0, 0, 1])[:3].astype(int)
        same = np.linalg.solve(original.affine, [0, 0, 0, 1])[:3].astype(int)
        assert data[tuple(centre)] == source[tuple(same)]
        assert np.array_equal(data, data[::-1])
    description = json.loads((folder / "template_description.json").read_text())
    assert description["Identifier"] == SPACE


def _write_template(home, space, placeholders=True):
    """A small made-up template laid out as TemplateFlow lays templates out, at res-02, and at
    res-01 only as TemplateFlow's empty placeholders of files not downloaded."""
    brain = np.zeros((20, 24, 18), np.float32)
    brain[4:16, 5:19, 4:14] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-20, -24, -16]
    for kind, data in (
        ("T1w", brain * 0.8 + 0.1),  # whole head: bidsxai masks it
        ("desc-brain_mask", brain),
        ("label-GM_probseg", brain * 0.6),
        ("label-WM_probseg", brain * 0.3),
    ):
        templateflow_path(home, space, "02", kind).parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, affine), templateflow_path(home, space, "02", kind))
        if placeholders:
            templateflow_path(home, space, "01", kind).touch()


def test_any_template_in_the_templateflow_home_is_loaded_at_its_finest_complete_resolution(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path))
    _write_template(tmp_path, "Toy")
    template = load_template(4.0, "Toy")
    assert template.space == "Toy" and template.shape == (10, 12, 9)
    assert np.allclose(template.affine[:3, 3], [-20, -24, -16])
    assert np.allclose(np.diag(template.affine)[:3], 4.0)
    native = load_template(2.0, "Toy")
    assert native.t1w[~native.brain_mask].max() == 0  # the whole-head T1w was masked
    assert template.image(template.t1w).header["sform_code"] == 5  # not an MNI152 template


def test_a_resampled_grid_is_kept_and_read_back_as_it_was_computed(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _write_template(tmp_path / "home", "Toy")
    computed = load_template(4.0, "Toy")
    assert len(list(template_cache_dir().glob("tpl-Toy_res-4_*.npz"))) == 1
    assert not list(template_cache_dir().glob("tpl-Toy_res-2_*"))  # the source's own grid
    template_module._load_template.cache_clear()

    def resampled(*args):
        raise AssertionError("the kept grid was computed again")

    with monkeypatch.context() as patched:
        patched.setattr(template_module, "_resampled", resampled)
        read = load_template(4.0, "Toy")
    assert read is not computed
    for name in ("affine", "t1w", "gm", "wm", "csf", "brain_mask"):
        kept, made = getattr(read, name), getattr(computed, name)
        assert kept.dtype == made.dtype and np.array_equal(kept, made), name
    # A changed source file is a new cache file, never the stale one.
    source = template_files("Toy").gm
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    template_module._load_template.cache_clear()
    load_template(4.0, "Toy")
    assert len(list(template_cache_dir().glob("tpl-Toy_res-4_*.npz"))) == 2
    # A cache folder that cannot be written: the grid is computed, nothing fails.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    (tmp_path / "not-a-folder").write_text("")
    template_module._load_template.cache_clear()
    assert np.array_equal(load_template(4.0, "Toy").t1w, computed.t1w)


def test_a_space_the_home_lacks_and_cannot_fetch_is_missing_input(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path))
    _write_template(tmp_path, "Toy", placeholders=False)  # nothing to fetch: no download tried
    templateflow_path(tmp_path, "Toy", "02", "label-WM_probseg").unlink()
    with pytest.raises(NoInputError, match="lacks its T1w, desc-brain mask or GM/WM"):
        template_files("Toy")


@pytest.mark.parametrize(
    "name, message",
    [
        ("MNI152NLin2009cAsym:res-2", "the grid is set with --resolution"),
        ("T1w", "writes its outputs on a template's grid"),
        ("MNI_152", "not a TemplateFlow template name"),
    ],
)
def test_spaces_that_are_not_a_template_name_are_usage_errors(name, message):
    with pytest.raises(UsageError, match=message):
        check_space_name(name)


def test_every_file_the_image_prefetches_is_one_templateflow_file(templateflow_home):
    """The container build fetches these; listed here without a download, each query names exactly
    one file of TemplateFlow's layout."""
    import importlib.util

    from templateflow.client import TemplateFlowClient

    script = Path(__file__).parents[1] / "scripts" / "prefetch_templates.py"
    spec = importlib.util.spec_from_file_location("prefetch_templates", script)
    prefetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prefetch)
    client = TemplateFlowClient(templateflow_home)
    client.cache.ensure()
    found = [client.ls(template, **query) for template, query in prefetch.queries()]
    assert [len(f) for f in found] == [1] * 12
    assert len({f[0].name for f in found}) == 12
