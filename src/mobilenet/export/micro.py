"""Microcontrollers: int8 files TensorFlow Lite Micro runs, C arrays, and its interpreter.

TensorFlow Lite Micro (TFLM) runs a ``.tflite`` flatbuffer compiled into the
firmware, with int8 kernels for the builtin ops it has. This module adds:

- `to_micro`: the int8 file for TFLM: int8 weights and activations, and an
  int8 input and output (TFLM's examples and most of its kernels expect int8
  at both ends; the library's default uint8 input adds a ``QUANTIZE`` op in
  front), checked op by op for what TFLM can run;
- `write_c_array` / `read_c_array`: the file as a C++ source with a 16-byte
  aligned ``unsigned char`` array and its length, and a matching header,
  as TFLM's examples include their models;
- `run_micro` and `smallest_arena`: the file in TFLM's own interpreter (the
  ``tflite-micro`` package, the optional ``micro`` extra), and the smallest
  tensor arena with which it runs;
- `export_micro`: what ``mobilenet export --target micro`` does, from a
  ``.keras`` file to a verified ``.tflite`` file or C array.

How much flash and RAM a file needs is `mobilenet.export.micro_memory`
(`mobilenet.memory.memory_profile` for a Keras model too). The MobileNet of
MLPerf Tiny's Visual Wake Words benchmark is `mobilenet.model.vww_model`.
``mobilenet.micro`` re-exports this module's public names.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet._files import atomic_target
from mobilenet._validation import check_choice, check_positive_int, invalid
from mobilenet.export.micro_memory import (
    MemoryProfile,
    op_names,
    profile_tflite,
    read_flatbuffer,
    tflite_schema,
    with_memory_plan,
)

__all__ = [
    "C_SUFFIXES",
    "MicroRunner",
    "MEMORY_PLANS",
    "MICRO_OPS",
    "MicroExport",
    "MicroReport",
    "c_identifier",
    "check_micro",
    "export_micro",
    "io_quantization",
    "read_c_array",
    "run_micro",
    "smallest_arena",
    "to_micro",
    "write_c_array",
]

#: Builtin ops TFLM has int8 kernels for, among those a Keras image model converts to.
MICRO_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
    "FULLY_CONNECTED", "HARD_SWISH", "LEAKY_RELU", "LOGISTIC", "MAX_POOL_2D", "MEAN", "MUL",
    "PAD", "PADV2", "QUANTIZE", "RELU", "RELU6", "RESHAPE", "SOFTMAX", "SQUEEZE", "SUB",
    "TANH", "TRANSPOSE_CONV", "STRIDED_SLICE", "SHAPE", "PACK", "UNPACK", "SPLIT", "TRANSPOSE",
    "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "SUM", "MINIMUM", "MAXIMUM", "EXPAND_DIMS",
})

#: TFLM's int8 SOFTMAX needs ``beta * input_scale * 2**26 > 1``; below it aborts (no message).
_SOFTMAX_MIN_SCALE = 2.0 ** -26

#: How `to_micro` lays out the tensor arena: its own plan in the file, or TFLM's greedy planner.
MEMORY_PLANS = ("offline", "greedy")

#: File suffixes `write_c_array` writes C++ sources under; the header takes ``.h``.
C_SUFFIXES = (".cc", ".cpp", ".c")


def _micro_runtime() -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as error:
        raise ImportError(
            "Running a file in TensorFlow Lite Micro needs the `tflite-micro` package: "
            'pip install "mobilenet[micro]"'
        ) from error
    return runtime


# --------------------------------------------------------------------------- the int8 file


def _check_for_micro(data: bytes, shown: str) -> None:
    """Raises if TFLM could not run the flatbuffer ``data``: a missing op or a fatal scale."""
    schema = tflite_schema()
    model = read_flatbuffer(data, "path", shown)
    names = op_names(schema)
    graph = model.subgraphs[0]
    codes = [names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
             for code in model.operatorCodes]
    missing = sorted({codes[op.opcodeIndex] for op in graph.operators} - MICRO_OPS)
    if missing:
        raise ValueError(
            f"The model converts to ops that TensorFlow Lite Micro has no int8 kernel for: "
            f"{', '.join(missing)}. Received: {shown}"
        )
    for index in (*graph.inputs, *graph.outputs):
        dtype = graph.tensors[index].type
        if dtype != schema.TensorType.INT8:
            raise ValueError(f"The file's input and output must be int8 for TFLite Micro. Received: {shown}")
    for op in graph.operators:
        if codes[op.opcodeIndex] != "SOFTMAX":
            continue
        tensor = graph.tensors[op.inputs[0]]
        beta = getattr(op.builtinOptions, "beta", 1.0) or 1.0
        scale = float(tensor.quantization.scale[0])
        if beta * scale <= _SOFTMAX_MIN_SCALE:
            raise ValueError(
                f"The file's softmax input has scale {scale:.3g}, below the {_SOFTMAX_MIN_SCALE:.3g} "
                "that TensorFlow Lite Micro's int8 softmax needs (it aborts on it): the "
                "calibration images gave logits of about zero. Is the model trained? "
                f"Received: {shown}"
            )


def check_micro(path: str | os.PathLike | bytes) -> bytes:
    """Checks that TFLite Micro can run a ``.tflite`` file: int8 ends, its ops, no fatal scale.

    Returns:
        The file's bytes.

    Raises:
        ValueError: naming what TFLM could not run.
    """
    data = _file_bytes(path)
    _check_for_micro(data, f"path={str(path)[:80]!r}")
    return data


def io_quantization(path: str | os.PathLike | bytes) -> tuple[tuple[float, int], tuple[float, int]]:
    """``((scale, zero_point) of the input, (scale, zero_point) of the output)`` of an int8 file.

    Firmware quantizes an input value ``x`` as ``round(x / scale) + zero_point``
    and reads an output ``q`` as ``scale * (q - zero_point)``.
    """
    data = _file_bytes(path)
    graph = read_flatbuffer(data, "path", f"path={str(path)[:80]!r}").subgraphs[0]

    def quantization(index: int) -> tuple[float, int]:
        q = graph.tensors[index].quantization
        return float(q.scale[0]), int(q.zeroPoint[0])

    return quantization(graph.inputs[0]), quantization(graph.outputs[0])


def to_micro(
    model: Any,
    path: str | os.PathLike,
    representative_data: Any = None,
    *,
    check: bool = True,
    memory_plan: str = "offline",
) -> Path:
    """Writes ``model`` as an int8 ``.tflite`` file that TensorFlow Lite Micro runs.

    Full-integer quantization through `mobilenet.export.to_tflite` (int8
    weights and activations, calibrated on ``representative_data``, or with
    the ranges a quantization-aware model learned) with an int8 input and
    output, then a check that every op is one TFLM has an int8 kernel for
    (`MICRO_OPS`) and that no softmax has a scale TFLM aborts on.
    The file appears at ``path`` only if it passes.

    By default the file carries an offline memory plan
    (`mobilenet.export.micro_memory.with_memory_plan`): where each activation
    lives in the tensor arena, packed to the most bytes alive at one op where
    the graph allows, which TFLM uses instead of its greedy planner. For
    MLPerf Tiny's VWW model that is 55,296 bytes of activations instead of
    73,728, with the same outputs.

    For a model that takes pixels (its first layer a ``Rescaling``, as
    ``include_preprocessing=True`` makes), the input is the pixel shifted by
    128 (scale 1, zero point -128): firmware feeds ``int8_t(pixel - 128)``,
    that is, the camera's uint8 byte with its top bit flipped.

    Args:
        model: keras.Model, in inference mode, with a fixed input size.
        path: str or PathLike, the ``.tflite`` file to write.
        representative_data: images to calibrate on, as for `to_tflite`;
            None for a quantization-aware model (`mobilenet.quantization`),
            which needs none. Defaults to None.
        check: bool, whether to check the ops and scales. Defaults to True.
        memory_plan: ``"offline"`` to write the plan into the file, or
            ``"greedy"`` to leave the layout to TFLM's own planner. Defaults
            to ``"offline"``.

    Returns:
        The path written.

    Raises:
        ValueError: for bad arguments, an op TFLM lacks, or a softmax scale
            TFLM cannot run (an untrained model's).

    Example:

    ```python notest
    from mobilenet.export.micro import to_micro

    to_micro(model, "person.tflite", calibration_images)
    ```
    """
    from mobilenet.export.litert import to_tflite

    check_choice(memory_plan, "memory_plan", MEMORY_PLANS)
    target = Path(path)
    if target.suffix != ".tflite":
        raise invalid("path", "a file name ending in '.tflite'", str(path))
    if target.is_dir() or not target.parent.is_dir():
        raise invalid("path", "a file in an existing, writable folder", str(path))
    with atomic_target(target, suffix=".tflite") as temporary:
        to_tflite(model, temporary, "int8", representative_data=representative_data, io_type="int8")
        if check:
            _check_for_micro(Path(temporary).read_bytes(), f"model {getattr(model, 'name', model)!r}")
        if memory_plan == "offline":
            Path(temporary).write_bytes(with_memory_plan(Path(temporary).read_bytes()))
    return target


# --------------------------------------------------------------------------- C array


def c_identifier(name: str) -> str:
    """``name`` made a C identifier: other characters become ``_``, a leading digit gets ``model_``."""
    identifier = re.sub(r"\W", "_", name)
    return identifier if identifier and not identifier[0].isdigit() else f"model_{identifier}"


def _c_string(text: str) -> str:
    """``text`` as a C string literal: printable ASCII as it is, other UTF-8 bytes as octal escapes."""
    def escape(byte: int) -> str:
        if 32 <= byte < 127 and chr(byte) not in '"\\?':
            return chr(byte)
        return f"\\{byte:03o}"

    return '"' + "".join(escape(byte) for byte in text.encode("utf-8")) + '"'


def _resolver_method(op: str) -> str:
    """TFLM's ``MicroMutableOpResolver`` method that registers the builtin ``op`` (``AddConv2D``)."""
    special = {"PADV2": "PadV2"}
    words = (part if part[0].isdigit() else part.capitalize() for part in op.split("_"))
    return "Add" + special.get(op, "".join(words))


def _header_facts(data: bytes, tflite_path: Path, name: str) -> str:
    """The part of the header an app reads: arena size, quantization, classes and ops."""
    from mobilenet.class_names import get_class_names

    memory = profile_tflite(data)
    plan = "the file's offline plan" if memory.memory_plan == "offline" else "TFLM's greedy planner"
    graph = read_flatbuffer(data, "tflite_path", str(tflite_path)).subgraphs[0]
    lines = [
        f"// The tensor arena to declare, in bytes: {memory.activation_bytes:,} of activations "
        f"({plan})",
        "// and TFLite Micro's own records, as estimated for a 64-bit host; a 32-bit",
        f"// microcontroller needs less (about {memory.arena_bytes_32bit:,}, an estimate). "
        "Optimized kernels",
        "// (CMSIS-NN) may ask for scratch memory on top.",
        f"enum {{ {name}_arena_size = {memory.arena_bytes} }};",
    ]
    for end, index in (("input", graph.inputs[0]), ("output", graph.outputs[0])):
        q = graph.tensors[index].quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            continue
        scale, zero_point = np.float32(q.scale[0]), int(q.zeroPoint[0])
        rule = ("q = round(x / scale) + zero_point" if end == "input"
                else "x = scale * (q - zero_point)")
        lines += [
            f"// The int8 {end}: {rule}.",
            f"static const float {name}_{end}_scale = {scale}f;",
            f"static const int {name}_{end}_zero_point = {zero_point};",
        ]
    shape = graph.tensors[graph.outputs[0]].shape
    num_classes = int(shape[-1]) if shape is not None and len(shape) else 1
    classes = get_class_names(tflite_path)
    if classes is None or len(classes) != num_classes:
        lines.append("// The file carries no class names: these are the output indices.")
        classes = tuple(str(index) for index in range(num_classes))
    else:
        lines.append("// The class names the file carries, in output order.")
    lines += [
        f"enum {{ {name}_num_classes = {num_classes} }};",
        f"static const char* const {name}_class_names[{name}_num_classes] = {{"
        + ", ".join(_c_string(label) for label in classes) + "};",
    ]
    ops = memory.op_kinds
    adds = " ".join(f"(resolver).{_resolver_method(op)}();" for op in ops)
    lines += [
        f"// The ops the model uses: {', '.join(ops)}. Register them with",
        f"//   tflite::MicroMutableOpResolver<{name}_num_ops> resolver;",
        f"//   {name.upper()}_ADD_OPS(resolver);",
        f"enum {{ {name}_num_ops = {len(ops)} }};",
        f"#define {name.upper()}_ADD_OPS(resolver) do {{ {adds} }} while (0)",
    ]
    return "\n".join(lines) + "\n"


def write_c_array(
    tflite_path: str | os.PathLike,
    source_path: str | os.PathLike,
    *,
    variable: str | None = None,
) -> tuple[Path, Path]:
    """Writes a ``.tflite`` file as a C or C++ source with its bytes in an array, and a header.

    The source defines ``alignas(16) const unsigned char NAME[]`` (TFLM reads
    the flatbuffer in place, and needs it 16-byte aligned; a ``.c`` source
    includes ``<stdalign.h>`` and compiles as C11) and ``const unsigned int
    NAME_len``. The header, beside it with the suffix ``.h`` and usable from C
    and C++, declares both and defines what an app needs to run the model:

    - ``NAME_arena_size``: the tensor arena to declare, from the file's
      memory plan (`mobilenet.export.micro_memory.profile_tflite`);
    - ``NAME_input_scale``, ``NAME_input_zero_point``, ``NAME_output_scale``,
      ``NAME_output_zero_point``: the int8 quantization at both ends;
    - ``NAME_num_classes`` and ``NAME_class_names``: the classes, named as
      the file's metadata names them (`mobilenet.class_names`);
    - ``NAME_num_ops`` and ``NAME_ADD_OPS(resolver)``: the ops to register
      with a ``tflite::MicroMutableOpResolver<NAME_num_ops>``.

    Firmware passes ``NAME`` to ``tflite::GetModel``.

    Args:
        tflite_path: the ``.tflite`` file.
        source_path: the ``.cc`` (or ``.cpp``/``.c``) file to write; the header
            goes beside it.
        variable: the array's name; defaults to the source's file stem
            (``model_`` added when it would not be a C identifier).

    Returns:
        ``(source, header)`` paths.
    """
    tflite_path = Path(tflite_path)
    if not tflite_path.is_file():
        raise invalid("tflite_path", "an existing .tflite file", str(tflite_path))
    data = tflite_path.read_bytes()
    _read_head(data, "tflite_path", tflite_path)
    source = Path(source_path)
    if source.suffix not in C_SUFFIXES:
        raise invalid("source_path", f"a file name ending in {', '.join(C_SUFFIXES)}", str(source_path))
    if not source.parent.is_dir():
        raise invalid("source_path", "a file in an existing folder", str(source_path))
    name = c_identifier(variable or source.stem)
    if variable is not None and name != variable:
        raise invalid("variable", "a C identifier", variable)
    header = source.with_suffix(".h")
    guard = f"{c_identifier(header.name).upper()}_"
    header_text = (
        f"// The model {tflite_path.name} as a C array, written by mobilenet.export.micro.\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
        f"extern const unsigned char {name}[];\n"
        f"extern const unsigned int {name}_len;\n\n"
        "#ifdef __cplusplus\n}  // extern \"C\"\n#endif\n\n"
        + _header_facts(data, tflite_path, name)
        + f"\n#endif  // {guard}\n"
    )
    rows = [
        "  " + ", ".join(f"0x{byte:02x}" for byte in data[start:start + 12]) + ","
        for start in range(0, len(data), 12)
    ]
    source_text = (
        f"// The model {tflite_path.name} ({len(data)} bytes) as a C array, written by "
        "mobilenet.export.micro.\n"
        + ("#include <stdalign.h>\n" if source.suffix == ".c" else "")
        + f'#include "{header.name}"\n\n'
        f"alignas(16) const unsigned char {name}[] = {{\n" + "\n".join(rows) + "\n};\n"
        f"const unsigned int {name}_len = {len(data)};\n"
    )
    with atomic_target(header, suffix=".h") as temporary:
        Path(temporary).write_text(header_text, encoding="utf-8")
        with atomic_target(source) as source_temporary:
            Path(source_temporary).write_text(source_text, encoding="utf-8")
    return source, header


def _read_head(data: bytes, argument: str, path: Any) -> None:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise invalid(argument, "a LiteRT (.tflite) flatbuffer", str(path))


def read_c_array(source_path: str | os.PathLike) -> bytes:
    """The bytes of the array in a C source `write_c_array` wrote (or one like it).

    Checks them against the length the source declares.
    """
    text = Path(source_path).read_text()
    body = re.search(r"\[\]\s*=\s*\{(.*?)\};", text, re.S)
    length = re.search(r"_len\s*=\s*(\d+)\s*;", text)
    if body is None or length is None:
        raise invalid("source_path", "a C source with a byte array and its _len", str(source_path))
    data = bytes(int(value, 16) for value in re.findall(r"0x([0-9a-fA-F]{2})", body.group(1)))
    if len(data) != int(length.group(1)):
        raise ValueError(
            f"The array in {str(source_path)!r} has {len(data)} bytes, its _len says {length.group(1)}"
        )
    return data


# --------------------------------------------------------------------------- TFLite Micro


def _file_bytes(path: Any) -> bytes:
    if isinstance(path, (bytes, bytearray)):
        return bytes(path)
    target = Path(path)
    if not target.is_file():
        raise invalid("path", "an existing .tflite file", str(path))
    return target.read_bytes()


def _micro_interpreter(data: bytes, arena_size: int) -> Any:
    """A TFLM interpreter, or RuntimeError if the arena is too small."""
    runtime = _micro_runtime()
    return runtime.Interpreter.from_bytes(data, arena_size=arena_size)


def run_micro(
    path: str | os.PathLike | bytes,
    images: Any,
    *,
    arena_size: int | None = None,
    raw: bool = False,
) -> np.ndarray:
    """Runs an int8 file in TensorFlow Lite Micro's interpreter, one image at a time.

    The ``tflite-micro`` package (``pip install "mobilenet[micro]"``) is TFLM's
    own C++ interpreter and reference kernels behind a Python binding: what
    runs on the microcontroller, on this CPU.

    Args:
        path: the ``.tflite`` file (or its bytes), as `to_micro` writes it.
        images: float images as the Keras model takes them (quantized with
            the file's input scale and zero point), or, with ``raw``, int8
            arrays already.
        arena_size: the tensor arena in bytes; defaults to the estimate of
            `mobilenet.export.micro_memory.profile_tflite`.
        raw: bool, whether ``images`` are int8 already and the int8 outputs
            should be returned as they are. Defaults to False (float outputs,
            dequantized).

    Returns:
        The outputs, one row per image.

    Raises:
        ImportError: without the ``tflite-micro`` package.
        ValueError: for a file TFLM cannot run (see `to_micro`).
    """
    data = _file_bytes(path)
    _check_for_micro(data, f"path={str(path)[:80]!r}")
    if arena_size is None:
        arena_size = profile_tflite(data).arena_bytes
    check_positive_int(arena_size, "arena_size")
    try:
        interpreter = _micro_interpreter(data, arena_size)
    except RuntimeError as error:
        raise invalid("arena_size", "", arena_size, shown=f"arena_size={arena_size} ({error})",
                      problem="TensorFlow Lite Micro could not lay out the model in it") from error
    detail = interpreter.get_input_details(0)
    out_detail = interpreter.get_output_details(0)
    scale, zero_point = detail["quantization_parameters"]["scales"][0], detail["quantization_parameters"]["zero_points"][0]
    out_scale = out_detail["quantization_parameters"]["scales"][0]
    out_zero = out_detail["quantization_parameters"]["zero_points"][0]
    batch = np.asarray(images)
    expected = tuple(int(side) for side in detail["shape"][1:])
    if batch.ndim != len(expected) + 1 or tuple(batch.shape[1:]) != expected:
        raise invalid("images", f"an array of shape (N, {', '.join(map(str, expected))})", None,
                      shown=f"images with shape {batch.shape}")
    if not raw:
        batch = np.clip(np.round(batch.astype(np.float32) / scale + zero_point), -128, 127).astype(np.int8)
    elif batch.dtype != np.int8:
        raise invalid("images", "int8 arrays with raw=True", None, shown=f"dtype {batch.dtype}")
    outputs = []
    for image in batch:
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0))[0])
    result = np.stack(outputs)
    return result if raw else (result.astype(np.float32) - out_zero) * out_scale


