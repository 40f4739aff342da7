"""The package's import graph runs one way, and modules share only public names.

No module imports one that imports it back, and no module uses another's
private (underscore) names: what one module needs from another is that
module's public API. The private modules listed in `SHARED_PRIVATE_MODULES`
are the exception by design: they are private to the package, and their
names are public within it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mobilenet"
#: Private modules whose public names the whole package shares.
SHARED_PRIVATE_MODULES = {
    "mobilenet._validation",
    "mobilenet._files",
    "mobilenet._lazy",
    "mobilenet._keras_compat",
    "mobilenet._registration",
    "mobilenet._tf_log",
}


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
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
    assert graph["mobilenet.layers"] <= {"mobilenet._validation", "mobilenet.errors"}
    assert "mobilenet.model" not in graph["mobilenet.weights"]


#: The modules whose classes Keras must know to load the library's files.
REGISTERING_MODULES = {"mobilenet.layers", "mobilenet.quantization", "mobilenet.schedules"}


def _names_taken_from(path: Path, modules: set[str]) -> list[str]:
    """The ``from M import NAME`` at the top level of ``path`` with M in ``modules`` (NAME no module)."""
    return [f"{node.module}.{alias.name}" for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.ImportFrom) and node.module in modules for alias in node.names]


def _path(module: str) -> Path:
    return PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")


def _imports_keras_at_the_top(path: Path) -> bool:
    for node in ast.parse(path.read_text()).body:
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(name.split(".")[0] in ("keras", "tensorflow") for name in names):
            return True
    return False


def test_registration_is_one_function_and_the_registering_modules_call_nothing_back():
    """`mobilenet._registration.register` imports the registering modules; none imports it.

    The hook may run `register` while a module is half-run (Keras first
    imported from inside it). So the registering modules take no names from
    each other at the top, only modules (``from mobilenet import layers``),
    whose classes they read when called; and the other modules they take
    names from never import Keras at their top, so are never half-run then.
    """
    graph = _import_graph()
    assert graph["mobilenet._registration"] == REGISTERING_MODULES
    for module in REGISTERING_MODULES:
        assert "mobilenet._registration" not in graph[module], module
        assert _names_taken_from(_path(module), REGISTERING_MODULES) == [], module
        taken = [name for name in _names_taken_from(_path(module), set(graph)) if name not in graph]
        for source in {name.rsplit(".", 1)[0] for name in taken}:
            assert not _imports_keras_at_the_top(_path(source)), f"{module} takes names from {source}"


def test_the_registering_modules_check_finds_a_name_taken(tmp_path):
    path = tmp_path / "quantization.py"
    path.write_text("from mobilenet import layers\nfrom mobilenet.layers import ClassNames\n"
                    "def f():\n    from mobilenet.schedules import WarmupCosineDecay\n")
    assert _names_taken_from(path, REGISTERING_MODULES) == ["mobilenet.layers.ClassNames"]
    assert _imports_keras_at_the_top(PACKAGE / "layers.py")
    assert not _imports_keras_at_the_top(PACKAGE / "_validation.py")  # only inside a function


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_uses(package: Path = PACKAGE) -> list[str]:
    """Every place a module of ``package`` uses another module's private name.

    Found: ``from m import _name``; ``import``/``from`` of a private module
    not in `SHARED_PRIVATE_MODULES`; ``m._name`` where ``m`` was imported as
    a module of the package (``from mobilenet import export``,
    ``import mobilenet.export as export``). Importing a public name under a
    private alias (``import x as _x``) is fine.
    """
    root = package.name
    modules = {_module_name(path, package): path for path in package.rglob("*.py")}
    found: list[str] = []

    def check_module(where: str, module: str) -> None:
        if any(_private(part) for part in module.split(".")) and module not in SHARED_PRIVATE_MODULES:
            found.append(f"{where} imports the private module {module}")

    for name, path in sorted(modules.items()):
        tree = ast.parse(path.read_text())
        bound: dict[str, str] = {}  # a local name -> the package module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != root:
                        continue
                    check_module(name, alias.name)
                    bound[alias.asname or root] = alias.name if alias.asname else root
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the importing module's package
                    package_parts = name.split(".")
                    if path.name != "__init__.py":
                        package_parts = package_parts[:-1]
                    base = package_parts[: len(package_parts) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != root:
                    continue
                check_module(name, source)
                for alias in node.names:
                    target = f"{source}.{alias.name}"
                    if target in modules:
                        check_module(name, target)
                        bound[alias.asname or alias.name] = target
                    elif _private(alias.name):
                        found.append(f"{name} imports {alias.name} from {source}")

        def dotted(node: ast.expr) -> str | None:
            if isinstance(node, ast.Name):
                return bound.get(node.id)
            if isinstance(node, ast.Attribute):
                owner = dotted(node.value)
                return None if owner is None else f"{owner}.{node.attr}"
            return None

        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                owner = dotted(node.value)
                if owner is not None and owner != name and owner not in SHARED_PRIVATE_MODULES:
                    found.append(f"{name} uses {owner}.{node.attr}")
    return found


def test_the_private_name_check_finds_each_kind_of_use(tmp_path):
    """The checker, on a small package written here with one use of each kind."""
    package = tmp_path / "mobilenet"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from mobilenet import _validation\n")
    (package / "_validation.py").write_text("def invalid(): pass\n")
    (package / "_hidden.py").write_text("X = 1\n")
    (package / "saving.py").write_text("def _load(): pass\ndef load(): pass\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text(
        "from mobilenet._validation import invalid\n"      # allowed: a shared private module
        "from mobilenet.saving import load as _load\n"     # allowed: a public name, aliased
        "from mobilenet.saving import _load\n"             # 1
        "from mobilenet import _hidden\n"                  # 2
        "def f():\n"
        "    from mobilenet import saving\n"
        "    import mobilenet.saving as s\n"
        "    return saving._load, s._load, _load\n"        # 3, 4
    )
    (package / "sub" / "b.py").write_text("from ..saving import _load\n")  # 5
    assert sorted(_private_uses(package)) == sorted([
        "mobilenet.sub.a imports _load from mobilenet.saving",
        "mobilenet.sub.a imports the private module mobilenet._hidden",
        "mobilenet.sub.a uses mobilenet.saving._load",
        "mobilenet.sub.a uses mobilenet.saving._load",
        "mobilenet.sub.b imports _load from mobilenet.saving",
    ])


def test_no_module_uses_another_modules_private_names():
    found = _private_uses()
    assert not found, "\n".join(found)


def module_map() -> str:
    """The import graph as layers, top (the CLI) to bottom: the picture in docs/architecture.md.

    A subpackage's modules show as the subpackage (``mobilenet.export``), the
    shared private modules and the package root are left out (every module
    may use them), and each module stands one layer above the highest
    module it imports.
    """
    def node(module: str) -> str:
        parts = module.split(".")
        subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
        return ".".join(parts[:2]) if len(parts) > 2 or parts[-1] in subpackages else module

    graph: dict[str, set[str]] = {}
    for module, targets in _import_graph().items():
        if module == "mobilenet" or module in SHARED_PRIVATE_MODULES:
            continue
        edges = graph.setdefault(node(module), set())
        edges |= {node(t) for t in targets
                  if t != "mobilenet" and t not in SHARED_PRIVATE_MODULES and node(t) != node(module)}
    layers: dict[str, int] = {}

    def layer(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in layers:
            below = [layer(t, seen + (name,)) for t in graph[name] if t not in seen]
            layers[name] = 1 + max(below, default=-1)
        return layers[name]

    rows = []
    for name in sorted(graph, key=lambda n: (-layer(n), n)):
        imports = ", ".join(t.removeprefix("mobilenet.") for t in sorted(graph[name], key=lambda t: (-layer(t), t)))
        rows.append(f"{layer(name)}  {name.removeprefix('mobilenet.'):<13} -> {imports or '(Keras, NumPy)'}")
    return "\n".join(rows)


def test_the_architecture_page_shows_the_import_graph():
    page = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    start = page.index("<!-- module map: python tests/test_layout.py -->")
    block = page[start:].split("```text\n", 1)[1].split("```", 1)[0]
    assert block.rstrip("\n") == module_map(), (
        "docs/architecture.md's module map is not the package's import graph; "
        "print the new one with `python tests/test_layout.py`"
    )


if __name__ == "__main__":
    print(module_map())
