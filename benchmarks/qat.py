"""Quantization-aware training against post-training quantization, on the CIFAR-10 subset.

For each model (the main job's, α 0.5, and α 0.25) and seed, one run of
`mobilenet.training.train` with ``qat_epochs``: the float epochs, then the
quantization-aware ones (the float model is kept as ``float.keras``). Then,
on the subset's 1,000 test images:

- the float model's accuracy (Keras);
- post-training int8 (PTQ): `to_tflite` calibrated on 500 training images,
  with per-channel weights and with per-tensor weights;
- quantization-aware int8 (QAT): `to_tflite` of the QAT model, no calibration
  data, per-channel; and per-tensor, from a second QAT run on the same float
  model with ``quantize_aware(per_channel=False)``;
- each QAT file's top-1 agreement with its QAT Keras model;
- the seconds of the float epochs and of the QAT epochs (tracing included).

Run it alone, from the repository root (about 6 minutes per model and seed
on 2 cores):

    PYTHONPATH=src python benchmarks/qat.py --data-dir ../shared/data/cifar10-subset

``--results-file`` writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _common import cpu_model_and_flags, load_line, progress, versions  # noqa: E402

DEFAULT_CIFAR10 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
#: The models: the main job's (examples/cifar10.py) and a smaller one.
MODELS = {"main job (α 0.5)": 0.5, "α 0.25": 0.25}
CALIBRATION_IMAGES = 500


@dataclasses.dataclass
class Row:
    model: str
    seed: int
    float_accuracy: float
    ptq_accuracy: float
    qat_accuracy: float
    qat_keras_accuracy: float
    qat_agreement: float
    ptq_per_tensor_accuracy: float
    qat_per_tensor_accuracy: float
    qat_per_tensor_agreement: float
    float_seconds: float
    qat_seconds: float


class EpochTimes:
    """Seconds of each epoch of a `train` run (a Keras callback, made lazily)."""

    def __init__(self) -> None:
        import keras

        times = self.times = []

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.start)

        self.callback = Callback()


def litert_predictions(path: Path, images: np.ndarray) -> np.ndarray:
    from mobilenet.export import LiteRTRunner

    return LiteRTRunner(path).run(images).argmax(axis=1)


def run(alpha: float, label: str, seed: int, args: argparse.Namespace, data, work: Path) -> Row:
    import keras

    from mobilenet.export import to_tflite
    from mobilenet.quantization import quantize_aware
    from mobilenet.saving import load_model
    from mobilenet.training import FLOAT_MODEL, RECIPE, train

    (x_train, y_train), (x_test, y_test) = data
    folder = work / f"{alpha}-{seed}"
    timer = EpochTimes()
    recipe = dataclasses.replace(RECIPE, epochs=args.epochs, qat_epochs=args.qat_epochs,
                                 alpha=alpha, seed=seed, validation_fraction=0.0)
    result = train((x_train, y_train), output_dir=folder, recipe=recipe,
                   extra_callbacks=[timer.callback], verbose=0)
    float_model = load_model(folder / FLOAT_MODEL)
    qat_model = result.model
    calibration = x_train[:CALIBRATION_IMAGES].astype("float32")

    def accuracy(predicted: np.ndarray) -> float:
        return float(np.mean(predicted == y_test))

    def keras_top1(model) -> np.ndarray:
        return model.predict(x_test.astype("float32"), batch_size=256, verbose=0).argmax(axis=1)

    files = {}
    files["ptq"] = to_tflite(float_model, folder / "ptq.tflite", "int8", calibration)
    files["ptq_tensor"] = to_tflite(float_model, folder / "ptq_tensor.tflite", "int8",
                                    calibration, per_channel=False)
    files["qat"] = to_tflite(qat_model, folder / "qat.tflite", "int8")

    # Per-tensor QAT: the same QAT epochs from the same float model, through `train`.
    steps = args.qat_epochs * (len(x_train) // RECIPE.batch_size)
    keras.utils.set_random_seed(seed)
    per_tensor = quantize_aware(
        float_model, per_channel=False,
        freeze_batch_norm_after=max(1, round(RECIPE.qat_batch_norm_freeze * steps)),
        freeze_ranges_after=max(1, round(RECIPE.qat_range_freeze * steps)))
    tensor_recipe = dataclasses.replace(RECIPE, epochs=args.qat_epochs, seed=seed,
                                        validation_fraction=0.0,
                                        learning_rate=RECIPE.learning_rate * RECIPE.qat_factor)
    tensor_result = train((x_train, y_train), model=per_tensor, output_dir=folder / "per-tensor",
                          recipe=tensor_recipe, verbose=0)
    files["qat_tensor"] = to_tflite(tensor_result.model, folder / "qat_tensor.tflite", "int8")

    top1 = {name: litert_predictions(path, x_test) for name, path in files.items()}
    qat_keras = keras_top1(qat_model)
    tensor_keras = keras_top1(tensor_result.model)
    return Row(
        model=label, seed=seed,
        float_accuracy=accuracy(keras_top1(float_model)),
        ptq_accuracy=accuracy(top1["ptq"]),
        qat_accuracy=accuracy(top1["qat"]),
        qat_keras_accuracy=accuracy(qat_keras),
        qat_agreement=float(np.mean(top1["qat"] == qat_keras)),
        ptq_per_tensor_accuracy=accuracy(top1["ptq_tensor"]),
        qat_per_tensor_accuracy=accuracy(top1["qat_tensor"]),
        qat_per_tensor_agreement=float(np.mean(top1["qat_tensor"] == tensor_keras)),
        float_seconds=sum(timer.times[:args.epochs]),
        qat_seconds=sum(timer.times[args.epochs:]),
    )


def report(rows: list[Row], args: argparse.Namespace) -> str:
    """The Markdown tables: every run, then the mean per model, with the goals."""
    lines = [
        "| model | seed | float | PTQ int8 | QAT int8 (LiteRT) | QAT Keras | file = QAT Keras "
        "| PTQ per-tensor | QAT per-tensor | per-tensor file = Keras | float s | QAT s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.seed} | {r.float_accuracy:.1%} | {r.ptq_accuracy:.1%} | "
            f"{r.qat_accuracy:.1%} | {r.qat_keras_accuracy:.1%} | {r.qat_agreement:.1%} | "
            f"{r.ptq_per_tensor_accuracy:.1%} | {r.qat_per_tensor_accuracy:.1%} | "
            f"{r.qat_per_tensor_agreement:.1%} | {r.float_seconds:.0f} | {r.qat_seconds:.0f} |")
    lines += ["", "| model | float | PTQ int8 | QAT int8 | QAT - float (goal >= -0.3) | "
              "QAT >= PTQ in every run | PTQ per-tensor | QAT per-tensor | min agreement "
              "(goal >= 99.5%) | QAT s / float s (goal <= 25%) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label in dict.fromkeys(r.model for r in rows):
        group = [r for r in rows if r.model == label]

        def mean(field: str) -> float:
            return float(np.mean([getattr(r, field) for r in group]))

        every = all(r.qat_accuracy >= r.ptq_accuracy and
                    r.qat_per_tensor_accuracy >= r.ptq_per_tensor_accuracy for r in group)
        agreement = min(min(r.qat_agreement, r.qat_per_tensor_agreement) for r in group)
        lines.append(
            f"| {label} | {mean('float_accuracy'):.1%} | {mean('ptq_accuracy'):.1%} | "
            f"{mean('qat_accuracy'):.1%} | "
            f"{100 * (mean('qat_accuracy') - mean('float_accuracy')):+.1f} points | "
            f"{'yes' if every else 'no'} | {mean('ptq_per_tensor_accuracy'):.1%} | "
            f"{mean('qat_per_tensor_accuracy'):.1%} | {agreement:.1%} | "
            f"{mean('qat_seconds') / mean('float_seconds'):.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(DEFAULT_CIFAR10))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=26, help="float epochs (the main job's 26)")
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--work-dir", help="where the runs go (default: a temporary folder)")
    parser.add_argument("--results-file", help="write the rows here as JSON")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ notices
    from mobilenet.datasets import load_cifar10

    data = load_cifar10(args.data_dir)
    cpu, flags = cpu_model_and_flags()
    print(f"CPU: {cpu}; flags: {' '.join(flags) or 'none of note'}; {versions()}")
    print(f"load at start: {load_line()}")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="qat-"))
    rows = []
    for label in args.models:
        for seed in args.seeds:
            rows.append(run(MODELS[label], label, seed, args, data, work))
            progress(f"{label} seed {seed}: {rows[-1]}")
    print(f"load at end: {load_line()}")
    print(report(rows, args))
    if args.results_file:
        Path(args.results_file).write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))


if __name__ == "__main__":
    main()
