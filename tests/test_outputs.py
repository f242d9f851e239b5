"""Every output name comes from bidsxai.outputs: names round-trip through their parser, keep their
published layout, and no other module formats an entity string."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bidsxai import outputs
from bidsxai.template_files import DEFAULT_SPACE as SPACE

PACKAGE = Path(outputs.__file__).parent


@pytest.mark.parametrize("session", [None, "02"])
def test_heatmap_names_round_trip_through_their_parser(tmp_path, session):
    path = outputs.heatmap_path(tmp_path, "07", session, "gradcampp", "EDSS>=5", 1.5, SPACE)
    expected_folder = tmp_path / "sub-07" / (f"ses-{session}" if session else "") / "anat"
    assert path.parent == expected_folder
    assert outputs.parse_heatmap(path) == {
        "subject": "07",
        "session": session or "",
        "space": SPACE,
        "res": "1p5",
        "method": "gradcampp",
        "target": "EDSS5",
    }
    layers = outputs.heatmap_path(tmp_path, "07", session, "gradcam", "HC", 2, SPACE, desc="layers")
    assert "_desc-layers_method-gradcam_target-HC_" in layers.name
    assert outputs.parse_heatmap(layers) is None  # the 4D layer maps are not group-level inputs


def test_names_keep_their_published_layout(tmp_path):
    assert (
        outputs.preproc_path(tmp_path, "01", None, "T1w", 2, SPACE).name
        == f"sub-01_space-{SPACE}_res-2_desc-preproc_T1w.nii.gz"
    )
    assert (
        outputs.brain_mask_path(tmp_path, "01", "a", 2, SPACE).name
        == f"sub-01_ses-a_space-{SPACE}_res-2_desc-brain_mask.nii.gz"
    )
    assert (
        outputs.xfm_path(tmp_path, "01", None, "T2w", "T1w").name
        == "sub-01_from-T2w_to-T1w_mode-image_xfm.mat"
    )
    assert (
        outputs.label_mask_path(tmp_path, "01", None, "lesion").name
        == "sub-01_label-lesion_mask.nii.gz"
    )
    assert (
        outputs.label_mask_path(tmp_path, "01", None, "lesion", 2, SPACE).name
        == f"sub-01_space-{SPACE}_res-2_label-lesion_mask.nii.gz"
    )
    two = outputs.group_statmap_path(
        tmp_path, "gradcam", "SPMS", ("RR MS", "SPMS"), "logp", SPACE, "fwe"
    )
    assert (
        two.name == f"space-{SPACE}_method-gradcam_target-SPMS_desc-RRMSvsSPMS_stat-logp_corr-fwe"
        "_statmap.nii.gz"
    )
    one = outputs.group_statmap_path(tmp_path, "lrp", "HC", ("HC",), "coverage", SPACE)
    assert (
        one.name
        == f"space-{SPACE}_method-lrp_target-HC_desc-HCcoverage_stat-coverage_statmap.nii.gz"
    )
    assert outputs.sidecar_path(two).name == two.name.replace(".nii.gz", ".json")


def test_unknown_entities_are_refused():
    with pytest.raises(ValueError, match="unknown entities"):
        outputs.entity_name({"sub": "01", "acq": "x"}, "T1w", ".nii.gz")


ENTITY = "(?:sub|ses|space|res|desc|method|target|label|stat)-"
# A file name joined from entities: an f-string with an entity after an underscore or an entity
# followed by "_" (another entity or a suffix), or a literal prefix such as "_ses-" that code
# would join to a name. A subject named in a message or a table ("sub-01: ...") is not a name.
FORMATS_AN_ENTITY = re.compile(
    rf"""f["'][^"']*_{ENTITY}\{{|f["'](?:[^"']*_)?{ENTITY}\{{[^}}]*\}}_|["']_{ENTITY}["']"""
)


@pytest.mark.parametrize(
    "line, joins",
    [
        ("""name = f"sub-{subject}_T1w.nii.gz" """, True),
        ("""name = f'x_ses-{session}' """, True),
        ("""name += '_ses-' + session""", True),
        ("""name = f"sub-{s}_ses-{t}" """, True),
        ("""raise Error(f"sub-{subject}: no T1w") """, False),
        ("""label = strip_prefix(p, "sub-")""", False),
    ],
)
def test_the_entity_guard_finds_each_way_of_joining_a_name(line, joins):
    assert bool(FORMATS_AN_ENTITY.search(line)) == joins


def test_no_other_module_formats_an_entity_string():
    offenders = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in PACKAGE.rglob("*.py")
        if p.name != "outputs.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if FORMATS_AN_ENTITY.search(line)
    ]
    assert offenders == []


def _loaded_after(imports, prefixes):
    code = (
        f"import sys; import {imports}; "
        f"print(sorted(m for m in sys.modules if m == 'ants' or m.startswith({prefixes!r})))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_training_does_not_load_ants_and_reports_load_no_workflow():
    assert _loaded_after("bidsxai.workflows.train", ("bidsxai.preprocess",)) == "[]"
    reports = "bidsxai.reports.subject, bidsxai.reports.group, bidsxai.reports.training"
    assert _loaded_after(reports, ("bidsxai.preprocess", "bidsxai.workflows")) == "[]"
