"""Our ``.onnx`` files in OpenVINO, float32 and int8: `OpenVINORunner`, and which runtime is fastest.

OpenVINO reads an ONNX file as it is (no conversion step, no ``onnx``
package), the int8 QDQ files `mobilenet.export.to_onnx` writes included, and
compiles it for the CPU. It needs the optional ``openvino`` extra: ``pip
install "mobilenet[openvino]"``.

On a CPU with bfloat16 instructions (AVX-512 BF16, AMX) OpenVINO runs a float
model in bfloat16 unless told otherwise (its ``INFERENCE_PRECISION_HINT``),
which keeps 8 bits of mantissa. `OpenVINORunner` asks for float32 unless
``precision`` says otherwise, so that a float file answers as its Keras model
does on every CPU; ``precision=None`` takes OpenVINO's own choice, which the
runner reads back from the compiled model (``runner.precision``).

`fastest_onnx_runtime` is the rule `mobilenet predict --runtime auto` follows
for an ``.onnx`` file, from the measurements in ``benchmarks/RESULTS.md``
(docs/deploy.md says which runtime to choose on which CPU).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet._validation import check_choice, check_positive_int, first_line, invalid

__all__ = [
    "BF16_FLAGS",
    "OPENVINO_EXTRA_HINT",
    "OPENVINO_PRECISIONS",
    "OpenVINORunner",
    "cpu_flags",
    "fastest_onnx_runtime",
    "import_openvino",
]

#: How to install OpenVINO.
OPENVINO_EXTRA_HINT = 'pip install "mobilenet[openvino]"'

#: The ``precision`` values `OpenVINORunner` accepts (None: OpenVINO's default for the CPU).
OPENVINO_PRECISIONS = ("f32", "bf16", "f16", None)

#: OpenVINO ops that only move or convert the values of the op before them.
_PASS_THROUGH = {"Convert", "Reshape", "Squeeze", "FakeQuantize", "Subtract", "Multiply"}


def import_openvino() -> Any:
    """Imports ``openvino``, or says which extra brings it."""
    try:
        return importlib.import_module("openvino")
    except ImportError as error:
        raise ImportError(
            "Running a file in OpenVINO needs the `openvino` package, which is not installed; "
            f"install the optional `openvino` extra: {OPENVINO_EXTRA_HINT}"
        ) from error


class OpenVINORunner:
    """An ``.onnx`` file compiled by OpenVINO for the CPU, ready to run.

    Has what every `mobilenet.export.Runner` has (``run``, ``input_shape``,
    ``output_shape``, ``input_type``, ``output_type``,
    ``input_quantization``, ``outputs``), so that `mobilenet.predict.Classifier`,
    `mobilenet.export.compare` and the benchmarks take it as they take
    `mobilenet.export.ONNXRunner`. Needs the optional ``openvino`` extra.

    Args:
        path: str or PathLike, an ``.onnx`` file with one input and one
            output (float32 or the int8 QDQ file of `mobilenet.export.to_onnx`).
        num_threads: int or None, OpenVINO's inference threads (None: its
            default, one per core).
        precision: ``"f32"`` (the default), ``"bf16"``, ``"f16"`` or None: the
            precision OpenVINO computes float layers in
            (``INFERENCE_PRECISION_HINT``); None leaves it to OpenVINO, which
            picks bfloat16 on CPUs that have it. A CPU without the precision
            asked for runs float32.
        argument: the name errors give ``path`` (the caller's own name for it).

    Attributes:
        compiled: the ``openvino.CompiledModel``.
        precision: str, the precision OpenVINO compiled float layers for, read
            back from the compiled model (``"f32"``, ``"bf16"``...).
        outputs: ``"probabilities"`` when the op computing the output is a
            ``Softmax`` (behind any conversion or reshape), else ``"logits"``.

    Raises:
        ValueError: no such file, a bad ``precision``, or a file OpenVINO
            cannot read, or with more than one input or output.
        ImportError: the ``openvino`` extra is not installed.

    Example:

    ```python
    import numpy as np
    from mobilenet import MobileNetV1
    from mobilenet.export import OpenVINORunner, to_onnx

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    runner = OpenVINORunner(to_onnx(model, "mobilenet.onnx"))
    pixels = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    probabilities = runner.run(pixels)   # shape (8, 10)
    runner.precision                      # "f32", unless asked otherwise
    ```
    """

    runtime = "openvino"
    input_quantization = None  # an ONNX input carries no scale; QDQ files take floats

    def __init__(
        self,
        path: str | os.PathLike,
        num_threads: int | None = None,
        *,
        precision: str | None = "f32",
        argument: str = "path",
    ) -> None:
        check_choice(precision, "precision", OPENVINO_PRECISIONS)
        if num_threads is not None:
            num_threads = check_positive_int(num_threads, "num_threads")
        self.path = Path(path)
        if not self.path.is_file():
            raise invalid(argument, "an existing .onnx file", None, shown=f"{argument}={str(path)!r}")
        ov = import_openvino()
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as error:  # OpenVINO raises RuntimeError and its own types
            raise invalid(
                argument, "", None, shown=f"{argument}={str(path)!r}",
                problem=f"{str(path)!r} is not an ONNX model that OpenVINO can read "
                f"({_message(error)})",
            ) from error
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise invalid(
                argument, "a file with one input and one output", None,
                shown=f"{str(path)!r} with {len(model.inputs)} and {len(model.outputs)}",
            )
        self.outputs = "probabilities" if _ends_in_softmax(model) else "logits"
        config: dict[str, Any] = {}
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        if num_threads is not None:
            config["INFERENCE_NUM_THREADS"] = num_threads
        self.compiled = core.compile_model(model, "CPU", config)
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        (model_input,), (model_output,) = self.compiled.inputs, self.compiled.outputs
        self.input_shape = _shape(model_input.get_partial_shape())
        self.output_shape = _shape(model_output.get_partial_shape())
        self.input_type = _numpy_type(model_input.get_element_type())
        self.output_type = _numpy_type(model_output.get_element_type())
        self._request = self.compiled.create_infer_request()

    def run(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """Float32 outputs for ``images``, cast to the file's input type, ``batch_size`` at a time."""
        check_positive_int(batch_size, "batch_size")
        images = np.asarray(images).astype(self.input_type, copy=False)
        outputs = []
        for start in range(0, len(images), batch_size):
            self._request.infer({0: np.ascontiguousarray(images[start:start + batch_size])})
            outputs.append(np.array(self._request.get_output_tensor(0).data, np.float32))
        return np.concatenate(outputs)


def _message(error: BaseException) -> str:
    """OpenVINO's message, without the ``Exception from src/...cpp:84:`` lines it starts with."""
    lines = [line.strip() for line in str(error).splitlines()]
    told = [line for line in lines if line and not line.startswith("Exception from ")]
    return (told[0] if told else first_line(error))[:200]


def _shape(partial_shape: Any) -> tuple[int | None, ...]:
    return tuple(dim.get_length() if dim.is_static else None for dim in partial_shape)


def _numpy_type(element_type: Any) -> str:
    return np.dtype(element_type.to_dtype()).name


def _ends_in_softmax(model: Any) -> bool:
    """Whether the op computing the model's output is a Softmax (through conversions, reshapes)."""
    node = model.get_results()[0].input_value(0).get_node()
    while node.get_type_name() in _PASS_THROUGH:
        node = node.input_value(0).get_node()
    return node.get_type_name() in ("Softmax", "SoftMax")


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags, as Linux lists them in /proc/cpuinfo (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


#: The CPU flags of bfloat16 instructions, where `fastest_onnx_runtime` picks OpenVINO.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def fastest_onnx_runtime(flags: frozenset[str] | None = None) -> str:
    """The runtime to run our ``.onnx`` files in on this CPU: ``"openvino"`` or ``"onnxruntime"``.

    The rule `mobilenet predict --runtime auto` follows, from the
    measurements in ``benchmarks/RESULTS.md`` (issue 33; MobileNet V1 at
    224x224, batch 1, 2 threads): OpenVINO when it is installed and the CPU
    has bfloat16 instructions (`BF16_FLAGS`: AVX-512 BF16 or AMX), else ONNX
    Runtime. On an AMD EPYC with AVX-512 VNNI and BF16, OpenVINO ran the int8
    file as fast as ONNX Runtime and the float file 2x as fast (in bfloat16,
    its default there). On an Intel Xeon with AVX-512 VNNI and no BF16 its
    lead was small and fragile: 1.15-1.3x ONNX Runtime's speed with the
    cores to itself, but 0.2-0.5x with other processes busy on them, where
    ONNX Runtime held up. On AVX2-only x86 and on ARM it was not measured,
    and ONNX Runtime's int8 kernels led on an AVX2-only EPYC.

    Args:
        flags: the CPU's feature flags (None: this CPU's, `cpu_flags`).
    """
    flags = cpu_flags() if flags is None else flags
    if any(flag in flags for flag in BF16_FLAGS) and importlib.util.find_spec("openvino"):
        return "openvino"
    return "onnxruntime"
