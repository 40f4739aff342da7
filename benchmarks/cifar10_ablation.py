"""Recipe ablation on a validation split of the CIFAR-10 subset's training batches.

Every variant is `mobilenet.training.train` with some fields of its recipe
changed from `RECIPE`, trained on 80% of the subset's training images (2,000) and scored on
the held-out 20% (500, class-stratified, the same split for every variant).
The subset's ``test_batch`` is never read: recipe choices are made here, and
the test images give only the final figure (``benchmarks/cifar10_subset.py``,
``examples/cifar10.py``).

    python benchmarks/cifar10_ablation.py --epochs 15 \\
        baseline lr=0.1 lr=0.05 label_smoothing=0.2

A variant is ``name=value[,name=value...]`` with names of `Recipe`'s fields
(``lr`` for ``learning_rate``, ``bs`` for ``batch_size``); ``baseline`` is the
defaults. Values are Python literals. Prints one markdown row per variant and
seed: final and best validation accuracy, the largest epoch-to-epoch rise of
the training loss (a collapse after the warm-up shows here), and the wall time.

``--train-images N`` trains every variant on a class-stratified N of the
split's training images (scored on the same validation images): a learning
curve, to see what more training images would buy.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mobilenet import training  # noqa: E402
from mobilenet.datasets import CIFAR10_CLASS_NAMES, load_cifar10, split_validation  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _common import machine_header, progress, report  # noqa: E402  (benchmarks/_common.py)

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10-subset")
ALIASES = {"lr": "learning_rate", "bs": "batch_size"}


def parse_variant(text: str) -> dict:
    """``"lr=0.1,bs=128"`` -> ``{"learning_rate": 0.1, "batch_size": 128}``; ``baseline`` -> ``{}``."""
    if text == "baseline":
        return {}
    overrides = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"variant {text!r}: expected name=value, got {item!r}")
        overrides[ALIASES.get(name, name)] = ast.literal_eval(value)
    return overrides


def recipe_of(variant: str, epochs: int, seed: int = 0) -> training.Recipe:
    """The recipe a variant trains with (checked: a typo fails before any training)."""
    return dataclasses.replace(training.RECIPE, **{"epochs": epochs, "seed": seed,
                                                   **parse_variant(variant)})


@dataclasses.dataclass
class Row:
    """One variant and seed: epochs, wall time, validation and training accuracy, loss rise."""

    variant: str
    seed: int
    epochs: int
    wall: float
    final: float
    best: float
    train: float
    rise: float


COLUMNS = {"variant": ("variant", None), "seed": ("seed", None), "epochs": ("epochs", None),
           "wall": ("wall (s)", ".0f"), "final": ("val acc (final)", ".1%"),
           "best": ("val acc (best)", ".1%"), "train": ("train acc", ".1%"),
           "rise": ("largest loss rise", "+.0%")}


@dataclasses.dataclass
class Spread:
    """A variant's final validation accuracy over the seeds."""

    variant: str
    mean: float
    low: float
    high: float


def run(variant: str, seed: int, split, args) -> Row:
    (x_train, y_train), validation = split
    with tempfile.TemporaryDirectory() as output_dir:
        start = time.monotonic()
        result = training.train(
            (x_train, y_train), output_dir=output_dir, validation_data=validation,
            class_names=CIFAR10_CLASS_NAMES, recipe=recipe_of(variant, args.epochs, seed), verbose=0,
        )
        wall = time.monotonic() - start
    history = result.history
    losses = [row["loss"] for row in history]
    rises = [later / earlier - 1 for earlier, later in zip(losses, losses[1:])]
    return Row(variant, seed, len(history), wall, history[-1]["val_accuracy"],
               max(row["val_accuracy"] for row in history), history[-1]["accuracy"],
               max(rises, default=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="baseline, or name=value[,name=value...]")
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="folder holding cifar-10-batches-py/")
    parser.add_argument("--epochs", type=int, default=15, help="epochs unless a variant sets them")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--train-images", type=int, metavar="N",
                        help="train on a class-stratified N of the split's training images")
    args = parser.parse_args()

    for variant in args.variants:
        recipe_of(variant, args.epochs)  # a typo fails now, not after an hour of training
    (x_train, y_train), _ = load_cifar10(args.data_dir)
    split = split_validation(x_train, y_train, args.validation_fraction, seed=0)
    if args.train_images is not None:
        (x_fit, y_fit), validation = split
        if not 0 < args.train_images < len(x_fit):
            raise SystemExit(f"--train-images must be in 1..{len(x_fit) - 1} (the split's "
                             f"{len(x_fit)} training images); got {args.train_images}")
        kept, _ = split_validation(x_fit, y_fit, 1 - args.train_images / len(x_fit), seed=0)
        split = kept, validation
    header = machine_header()
    rows = []
    for variant in args.variants:
        for seed in args.seeds:
            rows.append(run(variant, seed, split, args))
            progress(f"{variant}, seed {seed}: {rows[-1].final:.1%}")
    print(header)
    print(report(rows, COLUMNS, title=f"\n{len(split[0][0])} training, {len(split[1][0])} "
                 f"validation images; {args.epochs} epochs unless set; seeds {args.seeds}"))
    if len(args.seeds) > 1:
        spreads = []
        for variant in args.variants:
            finals = [row.final for row in rows if row.variant == variant]
            spreads.append(Spread(variant, statistics.mean(finals), min(finals), max(finals)))
        print("\n" + report(spreads, {"variant": ("variant", None),
                                       "mean": ("mean val acc (final)", ".1%"),
                                       "low": ("lowest", ".1%"), "high": ("highest", ".1%")}))


if __name__ == "__main__":
    main()
