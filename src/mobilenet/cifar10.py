"""CIFAR-10: its arrays, class names and image shape.

```python
from mobilenet import cifar10

(x_train, y_train), (x_test, y_test) = cifar10.load_cifar10("../shared/data/cifar10-subset")
cifar10.CLASS_NAMES[:2], cifar10.IMAGE_SHAPE  # (('airplane', 'automobile'), (32, 32, 3))
```

CIFAR-10 trains through the one door every dataset takes,
`mobilenet.training.train`: pass its arrays with ``class_names=CLASS_NAMES``
(or its folder, read by `mobilenet.training.load_data`, which names the
classes itself), and evaluate with `mobilenet.training.evaluate`. The
reader itself is `mobilenet.datasets.load_cifar10`.

`train` and `evaluate` here are deprecated: README and the docs showed them
before that door existed, so they still work, with a ``DeprecationWarning``
saying which call replaces them.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from mobilenet.datasets.cifar10 import CLASS_NAMES, DATA_DIR_ENV, IMAGE_SHAPE, load_cifar10

__all__ = ["CLASS_NAMES", "DATA_DIR_ENV", "IMAGE_SHAPE", "evaluate", "load_cifar10", "train"]


def train(x_train: Any, y_train: Any, **kwargs: Any) -> Any:
    """Deprecated: `mobilenet.training.train` on ``(x_train, y_train)`` with ``class_names=CLASS_NAMES``.

    The knobs the old call took as keywords (``epochs=``, ``alpha=``...) go
    into the recipe: ``recipe=dataclasses.replace(RECIPE, epochs=...)``.
    """
    from mobilenet.training import RECIPE
    from mobilenet.training import train as train_
    from mobilenet.training.recipe import KNOBS

    warnings.warn(
        "mobilenet.cifar10.train is deprecated: call mobilenet.training.train((x, y), "
        "class_names=cifar10.CLASS_NAMES, recipe=dataclasses.replace(RECIPE, ...))",
        DeprecationWarning, stacklevel=2,
    )
    knobs = {name: kwargs.pop(name) for name in KNOBS if name in kwargs}
    recipe = dataclasses.replace(kwargs.pop("recipe", RECIPE), **knobs)
    model = kwargs.get("model")
    if model is None or model.output_shape[-1] == len(CLASS_NAMES):
        kwargs.setdefault("class_names", CLASS_NAMES)
    return train_((x_train, y_train), recipe=recipe, **kwargs)


def evaluate(model: Any, x_test: Any, y_test: Any, **kwargs: Any) -> Any:
    """Deprecated: `mobilenet.training.evaluate`, naming classes after CIFAR-10 where the model names none."""
    from mobilenet.training import evaluate as evaluate_

    warnings.warn(
        "mobilenet.cifar10.evaluate is deprecated: call mobilenet.training.evaluate (a model "
        "from train carries its class names; else pass default_class_names=cifar10.CLASS_NAMES)",
        DeprecationWarning, stacklevel=2,
    )
    kwargs.setdefault("default_class_names", CLASS_NAMES)
    return evaluate_(model, x_test, y_test, **kwargs)
