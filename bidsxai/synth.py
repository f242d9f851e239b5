"""Synthetic BIDS cohort with planted ground truth (``bidsxai-synth``).

Why: every stage needs a realistic test bed whose truth is known. Each subject is built in template
space from nilearn's MNI152 tissue maps (ventricles enlarged and white-matter lesions planted
according to group and severity), given T1w/T2w/FLAIR contrasts, then moved into its own native
space (random pose, head size, voxel size and field of view) with a smooth bias field and Rician
noise, so that preprocessing has real work to do. Lesion masks are written in native and template
space under ``derivatives/groundtruth``.

A distractor cohort (``--distractor``) is one that the input image cannot pass: every subject,
controls too, has lesions at a distractor site (deep white matter, outside every signal region),
and only the patient groups also have lesions at their signal sites. A map that follows the FLAIR
lights both kinds; a map that explains the decision lights the signal lesions only. The truth has
the two apart: ``label-lesion`` (signal) and ``label-distractor``.
"""

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from bidsxai import __version__
from bidsxai import synth_scanner as scanner
from bidsxai.atomic import save_nifti, write_json, write_text
from bidsxai.outputs import bids_path, label_mask_path, sessions_tsv_path, sidecar_path
from bidsxai.template import load_template
from bidsxai.template_files import DEFAULT_SPACE

CONTRASTS = ("T1w", "T2w", "FLAIR")

# Mean intensity of CSF, GM, WM, lesion and scalp per contrast (relative units): CSF is dark on
# T1w and FLAIR and bright on T2w; lesions are hypointense on T1w and hyperintense on T2w/FLAIR.
INTENSITY = {
    "T1w": dict(csf=0.18, gm=0.55, wm=0.82, lesion=0.38, scalp=0.70),
    "T2w": dict(csf=1.00, gm=0.58, wm=0.40, lesion=0.85, scalp=0.45),
    "FLAIR": dict(csf=0.10, gm=0.62, wm=0.45, lesion=1.00, scalp=0.50),
}

ACQUISITION = {
    "T1w": dict(
        RepetitionTime=2.3,
        EchoTime=0.00298,
        InversionTime=0.9,
        FlipAngle=9,
        PulseSequenceType="MPRAGE",
    ),
    "T2w": dict(RepetitionTime=3.2, EchoTime=0.408, FlipAngle=120, PulseSequenceType="TSE"),
    "FLAIR": dict(
        RepetitionTime=5.0,
        EchoTime=0.393,
        InversionTime=1.8,
        FlipAngle=120,
        PulseSequenceType="FLAIR",
    ),
}

# Lobes as boxes in MNI millimetres (x, y, z ranges): coarse, but enough to place lesions where
# Zhang et al. (2021) found its groups to differ.
REGIONS = {
    "frontal": ((-70, 70), (5, 75), (-20, 80)),
    "occipital": ((-60, 60), (-110, -65), (-20, 45)),
    "parietal": ((-65, 65), (-65, -20), (25, 80)),
    "temporal": ((-75, -30), (-55, 10), (-45, 5)),
    "temporal_r": ((30, 75), (-55, 10), (-45, 5)),
}
PATIENT_PATTERNS = (("occipital",), ("frontal", "temporal", "temporal_r", "parietal"))
# A lesion-only cohort: every group has lesions, the same load, each group in its own region.
LOCATION_PATTERNS = (("occipital",), ("frontal",), ("parietal",), ("temporal", "temporal_r"))
# The distractor site: deep white matter that no signal region above reaches (|x| < 30 leaves
# the temporal boxes, -60 < y < 0 the frontal and occipital ones, z < 22 the parietal one).
DISTRACTOR_REGION = ((-28, 28), (-60, 0), (-10, 22))
DISTRACTOR_COUNT = (3, 6)  # distractor lesions per subject, inclusive
# Both medial temporal lobes (hippocampus, amygdala, parahippocampal and entorhinal cortex) as
# boxes in MNI mm, where Alzheimer-like atrophy takes grey matter (the task of Thibeau-Sutre et
# al. 2020).
MEDIAL_TEMPORAL = (((-40, -15), (-45, 0), (-35, -5)), ((15, 40), (-45, 0), (-35, -5)))
# The rungs of the difficulty ladder that the cohort options above do not make (the lesion site is
# --lesion-only, the distractor --distractor): what tells a patient from a control.
RUNGS = {
    "presence": "1 to 3 white-matter lesions of 4 to 9 mm radius anywhere in deep white matter",
    "atrophy": "20 to 40 % of the grey matter lost in both medial temporal lobes",
    "ventricles": "ventricles enlarged by 1.5 to 3.3 mm, nothing else",
}


