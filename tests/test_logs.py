"""What a run logs: timestamped key=value events on stderr when it is not a terminal, and every
event in the run's own log file beside its settings."""

import re
import shutil

from conftest import RES, run_cli

LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|DEBUG) event=\w+( \w+=\S+)*$"
)


def test_each_run_logs_its_sessions_and_epochs_in_its_own_file(pipeline):
    logs = pipeline["out"] / "logs"
    train = [line for p in logs.glob("train-*.log") for line in p.read_text().splitlines()]
    assert all(LINE.match(line) for line in train), train[:3]
    epochs = [line for line in train if "event=epoch" in line]
    assert any("model=repeat-1_fold-1 epoch=1 train_loss=" in line for line in epochs)
    assert all("val_balanced_accuracy=" in line for line in epochs)
    for log in logs.glob("participant-*.log"):  # each run id also names a settings file
        assert log.with_suffix(".toml").is_file()
    participant = "\n".join(p.read_text() for p in logs.glob("participant-*.log"))
    for subject in ("01", "05", "09"):
        assert f"event=session_finished stage=preprocessing session=sub-{subject} seconds=" in (
            participant
        )


def test_stderr_carries_the_events_unless_quiet(pipeline, cohort, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    argv = [cohort, out, "participant", "--participant-label", "02", "--resolution", RES]
    assert run_cli(*argv, "--skip-bids-validation") == 0
    err = capsys.readouterr().err
    assert (
        "event=run_started" in err and "event=session_finished stage=reports session=sub-02" in err
    )
    assert run_cli(*argv, "--skip-bids-validation", "-q") == 0
    assert "event=" not in capsys.readouterr().err
