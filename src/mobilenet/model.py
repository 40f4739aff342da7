"""The MobileNet V1 model factory.

The architecture is data (`mobilenet.architecture.layer_table`: paper Table 1,
``STEM`` and ``BLOCKS``, edited by the variant); the factory walks that table,
building each row with the builder of its kind, so the paper's variants (width
and resolution multipliers, the Conv and Shallow MobileNets of Tables 4 and 6)
and early downsampling and output stride are options, not new code. The
weights rules live in `mobilenet.weights`.
``BLOCKS``, ``STEM``, ``BlockSpec``, ``block_filters``, ``PUBLISHED_ALPHAS``
and ``PUBLISHED_RESOLUTIONS`` are re-exported here for code that imports them
from ``mobilenet.model``.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from mobilenet._validation import (
    check_activation,
    check_choice,
    check_int,
    check_number,
    check_positive_int,
    invalid,
    is_int,
)
from mobilenet.architecture import (
    BASE_RESOLUTION,
    BLOCKS,
    EARLY_DOWNSAMPLINGS,
    MIN_INPUT_SIDE,
    STEM,
    BlockSpec,
    LayerSpec,
    block_filters,
    check_output_stride,
    layer_table,
)
from mobilenet.layers import DepthwiseSeparableConv2D, PointwiseConv2D
from mobilenet.timm_weights import (
    TIMM_BATCH_NORM_EPSILON,
    TIMM_PADDING,
    TimmWeights,
    is_timm_weights,
    load_timm_weights,
    read_timm_weights,
)
from mobilenet.weights import (
    PUBLISHED_ALPHAS,
    PUBLISHED_RESOLUTIONS,
    check_weights_request,
    load_keras_applications_weights,
)

__all__ = [
    "BLOCKS",
    "STEM",
    "BlockSpec",
    "MobileNetV1",
    "PADDINGS",
    "PUBLISHED_ALPHAS",
    "PUBLISHED_RESOLUTIONS",
    "block_filters",
    "vww_model",
]

_POOLINGS = (None, "avg", "max")
#: The ``padding`` choices: TensorFlow's, and timm's (PyTorch's) one pixel on every side.
PADDINGS = ("same", "symmetric")
#: BatchNorm's epsilon without timm weights: Keras' and keras.applications'.
DEFAULT_BATCH_NORM_EPSILON = 1e-3


def _padded(x: Any, spec: LayerSpec, options: dict) -> tuple[Any, str]:
    """``x`` padded as ``options["padding"]`` says before a 3x3 conv, and the conv's padding.

    With ``"symmetric"``, a stride-2 layer gets an explicit one-pixel
    ``ZeroPadding2D`` on every side (named ``{spec.name}_pad``) and a
    ``"valid"`` convolution, as PyTorch's ``padding=1``. A stride-1 layer
    needs none: TensorFlow's ``"same"`` pads a stride-1 3x3 kernel by its
    dilation on every side, which is already symmetric.
    """
    if options["padding"] == "symmetric" and spec.strides > 1:
        return keras.layers.ZeroPadding2D(1, name=f"{spec.name}_pad")(x), "valid"
    return x, "same"


def _conv_bn_act(x: Any, spec: LayerSpec, names: tuple[str, str, str], options: dict) -> Any:
    """A 3x3 convolution, BatchNorm and activation, named ``names``."""
    conv, bn, act = names
    x, padding = _padded(x, spec, options)
    x = keras.layers.Conv2D(
        spec.filters, 3, strides=spec.strides, dilation_rate=spec.dilation,
        padding=padding, use_bias=False, name=conv,
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=options["batch_norm_momentum"], epsilon=options["batch_norm_epsilon"], name=bn
    )(x)
    return keras.layers.Activation(options["activation"], name=act)(x)


def _stem(x: Any, spec: LayerSpec, options: dict) -> Any:
    return _conv_bn_act(x, spec, (spec.name, f"{spec.name}_bn", f"{spec.name}_act"), options)


def _conv_block(x: Any, spec: LayerSpec, options: dict) -> Any:
    return _conv_bn_act(x, spec, (f"{spec.name}_conv", f"{spec.name}_bn", spec.name), options)


def _separable_block(x: Any, spec: LayerSpec, options: dict) -> Any:
    x, padding = _padded(x, spec, options)
    return DepthwiseSeparableConv2D(
        spec.filters, strides=spec.strides, dilation_rate=spec.dilation, padding=padding,
        name=spec.name, activation=options["activation"],
        batch_norm_momentum=options["batch_norm_momentum"],
        batch_norm_epsilon=options["batch_norm_epsilon"],
    )(x)


def _head_conv(x: Any, filters: int, options: dict) -> Any:
    """The 1x1 convolution, BatchNorm and activation after the last block (timm's ``conv_head``)."""
    x = PointwiseConv2D(filters, use_bias=False, name="head_conv")(x)
    x = keras.layers.BatchNormalization(
        momentum=options["batch_norm_momentum"], epsilon=options["batch_norm_epsilon"], name="head_bn"
    )(x)
    return keras.layers.Activation(options["activation"], name="head_act")(x)


#: The builder of each `LayerSpec.kind`: (tensor, spec, options) -> tensor.
_BUILDERS = {"stem": _stem, "conv": _conv_block, "separable": _separable_block}


def _resolve_input_shape(
    rho: Any, input_shape: Any, input_tensor: Any, include_top: bool
) -> tuple[int | None, int | None, int]:
    """Turns rho / input_shape / input_tensor into one (rows, cols, channels).

    With none of the three, a classifier gets the paper's 224x224x3 and a
    feature extractor (``include_top=False``) an open ``(None, None, 3)``.
    """
    rho_side = None
    if rho is not None:
        rho = check_number(rho, "rho", low=0, low_open=True)
        rho_side = round(BASE_RESOLUTION * rho)
        if rho_side < MIN_INPUT_SIDE:
            raise invalid(
                "rho",
                f"a number >= {MIN_INPUT_SIDE / BASE_RESOLUTION:.4f}, so that the input "
                f"side round({BASE_RESOLUTION} * rho) is at least {MIN_INPUT_SIDE}",
                rho,
                shown=f"rho={rho!r}, an input side of {rho_side}, under the minimum of {MIN_INPUT_SIDE}",
            )

    if input_tensor is not None:
        tensor_shape = tuple(getattr(input_tensor, "shape", ()))
        if len(tensor_shape) != 4:
            raise invalid(
                "input_tensor",
                "a 4D symbolic tensor (batch, rows, cols, channels)",
                input_tensor,
                shown=f"a tensor of shape {tensor_shape}",
            )
        if input_shape is not None and tuple(input_shape) != tensor_shape[1:]:
            raise ValueError(
                "Arguments `input_shape` and `input_tensor` disagree: "
                f"input_shape={tuple(input_shape)}, input_tensor.shape={tensor_shape}"
            )
        input_shape = tensor_shape[1:]

    if input_shape is None:
        if rho_side is not None:
            return rho_side, rho_side, 3
        side = BASE_RESOLUTION if include_top else None
        return side, side, 3

    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3:
        raise invalid("input_shape", "(rows, cols, channels), channels last", input_shape)
    rows, cols, channels = shape
    if not is_int(channels) or channels < 1:
        raise invalid("input_shape", "a channel count that is an integer >= 1 (3 for RGB)", shape)
    for side in (rows, cols):
        if side is not None and (not is_int(side) or side < MIN_INPUT_SIDE):
            raise invalid(
                "input_shape", f"rows and cols that are None or integers >= {MIN_INPUT_SIDE}", shape
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
    alpha: float | None = None,
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
    batch_norm_momentum: float = 0.99,
    batch_norm_epsilon: float | None = None,
    include_preprocessing: bool = False,
    padding: str | None = None,
    head_filters: int | None = None,
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
            paper gets ``max(int(alpha * N), min_depth)``. Defaults to None:
            1.0, or the width of timm ``weights`` (1.0 or 1.25), which
            another alpha contradicts.
        rho: float > 0, the resolution multiplier: the input side is
            ``round(224 * rho)`` (rho = 1, 6/7, 5/7, 4/7 give 224, 192, 160,
            128). Leave it None to use ``input_shape``.
        num_classes: int >= 1, classifier outputs when ``include_top``.
            Defaults to 1000.
        input_shape: ``(rows, cols, channels)``, channels last; rows and cols
            are None or >= 32 and need not be equal. Giving it together with a
            ``rho`` it disagrees with is an error. Without it or ``rho``, a
            classifier takes 224x224x3 and a feature extractor
            (``include_top=False``) any size, ``(None, None, 3)``, as in
            keras.applications.
        include_top: bool, whether to end with pooling, dropout and the
            classifier. False gives a feature extractor. Defaults to True.
        weights: None (random initialisation), ``"imagenet"`` (the weights
            keras.applications publishes for alpha in 0.25/0.5/0.75/1.0 and
            square inputs of 128/160/192/224, downloaded on first use), or the
            path of a file of ``keras.applications.MobileNet`` weights (its
            legacy ``.h5`` downloads or a ``save_weights`` file). A feature
            extractor of open input size gets the 224 ImageNet file, as in
            keras.applications. Or timm's weights (see docs/weights.md): a
            Hub name of `mobilenet.timm_weights.TIMM_VARIANTS`, such as
            ``"timm/mobilenetv1_100.ra4_e3600_r224_in1k"`` (75.4% top-1,
            downloaded once into Keras' cache with huggingface_hub, the
            ``timm`` extra), or the path of a timm MobileNet V1
            ``.safetensors`` file; the file sets ``alpha`` and
            ``head_filters``, and ``padding`` and ``batch_norm_epsilon``
            default to timm's (``"symmetric"``, 1e-5), so that the model
            gives timm's outputs. Weights load into any ``output_stride``
            and ``early_downsampling``: those change strides, not weights.
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
            the feature map. Below the network's stride, the strides after
            that point become dilation, as TF-Slim does for dense prediction.
            It cannot exceed the network's stride (32, or less with
            ``early_downsampling``): asking for more is an error.
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
            ``output_stride`` must then be at most 16 or 8. Defaults to 4.
        input_tensor: optional symbolic tensor (e.g. from ``keras.Input``) to
            use as the model's input.
        name: the model's name. Defaults to ``mobilenet_v1_{alpha:.2f}_{rows}``,
            with ``any`` for an open input size.
        batch_norm_momentum: float in [0, 1), the momentum of every BatchNorm's
            moving statistics (the stem's, the blocks' and the Conv
            MobileNet's). Defaults to 0.99 (Keras'); lower values (0.9) settle
            faster in short trainings.
        batch_norm_epsilon: float > 0, every BatchNorm's epsilon. Defaults to
            None: 1e-3 (Keras' and keras.applications'), or timm's 1e-5 with
            timm ``weights``.
        include_preprocessing: bool, whether the model starts with
            ``Rescaling(1/127.5, offset=-1)`` (layer ``preprocessing``), so
            that it takes pixels in [0, 255] (uint8 or float) and feeds the
            network the [-1, 1] range that the ImageNet weights expect, which
            ``keras.applications.mobilenet.preprocess_input`` otherwise
            gives. This follows ``keras.applications.MobileNetV3``'s argument
            of the same name. Defaults to False, so that the input contract
            is keras.applications.MobileNet's: inputs already preprocessed.
            timm's MobileNet V1 weights take the same range (mean and std
            0.5).
        padding: ``"same"`` or ``"symmetric"``, the padding of the 3x3
            convolutions. ``"same"`` is TensorFlow's: a stride-2 layer at an
            even side pads one row and column at the bottom and right only.
            ``"symmetric"`` pads one on every side (PyTorch's
            ``padding=1``, timm's): a stride-2 layer gets a ``ZeroPadding2D``
            (``{name}_pad``) and a ``"valid"`` convolution. The two differ
            only at stride-2 layers that see an even side; the output shapes
            and mult-adds are the same at every input size (the extra row
            and column are never read), and symmetric adds one pad op per
            stride-2 layer (5 of them). Defaults to None: ``"same"``, or
            ``"symmetric"`` with timm ``weights``.
        head_filters: int >= 1 or None, the channels of a 1x1 convolution
            (``head_conv``, with BatchNorm ``head_bn`` and activation
            ``head_act``) after block 13, as timm's ``mobilenetv1_100h``
            (1024). Defaults to None: no head conv, or what timm
            ``weights`` hold.

    Returns:
        A ``keras.Model``.

    Example:

    ```python
    from mobilenet import MobileNetV1

    model = MobileNetV1(alpha=0.5, rho=5 / 7, num_classes=10)  # 160x160 input
    backbone = MobileNetV1(0.75, include_top=False)  # any input size
    ```

    With the ImageNet weights, which it downloads on first use:

    ```python notest
    import numpy as np
    from mobilenet import MobileNetV1

    classifier = MobileNetV1(weights="imagenet", include_preprocessing=True)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    probabilities = classifier(pixels)  # uint8 or float pixels in [0, 255]
    ```

    Reference:
        Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
        Mobile Vision Applications", 2017, https://arxiv.org/abs/1704.04861
    """
    if alpha is not None:
        alpha = check_number(alpha, "alpha", low=0, low_open=True)
    min_depth = check_positive_int(min_depth, "min_depth")
    include_top = bool(include_top)
    rows, cols, channels = _resolve_input_shape(rho, input_shape, input_tensor, include_top)
    if include_top:
        num_classes = check_positive_int(num_classes, "num_classes")
    check_choice(pooling, "pooling", _POOLINGS)
    dropout = check_number(dropout, "dropout", low=0, high=1)
    early_downsampling = check_choice(
        check_int(early_downsampling, "early_downsampling"), "early_downsampling", EARLY_DOWNSAMPLINGS
    )
    output_stride = check_output_stride(output_stride, early_downsampling)
    check_activation(activation, "activation")
    check_activation(classifier_activation, "classifier_activation")
    batch_norm_momentum = check_number(batch_norm_momentum, "batch_norm_momentum", low=0, high=1)
    if batch_norm_epsilon is not None:
        batch_norm_epsilon = check_number(batch_norm_epsilon, "batch_norm_epsilon", low=0, low_open=True)
    check_choice(padding, "padding", (None, *PADDINGS))
    if head_filters is not None:
        head_filters = check_positive_int(head_filters, "head_filters")
    timm = None
    if weights is not None:
        request = dict(rows=rows, cols=cols, channels=channels, include_top=include_top,
                       num_classes=num_classes, min_depth=min_depth, separable=separable,
                       shallow=shallow)
        check_weights_request(weights, alpha=1.0 if alpha is None else alpha, **request)
        if is_timm_weights(weights):
            timm = read_timm_weights(weights)
            timm.check_request(alpha=alpha, head_filters=head_filters, include_top=include_top,
                               num_classes=num_classes)
            alpha, head_filters = timm.alpha, timm.head_filters
            check_weights_request(weights, alpha=alpha, **request)
    alpha = 1.0 if alpha is None else alpha
    if padding is None:
        padding = TIMM_PADDING if timm is not None else "same"
    if batch_norm_epsilon is None:
        batch_norm_epsilon = TIMM_BATCH_NORM_EPSILON if timm is not None else DEFAULT_BATCH_NORM_EPSILON

    if input_tensor is None:
        inputs = keras.Input(shape=(rows, cols, channels), name="input")
        x = inputs
    else:
        x = input_tensor
        inputs = keras.utils.get_source_inputs(input_tensor)
    if include_preprocessing:
        # Pixels in [0, 255] to [-1, 1], what keras.applications.mobilenet.preprocess_input does.
        x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="preprocessing")(x)

    table = layer_table(
        alpha, min_depth=min_depth, separable=separable, shallow=shallow,
        early_downsampling=early_downsampling, output_stride=output_stride,
    )
    options = dict(activation=activation, batch_norm_momentum=batch_norm_momentum,
                   batch_norm_epsilon=batch_norm_epsilon, padding=padding)
    for spec in table:
        x = _BUILDERS[spec.kind](x, spec, options)
    if head_filters is not None:
        x = _head_conv(x, head_filters, options)

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

    if isinstance(timm, TimmWeights):
        load_timm_weights(model, timm)
    elif weights is not None:
        load_keras_applications_weights(model, weights, alpha=alpha, rows=rows, cols=cols)
    return model


def vww_model(input_shape: tuple[int, int, int] = (96, 96, 3), **kwargs: Any) -> Any:
    """The MobileNet of MLPerf Tiny's Visual Wake Words benchmark (person or not).

    MLPerf Tiny's reference (mlcommons/tiny, ``vww_model.py``) is MobileNet V1
    at width 0.25 on 96x96x3 images with 2 classes and plain ReLU after every
    BatchNorm. This is `mobilenet.MobileNetV1` with those settings: the same
    layers and channels, so the same 208,112 kernel weights, 2 classifier
    biases and 10,944 BatchNorm values. The reference's convolutions also
    carry biases (2,736 values, one per output channel), which the BatchNorm
    right after each makes redundant; ours carry none, as in the paper, so it
    counts 219,058 parameters against the reference's 221,794 (219,058 +
    2,736). In an int8 file both become the same ops, since the converter
    folds BatchNorm and any bias into one bias per channel.

    Args:
        input_shape: ``(96, 96, 3)``, or ``(96, 96, 1)`` for a grayscale
            camera (no ImageNet weights exist for one channel; none are used).
        **kwargs: any other `MobileNetV1` argument, such as
            ``include_preprocessing=True`` for a model that takes pixels.

    Returns:
        A ``keras.Model``.

    Example:

    ```python
    from mobilenet.model import vww_model

    model = vww_model()                      # 96x96x3, 2 classes
    gray = vww_model(input_shape=(96, 96, 1))
    print(model.count_params())              # 219058
    ```
    """
    settings = {"num_classes": 2, "activation": "relu", "name": "mlperf_tiny_vww", **kwargs}
    return MobileNetV1(0.25, input_shape=input_shape, **settings)
