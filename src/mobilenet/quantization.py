"""Quantization-aware training (QAT): Keras 3 models that train with simulated int8.

`quantize_aware` rewrites a model so that every forward pass computes what an
int8 LiteRT file computes, in float: each convolution and dense layer uses
weights rounded to 255 levels per output channel (symmetric, narrow range),
with the BatchNorm that follows it folded in first, so that the folded weights
are the ones rounded; each activation is rounded to 256 levels over a range
learned during training. Training then adapts the weights to the rounding,
which is how int8 files keep the float model's accuracy (Jacob et al., 2018,
"Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference"; Krishnamoorthi, 2018, "Quantizing deep
convolutional networks for efficient inference: A whitepaper").

The rounding is ``keras.quantizers.fake_quant_with_min_max_vars``, whose
gradient passes straight through inside the range. BatchNorm is folded as in
the whitepaper: while its statistics still move, the convolution runs once in
float to get the batch's mean and variance, the weights folded with the moving
variance are rounded, and the output is rescaled to what BatchNorm would give
on the batch; after ``freeze_batch_norm_after`` steps the moving statistics
are frozen and the layer computes exactly what it computes at inference.
Activation ranges are moving averages of each batch's min and max until
``freeze_ranges_after`` steps, then fixed.

`export_graph` turns a trained QAT model into the float graph the LiteRT
converter quantizes without calibration data: plain convolutions holding the
folded weights already on their int8 grid, each followed by a FakeQuant of
constant range, so the file's scales and zero points are the learned ones
(`mobilenet.export.to_tflite` does this by itself for a QAT model).

The QAT layers are TensorFlow-backend layers: the frozen/moving switch of
BatchNorm is a ``keras.ops.cond`` that assigns variables, which only
TensorFlow's graphs allow; int8 export is TensorFlow's anyway.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from mobilenet._keras_compat import flatten_layers, outbound_nodes
from mobilenet._validation import check_bool, check_number, check_positive_int, invalid
# The module, not its names: the registration hook may import this module while
# mobilenet.layers is half-run (see mobilenet._registration).
from mobilenet import layers

__all__ = [
    "ActivationQuantizer",
    "QuantizedConv",
    "QuantizedDense",
    "export_graph",
    "has_per_tensor_weights",
    "is_quantize_aware",
    "quantize_aware",
]

#: int8 levels: activations use all 256 (asymmetric), weights 255 (symmetric, "narrow range").
_BITS = 8
#: Softmax and sigmoid outputs have LiteRT's fixed int8 range: [0, 1) in steps of 1/256.
_UNIT_RANGE = (0.0, 255.0 / 256.0)
#: Activations a LiteRT convolution or fully-connected op computes itself (fused).
_FUSABLE = ("linear", "relu", "relu6")
#: Layers that keep their input's quantization (LiteRT gives their output the input's scale).
_RANGE_KEEPING = (
    keras.layers.Dropout,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.MaxPooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
)
#: Layers whose output gets a learned range.
_REQUANTIZING = (
    keras.layers.GlobalAveragePooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.Add,
    keras.layers.Concatenate,
)


def _activation_name(activation: Any) -> str | None:
    """``"linear"``, ``"relu"`` or ``"relu6"`` for an activation LiteRT fuses, else None."""
    name = getattr(activation, "__name__", None)
    return name if name in _FUSABLE else None


def _fake_quant_weights(kernel: Any, channel_axes: int, per_channel: bool = True) -> Any:
    """``kernel`` rounded to 255 symmetric levels, per output channel or over the whole tensor.

    The last ``channel_axes`` axes are the output channels (two for a
    depthwise kernel, ``(in_channels, depth_multiplier)``); the range of each
    channel is ``[-max|w|, max|w|]``, so zero is exact and the grid step is
    ``max|w| / 127``: LiteRT's per-channel int8 weights. ``per_channel``
    False takes one range for the whole kernel, as accelerators that only
    have per-tensor weights need.
    """
    if not per_channel:
        bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(kernel)), 1e-12))
        return keras.quantizers.fake_quant_with_min_max_vars(
            kernel, -bound, bound, num_bits=_BITS, narrow_range=True)
    shape = ops.shape(kernel)
    flat = ops.reshape(kernel, (-1, int(np.prod(kernel.shape[-channel_axes:]))))
    bound = ops.maximum(ops.max(ops.abs(flat), axis=0), 1e-12)
    bound = ops.stop_gradient(bound)
    rounded = keras.quantizers.fake_quant_with_min_max_vars(
        flat, -bound, bound, num_bits=_BITS, narrow_range=True, axis=-1
    )
    return ops.reshape(rounded, shape)


@keras.saving.register_keras_serializable(package="mobilenet")
class ActivationQuantizer(keras.layers.Layer):
    """Rounds a tensor to 256 levels over a range learned in training (or a fixed one).

    In training, the range follows the batches' min and max as a moving
    average (the first batch sets it) until ``freeze_after`` steps, then
    stays. At inference it is used as it is; before any training step there
    is no range, and the layer rounds nothing. The range always contains
    zero, so zero is exact, as int8 needs.

    Args:
        fixed_range: ``(low, high)``, a range that is never learned (a pixel
            input's ``(0, 255)``, a softmax output's), or None to learn it.
        momentum: float in [0, 1), the moving average's weight of the old range.
            Defaults to 0.99.
        freeze_after: int or None, the number of training steps after which
            the range stops moving; None never freezes it.

    Example:

    ```python
    import numpy as np
    from mobilenet.quantization import ActivationQuantizer

    quantizer = ActivationQuantizer(fixed_range=(0.0, 6.0))
    x = np.array([[0.0, 0.01, 3.0, 7.0]], "float32")
    print(np.asarray(quantizer(x)))  # 6/255 steps, clipped at 6
    ```
    """

    def __init__(
        self,
        fixed_range: tuple[float, float] | None = None,
        momentum: float = 0.99,
        freeze_after: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if fixed_range is not None:
            try:
                low, high = (float(value) for value in fixed_range)
            except (TypeError, ValueError):
                low = high = float("nan")
            if not low <= 0.0 <= high or low == high:
                raise invalid("fixed_range", "None or (low, high) with low <= 0 <= high, low < high",
                              fixed_range)
            fixed_range = (low, high)
        self.fixed_range = fixed_range
        self.momentum = check_number(momentum, "momentum", low=0, high=1, high_open=True)
        self.freeze_after = None if freeze_after is None else check_positive_int(
            freeze_after, "freeze_after")

    def build(self, input_shape: Any) -> None:
        if self.fixed_range is None:
            self.range_min = self.add_weight(name="range_min", shape=(), initializer="zeros",
                                             trainable=False)
            self.range_max = self.add_weight(name="range_max", shape=(), initializer="zeros",
                                             trainable=False)
            self.steps = self.add_weight(name="steps", shape=(), dtype="int64",
                                         initializer="zeros", trainable=False)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if self.fixed_range is not None:
            low, high = self.fixed_range
            return keras.quantizers.fake_quant_with_min_max_vars(inputs, low, high, num_bits=_BITS)
        if training:
            self._observe(inputs)
        low, high = self._bounds(self.range_min, self.range_max)
        rounded = keras.quantizers.fake_quant_with_min_max_vars(
            inputs, ops.stop_gradient(low), ops.stop_gradient(high), num_bits=_BITS
        )
        # A range not learned yet (no training step so far) rounds nothing.
        return ops.where(ops.greater(self.steps, 0), rounded, inputs)

    def _observe(self, inputs: Any) -> None:
        values = ops.stop_gradient(ops.cast(inputs, "float32"))
        batch_min, batch_max = ops.min(values), ops.max(values)
        first = ops.equal(self.steps, 0)
        moving = True if self.freeze_after is None else ops.less(self.steps, self.freeze_after)
        for variable, batch in ((self.range_min, batch_min), (self.range_max, batch_max)):
            average = self.momentum * variable + (1.0 - self.momentum) * batch
            updated = ops.where(first, batch, average)
            variable.assign(ops.where(moving, updated, variable))
        self.steps.assign_add(ops.cast(moving, "int64"))

    @staticmethod
    def _bounds(low: Any, high: Any) -> tuple[Any, Any]:
        """The range actually used: it contains zero and is never empty."""
        low = ops.minimum(low, 0.0)
        high = ops.maximum(ops.maximum(high, 0.0), low + 1e-6)
        return low, high

    def quantization_range(self) -> tuple[float, float]:
        """The ``(low, high)`` this layer rounds over now, as LiteRT gets it at export."""
        if self.fixed_range is not None:
            return self.fixed_range
        if int(ops.convert_to_numpy(self.steps)) == 0:
            raise invalid("model", "a quantization-aware model trained for at least one step "
                          "(its activation ranges are learned in training)", self.name,
                          shown=f"the range of {self.name!r}, never learned")
        low, high = self._bounds(ops.convert_to_tensor(self.range_min),
                                 ops.convert_to_tensor(self.range_max))
        return float(ops.convert_to_numpy(low)), float(ops.convert_to_numpy(high))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "fixed_range": self.fixed_range,
            "momentum": self.momentum,
            "freeze_after": self.freeze_after,
        })
        return config


class _QuantizedWeightsLayer(keras.layers.Layer):
    """What `QuantizedConv` and `QuantizedDense` share: a fused activation and an output quantizer."""

    def __init__(
        self,
        activation: str = "linear",
        per_channel: bool = True,
        range_momentum: float = 0.99,
        freeze_ranges_after: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if activation not in _FUSABLE:
            raise invalid("activation", f"one of {_FUSABLE}", activation)
        self.activation = activation
        self.per_channel = bool(per_channel)
        self.range_momentum = range_momentum
        self.freeze_ranges_after = freeze_ranges_after
        self.output_quantizer = ActivationQuantizer(
            momentum=range_momentum, freeze_after=freeze_ranges_after, name=f"{self.name}_range"
        )

    def _activate(self, outputs: Any, training: bool | None) -> Any:
        if self.activation == "relu":
            outputs = ops.relu(outputs)
        elif self.activation == "relu6":
            outputs = ops.relu6(outputs)
        return self.output_quantizer(outputs, training=training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "activation": self.activation,
            "per_channel": self.per_channel,
            "range_momentum": self.range_momentum,
            "freeze_ranges_after": self.freeze_ranges_after,
        })
        return config


@keras.saving.register_keras_serializable(package="mobilenet")
class QuantizedConv(_QuantizedWeightsLayer):
    """A convolution with its BatchNorm folded in, trained with int8-rounded weights.

    ``kind`` ``"conv"`` is a ``Conv2D`` (a 1x1 one is computed as a matrix
    product, as `PointwiseConv2D` does), ``"depthwise"`` a
    ``DepthwiseConv2D``. With ``batch_norm``, the layer holds the BatchNorm's
    ``gamma``, ``beta`` and moving statistics, and the weights that get rounded
    are ``kernel * gamma / sqrt(moving_variance + epsilon)``; see the module's
    docstring for the training-time correction and ``freeze_batch_norm_after``.
    After the activation (``"linear"``, ``"relu"`` or ``"relu6"``, as LiteRT
    fuses them), an `ActivationQuantizer` rounds the output.

    `quantize_aware` builds these from a model's layers; `folded_weights`
    gives the kernel (on its int8 grid) and bias a plain convolution needs to
    compute the same at inference.
    """

    def __init__(
        self,
        kind: str,
        filters: int | None = None,
        kernel_size: tuple[int, int] = (1, 1),
        strides: tuple[int, int] = (1, 1),
        padding: str = "valid",
        dilation_rate: tuple[int, int] = (1, 1),
        depth_multiplier: int = 1,
        use_bias: bool = False,
        batch_norm: bool = True,
        batch_norm_momentum: float = 0.99,
        batch_norm_epsilon: float = 1e-3,
        freeze_batch_norm_after: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind not in ("conv", "depthwise"):
            raise invalid("kind", "'conv' or 'depthwise'", kind)
        if kind == "conv" and filters is None:
            raise invalid("filters", "an integer >= 1 for kind='conv'", filters)
        self.kind = kind
        self.filters = filters
        self.kernel_size = tuple(kernel_size)
        self.strides = tuple(strides)
        self.padding = padding
        self.dilation_rate = tuple(dilation_rate)
        self.depth_multiplier = depth_multiplier
        self.use_bias = bool(use_bias)
        self.batch_norm = bool(batch_norm)
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_epsilon = batch_norm_epsilon
        self.freeze_batch_norm_after = freeze_batch_norm_after

    def build(self, input_shape: Any) -> None:
        channels = int(input_shape[-1])
        if self.kind == "conv":
            kernel_shape = (*self.kernel_size, channels, self.filters)
            outputs = self.filters
        else:
            kernel_shape = (*self.kernel_size, channels, self.depth_multiplier)
            outputs = channels * self.depth_multiplier
        self.kernel = self.add_weight(name="kernel", shape=kernel_shape)
        self.bias = self.add_weight(name="bias", shape=(outputs,), initializer="zeros") \
            if self.use_bias else None
        if self.batch_norm:
            self.gamma = self.add_weight(name="gamma", shape=(outputs,), initializer="ones")
            self.beta = self.add_weight(name="beta", shape=(outputs,), initializer="zeros")
            self.moving_mean = self.add_weight(name="moving_mean", shape=(outputs,),
                                               initializer="zeros", trainable=False)
            self.moving_variance = self.add_weight(name="moving_variance", shape=(outputs,),
                                                   initializer="ones", trainable=False)
            self.steps = self.add_weight(name="steps", shape=(), dtype="int64",
                                         initializer="zeros", trainable=False)
        self.output_quantizer.build(self.compute_output_shape(input_shape))

    def _convolve(self, inputs: Any, kernel: Any) -> Any:
        if self.kind == "depthwise":
            return ops.depthwise_conv(inputs, kernel, self.strides, self.padding,
                                      dilation_rate=self.dilation_rate)
        if self.kernel_size == (1, 1) and self.strides == (1, 1):
            return ops.matmul(inputs, kernel[0, 0])  # TensorFlow's 1x1 conv backward is slow
        return ops.conv(inputs, kernel, self.strides, self.padding,
                        dilation_rate=self.dilation_rate)

    def _per_output(self, values: Any) -> Any:
        """A per-output-channel vector shaped to multiply the kernel."""
        if self.kind == "depthwise":
            return ops.reshape(values, self.kernel.shape[-2:])
        return values

    def _inference_scale_shift(self) -> tuple[Any, Any]:
        """BatchNorm on its moving statistics as ``scale * conv + shift`` (bias included)."""
        bias = self.bias if self.use_bias else 0.0
        if not self.batch_norm:
            return None, bias
        scale = self.gamma / ops.sqrt(self.moving_variance + self.batch_norm_epsilon)
        return scale, self.beta + (bias - self.moving_mean) * scale

    def _rounded_kernel(self) -> Any:
        scale, _ = self._inference_scale_shift()
        kernel = self.kernel if scale is None else self.kernel * self._per_output(scale)
        return _fake_quant_weights(kernel, 2 if self.kind == "depthwise" else 1, self.per_channel)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        kernel = self._rounded_kernel()
        _, shift = self._inference_scale_shift()
        if not (training and self.batch_norm):
            outputs = self._convolve(inputs, kernel) + shift
            return self._activate(outputs, training)

        # Jacob et al.'s folding while the statistics move: the weights folded with the
        # moving variance are rounded, and the output is rescaled to BatchNorm on this
        # batch. Once frozen, the layer computes what it computes at inference. Both
        # are computed and one is picked (a cond would double the graph's tracing time).
        float_outputs = self._convolve(inputs, self.kernel)
        if self.use_bias:
            float_outputs = float_outputs + self.bias
        mean, variance = ops.moments(float_outputs, axes=[0, 1, 2])
        deviation = ops.sqrt(variance + self.batch_norm_epsilon)
        moving_deviation = ops.sqrt(self.moving_variance + self.batch_norm_epsilon)
        bias = self.bias if self.use_bias else 0.0
        moving = True if self.freeze_batch_norm_after is None else ops.less(
            self.steps, self.freeze_batch_norm_after)
        correction = ops.where(moving, moving_deviation / deviation, 1.0)
        offset = ops.where(moving, self.beta + self.gamma * (bias - mean) / deviation, shift)
        outputs = self._convolve(inputs, kernel) * correction + offset
        momentum = self.batch_norm_momentum
        for variable, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            updated = momentum * variable + (1 - momentum) * ops.stop_gradient(batch)
            variable.assign(ops.where(moving, updated, variable))
        self.steps.assign_add(ops.cast(moving, "int64"))
        return self._activate(outputs, training)

    def folded_weights(self) -> list[np.ndarray]:
        """``[kernel, bias]`` of a plain biased convolution that computes this layer at inference.

        The kernel is on its int8 grid already, so LiteRT's per-channel
        quantization of it gives back exactly the integers trained with.
        """
        _, shift = self._inference_scale_shift()
        kernel = ops.convert_to_numpy(self._rounded_kernel()).astype(np.float32)
        outputs = kernel.shape[-1] if self.kind == "conv" else int(np.prod(kernel.shape[-2:]))
        bias = np.broadcast_to(ops.convert_to_numpy(ops.convert_to_tensor(shift)), (outputs,))
        return [kernel, bias.astype(np.float32)]

    def compute_output_shape(self, input_shape: Any) -> Any:
        if self.kind == "depthwise":
            probe = keras.layers.DepthwiseConv2D(
                self.kernel_size, self.strides, self.padding,
                depth_multiplier=self.depth_multiplier, dilation_rate=self.dilation_rate)
        else:
            probe = keras.layers.Conv2D(self.filters, self.kernel_size, self.strides,
                                        self.padding, dilation_rate=self.dilation_rate)
        return probe.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "kind": self.kind,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "depth_multiplier": self.depth_multiplier,
            "use_bias": self.use_bias,
            "batch_norm": self.batch_norm,
            "batch_norm_momentum": self.batch_norm_momentum,
            "batch_norm_epsilon": self.batch_norm_epsilon,
            "freeze_batch_norm_after": self.freeze_batch_norm_after,
        })
        return config


@keras.saving.register_keras_serializable(package="mobilenet")
class QuantizedDense(_QuantizedWeightsLayer):
    """A ``Dense`` layer trained with int8-rounded weights (per output unit) and output.

    `quantize_aware` builds these from a model's ``Dense`` layers (a
    non-fusable activation, such as softmax, becomes a layer of its own).
    """

    def __init__(self, units: int, use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int(units, "units")
        self.use_bias = bool(use_bias)

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.units))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros") \
            if self.use_bias else None
        self.output_quantizer.build(self.compute_output_shape(input_shape))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        outputs = ops.matmul(inputs, _fake_quant_weights(self.kernel, 1, self.per_channel))
        if self.use_bias:
            outputs = outputs + self.bias
        return self._activate(outputs, training)

    def folded_weights(self) -> list[np.ndarray]:
        """``[kernel, bias]`` of a plain ``Dense`` that computes this layer at inference."""
        kernel = ops.convert_to_numpy(
            _fake_quant_weights(self.kernel, 1, self.per_channel)).astype(np.float32)
        bias = ops.convert_to_numpy(self.bias) if self.use_bias else np.zeros(self.units)
        return [kernel, bias.astype(np.float32)]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"units": self.units, "use_bias": self.use_bias})
        return config


def is_quantize_aware(model: keras.Model) -> bool:
    """Whether ``model`` holds QAT layers (made by `quantize_aware`), nested models included."""
    qat = (ActivationQuantizer, QuantizedConv, QuantizedDense)
    return any(isinstance(layer, qat) for layer in flatten_layers(model, include_self=True))


def has_per_tensor_weights(model: keras.Model) -> bool:
    """Whether a QAT model rounds its weights per tensor (``quantize_aware(per_channel=False)``)."""
    return any(isinstance(layer, _QuantizedWeightsLayer) and not layer.per_channel
               for layer in flatten_layers(model, include_self=True))


def _only_consumer(layer: keras.layers.Layer) -> Any:
    """The one layer that reads ``layer``'s output, or None when there are none or several."""
    consumers = outbound_nodes(layer)
    return consumers[0].operation if len(consumers) == 1 else None