def smallest_arena(path: str | os.PathLike | bytes, *, upper: int = 16 * 2**20) -> int:
    """The smallest tensor arena, in bytes, with which TFLM lays out and runs the file.

    Bisection over arena sizes, each tried in a fresh TFLM interpreter that
    allocates its tensors and runs one inference (on zeros).

    Args:
        path: the ``.tflite`` file (or its bytes).
        upper: the largest arena to try. Defaults to 16 MiB.

    Returns:
        The smallest working arena size.

    Raises:
        ImportError: without the ``tflite-micro`` package.
        ValueError: if even ``upper`` bytes are not enough, or the file is one TFLM cannot run.
    """
    data = _file_bytes(path)
    _check_for_micro(data, f"path={str(path)[:80]!r}")

    def works(size: int) -> bool:
        try:
            interpreter = _micro_interpreter(data, size)
            detail = interpreter.get_input_details(0)
            interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
            interpreter.invoke()
        except RuntimeError:
            return False
        return True

    if not works(upper):
        raise invalid("upper", "an arena size with which the model runs", upper)
    low, high = 1, upper
    while low < high:
        middle = (low + high) // 2
        if works(middle):
            high = middle
        else:
            low = middle + 1
    return low


# --------------------------------------------------------------------------- export for the CLI


