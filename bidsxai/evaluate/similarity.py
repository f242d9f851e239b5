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


def hog_descriptor(image, orientations=9, cell=8, block=2):
    """Histogram-of-oriented-gradients descriptor (Dalal & Triggs 2005) of a 2D image, or of each
    2D image of a stack (..., rows, columns), computed as ``skimage.feature.hog`` computes it with
    ``pixels_per_cell=(cell, cell)``, ``cells_per_block=(block, block)`` and L2-Hys block
    normalisation: central-difference gradients (0 on the border), unsigned orientations in
    ``orientations`` equal bins of 0-180 degrees, each pixel's gradient magnitude voted into its
    bin of its cell (whole cells only, divided by the cell's pixel count), blocks of ``block`` x
    ``block`` cells at a stride of one cell. Returns (..., features)."""
    image = np.asarray(image, np.float64)
    g_row, g_col = np.zeros_like(image), np.zeros_like(image)
    g_row[..., 1:-1, :] = image[..., 2:, :] - image[..., :-2, :]
    g_col[..., :, 1:-1] = image[..., :, 2:] - image[..., :, :-2]
    n_rows, n_cols = image.shape[-2] // cell, image.shape[-1] // cell
    if n_rows < block or n_cols < block:
        raise ValueError(f"an image of {image.shape[-2:]} has fewer than {block} cells of {cell}")
    rows, cols = n_rows * cell, n_cols * cell
    magnitude = np.hypot(g_col, g_row)[..., :rows, :cols]
    angle = np.rad2deg(np.arctan2(g_row, g_col))[..., :rows, :cols] % 180
    bins = np.minimum((angle // (180 / orientations)).astype(int), orientations - 1)
    votes = magnitude[..., None] * (bins[..., None] == np.arange(orientations))
    stack = votes.shape[:-3]
    cells = votes.reshape(*stack, n_rows, cell, n_cols, cell, orientations).sum((-4, -2))
    cells = cells / (cell * cell)
    blocks = np.lib.stride_tricks.sliding_window_view(cells, (block, block), axis=(-3, -2))
    # (..., block rows, block cols, orientations, block, block) -> skimage's order
    blocks = np.moveaxis(blocks, -3, -1)
    eps = 1e-5
    norm = np.sqrt((blocks**2).sum((-3, -2, -1), keepdims=True) + eps**2)
    blocks = np.minimum(blocks / norm, 0.2)
    blocks = blocks / np.sqrt((blocks**2).sum((-3, -2, -1), keepdims=True) + eps**2)
    return blocks.reshape(*stack, -1)


def hog_similarity(a, b, region=None, orientations=9, cell=8, block=2):
    """Pearson correlation of the HOG descriptors of two maps (Adebayo et al. 2018's HOG
    similarity). Each map is set to 0 outside ``region``, scaled to [0, 1] (as for ``ssim``) and
    cropped to the region's bounding box; a 3D map is described slice by slice along its last
    (axial) axis and the slices' descriptors are concatenated. Cells are ``cell`` voxels wide, or
    half the shorter in-plane side where that is smaller, so that one block of ``block`` x
    ``block`` cells fits. NaN where either descriptor is constant (nothing to correlate)."""
    region = np.ones(np.shape(a), bool) if region is None else np.asarray(region, bool)
    box = tuple(
        slice(idx[0], idx[-1] + 1)
        for idx in (
            np.flatnonzero(region.any(tuple(k for k in range(region.ndim) if k != axis)))
            for axis in range(region.ndim)
        )
    )
    x, y = (_unit(np.where(region, m, 0.0))[box] for m in (a, b))
    if x.ndim == 3:  # axial slices first: (z, rows, columns)
        x, y = np.moveaxis(x, -1, 0), np.moveaxis(y, -1, 0)
    cell = max(1, min(cell, min(x.shape[-2:]) // block))
    u = hog_descriptor(x, orientations, cell, block).ravel()
    v = hog_descriptor(y, orientations, cell, block).ravel()
    if u.std() == 0 or v.std() == 0:
        return float("nan")
    return float(np.corrcoef(u, v)[0, 1])
