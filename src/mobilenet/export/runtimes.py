"""One runner per runtime: load a model or file once, run batches, say what it takes and gives.

`LiteRTRunner` (``.tflite`` files), `ONNXRunner` (``.onnx`` files, the
optional ``onnx`` extra) and `KerasRunner` (a ``keras.Model``) share the small
`Runner` protocol, which `mobilenet.export.verify_tflite`/`verify_onnx`,
`mobilenet.predict.Classifier` and the benchmarks use:

- ``run(images, batch_size)``: float32 outputs for a batch of images given in
  the Keras model's input space (an integer input is quantized with the
  file's own scale and zero point, an integer output dequantized);
- ``input_shape``, ``output_shape`` (None for a free size), ``input_type`` and
  ``output_type`` (NumPy dtype names), ``input_quantization`` (``(scale,
  zero_point)`` of an integer input, else None);
- ``outputs``: ``"probabilities"`` when the model's last operation is a
  softmax, else ``"logits"``, read from the model or file itself.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from mobilenet._validation import check_positive_int, first_line, invalid
from mobilenet.export.common import import_onnx_package
from mobilenet.facts import OUTPUTS, keras_outputs, onnx_outputs, tflite_outputs

__all__ = [
    "OUTPUTS",
    "KerasRunner",
    "LiteRTRunner",
    "ONNXRunner",
    "Runner",
    "run_onnx",
    "run_tflite",
]


class Runner(Protocol):
    """What every runner has: see the module docstring."""

    runtime: str
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    input_type: str
    output_type: str
    input_quantization: tuple[float, int] | None
    outputs: str

    def run(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """Float32 outputs for ``images`` ``(N, ...)``, ``batch_size`` at a time."""
        ...


def _check_file(path: str | os.PathLike, suffix: str, argument: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise invalid(argument, f"an existing {suffix} file", None, shown=f"{argument}={str(path)!r}")
    return file


def _check_threads(num_threads: int | None) -> int | None:
    return None if num_threads is None else check_positive_int(num_threads, "num_threads")


def _one_input_and_output(inputs: list, outputs: list, path: Path, argument: str) -> None:
    if len(inputs) != 1 or len(outputs) != 1:
        raise invalid(
            argument, "a file with one input and one output", None,
            shown=f"{str(path)!r} with {len(inputs)} and {len(outputs)}",
        )


def _batches(images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    check_positive_int(batch_size, "batch_size")
    return [images[start:start + batch_size] for start in range(0, len(images), batch_size)]


# --------------------------------------------------------------------------- LiteRT

#: The file identifier of a LiteRT flatbuffer, at bytes 4-8 of every .tflite file.
_TFLITE_IDENTIFIER = b"TFL3"


class LiteRTRunner:
    """A ``.tflite`` file in the LiteRT interpreter, ready to run.

    The interpreter is ``ai_edge_litert``'s (the optional ``litert`` extra)
    when installed, else TensorFlow's ``tf.lite.Interpreter``.

    Args:
        path: str or PathLike, a ``.tflite`` file with one input and one output.
        num_threads: int or None, interpreter threads (None: LiteRT's default).
        argument: the name errors give ``path`` (the caller's own name for it).

    Attributes:
        interpreter: the LiteRT interpreter.
        op_names: tuple of the file's op names (``"CONV_2D"``...), in order.
        outputs: ``"probabilities"`` when the op computing the output is a
            ``SOFTMAX`` (behind any ``QUANTIZE``), else ``"logits"``.
        input_quantization: ``(scale, zero_point)`` of an integer input,
            else None; the other attributes are those of `Runner`.

    Raises:
        ValueError: no such file, or one that is not a LiteRT model with one
            input and one output.
    """

    runtime = "litert"

    def __init__(
        self, path: str | os.PathLike, num_threads: int | None = None, *, argument: str = "path"
    ) -> None:
        self.path = _check_file(path, ".tflite", argument)
        self.interpreter, ops = _interpreter(self.path, _check_threads(num_threads), argument)
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        _one_input_and_output(inputs, outputs, self.path, argument)
        (self._input,), (self._output,) = inputs, outputs
        self.input_shape = _free_batch(self._input["shape_signature"])
        self.output_shape = _free_batch(self._output["shape_signature"])
        self.input_type = np.dtype(self._input["dtype"]).name
        self.output_type = np.dtype(self._output["dtype"]).name
        scale, zero_point = self._input["quantization"]
        integer = np.issubdtype(np.dtype(self.input_type), np.integer)
        self.input_quantization = (float(scale), int(zero_point)) if integer else None
        self.op_names = tuple(op["op_name"] for op in ops)
        self.outputs = tflite_outputs(self.path.read_bytes())
        self._batch = None

    def run(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """Float32 outputs for ``images``, quantized in and dequantized out as the file says.

        Images already of the file's integer input type go in as they are.
        """
        images = np.asarray(images)
        outputs = []
        for chunk in _batches(images, batch_size):
            if self._batch != chunk.shape:
                self.interpreter.resize_tensor_input(self._input["index"], chunk.shape)
                self.interpreter.allocate_tensors()
                self._batch = chunk.shape
            self.interpreter.set_tensor(self._input["index"], _quantize(chunk, self._input))
            self.interpreter.invoke()
            outputs.append(_dequantize(self.interpreter.get_tensor(self._output["index"]), self._output))
        return np.concatenate(outputs)


def _interpreter(path: Path, num_threads: int | None, argument: str) -> tuple[Any, list[dict]]:
    """A LiteRT interpreter on ``path``, its tensors allocated, and the file's ops.

    The ops are read before allocation, which replaces those a delegate
    (XNNPACK) takes by one ``DELEGATE`` op.

    A file that is not a LiteRT model (empty, or another format under a
    .tflite name) is said in words rather than in LiteRT's ("Mmap of '6' at
    offset '0' failed").
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
            interpreter = _new_interpreter(path, num_threads)
            # The op list has no public accessor; both interpreters have this one.
            ops = interpreter._get_ops_details()
            interpreter.allocate_tensors()
            return interpreter, ops
        except (ValueError, RuntimeError) as error:
            problem = f"LiteRT cannot load it: {first_line(error)[:200]}"
    raise invalid(
        argument, "a LiteRT (.tflite) model file", None,
        shown=f"{argument}={str(path)!r}, which is not a LiteRT model ({problem})",
    )


def _new_interpreter(path: Path, num_threads: int | None) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the optional `litert` extra is absent
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
    return Interpreter(model_path=str(path), num_threads=num_threads)


def _free_batch(signature: Any) -> tuple[int | None, ...]:
    return tuple(None if int(dim) < 0 else int(dim) for dim in signature)


def _quantize(images: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """``images`` as the input's dtype: quantized if they are float and it is an integer type."""
    dtype = np.dtype(detail["dtype"])
    if images.dtype == dtype or not np.issubdtype(dtype, np.integer):
        return images.astype(dtype, copy=False)
    scale, zero_point = detail["quantization"]
    if scale == 0:
        raise ValueError(f"The file's {dtype} input has no quantization parameters.")
    info = np.iinfo(dtype)
    values = np.asarray(images, np.float32) / scale + zero_point
    return np.clip(np.round(values), info.min, info.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.issubdtype(values.dtype, np.integer) and scale != 0:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


def run_tflite(
    path: str | os.PathLike,
    images: Any,
    *,
    batch_size: int = 32,
    num_threads: int | None = None,
) -> np.ndarray:
    """Runs a single-input, single-output ``.tflite`` file on float images.

    Integer inputs are quantized and integer outputs dequantized with the
    file's own scale and zero point, so callers always see float32. To run a
    file many times, load it once: ``LiteRTRunner(path).run(images)``.

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
    check_positive_int(batch_size, "batch_size")
    runner = LiteRTRunner(path, num_threads)
    return runner.run(np.asarray(images, np.float32), batch_size)


# --------------------------------------------------------------------------- ONNX Runtime

#: ONNX Runtime's tensor types by NumPy dtype name.
_ONNX_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16",
               "tensor(double)": "float64", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


class ONNXRunner:
    """An ``.onnx`` file in an ONNX Runtime CPU session, ready to run.

    Needs the optional ``onnx`` extra: ``pip install "mobilenet[onnx]"``.

    Args:
        path: str or PathLike, an ``.onnx`` file with one input and one output.
        num_threads: int or None, ONNX Runtime's intra-op threads (None: its
            default, one per core).
        argument: the name errors give ``path`` (the caller's own name for it).

    Attributes:
        session: the ``onnxruntime.InferenceSession``.
        op_names: tuple of the graph's node types (``"Conv"``...), in order.
        outputs: ``"probabilities"`` when the node computing the output is a
            ``Softmax`` (behind any ``QuantizeLinear``/``DequantizeLinear``),
            else ``"logits"``; the other attributes are those of `Runner`.

    Raises:
        ValueError: no such file, or one that is not an ONNX model ONNX
            Runtime can run, with one input and one output.
        ImportError: the ``onnx`` extra is not installed.
    """

    runtime = "onnxruntime"

    def __init__(
        self, path: str | os.PathLike, num_threads: int | None = None, *, argument: str = "path"
    ) -> None:
        self.path = _check_file(path, ".onnx", argument)
        self.session = _onnx_session(self.path, _check_threads(num_threads), argument)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        _one_input_and_output(inputs, outputs, self.path, argument)
        (self._input,), (output,) = inputs, outputs
        self.input_shape = tuple(d if isinstance(d, int) else None for d in self._input.shape)
        self.output_shape = tuple(d if isinstance(d, int) else None for d in output.shape)
        self.input_type = _ONNX_TYPES.get(self._input.type, self._input.type)
        self.output_type = _ONNX_TYPES.get(output.type, output.type)
        self.input_quantization = None  # an ONNX input carries no scale; QDQ files take floats
        graph = import_onnx_package("onnx").load(str(self.path), load_external_data=False).graph
        self.op_names = tuple(node.op_type for node in graph.node)
        self.outputs = onnx_outputs(graph)

    def run(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """Float32 outputs for ``images``, cast to the file's input type."""
        images = np.asarray(images)
        dtype = np.dtype(self.input_type)
        outputs = [
            self.session.run(None, {self._input.name: chunk.astype(dtype, copy=False)})[0]
            for chunk in _batches(images, batch_size)
        ]
        return np.concatenate(outputs).astype(np.float32)


def _onnx_session(path: Path, num_threads: int | None, argument: str) -> Any:
    """An ONNX Runtime CPU session on ``path``; a file it cannot read is an error."""
    ort = import_onnx_package("onnxruntime")
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
        raise invalid(
            argument, "", None,
            problem=f"{str(path)!r} is not an ONNX model that ONNX Runtime can run "
            f"({first_line(error)})", shown=f"{argument}={str(path)!r}",
        ) from error


def run_onnx(
    path: str | os.PathLike,
    images: Any,
    *,
    batch_size: int = 32,
    num_threads: int | None = None,
) -> np.ndarray:
    """Runs a single-input, single-output ``.onnx`` file in ONNX Runtime (CPU).

    To run a file many times, load it once: ``ONNXRunner(path).run(images)``.

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
    check_positive_int(batch_size, "batch_size")
    return ONNXRunner(path, num_threads).run(images, batch_size)


# --------------------------------------------------------------------------- Keras


class KerasRunner:
    """A ``keras.Model`` behind the `Runner` protocol, for comparing it with its files.

    Args:
        model: keras.Model with one input and one output.

    Attributes:
        model: the model.
        outputs: ``"probabilities"`` when the model's last computing layer
            (past `mobilenet.layers.ClassNames` and a QAT model's output range)
            is a softmax (its activation, or a ``Softmax`` layer), else
            ``"logits"`` (`mobilenet.facts.keras_outputs`); the other
            attributes are those of `Runner`.
    """

    runtime = "keras"
    input_quantization = None

    def __init__(self, model: keras.Model) -> None:
        if not isinstance(model, keras.Model):
            raise invalid("model", "a keras.Model", model)
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise invalid("model", "a model with one input and one output", None,
                          shown=f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
        self.model = model
        self.input_shape = tuple(model.input_shape)
        self.output_shape = tuple(model.output_shape)
        self.input_type = keras.backend.standardize_dtype(model.inputs[0].dtype)
        self.output_type = keras.backend.standardize_dtype(model.outputs[0].dtype)
        self.outputs = keras_outputs(model)

    def run(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """The model's float32 outputs for ``images``, at inference (``model.predict``).

        ``model.predict`` rather than a loop of ``predict_on_batch``: under a
        ``tf.distribute`` strategy it splits the batches over the replicas and
        workers, as `mobilenet.training.evaluate` needs in a cluster.
        """
        images = np.asarray(images, np.float32)
        check_positive_int(batch_size, "batch_size")
        return np.asarray(self.model.predict(images, batch_size=batch_size, verbose=0), np.float32)

