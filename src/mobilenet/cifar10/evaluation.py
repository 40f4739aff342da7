"""Evaluating a CIFAR-10 classifier: overall and per-class accuracy, the confusion matrix."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet._files import atomic_write_text
from mobilenet._validation import check_bool, check_positive_int, invalid
from mobilenet.cifar10.data import CLASS_NAMES, check_images_and_labels

__all__ = ["EvaluationReport", "evaluate"]


@dataclass
class EvaluationReport:
    """What `evaluate` returns.

    Attributes:
        accuracy: float in [0, 1], the share of images classified right.
        per_class_accuracy: class name -> accuracy on that class's images
            (NaN for a class with no images).
        confusion_matrix: ``(classes, classes)`` ints; ``[i, j]`` counts
            images of class i predicted as class j.
        num_examples: int, how many images were evaluated.
    """

    accuracy: float
    per_class_accuracy: dict[str, float]
    confusion_matrix: np.ndarray = field(repr=False)
    num_examples: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the report."""
        return {
            "accuracy": self.accuracy,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion_matrix": self.confusion_matrix.tolist(),
            "num_examples": self.num_examples,
        }

    def save_json(self, path: str | os.PathLike) -> Path:
        """Writes the report as JSON (atomically); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))


def evaluate(
    model: Any,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    batch_size: int = 256,
    class_names: tuple[str, ...] = CLASS_NAMES,
    flip_tta: bool = False,
) -> EvaluationReport:
    """Overall and per-class accuracy and the confusion matrix of ``model`` on a test set.

    The images go to the model as they are, pixels 0-255: models from
    `train` normalise inside, so this is exactly what the model does for
    anyone who calls ``model.predict`` on the same images.

    Args:
        model: a Keras classifier taking pixels (as `train` makes), or the
            path of a ``.keras`` file (loaded with `mobilenet.load_model`).
        x_test: uint8 (or float 0-255) images ``(n, rows, cols, 3)``.
        y_test: int labels ``(n,)``.
        batch_size: int >= 1, inference batch size.
        class_names: the names of the classes, in label order.
        flip_tta: test-time augmentation: also classify every image flipped
            left-right and average the two probability vectors (twice the
            inference cost). Off by default, so the accuracy is what
            ``model.predict`` gives; `train` augments with the same flips.

    Returns:
        An `EvaluationReport`.

    Example:

    ```python
    from mobilenet.cifar10 import build_model, evaluate, load_cifar10

    _, (x_test, y_test) = load_cifar10("../shared/data/cifar10-subset")
    report = evaluate(build_model(alpha=0.25), x_test[:100], y_test[:100])
    print(f"{report.accuracy:.1%}", report.per_class_accuracy["cat"])
    ```
    """
    import keras

    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(model, (str, os.PathLike)):
        from mobilenet.saving import _load_model

        model = _load_model(model, compile=False, argument="model")
    if not isinstance(model, keras.Model):
        raise invalid("model", "a keras.Model or the path of a .keras file", model)
    num_classes = len(class_names)
    outputs = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if outputs != num_classes:
        raise invalid(
            "model", f"a classifier with {num_classes} outputs, one per class", model,
            shown=f"a model with output shape {model.output_shape}",
        )
    image_shape = tuple(model.input_shape[1:]) if isinstance(model.input_shape, tuple) else None
    images, labels = check_images_and_labels(
        x_test, y_test, num_classes=num_classes, image_shape=image_shape,
        images_argument="x_test", labels_argument="y_test",
    )
    check_bool(flip_tta, "flip_tta")
    probabilities = model.predict(images, batch_size=batch_size, verbose=0)
    if flip_tta:
        flipped = model.predict(images[:, :, ::-1], batch_size=batch_size, verbose=0)
        probabilities = (probabilities + flipped) / 2
    predicted = np.argmax(probabilities, axis=-1)
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    totals = matrix.sum(axis=1)
    per_class = {
        name: float(matrix[i, i] / totals[i]) if totals[i] else float("nan")
        for i, name in enumerate(class_names)
    }
    return EvaluationReport(
        accuracy=float(np.trace(matrix) / max(1, matrix.sum())),
        per_class_accuracy=per_class,
        confusion_matrix=matrix,
        num_examples=int(matrix.sum()),
    )
