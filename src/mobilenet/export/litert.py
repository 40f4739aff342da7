"""LiteRT (TFLite) files: `to_tflite` and the converter settings behind its arguments."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import warnings

import keras

from mobilenet._files import atomic_target
from mobilenet._validation import check_bool, check_choice, invalid
from mobilenet.class_names import get_class_names, write_tflite_class_names
from mobilenet.facts import image_model_facts, write_tflite_facts
from mobilenet.export.calibration import anchored, pixel_input_range, representative_dataset
from mobilenet.export.common import check_model, pointwise_written_as_conv, writable_target

__all__ = ["IO_TYPES", "QUANTIZATIONS", "converter_settings", "to_tflite"]

#: The values `to_tflite` accepts for ``quantization``.
QUANTIZATIONS = (None, "float16", "dynamic", "int8")
#: The values `to_tflite` accepts for ``io_type``.
IO_TYPES = ("uint8", "int8", "float32")


def converter_settings(
    quantization: str | None,
    representative_data: Any,
    io_type: str,
    model: keras.Model,
    input_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for Keras' LiteRT exporter, which sets them on the converter.

    Only LiteRT built-in ops are allowed (int8: their int8 kernels only), so
    the file runs in a plain LiteRT runtime.
    """
    import tensorflow as tf

    builtins = tf.lite.OpsSet.TFLITE_BUILTINS
    if quantization is None:
        return {"target_spec": {"supported_ops": [builtins]}}
    settings: dict[str, Any] = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantization == "float16":
        settings["target_spec"] = {
            "supported_ops": [builtins],
            "supported_types": [tf.float16],
        }
    elif quantization == "dynamic":
        settings["target_spec"] = {"supported_ops": [builtins]}
    else:  # int8
        if representative_data is not None:
            settings["representative_dataset"] = anchored(
                representative_dataset(representative_data, model), input_range
            )
            settings["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}
        # else: a QAT export graph, whose FakeQuant ops carry every range (see to_tflite)
        io_dtype = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[io_type]
        settings["inference_input_type"] = io_dtype
        settings["inference_output_type"] = io_dtype
    return settings


def _check_input_range(input_range: Any, model: keras.Model) -> tuple[float, float] | None:
    if isinstance(input_range, str) and input_range == "auto":
        return pixel_input_range(model)
    if input_range is None:
        return None
    try:
        low, high = (float(value) for value in input_range)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not low < high:
        raise invalid("input_range", "'auto', None or (low, high) with low < high", input_range)
    return (low, high)


def to_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    quantization: str | None = None,
    representative_data: Any = None,
    *,
    io_type: str = "uint8",
    pointwise_as_conv: bool = True,
    input_range: tuple[float, float] | str | None = "auto",
    per_channel: bool | None = None,
) -> Path:
    """Writes ``model`` as a LiteRT (TFLite) flatbuffer, optionally quantized.

    Conversion goes through Keras' own ``model.export(..., format="litert")``
    and the ``tf.lite.TFLiteConverter`` options it exposes; the file is written
    to a temporary name in the same folder and moved into place only when the
    conversion succeeded, so no partial file is ever left at ``path``. Only
    LiteRT built-in ops are allowed, so the file runs in a plain LiteRT runtime.
    The file carries the model's class names, if it has any
    (`mobilenet.class_names`).

    Args:
        model: keras.Model, a model with a fixed-rank image input, in inference
            mode (dropout off, BatchNorm on its moving statistics).
        path: str or PathLike, the ``.tflite`` file to write, in an existing
            folder.
        quantization: ``None`` (float32), ``"float16"`` (float16 weights,
            float compute), ``"dynamic"`` (int8 weights, activations quantized
            on the fly) or ``"int8"`` (full-integer: int8 weights and
            activations, calibrated on ``representative_data``). A
            quantization-aware model (`mobilenet.quantization`) is written
            with the weights and ranges it trained with: ``"int8"`` needs no
            ``representative_data`` then, and its pixel input stays the uint8
            pixel.
        representative_data: needed for ``"int8"`` of a float model: an array of images shaped
            like the model input, ``(N, H, W, C)``, as the model expects them
            (already preprocessed), or a ``tf.data.Dataset`` of such images or
            batches (or of ``(images, labels)``). A few hundred real images
            are enough; every one is run through the model once.
        io_type: the file's input and output type with ``"int8"``:
            ``"uint8"`` (the default), ``"int8"`` or ``"float32"`` (quantize
            and dequantize inside the file). Ignored otherwise.
        pointwise_as_conv: bool, whether to convert `PointwiseConv2D` layers
            as plain 1x1 convolutions: one ``CONV_2D`` op each, the form phone
            delegates expect, instead of ``RESHAPE``/``FULLY_CONNECTED``/
            ``RESHAPE`` (31 ops instead of 57 for MobileNetV1; the same speed
            on XNNPACK's CPU kernels). Same weights and outputs either way.
            Defaults to True.
        input_range: with ``"int8"``, the ``(low, high)`` of the model's
            input values, which the file's integer input then covers exactly:
            ``(0, 255)`` makes a uint8 input the pixel itself (scale 1, zero
            point 0), so a camera frame goes in as it is. ``"auto"`` (the
            default) is ``(0, 255)`` for a model that takes pixels (its first
            layer a ``Rescaling``, see `pixel_input_range`) and None otherwise;
            None leaves the range to the calibration images alone.
        per_channel: with ``"int8"``, whether weights get a scale per output
            channel (LiteRT's default) or one per tensor (what many
            accelerators need, at some cost in accuracy). None (the
            default): per channel for a float model; as it trained for a
            quantization-aware one, which may not be asked otherwise.

    Returns:
        The path of the written file.

    Raises:
        ValueError: for an unknown ``quantization`` or ``io_type``, missing or
            wrongly shaped ``representative_data`` with ``"int8"``, or a
            ``path`` that cannot be written.

    Example:

    ```python
    from mobilenet import MobileNetV1
    from mobilenet.cifar10 import load_cifar10
    from mobilenet.export import to_tflite

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    (images, _), _ = load_cifar10("../shared/data/cifar10-subset")  # pixels: what the model takes
    to_tflite(model, "mobilenet.tflite")
    to_tflite(model, "mobilenet_int8.tflite", "int8", representative_data=images[:100])
    ```
    """
    from mobilenet.quantization import export_graph, has_per_tensor_weights, is_quantize_aware

    check_model(model)
    check_choice(quantization, "quantization", QUANTIZATIONS)
    check_choice(io_type, "io_type", IO_TYPES)
    target = writable_target(path, ".tflite")
    names = get_class_names(model)
    facts = image_model_facts(model)  # before a QAT model becomes its export graph
    if per_channel is not None:
        check_bool(per_channel, "per_channel")
    converted = model
    if is_quantize_aware(model):
        trained_per_channel = not has_per_tensor_weights(model)
        if per_channel is not None and per_channel != trained_per_channel:
            raise invalid("per_channel", f"None or {trained_per_channel} for this model, "
                          "which trained with per-"
                          f"{'channel' if trained_per_channel else 'tensor'} weights", per_channel)
        per_channel = trained_per_channel
        if quantization == "int8" and representative_data is not None:
            warnings.warn("to_tflite: a quantization-aware model carries its own int8 ranges; "
                          "representative_data is not used", stacklevel=2)
        representative_data = None
        converted = export_graph(model, fake_quant=quantization == "int8")
        input_range = None
    else:
        input_range = _check_input_range(input_range, model)
        if quantization == "int8" and representative_data is None:
            representative_dataset(None, model)  # raises: PTQ needs calibration images
    settings = converter_settings(quantization, representative_data, io_type, converted,
                                  input_range)
    if converted is not model and quantization == "int8":
        import tensorflow as tf

        # Only built-in int8 kernels (Keras' exporter would allow TensorFlow ops too).
        settings["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    if quantization == "int8" and per_channel is False:
        settings["_experimental_disable_per_channel"] = True

    with atomic_target(target, suffix=".tflite") as temporary:
        with pointwise_written_as_conv(converted, pointwise_as_conv):
            converted.export(temporary, format="litert", verbose=False, **settings)
        if facts is not None:  # how to feed it and read it, class names too (mobilenet.facts)
            write_tflite_facts(temporary, facts)
        elif names is not None:  # a model that is no image classifier: its names alone
            write_tflite_class_names(temporary, names)
    return target

