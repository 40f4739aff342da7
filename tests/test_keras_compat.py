"""Tests of `mobilenet._keras_compat`: each wrapped Keras internal still means what we rely on.

These are the tests an upgrade of Keras breaks first if an internal changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from mobilenet import DepthwiseSeparableConv2D
from mobilenet._keras_compat import current_learning_rate, flatten_layers, inbound_nodes, outbound_nodes

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mobilenet"


def test_flatten_layers_reaches_nested_sublayers_once():
    block = DepthwiseSeparableConv2D(8, name="sep")
    shared = keras.layers.Dense(2, name="shared")
    inner = keras.Sequential([keras.Input((4,)), shared], name="inner")
    inputs = keras.Input((6, 6, 3))
    features = keras.layers.GlobalAveragePooling2D(name="pool")(block(inputs))
    x = keras.layers.Dense(4, name="to4")(features)
    model = keras.Model(inputs, [inner(x), shared(x)])
    names = [layer.name for layer in flatten_layers(model)]
    assert {"sep", "sep_dw", "sep_dw_bn", "sep_pw", "sep_pw_bn", "inner", "shared"} <= set(names)
    assert names.count("shared") == 1
    top = [layer.name for layer in flatten_layers(model, recursive=False)]
    assert "sep_dw" not in top and "shared" in top and "inner" in top
    assert next(iter(flatten_layers(model, include_self=True))) is model


def test_nodes_follow_the_functional_graph():
    inputs = keras.Input((4,))
    dense = keras.layers.Dense(3)
    a, b = keras.layers.ReLU(), keras.layers.Softmax()
    a(dense(inputs))
    b(dense(inputs))
    assert len(inbound_nodes(dense)) == 2  # called twice
    assert [node.operation for node in outbound_nodes(dense)] == [a, b]
    assert len(inbound_nodes(keras.layers.Dense(1))) == 0
    assert outbound_nodes(b) == [] and len(inbound_nodes(b)) == 1


def test_current_learning_rate_follows_the_schedule_under_loss_scaling():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    for optimizer in (
        keras.optimizers.SGD(schedule),
        keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(schedule)),
    ):
        assert current_learning_rate(optimizer) == pytest.approx(0.1)
        variable = keras.Variable(np.ones(2, "float32"))
        optimizer.apply_gradients([(keras.ops.ones(2), variable)])
        optimizer.apply_gradients([(keras.ops.ones(2), variable)])
        assert current_learning_rate(optimizer) == pytest.approx(0.025)
    assert current_learning_rate(keras.optimizers.Adam(3e-3)) == pytest.approx(3e-3)


def _keras_private_names() -> set[str]:
    """The private attribute names of Keras' layers, models, optimizers and callbacks."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    objects = [model, model.layers[-1], model.optimizer, keras.callbacks.Callback(),
               keras.layers.BatchNormalization(), keras.layers.Conv2D(1, 1)]
    names = set()
    for obj in objects:
        names |= {n for n in dir(type(obj)) if n.startswith("_") and not n.startswith("__")}
        names |= {n for n in vars(obj) if n.startswith("_") and not n.startswith("__")}
    return names


def test_no_private_keras_name_outside_the_compat_module():
    """Private attributes of Keras objects are reached only through _keras_compat."""
    keras_private = _keras_private_names()
    assert {"_flatten_layers", "_inbound_nodes", "_get_current_learning_rate"} <= keras_private
    private = re.compile(r"\._(?!_)[a-z]\w*")
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name == "_keras_compat.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            names = {match.group()[1:] for match in private.finditer(line)} & keras_private
            if names:
                offenders.append(f"{name}:{number}: {sorted(names)}")
    assert offenders == []
