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
    usage_error,
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
    "memory_plan": "--memory-plan",
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
                             "--data-dir`): int8 calibrates on 500 of its training images and "
                             "--verify uses its test (or validation) images, float files too; "
                             "cropped and resized as the model asks, as `mobilenet predict` does")
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
                        help="images to verify on (implies --verify; default: the calibration "
                             "images)")
    parser.add_argument("--memory-plan", choices=("offline", "greedy"), default=None,
                        help="--target micro: offline writes our plan of the tensor arena into "
                             "the file (activations packed to the most alive at one op), which "
                             "TensorFlow Lite Micro uses instead of its greedy planner; greedy "
                             "leaves the layout to that planner. Default: offline")


def _load_images(path: str, rescale: float, flag: str):
    import numpy as np

    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise usage_error(flag, "a .npy file of images (N, H, W, C)", path,
                          shown=f"{flag}={path!r} ({first_line(error)})") from error
    return images.astype("float32") * rescale


#: Training images that `--calibration-dir` calibrates int8 activation ranges on.
CALIBRATION_IMAGES = 500


def _export_images(args: argparse.Namespace, quantization: str) -> tuple:
    """The (calibration, verification) images the flags ask for; None where not needed.

    Images from a folder (--calibration-dir) reach the model through the one
    evaluation transform (`mobilenet.preprocessing`) with the model's own crop
    and resize, as `mobilenet predict` and `mobilenet evaluate` feed it: CIFAR-10's
    32x32 images are brought to a 96x96 model's size, say. --verify-data alone
    asks for verification: its images are not loaded to be dropped.
    """
    if args.calibration_dir:  # a library error about the calibration images names this flag
        args.flags = {**args.flags, "calibration_images": "--calibration-dir",
                      "representative_data": "--calibration-dir"}
    if args.calibration_dir and args.calibration_data:
        raise usage_error(
            "--calibration-dir", "", args.calibration_dir, problem="give it or --calibration-data, "
            "not both", shown=f"--calibration-dir={args.calibration_dir!r}, "
            f"--calibration-data={args.calibration_data!r}",
        )
    if args.verify_data:
        args.verify = True
    if args.calibration_data and quantization != "int8":
        raise usage_error(
            "--calibration-data", "", args.calibration_data,
            problem="only int8 export is calibrated (to verify a float file, give the images "
            "with --verify-data)",
            shown=f"--calibration-data={args.calibration_data!r} with --quantization={quantization}",
        )
    if args.calibration_dir and quantization != "int8" and not args.verify:
        raise usage_error(
            "--calibration-dir", "", args.calibration_dir,
            problem="only int8 export is calibrated; a float file uses the folder's images only "
            "with --verify",
            shown=f"--calibration-dir={args.calibration_dir!r} with --quantization={quantization}",
        )
    if args.verify and not (args.verify_data or args.calibration_data or args.calibration_dir):
        raise usage_error("--verify", "", True, shown="none of them", problem="it needs images, "
                          "from --verify-data, --calibration-data or --calibration-dir")
    calibration = verification = None
    if args.calibration_dir:
        calibration, verification = _folder_export_images(args)
    elif args.calibration_data:
        calibration = _load_images(args.calibration_data, args.rescale, "--calibration-data")
    if args.verify_data:
        verification = _load_images(args.verify_data, args.rescale, "--verify-data")
    elif verification is None:
        verification = calibration
    if quantization != "int8":
        calibration = None
    return calibration, (verification if args.verify else None)


def _folder_export_images(args: argparse.Namespace) -> tuple:
    """Calibration and verification pixels from --calibration-dir, as the model is fed images.

    A folder dataset: a seeded random 500 of the training images (every class
    mixed in) calibrate; test/, else val/, else the 10% that `mobilenet train`
    holds out by default (the same seed, so the same images) verify. A
    CIFAR-10 folder: the first 500 training images, and the test batch. Either
    way the images go through the model's evaluation transform (its crop and
    resize, `mobilenet.facts`).
    """
    from mobilenet.datasets import load_image_folder
    from mobilenet.facts import read_facts
    from mobilenet.preprocessing import load_images
    from mobilenet.training.pipeline import load_folder_images
    from mobilenet.training.recipe import RECIPE

    facts = read_facts(args.model, argument="model")
    if not facts.takes_pixels:
        raise usage_error(
            "--calibration-dir", "", args.calibration_dir,
            problem=f"its images are pixels 0-255, and {args.model} does not take pixels; give "
            "its own images with --calibration-data and --rescale",
        )
    options = facts.image_options()
    if is_folder_dataset(args.calibration_dir, "--calibration-dir"):
        splits = load_image_folder(args.calibration_dir,
                                   validation_fraction=RECIPE.validation_fraction,
                                   argument="calibration_dir")
        held = splits.test or splits.validation
        size, crop = options["size"], options["crop_fraction"]
        calibration = load_folder_images(splits.train, size, CALIBRATION_IMAGES, crop_fraction=crop,
                                         interpolation=options["interpolation"])
        verification = calibration if held is None else load_folder_images(
            held, size, crop_fraction=crop, interpolation=options["interpolation"])
        return calibration, verification
    from mobilenet import cifar10

    try:
        (x_train, _), (x_test, _) = cifar10.load_cifar10(args.calibration_dir)
    except (OSError, ValueError) as error:
        raise usage_error(
            "--calibration-dir", "a folder per class or a folder holding CIFAR-10",
            args.calibration_dir,
            shown=f"--calibration-dir={args.calibration_dir!r} ({first_line(error)})",
        ) from error
    return load_images(x_train[:CALIBRATION_IMAGES], **options), load_images(x_test, **options)


