"""The evaluation measures against models whose decision rule is known, an independent rank-based
AUROC (scikit-learn) and Quantus where it computes the same definition (2D inputs: Quantus refuses
3D), and the properties each measure promises."""

import numpy as np
import pytest
import quantus
import torch
from networks import tiny_net
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from torch import nn

from bidsxai.evaluate.faithfulness import faithfulness
from bidsxai.evaluate.localisation import localisation
from bidsxai.evaluate.randomisation import randomisation
from bidsxai.evaluate.robustness import robustness
from bidsxai.group.atlas import Atlas

SHAPE = (12, 14, 10)
BOX = np.zeros(SHAPE, bool)
BOX[3:6, 4:8, 2:5] = True


class BoxSum(nn.Module):
    """Class 1's logit is the summed intensity inside BOX, class 0's is fixed: only the box
    matters to the decision."""

    def __init__(self):
        super().__init__()
        self.register_buffer("box", torch.as_tensor(BOX, dtype=torch.float32))

    def forward(self, x):
        evidence = (x[:, 0] * self.box).sum(dim=(1, 2, 3)) / self.box.sum() * 8 - 4
        return torch.stack([torch.zeros_like(evidence), evidence], 1)


def _input(seed=0):
    """Noise in [0, 0.3] with a bright box (0.7 to 1): the evidence for class 1."""
    volume = 0.3 * np.random.default_rng(seed).random((1, 1, *SHAPE)) + 0.7 * BOX
    return torch.as_tensor(volume, dtype=torch.float32)


def test_the_ideal_map_localises_perfectly_and_a_constant_one_is_at_chance():
    brain = np.ones(SHAPE, bool)
    ideal = localisation(BOX.astype(float), BOX, brain=brain, voxel_size=2.0)
    assert ideal["auroc"] == 1.0 and ideal["pointing"] == 1.0 and ideal["mass_inside"] == 1.0
    assert localisation(np.ones(SHAPE), BOX, brain=brain)["auroc"] == 0.5
    noise = np.random.default_rng(1).random((20, *SHAPE))
    assert abs(np.mean(localisation(noise, BOX, brain=brain)["auroc"]) - 0.5) < 0.05


def test_auroc_equals_scikit_learn_with_ties_and_counts_only_the_brain():
    rng = np.random.default_rng(2)
    values = rng.integers(0, 4, SHAPE).astype(float)  # many ties
    brain = np.zeros(SHAPE, bool)
    brain[1:11, 1:13, 1:9] = True
    ours = localisation(values, BOX, brain=brain)["auroc"]
    assert ours == pytest.approx(roc_auc_score(BOX[brain], values[brain]), abs=1e-12)


def test_pointing_game_tolerance_is_in_millimetres():
    brain = np.ones(SHAPE, bool)
    peak = np.zeros(SHAPE)
    peak[8, 4, 2] = 1.0  # 3 voxels past the box's edge at x = 5
    at = {
        tol: localisation(peak, BOX, brain=brain, tolerance_mm=tol, voxel_size=2.0)
        for tol in (5, 6)
    }
    assert (
        at[5]["peak_distance_mm"] == 6.0 and at[5]["pointing"] == 0.0 and at[6]["pointing"] == 1.0
    )


def test_one_distance_transform_per_mask_serves_every_map_scored_against_it():
    from scipy import ndimage

    from bidsxai.evaluate import localisation as module

    rng = np.random.default_rng(3)
    brain = np.ones((12, 14, 10), bool)
    mask = np.zeros_like(brain)
    mask[3:6, 4:8, 2:5] = True
    module._distance.cache_clear()
    first = localisation(rng.random((4, *brain.shape)), mask, brain=brain, voxel_size=(2, 2, 3))
    fresh = ndimage.distance_transform_edt(~mask, sampling=(2, 2, 3))
    kept = module.distance_to(mask, (2, 2, 3))
    assert np.array_equal(kept, fresh) and not kept.flags.writeable
    assert module._distance.cache_info().misses == 1  # four maps and the lookup above: one
    again = localisation(rng.random(brain.shape), mask, brain=brain, voxel_size=(2.0, 2.0, 3.0))
    assert module._distance.cache_info().misses == 1 and np.isfinite(again["pointing"])
    other = mask.copy()
    other[0, 0, 0] = True  # another mask is another transform
    localisation(rng.random(brain.shape), other, brain=brain, voxel_size=(2, 2, 3))
    assert module._distance.cache_info().misses == 2 and len(first["pointing"]) == 4


