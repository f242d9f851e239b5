"""participant --model: class probabilities, the heatmaps of every method and target class, and
the subject measures.

Heatmaps are raw values on the full template grid (the model's crop is undone) with the template's
affine; each has a sidecar with method, parameters, layer, target, probabilities, model and split.
"""

import re

import numpy as np
import pandas as pd
import torch

from bidsxai import __version__
from bidsxai.atomic import atomic_path, save_nifti, write_json
from bidsxai.bids import bids_uri, derivative_path, read_participants, sidecar_path
from bidsxai.errors import NoInputError, UsageError
from bidsxai.explain import explain_many
from bidsxai.explain.diagnostics import layer_iteration, mirroring
from bidsxai.explain.quantify import percentile_in_mask
from bidsxai.models.bundle import load_member, member_for, read_meta, resolve_bundle
from bidsxai.models.covariates import binding
from bidsxai.models.gated_attention import attention_module, attention_weights
from bidsxai.models.mc_dropout import has_mc_dropout, mc_predict
from bidsxai.models.registry import get_architecture
from bidsxai.preprocess.pipeline import preproc_path
from bidsxai.template import SPACE, load_template, resolution_label
from bidsxai.training.dataset import load_inputs, uncrop
from bidsxai.training.slices import to_slices
from bidsxai.workflows.device import pick_device
from bidsxai.workflows.sessions import run_sessions
from bidsxai.workflows.slice_explain import explain_slices


def class_label(name):
    """A BIDS-safe label for a class name ('RRMS' stays, 'EDSS>=5' becomes 'EDSS5')."""
    return re.sub(r"[^A-Za-z0-9]", "", str(name)) or "class"


def heatmap_path(out_dir, session, method, target, resolution):
    return derivative_path(out_dir, session.subject, session.session, "heatmap", ".nii.gz",
                           space=SPACE, res=resolution_label(resolution), method=method,
                           target=class_label(target))


def layers_path(out_dir, session, method, target, resolution):
    return derivative_path(out_dir, session.subject, session.session, "heatmap", ".nii.gz",
                           space=SPACE, res=resolution_label(resolution), desc="layers",
                           method=method, target=class_label(target))


def measures_path(out_dir, session):
    return derivative_path(out_dir, session.subject, session.session, "measures", ".tsv")


# What each method's values are, and the defaults the CLI uses (recorded in every sidecar).
METHOD_NOTES = {
    "cam": ("CAM: class-weighted sum of the layer's feature maps (no ReLU)", {}),
    "gradcam": ("Grad-CAM: ReLU of the gradient-weighted feature maps", {}),
    "gradcampp": ("Grad-CAM++ (eq. 19) without the voxel-independent factor exp(logit)", {}),
    "saliency": ("maximum over channels of |d logit / d input|", {"mode": "abs"}),
    "smoothgrad": ("saliency averaged over noisy copies of the input",
                   {"mode": "abs", "samples": 25, "noise": 0.15, "seed": 0}),
    "ig": ("integrated gradients summed over channels",
           {"steps": 64, "baseline": "zero", "quadrature": "gausslegendre"}),
    "lrp": ("layer-wise relevance propagation (bias-free rules; see the composite)",
            {"composite": "paper001", "start": "logit", "gate": "proportional", "channels": "sum",
             "epsilon": 1e-8, "bounds": [0.0, 1.0]}),
    "perturbation": ("1 - the meaningful-perturbation mask (paper 004 eq. 2) fitted to this session",
                     {"lambda1": 1e-4, "lambda2": 1e-3, "beta1": 0.1, "beta2": 1.0, "mu": 0.0,
                      "lr": 0.1, "max_epochs": 5000, "patience": 200, "tolerance": 0.01}),
}
CAM_FAMILY = ("cam", "gradcam", "gradcampp")


def method_params(settings, spec, x):
    """The methods' parameters: METHOD_NOTES defaults with the --lrp-* choices, and z-beta bounds
    from the intensity normalisation ([0, 1] for percentile; the input's range for z-scores)."""
    params = {k: v for m in settings.methods for k, v in METHOD_NOTES[m][1].items()}
    if "lrp" in settings.methods:
        params.update(composite=settings.lrp_composite, start=settings.lrp_start, channels=settings.lrp_map)
        if spec.get("normalisation") == "zscore":
            params["bounds"] = [float(x.min()), float(x.max())]
    return params


def target_indices(spec, classes):
    """--targets predicted|all|NAME,... as explain_many's ``targets`` for one sample."""
    if spec in ("predicted", "all"):
        return spec
    names = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in names if t not in classes]
    if unknown or not names:
        raise UsageError(f"--targets: unknown class(es) {', '.join(unknown) or '(none)'}; the model's "
                         f"classes are {', '.join(classes)}")
    return [[classes.index(t) for t in names]]


