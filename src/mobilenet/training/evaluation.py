"""Evaluating a classifier: accuracy overall, per class and top-k, the confusion matrix, the worst errors."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet._files import atomic_write_text
from mobilenet._validation import check_bool, check_positive_int, invalid
from mobilenet.datasets.arrays import check_images_and_labels
from mobilenet.datasets.image_folder import ImageFolder, load_image_folder
from mobilenet.training.recipe import RECIPE

__all__ = ["EvaluationReport", "Misclassified", "evaluate"]

#: Images from files decoded and predicted at a time.
_CHUNK = 1024


@dataclass(frozen=True)
class Misclassified:
    """An image the model got wrong: which, its true class, and what the model said.

    Attributes:
        index: its position in the evaluated data.
        path: its file, for an image folder; else None.
        label: its true class name.
        predicted: the predicted class name.
        confidence: the probability of the predicted class.
        label_probability: the probability the model gave the true class.
    """

    index: int
    path: str | None
    label: str
    predicted: str
    confidence: float
    label_probability: float


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
        class_names: the class names, label order.
        top_k: the k of `top_k_accuracy`.
        top_k_accuracy: the share of images whose class is among the k most
            probable.
        errors: the misclassified images, the most confidently wrong first.
    """

    accuracy: float
    per_class_accuracy: dict[str, float]
    confusion_matrix: np.ndarray = field(repr=False)
    num_examples: int = 0
    class_names: tuple[str, ...] = ()
    top_k: int = 5
    top_k_accuracy: float = float("nan")
    errors: list[Misclassified] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the report."""
        return {
            "accuracy": self.accuracy,
            f"top_{self.top_k}_accuracy": self.top_k_accuracy,
            "per_class_accuracy": self.per_class_accuracy,
            "class_names": list(self.class_names),
            "confusion_matrix": self.confusion_matrix.tolist(),
            "num_examples": self.num_examples,
            "errors": [vars(error) for error in self.errors],
        }

    def save_json(self, path: str | os.PathLike) -> Path:
        """Writes the report as JSON (atomically); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))


def _model_names(model: Any) -> tuple[str, ...] | None:
    from mobilenet.class_names import get_class_names

    return get_class_names(model)


def _resolve_names(
    num_classes: int, class_names: Sequence[str] | None, model_names: tuple[str, ...] | None,
    default: Sequence[str] | None,
) -> tuple[str, ...]:
    if class_names is not None:
        names = tuple(class_names)
        if len(names) != num_classes:
            raise invalid("class_names", f"one name per class ({num_classes})", class_names,
                          shown=f"{len(names)} names")
        return names
    for names in (model_names, default):
        if names is not None and len(names) == num_classes:
            return tuple(names)
    return tuple(str(index) for index in range(num_classes))


def _predict_files(model: Any, folder: ImageFolder, batch_size: int, flip_tta: bool) -> np.ndarray:
    from mobilenet.training.pipeline import make_file_dataset

    size = model.input_shape[1]
    if size is None or model.input_shape[2] != size:
        raise invalid("model", "a model with a square input of fixed size (to size the images "
                      "from files for it)", model, shown=f"a model with input shape {model.input_shape}")
    # Decoded a chunk at a time (prefetched by tf.data) and predicted as arrays, which every
    # strategy splits correctly, also across the workers of a cluster; memory holds one chunk.
    dataset = make_file_dataset(folder, image_size=int(size), batch_size=_CHUNK,
                                num_classes=int(model.output_shape[-1]))
    chunks = []
    for images, _ in dataset:
        images = np.asarray(images)
        probabilities = model.predict(images, batch_size=batch_size, verbose=0)
        if flip_tta:
            flipped = model.predict(images[:, :, ::-1], batch_size=batch_size, verbose=0)
            probabilities = (probabilities + flipped) / 2
        chunks.append(probabilities)
    return np.concatenate(chunks)


