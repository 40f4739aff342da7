"""Training and evaluating MobileNet V1 on any images: the recipe, the pipelines, `train`, `evaluate`.

```python notest
import dataclasses

from mobilenet.training import RECIPE, train

recipe = dataclasses.replace(RECIPE, freeze_epochs=3, epochs=20, image_size=160)
result = train("photos/", output_dir="runs/photos", recipe=recipe, weights="imagenet")
```

The package is split by concern; the names below are importable from
``mobilenet.training`` itself (loaded on first use, so that importing the
package, as ``mobilenet train --help`` does, loads no TensorFlow):

- `recipe`: `Recipe` and `RECIPE`, every knob of `train`;
- `data`: `load_data` (an image folder or CIFAR-10), `prepare_data`: arrays, image
  folders and datasets made into pipelines;
- `pipeline`: the ``tf.data`` pipelines (`make_dataset`, `make_file_dataset`);
- `distribution`: strategies (`make_strategy`), the chief, each worker's shard;
- `callbacks`: history files, the best checkpoint, a time budget;
- `trainer`: `train`, `build_model`, `TrainResult`;
- `evaluation`: `evaluate` and its `EvaluationReport`;
- `plots`: curves and confusion matrices (the optional ``plot`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobilenet._lazy import lazy_exports

# Public name -> module that defines it.
_EXPORTS = {
    "RECIPE": "mobilenet.training.recipe",
    "Recipe": "mobilenet.training.recipe",
    "BACKUP_DIR": "mobilenet.training.trainer",
    "BEST_MODEL": "mobilenet.training.trainer",
    "CUTMIX_MIN_EPOCHS": "mobilenet.training.trainer",
    "FINAL_MODEL": "mobilenet.training.trainer",
    "HEAD_MODEL": "mobilenet.training.trainer",
    "FLOAT_MODEL": "mobilenet.training.trainer",
    "RUN_JSON": "mobilenet.training.trainer",
    "TrainResult": "mobilenet.training.trainer",
    "build_model": "mobilenet.training.trainer",
    "compile_model": "mobilenet.training.trainer",
    "fit_verbosity": "mobilenet.training.trainer",
    "MAX_IMAGE_SIZE": "mobilenet.training.recipe",
    "ArraySplits": "mobilenet.training.data",
    "load_data": "mobilenet.training.data",
    "train": "mobilenet.training.trainer",
    "STRATEGIES": "mobilenet.training.distribution",
    "make_strategy": "mobilenet.training.distribution",
    "free_ports": "mobilenet.training.distribution",
    "HISTORY_CSV": "mobilenet.training.callbacks",
    "HISTORY_JSON": "mobilenet.training.callbacks",
    "BestCheckpoint": "mobilenet.training.callbacks",
    "HistoryWriter": "mobilenet.training.callbacks",
    "TimeBudget": "mobilenet.training.callbacks",
    "read_history": "mobilenet.training.callbacks",
    "make_dataset": "mobilenet.training.pipeline",
    "make_file_dataset": "mobilenet.training.pipeline",
    "make_image_dataset": "mobilenet.training.pipeline",
    "EvaluationReport": "mobilenet.training.evaluation",
    "evaluate": "mobilenet.training.evaluation",
    "plot_confusion_matrix": "mobilenet.training.plots",
    "plot_history": "mobilenet.training.plots",
    "save_plots": "mobilenet.training.plots",
    "WarmupCosineDecay": "mobilenet.schedules",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mobilenet.schedules import WarmupCosineDecay
    from mobilenet.training.callbacks import (
        HISTORY_CSV,
        HISTORY_JSON,
        BestCheckpoint,
        HistoryWriter,
        TimeBudget,
        read_history,
    )
    from mobilenet.training.distribution import STRATEGIES, free_ports, make_strategy
    from mobilenet.training.evaluation import EvaluationReport, evaluate
    from mobilenet.training.pipeline import make_dataset, make_file_dataset, make_image_dataset
    from mobilenet.training.plots import plot_confusion_matrix, plot_history, save_plots
    from mobilenet.training.recipe import RECIPE, Recipe
    from mobilenet.training.trainer import (
        BACKUP_DIR,
        BEST_MODEL,
        CUTMIX_MIN_EPOCHS,
        FINAL_MODEL,
        FLOAT_MODEL,
        HEAD_MODEL,
        RUN_JSON,
        TrainResult,
        build_model,
        compile_model,
        fit_verbosity,
        train,
    )
    from mobilenet.training.data import ArraySplits, load_data
    from mobilenet.training.recipe import MAX_IMAGE_SIZE


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
