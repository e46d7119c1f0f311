"""The import graph of ``hub/`` and ``agent/``: no circles, and in ``hub/`` no
arrow running up the layers; and no product code importing the tests (issue 15). Read from the source with ``ast``, so
an import inside a function or under ``TYPE_CHECKING`` counts as much as one
at the top: each is a dependency a reader has to hold in their head."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# hub/, bottom to top. A module may import its own room and any room of a
# lower layer, never a higher one. Rooms of one layer may import each other
# (acyclically, as everywhere), except in a layer marked apart: ingest and
# forwarding meet only through the port in hub.core.forwarding.
HUB_LAYERS: list[tuple[str, list[str], bool]] = [
    (
        "foundation",
        [
            "hub",
            "hub.config",
            "hub.config_console",
            "hub.config_forward",
            "hub.config_updates",
            "hub.config_clips",
            "hub.config_retention",
            "hub.config_escalation",
            "hub.periodic",
            "hub.cli_options",
            "hub.cli_output",
            "hub.db",
        ],
        False,
    ),
    ("shared types and the registry cache", ["hub.core"], False),
    ("services several rooms use", ["hub.mqtt", "hub.metrics", "hub.commands", "hub.registry", "hub.reports"], True),
    # Issue 21: the people escalations notify; only the registry below them.
    ("contacts", ["hub.contacts"], False),
    ("alert rules", ["hub.alerts"], False),
    # Issue 21: maintenance windows and snoozes; the health rules ask it whether a device is quiet.
    ("maintenance windows", ["hub.maintenance"], False),
    ("health rules", ["hub.health"], False),
    ("pipelines", ["hub.ingest", "hub.forward"], True),
    # Issue 21: escalation chains; their notices ride on the forwarder (its own sinks), the console acks them.
    ("escalation", ["hub.escalation"], False),
    # Issue 17: serving the TUF repository, and rollouts (which read what ingest stored).
    ("updates and rollouts", ["hub.updates", "hub.rollout"], True),
    # Issue 18: clip uploads ride on the update server (a route mounted on it).
    ("clips", ["hub.clips"], False),
    # Issue 20: config pushes and their history; the console draws and pushes through it.
    ("device configs", ["hub.configs"], False),
    # Issue 21: bulk jobs over a selection; they push configs through hub.configs, the console runs them.
    ("bulk operations", ["hub.bulk"], False),
    ("console", ["hub.console"], False),
    # Issue 21: pruning by age; above the console, whose audit table is one of the classes.
    ("retention", ["hub.retention"], False),
    ("wiring", ["hub.service", "hub.cli"], False),
]


# What ships (pyproject's packages). None of it may import ``tests``: an
# installed hub or agent has no tests folder, and ``make demo`` must not break
# when a test helper moves.
PRODUCT = ["agent", "hub", "protocol", "provisioning", "sim", "xlconfig"]


def modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The project modules ``name`` imports (``from pkg import sub`` names the submodule)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a module a.b.c, else its package
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph(package: str) -> dict[str, set[str]]:
    mods = modules(package)
    return {name: set(imports(name, path, set(mods))) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def absolute_imports(path: Path) -> Iterator[str]:
    """Every absolute module name ``path`` imports, wherever the import stands."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module


def imports_of_tests(package: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in absolute_imports(path)
        if name == "tests" or name.startswith("tests.")
    ]


def room_of(module: str) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for layer, (_title, rooms, _apart) in enumerate(HUB_LAYERS):
        for room in rooms:
            if (module == room or module.startswith(room + ".")) and (best is None or len(room) > len(best[1])):
                best = (layer, room)
    return best


def test_hub_has_no_import_circle() -> None:
    assert cycles(graph("hub")) == []


def test_agent_has_no_import_circle() -> None:
    # agent/config.py <-> agent/config_vision.py was the one circle left here;
    # part 3 of issue 15 (one config schema) rewrites both files.
    assert cycles(graph("agent")) == []


def test_product_code_does_not_import_tests() -> None:
    assert [line for package in PRODUCT for line in imports_of_tests(package)] == []


def test_tests_and_benches_import_only_the_test_kit() -> None:
    # Shared helpers live in tests/support; a test module importing another
    # test module (or a conftest) couples files that only look independent.
    # bench/ may use the kit too: it starts real brokers and PKIs the same way.
    # tests/pi is left out while its userland work is in progress (its helpers
    # are tests/pi/chroot.py and conftest.py, imported by its test modules).
    wrong = [
        line
        for package in ("tests", "bench")
        for line in imports_of_tests(package)
        if not line.startswith("tests/pi/") and not line.split(" imports ")[1].startswith("tests.support")
    ]
    assert wrong == []


def test_every_hub_module_has_a_layer() -> None:
    assert [m for m in graph("hub") if room_of(m) is None] == []


def test_no_hub_import_runs_up_a_layer_or_across_a_room() -> None:
    wrong = []
    for module, targets in sorted(graph("hub").items()):
        mine = room_of(module)
        assert mine is not None
        for target in sorted(targets):
            theirs = room_of(target)
            assert theirs is not None
            upward = theirs[0] > mine[0]
            across = theirs[0] == mine[0] and theirs[1] != mine[1] and HUB_LAYERS[mine[0]][2]
            if upward or across:
                wrong.append(f"{module} ({HUB_LAYERS[mine[0]][0]}) imports {target} ({HUB_LAYERS[theirs[0]][0]})")
    assert wrong == []


def test_the_graph_sees_function_level_and_relative_imports_and_circles(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("from . import b\n\n\ndef f():\n    from pkg.c import thing\n    import pkg.d.e\n")
    assert set(imports("pkg.m", path, {"pkg", "pkg.m", "pkg.b", "pkg.c", "pkg.d"})) == {"pkg.b", "pkg.c", "pkg.d"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert room_of("hub.ingest.validate")[0] > room_of("hub.alerts.engine")[0]  # type: ignore[index]