@dataclass(frozen=True)
class CohortSpec:
    n_subjects: int = 24
    groups: tuple = ("HC", "RRMS", "SPMS")
    contrasts: tuple = CONTRASTS
    resolution: float = 2.0
    sessions: int = 1
    seed: int = 0
    # Groups that differ only by where their lesions sit: no lesion-free controls, no ventricle
    # growth, the same lesion load and age distribution in every group.
    lesion_only: bool = False
    lesion_count: int | None = None  # lesions per subject (default: 6 to 24, with severity)
    lesion_radius_mm: float | None = None  # mean radius (default: 3 to 7 mm, with severity)
    # Scans as scanners write them (see synth_scanner): 1 mm sagittal T1w, oblique grids, neck and
    # shoulders, int16 with scaling, qform/sform variants.
    scanner_like: bool = False
    # Every subject also has lesions at the distractor site (module docstring); no ventricle
    # growth, so that the signal lesions are all that tells the classes apart in the image.
    distractor: bool = False
    # A rung of the difficulty ladder (RUNGS): the first group are controls with nothing, the
    # others patients with only that change; every group has the same ages.
    rung: str | None = None


@dataclass(frozen=True)
class Subject:
    label: str
    group: str
    group_index: int
    age: float
    sex: str
    severity: float


def plan_subjects(spec):
    """Group, age, sex and severity of every subject; groups are balanced and interleaved."""
    rng = np.random.default_rng(spec.seed)
    subjects = []
    for i in range(spec.n_subjects):
        gi = i % len(spec.groups)
        if spec.lesion_only:  # nothing but the lesions' location tells the groups apart
            severity, age = float(rng.uniform(0.3, 0.65)), float(np.round(rng.uniform(25, 50), 1))
        elif spec.rung:  # nothing but the rung's change, scaled by severity, tells them apart
            severity = 0.0 if gi == 0 else float(rng.uniform(0.3, 0.65))
            age = float(np.round(rng.uniform(25, 50), 1))
        else:
            severity = (
                0.0 if gi == 0 else float(np.clip(rng.uniform(0.3, 0.65) + 0.3 * (gi - 1), 0, 1))
            )
            age = float(np.round(rng.uniform(25, 50) + 6 * gi, 1))
        subjects.append(
            Subject(f"{i + 1:02d}", spec.groups[gi], gi, age, str(rng.choice(["M", "F"])), severity)
        )
    return subjects


def edss_of(subject, session_index=0):
    """An EDSS-like score in half steps that grows with severity; 'n/a' for controls."""
    if subject.group_index == 0:
        return "n/a"
    sev = min(1.0, subject.severity + 0.1 * session_index)
    return float(np.clip(np.round((1.0 + 6.5 * sev) * 2) / 2, 0, 9.5))


