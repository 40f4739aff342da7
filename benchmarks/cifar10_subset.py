"""CIFAR-10 subset accuracy: the library's recipe against a naive baseline, same wall-clock budget.

Both train on the shared subset's 2,500 training images and are scored on its
1,000 test images (test_batch, used for nothing else):

- ours: `mobilenet.training.train` with its recipe (the recipe in
  docs/cifar10.md, with the warm-up/cosine schedule fitted to the budget),
  trained on all 2,500 images;
- naive: keras.applications.MobileNet at 32x32, alpha 1.0, weights=None,
  Adam 1e-3, batch 64, no augmentation, epochs until the budget runs out.

Run it through the lock so that no other benchmark overlaps:

    flock /work/bench.lock python benchmarks/cifar10_subset.py --data-dir ../shared/data/cifar10-subset

It prints a table (recipe, epochs done, wall time, test accuracy).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mobilenet import training  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine_header, report  # noqa: E402  (benchmarks/_common.py)

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10-subset")


class _StopAtBudget(keras.callbacks.Callback):
    """The baseline's rule: no epoch that would end past the budget (as `TimeBudget`)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.durations: list[float] = []

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.durations.append(now - self.epoch_start)
        typical = float(np.median(self.durations[1:] or self.durations))
        if now + typical > self.start + self.seconds:
            self.model.stop_training = True


@dataclasses.dataclass
class Row:
    """One recipe's run: its epochs in the budget, the wall time and the test accuracy."""

    recipe: str
    epochs: int
    wall: float
    accuracy: float


COLUMNS = {"recipe": ("recipe", None), "epochs": ("epochs done", None),
           "wall": ("wall time (s)", ".0f"), "accuracy": ("test accuracy", ".1%")}


def run_ours(data, args) -> Row:
    recipe = dataclasses.replace(
        training.RECIPE, epochs=args.max_epochs, alpha=args.alpha,
        early_downsampling=args.early_downsampling, validation_fraction=0,
        time_budget=args.budget_minutes * 60, seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as output_dir:
        start = time.monotonic()
        result = training.train(data, output_dir=output_dir, recipe=recipe, verbose=2)
        wall = time.monotonic() - start
        evaluation = training.evaluate(result.model, *data.test)
        if args.save_model:
            result.model.save(args.save_model)
    return Row(f"ours (`train`'s recipe): shallow MobileNetV1 alpha {args.alpha:g}, "
               f"early_downsampling {args.early_downsampling}, seed {args.seed}",
               len(result.history), wall, evaluation.accuracy)


def run_naive(data, args) -> Row:
    (x_train, y_train), (x_test, y_test) = data.train, data.test
    keras.utils.set_random_seed(args.seed)
    model = keras.applications.MobileNet(
        input_shape=(32, 32, 3), alpha=1.0, weights=None, classes=10,
    )
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    preprocess = keras.applications.mobilenet.preprocess_input
    start = time.monotonic()
    history = model.fit(
        preprocess(x_train.astype("float32")), y_train, batch_size=64, epochs=10_000,
        callbacks=[_StopAtBudget(args.budget_minutes * 60)], verbose=2,
    )
    wall = time.monotonic() - start
    predicted = np.argmax(model.predict(preprocess(x_test.astype("float32")), verbose=0), axis=1)
    return Row("naive: keras.applications.MobileNet 1.0, Adam 1e-3, batch 64, no aug",
               len(history.history["loss"]), wall, float(np.mean(predicted == y_test)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--budget-minutes", type=float, default=20.0, help="wall-clock budget of each recipe")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--early-downsampling", type=int, default=2, choices=(4, 2, 1))
    parser.add_argument("--max-epochs", type=int, default=300, help="cap on our epochs (the budget decides)")
    parser.add_argument("--only", choices=("ours", "naive"), help="run one recipe only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-model", metavar="PATH.keras",
                        help="also save our trained model here (e.g. to measure int8 agreement)")
    args = parser.parse_args()

    data = training.load_data(args.data_dir)  # CIFAR-10's arrays, class names and test images
    header = machine_header()
    rows = []
    if args.only in (None, "ours"):
        rows.append(run_ours(data, args))
    if args.only in (None, "naive"):
        rows.append(run_naive(data, args))

    print(header)
    print(report(rows, COLUMNS, title=f"\nCIFAR-10 subset ({len(data.train[0])} training, "
                 f"{len(data.test[0])} test images), budget {args.budget_minutes:g} min per recipe"))
    if len(rows) == 2:
        print(f"\nours - naive: {100 * (rows[0].accuracy - rows[1].accuracy):+.1f} points")


if __name__ == "__main__":
    main()
