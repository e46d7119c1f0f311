"""``xl-provision``'s --state and --db work before the command too, as in git and docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioning.cli import main

DEVICE = ["--township", "01", "--village", "v", "--household", "H1", "--group", "g1"]


def test_state_and_db_before_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state, db = tmp_path / "s", tmp_path / "elsewhere.sqlite3"
    assert main(["--state", str(state), "--db", f"sqlite:///{db}", "ca", "init", "--broker-host", "hub.local"]) == 0
    assert (state / "ca" / "ca.key").exists() and db.exists()
    assert not (state / "hub.sqlite3").exists()  # --db given before the command was used, not the default
    assert main(["--state", str(state), "--db", f"sqlite:///{db}", "device", "add", *DEVICE]) == 0
    assert "62062101" in capsys.readouterr().out


def test_between_command_and_action_and_the_later_one_wins(tmp_path: Path) -> None:
    state = tmp_path / "s"
    assert main(["ca", "--state", str(state), "init", "--broker-host", "hub.local"]) == 0
    assert (state / "ca" / "ca.key").exists()
    # Given twice, the one after the command counts, as with an option repeated on one level.
    other = tmp_path / "other"
    assert main(["--state", str(other), "device", "add", "--state", str(state), *DEVICE]) == 0
    assert not other.exists() and (state / "hub.sqlite3").exists()


def test_state_is_still_required_and_still_defaults_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("XL_PROVISION_STATE", raising=False)
    with pytest.raises(SystemExit) as caught:
        main(["ca", "init", "--broker-host", "hub.local"])
    assert caught.value.code == 2 and "--state DIR is required" in capsys.readouterr().err
    monkeypatch.setenv("XL_PROVISION_STATE", str(tmp_path / "env"))
    assert main(["ca", "init", "--broker-host", "hub.local"]) == 0
    assert (tmp_path / "env" / "ca" / "ca.key").exists()
