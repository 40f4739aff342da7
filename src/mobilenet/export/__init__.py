"""Deploy a trained model: LiteRT (TFLite) and ONNX files, their runtimes and their verification.

One module per concern, each adding what Keras and the converters lack:

- `mobilenet.export.litert`: `to_tflite` writes a ``.tflite`` file through
  Keras' own LiteRT export (``model.export(path, format="litert")``, which
  drives ``tf.lite.TFLiteConverter``), with the converter's quantization
  modes behind one argument, checked calibration data and an atomic write.
- `mobilenet.export.onnx`: `to_onnx` does the same for ONNX Runtime, through
  Keras' ``model.export(path, format="onnx")`` (tf2onnx) and ONNX Runtime's
  static int8 quantization (the optional ``onnx`` extra).
- `mobilenet.export.calibration`: the calibration images both converters
  see, and `pixel_input_range`.
- `mobilenet.export.runtimes`: one runner per runtime (`LiteRTRunner`,
  `ONNXRunner`, `KerasRunner`): load once, run batches, say the input type
  and quantization and whether the outputs are probabilities; `run_tflite`
  and `run_onnx` run a file once.
- `mobilenet.export.openvino`: `OpenVINORunner` runs the same ``.onnx``
  files in OpenVINO (the optional ``openvino`` extra), float32 unless asked
  otherwise; `fastest_onnx_runtime` says which of the two runs them fastest
  on this CPU.
- `mobilenet.export.verification`: `verify_tflite` and `verify_onnx` compare a
  file with its Keras model on real images.
- `mobilenet.export.keras_file`: `export_model`, what ``mobilenet export``
  does, from a ``.keras`` file to a verified file.
- `mobilenet.export.micro`: `to_micro` writes the int8 file TensorFlow Lite
  Micro runs (with an offline memory plan), `write_c_array` its C array, and
  `run_micro` runs it in TFLM's interpreter; `mobilenet.export.micro_memory`
  says how much flash and RAM it takes (`mobilenet.memory` for a Keras model).

`fold_batchnorm` (`mobilenet.folding`), an inference-only copy of a model
with every BatchNorm folded into the convolution before it, is re-exported
here.

For TF Serving, Keras needs no help: ``model.export(folder,
format="tf_saved_model")`` writes a SavedModel whose ``serve`` endpoint runs
the model in inference mode.
"""

from __future__ import annotations

from mobilenet.export.calibration import pixel_input_range
from mobilenet.export.keras_file import ExportResult, export_model
from mobilenet.export.litert import QUANTIZATIONS, to_tflite
from mobilenet.export.onnx import ONNX_QUANTIZATIONS, to_onnx
from mobilenet.export.openvino import OpenVINORunner, fastest_onnx_runtime
from mobilenet.export.runtimes import (
    KerasRunner,
    LiteRTRunner,
    ONNXRunner,
    Runner,
    run_onnx,
    run_tflite,
)
from mobilenet.export.verification import TFLiteReport, VerificationReport, verify_onnx, verify_tflite
from mobilenet.folding import fold_batchnorm

__all__ = [
    "ONNX_QUANTIZATIONS",
    "QUANTIZATIONS",
    "ExportResult",
    "KerasRunner",
    "LiteRTRunner",
    "ONNXRunner",
    "OpenVINORunner",
    "Runner",
    "TFLiteReport",
    "VerificationReport",
    "export_model",
    "fastest_onnx_runtime",
    "fold_batchnorm",
    "pixel_input_range",
    "run_onnx",
    "run_tflite",
    "to_onnx",
    "to_tflite",
    "verify_onnx",
    "verify_tflite",
]