# ---------------------------------------------------------------- anatomy in template space
class Anatomy:
    """Template-space tissue maps on a source grid fine enough for the target resolution."""

    def __init__(self, resolution):
        self.template = load_template(max(1.0, min(2.0, 0.75 * resolution)))
        t = self.template
        self.world = _voxel_world_coords(t.shape, t.affine)
        outside = ndimage.distance_transform_edt(~t.brain_mask, sampling=t.resolution)
        self.skull = (outside > 0) & (outside <= 4)
        self.scalp = (outside > 4) & (outside <= 9)
        self.wm_core = t.wm > 0.9
        head = ndimage.binary_dilation(t.brain_mask, iterations=max(1, int(10 / t.resolution)))
        box = [(a.min(), a.max()) for a in np.nonzero(head)]
        corners = np.array(np.meshgrid(*box, indexing="ij")).reshape(3, -1)
        self.head_corners = t.affine[:3, :3] @ corners + t.affine[:3, 3:]  # MNI mm
        cx, cy, cz = self.world
        central = (np.abs(cx) < 30) & (cy > -45) & (cy < 25) & (cz > -5) & (cz < 30)
        ventricles = central & (t.csf > 0.6)
        self.ventricle_distance = ndimage.distance_transform_edt(~ventricles, sampling=t.resolution)

    def lesion_map(self, subject, rng, session_index=0, spec=CohortSpec()):
        """Soft lesion probability (0..1) in template space; empty for controls (unless the
        cohort is lesion-only)."""
        lesions = np.zeros(self.template.shape, np.float32)
        if spec.rung == "presence" and subject.group_index:
            return self._few_lesions(rng) if session_index == 0 else lesions
        if spec.lesion_only:
            pattern = LOCATION_PATTERNS[subject.group_index % len(LOCATION_PATTERNS)]
        elif subject.group_index == 0 or spec.rung:
            return lesions
        else:
            pattern = PATIENT_PATTERNS[(subject.group_index - 1) % len(PATIENT_PATTERNS)]
        sev = min(1.0, subject.severity + 0.1 * session_index)
        n = spec.lesion_count or int(round(6 + 18 * sev))
        candidates = np.flatnonzero(self.wm_core & self._in_regions(pattern))
        if candidates.size == 0:
            return lesions
        res = self.template.resolution
        for flat in rng.choice(candidates, size=n):
            centre = np.array(np.unravel_index(flat, lesions.shape))
            if spec.lesion_radius_mm:
                radius_mm = rng.uniform(0.6, 1.4) * spec.lesion_radius_mm
            else:
                radius_mm = rng.uniform(3.0, 7.0) * (0.7 + 0.6 * sev)
            _add_blob(lesions, centre, radius_mm / res)
        return np.clip(lesions, 0, 1) * (self.template.wm > 0.3)

    def _few_lesions(self, rng):
        """The presence rung's lesions: 1 to 3 of 4 to 9 mm radius anywhere in deep white
        matter, drawn once per subject (a later session adds none)."""
        lesions = np.zeros(self.template.shape, np.float32)
        candidates = np.flatnonzero(self.wm_core)
        for flat in rng.choice(candidates, size=rng.integers(1, 3, endpoint=True)):
            centre = np.array(np.unravel_index(flat, lesions.shape))
            _add_blob(lesions, centre, rng.uniform(4.0, 9.0) / self.template.resolution)
        return np.clip(lesions, 0, 1) * (self.template.wm > 0.3)

    def distractor_map(self, rng, spec):
        """Soft lesion probability (0..1) of the distractor site, the same for every group: as
        many lesions, as large, as the signal lesions of a patient of middling severity."""
        lesions = np.zeros(self.template.shape, np.float32)
        candidates = np.flatnonzero(self.wm_core & self._in_boxes([DISTRACTOR_REGION]))
        res = self.template.resolution
        for flat in rng.choice(candidates, size=rng.integers(*DISTRACTOR_COUNT, endpoint=True)):
            centre = np.array(np.unravel_index(flat, lesions.shape))
            mean = spec.lesion_radius_mm or 5.0
            _add_blob(lesions, centre, rng.uniform(0.6, 1.4) * mean / res)
        return np.clip(lesions, 0, 1) * (self.template.wm > 0.3)

    def _in_regions(self, names):
        return self._in_boxes([REGIONS[name] for name in names])

    def _in_boxes(self, boxes):
        x, y, z = self.world
        inside = np.zeros(self.template.shape, bool)
        for (x0, x1), (y0, y1), (z0, z1) in boxes:
            inside |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1) & (z >= z0) & (z <= z1)
        return inside

    def tissues(self, severity, atrophy=0.0):
        """GM/WM/CSF probabilities with ventricles enlarged by up to 5 mm with severity, and the
        share ``atrophy`` of the medial temporal grey matter turned into CSF."""
        t = self.template
        gm, wm, csf = t.gm.copy(), t.wm.copy(), t.csf.copy()
        if severity > 0:
            grown = self.grown_ventricles(severity)
            gm[grown], wm[grown], csf[grown] = 0, 0, 1
        if atrophy > 0:
            region = self.medial_temporal
            csf[region] += atrophy * gm[region]
            gm[region] *= 1 - atrophy
        return gm, wm, csf

    def grown_ventricles(self, severity):
        """The voxels that ventricles enlarged by 5 mm x severity take."""
        dist = self.ventricle_distance
        return (dist > 0) & (dist <= 5.0 * severity) & self.template.brain_mask

    @property
    def medial_temporal(self):
        """Brain voxels of both medial temporal lobes."""
        return self._in_boxes(MEDIAL_TEMPORAL) & self.template.brain_mask

    def contrast(self, name, tissues, lesions):
        gm, wm, csf = tissues
        k = INTENSITY[name]
        img = k["gm"] * gm + k["wm"] * wm + k["csf"] * csf
        img = (1 - lesions) * img + lesions * k["lesion"]
        img[self.scalp] = k["scalp"]
        img[self.skull] = 0.04
        return img.astype(np.float32)


