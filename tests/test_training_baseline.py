"""The simple baseline beside the network: a logistic regression on image statistics, on the
network's folds, and the statement the reports carry where it does better."""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from bidsxai.training.baseline import (
    PERCENTILES,
    baseline_probabilities,
    baseline_record,
    baseline_warning,
    feature_names,
    image_features,
    mcnemar,
)


def _cohort(n=24, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    features = rng.normal(size=(n, 5))
    features[:, 0] += 3.0 * y  # one statistic separates the classes
    part = np.array([1 + i % 3 for i in range(n)], dtype=object)
    part[-4:] = "test"
    return features, y, part


def test_the_baseline_is_scikit_learns_logistic_regression_on_the_networks_folds():
    features, y, part = _cohort()
    oof, test = baseline_probabilities(features, y, part)
    for fold in (1, 2, 3):
        train, held = (part != "test") & (part != fold), part == fold
        scaler = StandardScaler().fit(features[train])
        direct = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)
        direct.fit(scaler.transform(features[train]), y[train])
        expected = direct.predict_proba(scaler.transform(features[held]))
        np.testing.assert_allclose(oof[held], expected, rtol=1e-6, atol=1e-9)
    assert np.isnan(oof[part == "test"]).all() and test.shape == (4, 2)


def test_a_baseline_that_beats_the_network_is_said_so_and_one_that_does_not_is_not():
    features, y, part = _cohort()
    constant = np.tile([0.6, 0.4], (24, 1))  # a network that learned nothing: always class 0
    record = baseline_record(features, y, part, constant)
    assert record["cross_validation"]["balanced_accuracy"] > 0.9
    assert record["paired"]["baseline_better"] and record["paired"]["p"] < 0.05
    network = {"balanced_accuracy": 0.5}
    assert "A simple model separates these classes better" in baseline_warning(record, network)
    perfect = np.eye(2)[y]
    record = baseline_record(features, y, part, perfect)
    assert not record["paired"]["baseline_better"] and baseline_warning(record, network) is None


def test_mcnemar_counts_the_discordant_subjects():
    y = np.array([0, 1, 0, 1, 0, 1])
    network = np.eye(2)[[0, 1, 1, 0, 1, 0]]  # right on the first two
    baseline = np.eye(2)[y]  # right on all
    found = mcnemar(y, network, baseline)
    assert (found["network_only"], found["baseline_only"]) == (0, 4)
    assert found["p"] == 0.125  # two-sided exact: 2 * 0.5 ** 4


def test_the_features_are_percentiles_and_outlier_volumes_per_channel_and_tissue():
    volume = np.zeros((2, 6, 6, 6), np.float32)
    volume[0] = np.arange(216, dtype=np.float32).reshape(6, 6, 6) % 7
    volume[0, 1, 1, 1] = 100.0  # one bright voxel
    masks = {t: np.ones((6, 6, 6), bool) for t in ("GM", "WM", "CSF")}
    features = image_features(volume, masks, voxel_mm3=8.0)
    names = feature_names(2)
    assert len(features) == len(names) == 2 * 3 * (len(PERCENTILES) + 2)
    by_name = dict(zip(names, features))
    assert by_name["channel0_WM_bright_mm3"] == 8.0 and by_name["channel0_WM_dark_mm3"] == 0.0
    assert by_name["channel0_GM_p50"] == np.percentile(volume[0], 50)
