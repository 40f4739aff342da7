"""RAM and flash of a ``.tflite`` file in TensorFlow Lite Micro, known before flashing.

A microcontroller runs a ``.tflite`` file in TensorFlow Lite Micro (TFLM): the
file's constant tensors (the weights) stay in flash, and every other tensor
lives in one block of RAM, the *tensor arena*, which the firmware declares
with a fixed size. `profile_tflite` reads a ``.tflite`` file and reports:

- the weight bytes by dtype and the file size (flash);
- the activation memory a greedy planner lays out for the graph: each
  intermediate tensor lives from the op that writes it to the last op that
  reads it (graph inputs from the first op, graph outputs to the last), and
  tensors are placed largest first, each at the lowest offset where it
  overlaps no placed tensor that is alive at the same time. This is the
  scheme of TFLM's ``GreedyMemoryPlanner``, with its 16-byte alignment;
- the op (and so the layer) where the most activation bytes are alive at once;
- the arena estimate: those activations plus what TFLM keeps for the
  interpreter itself (per-tensor and per-op records, and each convolution's
  per-channel requantization tables), counted for a 64-bit host. A 32-bit
  microcontroller needs somewhat less for the records, so the estimate errs
  on the safe side there.

`tests/test_micro.py` checks the estimate against the smallest arena with
which TFLM's own interpreter (the ``tflite-micro`` package) runs the file.
`mobilenet.memory.memory_profile` is the public door: it takes a Keras model
too, converting it first as `mobilenet.export.micro.to_micro` does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet._validation import invalid

__all__ = [
    "MemoryProfile",
    "OpMemory",
    "greedy_plan",
    "op_names",
    "profile_tflite",
    "read_flatbuffer",
    "tflite_schema",
]

#: TFLM aligns every tensor buffer (and persistent allocation) to this many bytes.
ALIGNMENT = 16

# What TFLM's interpreter keeps in the arena besides the activations, in bytes
# on a 64-bit host (sizes of its C structs there; tests/test_micro.py holds the
# sum to the real interpreter's smallest working arena, never below it).
_EVAL_TENSOR = 24       # TfLiteEvalTensor, one per tensor of the graph
_NODE = 64              # NodeAndRegistration, one per op
_IO_TENSOR = 96         # a full TfLiteTensor and its quantization, per graph input/output
_OP_DATA = 128          # an op's own data and its parsed options (at most this for MobileNet's ops)
_PER_CHANNEL = 8        # int32 multiplier and shift per output channel of a conv
_FIXED = 256            # the allocator's own records and the arena's start alignment

#: The TFLite ops that keep per-channel requantization tables (output channels last).
_PER_CHANNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}

_DTYPES = {
    0: ("float32", 4), 1: ("float16", 2), 2: ("int32", 4), 3: ("uint8", 1), 4: ("int64", 8),
    6: ("bool", 1), 7: ("int16", 2), 9: ("int8", 1), 10: ("float64", 8), 15: ("uint32", 4),
    16: ("uint16", 2),
}


def _align(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


@dataclasses.dataclass(frozen=True)
class OpMemory:
    """One op of the graph, in execution order, and the activations alive while it runs.

    Attributes:
        index: the op's position in execution order.
        op: the TFLite op (``"CONV_2D"``).
        layer: the Keras layer it comes from, as far as the tensor names tell
            (``"block_1/block_1_pw"``), else its output tensor's name.
        output_shape: its output's shape (batch axis included).
        output_bytes: its output's size, aligned to 16 bytes.
        live_bytes: every activation alive while it runs (its inputs and
            output included), aligned.
    """

    index: int
    op: str
    layer: str
    output_shape: tuple[int, ...]
    output_bytes: int
    live_bytes: int


@dataclasses.dataclass(frozen=True)
class MemoryProfile:
    """Flash and RAM of a model in TensorFlow Lite Micro, before flashing.

    What `memory_profile` returns.

    Attributes:
        model_name: the Keras model's name, or the file's name.
        file_bytes: the ``.tflite`` file's size: what goes to flash (weights
            and graph).
        weight_bytes: bytes of constant tensors by dtype (``{"int8": ...,
            "int32": ...}``: int8 weights, int32 biases).
        activation_bytes: the activation memory the greedy planner lays out
            (offset of the end of its highest tensor).
        peak_live_bytes: the most activation bytes alive at one op.
        peak_op: the `OpMemory` where that happens.
        interpreter_bytes: what TFLM keeps besides activations (estimate).
        ops: one `OpMemory` per op, in execution order.
        input_dtype: the file's input dtype.
        input_quantization: its input's ``(scale, zero_point)`` when integer, else None.
    """

    model_name: str
    file_bytes: int
    weight_bytes: dict[str, int]
    activation_bytes: int
    peak_live_bytes: int
    peak_op: OpMemory
    interpreter_bytes: int
    ops: tuple[OpMemory, ...]
    input_dtype: str
    input_quantization: tuple[float, int] | None

    @property
    def arena_bytes(self) -> int:
        """The tensor arena to declare: activations plus the interpreter's records."""
        return self.activation_bytes + self.interpreter_bytes

    @property
    def flash_bytes(self) -> int:
        """What goes to flash: the whole file (weights and graph)."""
        return self.file_bytes

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain dicts, lists, strings and numbers (JSON-ready)."""
        data = dataclasses.asdict(self)
        data["arena_bytes"] = self.arena_bytes
        data["flash_bytes"] = self.flash_bytes
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        weights = ", ".join(f"{dtype} {size:,}" for dtype, size in self.weight_bytes.items())
        lines = [
            f"Memory of {self.model_name} in TensorFlow Lite Micro",
            f"flash: {self.file_bytes:,} bytes (.tflite file; weights by dtype: {weights})",
            f"tensor arena (RAM): {self.arena_bytes:,} bytes estimated = "
            f"{self.activation_bytes:,} activations (greedy plan) + "
            f"{self.interpreter_bytes:,} interpreter records",
            f"peak: {self.peak_live_bytes:,} activation bytes alive at op {self.peak_op.index} "
            f"{self.peak_op.op} ({self.peak_op.layer})",
        ]
        if self.input_quantization is not None:
            scale, zero_point = self.input_quantization
            lines.append(
                f"input: {self.input_dtype}, scale {scale:.9g}, zero point {zero_point} "
                "(real value = scale * (q - zero_point))"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading a file


def tflite_schema() -> Any:
    """The TFLite flatbuffer schema's Python classes (shipped with TensorFlow)."""
    try:
        from tensorflow.lite.python import schema_py_generated
    except ImportError:  # pragma: no cover - TensorFlow moved it; LiteRT ships one too
        from ai_edge_litert import schema_py_generated
    return schema_py_generated


