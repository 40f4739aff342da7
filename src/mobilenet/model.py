"""The MobileNet V1 network: its architecture table and the model factory.

The architecture is data (``STEM`` and ``BLOCKS``, paper Table 1); the factory
walks that table, so the paper's variants (width and resolution multipliers,
the Conv and Shallow MobileNets of Tables 4 and 6) are options, not new code.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

import keras

from mobilenet.layers import DepthwiseSeparableConv2D

__all__ = [
    "BLOCKS",
    "STEM",
    "BlockSpec",
    "MobileNetV1",
    "PUBLISHED_ALPHAS",
    "PUBLISHED_RESOLUTIONS",
    "block_filters",
]

#: The input side of the paper's full-resolution network.
BASE_RESOLUTION = 224
#: The smallest input side the factory accepts (the network downsamples by 32).
MIN_INPUT_SIDE = 32
#: (alpha, resolution) pairs for which keras.applications publishes ImageNet weights.
PUBLISHED_ALPHAS = (0.25, 0.5, 0.75, 1.0)
PUBLISHED_RESOLUTIONS = (128, 160, 192, 224)
#: The blocks that the Shallow MobileNet of paper Table 6 removes (the five 14x14x512).
SHALLOW_REMOVED_BLOCKS = (7, 8, 9, 10, 11)


@dataclass(frozen=True)
class BlockSpec:
    """One row of paper Table 1: output channels at alpha = 1 and stride."""

    filters: int
    strides: int


#: The first, standard 3x3 convolution.
STEM = BlockSpec(filters=32, strides=2)
#: The 13 depthwise separable blocks, numbered 1..13 in the model's layer names.
BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(64, 1),
    BlockSpec(128, 2),
    BlockSpec(128, 1),
    BlockSpec(256, 2),
    BlockSpec(256, 1),
    BlockSpec(512, 2),
    *(BlockSpec(512, 1) for _ in range(5)),
    BlockSpec(1024, 2),
    BlockSpec(1024, 1),  # Table 1 prints s2 here: a known typo, the output stays 7x7.
)

_POOLINGS = (None, "avg", "max")
_OUTPUT_STRIDES = (8, 16, 32)
_EARLY_DOWNSAMPLINGS = (4, 2, 1)


def block_filters(filters: int, alpha: float, min_depth: int = 8) -> int:
    """Channels of a layer with ``filters`` channels at alpha = 1: ``max(int(alpha*filters), min_depth)``."""
    return max(int(alpha * filters), min_depth)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_alpha(alpha: Any) -> float:
    if not _is_real(alpha) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(
            "Invalid value for argument `alpha` (width multiplier): expected a "
            f"finite number > 0. Received: alpha={alpha!r}"
        )
    return float(alpha)


def _check_positive_int(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"Invalid value for argument `{argument}`: expected an integer >= 1. "
            f"Received: {argument}={value!r}"
        )
    return int(value)


def _resolve_input_shape(
    rho: Any, input_shape: Any, input_tensor: Any
) -> tuple[int | None, int | None, int]:
    """Turns rho / input_shape / input_tensor into one (rows, cols, channels)."""
    if rho is not None and (not _is_real(rho) or not math.isfinite(rho) or rho <= 0):
        raise ValueError(
            "Invalid value for argument `rho` (resolution multiplier): expected a "
            f"finite number > 0. Received: rho={rho!r}"
        )
    rho_side = None if rho is None else round(BASE_RESOLUTION * rho)
    if rho_side is not None and rho_side < MIN_INPUT_SIDE:
        raise ValueError(
            f"Invalid value for argument `rho`: the input side round(224 * rho) = "
            f"{rho_side} is under the minimum of {MIN_INPUT_SIDE}; use rho >= "
            f"{MIN_INPUT_SIDE / BASE_RESOLUTION:.4f}. Received: rho={rho!r}"
        )

    if input_tensor is not None:
        tensor_shape = tuple(getattr(input_tensor, "shape", ()))
        if len(tensor_shape) != 4:
            raise ValueError(
                "Invalid value for argument `input_tensor`: expected a 4D symbolic "
                f"tensor (batch, rows, cols, channels). Received shape {tensor_shape}"
            )
        if input_shape is not None and tuple(input_shape) != tensor_shape[1:]:
            raise ValueError(
                "Arguments `input_shape` and `input_tensor` disagree: "
                f"input_shape={tuple(input_shape)}, input_tensor.shape={tensor_shape}"
            )
        input_shape = tensor_shape[1:]

    if input_shape is None:
        side = BASE_RESOLUTION if rho_side is None else rho_side
        return side, side, 3

    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3:
        raise ValueError(
            "Invalid value for argument `input_shape`: expected (rows, cols, "
            f"channels), channels last. Received: input_shape={input_shape!r}"
        )
    rows, cols, channels = shape
    if channels is None or isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
        raise ValueError(
            "Invalid value for argument `input_shape`: the channel count must be "
            f"an integer >= 1 (3 for RGB). Received: input_shape={shape}"
        )
    for side in (rows, cols):
        if side is None:
            continue
        if isinstance(side, bool) or not isinstance(side, numbers.Integral) or side < MIN_INPUT_SIDE:
            raise ValueError(
                "Invalid value for argument `input_shape`: rows and cols must be "
                f"None or integers >= {MIN_INPUT_SIDE}. Received: input_shape={shape}"
            )
    if rho_side is not None and (rows, cols) != (rho_side, rho_side):
        raise ValueError(
            f"Arguments `rho` and `input_shape` disagree: rho={rho!r} means a "
            f"{rho_side}x{rho_side} input, but input_shape={shape}. Give one of them."
        )
    return (
        None if rows is None else int(rows),
        None if cols is None else int(cols),
        int(channels),
    )


def MobileNetV1(
    alpha: float = 1.0,
    rho: float | None = None,
    num_classes: int = 1000,
    *,
    input_shape: tuple[int | None, int | None, int] | None = None,
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    pooling: str | None = None,
    dropout: float = 1e-3,
    classifier_activation: Any = "softmax",
    activation: Any = "relu6",
    min_depth: int = 8,
    output_stride: int | None = None,
    separable: bool = True,
    shallow: bool = False,
    early_downsampling: int = 4,
    input_tensor: Any = None,
    name: str | None = None,
) -> keras.Model:
    """Builds MobileNet V1 (Howard et al. 2017) as a functional ``keras.Model``.

    The network is paper Table 1: a 3x3 stride-2 convolution, 13 depthwise
    separable blocks (`DepthwiseSeparableConv2D`), global average pooling and
    a fully connected classifier. Every convolution is followed by BatchNorm
    and ``activation``; convolutions carry no bias.

    Layer names are stable, so intermediate feature maps can be taken by name:
    ``conv1`` (stem conv), ``conv1_bn``, ``conv1_act``, then ``block_1`` ..
    ``block_13`` (each block's output), then ``avg_pool``, ``dropout``, ``fc``
    (the classifier's weights, logits) and ``predictions`` when
    ``include_top``. For a feature pyramid, e.g. SSD's, take
    ``model.get_layer("block_11").output`` (stride 16) and
    ``model.get_layer("block_13").output`` (stride 32).

    Args:
        alpha: float > 0, the width multiplier: a layer with N channels in the
            paper gets ``max(int(alpha * N), min_depth)``. Defaults to 1.0.
        rho: float > 0, the resolution multiplier: the input side is
            ``round(224 * rho)`` (rho = 1, 6/7, 5/7, 4/7 give 224, 192, 160,
            128). Leave it None to use ``input_shape`` (default 224x224x3).
        num_classes: int >= 1, classifier outputs when ``include_top``.
            Defaults to 1000.
        input_shape: ``(rows, cols, channels)``, channels last; rows and cols
            are None or >= 32 and need not be equal. Overrides the default
            224x224x3; giving it together with a ``rho`` it disagrees with is an
            error.
        include_top: bool, whether to end with pooling, dropout and the
            classifier. False gives a feature extractor. Defaults to True.
        weights: None (random initialisation), ``"imagenet"`` (the weights
            keras.applications publishes for alpha in 0.25/0.5/0.75/1.0 and
            square inputs of 128/160/192/224, downloaded on first use), or the
            path of a file of ``keras.applications.MobileNet`` weights (its
            legacy ``.h5`` downloads or a ``save_weights`` file).
        pooling: with ``include_top=False``: None (4D feature map), ``"avg"``
            or ``"max"`` (global pooling to a 2D tensor).
        dropout: float in [0, 1), dropout before the classifier. Defaults to
            1e-3 as in keras.applications.
        classifier_activation: activation of the classifier's output, or None
            for logits. Defaults to ``"softmax"``.
        activation: activation after each BatchNorm. Defaults to ``"relu6"``
            (the released models); ``"relu"`` is the paper's.
        min_depth: int >= 1, the fewest channels any layer gets. Defaults to 8.
        output_stride: None, 8, 16 or 32: the ratio of input to output size of
            the feature map. Below 32, the strides after that point become
            dilation, as TF-Slim does for dense prediction.
        separable: bool. False builds the "Conv MobileNet" of paper Table 4,
            each separable block replaced by one full 3x3 convolution (with
            BatchNorm and activation). Defaults to True.
        shallow: bool. True builds the "Shallow MobileNet" of paper Table 6:
            the five 14x14x512 blocks (7-11) removed. Defaults to False.
        early_downsampling: 4, 2 or 1: the combined stride of the stem conv
            and block 2, for small images. 4 is the paper's network (overall
            stride 32, so a 32x32 CIFAR image ends at 1x1); 2 drops the stem's
            stride (overall 16, 2x2 at 32x32); 1 also drops block 2's (overall
            8, 4x4 at 32x32). The weights are unchanged; the mult-adds grow
            about 4x (exactly the standard net's at twice the side) or 15x.
            Defaults to 4.
        input_tensor: optional symbolic tensor (e.g. from ``keras.Input``) to
            use as the model's input.
        name: the model's name. Defaults to ``mobilenet_v1_{alpha}_{rows}``.

    Returns:
        A ``keras.Model``.

    Example:

    ```python
    from mobilenet import MobileNetV1

    model = MobileNetV1(alpha=0.5, rho=5 / 7, num_classes=10)  # 160x160 input
    backbone = MobileNetV1(0.75, include_top=False, input_shape=(320, 320, 3))
    ```

    Reference:
        Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
        Mobile Vision Applications", 2017, https://arxiv.org/abs/1704.04861
    """
    alpha = _check_alpha(alpha)
    min_depth = _check_positive_int(min_depth, "min_depth")
    rows, cols, channels = _resolve_input_shape(rho, input_shape, input_tensor)
    include_top = bool(include_top)
    if include_top:
        num_classes = _check_positive_int(num_classes, "num_classes")
    if pooling not in _POOLINGS:
        raise ValueError(
            f"Invalid value for argument `pooling`: expected one of {_POOLINGS}. "
            f"Received: pooling={pooling!r}"
        )
    if not _is_real(dropout) or not 0.0 <= dropout < 1.0:
        raise ValueError(
            "Invalid value for argument `dropout`: expected a number in [0, 1). "
            f"Received: dropout={dropout!r}"
        )
    if (
        isinstance(early_downsampling, bool)
        or not isinstance(early_downsampling, numbers.Integral)
        or early_downsampling not in _EARLY_DOWNSAMPLINGS
    ):
        raise ValueError(
            "Invalid value for argument `early_downsampling`: expected one of "
            f"{_EARLY_DOWNSAMPLINGS} (the combined stride of the stem and block 2). "
            f"Received: early_downsampling={early_downsampling!r}"
        )
    if output_stride is not None and output_stride not in _OUTPUT_STRIDES:
        raise ValueError(
            f"Invalid value for argument `output_stride`: expected None or one of "
            f"{_OUTPUT_STRIDES}. Received: output_stride={output_stride!r}"
        )
    for argument, value in (("activation", activation), ("classifier_activation", classifier_activation)):
        try:
            keras.activations.get(value)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"Invalid value for argument `{argument}`: expected the name of a "
                f"Keras activation (such as 'relu6', 'relu', 'softmax'), a callable "
                f"or None. Received: {argument}={value!r}"
            ) from error
    if weights is not None:
        _check_weights_request(
            weights, alpha, rows, cols, channels, include_top, num_classes,
            min_depth, separable, shallow,
        )

    if input_tensor is None:
        inputs = keras.Input(shape=(rows, cols, channels), name="input")
        x = inputs
    else:
        x = input_tensor
        inputs = keras.utils.get_source_inputs(input_tensor)

    # Turn strides into dilation once the running stride reaches output_stride.
    current_stride, rate = 1, 1

    def next_stride_and_rate(strides: int) -> tuple[int, int]:
        nonlocal current_stride, rate
        if output_stride is not None and current_stride == output_stride:
            layer_rate = rate
            rate *= strides
            return 1, layer_rate
        current_stride *= strides
        return strides, 1

    # early_downsampling < 4 removes the stride of the stem, then of block 2.
    stem_strides = STEM.strides if early_downsampling == 4 else 1
    block_2_strides = 1 if early_downsampling == 1 else BLOCKS[1].strides

    stride, _ = next_stride_and_rate(stem_strides)
    x = keras.layers.Conv2D(
        block_filters(STEM.filters, alpha, min_depth), 3, strides=stride,
        padding="same", use_bias=False, name="conv1",
    )(x)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.Activation(activation, name="conv1_act")(x)

    for number, spec in enumerate(BLOCKS, start=1):
        if shallow and number in SHALLOW_REMOVED_BLOCKS:
            continue
        stride, dilation = next_stride_and_rate(block_2_strides if number == 2 else spec.strides)
        filters = block_filters(spec.filters, alpha, min_depth)
        if separable:
            x = DepthwiseSeparableConv2D(
                filters, strides=stride, dilation_rate=dilation,
                activation=activation, name=f"block_{number}",
            )(x)
        else:
            x = keras.layers.Conv2D(
                filters, 3, strides=stride, dilation_rate=dilation,
                padding="same", use_bias=False, name=f"block_{number}_conv",
            )(x)
            x = keras.layers.BatchNormalization(name=f"block_{number}_bn")(x)
            x = keras.layers.Activation(activation, name=f"block_{number}")(x)

    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.Dense(num_classes, name="fc")(x)
        # float32 output keeps softmax and losses stable under mixed precision.
        x = keras.layers.Activation(classifier_activation, dtype="float32", name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)

    if name is None:
        name = f"mobilenet_v1_{alpha:.2f}_{rows if rows is not None else 'any'}"
    model = keras.Model(inputs, x, name=name)

    if weights is not None:
        from mobilenet.weights import load_keras_applications_weights

        load_keras_applications_weights(model, weights, alpha=alpha, rows=rows, cols=cols)
    return model


def _check_weights_request(
    weights: Any,
    alpha: float,
    rows: int | None,
    cols: int | None,
    channels: int,
    include_top: bool,
    num_classes: int,
    min_depth: int,
    separable: bool,
    shallow: bool,
) -> None:
    """Rejects a ``weights`` request that cannot fit before any layer is built."""
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "Invalid value for argument `weights`: expected None, 'imagenet' or the "
            f"path of a weights file. Received: weights={weights!r}"
        )
    if not separable or shallow:
        raise ValueError(
            "Invalid value for argument `weights`: pretrained weights exist only for "
            "the standard network; build with separable=True, shallow=False. "
            f"Received: weights={weights!r}, separable={separable}, shallow={shallow}"
        )
    if channels != 3:
        raise ValueError(
            "Invalid value for argument `input_shape`: pretrained weights expect 3 "
            f"input channels (RGB). Received: {channels} channels with weights={weights!r}"
        )
    if int(alpha * STEM.filters) < min_depth:
        raise ValueError(
            "Invalid value for argument `min_depth`: keras.applications weights have "
            f"int(alpha * N) channels, but min_depth={min_depth} raises the stem of "
            f"alpha={alpha} above that. Use a smaller min_depth."
        )
    if weights == "imagenet":
        if alpha not in PUBLISHED_ALPHAS:
            raise ValueError(
                "Invalid value for argument `alpha`: ImageNet weights are published "
                f"for alpha in {PUBLISHED_ALPHAS} only. Received: alpha={alpha}"
            )
        if rows != cols or rows not in PUBLISHED_RESOLUTIONS:
            raise ValueError(
                "Invalid value for argument `input_shape`: ImageNet weights are "
                f"published for square inputs of side {PUBLISHED_RESOLUTIONS} only. "
                f"Received: {rows}x{cols}. Build at a published side, or pass the "
                "path of a downloaded weights file, which loads at any input size."
            )
        if include_top and num_classes != 1000:
            raise ValueError(
                "Invalid value for argument `num_classes`: the ImageNet classifier has "
                f"1000 classes. Received: num_classes={num_classes}; use "
                "include_top=False for a backbone with your own head."
            )
