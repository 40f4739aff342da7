"""Does an exported file answer as its Keras model does? `verify_tflite` and `verify_onnx`."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import keras
import numpy as np

from mobilenet._validation import check_positive_int
from mobilenet.export.common import check_images, check_model
from mobilenet.export.runtimes import KerasRunner, LiteRTRunner, ONNXRunner, Runner

__all__ = ["TFLiteReport", "VerificationReport", "compare", "verify_onnx", "verify_tflite"]


@dataclasses.dataclass(frozen=True)
class VerificationReport:
    """How closely an exported file (``.tflite`` or ``.onnx``) follows its Keras model on some images.

    What `verify_tflite` and `verify_onnx` return.

    Attributes:
        num_images: int, how many images were compared.
        max_abs_diff: float, the largest absolute difference between the two
            models' outputs (the file's output dequantized when it is integer).
        top1_agreement: float in [0, 1], the share of images on which both
            models pick the same class.
        input_type: str, the file's input dtype (``"float32"``, ``"uint8"``...).
        output_type: str, the file's output dtype.
    """

    num_images: int
    max_abs_diff: float
    top1_agreement: float
    input_type: str
    output_type: str


#: Another name of `VerificationReport`, the report `verify_tflite` returns.
TFLiteReport = VerificationReport


def compare(
    runner: Runner, model: keras.Model, images: Any, *, batch_size: int = 32
) -> VerificationReport:
    """Runs ``images`` through a file's ``runner`` and through ``model``, and compares the outputs.

    Args:
        runner: a loaded file (`LiteRTRunner`, `ONNXRunner`).
        model: keras.Model, the model the file was converted from.
        images: array of images shaped like the model input, ``(N, H, W, C)``,
            as the model takes them.
        batch_size: int, images per call on both sides. Defaults to 32.

    Raises:
        ValueError: bad ``model`` or ``images``, or a file whose outputs do
            not have the model's shape.
    """
    check_model(model)
    images = check_images(images, model, "images")
    check_positive_int(batch_size, "batch_size")
    expected = KerasRunner(model).run(images, batch_size)
    actual = runner.run(images, batch_size)
    if actual.shape != expected.shape:
        raise ValueError(
            f"The file {str(getattr(runner, 'path', runner))!r} gives outputs of shape "
            f"{actual.shape}, the model {expected.shape}: was it converted from this model?"
        )
    flat_expected = expected.reshape(len(expected), -1)
    flat_actual = actual.reshape(len(actual), -1)
    return VerificationReport(
        num_images=len(expected),
        max_abs_diff=float(np.max(np.abs(flat_actual - flat_expected))),
        top1_agreement=float(np.mean(flat_actual.argmax(-1) == flat_expected.argmax(-1))),
        input_type=runner.input_type,
        output_type=runner.output_type,
    )


def verify_tflite(
    path: str | os.PathLike,
    model: keras.Model,
    images: Any,
    *,
    batch_size: int = 32,
    num_threads: int | None = None,
) -> VerificationReport:
    """Compares a ``.tflite`` file with its Keras model on real images.

    The file runs in ``ai_edge_litert.interpreter.Interpreter`` (the optional
    ``litert`` extra: ``pip install "mobilenet[litert]"``) or, without it, in
    TensorFlow's ``tf.lite.Interpreter`` (see `LiteRTRunner`).

    Args:
        path: str or PathLike, the ``.tflite`` file written from ``model``.
        model: keras.Model, the model the file was converted from.
        images: array of images shaped like the model input, ``(N, H, W, C)``,
            preprocessed as the model expects.
        batch_size: int, images per call on both sides. Defaults to 32.
        num_threads: int or None, interpreter threads.

    Returns:
        A `VerificationReport` with the maximum absolute output difference and the
        top-1 agreement.

    Example:

    ```python
    from mobilenet import MobileNetV1
    from mobilenet.cifar10 import load_cifar10
    from mobilenet.export import to_tflite, verify_tflite

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    (train_images, _), (test_images, _) = load_cifar10("../shared/data/cifar10-subset")
    to_tflite(model, "mobilenet_int8.tflite", "int8", representative_data=train_images[:100])
    report = verify_tflite("mobilenet_int8.tflite", model, test_images[:100])
    print(f"{report.top1_agreement:.1%} agree, max diff {report.max_abs_diff:.3g}")
    ```
    """
    return _verify(LiteRTRunner, path, model, images, batch_size, num_threads)


def verify_onnx(
    path: str | os.PathLike,
    model: keras.Model,
    images: Any,
    *,
    batch_size: int = 32,
    num_threads: int | None = None,
) -> VerificationReport:
    """Compares an ``.onnx`` file with its Keras model on real images.

    The same comparison as `verify_tflite`, with the file run in ONNX Runtime
    (see `ONNXRunner`).

    Args:
        path: str or PathLike, the ``.onnx`` file written from ``model``.
        model: keras.Model, the model the file was converted from.
        images: array of images shaped like the model input, ``(N, H, W, C)``,
            as the model takes them.
        batch_size: int, images per call on both sides. Defaults to 32.
        num_threads: int or None, ONNX Runtime's intra-op threads.

    Returns:
        A `VerificationReport` (the report `verify_tflite` gives): maximum absolute
        output difference, top-1 agreement, the file's input and output types.

    Example:

    ```python
    from mobilenet import MobileNetV1
    from mobilenet.cifar10 import load_cifar10
    from mobilenet.export import to_onnx, verify_onnx

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    _, (test_images, _) = load_cifar10("../shared/data/cifar10-subset")
    report = verify_onnx(to_onnx(model, "mobilenet.onnx"), model, test_images[:100])
    report.top1_agreement, report.input_type  # (1.0, 'float32'): float32 matches to about 1e-6
    ```
    """
    return _verify(ONNXRunner, path, model, images, batch_size, num_threads)


def _verify(runner: Any, path: Any, model: keras.Model, images: Any, batch_size: int,
            num_threads: int | None) -> VerificationReport:
    """`compare` with the file at ``path`` in ``runner``, the arguments checked before it loads."""
    check_model(model)
    images = check_images(images, model, "images")
    check_positive_int(batch_size, "batch_size")
    return compare(runner(path, num_threads), model, images, batch_size=batch_size)