@dataclasses.dataclass(frozen=True)
class MicroReport:
    """How a microcontroller file runs in TensorFlow Lite Micro on some images.

    Attributes:
        num_images: int, how many images ran.
        top1_agreement: float in [0, 1], TFLM's top-1 against the Keras model's.
        litert_agreement: float in [0, 1], TFLM's top-1 against LiteRT's on the same file.
        litert_max_abs_diff: float, the largest difference of the dequantized
            outputs of TFLM and LiteRT.
        arena_bytes: int, the arena TFLM ran in (the library's estimate).
    """

    num_images: int
    top1_agreement: float
    litert_agreement: float
    litert_max_abs_diff: float
    arena_bytes: int


@dataclasses.dataclass(frozen=True)
class MicroExport:
    """What `export_micro` wrote and found.

    Attributes:
        tflite_path: the ``.tflite`` file (a temporary one, removed, when only C was asked for).
        source_path: the C++ source, or None.
        header_path: its header, or None.
        file_bytes: the flatbuffer's size.
        input_quantization: the int8 input's ``(scale, zero_point)``.
        output_quantization: the int8 output's ``(scale, zero_point)``.
        arena_bytes: the arena estimate of `mobilenet.export.micro_memory.profile_tflite`
            on a 64-bit host.
        variable: the C array's name ("" without a C source).
        report: a `MicroReport` when verification images were given, else None.
        memory: the file's `mobilenet.export.micro_memory.MemoryProfile` (its
            plan, greedy and 32-bit figures), or None.
    """

    tflite_path: Path | None
    source_path: Path | None
    header_path: Path | None
    file_bytes: int
    input_quantization: tuple[float, int]
    output_quantization: tuple[float, int]
    arena_bytes: int
    variable: str = ""
    report: MicroReport | None = None
    memory: MemoryProfile | None = None


