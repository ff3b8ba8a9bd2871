"""The package's shape: no import circles, and data flows one way (docs/design.md)."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Modules of the package `path` imports, lazily inside functions too (not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known} - {_module_name(path)}


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in (SRC / "sessionrec").rglob("*.py")}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert circles(import_graph()) == []


# What each layer must never import: data does not know models, training, serving or the CLI.
LOWER_LAYERS = {
    "sessionrec.data": ("models", "training", "serving", "reproduce", "cli", "commands"),
    "sessionrec.graph": ("models", "training", "serving", "reproduce", "cli", "commands"),
    "sessionrec.evaluation": ("models", "training", "serving", "reproduce", "cli", "commands"),
    "sessionrec.training.trainer": ("models", "serving", "reproduce", "cli", "commands"),
    "sessionrec.models": ("serving", "reproduce", "cli", "commands", "training.run"),
    # Serving reads a run through rundir and models.registry.load_run, never training/.
    "sessionrec.serving": ("training", "reproduce", "cli", "commands"),
}


@pytest.mark.parametrize("layer", list(LOWER_LAYERS))
def test_data_flows_one_way(layer):
    forbidden = tuple(f"sessionrec.{name}" for name in LOWER_LAYERS[layer])
    graph = import_graph()
    bad = {
        (module, target)
        for module, targets in graph.items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if target.startswith(forbidden)
    }
    assert not bad, sorted(bad)


def test_the_run_directory_module_stands_alone():
    """rundir.py is read by every layer, so it imports none of them (torch only for checkpoints)."""
    assert import_graph()["sessionrec.rundir"] <= {"sessionrec.errors", "sessionrec.io"}


def _from_imports(path: Path) -> list[tuple[str, str, int]]:
    """(module, name, line) of every `from sessionrec... import name` in a file, lazy ones too."""
    tree = ast.parse(path.read_text())
    return [
        (node.module, alias.name, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module
        and not node.level
        and node.module.split(".")[0] == "sessionrec"
        for alias in node.names
    ]


def test_every_import_of_the_package_resolves():
    """A name moved or removed in a refactor breaks no lazy import inside a function, in the
    package, the benchmarks or the tests (a `--help` or an import would not find those)."""
    import importlib

    root = SRC.parent
    files = [
        *SRC.rglob("*.py"),
        *(root / "benchmarks").rglob("*.py"),
        *(root / "tests").rglob("*.py"),
    ]
    broken = []
    for path in files:
        for module, name, line in _from_imports(path):
            try:
                found = importlib.import_module(module)
            except ImportError as e:
                broken.append(f"{path.relative_to(root)}:{line}: {module} ({e})")
                continue
            if not hasattr(found, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    broken.append(f"{path.relative_to(root)}:{line}: {module}.{name}")
    assert broken == []
