import numpy as np
import pytest
import torch
from scipy import stats

from bidsxai.errors import NoInputError
from bidsxai.models.bundle import load_bundle, save_bundle
from bidsxai.models.registry import get_architecture
from bidsxai.training.dataset import VolumeDataset, brain_crop, crop, uncrop
from bidsxai.training.loop import recalibrate_batchnorm
from bidsxai.training.metrics import binary_auc, classification_metrics, wilson_interval
from bidsxai.training.split import stratified_split


def test_split_is_subject_level_stratified_and_seeded():
    labels = {f"{i:02d}": "ABC"[i % 3] for i in range(30)}
    split = stratified_split(labels, seed=4)
    assert split == stratified_split(labels, seed=4) and split != stratified_split(labels, seed=5)
    for part in ("train", "validation", "test"):
        classes = [labels[s] for s, p in split.items() if p == part]
        assert sorted(set(classes)) == ["A", "B", "C"]
        assert len(set(np.unique(classes, return_counts=True)[1])) == 1  # balanced
    assert sum(p == "test" for p in split.values()) == 6


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
    model = arch.build(**args).eval()
    meta = save_bundle(tmp_path / "m", model, {"architecture": "cnn3d", "architecture_args": args})
    loaded, meta2 = load_bundle(tmp_path / "m")
    x = torch.randn(1, 2, 16, 16, 16)
    torch.testing.assert_close(loaded(x), model(x))
    assert meta2["sha256"] == meta["sha256"]
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(NoInputError, match="sha256"):
        load_bundle(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_text('{"architecture": "resnet9000"}')
    with pytest.raises(NoInputError, match="unknown architecture"):
        load_bundle(tmp_path / "m")


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
