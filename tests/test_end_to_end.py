"""participant -> train -> participant --model -> group on the tiny cohort: real outcomes."""

import json
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import RES, run_cli

from bidsxai.models.bundle import ensemble_sha256
from bidsxai.template import load_template
from bidsxai.template_files import DEFAULT_SPACE as SPACE
from bidsxai.validator import validator_errors


def test_every_level_succeeds_without_touching_the_input(pipeline):
    assert pipeline["codes"] == [0, 0, 0, 0]
    assert pipeline["input_unchanged"]


def test_outputs_are_valid_bids_derivatives(pipeline):
    out = pipeline["out"]
    assert validator_errors(out) == []
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "bidsxai"


def test_preprocessed_images_and_heatmaps_are_on_the_template_grid(pipeline):
    out = pipeline["out"]
    template = load_template(RES)
    anat = out / "sub-02" / "anat"
    names = {p.name for p in anat.iterdir()}
    for contrast in ("T1w", "T2w", "FLAIR"):
        assert f"sub-02_space-{SPACE}_res-6_desc-preproc_{contrast}.nii.gz" in names
    assert f"sub-02_from-T1w_to-{SPACE}_mode-image_xfm.mat" in names
    assert "sub-02_from-FLAIR_to-T1w_mode-image_xfm.mat" in names
    for target in ("HC", "RRMS", "SPMS"):
        path = anat / f"sub-02_space-{SPACE}_res-6_method-gradcam_target-{target}_heatmap.nii.gz"
        img = nib.load(path)
        assert np.allclose(img.affine, template.affine) and img.shape == template.shape
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["Method"] == "gradcam" and sidecar["TargetClass"] == target
        assert set(sidecar["PredictedProbabilities"]) == {"HC", "RRMS", "SPMS"}
        assert abs(sum(sidecar["PredictedProbabilities"].values()) - 1) < 1e-5
        assert len(sidecar["ModelSha256"]) == 64 and sidecar["Layer"].startswith("blocks.")
        assert sidecar["ModelMember"].startswith("repeat-1_fold-")
        assert sidecar["Sources"][0].startswith("bids:bidsxai:sub-02/anat/")
    measures = pd.read_csv(anat / "sub-02_measures.tsv", sep="\t")
    assert list(measures["target"]) == ["HC", "RRMS", "SPMS"]
    assert measures["p95"].between(0, 1).all()


def test_model_bundle_records_folds_metrics_and_hashes(pipeline):
    meta = json.loads((pipeline["out"] / "models" / "cnn3d_group" / "model.json").read_text())
    assert meta["classes"] == ["HC", "RRMS", "SPMS"]
    assert set(meta["assignments"][0].values()) == {1, 2, "test"}
    assert set(meta["members"]) == {"repeat-1_fold-1", "repeat-1_fold-2"}
    # The default final model: the fold models' ensemble, named by a digest of its members'.
    assert meta["final_member"] == "ensemble" and "weights" not in meta
    assert meta["ensemble"] == ["repeat-1_fold-1", "repeat-1_fold-2"]
    assert meta["sha256"] == ensemble_sha256(
        meta["members"][name]["sha256"] for name in meta["ensemble"]
    )
    cv, test = meta["metrics"]["cross_validation"], meta["metrics"]["test"]
    assert cv["n"] == 6 and test["n"] == 3 and len(cv["accuracy_ci"]) == 2 and "loss" in cv
    assert set(meta["metrics"]["members"]["repeat-1_fold-1"]) == {"validation", "test"}
    assert (
        meta["input"]["contrasts"] == ["T1w", "T2w", "FLAIR"] and meta["input"]["resolution"] == RES
    )
    assert (pipeline["out"] / "models" / "cnn3d_group" / "report.html").is_file()
    from bidsxai.config import stage_fields

    given = meta["training"]["settings"]  # the training stage as the run gave it
    assert list(given) == [f.name for f in stage_fields("training")]
    assert given["epochs"] == meta["training"]["epochs"] == 3 and given["cv_folds"] == 2


