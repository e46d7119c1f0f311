"""``xl-agent``'s --config works before the command too, as in git and docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.config import DEFAULT_PATH

SKIP = ["--skip", "camera", "--skip", "model", "--skip", "broker"]


def test_config_before_the_command_is_the_one_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    assert main(["--config", str(before), "check", *SKIP]) == 1  # neither file exists: the check names it
    assert str(before) in capsys.readouterr().out
    assert main(["--config", str(before), "check", "--config", str(after), *SKIP]) == 1
    out = capsys.readouterr().out
    assert str(after) in out and str(before) not in out  # after the command wins
    main(["check", *SKIP])
    assert str(DEFAULT_PATH) in capsys.readouterr().out  # neither: the default, as before


def test_replay_takes_the_config_given_before_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "vision.yaml"
    assert main(["--config", str(missing), "replay", "synthetic:quiet?seconds=1"]) == 2
    assert str(missing) in capsys.readouterr().err  # it tried to read it, rather than ignore it