def _fusable_activation(layer: Any) -> str | None:
    """``"relu"``/``"relu6"``/``"linear"`` if ``layer`` is an activation layer LiteRT fuses."""
    if isinstance(layer, keras.layers.Activation):
        return _activation_name(layer.activation)
    if isinstance(layer, keras.layers.ReLU):
        plain = float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0
        if plain and layer.max_value is None:
            return "relu"
        if plain and layer.max_value is not None and float(layer.max_value) == 6.0:
            return "relu6"
    return None


class _Rewriter:
    """Builds the QAT copy of a functional model, layer call by layer call."""

    def __init__(self, model: keras.Model, options: dict[str, Any]) -> None:
        self.options = options
        self.first_layer = next(
            (layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)),
            None)
        # A model takes pixels (0-255) when it starts with a Rescaling, as
        # `mobilenet.export.pixel_input_range` says too.
        self.pixel_input = isinstance(self.first_layer, keras.layers.Rescaling)
        self.absorbed: set[int] = set()  # BatchNorms and activations folded into a QuantizedConv
        self.batch_norms: dict[int, Any] = {}  # id(conv) -> its BatchNorm
        self.activations: dict[int, str] = {}  # id(conv or dense) -> fused activation layer's name
        self.inputs: set[int] = set()  # ids of the copy's input tensors
        self.quantized_inputs: dict[int, Any] = {}
        self.float_layers: list[str] = []
        self.copies: dict[int, keras.layers.Layer] = {}  # id(copy) -> original
        for layer in model.layers:
            self._plan(layer)

    def _plan(self, layer: keras.layers.Layer) -> None:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                  keras.layers.Dense)):
            return
        last = layer
        if not isinstance(layer, keras.layers.Dense) and _activation_name(layer.activation) == \
                "linear":
            bn = _only_consumer(layer)
            if _is_channel_batch_norm(bn):
                self.batch_norms[id(layer)] = bn
                self.absorbed.add(id(bn))
                last = bn
        if last is layer and _activation_name(layer.activation) != "linear":
            return
        following = _only_consumer(last)
        name = _fusable_activation(following)
        if name is not None and name != "linear":
            self.activations[id(layer)] = name
            self.absorbed.add(id(following))

    def clone(self, layer: keras.layers.Layer) -> keras.layers.Layer:
        if id(layer) in self.absorbed or _handled(layer):
            return layer  # `call` builds its quantized form
        copy = layer.__class__.from_config(layer.get_config())
        self.copies[id(copy)] = layer
        return copy

    def call(self, layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        args = tuple(self._quantize_input(arg) for arg in args)
        if id(layer) in self.absorbed:
            return args[0]  # folded into the QuantizedConv that produced it
        if _handled(layer):
            return self._quantized(layer, args[0])
        original = self.copies[id(layer)]
        if isinstance(original, keras.layers.Rescaling):
            return self._rescaling(original, args[0])
        outputs = layer(*args, **kwargs)
        if isinstance(original, (*_RANGE_KEEPING, layers.ClassNames)):
            return outputs
        if isinstance(original, _REQUANTIZING):
            return self._quantizer(original)(outputs)
        if isinstance(original, (keras.layers.Activation, keras.layers.Softmax)):
            return self._quantizer(original, _activation_range(original))(outputs)
        reason = "it has no int8 form here" if not isinstance(
            original, keras.layers.BatchNormalization) else "a BatchNorm that follows no convolution"
        self.float_layers.append(f"{original.name} ({type(original).__name__}: {reason})")
        return outputs

    def _quantizer(self, original: keras.layers.Layer, fixed: Any = None) -> ActivationQuantizer:
        return ActivationQuantizer(
            fixed_range=fixed, momentum=self.options["range_momentum"],
            freeze_after=self.options["freeze_ranges_after"], name=f"{original.name}_range",
            dtype="float32")

    def _quantize_input(self, tensor: Any) -> Any:
        """A model input gets its own quantizer, once: (0, 255) fixed for pixel models."""
        key = id(tensor)
        if key not in self.inputs:
            return tensor
        if key not in self.quantized_inputs:
            fixed = (0.0, 255.0) if self.pixel_input else None
            quantizer = ActivationQuantizer(
                fixed_range=fixed, momentum=self.options["range_momentum"],
                freeze_after=self.options["freeze_ranges_after"], name=f"{tensor.name}_range",
                dtype="float32")
            self.quantized_inputs[key] = quantizer(tensor)
        return self.quantized_inputs[key]

    def _rescaling(self, rescaling: keras.layers.Rescaling, inputs: Any) -> Any:
        """``inputs * scale + offset`` as LiteRT computes it: a MUL, then an ADD, each rounded.

        Right after a pixel input, both ranges follow from ``(0, 255)`` and
        are fixed; elsewhere they are learned.
        """
        scale, offset = rescaling.scale, rescaling.offset
        fixed_product = fixed_sum = None
        if self.pixel_input and id(rescaling) == id(self.first_layer) and np.ndim(scale) == 0 \
                and np.ndim(offset) == 0:
            low, high = sorted((0.0, 255.0 * float(scale)))
            fixed_product = (min(low, 0.0), max(high, 0.0))
            fixed_sum = (min(low + float(offset), 0.0), max(high + float(offset), 0.0))
        multiply = keras.layers.Rescaling(scale, name=f"{rescaling.name}_scale")
        outputs = self._quantizer(multiply, fixed_product)(multiply(inputs))
        add = keras.layers.Rescaling(1.0, offset, name=f"{rescaling.name}_offset")
        return self._quantizer(add, fixed_sum)(add(outputs))

    def _quantized(self, layer: keras.layers.Layer, inputs: Any) -> Any:
        if isinstance(layer, layers.DepthwiseSeparableConv2D):
            return self._separable(layer, inputs)
        if isinstance(layer, keras.layers.Dense):
            return self._dense(layer, inputs)
        return self._conv(layer, inputs, self.batch_norms.get(id(layer)),
                          self.activations.get(id(layer)))

    def _float_copy(self, layer: keras.layers.Layer, inputs: Any, reason: str) -> Any:
        """``layer`` copied with its weights, left in float, and said so."""
        self.float_layers.append(f"{layer.name} ({type(layer).__name__}: {reason})")
        copy = layer.__class__.from_config(layer.get_config())
        outputs = copy(inputs)
        copy.set_weights(layer.get_weights())
        return outputs

    def _separate_activation(self, layer: keras.layers.Layer, outputs: Any) -> Any:
        """A conv's or dense layer's activation that LiteRT does not fuse, as a layer and its range."""
        activation = keras.layers.Activation(layer.activation, name=f"{layer.name}_activation")
        return self._quantizer(activation, _activation_range(activation))(activation(outputs))

    def _conv(self, conv: Any, inputs: Any, bn: Any, activation: str | None,
              name: str | None = None) -> Any:
        if conv.data_format != "channels_last" or getattr(conv, "groups", 1) != 1:
            return self._float_copy(conv, inputs, "channels_first or grouped")
        separate = _activation_name(conv.activation) is None
        activation = activation or ("linear" if separate else _activation_name(conv.activation))
        depthwise = isinstance(conv, keras.layers.DepthwiseConv2D)
        layer = QuantizedConv(
            "depthwise" if depthwise else "conv",
            filters=None if depthwise else conv.filters,
            kernel_size=conv.kernel_size, strides=conv.strides, padding=conv.padding,
            dilation_rate=conv.dilation_rate,
            depth_multiplier=conv.depth_multiplier if depthwise else 1,
            use_bias=conv.use_bias, batch_norm=bn is not None,
            batch_norm_momentum=bn.momentum if bn is not None else 0.99,
            batch_norm_epsilon=bn.epsilon if bn is not None else 1e-3,
            freeze_batch_norm_after=self.options["freeze_batch_norm_after"],
            activation=activation, per_channel=self.options["per_channel"],
            range_momentum=self.options["range_momentum"],
            freeze_ranges_after=self.options["freeze_ranges_after"], name=name or conv.name,
            dtype="float32",
        )
        outputs = layer(inputs)
        layer.kernel.assign(conv.kernel)
        if conv.use_bias:
            layer.bias.assign(conv.bias)
        if bn is not None:
            for variable, value in zip(
                (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance),
                _batch_norm_weights(bn),
            ):
                variable.assign(value)
        return self._separate_activation(conv, outputs) if separate else outputs

    def _separable(self, block: layers.DepthwiseSeparableConv2D, inputs: Any) -> Any:
        activation = _activation_name(block.activation)
        if activation is None:
            return self._float_copy(block, inputs, "its activation is not linear, relu or relu6")
        x = self._conv(block.depthwise, inputs, block.depthwise_bn, activation,
                       name=f"{block.name}_dw")
        return self._conv(block.pointwise, x, block.pointwise_bn, activation,
                          name=f"{block.name}_pw")

    def _dense(self, dense: keras.layers.Dense, inputs: Any) -> Any:
        activation = _activation_name(dense.activation)
        fused = self.activations.get(id(dense)) or activation or "linear"
        layer = QuantizedDense(
            dense.units, use_bias=dense.use_bias, activation=fused,
            per_channel=self.options["per_channel"], range_momentum=self.options["range_momentum"],
            freeze_ranges_after=self.options["freeze_ranges_after"], name=dense.name,
            dtype="float32")
        outputs = layer(inputs)
        layer.kernel.assign(dense.kernel)
        if dense.use_bias:
            layer.bias.assign(dense.bias)
        if activation is None:  # softmax, sigmoid, ...: a layer of its own, then its range
            outputs = self._separate_activation(dense, outputs)
        return outputs

    def copy_weights(self, model: keras.Model) -> None:
        for layer in flatten_layers(model, recursive=False):
            original = self.copies.get(id(layer))
            if original is not None:
                layer.set_weights(original.get_weights())


def _handled(layer: keras.layers.Layer) -> bool:
    """Whether the rewriter's `call` builds the quantized form of ``layer`` itself."""
    return isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                              keras.layers.Dense, layers.DepthwiseSeparableConv2D))


