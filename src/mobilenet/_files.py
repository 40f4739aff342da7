"""Atomic file writing: a file appears whole under its name, or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_target"]


@contextlib.contextmanager
def atomic_target(path: Path, suffix: str | None = None) -> Iterator[str]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file sits in the same folder (so ``os.replace`` is atomic) and
    keeps ``suffix`` (default: ``path``'s), since some writers pick the format
    from it. On any error it is removed and an existing ``path`` is untouched.
    """
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix if suffix is None else suffix
    )
    os.close(handle)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
