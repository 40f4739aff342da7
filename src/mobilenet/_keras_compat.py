"""Every private Keras attribute the package touches, each behind one small function.

Keras 3 keeps a few things we need without a public name. Using them anywhere
else in the package would spread a dependency on Keras internals that may
change in any release; here each use sits in one function whose comment says
which public API is missing, so an upgrade that breaks one breaks it in one
place, and the oldest-Keras CI run (``.ci/run``) catches it.

Nothing here changes the objects it is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when called: the registering modules import this one (see _registration)
    import keras

__all__ = [
    "current_learning_rate",
    "flatten_layers",
    "inbound_nodes",
    "outbound_nodes",
]


def flatten_layers(
    layer: keras.layers.Layer, *, include_self: bool = False, recursive: bool = True
) -> Iterator[keras.layers.Layer]:
    """The layers tracked inside ``layer`` (each once), depth first in creation order.

    Missing public API: Keras 3 lists a model's direct children as
    ``Model.layers``, but has no public way to list the sublayers of a plain
    ``Layer`` (such as `DepthwiseSeparableConv2D`'s convolutions and
    BatchNorms) or to recurse into nested layers and models. ``Layer``'s own
    ``_flatten_layers`` does both.

    Args:
        layer: any Keras layer or model.
        include_self: whether to yield ``layer`` itself first.
        recursive: whether to descend into sublayers of sublayers.
    """
    yield from layer._flatten_layers(include_self=include_self, recursive=recursive)


def inbound_nodes(layer: keras.layers.Layer) -> list[Any]:
    """The graph nodes at which ``layer`` was called (one per call on symbolic inputs).

    Missing public API: Keras 3 records the functional graph on each operation
    but exposes no public accessor for the nodes; ``layer.input`` raises when
    there is none and hides how many there are (a shared layer has several).
    """
    return list(layer._inbound_nodes)


def outbound_nodes(layer: keras.layers.Layer) -> list[Any]:
    """The graph nodes that consume ``layer``'s outputs; each node's ``operation`` is the consumer.

    Missing public API: as for `inbound_nodes`; Keras 3 has no public way to
    find which layers read a layer's output.
    """
    return list(layer._outbound_nodes)


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate the optimizer's next step uses, as a float.

    With a ``LearningRateSchedule`` it is the schedule's value at the
    optimizer's current iteration. This needs no private call: the public
    ``optimizer.learning_rate`` property already evaluates the schedule (Keras
    3 documents it only as the optimizer's learning rate, so it lives here,
    beside the internals, with a test that holds it to that meaning). The
    private ``optimizer._get_current_learning_rate()`` is deliberately not
    used: on a ``LossScaleOptimizer`` (mixed precision) it returns 0.0, while
    the property forwards to the wrapped optimizer.

    Args:
        optimizer: a Keras optimizer, ``LossScaleOptimizer`` included.

    Returns:
        The current learning rate.

    Example:

    ```python
    import keras
    from mobilenet._keras_compat import current_learning_rate

    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)
    optimizer = keras.optimizers.SGD(schedule)
    current_learning_rate(optimizer)  # 0.1, then 0.05 after one step
    ```
    """
    import keras

    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