def test_localisation_equals_quantus_on_2d_maps():
    rng = np.random.default_rng(3)
    a = rng.random((4, 1, 16, 16)).astype(np.float32)
    s = np.zeros_like(a)
    s[:, :, 4:9, 6:12] = 1
    a[1, 0, 5, 7] = 5.0  # one peak inside the mask
    x, y = rng.random(a.shape).astype(np.float32), np.zeros(4, int)
    ours = localisation(a[:, 0], s[:, 0] > 0, brain=np.ones((16, 16), bool), tolerance_mm=0)
    theirs = {
        name: np.asarray(
            getattr(quantus, name)(disable_warnings=True)(
                model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s
            ),
            float,
        )
        for name in ("AUC", "PointingGame", "RelevanceMassAccuracy")
    }
    assert np.allclose(ours["auroc"], theirs["AUC"])
    assert np.array_equal(ours["pointing"], theirs["PointingGame"])
    assert np.allclose(ours["mass_inside"], theirs["RelevanceMassAccuracy"], atol=1e-6)


@pytest.mark.parametrize("baseline", ["blur", "road"])
def test_the_ideal_map_has_the_steepest_deletion_and_inverting_curves(baseline):
    model, x = BoxSum().eval(), _input()
    ideal = faithfulness(model, x, BOX.astype(float), target=1, baseline=baseline)
    noise = faithfulness(
        model, x, np.random.default_rng(4).random(SHAPE), target=1, baseline=baseline
    )
    assert ideal["partial_deletion_auc"] < noise["partial_deletion_auc"]
    assert ideal["partial_insertion_auc"] > noise["partial_insertion_auc"]
    assert ideal["inverting_drop"] > ideal["inverting_drop_random"]
    assert abs(noise["inverting_drop"] - noise["inverting_drop_random"]) < 0.05
    assert len(ideal["deletion"]) == len(ideal["fractions"]) == 20


def test_linear_imputation_equals_quantus_road_in_2d():
    from quantus.functions.perturb_func import noisy_linear_imputation

    from bidsxai.evaluate.imputation import linear_imputation

    rng = np.random.default_rng(0)
    image = rng.random((3, 20, 24))
    removed = rng.random((20, 24)) < 0.4
    removed[5:12, 6:15] = True
    expected = noisy_linear_imputation(image, np.flatnonzero(removed), noise=0.0)
    np.testing.assert_allclose(linear_imputation(image, removed), expected, atol=1e-6)
    noisy = linear_imputation(image, removed, noise=0.01)
    assert 0.005 < np.std(noisy - expected) < 0.015 and np.array_equal(
        noisy[:, ~removed], image[:, ~removed]
    )


def test_linear_imputation_fills_a_hole_in_a_linear_ramp_exactly_in_3d():
    from bidsxai.evaluate.imputation import linear_imputation

    ramp = (np.indices((9, 10, 11)) * np.array([0.5, -1.0, 2.0])[:, None, None, None]).sum(0)
    removed = np.zeros(ramp.shape, bool)
    removed[2:7, 3:8, 1:9] = True
    filled = linear_imputation(ramp[None], removed)[0]
    np.testing.assert_allclose(filled, ramp, atol=1e-6)


def test_faithfulness_batches_every_perturbed_volume():
    class Counting(BoxSum):
        calls = 0

        def forward(self, x):
            Counting.calls += 1
            return super().forward(x)

    faithfulness(Counting().eval(), _input(), BOX.astype(float), target=1, chunk=40)
    assert Counting.calls == 1 + 2  # the input, then 80 perturbed volumes in batches of 40


