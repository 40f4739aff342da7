"""Epoch times of `train`'s model fitted on `make_dataset`'s pipeline, tf.data autotuning off (ours) and on.

`mobilenet.training.make_dataset` turns tf.data's autotuning off. With it on,
every iterator runs a model thread, and Keras makes a new iterator each
epoch; destroying the old one can wait seconds for that thread while the
cores sit idle, so some epochs take twice as long as the others. This
benchmark fits the model `train` builds for 32x32 images (`build_model`, the
recipe's batch size, SGD with Nesterov momentum at the recipe's learning
rate) on the CIFAR-10 subset's training images, in turns: on the dataset
`make_dataset` returns, then on the same dataset with the autotuning put back
on (``with_options``), for ``--rounds`` rounds. The library is not patched:
both runs use its pipeline as it ships, and only the dataset's options
differ. It prints one row per run: the median and the slowest epoch, how
many epochs took over 1.5x the median, and the wall time of ``fit``. Nothing
else should run meanwhile.

    python benchmarks/epoch_stalls.py --data-dir ../shared/data/cifar10-subset --epochs 12 --rounds 2
    python benchmarks/epoch_stalls.py --epochs 2 --rounds 1 --limit 640   # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from _common import machine_header, progress, report  # noqa: E402  (benchmarks/_common.py)
from mobilenet.datasets import load_cifar10  # noqa: E402
from mobilenet.training import build_model, make_dataset  # noqa: E402
from mobilenet.training.recipe import RECIPE  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10-subset")
VARIANTS = ("autotune off (ours)", "autotune on")


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch, from its start to its end."""

    def __init__(self) -> None:
        super().__init__()
        self.durations: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.durations.append(time.perf_counter() - self.start)


def dataset(variant: str, x_train: Any, y_train: Any, seed: int) -> Any:
    """`make_dataset`'s training pipeline, with tf.data's autotuning back on for ``"autotune on"``."""
    shipped = make_dataset(x_train, y_train, batch_size=RECIPE.batch_size, training=True, seed=seed,
                           padding=RECIPE.padding, drop_remainder=True)
    if variant != "autotune on":
        return shipped
    options = tf.data.Options()
    options.autotune.enabled = True
    return shipped.with_options(options)


@dataclasses.dataclass
class Row:
    """One fit of one pipeline: its epoch times (the first, tracing, apart) and stalls."""

    round: int
    variant: str
    median: float
    slowest: float
    stalled: int
    epochs: int
    first: float
    wall: float


COLUMNS = {"round": ("round", None), "variant": ("tf.data", None),
           "median": ("median epoch (s)", ".2f"), "slowest": ("slowest epoch (s)", ".2f"),
           "stalled": ("epochs over 1.5x median", None), "epochs": ("of epochs", None),
           "first": ("first epoch (s)", ".1f"), "wall": ("fit wall (s)", ".1f")}


def run(round_: int, variant: str, x_train: Any, y_train: Any, epochs: int, seed: int) -> Row:
    keras.utils.set_random_seed(seed)
    model = build_model()
    model.compile(optimizer=keras.optimizers.SGD(RECIPE.learning_rate, momentum=0.9, nesterov=True),
                  loss="categorical_crossentropy")
    timer = EpochTimer()
    start = time.perf_counter()
    model.fit(dataset(variant, x_train, y_train, seed), epochs=epochs, callbacks=[timer],
              shuffle=False, verbose=0)  # make_dataset shuffles every epoch itself
    wall = time.perf_counter() - start
    later = timer.durations[1:]  # the first epoch also traces the graph
    median = statistics.median(later)
    return Row(round_, variant, median, max(later), sum(duration > 1.5 * median for duration in later),
               len(later), timer.durations[0], wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant, in turns")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.epochs < 2 or args.rounds < 1:
        raise SystemExit(f"--epochs must be >= 2 and --rounds >= 1; got {args.epochs} and {args.rounds}")

    (x_train, y_train), _ = load_cifar10(args.data_dir)
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    header = machine_header()
    rows = []
    for round_ in range(1, args.rounds + 1):
        for variant in VARIANTS:
            rows.append(run(round_, variant, x_train, y_train, args.epochs, args.seed))
            progress(f"round {round_}, {variant}: median epoch {rows[-1].median:.2f} s")
    print(header)
    print(report(rows, COLUMNS, title=f"\n{len(x_train)} training images, {args.epochs} epochs, "
                 f"seed {args.seed}"))


if __name__ == "__main__":
    main()