def test_reports_are_self_contained(pipeline):
    out = pipeline["out"]
    reports = sorted(out.glob("sub-*.html")) + [
        out / "group.html",
        out / "models" / "cnn3d_group" / "report.html",
    ]
    assert len(reports) == 9 + 2
    for path in reports:
        html = path.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), path
        assert "data:image/png;base64," in html
    subject = (out / "sub-03.html").read_text()
    assert "Registration to" in subject and "Predicted" in subject and "gradcam" in subject
    assert "No errors to report" in subject
    assert '(<a href="#ref-tustison2010">Tustison et al. 2010</a>)' in subject
    assert "N4" in subject  # the methods paragraph
    assert (out / "logs" / "CITATION.md").is_file() and (out / "logs" / "CITATION.bib").is_file()
    assert list((out / "logs").glob("participant-*.toml"))


def test_group_level_writes_stat_maps_and_tables(pipeline):
    group = pipeline["out"] / "group"
    tests = pd.read_csv(group / "measure_tests.tsv", sep="\t")
    assert (tests["measure"] == "p95").sum() == 3 * 3  # 3 classes x 3 pairs of groups
    voxelwise = pd.read_csv(group / "voxelwise.tsv", sep="\t")
    assert len(voxelwise) == 9
    assert (voxelwise["n_fwe"] <= voxelwise["n_uncorrected"]).all()
    t_map = (
        group / f"space-{SPACE}_method-gradcam_target-SPMS_desc-RRMSvsSPMS_stat-t_statmap.nii.gz"
    )
    assert np.allclose(nib.load(t_map).affine, load_template(RES).affine)
    for stat in ("stat-p", "stat-logp_corr-fdr", "stat-logp_corr-bonferroni", "stat-logp_corr-fwe"):
        assert (group / t_map.name.replace("stat-t", stat)).is_file()


def test_resume_skips_finished_sessions(pipeline, cohort):
    out = pipeline["out"]
    image = out / "sub-01" / "anat" / f"sub-01_space-{SPACE}_res-6_desc-preproc_T1w.nii.gz"
    before = image.stat().st_mtime_ns
    assert (
        run_cli(
            cohort,
            out,
            "participant",
            "--participant-label",
            "sub-01",
            "--resolution",
            RES,
            "--skip-bids-validation",
        )
        == 0
    )
    assert image.stat().st_mtime_ns == before