def _edges(model, x):
    """An edge detector: it reads the input only, never the model."""
    volume = x[0, 0].cpu().numpy()
    return np.sqrt(sum(ndimage.sobel(volume, axis=a) ** 2 for a in range(volume.ndim)))


def test_randomising_the_weights_changes_gradient_maps_but_not_an_edge_detector():
    torch.manual_seed(0)
    model, x = tiny_net(3), torch.randn(1, 2, 10, 12, 8)
    saliency = randomisation(model, x, "saliency")
    assert saliency["layers"][0] == ["7"]  # the output layer first
    assert abs(saliency["abs_spearman"][-1]) < 0.2 and saliency["evaluable"].all()
    edges = randomisation(model, x, _edges)
    assert np.allclose(edges["spearman"], 1.0) and np.allclose(edges["ssim"], 1.0)
    assert np.allclose(edges["abs_spearman"], 1.0) and np.allclose(edges["hog"], 1.0)
    gradcam = randomisation(model, x, "gradcam", layer="3")
    assert len(gradcam["spearman"]) == len(saliency["spearman"])


def test_robustness_of_identical_and_of_unrelated_maps():
    rng = np.random.default_rng(5)
    same = rng.random(SHAPE)
    labels = np.zeros(SHAPE, int)
    labels[:6], labels[6:] = 1, 2
    atlas = Atlas("toy", labels, {1: "left", 2: "right"}, {1: "left", 2: "right"})
    agreeing = robustness({"fold-1": same, "fold-2": same.copy()}, atlas=atlas)
    assert agreeing["spearman_mean"] == pytest.approx(1.0) and agreeing[
        "roi_cosine_mean"
    ] == pytest.approx(1.0)
    unrelated = robustness({f"run-{i}": rng.random(SHAPE) for i in range(3)})
    assert len(unrelated["pairs"]) == 3 and abs(unrelated["spearman_mean"]) < 0.1
    with pytest.raises(ValueError):
        robustness({"only": same})


def test_participant_level_evaluates_every_heatmap_against_the_ground_truth(
    pipeline, cohort, tmp_path, capsys
):
    import json
    import re
    import shutil

    import pandas as pd
    from conftest import RES, run_cli

    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    masks = cohort / "derivatives" / "groundtruth"
    argv = ["--model", "cnn3d_group", "--resolution", RES, "--skip-bids-validation", "--nprocs", 1]
    evaluations = "faithfulness,localisation,sanity,robustness"
    code = run_cli(
        cohort,
        out,
        "participant",
        "--participant-label",
        "01",
        "02",
        "07",
        *argv,
        "--derivatives",
        f"masks={masks}",
        "--evaluate",
        evaluations,
    )
    assert code == 0, capsys.readouterr().err
    everything = pd.read_csv(out / "sub-02" / "anat" / "sub-02_evaluation.tsv", sep="\t")
    reference = everything["method"].str.startswith(("baseline-", "control-"))
    table = everything[~reference]
    assert len(table) == 3  # gradcam for each class
    baselines = everything[everything["method"].str.startswith("baseline-")]
    names = {"baseline-T1w", "baseline-T1winverted", "baseline-priorWM", "baseline-depth"}
    assert names | {"baseline-random"} <= set(baselines["method"])
    assert (baselines.groupby("target").size() == baselines["method"].nunique()).all()
    assert baselines.drop(columns="target").groupby("method").nunique().max().max() <= 1
    assert len(everything[everything["method"] == "control-otherclass-gradcam"]) == 3
    for row in table.itertuples():
        best = baselines[baselines["target"] == row.target]["auroc_lesion"].max()
        assert row.auroc_margin_lesion == pytest.approx(row.auroc_lesion - best, abs=1e-5)
    for column in (
        "inverting_drop",
        "partial_deletion_auc",
        "auroc_lesion",
        "pointing_lesion",
        "mass_inside_lesion",
        "sanity_spearman",
    ):
        assert column in table.columns
    # Every fold model but its own trained on sub-02: no fold robustness; none trained on sub-07
    # (the test set).
    assert "fold_robustness_spearman" not in table.columns
    tested = pd.read_csv(out / "sub-07" / "anat" / "sub-07_evaluation.tsv", sep="\t")
    assert tested["fold_robustness_spearman"].notna().sum() == 1
    # sub-07 is explained by the fold models' ensemble: no single network to randomise.
    assert not any(column.startswith("sanity_") for column in tested.columns)
    assert table["auroc_lesion"].between(0, 1).all()
    assert table["sanity_passed"].notna().sum() == 1  # the predicted class's map
    assert {"sanity_abs_spearman", "sanity_hog", "sanity_evaluable"} <= set(table.columns)
    viewer = re.search(r'class="v-data">(.*?)</script>', (out / "sub-02.html").read_text())
    assert "lesion" in json.loads(viewer.group(1))["masks"]  # its outline in the report's viewer
    assert (
        'aria-label="AUROC against lesion of each method beside the baselines'
        in (out / "sub-02.html").read_text()
    )
    sidecar = json.loads((out / "sub-02" / "anat" / "sub-02_evaluation.json").read_text())
    (randomised,) = sidecar["Randomisation"].values()  # the predicted class's curves
    steps = len(randomised["Cascade"]["RandomisedLayers"])
    assert steps > 1 and len(randomised["Independent"]["AbsSpearman"]) == steps
    assert len(sidecar["Curves"]) == 3 and len(sidecar["Curves"]["gradcam/HC"]["deletion"]) == 20
    assert (
        sidecar["auroc_lesion"]["HigherIsBetter"] and sidecar["auroc_lesion"]["ChanceLevel"] == 0.5
    )
    assert sidecar["partial_deletion_auc"]["HigherIsBetter"] is False
    assert all("Description" in sidecar[c] for c in table.columns)  # every column described
    control = pd.read_csv(out / "sub-01" / "anat" / "sub-01_evaluation.tsv", sep="\t")
    assert control["auroc_lesion"].isna().all()  # an empty mask: nothing to find
    report = (out / "sub-02.html").read_text()
    assert "Can these maps be trusted?" in report and "faithfulness curves of gradcam" in report


