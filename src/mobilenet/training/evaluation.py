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
        predicted: int array ``(n,)``, the class predicted for each image, in
            the evaluated order (a folder's files in `paths` order).
        confidence: float array ``(n,)``, the probability of that class: what
            ``mobilenet predict`` prints first for the same image.
        paths: the image files, for an image folder; else None.
    """

    accuracy: float
    per_class_accuracy: dict[str, float]
    confusion_matrix: np.ndarray = field(repr=False)
    num_examples: int = 0
    class_names: tuple[str, ...] = ()
    top_k: int = 5
    top_k_accuracy: float = float("nan")
    errors: list[Misclassified] = field(default_factory=list, repr=False)
    predicted: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    paths: tuple[str, ...] | None = field(default=None, repr=False)

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
            # Each image's answer, comparable line by line with `mobilenet predict --json`.
            "predictions": [
                {"index": index, "path": None if self.paths is None else self.paths[index],
                 "predicted": self.class_names[int(label)] if self.class_names else int(label),
                 "confidence": float(confidence)}
                for index, (label, confidence) in enumerate(zip(self.predicted, self.confidence))
            ],
        }

    def save_json(self, path: str | os.PathLike) -> Path:
        """Writes the report as JSON (atomically); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))


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


def _classify(classifier: Any, images: np.ndarray, batch_size: int, flip_tta: bool) -> np.ndarray:
    """Class probabilities of ``images`` (the model's input pixels), optionally with flip TTA."""
    probabilities = classifier.predict(images, batch_size=batch_size)
    if flip_tta:
        probabilities = (probabilities + classifier.predict(images[:, :, ::-1], batch_size=batch_size)) / 2
    return probabilities


def _predict_files(classifier: Any, folder: ImageFolder, batch_size: int, flip_tta: bool) -> np.ndarray:
    from mobilenet.preprocessing import file_dataset

    # Decoded a chunk at a time (in parallel by tf.data) through the one evaluation transform
    # (mobilenet.preprocessing), so that each image gets the pixels `mobilenet predict` feeds it,
    # and predicted as arrays, which every strategy splits correctly, also across the workers
    # of a cluster; memory holds one chunk.
    dataset = file_dataset(folder.files, folder.orientations, batch_size=_CHUNK, folder=folder,
                           **classifier.facts.image_options())
    chunks = [_classify(classifier, np.asarray(images), batch_size, flip_tta) for images in dataset]
    return np.concatenate(chunks) if chunks else np.zeros((0, classifier.num_classes), np.float32)


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
    num_threads: int | None = None,
) -> EvaluationReport:
    """Accuracy overall, per class and top-k, the confusion matrix and the worst errors of ``model``.

    The model is run as `mobilenet.predict.Classifier` runs it, and image
    files reach it through the one evaluation transform
    (`mobilenet.preprocessing`: the crop and resize the model's facts ask
    for), so each image gets the probabilities ``mobilenet predict`` prints
    for it, and the accuracy reported is the accuracy of what ``predict``, and
    an app that feeds the file the same way, answers. Images from files are
    pixels, so a model that does not take pixels is refused there rather than
    scored on inputs it was not made for.

    Args:
        model: a Keras classifier (as `train` makes), or the path of a
            ``.keras``, ``.tflite`` (LiteRT) or ``.onnx`` (ONNX Runtime) file,
            or of a microcontroller's C array (TensorFlow Lite Micro).
        x_test: uint8 (or float 0-255) images ``(n, rows, cols, 3)`` with
            ``y_test``, fed as they are when they have the model's input size,
            else brought to it by the evaluation transform (a model taking
            pixels only); or an image folder (the path of ``DIR/<class>/...``,
            or an `ImageFolder`), whose folder names must be the model's classes.
        y_test: int labels ``(n,)`` with arrays; None with a folder.
        batch_size: int >= 1, inference batch size.
        class_names: the names of the classes, in label order. Default: the
            model's own (`mobilenet.facts`), else ``default_class_names``,
            else the indices.
        default_class_names: names to use when the model carries none.
        flip_tta: test-time augmentation: also classify every image flipped
            left-right and average the two probability vectors (twice the
            inference cost). Off by default, so the accuracy is what
            ``mobilenet predict`` gives.
        top_k: int >= 1, the k of ``top_k_accuracy``.
        max_errors: int >= 0, how many misclassified images the report keeps
            (the most confidently wrong).
        num_threads: int or None, the threads of LiteRT or ONNX Runtime for a
            file (None: the runtime's default).

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

    from mobilenet.predict import Classifier

    batch_size = check_positive_int(batch_size, "batch_size")
    top_k = check_positive_int(top_k, "top_k")
    check_bool(flip_tta, "flip_tta")
    if not isinstance(model, (str, os.PathLike, keras.Model)):
        raise invalid("model", "a keras.Model or the path of a .keras, .tflite or .onnx file", model)
    if isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".keras":
        from mobilenet.saving import load_model

        model = load_model(model)
    # Pixels go in as they are (rescale 1): a model that does not take pixels gets arrays
    # unscaled, and is refused for image files below.
    classifier = Classifier(model, num_threads=num_threads, rescale=1.0)
    facts = classifier.facts
    num_classes = facts.num_classes
    paths = None
    if isinstance(x_test, (str, os.PathLike, ImageFolder)):
        if y_test is not None:
            raise invalid("y_test", "None with an image folder (the folders are the labels)", y_test)
        folder = x_test if isinstance(x_test, ImageFolder) else load_image_folder(
            x_test, validation_fraction=0.0, argument="x_test").train
        if facts.class_names is not None and folder.class_names != facts.class_names:
            raise invalid(
                "x_test", f"an image folder with the model's classes {facts.class_names}",
                str(folder.root), shown=f"{str(folder.root)!r} with classes {folder.class_names}",
            )
        if len(folder.class_names) != num_classes:
            raise invalid("x_test", f"an image folder with {num_classes} class folders, one per "
                          "model output", str(folder.root),
                          shown=f"{str(folder.root)!r} with {len(folder.class_names)}")
        if not facts.takes_pixels:
            raise invalid(
                "model", "a model that takes pixels 0-255, to evaluate on image files (as the "
                "models of `train` and MobileNetV1(include_preprocessing=True))",
                getattr(model, "name", str(model)),
            )
        class_names = class_names if class_names is not None else folder.class_names
        probabilities = _predict_files(classifier, folder, batch_size, flip_tta)
        kept = ~np.isin(folder.files, folder.unreadable)  # what the pipeline left out, warned about
        labels, paths = folder.labels[kept], [path for path, keep in zip(folder.files, kept) if keep]
    else:
        images, labels = check_images_and_labels(
            x_test, y_test, num_classes=num_classes, image_shape=(None, None, facts.channels),
            images_argument="x_test", labels_argument="y_test",
        )
        if images.shape[1:3] != facts.input_size:
            if not facts.takes_pixels:
                raise invalid("x_test", f"images of the model's input size {facts.input_size}",
                              None, shown=f"images of {images.shape[1]}x{images.shape[2]}")
            from mobilenet.preprocessing import load_images

            images = load_images(images, **facts.image_options())
        probabilities = _classify(classifier, images, batch_size, flip_tta)
    names = _resolve_names(num_classes, class_names, facts.class_names, default_class_names)
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
        predicted=predicted.astype(np.int64),
        confidence=probabilities[np.arange(len(labels)), predicted].astype(np.float32),
        paths=None if paths is None else tuple(str(path) for path in paths),
    )
