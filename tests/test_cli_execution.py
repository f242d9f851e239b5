"""Execution options for clusters: a reusable pybids index and the methods text on its own."""

from conftest import RES, run_cli, snapshot

COMMON = ["--skip-bids-validation", "--resolution", RES]


def test_boilerplate_only_writes_the_methods_text_and_nothing_else(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(cohort, out, "participant", "--boilerplate-only", *COMMON) == 0
    text = (out / "logs" / "CITATION.md").read_text()
    assert "reoriented" in text and "percentiles" in text  # what this run's settings do
    assert (out / "logs" / "CITATION.bib").is_file()
    assert (
        not list(out.glob("sub-*"))
        and "methods text and references written" in capsys.readouterr().out
    )


def test_a_bids_database_is_made_once_and_reused(cohort, tmp_path):
    database = tmp_path / "pybids"
    before = snapshot(cohort)
    argv = ["participant", "--boilerplate-only", "--bids-database-dir", database, *COMMON]
    assert run_cli(cohort, tmp_path / "out", *argv) == 0
    index = snapshot(database)
    assert index, "the index was not saved"
    assert run_cli(cohort, tmp_path / "out", *argv) == 0
    assert snapshot(database) == index  # read, not rebuilt
    assert snapshot(cohort) == before


def test_a_bids_database_inside_the_dataset_is_refused(cohort_copy, tmp_path, capsys):
    argv = ["participant", "--bids-database-dir", cohort_copy / "code" / "db", *COMMON]
    assert run_cli(cohort_copy, tmp_path / "out", *argv) == 64
    assert "--bids-database-dir must not be inside BIDS_DIR" in capsys.readouterr().err


def test_the_target_defaults_to_the_bundles(pipeline, cohort_copy, tmp_path, capsys):
    import json
    import shutil

    participants = cohort_copy / "participants.tsv"
    participants.write_text(participants.read_text().replace("\tgroup\t", "\tdiagnosis\t", 1))
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    meta_path = out / "models" / "cnn3d_group" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, target="diagnosis")))
    argv = ["--participant-label", "02", *COMMON]
    assert run_cli(cohort_copy, out, "participant", "--model", "cnn3d_group", *argv) == 0
    assert "known diagnosis: <b>RRMS</b>" in (out / "sub-02.html").read_text()
    capsys.readouterr()
    assert run_cli(cohort_copy, out, "group", *COMMON) == 64  # no --model: the column "group"
    err = capsys.readouterr().err
    assert "--target group: no such column" in err and "diagnosis, age, sex" in err
    assert run_cli(cohort_copy, out, "group", "--model", "cnn3d_group", "--n-perm", 0, *COMMON) == 0


def test_any_templateflow_space_names_every_output(cohort, tmp_path, monkeypatch, capsys):
    """A template other than the default, here a copy of the seeded one under another name in a
    private TemplateFlow home, carries its name into every file, sidecar and the methods text."""
    import json
    import shutil

    from bidsxai.outputs import templateflow_folder
    from bidsxai.template_files import DEFAULT_SPACE, seed_default_space

    home = tmp_path / "templateflow"
    seeded = seed_default_space(home)
    toy = templateflow_folder(home, "Toy")
    toy.mkdir()
    for path in seeded.glob("*_res-1_*.nii.gz"):
        shutil.copy(path, toy / path.name.replace(DEFAULT_SPACE, "Toy"))
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(home))
    out = tmp_path / "out"
    argv = ["participant", "--participant-label", "01", "--output-spaces", "Toy", *COMMON]
    assert run_cli(cohort, out, *argv) == 0
    written = [p.name for p in (out / "sub-01").rglob("*.nii.gz")]
    assert written and all("Toy" in name for name in written if "space-" in name or "to-" in name)
    assert not [name for name in written if DEFAULT_SPACE in name]
    sidecar = next((out / "sub-01" / "anat").glob("*_desc-preproc_T1w.json"))
    assert json.loads(sidecar.read_text())["SpatialReference"] == "Toy"
    methods = (out / "logs" / "CITATION.md").read_text()
    assert "TemplateFlow's Toy [@ciric2022]" in methods and "fonov2011" not in methods


def test_reports_only_describes_the_run_that_made_the_outputs(pipeline, cohort, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    argv = ["participant", "--reports-only", "--model", "cnn3d_group", "--methods", "lrp"]
    assert run_cli(cohort, out, *argv, "--participant-label", "02", *COMMON) == 0
    report = (out / "sub-02.html").read_text()
    methods = report[report.index('<section id="methods">') :]
    assert "Grad-CAM" in methods and "layer-wise relevance" not in methods.lower()
