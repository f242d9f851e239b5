"""TFCE of one statistic map: bidsxai's union-find sweep against nilearn's calculate_tfce, side by
side on the same map (a smoothed random field on the 2 mm MNI brain mask), same thresholds.
Usage: python benchmarks/tfce_vs_nilearn.py [--resolution 2] [--repeats 5]
"""

import argparse
import os
import time

import numpy as np
from scipy import ndimage


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--resolution", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    from nilearn.mass_univariate._utils import calculate_tfce

    from bidsxai.group.tfce import tfce
    from bidsxai.template import load_template

    mask = load_template(args.resolution).brain_mask
    rng = np.random.default_rng(0)
    stat = ndimage.gaussian_filter(rng.normal(size=mask.shape), 2) * 10 * mask
    tfce(stat, mask)  # compile once (numba caches it on disk afterwards)
    start = time.perf_counter()
    for _ in range(args.repeats):
        ours = tfce(stat, mask)
    ours_s = (time.perf_counter() - start) / args.repeats
    start = time.perf_counter()
    ref = calculate_tfce(
        stat[..., None], ndimage.generate_binary_structure(3, 1), E=0.5, H=2, two_sided_test=True
    )[..., 0]
    theirs_s = time.perf_counter() - start
    dh = np.abs(stat[mask]).max() / 100
    print(
        f"TFCE of one map, {int(mask.sum())} brain voxels at {args.resolution:g} mm, two-sided, "
        f"100 steps, {os.cpu_count()} cores"
    )
    print(f"  bidsxai  {ours_s:8.3f} s   (mean of {args.repeats})")
    print(f"  nilearn  {theirs_s:8.3f} s   (calculate_tfce)")
    print(
        f"  nilearn / bidsxai: {theirs_s / ours_s:.1f}x;  max |difference| after nilearn x dh: "
        f"{np.abs(ours - ref * dh).max():.1e} (map max {np.abs(ours).max():.1f})"
    )


if __name__ == "__main__":
    main()
