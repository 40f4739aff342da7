"""`train` never compiles with XLA on a CPU: XLA's CPU depthwise convolution is slow.

On a 2-core AMD EPYC (AVX-512 VNNI), ``jit_compile=True`` trained MobileNet V1
at 224x224 6.5x slower than TensorFlow's own kernels (3.2 against 20.7 img/s),
and Keras' JAX backend, XLA too, ran 3.0 img/s (issue 33, docs/scaling-out.md).
Keras' ``jit_compile="auto"``, which `train` leaves in place, turns XLA off
when TensorFlow sees no GPU; these tests hold `train` to that.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobilenet import cifar10

pytestmark = pytest.mark.tf_only


class _RecordJit(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def on_train_begin(self, logs=None) -> None:
        self.seen.append(self.model.jit_compile)


def _tiny_model() -> keras.Model:
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, strides=4),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is visible")
def test_train_does_not_turn_xla_on_for_a_cpu(tmp_path):
    record = _RecordJit()
    x, y = np.zeros((16, 32, 32, 3), np.uint8), np.arange(16) % 10
    result = cifar10.train(x, y, output_dir=tmp_path, model=_tiny_model(), epochs=1, batch_size=8,
                           validation_fraction=0, verbose=0, extra_callbacks=[record])
    assert record.seen == [False]
    assert result.model.jit_compile is False
