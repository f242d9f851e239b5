import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from bidsxai.errors import NoInputError, UsageError
from bidsxai.models.bundle import (
    load_member,
    member_for,
    read_meta,
    save_bundle,
)
from bidsxai.models.registry import get_architecture
from bidsxai.training.dataset import VolumeDataset, brain_crop, crop, uncrop
from bidsxai.training.folds import assign
from bidsxai.training.loop import recalibrate_batchnorm
from bidsxai.training.metrics import binary_auc, classification_metrics, wilson_interval
from bidsxai.training.targets import closeness_weights, subject_targets


def test_folds_are_subject_level_stratified_seeded_and_keep_the_test_set():
    labels = {f"{i:02d}": "ABC"[i % 3] for i in range(33)}
    first = assign(labels, 5, 0.2, seed=4, repeat=1)
    assert first == assign(labels, 5, 0.2, seed=4, repeat=1)
    second = assign(labels, 5, 0.2, seed=4, repeat=2)
    assert second != first  # a new deal of the folds in each repeat...
    assert {s for s, p in first.items() if p == "test"} == {s for s, p in second.items() if p == "test"}
    test = [labels[s] for s, p in first.items() if p == "test"]
    assert sorted(test) == ["A"] * 2 + ["B"] * 2 + ["C"] * 2  # ...and one test set, 20 % of each class
    sizes = np.bincount([p for p in first.values() if p != "test"])[1:]
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 27
    for fold in range(1, 6):  # each class spread over the folds as evenly as it can be
        classes = [labels[s] for s, p in first.items() if p == fold]
        assert max(np.unique(classes, return_counts=True)[1]) <= 2


def test_numeric_target_is_split_at_the_threshold_with_closeness_weights():
    participants = pd.DataFrame({"edss": [1.0, 5.0, 6.5, None]}, index=["01", "02", "03", "04"])
    labels, values = subject_targets(participants, "edss", 5)
    assert labels == {"01": "edss-lt5", "02": "edss-ge5", "03": "edss-ge5"} and values["03"] == 6.5
    np.testing.assert_allclose(closeness_weights([1.0, 5.0, 6.5, 10.0, 0.0], 5), [1.2, 2.0, 1.7, 1.0, 1.0])
    with pytest.raises(UsageError, match="not numeric"):
        subject_targets(pd.DataFrame({"g": ["a", "b"]}, index=["01", "02"]), "g", 1)


def test_auc_equals_mann_whitney():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 13), rng.normal(0, 1, 17)
    u = stats.mannwhitneyu(pos, neg).statistic
    assert binary_auc(pos, neg) == pytest.approx(u / (13 * 17))


def test_classification_metrics_by_hand():
    y = [0, 0, 0, 1, 1]
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.55, 0.45]])
    m = classification_metrics(y, p)
    assert m["confusion_matrix"] == [[2, 1], [1, 1]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["sensitivity"] == pytest.approx(1 / 2) and m["specificity"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["auc"] == pytest.approx(binary_auc([0.8, 0.45], [0.1, 0.4, 0.7]))
    assert m["f1"] == pytest.approx(2 * 0.5 * 0.5 / (0.5 + 0.5))


def test_crop_and_uncrop_round_trip():
    mask = np.zeros((10, 12, 9), bool)
    mask[3:7, 2:10, 4:6] = True
    box = brain_crop(mask, margin=1)
    assert box == [[2, 8], [1, 11], [3, 7]]
    volume = np.random.rand(10, 12, 9)
    back = uncrop(crop(volume, box), box, volume.shape)
    assert np.array_equal(back[mask], volume[mask])


def test_batchnorm_recalibration_gives_exact_training_statistics():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.BatchNorm3d(2))
    x = np.random.default_rng(0).normal(3, 2, (6, 1, 4, 4, 4))
    recalibrate_batchnorm(net, VolumeDataset(x, np.zeros(6)), "cpu", batch_size=6)
    with torch.no_grad():
        features = net[0](torch.as_tensor(x, dtype=torch.float16).float())
    torch.testing.assert_close(net[1].running_mean, features.mean((0, 2, 3, 4)), rtol=1e-4, atol=1e-4)
    assert net[1].momentum == 0.1


def test_bundle_round_trip_and_refusals(tmp_path):
    arch = get_architecture("cnn3d")
    args = {"in_channels": 2, "n_classes": 2, "input_shape": [16, 16, 16]}
    models = {f"repeat-1_fold-{k}": arch.build(**args).eval() for k in (1, 2)}
    meta = save_bundle(tmp_path / "m", models, {"architecture": "cnn3d", "architecture_args": args},
                       final="repeat-1_fold-2")
    meta2 = read_meta(tmp_path / "m")
    loaded = load_member(tmp_path / "m", meta2)
    x = torch.randn(1, 2, 16, 16, 16)
    torch.testing.assert_close(loaded(x), models["repeat-1_fold-2"](x))
    first = load_member(tmp_path / "m", read_meta(tmp_path / "m"), "repeat-1_fold-1")
    torch.testing.assert_close(first(x), models["repeat-1_fold-1"](x))
    assert meta2["sha256"] == meta["members"]["repeat-1_fold-2"]["sha256"]
    weights = tmp_path / "m" / "repeat-1_fold-1.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(NoInputError, match="sha256"):
        load_member(tmp_path / "m", meta2, "repeat-1_fold-1")
    meta2["members"]["repeat-1_fold-1"]["weights"] = "../../etc/passwd"
    with pytest.raises(NoInputError, match="no usable weights"):
        load_member(tmp_path / "m", meta2, "repeat-1_fold-1")
    (tmp_path / "m" / "model.json").write_text('{"architecture": "resnet9000"}')
    with pytest.raises(NoInputError, match="unknown architecture"):
        read_meta(tmp_path / "m")


@pytest.mark.parametrize("k, n", [(0, 7), (3, 7), (7, 7), (45, 50), (1, 1)])
def test_wilson_interval_equals_statsmodels(k, n):
    from statsmodels.stats.proportion import proportion_confint

    np.testing.assert_allclose(wilson_interval(k, n), proportion_confint(k, n, alpha=0.05, method="wilson"),
                               rtol=1e-9, atol=1e-12)


def test_binary_metrics_carry_wilson_intervals_of_their_counts():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9]])
    metrics = classification_metrics(y, probabilities)
    assert metrics["accuracy_ci"] == wilson_interval(5, 7)
    assert metrics["sensitivity_ci"] == wilson_interval(3, 4) and metrics["specificity_ci"] == wilson_interval(2, 3)
    assert "sensitivity_ci" not in classification_metrics([0, 1, 2], np.eye(3))


def test_each_subject_is_explained_by_the_fold_model_that_held_it_out():
    meta = {"assignments": [{"01": 1, "02": 2, "03": "test"}], "final_member": "repeat-1_fold-2"}
    assert member_for(meta, "01")[:2] == ("repeat-1_fold-1", "fold-1")
    assert member_for(meta, "02")[:2] == ("repeat-1_fold-2", "fold-2")
    assert member_for(meta, "03")[:2] == ("repeat-1_fold-2", "test")
    assert member_for(meta, "99")[:2] == ("repeat-1_fold-2", "not-in-training")


def test_log_loss_equals_torch_nll():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    y = [0, 1, 2]
    expected = torch.nn.functional.nll_loss(torch.log(torch.tensor(probabilities)), torch.tensor(y))
    assert classification_metrics(y, probabilities)["loss"] == pytest.approx(float(expected))