def test_method_comparison_ranks_only_where_the_corrected_paired_test_supports_it():
    import pandas as pd

    from bidsxai.group.method_comparison import bootstrap_interval, compare_methods
    from bidsxai.workflows.method_comparison import summarise

    mean, low, high = bootstrap_interval([0.5] * 10)
    assert mean == low == high == 0.5
    rng = np.random.default_rng(6)
    subject = rng.normal(0, 0.15, 20)  # how hard each subject is, shared by every method
    rows = [
        {
            "subject": s,
            "method": m,
            "auroc_lesion": base + subject[s] + rng.normal(0, 0.005),
            "partial_deletion_auc": 1 - base,
        }
        for s in range(20)
        for m, base in (
            ("gradcam", 0.62),
            ("saliency", 0.58),
            ("ig", 0.58),
            ("baseline-FLAIR", 0.7),
            ("baseline-depth", 0.5),
        )
    ]
    table, primary, statements, tests = summarise(pd.DataFrame(rows))
    assert set(table["n"]) == {20} and primary == "auroc_lesion"
    g, s = (table.set_index("method").loc[m] for m in ("gradcam", "saliency"))
    assert g["auroc_lesion_low"] < g["auroc_lesion"] < g["auroc_lesion_high"]
    assert g["auroc_lesion_low"] < s["auroc_lesion_high"]  # the marginal intervals overlap...
    # ...but every subject ranks gradcam above saliency: the paired test sees it. saliency and
    # ig differ by noise alone; each method is also tested against the best baseline only.
    pairs = set(zip(tests["method_a"], tests["method_b"]))
    assert pairs == {
        ("gradcam", "ig"),
        ("gradcam", "saliency"),
        ("ig", "saliency"),
        ("gradcam", "baseline-FLAIR"),
        ("ig", "baseline-FLAIR"),
        ("saliency", "baseline-FLAIR"),
    }
    assert sorted(statements) == [
        "baseline-FLAIR > gradcam",
        "baseline-FLAIR > ig",
        "baseline-FLAIR > saliency",
        "gradcam > ig",
        "gradcam > saliency",
    ]
    assert (tests["p_holm"] >= tests["p"]).all() and set(tests["n"]) == {20}
    assert compare_methods(pd.DataFrame(rows), ["partial_deletion_auc"]).columns.tolist() == [
        "method",
        "n",
        "partial_deletion_auc",
        "partial_deletion_auc_low",
        "partial_deletion_auc_high",
        "partial_deletion_auc_n",
    ]


