"""Recipe ablation on a validation split of the CIFAR-10 subset's training batches.

Every variant is `mobilenet.cifar10.train` with some arguments changed from its
defaults, trained on 80% of the subset's training images (2,000) and scored on
the held-out 20% (500, class-stratified, the same split for every variant).
The subset's ``test_batch`` is never read: recipe choices are made here, and
the test images give only the final figure (``benchmarks/cifar10_subset.py``,
``examples/cifar10.py``).

    python benchmarks/cifar10_ablation.py --epochs 15 \\
        baseline lr=0.1 lr=0.05 label_smoothing=0.2

A variant is ``name=value[,name=value...]`` with names of `train`'s arguments
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
import datetime
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mobilenet import cifar10  # noqa: E402

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


def run(variant: str, seed: int, split, args) -> dict:
    (x_train, y_train), validation = split
    overrides = {"epochs": args.epochs, **parse_variant(variant)}
    with tempfile.TemporaryDirectory() as output_dir:
        start = time.monotonic()
        result = cifar10.train(
            x_train, y_train, output_dir=output_dir, validation_data=validation,
            seed=seed, verbose=0, **overrides,
        )
        wall = time.monotonic() - start
    history = result.history
    losses = [row["loss"] for row in history]
    rises = [later / earlier - 1 for earlier, later in zip(losses, losses[1:])]
    return {
        "variant": variant, "seed": seed, "epochs": len(history), "wall": wall,
        "final": history[-1]["val_accuracy"], "best": max(row["val_accuracy"] for row in history),
        "train": history[-1]["accuracy"], "rise": max(rises, default=0.0),
    }


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
        parse_variant(variant)  # a typo fails now, not after an hour of training
    (x_train, y_train), _ = cifar10.load_cifar10(args.data_dir)
    split = cifar10.split_validation(x_train, y_train, args.validation_fraction, seed=0)
    if args.train_images is not None:
        (x_fit, y_fit), validation = split
        if not 0 < args.train_images < len(x_fit):
            raise SystemExit(f"--train-images must be in 1..{len(x_fit) - 1} (the split's "
                             f"{len(x_fit)} training images); got {args.train_images}")
        kept, _ = cifar10.split_validation(x_fit, y_fit, 1 - args.train_images / len(x_fit), seed=0)
        split = kept, validation
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: "
          f"{len(split[0][0])} training, {len(split[1][0])} validation images; "
          f"{args.epochs} epochs unless set; seeds {args.seeds}\n")
    print("| variant | seed | epochs | wall (s) | val acc (final) | val acc (best) "
          "| train acc | largest loss rise |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for variant in args.variants:
        for seed in args.seeds:
            row = run(variant, seed, split, args)
            rows.append(row)
            print(f"| {variant} | {seed} | {row['epochs']} | {row['wall']:.0f} | {row['final']:.1%} "
                  f"| {row['best']:.1%} | {row['train']:.1%} | {row['rise']:+.0%} |", flush=True)
    if len(args.seeds) > 1:
        print("\n| variant | mean val acc (final) | spread (min-max) |\n|---|---|---|")
        for variant in args.variants:
            finals = [row["final"] for row in rows if row["variant"] == variant]
            print(f"| {variant} | {statistics.mean(finals):.1%} | {min(finals):.1%}-{max(finals):.1%} |")


if __name__ == "__main__":
    main()
