"""CIFAR-10 for MobileNet V1: safe loading, a tf.data pipeline, training and evaluation.

```python
from mobilenet import cifar10

(x_train, y_train), (x_test, y_test) = cifar10.load_cifar10("../shared/data/cifar10-subset")
result = cifar10.train(x_train[:64], y_train[:64], output_dir="runs/c10", epochs=1, alpha=0.25,
                       verbose=0)
report = cifar10.evaluate(result.model, x_test, y_test)
print(report.accuracy)
```

The package is split by concern, and every public name is importable from
``mobilenet.cifar10`` itself:

- `data`: the safe reader of the official python release (`load_cifar10`),
  `split_validation` and `check_images_and_labels`;
- `pipeline`: `make_dataset`, the tf.data input pipeline;
- `training`: `train`, `build_model`, `make_strategy`, and `callbacks` for
  the history files, the best checkpoint and a time budget;
- `evaluation`: `evaluate` and its `EvaluationReport`;
- `plots`: curves and confusion matrices (the optional ``plot`` extra).

Models from `train` take pixels as they come (0-255, uint8 or float) and
normalise inside, so evaluation, prediction and a phone need no
preprocessing step.
"""

from __future__ import annotations

from mobilenet.cifar10.callbacks import (
    HISTORY_CSV,
    HISTORY_JSON,
    BestCheckpoint,
    HistoryWriter,
    TimeBudget,
    read_history,
)
from mobilenet.cifar10.data import (
    CLASS_NAMES,
    DATA_DIR_ENV,
    IMAGE_SHAPE,
    check_images_and_labels,
    load_cifar10,
    split_validation,
)
from mobilenet.cifar10.evaluation import EvaluationReport, evaluate
from mobilenet.cifar10.pipeline import make_dataset
from mobilenet.cifar10.plots import plot_confusion_matrix, plot_history, save_plots
from mobilenet.cifar10.training import (
    BACKUP_DIR,
    BEST_MODEL,
    CUTMIX_MIN_EPOCHS,
    FINAL_MODEL,
    STRATEGIES,
    TrainResult,
    build_model,
    make_strategy,
    train,
)
from mobilenet.schedules import WarmupCosineDecay

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
