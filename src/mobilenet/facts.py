"""What a model file carries about itself, so that anyone can feed it and read it: `ModelFacts`.

A model is only usable if its consumer knows how to feed it and how to read
its answer. timm keeps those facts beside its weights (``pretrained_cfg``);
this library keeps them inside every file it writes, and every command that
consumes a model asks `read_facts` instead of guessing:

- the input: its size and channels, whether it takes pixels 0-255 as they
  are (the models `mobilenet.training.train` writes do), and for an integer
  input its type, scale and zero point;
- how images are brought to that size: the central crop (``crop_fraction``
  of each side) and the resize ``interpolation`` (`mobilenet.preprocessing`);
- the output: class probabilities, or logits that need a softmax;
- the class names;
- whether it was trained quantization-aware.

Where they live:

- ``.keras``: the model's last layer, `mobilenet.layers.ClassNames`, carries
  the class names and the declared facts (crop, interpolation, input,
  outputs) in its config (`with_facts` adds or replaces it);
- ``.tflite``: a metadata entry named `METADATA_NAME` holding the facts as
  JSON (beside ``mobilenet.class_names``, see `mobilenet.class_names`);
- ``.onnx``: the ``metadata_props`` entry `METADATA_NAME`, the same JSON;
- a microcontroller's C array: its header (`mobilenet.export.micro`).

A model or file that declares nothing (an older file, a model built by hand)
gets facts read from the graph itself: pixels if it starts with a
``Rescaling``, probabilities if it ends in a softmax, the crop
`mobilenet.preprocessing.default_crop_fraction` gives its size, bilinear.

```python
import keras
from mobilenet import MobileNetV1
from mobilenet.facts import read_facts, with_facts

model = MobileNetV1(0.25, input_shape=(96, 96, 3), num_classes=2, include_preprocessing=True)
model = with_facts(model, class_names=["cat", "dog"], interpolation="bicubic")
model.save("pets.keras")
facts = read_facts("pets.keras")
facts.takes_pixels, facts.crop_fraction, facts.interpolation, facts.outputs, facts.class_names
# (True, 0.875, 'bicubic', 'probabilities', ('cat', 'dog'))
```
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobilenet._validation import check_bool, check_choice, check_number, invalid

__all__ = [
    "DECLARED",
    "METADATA_NAME",
    "OUTPUTS",
    "ModelFacts",
    "declared_facts",
    "image_model_facts",
    "keras_outputs",
    "onnx_outputs",
    "read_facts",
    "tflite_facts",
    "tflite_outputs",
    "with_facts",
    "write_onnx_facts",
    "write_tflite_facts",
]

#: The name of the facts' entry in a ``.tflite`` file's metadata and an ``.onnx`` file's
#: ``metadata_props``.
METADATA_NAME = "mobilenet.facts"
#: What a classifier's outputs can be: class probabilities (it ends in a softmax) or logits.
OUTPUTS = ("probabilities", "logits")
#: The facts a model declares (stored in its file); the rest are read from its tensors.
DECLARED = ("takes_pixels", "crop_fraction", "interpolation", "outputs", "quantization_aware")

#: LiteRT ops and ONNX nodes that only move or convert the values of the op before them.
_TFLITE_PASS_THROUGH = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "CAST"}
_ONNX_PASS_THROUGH = {"QuantizeLinear", "DequantizeLinear", "Reshape", "Squeeze", "Identity", "Cast"}
#: ONNX's tensor element types (TensorProto.DataType) by NumPy dtype name.
_ONNX_ELEMENT_TYPES = {1: "float32", 2: "uint8", 3: "int8", 10: "float16", 11: "float64"}


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """How to feed a model and how to read its answer (see the module docstring).

    Attributes:
        format: ``"keras"``, ``"tflite"`` or ``"onnx"``: where the facts were read.
        input_size: ``(height, width)`` of the model's input.
        channels: the input's channels (3 for RGB).
        takes_pixels: whether the input is pixels 0-255 as they are (for an
            integer input: the integer is the pixel, in its scale and zero point).
        input_type: the input's dtype name (``"float32"``, ``"uint8"``, ``"int8"``).
        input_quantization: ``(scale, zero_point)`` of an integer input, else None.
        crop_fraction: the share of each side the evaluation crop keeps (1.0: none).
        interpolation: the resize method (`mobilenet.preprocessing.INTERPOLATIONS`).
        outputs: ``"probabilities"`` or ``"logits"``.
        num_classes: the output's length.
        class_names: the class names in output order, or None.
        quantization_aware: whether the model was trained quantization-aware.
        output_type: the output's dtype name.
        output_quantization: ``(scale, zero_point)`` of an integer output, else None.
    """

    format: str
    input_size: tuple[int, int]
    channels: int
    takes_pixels: bool
    input_type: str
    input_quantization: tuple[float, int] | None
    crop_fraction: float
    interpolation: str
    outputs: str
    num_classes: int
    class_names: tuple[str, ...] | None = None
    quantization_aware: bool = False
    output_type: str = "float32"
    output_quantization: tuple[float, int] | None = None

    def image_options(self) -> dict[str, Any]:
        """The keyword arguments of `mobilenet.preprocessing`'s functions for this model."""
        return {"size": self.input_size, "crop_fraction": self.crop_fraction,
                "interpolation": self.interpolation}

    def declared(self) -> dict[str, Any]:
        """The facts a file stores (`DECLARED`, and the class names), as JSON-ready values."""
        stored = {name: getattr(self, name) for name in DECLARED}
        stored["class_names"] = list(self.class_names) if self.class_names is not None else None
        return stored

    def to_dict(self) -> dict[str, Any]:
        """Every fact, as JSON-ready values."""
        facts = dataclasses.asdict(self)
        for key in ("input_size", "input_quantization", "output_quantization", "class_names"):
            if facts[key] is not None:
                facts[key] = list(facts[key])
        return facts