def _is_channel_batch_norm(layer: Any) -> bool:
    if not isinstance(layer, keras.layers.BatchNormalization):
        return False
    axis = layer.axis if isinstance(layer.axis, int) else (
        layer.axis[0] if len(layer.axis) == 1 else None)
    return axis in (-1, 3)


def _batch_norm_weights(bn: keras.layers.BatchNormalization) -> list[Any]:
    """``[gamma, beta, moving_mean, moving_variance]``, ones and zeros where BN has none."""
    ones = np.ones(bn.moving_mean.shape, np.float32)
    gamma = bn.gamma if bn.scale else ones
    beta = bn.beta if bn.center else 0 * ones
    return [gamma, beta, bn.moving_mean, bn.moving_variance]


def _activation_range(layer: keras.layers.Layer) -> tuple[float, float] | None:
    """LiteRT's fixed output range for softmax and sigmoid; None (learned) otherwise."""
    if isinstance(layer, keras.layers.Softmax):
        return _UNIT_RANGE
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return _UNIT_RANGE if name in ("softmax", "sigmoid") else None


def quantize_aware(
    model: keras.Model,
    *,
    freeze_batch_norm_after: int | None = None,
    freeze_ranges_after: int | None = None,
    range_momentum: float = 0.99,
    per_channel: bool = True,
) -> keras.Model:
    """A copy of ``model`` that trains with simulated int8 (quantization-aware training).

    Every ``Conv2D``, ``DepthwiseConv2D`` (the library's `PointwiseConv2D`
    and the convolutions inside `DepthwiseSeparableConv2D` included) becomes
    a `QuantizedConv` with the BatchNorm that alone reads its output folded
    in, and the ReLU or ReLU6 after it fused; every ``Dense`` becomes a
    `QuantizedDense`. Their weights are rounded per output channel, and their
    outputs, the model's input, and the outputs of pooling, ``Add``,
    ``Concatenate``, ``Rescaling`` and activation layers are rounded over
    learned ranges (a pixel input's range is ``(0, 255)``, softmax's and
    sigmoid's LiteRT's fixed one). Dropout, reshaping and max-pooling layers
    keep their input's range. Any other layer stays float, and a warning names
    it and says why: LiteRT then runs it in float between a dequantize and a
    quantize op. The copy starts from ``model``'s weights and BatchNorm
    statistics; ``model`` is left as it is.

    Train the copy for an epoch or a few at a small learning rate (see
    `mobilenet.training.train`'s ``qat_epochs``); then
    `mobilenet.export.to_tflite` writes its int8 file with no calibration
    data, using the ranges it learned.

    Args:
        model: keras.Model, a functional or built Sequential model in float.
        freeze_batch_norm_after: int or None, training steps after which the
            BatchNorm statistics stop moving (None: never).
        freeze_ranges_after: int or None, training steps after which the
            activation ranges stop moving (None: never).
        range_momentum: float in [0, 1), the moving average's weight of the
            old range. Defaults to 0.99.
        per_channel: bool, one weight range per output channel (LiteRT's
            int8 default) or, with False, one per layer (per-tensor weights,
            which many accelerators need). Defaults to True.

    Returns:
        A new functional keras.Model, which saves to ``.keras`` and loads back
        like any model of the library.

    Example:

    ```python
    import numpy as np
    from mobilenet import MobileNetV1
    from mobilenet.quantization import quantize_aware

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    qat = quantize_aware(model)
    qat.compile("adam", "sparse_categorical_crossentropy")
    pixels = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    qat.fit(pixels, np.arange(8) % 10, epochs=1, verbose=0)
    print(qat.predict(pixels, verbose=0).shape)
    ```
    """
    from mobilenet.folding import as_functional

    model = as_functional(model)
    if is_quantize_aware(model):
        raise invalid("model", "a float model", model,
                      shown="a model that is quantization-aware already")
    for value, argument in ((freeze_batch_norm_after, "freeze_batch_norm_after"),
                            (freeze_ranges_after, "freeze_ranges_after")):
        if value is not None:
            check_positive_int(value, argument)
    options = {
        "per_channel": check_bool(per_channel, "per_channel"),
        "freeze_batch_norm_after": freeze_batch_norm_after,
        "freeze_ranges_after": freeze_ranges_after,
        "range_momentum": check_number(range_momentum, "range_momentum", low=0, high=1,
                                       high_open=True),
    }
    rewriter = _Rewriter(model, options)
    inputs = [keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name) for x in model.inputs]
    rewriter.inputs = {id(tensor) for tensor in inputs}
    qat = keras.models.clone_model(
        model, input_tensors=inputs if len(inputs) > 1 else inputs[0],
        clone_function=rewriter.clone, call_function=rewriter.call)
    rewriter.copy_weights(qat)
    if rewriter.float_layers:
        warnings.warn(f"quantize_aware: left in float: {'; '.join(rewriter.float_layers)}",
                      stacklevel=2)
    return qat


