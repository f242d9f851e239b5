"""One source for the settings and the explanation methods: the parser is generated from
``Settings``, the saved TOML reads back to the same settings, and method parameters, CLI choices and
the methods text all come from the method table."""

import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from bidsxai.cli import build_parser
from bidsxai.config import Settings, default_of
from bidsxai.explain.gradients import integrated_gradients
from bidsxai.explain.lrp import COMPOSITES, lrp
from bidsxai.explain.methods import CAM_FAMILY, METHODS
from bidsxai.models.registry import get_architecture, list_architectures
from bidsxai.reports.render import methods_text, references_bib


def _settings(*argv):
    from bidsxai.cli import parse_settings

    return parse_settings(["bids", "out", *argv])


def test_every_setting_is_an_option_with_its_default():
    parser = build_parser().complete()
    by_dest = {a.dest: a for a in parser._actions}
    for f in fields(Settings):
        if f.metadata["section"] == "run":  # the run's id, not an option
            assert f.name not in by_dest
            continue
        assert f.name in by_dest, f.name
        assert f.metadata["help"], f.name
        if f.metadata["section"] != "positional":
            assert by_dest[f.name].default == default_of(f), f.name
    assert _settings("participant") == Settings(
        bids_dir=Path("bids"), output_dir=Path("out"), level="participant"
    )


def test_every_option_is_documented_in_the_usage_page():
    usage = (Path(__file__).parents[1] / "docs" / "usage.md").read_text()
    undocumented = [
        a.option_strings
        for a in build_parser()._actions
        if a.option_strings and not any(flag in usage for flag in a.option_strings)
    ]
    assert undocumented == [["--version"]]


def test_saved_toml_reads_back_to_the_same_settings():
    settings = _settings(
        "group",
        "--derivatives",
        "prep=/data/prep",
        "--atlas",
        "none",
        "--methods",
        "gradcam,lrp",
        "--covariates",
        "age",
        "sex",
        "--cluster-p",
        "0.001",
        "-w",
        "/scratch",
        "-vv",
    )
    again = Settings.from_toml(settings.to_toml())
    assert again == settings
    assert again.derivatives == {"prep": Path("/data/prep")} and again.verbosity == 2
    with pytest.raises(ValueError, match="unknown settings"):
        Settings.from_toml(settings.to_toml().replace("tfce = false", "tfce = false\nturbo = true"))


def test_old_names_are_aliases_of_the_descriptive_ones():
    old = _settings("train", "--lrp-composite", "paper001", "--augment", "paper000")
    assert (old.lrp_composite, old.augment) == ("zbeta-alphabeta-epsilon", "slice-affine")
    assert _settings("train", "--augment", "paper001").augment == "volume-affine"


def test_method_defaults_come_from_the_functions_signatures():
    steps = inspect.signature(integrated_gradients).parameters["steps"].default
    assert METHODS["ig"].defaults["steps"] == steps
    assert (
        METHODS["lrp"].defaults["composite"]
        == inspect.signature(lrp).parameters["composite"].default
    )
    # An LRP option left unset takes the function's default, and the help shows it.
    unset = Settings(bids_dir=Path("b"), output_dir=Path("o"), level="participant")
    assert unset.lrp_composite is None
    assert METHODS["lrp"].parameters(unset)["composite"] == COMPOSITES[0]
    option = next(a for a in build_parser().complete()._actions if a.dest == "lrp_composite")
    assert option.help.endswith(f"(default {COMPOSITES[0]})")
    assert (
        "threshold" in METHODS["perturbation"].defaults
        and "group" in METHODS["perturbation"].defaults
    )
    assert METHODS["ig"].record(METHODS["ig"].defaults) == {
        "steps": 64,
        "baseline": "zero",
        "quadrature": "gausslegendre",
    }
    assert set(CAM_FAMILY) == {"cam", "gradcam", "gradcampp", "hirescam", "layercam"}


MODEL = {
    "architecture": "cnn3d",
    "input": {"contrasts": ["T1w"]},
    "covariates": [],
    "target": "group",
    "classes": ["HC", "MS"],
    "target_threshold": None,
    "explain_layer": "blocks.3",
    "training": {
        "test_fraction": 0.2,
        "cv_folds": 5,
        "cv_repeats": 1,
        "loss_weight": "none",
        "optimiser": "adamw",
        "learning_rate": 3e-4,
        "weight_decay": 1e-4,
        "augment": "flip",
        "patience": 8,
        "select_by": "loss",
    },
}


def test_cli_choices_and_methods_text_derive_from_the_method_table():
    help_text = build_parser().format_help()
    for name in list(METHODS) + list(COMPOSITES):
        assert name in help_text
    text = methods_text(_settings("participant", "--methods", ",".join(METHODS)), MODEL)
    bib = references_bib()
    for method in METHODS.values():
        assert f"{method.label} [@{method.citation}]" in text
        assert "{" + method.citation + "," in bib
    assert (
        "[@thibeausutre2020] trained with" in text
    )  # the architecture's citation from its registry entry


