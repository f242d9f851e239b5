"""QC ratings that feed back into the analysis: the ``qc-ratings.tsv`` a reviewer downloads from
the subject reports (one row per rated session: participant_id, session, rating, note, rater,
time) and the sessions that ``train`` and ``group --exclude-file`` leave out because of them.

A session's latest rating (by ``time``, then by its place in the files) counts; only ``fail``
leaves a session out, ``pass`` and ``unsure`` keep it. Several files may be given, and files
joined with ``cat`` (a header line inside is skipped) read the same as one.
"""

import csv
from datetime import datetime, timezone
from pathlib import Path

from bidsxai.errors import NoInputError
from bidsxai.outputs import session_key

COLUMNS = ("participant_id", "session", "rating", "note", "rater", "time")
RATINGS = ("pass", "fail", "unsure")


def _when(text):
    """An ISO 8601 time (``Z`` or an offset; none: UTC) as an aware datetime, else None."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _rows(path):
    """The rated rows of one file, each checked (one ``NoInputError`` naming the file and line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise NoInputError(f"--exclude-file {path}: cannot read it ({exc})") from None
    rows = []
    for number, values in enumerate(csv.reader(lines, delimiter="\t"), start=1):
        if not values or tuple(values) == COLUMNS:
            continue
        where = f"--exclude-file {Path(path).name} line {number}"
        if len(values) != len(COLUMNS):
            raise NoInputError(
                f"{where}: {len(values)} columns, expected {len(COLUMNS)} ({', '.join(COLUMNS)})"
            )
        row = dict(zip(COLUMNS, values))
        if not row["participant_id"].startswith("sub-"):
            raise NoInputError(
                f"{where}: participant_id {row['participant_id']!r} is not sub-<label>"
            )
        if row["rating"] not in RATINGS:
            raise NoInputError(
                f"{where}: rating {row['rating']!r} is not one of {', '.join(RATINGS)}"
            )
        if _when(row["time"]) is None:
            raise NoInputError(f"{where}: time {row['time']!r} is not an ISO 8601 time")
        rows.append(row)
    return rows


def latest_ratings(paths):
    """{session key (sub-01 or sub-01_ses-02): its latest rating row} over every file."""
    rows = [row for path in paths for row in _rows(path)]
    ordered = sorted(enumerate(rows), key=lambda item: (_when(item[1]["time"]), item[0]))
    latest = {}
    for _, row in ordered:
        subject = row["participant_id"].removeprefix("sub-")
        session = row["session"].removeprefix("ses-")
        latest[session_key(subject, None if session in ("", "n/a") else session)] = row
    return latest


def failed_sessions(paths):
    """{session key: the reason it is left out} of the sessions whose latest rating is fail."""
    return {
        key: f"QC rating fail by {row['rater'] or 'an unnamed rater'} at {row['time']}"
        + (f": {row['note']}" if row["note"] else "")
        for key, row in latest_ratings(paths).items()
        if row["rating"] == "fail"
    }