#: The --quantization values an .onnx OUTPUT can have (`mobilenet.export.ONNX_QUANTIZATIONS`
#: as flags spell them: float32 for None).
ONNX_QUANTIZATIONS = ("float32", "int8")


def run(args: argparse.Namespace) -> int:
    """``mobilenet export``: writes OUTPUT, and says its size, input type and agreement."""
    from mobilenet.export.micro import C_SUFFIXES

    if args.target == "micro" or Path(args.output).suffix in C_SUFFIXES:
        return _run_micro_export(args)
    quantization = "int8" if args.int8 else args.quantization
    if args.output.endswith(".onnx") and quantization not in ONNX_QUANTIZATIONS:
        raise usage_error("--quantization", "float32 or int8 for an .onnx OUTPUT", quantization,
                          shown=f"--quantization={quantization}")
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
    from mobilenet.export.micro import C_SUFFIXES

    suffix = Path(args.output).suffix
    if suffix not in (".tflite", *C_SUFFIXES):
        raise usage_error("OUTPUT", "a .tflite file or a .cc, .cpp or .c C array for a "
                          "microcontroller", args.output)
    if args.target == "litert":
        raise usage_error(
            "--target", "", "litert", shown=f"--target=litert, OUTPUT={args.output!r}",
            problem="a C array OUTPUT is for a microcontroller; use --target micro or a .tflite "
            "OUTPUT",
        )
    if args.quantization not in ("float32", "int8"):
        raise usage_error("--quantization", "", args.quantization,
                          problem="a microcontroller file is int8",
                          shown=f"--quantization={args.quantization}")
    if args.io_type not in (None, "int8"):
        raise usage_error("--io-type", "", args.io_type,
                          problem="TensorFlow Lite Micro takes int8 input and output",
                          shown=f"--io-type={args.io_type}")
    if args.model.endswith(".tflite"):
        if args.memory_plan is not None:
            raise usage_error(
                "--memory-plan", "", args.memory_plan,
                problem="a .tflite MODEL is written as it is, with the plan it carries; plan it "
                "when exporting the .keras model",
                shown=f"--memory-plan={args.memory_plan}, MODEL={args.model!r}",
            )
        return _c_array_from_tflite(args)
    calibration, verification = _export_images(args, "int8")
    from mobilenet.export.micro import export_micro

    try:
        result = export_micro(args.model, args.output, calibration, fold_bn=args.fold_bn,
                              verify_images=verification,
                              memory_plan=args.memory_plan or "offline")
    except InvalidArgument as error:
        # Whether images are needed is known only once the model is loaded.
        if error.argument != "representative_data" or calibration is not None:
            raise
        raise usage_error(
            "--calibration-data", "", None, shown="neither",
            problem="an int8 file for a microcontroller is calibrated on real images, unless the "
            "model was trained quantization-aware; give --calibration-data or --calibration-dir",
        ) from error
    if result.source_path is not None:
        _print_c_array(result.source_path, result.header_path, result.variable, result.file_bytes)
    else:
        print(f"wrote {result.tflite_path} ({result.file_bytes:,} bytes; int8 for TensorFlow "
              "Lite Micro, int8 input and output)")
    _print_micro_io(result.input_quantization, result.output_quantization)
    _print_arena(result.memory)
    print(f"ops: {', '.join(result.memory.op_kinds)}")
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
          f"{size:,} bytes, `{variable}` and `{variable}_len`; the header defines "
          f"`{variable}_arena_size`, the input and output scale and zero point, the class names "
          "and the ops to register)")


def _print_arena(memory) -> None:  # noqa: ANN001 - a MemoryProfile
    if memory.memory_plan == "offline":
        plan = (f"the offline plan in the file, against {memory.greedy_activation_bytes:,} by "
                "TensorFlow Lite Micro's greedy planner")
    else:
        plan = "TensorFlow Lite Micro's greedy planner; no plan in the file"
    print(f"tensor arena: {memory.arena_bytes:,} bytes (estimate for TensorFlow Lite Micro on a "
          f"64-bit host; about {memory.arena_bytes_32bit:,} on a 32-bit microcontroller, "
          f"estimated): {memory.activation_bytes:,} of activations ({plan}; "
          f"{memory.peak_live_bytes:,} alive at the peak op) and {memory.interpreter_bytes:,} "
          "of interpreter records; `mobilenet profile FILE.tflite` shows where")


def _c_array_from_tflite(args: argparse.Namespace) -> int:
    """``mobilenet export FILE.tflite model.cc``: an existing microcontroller file as a C array."""
    from mobilenet.export import micro

    if Path(args.output).suffix not in micro.C_SUFFIXES:
        raise usage_error("OUTPUT", "", args.output,
                          problem="from a .tflite MODEL only a C array (.cc, .cpp, .c) is written")

    try:
        data = micro.check_micro(args.model)
    except InvalidArgument as error:  # not a flatbuffer: the message names its argument already
        raise UsageError(error_message(error, {"path": "MODEL"})) from error
    except ValueError as error:  # a flatbuffer that TFLite Micro cannot run
        raise usage_error("MODEL", "", args.model, shown="", problem=first_line(error)) from error
    source, header = micro.write_c_array(args.model, args.output)
    _print_c_array(source, header, micro.c_identifier(Path(args.output).stem), len(data))
    _print_micro_io(*micro.io_quantization(data))
    from mobilenet.export.micro_memory import profile_tflite

    memory = profile_tflite(data)
    _print_arena(memory)
    print(f"ops: {', '.join(memory.op_kinds)}")
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