def _check_declared(facts: dict[str, Any]) -> dict[str, Any]:
    """Declared facts checked; unknown keys are refused, missing ones left out."""
    unknown = set(facts) - set(DECLARED) - {"class_names"}
    if unknown:
        raise invalid("facts", f"facts among {DECLARED + ('class_names',)}", sorted(unknown))
    checked = dict(facts)
    if checked.get("takes_pixels") is not None:
        check_bool(checked["takes_pixels"], "takes_pixels")
    if checked.get("quantization_aware") is not None:
        check_bool(checked["quantization_aware"], "quantization_aware")
    if checked.get("crop_fraction") is not None:
        checked["crop_fraction"] = check_number(checked["crop_fraction"], "crop_fraction", low=0.0,
                                                high=1.0, low_open=True, high_open=False)
    if checked.get("interpolation") is not None:
        from mobilenet.preprocessing import INTERPOLATIONS

        check_choice(checked["interpolation"], "interpolation", INTERPOLATIONS)
    if checked.get("outputs") is not None:
        check_choice(checked["outputs"], "outputs", OUTPUTS)
    return {key: value for key, value in checked.items() if value is not None}


# --------------------------------------------------------------------------- Keras


def with_facts(
    model: Any,
    *,
    class_names: Sequence[str] | None = None,
    takes_pixels: bool | None = None,
    crop_fraction: float | None = None,
    interpolation: str | None = None,
    outputs: str | None = None,
) -> Any:
    """``model`` with its facts declared in a last `mobilenet.layers.ClassNames` layer.

    Facts left None keep what the model declares already, else what
    `read_facts` reads from its graph; every fact is then written, so that the
    saved file says them all. The returned model shares every layer and
    weight with ``model``; a ``ClassNames`` layer already at its end is
    replaced.

    Args:
        model: a functional ``keras.Model`` with one input and one output.
        class_names: the class names, in output order.
        takes_pixels: whether the model takes pixels 0-255 as they are.
        crop_fraction: float in (0, 1], the evaluation crop.
        interpolation: the resize method.
        outputs: ``"probabilities"`` or ``"logits"``.

    Returns:
        A ``keras.Model`` with the same inputs, name and outputs.
    """
    from mobilenet.class_names import with_class_names

    current = _keras_facts(model)
    names = tuple(class_names) if class_names is not None else current.class_names
    declared = _check_declared({
        key: value if value is not None else getattr(current, key)
        for key, value in (("takes_pixels", takes_pixels), ("crop_fraction", crop_fraction),
                           ("interpolation", interpolation), ("outputs", outputs),
                           ("quantization_aware", current.quantization_aware))
    })
    return with_class_names(model, names, facts=declared)


def declared_facts(model: Any) -> dict[str, Any]:
    """The facts a Keras model declares in its `ClassNames` layer (an empty dict if none)."""
    from mobilenet.layers import ClassNames

    for layer in reversed(_flat_layers(model)):
        if isinstance(layer, ClassNames):
            return dict(layer.facts)
    return {}