def _voxel_world_coords(shape, affine):
    ijk = np.indices(shape, dtype=np.float32)
    return np.einsum("ij,j...->i...", affine[:3, :3].astype(np.float32), ijk) + affine[
        :3, 3, None, None, None
    ].astype(np.float32)


def _add_blob(volume, centre, radius):
    """Add a soft-edged ellipsoid (radius in voxels, random axis ratio) to ``volume`` in place."""
    r = int(np.ceil(radius * 1.6)) + 1
    lo = np.maximum(centre - r, 0)
    hi = np.minimum(centre + r + 1, volume.shape)
    grid = np.indices(hi - lo, dtype=np.float32) + (lo - centre)[:, None, None, None]
    scale = np.array([1.0, 1.0, 1.6])[:, None, None, None]  # elongated like periventricular lesions
    d = np.sqrt(((grid / scale) ** 2).sum(0)) / max(radius, 0.5)
    blob = np.clip(1.5 - d, 0, 1)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    volume[sl] = np.maximum(volume[sl], blob)


# ---------------------------------------------------------------- native space
def _rotation(angles):
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_head_pose(rng):
    """MNI mm -> subject scanner mm: head size, small shear, rotation and translation."""
    pose = np.eye(4)
    scale = np.diag(rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3))
    pose[:3, :3] = _rotation(np.deg2rad(rng.uniform(-12, 12, 3))) @ scale
    pose[:3, 3] = rng.uniform(-10, 10, 3)
    return pose


def small_motion(rng):
    """Rigid head motion between two acquisitions of one session."""
    motion = np.eye(4)
    motion[:3, :3] = _rotation(np.deg2rad(rng.uniform(-4, 4, 3)))
    motion[:3, 3] = rng.uniform(-4, 4, 3)
    return motion


def native_grid(anatomy, pose, voxel_size, rng):
    """A voxel grid around the posed head, in a random axis orientation (not always RAS)."""
    world = pose[:3, :3] @ anatomy.head_corners + pose[:3, 3:]
    lo = world.min(1) - rng.uniform(4, 15, 3)
    hi = world.max(1) + rng.uniform(4, 15, 3)
    shape = np.ceil((hi - lo) / voxel_size).astype(int)
    flips = rng.random(3) < 0.3
    affine = np.eye(4)
    affine[:3, :3] = np.diag(np.where(flips, -voxel_size, voxel_size))
    affine[:3, 3] = np.where(flips, lo + (shape - 1) * voxel_size, lo)
    return tuple(int(s) for s in shape), affine


