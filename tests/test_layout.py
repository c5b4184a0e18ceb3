"""The package's rooms hold: no stage imports another, nothing imports upward, no cycle, and
the torch-free rooms start without the model stack.

Rooms (src/lora_study/): `core` (config, grid, data, results), `stats`, `tasks`, `model` (the
torch side shared by stages), `stages/<stage>` (one per rules file) and `report`. Every
import counts, including those inside functions: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_startup import model_packages_attempted

from conftest import REPO

PACKAGE = REPO / "src" / "lora_study"
# Rooms that may not import a stage, and rooms that may not import the model side either.
BELOW_STAGES = ("core", "stats", "tasks", "model")
BELOW_MODEL = ("core", "stats")
# The one torch side module of `tasks`: classification scores each label with the model, and
# only a model job imports it.
TASKS_WITH_MODEL = ("lora_study.tasks.label_scoring",)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every lora_study module `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lora_study"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("lora_study"))
    known = modules()
    return {name for name in found if name in known}


def room(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[1:3]) if len(parts) > 2 and parts[1] == "stages" else parts[1] if len(parts) > 1 else ""


def test_the_rooms_exist() -> None:
    rooms = {room(name) for name in modules()}
    assert {"core", "stats", "tasks", "model", "report"} <= rooms
    assert len([name for name in rooms if name.startswith("stages.")]) >= 8
    assert not [name for name in modules() if name.count(".") == 1 and room(name) not in rooms - {""}], (
        "a module outside every room"
    )


def test_no_stage_imports_another_stage() -> None:
    crossings = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if room(name).startswith("stages.")
        for target in imports(path)
        if room(target).startswith("stages.") and room(target) != room(name)
    ]
    assert not crossings, "\n".join(crossings)


@pytest.mark.parametrize(
    ("rooms", "forbidden"), [(BELOW_STAGES, ("stages.", "report")), (BELOW_MODEL, ("stages.", "report", "model"))]
)
def test_nothing_imports_upward(rooms: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    upward = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if room(name) in rooms
        for target in imports(path)
        if room(target).startswith(forbidden) and room(target) != room(name)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycle() -> None:
    graph = {name: {target for target in imports(path) if target != name} for name, path in modules().items()}
    # A package's __init__ is imported with its modules; its own imports of them are no cycle.
    graph = {name: {t for t in targets if name != t.rsplit(".", 1)[0]} for name, targets in graph.items()}
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for target in graph.get(node, ()):
                if target == start:
                    cycles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert not cycles, "\n".join(sorted(set(cycles))[:10])


def test_the_checks_see_a_crossing(tmp_path: Path) -> None:
    """The import reader finds a lazy import inside a function, as the checks above need."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from lora_study.stages.drift.features import pool\n")
    assert imports(probe) == {"lora_study.stages.drift.features"}
    assert room("lora_study.stages.drift.features") == "stages.drift"


def test_torch_free_rooms_import_no_model_package(tmp_path: Path) -> None:
    torch_free = [
        name
        for name in modules()
        if room(name) in ("core", "stats", "tasks", "report") and name not in TASKS_WITH_MODEL and "." in name
    ]
    attempted = model_packages_attempted(torch_free, tmp_path)
    assert attempted == "ATTEMPTED", attempted
