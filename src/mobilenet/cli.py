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


def _run_export(args: argparse.Namespace) -> int:
    quantization = "int8" if args.int8 else args.quantization
    try:
        if quantization != "int8" and args.calibration_data:
            raise ValueError(
                "Invalid value for argument `--calibration-data`: only int8 export is "
                f"calibrated. Received: --calibration-data={args.calibration_data!r} with "
                f"--quantization={quantization}"
            )
        if args.verify and not (args.verify_data or args.calibration_data):
            raise ValueError(
                "Invalid value for argument `--verify`: it needs images, from "
                "--verify-data or --calibration-data. Received: neither"
            )
        calibration = (
            _load_images(args.calibration_data, args.rescale, "--calibration-data")
            if args.calibration_data else None
        )
        verify_images = (
            _load_images(args.verify_data, args.rescale, "--verify-data")
            if args.verify_data else calibration
        )
        import keras

        from mobilenet import export

        try:
            model = keras.saving.load_model(args.model)
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
