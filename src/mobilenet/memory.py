"""RAM and flash of a model on a microcontroller, known before flashing.

A microcontroller runs a ``.tflite`` file in TensorFlow Lite Micro (TFLM): the
file's constant tensors (the weights) stay in flash, and every other tensor
lives in one block of RAM, the *tensor arena*, which the firmware declares
with a fixed size. `memory_profile` reads a ``.tflite`` file, or converts a
Keras model to the int8 file `mobilenet.export.micro.to_micro` would write,
and reports the flash by dtype, the tensor arena (activations as planned,
plus the interpreter's own records) and the op where activations peak. The
file's analysis lives with the microcontroller export
(`mobilenet.export.micro_memory`); this module is its door for Keras models.

```python
from mobilenet import MobileNetV1
from mobilenet.memory import memory_profile

memory = memory_profile(MobileNetV1(0.25, input_shape=(96, 96, 3), num_classes=2))
print(memory)  # flash by dtype, arena estimate, the peak op
```
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet._validation import invalid
from mobilenet.export.calibration import pixel_input_range
from mobilenet.export.micro_memory import MemoryProfile, OpMemory, greedy_plan, profile_tflite

__all__ = [
    "MemoryProfile",
    "OpMemory",
    "greedy_plan",
    "memory_profile",
    "profile_tflite",
]


def memory_profile(source: Any, *, representative_data: Any = None) -> MemoryProfile:
    """Flash and tensor-arena needs of a model in TensorFlow Lite Micro.

    Args:
        source: a ``.tflite`` file (path or bytes), or a Keras model, which is
            first converted as `mobilenet.export.micro.to_micro` would (int8,
            int8 input and output) to a temporary file.
        representative_data: for a Keras model, calibration images; only the
            graph's shapes matter here, so without them random images in the
            model's input range are used.

    Returns:
        A `MemoryProfile`: ``.flash_bytes``, ``.weight_bytes`` by dtype,
        ``.arena_bytes`` (the estimate to declare), ``.peak_op`` and the
        per-op ``.ops``.

    Raises:
        ValueError: if ``source`` is not a LiteRT flatbuffer or Keras model.

    Example:

    ```python
    from mobilenet import MobileNetV1
    from mobilenet.memory import memory_profile

    model = MobileNetV1(0.25, input_shape=(96, 96, 3), num_classes=2)
    print(memory_profile(model).arena_bytes)
    ```
    """
    import keras

    if isinstance(source, keras.Model):
        return _profile_keras(source, representative_data)
    return profile_tflite(source)


def _profile_keras(model: Any, representative_data: Any) -> MemoryProfile:
    from mobilenet.export.micro import to_micro

    shape = tuple(model.input_shape[1:])
    if any(side is None for side in shape):
        raise invalid("source", "a model with a fixed input size", None,
                      shown=f"a model of input shape {tuple(model.input_shape)}")
    if representative_data is None:
        low, high = pixel_input_range(model) or (-1.0, 1.0)
        representative_data = np.random.default_rng(0).uniform(low, high, (4, *shape)).astype("float32")
    with tempfile.TemporaryDirectory() as folder, _as_if_trained(model):
        # The file `to_micro` writes, without its checks (an untrained model's softmax scale).
        path = to_micro(model, Path(folder) / "model.tflite", representative_data, check=False)
        result = profile_tflite(path, name=model.name)
    return result


@contextlib.contextmanager
def _as_if_trained(model: Any) -> Iterator[None]:
    """``model`` with every constant weight array (a fresh model's zero biases and BatchNorm
    statistics) made varied for a while, then restored.

    The converter shares identical constants between tensors and drops a zero
    bias, and names a folded tensor after fewer ops: an untrained model's file
    comes out some 6% smaller than the same network's once trained. With
    varied values the file is the trained one's size (tests/test_memory.py).
    """
    changed = []
    rng = np.random.default_rng(0)
    for variable in model.weights:
        value = np.asarray(variable.numpy())
        if value.size > 1 and np.all(value == value.flat[0]):
            changed.append((variable, value))
            varied = value + rng.uniform(-0.25, 0.25, value.shape) * max(abs(float(value.flat[0])), 0.1)
            variable.assign(varied.astype(value.dtype))
    try:
        yield
    finally:
        for variable, value in changed:
            variable.assign(value)
