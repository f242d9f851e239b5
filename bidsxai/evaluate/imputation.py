"""Noisy linear imputation (Rong et al. 2022, ROAD): removed voxels are filled with values that
leak nothing of the removal's shape. Each removed voxel becomes the weighted mean of its
neighbours, removed or not, which is one sparse linear system over all removed voxels; then
Gaussian noise is added to them.

Rong et al. weight the 8 neighbours of a pixel 1/6 (edge) and 1/12 (corner). The same rule in any
number of dimensions is a weight proportional to 1 / |offset|^2 over the 3^d - 1 neighbours
(in 3D: 6 faces, 12 edges, 8 corners); in 2D it gives their weights exactly. Neighbours outside
the array do not count, and the weights of the others are renormalised.
"""

import itertools

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import cg


def _offsets(dims):
    for offset in itertools.product((-1, 0, 1), repeat=dims):
        if any(offset):
            yield np.array(offset), 1.0 / float(np.dot(offset, offset))


def linear_imputation(values, removed, *, noise=0.0, seed=0, rtol=1e-8):
    """``values`` (channels, *spatial) with the voxels of ``removed`` (*spatial, boolean) replaced
    by the linear imputation of each channel plus Gaussian noise of SD ``noise``."""
    values = np.asarray(values, np.float64)
    removed = np.asarray(removed, bool)
    shape = removed.shape
    unknown = np.flatnonzero(removed)
    if unknown.size == 0:
        return values.copy()
    variable = np.full(removed.size, -1)
    variable[unknown] = np.arange(unknown.size)
    coords = np.stack(np.unravel_index(unknown, shape), 1)
    flat = values.reshape(len(values), -1)
    diagonal = np.zeros(unknown.size)
    rhs = np.zeros((len(values), unknown.size))
    rows, cols, weights = [], [], []
    for offset, weight in _offsets(len(shape)):
        neighbour = coords + offset
        inside = np.all((neighbour >= 0) & (neighbour < shape), 1)
        which = np.flatnonzero(inside)
        index = np.ravel_multi_index(tuple(neighbour[inside].T), shape)
        diagonal[which] += weight
        known = variable[index] < 0
        rhs[:, which[known]] += weight * flat[:, index[known]]
        rows.append(which[~known])
        cols.append(variable[index[~known]])
        weights.append(np.full(int((~known).sum()), -weight))
    system = sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
        shape=(unknown.size, unknown.size),
    ) + sparse.diags(diagonal)
    jacobi = sparse.diags(1.0 / diagonal)
    rng = np.random.default_rng(seed)
    out = flat.copy()
    for channel in range(len(values)):
        start = rhs[channel] / diagonal
        solution, info = cg(system, rhs[channel], x0=start, rtol=rtol, M=jacobi, maxiter=10_000)
        if info != 0:
            raise RuntimeError(f"linear imputation did not converge ({info} iterations)")
        out[channel, unknown] = solution + noise * rng.standard_normal(unknown.size)
    return out.reshape(values.shape)
