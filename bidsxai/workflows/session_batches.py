"""``--batch-sessions``: explain several sessions in one pass of the model.

participant --model runs its sessions one after the other in this process (the models are loaded
once). When a session's explanation is asked for and not made yet, the sessions after it in the
run that the same bundle member explains, with the same method parameters, join it, up to the
batch size: their inputs are stacked and classified and explained together
(``explain_sessions``). The others' explanations wait here for their turn, which then only writes.

A session is prepared (its explaining member, covariates, reference masks and input) before it
joins a batch, so one that cannot be (a mask that cannot be placed, a missing covariate, an
unreadable input) stays out and fails at its own turn with its own error, before any explanation
work, as it would alone. A batch whose explanation fails is given up for its first session alone
(the others are explained at their turn), and one out of device memory is halved for the rest of
the run. A model that takes covariates (bound to one subject at a time) and a 2D
model (whose batch is already one session's slices) explain one session at a time.
"""

import math
from dataclasses import dataclass

import torch

from bidsxai.logs import event
from bidsxai.memory import available_memory_gb, explanation_batch
from bidsxai.models.bundle import member_for
from bidsxai.models.covariates import binding, subject_covariates
from bidsxai.models.ensemble import FoldEnsemble
from bidsxai.template import load_template
from bidsxai.training.dataset import load_inputs
from bidsxai.workflows.ensemble_explain import explain_ensemble
from bidsxai.workflows.explain_session import explain_sessions, method_parameters
from bidsxai.workflows.reference_masks import reference_masks


def batch_size(settings, meta, device):
    """``--batch-sessions``, or by default what the memory available holds
    (``memory.explanation_batch``). A 2D model explains one session at a time: its batch is
    already the session's slices."""
    spec = meta["input"]
    if spec.get("slices"):
        return 1
    if settings.batch_sessions:
        return settings.batch_sessions
    voxels = math.prod(hi - lo for lo, hi in spec["crop"])
    return explanation_batch(voxels, available_memory_gb(device, settings.mem))


@dataclass
class PreparedSession:
    """What a session needs before it is explained."""

    member: str
    split: str
    why: str
    covariates: object  # a 1D tensor, or None
    masks: dict  # {label: PlacedMask}, empty without --evaluate
    x: torch.Tensor  # (1, C, *crop)
    parameters: dict  # every method's parameters for this input (``method_parameters``)


class SessionBatches:
    """The explanations of one run's ``sessions`` (in the order they are run), ``size`` at a time;
    ``job`` is the run's ``ExplainJob``."""

    def __init__(self, job, sessions, size):
        self.job = job
        self.sessions = list(sessions)
        self.size = 1 if job.models.meta.get("covariates") else size
        self.prepared = {}  # key -> PreparedSession
        self.explained = {}  # key -> SessionExplanation made with an earlier session's batch

    def prepare(self, session):
        """The session's ``PreparedSession``; raises its error (a session that could not be
        prepared ahead of its turn is prepared again at its turn)."""
        if session.key not in self.prepared:
            self.prepared[session.key] = self._prepared(session)
        return self.prepared[session.key]

    def _prepared(self, session):
        job, meta = self.job, self.job.models.meta
        spec = meta["input"]
        member, split, why = member_for(meta, session.subject)
        covariates = subject_covariates(
            meta.get("covariates") or [], job.participants, session.subject, job.device
        )
        template = load_template(spec["resolution"], spec["space"])
        # The masks first: one that cannot be placed fails before any explanation work.
        masks = reference_masks(job.settings, session, template) if job.options.evaluate else {}
        inputs = load_inputs(job.settings.output_dir, session.subject, session.session, spec)
        x = torch.from_numpy(inputs)[None].to(job.device)
        parameters = method_parameters(job.options, spec, x)
        return PreparedSession(member, split, why, covariates, masks, x, parameters)

    def explanation(self, session):
        """The session's ``SessionExplanation``, computed now with the sessions that can join
        it, or earlier with a batch it joined."""
        if session.key in self.explained:
            return self.explained[session.key]
        first = self.prepare(session)
        batch = [session, *self._joining(session, first)]
        while True:
            try:
                explanations = self._explain(batch)
                break
            except torch.cuda.OutOfMemoryError:
                if len(batch) == 1:
                    raise
                self.size = len(batch) // 2  # and for the rest of the run
                event("session_batch_reduced", size=self.size, reason="out of device memory")
                batch = batch[: self.size]
            except Exception:
                if len(batch) == 1:
                    raise
                # Which session broke the batch is not known: this one alone, the others at
                # their turn, so a failure is charged to the session that causes it.
                event("session_batch_failed", sessions=",".join(s.key for s in batch))
                batch = [session]
        self.explained.update({s.key: e for s, e in zip(batch[1:], explanations[1:])})
        return explanations[0]

    def _explain(self, batch):
        job, meta = self.job, self.job.models.meta
        spec = meta["input"]
        prepared = [self.prepare(s) for s in batch]
        model = job.models.get(prepared[0].member)
        if len(batch) > 1:
            keys = ",".join(s.key for s in batch)
            event("sessions_explained_together", member=prepared[0].member, sessions=keys)
        explain = explain_ensemble if isinstance(model, FoldEnsemble) else explain_sessions
        with binding(model, prepared[0].covariates):
            return explain(
                model,
                torch.cat([p.x for p in prepared]),
                spec,
                meta["classes"],
                job.options,
                job.layer,
                job.targets,
                load_template(spec["resolution"], spec["space"]),
            )

    def forget(self, session):
        """Drop what is kept for ``session`` (its turn is over)."""
        self.prepared.pop(session.key, None)
        self.explained.pop(session.key, None)

    def _joining(self, session, first):
        """The sessions after ``session`` that can be explained with it: not yet explained, by
        the same member, prepared without error and with the same method parameters. The search
        ends when the batch is full or ``size - 1`` candidates of that member could not join, so
        no more inputs than a batch's are kept ahead of their turn."""
        joining, turned_away = [], 0
        later = self.sessions[self.sessions.index(session) + 1 :]
        for candidate in later:
            if len(joining) == self.size - 1 or turned_away == self.size - 1:
                break
            if candidate.key in self.explained or (
                member_for(self.job.models.meta, candidate.subject)[0] != first.member
            ):
                continue
            try:
                prepared = self.prepare(candidate)
            except Exception:
                turned_away += 1  # it fails at its own turn, with its own error
                continue
            if prepared.parameters == first.parameters:
                joining.append(candidate)
            else:  # z-beta's bounds follow a z-scored input's own range
                turned_away += 1
        return joining