def image_model_facts(model: Any) -> ModelFacts | None:
    """`read_facts` of a Keras model, or None for a model that is no image classifier.

    What the exporters write into a file: a model with another kind of input
    or several outputs exports all the same, without facts.
    """
    from mobilenet._validation import InvalidArgument

    try:
        return _keras_facts(model)
    except InvalidArgument:
        return None


def _flat_layers(model: Any) -> list:
    """A model's layers in order, a nested model's in its place (not the layers' own sublayers)."""
    import keras

    layers = []
    for layer in model.layers:
        layers.extend(_flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return layers


def _keras_facts(model: Any) -> ModelFacts:
    import keras

    from mobilenet.class_names import get_class_names
    from mobilenet.preprocessing import default_crop_fraction
    from mobilenet.quantization import is_quantize_aware

    if not isinstance(model, keras.Model):
        raise invalid("model", "a keras.Model or a .keras, .tflite or .onnx file", model)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise invalid("model", "a model with one input and one output", None,
                      shown=f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
    shape = tuple(model.input_shape)
    if len(shape) != 4 or not all(isinstance(side, int) for side in shape[1:]):
        raise invalid("model", "an image model with a fixed input size (N, height, width, "
                      "channels)", None, shown=f"input shape {shape}")
    declared = declared_facts(model)
    height, width, channels = shape[1:]
    return ModelFacts(
        format="keras",
        input_size=(height, width),
        channels=channels,
        takes_pixels=declared.get("takes_pixels", _keras_starts_with_rescaling(model)),
        input_type=keras.backend.standardize_dtype(model.inputs[0].dtype),
        input_quantization=None,
        crop_fraction=float(declared.get("crop_fraction", default_crop_fraction(min(height, width)))),
        interpolation=declared.get("interpolation", "bilinear"),
        outputs=declared.get("outputs", keras_outputs(model)),
        num_classes=int(model.output_shape[-1]),
        class_names=get_class_names(model),
        quantization_aware=is_quantize_aware(model),
        output_type=keras.backend.standardize_dtype(model.outputs[0].dtype),
    )


def _keras_starts_with_rescaling(model: Any) -> bool:
    """Whether the first layer after the input (past a QAT input quantizer) is a ``Rescaling``."""
    import keras

    from mobilenet.quantization import ActivationQuantizer

    for layer in _flat_layers(model):
        if isinstance(layer, (keras.layers.InputLayer, ActivationQuantizer)):
            continue
        return isinstance(layer, keras.layers.Rescaling)
    return False


def keras_outputs(model: Any) -> str:
    """``"probabilities"`` if a Keras model's output comes from a softmax, else ``"logits"``.

    The last computing layer is looked for past the layers that only carry or
    move values: `ClassNames`, a QAT model's output range, reshapes.
    """
    return "probabilities" if _keras_ends_in_softmax(model) else "logits"


def _keras_ends_in_softmax(model: Any) -> bool:
    import keras

    from mobilenet.layers import ClassNames
    from mobilenet.quantization import ActivationQuantizer

    for layer in reversed(_flat_layers(model)):
        if isinstance(layer, (ClassNames, ActivationQuantizer, keras.layers.InputLayer,
                              keras.layers.Reshape, keras.layers.Flatten, keras.layers.Identity)):
            continue
        if isinstance(layer, keras.layers.Softmax):
            return True
        activation = getattr(layer, "activation", None)
        return activation is keras.activations.softmax or activation == "softmax"
    return False


# --------------------------------------------------------------------------- LiteRT


def _tflite_model(data: bytes) -> Any:
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(data))


def _tflite_type(code: int) -> str:
    from tensorflow.lite.python import schema_py_generated as schema

    names = {value: key for key, value in vars(schema.TensorType).items() if key.isupper()}
    return {"FLOAT32": "float32", "FLOAT16": "float16", "UINT8": "uint8", "INT8": "int8",
            "INT16": "int16", "INT32": "int32"}.get(names.get(code, ""), names.get(code, "?").lower())


def _tflite_quantization(tensor: Any, dtype: str) -> tuple[float, int] | None:
    if dtype not in ("uint8", "int8", "int16") or tensor.quantization is None:
        return None
    scale, zero = tensor.quantization.scale, tensor.quantization.zeroPoint
    if scale is None or not len(scale):
        return None
    return float(scale[0]), int(zero[0])


def tflite_outputs(data: bytes | Any) -> str:
    """``"probabilities"`` if a LiteRT flatbuffer's output comes from a ``SOFTMAX`` op, else ``"logits"``.

    The op computing the output is looked for behind ops that only convert
    or move values (``QUANTIZE``, ``DEQUANTIZE``, ``RESHAPE``...).

    Args:
        data: the file's bytes (or its parsed ``ModelT``).
    """
    model = _tflite_model(data) if isinstance(data, (bytes, bytearray)) else data
    return "probabilities" if _tflite_ends_in_softmax(model) else "logits"


def _tflite_ends_in_softmax(model: Any) -> bool:
    from tensorflow.lite.python import schema_py_generated as schema

    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if key.isupper()}
    graph = model.subgraphs[0]

    def op_name(op: Any) -> str:
        code = model.operatorCodes[op.opcodeIndex]
        return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")

    producers = {int(tensor): op for op in graph.operators for tensor in op.outputs}
    op = producers.get(int(graph.outputs[0]))
    while op is not None and op_name(op) in _TFLITE_PASS_THROUGH:
        op = producers.get(int(op.inputs[0]))
    return op is not None and op_name(op) == "SOFTMAX"


