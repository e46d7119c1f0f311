"""``xl-hub``'s --config and --db work before the command too, as in git and docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cli import main


def test_db_and_config_before_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    assert main(["--db", url, "db", "upgrade"]) == 0
    assert "at every head" in capsys.readouterr().out
    assert main(["db", "--db", url, "upgrade"]) == 0  # between the command and its action
    assert "already up to date" in capsys.readouterr().out
    config = tmp_path / "hub.yaml"
    config.write_text(f"database: {{url: '{url}'}}\n")
    assert main(["--config", str(config), "devices", "--json"]) == 0
    assert capsys.readouterr().out == "[]\n"
    assert main(["--db", url, "user", "add", "wang", "--role", "operator", "--password", "a-long-password-1"]) == 0
    assert "user wang saved" in capsys.readouterr().out


def test_the_command_copy_wins_and_the_rules_still_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    wrong = tmp_path / "not-used.sqlite3"
    assert main(["--db", f"sqlite:///{wrong}", "db", "upgrade", "--db", url]) == 0
    assert not wrong.exists() and (tmp_path / "hub.sqlite3").exists()
    capsys.readouterr()
    refused = {
        ("devices",): "one of the arguments --config --db is required",
        ("--config", "a.yaml", "devices", "--db", url): "not allowed with argument --config",
        ("run",): "required: --config",
        ("--db", url, "run"): "--db: not allowed with run",
        ("--db", url, "console"): "--db: not allowed with console",
    }
    for argv, message in refused.items():
        with pytest.raises(SystemExit) as caught:
            main(list(argv))
        assert caught.value.code == 2 and message in capsys.readouterr().err, argv
