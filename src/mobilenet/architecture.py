"""MobileNet V1's architecture as data: paper Table 1 and the variants built on it.

Everything here is plain Python, with no Keras import: the factory
(`mobilenet.model`) walks these tables to build layers, and the weights loader
(`mobilenet.weights`) walks them to map keras.applications' layers onto ours.
A variant of the network is an edit of these tables, not a new code path.
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
    "block_filters",
    "check_output_stride",
    "layer_strides",
    "network_stride",
]

#: The input side of the paper's full-resolution network.
BASE_RESOLUTION = 224
#: The smallest input side the factory accepts (the paper's network downsamples by 32).
MIN_INPUT_SIDE = 32
#: The blocks that the Shallow MobileNet of paper Table 6 removes (the five 14x14x512).
SHALLOW_REMOVED_BLOCKS = (7, 8, 9, 10, 11)
#: The combined strides of the stem and block 2 that ``early_downsampling`` may pick:
#: 4 is the paper's; 2 drops the stem's stride; 1 drops block 2's too.
EARLY_DOWNSAMPLINGS = (4, 2, 1)
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
    strides = [STEM.strides, *(spec.strides for spec in BLOCKS)]
    if early_downsampling < 4:
        strides[0] = 1  # the stem
    if early_downsampling < 2:
        strides[2] = 1  # block 2
    return tuple(strides)


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