def export_micro(
    model_path: str | os.PathLike,
    output_path: str | os.PathLike,
    calibration_images: Any = None,
    *,
    fold_bn: bool = False,
    verify_images: Any = None,
    memory_plan: str = "offline",
) -> MicroExport:
    """Exports a saved ``.keras`` model for TensorFlow Lite Micro: what ``mobilenet export --target micro`` does.

    Args:
        model_path: the ``.keras`` file.
        output_path: a ``.tflite`` file, or a ``.cc`` (``.cpp``, ``.c``) source
            to write with its ``.h`` header (`write_c_array`).
        calibration_images: images to calibrate int8 on, as the model takes
            them; not used for a quantization-aware model, whose ranges are
            learned (None is then enough).
        fold_bn: bool, fold BatchNorm first (the converter folds it anyway).
        verify_images: optional images to run the file on in TFLM (needs the
            ``micro`` extra), against the Keras model and LiteRT.
        memory_plan: ``"offline"`` (the default) writes an offline memory
            plan into the file, ``"greedy"`` leaves it to TFLM's planner (see
            `to_micro`).

    Returns:
        A `MicroExport`.
    """
    import tempfile

    from mobilenet.folding import fold_batchnorm
    from mobilenet.saving import load_model

    check_choice(memory_plan, "memory_plan", MEMORY_PLANS)
    output = Path(output_path)
    if output.suffix not in (".tflite", *C_SUFFIXES):
        raise invalid("output_path", "a .tflite, .cc, .cpp or .c file name", str(output_path))
    if output.is_dir() or not output.parent.is_dir():
        raise invalid("output_path", "a file in an existing, writable folder", str(output_path))
    if verify_images is not None:
        _micro_runtime()  # before the work: without the extra, say so now
    from mobilenet.quantization import is_quantize_aware

    model = load_model(model_path, compile=False, argument="model_path")
    if is_quantize_aware(model):
        calibration_images = None  # its ranges are learned; images given only verify
    source_model = fold_batchnorm(model) if fold_bn else model
    report = None
    with tempfile.TemporaryDirectory() as folder:
        tflite = Path(folder) / "model.tflite"
        to_micro(source_model, tflite, calibration_images, memory_plan=memory_plan)
        data = tflite.read_bytes()
        memory = profile_tflite(data)
        if verify_images is not None:
            report = _verify(tflite, model, verify_images, memory.arena_bytes)
        source = header = None
        if output.suffix == ".tflite":
            with atomic_target(output, suffix=".tflite") as temporary:
                Path(temporary).write_bytes(data)
        else:
            source, header = write_c_array(tflite, output, variable=c_identifier(output.stem))
    inputs, outputs = io_quantization(data)
    return MicroExport(
        tflite_path=output if output.suffix == ".tflite" else None,
        source_path=source, header_path=header, file_bytes=len(data),
        input_quantization=inputs,
        output_quantization=outputs,
        arena_bytes=memory.arena_bytes,
        variable="" if source is None else c_identifier(output.stem),
        report=report,
        memory=memory,
    )


