"""Loading the ``.keras`` files this library writes, with errors that say what went wrong."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import keras

__all__ = ["load_model"]


def load_model(path: str | os.PathLike, *, compile: bool = False) -> keras.Model:
    """Loads a ``.keras`` model file, such as those `train` and `model.save` write.

    The same as ``keras.saving.load_model`` (after ``import mobilenet`` that
    finds this library's layers and schedules by itself), with two changes:
    ``compile`` defaults to False, since a file is mostly loaded to predict,
    evaluate or export, and a file that is missing, not a ``.keras`` archive
    or truncated gets an error that says which.

    Args:
        path: str or PathLike, the ``.keras`` file.
        compile: bool, whether to restore the optimizer, loss and metrics the
            model was compiled with (to go on training). Defaults to False.

    Returns:
        The ``keras.Model``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a ``.keras`` archive, is corrupt or
            truncated, or holds something Keras cannot rebuild.

    Example:

    ```python
    import keras
    import mobilenet

    mobilenet.MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10).save("small.keras")
    model = mobilenet.load_model("small.keras")
    ```
    """
    return _load_model(path, compile=compile, argument="path")


def _load_model(path: str | os.PathLike, *, compile: bool, argument: str) -> keras.Model:
    """`load_model`, with errors naming the caller's ``argument`` for the path."""
    from mobilenet import _registration

    _registration.register()
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"Invalid value for argument `{argument}`: expected an existing .keras file. "
            f"Received: {argument}={str(path)!r}"
            + (" (a folder)" if file.is_dir() else " (no such file)")
        )
    if file.suffix != ".keras":
        raise ValueError(
            f"Invalid value for argument `{argument}`: expected a .keras file (Keras' "
            f"native format). Received: {argument}={str(path)!r}"
        )
    if not zipfile.is_zipfile(file):
        raise ValueError(
            f"Invalid value for argument `{argument}`: {str(path)!r} is corrupt or truncated "
            "(not a readable .keras archive)"
        )
    try:
        return keras.saving.load_model(file, compile=compile)
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as error:
        raise ValueError(
            f"Invalid value for argument `{argument}`: {str(path)!r} is corrupt or truncated "
            f"({type(error).__name__}: {error})"
        ) from error
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Invalid value for argument `{argument}`: Keras could not rebuild the model in "
            f"{str(path)!r} ({_first_line(error)})"
        ) from error


def _first_line(error: Any) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