def check_methods(model, meta, methods, layer, device):
    """Refuse a layer or a CAM-family method that does not fit the model before any subject is
    processed (one forward pass on zeros of the model's input shape)."""
    cam_methods = [m for m in methods if m in CAM_FAMILY]
    if not cam_methods:
        return
    slices = meta["input"].get("slices")
    spatial = [slices["size"]] * 2 if slices else [hi - lo for lo, hi in meta["input"]["crop"]]
    shape = [len(meta["input"]["contrasts"])] + spatial
    try:
        explain_many(model, torch.zeros([1] + shape, device=device), cam_methods, layer=layer,
                     targets="predicted", upsample=False)
    except ValueError as exc:
        raise UsageError(f"--methods/--explain-layer: {exc}") from None


class BundleModels:
    """A bundle's member models, each loaded (and sha256-checked) once, when first needed."""

    def __init__(self, folder, device):
        self.folder, self.device = folder, device
        self.meta = read_meta(folder)
        self._models = {}

    def get(self, member):
        if member not in self._models:
            self._models[member] = load_member(self.folder, self.meta, member, self.device)
        return self._models[member]


def classify_sessions(settings, sessions):
    folder = resolve_bundle(settings.model, settings.output_dir)
    device = pick_device(settings.device)
    models = BundleModels(folder, device)
    meta = models.meta
    final = models.get(meta.get("final_member"))
    layer = settings.explain_layer or meta.get("explain_layer") or \
        get_architecture(meta["architecture"]).default_layer(final)
    targets = target_indices(settings.targets, meta["classes"])
    check_methods(final, meta, settings.methods, layer, device)
    participants = read_participants(settings.bids_dir) if meta.get("covariates") else None
    context = (settings, models, participants, layer, targets, device, folder.name)
    return run_sessions(_classify_one, sessions, context, settings.output_dir / "logs", nprocs=1,
                        desc="explaining")


def subject_covariates(meta, participants, subject, device):
    """The subject's values of the model's covariate inputs (e.g. age), as a 1D tensor."""
    columns = meta.get("covariates") or []
    values = []
    for column in columns:
        value = participants[column].get(subject) if column in participants.columns else None
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            raise NoInputError(f"sub-{subject}: the model needs {column} from participants.tsv; "
                               f"found {value!r}") from None
        if not np.isfinite(values[-1]):
            raise NoInputError(f"sub-{subject}: the model needs {column} from participants.tsv; it is n/a")
    return torch.tensor(values, device=device)


def mc_summary(model, spec, x, samples, seed):
    """MC-dropout mean and SD of the subject's class probabilities (2D: slices averaged per pass)."""
    inputs = to_slices(x[0].cpu().numpy(), spec["slices"]["kept"], spec["slices"]["size"]).to(x.device) \
        if spec.get("slices") else x
    draws = mc_predict(model, inputs, samples, seed).mean(1)  # (samples, classes)
    return draws.mean(0).cpu().numpy(), draws.std(0, unbiased=samples > 1).cpu().numpy()


def _classify_one(session, settings, models, participants, layer, targets, device, bundle_name):
    meta = models.meta
    member, split, why = member_for(meta, session.subject)
    model = models.get(member)
    covariates = subject_covariates(meta, participants, session.subject, device)
    with binding(model, covariates):
        return _explain_session(session, settings, model, meta, (member, split, why), layer, targets, device,
                                bundle_name)