def _verify(path: Path, model: Any, images: Any, arena_bytes: int) -> MicroReport:
    from mobilenet.export.runtimes import run_tflite

    images = np.asarray(images, np.float32)
    micro = run_micro(path, images, arena_size=arena_bytes)
    litert = run_tflite(path, images)
    keras_outputs = np.asarray(model.predict(images, verbose=0))
    return MicroReport(
        num_images=len(images),
        top1_agreement=float(np.mean(micro.argmax(-1) == keras_outputs.argmax(-1))),
        litert_agreement=float(np.mean(micro.argmax(-1) == litert.argmax(-1))),
        litert_max_abs_diff=float(np.max(np.abs(micro - litert))),
        arena_bytes=arena_bytes,
    )


class MicroRunner:
    """A microcontroller's file in TensorFlow Lite Micro's interpreter, behind the `Runner` protocol.

    What runs on the microcontroller, run here: ``mobilenet predict`` and
    ``mobilenet evaluate`` read a ``.cc``/``.cpp``/``.c`` C array this library
    wrote (or its ``.tflite``) through it, so the answers of the flashed
    model can be checked against the ``.keras`` one. Needs the ``tflite-micro``
    package (``pip install "mobilenet[micro]"``).

    Args:
        path: a C array (`write_c_array`) or an int8 ``.tflite`` file for TFLM.
        num_threads: ignored (TFLM runs on one thread); here for the protocol.
        argument: the name errors give ``path``.

    Attributes:
        data: the flatbuffer's bytes; the other attributes are those of
            `mobilenet.export.Runner`.
    """

    runtime = "tflite-micro"

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None, *,
                 argument: str = "path") -> None:
        from mobilenet.facts import tflite_facts

        self.path = Path(path)
        if not self.path.is_file():
            raise invalid(argument, "an existing C array or .tflite file", str(path))
        self.data = read_c_array(path) if self.path.suffix in C_SUFFIXES else self.path.read_bytes()
        check_micro(self.data)
        facts = tflite_facts(self.data)
        self.input_shape = (None, *facts.input_size, facts.channels)
        self.output_shape = (None, facts.num_classes)
        self.input_type, self.output_type = facts.input_type, facts.output_type
        self.input_quantization = facts.input_quantization
        self.outputs = facts.outputs
        self.arena_size = profile_tflite(self.data).arena_bytes

    def run(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """Float32 outputs for float ``images`` (quantized with the file's scale and zero point)."""
        images = np.asarray(images, np.float32)
        return np.asarray(run_micro(self.data, images, arena_size=self.arena_size), np.float32)