def test_holm_and_wilson_match_statsmodels():
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.proportion import proportion_confint

    from bidsxai.group.method_comparison import holm, rate_interval

    p = np.array([0.01, 0.04, 0.03, 0.2, 0.005, 0.5])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    assert np.isnan(holm([np.nan, 0.01])[0]) and holm([np.nan, 0.01])[1] == 0.01
    for hits, n in ((1, 48), (0, 10), (4, 4), (17, 30)):
        rate, low, high = rate_interval([1.0] * hits + [0.0] * (n - hits))
        assert rate == hits / n
        np.testing.assert_allclose(
            (low, high), proportion_confint(hits, n, method="wilson"), atol=1e-12
        )


def test_a_rate_gets_a_wilson_interval_and_each_measure_its_n():
    import pandas as pd

    from bidsxai.workflows.method_comparison import summarise

    rows = [
        {"subject": s, "method": "a", "pointing_lesion": float(s == 0), "auroc_lesion": 0.7}
        for s in range(48)
    ]
    rows[5]["auroc_lesion"] = np.nan
    table = summarise(pd.DataFrame(rows))[0].set_index("method")
    assert table.loc["a", "pointing_lesion_low"] == pytest.approx(0.003687, abs=1e-6)
    assert table.loc["a", "pointing_lesion_high"] == pytest.approx(0.108992, abs=1e-6)
    assert table.loc["a", "pointing_lesion_n"] == 48 and table.loc["a", "auroc_lesion_n"] == 47


@pytest.mark.parametrize("mask", ["high", "low", "lesion_low"])
def test_every_evaluation_column_is_compared_whatever_the_mask_is_called(mask):
    """The directions come from the evaluation records, not from a column's suffix: a mask
    labelled high or low stays in the comparison, and so do the peak distance and the SSIM."""
    import pandas as pd

    from bidsxai.evaluate.evaluations import column_of
    from bidsxai.workflows.method_comparison import summarise

    names = ["auroc", "pointing", "peak_distance_mm", "mass_inside"]
    rows = [
        {
            "subject": s,
            "method": m,
            "target": "HC",
            **{f"{n}_{mask}": base + 0.01 * s for n in names},
            "sanity_ssim": 0.1,
            "sanity_spearman": -0.3,
        }
        for s in range(6)
        for m, base in (("a", 0.9), ("b", 0.2))
    ]
    table, primary, statements, _ = summarise(pd.DataFrame(rows))
    for n in names:
        assert {f"{n}_{mask}", f"{n}_{mask}_low", f"{n}_{mask}_high"} <= set(table.columns)
        assert column_of(f"{n}_{mask}") == (column_of(f"{n}_x")[0], mask)
    assert {"sanity_ssim", "sanity_spearman_magnitude"} <= set(table.columns)
    assert primary == f"auroc_{mask}" and statements == ["a > b"]
    assert column_of("method") == (None, None) and column_of("target") == (None, None)


def test_the_evaluation_records_drive_the_cli_and_the_sidecar():
    from bidsxai.cli import build_parser
    from bidsxai.evaluate.evaluations import EVALUATIONS
    from bidsxai.reports.citations import parse_bibtex
    from bidsxai.reports.render import references_bib
    from bidsxai.workflows.evaluate_session import description

    option = next(a for a in build_parser().complete()._actions if a.dest == "evaluate")
    keys = parse_bibtex(references_bib())
    for name, evaluation in EVALUATIONS.items():
        assert name in option.help and evaluation.description in option.help
        assert evaluation.citation is None or evaluation.citation in keys
        assert all(
            c.meaning and (c.chance is None or 0 <= c.chance <= 1) for c in evaluation.columns
        )
    assert description(["sanity"]).endswith(EVALUATIONS["sanity"].description)
    assert EVALUATIONS["localisation"].description not in description(["sanity"])


