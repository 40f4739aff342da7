"""BatchNorm folding: an inference-only copy of a model with every BatchNorm merged into its conv.

It changes a model's graph and writes no file, so it lives beside the model
code; `mobilenet.export` re-exports `fold_batchnorm`, and ``mobilenet export
--fold-bn`` folds before writing a file.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from mobilenet._keras_compat import flatten_layers, inbound_nodes, outbound_nodes
from mobilenet._validation import invalid
from mobilenet.layers import DepthwiseSeparableConv2D

__all__ = ["as_functional", "fold_batchnorm"]

_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _bn_scale_shift(bn: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel ``(scale, shift)`` that BN applies at inference, in float64."""
    mean = np.asarray(bn.moving_mean, np.float64)
    variance = np.asarray(bn.moving_variance, np.float64)
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return scale, beta - mean * scale


def _folded(conv: keras.layers.Layer, bn: keras.layers.BatchNormalization) -> list[np.ndarray]:
    """``[kernel, bias]`` of ``conv`` with ``bn`` folded in (float32)."""
    scale, shift = _bn_scale_shift(bn)
    kernel = np.asarray(conv.kernel, np.float64)
    bias = np.asarray(conv.bias, np.float64) if conv.use_bias else np.zeros_like(scale)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # Output channel c * depth_multiplier + m comes from kernel[..., c, m].
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * scale
    return [kernel.astype(np.float32), (bias * scale + shift).astype(np.float32)]


def _foldable_bn(conv: keras.layers.Layer, bn: Any) -> bool:
    """Whether ``bn`` is a BatchNorm over the channel axis of ``conv``'s output."""
    if not isinstance(bn, keras.layers.BatchNormalization):
        return False
    channels_last = getattr(conv, "data_format", "channels_last") == "channels_last"
    rank = len(bn.input.shape) if inbound_nodes(bn) else 4
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    if axis is None:
        return False
    return channels_last and axis % rank == rank - 1 and (
        getattr(conv, "activation", None) in (None, keras.activations.linear)
    )


def _conv_bn_pairs(model: keras.Model) -> dict[int, keras.layers.Layer]:
    """Maps ``id(conv)`` to the BatchNorm that alone consumes its only output."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, _CONVS) or len(inbound_nodes(layer)) != 1:
            continue
        consumers = outbound_nodes(layer)
        if len(consumers) != 1:
            continue
        bn = consumers[0].operation
        if _foldable_bn(layer, bn) and len(inbound_nodes(bn)) == 1:
            pairs[id(layer)] = bn
    return pairs


def as_functional(model: keras.Model) -> keras.Model:
    """``model`` as a functional model whose layer graph can be followed and rewritten.

    A built Sequential becomes the functional model of its one input and
    output; a subclassed model, which has no graph, is refused with an error
    that says so.
    """
    if not isinstance(model, keras.Model):
        raise invalid("model", "a keras.Model", model)
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise invalid(
                "model",
                "a Sequential model built on a keras.Input (the layer graph is followed)",
                model,
                shown="an unbuilt Sequential",
            )
        # One input and one output, unwrapped, so the copy is called as the Sequential was.
        return keras.Model(model.inputs[0], model.outputs[0], name=model.name)
    if not isinstance(model, keras.Function):
        # keras.Function is the public base class of functional models: the ones with a graph.
        raise invalid(
            "model",
            "a functional or Sequential model (the layer graph is followed)",
            model,
            shown=f"a subclassed {type(model).__name__}",
        )
    return model


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """An inference-only copy of ``model`` with BatchNorm folded into the convs.

    At inference a BatchNorm is a per-channel affine map, ``y = scale * x +
    shift`` with ``scale = gamma / sqrt(moving_variance + epsilon)`` and
    ``shift = beta - moving_mean * scale``, so it merges into the convolution
    before it: the kernel's output channels are multiplied by ``scale`` and
    the bias becomes ``bias * scale + shift``. This is done for every
    ``Conv2D`` or ``DepthwiseConv2D`` (``PointwiseConv2D`` included) whose only
    consumer is a channels-last BatchNorm, and inside every
    `DepthwiseSeparableConv2D` (which becomes the same block with
    ``use_batch_norm=False``, that is with biased convolutions). ``Dropout``
    layers, identities at inference, are dropped too. Everything else is
    copied with its weights. The arithmetic is done in float64, so outputs
    match the original model's inference outputs within float32 rounding.

    The copy is for inference and export only: it has no BatchNorm to train.

    Args:
        model: keras.Model, a functional (or built Sequential) model. Nested
            models are copied as they are, without folding inside them.

    Returns:
        A new functional keras.Model with fewer layers and fewer weights.

    Example:

    ```python
    import numpy as np
    from mobilenet import MobileNetV1
    from mobilenet.folding import fold_batchnorm

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10)
    folded = fold_batchnorm(model)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    ```
    """
    model = as_functional(model)
    pairs = _conv_bn_pairs(model)
    folded_bns = {id(bn) for bn in pairs.values()}
    originals: dict[int, keras.layers.Layer] = {}  # id(new layer) -> old layer

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if id(layer) in folded_bns or isinstance(layer, keras.layers.Dropout):
            return layer  # never called: `call` below passes its input through
        config = layer.get_config()
        if id(layer) in pairs:
            config["use_bias"] = True
        elif isinstance(layer, DepthwiseSeparableConv2D) and layer.use_batch_norm:
            config["use_batch_norm"] = False
        new = layer.__class__.from_config(config)
        originals[id(new)] = layer
        return new

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        if id(layer) in folded_bns or isinstance(layer, keras.layers.Dropout):
            return args[0]
        kwargs.pop("training", None)
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for new in flatten_layers(folded, recursive=False):
        old = originals.get(id(new))
        if old is None:
            continue
        if id(old) in pairs:
            new.set_weights(_folded(old, pairs[id(old)]))
        elif isinstance(old, DepthwiseSeparableConv2D) and old.use_batch_norm:
            for part, bn in (("depthwise", old.depthwise_bn), ("pointwise", old.pointwise_bn)):
                getattr(new, part).set_weights(_folded(getattr(old, part), bn))
        else:
            new.set_weights(old.get_weights())
    return folded
