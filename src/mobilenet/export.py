"""Deploy a trained model: LiteRT (TFLite) and ONNX export, verification, BatchNorm folding.

Functions, each adding what Keras and the LiteRT converter lack:

- `to_tflite` writes a ``.tflite`` file through Keras' own LiteRT export
  (``model.export(path, format="litert")``, which drives
  ``tf.lite.TFLiteConverter``), with the converter's quantization modes behind
  one argument, checked calibration data and an atomic write.
- `verify_tflite` runs the file in the LiteRT interpreter and compares it with
  the Keras model on real images.
- `to_onnx` and `verify_onnx` do the same for ONNX Runtime, through Keras'
  ``model.export(path, format="onnx")`` (tf2onnx) and ONNX Runtime's static
  int8 quantization (the optional ``onnx`` extra).
- `fold_batchnorm` returns an inference-only copy of a model with every
  BatchNorm folded into the convolution before it.

For TF Serving, Keras needs no help: ``model.export(folder,
format="tf_saved_model")`` writes a SavedModel whose ``serve`` endpoint runs
the model in inference mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mobilenet._files import atomic_target
from mobilenet._keras_compat import flatten_layers, inbound_nodes, outbound_nodes
from mobilenet._validation import check_choice, check_positive_int, invalid
from mobilenet.class_names import get_class_names, write_onnx_class_names, write_tflite_class_names
from mobilenet.layers import DepthwiseSeparableConv2D, PointwiseConv2D

__all__ = [
    "ONNX_QUANTIZATIONS",
    "QUANTIZATIONS",
    "ExportResult",
    "TFLiteReport",
    "VerificationReport",
    "export_model",
    "fold_batchnorm",
    "pixel_input_range",
    "run_onnx",
    "run_tflite",
    "to_onnx",
    "to_tflite",
    "verify_onnx",
    "verify_tflite",
]

#: The values `to_tflite` accepts for ``quantization``.
QUANTIZATIONS = (None, "float16", "dynamic", "int8")
_IO_TYPES = ("uint8", "int8", "float32")


def _check_images(images: Any, model: keras.Model, argument: str) -> np.ndarray:
    """Returns ``images`` as float32 after checking them against the model input."""
    expected = tuple(model.input_shape[1:])
    array = np.asarray(images)
    shape_ok = array.ndim == len(expected) + 1 and array.shape[0] > 0 and all(
        want is None or want == got for want, got in zip(expected, array.shape[1:])
    )
    if not shape_ok or not np.issubdtype(array.dtype, np.number):
        shown = ", ".join("H" if d is None else str(d) for d in expected)
        raise ValueError(
            f"Invalid value for argument `{argument}`: expected a non-empty numeric "
            f"array of images of shape (N, {shown}), the model's input shape. "
            f"Received: {argument} with shape {array.shape} and dtype {array.dtype}"
        )
    return array.astype(np.float32)


def _representative_dataset(data: Any, model: keras.Model):
    """A converter-ready generator over ``data``: one image per step, as float32."""
    if data is None:
        raise ValueError(
            "Invalid value for argument `representative_data`: quantization='int8' "
            "calibrates activation ranges on real inputs, so it needs an array "
            "or a tf.data.Dataset of images shaped like the model input, "
            f"{tuple(model.input_shape)}. Received: representative_data=None"
        )
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if isinstance(spec, (tuple, list)):  # (images, labels) pairs
            data = data.map(lambda *element: element[0])
            spec = data.element_spec
        expected = tuple(model.input_shape[1:])
        dims = tuple(spec.shape)
        if len(dims) == len(expected) + 1:  # batched: split into single images
            data = data.unbatch()
            dims = dims[1:]
        if len(dims) != len(expected) or any(
            want is not None and got is not None and want != got
            for want, got in zip(expected, dims)
        ):
            raise ValueError(
                "Invalid value for argument `representative_data`: expected a "
                f"dataset of images of shape {expected} (or batches of them), the "
                f"model's input shape. Received: a dataset of shape {tuple(spec.shape)}"
            )

        def generate() -> Iterator[list[np.ndarray]]:
            for image in data.as_numpy_iterator():
                yield [np.asarray(image, np.float32)[None]]

        return generate

    images = _check_images(data, model, "representative_data")

    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None]]

    return generate


def _anchored(generate: Any, input_range: tuple[float, float] | None) -> Any:
    """Calibration that also sees both ends of ``input_range`` (one value each).

    The converter sets the input's quantization from the smallest and largest
    input it saw; two values in one copy of the first image make those
    exactly ``input_range`` (for pixels: uint8 scale 1, zero point 0) and
    leave every other activation range as the real images make it.
    """
    if input_range is None:
        return generate

    def anchored() -> Iterator[list[np.ndarray]]:
        first = True
        for (image,) in generate():
            if first:
                ends = np.array(image, np.float32, copy=True)
                flat = ends.reshape(-1)
                flat[0], flat[-1] = input_range
                yield [ends]
                first = False
            yield [image]

    return anchored


def pixel_input_range(model: keras.Model) -> tuple[float, float] | None:
    """``(0.0, 255.0)`` if ``model`` takes pixels, else None.

    A model takes pixels when the first layer after its input is a
    ``keras.layers.Rescaling`` (as in ``MobileNetV1(include_preprocessing=True)``
    and the models `mobilenet.cifar10.train` makes).
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if layers and isinstance(layers[0], keras.layers.Rescaling):
        return (0.0, 255.0)
    return None


