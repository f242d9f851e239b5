import numpy as np
import pytest
from scipy import ndimage

from bidsxai.group.tfce import tfce


@pytest.fixture
def stat_map():
    rng = np.random.default_rng(0)
    stat = ndimage.gaussian_filter(rng.normal(size=(14, 12, 10)), 1.5) * 8
    stat[2:5, 2:5, 2:5] += 4  # a positive blob
    stat[9:12, 7:10, 5:8] -= 4  # a negative blob
    return stat


def test_tfce_equals_nilearn_times_dh(stat_map):
    """nilearn (like fslmaths) omits the paper's dh; on the same thresholds the rest is equal."""
    from nilearn.mass_univariate._utils import calculate_tfce

    ours = tfce(stat_map)
    structure = ndimage.generate_binary_structure(3, 1)
    ref = calculate_tfce(stat_map[..., None], structure, E=0.5, H=2, dh="auto")[..., 0]
    dh = np.abs(stat_map).max() / 100
    np.testing.assert_allclose(ours, ref * dh, rtol=1e-10, atol=1e-12)
    assert ours[3, 3, 3] > 0 and ours[10, 8, 6] < 0


def test_isolated_voxel_integrates_h_squared():
    """One voxel of height t (extent 1): sum of h^2 dh over (0, t] -> t^3 / 3."""
    stat = np.zeros((5, 5, 5))
    stat[2, 2, 2] = 3.0
    value = tfce(stat, steps=1000)[2, 2, 2]
    assert value == pytest.approx(9.0, rel=2e-3)


def test_mask_and_one_sided(stat_map):
    mask = np.zeros(stat_map.shape, bool)
    mask[:7] = True
    masked = tfce(stat_map, mask)
    assert (masked[~mask] == 0).all()
    positive = tfce(stat_map, two_sided=False)
    assert positive.min() >= 0 and positive[10, 8, 6] == 0
    assert np.all(tfce(np.zeros((3, 3, 3))) == 0)
