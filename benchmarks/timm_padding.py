"""Speed of timm's symmetric padding against TensorFlow's "same", batch 1 at 224.

`MobileNetV1(padding="symmetric")` (what timm's weights load into) adds a
``ZeroPadding2D`` before each of the five stride-2 layers and makes their
convolutions "valid"; everything else is the "same" model's. This times
both, alpha 1.0 at 224x224, batch 1, with random weights (speed does not
depend on their values):

- Keras: a ``tf.function`` of ``model(x, training=False)`` each;
- LiteRT float32 (`mobilenet.export.to_tflite`, `LiteRTRunner`), with
  ``--litert``;
- ONNX Runtime float32 (`mobilenet.export.to_onnx`, `ONNXRunner`), with
  ``--onnx``.

The two models of a runtime are timed in turns (`interleaved_rates`), so
other load on the machine hits them alike. Prints a markdown table, the
machine and the load. From the repository root, through the shared lock:

    PYTHONPATH=src flock /work/bench.lock python benchmarks/timm_padding.py --litert --onnx
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass

import numpy as np
from _common import cpu_model_and_flags, interleaved_rates, load_line, progress, versions


@dataclass(frozen=True)
class Row:
    runtime: str
    same: float  # images/s
    symmetric: float

    @property
    def ratio(self) -> float:
        return self.symmetric / self.same


def _keras_step(model, x):
    import tensorflow as tf

    call = tf.function(lambda images: model(images, training=False))
    return lambda: call(x).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed turns per model")
    parser.add_argument("--litert", action="store_true", help="also LiteRT float32 files")
    parser.add_argument("--onnx", action="store_true", help="also ONNX Runtime float32 files")
    args = parser.parse_args()

    from mobilenet import MobileNetV1

    start_load = load_line()
    models = {padding: MobileNetV1(padding=padding, include_preprocessing=True)
              for padding in ("same", "symmetric")}
    x = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3)).astype("float32")
    rows = []
    progress("keras")
    rates = interleaved_rates({p: (_keras_step(m, x), 1) for p, m in models.items()}, args.repeats)
    rows.append(Row("Keras (TensorFlow)", rates["same"], rates["symmetric"]))
    with tempfile.TemporaryDirectory() as folder:
        if args.litert:
            from mobilenet.export import LiteRTRunner, to_tflite

            progress("litert")
            runners = {p: LiteRTRunner(to_tflite(m, os.path.join(folder, f"{p}.tflite")))
                       for p, m in models.items()}
            rates = interleaved_rates({p: ((lambda r=r: r.run(x)), 1) for p, r in runners.items()},
                                      args.repeats)
            rows.append(Row("LiteRT float32", rates["same"], rates["symmetric"]))
        if args.onnx:
            from mobilenet.export import ONNXRunner, to_onnx

            progress("onnx")
            runners = {p: ONNXRunner(to_onnx(m, os.path.join(folder, f"{p}.onnx")))
                       for p, m in models.items()}
            rates = interleaved_rates({p: ((lambda r=r: r.run(x)), 1) for p, r in runners.items()},
                                      args.repeats)
            rows.append(Row("ONNX Runtime float32", rates["same"], rates["symmetric"]))

    cpu, flags = cpu_model_and_flags()
    print(f"CPU: {cpu} ({', '.join(flags) or 'no listed ISA flags'}); {versions()}")
    print(f"At the start: {start_load}")
    print(f"At the end: {load_line()}\n")
    print("| runtime (alpha 1.0, 224x224, batch 1) | same (images/s) | symmetric (images/s) | symmetric / same |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row.runtime} | {row.same:.1f} | {row.symmetric:.1f} | {row.ratio:.3f} |")


if __name__ == "__main__":
    main()