def _native_to_mni(shape, grid_affine, pose):
    """(3, *shape) MNI millimetres of every voxel of a native grid."""
    return _voxel_world_coords(shape, np.linalg.inv(pose) @ grid_affine)


def sample_into(volume, source_affine, grid_shape, grid_affine, pose, order=1):
    """Values of a template-space volume on a native grid (native mm = pose @ MNI mm)."""
    matrix = np.linalg.inv(source_affine) @ np.linalg.inv(pose) @ grid_affine
    return ndimage.affine_transform(
        volume,
        matrix[:3, :3],
        matrix[:3, 3],
        output_shape=grid_shape,
        order=order,
        mode="constant",
        cval=0.0,
    )


def bias_field(shape, rng, strength=0.25):
    """A smooth multiplicative field (exp of a random low-order polynomial), about ±strength."""
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * y, y * z, x * z, x * x, y * y, z * z]
    log_field = sum(c * t for c, t in zip(rng.normal(0, 1, len(terms)), terms))
    log_field = log_field / (np.abs(log_field).max() + 1e-6) * np.log1p(strength)
    return np.exp(log_field).astype(np.float32)


def rician(image, rng, sigma):
    noise_re = rng.normal(0, sigma, image.shape).astype(np.float32)
    noise_im = rng.normal(0, sigma, image.shape).astype(np.float32)
    return np.sqrt((image + noise_re) ** 2 + noise_im**2)


