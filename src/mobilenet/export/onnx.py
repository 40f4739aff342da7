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
import numpy as np

from mobilenet._files import atomic_target
from mobilenet._validation import check_choice, invalid
from mobilenet.class_names import get_class_names, write_onnx_class_names
from mobilenet.facts import image_model_facts, write_onnx_facts
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

__all__ = ["ONNX_QUANTIZATIONS", "quantize_int8", "stem_nodes", "to_onnx"]

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
    weights per output channel in 7 bits, ``reduce_range``; the stem conv and
    the input in float), calibrated on ``representative_data`` (see
    `quantize_int8`). The 7-bit weights keep the int8 kernels of x86 CPUs
    without VNNI (AVX2 only) from saturating, so the file gives the same
    answers on every CPU.
    The file is written to a temporary name in the same folder and moved into
    place only when everything succeeded. Its input is float32 with a free
    batch size, the model's input as it is (pixels 0-255 for a model that
    takes pixels); an int8 file quantizes the stem conv's output, its input
    and the stem conv itself staying float32. The file
    carries the model's class names, if it has any (`mobilenet.class_names`).

    Needs the optional ``onnx`` extra: ``pip install "mobilenet[onnx]"``.

    Args:
        model: keras.Model, a float32 model with one image input, in
            inference mode.
        path: str or PathLike, the ``.onnx`` file to write, in an existing
            folder.
        quantization: ``None`` (float32) or ``"int8"``. For a
            quantization-aware model (`mobilenet.quantization`), float32 is
            its folded weights, on their int8 grid, without activation
            rounding; int8 needs no calibration: its scales and zero points
            are the ranges it learned (uint8, as tf2onnx writes them), its
            weights the integers it trained (per output channel, stored as
            uint8 around 128 so that ONNX Runtime's int8 kernels do not
            saturate on CPUs without VNNI), and ONNX Runtime runs its
            convolutions and classifier as ``QLinearConv`` and ``QGemm``.
        representative_data: needed for ``"int8"`` of a float model: real
            images shaped like the model input, as the model takes them (an
            array or a ``tf.data.Dataset``, as for `to_tflite`). A few
            hundred are enough. A quantization-aware model ignores it (with
            a warning).
        pointwise_as_conv: bool, write `PointwiseConv2D` layers as plain 1x1
            ``Conv`` nodes (as `to_tflite` does) rather than ``MatMul``.
            Defaults to True.
        opset: int or None, the ONNX opset (None: tf2onnx's default); at
            least 13 for the int8 file of a quantization-aware model.

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
    from mobilenet.quantization import export_graph, has_per_tensor_weights, is_quantize_aware

    check_model(model)
    check_choice(quantization, "quantization", ONNX_QUANTIZATIONS)
    target = writable_target(path, ".onnx")
    names = get_class_names(model)
    facts = image_model_facts(model)  # before a QAT model becomes its export graph
    learned_ranges = is_quantize_aware(model) and quantization == "int8"
    if learned_ranges:
        if opset is not None and opset < 13:
            raise invalid("opset", "None or an opset >= 13 for the int8 file of a "
                          "quantization-aware model (per-channel DequantizeLinear)", opset)
        if representative_data is not None:
            warnings.warn("to_onnx: a quantization-aware model carries its own int8 ranges; "
                          "representative_data is not used", stacklevel=2)
        per_channel = not has_per_tensor_weights(model)
    if is_quantize_aware(model):
        # The folded float model it trained; for int8, with its ranges as FakeQuant ops,
        # which tf2onnx writes as QuantizeLinear/DequantizeLinear pairs.
        model = export_graph(model, fake_quant=learned_ranges)
    calibration = None
    if quantization == "int8" and not learned_ranges:
        calibration = anchored(
            representative_dataset(representative_data, model), pixel_input_range(model)
        )
    for name in ("onnx", "tf2onnx") + (("onnxruntime",) if calibration else ()):
        import_onnx_package(name)
    signature = [keras.InputSpec(shape=(None, *model.input_shape[1:]), dtype="float32")]

    with atomic_target(target, suffix=".onnx") as temporary, tempfile.TemporaryDirectory() as work:
        float_path = temporary if quantization is None else os.path.join(work, "float.onnx")
        with pointwise_written_as_conv(model, pointwise_as_conv), warnings.catch_warnings():
            # Keras' numpy-2 patch of tf2onnx looks up `np.object`, which warns.
            warnings.simplefilter("ignore", FutureWarning)
            model.export(float_path, format="onnx", verbose=False,
                         input_signature=signature, opset_version=opset)
        if learned_ranges:
            _integer_weights(float_path, temporary, per_channel)
        elif calibration is not None:
            quantize_int8(float_path, temporary, calibration, work)
        if facts is not None:  # how to feed it and read it, class names too (mobilenet.facts)
            write_onnx_facts(temporary, facts)
        elif names is not None:  # a model that is no image classifier: its names alone
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
    # weights overflow it, and the file then answers differently there
    # than on VNNI or ARM CPUs (91% against 98% top-1 agreement with
    # Keras). With |w| <= 64 no pair can pass 2 x 255 x 64 < 2**15, so
    # every CPU computes the same integers (benchmarks/int8_agreement.py).
    # The stem conv stays float, its input too: its input is the pixels,
    # dense over the whole int8 range, and rounding them and its 7-bit
    # weights cost the most agreement. In float it took a trained CIFAR-10
    # model from 97.3% to 98.6% top-1 agreement on an Intel Xeon with VNNI
    # (LiteRT's int8 file: 98.6%), and from 97.1% to 97.5% on an AVX2-only
    # AMD EPYC, as fast (benchmarks/int8_onnx_settings.py, RESULTS.md).
    ort_quantization.quantize_static(
        prepared, int8_path, calibration_reader(calibration, input_name),
        quant_format=ort_quantization.QuantFormat.QDQ, per_channel=True,
        reduce_range=True,
        activation_type=ort_quantization.QuantType.QInt8,
        weight_type=ort_quantization.QuantType.QInt8,
        nodes_to_exclude=stem_nodes(graph),
    )


def stem_nodes(graph: Any) -> list[str]:
    """The names of the stem conv (an ONNX graph's first ``Conv``) and of every node it depends on.

    `quantize_int8` keeps them all in float: with a quantized input ONNX
    Runtime's graph optimizer would quantize a float conv's weights itself,
    to 8 bits, which saturate on CPUs without VNNI. For our files these are
    the input's rescaling (``Mul``, ``Add``), its ``Transpose`` and the conv.
    """
    producers = {output: node for node in graph.node for output in node.output}
    first = next((node for node in graph.node if node.op_type == "Conv"), None)
    names: list[str] = []
    pending = [first] if first is not None else []
    while pending:
        node = pending.pop()
        if node.name not in names:
            names.append(node.name)
            pending += [producers[name] for name in node.input if name in producers]
    return names


#: Ops that pass their input's values through unchanged, and so its quantization.
_VALUE_KEEPING = ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "MaxPool")