def test_the_methods_text_says_which_subjects_stopped_each_fold_model():
    settings = _settings("participant")
    assert "were the fold each model then predicted and explained" in methods_text(settings, MODEL)
    nested = MODEL | {"training": MODEL["training"] | {"validation": "inner"}}
    text = methods_text(settings, nested)
    assert "an inner stratified split of each model's training folds (one of\n5)" in text
    assert "(nested\ncross-validation)" in text


def test_config_file_gives_the_saved_settings_and_the_command_line_overrides_it(tmp_path):
    import dataclasses

    from bidsxai.cli import parse_settings
    from bidsxai.errors import UsageError

    argv = ["bids", "out", "participant", "--methods", "gradcam,lrp", "--omp-nthreads", "3"]
    saved = parse_settings(argv + ["--stop-on-first-crash", "--seed", "7", "-v"])
    toml = tmp_path / "settings.toml"
    toml.write_text(saved.to_toml())
    again = parse_settings(["bids", "out", "participant", "--config-file", str(toml)])
    assert dataclasses.replace(again, run_id=saved.run_id) == saved
    override = parse_settings(
        ["bids", "out", "participant", "--config-file", str(toml), "--seed", "2"]
    )
    assert override.seed == 2 and override.methods == ["gradcam", "lrp"]
    bad = tmp_path / "bad.toml"
    for text, message in (
        ("not = [toml", "not a bidsxai settings file"),
        ("[other]\nx = 1\n", "not a bidsxai settings file"),
        (saved.to_toml().replace("seed = 7", "seed = 7\nturbo = 1"), "unknown settings turbo"),
    ):
        bad.write_text(text)
        with pytest.raises(UsageError, match=message):
            parse_settings(["bids", "out", "participant", "--config-file", str(bad)])
    with pytest.raises(UsageError, match="cannot read it"):
        parse_settings(["bids", "out", "participant", "--config-file", str(tmp_path / "none")])


@pytest.mark.parametrize(
    "value, gb", [("16G", 16.0), ("16GB", 16.0), ("16000", 15.625), ("512M", 0.5), ("1T", 1024.0)]
)
def test_mem_reads_fmripreps_amounts(value, gb):
    from bidsxai.cli import parse_settings

    assert parse_settings(["bids", "out", "participant", "--mem", value]).mem == gb


def test_mem_defaults_to_slurms_allocation_and_limits_the_sessions_at_once(monkeypatch):
    from bidsxai.cli import parse_settings
    from bidsxai.memory import SESSION_MEMORY_GB, parallel_sessions

    monkeypatch.setenv("SLURM_MEM_PER_NODE", "8192")
    assert parse_settings(["bids", "out", "participant"]).mem == 8.0
    monkeypatch.delenv("SLURM_MEM_PER_NODE")
    assert parse_settings(["bids", "out", "participant"]).mem is None
    assert parallel_sessions(8, None) == 8
    assert parallel_sessions(8, 2.5 * SESSION_MEMORY_GB) == 2
    assert parallel_sessions(8, 0.5 * SESSION_MEMORY_GB) == 1  # one, even if it may not fit
    assert parallel_sessions(2, 100 * SESSION_MEMORY_GB) == 2


