"""Validating in a child process (xlconfig.isolated): the same config, the same errors, and a child
that cannot answer is said to be one, never taken for a valid or an invalid config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import AgentConfig, load, load_isolated
from agent.config_vision import parse_vision
from tests.support.agent_yaml import write_config
from tests.support.tls import make_pki
from xlconfig import ConfigError
from xlconfig.isolated import ValidatorFailed, call

ROOT = Path(__file__).resolve().parents[2]


def test_the_child_gives_the_config_the_parent_would_have_read(tmp_path: Path) -> None:
    p = make_pki(tmp_path / "pki")
    path = write_config(tmp_path, p, 8883, vision={"zones": [{"name": "院门", "polygon": [[0, 0], [1, 0], [1, 1]]}]})
    got = load_isolated(path)
    assert isinstance(got, AgentConfig)
    assert got == load(path) and got.path == path
    assert got.vision.zones[0].name == "院门"


def test_every_problem_and_the_source_come_back(tmp_path: Path) -> None:
    p = make_pki(tmp_path / "pki")
    path = write_config(tmp_path, p, 8883, outbox={"max_rows": "lots"}, health={"interval_s": 0})
    with pytest.raises(ConfigError) as here:
        load(path)
    with pytest.raises(ConfigError) as there:
        load_isolated(path)
    assert there.value.problems == here.value.problems and len(there.value.problems) == 2
    assert there.value.source == here.value.source == str(path)
    with pytest.raises(ConfigError, match=r"vision\.zones") as vision:
        call("agent.config_vision:parse_vision", {"zones": "all"}, "config push")
    assert vision.value.source == "config push"
    with pytest.raises(ConfigError) as direct:
        parse_vision({"zones": "all"}, "config push")
    assert vision.value.problems == direct.value.problems


def test_a_child_that_cannot_answer_is_not_a_verdict(tmp_path: Path) -> None:
    with pytest.raises(ValidatorFailed, match=r"No module named 'agent\.nowhere'"):
        call("agent.nowhere:load", tmp_path)
    with pytest.raises(ValidatorFailed, match="exit 7"):
        call("sys:exit", 7)
    with pytest.raises(ValidatorFailed, match="ZeroDivisionError"):
        call("operator:truediv", 1, 0)


def test_what_a_module_prints_cannot_corrupt_the_answer() -> None:
    # print() in the child goes to stderr; the answer has its own copy of stdout.
    assert call("builtins:print", "noise on stdout") is None
    assert call("builtins:sorted", [3, 1, 2]) == [1, 2, 3]


def test_the_caller_never_imports_pydantic(tmp_path: Path) -> None:
    p = make_pki(tmp_path / "pki")
    path = write_config(tmp_path, p, 8883)
    probe = (
        "import sys; from pathlib import Path; import agent.runtime, agent.config_push; "
        "from agent.config import load_isolated; cfg = load_isolated(Path(sys.argv[1])); "
        "print(cfg.device.id, sorted(m for m in sys.modules if m.startswith('pydantic')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["62062101011198000123", "[]"]


def test_the_child_does_not_speak_to_systemd_as_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under NotifyAccess=main systemd refuses and logs any notification from a child."""
    monkeypatch.setenv("NOTIFY_SOCKET", "@xl-test")
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("XL_KEPT", "yes")
    from agent.watchdog import child_env

    assert call("os:getenv", "NOTIFY_SOCKET", env=child_env()) is None
    assert call("os:getenv", "WATCHDOG_USEC", env=child_env()) is None
    assert call("os:getenv", "XL_KEPT", env=child_env()) == "yes"
