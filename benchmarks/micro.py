"""Microcontrollers: file size, the offline memory plan against TFLite Micro's greedy one, the stand-in task.

Measures, for issues 25 and 32 (MLPerf Tiny's Visual Wake Words MobileNet):

1. at alpha 0.25 and 0.5 and inputs 96 and 128, and for the stand-in task's
   trained model: the int8 file's bytes, the activations' live peak, the
   smallest arena TensorFlow Lite Micro (the `tflite-micro` package) accepts,
   found by bisection, for the file with our offline memory plan
   (`mobilenet.export.micro.to_micro`'s default) and without it (TFLM's greedy
   planner), the estimate of `mobilenet.export.micro_memory.profile_tflite`
   against both, and whether the two files give the same int8 outputs and
   top-1 on the subset's test images;
2. the reference configuration's file (`mobilenet.model.vww_model`, alpha
   0.25, 96x96x3, 2 classes, ReLU) against the 333,288 bytes of MLPerf Tiny's
   own int8 file, and its RAM beside the published anchors (Cube.AI, TFLM's
   person_detection example, MLPerf Tiny's reference submission);
3. the stand-in 2-class task (CIFAR-10 subset vehicles vs animals at 96x96,
   standing in for VWW): the trained model's float accuracy, its int8
   accuracy in TFLM, TFLM's top-1 agreement with LiteRT (default and
   reference kernels), and TFLM's latency against LiteRT's on this CPU
   (relative only: a microcontroller is another world).

The files of 1 are converted from models trained for one epoch (calibrated
on real images) so that their softmax scales are real ones.

Run it alone, from the repository root (about 10 minutes on 2 shared cores):

    PYTHONPATH=src python benchmarks/micro.py --data-dir ../shared/data/cifar10-subset
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model_and_flags, load_line, progress, versions  # noqa: E402

#: MLPerf Tiny's int8 VWW file (issue 25).
REFERENCE_BYTES = 333_288
VEHICLES = (0, 1, 8, 9)
#: RAM others give the VWW MobileNet (issue 32): (who, activation bytes or None, bytes in all).
ANCHORS = (
    ("STM32 model zoo, Cube.AI on STM32H7", 68_567, round(83.29 * 1024)),
    ("TFLite Micro's person_detection example (kTensorArenaSize)", None, 136 * 1024),
    ("MLPerf Tiny's reference submission", None, 200 * 1024),
)


@dataclasses.dataclass(frozen=True)
class PlanRow:
    """One model's file in TFLM with and without the offline plan."""

    model: str
    file_bytes: int
    peak_live: int
    greedy_activations: int
    offline_activations: int
    greedy_smallest: int
    offline_smallest: int
    estimate: int
    estimate_32bit: int
    same_int8: float
    same_top1: float
    images: int


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

    from mobilenet import MobileNetV1

    (x_train, y_train), _ = data
    keras.utils.set_random_seed(seed)
    model = MobileNetV1(alpha, input_shape=(size, size, 3), num_classes=2, activation="relu",
                        include_preprocessing=True, batch_norm_momentum=0.9,
                        name="mlperf_tiny_vww")
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    return model


def measure_plan(name: str, greedy_path: Path, test_images: np.ndarray) -> PlanRow:
    """The greedy file against the same file with the offline plan `to_micro` writes by default."""
    from mobilenet.export.micro import run_micro, smallest_arena
    from mobilenet.export.micro_memory import profile_tflite, with_memory_plan

    planned = with_memory_plan(greedy_path.read_bytes())
    memory, greedy = profile_tflite(planned), profile_tflite(greedy_path)
    raw = np.clip(np.round(test_images) - 128, -128, 127).astype(np.int8)
    with_plan = run_micro(planned, raw, raw=True, arena_size=memory.arena_bytes)
    without = run_micro(greedy_path, raw, raw=True)
    return PlanRow(
        model=name, file_bytes=len(planned), peak_live=memory.peak_live_bytes,
        greedy_activations=greedy.activation_bytes, offline_activations=memory.activation_bytes,
        greedy_smallest=smallest_arena(greedy_path), offline_smallest=smallest_arena(planned),
        estimate=memory.arena_bytes, estimate_32bit=memory.arena_bytes_32bit,
        same_int8=float(np.mean(np.all(with_plan == without, axis=-1))),
        same_top1=float(np.mean(with_plan.argmax(-1) == without.argmax(-1))), images=len(raw),
    )


def report_plans(rows: list[PlanRow]) -> str:
    lines = [
        "| model | file bytes | live peak | activations greedy / offline | TFLM smallest greedy "
        "| TFLM smallest offline | estimate (64-bit) | estimate / smallest offline "
        "| 32-bit estimate | same int8 / top-1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.model} | {row.file_bytes:,} | {row.peak_live:,} | {row.greedy_activations:,} / "
            f"{row.offline_activations:,} | {row.greedy_smallest:,} | {row.offline_smallest:,} | "
            f"{row.estimate:,} | {row.estimate / row.offline_smallest:.4f} | ~{row.estimate_32bit:,} | "
            f"{row.same_int8:.0%} / {row.same_top1:.0%} of {row.images} |")
    return "\n".join(lines)


