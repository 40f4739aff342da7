"""Where the time of a Keras inference goes: our model, folded, and its convolutions alone.

Explains the BN-folding figure of `speed.py` at 224x224, alpha 1.0, batch 32:
times our model, its `fold_batchnorm` copy, the 13 pointwise matmuls alone and
the 13 depthwise convolutions alone, with the model's own shapes, taking
turns (`_common.interleaved_rates`: medians of 5 rounds after 2 warm-ups).

    flock /work/bench.lock python benchmarks/fold_profile.py
    python benchmarks/fold_profile.py --batch 1   # a smoke run
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402

from _common import interleaved_rates, machine_header, report  # noqa: E402  (benchmarks/_common.py)


@dataclasses.dataclass
class Row:
    """One part of the network: milliseconds per batch."""

    part: str
    milliseconds: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="images per batch (default: 32)")
    batch = parser.parse_args().batch

    import numpy as np
    import tensorflow as tf

    from mobilenet import DepthwiseSeparableConv2D, MobileNetV1
    from mobilenet.export import fold_batchnorm

    rng = np.random.default_rng(0)
    model = MobileNetV1(alpha=1.0, input_shape=(224, 224, 3))
    folded = fold_batchnorm(model)
    blocks = [layer for layer in model.layers if isinstance(layer, DepthwiseSeparableConv2D)]

    def random(*shape):
        return tf.constant(rng.random(shape, np.float32))

    x = random(batch, 224, 224, 3)
    # Pointwise: (N*H*W, C_in) @ (C_in, C_out) at the block's output size.
    pointwise = [
        (random(batch * b.output.shape[1] * b.output.shape[2], b.input.shape[-1]),
         random(b.input.shape[-1], b.filters))
        for b in blocks
    ]
    depthwise = [
        (random(batch, *b.input.shape[1:]), random(3, 3, b.input.shape[-1], 1), b.strides[0])
        for b in blocks
    ]
    steps = {
        "our model": tf.function(lambda: model(x, training=False)),
        "our model, BN folded": tf.function(lambda: folded(x, training=False)),
        "13 pointwise matmuls alone": tf.function(
            lambda: [tf.matmul(a, w) for a, w in pointwise]
        ),
        "13 depthwise convs alone": tf.function(
            lambda: [tf.nn.depthwise_conv2d(a, k, [1, s, s, 1], "SAME") for a, k, s in depthwise]
        ),
    }
    # One "image" per batch: the rate is batches/s, its inverse the time of one.
    rates = interleaved_rates(
        {name: (lambda step=step: [out.numpy() for out in tf.nest.flatten(step())], 1)
         for name, step in steps.items()},
        repeats=5,
    )
    rows = [Row(name, 1000 / rate) for name, rate in rates.items()]
    print(machine_header())
    print(report(rows, {"part": (f"part (224x224, alpha 1.0, batch {batch})", None),
                        "milliseconds": ("ms per batch", ".0f")}, title=""))


if __name__ == "__main__":
    main()