def test_the_default_batch_of_sessions_fills_half_the_memory_available():
    import os

    import torch

    from bidsxai.cli import parse_settings
    from bidsxai.memory import (
        EXPLANATION_BYTES_PER_VOXEL,
        MAX_BATCH_SESSIONS,
        available_memory_gb,
        explanation_batch,
    )
    from bidsxai.workflows.session_batches import batch_size

    voxels = 2**20
    per_session_gb = voxels * EXPLANATION_BYTES_PER_VOXEL / 2**30
    assert explanation_batch(voxels, 2 * 3.5 * per_session_gb) == 3  # half of it: 3.5 sessions
    assert explanation_batch(voxels, per_session_gb) == 1  # one, even if it may not fit
    assert explanation_batch(voxels, 1e6) == MAX_BATCH_SESSIONS
    cpu = torch.device("cpu")
    assert available_memory_gb(cpu, 12.0) == 12.0  # --mem
    total_gb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    assert 0 < available_memory_gb(cpu) <= total_gb  # the kernel's MemAvailable
    box = {"crop": [[0, 128], [0, 128], [0, 64]], "contrasts": ["T1w"]}  # 2**20 voxels
    settings = parse_settings(
        ["bids", "out", "participant", "--mem", str(2 * 2 * per_session_gb) + "G"]
    )
    assert batch_size(settings, {"input": box}, cpu) == 2
    given = parse_settings(["bids", "out", "participant", "--batch-sessions", "5"])
    assert batch_size(given, {"input": box}, cpu) == 5
    slices = dict(box, slices={"kept": [1, 2], "size": 64})
    assert batch_size(given, {"input": slices}, cpu) == 1  # a 2D model's batch is its slices


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mem", "0"], "--mem/--mem-mb: must be positive"),
        (["--mem", "lots"], "--mem/--mem-mb: not an amount of memory"),
        (["--omp-nthreads", "0"], "--omp-nthreads: must be at least 1"),
        (["--output-spaces", "T1w"], "writes its outputs on a template's grid"),
        (["--output-spaces", "MNI152NLin2009cAsym:res-2"], "the grid is set with --resolution"),
    ],
)
def test_bad_resource_and_space_options_are_one_line_and_exit_64(argv, message, tmp_path, capsys):
    from bidsxai import cli

    assert cli.main([str(tmp_path), str(tmp_path / "out"), "participant", *argv]) == 64
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_participant_labels_come_from_the_command_line_and_from_files(tmp_path, capsys):
    from bidsxai import cli
    from bidsxai.cli import parse_settings

    listed = tmp_path / "pending.txt"
    listed.write_text("# resubmit\nsub-03\n\n04  # second try\n")
    argv = ["bids", "out", "participant", "--participant-label", "01", "sub-02", str(listed)]
    assert parse_settings(argv).participant_label == ["01", "sub-02", "sub-03", "04"]
    listed.write_text("sub-03\nsub 04\n")
    assert cli.main(argv) == 64
    assert "'sub 04' is not a participant label" in capsys.readouterr().err
    argv[-1] = str(tmp_path / "missing.txt")
    assert cli.main(argv) == 64
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a label, nor a file of labels" in err[0]


def test_a_space_templateflow_does_not_know_is_a_usage_error(cohort, tmp_path, capsys):
    from bidsxai import cli

    argv = ["participant", "--output-spaces", "NoSuchTemplate", "--skip-bids-validation"]
    assert cli.main([str(cohort), str(tmp_path / "out"), *argv]) == 64
    err = capsys.readouterr().err
    assert "not a TemplateFlow template (known: " in err and "MNI152NLin2009cAsym" in err
    assert not (tmp_path / "out").exists()


def test_a_bundle_of_another_space_or_grid_is_refused():
    from bidsxai.errors import UsageError
    from bidsxai.models.bundle import check_space, grid_of
    from bidsxai.template import load_template

    template = load_template(6.0)
    meta = {"name": "m", "input": {"space": template.space, "grid": grid_of(template)}}
    check_space(meta, template)
    other = dict(meta, input=dict(meta["input"], space="MNI152NLin2009cAsym"))
    with pytest.raises(UsageError, match="give --output-spaces MNI152NLin2009cAsym"):
        check_space(other, template)
    moved = dict(meta, input=dict(meta["input"], grid=grid_of(load_template(4.0))))
    with pytest.raises(UsageError, match="grid other than this run's"):
        check_space(moved, template)


def _sentences(text):
    return " ".join(text.split())


@pytest.mark.parametrize(
    "contrasts, present, absent",
    [
        (["T1w"], ["The image was resampled"], ["T2-weighted", "FLAIR", "All contrasts"]),
        (
            ["T1w", "FLAIR"],
            ["FLAIR images were bias-corrected", "All contrasts were resampled"],
            ["T2-weighted"],
        ),
        (["T1w", "T2w", "FLAIR"], ["T2-weighted and FLAIR images were bias-corrected"], []),
    ],
)
def test_the_methods_text_describes_the_contrasts_the_run_had(contrasts, present, absent):
    text = _sentences(methods_text(_settings("participant"), None, contrasts))
    for phrase in present:
        assert phrase in text
    for phrase in absent:
        assert phrase not in text


def test_the_methods_text_follows_registration_and_template():
    affine = _sentences(methods_text(_settings("participant"), None, ["T1w"]))
    syn = _sentences(methods_text(_settings("participant", "--nonlinear"), None, ["T1w"]))
    assert "12-parameter affine" in affine and "SyN" not in affine
    assert "symmetric normalisation (SyN)" in syn and "affine" not in syn
    assert "Nonlinear Symmetrical template version 2009a [@fonov2011]" in affine
    assert "asymmetric" not in affine.lower().replace("nonlinear symmetrical", "")


def test_the_methods_text_says_when_smriprep_did_the_anatomy(tmp_path):
    settings = _settings("participant", "--derivatives", f"smriprep={tmp_path}")
    text = _sentences(methods_text(settings, None, ["T1w", "FLAIR"]))
    assert "preprocessed with sMRIPrep [@esteban2019]" in text
    assert "registered rigidly to sMRIPrep's T1-weighted image" in text
    assert "masked with sMRIPrep's brain mask" in text
    assert "12-parameter affine" not in text and "deepbet" not in text
    assert "{esteban2019," in references_bib()


