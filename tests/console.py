"""The installed ``mobilenet`` console script, for tests that run it as a user does."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def console_script() -> str:
    """The path of the ``mobilenet`` script beside this Python, or on PATH; fails if absent."""
    script = Path(sys.executable).parent / "mobilenet"
    if script.is_file():
        return str(script)
    found = shutil.which("mobilenet")
    if found is None:
        pytest.fail("the `mobilenet` console script is not installed (pip install -e .)")
    return found
