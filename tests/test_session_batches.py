"""``--batch-sessions``: how sessions are grouped, with the explaining functions replaced by a
recorder (the maps themselves are compared with one-at-a-time runs in test_end_to_end)."""

from types import SimpleNamespace

import torch

from bidsxai.workflows import session_batches


def _batches(monkeypatch, n_sessions, size, explain, member=lambda subject: "fold-1"):
    monkeypatch.setattr(session_batches, "explain_sessions", explain)
    monkeypatch.setattr(session_batches, "load_template", lambda *args: None)
    monkeypatch.setattr(
        session_batches, "member_for", lambda meta, subject: (member(subject), "fold", "")
    )
    sessions = [SimpleNamespace(key=f"sub-{i}", subject=str(i)) for i in range(n_sessions)]
    meta = {"input": {"resolution": 6, "space": None}, "classes": []}
    models = SimpleNamespace(meta=meta, get=lambda m: torch.nn.Identity())
    job = SimpleNamespace(models=models, options=None, layer=None, targets="all")
    batches = session_batches.SessionBatches(job, sessions, size)

    def prepared(session):
        if session.subject == "2":
            raise ValueError("unreadable input")
        x = torch.full((1, 1, 1), float(session.subject))
        parameters = {"lrp": {"bounds": [0.0, 1.0 + (session.subject == "5")]}}
        return session_batches.PreparedSession(
            member(session.subject), "", "", None, {}, x, parameters
        )

    monkeypatch.setattr(batches, "_prepared", prepared)
    return sessions, batches


def _recorder(calls, fits=None, breaks=None):
    def explain(model, x, *args):
        calls.append([int(v) for v in x[:, 0, 0]])
        if fits is not None and len(x) > fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        if len(x) > 1 and breaks in calls[-1]:
            raise RuntimeError("a session breaks its batch")
        return [f"explanation of {int(v)}" for v in x[:, 0, 0]]

    return explain


def test_sessions_of_one_member_are_explained_together_and_a_failing_one_alone(monkeypatch):
    calls = []
    member = lambda subject: "fold-1" if int(subject) % 2 == 0 else "fold-2"
    sessions, batches = _batches(monkeypatch, 7, 3, _recorder(calls), member)
    got = {}
    for session in sessions:
        try:
            got[session.key] = batches.explanation(session)
        except ValueError as exc:  # sub-2's own error, at its own turn
            got[session.key] = str(exc)
    assert got == {s.key: f"explanation of {s.subject}" for s in sessions} | {
        "sub-2": "unreadable input"
    }
    # sub-5's method parameters differ from sub-1's (z-beta's bounds): it waits for its turn.
    assert calls == [[0, 4, 6], [1, 3], [5]]


def _explain_all_but_the_failing(sessions, batches):
    for session in sessions:
        if session.subject != "2":
            assert batches.explanation(session) == f"explanation of {session.subject}"


def test_a_batch_out_of_device_memory_is_halved_for_the_rest_of_the_run(monkeypatch):
    calls = []
    _explain_all_but_the_failing(*_batches(monkeypatch, 6, 4, _recorder(calls, fits=2)))
    assert calls == [[0, 1, 3, 4], [0, 1], [3, 4], [5]]


def test_a_batch_that_fails_is_given_up_for_its_sessions_alone(monkeypatch):
    calls = []
    _explain_all_but_the_failing(*_batches(monkeypatch, 6, 3, _recorder(calls, breaks=3)))
    assert calls == [[0, 1, 3], [0], [1, 3, 4], [1], [3, 4], [3], [4], [5]]
