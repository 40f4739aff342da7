"""The ``mobilenet`` command line: argument parsing only.

Each command's handler imports the module that does the work, so that
``mobilenet --help`` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``mobilenet`` argument parser, with one sub-command per task."""
    from mobilenet import __version__

    parser = argparse.ArgumentParser(
        prog="mobilenet",
        description="MobileNet V1 for Keras 3: profile, train, evaluate and export.",
    )
    parser.add_argument("--version", action="version", version=f"mobilenet {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    subcommands.required = True
    # Each task adds its sub-command here, one function per command.
    _add_train_command(subcommands)
    _add_evaluate_command(subcommands)
    return parser


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `train` and `evaluate`: where the data is and how much to use."""
    parser.add_argument(
        "--data-dir", metavar="DIR",
        help="folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz (the "
        "official python release); default: $MOBILENET_CIFAR10_DIR, else Keras's "
        "download cache (downloads 170 MB on first use)",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=None, metavar="N",
        help="images per step (train default 64, evaluate default 256)",
    )
    parser.add_argument(
        "--limit", type=_positive_int, default=None, metavar="N",
        help="use only the first N training and N test images (for a quick check)",
    )


def _add_train_command(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "train",
        help="train a MobileNet V1 on CIFAR-10 and report its test accuracy",
        description=(
            "Train a MobileNet V1 on CIFAR-10 (32x32 images, 10 classes) with the "
            "library's measured recipe, then print its test accuracy. Writes "
            "best.keras, final.keras, history.csv/json, test.json (and PNG plots "
            "when matplotlib is installed) to --output-dir. If the run is killed, "
            "run the same command with --resume to continue from the last "
            "finished epoch."
        ),
        epilog=(
            "examples:\n"
            "  mobilenet train --data-dir ../shared/data/cifar10-subset --epochs 15\n"
            "  mobilenet train --data-dir ~/data --epochs 60 --output-dir runs/full\n"
            "  mobilenet train --data-dir ~/data --output-dir runs/full --resume   # after a kill\n"
            "  mobilenet train --strategy mirrored --mixed-precision --batch-size 256"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(parser)
    parser.add_argument("--output-dir", default="runs/cifar10", metavar="DIR",
                        help="folder for checkpoints, history and plots (default: runs/cifar10)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output-dir from its last finished epoch")
    parser.add_argument("--epochs", type=_positive_int, default=30, metavar="N", help="total epochs (default: 30)")
    parser.add_argument("--alpha", type=float, default=0.5, metavar="A",
                        help="width multiplier alpha: channels x alpha (default: 0.5)")
    parser.add_argument(
        "--early-downsampling", type=int, choices=(4, 2, 1), default=2,
        help="combined stride of the stem and block 2: 4 is the paper's net (1x1 "
        "final map at 32x32), 2 and 1 keep 2x2 and 4x4 maps at 4x and 16x the cost "
        "(default: 2)",
    )
    parser.add_argument("--learning-rate", type=float, default=0.2, metavar="LR",
                        help="peak learning rate of SGD's warm-up + cosine schedule (default: 0.2)")
    parser.add_argument("--weight-decay", type=float, default=5e-4, metavar="WD",
                        help="decoupled weight decay on kernels (default: 5e-4)")
    parser.add_argument("--label-smoothing", type=float, default=0.1, metavar="S",
                        help="label smoothing (default: 0.1)")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        metavar="F",
                        help="share of the training images held out for validation and for "
                        "picking best.keras; 0 trains on all (default: 0.1)")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="turn off the random crops and flips of training images")
    parser.add_argument(
        "--strategy", choices=("default", "mirrored", "multi-worker", "tpu"), default="default",
        help="tf.distribute strategy: mirrored (all local GPUs), multi-worker "
        "(machines listed in TF_CONFIG), tpu (default: one device)",
    )
    parser.add_argument(
        "--mixed-precision", nargs="?", const="auto", default=None,
        choices=("auto", "mixed_float16", "mixed_bfloat16"),
        help="mixed precision policy; alone means auto: mixed_float16 on GPU, "
        "mixed_bfloat16 on CPU/TPU (default: float32)",
    )
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="fit the run into this many seconds: fewer epochs if needed, with the "
                        "learning-rate schedule shortened to match")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    parser.set_defaults(handler=_run_train)


def _add_evaluate_command(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "evaluate",
        help="report a trained model's CIFAR-10 test accuracy, per class",
        description=(
            "Evaluate a model saved by `mobilenet train` (a .keras file) on the "
            "CIFAR-10 test images: overall accuracy, accuracy per class and the "
            "confusion matrix."
        ),
    )
    parser.add_argument("model", metavar="MODEL.keras", help="the model file to evaluate")
    _add_data_options(parser)
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON here")
    parser.add_argument("--plot", metavar="PATH",
                        help="also save the confusion matrix as a PNG (needs matplotlib)")
    parser.set_defaults(handler=_run_evaluate)


def _print_report(report) -> None:  # noqa: ANN001 - an EvaluationReport
    print(f"test accuracy: {report.accuracy:.2%} on {report.num_examples} images")
    for name, accuracy in report.per_class_accuracy.items():
        print(f"  {name:<11}{accuracy:7.1%}")


def _run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mobilenet import cifar10

    (x_train, y_train), (x_test, y_test) = cifar10.load_cifar10(args.data_dir)
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    result = cifar10.train(
        x_train, y_train, output_dir=args.output_dir, resume=args.resume,
        epochs=args.epochs, alpha=args.alpha, early_downsampling=args.early_downsampling,
        batch_size=args.batch_size or 64, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        validation_fraction=args.validation_fraction, augment=args.augment,
        strategy=cifar10.make_strategy(args.strategy),
        mixed_precision=args.mixed_precision or False,
        time_budget=args.time_budget, seed=args.seed,
    )
    report = cifar10.evaluate(result.model, x_test, y_test)
    _print_report(report)
    output_dir = Path(args.output_dir)
    report.save_json(output_dir / "test.json")
    cifar10.save_plots(result.history, report, output_dir)
    print(f"saved to {output_dir}/ (best.keras, final.keras, history.csv)")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from mobilenet import cifar10

    _, (x_test, y_test) = cifar10.load_cifar10(args.data_dir)
    if args.limit is not None:
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    report = cifar10.evaluate(args.model, x_test, y_test, batch_size=args.batch_size or 256)
    _print_report(report)
    if args.json:
        report.save_json(args.json)
    if args.plot:
        cifar10.plot_confusion_matrix(report, args.plot)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``mobilenet`` command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
