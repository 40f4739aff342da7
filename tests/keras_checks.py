"""A small layer/model check built on keras.saving's public functions."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


def assert_save_load_round_trip(model: keras.Model, x: np.ndarray, path: Path) -> keras.Model:
    """Saves ``model`` to ``.keras``, loads it back, and checks outputs and config match.

    Loads without ``custom_objects``: the library's layers must be registered.
    """
    expected = np.asarray(model(x, training=False))
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(restored(x, training=False)), expected, rtol=1e-6, atol=1e-6)
    assert len(restored.weights) == len(model.weights)
    for ours, theirs in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    return restored