def report_anchors(row: PlanRow) -> str:
    lines = [
        "| who | activations | arena in all |",
        "|---|---:|---:|",
        f"| this library, offline plan, TFLM on this 64-bit host (measured smallest) | "
        f"{row.offline_activations:,} | {row.offline_smallest:,} |",
        f"| this library, offline plan, 32-bit microcontroller (estimate) | "
        f"{row.offline_activations:,} | ~{row.estimate_32bit:,} |",
        f"| this library, TFLM's greedy planner (measured smallest) | {row.greedy_activations:,} | "
        f"{row.greedy_smallest:,} |",
    ]
    for who, activations, total in ANCHORS:
        lines.append(f"| {who} | {'' if activations is None else f'{activations:,}'} | {total:,} |")
    return "\n".join(lines)


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
    parser.add_argument("--plan-images", type=int, default=200,
                        help="test images run with and without the plan per model")
    args = parser.parse_args()

    from mobilenet.export.micro import run_micro, to_micro

    cpu, flags = cpu_model_and_flags()
    print(f"# benchmarks/micro.py\n\nCPU: {cpu}; flags: {', '.join(flags)}; {versions()}")
    print(f"load before: {load_line()}\n")
    folder = Path(tempfile.mkdtemp())
    data = {size: stand_in(args.data_dir, size) for size in (96, 128)}

    rows = []
    for alpha in (0.25, 0.5):
        for size in (96, 128):
            model = trained(alpha, size, data[size], epochs=1)
            path = to_micro(model, folder / f"m_{alpha}_{size}.tflite", data[size][0][0][:200],
                            memory_plan="greedy")
            rows.append(measure_plan(f"alpha {alpha}, {size}x{size}, 1 epoch", path,
                                     data[size][1][0][:args.plan_images]))
            progress(report_plans(rows[-1:]).splitlines()[-1])

    (x_train, y_train), (x_test, y_test) = data[96]
    model = trained(0.25, 96, data[96], epochs=args.epochs)
    path = to_micro(model, folder / "vww.tflite", x_train[:500], memory_plan="greedy")
    stand_in_row = measure_plan(f"the stand-in task (VWW configuration, {args.epochs} epochs)",
                                path, x_test[:args.plan_images])
    rows.append(stand_in_row)
    print("## Arena: the offline plan against TFLite Micro's greedy planner\n")
    print(report_plans(rows))
    print("\n## The VWW configuration beside others' figures (bytes)\n")
    print(report_anchors(stand_in_row))

    print(f"\n## The stand-in task (vehicles vs animals, 96x96, alpha 0.25, {args.epochs} epochs)\n")
    planned = folder / "vww_planned.tflite"
    to_micro(model, planned, x_train[:500])
    size = planned.stat().st_size
    print(f"reference int8 file (with its plan): {size:,} bytes vs MLPerf Tiny's "
          f"{REFERENCE_BYTES:,} ({size - REFERENCE_BYTES:+,})")
    float_top1 = model.predict(x_test, verbose=0).argmax(-1)
    raw = np.clip(np.round(x_test) - 128, -128, 127).astype(np.int8)
    start = time.perf_counter()
    micro = run_micro(planned, raw, raw=True)
    micro_seconds = (time.perf_counter() - start) / len(raw)
    reference, _ = litert_raw(planned, raw, reference=True)
    default, litert_seconds = litert_raw(planned, raw, reference=False)
    print(f"test images: {len(x_test)} ({int(y_test.sum())} vehicles)")
    print(f"float accuracy (Keras): {np.mean(float_top1 == y_test):.1%}")
    print(f"int8 accuracy (TFLM, planned arena): {np.mean(micro.argmax(-1) == y_test):.1%}")
    print(f"TFLM vs LiteRT reference kernels: top-1 agreement "
          f"{np.mean(micro.argmax(-1) == reference.argmax(-1)):.1%}, identical int8 outputs on "
          f"{np.mean(np.all(micro == reference, axis=-1)):.1%} of images")
    differs = micro.argmax(-1) != default.argmax(-1)
    print(f"TFLM vs LiteRT default (XNNPACK) kernels: top-1 agreement {1 - differs.mean():.1%}, "
          f"identical int8 outputs on {np.mean(np.all(micro == default, axis=-1)):.1%}; "
          f"largest output step difference {int(np.abs(micro.astype(int) - default).max())}")
    print(f"latency per image, one thread: TFLM reference kernels {micro_seconds * 1e3:.2f} ms, "
          f"LiteRT default {litert_seconds * 1e3:.2f} ms ({micro_seconds / litert_seconds:.1f}x)")
    print(f"\nload after: {load_line()}")


if __name__ == "__main__":
    main()
