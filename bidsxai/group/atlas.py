"""Atlases on the template grid: labels, region names and lobes, for region tables, lobe
summaries and ROI vectors.

Sources, none downloaded: AAL from Debian's ``mricron-data`` (``aal``), any labelled NIfTI with a
names TSV beside it (columns ``index`` and ``name``, optional ``lobe``), and TemplateFlow atlases
already in the user's TemplateFlow home (``templateflow:NAME``).
"""

import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from bidsxai.errors import NoInputError
from bidsxai.template_files import templateflow_home

AAL = Path("/usr/share/mricron/templates/aal.nii.gz")
LOBES = (
    "frontal",
    "temporal",
    "parietal",
    "occipital",
    "insula",
    "limbic",
    "deep grey",
    "cerebellum",
)
# AAL region names (Tzourio-Mazoyer et al. 2002) by lobe, matched at the start of the name.
_LOBE_PREFIXES = {
    "frontal": (
        "Precentral",
        "Frontal",
        "Rolandic",
        "Supp_Motor",
        "Olfactory",
        "Rectus",
        "Paracentral",
    ),
    "temporal": ("Heschl", "Temporal"),
    "parietal": ("Postcentral", "Parietal", "SupraMarginal", "Angular", "Precuneus"),
    "occipital": ("Calcarine", "Cuneus", "Lingual", "Occipital", "Fusiform"),
    "insula": ("Insula",),
    "limbic": ("Cingul", "Hippocampus", "ParaHippocampal", "Amygdala"),
    "deep grey": ("Caudate", "Putamen", "Pallidum", "Thalamus"),
    "cerebellum": ("Cerebel", "Vermis"),
}


@dataclass
class Atlas:
    """Integer labels on the template grid (0 = none), and each label's name and lobe."""

    name: str
    labels: np.ndarray
    names: dict
    lobes: dict


def lobe_of(region):
    """The lobe of an AAL-style region name, or "other"."""
    for lobe, prefixes in _LOBE_PREFIXES.items():
        if region.startswith(prefixes):
            return lobe
    return "other"


def _read_names(path):
    """index -> (name, lobe) from a TSV with index and name columns (AAL's .txt: index name
    code)."""
    if path.suffix == ".txt":
        table = pd.read_csv(path, sep=r"\s+", header=None, usecols=[0, 1], names=["index", "name"])
    else:
        table = pd.read_csv(path, sep="\t")
        if not {"index", "name"} <= set(table.columns):
            raise NoInputError(f"{path}: an atlas names table needs 'index' and 'name' columns")
    lobes = table["lobe"] if "lobe" in table else table["name"].map(lobe_of)
    return {int(i): (str(n), str(lobe)) for i, n, lobe in zip(table["index"], table["name"], lobes)}


def _names_beside(image_path):
    stem = re.sub(r"\.nii(\.gz)?$", "", str(image_path))
    for candidate in (Path(stem + ".tsv"), Path(stem + ".nii.txt")):
        if candidate.is_file():
            return candidate
    raise NoInputError(f"no names table beside {image_path} (expected {Path(stem).name}.tsv)")


def _templateflow_atlas(name):
    """An atlas image and its names TSV already in the TemplateFlow home (finest resolution)."""
    home = templateflow_home()
    found = sorted(home.glob(f"tpl-*/tpl-*atlas-{name}_*dseg.nii.gz"))
    if not found:
        raise NoInputError(
            f"--atlas templateflow:{name}: no tpl-*_atlas-{name}_*_dseg.nii.gz in {home} "
            "(bidsxai never downloads; fetch it with TemplateFlow first)"
        )
    names = found[0].with_name(re.sub(r"_res-[^_]+", "", found[0].name).replace(".nii.gz", ".tsv"))
    if not names.is_file():
        raise NoInputError(f"no names table {names.name} beside {found[0]}")
    return found[0], names


def atlas_spec(value):
    """What ``--atlas`` means: ``auto`` is ``aal`` where AAL is installed, else None; ``none``
    None; any other value itself."""
    if value == "auto":
        return "aal" if AAL.is_file() else None
    return None if value in (None, "none") else value


def atlas_name(spec):
    """The name the tables and reports give the atlas ``spec``."""
    return "AAL" if spec == "aal" else Path(str(spec)).name


