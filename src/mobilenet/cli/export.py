"""``mobilenet export``: a .keras model to a LiteRT or ONNX file, or for a microcontroller."""

from __future__ import annotations

import argparse
from pathlib import Path

from mobilenet._validation import InvalidArgument, first_line
from mobilenet.cli.common import (
    UsageError,
    command_parser,
    error_message,
    number,
    require_onnx,
    require_openvino,
)
from mobilenet.cli.data import is_folder_dataset


#: The library's argument names -> the flags of `export` that set them.
FLAGS = {
    "model": "MODEL", "model_path": "MODEL", "path": "OUTPUT", "output_path": "OUTPUT",
    "target": "--target", "quantization": "--quantization",
    "calibration_images": "--calibration-data", "representative_data": "--calibration-data",
    "calibration_dir": "--calibration-dir", "io_type": "--io-type", "rescale": "--rescale",
    "fold_bn": "--fold-bn", "images": "--verify-data", "verify_images": "--verify-data",
    "onnx_runtime": "--verify-runtime",
}


def add_command(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``mobilenet export`` and its flags to ``subcommands``."""
    parser = command_parser(
        subcommands, "export", run, FLAGS,
        help="export a .keras model to a LiteRT .tflite or an ONNX .onnx file (float or int8), "
             "or for a microcontroller (--target micro, or a .cc C array)",
        description=(
            "Export a saved .keras model to a LiteRT (TFLite) file or, for an OUTPUT ending "
            "in .onnx, an ONNX file (float32 or int8; needs the `onnx` extra), optionally "
            "quantized, with BatchNorm folded, and verified against the Keras model. Images for "
            "calibration and verification come as .npy arrays of shape (N, H, W, C), "
            "fed to the model as they are, times --rescale, or from a CIFAR-10 folder "
            "(--calibration-dir) as pixels. For a model that takes pixels 0-255 (those of "
            "`mobilenet train`), the int8 file's uint8 input is the pixel itself "
            "(scale 1, zero point 0). For a microcontroller (--target micro, or an OUTPUT "
            "ending in .cc, .cpp or .c): an int8 file with int8 input and output that "
            "TensorFlow Lite Micro runs, or the same bytes as a C array and a header."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="the .keras model file")
    parser.add_argument("output", metavar="OUTPUT",
                        help="the .tflite, .onnx or (for a microcontroller) .cc/.cpp/.c file to "
                             "write; its suffix picks the format")
    parser.add_argument("--target", choices=("litert", "micro"), default=None,
                        help="micro: for TensorFlow Lite Micro (int8 with int8 input and output, "
                             "its ops only; needs calibration images). Default: litert, or micro "
                             "for a .cc/.cpp/.c OUTPUT")
    parser.add_argument(
        "--quantization", choices=("float32", "float16", "dynamic", "int8"), default="float32",
        help="float32 (none), float16 weights, dynamic-range int8 weights, or full int8 "
             "(needs --calibration-data or --calibration-dir, except for a quantization-aware "
             "model from `mobilenet train --qat-epochs`, which has its ranges); .onnx: float32 "
             "or int8. Default: float32",
    )
    parser.add_argument("--int8", action="store_true", help="same as --quantization int8")
    parser.add_argument("--calibration-data", metavar="IMAGES.npy",
                        help="images to calibrate int8 activation ranges on (a few hundred)")
    parser.add_argument("--calibration-dir", metavar="DIR",
                        help="a folder dataset or a CIFAR-10 folder (as for `mobilenet train "
                             "--data-dir`): calibrates on 500 of its training images and --verify "
                             "uses its test (or validation) images, as pixels 0-255")
    parser.add_argument("--io-type", choices=("uint8", "int8", "float32"), default=None,
                        help="input/output type of an int8 .tflite file. Default: uint8 "
                             "(int8 with --target micro, which allows no other)")
    parser.add_argument("--rescale", type=number, default=1.0, metavar="FACTOR",
                        help="multiply the .npy images by this first, for a model that does "
                             "not take pixels (e.g. 1/255 for [0, 1]). Default: 1")
    parser.add_argument("--fold-bn", action="store_true",
                        help="fold every BatchNorm into the conv before it first")
    parser.add_argument("--verify", action="store_true",
                        help="run the file in LiteRT (or ONNX Runtime) and report agreement "
                             "with the Keras model")
    parser.add_argument("--verify-runtime", choices=("onnxruntime", "openvino"),
                        default="onnxruntime",
                        help="what runs an .onnx file for --verify (default: onnxruntime; "
                             "openvino needs the `openvino` extra)")
    parser.add_argument("--verify-data", metavar="IMAGES.npy",
                        help="images for --verify (default: the calibration images)")


def _load_images(path: str, rescale: float, flag: str):
    import numpy as np

    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"Invalid value for argument `{flag}`: expected a .npy file of images "
            f"(N, H, W, C). Received: {flag}={path!r} ({first_line(error)})"
        ) from error
    return images.astype("float32") * rescale


#: Training images that `--calibration-dir` calibrates int8 activation ranges on.
CALIBRATION_IMAGES = 500


def _export_images(args: argparse.Namespace, quantization: str) -> tuple:
    """The (calibration, verification) images the flags ask for; None where not needed."""
    if args.calibration_dir and args.calibration_data:
        raise UsageError(
            "Invalid value for argument `--calibration-dir`: give it or --calibration-data, "
            f"not both. Received: --calibration-dir={args.calibration_dir!r}, "
            f"--calibration-data={args.calibration_data!r}"
        )
    for flag, value in (("--calibration-dir", args.calibration_dir),
                        ("--calibration-data", args.calibration_data)):
        if value and quantization != "int8":
            raise UsageError(
                f"Invalid value for argument `{flag}`: only int8 export is calibrated. "
                f"Received: {flag}={value!r} with --quantization={quantization}"
            )
    if args.verify and not (args.verify_data or args.calibration_data or args.calibration_dir):
        raise UsageError(
            "Invalid value for argument `--verify`: it needs images, from --verify-data, "
            "--calibration-data or --calibration-dir. Received: none of them"
        )
    calibration = verification = None
    if args.calibration_dir and is_folder_dataset(args.calibration_dir, "--calibration-dir"):
        calibration, verification = _folder_export_images(args)
    elif args.calibration_dir:
        from mobilenet import cifar10

        try:
            (x_train, _), (x_test, _) = cifar10.load_cifar10(args.calibration_dir)
        except (OSError, ValueError) as error:
            raise UsageError(
                "Invalid value for argument `--calibration-dir`: expected a folder per class or "
                f"a folder holding CIFAR-10. Received: --calibration-dir={args.calibration_dir!r} "
                f"({first_line(error)})"
            ) from error
        calibration, verification = x_train[:CALIBRATION_IMAGES], x_test
    elif args.calibration_data:
        calibration = _load_images(args.calibration_data, args.rescale, "--calibration-data")
    if args.verify_data:
        verification = _load_images(args.verify_data, args.rescale, "--verify-data")
    elif verification is None:
        verification = calibration
    return calibration, (verification if args.verify else None)


def _folder_export_images(args: argparse.Namespace) -> tuple:
    """Calibration and verification pixels from a folder dataset, at the model's input size.

    Calibration: a seeded random 500 of the training images (every class
    mixed in); verification: test/, else val/, else the 10% that `mobilenet
    train` holds out by default (the same seed, so the same images).
    """
    from mobilenet.datasets import load_image_folder
    from mobilenet.saving import load_model
    from mobilenet.training.pipeline import load_folder_images
    from mobilenet.training.recipe import RECIPE

    model = load_model(args.model, argument="model")
    side = model.input_shape[1]
    if side is None or side != model.input_shape[2]:
        raise UsageError(
            "Invalid value for argument `--calibration-dir`: a folder dataset needs a model with "
            f"a square input of fixed size, to size its images. Received: {args.model} with "
            f"input shape {model.input_shape}"
        )
    splits = load_image_folder(args.calibration_dir, validation_fraction=RECIPE.validation_fraction,
                               argument="calibration_dir")
    held = splits.test or splits.validation
    calibration = load_folder_images(splits.train, side, CALIBRATION_IMAGES)
    verification = load_folder_images(held, side) if held is not None else calibration
    return calibration, verification


#: The --quantization values an .onnx OUTPUT can have (`mobilenet.export.ONNX_QUANTIZATIONS`
#: as flags spell them: float32 for None).
ONNX_QUANTIZATIONS = ("float32", "int8")


def run(args: argparse.Namespace) -> int:
    """``mobilenet export``: writes OUTPUT, and says its size, input type and agreement."""
    from mobilenet.micro import C_SUFFIXES

    if args.target == "micro" or Path(args.output).suffix in C_SUFFIXES:
        return _run_micro_export(args)
    quantization = "int8" if args.int8 else args.quantization
    if args.output.endswith(".onnx") and quantization not in ONNX_QUANTIZATIONS:
        raise UsageError(
            "Invalid value for argument `--quantization`: expected float32 or int8 for an "
            f".onnx OUTPUT. Received: --quantization={quantization}"
        )
    calibration, verification = _export_images(args, quantization)
    from mobilenet import export

    if args.output.endswith(".onnx"):
        require_onnx("OUTPUT", "onnx", "onnxruntime", "tf2onnx")
        if verification is not None and args.verify_runtime == "openvino":
            require_openvino("--verify-runtime")
    result = export.export_model(
        args.model, args.output,
        quantization=None if quantization == "float32" else quantization,
        calibration_images=calibration, io_type=args.io_type or "uint8", fold_bn=args.fold_bn,
        verify_images=verification, onnx_runtime=args.verify_runtime,
    )
    size = result.path.stat().st_size
    print(f"wrote {result.path} ({size:,} bytes, {size / 1e6:.2f} MB; {quantization}"
          f"{', BatchNorm folded' if args.fold_bn else ''})")
    if result.input_quantization is not None:
        scale, zero_point = result.input_quantization
        print(f"input: {result.input_type}, scale {scale:g}, zero point {zero_point}")
    if result.report is not None:
        report = result.report
        runtime = f" in {args.verify_runtime}" if args.output.endswith(".onnx") else ""
        print(f"verified on {report.num_images} images{runtime}: top-1 agreement "
              f"{report.top1_agreement:.2%}, max abs difference {report.max_abs_diff:.4g} "
              f"(input {report.input_type}, output {report.output_type})")
    return 0


def _run_micro_export(args: argparse.Namespace) -> int:
    """``mobilenet export ... --target micro`` (or a .cc OUTPUT): the file TFLite Micro runs."""
    from mobilenet.micro import C_SUFFIXES

    suffix = Path(args.output).suffix
    if suffix not in (".tflite", *C_SUFFIXES):
        raise UsageError(
            "Invalid value for argument `OUTPUT`: expected a .tflite file or a .cc, .cpp or .c "
            f"C array for a microcontroller. Received: OUTPUT={args.output!r}"
        )
    if args.target == "litert":
        raise UsageError(
            "Invalid value for argument `--target`: a C array OUTPUT is for a microcontroller; "
            f"use --target micro or a .tflite OUTPUT. Received: --target=litert, OUTPUT={args.output!r}"
        )
    if args.quantization not in ("float32", "int8"):
        raise UsageError(
            "Invalid value for argument `--quantization`: a microcontroller file is int8. "
            f"Received: --quantization={args.quantization}"
        )
    if args.io_type not in (None, "int8"):
        raise UsageError(
            "Invalid value for argument `--io-type`: TensorFlow Lite Micro takes int8 input "
            f"and output. Received: --io-type={args.io_type}"
        )
    if args.model.endswith(".tflite"):
        return _c_array_from_tflite(args)
    calibration, verification = _export_images(args, "int8")
    from mobilenet.micro import export_micro

    try:
        result = export_micro(args.model, args.output, calibration, fold_bn=args.fold_bn,
                              verify_images=verification)
    except InvalidArgument as error:
        # Whether images are needed is known only once the model is loaded.
        if error.argument != "representative_data" or calibration is not None:
            raise
        raise UsageError(
            "Invalid value for argument `--calibration-data`: an int8 file for a microcontroller "
            "is calibrated on real images, unless the model was trained quantization-aware; "
            "give --calibration-data or --calibration-dir. Received: neither"
        ) from error
    if result.source_path is not None:
        _print_c_array(result.source_path, result.header_path, result.variable, result.file_bytes)
    else:
        print(f"wrote {result.tflite_path} ({result.file_bytes:,} bytes; int8 for TensorFlow "
              "Lite Micro, int8 input and output)")
    _print_micro_io(result.input_quantization, result.output_quantization)
    print(f"tensor arena: {result.arena_bytes:,} bytes (estimate for TensorFlow Lite Micro; "
          "`mobilenet profile FILE.tflite` shows where)")
    if result.report is not None:
        report = result.report
        print(f"verified in TensorFlow Lite Micro on {report.num_images} images: top-1 "
              f"agreement {report.top1_agreement:.2%} with the Keras model, "
              f"{report.litert_agreement:.2%} with LiteRT, which it matches to "
              f"{report.litert_max_abs_diff:.4g} at most; arena {report.arena_bytes:,} bytes "
              "sufficed")
    return 0


def _print_c_array(source, header, variable: str, size: int) -> None:  # noqa: ANN001 - Paths
    print(f"wrote {source} and {header} (the int8 model as a 16-byte aligned C array of "
          f"{size:,} bytes, `{variable}` and `{variable}_len`)")


def _c_array_from_tflite(args: argparse.Namespace) -> int:
    """``mobilenet export FILE.tflite model.cc``: an existing microcontroller file as a C array."""
    from mobilenet import micro

    if Path(args.output).suffix not in micro.C_SUFFIXES:
        raise UsageError(
            "Invalid value for argument `OUTPUT`: from a .tflite MODEL only a C array "
            f"(.cc, .cpp, .c) is written. Received: OUTPUT={args.output!r}"
        )

    try:
        data = micro.check_micro(args.model)
    except InvalidArgument as error:  # not a flatbuffer: the message names its argument already
        raise UsageError(error_message(error, {"path": "MODEL"})) from error
    except ValueError as error:  # a flatbuffer that TFLite Micro cannot run
        raise UsageError(f"Invalid value for argument `MODEL`: {first_line(error)}") from error
    source, header = micro.write_c_array(args.model, args.output)
    _print_c_array(source, header, micro.c_identifier(Path(args.output).stem), len(data))
    _print_micro_io(*micro.io_quantization(data))
    return 0


def _print_micro_io(inputs: tuple, outputs: tuple) -> None:
    scale, zero_point = inputs
    print(f"input: int8, scale {scale:.9g}, zero point {zero_point}: "
          f"q = round(x / {scale:.9g}) + {zero_point}")
    if scale == 1 and zero_point == -128:
        print("  the model takes pixels: feed (int8_t)(pixel - 128), a camera's uint8 byte "
              "with its top bit flipped (byte ^ 0x80)")
    out_scale, out_zero = outputs
    print(f"output: int8, scale {out_scale:.9g}, zero point {out_zero}: "
          f"x = {out_scale:.9g} * (q - ({out_zero}))")
