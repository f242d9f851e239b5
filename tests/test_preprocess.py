import gzip

import nibabel as nib
import numpy as np
import pytest
from conftest import RES

from bidsxai.errors import NoInputError
from bidsxai.evaluate.registration import registration_error_mm
from bidsxai.normalisations import input_bounds, inverting_centre, scaled_input
from bidsxai.outputs import preproc_path
from bidsxai.preprocess.conform import load_volume
from bidsxai.preprocess.normalise import normalise
from bidsxai.template import load_template
from bidsxai.template_files import DEFAULT_SPACE as SPACE


def test_percentile_normalisation_maps_brain_to_unit_range():
    rng = np.random.default_rng(0)
    data = rng.normal(100, 20, (10, 10, 10)).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[2:8, 2:8, 2:8] = True
    out = normalise(data, mask)
    assert out[~mask].max() == 0
    assert out[mask].min() == 0 and out[mask].max() == 1
    inside = out[mask]
    assert 0.005 < (inside == 0).mean() < 0.03  # the lowest 1 % is clipped to 0


def test_zscore_normalisation():
    rng = np.random.default_rng(1)
    data = rng.gamma(2, 3, (8, 8, 8)).astype(np.float32)
    mask = data > 1
    out = normalise(data, mask, "zscore")
    assert abs(out[mask].mean()) < 1e-5 and abs(out[mask].std() - 1) < 1e-4


def test_minmax_and_no_normalisation():
    rng = np.random.default_rng(2)
    data = rng.gamma(2, 30, (8, 8, 8)).astype(np.float32)
    mask = data > 20
    minmax = normalise(data, mask, "minmax")
    inside = data[mask]
    expected = (data - inside.min()) / (inside.max() - inside.min())
    np.testing.assert_allclose(minmax[mask], expected[mask], rtol=1e-6)
    assert minmax[mask].min() == 0 and minmax[mask].max() == 1 and minmax[~mask].max() == 0
    raw = normalise(data, mask, "none")
    assert np.array_equal(raw[mask], data[mask]) and raw[~mask].max() == 0


def test_each_normalisation_gives_its_model_input_range_and_inverting_centre():
    x = np.array([-3.0, 0.5, 7.0], np.float32)
    cases = {
        "percentile": ((0.0, 1.0), 0.5),
        "minmax": ((0.0, 1.0), 0.5),
        "zscore": ((-3.0, 7.0), 0.0),  # reflected about the brain's mean
        "none": ((-3.0, 7.0), 2.0),
    }
    for method, (bounds, centre) in cases.items():
        spec = {"normalisation": method}
        assert input_bounds(spec, x) == bounds and inverting_centre(spec, x) == centre, method
        assert scaled_input(x, spec) is x
    card_range = {"normalisation": "minmax", "intensity_range": [-1.0, 1.0]}
    assert input_bounds(card_range, x) == (-1.0, 1.0) and inverting_centre(card_range, x) == 0.0
    written = np.array([0.0, 0.25, 1.0], np.float32)  # background, brain, brain maximum
    assert scaled_input(written, card_range).tolist() == [-1.0, -0.5, 1.0]


def test_load_volume_reorients_to_ras_without_moving_the_world(tmp_path):
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [40, -50, -30]
    data = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "las.nii.gz")
    img = load_volume(tmp_path / "las.nii.gz")
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    # the same voxel value sits at the same world position
    world = affine @ [1, 2, 3, 1]
    ijk = np.round(np.linalg.inv(img.affine) @ world).astype(int)[:3]
    assert img.get_fdata()[tuple(ijk)] == data[1, 2, 3]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "4d"])
def test_bad_images_give_a_one_line_error(tmp_path, damage):
    path = tmp_path / "bad.nii.gz"
    if damage == "4d":
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 3), np.float32), np.eye(4)), path)
    else:
        nib.save(nib.Nifti1Image(np.random.rand(30, 30, 30).astype(np.float32), np.eye(4)), path)
        raw = path.read_bytes()
        path.write_bytes(
            raw[: len(raw) // 2] if damage == "truncated" else gzip.compress(b"not nifti")
        )
    with pytest.raises(NoInputError) as err:
        load_volume(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_an_image_too_thin_for_a_head_is_one_line(tmp_path):
    """A field of view under 8 mm along an axis (found by the input fuzz: N4's 4 mm head mask of
    it had no voxel, and the session ended in an internal error)."""
    path = tmp_path / "thin.nii.gz"
    data = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 0.5, 1.0])), path)
    with pytest.raises(NoInputError, match="field of view is 1.5 mm along one axis"):
        load_volume(path)


def test_registration_recovers_the_true_head_pose(pipeline, cohort):
    """At 6 mm every subject is within one voxel of the truth (at 2 mm: 0.13-0.17 mm, see docs)."""
    template = load_template(RES)
    errors = [
        registration_error_mm(pipeline["out"], cohort, f"{i:02d}", None, template)
        for i in range(1, 10)
    ]
    assert max(errors) < RES and np.mean(errors) < RES / 2, errors


