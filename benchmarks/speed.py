"""Speed, size and int8 agreement: ours vs keras.applications.MobileNet, Keras vs LiteRT.

Measures, in one process with TensorFlow's default threading (all cores):

1. Keras inference at batch 1 and 32 (224x224 at alpha 1.0 and 0.25, 32x32 at
   alpha 1.0): ``keras.applications.MobileNet``, our ``MobileNetV1`` and ours
   after ``fold_batchnorm``. Each model runs as one ``tf.function`` of
   ``model(x, training=False)``.
2. A Keras training step (``train_on_batch``) at 32x32, batch 64, alpha 1.0.
3. LiteRT at batch 1: float32, float16 and int8 files of ours, with sizes, and
   the pointwise conv written as matmul vs as conv.
4. int8 agreement: a MobileNetV1 (alpha 0.5, 32x32) trained here for a few
   minutes on the shared CIFAR-10 subset's training batches, exported to int8
   (calibrated on 500 training images) and compared with the float model on
   the subset's 1,000 test images.

Every figure is the median of several timed repeats after two warm-up runs.
Prints markdown tables. Run through the shared lock so benchmarks never overlap:

    flock /work/bench.lock python benchmarks/speed.py
    python benchmarks/speed.py --quick     # a one-minute smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

DEFAULT_CIFAR10 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


def interleaved_rates(steps: dict, repeats: int, min_seconds: float = 0.0) -> dict:
    """Images/s of each ``(step, images)`` in ``steps``: medians over interleaved rounds.

    Every step runs twice to warm up, then the steps take turns, one timed run
    each per round, for at least ``repeats`` rounds and ``min_seconds``. Taking
    turns spreads the load of anything else on the machine evenly over the
    compared models, so their ratios stay fair on a shared CPU.
    """
    for step, _ in steps.values():
        step()
        step()
    times: dict = {name: [] for name in steps}
    started = time.perf_counter()
    rounds = 0
    while rounds < repeats or (time.perf_counter() - started < min_seconds and rounds < 200):
        for name, (step, _) in steps.items():
            begin = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - begin)
        rounds += 1
    return {name: steps[name][1] / statistics.median(times[name]) for name in steps}


def keras_inference(args, keras, tf, np, MobileNetV1, fold_batchnorm):
    configs = [(32, 1.0)] if args.quick else [(224, 1.0), (224, 0.25), (32, 1.0)]
    batches = (1, 8) if args.quick else (1, 32)
    rows = []
    for size, alpha in configs:
        models = {
            "keras.applications": keras.applications.MobileNet(
                input_shape=(size, size, 3), alpha=alpha, weights=None, classes=1000
            ),
            "ours": MobileNetV1(alpha=alpha, input_shape=(size, size, 3), num_classes=1000),
        }
        models["ours, BN folded"] = fold_batchnorm(models["ours"])
        for batch in batches:
            x = tf.constant(np.random.default_rng(0).random((batch, size, size, 3), np.float32))
            steps = {}
            for name, model in models.items():
                forward = tf.function(lambda x, model=model: model(x, training=False))
                steps[name] = (lambda forward=forward: forward(x).numpy(), batch)
            rates = interleaved_rates(steps, args.repeats, args.min_seconds)
            base = rates["keras.applications"]
            rows.append(
                f"| {size}x{size} | {alpha} | {batch} | {base:.1f} | {rates['ours']:.1f} "
                f"| {rates['ours, BN folded']:.1f} | {rates['ours'] / base:.2f}x "
                f"| {rates['ours, BN folded'] / base:.2f}x "
                f"| {rates['ours, BN folded'] / rates['ours']:.2f}x |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
        del models
        keras.backend.clear_session()
    header = (
        "| input | alpha | batch | keras.applications img/s | ours img/s | ours BN-folded img/s "
        "| ours / keras.app | folded / keras.app | folded / ours |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    return header + "\n" + "\n".join(rows)


def keras_training(args, keras, tf, np, MobileNetV1):
    batch = 16 if args.quick else 64
    rng = np.random.default_rng(0)
    x = rng.random((batch, 32, 32, 3), np.float32)
    y = rng.integers(0, 10, batch)
    steps = {}
    for name, build in {
        "keras.applications": lambda: keras.applications.MobileNet(
            input_shape=(32, 32, 3), alpha=1.0, weights=None, classes=10
        ),
        "ours": lambda: MobileNetV1(alpha=1.0, input_shape=(32, 32, 3), num_classes=10),
    }.items():
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=False)
        steps[name] = (lambda model=model: model.train_on_batch(x, y), batch)
    rates = interleaved_rates(steps, max(3, args.repeats // 2))
    base = rates["keras.applications"]
    return (
        "| step | batch | keras.applications img/s | ours img/s | ours / keras.app |\n"
        "|---|---|---|---|---|\n"
        f"| train_on_batch, 32x32, alpha 1.0 | {batch} | {base:.1f} | {rates['ours']:.1f} "
        f"| {rates['ours'] / base:.2f}x |"
    )


def litert_step(path, np, interpreter_for, threads: int):
    """One batch-1 inference of the file at ``path`` (input and invoke), as a callable."""
    interpreter = interpreter_for(path, threads)
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    x = np.random.default_rng(0).integers(0, 255, detail["shape"]).astype(detail["dtype"])

    def step():
        interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()

    return step


def op_counts(path, interpreter_for) -> str:
    interpreter = interpreter_for(path, 1)
    counts = Counter(op["op_name"] for op in interpreter._get_ops_details())
    return ", ".join(f"{n} {name}" for name, n in counts.most_common())


def litert(args, keras, tf, np, MobileNetV1, export, folder: Path):
    configs = [(32, 1.0)] if args.quick else [(224, 1.0), (224, 0.25), (32, 1.0)]
    rows, op_rows = [], []
    for size, alpha in configs:
        model = MobileNetV1(alpha=alpha, input_shape=(size, size, 3), num_classes=1000)
        # Speed only: random images in [0, 1] are enough to calibrate.
        calibration = np.random.default_rng(1).random((32, size, size, 3), np.float32)
        variants = [("float32", None, True), ("float16", "float16", True), ("int8", "int8", True)]
        if (size, alpha) == configs[0]:
            variants += [("float32, pw as matmul", None, False), ("int8, pw as matmul", "int8", False)]
        sizes, steps = {}, {}
        for label, quantization, as_conv in variants:
            path = folder / f"m{size}_{alpha}_{label.replace(', ', '_').replace(' ', '_')}.tflite"
            export.to_tflite(
                model, path, quantization,
                representative_data=calibration if quantization == "int8" else None,
                pointwise_as_conv=as_conv,
            )
            sizes[label] = path.stat().st_size
            steps[label] = (litert_step(path, np, export._interpreter, args.threads), 1)
            if (size, alpha) == configs[0] and label in ("float32", "float32, pw as matmul"):
                op_rows.append(f"| {'conv' if as_conv else 'matmul'} "
                               f"| {op_counts(path, export._interpreter)} |")
        # Our Keras model at batch 1 takes turns with the files, for a fair ratio.
        x = tf.constant(np.random.default_rng(0).random((1, size, size, 3), np.float32))
        forward = tf.function(lambda x: model(x, training=False))
        steps["keras"] = (lambda: forward(x).numpy(), 1)
        rates = interleaved_rates(steps, args.repeats * 3, args.min_seconds * 2)
        keras_rate = rates.pop("keras")
        for label in sizes:
            rows.append(
                f"| {size}x{size} | {alpha} | {label} | {sizes[label] / 1e6:.2f} "
                f"| {sizes[label] / sizes['float32']:.0%} | {rates[label]:.1f} | {keras_rate:.1f} "
                f"| {rates[label] / keras_rate:.2f}x |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
        keras.backend.clear_session()
    table = (
        "| input | alpha | file | size MB | size / float32 | LiteRT img/s (batch 1) "
        "| our Keras img/s (batch 1) | LiteRT / our Keras |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    ops = "| pointwise conv written as | LiteRT ops |\n|---|---|\n" + "\n".join(op_rows)
    return table, ops


def int8_agreement(args, keras, tf, np, MobileNetV1, export, folder: Path):
    batches = Path(args.cifar10_dir) / "cifar-10-batches-py"
    if not batches.is_dir():
        return f"(skipped: no CIFAR-10 subset at {batches})"
    from mobilenet.cifar10 import load_cifar10

    (x_train, y_train), (x_test, y_test) = load_cifar10(args.cifar10_dir)
    x_train = x_train.astype(np.float32) / 255.0
    x_test = x_test.astype(np.float32) / 255.0
    if args.quick:
        x_test, y_test = x_test[:200], y_test[:200]

    keras.utils.set_random_seed(0)
    model = MobileNetV1(alpha=0.5, input_shape=(32, 32, 3), num_classes=10, dropout=0.2)
    epochs = 2 if args.quick else args.epochs
    steps = epochs * -(-len(x_train) // 64)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"], jit_compile=False,
    )
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"),
                                keras.layers.RandomTranslation(0.1, 0.1)])
    data = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(2500, seed=0).batch(64)
        .map(lambda x, y: (augment(x, training=True), y)).prefetch(2)
    )
    started = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0)
    train_minutes = (time.perf_counter() - started) / 60
    if args.save_model:
        model.save(args.save_model)

    probabilities = model.predict(x_test, verbose=0)
    float_accuracy = float(np.mean(probabilities.argmax(-1) == y_test))
    top2 = np.sort(probabilities, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= 0.1  # images the float model does not nearly tie on
    calibration = x_train[np.random.default_rng(0).permutation(len(x_train))[:500]]
    rows = []
    for label, quantization in (("float32", None), ("float16", "float16"),
                                ("dynamic", "dynamic"), ("int8", "int8")):
        path = folder / f"cifar_{label}.tflite"
        export.to_tflite(model, path, quantization,
                         representative_data=calibration if quantization == "int8" else None)
        report = export.verify_tflite(path, model, x_test)
        outputs = export.run_tflite(path, x_test)
        agree = outputs.argmax(-1) == probabilities.argmax(-1)
        rows.append(
            f"| {label} | {report.input_type} | {path.stat().st_size / 1e6:.3f} "
            f"| {report.top1_agreement:.1%} | {np.mean(agree[clear]):.1%} "
            f"| {np.mean(agree[~clear]):.1%} | {report.max_abs_diff:.4f} "
            f"| {np.mean(outputs.argmax(-1) == y_test):.1%} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    return (
        f"MobileNetV1(alpha=0.5, 32x32, 10 classes), trained {train_minutes:.1f} min "
        f"({epochs} epochs, Adam with cosine decay from 2e-3, flip+translate) on the subset's 2,500 "
        f"training images; Keras float test accuracy {float_accuracy:.1%} on {len(y_test)} test "
        "images. int8 calibrated on 500 training images. "
        f"{clear.mean():.0%} of the test images have a float top-1 margin (p1 - p2) of at "
        "least 0.1; agreement is also shown separately for them and for the near ties.\n\n"
        "| file | input type | size MB | top-1 agreement with Keras | agreement, margin >= 0.1 "
        "| agreement, margin < 0.1 | max abs diff (probabilities) | test accuracy |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per figure")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="keep repeating a figure until this much time has passed")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="LiteRT threads")
    parser.add_argument("--epochs", type=int, default=20, help="epochs for the int8 agreement model")
    parser.add_argument("--cifar10-dir", default=str(DEFAULT_CIFAR10),
                        help="folder holding cifar-10-batches-py/")
    parser.add_argument("--save-model", help="save the int8-agreement model here (.keras)")
    parser.add_argument("--skip", nargs="*", default=(),
                        choices=("inference", "training", "litert", "int8"))
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.min_seconds = args.min_seconds if args.min_seconds is not None else (0.0 if args.quick else 2.0)

    import keras
    import numpy as np
    import tensorflow as tf

    from mobilenet import MobileNetV1
    from mobilenet import export

    print(f"# mobilenet speed benchmark{' (--quick)' if args.quick else ''}\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    print(f"- machine: {cpu}, {os.cpu_count()} CPU cores, {platform.platform()}")
    print(f"- TensorFlow {tf.__version__}, Keras {keras.__version__}, NumPy {np.__version__}, "
          f"Python {platform.python_version()}; LiteRT threads {args.threads}")
    print(f"- command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"- each figure: median of >= {args.repeats} timed runs (and >= {args.min_seconds} s) "
          "after 2 warm-up runs\n")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "inference" not in args.skip:
            print("## Keras inference (images/s)\n")
            table = keras_inference(args, keras, tf, np, MobileNetV1, export.fold_batchnorm)
            print("\n" + table + "\n")
        if "training" not in args.skip:
            print("## Keras training step (images/s)\n")
            print(keras_training(args, keras, tf, np, MobileNetV1) + "\n")
        if "litert" not in args.skip:
            print("## LiteRT, batch 1\n")
            table, ops = litert(args, keras, tf, np, MobileNetV1, export, folder)
            print("\n" + table + "\n\n" + ops + "\n")
        if "int8" not in args.skip:
            print("## int8 agreement on the CIFAR-10 subset's test images\n")
            print(int8_agreement(args, keras, tf, np, MobileNetV1, export, folder) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
