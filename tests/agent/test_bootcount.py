from __future__ import annotations

from pathlib import Path

from agent.bootcount import next_boot


def test_boot_counter_increases_and_survives_garbage(tmp_path: Path) -> None:
    path = tmp_path / "state" / "boot"
    assert [next_boot(path) for _ in range(3)] == [0, 1, 2]
    path.write_text("\x00\x00garbage")  # a torn write on a dying SD card
    assert next_boot(path, floor=7) == 8  # the floor (from the outbox) keeps IDs moving forward
    assert next_boot(path) == 9
    assert not path.with_name("boot.tmp").exists()
