"""The package's import graph runs one way: no module imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mobilenet"


def _module_name(path: Path) -> str:
    parts = ["mobilenet", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the library modules it imports, at the top or inside functions."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from mobilenet.x import y` imports mobilenet.x.y if that is a module.
                targets = [
                    f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                ]
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_known_edges():
    graph = _import_graph()
    assert "mobilenet.architecture" in graph["mobilenet.model"]
    assert "mobilenet.architecture" in graph["mobilenet.weights"]
    assert "mobilenet.training.data" in graph["mobilenet.training.trainer"]
    assert "mobilenet.saving" in graph["mobilenet.training.evaluation"]  # imported inside a function


def test_no_import_cycle():
    graph = _import_graph()
    # A package's __init__ re-exporting its submodules is the one allowed way back up.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_architecture_table_and_the_layers_know_no_one_above_them():
    graph = _import_graph()
    assert graph["mobilenet.architecture"] <= {"mobilenet._validation"}
    assert graph["mobilenet.layers"] <= {"mobilenet._validation"}
    assert "mobilenet.model" not in graph["mobilenet.weights"]
