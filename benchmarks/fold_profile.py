"""Where the time of a Keras inference goes: our model, folded, and its convolutions alone.

Explains the BN-folding figure of `speed.py` at 224x224, alpha 1.0, batch 32:
times our model, its `fold_batchnorm` copy, the 13 pointwise matmuls alone and
the 13 depthwise convolutions alone, with the model's own shapes, in one
interleaved loop (medians of 5 rounds after 2 warm-ups).

    flock /work/bench.lock python benchmarks/fold_profile.py
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    import numpy as np
    import tensorflow as tf

    from mobilenet import DepthwiseSeparableConv2D, MobileNetV1
    from mobilenet.export import fold_batchnorm

    batch, rng = 32, np.random.default_rng(0)
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
    for step in steps.values():
        step()
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(5):
        for name, step in steps.items():
            begin = time.perf_counter()
            for output in tf.nest.flatten(step()):
                output.numpy()
            times[name].append(time.perf_counter() - begin)
    print("| part (224x224, alpha 1.0, batch 32) | ms per batch |\n|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values) * 1000:.0f} |")


if __name__ == "__main__":
    main()
