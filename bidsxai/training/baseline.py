"""A simple model beside the network: does the network beat what a few image statistics give?

A network can stay at chance on a cohort where one number per subject, such as a high percentile
of the FLAIR in the white matter, separates the classes. So every training run also fits a
regularised logistic regression (scikit-learn: L2, C = 1, classes weighted by their frequency, on
standardised features) on cheap features of the same preprocessed inputs, cross-validated on the
network's own folds (repeat 1), and the test set is predicted by the baseline fitted on the whole
cohort. The features, per input channel and per tissue of the template (GM, WM and CSF
probability above 0.5, on the model's crop):

- the intensity percentiles ``PERCENTILES``;
- the volumes (mm^3) of voxels brighter, and darker, than the tissue's median by more than
  ``OUTLIER_SD`` robust standard deviations (1.4826 x the median absolute deviation): lesions,
  and tissue that is missing, without a segmentation.

The two are compared on the same subjects (exact McNemar test on who each gets right, out of
fold); where the baseline's balanced accuracy is higher and the test says so (p < 0.05), the
training report, ``model.json`` and every subject report say that the network's heatmaps may not
show what separates the classes.
"""

import numpy as np
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bidsxai.training.crop_box import crop
from bidsxai.training.metrics import classification_metrics

PERCENTILES = (1, 5, 25, 50, 75, 95, 99, 99.9)
OUTLIER_SD = 3.0
TISSUES = ("GM", "WM", "CSF")
ALPHA = 0.05
DESCRIPTION = (
    "L2-regularised logistic regression (C = 1, balanced class weights) on intensity "
    "percentiles and outlier volumes of each input channel within the template's GM, WM and CSF"
)


def tissue_masks(template, box):
    """{tissue: boolean mask on the model's crop ``box``} from the template's probability maps."""
    return {t: crop(getattr(template, t.lower()), box) > 0.5 for t in TISSUES}


def feature_names(n_channels):
    names = []
    for c in range(n_channels):
        for tissue in TISSUES:
            names += [f"channel{c}_{tissue}_p{p:g}" for p in PERCENTILES]
            names += [f"channel{c}_{tissue}_bright_mm3", f"channel{c}_{tissue}_dark_mm3"]
    return names


def image_features(volume, masks, voxel_mm3):
    """The feature vector (``feature_names``) of one input (C, X, Y, Z)."""
    features = []
    for channel in np.asarray(volume, np.float32):
        for tissue in TISSUES:
            values = channel[masks[tissue]].astype(np.float64)
            median = np.median(values)
            spread = 1.4826 * np.median(np.abs(values - median))
            features += list(np.percentile(values, PERCENTILES))
            features += [
                float((values > median + OUTLIER_SD * spread).sum()) * voxel_mm3,
                float((values < median - OUTLIER_SD * spread).sum()) * voxel_mm3,
            ]
    return np.array(features)


def _classifier():
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000),
    )


def _probabilities(model, features, n_classes):
    """Probabilities for every class, also those the training subjects lacked."""
    out = np.zeros((len(features), n_classes))
    out[:, model.classes_] = model.predict_proba(features)
    return out


def baseline_probabilities(features, y, part):
    """(out-of-fold probabilities of the cohort, NaN on the test set; test probabilities from the
    baseline fitted on the whole cohort, or None without a test set) on the folds ``part``
    (fold number or "test" per sample)."""
    y = np.asarray(y, int)
    n_classes = int(y.max()) + 1
    cohort = part != "test"
    oof = np.full((len(y), n_classes), np.nan)
    for fold in sorted({p for p in part[cohort]}):
        held = part == fold
        train = cohort & ~held
        model = _classifier().fit(features[train], y[train])
        oof[held] = _probabilities(model, features[held], n_classes)
    test = None
    if (~cohort).any():
        model = _classifier().fit(features[cohort], y[cohort])
        test = _probabilities(model, features[~cohort], n_classes)
    return oof, test


def mcnemar(y, network, baseline):
    """The exact McNemar test of two classifiers' predictions (probabilities) on the same
    samples: {"network_only", "baseline_only" (samples only that one gets right), "p"}."""
    right_network = np.asarray(network).argmax(1) == y
    right_baseline = np.asarray(baseline).argmax(1) == y
    network_only = int((right_network & ~right_baseline).sum())
    baseline_only = int((right_baseline & ~right_network).sum())
    discordant = network_only + baseline_only
    p = binomtest(baseline_only, discordant, 0.5).pvalue if discordant else 1.0
    return {"network_only": network_only, "baseline_only": baseline_only, "p": float(p)}


def baseline_record(features, y, part, network_oof):
    """What ``model.json`` keeps of the baseline (``metrics["baseline"]``): its description, its
    out-of-fold and test metrics, the paired comparison with the network's out-of-fold
    predictions ``network_oof`` and whether the baseline is better."""
    y = np.asarray(y, int)
    cohort = np.flatnonzero(part != "test")
    oof, test = baseline_probabilities(features, y, part)
    record = {
        "model": DESCRIPTION,
        "features": len(features[0]),
        "cross_validation": classification_metrics(y[cohort], oof[cohort]),
    }
    if test is not None:
        record["test"] = classification_metrics(y[part == "test"], test)
    paired = mcnemar(y[cohort], network_oof[cohort], oof[cohort])
    network_bacc = classification_metrics(y[cohort], network_oof[cohort])["balanced_accuracy"]
    better = record["cross_validation"]["balanced_accuracy"] > network_bacc and paired["p"] < ALPHA
    record["paired"] = dict(paired, baseline_better=bool(better))
    return record


def baseline_warning(record, network_cv):
    """The sentence the reports carry where the baseline is better, else None."""
    if not record["paired"]["baseline_better"]:
        return None
    return (
        "A simple model separates these classes better than the network: a logistic regression "
        f"on image statistics reached an out-of-fold balanced accuracy of "
        f"{record['cross_validation']['balanced_accuracy']:.2f} against the network's "
        f"{network_cv['balanced_accuracy']:.2f} (exact McNemar p = {record['paired']['p']:.2g}, "
        "same subjects). The network's heatmaps may not show what separates them."
    )
