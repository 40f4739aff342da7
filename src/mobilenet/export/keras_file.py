"""From a saved ``.keras`` file to a verified LiteRT or ONNX file: `export_model`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from mobilenet._validation import check_choice, invalid
from mobilenet.export.calibration import pixel_input_range
from mobilenet.export.common import writable_target
from mobilenet.export.litert import to_tflite
from mobilenet.export.onnx import to_onnx
from mobilenet.export.openvino import OpenVINORunner
from mobilenet.export.runtimes import LiteRTRunner, ONNXRunner
from mobilenet.export.verification import VerificationReport, compare
from mobilenet.folding import fold_batchnorm

__all__ = ["ExportResult", "export_model"]


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_model` wrote and found.

    Attributes:
        path: the ``.tflite`` or ``.onnx`` file written.
        input_type: its input dtype (``"float32"``, ``"uint8"``...).
        input_quantization: ``(scale, zero_point)`` of an integer input, else None.
        report: the `VerificationReport` when verification images were given, else None.
    """

    path: Path
    input_type: str
    input_quantization: tuple[float, int] | None
    report: VerificationReport | None


def export_model(
    model_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    quantization: str | None = None,
    calibration_images: Any = None,
    io_type: str = "uint8",
    fold_bn: bool = False,
    verify_images: Any = None,
    onnx_runtime: str = "onnxruntime",
) -> ExportResult:
    """Exports a saved ``.keras`` model to a LiteRT or ONNX file and optionally verifies it.

    What ``mobilenet export`` does: loads the model with
    `mobilenet.load_model`, folds its BatchNorms if asked, writes the file with
    `to_tflite` or, for an ``.onnx`` ``output_path``, `to_onnx` (int8
    calibrated on ``calibration_images``, a pixel model's input kept as
    pixels) and compares it with the Keras model on ``verify_images``.

    Args:
        model_path: the ``.keras`` file.
        output_path: the ``.tflite`` or ``.onnx`` file to write, in an
            existing folder; its suffix picks the format.
        quantization: as in `to_tflite`, or `to_onnx` (None or ``"int8"``).
        calibration_images: images for ``"int8"``, as the model takes them
            (not used for a quantization-aware model, which has its ranges).
        io_type: as in `to_tflite`; ignored for ONNX.
        fold_bn: bool, fold every BatchNorm into the conv before it first.
        verify_images: optional images to verify the file on.
        onnx_runtime: ``"onnxruntime"`` (the default) or ``"openvino"`` (the
            optional ``openvino`` extra): what runs an ``.onnx`` file for
            verification; ignored for LiteRT.

    Returns:
        An `ExportResult`.

    Example:

    ```python
    from mobilenet import MobileNetV1
    from mobilenet.export import export_model

    MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10).save("small.keras")
    result = export_model("small.keras", "small.tflite")
    print(result.path, result.input_type)
    ```
    """
    from mobilenet.saving import load_model

    check_choice(onnx_runtime, "onnx_runtime", ("onnxruntime", "openvino"))
    suffix = Path(output_path).suffix
    if suffix not in (".tflite", ".onnx"):
        raise invalid("output_path", "a .tflite (LiteRT) or .onnx file name", str(output_path))
    writable_target(output_path, suffix, "output_path")
    from mobilenet.quantization import is_quantize_aware

    model = load_model(model_path, argument="model_path")
    if is_quantize_aware(model):
        calibration_images = None  # its ranges are learned; images given only verify
    source = fold_batchnorm(model) if fold_bn else model
    if suffix == ".onnx":
        path = to_onnx(source, output_path, quantization, representative_data=calibration_images)
        runner = OpenVINORunner(path) if onnx_runtime == "openvino" else ONNXRunner(path)
    else:
        path = to_tflite(
            source, output_path, quantization,
            representative_data=calibration_images, io_type=io_type,
            input_range=pixel_input_range(model),
        )
        runner = LiteRTRunner(path)
    report = compare(runner, model, verify_images) if verify_images is not None else None
    return ExportResult(
        path=path, input_type=runner.input_type,
        input_quantization=runner.input_quantization, report=report,
    )