def _explain_session(session, settings, model, meta, choice, layer, targets, device, model_name):
    member, split, why = choice
    spec = meta["input"]
    out = settings.output_dir
    template = load_template(spec["resolution"])
    x = torch.from_numpy(load_inputs(out, session.subject, session.session, spec))[None].to(device)
    params = method_params(settings, spec, x)
    if spec.get("slices"):
        result = explain_slices(model, spec, x, settings.methods, layer=layer, targets=targets, **params)
    else:
        result = explain_many(model, x, settings.methods, layer=layer, targets=targets, **params)
    probabilities = torch.softmax(result["logits"], 1)[0].cpu().numpy()
    classes = meta["classes"]
    predicted = classes[int(probabilities.argmax())]
    mc = None
    if settings.mc_samples and has_mc_dropout(model):
        mc = mc_summary(model, spec, x, settings.mc_samples, settings.seed)
    attention = None
    if attention_module(model) is not None:
        attention = dict(zip(spec["contrasts"], attention_weights(model, x)[0].tolist()))
    sha = meta["members"][member]["sha256"] if member in meta.get("members", {}) else meta["sha256"]
    sources = [bids_uri("bidsxai", preproc_path(out, session.subject, session.session, c,
                                                 spec["resolution"]), out) for c in spec["contrasts"]]
    cam_methods = [m for m in settings.methods if m in CAM_FAMILY]
    mirror = {}
    if spec.get("slices"):  # the diagnostics run on whole volumes; a slice model gets its slice table
        write_slice_predictions(out, session, result, classes)
    else:
        if cam_methods:
            mirror = {m: float(r[0][0]) for m, r in mirroring(model, x, cam_methods, layer=layer).items()}
        write_layer_iteration(out, session, model, x, spec, template, predicted, classes.index(predicted))
    rows = []
    for method in settings.methods:
        maps = result[method][0].detach().cpu().numpy()
        for t, index in enumerate(result["targets"][0].tolist()):
            name = classes[index]
            heatmap = uncrop(maps[t].astype(np.float32), spec["crop"], template.shape)
            path = heatmap_path(out, session, method, name, spec["resolution"])
            save_nifti(template.image(heatmap), path)
            sidecar = {
                "Method": method, "Parameters": {k: params[k] for k in METHOD_NOTES[method][1]},
                "Layer": layer if method in CAM_FAMILY else None,
                "TargetClass": name, "TargetIndex": index, "Logit": float(result["logits"][0, index]),
                "PredictedClass": predicted,
                "PredictedProbabilities": {c: float(p) for c, p in zip(classes, probabilities)},
                "Model": model_name, "ModelMember": member, "ModelSha256": sha, "SplitAssignment": split,
                "ModelChoice": why,
                "AttentionWeights": attention,
                "MCDropout": {"Samples": settings.mc_samples,
                              "MeanProbabilities": {c: float(p) for c, p in zip(classes, mc[0])},
                              "SDProbabilities": {c: float(p) for c, p in zip(classes, mc[1])}} if mc else None,
                "Values": f"raw {METHOD_NOTES[method][0]}, on the model grid, zero outside the "
                          "model's crop",
                "SpatialReference": SPACE, "Resolution": f"{spec['resolution']:g} mm isotropic",
                "Sources": sources,
                "SoftwareVersions": f"bidsxai {__version__}, torch {torch.__version__}",
            }
            if method == "ig":
                sidecar["CompletenessError"] = float(result["ig_completeness_error"][0, t])
            if method == "perturbation":
                sidecar["ProbabilityBeforeMask"] = float(result["perturbation_probability_before"][0, t])
                sidecar["ProbabilityAfterMask"] = float(result["perturbation_probability_after"][0, t])
            write_json(sidecar_path(path), {k: v for k, v in sidecar.items() if v is not None})
            rows.append({"method": method, "target": name,
                         "p95": percentile_in_mask(heatmap, template.brain_mask),
                         "probability": float(probabilities[index]), "predicted": predicted,
                         "split": split, "model": member,
                         **({"mc_mean": float(mc[0][index]), "mc_sd": float(mc[1][index])} if mc else {}),
                         "mirror_r": mirror.get(method) if name == predicted else None})
    with atomic_path(measures_path(out, session)) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return predicted


def slices_path(out_dir, session):
    return derivative_path(out_dir, session.subject, session.session, "slices", ".tsv")


def write_slice_predictions(out, session, result, classes):
    """One row per classified slice of a 2D model: axial index on the template grid, the slice's
    predicted class and its class probabilities."""
    probabilities = result["slice_probabilities"].cpu().numpy()
    rows = [{"slice": int(z), "predicted": classes[int(p.argmax())],
             **{f"probability_{c}": float(v) for c, v in zip(classes, p)}}
            for z, p in zip(result["kept"], probabilities)]
    with atomic_path(slices_path(out, session)) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def write_layer_iteration(out, session, model, x, spec, template, predicted, index):
    """Grad-CAM of the predicted class at every convolution, as one 4D NIfTI (paper 003 §4.1.3)."""
    maps = layer_iteration(model, x, target=index)
    volume = np.stack([uncrop(m[0].detach().cpu().numpy().astype(np.float32), spec["crop"],
                              template.shape) for m in maps.values()], axis=-1)
    path = layers_path(out, session, "gradcam", predicted, spec["resolution"])
    save_nifti(template.image(volume), path)
    write_json(sidecar_path(path), {
        "Method": "gradcam", "TargetClass": predicted, "Layers": list(maps),
        "Description": "Grad-CAM of the predicted class at every convolutional layer (4th axis, "
                       "in the order of Layers): the evaluation-layer iteration of paper 003",
        "SpatialReference": SPACE})
