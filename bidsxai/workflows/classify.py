"""participant --model: classify and explain each session with the bundle member that never
trained on its subject, then write the results (``session_batches`` and ``explain_session``
compute, ``explanation_outputs`` writes)."""

from contextlib import ExitStack
from dataclasses import dataclass

import torch

from bidsxai.bids import read_participants
from bidsxai.derivatives import Provenance
from bidsxai.errors import UsageError
from bidsxai.explain import CAM_FAMILY, explain_many
from bidsxai.models.bundle import BundleModels, resolve_bundle
from bidsxai.models.covariates import binding
from bidsxai.models.registry import get_architecture
from bidsxai.outputs import parse_member
from bidsxai.template import load_template
from bidsxai.workflows.device import pick_device
from bidsxai.workflows.evaluate_session import (
    evaluate_session,
    write_evaluation,
    write_reference_masks,
)
from bidsxai.workflows.explanation_outputs import write_explanation
from bidsxai.workflows.external_model import check_first_input, runnable_methods, with_methods
from bidsxai.workflows.lesion_load import mask_loads
from bidsxai.workflows.session_batches import SessionBatches, batch_size
from bidsxai.workflows.sessions import run_sessions


def target_indices(spec, classes):
    """--targets predicted|all|NAME,... as explain_many's ``targets`` for one sample."""
    if spec in ("predicted", "all"):
        return spec
    names = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in names if t not in classes]
    if unknown or not names:
        raise UsageError(
            f"--targets: unknown class(es) {', '.join(unknown) or '(none)'}; the model's "
            f"classes are {', '.join(classes)}"
        )
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
        explain_many(
            model,
            torch.zeros([1] + shape, device=device),
            cam_methods,
            layer=layer,
            targets="predicted",
            upsample=False,
        )
    except ValueError as exc:
        raise UsageError(f"--methods/--explain-layer: {exc}") from None


@dataclass
class ExplainJob:
    """What every session of one participant-level run shares."""

    settings: object
    options: object  # the run's explanation stage, passed whole to the explanation and evaluation
    models: BundleModels
    participants: object  # participants.tsv, or None when the model takes no covariates
    layer: str
    targets: object
    device: torch.device
    bundle: str


def classify_sessions(settings, sessions, pending=None):
    folder = resolve_bundle(settings.model, settings.output_dir)
    device = pick_device(settings.device)
    models = BundleModels(folder, device)
    meta = models.meta
    network = models.representative()
    external = "external" in meta
    layer = (
        settings.explain_layer
        or meta.get("explain_layer")
        or (None if external else get_architecture(meta["architecture"]).default_layer(network))
    )
    targets = target_indices(settings.targets, meta["classes"])
    if external:
        settings = with_methods(settings, runnable_methods(meta, settings.methods, layer))
        check_first_input(network, meta, settings.output_dir, sessions[0], device)
    check_methods(network, meta, settings.methods, layer, device)
    participants = read_participants(settings.bids_dir) if meta.get("covariates") else None
    job = ExplainJob(
        settings,
        settings.stage("explanation"),
        models,
        participants,
        layer,
        targets,
        device,
        folder.name,
    )
    batches = SessionBatches(job, sessions, batch_size(settings, meta, device))
    return run_sessions(
        classify_one,
        sessions,
        (job, batches),
        settings.crash_dir,
        nprocs=1,
        desc="explaining",
        stop=settings.stop_on_first_crash,
        on_finished=(lambda outcome: pending.finished("explaining", outcome)) if pending else None,
    )


def classify_one(session, job, batches):
    """Explain one session with its out-of-fold member (in a batch of sessions, ``batches``)
    and write the results."""
    try:
        return _write_session(session, job, batches.prepare(session), batches.explanation(session))
    finally:
        batches.forget(session)


def _write_session(session, job, prepared, explanation):
    spec = job.models.meta["input"]
    member, split = prepared.member, prepared.split
    model = job.models.get(member)
    template = load_template(spec["resolution"], spec["space"])
    out = job.settings.output_dir
    provenance = Provenance(job.bundle, member, job.models.sha256(member), split, prepared.why)
    predicted = write_explanation(
        out,
        session,
        explanation,
        provenance,
        spec,
        job.layer,
        template,
        job.options.mc_samples,
        mask_loads(job.settings, session, template),
    )
    if job.options.evaluate:
        write_reference_masks(out, session, prepared.masks, template)
        others = (
            _robustness_members(job, member, split) if "robustness" in job.options.evaluate else {}
        )
        with ExitStack() as bound:
            for m in [model, *[m for group in others.values() for m in group.values()]]:
                bound.enter_context(binding(m, prepared.covariates))
            rows, curves, randomisation = evaluate_session(
                model,
                prepared.x,
                spec,
                explanation,
                job.options,
                job.layer,
                template,
                {name: placed.array for name, placed in prepared.masks.items()},
                others,
            )
        write_evaluation(out, session, rows, curves, job.settings, randomisation)
    return predicted


def _robustness_members(job, member, split):
    """{"fold": the fold models of repeat 1 and run 1, "run": every training run of ``member``'s
    fold (``train --seeds``)}, each by name, among the models that never trained on the subject:
    a cohort subject (``split`` "fold-<k>") was in the training set of every fold model but its
    own, so its fold robustness would mix in-sample maps with the out-of-sample one and is left
    out; the runs of its own fold never saw it."""
    names = {n: parse_member(n) for n in job.models.meta.get("members", {})}
    own = names.get(member)
    in_cohort = split.startswith("fold-")
    groups = {
        "fold": [n for n, p in names.items() if p and p[0] == 1 and p[2] == 1 and not in_cohort],
        "run": [n for n, p in names.items() if own and p and p[:2] == own[:2]],
    }
    return {kind: {n: job.models.get(n) for n in group} for kind, group in groups.items()}