def read_flatbuffer(data: bytes, argument: str, shown: str) -> Any:
    """The ``.tflite`` flatbuffer ``data`` as the schema's object tree (``ModelT``).

    Raises `mobilenet._validation.InvalidArgument` naming ``argument`` (shown
    as ``shown``) when ``data`` is no LiteRT flatbuffer.
    """
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise invalid(argument, "a LiteRT (.tflite) flatbuffer", None,
                      shown=f"{shown}, which has no 'TFL3' identifier")
    schema = tflite_schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def op_names(schema: Any) -> dict[int, str]:
    """Builtin op code -> its name (``3 -> "CONV_2D"``) in ``schema`` (`tflite_schema`)."""
    return {
        value: name for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_") and isinstance(value, int)
    }


def _layer_label(tensor_name: str) -> str:
    """The Keras layer path in a converter tensor name, such as ``block_1/block_1_pw``."""
    parts = tensor_name.split(";")
    chosen = next(
        (part for key in ("convolution", "depthwise", "MatMul") for part in parts if key in part),
        parts[0],
    )
    components = chosen.split("/")
    if len(components) < 3:
        return tensor_name
    return "/".join(re.sub(r"_\d+$", "", component) for component in components[1:-1])


def _tensor_bytes(tensor: Any) -> int:
    dtype_size = _DTYPES.get(tensor.type, ("?", 4))[1]
    shape = [] if tensor.shape is None else [int(side) for side in tensor.shape]
    return int(np.prod(shape, dtype=np.int64)) * dtype_size


def greedy_plan(sizes: Sequence[int], lifetimes: Sequence[tuple[int, int]]) -> int:
    """Places buffers largest first at the lowest offset free for their lifetime; the arena's end."""
    # Largest first; among equal sizes the buffer added last goes first, as
    # TFLM fills its sort array from the end and then sorts it stably.
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], -i))
    placed: list[tuple[int, int, int]] = []  # (offset, size, buffer)
    end = 0
    for buffer in order:
        first, last = lifetimes[buffer]
        overlapping = sorted(
            (offset, size) for offset, size, other in placed
            if not (lifetimes[other][1] < first or last < lifetimes[other][0])
        )
        offset = 0
        for other_offset, other_size in overlapping:
            if offset + sizes[buffer] <= other_offset:
                break
            offset = max(offset, other_offset + other_size)
        placed.append((offset, sizes[buffer], buffer))
        end = max(end, offset + sizes[buffer])
    return end


