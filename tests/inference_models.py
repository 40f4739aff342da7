"""Small pixel-taking models for the export, ONNX, predict and class-name tests.

Both take pixels 0-255 through a ``Rescaling`` first layer, as the models
`mobilenet train` writes do (``MobileNetV1(include_preprocessing=True)``).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import keras
import numpy as np

from mobilenet import DepthwiseSeparableConv2D, MobileNetV1


def has_onnx() -> bool:
    """Whether the optional ``onnx`` extra is installed."""
    return all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "tf2onnx"))


def pixel_mobilenet(num_classes: int = 10) -> keras.Model:
    """MobileNetV1 (alpha 0.25, 32x32) behind a Rescaling to [-1, 1]: 27 convolutions."""
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Rescaling(1 / 127.5, offset=-1),
        MobileNetV1(alpha=0.25, input_shape=(32, 32, 3), num_classes=num_classes),
    ], name="pixel_mobilenet")


def tiny_pixel_cnn(num_classes: int = 10) -> keras.Model:
    """A stem conv and one depthwise separable block: converts in a second or two."""
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Rescaling(1 / 127.5, offset=-1),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        DepthwiseSeparableConv2D(16, strides=2),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ], name="tiny_pixel_cnn")


@functools.lru_cache(maxsize=1)
def trained_cifar_mobilenet(data_dir: Path) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """A pixel MobileNet (alpha 0.25, shallow) trained 6 epochs on the real CIFAR-10 subset.

    About 30% test accuracy, with 70% of the test images at a float top-1
    margin of at least 0.1: trained enough that its answers are not near ties
    (an untrained model's are, and int8 agreement with it means nothing).
    Trained once per test process (about 40 s on 2 cores); tests that use it
    share one xdist group. Returns ``(model, calibration_images, test_images)``:
    300 training images and the 1,000 test images, as pixels.
    """
    from mobilenet.cifar10 import load_cifar10

    (x_train, y_train), (x_test, _) = load_cifar10(data_dir)
    keras.utils.set_random_seed(0)
    model = MobileNetV1(alpha=0.25, input_shape=(32, 32, 3), num_classes=10,
                        include_preprocessing=True, shallow=True, early_downsampling=2,
                        batch_norm_momentum=0.9)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=64, epochs=6, verbose=0)
    return model, x_train[:300], x_test
