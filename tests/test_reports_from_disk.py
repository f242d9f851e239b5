"""Every report is an ordered list of sections drawn from what is on disk: ``--reports-only``
rewrites the training and group reports without training or testing anything, and a run that
reads a bundle or earlier outputs takes its grid from them."""

import re
import shutil
import subprocess
import sys
from importlib import resources

import pytest
from conftest import RES, messages, run_cli

from bidsxai.reports import group, subject, training
from bidsxai.reports.sections import Section, assemble


def _copy(pipeline, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    return out


def _files(folder, keep=lambda path: True):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and keep(p)}


def _undated(html):
    """A report without the time it was generated."""
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "", html)


def test_group_reports_only_rewrites_the_report_and_no_statistic(
    pipeline, cohort, tmp_path, monkeypatch, capsys
):
    out = _copy(pipeline, tmp_path)
    # The run's record names the atlas that --atlas auto meant, so a report rewritten after AAL was
    # installed or removed still describes the tables on disk.
    # (Runs other tests refused on the shared outputs stopped before choosing an atlas.)
    finished = [
        p.read_text()
        for p in (out / "logs").glob("group-*.toml")
        if "event=run_finished" in p.with_suffix(".log").read_text()
    ]
    computed = [record for record in finished if "reports_only = false" in record]
    assert computed and all('atlas = "aal"' in record for record in computed)
    statistics = {**_files(out / "group"), **_files(out / "group" / "figures")}
    before = (out / "group.html").read_text()
    (out / "group.html").unlink()

    def recomputed(*args, **kwargs):
        raise AssertionError("--reports-only recomputed a group statistic")

    for name in ("analyse", "two_sample", "coverage", "paired"):
        monkeypatch.setattr(f"bidsxai.workflows.group.{name}", recomputed)
    # ...nor draws a stat map or reads every subject's map again: the group run kept the views
    # and the cohort mosaic (reports.kept_figures).
    monkeypatch.setattr("bidsxai.reports.brain_figures.statistic_views", recomputed)
    monkeypatch.setattr("bidsxai.reports.group.cohort_mosaic", recomputed)
    # No --resolution: the outputs hold one grid (6 mm), and the report is drawn on it.
    code = run_cli(cohort, out, "group", "--reports-only", "--skip-bids-validation")
    assert code == 0, capsys.readouterr().err
    assert {**_files(out / "group"), **_files(out / "group" / "figures")} == statistics
    after = (out / "group.html").read_text()
    assert _undated(after) == _undated(before)
    assert "Voxel-wise two-sample tests" in after and "Coverage within groups" in after