def to_scanner_image(data, affine, peak=1000):
    scaled = np.clip(np.round(data / max(float(data.max()), 1e-6) * peak), 0, 32767)
    img = nib.Nifti1Image(scaled.astype(np.int16), affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


# ---------------------------------------------------------------- writing the dataset
def synthesise_subject(out_dir, spec, subject):
    """Write every session of one subject and its ground-truth masks."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng([spec.seed, int(subject.label)])
    anatomy = _anatomy(1.0 if spec.scanner_like else spec.resolution)
    src = anatomy.template
    target = load_template(spec.resolution)
    pose = random_head_pose(rng)
    # Its own stream, so that a cohort without distractors is drawn as it always was.
    distractor_rng = np.random.default_rng([spec.seed, int(subject.label), 1])
    lesions = distractors = None
    sessions = [f"{s + 1:02d}" for s in range(spec.sessions)] if spec.sessions > 1 else [None]
    for si, ses in enumerate(sessions):
        new = anatomy.lesion_map(subject, rng, si, spec)
        lesions = new if lesions is None else np.maximum(lesions, new)  # lesions accumulate
        if spec.distractor and distractors is None:  # planted once, the same in every session
            distractors = anatomy.distractor_map(distractor_rng, spec)
        visible = lesions if distractors is None else np.maximum(lesions, distractors)
        # ventricles: not in lesion-only or distractor cohorts, nor on rungs other than theirs
        grows = subject.group_index and not (spec.lesion_only or spec.distractor)
        grows = grows and spec.rung in (None, "ventricles")
        severity = min(1.0, subject.severity + 0.1 * si)
        # atrophy: 20 % of the medial temporal grey matter at severity 0.3, 40 % at 0.65
        atrophy = 0.0
        if spec.rung == "atrophy" and subject.group_index:
            atrophy = float(np.clip(0.2 + 0.2 * (severity - 0.3) / 0.35, 0.2, 0.4))
        tissues = anatomy.tissues(severity if grows else 0, atrophy)
        gt = out_dir / "derivatives" / "groundtruth"
        voxel_t1 = spec.resolution * rng.uniform(0.9, 1.1, 3)
        acquisitions, grids = {}, {}
        for contrast in spec.contrasts:
            c_pose = pose if contrast == "T1w" else small_motion(rng) @ pose
            if spec.scanner_like:
                c_shape, c_grid, acquisitions[contrast] = scanner.acquisition(contrast, c_pose, rng)
            elif contrast == "T1w":
                c_shape, c_grid = native_grid(anatomy, pose, voxel_t1, rng)
            else:
                stretch = np.array([1.0, 1.0, rng.uniform(1.0, 1.3)])
                c_shape, c_grid = native_grid(anatomy, c_pose, voxel_t1 * stretch, rng)
            grids[contrast] = (c_shape, c_grid, c_pose)
            clean = sample_into(
                anatomy.contrast(contrast, tissues, visible), src.affine, c_shape, c_grid, c_pose
            )
            if spec.scanner_like:
                mni = _native_to_mni(c_shape, c_grid, c_pose)
                clean = scanner.add_body(clean, contrast, mni, clean > 0)
            noisy = rician(clean * bias_field(c_shape, rng), rng, sigma=rng.uniform(0.015, 0.03))
            if spec.scanner_like:
                header = scanner.HEADERS[rng.integers(len(scanner.HEADERS))]
                acquisitions[contrast] += f", header {header}"
                image = scanner.scanner_file(noisy, c_grid, header, rng)
            else:
                image = to_scanner_image(noisy, c_grid)
            save_nifti(image, bids_path(out_dir, subject.label, ses, contrast, ".nii.gz"))
        # The truth a registration is measured against: template mm -> T1w scanner mm.
        extra = {"TemplateToScanner": pose.tolist()}
        extra.update({"Acquisitions": acquisitions} if acquisitions else {})
        truth = {"lesion": lesions}
        if distractors is not None:  # a voxel of both kinds counts as signal
            truth["distractor"] = distractors * (lesions <= 0.5)
        if spec.rung == "atrophy":  # the grey matter that lost a share: empty for controls
            truth = {"atrophy": (anatomy.medial_temporal & (src.gm > 0.3)) * float(atrophy > 0)}
        elif spec.rung == "ventricles":
            truth = {"ventricles": anatomy.grown_ventricles(severity if grows else 0) * 1.0}
        for name, planted in truth.items():
            _write_truth(out_dir, gt, subject.label, ses, name, planted, src, grids, "T1w", extra)
            if "FLAIR" in grids:  # lesions are often drawn on the FLAIR: the truth on its grid too
                _write_truth(out_dir, gt, subject.label, ses, name, planted, src, grids, "FLAIR")
            mni_mask = (
                sample_into(planted, src.affine, target.shape, target.affine, np.eye(4)) > 0.5
            )
            template_path = label_mask_path(
                gt, subject.label, ses, name, spec.resolution, DEFAULT_SPACE
            )
            save_nifti(_mask_image(mni_mask, target.affine, code=4), template_path)
            write_json(
                sidecar_path(template_path),
                {
                    "Type": TRUTH_TYPE.get(name, "Enlargement"),
                    "SpatialReference": DEFAULT_SPACE,
                    "Resolution": f"{spec.resolution:g} mm isotropic",
                    "Description": f"{TRUTH[name]} in template space (ground truth).",
                },
            )
    return subject.label


TRUTH = {
    "lesion": "Planted white-matter lesions",
    "distractor": "Planted distractor lesions, in every subject and class",
    "atrophy": "Medial temporal grey matter that lost a share to atrophy",
    "ventricles": "Tissue taken by the enlarged ventricles",
}
TRUTH_TYPE = {"lesion": "Lesion", "distractor": "Lesion", "atrophy": "Atrophy"}


def _write_truth(out_dir, gt, subject, session, name, lesions, src, grids, contrast, extra=None):
    """The planted lesions of kind ``name`` (``TRUTH``) on one raw image's grid (T1w: no space
    entity; else space-<contrast>), with a sidecar that names the image."""
    shape, grid, pose = grids[contrast]
    path = label_mask_path(
        gt, subject, session, name, space=None if contrast == "T1w" else contrast
    )
    mask = sample_into(lesions, src.affine, shape, grid, pose) > 0.5
    save_nifti(_mask_image(mask, grid, code=1), path)
    raw = bids_path(out_dir, subject, session, contrast, ".nii.gz")
    sidecar = {
        "Type": TRUTH_TYPE.get(name, "Enlargement"),
        "Sources": [f"bids:raw:{raw.relative_to(out_dir).as_posix()}"],
        "Description": f"{TRUTH[name]} on the {contrast}'s grid.",
    }
    write_json(sidecar_path(path), dict(sidecar, **(extra or {})))


_ANATOMY = {}


def _anatomy(resolution):
    if resolution not in _ANATOMY:
        _ANATOMY[resolution] = Anatomy(resolution)
    return _ANATOMY[resolution]


def _mask_image(mask, affine, code):
    img = nib.Nifti1Image(mask.astype(np.uint8), affine)
    img.header.set_qform(affine, code=code)
    img.header.set_sform(affine, code=code)
    return img


def write_dataset_files(out_dir, spec, subjects):
    """dataset_description, README, participants, sessions and sidecars (inherited from the
    root)."""
    out_dir = Path(out_dir)
    write_json(
        out_dir / "dataset_description.json",
        {
            "Name": "bidsxai synthetic cohort",
            "BIDSVersion": "1.10.0",
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["bidsxai-synth"],
            "GeneratedBy": [{"Name": "bidsxai-synth", "Version": __version__}],
        },
    )
    write_text(
        out_dir / "README",
        (
            "Synthetic cohort made by bidsxai-synth from nilearn's MNI152 template.\n"
            f"Groups: {', '.join(spec.groups)} (the first are controls). Seed {spec.seed}, "
            f"{spec.resolution:g} mm.\n"
            "Lesion masks (ground truth) are in derivatives/groundtruth.\n"
        ),
    )
    write_text(
        out_dir / "CHANGES", f"1.0.0 synthetic\n  - generated by bidsxai-synth {__version__}\n"
    )
    rows = ["participant_id\tgroup\tage\tsex\tedss\tseverity"]
    for s in subjects:
        rows.append(f"sub-{s.label}\t{s.group}\t{s.age:g}\t{s.sex}\t{edss_of(s)}\t{s.severity:.3f}")
    write_text(out_dir / "participants.tsv", "\n".join(rows) + "\n")
    write_json(
        out_dir / "participants.json",
        {
            "group": {
                "Description": "Diagnostic group; the first level are healthy controls",
                "Levels": {g: g for g in spec.groups},
            },
            "age": {"Description": "Age at the first session", "Units": "year"},
            "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
            "edss": {
                "Description": "EDSS-like disability score (0-10, half steps); n/a for controls"
            },
            "severity": {
                "Description": "Synthetic disease severity (0-1) that scales lesion load and "
                "ventricle size"
            },
        },
    )
    if spec.sessions > 1:
        for s in subjects:
            rows = ["session_id\tage\tedss"] + [
                f"ses-{k + 1:02d}\t{s.age + k:g}\t{edss_of(s, k)}" for k in range(spec.sessions)
            ]
            write_text(sessions_tsv_path(out_dir, s.label), "\n".join(rows) + "\n")
    for contrast in spec.contrasts:
        write_json(
            out_dir / f"{contrast}.json",
            {
                "MagneticFieldStrength": 3,
                "Manufacturer": "bidsxai-synth",
                "ManufacturersModelName": "synthetic",
                **ACQUISITION[contrast],
            },
        )
    gt = out_dir / "derivatives" / "groundtruth"
    write_json(
        gt / "dataset_description.json",
        {
            "Name": "Planted lesions of the bidsxai synthetic cohort",
            "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "bidsxai-synth", "Version": __version__}],
            "DatasetLinks": {"raw": "../../"},
        },
    )


def synthesise(out_dir, spec, nprocs=1):
    """Write a whole cohort; returns the planned subjects."""
    subjects = plan_subjects(spec)
    write_dataset_files(out_dir, spec, subjects)
    if nprocs > 1:
        with ProcessPoolExecutor(nprocs) as pool:
            list(
                pool.map(
                    synthesise_subject, [out_dir] * len(subjects), [spec] * len(subjects), subjects
                )
            )
    else:
        for s in subjects:
            synthesise_subject(out_dir, spec, s)
    return subjects


def build_parser():
    p = argparse.ArgumentParser(prog="bidsxai-synth", description=__doc__.split("\n")[0])
    p.add_argument("out_dir", type=Path, help="folder to create the BIDS dataset in")
    p.add_argument("--n-subjects", type=int, default=24)
    p.add_argument(
        "--groups",
        default="HC,RRMS,SPMS",
        help="comma-separated group names; the first is the control group (default %(default)s)",
    )
    p.add_argument(
        "--contrasts",
        default=",".join(CONTRASTS),
        help="comma-separated subset of T1w,T2w,FLAIR (default %(default)s)",
    )
    p.add_argument("--resolution", type=float, default=2.0, help="voxel size in mm (default 2)")
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nprocs", type=int, default=1)
    p.add_argument(
        "--lesion-only",
        action="store_true",
        help="groups differ only by where their lesions sit (every group has lesions, "
        "the same load and ages; no ventricle growth)",
    )
    p.add_argument(
        "--lesion-count", type=int, help="lesions per subject (default: 6 to 24, with severity)"
    )
    p.add_argument(
        "--scanner-like",
        action="store_true",
        help="scans as scanners write them: 1 mm sagittal T1w (256 x 256 x 176), FLAIR at "
        "0.9 x 0.9 x 1.2 mm or 3 mm axial slices, oblique grids, neck and shoulders, int16 with "
        "scaling, qform/sform variants (--resolution then sets only the ground truth's grid)",
    )
    p.add_argument(
        "--distractor",
        action="store_true",
        help="a cohort the input image cannot pass: every subject also has 3 to 6 lesions at a "
        "distractor site in deep white matter (label-distractor in the ground truth), and only "
        "the patient groups have lesions at their signal sites (label-lesion); no ventricle growth",
    )
    p.add_argument(
        "--rung",
        choices=("presence", "site", "distractor", "atrophy", "ventricles"),
        help="a rung of the difficulty ladder, two groups (--groups HC,PAT by default; "
        "occipital,frontal for site) that differ only by: "
        + "; ".join(f"{name}: {what}" for name, what in RUNGS.items())
        + "; site: as --lesion-only; distractor: as --distractor",
    )
    p.add_argument(
        "--lesion-radius",
        type=float,
        metavar="MM",
        help="mean lesion radius in mm (default: 3 to 7, with severity)",
    )
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    contrasts = tuple(c.strip() for c in args.contrasts.split(",") if c.strip())
    if args.rung and args.groups == build_parser().get_default("groups"):
        args.groups = "occipital,frontal" if args.rung == "site" else "HC,PAT"
    if args.rung and (args.lesion_only or args.distractor):
        print(
            "bidsxai-synth: --rung makes its own cohort; leave out --lesion-only and --distractor",
            file=sys.stderr,
        )
        return 64
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
    problems = [c for c in contrasts if c not in CONTRASTS]
    if problems or "T1w" not in contrasts:
        print(
            f"bidsxai-synth: contrasts must include T1w and come from {','.join(CONTRASTS)}",
            file=sys.stderr,
        )
        return 64
    if (
        len(groups) < 2
        or args.n_subjects < len(groups)
        or args.sessions < 1
        or args.resolution <= 0
    ):
        print(
            "bidsxai-synth: need >= 2 groups, >= 1 subject per group, >= 1 session and a positive "
            "resolution",
            file=sys.stderr,
        )
        return 64
    if args.out_dir.exists() and any(args.out_dir.iterdir()):
        print(f"bidsxai-synth: {args.out_dir} exists and is not empty", file=sys.stderr)
        return 73
    spec = CohortSpec(
        args.n_subjects,
        groups,
        contrasts,
        args.resolution,
        args.sessions,
        args.seed,
        args.lesion_only or args.rung == "site",
        args.lesion_count,
        args.lesion_radius,
        args.scanner_like,
        args.distractor or args.rung == "distractor",
        args.rung if args.rung in RUNGS else None,
    )
    synthesise(args.out_dir, spec, args.nprocs)
    print(f"bidsxai-synth: wrote {args.n_subjects} subjects to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
