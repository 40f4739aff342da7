"""What the exporters and runtimes share: argument checks, the pointwise switch, the ONNX extra."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mobilenet._keras_compat import flatten_layers
from mobilenet._validation import invalid
from mobilenet.layers import PointwiseConv2D

__all__ = [
    "ONNX_EXTRA_HINT",
    "check_images",
    "check_model",
    "import_onnx_package",
    "pointwise_written_as_conv",
    "writable_target",
]

#: How to install the packages ONNX export and ONNX Runtime need.
ONNX_EXTRA_HINT = 'pip install "mobilenet[onnx]"'


def check_model(model: Any) -> keras.Model:
    """``model`` if it is a ``keras.Model``."""
    if not isinstance(model, keras.Model):
        raise invalid("model", "a keras.Model", model)
    return model


def check_images(images: Any, model: keras.Model, argument: str) -> np.ndarray:
    """``images`` as float32 after checking them against the model's input shape."""
    expected = tuple(model.input_shape[1:])
    array = np.asarray(images)
    shape_ok = array.ndim == len(expected) + 1 and array.shape[0] > 0 and all(
        want is None or want == got for want, got in zip(expected, array.shape[1:])
    )
    if not shape_ok or not np.issubdtype(array.dtype, np.number):
        shown = ", ".join("H" if d is None else str(d) for d in expected)
        raise invalid(
            argument,
            f"a non-empty numeric array of images of shape (N, {shown}), the model's input shape",
            None, shown=f"{argument} with shape {array.shape} and dtype {array.dtype}",
        )
    return array.astype(np.float32)


def writable_target(path: str | os.PathLike, suffix: str, argument: str = "path") -> Path:
    """``path`` as a Path, after checking that it names a ``suffix`` file we can create."""
    target = Path(path)
    if target.suffix != suffix:
        raise invalid(argument, f"a file name ending in '{suffix}'", str(path))
    folder = target.parent
    if target.is_dir():
        problem = "a folder"
    elif not folder.is_dir():
        problem = f"folder {str(folder)!r} {'is a file' if folder.exists() else 'does not exist'}"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"folder {str(folder)!r} is not writable"
    else:
        return target
    raise invalid(
        argument, "a file in an existing, writable folder", None,
        shown=f"{argument}={str(path)!r} ({problem})",
    )


@contextlib.contextmanager
def pointwise_written_as_conv(model: keras.Model, enabled: bool = True) -> Iterator[None]:
    """While open, every `PointwiseConv2D` of ``model`` runs as a plain 1x1 conv.

    Converters then write one conv op per layer instead of the
    reshape/matmul/reshape of its ``"matmul"`` form. Nothing changes when
    ``enabled`` is False.
    """
    layers = [
        layer for layer in flatten_layers(model) if isinstance(layer, PointwiseConv2D)
    ] if enabled else []
    before = [layer.implementation for layer in layers]
    try:
        for layer in layers:
            layer.implementation = "conv"
        yield
    finally:
        for layer, implementation in zip(layers, before):
            layer.implementation = implementation


def import_onnx_package(name: str) -> Any:
    """Imports ``name`` (onnx, onnxruntime or tf2onnx), or says which extra brings it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"ONNX export and inference need the `{name}` package, which is not "
            f"installed; install the optional `onnx` extra: {ONNX_EXTRA_HINT}"
        ) from error
