"""The floor order of the packages: no module imports a higher floor, and no import circles.

The imports are read with `ast` from every file under qednano/, including imports inside
functions (a lazy import still ties two modules together) and those under `TYPE_CHECKING`.
A new package must be given its floor in FLOORS, so nothing escapes the check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qednano"

# Bottom-up. "" is the ground: the top-level helper modules (paths, prompts, tables, errors).
# A module may import its own floor or lower ones, never a higher one.
FLOORS: dict[str, int] = {
    "": 0,
    "llm": 1,
    "problems": 1,
    "grading": 2,
    "scaffolds": 2,
    "records": 3,
    "reports": 4,
    "evaluate": 4,
    "data": 4,
    "train": 4,
    "viewer": 5,
    "cli": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The qednano modules `path` imports (a name imported from a package counts as its module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; write the absolute qednano.… path"
            base = node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(name for name in names if name == "qednano" or name.startswith("qednano."))
    return found


def package_of(module: str) -> str:
    """The floor-table key of a module: its subpackage, or "" for qednano's top-level modules."""
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return ""


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) & set(found) for name, path in found.items()}


def test_every_package_has_a_floor():
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    missing = sorted(packages - set(FLOORS))
    assert not missing, f"give these packages a floor in tests/test_floors.py FLOORS: {missing}"


def test_no_module_imports_a_higher_floor():
    wrong = []
    for module, targets in import_graph().items():
        floor = FLOORS[package_of(module)]
        for target in sorted(targets):
            if FLOORS[package_of(target)] > floor:
                wrong.append(f"{module} (floor {floor}) imports {target} (floor {FLOORS[package_of(target)]})")
    assert not wrong, "lower floors import higher ones:\n" + "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of nodes (first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_between_modules():
    graph = {name: {t for t in targets if t != name} for name, targets in import_graph().items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycles_between_packages():
    # Packages on one floor may use each other only one way (scaffolds uses grading, never back).
    graph: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        graph.setdefault(package_of(module), set()).update(package_of(t) for t in targets)
    graph = {name: targets - {name} for name, targets in graph.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "packages import each other: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}, ["y", "y2", "y"]),
    ],
)
def test_find_cycle_on_small_graphs(graph, expected):
    assert find_cycle(graph) == expected


def test_the_checker_sees_lazy_and_package_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from qednano.llm import registry\n"
        "def f():\n    from qednano.cli.main import app\n"
        "import qednano.records.store\n"
    )
    known = {"qednano.llm", "qednano.llm.registry", "qednano.cli.main", "qednano.records.store"}
    assert imports_of(source, known) == {"qednano.llm.registry", "qednano.cli.main", "qednano.records.store"}