def _converter_settings(
    quantization: str | None,
    representative_data: Any,
    io_type: str,
    model: keras.Model,
    input_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for Keras' LiteRT exporter, which sets them on the converter."""
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
        settings["representative_dataset"] = _anchored(
            _representative_dataset(representative_data, model), input_range
        )
        settings["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}
        io_dtype = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[io_type]
        settings["inference_input_type"] = io_dtype
        settings["inference_output_type"] = io_dtype
    return settings


@contextlib.contextmanager
def _pointwise_as_conv(model: keras.Model) -> Iterator[None]:
    """Temporarily writes every `PointwiseConv2D` of ``model`` as a plain conv."""
    layers = [
        layer for layer in flatten_layers(model) if isinstance(layer, PointwiseConv2D)
    ]
    before = [layer.implementation for layer in layers]
    try:
        for layer in layers:
            layer.implementation = "conv"
        yield
    finally:
        for layer, implementation in zip(layers, before):
            layer.implementation = implementation


def _writable_target(path: str | os.PathLike, suffix: str, argument: str = "path") -> Path:
    """Checks that ``path`` names a file we can create; returns it as a Path."""
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


def to_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    quantization: str | None = None,
    representative_data: Any = None,
    *,
    io_type: str = "uint8",
    pointwise_as_conv: bool = True,
    input_range: tuple[float, float] | str | None = "auto",
) -> Path:
    """Writes ``model`` as a LiteRT (TFLite) flatbuffer, optionally quantized.

    Conversion goes through Keras' own ``model.export(..., format="litert")``
    and the ``tf.lite.TFLiteConverter`` options it exposes; the file is written
    to a temporary name in the same folder and moved into place only when the
    conversion succeeded, so no partial file is ever left at ``path``. Only
    LiteRT built-in ops are allowed, so the file runs in a plain LiteRT runtime.

    Args:
        model: keras.Model, a model with a fixed-rank image input, in inference
            mode (dropout off, BatchNorm on its moving statistics).
        path: str or PathLike, the ``.tflite`` file to write, in an existing
            folder.
        quantization: ``None`` (float32), ``"float16"`` (float16 weights,
            float compute), ``"dynamic"`` (int8 weights, activations quantized
            on the fly) or ``"int8"`` (full-integer: int8 weights and
            activations, calibrated on ``representative_data``).
        representative_data: needed for ``"int8"``: an array of images shaped
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
    _check_model(model)
    check_choice(quantization, "quantization", QUANTIZATIONS)
    check_choice(io_type, "io_type", _IO_TYPES)
    target = _writable_target(path, ".tflite")
    if isinstance(input_range, str) and input_range == "auto":
        input_range = pixel_input_range(model)
    elif input_range is not None:
        try:
            low, high = (float(value) for value in input_range)
        except (TypeError, ValueError):
            low = high = float("nan")
        if not low < high:
            raise ValueError(
                "Invalid value for argument `input_range`: expected 'auto', None or "
                f"(low, high) with low < high. Received: input_range={input_range!r}"
            )
        input_range = (low, high)
    settings = _converter_settings(quantization, representative_data, io_type, model, input_range)

    with atomic_target(target, suffix=".tflite") as temporary:
        switch = _pointwise_as_conv(model) if pointwise_as_conv else contextlib.nullcontext()
        with switch:
            model.export(temporary, format="litert", verbose=False, **settings)
        names = get_class_names(model)
        if names is not None:  # the file carries the model's class names (mobilenet.class_names)
            write_tflite_class_names(temporary, names)
    return target


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


#: The name `VerificationReport` had before ONNX export came: kept so that code using it runs on.
TFLiteReport = VerificationReport


#: The file identifier of a LiteRT flatbuffer, at bytes 4-8 of every .tflite file.
_TFLITE_IDENTIFIER = b"TFL3"


def _interpreter(path: str | os.PathLike, num_threads: int | None, argument: str = "path"):
    """A LiteRT interpreter: ai-edge-litert's when installed, else TensorFlow's.

    A file that is not a LiteRT model (empty, or another format under a
    .tflite name) is an `InvalidArgument` for ``argument``, said in words
    rather than in LiteRT's ("Mmap of '6' at offset '0' failed").
    """
    with open(path, "rb") as stream:
        head = stream.read(8)
    problem = None
    if not head:
        problem = "an empty file"
    elif head[4:8] != _TFLITE_IDENTIFIER:
        problem = "not a LiteRT flatbuffer: no 'TFL3' identifier"
        if head.startswith(b"PK"):
            problem += "; it is a zip archive, such as a .keras file"
    if problem is None:
        try:
            return _new_interpreter(path, num_threads)
        except (ValueError, RuntimeError) as error:
            problem = f"LiteRT cannot load it: {str(error).strip().splitlines()[0][:200]}"
    raise invalid(
        argument, "a LiteRT (.tflite) model file", None,
        shown=f"{argument}={str(path)!r}, which is not a LiteRT model ({problem})",
    )


def _new_interpreter(path: str | os.PathLike, num_threads: int | None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the optional `litert` extra is absent
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
    return Interpreter(model_path=str(path), num_threads=num_threads)


def _quantize(images: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Casts float images to the interpreter input's dtype, quantizing if needed."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if not np.issubdtype(dtype, np.integer):
        return images.astype(dtype)
    if scale == 0:
        raise ValueError(f"The file's {dtype} input has no quantization parameters.")
    info = np.iinfo(dtype)
    return np.clip(np.round(images / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.issubdtype(values.dtype, np.integer) and scale != 0:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


def _check_model(model: Any) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise invalid("model", "a keras.Model", model)
    return model


def _check_run_arguments(
    path: str | os.PathLike, batch_size: int, num_threads: int | None, suffix: str = ".tflite"
) -> None:
    check_positive_int(batch_size, "batch_size")
    if num_threads is not None:
        check_positive_int(num_threads, "num_threads")
    if not Path(path).is_file():
        raise invalid("path", f"an existing {suffix} file", None, shown=f"path={str(path)!r}")


def run_tflite(
    path: str | os.PathLike,
    images: Any,
    *,
    batch_size: int = 32,
    num_threads: int | None = None,
) -> np.ndarray:
    """Runs a single-input, single-output ``.tflite`` file on float images.

    Integer inputs are quantized and integer outputs dequantized with the
    file's own scale and zero point, so callers always see float32.

    Args:
        path: str or PathLike, the ``.tflite`` file.
        images: array of shape ``(N, ...)`` in the Keras model's input space.
        batch_size: int, images per interpreter call. Defaults to 32.
        num_threads: int or None, interpreter threads (None: LiteRT's default).

    Returns:
        A float32 array with the file's output for every image.

    Example:

    ```python
    import numpy as np
    from mobilenet import MobileNetV1
    from mobilenet.export import run_tflite, to_tflite

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    to_tflite(model, "mobilenet.tflite")
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    probabilities = run_tflite("mobilenet.tflite", images)  # shape (8, 10)
    ```
    """
    _check_run_arguments(path, batch_size, num_threads)
    return _run(_interpreter(path, num_threads), np.asarray(images, np.float32), batch_size)


def _run(interpreter, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Feeds ``images`` through a single-input, single-output interpreter in batches."""
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    outputs, current = [], None
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        if current != len(chunk):
            interpreter.resize_tensor_input(input_detail["index"], [len(chunk), *chunk.shape[1:]])
            interpreter.allocate_tensors()
            current = len(chunk)
        interpreter.set_tensor(input_detail["index"], _quantize(chunk, input_detail))
        interpreter.invoke()
        outputs.append(_dequantize(interpreter.get_tensor(output_detail["index"]), output_detail))
    return np.concatenate(outputs)


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
    TensorFlow's ``tf.lite.Interpreter``.

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
    _check_model(model)
    images = _check_images(images, model, "images")
    _check_run_arguments(path, batch_size, num_threads)
    expected = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float32)
    interpreter = _interpreter(path, num_threads)
    return _verification_report(
        path, expected, _run(interpreter, images, batch_size),
        input_type=np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
        output_type=np.dtype(interpreter.get_output_details()[0]["dtype"]).name,
    )


def _verification_report(
    path: str | os.PathLike, expected: np.ndarray, actual: np.ndarray, *, input_type: str,
    output_type: str,
) -> VerificationReport:
    """Compares a file's outputs with its Keras model's on the same images."""
    if actual.shape != expected.shape:
        raise ValueError(
            f"The file {str(path)!r} gives outputs of shape {actual.shape}, the model "
            f"{expected.shape}: was it converted from this model?"
        )
    flat_expected = expected.reshape(len(expected), -1)
    flat_actual = actual.reshape(len(actual), -1)
    return VerificationReport(
        num_images=len(expected),
        max_abs_diff=float(np.max(np.abs(flat_actual - flat_expected))),
        top1_agreement=float(np.mean(flat_actual.argmax(-1) == flat_expected.argmax(-1))),
        input_type=input_type,
        output_type=output_type,
    )


# --------------------------------------------------------------------------
# BatchNorm folding
# --------------------------------------------------------------------------

_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _bn_scale_shift(bn: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel ``(scale, shift)`` that BN applies at inference, in float64."""
    mean = np.asarray(bn.moving_mean, np.float64)
    variance = np.asarray(bn.moving_variance, np.float64)
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return scale, beta - mean * scale


def _folded(conv: keras.layers.Layer, bn: keras.layers.BatchNormalization) -> list[np.ndarray]:
    """``[kernel, bias]`` of ``conv`` with ``bn`` folded in (float32)."""
    scale, shift = _bn_scale_shift(bn)
    kernel = np.asarray(conv.kernel, np.float64)
    bias = np.asarray(conv.bias, np.float64) if conv.use_bias else np.zeros_like(scale)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # Output channel c * depth_multiplier + m comes from kernel[..., c, m].
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * scale
    return [kernel.astype(np.float32), (bias * scale + shift).astype(np.float32)]


def _foldable_bn(conv: keras.layers.Layer, bn: Any) -> bool:
    """Whether ``bn`` is a BatchNorm over the channel axis of ``conv``'s output."""
    if not isinstance(bn, keras.layers.BatchNormalization):
        return False
    channels_last = getattr(conv, "data_format", "channels_last") == "channels_last"
    rank = len(bn.input.shape) if inbound_nodes(bn) else 4
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    if axis is None:
        return False
    return channels_last and axis % rank == rank - 1 and (
        getattr(conv, "activation", None) in (None, keras.activations.linear)
    )


def _conv_bn_pairs(model: keras.Model) -> dict[int, keras.layers.Layer]:
    """Maps ``id(conv)`` to the BatchNorm that alone consumes its only output."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, _CONVS) or len(inbound_nodes(layer)) != 1:
            continue
        consumers = outbound_nodes(layer)
        if len(consumers) != 1:
            continue
        bn = consumers[0].operation
        if _foldable_bn(layer, bn) and len(inbound_nodes(bn)) == 1:
            pairs[id(layer)] = bn
    return pairs


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """An inference-only copy of ``model`` with BatchNorm folded into the convs.

    At inference a BatchNorm is a per-channel affine map, ``y = scale * x +
    shift`` with ``scale = gamma / sqrt(moving_variance + epsilon)`` and
    ``shift = beta - moving_mean * scale``, so it merges into the convolution
    before it: the kernel's output channels are multiplied by ``scale`` and
    the bias becomes ``bias * scale + shift``. This is done for every
    ``Conv2D`` or ``DepthwiseConv2D`` (``PointwiseConv2D`` included) whose only
    consumer is a channels-last BatchNorm, and inside every
    `DepthwiseSeparableConv2D` (which becomes the same block with
    ``use_batch_norm=False``, that is with biased convolutions). ``Dropout``
    layers, identities at inference, are dropped too. Everything else is
    copied with its weights. The arithmetic is done in float64, so outputs
    match the original model's inference outputs within float32 rounding.

    The copy is for inference and export only: it has no BatchNorm to train.

    Args:
        model: keras.Model, a functional (or built Sequential) model. Nested
            models are copied as they are, without folding inside them.

    Returns:
        A new functional keras.Model with fewer layers and fewer weights.

    Example:

    ```python
    import numpy as np
    from mobilenet import MobileNetV1
    from mobilenet.export import fold_batchnorm

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10)
    folded = fold_batchnorm(model)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    ```
    """
    _check_model(model)
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise invalid(
                "model",
                "a Sequential model built on a keras.Input (folding follows the layer graph)",
                model,
                shown="an unbuilt Sequential",
            )
        # One input and one output, unwrapped, so the copy is called as the Sequential was.
        model = keras.Model(model.inputs[0], model.outputs[0], name=model.name)
    elif not isinstance(model, keras.Function):
        # keras.Function is the public base class of functional models: the ones with a graph.
        raise invalid(
            "model",
            "a functional or Sequential model (folding follows the layer graph)",
            model,
            shown=f"a subclassed {type(model).__name__}",
        )

    pairs = _conv_bn_pairs(model)
    folded_bns = {id(bn) for bn in pairs.values()}
    originals: dict[int, keras.layers.Layer] = {}  # id(new layer) -> old layer

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if id(layer) in folded_bns or isinstance(layer, keras.layers.Dropout):
            return layer  # never called: `call` below passes its input through
        config = layer.get_config()
        if id(layer) in pairs:
            config["use_bias"] = True
        elif isinstance(layer, DepthwiseSeparableConv2D) and layer.use_batch_norm:
            config["use_batch_norm"] = False
        new = layer.__class__.from_config(config)
        originals[id(new)] = layer
        return new

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        if id(layer) in folded_bns or isinstance(layer, keras.layers.Dropout):
            return args[0]
        kwargs.pop("training", None)
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for new in flatten_layers(folded, recursive=False):
        old = originals.get(id(new))
        if old is None:
            continue
        if id(old) in pairs:
            new.set_weights(_folded(old, pairs[id(old)]))
        elif isinstance(old, DepthwiseSeparableConv2D) and old.use_batch_norm:
            for part, bn in (("depthwise", old.depthwise_bn), ("pointwise", old.pointwise_bn)):
                getattr(new, part).set_weights(_folded(getattr(old, part), bn))
        else:
            new.set_weights(old.get_weights())
    return folded


# --------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------

#: The values `to_onnx` accepts for ``quantization``.
ONNX_QUANTIZATIONS = (None, "int8")
ONNX_EXTRA_HINT = 'pip install "mobilenet[onnx]"'
_ONNX_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16",
               "tensor(double)": "float64", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


def _onnx_module(name: str) -> Any:
    """Imports ``name`` (onnx, onnxruntime or tf2onnx), or says which extra brings it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"ONNX export and inference need the `{name}` package, which is not "
            f"installed; install the optional `onnx` extra: {ONNX_EXTRA_HINT}"
        ) from error


def _onnx_session(path: str | os.PathLike, num_threads: int | None, argument: str = "path"):
    """An ONNX Runtime CPU session on ``path``; a file it cannot read is a ValueError."""
    ort = _onnx_module("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if num_threads:
        options.intra_op_num_threads = num_threads
    # ONNX Runtime's threads spin-wait after each run by default, taking the
    # CPU from whatever runs next (image decoding in `mobilenet predict`,
    # another model): on 2 cores a Keras model timed after such a session ran
    # up to 3x slower, while turning it off cost ONNX Runtime nothing
    # measurable (benchmarks/RESULTS.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types are not public
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise ValueError(
            f"Invalid value for argument `{argument}`: {str(path)!r} is not an ONNX model "
            f"that ONNX Runtime can run ({reason})"
        ) from error


def _onnx_type(value: Any) -> str:
    """The NumPy name of an ONNX Runtime tensor type (``"tensor(float)"`` -> ``"float32"``)."""
    return _ONNX_TYPES.get(value.type, value.type)


def _calibration_reader(generate: Any, input_name: str, batch_size: int = 32) -> Any:
    """An ONNX Runtime CalibrationDataReader over the images ``generate`` yields one by one."""
    from onnxruntime.quantization import CalibrationDataReader

    def batches() -> Iterator[np.ndarray]:
        images = []
        for (image,) in generate():
            images.append(image)
            if len(images) == batch_size:
                yield np.concatenate(images)
                images = []
        if images:
            yield np.concatenate(images)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = batches()

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    return Reader()


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
    ``representative_data``. The 7-bit weights keep the int8 kernels of x86
    CPUs without VNNI (AVX2 only) from saturating, so the file gives the same
    answers on every CPU.
    The file is written to a temporary name in the same folder and moved into
    place only when everything succeeded. Its input is float32 with a free
    batch size, the model's input as it is (pixels 0-255 for a model that
    takes pixels); an int8 file quantizes it inside, and for a model that
    takes pixels the input's int8 range is exactly 0-255 (scale 1).

    Needs the optional ``onnx`` extra: ``pip install "mobilenet[onnx]"``.

    Args:
        model: keras.Model, a float32 model with one image input, in
            inference mode.
        path: str or PathLike, the ``.onnx`` file to write, in an existing
            folder.
        quantization: ``None`` (float32) or ``"int8"``.
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
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value for argument `model`: expected a keras.Model. "
            f"Received: model={model!r}"
        )
    if quantization not in ONNX_QUANTIZATIONS:
        raise ValueError(
            "Invalid value for argument `quantization`: expected one of "
            f"{ONNX_QUANTIZATIONS} for an ONNX file. Received: quantization={quantization!r}"
        )
    target = _writable_target(path, ".onnx")
    calibration = None
    if quantization == "int8":
        calibration = _anchored(
            _representative_dataset(representative_data, model), pixel_input_range(model)
        )
    for name in ("onnx", "tf2onnx") + (("onnxruntime",) if calibration else ()):
        _onnx_module(name)
    signature = [keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="float32")]

    import tempfile

    with atomic_target(target, suffix=".onnx") as temporary, tempfile.TemporaryDirectory() as work:
        float_path = temporary if calibration is None else os.path.join(work, "float.onnx")
        switch = _pointwise_as_conv(model) if pointwise_as_conv else contextlib.nullcontext()
        with switch, warnings.catch_warnings():
            # Keras' numpy-2 patch of tf2onnx looks up `np.object`, which warns.
            warnings.simplefilter("ignore", FutureWarning)
            model.export(float_path, format="onnx", verbose=False,
                         input_signature=signature, opset_version=opset)
        if calibration is not None:
            from onnxruntime import quantization as ort_quantization
            from onnxruntime.quantization.shape_inference import quant_pre_process

            # Folds constants and fuses ops first, as ONNX Runtime recommends;
            # ONNX's own shape inference is enough for a CNN (no sympy needed).
            prepared = os.path.join(work, "prepared.onnx")
            quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
            input_name = _onnx_session(prepared, None).get_inputs()[0].name
            # 7-bit weights (reduce_range): x86 CPUs without VNNI (AVX2 only)
            # multiply uint8 activations by int8 weights with VPMADDUBSW, which
            # adds each pair of products into an int16 and saturates; 8-bit
            # weights overflow it (the stem conv's dense pixel input on 2.7% of
            # its pairs), and the file then answers differently there than on
            # VNNI or ARM CPUs (91% against 98% top-1 agreement with Keras).
            # With |w| <= 64 no pair can pass 2 x 255 x 64 < 2**15, so every CPU
            # computes the same integers (benchmarks/int8_agreement.py).
            ort_quantization.quantize_static(
                prepared, temporary, _calibration_reader(calibration, input_name),
                quant_format=ort_quantization.QuantFormat.QDQ, per_channel=True,
                reduce_range=True,
                activation_type=ort_quantization.QuantType.QInt8,
                weight_type=ort_quantization.QuantType.QInt8,
            )
        names = get_class_names(model)
        if names is not None:  # the file carries the model's class names (mobilenet.class_names)
            write_onnx_class_names(temporary, names)
    return target


