"""Classification metrics against scipy, statsmodels and torch, and by hand."""

import numpy as np
import pytest
import torch
from scipy import stats

from bidsxai.training.metrics import binary_auc, classification_metrics, wilson_interval


def test_auc_equals_mann_whitney():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 13), rng.normal(0, 1, 17)
    u = stats.mannwhitneyu(pos, neg).statistic
    assert binary_auc(pos, neg) == pytest.approx(u / (13 * 17))
    tied_pos, tied_neg = rng.integers(0, 4, 40).astype(float), rng.integers(0, 3, 300).astype(float)
    u = stats.mannwhitneyu(tied_pos, tied_neg).statistic  # ties count half
    assert binary_auc(tied_pos, tied_neg) == pytest.approx(u / (40 * 300), abs=1e-12)
    assert np.isnan(binary_auc([], neg)) and np.isnan(binary_auc([np.nan, 1.0], neg))


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


@pytest.mark.parametrize("k, n", [(0, 7), (3, 7), (7, 7), (45, 50), (1, 1)])
def test_wilson_interval_equals_statsmodels(k, n):
    from statsmodels.stats.proportion import proportion_confint

    np.testing.assert_allclose(
        wilson_interval(k, n),
        proportion_confint(k, n, alpha=0.05, method="wilson"),
        rtol=1e-9,
        atol=1e-12,
    )


def test_binary_metrics_carry_wilson_intervals_of_their_counts():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    probabilities = np.array(
        [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3], [0.1, 0.9]]
    )
    metrics = classification_metrics(y, probabilities)
    assert metrics["accuracy_ci"] == wilson_interval(5, 7)
    assert metrics["sensitivity_ci"] == wilson_interval(3, 4) and metrics[
        "specificity_ci"
    ] == wilson_interval(2, 3)
    assert "sensitivity_ci" not in classification_metrics([0, 1, 2], np.eye(3))


def test_log_loss_equals_torch_nll():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    y = [0, 1, 2]
    expected = torch.nn.functional.nll_loss(torch.log(torch.tensor(probabilities)), torch.tensor(y))
    assert classification_metrics(y, probabilities)["loss"] == pytest.approx(float(expected))


def test_a_model_at_chance_is_flagged():
    from bidsxai.training.metrics import chance_warning

    at_chance = {"n": 16, "balanced_accuracy": 0.53}
    warning = chance_warning(at_chance, 3, {"repeat-1_fold-1": 4, "repeat-1_fold-2": 1})
    assert "includes chance (0.33)" in warning and "first epoch of repeat-1_fold-2" in warning
    assert chance_warning({"n": 18, "balanced_accuracy": 1.0}, 3, {"repeat-1_fold-1": 8}) is None
    assert "first epoch" in chance_warning({"n": 18, "balanced_accuracy": 1.0}, 3, {"f": 1})


def test_roc_points_are_sklearns_curve_for_every_class():
    from sklearn.metrics import roc_curve

    from bidsxai.training.metrics import roc_points

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 40)
    probabilities = rng.dirichlet(np.ones(3), 40).round(2)  # rounded: ties must share a point
    curves = roc_points(y, probabilities)
    assert sorted(curves) == [0, 1, 2]
    for k, curve in curves.items():
        fpr, tpr, _ = roc_curve(y == k, probabilities[:, k], drop_intermediate=False)
        assert np.allclose(curve["fpr"], fpr) and np.allclose(curve["tpr"], tpr)
    assert roc_points(np.zeros(5, int), rng.dirichlet(np.ones(2), 5)) == {}  # one class only
