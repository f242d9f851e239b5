"""How alike two maps are: Spearman's rank correlation and SSIM, within a region; and how much
two images tell of each other: normalised mutual information."""

import numpy as np
from scipy import ndimage
from scipy.stats import spearmanr


def spearman(a, b, region=None):
    """Spearman's rho of two maps over ``region`` (all voxels by default); 0 when either map is
    constant there (nothing to rank)."""
    region = np.ones(np.shape(a), bool) if region is None else np.asarray(region, bool)
    x, y = np.asarray(a, np.float64)[region], np.asarray(b, np.float64)[region]
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


def ssim(a, b, region=None, sigma=1.5):
    """Mean structural similarity (Wang et al. 2004) of two maps, each scaled to [0, 1], with
    Gaussian windows of ``sigma`` voxels, averaged over ``region``."""
    region = np.ones(np.shape(a), bool) if region is None else np.asarray(region, bool)
    x, y = (_unit(np.where(region, m, 0.0)) for m in (a, b))
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = ndimage.gaussian_filter(x, sigma), ndimage.gaussian_filter(y, sigma)
    var_x = ndimage.gaussian_filter(x * x, sigma) - mu_x**2
    var_y = ndimage.gaussian_filter(y * y, sigma) - mu_y**2
    cov = ndimage.gaussian_filter(x * y, sigma) - mu_x * mu_y
    local = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return float(local[region].mean())


def _unit(values):
    values = np.asarray(values, np.float64)
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def normalised_mutual_information(image, reference, mask, bins=32):
    """Normalised mutual information 2 I(A; B) / (H(A) + H(B)) of two images within ``mask``,
    each binned into ``bins`` equal-width bins: 0 for independent intensities, 1 when one
    determines the other. The subject report's registration similarity (image against template)."""
    a = np.asarray(image, np.float64)[mask]
    b = np.asarray(reference, np.float64)[mask]
    if a.size == 0 or a.std() == 0 or b.std() == 0:
        return 0.0
    joint, _, _ = np.histogram2d(a, b, bins=bins)
    p = joint / joint.sum()

    def entropy(q):
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    h_a, h_b, h_ab = entropy(p.sum(axis=1)), entropy(p.sum(axis=0)), entropy(p.ravel())
    return 2 * (h_a + h_b - h_ab) / (h_a + h_b)