def tflite_facts(data: bytes) -> ModelFacts:
    """The facts of a LiteRT flatbuffer, from its bytes (a ``.tflite`` file, a C array's).

    Raises:
        ValueError: not a LiteRT model with one image input and one output.
    """
    from mobilenet.class_names import TFLITE_METADATA_NAME, read_tflite_metadata
    from mobilenet.preprocessing import default_crop_fraction

    model = _tflite_model(data)
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise invalid("model", "a file with one input and one output", None,
                      shown=f"a file with {len(graph.inputs)} and {len(graph.outputs)}")
    source, target = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    input_type, output_type = _tflite_type(source.type), _tflite_type(target.type)
    input_quantization = _tflite_quantization(source, input_type)
    return _file_facts(
        "tflite", [int(side) for side in source.shape], [int(side) for side in target.shape],
        input_type, input_quantization, output_type, _tflite_quantization(target, output_type),
        tflite_outputs(model),
        read_tflite_metadata(model, METADATA_NAME) or {},
        read_tflite_metadata(model, TFLITE_METADATA_NAME), default_crop_fraction,
    )


def _file_facts(
    format: str, input_shape: list, output_shape: list, input_type: str,
    input_quantization: tuple[float, int] | None, output_type: str,
    output_quantization: tuple[float, int] | None, outputs: str, declared: dict,
    names: Any, default_crop: Any,
) -> ModelFacts:
    if len(input_shape) != 4 or not all(isinstance(side, int) and side > 0 for side in input_shape[1:]):
        raise invalid("model", "an image model with a fixed input size (N, height, width, "
                      "channels)", None, shown=f"input shape {tuple(input_shape)}")
    declared = _check_declared({key: value for key, value in declared.items()
                                if key in DECLARED or key == "class_names"})
    names = declared.get("class_names", names)
    height, width, channels = input_shape[1:]
    # A file that says nothing: an integer input is the pixel when its scale is 1 and its
    # zero point maps 0 to the type's lowest value; a float input is assumed to take pixels,
    # as the files this library writes from pixel models do.
    pixels = input_quantization is None or (
        input_quantization[0] == 1.0 and input_quantization[1] == (0 if input_type == "uint8" else -128)
    )
    return ModelFacts(
        format=format,
        input_size=(height, width),
        channels=channels,
        takes_pixels=declared.get("takes_pixels", pixels),
        input_type=input_type,
        input_quantization=input_quantization,
        crop_fraction=float(declared.get("crop_fraction", default_crop(min(height, width)))),
        interpolation=declared.get("interpolation", "bilinear"),
        outputs=outputs,
        num_classes=int(output_shape[-1]) if output_shape else 0,
        class_names=tuple(names) if isinstance(names, list) and names else None,
        quantization_aware=declared.get("quantization_aware", False),
        output_type=output_type,
        output_quantization=output_quantization,
    )


