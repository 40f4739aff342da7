"""Atomic file writing: a file appears whole under its name, or not at all."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_save_model", "atomic_target", "atomic_write_text"]


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yields a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file sits in the same folder (so ``os.replace`` is atomic) and
    keeps ``suffix`` (default: ``path``'s), since some writers pick the format
    from it. It is created empty with mode 0o666 less the process umask, as
    ``open()`` would create ``path`` (``tempfile.mkstemp`` would make it 0o600),
    so the finished file gets the user's normal permissions. On any error it is
    removed and an existing ``path`` is untouched.
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    while True:
        temporary = path.parent / f".{path.stem}.{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield str(temporary)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_target(path, suffix=".tmp") as temporary:
        with open(temporary, "w", newline="") as stream:
            stream.write(text)
    return path


def atomic_save_model(model: Any, path: str | os.PathLike) -> Path:
    """Saves a Keras model to a ``.keras`` file atomically; returns the path."""
    path = Path(path)
    with atomic_target(path, suffix=".keras") as temporary:
        model.save(temporary)
    return path
