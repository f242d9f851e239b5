"""BIDS in and BIDS-Derivatives out: input queries (pybids), participants.tsv, the derivatives'
dataset description and .bidsignore, BIDS URIs. File names are in ``bidsxai.outputs``."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bidsxai import __version__
from bidsxai.atomic import write_json, write_text
from bidsxai.errors import InvalidBidsError, NothingSelectedError, UsageError
from bidsxai.outputs import BIDSIGNORE, session_key

CONTRAST_KEYS = {"t1w": "T1w", "t2w": "T2w", "flair": "FLAIR"}
DEFAULT_QUERIES = {
    key: {"datatype": "anat", "suffix": suffix} for key, suffix in CONTRAST_KEYS.items()
}


@dataclass
class SessionInputs:
    """The raw images of one subject (and session) that bidsxai reads."""

    subject: str
    session: str | None
    files: dict = field(default_factory=dict)  # contrast suffix -> absolute path

    @property
    def key(self):
        return session_key(self.subject, self.session)


def strip_prefix(label, prefix):
    return label[len(prefix) :] if label.startswith(prefix) else label


def check_is_bids(bids_dir):
    desc = Path(bids_dir) / "dataset_description.json"
    if not desc.is_file():
        raise InvalidBidsError(f"{bids_dir} is not a BIDS dataset (no dataset_description.json)")
    try:
        json.loads(desc.read_text())
    except (ValueError, OSError) as exc:
        raise InvalidBidsError(f"{desc}: not valid JSON ({exc})") from None


def open_layout(bids_dir, derivatives=None, database=None):
    """The pybids index of a dataset; with ``database`` (a folder) it is saved there on first use
    and read back afterwards."""
    from bids import BIDSLayout

    try:
        return BIDSLayout(
            str(bids_dir),
            validate=False,
            derivatives=derivatives or False,
            database_path=str(database) if database else None,
        )
    except Exception as exc:  # pybids raises its own errors for unreadable datasets
        raise InvalidBidsError(f"{bids_dir}: pybids cannot index it ({exc})") from None


def load_filters(path):
    """A --bids-filter-file: {"t1w": {entity: value}, ...} merged over the default queries."""
    queries = {k: dict(v) for k, v in DEFAULT_QUERIES.items()}
    if path is None:
        return queries
    try:
        user = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--bids-filter-file {path}: cannot read JSON ({exc})") from None
    unknown = set(user) - set(queries)
    if not isinstance(user, dict) or unknown:
        raise UsageError(
            f"--bids-filter-file keys must be among {sorted(queries)}; got {sorted(unknown)}"
        )
    for key, extra in user.items():
        queries[key].update(extra)
    return queries


def select_inputs(
    layout,
    participant_labels=None,
    session_labels=None,
    filters=None,
    contrasts=("T1w", "T2w", "FLAIR"),
):
    """One ``SessionInputs`` per selected subject/session; exit 18 when the filters select
    nothing."""
    queries = filters or load_filters(None)
    subjects = sorted(layout.get_subjects())
    if participant_labels:
        wanted = [strip_prefix(p, "sub-") for p in participant_labels]
        missing = [p for p in wanted if p not in subjects]
        if missing:
            raise NothingSelectedError(
                f"participant label(s) not in the dataset: {', '.join('sub-' + m for m in missing)}"
            )
        subjects = wanted
    wanted_sessions = [strip_prefix(s, "ses-") for s in session_labels or []]
    selected = []
    for sub in subjects:
        sessions = sorted(layout.get_sessions(subject=sub)) or [None]
        if wanted_sessions:
            sessions = [s for s in sessions if s in wanted_sessions]
        for ses in sessions:
            item = SessionInputs(sub, ses)
            for key, suffix in CONTRAST_KEYS.items():
                if suffix not in contrasts:
                    continue
                query = dict(
                    queries[key],
                    subject=sub,
                    extension=[".nii", ".nii.gz"],
                    return_type="file",
                    scope="raw",
                )
                if ses:
                    query["session"] = ses
                found = sorted(layout.get(**query))
                if found:
                    item.files[suffix] = Path(found[0])
            selected.append(item)
    if not selected:
        raise NothingSelectedError("the participant/session filters selected no data")
    return selected


def read_participants(bids_dir):
    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        return pd.DataFrame(columns=["participant_id"])
    table = pd.read_csv(path, sep="\t", dtype=str, na_values=["n/a"], keep_default_na=False)
    table["participant_id"] = table["participant_id"].map(lambda p: strip_prefix(p, "sub-"))
    return table.set_index("participant_id")


def bids_uri(dataset, path, root):
    """``bids:<dataset>:<relative path>`` as BIDS-Derivatives Sources expect."""
    return f"bids:{dataset}:{Path(path).resolve().relative_to(Path(root).resolve()).as_posix()}"


def init_derivatives(out_dir, bids_dir, links=None):
    """dataset_description.json (written once; the DatasetLinks of ``links``, {name: folder}, are
    added where missing, so that the Sources' ``bids:<name>:`` URIs resolve) and .bidsignore (kept,
    missing entries added)."""
    out_dir = Path(out_dir)
    desc = out_dir / "dataset_description.json"
    if desc.is_file():
        description = json.loads(desc.read_text())
    else:
        generated = {
            "Name": "bidsxai",
            "Version": __version__,
            "CodeURL": "https://github.com/bidsxai/bidsxai",
        }
        if os.environ.get("BIDSXAI_CONTAINER"):
            generated["Container"] = {
                "Type": os.environ.get("BIDSXAI_CONTAINER_TYPE", "docker"),
                "Tag": os.environ["BIDSXAI_CONTAINER"],
            }
        description = {
            "Name": "bidsxai derivatives",
            "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [generated],
            "SourceDatasets": [{"URL": "bids:raw:."}],
            "DatasetLinks": {"raw": _link(bids_dir, out_dir)},
        }
    dataset_links = description.setdefault("DatasetLinks", {})
    wanted = {name: _link(path, out_dir) for name, path in (links or {}).items()}
    if not desc.is_file() or any(name not in dataset_links for name in wanted):
        for name, link in wanted.items():
            dataset_links.setdefault(name, link)
            source = {"URL": f"bids:{name}:."}
            if source not in description.setdefault("SourceDatasets", []):
                description["SourceDatasets"].append(source)
        write_json(desc, description)
    ignore = out_dir / ".bidsignore"
    present = ignore.read_text().splitlines() if ignore.is_file() else []
    missing = [line for line in BIDSIGNORE.splitlines() if line not in present]
    if missing:  # a folder from an older bidsxai (or the user's own file) gains the new entries
        write_text(ignore, "\n".join(present + missing) + "\n")


def _link(folder, out_dir):
    """A dataset's DatasetLinks entry: relative to OUTPUT_DIR, or a file URI across drives."""
    try:
        return os.path.relpath(Path(folder).resolve(), Path(out_dir).resolve())
    except ValueError:  # different drives on Windows
        return Path(folder).resolve().as_uri()
