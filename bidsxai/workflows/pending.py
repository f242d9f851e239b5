"""``--write-pending FILE``: the subjects whose sessions are not yet done, for resubmission.

The file is written when the participant level starts (every selected subject) and rewritten,
atomically, each time a session's last stage finishes: preprocessing and its quality gate, and
with ``--model`` its explanation. So a job stopped by its time limit, killed, or ended with
failed sessions leaves exactly the subjects still to run, one label per line: the file that
``--participant-label`` reads. Finished preprocessing is skipped on the rerun (its resume key),
so resubmitting a subject redoes only what was not done.
"""

from bidsxai.atomic import write_text


class PendingList:
    def __init__(self, path, sessions, run_id, last_stage):
        self.path, self.run_id, self.last_stage = path, run_id, last_stage
        self.subject_of = {s.key: s.subject for s in sessions}
        self.left = {s.key: s.session for s in sessions}
        self._write()

    def finished(self, stage, outcome, passed=True):
        """One session's ``Outcome`` of ``stage``; ``passed``: its quality gate let it on."""
        if stage == self.last_stage and outcome.ok and passed and outcome.key in self.left:
            del self.left[outcome.key]
            self._write()

    def _write(self):
        lines = [
            f"# subjects with sessions not yet done by bidsxai participant (run {self.run_id}); "
            "resubmit with --participant-label FILE"
        ]
        subjects = {}
        for key, session in self.left.items():
            subjects.setdefault(self.subject_of[key], []).append(session)
        for subject, sessions in sorted(subjects.items()):
            named = [f"ses-{s}" for s in sessions if s]
            lines.append(f"sub-{subject}" + (f"  # {' '.join(named)}" if named else ""))
        write_text(self.path, "\n".join(lines) + "\n")
