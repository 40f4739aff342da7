"""A small quantization-aware pixel model, trained a few steps, for the QAT export tests."""

from __future__ import annotations

import keras
import numpy as np

from mobilenet import DepthwiseSeparableConv2D
from mobilenet.quantization import quantize_aware


def trained_pixel_qat() -> tuple[keras.Model, np.ndarray]:
    """Rescaling, conv + BatchNorm + ReLU6, the block, pooling and a softmax classifier,
    made quantization-aware and fitted 2 epochs on 96 random 16x16 pixel images.

    Returns the QAT model and the images (float32 pixels).
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, -1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = DepthwiseSeparableConv2D(16)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax")(x)
    qat = quantize_aware(keras.Model(inputs, outputs), freeze_batch_norm_after=3,
                         freeze_ranges_after=4)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (96, 16, 16, 3)).astype("float32")
    labels = (pixels.mean(axis=(1, 2)).argmax(axis=1) + (pixels[:, 0, 0, 0] > 128)) % 5
    qat.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    qat.fit(pixels, labels, batch_size=16, epochs=2, verbose=0)
    return qat, pixels