class _ConstantFakeQuant(keras.layers.Layer):
    """A FakeQuant of constant range: the LiteRT converter makes it the tensor's int8 scale."""

    def __init__(self, low: float, high: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.low, self.high = float(low), float(high)

    def call(self, inputs: Any) -> Any:
        return keras.quantizers.fake_quant_with_min_max_vars(inputs, self.low, self.high,
                                                             num_bits=_BITS)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def _plain_layer(layer: QuantizedConv | QuantizedDense) -> keras.layers.Layer:
    """The float Keras layer that computes ``layer`` at inference from its `folded_weights`."""
    if isinstance(layer, QuantizedDense):
        return keras.layers.Dense(layer.units, activation=layer.activation, name=layer.name)
    if layer.kind == "depthwise":
        return keras.layers.DepthwiseConv2D(
            layer.kernel_size, layer.strides, layer.padding,
            depth_multiplier=layer.depth_multiplier, dilation_rate=layer.dilation_rate,
            activation=layer.activation, name=layer.name)
    return keras.layers.Conv2D(
        layer.filters, layer.kernel_size, layer.strides, layer.padding,
        dilation_rate=layer.dilation_rate, activation=layer.activation, name=layer.name)


def export_graph(model: keras.Model, *, fake_quant: bool = True) -> keras.Model:
    """The float graph of a trained QAT model that LiteRT quantizes as it was trained.

    Each `QuantizedConv` and `QuantizedDense` becomes a plain biased
    ``Conv2D``, ``DepthwiseConv2D`` or ``Dense`` holding its folded weights,
    already on their per-channel int8 grid, so the converter's own weight
    quantization gives back the integers trained with; each learned range
    becomes a FakeQuant of constant range, which the converter turns into the
    tensor's scale and zero point, so no calibration data is needed. Dropout
    is dropped. With ``fake_quant=False`` the ranges are left out: the float
    model the QAT model is at inference, apart from activation rounding.

    Args:
        model: keras.Model, a model made by `quantize_aware` (and trained).
        fake_quant: bool, whether to keep the ranges as FakeQuant ops.

    Returns:
        A new functional keras.Model, for export only.
    """
    from mobilenet.folding import as_functional

    model = as_functional(model)
    if not is_quantize_aware(model):
        raise invalid("model", "a quantization-aware model (made by quantize_aware)", model,
                      shown="a float model")
    copies: dict[int, keras.layers.Layer] = {}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, (ActivationQuantizer, QuantizedConv, QuantizedDense,
                              keras.layers.Dropout)):
            return layer
        copy = layer.__class__.from_config(layer.get_config())
        copies[id(copy)] = layer
        return copy

    def constant_range(quantizer: ActivationQuantizer, outputs: Any) -> Any:
        if not fake_quant:
            return outputs
        return _ConstantFakeQuant(*quantizer.quantization_range(), name=quantizer.name)(outputs)

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("training", None)
        if isinstance(layer, keras.layers.Dropout):
            return args[0]
        if isinstance(layer, ActivationQuantizer):
            return constant_range(layer, args[0])
        if isinstance(layer, (QuantizedConv, QuantizedDense)):
            plain = _plain_layer(layer)
            outputs = plain(args[0])
            plain.set_weights(layer.folded_weights())
            return constant_range(layer.output_quantizer, outputs)
        outputs = layer(*args, **kwargs)
        layer.set_weights(copies[id(layer)].get_weights())
        return outputs

    return keras.models.clone_model(model, clone_function=clone, call_function=call)