def _integer_weights(float_path: str, int8_path: str, per_channel: bool) -> None:
    """Writes the int8 file of a QAT model's graph, whose ranges tf2onnx wrote as QDQ pairs.

    The graph at ``float_path`` (`export_graph` with FakeQuant ops, through
    tf2onnx) quantizes every learned range already, but its weights are float
    initializers, on their int8 grid. Each ``Conv`` and ``MatMul`` weight on
    its grid becomes integers + scale (per output channel, or one scale with
    ``per_channel`` False) behind a ``DequantizeLinear``, its bias an int32 of
    scale input scale x weight scale, and a ``MatMul`` + bias ``Add`` a
    ``Gemm``: the QDQ pattern ONNX Runtime fuses into ``QLinearConv`` and
    ``QGemm``. Weights off the grid are those of layers `quantize_aware`
    left in float, and stay float.

    The integers are stored as uint8 with zero point 128 (the same values
    ``k * scale``, ``k`` in [-127, 127]): ONNX Runtime then multiplies uint8
    by uint8, whose x86 kernels widen to 16 bits before adding. Its uint8 x
    int8 kernels on CPUs without VNNI (AVX2 only) add pairs of products into
    a saturating int16 (VPMADDUBSW), which 8-bit weights overflow: for a QAT
    MobileNet on CIFAR-10 those gave 60% top-1 agreement with the plain QDQ
    arithmetic, against 100% for uint8 weights. `quantize_int8` avoids it
    with 7-bit weights instead, which a QAT model's trained integers cannot.
    """
    onnx = import_onnx_package("onnx")
    from onnx import helper, numpy_helper

    model = onnx.load(float_path)
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    producers = {name: node for node in graph.node for name in node.output}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    ranks = {value.name: len(value.type.tensor_type.shape.dim)
             for value in (*inferred.value_info, *inferred.input, *inferred.output)
             if value.type.tensor_type.HasField("shape")}

    def array(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(constants[name]) if name in constants else None

    def input_scale(name: str) -> float | None:
        """The scale of the QDQ pair whose values reach ``name`` unchanged, if any."""
        node = producers.get(name)
        while node is not None and node.op_type in _VALUE_KEEPING:
            node = producers.get(node.input[0])
        scale = None if node is None or node.op_type != "DequantizeLinear" else array(node.input[1])
        return float(scale) if scale is not None and scale.size == 1 else None

    nodes: list[Any] = []
    added: list[Any] = []

    def dequantized(name: str, integers: np.ndarray, scale: np.ndarray,
                    zero_point: np.ndarray, axis: int) -> str:
        stored = [f"{name}_quantized", f"{name}_quantized_scale", f"{name}_quantized_zero_point"]
        added.extend(numpy_helper.from_array(value, stored_name)
                     for value, stored_name in zip((integers, scale, zero_point), stored))
        nodes.append(helper.make_node("DequantizeLinear", stored, [f"{name}_dequantized"],
                                      name=f"{name}_DequantizeLinear", axis=axis))
        return f"{name}_dequantized"

    dropped: set[str] = set()  # the outputs of nodes a Gemm replaces
    for node in graph.node:
        weights = array(node.input[1]) if node.op_type in ("Conv", "MatMul") else None
        scale_in = input_scale(node.input[0]) if weights is not None else None
        axis = 0 if node.op_type == "Conv" else 1  # Conv: [out, in/group, h, w]; MatMul: [in, out]
        grid = None if scale_in is None or (node.op_type == "MatMul" and weights.ndim != 2) \
            else _on_grid(weights, axis, per_channel)
        if grid is None:
            nodes.append(node)
            continue
        integers, scale = grid
        bias_name, add = None, None
        if node.op_type == "Conv" and len(node.input) > 2 and node.input[2] in constants:
            bias_name = node.input[2]
        elif node.op_type == "MatMul" and ranks.get(node.input[0]) == 2:
            users = readers.get(node.output[0], [])
            if len(users) == 1 and users[0].op_type == "Add":
                add = users[0]
                other = next(name for name in add.input if name != node.output[0])
                bias = array(other)
                if bias is not None and bias.shape == (weights.shape[1],):
                    bias_name = other
        zero_point = np.full(scale.shape, 128, np.uint8)
        weight = dequantized(node.input[1], (integers + 128).astype(np.uint8), scale,
                             zero_point, axis)
        bias_input = None
        if bias_name is not None:
            bias = array(bias_name)
            bias_scale = (scale_in * scale).astype(np.float32)
            bias_input = dequantized(
                bias_name, np.round(bias / np.broadcast_to(bias_scale, bias.shape)).astype(np.int32),
                bias_scale, np.zeros(bias_scale.shape, np.int32), 0)
        if node.op_type == "Conv":
            node.input[1] = weight
            if bias_input is not None:
                node.input[2] = bias_input
            nodes.append(node)
        elif bias_input is not None:  # MatMul + Add: one Gemm, which ONNX Runtime makes QGemm
            nodes.append(helper.make_node("Gemm", [node.input[0], weight, bias_input],
                                          list(add.output), name=f"{node.name}_Gemm"))
            dropped.add(add.output[0])
        else:
            node.input[1] = weight
            nodes.append(node)
    nodes = [node for node in nodes if node.output[0] not in dropped or node.op_type == "Gemm"]
    _round_ties_up(graph, nodes, constants, producers, added)
    del graph.node[:]
    graph.node.extend(nodes)
    read = {name for node in nodes for name in node.input} | {out.name for out in graph.output}
    kept = [init for init in graph.initializer if init.name in read]  # the float weights go
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    onnx.checker.check_model(model)
    onnx.save(model, int8_path)


def _on_grid(weights: np.ndarray, axis: int, per_channel: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """``(k, scale)`` with ``weights == k * scale`` (``|k| <= 127``), or None when off the grid.

    ``scale`` is ``max|w| / 127`` per slice along ``axis`` (or a scalar for the
    whole tensor), the grid `quantize_aware` rounds weights to.
    """
    shape = [1] * weights.ndim
    shape[axis] = -1
    if per_channel:
        bound = np.abs(np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1)).max(axis=1)
        scale = (np.maximum(bound, 1e-12) / 127).astype(np.float32)
        steps = weights / scale.reshape(shape)
    else:
        scale = np.float32(max(float(np.abs(weights).max()), 1e-12) / 127)
        steps = weights / scale
    integers = np.round(steps)
    if np.abs(steps - integers).max() > 1e-3 or np.abs(integers).max() > 127:
        return None
    return integers.astype(np.int16), np.asarray(scale, np.float32)


def _round_ties_up(graph: Any, nodes: list[Any], constants: dict[str, Any],
                   producers: dict[str, Any], added: list[Any]) -> None:
    """Makes ``QuantizeLinear`` round the exact ties of a pixel rescaling up, as TensorFlow does.

    TensorFlow's FakeQuant (and LiteRT's integer kernels) round a value half
    way between two steps up; ONNX's ``QuantizeLinear`` rounds it to the even
    step. Ties are chance events, except after ``x * m + c`` of a quantized
    ``x`` where ``m`` is a whole number of output steps and ``c`` half of one
    more: a pixel model's ``x / 127.5 - 1`` (range (-1, 1), zero point
    127.5, which rounds to 128) is such, and every value there is a tie. Such
    a ``c`` gets a quarter of a step more, so that every tie rounds up; no
    other value moves. For a QAT MobileNet on CIFAR-10, this takes the file
    from 94.5% to 100% top-1 agreement with the LiteRT file of the same model.
    """
    from onnx import numpy_helper

    def scalar(name: str) -> float | None:
        if name not in constants:
            return None
        value = numpy_helper.to_array(constants[name])
        return float(value) if value.size == 1 else None

    for node in nodes:
        add = producers.get(node.input[0]) if node.op_type == "QuantizeLinear" else None
        if add is None or add.op_type != "Add" or scalar(node.input[1]) is None:
            continue
        offsets = [i for i, name in enumerate(add.input) if scalar(name) is not None]
        if len(offsets) != 1:
            continue
        offset_index = offsets[0]
        source = producers.get(add.input[1 - offset_index])
        factor = 1.0
        if source is not None and source.op_type == "Mul":
            factors = [scalar(name) for name in source.input]
            if factors.count(None) != 1:
                continue
            factor = next(value for value in factors if value is not None)
            source = producers.get(source.input[factors.index(None)])
        if source is None or source.op_type != "DequantizeLinear" or scalar(source.input[1]) is None:
            continue
        step = scalar(node.input[1])
        multiple = scalar(source.input[1]) * factor / step
        half = scalar(add.input[offset_index]) / step - 0.5
        if abs(multiple - round(multiple)) < 1e-4 and abs(half - round(half)) < 1e-4:
            name = f"{add.output[0]}_ties_up"
            added.append(numpy_helper.from_array(
                np.array(scalar(add.input[offset_index]) + step / 4, np.float32), name))
            add.input[offset_index] = name
