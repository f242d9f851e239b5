"""The contents of the derivative files bidsxai writes and reads back, as records: a heatmap's
sidecar (and the layer-iteration map's), one row of a session's measures TSV, the quality gate in a
preprocessed T1w's sidecar.

Each JSON key and TSV column is named once, here, so a writer and its readers cannot drift apart:
writers build a record and write what it gives, readers get a record back. A file with a key or
column missing or unknown is refused with one line naming the file and the key
(``NoInputError``), not a ``KeyError`` deep inside a report.
"""

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd

from bidsxai.atomic import atomic_path, write_json
from bidsxai.errors import NoInputError


def entry(key, *, optional=False, record=None):
    """A field stored under JSON ``key``; an ``optional`` one is left out of the file while it is
    None (and None where the file has none); a ``record`` field holds a nested object."""
    metadata = {"key": key, "optional": optional, "record": record, "flat": False}
    return field(default=None, metadata=metadata) if optional else field(metadata=metadata)


def flat(record):
    """A field whose record's entries sit among its owner's, without a key of their own (as the
    model's provenance does in a heatmap sidecar)."""
    return field(metadata={"key": None, "optional": False, "record": record, "flat": True})


def read_json(path):
    """A JSON file's contents, or a one-line ``NoInputError`` where it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise NoInputError(f"{path}: unreadable ({exc})") from None


class JsonRecord:
    """A frozen dataclass whose fields are JSON entries (``entry``, ``flat``), written in field
    order."""

    what = "record"  # what the error messages call a file's object of this kind

    def to_json(self):
        """The JSON object, keys in field order."""
        entries = {}
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if meta["flat"]:
                entries.update(value.to_json())
            elif value is not None or not meta["optional"]:
                entries[meta["key"]] = value.to_json() if isinstance(value, JsonRecord) else value
        return entries

    @classmethod
    def from_json(cls, source):
        """The record of a JSON object, given as a mapping or as the path of its file."""
        if isinstance(source, Mapping):
            return cls.from_entries(source, "(JSON object)")
        return cls.from_entries(read_json(source), source)

    @classmethod
    def from_entries(cls, entries, origin):
        """The record of ``entries``, a JSON object read from ``origin`` (named in errors)."""
        if not isinstance(entries, Mapping):
            raise NoInputError(f"{origin}: its {cls.what} is not a JSON object")
        rest = dict(entries)
        record = cls._take(rest, origin, cls.what)
        if rest:
            raise NoInputError(f"{origin}: unknown key {next(iter(rest))!r} in its {cls.what}")
        return record

    @classmethod
    def _take(cls, rest, origin, what):
        """The record made of the keys of ``rest`` it owns, each removed from ``rest``."""
        values = {}
        for f in fields(cls):
            meta = f.metadata
            if meta["flat"]:
                values[f.name] = meta["record"]._take(rest, origin, what)
            elif meta["key"] in rest:
                value = rest.pop(meta["key"])
                nested = meta["record"]
                if nested is not None and value is not None:
                    value = nested.from_entries(value, origin)
                values[f.name] = value
            elif not meta["optional"]:
                raise NoInputError(f"{origin}: no {meta['key']!r} in its {what}")
        return cls(**values)


@dataclass(frozen=True)
class Provenance(JsonRecord):
    """Which model explained a session, and why that one."""

    what = "model provenance"

    bundle: str = entry("Model")
    member: str = entry("ModelMember")
    sha256: str = entry("ModelSha256")
    split: str = entry("SplitAssignment")  # the subject's role for that member: fold-K, test, new
    choice: str = entry("ModelChoice")  # why this member was chosen


@dataclass(frozen=True, kw_only=True)
class MCDropout(JsonRecord):
    """The class probabilities under MC dropout: mean and SD over ``samples`` passes."""

    what = "MC-dropout summary"

    samples: int = entry("Samples")
    mean_probabilities: dict = entry("MeanProbabilities")
    sd_probabilities: dict = entry("SDProbabilities")


@dataclass(frozen=True, kw_only=True)
class HeatmapSidecar(JsonRecord):
    """The sidecar of one method's heatmap for one target class: what was explained, by which
    model, with which prediction, and what the values are."""

    what = "heatmap sidecar"

    method: str = entry("Method")
    parameters: dict = entry("Parameters")
    layer: str | None = entry("Layer", optional=True)  # the CAM family's layer
    target_class: str = entry("TargetClass")
    target_index: int = entry("TargetIndex")
    logit: float = entry("Logit")
    predicted_class: str = entry("PredictedClass")
    predicted_probabilities: dict = entry("PredictedProbabilities")
    provenance: Provenance = flat(Provenance)
    attention_weights: dict | None = entry("AttentionWeights", optional=True)
    mc_dropout: MCDropout | None = entry("MCDropout", optional=True, record=MCDropout)
    values: str = entry("Values")
    spatial_reference: str = entry("SpatialReference")
    resolution: str = entry("Resolution")
    sources: list = entry("Sources")
    software_versions: str = entry("SoftwareVersions")
    # What a method reports besides its map: integrated gradients, meaningful perturbation.
    completeness_error: float | None = entry("CompletenessError", optional=True)
    probability_before_mask: float | None = entry("ProbabilityBeforeMask", optional=True)
    probability_after_mask: float | None = entry("ProbabilityAfterMask", optional=True)


@dataclass(frozen=True, kw_only=True)
class LayerIterationSidecar(JsonRecord):
    """The sidecar of the 4D map of Grad-CAM at every convolutional layer (Avci 2021)."""

    what = "layer-iteration sidecar"

    method: str = entry("Method")
    target_class: str = entry("TargetClass")
    layers: list = entry("Layers")  # the layer of each volume along the 4th axis
    description: str = entry("Description")
    spatial_reference: str = entry("SpatialReference")
    provenance: Provenance = flat(Provenance)
    sources: list = entry("Sources")


@dataclass(frozen=True, kw_only=True)
class GateMeasures(JsonRecord):
    """The quality gate's three numbers: as measured on a T1w, or as its thresholds."""

    what = "quality-gate measures"

    brain_coverage: float = entry("BrainCoverage")
    template_correlation: float = entry("TemplateCorrelation")
    intensity_spread: float = entry("IntensitySpread")


