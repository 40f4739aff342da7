"""The data flags of `train` and `evaluate`, and the images `evaluate` reads (`train` reads through `mobilenet.training.load_data`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilenet.cli.common import positive_int, usage_error
from mobilenet.training.recipe import RECIPE


def add_data_options(parser: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """Options shared by `train` and `evaluate`: where the data is, and (``batch_size``) the batch size.

    `train` takes ``--batch-size`` from its recipe's flags instead.
    """
    parser.add_argument(
        "--data-dir", metavar="DIR",
        help="your images, one folder per class (DIR/<class>/*.jpg, or DIR/train/<class>/ with "
        "DIR/val/ and DIR/test/ beside it), or a folder holding CIFAR-10's "
        "cifar-10-batches-py/ or cifar-10-python.tar.gz; default: $MOBILENET_CIFAR10_DIR, "
        "else Keras's CIFAR-10 download (170 MB on first use)",
    )
    if batch_size:
        parser.add_argument(
            "--batch-size", type=positive_int, default=None, metavar="N",
            help=f"images per step (default: {RECIPE.evaluation_batch_size})",
        )


def is_folder_dataset(data_dir: str | None, flag: str = "--data-dir") -> bool:
    """Whether ``data_dir`` is a folder dataset (else CIFAR-10's release, or its download)."""
    if not data_dir:
        return False
    from mobilenet.datasets.image_folder import is_image_folder

    if not Path(data_dir).expanduser().exists():
        raise usage_error(
            flag, "a folder with one sub-folder of images per class, or one holding CIFAR-10's "
            "cifar-10-batches-py/ or cifar-10-python.tar.gz", data_dir,
            shown=f"{flag}={data_dir!r} (no such folder)",
        )
    return is_image_folder(data_dir)


def limited(folder, limit: int | None, seed: int = 0):  # noqa: ANN001, ANN202 - an ImageFolder
    """`mobilenet.training.data.limited`: a seeded random choice of ``limit`` files of ``folder``."""
    from mobilenet.training.data import limited as choose

    return choose(folder, limit, seed)


def cifar10_arrays(args: argparse.Namespace) -> tuple:
    """CIFAR-10's ``(x_train, y_train), (x_test, y_test)`` from ``--data-dir``, the first ``--limit`` of each."""
    from mobilenet.datasets import load_cifar10

    (x_train, y_train), (x_test, y_test) = load_cifar10(args.data_dir)
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    return (x_train, y_train), (x_test, y_test)
