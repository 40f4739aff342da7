"""RAM and flash of a ``.tflite`` file in TensorFlow Lite Micro, known before flashing.

A microcontroller runs a ``.tflite`` file in TensorFlow Lite Micro (TFLM): the
file's constant tensors (the weights) stay in flash, and every other tensor
lives in one block of RAM, the *tensor arena*, which the firmware declares
with a fixed size. `profile_tflite` reads a ``.tflite`` file and reports:

- the weight bytes by dtype and the file size (flash);
- where the activations go: each intermediate tensor lives from the op that
  writes it to the last op that reads it (graph inputs from the first op,
  graph outputs to the last). A file may carry an offline memory plan (an
  arena offset per tensor, in the metadata entry `OFFLINE_PLAN_NAME`), which
  TFLM then follows; without one TFLM's ``GreedyMemoryPlanner`` places the
  tensors largest first, each at the lowest offset free for its lifetime
  (`greedy_plan` does the same, with its 16-byte alignment);
- the op (and so the layer) where the most activation bytes are alive at
  once (`live_peak`): the least any plan can take;
- the arena estimate: those activations plus what TFLM keeps for the
  interpreter itself, apart: per-tensor and per-op records, whose size
  depends on the target's pointer size (counted for a 64-bit host, and
  estimated for a 32-bit microcontroller), and each convolution's
  per-channel requantization tables, which do not.

`plan_offsets` computes a plan and `with_memory_plan` writes it into a file,
as `mobilenet.export.micro.to_micro` does by default: for MLPerf Tiny's VWW
model, 55,296 bytes of activations instead of the greedy planner's 73,728.
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
    "OFFLINE_PLAN_NAME",
    "MemoryProfile",
    "OpMemory",
    "greedy_plan",
    "live_peak",
    "op_names",
    "plan_offsets",
    "profile_tflite",
    "read_flatbuffer",
    "read_memory_plan",
    "tflite_schema",
    "with_memory_plan",
]

#: TFLM aligns every tensor buffer (and persistent allocation) to this many bytes.
ALIGNMENT = 16

# What TFLM's interpreter keeps in the arena besides the activations, in bytes,
# as (64-bit host, 32-bit microcontroller). The 64-bit sizes are those of its C
# structs on this host, which tests/test_micro.py holds, summed, to the real
# interpreter's smallest working arena (never below it). The 32-bit ones are an
# estimate: the same structs with 4-byte pointers and size_t, not measured.
_EVAL_TENSOR = (24, 12)   # TfLiteEvalTensor, one per tensor of the graph
_NODE = (64, 36)          # NodeAndRegistration, one per op
_IO_TENSOR = (96, 64)     # a full TfLiteTensor and its quantization, per graph input/output
_OP_DATA = (128, 112)     # an op's own data and its parsed options (at most this for MobileNet's ops)
_FIXED = (256, 160)       # the allocator's own records and the arena's start alignment

#: The metadata entry of a ``.tflite`` file TFLM reads an offline memory plan from.
OFFLINE_PLAN_NAME = "OfflineMemoryAllocation"
_PLAN_VERSION = 0

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

    What `profile_tflite` and `mobilenet.memory.memory_profile` return.

    Attributes:
        model_name: the Keras model's name, or the file's name.
        file_bytes: the ``.tflite`` file's size: what goes to flash (weights
            and graph).
        weight_bytes: bytes of constant tensors by dtype (``{"int8": ...,
            "int32": ...}``: int8 weights, int32 biases).
        activation_bytes: the activations' part of the arena: the end of the
            highest tensor as TFLM lays them out for this file (by the
            file's offline plan, or by its greedy planner without one).
        memory_plan: ``"offline"`` when the file carries a plan
            (`with_memory_plan`), else ``"greedy"``.
        greedy_activation_bytes: what TFLM's greedy planner would take.
        peak_live_bytes: the most activation bytes alive at one op: the
            least any plan can take.
        peak_op: the `OpMemory` where that happens.
        record_bytes: what TFLM keeps for itself per tensor, per op and per
            graph input and output, on a 64-bit host (estimate, held to the
            real interpreter by the tests).
        record_bytes_32bit: the same records on a 32-bit microcontroller:
            an estimate from the structs' sizes with 4-byte pointers.
        per_channel_bytes: each convolution's per-channel requantization
            tables (int32 multiplier and shift per output channel), the same
            on any target.
        ops: one `OpMemory` per op, in execution order.
        input_dtype: the file's input dtype.
        input_quantization: its input's ``(scale, zero_point)`` when integer, else None.
    """

    model_name: str
    file_bytes: int
    weight_bytes: dict[str, int]
    activation_bytes: int
    memory_plan: str
    greedy_activation_bytes: int
    peak_live_bytes: int
    peak_op: OpMemory
    record_bytes: int
    record_bytes_32bit: int
    per_channel_bytes: int
    ops: tuple[OpMemory, ...]
    input_dtype: str
    input_quantization: tuple[float, int] | None

    @property
    def interpreter_bytes(self) -> int:
        """What TFLM keeps besides activations on a 64-bit host: records and per-channel tables."""
        return self.record_bytes + self.per_channel_bytes

    @property
    def arena_bytes(self) -> int:
        """The tensor arena to declare on a 64-bit host: activations plus the interpreter's part."""
        return self.activation_bytes + self.interpreter_bytes

    @property
    def arena_bytes_32bit(self) -> int:
        """The arena on a 32-bit microcontroller: an estimate (its records are not measured)."""
        return self.activation_bytes + self.record_bytes_32bit + self.per_channel_bytes

    @property
    def op_kinds(self) -> tuple[str, ...]:
        """The builtin ops the graph uses, in order of first use: those firmware registers."""
        return tuple(dict.fromkeys(row.op for row in self.ops))

    @property
    def flash_bytes(self) -> int:
        """What goes to flash: the whole file (weights and graph)."""
        return self.file_bytes

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain dicts, lists, strings and numbers (JSON-ready)."""
        data = dataclasses.asdict(self)
        for name in ("interpreter_bytes", "arena_bytes", "arena_bytes_32bit", "flash_bytes", "op_kinds"):
            data[name] = getattr(self, name)
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        weights = ", ".join(f"{dtype} {size:,}" for dtype, size in self.weight_bytes.items())
        if self.memory_plan == "offline":
            plan = (f"the file's offline plan; TFLite Micro's greedy planner would take "
                    f"{self.greedy_activation_bytes:,}")
        else:
            plan = "TFLite Micro's greedy planner; no offline plan in the file"
        lines = [
            f"Memory of {self.model_name} in TensorFlow Lite Micro",
            f"flash: {self.file_bytes:,} bytes (.tflite file; weights by dtype: {weights})",
            f"tensor arena (RAM): {self.arena_bytes:,} bytes estimated on a 64-bit host = "
            f"{self.activation_bytes:,} activations ({plan}) + {self.record_bytes:,} interpreter "
            f"records + {self.per_channel_bytes:,} per-channel tables",
            f"  on a 32-bit microcontroller: about {self.arena_bytes_32bit:,} bytes (estimate: "
            f"its records take about {self.record_bytes_32bit:,})",
            f"peak: {self.peak_live_bytes:,} activation bytes alive at op {self.peak_op.index} "
            f"{self.peak_op.op} ({self.peak_op.layer})",
            f"ops: {', '.join(self.op_kinds)}",
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


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return not (a[1] < b[0] or b[1] < a[0])


def _lowest_gap(size: int, taken: list[tuple[int, int]], best_fit: bool = False) -> int:
    """The lowest offset (or, with ``best_fit``, the tightest gap's) where ``size`` bytes
    fit among the ``(offset, size)`` intervals ``taken``."""
    offset, best = 0, None
    for other_offset, other_size in sorted(taken):
        if offset + size <= other_offset:
            if not best_fit:
                return offset
            gap = other_offset - offset
            if best is None or gap < best[0]:
                best = (gap, offset)
        offset = max(offset, other_offset + other_size)
    return offset if best is None else best[1]


def _place(
    sizes: Sequence[int],
    lifetimes: Sequence[tuple[int, int]],
    order: Sequence[int],
    fixed: dict[int, int] | None = None,
    best_fit: bool = False,
) -> list[int]:
    """Offsets for the buffers: those in ``fixed`` where given, then ``order`` one by one at
    the lowest (or tightest) gap free for their lifetime."""
    offsets = [-1] * len(sizes)
    placed: list[int] = []
    for buffer, offset in (fixed or {}).items():
        offsets[buffer] = offset
        placed.append(buffer)
    for buffer in order:
        if offsets[buffer] >= 0:
            continue
        taken = [(offsets[other], sizes[other]) for other in placed
                 if _overlap(lifetimes[other], lifetimes[buffer])]
        offsets[buffer] = _lowest_gap(sizes[buffer], taken, best_fit)
        placed.append(buffer)
    return offsets


def _end(sizes: Sequence[int], offsets: Sequence[int]) -> int:
    return max((offset + size for offset, size in zip(offsets, sizes) if offset >= 0), default=0)


def greedy_plan(sizes: Sequence[int], lifetimes: Sequence[tuple[int, int]]) -> int:
    """The arena TFLM's own ``GreedyMemoryPlanner`` lays the buffers out in, in bytes.

    Largest first, each at the lowest offset free for its lifetime; among
    equal sizes the buffer added last goes first, as TFLM fills its sort
    array from the end and then sorts it stably.

    Args:
        sizes: each buffer's size in bytes (aligned as TFLM aligns them).
        lifetimes: each buffer's ``(first op, last op)``, inclusive.

    Returns:
        The end of the highest buffer: the activation part of the arena.
    """
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], -i))
    return _end(sizes, _place(sizes, lifetimes, order))


def live_peak(sizes: Sequence[int], lifetimes: Sequence[tuple[int, int]]) -> int:
    """The most bytes alive at one op: no plan can use less without overlapping buffers."""
    last = max((end for _, end in lifetimes), default=-1)
    return max((sum(size for size, (first, end) in zip(sizes, lifetimes) if first <= op <= end)
                for op in range(last + 1)), default=0)


def plan_offsets(sizes: Sequence[int], lifetimes: Sequence[tuple[int, int]]) -> list[int]:
    """An offline memory plan: an offset per buffer, no two buffers alive together overlapping.

    The smallest of several greedy plans: each buffer at the lowest (first
    fit) or the tightest (best fit) gap free for its lifetime, taken in the
    order of size (TFLM's own order), of creation, of lifetime length and of
    size times lifetime. In order of creation a chain of ops (each reading
    what the one before wrote) packs into its live peak (`live_peak`), the
    least any plan can use without overlapping an op's input and output;
    MobileNet is such a chain. Offsets are sums of sizes, so aligned as the
    sizes are.

    Args:
        sizes: each buffer's size in bytes.
        lifetimes: each buffer's ``(first op, last op)``, inclusive.

    Returns:
        One offset per buffer.
    """
    if not sizes:
        return []
    indices = range(len(sizes))
    orders = [
        sorted(indices, key=lambda i: (-sizes[i], -i)),
        sorted(indices, key=lambda i: (lifetimes[i][0], -sizes[i])),
        sorted(indices, key=lambda i: (-(lifetimes[i][1] - lifetimes[i][0]), -sizes[i])),
        sorted(indices, key=lambda i: (-sizes[i] * (1 + lifetimes[i][1] - lifetimes[i][0]), i)),
    ]
    plans = [_place(sizes, lifetimes, order, best_fit=best_fit)
             for order in orders for best_fit in (False, True)]
    return min(plans, key=lambda offsets: _end(sizes, offsets))


def _activations(model: Any) -> tuple[list[int], list[int], list[tuple[int, int]], dict[str, int]]:
    """The graph's activation tensors, their aligned sizes and lifetimes, and the weight bytes.

    A tensor lives from the op that writes it (graph inputs: the first op) to
    the last op that reads it (graph outputs: the last op), as in TFLM's
    ``AllocationInfoBuilder``.
    """
    graph = model.subgraphs[0]

    def constant(index: int) -> bool:
        buffer = model.buffers[graph.tensors[index].buffer]
        return (buffer.data is not None and len(buffer.data) > 0) or buffer.size > 1

    weight_bytes: dict[str, int] = {}
    for index, tensor in enumerate(graph.tensors):
        if constant(index):
            dtype = _DTYPES.get(tensor.type, (str(tensor.type), 1))[0]
            weight_bytes[dtype] = weight_bytes.get(dtype, 0) + _tensor_bytes(tensor)
    activations: dict[int, list[int]] = {}  # tensor -> [first op, last op]
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
    lifetimes = [(activations[index][0], activations[index][1]) for index in tensors]
    return tensors, sizes, lifetimes, weight_bytes


def _plan_in(model: Any) -> list[int] | None:
    """The offsets per tensor of the file's offline plan (-1: placed by TFLM), or None."""
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == OFFLINE_PLAN_NAME:
            values = np.frombuffer(bytes(model.buffers[entry.buffer].data), "<i4")
            return [int(value) for value in values[3:3 + int(values[2])]]
    return None


def read_memory_plan(source: str | os.PathLike | bytes) -> tuple[int, ...] | None:
    """The offline memory plan a ``.tflite`` file carries: an arena offset per tensor, or None.

    Offsets are in bytes from the start of TFLM's arena of activations; -1
    marks a tensor TFLM places itself (the weights, which stay in flash).
    """
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    plan = _plan_in(read_flatbuffer(bytes(data), "source", "source"))
    return None if plan is None else tuple(plan)


def with_memory_plan(data: bytes) -> bytes:
    """The ``.tflite`` flatbuffer ``data`` with an offline memory plan for TensorFlow Lite Micro.

    The plan (`plan_offsets` over the activations' sizes and lifetimes) goes
    into the metadata entry `OFFLINE_PLAN_NAME`, which TFLM's allocator reads
    instead of running its greedy planner: int32 values ``[version 0,
    subgraph 0, number of tensors, offset of each tensor or -1]`` (the layout
    of TFLM's ``docs/memory_management.md`` and ``micro_allocation_info.cc``).
    A plan already there is replaced; the graph and weights are unchanged.

    Args:
        data: a ``.tflite`` flatbuffer with one subgraph.

    Returns:
        The new flatbuffer.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    schema = tflite_schema()
    model = read_flatbuffer(bytes(data), "data", f"data=<{len(data)} bytes>")
    if len(model.subgraphs) != 1:
        raise invalid("data", "a .tflite file with one subgraph (no control flow)", None,
                      shown=f"a file with {len(model.subgraphs)} subgraphs")
    tensors, sizes, lifetimes, _ = _activations(model)
    offsets = [-1] * len(model.subgraphs[0].tensors)
    for tensor, offset in zip(tensors, plan_offsets(sizes, lifetimes)):
        offsets[tensor] = offset
    values = np.array([_PLAN_VERSION, 0, len(offsets), *offsets], "<i4")
    kept = [entry for entry in (model.metadata or [])
            if (entry.name.decode() if isinstance(entry.name, bytes) else entry.name) != OFFLINE_PLAN_NAME]
    buffer = schema.BufferT()
    buffer.data = list(values.tobytes())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = OFFLINE_PLAN_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*kept, entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


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
    tensors, sizes, lifetimes, weight_bytes = _activations(model)
    greedy_bytes = greedy_plan(sizes, lifetimes)
    plan = _plan_in(model)
    if plan is None:
        activation_bytes = greedy_bytes
    else:  # TFLM keeps the planned offsets and places any -1 tensor greedily around them
        fixed = {position: plan[tensor] for position, tensor in enumerate(tensors) if plan[tensor] >= 0}
        order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], -i))
        activation_bytes = _end(sizes, _place(sizes, lifetimes, order, fixed))

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

    def records(bits: int) -> int:
        at = 0 if bits == 64 else 1
        total = _FIXED[at] + _EVAL_TENSOR[at] * len(graph.tensors) + _align(_NODE[at] * len(ops))
        total += _IO_TENSOR[at] * (len(graph.inputs) + len(graph.outputs))
        return total + _OP_DATA[at] * len(ops)

    per_channel = sum(2 * _align(4 * (row.output_shape[-1] if row.output_shape else 1))
                      for row in ops if row.op in _PER_CHANNEL_OPS)

    (input_tensor,) = (graph.tensors[index] for index in graph.inputs[:1])
    input_dtype = _DTYPES.get(input_tensor.type, ("?", 0))[0]
    quantization = None
    q = input_tensor.quantization
    if input_dtype in ("int8", "uint8", "int16") and q is not None and q.scale is not None:
        quantization = (float(q.scale[0]), int(q.zeroPoint[0]))
    return MemoryProfile(
        model_name=name, file_bytes=len(data), weight_bytes=dict(sorted(weight_bytes.items())),
        activation_bytes=activation_bytes, memory_plan="greedy" if plan is None else "offline",
        greedy_activation_bytes=greedy_bytes, peak_live_bytes=peak.live_bytes, peak_op=peak,
        record_bytes=records(64), record_bytes_32bit=records(32), per_channel_bytes=per_channel,
        ops=tuple(ops), input_dtype=input_dtype, input_quantization=quantization,
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
