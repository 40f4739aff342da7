"""Small pixel-taking models for the export, ONNX and predict tests.

Both take pixels 0-255 through a ``Rescaling`` first layer, as the models
`mobilenet train` writes do (``MobileNetV1(include_preprocessing=True)``).
"""

from __future__ import annotations

import importlib.util

import keras

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
