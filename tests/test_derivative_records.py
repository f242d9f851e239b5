"""Every JSON and TSV file of a full run is read back through the record (or reader) that owns it,
records round-trip exactly, a file with a key missing or unknown is refused in one line, and the
records' keys are written nowhere else."""

import json
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bidsxai import derivatives
from bidsxai.derivatives import (
    HeatmapSidecar,
    LayerIterationSidecar,
    LesionLoad,
    MeasuresRow,
    QualityGate,
    read_json,
)
from bidsxai.errors import NoInputError
from bidsxai.explain.methods import METHODS
from bidsxai.models.bundle import read_meta

PACKAGE = Path(derivatives.__file__).parent
SESSION = r"sub-[^/]+/(?:ses-[^/]+/)?anat/[^/]+"


def _exact_json(record):
    """Reads a file of ``record`` and checks that writing the record gives the file back."""

    def read(path, tmp_path):
        text = path.read_text()
        read_back = record.from_json(path)
        assert json.dumps(read_back.to_json(), indent=2) + "\n" == text, path
        assert record.from_json(json.loads(text)) == read_back
        return read_back

    return read


def _measures(path, tmp_path):
    rows = MeasuresRow.read_tsv(path)
    copy = tmp_path / path.name
    MeasuresRow.write_tsv(copy, rows)
    assert copy.read_bytes() == path.read_bytes(), path
    return rows


def _keys(*required):
    """A plain JSON object with ``required`` keys."""

    def read(path, tmp_path):
        entries = read_json(path)
        assert [k for k in required if k not in entries] == [], path
        return entries

    return read


def _preprocessed_t1w(path, tmp_path):
    entries = _keys("Description", "SpatialReference", "Resolution", "Sources")(path, tmp_path)
    gate = QualityGate.in_sidecar(path)
    assert gate is not None and gate.to_json() == entries[QualityGate.KEY], path
    return gate


def _model(path, tmp_path):
    return read_meta(path.parent)


def _group_table(path, tmp_path):
    """A group TSV: method and target first; an analysis without rows writes an empty file."""
    if not path.read_text().strip():
        return None
    table = pd.read_csv(path, sep="\t")
    assert list(table.columns[:2]) == ["method", "target"], path
    return table


def _views(path, tmp_path):
    """A stat map's kept views: read back as the report reads them, every figure a PNG."""
    from bidsxai.reports.brain_figures import Figure
    from bidsxai.reports.kept_figures import kept_views

    views = kept_views(path, lambda: pytest.fail(f"{path} was not read"), reuse=True)
    figures = [v for v in views.values() if isinstance(v, Figure)]
    assert {"glass", "cuts"} <= set(views) and len(figures) >= 2, path
    assert all(f.src.startswith("data:image/png;base64,") for f in figures), path
    return views


def _mosaic(path, tmp_path):
    """A kept cohort mosaic: read back as the report reads it, a PNG per subject."""
    from bidsxai.reports.kept_figures import kept_views

    mosaic = kept_views(path, lambda: pytest.fail(f"{path} was not read"), reuse=True)
    thumbnails = [t for g in mosaic["groups"] for t in g["thumbnails"]]
    assert len(mosaic["centre_mm"]) == 3 and thumbnails, path
    assert all(t["uri"].startswith("data:image/png;base64,") for t in thumbnails), path
    assert all(t["subject"].startswith("sub-") and t["session"] for t in thumbnails), path
    return mosaic


# filename pattern (relative to OUTPUT_DIR) -> its reader; the first match owns the file.
READERS = {
    r"dataset_description\.json": _keys("Name", "BIDSVersion", "DatasetType", "GeneratedBy"),
    r"models/[^/]+/model\.json": _model,
    r"group/[a-z_]+\.tsv": _group_table,
    r"group/[^/]+_statmap\.json": _keys("Test", "Statistic", "Correction", "SpatialReference"),
    r"group/figures/[^/]+_views\.json": _views,
    r"group/figures/[^/]+_mosaic\.json": _mosaic,
    rf"{SESSION}_desc-layers_[^/]*_heatmap\.json": _exact_json(LayerIterationSidecar),
    rf"{SESSION}_heatmap\.json": _exact_json(HeatmapSidecar),
    rf"{SESSION}_measures\.tsv": _measures,
    rf"{SESSION}_desc-preproc_T1w\.json": _preprocessed_t1w,
    rf"{SESSION}_desc-preproc_(?:T2w|FLAIR)\.json": _keys(
        "Description", "SpatialReference", "Resolution", "Sources"
    ),
    rf"{SESSION}_desc-brain_mask\.json": _keys(
        "Type", "SkullStripping", "SpatialReference", "Resolution"
    ),
}


def owner(relative):
    """The pattern of READERS that owns a file, or None."""
    return next((p for p in READERS if re.fullmatch(p, relative)), None)


def test_every_json_and_tsv_file_of_a_run_is_read_by_its_record(pipeline, tmp_path):
    out = pipeline["out"]
    files = sorted(p for p in out.rglob("*") if p.suffix in (".json", ".tsv"))
    unclaimed = [p.relative_to(out).as_posix() for p in files if not owner(_rel(p, out))]
    assert unclaimed == []
    read = {}
    for path in files:
        pattern = owner(_rel(path, out))
        READERS[pattern](path, tmp_path)
        read[pattern] = read.get(pattern, 0) + 1
    assert set(read) == set(READERS), set(READERS) - set(read)  # no pattern is stale


def _rel(path, out):
    return path.relative_to(out).as_posix()


