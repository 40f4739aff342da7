"""Class names that travel with a model: inside ``.keras``, ``.tflite`` and ``.onnx`` files.

The models `mobilenet.training.train` writes end in a `mobilenet.layers.ClassNames`
layer that carries the names of their classes (the folder names of an image
folder dataset, CIFAR-10's for CIFAR-10); `mobilenet.export` writes the same
names into each file format's own metadata:

- ``.tflite``: an entry of the flatbuffer's ``metadata`` table named
  `TFLITE_METADATA_NAME`, holding the names as a JSON list (UTF-8);
- ``.onnx``: the model's ``metadata_props`` entry `ONNX_METADATA_KEY`, the
  same JSON list, which ONNX Runtime shows in ``custom_metadata_map``.

`get_class_names` reads them back from a model or any of these files, which
`mobilenet evaluate`, `mobilenet predict` and `mobilenet.predict.Classifier`
do on their own.

```python
import keras
from mobilenet import MobileNetV1
from mobilenet.class_names import get_class_names, with_class_names

model = with_class_names(MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=2), ["cat", "dog"])
model.save("pets.keras")
get_class_names("pets.keras")  # ('cat', 'dog'), read without building the model
```
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LAYER_NAME",
    "ONNX_METADATA_KEY",
    "TFLITE_METADATA_NAME",
    "get_class_names",
    "read_tflite_metadata",
    "with_class_names",
    "write_onnx_class_names",
    "write_onnx_metadata",
    "write_tflite_class_names",
    "write_tflite_metadata",
]

#: The name of the `ClassNames` layer `with_class_names` adds.
LAYER_NAME = "class_names"
#: The metadata entry of a ``.tflite`` file that holds its class names.
TFLITE_METADATA_NAME = "mobilenet.class_names"
#: The ``metadata_props`` key of an ``.onnx`` file that holds its class names.
ONNX_METADATA_KEY = "mobilenet.class_names"


def with_class_names(model: Any, names: Sequence[str] | None, *, facts: dict | None = None) -> Any:
    """``model`` with a `ClassNames` layer carrying ``names`` after its output.

    The returned model shares every layer and weight with ``model``; a
    `ClassNames` layer already at its end is replaced, keeping the facts it
    declares (`mobilenet.facts`) unless ``facts`` are given.

    Args:
        model: a functional ``keras.Model`` with one output of ``len(names)``
            classes.
        names: the class names, in output order (None: no names).
        facts: optional dict of declared facts (`mobilenet.facts.with_facts`
            writes them).

    Returns:
        A ``keras.Model`` with the same inputs, name and outputs.
    """
    import keras

    from mobilenet.layers import ClassNames

    output = model.outputs[0]
    last = model.layers[-1]
    if isinstance(last, ClassNames):
        output = last.input
        if facts is None:
            facts = last.facts
    named = ClassNames(list(names) if names is not None else None, facts=facts,
                       name=LAYER_NAME)(output)
    # One input stays one tensor, not a list of one: a list would change the model's
    # call signature (its exported `serve` would take a list).
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, named, name=model.name)


def _names(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and value and all(isinstance(name, str) for name in value):
        return tuple(value)
    return None


def _from_keras_config(config: Any) -> tuple[str, ...] | None:
    """Finds a ClassNames layer's names in a model config (the .keras file's config.json)."""
    if isinstance(config, dict):
        if config.get("class_name") == "ClassNames" and isinstance(config.get("config"), dict):
            return _names(config["config"].get("names"))
        values = config.values()
    elif isinstance(config, list):
        values = config
    else:
        return None
    for value in values:
        found = _from_keras_config(value)
        if found:
            return found
    return None


def read_tflite_metadata(model: Any, name: str) -> Any:
    """The JSON value of a ``.tflite`` file's metadata entry ``name``, or None.

    Args:
        model: the file's bytes, or its parsed ``ModelT`` (``flatbuffer_utils``).
        name: the entry's name (`TFLITE_METADATA_NAME`, ``mobilenet.facts``).
    """
    if isinstance(model, (bytes, bytearray)):
        from tensorflow.lite.tools import flatbuffer_utils

        model = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    for entry in model.metadata or []:
        entry_name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if entry_name == name:
            return json.loads(bytes(model.buffers[entry.buffer].data).decode("utf-8"))
    return None


def _from_tflite(path: Path) -> tuple[str, ...] | None:
    return _names(read_tflite_metadata(path.read_bytes(), TFLITE_METADATA_NAME))


def _from_onnx(path: Path) -> tuple[str, ...] | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            return _names(json.loads(prop.value))
    return None


def get_class_names(model: Any) -> tuple[str, ...] | None:
    """The class names a model or model file carries, or None where it has none.

    Args:
        model: a ``keras.Model``, or the path of a ``.keras``, ``.tflite`` or
            ``.onnx`` file (read without building the model).

    Returns:
        A tuple of names in output order, or None.
    """
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        suffix = path.suffix.lower()
        try:
            if suffix == ".keras":
                with zipfile.ZipFile(path) as archive:
                    return _from_keras_config(json.loads(archive.read("config.json")))
            if suffix == ".tflite":
                return _from_tflite(path)
            if suffix == ".onnx":
                return _from_onnx(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, ImportError):
            return None  # a file that cannot be read says so where it is loaded
        return None
    from mobilenet.layers import ClassNames

    for layer in reversed(getattr(model, "layers", [])):
        if isinstance(layer, ClassNames):
            return layer.names
    return None


def write_tflite_metadata(path: str | os.PathLike, entries: dict[str, Any]) -> Path:
    """Adds (or replaces) metadata entries, each a JSON value, in the ``.tflite`` file at ``path``.

    One atomic rewrite for all of them; the graph and weights are unchanged.

    Args:
        path: the ``.tflite`` file.
        entries: entry name -> a JSON-serializable value.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from mobilenet._files import atomic_target

    path = Path(path)
    model = flatbuffer_utils.read_model_from_bytearray(path.read_bytes())
    kept = [
        entry for entry in (model.metadata or [])
        if (entry.name.decode() if isinstance(entry.name, bytes) else entry.name) not in entries
    ]
    for name, value in entries.items():
        buffer = schema.BufferT()
        buffer.data = list(json.dumps(value).encode("utf-8"))
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        kept.append(entry)
    model.metadata = kept
    with atomic_target(path) as temporary:
        Path(temporary).write_bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return path


def write_onnx_metadata(path: str | os.PathLike, props: dict[str, Any]) -> Path:
    """Adds (or replaces) ``metadata_props``, each a JSON value, in the ``.onnx`` file at ``path``.

    One atomic rewrite for all of them; the graph and weights are unchanged.
    """
    import onnx

    from mobilenet._files import atomic_target

    path = Path(path)
    model = onnx.load(str(path))
    kept = [prop for prop in model.metadata_props if prop.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    with atomic_target(path) as temporary:
        onnx.save(model, temporary)
    return path


def write_tflite_class_names(path: str | os.PathLike, names: Sequence[str]) -> Path:
    """Adds (or replaces) the class names in the metadata of the ``.tflite`` file at ``path``.

    The file is rewritten atomically; its graph and weights are unchanged.
    """
    return write_tflite_metadata(path, {TFLITE_METADATA_NAME: list(names)})


def write_onnx_class_names(path: str | os.PathLike, names: Sequence[str]) -> Path:
    """Adds (or replaces) the class names in the ``metadata_props`` of the ``.onnx`` file at ``path``.

    The file is rewritten atomically; its graph and weights are unchanged.
    """
    return write_onnx_metadata(path, {ONNX_METADATA_KEY: list(names)})
