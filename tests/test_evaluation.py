"""Tests of `mobilenet.training.evaluate` on arrays, and of `mobilenet.training.plots`."""

from __future__ import annotations

import sys

import keras
import numpy as np
import pytest

import functools

from mobilenet import training
from mobilenet.datasets import CIFAR10_CLASS_NAMES

#: Evaluation as `mobilenet evaluate` does it on CIFAR-10: classes named after CIFAR-10's.
evaluate = functools.partial(training.evaluate, default_class_names=CIFAR10_CLASS_NAMES)

def _fixed_predictions(predicted: list[int]) -> tuple[keras.Model, np.ndarray]:
    """A model that predicts the class written in each image's first pixel, and those images."""
    images = np.zeros((len(predicted), 32, 32, 3), np.uint8)
    images[:, 0, 0, 0] = predicted
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(
        lambda x: keras.ops.one_hot(keras.ops.cast(x[:, 0, 0, 0], "int32"), 10)
    )(inputs)
    return keras.Model(inputs, outputs), images


def test_evaluate_by_hand():
    y_true = np.array([0, 0, 0, 1, 1, 2, 9, 9])
    predicted = [0, 0, 1, 1, 1, 9, 9, 2]
    model, images = _fixed_predictions(predicted)
    report = evaluate(model, images, y_true)
    assert report.accuracy == pytest.approx(5 / 8)
    assert report.per_class_accuracy["airplane"] == pytest.approx(2 / 3)
    assert report.per_class_accuracy["automobile"] == 1.0
    assert report.per_class_accuracy["bird"] == 0.0
    assert report.per_class_accuracy["truck"] == 0.5
    assert np.isnan(report.per_class_accuracy["cat"])  # no cat in the set
    expected = np.zeros((10, 10), int)
    for t, p in zip(y_true, predicted):
        expected[t, p] += 1
    np.testing.assert_array_equal(report.confusion_matrix, expected)
    assert report.num_examples == 8


def test_flip_tta_averages_the_image_and_its_mirror():
    # The model weighs three pixels of row 0: column 0 by 0.5, column 1 by 0.2,
    # column 31 by 0.3 (each votes for the class written in it). The image has
    # class 1 at column 0, class 2 at column 1 and class 3 at columns 30 and 31.
    # As it is: 0.5 for class 1, 0.3 for class 3 -> 1. Mirrored, class 3 sits at
    # columns 0 and 1 (0.7) and class 1 at column 31 (0.3). Average: class 3 gets
    # (0.3 + 0.7) / 2 = 0.5, class 1 (0.5 + 0.3) / 2 = 0.4 -> 3.
    def votes(x):
        vote = [keras.ops.one_hot(keras.ops.cast(x[:, 0, c, 0], "int32"), 10) for c in (0, 1, 31)]
        return 0.5 * vote[0] + 0.2 * vote[1] + 0.3 * vote[2]

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Lambda(votes)(inputs))
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, 0, [0, 1, 30, 31], 0] = [1, 2, 3, 3]
    assert evaluate(model, image, [1]).accuracy == 1.0
    assert evaluate(model, image, [3], flip_tta=True).accuracy == 1.0
    with pytest.raises(ValueError, match="`flip_tta`: expected True or False"):
        evaluate(model, image, [3], flip_tta="yes")


def test_plots_are_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    history = [{"epoch": 1, "loss": 2.0, "accuracy": 0.2, "val_loss": 2.1, "val_accuracy": 0.15},
               {"epoch": 2, "loss": 1.5, "accuracy": 0.4, "val_loss": 1.8, "val_accuracy": 0.3}]
    model, images = _fixed_predictions([0, 1])
    report = evaluate(model, images, np.array([0, 2]))
    written = training.save_plots(history, report, tmp_path)
    assert sorted(p.name for p in written) == ["confusion.png", "curves.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "curves.png"]  # no temp left


def test_plots_without_matplotlib_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert training.save_plots([{"epoch": 1, "loss": 1.0}], None, tmp_path) == []
    with pytest.raises(ImportError, match=r"mobilenet\[plot\]"):
        training.plot_history([{"epoch": 1, "loss": 1.0}], tmp_path / "curves.png")


def test_evaluate_rejects_labels_outside_the_models_classes():
    model, images = _fixed_predictions([0, 1])
    with pytest.raises(ValueError, match=r"`y_test`.*0..9"):
        evaluate(model, images, np.array([0, 12]))


def test_evaluate_a_missing_or_corrupt_file_says_which(tmp_path):
    images = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(FileNotFoundError, match="no such file"):
        evaluate(tmp_path / "absent.keras", images, np.array([0, 1]))
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        evaluate(corrupt, images, np.array([0, 1]))