def run_onnx(
    path: str | os.PathLike,
    images: Any,
    *,
    batch_size: int = 32,
    num_threads: int | None = None,
) -> np.ndarray:
    """Runs a single-input, single-output ``.onnx`` file in ONNX Runtime (CPU).

    Args:
        path: str or PathLike, the ``.onnx`` file.
        images: array of shape ``(N, ...)`` in the Keras model's input space;
            cast to the file's input type.
        batch_size: int, images per call. Defaults to 32.
        num_threads: int or None, ONNX Runtime's intra-op threads (None: its
            default, one per core).

    Returns:
        A float32 array with the file's output for every image.

    Example:

    ```python
    import numpy as np
    from mobilenet import MobileNetV1
    from mobilenet.export import run_onnx, to_onnx

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    to_onnx(model, "mobilenet.onnx")
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    probabilities = run_onnx("mobilenet.onnx", images)  # shape (8, 10)
    ```
    """
    _check_run_arguments(path, batch_size, num_threads, ".onnx")
    return _run_onnx(_onnx_session(path, num_threads), np.asarray(images), batch_size)


def _run_onnx(session: Any, images: np.ndarray, batch_size: int) -> np.ndarray:
    (input_,) = session.get_inputs()
    dtype = np.dtype(_onnx_type(input_))
    outputs = [
        session.run(None, {input_.name: images[start:start + batch_size].astype(dtype)})[0]
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs).astype(np.float32)


