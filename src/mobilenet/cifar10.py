"""CIFAR-10 for MobileNet V1: the data, and the general training and evaluation set up for it.

```python
from mobilenet import cifar10

(x_train, y_train), (x_test, y_test) = cifar10.load_cifar10("../shared/data/cifar10-subset")
result = cifar10.train(x_train[:64], y_train[:64], output_dir="runs/c10", epochs=1, alpha=0.25,
                       verbose=0)
report = cifar10.evaluate(result.model, x_test, y_test)
print(report.accuracy, report.class_names[:2])  # ('airplane', 'automobile')
```

This module is a front door onto `mobilenet.datasets` (the safe reader of
the official python release, `load_cifar10`) and `mobilenet.training` (the
recipe, `train`, `evaluate`), which work on any images: `train` and
`build_model` here default to CIFAR-10's 32x32 images and class names, which
every model it trains carries.

Models from `train` take pixels as they come (0-255, uint8 or float) and
normalise inside, so evaluation, prediction and a phone need no
preprocessing step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mobilenet.datasets.arrays import check_images_and_labels as _check_images_and_labels
from mobilenet.datasets.arrays import split_validation
from mobilenet.datasets.cifar10 import CLASS_NAMES, DATA_DIR_ENV, IMAGE_SHAPE, load_cifar10
from mobilenet.schedules import WarmupCosineDecay
from mobilenet.training.recipe import RECIPE
from mobilenet.training.callbacks import (
    HISTORY_CSV,
    HISTORY_JSON,
    BestCheckpoint,
    HistoryWriter,
    TimeBudget,
    read_history,
)
from mobilenet.training.distribution import STRATEGIES, make_strategy
from mobilenet.training.evaluation import EvaluationReport
from mobilenet.training.evaluation import evaluate as _evaluate
from mobilenet.training.pipeline import make_dataset
from mobilenet.training.plots import plot_confusion_matrix, plot_history, save_plots
from mobilenet.training.trainer import BACKUP_DIR, BEST_MODEL, CUTMIX_MIN_EPOCHS, FINAL_MODEL, TrainResult
from mobilenet.training.trainer import build_model as _build_model
from mobilenet.training.trainer import train as _train

__all__ = [
    "BACKUP_DIR",
    "BEST_MODEL",
    "CLASS_NAMES",
    "CUTMIX_MIN_EPOCHS",
    "DATA_DIR_ENV",
    "FINAL_MODEL",
    "HISTORY_CSV",
    "HISTORY_JSON",
    "IMAGE_SHAPE",
    "STRATEGIES",
    "BestCheckpoint",
    "EvaluationReport",
    "HistoryWriter",
    "TimeBudget",
    "TrainResult",
    "WarmupCosineDecay",
    "build_model",
    "check_images_and_labels",
    "evaluate",
    "load_cifar10",
    "make_dataset",
    "make_strategy",
    "plot_confusion_matrix",
    "plot_history",
    "read_history",
    "save_plots",
    "split_validation",
    "train",
]



def build_model(
    alpha: float = RECIPE.alpha,
    early_downsampling: int = 2,
    dropout: float = RECIPE.dropout,
    num_classes: int = len(CLASS_NAMES),
    bn_momentum: float = RECIPE.bn_momentum,
    shallow: bool = True,
) -> Any:
    """The MobileNet V1 that `train` uses for CIFAR-10's 32x32 images, taking raw pixels.

    `mobilenet.training.build_model` at ``image_size=32``; a 10-class model
    carries CIFAR-10's class names.

    Example:

    ```python
    from mobilenet.cifar10 import build_model

    model = build_model(alpha=0.25)
    ```
    """
    names = CLASS_NAMES if num_classes == len(CLASS_NAMES) else None
    return _build_model(alpha, early_downsampling, dropout, num_classes, bn_momentum, shallow,
                        image_size=IMAGE_SHAPE[0], class_names=names)


def train(x_train: Any, y_train: Any, **kwargs: Any) -> TrainResult:
    """`mobilenet.training.train` on CIFAR-10 arrays; the model carries CIFAR-10's class names.

    Takes every keyword of `mobilenet.training.train` (whose errors name the
    images ``x`` and the labels ``y``). ``class_names`` defaults to
    `CLASS_NAMES` unless a ``model`` of another number of classes is given,
    and ``image_size`` to 32 without a ``model``.

    Example:

    ```python
    from mobilenet.cifar10 import load_cifar10, train

    (x_train, y_train), _ = load_cifar10("../shared/data/cifar10-subset")
    result = train(x_train[:64], y_train[:64], output_dir="runs/tiny", epochs=1, alpha=0.25,
                   verbose=0)
    ```
    """
    model = kwargs.get("model")
    if model is None or model.output_shape[-1] == len(CLASS_NAMES):
        kwargs.setdefault("class_names", CLASS_NAMES)
    if model is None:
        kwargs.setdefault("image_size", IMAGE_SHAPE[0])
    return _train(x_train, y_train, **kwargs)


def evaluate(
    model: Any, x_test: Any, y_test: Any, *, batch_size: int = RECIPE.evaluation_batch_size,
    class_names: Sequence[str] | None = None, flip_tta: bool = False, top_k: int = 5,
) -> EvaluationReport:
    """`mobilenet.training.evaluate` on CIFAR-10 arrays, naming classes after CIFAR-10.

    The model's own class names win where it carries them.

    Example:

    ```python
    from mobilenet.cifar10 import build_model, evaluate, load_cifar10

    _, (x_test, y_test) = load_cifar10("../shared/data/cifar10-subset")
    report = evaluate(build_model(alpha=0.25), x_test[:100], y_test[:100])
    print(f"{report.accuracy:.1%}", report.per_class_accuracy["cat"])
    ```
    """
    import os

    from mobilenet._validation import invalid

    if isinstance(model, (str, os.PathLike)):
        from mobilenet.saving import load_model

        model = load_model(model)
    outputs = getattr(model, "output_shape", None)
    if isinstance(outputs, tuple) and outputs[-1] != len(CLASS_NAMES) and class_names is None:
        raise invalid("model", f"a classifier with {len(CLASS_NAMES)} outputs, one per CIFAR-10 "
                      "class", model, shown=f"a model with output shape {outputs}")
    return _evaluate(model, x_test, y_test, batch_size=batch_size, class_names=class_names,
                     default_class_names=CLASS_NAMES, flip_tta=flip_tta, top_k=top_k)


def check_images_and_labels(
    images: Any, labels: Any, *, num_classes: int | None = len(CLASS_NAMES), **kwargs: Any
) -> tuple[Any, Any]:
    """`mobilenet.datasets.check_images_and_labels`, with CIFAR-10's ten classes by default.

    Example:

    ```python
    import numpy as np
    from mobilenet.cifar10 import check_images_and_labels

    x, y = check_images_and_labels(np.zeros((4, 32, 32, 3), np.uint8), [0, 1, 2, 9])
    ```
    """
    return _check_images_and_labels(images, labels, num_classes=num_classes, **kwargs)
