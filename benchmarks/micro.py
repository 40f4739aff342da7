"""Microcontrollers: file size, arena estimate vs TFLite Micro, TFLM vs LiteRT, the stand-in task.

Measures, for issue 25 (MLPerf Tiny's Visual Wake Words MobileNet):

1. the reference configuration's int8 file (`mobilenet.model.vww_model`,
   alpha 0.25, 96x96x3, 2 classes, ReLU; written by `to_micro`) against the
   333,288 bytes of MLPerf Tiny's own int8 file;
2. the tensor-arena estimate of `mobilenet.memory.memory_profile` against the
   smallest arena TensorFlow Lite Micro (the `tflite-micro` package) accepts,
   found by bisection, at alpha 0.25 and 0.5 and inputs 96 and 128;
3. the stand-in 2-class task (CIFAR-10 subset vehicles vs animals at 96x96,
   standing in for VWW): the trained model's float accuracy, its int8
   accuracy in TFLM, TFLM's top-1 agreement with LiteRT (default and
   reference kernels) on the subset's 1,000 test images, and TFLM's latency
   against LiteRT's on this CPU (relative only: a microcontroller is another
   world).

The files of 1 and 2 are converted from trained-for-one-epoch models
(calibrated on real images) so that their softmax scales are real ones.

Run it alone, from the repository root (about 10 minutes on 2 shared cores):

    PYTHONPATH=src python benchmarks/micro.py --data-dir ../shared/data/cifar10-subset
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import cpu_model_and_flags, load_line, versions  # noqa: E402

#: MLPerf Tiny's int8 VWW file (issue 25).
REFERENCE_BYTES = 333_288
VEHICLES = (0, 1, 8, 9)


def stand_in(data_dir: str, size: int):
    """(x_train, y_train), (x_test, y_test): vehicles (1) vs animals (0), pixels at ``size``."""
    import keras

    from mobilenet.cifar10 import load_cifar10

    (x_train, y_train), (x_test, y_test) = load_cifar10(data_dir)

    def prepare(images, labels):
        resized = keras.ops.convert_to_numpy(
            keras.ops.image.resize(images.astype("float32"), (size, size)))
        return np.clip(resized, 0, 255), np.isin(labels, VEHICLES).astype("int64")

    return prepare(x_train, y_train), prepare(x_test, y_test)


def trained(alpha: float, size: int, data, epochs: int, seed: int = 0):
    import keras

    from mobilenet.model import vww_model

    (x_train, y_train), _ = data
    keras.utils.set_random_seed(seed)
    model = vww_model(input_shape=(size, size, 3), include_preprocessing=True,
                      batch_norm_momentum=0.9)
    if alpha != 0.25:
        from mobilenet import MobileNetV1

        model = MobileNetV1(alpha, input_shape=(size, size, 3), num_classes=2, activation="relu",
                            include_preprocessing=True, batch_norm_momentum=0.9)
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    return model


def litert_raw(path, raw: np.ndarray, reference: bool) -> tuple[np.ndarray, float]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=kind,
                              num_threads=1)
    interpreter.allocate_tensors()
    (detail,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs, start = [], time.perf_counter()
    for image in raw:
        interpreter.set_tensor(detail["index"], image[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(outputs), (time.perf_counter() - start) / len(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/cifar10-subset")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of the 96x96 stand-in")
    args = parser.parse_args()

    from mobilenet.memory import memory_profile
    from mobilenet.export.micro import run_micro, smallest_arena, to_micro

    cpu, flags = cpu_model_and_flags()
    print(f"# benchmarks/micro.py\n\nCPU: {cpu}; flags: {', '.join(flags)}; {versions()}")
    print(f"load before: {load_line()}\n")
    folder = Path(tempfile.mkdtemp())
    data = {size: stand_in(args.data_dir, size) for size in (96, 128)}

    print("## Arena: estimate vs TFLite Micro's smallest working arena\n")
    print("| alpha | input | file bytes | estimate | TFLM smallest | estimate / smallest |")
    print("|---:|---:|---:|---:|---:|---:|")
    for alpha in (0.25, 0.5):
        for size in (96, 128):
            model = trained(alpha, size, data[size], epochs=1)
            path = to_micro(model, folder / f"m_{alpha}_{size}.tflite", data[size][0][0][:200])
            estimate = memory_profile(path).arena_bytes
            smallest = smallest_arena(path)
            print(f"| {alpha} | {size} | {path.stat().st_size:,} | {estimate:,} | {smallest:,} | "
                  f"{estimate / smallest:.4f} |", flush=True)

    print(f"\n## The stand-in task (vehicles vs animals, 96x96, alpha 0.25, {args.epochs} epochs)\n")
    (x_train, y_train), (x_test, y_test) = data[96]
    model = trained(0.25, 96, data[96], epochs=args.epochs)
    path = to_micro(model, folder / "vww.tflite", x_train[:500])
    size = path.stat().st_size
    print(f"reference int8 file: {size:,} bytes vs MLPerf Tiny's {REFERENCE_BYTES:,} "
          f"({size - REFERENCE_BYTES:+,})")
    float_top1 = model.predict(x_test, verbose=0).argmax(-1)
    raw = np.clip(np.round(x_test) - 128, -128, 127).astype(np.int8)
    start = time.perf_counter()
    micro = run_micro(path, raw, raw=True)
    micro_seconds = (time.perf_counter() - start) / len(raw)
    reference, _ = litert_raw(path, raw, reference=True)
    default, litert_seconds = litert_raw(path, raw, reference=False)
    print(f"test images: {len(x_test)} ({int(y_test.sum())} vehicles)")
    print(f"float accuracy (Keras): {np.mean(float_top1 == y_test):.1%}")
    print(f"int8 accuracy (TFLM): {np.mean(micro.argmax(-1) == y_test):.1%}")
    print(f"TFLM vs LiteRT reference kernels: top-1 agreement "
          f"{np.mean(micro.argmax(-1) == reference.argmax(-1)):.1%}, identical int8 outputs on "
          f"{np.mean(np.all(micro == reference, axis=-1)):.1%} of images")
    differs = micro.argmax(-1) != default.argmax(-1)
    print(f"TFLM vs LiteRT default (XNNPACK) kernels: top-1 agreement {1 - differs.mean():.1%}, "
          f"identical int8 outputs on {np.mean(np.all(micro == default, axis=-1)):.1%}; "
          f"largest output step difference {int(np.abs(micro.astype(int) - default).max())}")
    for index in np.flatnonzero(differs):
        print(f"  differs on image {index}: TFLM {micro[index].tolist()}, LiteRT "
              f"{default[index].tolist()}, float {model.predict(x_test[index:index + 1], verbose=0)[0].round(3).tolist()}")
    print(f"latency per image, one thread: TFLM reference kernels {micro_seconds * 1e3:.2f} ms, "
          f"LiteRT default {litert_seconds * 1e3:.2f} ms ({micro_seconds / litert_seconds:.1f}x)")
    print(f"\nload after: {load_line()}")


if __name__ == "__main__":
    main()
