"""Clusters of voxels on the brain-mask lattice, by union-find compiled with numba.

TFCE and cluster mass both need the clusters of a statistic map at one or many thresholds, for
every permuted map. Labelling the whole volume once per threshold (scipy, nilearn) costs a pass
over every voxel of the grid each time; here the masked voxels keep a table of their in-mask
neighbours and clusters grow by union-find while the threshold is lowered, so a map costs one
sort and about one union per neighbour pair.
"""

import numpy as np
from numba import njit
from scipy import ndimage


def neighbour_table(mask, connectivity=1):
    """(V, K) indices of each masked voxel's in-mask neighbours (-1 where outside), in the order
    of ``mask[mask]``; ``connectivity`` is scipy's rank (1 = faces, 2 = edges, 3 = corners)."""
    mask = np.asarray(mask, bool)
    index = np.full(np.add(mask.shape, 2), -1, np.int64)  # padded by one voxel of -1
    index[1:-1, 1:-1, 1:-1][mask] = np.arange(int(mask.sum()))
    structure = ndimage.generate_binary_structure(3, connectivity)
    offsets = np.argwhere(structure) - 1
    offsets = offsets[np.any(offsets != 0, axis=1)]
    table = np.empty((int(mask.sum()), len(offsets)), np.int64)
    for k, offset in enumerate(offsets):
        shifted = tuple(slice(1 + o, 1 + o + size) for o, size in zip(offset, mask.shape))
        table[:, k] = index[shifted][mask]
    return table


@njit(cache=True, nogil=True)
def _find(parent, potential, stack, x):
    """Root of x, compressing the path; a node's potential becomes its path sum below the root."""
    depth = 0
    while parent[x] != x:
        stack[depth] = x
        depth += 1
        x = parent[x]
    for i in range(depth - 2, -1, -1):
        node = stack[i]
        potential[node] += potential[parent[node]]
        parent[node] = x
    return x


@njit(cache=True, nogil=True)
def _union(parent, size, potential, stack, a, b):
    ra = _find(parent, potential, stack, a)
    rb = _find(parent, potential, stack, b)
    if ra == rb:
        return
    if size[ra] < size[rb]:
        ra, rb = rb, ra
    parent[rb] = ra
    potential[rb] -= potential[ra]  # what rb's members already hold stays theirs
    size[ra] += size[rb]


@njit(cache=True, nogil=True)
def _by_level_descending(levels):
    """Indices of the voxels with level >= 1, highest level first (a counting sort)."""
    top = levels.max() if levels.shape[0] else 0
    counts = np.zeros(top + 2, np.int64)
    for level in levels:
        if level >= 1:
            counts[top - level + 1] += 1
    starts = np.cumsum(counts)
    order = np.empty(starts[-1], np.int64)
    for v in range(levels.shape[0]):
        if levels[v] >= 1:
            slot = top - levels[v]
            order[starts[slot]] = v
            starts[slot] += 1
    return order


@njit(cache=True, nogil=True)
def _enhance(levels, neighbours, weights, extent_power, out, sign):
    """Add sign * sum_k extent_k(v)^E * weights[k] over the levels k <= levels[v] to out[v].

    Levels are swept from the top down; every cluster alive at level k adds its extent term to
    its root's potential, and a voxel's value is the sum of potentials up its union-find path.
    """
    n = levels.shape[0]
    order = _by_level_descending(levels)
    parent = np.arange(n)
    size = np.ones(n, np.int64)
    potential = np.zeros(n)
    added = np.zeros(n, np.bool_)
    roots = np.empty(n, np.int64)
    stack = np.empty(n, np.int64)
    n_roots = 0
    i = 0
    level = levels[order[0]] if order.shape[0] else 0
    while level >= 1:
        while i < order.shape[0] and levels[order[i]] == level:
            v = order[i]
            added[v] = True
            roots[n_roots] = v
            n_roots += 1
            for w in neighbours[v]:
                if w >= 0 and added[w]:
                    _union(parent, size, potential, stack, v, w)
            i += 1
        alive = 0
        for j in range(n_roots):
            r = roots[j]
            if parent[r] == r:
                potential[r] += size[r] ** extent_power * weights[level]
                roots[alive] = r
                alive += 1
        n_roots = alive
        level -= 1
    for v in range(n):
        if added[v]:
            r = _find(parent, potential, stack, v)
            out[v] += sign * (potential[r] if r == v else potential[v] + potential[r])


@njit(cache=True, nogil=True)
def _components(active, neighbours):
    """Root index of each active voxel's face/edge/corner-connected cluster, -1 where inactive."""
    n = active.shape[0]
    parent = np.arange(n)
    size = np.ones(n, np.int64)
    potential = np.zeros(n)
    stack = np.empty(n, np.int64)
    for v in range(n):
        if active[v]:
            for w in neighbours[v]:
                if w >= 0 and active[w]:
                    _union(parent, size, potential, stack, v, w)
    roots = np.full(n, -1, np.int64)
    for v in range(n):
        if active[v]:
            roots[v] = _find(parent, potential, stack, v)
    return roots


def tfce_values(stat, neighbours, *, E=0.5, H=2.0, steps=100, two_sided=True):
    """TFCE of a masked statistic vector (V,), thresholds dh, 2 dh, ..., max |stat| (see tfce)."""
    stat = np.asarray(stat, np.float64)
    out = np.zeros_like(stat)
    peak = np.abs(stat).max(initial=0.0) if two_sided else max(stat.max(initial=0.0), 0.0)
    if peak <= 0:
        return out
    thresholds = np.linspace(0, peak, steps + 1)[1:]
    weights = np.r_[0.0, thresholds**H * thresholds[0]]
    for sign in (1.0, -1.0) if two_sided else (1.0,):
        levels = np.searchsorted(thresholds, sign * stat, side="right").astype(np.int64)
        _enhance(levels, neighbours, weights, E, out, sign)
    return out


def cluster_mass_values(stat, neighbours, threshold, *, two_sided=True):
    """Each voxel's cluster mass, sum of (|stat| - threshold) over its cluster of voxels beyond
    ``threshold`` (positive and negative clusters apart, negative ones signed); 0 elsewhere."""
    stat = np.asarray(stat, np.float64)
    out = np.zeros_like(stat)
    for sign in (1.0, -1.0) if two_sided else (1.0,):
        excess = sign * stat - threshold
        roots = _components(excess > 0, neighbours)
        inside = roots >= 0
        mass = np.bincount(roots[inside], weights=excess[inside], minlength=len(stat))
        out[inside] = sign * mass[roots[inside]]
    return out
