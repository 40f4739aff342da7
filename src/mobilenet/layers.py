"""Keras layers for MobileNet V1: the depthwise separable block and its 1x1 conv.

This module knows only Keras. Everything in it is registered for Keras
serialization under the ``mobilenet`` package, so models that use these layers
save to ``.keras`` and load back without ``custom_objects``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from mobilenet._validation import (
    check_activation,
    check_choice,
    check_number,
    check_positive_int,
    invalid,
    is_int,
)

__all__ = ["ClassNames", "DepthwiseSeparableConv2D", "PointwiseConv2D"]

_PADDINGS = ("same", "valid")
_POINTWISE_IMPLEMENTATIONS = ("matmul", "conv")


def _positive_int_pair(value: Any, argument: str) -> tuple[int, int]:
    """Normalises an int or a pair of ints, rejecting anything not positive."""
    pair = (value, value) if is_int(value) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(is_int(v) and v > 0 for v in pair):
        raise invalid(argument, "an integer >= 1 or a pair of them", value)
    return int(pair[0]), int(pair[1])


@keras.saving.register_keras_serializable(package="mobilenet")
class PointwiseConv2D(keras.layers.Conv2D):
    """A 1x1 convolution computed as one matrix product over the channel axis.

    Same weights (``kernel`` of shape ``(1, 1, in_channels, filters)`` and an
    optional ``bias``), same arguments and same outputs as
    ``keras.layers.Conv2D(filters, 1)``, so weights move between the two as they
    are. The product is taken as a ``(N*H*W, C) @ (C, F)`` matmul because
    TensorFlow's CPU kernel for the backward pass of a 1x1 ``Conv2D`` is many
    times slower than the same product as a matmul at small spatial sizes.

    ``implementation`` picks how the product is written into the graph; both
    give the same outputs from the same weights. ``"matmul"`` (the default) is
    the fast one in TensorFlow, for training and for Keras inference alike.
    ``"conv"`` writes a plain 1x1 convolution, which the LiteRT converter turns
    into one ``CONV_2D`` op instead of ``FULLY_CONNECTED`` between two
    ``RESHAPE`` ops: the graph phone delegates expect, at the same CPU speed
    (see ``benchmarks/RESULTS.md``), so ``mobilenet.export.to_tflite`` switches
    to it while it converts.

    Args:
        filters: int, the number of output channels.
        implementation: ``"matmul"`` or ``"conv"``, as above. Defaults to
            ``"matmul"``.
        **kwargs: any other ``keras.layers.Conv2D`` argument except
            ``kernel_size``, ``strides``, ``dilation_rate`` and ``groups``
            (all fixed to 1) and ``data_format`` (channels-last only).

    Example:

    ```python
    import keras
    from mobilenet import PointwiseConv2D

    layer = PointwiseConv2D(64, use_bias=False)
    y = layer(keras.random.normal((2, 8, 8, 32)))  # (2, 8, 8, 64)
    ```
    """

    def __init__(self, filters: int, implementation: str = "matmul", **kwargs: Any) -> None:
        check_choice(implementation, "implementation", _POINTWISE_IMPLEMENTATIONS)
        for fixed in ("kernel_size", "strides", "dilation_rate", "groups"):
            value = kwargs.pop(fixed, 1)
            if value not in (1, (1, 1), [1, 1]):
                raise invalid(
                    fixed, "1 (PointwiseConv2D is a 1x1, stride 1, ungrouped convolution)", value
                )
        data_format = kwargs.pop("data_format", None)
        check_choice(data_format, "data_format", (None, "channels_last"))
        kwargs.pop("padding", None)  # irrelevant for a 1x1 kernel
        super().__init__(
            filters, 1, padding="valid", data_format="channels_last", **kwargs
        )
        self.implementation = implementation

    def convolution_op(self, inputs, kernel):
        if self.implementation == "conv":
            return super().convolution_op(inputs, kernel)
        channels = ops.shape(kernel)[-2]
        matrix = ops.reshape(kernel, (channels, self.filters))
        if len(inputs.shape) == 4 and None not in inputs.shape[1:3]:
            # Static spatial size: reshape only the batch axis dynamically.
            _, height, width, _ = inputs.shape
            flat = ops.reshape(inputs, (-1, channels))
            return ops.reshape(ops.matmul(flat, matrix), (-1, height, width, self.filters))
        shape = ops.shape(inputs)
        flat = ops.reshape(inputs, (-1, channels))
        out_shape = (shape[0], shape[1], shape[2], self.filters)
        return ops.reshape(ops.matmul(flat, matrix), out_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for fixed in ("kernel_size", "strides", "dilation_rate", "groups", "padding", "data_format"):
            config.pop(fixed, None)
        config["implementation"] = self.implementation
        return config


@keras.saving.register_keras_serializable(package="mobilenet")
class DepthwiseSeparableConv2D(keras.layers.Layer):
    """The MobileNet depthwise separable block (Howard et al. 2017, Figure 3).

    A ``kernel_size`` depthwise convolution, BatchNorm and activation, then a
    1x1 pointwise convolution to ``filters`` channels, BatchNorm and
    activation. Convolutions that feed a BatchNorm carry no bias; with
    ``use_batch_norm=False`` both convolutions get a bias instead.

    Weights are shaped as Keras keeps them for ``DepthwiseConv2D``
    (``(k, k, C, depth_multiplier)``) and ``Conv2D``
    (``(1, 1, C * depth_multiplier, filters)``), so weights of
    ``keras.applications.MobileNet`` load as they are. The stride sits on the
    depthwise convolution; the pointwise one is always stride 1.

    Args:
        filters: int, output channels of the pointwise convolution.
        kernel_size: int or pair of ints, the depthwise kernel. Defaults to 3.
        strides: int or pair of ints, the depthwise stride. Defaults to 1.
        padding: ``"same"`` or ``"valid"``. Defaults to ``"same"``.
        depth_multiplier: int, depthwise channels per input channel (Keras'
            meaning; not the resolution multiplier). Defaults to 1.
        dilation_rate: int or pair of ints, the depthwise dilation. A rate
            above 1 needs ``strides=1``. Defaults to 1.
        activation: activation after each BatchNorm. Defaults to ``"relu6"``,
            the activation of the released MobileNet models; ``"relu"`` is the
            paper's. ``None`` means linear.
        use_batch_norm: bool, whether to put BatchNorm after each convolution.
            Defaults to True.
        batch_norm_momentum: float in ``[0, 1)``, the momentum of both
            BatchNorms' moving statistics. Defaults to 0.99 (Keras).
        batch_norm_epsilon: float > 0, both BatchNorms' epsilon. Defaults to
            1e-3 (Keras).
        depthwise_initializer: initializer of the depthwise kernel.
        pointwise_initializer: initializer of the pointwise kernel.
        depthwise_regularizer: regularizer of the depthwise kernel (TF-Slim
            leaves it unregularized; so does the default None).
        pointwise_regularizer: regularizer of the pointwise kernel.
        **kwargs: base ``keras.layers.Layer`` arguments such as ``name`` and
            ``dtype``.

    Input shape:
        4D tensor ``(batch, rows, cols, channels)``.

    Output shape:
        4D tensor ``(batch, new_rows, new_cols, filters)``; ``new_rows`` and
        ``new_cols`` follow the depthwise convolution's stride and padding.

    Returns:
        The block's output, a 4D tensor.

    Example:

    ```python
    import keras
    from mobilenet import DepthwiseSeparableConv2D

    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, 3, use_bias=False),
        DepthwiseSeparableConv2D(64),
        DepthwiseSeparableConv2D(128, strides=2),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    ```

    Reference:
        Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
        Mobile Vision Applications", 2017, https://arxiv.org/abs/1704.04861
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int] = 3,
        strides: int | tuple[int, int] = 1,
        padding: str = "same",
        depth_multiplier: int = 1,
        dilation_rate: int | tuple[int, int] = 1,
        activation: Any = "relu6",
        use_batch_norm: bool = True,
        batch_norm_momentum: float = 0.99,
        batch_norm_epsilon: float = 1e-3,
        depthwise_initializer: Any = "glorot_uniform",
        pointwise_initializer: Any = "glorot_uniform",
        depthwise_regularizer: Any = None,
        pointwise_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = check_positive_int(filters, "filters")
        depth_multiplier = check_positive_int(depth_multiplier, "depth_multiplier")
        padding_name = padding.lower() if isinstance(padding, str) else padding
        if padding_name not in _PADDINGS:
            raise invalid("padding", f"one of {_PADDINGS}", padding)
        self.kernel_size = _positive_int_pair(kernel_size, "kernel_size")
        self.strides = _positive_int_pair(strides, "strides")
        self.dilation_rate = _positive_int_pair(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise invalid(
                "dilation_rate",
                "1 when strides is above 1 (a dilation above 1 needs strides=1)",
                dilation_rate,
                shown=f"strides={strides!r}, dilation_rate={dilation_rate!r}",
            )
        self.padding = padding_name
        self.depth_multiplier = depth_multiplier
        self.activation = check_activation(activation)
        self.use_batch_norm = bool(use_batch_norm)
        self.batch_norm_momentum = check_number(
            batch_norm_momentum, "batch_norm_momentum", low=0, high=1
        )
        self.batch_norm_epsilon = check_number(
            batch_norm_epsilon, "batch_norm_epsilon", low=0, low_open=True
        )
        self.depthwise_initializer = keras.initializers.get(depthwise_initializer)
        self.pointwise_initializer = keras.initializers.get(pointwise_initializer)
        self.depthwise_regularizer = keras.regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = keras.regularizers.get(pointwise_regularizer)

        prefix = self.name
        use_bias = not self.use_batch_norm
        self.depthwise = keras.layers.DepthwiseConv2D(
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            depth_multiplier=self.depth_multiplier,
            dilation_rate=self.dilation_rate,
            use_bias=use_bias,
            depthwise_initializer=self.depthwise_initializer,
            depthwise_regularizer=self.depthwise_regularizer,
            dtype=self.dtype_policy,
            name=f"{prefix}_dw",
        )
        self.pointwise = PointwiseConv2D(
            self.filters,
            use_bias=use_bias,
            kernel_initializer=self.pointwise_initializer,
            kernel_regularizer=self.pointwise_regularizer,
            dtype=self.dtype_policy,
            name=f"{prefix}_pw",
        )
        if self.use_batch_norm:
            bn_args = dict(
                momentum=self.batch_norm_momentum,
                epsilon=self.batch_norm_epsilon,
                dtype=self.dtype_policy,
            )
            self.depthwise_bn = keras.layers.BatchNormalization(name=f"{prefix}_dw_bn", **bn_args)
            self.pointwise_bn = keras.layers.BatchNormalization(name=f"{prefix}_pw_bn", **bn_args)
        else:
            self.depthwise_bn = None
            self.pointwise_bn = None

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise invalid(
                "input_shape", f"a 4D input (batch, rows, cols, channels) with known channels "
                f"for layer {self.name!r}", tuple(input_shape),
            )
        self.depthwise.build(input_shape)
        shape = self.depthwise.compute_output_shape(input_shape)
        if self.depthwise_bn is not None:
            self.depthwise_bn.build(shape)
        self.pointwise.build(shape)
        shape = self.pointwise.compute_output_shape(shape)
        if self.pointwise_bn is not None:
            self.pointwise_bn.build(shape)

    def call(self, inputs, training=None):
        x = self.depthwise(inputs)
        if self.depthwise_bn is not None:
            x = self.depthwise_bn(x, training=training)
        x = self.activation(x)
        x = self.pointwise(x)
        if self.pointwise_bn is not None:
            x = self.pointwise_bn(x, training=training)
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        shape = self.depthwise.compute_output_shape(input_shape)
        return (*shape[:-1], self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "depth_multiplier": self.depth_multiplier,
                "dilation_rate": self.dilation_rate,
                "activation": keras.activations.serialize(self.activation),
                "use_batch_norm": self.use_batch_norm,
                "batch_norm_momentum": self.batch_norm_momentum,
                "batch_norm_epsilon": self.batch_norm_epsilon,
                "depthwise_initializer": keras.initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": keras.initializers.serialize(self.pointwise_initializer),
                "depthwise_regularizer": keras.regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": keras.regularizers.serialize(self.pointwise_regularizer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="mobilenet")
class ClassNames(keras.layers.Layer):
    """Passes its input through unchanged and carries the classifier's class names and facts.

    The last layer of the models `mobilenet.training.train` writes: the names
    and the model's declared facts (how to feed it and read it, see
    `mobilenet.facts`) live in the layer's config, so they travel inside the
    ``.keras`` file and come back with the model;
    `mobilenet.class_names.get_class_names` and `mobilenet.facts.read_facts`
    read them. It adds no weight and no computation, and exporters drop it.

    Args:
        names: list of str, one per output, in output order; or None for a
            model that declares facts but has no class names.
        facts: optional dict of the model's declared facts
            (`mobilenet.facts.DECLARED`: ``takes_pixels``, ``crop_fraction``,
            ``interpolation``, ``outputs``, ``quantization_aware``).
        **kwargs: base layer arguments (``name``).

    Example:

    ```python
    import keras
    from mobilenet.layers import ClassNames

    inputs = keras.Input((4,))
    outputs = ClassNames(["cat", "dog"])(keras.layers.Dense(2, activation="softmax")(inputs))
    model = keras.Model(inputs, outputs)
    ```
    """

    def __init__(self, names: Any, facts: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if names is not None:
            if isinstance(names, str) or not all(isinstance(name, str) for name in names):
                raise invalid("names", "a list of class names (str) or None", names)
            if not names:
                raise invalid("names", "at least one class name, or None", names)
        self.names = tuple(names) if names is not None else None
        if facts is not None and not isinstance(facts, dict):
            raise invalid("facts", "a dict of the model's declared facts, or None", facts)
        self.facts = dict(facts or {})
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        if self.names is not None and input_shape[-1] is not None \
                and input_shape[-1] != len(self.names):
            raise invalid(
                "names", f"one name per output ({input_shape[-1]} outputs)", self.names,
                shown=f"{len(self.names)} names",
            )
        super().build(input_shape)

    def call(self, inputs: Any) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["names"] = list(self.names) if self.names is not None else None
        if self.facts:
            config["facts"] = dict(self.facts)
        return config