@dataclass(frozen=True, kw_only=True)
class QualityGate(JsonRecord):
    """The quality gate of a preprocessed T1w, recorded under ``QualityGate`` in its sidecar:
    each measured value, the thresholds, and why it failed (``reasons``, empty when it passed)."""

    what = "quality gate"
    KEY = "QualityGate"  # its entry in the T1w's sidecar

    measured: GateMeasures = flat(GateMeasures)
    thresholds: GateMeasures = entry("Thresholds", record=GateMeasures)
    passed: bool = entry("Passed")
    reasons: list = entry("Reasons")

    @classmethod
    def in_sidecar(cls, path):
        """The gate recorded in the sidecar at ``path``, or None where it has none yet."""
        entries = read_json(path)
        return cls.from_entries(entries[cls.KEY], path) if cls.KEY in entries else None

    def record_in(self, path):
        """Record the gate in the sidecar at ``path``; a sidecar that already says so is left
        untouched (a resumed run rewrites nothing)."""
        entries = read_json(path) if Path(path).is_file() else {}
        if entries.get(self.KEY) != self.to_json():
            write_json(path, dict(entries, **{self.KEY: self.to_json()}))


@dataclass(frozen=True)
class LesionLoad:
    """The volume and the number of separate lesions of one reference mask."""

    volume_mm3: float
    count: int


def column(parse, *, optional=False):
    """A TSV column named as its field, read by ``parse`` (an empty cell is None); an
    ``optional`` column is written only where its value is not None."""
    metadata = {"parse": parse, "optional": optional}
    return field(default=None, metadata=metadata) if optional else field(metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class MeasuresRow:
    """One row of a session's measures TSV: one method's map for one target class, the session's
    prediction, and the session's lesion load (the same on every row), whose columns
    ``<label>_volume_mm3`` and ``<label>_count`` come from each reference mask's label."""

    what = "measures TSV"
    VOLUME, COUNT = "_volume_mm3", "_count"

    method: str = column(str)
    target: str = column(str)
    p95: float = column(float)
    probability: float = column(float)
    predicted: str = column(str)
    split: str = column(str)
    model: str = column(str)  # the bundle member
    mc_mean: float | None = column(float, optional=True)  # with MC dropout only
    mc_sd: float | None = column(float, optional=True)
    mirror_r: float | None = column(float)  # the predicted class's CAM-family maps only
    lesion_load: Mapping = field(default_factory=dict)  # {label: LesionLoad}

    def lesion_columns(self):
        """{column: value} of the lesion load, each label's volume then its count."""
        columns = {}
        for label, load in self.lesion_load.items():
            columns[label + self.VOLUME] = load.volume_mm3
            columns[label + self.COUNT] = load.count
        return columns

    def columns(self):
        """{column: value} in the file's order."""
        row = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if "parse" in f.metadata and not (f.metadata["optional"] and value is None):
                row[f.name] = value
        return dict(row, **self.lesion_columns())

    @classmethod
    def write_tsv(cls, path, rows):
        write_table(path, [row.columns() for row in rows])

    @classmethod
    def read_tsv(cls, path):
        """The rows of the measures TSV at ``path``."""
        try:
            with Path(path).open(newline="") as f:
                reader = csv.DictReader(f, delimiter="\t")
                header, cells = reader.fieldnames or [], list(reader)
        except OSError as exc:
            raise NoInputError(f"{path}: unreadable ({exc})") from None
        fixed = {f.name: f for f in fields(cls) if "parse" in f.metadata}
        labels = {}
        for name in header:
            if name in fixed:
                continue
            suffix = next((s for s in (cls.VOLUME, cls.COUNT) if name.endswith(s)), None)
            if suffix is None or name == suffix:
                raise NoInputError(f"{path}: unknown column {name!r} in a {cls.what}")
            labels.setdefault(name[: -len(suffix)], set()).add(suffix)
        needed = [n for n, f in fixed.items() if not f.metadata["optional"]] + [
            label + s for label in labels for s in (cls.VOLUME, cls.COUNT)
        ]
        missing = [n for n in needed if n not in header]
        if missing:
            raise NoInputError(f"{path}: no column {missing[0]!r} in a {cls.what}")
        return [cls._parse(row, fixed, labels, path) for row in cells]

    @classmethod
    def _parse(cls, cells, fixed, labels, path):
        def value(name, parse):
            text = cells.get(name)
            if text is None:
                raise NoInputError(f"{path}: a row without a {name!r} cell in a {cls.what}")
            try:
                return None if text == "" and parse is not str else parse(text)
            except ValueError:
                raise NoInputError(f"{path}: {name} {text!r} is not a number") from None

        values = {n: value(n, f.metadata["parse"]) for n, f in fixed.items() if n in cells}
        loads = {
            label: LesionLoad(value(label + cls.VOLUME, float), value(label + cls.COUNT, int))
            for label in labels
        }
        return cls(**values, lesion_load=loads)


def write_table(path, rows):
    """A TSV of ``rows`` (dicts, columns in their order), numbers to 6 significant digits and
    None as an empty cell."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False, float_format="%.6g")
