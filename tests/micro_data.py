"""The microcontroller tests' stand-in for Visual Wake Words: vehicles against animals.

MLPerf Tiny's VWW task (person or not, 96x96) has no data here, so the tests
and docs use the CIFAR-10 subset's two super-classes instead: airplane,
automobile, ship and truck (label 1) against the six animals (label 0),
upsampled to 96x96 pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: CIFAR-10 labels of the vehicle classes.
VEHICLES = (0, 1, 8, 9)


def vehicles_vs_animals(
    data_dir: Path, size: int = 96, train: int | None = None, test: int | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((x_train, y_train), (x_test, y_test))``: float32 pixels at ``size``, labels 0/1."""
    import keras

    from mobilenet.cifar10 import load_cifar10

    (x_train, y_train), (x_test, y_test) = load_cifar10(data_dir)

    def prepare(images: np.ndarray, labels: np.ndarray, limit: int | None):
        images, labels = images[:limit], labels[:limit]
        resized = keras.ops.convert_to_numpy(
            keras.ops.image.resize(images.astype("float32"), (size, size))
        )
        return np.clip(resized, 0, 255), np.isin(labels, VEHICLES).astype("int64")

    return prepare(x_train, y_train, train), prepare(x_test, y_test, test)