def atlas_option(value, template):
    """The atlas of ``--atlas`` on the template grid (``atlas_spec``; None for none)."""
    spec = atlas_spec(value)
    return None if spec is None else load_atlas(spec, template)


def load_atlas(spec, template):
    """The atlas ``spec`` (``aal``, ``templateflow:NAME`` or a NIfTI path) on the template grid."""
    from nilearn.image import resample_to_img  # nilearn takes seconds to import; only here

    if spec == "aal":
        if not AAL.is_file():
            raise NoInputError(
                f"AAL atlas not found at {AAL}; install Debian's mricron-data or "
                "give --atlas PATH.nii.gz with a names TSV"
            )
        image, names = AAL, AAL.with_name("aal.nii.txt")
    elif str(spec).startswith("templateflow:"):
        image, names = _templateflow_atlas(str(spec).split(":", 1)[1])
    else:
        image = Path(spec)
        if not image.is_file():
            raise NoInputError(f"--atlas {spec}: no such file")
        names = _names_beside(image)
    table = _read_names(names)
    resampled = resample_to_img(
        nib.load(str(image)),
        template.image(template.brain_mask.astype(np.float32)),
        interpolation="nearest",
        force_resample=True,
        copy_header=True,
    )
    labels = np.rint(np.asarray(resampled.dataobj)).astype(np.int32)
    labels[~template.brain_mask] = 0
    return Atlas(
        atlas_name(spec),
        labels,
        {i: n for i, (n, _) in table.items()},
        {i: lobe for i, (_, lobe) in table.items()},
    )


def region_table(values, atlas, top=None, labels=None):
    """Per region of a non-negative map: voxels with a value, share of the map's total, mean value
    over the region, and lobe; sorted by share, the first ``top`` rows. What falls outside every
    region (white matter, for a grey-matter atlas like AAL) is the row "unlabelled". ``labels``
    (the atlas labels under ``values``) lets a caller pass a crop of the grid, e.g. one cluster's
    bounding box; the mean is then over the cropped part of each region."""
    flat = np.asarray(values, np.float64).ravel()
    labels = (atlas.labels if labels is None else labels).ravel()
    size = max(max(atlas.names), int(labels.max(initial=0))) + 1
    sums = np.bincount(labels, weights=flat, minlength=size)
    counts = np.bincount(labels, minlength=size)
    positive = np.bincount(labels, weights=flat > 0, minlength=size).astype(int)
    total = flat.sum()
    rows = []
    if positive[0]:
        rows.append(
            {
                "region": "unlabelled",
                "lobe": "other",
                "voxels": int(positive[0]),
                "share": float(sums[0] / total),
                "mean": float("nan"),
            }
        )
    for index, name in atlas.names.items():
        if index < size and positive[index]:
            rows.append(
                {
                    "region": name,
                    "lobe": atlas.lobes[index],
                    "voxels": int(positive[index]),
                    "share": float(sums[index] / total) if total > 0 else 0.0,
                    "mean": float(sums[index] / counts[index]),
                }
            )
    table = pd.DataFrame(rows, columns=["region", "lobe", "voxels", "share", "mean"])
    table = table.sort_values("share", ascending=False).reset_index(drop=True)
    return table if top is None else table.head(top)


def lobe_summary(table):
    """Share of the map per lobe, from a region table."""
    summary = table.groupby("lobe", as_index=False)[["voxels", "share"]].sum()
    order = {lobe: i for i, lobe in enumerate((*LOBES, "other"))}
    return summary.sort_values("lobe", key=lambda s: s.map(order)).reset_index(drop=True)


def roi_vector(values, atlas):
    """The mean of a map within each region (Thibeau-Sutre et al. 2020's ROI density), in
    atlas.names order."""
    flat, labels = np.asarray(values, np.float64).ravel(), atlas.labels.ravel()
    sums = np.bincount(labels, weights=flat, minlength=max(atlas.names) + 1)
    counts = np.bincount(labels, minlength=max(atlas.names) + 1)
    index = np.array(sorted(atlas.names))
    return np.where(counts[index] > 0, sums[index] / np.maximum(counts[index], 1), 0.0)


def cosine_similarity(vectors):
    """(n, n) cosine similarity of ROI vectors (n, regions); 0 where a vector is all zeros."""
    vectors = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
    return unit @ unit.T