def test_an_evaluation_table_is_read_back_through_its_record(tmp_path):
    from bidsxai.errors import NoInputError
    from bidsxai.evaluate.evaluations import read_table, write_table

    rows = [
        {"method": "gradcam", "target": "HC", "auroc_lesion": 0.75, "sanity_passed": True},
        {"method": "lrp", "target": "HC", "auroc_lesion": 0.5},
    ]
    path = tmp_path / "sub-01_evaluation.tsv"
    write_table(path, rows)
    table = read_table(path)
    assert table["auroc_lesion"].tolist() == [0.75, 0.5]
    assert table.columns.tolist() == ["method", "target", "auroc_lesion", "sanity_passed"]
    path.write_text("method\ttarget\tauroc_lesion\tmystery\ngradcam\tHC\t0.5\t1\n")
    with pytest.raises(NoInputError, match="column 'mystery' is not one that --evaluate writes"):
        read_table(path)


def test_group_level_compares_the_methods_from_the_subjects_evaluations(pipeline, cohort, tmp_path):
    import shutil

    import pandas as pd
    from conftest import RES, run_cli

    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    common = ["--resolution", RES, "--skip-bids-validation", "--nprocs", 1]
    masks = cohort / "derivatives" / "groundtruth"
    evaluated = ["01", "02", "03"]  # a control and a patient of each group
    assert (
        run_cli(
            cohort,
            out,
            "participant",
            "--model",
            "cnn3d_group",
            "--methods",
            "gradcam,saliency",
            "--derivatives",
            f"masks={masks}",
            "--evaluate",
            "faithfulness,localisation",
            "--participant-label",
            *evaluated,
            *common,
        )
        == 0
    )
    assert run_cli(cohort, out, "group", "--n-perm", 0, *common) == 0
    table = pd.read_csv(out / "group" / "method_comparison.tsv", sep="\t")
    methods = table[~table["method"].str.startswith(("baseline-", "control-"))]
    assert list(methods["method"]) == ["gradcam", "saliency"] and (methods["n"] == 3).all()
    assert {"auroc_lesion", "auroc_lesion_low", "inverting_drop_high"} <= set(table.columns)
    assert {"auroc_margin_lesion", "pointing_margin_lesion"} <= set(table.columns)
    # The controls that need other subjects: each subject's mask against the others' masks and
    # against the next subject's map; every subject with a mask has both.
    group = {"baseline-frequency", "control-swap-gradcam", "control-swap-saliency"}
    assert group | {"baseline-FLAIR", "control-otherclass-gradcam"} <= set(table["method"])
    assert (table[table["method"].isin(group)]["n"] == 3).all()
    report = (out / "group.html").read_text()
    assert "Which method can be trusted most?" in report and "voxel-inverting curves" in report
    assert "AUROC against lesion of each method beside the baselines and controls" in report


def test_no_evaluation_file_when_nothing_could_be_evaluated(pipeline):
    """The pipeline explains with the default --evaluate (localisation) and no reference masks."""
    assert list(pipeline["out"].rglob("*_heatmap.nii.gz"))
    assert not list(pipeline["out"].rglob("*_evaluation.tsv"))
    assert not (pipeline["out"] / "group" / "method_comparison.tsv").exists()


