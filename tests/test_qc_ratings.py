"""QC ratings that feed back into the analysis: the subject report's form downloads
qc-ratings.tsv in a real browser, and train and group with --exclude-file leave the sessions rated
fail out and name them."""

import json
import shutil

import pandas as pd
import pytest
from browser import download_after
from conftest import RES, messages, run_cli

from bidsxai.errors import NoInputError
from bidsxai.qc_ratings import COLUMNS, failed_sessions, latest_ratings

HEADER = "\t".join(COLUMNS)


def _write(path, *rows):
    path.write_text("\n".join([HEADER, *("\t".join(r) for r in rows)]) + "\n")
    return path


def test_the_latest_rating_of_a_session_counts_across_joined_files(tmp_path):
    first = _write(
        tmp_path / "a.tsv",
        ("sub-01", "n/a", "fail", "motion", "AB", "2026-12-01T10:00:00Z"),
        ("sub-02", "ses-01", "fail", "", "AB", "2026-12-01T10:00:00Z"),
    )
    later = _write(
        tmp_path / "b.tsv", ("sub-01", "n/a", "pass", "fine after all", "CD", "2026-12-02")
    )
    joined = tmp_path / "joined.tsv"
    joined.write_text(later.read_text() + first.read_text())  # cat: a header inside, older last
    for files in ([first, later], [joined]):
        assert failed_sessions(files) == {
            "sub-02_ses-01": "QC rating fail by AB at 2026-12-01T10:00:00Z"
        }
    assert latest_ratings([first])["sub-01"]["note"] == "motion"


@pytest.mark.parametrize(
    "row, message",
    [
        (("sub-01", "n/a", "bad", "", "", "2026-12-01"), "rating 'bad' is not one of pass"),
        (("01", "n/a", "fail", "", "", "2026-12-01"), "participant_id '01' is not sub-<label>"),
        (("sub-01", "n/a", "fail", "", "", "yesterday"), "time 'yesterday' is not an ISO 8601"),
        (("sub-01", "fail"), "2 columns, expected 6"),
    ],
)
def test_a_malformed_rating_is_one_line_naming_the_file_and_line(tmp_path, row, message):
    path = _write(tmp_path / "r.tsv", row)
    with pytest.raises(NoInputError, match=f"--exclude-file r.tsv line 2: {message}"):
        failed_sessions([path])


def test_a_rating_made_in_the_report_leaves_the_session_out(pipeline, cohort, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    (tmp_path / "downloads").mkdir()
    script = """
      document.querySelector('input[name="rating-sub-01"][value="fail"]').click();
      document.querySelector('input[name="note-sub-01"]').value = 'motion\\tartefact';
      document.getElementById('qc-rater').value = 'AB';
      document.getElementById('qc-download').click();
    """
    ratings = download_after(out / "sub-01.html", script, tmp_path / "downloads")
    assert ratings.name == "sub-01_qc-ratings.tsv"
    header, row = (line.split("\t") for line in ratings.read_text().splitlines())
    assert header == list(COLUMNS)
    assert row[:5] == ["sub-01", "n/a", "fail", "motion artefact", "AB"]
    capsys.readouterr()
    group = ["--skip-bids-validation", "--n-perm", 20, "--nprocs", 1, "--exclude-file", ratings]
    assert run_cli(cohort, out, "group", *group) == 0
    assert any(
        "left out sub-01: QC rating fail by AB" in m for m in messages(capsys.readouterr().err)
    )
    left = pd.read_csv(out / "group" / "qc_excluded.tsv", sep="\t")
    assert left["session"].tolist() == ["sub-01"] and "motion artefact" in left["reason"][0]
    measures = pd.read_csv(out / "group" / "measures.tsv", sep="\t")
    assert "sub-01" not in set(measures["subject"]) and "sub-02" in set(measures["subject"])
    assert "Left out by QC rating (--exclude-file): sub-01" in (out / "group.html").read_text()
    train = ["train", "--model", "rated", "--epochs", 1, "--cv-folds", 2, "--resolution", RES]
    assert run_cli(cohort, out, *train, "--skip-bids-validation", "--exclude-file", ratings) == 0
    meta = json.loads((out / "models" / "rated" / "model.json").read_text())
    assert [row["session"] for row in meta["excluded"]] == ["sub-01"]
    assert "sub-01" not in meta["assignments"][0]
    assert run_cli(cohort, out, "group", "--skip-bids-validation", "--n-perm", 20) == 0
    assert not (out / "group" / "qc_excluded.tsv").exists()  # a run without ratings keeps none


def test_a_rating_made_under_a_mosaic_thumbnail_is_the_tsv_group_reads(pipeline, tmp_path):
    """In the group report a subject is rated under any of its thumbnails; its thumbnails in the
    other sections follow, and the download is the qc-ratings.tsv that --exclude-file reads."""
    (tmp_path / "downloads").mkdir()
    script = """
      var boxes = document.querySelectorAll('.thumb-box[data-qc-participant="sub-02"]');
      boxes[0].querySelector('select').value = 'fail';
      boxes[0].querySelector('select').dispatchEvent(new Event('change', {bubbles: true}));
      boxes[0].querySelector('input').value = 'ghosting';
      boxes[0].querySelector('input').dispatchEvent(new Event('input', {bubbles: true}));
      var last = boxes[boxes.length - 1];
      document.getElementById('qc-rater').value = last.querySelector('select').value + '-' +
        last.querySelector('input').value + '-' + boxes.length;
      document.getElementById('qc-download').click();
    """
    ratings = download_after(pipeline["out"] / "group.html", script, tmp_path / "downloads")
    assert ratings.name == "qc-ratings.tsv"
    header, row = (line.split("\t") for line in ratings.read_text().splitlines())
    assert header == list(COLUMNS)
    assert row[:4] == ["sub-02", "n/a", "fail", "ghosting"]
    assert row[4] == "fail-ghosting-3"  # the same subject's other two thumbnails followed
    assert list(failed_sessions([ratings])) == ["sub-02"]
