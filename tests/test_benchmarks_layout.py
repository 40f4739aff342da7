"""Benchmarks and examples use the library as users do: through public names only.

A benchmark that reaches into a private helper (``_compile``, ``_decode``)
measures something no user can call, and breaks silently when the helper
changes; an example that does teaches it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*(REPO_ROOT / "benchmarks").glob("*.py"), *(REPO_ROOT / "examples").glob("*.py")])


def private_uses(source: str) -> list[str]:
    """``module.name`` for every private module or name of ``mobilenet`` that ``source`` imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "mobilenet":
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "mobilenet"
                      and any(part.startswith("_") for part in alias.name.split("."))]
    return found


def test_the_check_finds_private_imports():
    assert private_uses("from mobilenet.training.trainer import _compile") == \
        ["mobilenet.training.trainer._compile"]
    assert private_uses("def f():\n    from mobilenet._tf_log import quiet\n") == ["mobilenet._tf_log"]
    assert private_uses("import mobilenet._files") == ["mobilenet._files"]
    assert private_uses("from mobilenet.training import compile_model\nfrom _common import report") == []


def test_there_are_scripts_to_check():
    names = {path.name for path in SCRIPTS}
    assert {"cifar10.py", "own_images.py", "_common.py"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_benchmarks_and_examples_import_no_private_name_of_mobilenet(path):
    assert private_uses(path.read_text()) == []
