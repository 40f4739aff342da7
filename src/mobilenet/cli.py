"""The ``mobilenet`` command line: argument parsing only.

Each command's handler imports the module that does the work, so that
``mobilenet --help`` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import os
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
    _add_profile_command(subcommands)
    _add_paper_command(subcommands)
    _add_train_command(subcommands)
    _add_evaluate_command(subcommands)
    _add_export_command(subcommands)
    return parser


def _error(command: str, message: str) -> int:
    """Prints a one-line error for ``mobilenet <command>`` and returns exit code 2."""
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "error"
    print(f"mobilenet {command}: error: {first_line}", file=sys.stderr)
    return 2


def _number(text: str) -> float:
    """An argparse type: a decimal number or a fraction such as ``5/7``."""
    from fractions import Fraction

    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(
            f"expected a number or a fraction such as 5/7, received {text!r}"
        ) from error


def _add_profile_command(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "profile",
        help="per-layer mult-adds and parameters of a MobileNet V1",
        description=(
            "Builds MobileNetV1(alpha, rho) and prints its mult-adds and parameters "
            "per layer, in total and per layer kind (paper Table 2)."
        ),
    )
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="width multiplier alpha > 0 (default 1.0)")
    parser.add_argument("--rho", type=_number, default=None,
                        help="resolution multiplier rho > 0, a number or a fraction such "
                             "as 5/7: input side round(224 * rho) (default: 1, or --input-size)")
    parser.add_argument("--input-size", type=int, default=None, metavar="N",
                        help="square input side N >= 32, instead of --rho")
    parser.add_argument("--num-classes", type=int, default=1000, metavar="K",
                        help="classifier outputs (default 1000)")
    parser.add_argument("--conv", action="store_true",
                         help="the Conv MobileNet of paper Table 4 (full 3x3 convs)")
    parser.add_argument("--shallow", action="store_true",
                         help="the Shallow MobileNet of paper Table 6 (blocks 7-11 removed)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(handler=_run_profile)


#: MobileNetV1 keyword -> the `mobilenet profile` option that sets it, for error messages.
_PROFILE_FLAGS = {
    "alpha": "--alpha",
    "rho": "--rho",
    "num_classes": "--num-classes",
    "input_shape": "--input-size",
}


def _run_profile(args: argparse.Namespace) -> int:
    input_shape = None if args.input_size is None else (args.input_size, args.input_size, 3)
    if args.input_size is not None and args.rho is not None:
        return _error(
            "profile",
            "Arguments `--rho` and `--input-size` both set the input size; give one of "
            f"them. Received: --rho={args.rho}, --input-size={args.input_size}",
        )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mobilenet.model import MobileNetV1
    from mobilenet.profiler import profile

    try:
        model = MobileNetV1(
            args.alpha, args.rho, args.num_classes, input_shape=input_shape,
            separable=not args.conv, shallow=args.shallow,
        )
    except ValueError as error:
        message = str(error)
        for keyword, flag in _PROFILE_FLAGS.items():
            message = message.replace(f"`{keyword}`", f"`{flag}`")
        return _error("profile", message)
    costs = profile(model)
    print(costs.to_json() if args.json else costs)
    return 0


def _add_paper_command(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "paper",
        help="the paper's Tables 2, 4, 6, 7 and 8, printed vs computed",
        description=(
            "Builds every model of the paper's cost tables (Tables 2, 4, 6, 7 and 8), "
            "counts it, and prints the paper's values next to the computed ones, "
            "marking each cell that differs (Markdown)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.set_defaults(handler=_run_paper)


def _run_paper(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mobilenet.paper import reproduce_paper_tables

    tables = reproduce_paper_tables()
    print(tables.to_json() if args.json else tables.to_markdown(), end="" if not args.json else "\n")


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
        "final map at 32x32), 2 and 1 keep 2x2 and 4x4 maps at about 4x and 15x the cost "
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


def _add_export_command(subcommands) -> None:
    """``mobilenet export MODEL.keras OUT.tflite``: LiteRT export, quantized or not."""
    parser = subcommands.add_parser(
        "export",
        help="export a .keras model to a LiteRT .tflite file (float32, float16, dynamic or int8)",
        description=(
            "Export a saved .keras model to a LiteRT (TFLite) file, optionally quantized, "
            "with BatchNorm folded, and verified against the Keras model. Images for "
            "calibration and verification come as .npy arrays of shape (N, H, W, C); "
            "they are fed to the model as they are, times --rescale."
        ),
    )
    parser.add_argument("model", help="the .keras model file")
    parser.add_argument("output", help="the .tflite file to write")
    parser.add_argument(
        "--quantization", choices=("float32", "float16", "dynamic", "int8"), default="float32",
        help="float32 (none), float16 weights, dynamic-range int8 weights, or full int8 "
             "(needs --calibration-data). Default: float32",
    )
    parser.add_argument("--int8", action="store_true", help="same as --quantization int8")
    parser.add_argument("--calibration-data", metavar="IMAGES.npy",
                        help="images to calibrate int8 activation ranges on (a few hundred)")
    parser.add_argument("--calibration-dir", metavar="DIR",
                        help="a CIFAR-10 folder (as for `mobilenet train --data-dir`) for a model "
                             "trained by `mobilenet train`: calibrates on its first 500 training "
                             "images and --verify uses its test images, both normalised as "
                             "training normalised them")
    parser.add_argument("--io-type", choices=("uint8", "int8", "float32"), default="uint8",
                        help="input/output type of an int8 file. Default: uint8")
    parser.add_argument("--rescale", type=float, default=1.0, metavar="FACTOR",
                        help="multiply the .npy images by this first (e.g. 0.00392156862745098 "
                             "for uint8 pixels into [0, 1]). Default: 1")
    parser.add_argument("--fold-bn", action="store_true",
                        help="fold every BatchNorm into the conv before it first")
    parser.add_argument("--verify", action="store_true",
                        help="run the file in LiteRT and report agreement with the Keras model")
    parser.add_argument("--verify-data", metavar="IMAGES.npy",
                        help="images for --verify (default: the calibration images)")
    parser.set_defaults(handler=_run_export)


def _load_images(path: str, rescale: float, argument: str):
    import numpy as np

    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"Invalid value for argument `{argument}`: expected a .npy file of images "
            f"(N, H, W, C). Received: {argument}={path!r} ({error})"
        ) from error
    return images.astype("float32") * rescale


#: Training images that `--calibration-dir` calibrates int8 activation ranges on.
_CALIBRATION_IMAGES = 500


def _cifar10_images(data_dir: str) -> tuple:
    """(calibration, test) images of a CIFAR-10 folder, normalised as `mobilenet train` does."""
    import numpy as np

    from mobilenet import cifar10

    try:
        (x_train, _), (x_test, _) = cifar10.load_cifar10(data_dir)
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(
            "Invalid value for argument `--calibration-dir`: expected a folder holding "
            f"CIFAR-10. Received: --calibration-dir={data_dir!r} ({error})"
        ) from error
    calibration = np.asarray(cifar10.normalize(x_train[:_CALIBRATION_IMAGES]))
    return calibration, np.asarray(cifar10.normalize(x_test))


def _run_export(args: argparse.Namespace) -> int:
    quantization = "int8" if args.int8 else args.quantization
    try:
        if args.calibration_dir and args.calibration_data:
            raise ValueError(
                "Invalid value for argument `--calibration-dir`: give it or "
                "--calibration-data, not both. Received: "
                f"--calibration-dir={args.calibration_dir!r}, "
                f"--calibration-data={args.calibration_data!r}"
            )
        if args.calibration_dir:
            if quantization != "int8":
                raise ValueError(
                    "Invalid value for argument `--calibration-dir`: only int8 export is "
                    f"calibrated. Received: --calibration-dir={args.calibration_dir!r} with "
                    f"--quantization={quantization}"
                )
            calibration, test_images = _cifar10_images(args.calibration_dir)
            args.verify_images = test_images
        else:
            args.verify_images = None
        if quantization != "int8" and args.calibration_data:
            raise ValueError(
                "Invalid value for argument `--calibration-data`: only int8 export is "
                f"calibrated. Received: --calibration-data={args.calibration_data!r} with "
                f"--quantization={quantization}"
            )
        if args.verify and not (args.verify_data or args.calibration_data or args.calibration_dir):
            raise ValueError(
                "Invalid value for argument `--verify`: it needs images, from --verify-data, "
                "--calibration-data or --calibration-dir. Received: none of them"
            )
        if not args.calibration_dir:
            calibration = (
                _load_images(args.calibration_data, args.rescale, "--calibration-data")
                if args.calibration_data else None
            )
        if args.verify_data:
            verify_images = _load_images(args.verify_data, args.rescale, "--verify-data")
        elif args.verify_images is not None:
            verify_images = args.verify_images
        else:
            verify_images = calibration
        import keras

        from mobilenet import export

        try:
            model = keras.saving.load_model(args.model, compile=False)
        except (OSError, ValueError) as error:
            raise ValueError(
                "Invalid value for argument `model`: expected a saved .keras model. "
                f"Received: model={args.model!r} ({error})"
            ) from error
        source = export.fold_batchnorm(model) if args.fold_bn else model
        path = export.to_tflite(
            source, args.output, None if quantization == "float32" else quantization,
            representative_data=calibration, io_type=args.io_type,
        )
        size = path.stat().st_size
        print(f"wrote {path} ({size:,} bytes, {size / 1e6:.2f} MB; {quantization}"
              f"{', BatchNorm folded' if args.fold_bn else ''})")
        if args.verify:
            report = export.verify_tflite(path, model, verify_images)
            print(f"verified on {report.num_images} images: top-1 agreement "
                  f"{report.top1_agreement:.2%}, max abs difference {report.max_abs_diff:.4g} "
                  f"(input {report.input_type}, output {report.output_type})")
    except ValueError as error:
        print(f"mobilenet export: error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``mobilenet`` command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
