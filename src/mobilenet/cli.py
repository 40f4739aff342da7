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
    _add_export_command(subcommands)
    return parser


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
