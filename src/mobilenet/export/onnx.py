"""ONNX files for ONNX Runtime: `to_onnx`, float32 or int8 (static, QDQ) quantization.

Needs the optional ``onnx`` extra: ``pip install "mobilenet[onnx]"``.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import keras

from mobilenet._files import atomic_target
from mobilenet._validation import check_choice, invalid
from mobilenet.class_names import get_class_names, write_onnx_class_names
from mobilenet.export.calibration import (
    Images,
    anchored,
    calibration_reader,
    pixel_input_range,
    representative_dataset,
)
from mobilenet.export.common import (
    check_model,
    import_onnx_package,
    pointwise_written_as_conv,
    writable_target,
)

__all__ = ["ONNX_QUANTIZATIONS", "quantize_int8", "to_onnx"]

#: The values `to_onnx` accepts for ``quantization``.
ONNX_QUANTIZATIONS = (None, "int8")


def to_onnx(
    model: keras.Model,
    path: str | os.PathLike,
    quantization: str | None = None,
    representative_data: Any = None,
    *,
    pointwise_as_conv: bool = True,
    opset: int | None = None,
) -> Path:
    """Writes ``model`` as an ONNX file, float32 or int8, for ONNX Runtime.

    Conversion goes through Keras' own ``model.export(..., format="onnx")``,
    which on TensorFlow drives ``tf2onnx``; int8 goes through ONNX Runtime's
    static quantization (``quantize_static``: QDQ format, int8 activations,
    weights per output channel in 7 bits, ``reduce_range``), calibrated on
    ``representative_data`` (see `quantize_int8`). The 7-bit weights keep the
    int8 kernels of x86 CPUs without VNNI (AVX2 only) from saturating, so the
    file gives the same answers on every CPU.
    The file is written to a temporary name in the same folder and moved into
    place only when everything succeeded. Its input is float32 with a free
    batch size, the model's input as it is (pixels 0-255 for a model that
    takes pixels); an int8 file quantizes it inside, and for a model that
    takes pixels the input's int8 range is exactly 0-255 (scale 1). The file
    carries the model's class names, if it has any (`mobilenet.class_names`).

    Needs the optional ``onnx`` extra: ``pip install "mobilenet[onnx]"``.

    Args:
        model: keras.Model, a float32 model with one image input, in
            inference mode.
        path: str or PathLike, the ``.onnx`` file to write, in an existing
            folder.
        quantization: ``None`` (float32) or ``"int8"``. A quantization-aware
            model (`mobilenet.quantization`) is written in float32 only: its
            folded weights, on their int8 grid, without activation rounding.
        representative_data: needed for ``"int8"``: real images shaped like
            the model input, as the model takes them (an array or a
            ``tf.data.Dataset``, as for `to_tflite`). A few hundred are enough.
        pointwise_as_conv: bool, write `PointwiseConv2D` layers as plain 1x1
            ``Conv`` nodes (as `to_tflite` does) rather than ``MatMul``.
            Defaults to True.
        opset: int or None, the ONNX opset (None: tf2onnx's default).

    Returns:
        The path of the written file.

    Raises:
        ValueError: for an unknown ``quantization``, missing or wrongly shaped
            ``representative_data`` with ``"int8"``, or a ``path`` that cannot
            be written.
        ImportError: the ``onnx`` extra is not installed.

    Example:

    ```python
    from mobilenet import MobileNetV1
    from mobilenet.cifar10 import load_cifar10
    from mobilenet.export import to_onnx

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    (images, _), _ = load_cifar10("../shared/data/cifar10-subset")  # pixels: what the model takes
    to_onnx(model, "mobilenet.onnx")
    to_onnx(model, "mobilenet_int8.onnx", "int8", representative_data=images[:100])
    ```
    """
    from mobilenet.quantization import export_graph, is_quantize_aware

    check_model(model)
    check_choice(quantization, "quantization", ONNX_QUANTIZATIONS)
    target = writable_target(path, ".onnx")
    names = get_class_names(model)
    if is_quantize_aware(model):
        if quantization == "int8":
            raise invalid(
                "quantization", "None for a quantization-aware model (its int8 file is a "
                "LiteRT one: to_tflite(model, path, 'int8'); for int8 ONNX, calibrate its "
                "float model, float.keras)", quantization)
        model = export_graph(model, fake_quant=False)  # the folded float model it trained
    calibration = None
    if quantization == "int8":
        calibration = anchored(
            representative_dataset(representative_data, model), pixel_input_range(model)
        )
    for name in ("onnx", "tf2onnx") + (("onnxruntime",) if calibration else ()):
        import_onnx_package(name)
    signature = [keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="float32")]

    with atomic_target(target, suffix=".onnx") as temporary, tempfile.TemporaryDirectory() as work:
        float_path = temporary if calibration is None else os.path.join(work, "float.onnx")
        with pointwise_written_as_conv(model, pointwise_as_conv), warnings.catch_warnings():
            # Keras' numpy-2 patch of tf2onnx looks up `np.object`, which warns.
            warnings.simplefilter("ignore", FutureWarning)
            model.export(float_path, format="onnx", verbose=False,
                         input_signature=signature, opset_version=opset)
        if calibration is not None:
            quantize_int8(float_path, temporary, calibration, work)
        if names is not None:  # the file carries them (mobilenet.class_names)
            write_onnx_class_names(temporary, names)
    return target


def quantize_int8(float_path: str, int8_path: str, calibration: Images, work: str) -> None:
    """Writes the int8 (QDQ) file of the float ONNX file at ``float_path``.

    ONNX Runtime's static quantization: int8 activations calibrated on the
    images ``calibration`` yields, int8 weights per output channel in 7 bits
    (``reduce_range``). ``work`` is a folder for the intermediate file.
    """
    from onnxruntime import quantization as ort_quantization
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Folds constants and fuses ops first, as ONNX Runtime recommends;
    # ONNX's own shape inference is enough for a CNN (no sympy needed).
    prepared = os.path.join(work, "prepared.onnx")
    quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
    graph = import_onnx_package("onnx").load(prepared).graph
    weights = {initializer.name for initializer in graph.initializer}
    input_name = next(value.name for value in graph.input if value.name not in weights)
    # 7-bit weights (reduce_range): x86 CPUs without VNNI (AVX2 only)
    # multiply uint8 activations by int8 weights with VPMADDUBSW, which
    # adds each pair of products into an int16 and saturates; 8-bit
    # weights overflow it (the stem conv's dense pixel input on 2.7% of
    # its pairs), and the file then answers differently there than on
    # VNNI or ARM CPUs (91% against 98% top-1 agreement with Keras).
    # With |w| <= 64 no pair can pass 2 x 255 x 64 < 2**15, so every CPU
    # computes the same integers (benchmarks/int8_agreement.py).
    ort_quantization.quantize_static(
        prepared, int8_path, calibration_reader(calibration, input_name),
        quant_format=ort_quantization.QuantFormat.QDQ, per_channel=True,
        reduce_range=True,
        activation_type=ort_quantization.QuantType.QInt8,
        weight_type=ort_quantization.QuantType.QInt8,
    )