def test_preprocessed_contrasts_keep_their_tissue_order(pipeline):
    template = load_template(RES)
    csf, wm = template.csf > 0.8, template.wm > 0.8
    out = pipeline["out"]
    t1 = nib.load(preproc_path(out, "01", None, "T1w", RES, SPACE)).get_fdata()
    t2 = nib.load(preproc_path(out, "01", None, "T2w", RES, SPACE)).get_fdata()
    assert t1[csf].mean() < t1[wm].mean() and t2[csf].mean() > t2[wm].mean()


def test_normalised_mutual_information_is_sklearns_on_the_same_bins():
    from sklearn.metrics import normalized_mutual_info_score

    from bidsxai.evaluate.similarity import normalised_mutual_information

    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 12, 12))
    b = np.exp(a) + 0.3 * rng.normal(size=a.shape)
    mask = np.ones(a.shape, bool)
    mask[:3] = False
    bins = [np.digitize(v[mask], np.histogram_bin_edges(v[mask], 32)[1:-1]) for v in (a, b)]
    expected = normalized_mutual_info_score(*bins, average_method="arithmetic")
    assert normalised_mutual_information(a, b, mask) == pytest.approx(expected, abs=1e-12)
    assert normalised_mutual_information(a, a, mask) == pytest.approx(1.0)
    assert normalised_mutual_information(a, rng.normal(size=a.shape), mask) < 0.1


def test_a_scan_down_to_the_shoulders_is_cropped_below_the_head_in_world_coordinates():
    from bidsxai.preprocess.field_of_view import cranium_centre, crop_to_head

    # A 2 mm oblique grid: a 150 mm ball of a head above a 300 mm column of body.
    affine = np.eye(4)
    affine[:3, :3] = 2.0 * np.array([[1, 0, 0], [0, 0.96, -0.28], [0, 0.28, 0.96]])
    affine[:3, 3] = [-100, -120, -250]
    shape = (100, 110, 180)
    ijk = np.indices(shape).reshape(3, -1)
    x, y, z = (affine[:3, :3] @ ijk + affine[:3, 3:]).reshape(3, *shape)
    head = x**2 + y**2 + (z - 20) ** 2 < 75**2
    body = (x**2 + y**2 < 50**2) & (z < 0)
    data = np.where(head | body, 100.0, 0.0) + np.random.default_rng(0).normal(0, 2, shape)
    data = data.astype(np.float32)
    image = nib.Nifti1Image(data, affine)
    cropped = crop_to_head(image)
    kept = np.asarray(cropped.dataobj)
    heights = (cropped.affine[2, :3] @ np.indices(kept.shape).reshape(3, -1)).reshape(
        kept.shape
    ) + cropped.affine[2, 3]
    top = 95.0  # the head's top: 20 + 75 mm
    assert (kept[heights >= top - 180] > 50).sum() == (data[z >= top - 180] > 50).sum()  # all kept
    assert not (kept[heights < top - 180 - 60] > 50).any()  # the body below is gone (60: slant)
    assert kept.size < data.size / 1.4
    # The same voxels, at the same world positions.
    offset = np.linalg.inv(affine) @ cropped.affine[:, 3]
    i, j, k = np.round(offset[:3]).astype(int)
    assert np.array_equal(
        kept, data[i : i + kept.shape[0], j : j + kept.shape[1], k : k + kept.shape[2]]
    )
    # The registration starts from the head's centre, not from the body's.
    centre = cranium_centre(image)
    everything = (affine[:3, :3] @ np.argwhere(data > 50).mean(0)) + affine[:3, 3]
    assert np.linalg.norm(centre - [0, 0, 20]) < 0.25 * np.linalg.norm(everything - [0, 0, 20])
    small = nib.Nifti1Image(data[:, :, -40:], affine)  # nothing 180 mm below the top
    assert crop_to_head(small) is small


def test_the_resume_key_changes_with_every_preprocessing_option(tmp_path):
    """The key hashes the whole preprocessing stage, so an option added to Settings later changes
    it too and a rerun never reuses outputs made without it; options of other stages do not."""
    import dataclasses

    from bidsxai.bids import SessionInputs
    from bidsxai.config import Settings, stage_fields
    from bidsxai.preprocess.pipeline import settings_key

    image = tmp_path / "sub-01_T1w.nii.gz"
    image.write_bytes(b"not read, only its name, size and time")
    inputs = SessionInputs("01", None, {"T1w": image})
    settings = Settings(bids_dir=tmp_path, output_dir=tmp_path / "out", level="participant")
    options = settings.stage("preprocessing")
    key = settings_key(inputs, options)
    changed = {
        bool: lambda v: not v,
        float: lambda v: v + 1,
        int: lambda v: v + 1,
        str: lambda v: v + "x",
    }
    names = [f.name for f in stage_fields("preprocessing")]
    assert {"seed", "resolution", "normalisation", "skull_strip", "tissue_maps"} <= set(names)
    for name in names:
        value = getattr(options, name)
        other = dataclasses.replace(options, **{name: changed[type(value)](value)})
        assert settings_key(inputs, other) != key, name
    unrelated = dataclasses.replace(settings, methods=["lrp"], n_perm=5, qc_override=True)
    assert settings_key(inputs, unrelated.stage("preprocessing")) == key
