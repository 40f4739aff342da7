"""CIFAR-10 as NumPy arrays: a safe reader of the official python release.

A pickle is code, so every batch file is read with an unpickler that refuses
any global but NumPy's array reconstruction, then checked for shape, dtype and
label range before anything else sees it.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mobilenet._validation import InvalidArgument, MissingPath, invalid

__all__ = [
    "CLASS_NAMES",
    "DATA_DIR_ENV",
    "IMAGE_SHAPE",
    "load_cifar10",
]

#: The ten CIFAR-10 classes, in label order.
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
#: Environment variable naming a folder that holds the dataset.
DATA_DIR_ENV = "MOBILENET_CIFAR10_DIR"
#: The shape of one CIFAR-10 image, channels last.
IMAGE_SHAPE = (32, 32, 3)
_FOLDER = "cifar-10-batches-py"
_ARCHIVE = "cifar-10-python.tar.gz"
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILE = "test_batch"
_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]

# What NumPy needs to rebuild an array from a pickle, under NumPy 1 and 2 module names.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
}
class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, numbers, bytes and NumPy arrays; refuses any other global."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"refused to load the global {module}.{name}: a CIFAR-10 batch "
                "holds only NumPy arrays, lists, ints and bytes"
            )
        return allowed


def _bad_batch(argument: str, source: str, problem: str, received: str = "",
               kind: str = "Corrupt") -> InvalidArgument:
    """The error for batch file ``source``, found where ``argument`` points."""
    return invalid(argument, "", None, shown=received,
                   problem=f"{kind} CIFAR-10 batch file {source}: {problem}")


def _parse_batch(raw: bytes, source: str, argument: str) -> tuple[np.ndarray, np.ndarray]:
    """Turns the bytes of one pickled batch into (NHWC uint8 images, int64 labels)."""
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as error:
        kind = "Unsafe" if str(error).startswith("refused") else "Corrupt"
        raise _bad_batch(argument, source, str(error), kind=kind) from error
    except Exception as error:  # truncated or garbled bytes raise many kinds
        raise _bad_batch(argument, source,
                         f"cannot unpickle it ({type(error).__name__}: {error})") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise _bad_batch(argument, source, "expected a dict with keys b'data' and b'labels'",
                         str(keys))
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        described = (data.dtype, data.shape) if isinstance(data, np.ndarray) else type(data).__name__
        raise _bad_batch(argument, source,
                         f"expected b'data' as a uint8 array of shape (n, {_PIXELS})", str(described))
    try:
        labels = np.asarray(labels)
    except Exception:  # noqa: BLE001 - anything that is not a flat list of ints
        labels = np.asarray(None)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise _bad_batch(argument, source, f"expected b'labels' as {len(data)} integers",
                         f"{labels.dtype} of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise _bad_batch(argument, source, "labels must lie in 0..9",
                         f"min {labels.min()}, max {labels.max()}")
    images = data.reshape(-1, IMAGE_SHAPE[2], *IMAGE_SHAPE[:2]).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _read_folder(folder: Path, argument: str) -> dict[str, bytes]:
    raws = {}
    for name in (*_TRAIN_FILES, _TEST_FILE):
        path = folder / name
        if not path.is_file():
            raise invalid(argument, "", None, shown="", error=MissingPath, problem=(
                f"CIFAR-10 batch file {path} is missing: a complete {_FOLDER}/ holds "
                f"{', '.join(_TRAIN_FILES)} and {_TEST_FILE}"))
        raws[str(path)] = path.read_bytes()
    return raws


def _read_archive(archive: Path, argument: str) -> dict[str, bytes]:
    raws = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in (*_TRAIN_FILES, _TEST_FILE):
                member = f"{_FOLDER}/{name}"
                try:
                    handle = tar.extractfile(member)
                except KeyError:
                    handle = None
                if handle is None:
                    raise invalid(argument, "", None, shown="", error=MissingPath,
                                  problem=f"CIFAR-10 batch file {member} is missing from {archive}")
                raws[f"{archive}:{member}"] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise invalid(argument, "", None, shown="",
                      problem=f"Corrupt CIFAR-10 archive {archive}: {error}") from error
    return raws


def _find_local(data_dir: Path, argument: str) -> dict[str, bytes]:
    """Reads the batch files under ``data_dir`` (folder, archive, or either inside it)."""
    candidates = [data_dir / _FOLDER, data_dir / _ARCHIVE]
    if (data_dir / _TRAIN_FILES[0]).exists() or data_dir.name == _FOLDER:
        candidates.insert(0, data_dir)
    for candidate in candidates:
        if candidate.is_dir():
            return _read_folder(candidate, argument)
        if candidate.is_file():
            return _read_archive(candidate, argument)
    if data_dir.is_file() and data_dir.name.endswith((".tar.gz", ".tgz")):
        return _read_archive(data_dir, argument)
    raise invalid(
        argument, f"a folder holding {_FOLDER}/ or {_ARCHIVE} (the official python release of "
        "CIFAR-10)", None, shown=f"{argument}={str(data_dir)!r}, where neither exists",
        error=MissingPath,
    )


def _assemble(
    raws: dict[str, bytes], argument: str
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    parsed = [_parse_batch(raw, source, argument) for source, raw in raws.items()]
    train_parts, test = parsed[:-1], parsed[-1]
    x_train = np.concatenate([images for images, _ in train_parts])
    y_train = np.concatenate([labels for _, labels in train_parts])
    return (x_train, y_train), test


def load_cifar10(
    data_dir: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads CIFAR-10 as NumPy arrays from a local copy or Keras's download.

    Sources, first match wins: ``data_dir`` (a folder holding the official
    ``cifar-10-batches-py/`` folder or ``cifar-10-python.tar.gz`` archive, or
    that folder or archive itself); the folder named by the
    ``MOBILENET_CIFAR10_DIR`` environment variable; Keras's cache, downloading
    the dataset there on first use (``keras.datasets.cifar10``). The archive is
    read in memory, never extracted. Every batch is read with an unpickler that
    refuses any global but NumPy's array reconstruction, then checked.

    Args:
        data_dir: optional folder (or archive) holding the dataset.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape
        ``(n, 32, 32, 3)`` and int64 labels of shape ``(n,)`` in 0..9.

    Raises:
        FileNotFoundError: ``data_dir`` or the variable holds no dataset, or a
            batch file is missing (the message names it): a
            `mobilenet.errors.MissingPath`.
        ValueError: a batch file is corrupt or asks for a forbidden global: a
            `mobilenet.errors.InvalidArgument`. Both name ``data_dir`` (or the
            variable) as their ``argument``.
        ConnectionError: no local copy and the download failed (offline).

    Example:

    ```python
    from mobilenet.datasets import load_cifar10

    (x_train, y_train), (x_test, y_test) = load_cifar10("../shared/data/cifar10-subset")
    x_train.shape  # (2500, 32, 32, 3) for this subset; (50000, 32, 32, 3) for the full set
    ```
    """
    if data_dir is not None:
        return _assemble(_find_local(Path(data_dir).expanduser(), "data_dir"), "data_dir")
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return _assemble(_find_local(Path(from_env).expanduser(), DATA_DIR_ENV), DATA_DIR_ENV)

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # get_file raises a bare Exception when offline
        raise ConnectionError(
            f"Could not download CIFAR-10 through keras.datasets.cifar10 ({error}). "
            f"Point at a local copy instead: pass `data_dir` or set "
            f"{DATA_DIR_ENV} to a folder holding {_FOLDER}/ or {_ARCHIVE}"
        ) from error
    return (
        (np.asarray(x_train, np.uint8), np.asarray(y_train).reshape(-1).astype(np.int64)),
        (np.asarray(x_test, np.uint8), np.asarray(y_test).reshape(-1).astype(np.int64)),
    )