def test_run_robustness_compares_the_training_runs_of_the_explaining_fold(
    pipeline, cohort, tmp_path, capsys
):
    import json
    import shutil

    import pandas as pd
    from conftest import RES, run_cli

    from bidsxai.group.atlas import AAL

    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    common = ["--resolution", RES, "--skip-bids-validation", "--nprocs", 1]
    train = ["train", "--epochs", 1, "--cv-folds", 2, "--seeds", 2, *common]
    assert run_cli(cohort, out, *train) == 0, capsys.readouterr().err
    meta = json.loads((out / "models" / "cnn3d_group" / "model.json").read_text())
    assert meta["training"]["seeds"] == 2 and "repeat-1_fold-2_run-2" in meta["members"]
    assert len(meta["metrics"]["cross_validation_runs"]["auc"]["values"]) == 2
    # 02 is a cohort subject: every fold model but its own trained on it, so it has run
    # robustness only. 07 is in the test set, which no fold model saw; the fold models' ensemble
    # explains it, so it has fold robustness (the ensemble's members) and no run robustness.
    explain = ["--model", "cnn3d_group", "--participant-label", "02", "07"]
    explain += ["--evaluate", "robustness"]
    assert run_cli(cohort, out, "participant", *explain, *common) == 0, capsys.readouterr().err
    path = out / "sub-02" / "anat" / "sub-02_evaluation.tsv"
    predicted = pd.read_csv(path, sep="\t").dropna(subset=["run_robustness_spearman"])
    assert len(predicted) == 1 and predicted["run_robustness_spearman"].between(-1, 1).all()
    assert "fold_robustness_spearman" not in predicted.columns
    assert AAL.is_file()  # Debian's mricron-data, which make test installs
    assert predicted["run_robustness_roi_cosine"].between(-1, 1).all()
    tested = pd.read_csv(out / "sub-07" / "anat" / "sub-07_evaluation.tsv", sep="\t")
    assert "run_robustness_spearman" not in tested.columns
    folds = tested["fold_robustness_spearman"].dropna()
    assert len(folds) == 1 and folds.between(-1, 1).all()


def test_the_method_comparison_summarises_the_sanity_check_by_its_absolute_rho():
    import pandas as pd

    from bidsxai.workflows.method_comparison import summarise

    table = pd.DataFrame(
        {
            "subject": ["01", "02", "01", "02"],
            "method": ["a", "a", "b", "b"],
            "sanity_spearman": [-0.6, 0.6, 0.05, -0.05],
            "sanity_abs_spearman": [0.5, -0.5, 0.1, 0.1],
        }
    )
    compared = summarise(table)[0].set_index("method")
    assert compared.loc["a", "sanity_spearman_magnitude"] == pytest.approx(0.6)
    assert compared.loc["b", "sanity_spearman_magnitude"] == pytest.approx(0.05)
    assert compared.loc["a", "sanity_abs_spearman_magnitude"] == pytest.approx(0.5)
    assert "sanity_spearman" not in compared.columns  # a signed mean would hide the failures
    assert "sanity_abs_spearman" not in compared.columns


class _Recorder(nn.Module):
    """Keeps every input it is given; its output knows nothing."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen += list(x.detach().clone())
        return torch.zeros(len(x), 2)


def _first_inverted(heatmap, x, **kwargs):
    """The first voxel-inverted volume faithfulness gave the model (its top 2.5 %)."""
    recorder = _Recorder()
    faithfulness(recorder, x, heatmap, target=0, **kwargs)
    return recorder.seen[1][None]  # [0] is the unperturbed input


def test_voxel_inverting_reflects_z_scored_inputs_about_their_mean():
    x = torch.randn(1, 1, 8, 8, 8)
    heatmap = np.zeros((8, 8, 8))
    heatmap[4, 4, 4] = 1.0
    unit = _first_inverted(heatmap, x, fractions=(0.002,))
    zscored = _first_inverted(heatmap, x, fractions=(0.002,), centre=0.0)
    assert unit[0, 0, 4, 4, 4] == pytest.approx(1 - float(x[0, 0, 4, 4, 4]))
    assert zscored[0, 0, 4, 4, 4] == pytest.approx(-float(x[0, 0, 4, 4, 4]))
    changed = (zscored != x).sum()
    assert changed == 1


def test_tied_voxels_are_not_removed_in_raster_order():
    x = torch.rand(1, 1, 8, 8, 8)
    chosen = (_first_inverted(np.ones((8, 8, 8)), x, fractions=(0.1,)) != x)[0, 0].numpy()
    k = int(chosen.sum())
    assert k == 51
    assert not chosen.ravel()[:k].all()  # not the first voxels of the raster
    again = (_first_inverted(np.ones((8, 8, 8)), x, fractions=(0.1,)) != x)[0, 0].numpy()
    assert np.array_equal(chosen, again)  # the same seed, the same order
