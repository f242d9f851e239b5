"""Two-sample max-T permutation test: bidsxai's torch engine against nilearn's permuted_ols, side
by side on the same data and the same cores. Scaled down by default so that nilearn finishes;
the issue's target size is --voxels 235375 --subjects 50 --perms 10000.
Usage: python benchmarks/max_t_vs_nilearn.py [--voxels 20000] [--subjects 50] [--perms 1000]
"""

import argparse
import os
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--voxels", type=int, default=235375)
    p.add_argument("--subjects", type=int, default=50)
    p.add_argument("--perms", type=int, default=10000)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    from nilearn.mass_univariate import permuted_ols

    from bidsxai.group.permutation import permutation_fwe

    rng = np.random.default_rng(0)
    data = rng.normal(size=(args.subjects, args.voxels))
    labels = np.arange(args.subjects) < args.subjects // 2
    start = time.perf_counter()
    t_ours = permutation_fwe(data, labels, n_perm=args.perms, device=args.device)["t"]
    ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = permuted_ols(
        labels[:, None].astype(float),
        data,
        confounding_vars=None,
        model_intercept=True,
        n_perm=args.perms,
        two_sided_test=True,
        n_jobs=os.cpu_count(),
        verbose=0,
        random_state=0,
    )
    theirs = time.perf_counter() - start
    t_ref = ref["t"][0]
    print(
        f"max-T, {args.subjects} subjects, {args.voxels} voxels, {args.perms} permutations, "
        f"{os.cpu_count()} cores, {args.device}"
    )
    print(f"  bidsxai  {ours:8.2f} s")
    print(f"  nilearn  {theirs:8.2f} s   (permuted_ols, n_jobs={os.cpu_count()})")
    print(
        f"  nilearn / bidsxai: {theirs / ours:.1f}x;  "
        f"max |t difference| {np.abs(t_ours - t_ref).max():.2e}"
    )


if __name__ == "__main__":
    main()
