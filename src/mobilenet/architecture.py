"""MobileNet V1's architecture as data: paper Table 1 and the variants built on it.

Everything here is plain Python, with no Keras import. `layer_table` turns
paper Table 1 (``STEM`` and ``BLOCKS``) and a variant (width, Shallow or Conv
MobileNet, early downsampling, output stride) into the list of layers to
build, one `LayerSpec` each: the factory (`mobilenet.model`) walks it to build
layers, and the weights loader (`mobilenet.weights`) walks it to map
keras.applications' layers onto ours. A variant of the network is an edit of
the table, not a new code path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mobilenet._validation import check_choice, invalid

__all__ = [
    "BASE_RESOLUTION",
    "BLOCKS",
    "EARLY_DOWNSAMPLINGS",
    "MIN_INPUT_SIDE",
    "OUTPUT_STRIDES",
    "SHALLOW_REMOVED_BLOCKS",
    "STEM",
    "BlockSpec",
    "LayerSpec",
    "block_filters",
    "check_output_stride",
    "layer_strides",
    "layer_table",
    "network_stride",
]

#: The input side of the paper's full-resolution network.
BASE_RESOLUTION = 224
#: The smallest input side the factory accepts (the paper's network downsamples by 32).
MIN_INPUT_SIDE = 32
#: The blocks that the Shallow MobileNet of paper Table 6 removes (the five 14x14x512).
SHALLOW_REMOVED_BLOCKS = (7, 8, 9, 10, 11)
#: The combined strides of the stem and block 2 that ``early_downsampling`` may pick,
#: each with the layers (0 the stem, N block N) whose stride 2 it turns to 1: 4 is the
#: paper's network; 2 drops the stem's stride; 1 drops block 2's too.
_STRIDE_ONE_LAYERS = {4: (), 2: (0,), 1: (0, 2)}
EARLY_DOWNSAMPLINGS = tuple(_STRIDE_ONE_LAYERS)
#: The feature-map strides that ``output_stride`` may ask for.
OUTPUT_STRIDES = (8, 16, 32)


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


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a network to build: a row of `layer_table`.

    Attributes:
        kind: ``"stem"`` (the first 3x3 convolution), ``"separable"`` (a
            depthwise separable block) or ``"conv"`` (a full 3x3 convolution
            in a block's place: the Conv MobileNet of paper Table 4); each
            with BatchNorm and activation.
        number: 0 for the stem, N for block N (of 1..13, paper Table 1's
            order); the layer is named ``conv1`` or ``block_N``.
        filters: output channels, after the width multiplier.
        strides: the stride, after early downsampling and output stride.
        dilation: the dilation rate (above 1 past the output stride).
    """

    kind: str
    number: int
    filters: int
    strides: int
    dilation: int = 1

    @property
    def name(self) -> str:
        """The layer's name in the model: ``conv1`` for the stem, ``block_N`` for block N."""
        return f"block_{self.number}" if self.number else "conv1"


def block_filters(filters: int, alpha: float, min_depth: int = 8) -> int:
    """Channels of a layer with ``filters`` channels at alpha = 1: ``max(int(alpha*filters), min_depth)``."""
    return max(int(alpha * filters), min_depth)


def layer_strides(early_downsampling: int = 4) -> tuple[int, ...]:
    """The strides of the stem and of blocks 1..13, after ``early_downsampling``.

    Args:
        early_downsampling: 4, 2 or 1, the combined stride of the stem and
            block 2 (see `MobileNetV1`). Defaults to 4, paper Table 1.

    Returns:
        A tuple of 14 ints: the stem's stride, then each block's.

    Example:

    ```python
    from mobilenet.architecture import layer_strides

    layer_strides(4)  # (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
    layer_strides(1)  # (1, 1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
    ```
    """
    check_choice(early_downsampling, "early_downsampling", EARLY_DOWNSAMPLINGS)
    stride_one = _STRIDE_ONE_LAYERS[early_downsampling]
    return tuple(1 if number in stride_one else spec.strides
                 for number, spec in enumerate((STEM, *BLOCKS)))


def network_stride(early_downsampling: int = 4) -> int:
    """The ratio of input side to the last feature map's side: 32, 16 or 8.

    Removing blocks (the Shallow MobileNet) does not change it: the removed
    blocks all have stride 1.
    """
    return math.prod(layer_strides(early_downsampling))


def check_output_stride(output_stride: object, early_downsampling: int = 4) -> int | None:
    """``output_stride`` if the network can reach it, else the Keras-style ``ValueError``.

    The running stride only grows through the network, up to
    `network_stride`, so an ``output_stride`` above it can never be reached:
    with ``early_downsampling=2`` the whole network's stride is 16, so 32 is
    impossible; with 1 it is 8, so 16 and 32 are. Asking for exactly the
    network's stride is allowed and changes nothing.

    Args:
        output_stride: None or one of `OUTPUT_STRIDES`.
        early_downsampling: one of `EARLY_DOWNSAMPLINGS`.

    Returns:
        ``output_stride`` as it came (None or an int).
    """
    if output_stride is None:
        return None
    output_stride = check_choice(output_stride, "output_stride", (None, *OUTPUT_STRIDES))
    reachable = tuple(s for s in OUTPUT_STRIDES if s <= network_stride(early_downsampling))
    if output_stride not in reachable:
        raise invalid(
            "output_stride",
            f"None or one of {reachable}: early_downsampling={early_downsampling} makes "
            f"the whole network's stride {network_stride(early_downsampling)}, so a "
            "larger output stride can never be reached",
            output_stride,
        )
    return int(output_stride)


def layer_table(
    alpha: float = 1.0,
    *,
    min_depth: int = 8,
    separable: bool = True,
    shallow: bool = False,
    early_downsampling: int = 4,
    output_stride: int | None = None,
) -> tuple[LayerSpec, ...]:
    """The layers of a MobileNet V1 variant, stem first: what `MobileNetV1` builds.

    Paper Table 1 (``STEM`` and ``BLOCKS``) edited by the variant: channels
    times ``alpha`` (`block_filters`), the Shallow MobileNet's blocks
    (`SHALLOW_REMOVED_BLOCKS`) left out, the strides of `layer_strides`, and
    past ``output_stride`` each stride turned into dilation (TF-Slim's dense
    prediction). The arguments are `MobileNetV1`'s, already checked there.

    Returns:
        A tuple of `LayerSpec`: the stem, then each block kept.

    Example:

    ```python
    from mobilenet.architecture import layer_table

    table = layer_table(0.5, shallow=True, output_stride=16)
    [spec.name for spec in table][:3]  # ['conv1', 'block_1', 'block_2']
    len(table)  # 9: the stem and blocks 1-6, 12, 13
    table[-2]  # LayerSpec(kind='separable', number=12, filters=512, strides=1, dilation=1)
    table[-1].dilation  # 2
    ```
    """
    output_stride = check_output_stride(output_stride, early_downsampling)
    removed = SHALLOW_REMOVED_BLOCKS if shallow else ()
    block_kind = "separable" if separable else "conv"
    table = []
    stride, rate = 1, 1  # the running stride and dilation
    for number, (spec, strides) in enumerate(zip((STEM, *BLOCKS), layer_strides(early_downsampling))):
        if number in removed:
            continue  # all of stride 1, so the strides around them stay
        if stride == output_stride:  # past it, a stride grows the dilation instead
            strides, dilation, rate = 1, rate, rate * strides
        else:
            stride, dilation = stride * strides, 1
        table.append(LayerSpec(block_kind if number else "stem", number,
                               block_filters(spec.filters, alpha, min_depth), strides, dilation))
    return tuple(table)