def write_tflite_facts(path: str | os.PathLike, facts: ModelFacts | dict[str, Any]) -> Path:
    """Writes (or replaces) the declared facts in the metadata of the ``.tflite`` file at ``path``.

    The class names go in their own entry too (`mobilenet.class_names`), for
    readers that know only that one; the file is rewritten once, atomically,
    its graph and weights unchanged.
    """
    from mobilenet.class_names import TFLITE_METADATA_NAME, write_tflite_metadata

    declared = facts.declared() if isinstance(facts, ModelFacts) else dict(facts)
    entries = {METADATA_NAME: declared}
    if declared.get("class_names"):
        entries[TFLITE_METADATA_NAME] = declared["class_names"]
    return write_tflite_metadata(path, entries)


# --------------------------------------------------------------------------- ONNX


def _onnx_facts(path: Path) -> ModelFacts:
    import onnx

    from mobilenet.class_names import ONNX_METADATA_KEY
    from mobilenet.preprocessing import default_crop_fraction

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise invalid("model", "a file with one input and one output", None,
                      shown=f"a file with {len(inputs)} and {len(graph.output)}")

    def shape(value: Any) -> list:
        return [dim.dim_value if dim.HasField("dim_value") else None
                for dim in value.type.tensor_type.shape.dim]

    def element(value: Any) -> str:
        return _ONNX_ELEMENT_TYPES.get(value.type.tensor_type.elem_type, "?")

    props = {prop.key: prop.value for prop in model.metadata_props}
    declared = json.loads(props[METADATA_NAME]) if METADATA_NAME in props else {}
    names = json.loads(props[ONNX_METADATA_KEY]) if ONNX_METADATA_KEY in props else None
    return _file_facts(
        "onnx", shape(inputs[0]), shape(graph.output[0]), element(inputs[0]), None,
        element(graph.output[0]), None,
        onnx_outputs(graph), declared, names, default_crop_fraction,
    )


def onnx_outputs(graph: Any) -> str:
    """``"probabilities"`` if an ONNX graph's output comes from a ``Softmax`` node, else ``"logits"``.

    The node computing the output is looked for behind nodes that only
    convert or move values (``QuantizeLinear``, ``DequantizeLinear``, ``Reshape``...).
    """
    producers = {name: node for node in graph.node for name in node.output}
    node = producers.get(graph.output[0].name)
    while node is not None and node.op_type in _ONNX_PASS_THROUGH:
        node = producers.get(node.input[0])
    return "probabilities" if node is not None and node.op_type == "Softmax" else "logits"


def write_onnx_facts(path: str | os.PathLike, facts: ModelFacts | dict[str, Any]) -> Path:
    """Writes (or replaces) the declared facts in the ``metadata_props`` of the ``.onnx`` file at ``path``.

    The class names go in their own entry too (`mobilenet.class_names`); the
    file is rewritten once, atomically, its graph and weights unchanged.
    """
    from mobilenet.class_names import ONNX_METADATA_KEY, write_onnx_metadata

    declared = facts.declared() if isinstance(facts, ModelFacts) else dict(facts)
    props = {METADATA_NAME: declared}
    if declared.get("class_names"):
        props[ONNX_METADATA_KEY] = declared["class_names"]
    return write_onnx_metadata(path, props)


# --------------------------------------------------------------------------- any


def read_facts(model: Any, *, argument: str = "model") -> ModelFacts:
    """The facts of a Keras model or of a ``.keras``, ``.tflite`` or ``.onnx`` file.

    Args:
        model: a ``keras.Model``, the path of a model file, or the bytes of a
            LiteRT flatbuffer.
        argument: the name errors give ``model``.

    Returns:
        A `ModelFacts`.

    Raises:
        ValueError: no such file, a file of another kind, or a model that is
            not an image model with one input and one output.
    """
    if isinstance(model, (bytes, bytearray)):
        return tflite_facts(bytes(model))
    if not isinstance(model, (str, os.PathLike)):
        return _keras_facts(model)
    from mobilenet._validation import check_existing_file

    path = Path(model)
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".tflite", ".onnx"):
        raise invalid(argument, "a .keras, .tflite or .onnx file", str(model))
    if suffix == ".keras":
        from mobilenet.saving import load_model

        return _keras_facts(load_model(path, argument=argument))
    check_existing_file(path, argument, f"{suffix} file")
    try:
        if suffix == ".tflite":
            return tflite_facts(path.read_bytes())
        return _onnx_facts(path)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as error:
        if hasattr(error, "argument"):
            raise
        raise invalid(argument, "", None, shown=f"{argument}={str(model)!r}",
                      problem=f"cannot read it as a {suffix} model ({error})") from error