def evaluate(
    model: Any,
    x_test: Any,
    y_test: Any = None,
    *,
    batch_size: int = RECIPE.evaluation_batch_size,
    class_names: Sequence[str] | None = None,
    default_class_names: Sequence[str] | None = None,
    flip_tta: bool = False,
    top_k: int = 5,
    max_errors: int = 100,
) -> EvaluationReport:
    """Accuracy overall, per class and top-k, the confusion matrix and the worst errors of ``model``.

    The images go to the model as pixels 0-255: models from `train`
    normalise inside, so this is what the model does for anyone who calls
    ``model.predict`` on the same images. Images from files are pixels, so a
    model that does not take pixels (its first layer no ``Rescaling``) is
    refused there rather than scored on inputs it was not made for.

    Args:
        model: a Keras classifier taking pixels (as `train` makes), or the
            path of a ``.keras`` file (loaded with `mobilenet.load_model`).
        x_test: uint8 (or float 0-255) images ``(n, rows, cols, 3)`` with
            ``y_test``; or an image folder (the path of ``DIR/<class>/...``,
            or an `ImageFolder`), whose files are sized to the model's input
            (central crop above 64 px) and whose folder names must be the
            model's classes.
        y_test: int labels ``(n,)`` with arrays; None with a folder.
        batch_size: int >= 1, inference batch size.
        class_names: the names of the classes, in label order. Default: the
            model's own (`mobilenet.class_names`), else
            ``default_class_names``, else the indices.
        default_class_names: names to use when the model carries none.
        flip_tta: test-time augmentation: also classify every image flipped
            left-right and average the two probability vectors (twice the
            inference cost). Off by default, so the accuracy is what
            ``model.predict`` gives.
        top_k: int >= 1, the k of ``top_k_accuracy``.
        max_errors: int >= 0, how many misclassified images the report keeps
            (the most confidently wrong).

    Returns:
        An `EvaluationReport`.

    Example:

    ```python
    from mobilenet.datasets import load_cifar10
    from mobilenet.training import build_model, evaluate

    _, (x_test, y_test) = load_cifar10("../shared/data/cifar10-subset")
    report = evaluate(build_model(alpha=0.25), x_test[:100], y_test[:100])
    print(f"{report.accuracy:.1%} top-5 {report.top_k_accuracy:.1%}")
    ```
    """
    import keras

    from mobilenet.export import pixel_input_range

    batch_size = check_positive_int(batch_size, "batch_size")
    top_k = check_positive_int(top_k, "top_k")
    check_bool(flip_tta, "flip_tta")
    if isinstance(model, (str, os.PathLike)):
        from mobilenet.saving import load_model

        model = load_model(model)
    if not isinstance(model, keras.Model):
        raise invalid("model", "a keras.Model or the path of a .keras file", model)
    outputs = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if outputs is None:
        raise invalid("model", "a classifier with one output of class probabilities", model,
                      shown=f"a model with output shape {model.output_shape}")
    num_classes = int(outputs)
    model_names = _model_names(model)
    paths = None
    if isinstance(x_test, (str, os.PathLike, ImageFolder)):
        if y_test is not None:
            raise invalid("y_test", "None with an image folder (the folders are the labels)", y_test)
        folder = x_test if isinstance(x_test, ImageFolder) else load_image_folder(
            x_test, validation_fraction=0.0, argument="x_test").train
        if model_names is not None and folder.class_names != model_names:
            raise invalid(
                "x_test", f"an image folder with the model's classes {model_names}",
                str(folder.root), shown=f"{str(folder.root)!r} with classes {folder.class_names}",
            )
        if len(folder.class_names) != num_classes:
            raise invalid("x_test", f"an image folder with {num_classes} class folders, one per "
                          "model output", str(folder.root),
                          shown=f"{str(folder.root)!r} with {len(folder.class_names)}")
        if pixel_input_range(model) is None:
            raise invalid(
                "model", "a model that takes pixels 0-255, to evaluate on image files (its "
                "first layer a Rescaling, as the models of `train` and "
                "MobileNetV1(include_preprocessing=True))", model.name,
            )
        class_names = class_names if class_names is not None else folder.class_names
        probabilities = _predict_files(model, folder, batch_size, flip_tta)
        kept = ~np.isin(folder.files, folder.unreadable)  # what the pipeline left out, warned about
        labels, paths = folder.labels[kept], [path for path, keep in zip(folder.files, kept) if keep]
    else:
        image_shape = tuple(model.input_shape[1:]) if isinstance(model.input_shape, tuple) else None
        images, labels = check_images_and_labels(
            x_test, y_test, num_classes=num_classes, image_shape=image_shape,
            images_argument="x_test", labels_argument="y_test",
        )
        probabilities = model.predict(images, batch_size=batch_size, verbose=0)
        if flip_tta:
            flipped = model.predict(images[:, :, ::-1], batch_size=batch_size, verbose=0)
            probabilities = (probabilities + flipped) / 2
    names = _resolve_names(num_classes, class_names, model_names, default_class_names)
    return _report(np.asarray(probabilities), np.asarray(labels), names, top_k, paths, max_errors)


def _report(
    probabilities: np.ndarray, labels: np.ndarray, names: tuple[str, ...], top_k: int,
    paths: Sequence[str] | None, max_errors: int,
) -> EvaluationReport:
    num_classes = len(names)
    predicted = np.argmax(probabilities, axis=-1)
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    totals = matrix.sum(axis=1)
    per_class = {
        name: float(matrix[i, i] / totals[i]) if totals[i] else float("nan")
        for i, name in enumerate(names)
    }
    k = min(top_k, num_classes)
    # The true class is in the top k when fewer than k classes score above it.
    true_scores = probabilities[np.arange(len(labels)), labels]
    in_top_k = (probabilities > true_scores[:, None]).sum(axis=1) < k
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:max_errors]
    errors = [
        Misclassified(
            index=int(i), path=None if paths is None else str(paths[i]), label=names[labels[i]],
            predicted=names[predicted[i]], confidence=float(probabilities[i, predicted[i]]),
            label_probability=float(true_scores[i]),
        )
        for i in wrong
    ]
    count = max(1, int(matrix.sum()))
    return EvaluationReport(
        accuracy=float(np.trace(matrix) / count),
        per_class_accuracy=per_class,
        confusion_matrix=matrix,
        num_examples=int(matrix.sum()),
        class_names=names,
        top_k=top_k,
        top_k_accuracy=float(in_top_k.sum() / count) if len(labels) else float("nan"),
        errors=errors,
    )