def test_group_reports_only_waits_for_no_model_library(pipeline, cohort, tmp_path):
    """The rewrite imports neither torch nor nilearn (seconds each before any work; a rewrite
    takes a few): a separate process, as a user runs it."""
    out = _copy(pipeline, tmp_path)
    script = (
        "import sys; from bidsxai.cli import main; "
        f"code = main([{str(cohort)!r}, {str(out)!r}, 'group', '--reports-only', "
        "'--skip-bids-validation', '-q']); "
        "print(code, *[m for m in ('torch', 'nilearn') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.split() == ["0"], done.stdout + done.stderr


def test_train_reports_only_rewrites_the_training_report(pipeline, cohort, tmp_path, capsys):
    out = _copy(pipeline, tmp_path)
    folder = out / "models" / "cnn3d_group"
    bundle = _files(folder, lambda p: p.name != "report.html")
    before = (folder / "report.html").read_text()
    (folder / "report.html").unlink()
    code = run_cli(cohort, out, "train", "--reports-only", "--skip-bids-validation")
    assert code == 0, capsys.readouterr().err
    assert _files(folder, lambda p: p.name != "report.html") == bundle
    assert _undated((folder / "report.html").read_text()) == _undated(before)


def test_reports_only_without_outputs_is_one_line(cohort, tmp_path, capsys):
    out = tmp_path / "empty"
    for level in ("train", "group"):
        code = run_cli(cohort, out, level, "--reports-only", "--skip-bids-validation")
        assert code == 66
        lines = messages(capsys.readouterr().err)
        assert len(lines) == 1 and "--reports-only" in lines[0], lines
    assert not (out / "group.html").exists()


def test_an_option_that_contradicts_the_bundle_is_refused(pipeline, cohort, capsys):
    # The pipeline's group run gave --model and no --resolution: it ran on the bundle's 6 mm.
    assert pipeline["codes"][3] == 0
    argv = ["group", "--model", "cnn3d_group", "--resolution", "2", "--skip-bids-validation"]
    assert run_cli(cohort, pipeline["out"], *argv) == 64
    lines = messages(capsys.readouterr().err)
    assert len(lines) == 1 and "--resolution 2" in lines[0] and "6 mm" in lines[0], lines


@pytest.mark.parametrize("report", [subject, training, group], ids=lambda m: m.__name__)
def test_every_section_has_its_template_and_its_own_anchor(report):
    folder = resources.files("bidsxai.resources.reports")
    anchors = [s.id for s in report.SECTIONS]
    assert len(set(anchors)) == len(anchors)
    for section in report.SECTIONS:
        assert folder.joinpath(section.template).is_file(), section.template
    assert report.SECTIONS[-1].id == "methods"


def test_sections_are_drawn_in_order_without_those_that_have_nothing():
    sections = (
        Section("a", "A", lambda c: {"n": c["n"]}, "a.html.j2"),
        Section("b", "B", lambda c: None, "b.html.j2"),
        Section(
            "c", "C", lambda c: [(f"c{i}", f"C {i}", i) for i in range(c["n"])], "c.html.j2", True
        ),
    )
    drawn = assemble(sections, {"n": 2})
    assert [(d["id"], d["title"], d["data"]) for d in drawn] == [
        ("a", "A", {"n": 2}),
        ("c0", "C 0", 0),
        ("c1", "C 1", 1),
    ]


def test_reports_only_describes_the_newest_run_that_finished(pipeline, cohort, tmp_path, capsys):
    """A train run refused after its settings were saved (an option that cannot work) is not the
    run the training report describes."""
    out = _copy(pipeline, tmp_path)
    refused = ["train", "--model", "refused", "--cv-folds", 7, "--skip-bids-validation"]
    refused += ["--resolution", RES]
    assert run_cli(cohort, out, *refused) == 64  # only 6 subjects: known once the run started
    capsys.readouterr()
    saved = [p.read_text() for p in (out / "logs").glob("train-*.toml")]
    assert any('model = "refused"' in text for text in saved)
    code = run_cli(
        cohort, out, "train", "--reports-only", "--skip-bids-validation", "--resolution", RES
    )
    assert code == 0, capsys.readouterr().err
    assert (out / "models" / "cnn3d_group" / "report.html").is_file()


def test_a_nested_split_without_a_class_is_refused_before_any_model_trains(
    pipeline, cohort, tmp_path, capsys
):
    out = _copy(pipeline, tmp_path)
    argv = ["train", "--model", "nested", "--validation", "inner", "--cv-folds", 2]
    assert run_cli(cohort, out, *argv, "--skip-bids-validation", "--resolution", RES) == 64
    (line,) = messages(capsys.readouterr().err)
    assert "--validation inner: repeat-1_fold-1's inner" in line and "has no subject" in line
    assert not (out / "models" / "nested").exists()


def test_long_layer_names_wrap_at_dots_and_keep_every_character():
    from bidsxai.reports.figures import wrap_dotted

    name = "network.features.denseblock1.denselayer1.layers.conv2"
    lines = wrap_dotted(name).split("\n")
    assert "".join(lines) == name and len(lines) == 3
    assert max(map(len, lines)) <= 24 and wrap_dotted("block3.conv") == "block3.conv"