def _profile_flatbuffer(data: bytes, name: str, argument: str, shown: str) -> MemoryProfile:
    schema = tflite_schema()
    model = read_flatbuffer(data, argument, shown)
    if len(model.subgraphs) != 1:
        raise invalid(argument, "a .tflite file with one subgraph (no control flow)", None,
                      shown=f"{shown}, with {len(model.subgraphs)} subgraphs")
    graph = model.subgraphs[0]
    names = op_names(schema)
    codes = [names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
             for code in model.operatorCodes]

    def constant(index: int) -> bool:
        buffer = model.buffers[graph.tensors[index].buffer]
        return (buffer.data is not None and len(buffer.data) > 0) or buffer.size > 1

    weight_bytes: dict[str, int] = {}
    activations: dict[int, list[int]] = {}  # tensor -> [first op, last op]
    for index, tensor in enumerate(graph.tensors):
        if constant(index):
            dtype = _DTYPES.get(tensor.type, (str(tensor.type), 1))[0]
            weight_bytes[dtype] = weight_bytes.get(dtype, 0) + _tensor_bytes(tensor)
    last_op = len(graph.operators) - 1
    for index in graph.inputs:
        activations[int(index)] = [0, 0]
    for position, op in enumerate(graph.operators):
        for index in op.inputs:
            if index >= 0 and not constant(index):
                activations.setdefault(int(index), [position, position])[1] = position
        for index in op.outputs:
            activations.setdefault(int(index), [position, position])
    for index in graph.outputs:
        activations[int(index)][1] = last_op

    tensors = sorted(activations)
    sizes = [_align(_tensor_bytes(graph.tensors[index])) for index in tensors]
    lifetimes = [tuple(activations[index]) for index in tensors]
    activation_bytes = greedy_plan(sizes, lifetimes)

    ops = []
    for position, op in enumerate(graph.operators):
        output = graph.tensors[op.outputs[0]]
        live = sum(size for size, (first, last) in zip(sizes, lifetimes) if first <= position <= last)
        ops.append(OpMemory(
            index=position, op=codes[op.opcodeIndex], layer=_layer_label(output.name.decode()),
            output_shape=tuple(int(side) for side in output.shape),
            output_bytes=_align(_tensor_bytes(output)), live_bytes=live,
        ))
    peak = max(ops, key=lambda row: row.live_bytes)

    interpreter = _FIXED + _EVAL_TENSOR * len(graph.tensors) + _align(_NODE * len(ops))
    interpreter += _IO_TENSOR * (len(graph.inputs) + len(graph.outputs))
    for op, row in zip(graph.operators, ops):
        interpreter += _OP_DATA
        if row.op in _PER_CHANNEL_OPS:
            channels = row.output_shape[-1] if row.output_shape else 1
            interpreter += 2 * _align(4 * channels)

    (input_tensor,) = (graph.tensors[index] for index in graph.inputs[:1])
    input_dtype = _DTYPES.get(input_tensor.type, ("?", 0))[0]
    quantization = None
    q = input_tensor.quantization
    if input_dtype in ("int8", "uint8", "int16") and q is not None and q.scale is not None:
        quantization = (float(q.scale[0]), int(q.zeroPoint[0]))
    return MemoryProfile(
        model_name=name, file_bytes=len(data), weight_bytes=dict(sorted(weight_bytes.items())),
        activation_bytes=activation_bytes, peak_live_bytes=peak.live_bytes, peak_op=peak,
        interpreter_bytes=interpreter, ops=tuple(ops), input_dtype=input_dtype,
        input_quantization=quantization,
    )


def profile_tflite(source: str | os.PathLike | bytes, *, name: str | None = None) -> MemoryProfile:
    """Flash and tensor-arena needs of a ``.tflite`` file (path or bytes) in TensorFlow Lite Micro.

    Args:
        source: the file, or its bytes.
        name: the name the profile shows; defaults to the file's name
            (``"model"`` for bytes).

    Returns:
        A `MemoryProfile`.

    Raises:
        ValueError: naming ``source`` if it is no LiteRT flatbuffer or no file.
    """
    if isinstance(source, (bytes, bytearray)):
        return _profile_flatbuffer(bytes(source), name or "model", "source",
                                   f"source=<{len(source)} bytes>")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise invalid("source", "a .tflite file or a keras.Model", None,
                          shown=f"source={str(source)!r} (no such file)")
        return _profile_flatbuffer(path.read_bytes(), name or path.name, "source", f"source={str(source)!r}")
    raise invalid("source", "a .tflite file (path or bytes) or a keras.Model", source)