@pytest.mark.parametrize("name", [a.name for a in list_architectures()])
def test_the_methods_text_names_every_model_family_with_its_paper(name):
    arch = get_architecture(name)
    meta = dict(MODEL, architecture=name)
    text = _sentences(methods_text(_settings("participant", "--model", "m"), meta))
    assert f"a {name} network [@{arch.citation}]" in text
    assert "{" + arch.citation + "," in references_bib()


def test_two_cited_papers_with_one_label_get_letters_by_title():
    from bidsxai.reports.citations import methods_html, parse_bibtex

    references = parse_bibtex(references_bib())
    both = str(methods_html("ANTs [@avants2011] and Atropos [@avants2011atropos].", references))
    assert "Avants et al. 2011a</a>" in both and "Avants et al. 2011b</a>" in both
    assert "A reproducible evaluation" in both.split("(2011a)")[0].split("<li")[-1]
    one = str(methods_html("ANTs [@avants2011].", references))
    assert "Avants et al. 2011</a>" in one and "2011a" not in one


def test_one_set_of_training_defaults():
    """The loop's options, left unset, take the defaults of Settings and the default recipe:
    there is no second set of numbers to drift apart."""
    from bidsxai.config import Settings
    from bidsxai.models.registry import DEFAULT_RECIPE, Architecture
    from bidsxai.training.loop import TrainOptions

    settings = Settings(bids_dir=Path("a"), output_dir=Path("b"), level="train")
    options = TrainOptions()
    for name in ("epochs", "patience", "batch_size", "select_by"):
        assert getattr(options, name) == getattr(settings, name), name
    for name, value in DEFAULT_RECIPE.items():
        assert getattr(options, name, value) == value
    assert Architecture("x", None, None, "", "").recipe == DEFAULT_RECIPE


def test_every_option_belongs_to_one_stage_object_or_to_the_run():
    from dataclasses import fields

    from bidsxai.config import SECTIONS, STAGES, Settings, stage_fields

    settings = Settings(bids_dir=Path("a"), output_dir=Path("b"), level="group")
    for name in STAGES:
        stage = settings.stage(name)
        names = [f.name for f in stage_fields(name)]
        assert [f.name for f in fields(stage)] == names and "seed" in names
        assert all(getattr(stage, n) == getattr(settings, n) for n in names)
    staged = {f.name for name in STAGES for f in stage_fields(name)}
    for f in fields(Settings):
        section = f.metadata["section"]
        assert section in {*SECTIONS, "positional", "run"}, f.name
        assert (section in STAGES) == (f.name in staged) or f.name == "seed", f.name


def test_each_method_record_holds_its_options_extras_and_sentence():
    import torch

    names = {f.name for f in fields(Settings)}
    settings = _settings("participant", "--lrp-composite", "epsilon", "--lrp-start", "attention")
    option = next(a for a in build_parser().complete()._actions if a.dest == "methods")
    for method in METHODS.values():
        assert f"{method.name} ({method.label})" in option.help
        assert all(field in names for field, _ in method.options), method.name
        assert all(p in method.defaults for _, p in method.options), method.name
        assert method.sentence(settings).startswith(f"{method.label} [@{method.citation}]")
    lrp = METHODS["lrp"].parameters(settings)
    assert (lrp["composite"], lrp["start"]) == ("epsilon", "attention")
    assert "(epsilon rules without biases, from the attention" in METHODS["lrp"].sentence(settings)
    zscored = METHODS["lrp"].parameters(
        settings, {"normalisation": "zscore"}, torch.tensor([-2.0, 3.0])
    )
    assert zscored["bounds"] == [-2.0, 3.0]
    card_range = {"normalisation": "minmax", "intensity_range": [-1.0, 1.0]}
    assert METHODS["lrp"].parameters(settings, card_range, torch.tensor([-0.5]))["bounds"] == [
        -1.0,
        1.0,
    ]
    result = {"ig_completeness_error": torch.tensor([[0.5, 0.25]])}
    assert METHODS["ig"].map_extras(result, 0, 1) == {"completeness_error": 0.25}
    assert METHODS["gradcam"].map_extras(result, 0, 0) == {}


def test_the_given_options_include_counting_flags_and_only_what_was_given():
    from bidsxai.cli import given_options

    given = given_options(["bids", "out", "participant", "-q", "-vv", "--resolution", "6"])
    assert {"quiet", "verbose", "resolution"} <= given and "seed" not in given
    assert not {"quiet", "verbose", "resolution"} & given_options(["bids", "out", "group"])