def verify_onnx(
    path: str | os.PathLike,
    model: keras.Model,
    images: Any,
    *,
    batch_size: int = 32,
    num_threads: int | None = None,
) -> VerificationReport:
    """Compares an ``.onnx`` file with its Keras model on real images.

    The same comparison as `verify_tflite`, with the file run in ONNX Runtime.

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
    (train_images, _), (test_images, _) = load_cifar10("../shared/data/cifar10-subset")
    to_onnx(model, "mobilenet_int8.onnx", "int8", representative_data=train_images[:100])
    report = verify_onnx("mobilenet_int8.onnx", model, test_images[:100])
    print(f"{report.top1_agreement:.1%} agree, max diff {report.max_abs_diff:.3g}")
    ```
    """
    images = _check_images(images, model, "images")
    _check_run_arguments(path, batch_size, num_threads, ".onnx")
    session = _onnx_session(path, num_threads)
    expected = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float32)
    return _verification_report(
        path, expected, _run_onnx(session, images, batch_size),
        input_type=_onnx_type(session.get_inputs()[0]),
        output_type=_onnx_type(session.get_outputs()[0]),
    )


# --------------------------------------------------------------------------
# From a saved model to a verified file
# --------------------------------------------------------------------------


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
        calibration_images: images for ``"int8"``, as the model takes them.
        io_type: as in `to_tflite`; ignored for ONNX.
        fold_bn: bool, fold every BatchNorm into the conv before it first.
        verify_images: optional images to verify the file on.

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
    from mobilenet.saving import _load_model

    suffix = Path(output_path).suffix
    if suffix not in (".tflite", ".onnx"):
        raise ValueError(
            "Invalid value for argument `output_path`: expected a .tflite (LiteRT) or .onnx "
            f"file name. Received: output_path={str(output_path)!r}"
        )
    _writable_target(output_path, suffix, "output_path")
    model = _load_model(model_path, compile=False, argument="model_path")
    source = fold_batchnorm(model) if fold_bn else model
    if suffix == ".onnx":
        path = to_onnx(source, output_path, quantization, representative_data=calibration_images)
        report = verify_onnx(path, model, verify_images) if verify_images is not None else None
        input_type = _onnx_type(_onnx_session(path, None).get_inputs()[0])
        return ExportResult(path=path, input_type=input_type, input_quantization=None, report=report)
    path = to_tflite(
        source, output_path, quantization,
        representative_data=calibration_images, io_type=io_type,
        input_range=pixel_input_range(model),
    )
    interpreter = _interpreter(path, None)
    (detail,) = interpreter.get_input_details()
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    report = verify_tflite(path, model, verify_images) if verify_images is not None else None
    return ExportResult(
        path=path,
        input_type=dtype.name,
        input_quantization=(float(scale), int(zero_point)) if np.issubdtype(dtype, np.integer) else None,
        report=report,
    )
