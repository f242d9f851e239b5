"""Every kind of report, opened in headless Chromium as a reader opens it: no console errors, no
network request, every image decodes and has alt text, every section is there, and a subject's
report stays small. Set BIDSXAI_SCREENSHOTS=DIR to keep what the browser drew."""

import gzip
import os
from pathlib import Path

import pytest
from browser import evaluate, view
from conftest import RES, run_cli

MAX_SUBJECT_REPORT = 3 * 1024 * 1024


def _check(path, sections):
    page = view(path)
    if os.environ.get("BIDSXAI_SCREENSHOTS"):
        folder = Path(os.environ["BIDSXAI_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{path.parent.name}-{path.stem}.png").write_bytes(page.screenshot)
    assert page.console_errors == []
    assert page.requests == []
    assert page.images and all(i["ok"] for i in page.images), "an image did not decode"
    assert all(i["data"] for i in page.images)
    assert all((i["alt"] or "").strip() for i in page.images), "an image has no alt text"
    for section in sections:
        assert section in page.sections
    assert page.screenshot.startswith(b"\x89PNG")
    return page


def test_a_subject_report_in_the_browser(pipeline):
    path = pipeline["out"] / "sub-03.html"
    page = _check(path, ["sub-03", "errors", "provenance", "methods"])
    assert {"Heatmaps", "Inputs (3)", "Registration to MNI152NLin2009aSym"} <= set(page.headings)
    for report in pipeline["out"].glob("sub-*.html"):
        assert report.stat().st_size < MAX_SUBJECT_REPORT


def test_the_group_report_in_the_browser(pipeline):
    _check(pipeline["out"] / "group.html", ["methods"])


def test_the_training_report_in_the_browser(pipeline):
    _check(pipeline["out"] / "models" / "cnn3d_group" / "report.html", ["methods"])


def test_a_failed_subjects_report_in_the_browser(cohort_copy, tmp_path):
    t2 = cohort_copy / "sub-05" / "anat" / "sub-05_T2w.nii.gz"
    t2.write_bytes(gzip.compress(b"\0" * 400))
    out = tmp_path / "out"
    argv = ["participant", "--participant-label", "05", "--resolution", RES]
    assert run_cli(cohort_copy, out, *argv, "--skip-bids-validation") == 66
    page = view(out / "sub-05.html")
    assert page.console_errors == [] and page.requests == []
    assert {"sub-05", "errors", "provenance", "methods"} <= set(page.sections)
    assert (
        "Inputs (3)" in page.headings and "Registration to MNI152NLin2009aSym" not in page.headings
    )


def test_every_figure_in_the_templates_has_alt_text():
    """A static check beside the browser's, over every template's <img> tags."""
    import re

    folder = Path(__file__).parents[1] / "bidsxai" / "resources" / "reports"
    tags = [
        t for p in folder.rglob("*.html.j2") for t in re.findall(r"<img\b[^>]*>", p.read_text())
    ]
    assert tags and all(re.search(r'alt="[^"]+"', t) for t in tags)


def test_the_group_mosaic_shows_every_subject_and_links_to_the_strip_plots(pipeline):
    """One thumbnail per subject for each method and class, each opening its report, red where the
    model misclassified the subject; hovering a thumbnail highlights that subject's strip-plot
    points, and the reverse."""
    import json

    import pandas as pd

    out = pipeline["out"]
    measures = pd.read_csv(out / "group" / "measures.tsv", sep="\t")
    facts = evaluate(
        out / "group.html",
        """(function () {
          var thumbs = Array.from(document.querySelectorAll('a.thumb'));
          var first = thumbs[0], subject = first.dataset.subject;
          first.dispatchEvent(new MouseEvent('mouseenter'));
          var lit = Array.from(document.querySelectorAll('.linked'));
          var fromThumb = lit.filter(e => e.dataset.subject === subject && e.closest('svg')).length;
          first.dispatchEvent(new MouseEvent('mouseleave'));
          var point = document.querySelector('svg a[data-subject]');
          point.dispatchEvent(new MouseEvent('mouseenter'));
          var fromPoint = document.querySelectorAll(
            'a.thumb.linked[data-subject="' + point.dataset.subject + '"]').length;
          return {n: thumbs.length, hrefs: thumbs.map(t => t.getAttribute('href')),
                  wrong: thumbs.filter(t => t.classList.contains('wrong'))
                               .map(t => t.dataset.subject),
                  fromThumb: fromThumb, fromPoint: fromPoint, stillLit: lit.length};
        })()""",
    )
    keys = measures[["method", "target"]].drop_duplicates()
    assert facts["n"] == len(measures) == len(keys) * measures["subject"].nunique()
    assert all((out / href).is_file() for href in facts["hrefs"])
    assert facts["fromThumb"] >= 2 and facts["fromPoint"] == len(keys)  # every section's thumb
    wrong = set()
    for subject, group in zip(measures["subject"], measures["group"]):
        sidecar = next((out / subject / "anat").glob(f"*_res-{RES:g}_method-*_heatmap.json"))
        if json.loads(sidecar.read_text())["PredictedClass"] != group:
            wrong.add(subject)
    assert set(facts["wrong"]) == wrong


def test_a_method_is_drawn_beside_the_baselines_and_controls():
    """The trust charts: methods first, then baselines, then controls, each in its colour, with
    the dashed line at the best model-free baseline (0.9 here, not the control's 0.95)."""
    import re

    from bidsxai.reports.svg import KINDS, localisation_label, score_dots

    rows = [
        ("control-otherclass-gradcam", 0.95, None, None),
        ("baseline-FLAIR", 0.9, 0.8, 1.0),
        ("gradcam", 0.6, 0.5, 0.7),
        ("baseline-random", 0.5, None, None),
        ("saliency", float("nan"), None, None),  # not measured: left out
    ]
    chart = str(score_dots(rows, "AUROC against lesion"))
    names = re.findall(r'<text x="202" y="[\d.]+" text-anchor="end" [^>]*>([^<]+)<', chart)
    assert names == ["gradcam", "baseline-FLAIR", "baseline-random", "control-otherclass-gradcam"]
    left, right = 210, 560 - 16
    dashed = float(re.search(r'<line x1="([\d.]+)"[^>]*stroke-dasharray', chart).group(1))
    assert dashed == pytest.approx(left + 0.9 * (right - left), abs=0.1)
    assert chart.count(f'fill="{KINDS["baseline"][0]}"') == 4  # two names, two dots
    assert localisation_label("auroc_lesion") == "AUROC against lesion"
    assert localisation_label("pointing_distractor") == "pointing game against distractor"
    assert localisation_label("auroc_margin_lesion") is None
    assert localisation_label("mass_inside_lesion") is None