def test_every_method_from_the_cli_for_the_predicted_class(pipeline, cohort, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    for old in out.glob("sub-05/anat/*_heatmap.*"):
        old.unlink()
    from bidsxai.explain.methods import METHODS

    methods = ",".join(METHODS)  # a new method is exercised here without a word of this test
    assert (
        run_cli(
            cohort,
            out,
            "participant",
            "--participant-label",
            "05",
            "--model",
            "cnn3d_group",
            "--methods",
            methods,
            "--targets",
            "predicted",
            "--resolution",
            RES,
            "--skip-bids-validation",
        )
        == 64
    )  # cnn3d has no GAP head: refused up front
    assert (
        run_cli(
            cohort,
            out,
            "participant",
            "--participant-label",
            "05",
            "--model",
            "cnn3d_group",
            "--methods",
            ",".join(m for m in METHODS if m != "cam"),
            "--targets",
            "predicted",
            "--resolution",
            RES,
            "--skip-bids-validation",
        )
        == 0
    )
    anat = out / "sub-05" / "anat"
    heatmaps = sorted(p.name for p in anat.glob("*_heatmap.nii.gz") if "desc-layers" not in p.name)
    assert len(heatmaps) == len(METHODS) - 1  # one per method, the predicted class only
    layers = next(anat.glob("*_desc-layers_method-gradcam_*_heatmap.nii.gz"))
    names = json.loads(layers.with_name(layers.name.replace(".nii.gz", ".json")).read_text())[
        "Layers"
    ]
    assert nib.load(layers).shape[3] == len(names) >= 3 and all(
        n.startswith("blocks.") for n in names
    )
    ig = json.loads(next(anat.glob("*_method-ig_*_heatmap.json")).read_text())
    assert ig["Parameters"] == {"steps": 64, "baseline": "zero", "quadrature": "gausslegendre"}
    assert ig["CompletenessError"] < 0.05 * max(1.0, abs(ig["Logit"]))
    assert "Layer" not in ig
    lrp = json.loads(next(anat.glob("*_method-lrp_*_heatmap.json")).read_text())
    assert lrp["Parameters"]["composite"] == "zbeta-alphabeta-epsilon" and lrp["Parameters"][
        "bounds"
    ] == [0.0, 1.0]
    measures = pd.read_csv(anat / "sub-05_measures.tsv", sep="\t")
    assert sorted(measures["method"]) == sorted(m for m in METHODS if m != "cam")
    for method in METHODS.values():  # each sidecar records the parameters its record names
        if method.name != "cam":
            found = json.loads(
                next(anat.glob(f"*_res-6_method-{method.name}_*_heatmap.json")).read_text()
            )
            assert set(found["Parameters"]) == set(method.record(method.defaults))
    perturbation = json.loads(next(anat.glob("*_method-perturbation_*_heatmap.json")).read_text())
    assert 0 <= perturbation["ProbabilityAfterMask"] <= 1
    mirror = measures.set_index("method")["mirror_r"]
    assert (
        mirror[["gradcam", "gradcampp"]].between(-1, 1).all()
        and mirror[["saliency", "ig"]].isna().all()
    )
    report = (out / "sub-05.html").read_text()
    assert "mirroring r" in report and "integrated gradients [@sundararajan2017]" in report
    assert (
        run_cli(
            cohort,
            out,
            "participant",
            "--participant-label",
            "05",
            "--model",
            "cnn3d_group",
            "--targets",
            "MS",
            "--resolution",
            RES,
            "--skip-bids-validation",
        )
        == 64
    )


def test_gamer_mril_trains_and_is_explained_from_its_attention(pipeline, cohort, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    common = ["--resolution", RES, "--skip-bids-validation"]
    assert (
        run_cli(
            cohort,
            out,
            "train",
            "--arch",
            "gamer_mril",
            "--target",
            "edss",
            "--target-threshold",
            5,
            "--loss-weight",
            "closeness",
            "--epochs",
            1,
            "--cv-folds",
            2,
            *common,
        )
        == 0
    )
    meta = json.loads((out / "models" / "gamer_mril_edss" / "model.json").read_text())
    assert meta["classes"] == ["edss-lt5", "edss-ge5"] and meta["covariates"] == ["age"]
    assert "01" not in meta["assignments"][0]  # a control: no EDSS, not in the cohort
    attention = meta["attention"]
    assert len(attention["rows"]) == 6 and all(
        abs(sum(r["weights"].values()) - 1) < 1e-5 for r in attention["rows"]
    )
    assert "Attention weights" in (out / "models" / "gamer_mril_edss" / "report.html").read_text()
    assert (
        run_cli(
            cohort,
            out,
            "participant",
            "--participant-label",
            "02",
            "--model",
            "gamer_mril_edss",
            "--methods",
            "lrp,gradcam",
            "--targets",
            "all",
            "--lrp-start",
            "attention",
            "--lrp-map",
            "combined",
            *common,
        )
        == 0
    )
    sidecars = [
        json.loads(p.read_text())
        for p in (out / "sub-02" / "anat").glob("*_method-lrp_*_heatmap.json")
    ]
    assert (
        len(sidecars) == 2
    )  # the attention start gives one class-independent map, written per class
    sidecar = sidecars[0]
    assert (
        sidecar["Parameters"]["start"] == "attention"
        and sidecar["Parameters"]["channels"] == "combined"
    )
    assert set(sidecar["AttentionWeights"]) == {"T1w", "T2w", "FLAIR"}
    heatmap = next((out / "sub-02" / "anat").glob("*_method-lrp_*_heatmap.nii.gz"))
    assert np.isfinite(np.asarray(nib.load(heatmap).dataobj)).all()


def test_the_models_warning_reaches_model_json_and_every_report(pipeline):
    """The chance warning, the simple baseline's and the optimisation failures', from the
    metrics the bundle records."""
    from bidsxai.workflows.train import model_warning

    folder = pipeline["out"] / "models" / "cnn3d_group"
    meta = json.loads((folder / "model.json").read_text())
    epochs = {name: m["best_epoch"] for name, m in meta["training"]["members"].items()}
    expected = model_warning(meta["metrics"], len(meta["classes"]), epochs)
    assert meta["warning"] == expected
    assert {"baseline", "optimisation_failures"} <= set(meta["metrics"])
    for report in (folder / "report.html", pipeline["out"] / "sub-01.html"):
        text = report.read_text()
        assert expected is None or expected[:25] in text, report.name
        assert "simple baseline" in text or report.name != "report.html"


def test_a_score_in_ordered_bins_is_trained_explained_and_grouped(pipeline, cohort_copy, tmp_path):
    """--target-bins: classes from a numeric column, in order, recorded in the bundle; subjects
    without a value are left out with a count; reports and the group level use the same classes."""
    import shutil

    participants = cohort_copy / "participants.tsv"
    rows = [line.split("\t") for line in participants.read_text().splitlines()]
    column = rows[0].index("age")
    rows[1][column] = "n/a"  # sub-01 has no value: left out of training, named
    participants.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    common = ["--resolution", RES, "--skip-bids-validation"]
    argv = ["--target", "age", "--target-bins", "0-45,45.1-120", "--epochs", 1, "--cv-folds", 2]
    assert run_cli(cohort_copy, out, "train", *argv, "--test-fraction", 0, *common) == 0
    meta = json.loads((out / "models" / "cnn3d_age" / "model.json").read_text())
    assert meta["classes"] == ["age0to45", "age45.1to120"]
    assert meta["target_bins"] == [[0.0, 45.0], [45.1, 120.0]]
    assert [row["session"] for row in meta["excluded"]] == ["sub-01"]
    assert "sub-01" in (out / "models" / "cnn3d_age" / "report.html").read_text()
    argv = ["--model", "cnn3d_age", "--participant-label", "02", *common]
    assert run_cli(cohort_copy, out, "participant", *argv) == 0
    age = float(rows[2][column])
    expected = "age0to45" if age <= 45 else "age45.1to120"
    assert f"known age: <b>{expected}</b>" in (out / "sub-02.html").read_text()
    assert run_cli(cohort_copy, out, "train", "--target", "age", *common) == 64  # needs bins


def test_the_ensemble_explains_the_test_set_with_its_members_mean(pipeline):
    """A test subject's probabilities are the fold models' mean and its Grad-CAM maps the mean of
    theirs for each class, computed here from the members directly."""
    import torch

    from bidsxai.explain import explain_many
    from bidsxai.models.bundle import BundleModels
    from bidsxai.training.crop_box import uncrop
    from bidsxai.training.dataset import load_inputs

    out = pipeline["out"]
    models = BundleModels(out / "models" / "cnn3d_group", "cpu")
    meta, spec = models.meta, models.meta["input"]
    subject = next(s for s, place in meta["assignments"][0].items() if place == "test")
    x = torch.from_numpy(load_inputs(out, subject, None, spec))[None]
    members = [models.get(name) for name in meta["ensemble"]]
    with torch.no_grad():
        mean = torch.stack([torch.softmax(m(x), 1)[0] for m in members]).mean(0).numpy()
    anat = out / f"sub-{subject}" / "anat"
    template = load_template(RES)
    for index, target in enumerate(meta["classes"]):
        path = (
            anat
            / f"sub-{subject}_space-{SPACE}_res-6_method-gradcam_target-{target}_heatmap.nii.gz"
        )
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["ModelMember"] == "ensemble" and sidecar["SplitAssignment"] == "test"
        assert sidecar["ModelSha256"] == meta["sha256"]
        written = [sidecar["PredictedProbabilities"][c] for c in meta["classes"]]
        assert np.allclose(written, mean, atol=1e-5)
        maps = [
            explain_many(m, x, ["gradcam"], layer=meta["explain_layer"], targets=[[index]])[
                "gradcam"
            ][0, 0]
            .detach()
            .numpy()
            for m in members
        ]
        expected = uncrop(np.mean(maps, 0).astype(np.float32), spec["crop"], template.shape)
        heatmap = np.asarray(nib.load(path).dataobj)
        assert np.allclose(heatmap, expected, atol=1e-5 * max(1.0, np.abs(expected).max()))


def test_sessions_explained_together_get_what_they_get_alone(pipeline, cohort, tmp_path, capsys):
    """The pipeline explains its sessions in batches (by default as many as half the memory
    holds); one at a time (``--batch-sessions 1``), every heatmap and probability is the same
    to float rounding. A session whose input cannot be read stays out of its batch and fails
    alone, with its own message."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    common = ["--model", "cnn3d_group", "--resolution", RES, "--skip-bids-validation"]
    assert run_cli(cohort, out, "participant", "--batch-sessions", 1, *common) == 0
    heatmaps = sorted(pipeline["out"].glob("sub-*/anat/*_heatmap.nii.gz"))
    assert len(heatmaps) >= 9 * 2
    for batched in heatmaps:
        alone = out / batched.relative_to(pipeline["out"])
        assert alone.stat().st_mtime_ns != batched.stat().st_mtime_ns  # written again
        a, b = (np.asarray(nib.load(p).dataobj) for p in (alone, batched))
        assert np.allclose(a, b, atol=1e-5 * max(1.0, np.abs(b).max())), batched.name
        sidecars = [
            json.loads(p.with_name(p.name[:-7] + ".json").read_text()) for p in (alone, batched)
        ]
        probabilities = [list(s.get("PredictedProbabilities", {}).values()) for s in sidecars]
        assert np.allclose(*probabilities, atol=1e-6)
        assert sidecars[0].get("Logit") == pytest.approx(sidecars[1].get("Logit"), abs=1e-5)
    for batched in sorted(pipeline["out"].glob("sub-*/anat/*_measures.tsv")):  # mirroring r, p95
        tables = [
            pd.read_csv(p, sep="\t") for p in (out / batched.relative_to(pipeline["out"]), batched)
        ]
        pd.testing.assert_frame_equal(*tables, atol=1e-5)
    # Read only when the session is explained: sub-03 is prepared for the first batch (fold 1's
    # sub-01, -02, -03), fails, and is left out of it.
    damaged = out / "sub-03" / "anat" / f"sub-03_space-{SPACE}_res-6_desc-preproc_FLAIR.nii.gz"
    damaged.write_bytes(b"not an image")
    batch = [out / f"sub-{s}" / "anat" for s in ("01", "02")]
    before = {p: p.stat().st_mtime_ns for folder in batch for p in folder.glob("*_heatmap.nii.gz")}
    capsys.readouterr()
    code = run_cli(cohort, out, "participant", "--batch-sessions", 3, *common)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("bidsxai:")]
    assert code == 66 and [line for line in errors if "sub-03" in line] == [
        f"bidsxai: sub-03: {damaged}: not a readable NIfTI image (ImageFileError: "
        f"File {damaged} is not a gzip file)"
    ], errors
    assert not [line for line in errors if any(f"sub-{s}" in line for s in ("01", "02"))]
    assert before and all(p.stat().st_mtime_ns != mtime for p, mtime in before.items())
    log = max((out / "logs").glob("participant-*.log"), key=lambda p: p.stat().st_mtime)
    together = "event=sessions_explained_together member=repeat-1_fold-1 sessions=sub-01,sub-02"
    assert together in log.read_text()