def test_a_file_of_an_unknown_kind_is_claimed_by_no_reader():
    assert owner("sub-01/anat/sub-01_space-MNI152NLin2009aSym_res-6_desc-x_probseg.json") is None
    assert owner("sub-01/anat/sub-01_measures.tsv") is not None


def _one_line_error(call, *words):
    with pytest.raises(NoInputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message


def _first(out, suffix):
    """The first file of a session ending in ``suffix`` (the layer-iteration map aside)."""
    return next(p for p in sorted(out.glob(f"sub-*/**/*{suffix}")) if "_desc-layers_" not in p.name)


def test_a_sidecar_with_a_key_missing_or_unknown_is_refused_in_one_line(pipeline, tmp_path):
    out = pipeline["out"]
    entries = read_json(_first(out, "_heatmap.json"))
    damaged = tmp_path / "sub-01_heatmap.json"
    for key in ("TargetClass", "ModelSha256"):  # its own key, and one of the model's provenance
        damaged.write_text(json.dumps({k: v for k, v in entries.items() if k != key}))
        _one_line_error(lambda: HeatmapSidecar.from_json(damaged), str(damaged), repr(key))
    damaged.write_text(json.dumps(dict(entries, Bogus=1)))
    _one_line_error(lambda: HeatmapSidecar.from_json(damaged), str(damaged), "'Bogus'")

    sidecar = read_json(_first(out, "_desc-preproc_T1w.json"))
    gate = sidecar[QualityGate.KEY]
    t1w = tmp_path / "sub-01_desc-preproc_T1w.json"
    t1w.write_text(
        json.dumps(dict(sidecar, QualityGate={k: gate[k] for k in gate if k != "Passed"}))
    )
    _one_line_error(lambda: QualityGate.in_sidecar(t1w), str(t1w), "'Passed'")
    thresholds = {k: v for k, v in gate["Thresholds"].items() if k != "IntensitySpread"}
    t1w.write_text(json.dumps(dict(sidecar, QualityGate=dict(gate, Thresholds=thresholds))))
    _one_line_error(lambda: QualityGate.in_sidecar(t1w), str(t1w), "'IntensitySpread'")


def test_a_measures_tsv_with_a_column_missing_or_unknown_is_refused_in_one_line(pipeline, tmp_path):
    table = pd.read_csv(_first(pipeline["out"], "_measures.tsv"), sep="\t")
    damaged = tmp_path / "sub-01_measures.tsv"
    for changed, word in (
        (table.drop(columns="p95"), "'p95'"),
        (table.assign(extra=1), "'extra'"),
        (table.assign(lesion_volume_mm3=1.0), "'lesion_count'"),
        (table.assign(p95="high"), "'high'"),
    ):
        changed.to_csv(damaged, sep="\t", index=False)
        _one_line_error(lambda: MeasuresRow.read_tsv(damaged), str(damaged), word)


def test_measures_rows_with_mc_dropout_and_lesion_load_round_trip(tmp_path):
    loads = {"lesion": LesionLoad(1234.5, 3), "WM": LesionLoad(0.0, 0)}
    rows = [
        MeasuresRow(
            method="gradcam",
            target=target,
            p95=0.25,
            probability=0.75,
            predicted="1",
            split="test",
            model="repeat-1_fold-2",
            mc_mean=0.5,
            mc_sd=0.125,
            mirror_r=0.5 if target == "1" else None,
            lesion_load=loads,
        )
        for target in ("0", "1")
    ]
    path = tmp_path / "sub-01_measures.tsv"
    MeasuresRow.write_tsv(path, rows)
    assert path.read_text().splitlines()[0].split("\t") == [
        "method",
        "target",
        "p95",
        "probability",
        "predicted",
        "split",
        "model",
        "mc_mean",
        "mc_sd",
        "mirror_r",
        "lesion_volume_mm3",
        "lesion_count",
        "WM_volume_mm3",
        "WM_count",
    ]
    assert MeasuresRow.read_tsv(path) == rows


def _record_keys(record):
    for f in fields(record):
        if f.metadata.get("flat"):
            yield from _record_keys(f.metadata["record"])
        elif "key" in f.metadata:
            yield f.metadata["key"]
            if f.metadata["record"]:
                yield from _record_keys(f.metadata["record"])


def test_the_records_keys_are_written_nowhere_else():
    """Keys every BIDS sidecar has (sources, space, description) are shared; the rest belong to
    the records."""
    shared = {"Method", "Description", "SpatialReference", "Resolution", "Sources"}
    shared |= {"SoftwareVersions"}
    keys = {QualityGate.KEY} | {
        k for r in (HeatmapSidecar, LayerIterationSidecar, QualityGate) for k in _record_keys(r)
    }
    quoted = re.compile("|".join(rf"""["']{k}["']""" for k in sorted(keys - shared)))
    offenders = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in PACKAGE.rglob("*.py")
        if p.name != "derivatives.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if quoted.search(line)
    ]
    assert offenders == []


def test_the_numbers_a_method_reports_besides_its_map_are_heatmap_sidecar_fields():
    result = {
        name: np.zeros((1, 1))
        for name in (
            "ig_completeness_error",
            "perturbation_probability_before",
            "perturbation_probability_after",
        )
    }
    names = {f.name for f in fields(HeatmapSidecar)}
    for method in [m for m, record in METHODS.items() if record.extras]:
        extras = METHODS[method].map_extras(result, 0, 0)
        assert extras and set(extras) <= names, method
