"""``mobilenet predict``: classify image files with a .keras, .tflite or .onnx model."""

from __future__ import annotations

import argparse
import sys

from mobilenet._validation import InvalidArgument
from mobilenet.cli.common import (
    command_parser,
    number,
    positive_int,
    require_onnx,
    require_openvino,
    usage_error,
)
from mobilenet.images import IMAGE_SUFFIXES

#: `mobilenet.predict.RUNTIMES`, written out so that `mobilenet --help` imports no runtime.
RUNTIMES = ("auto", "keras", "litert", "onnxruntime", "openvino", "tflite-micro")


#: Exit status of `predict` when some image files could not be read (the others were printed).
EXIT_SOME_FAILED = 1


#: The library's argument names -> the flags of `predict` that set them.
FLAGS = {
    "model": "MODEL", "paths": "IMAGE_OR_FOLDER", "top": "--top", "batch_size": "--batch-size",
    "num_threads": "--threads", "rescale": "--rescale", "offset": "--offset",
    "runtime": "--runtime",
}


def add_command(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``mobilenet predict`` and its flags to ``subcommands``."""
    parser = command_parser(
        subcommands, "predict", run, FLAGS,
        help="classify image files (JPEG, PNG...) with a .keras, .tflite or .onnx model",
        description=(
            "Classify image files with a trained model and print the top classes of each, "
            "with their names and probabilities. Images are resized to the model's input "
            "size and fed as pixels 0-255: as they are to a model that takes pixels (those "
            "of `mobilenet train`, and the files `mobilenet export` writes from them), as "
            "bytes to a file with a uint8 input; --rescale and --offset feed pixels * "
            "FACTOR + OFFSET instead. Classes are named after CIFAR-10 for 10 classes and "
            "ImageNet for 1000 (Keras downloads its class index once), else numbered."
        ),
        epilog=(
            "exit status: 0 when every image was classified; 1 when some could not be read "
            "(each named on stderr, the others printed); 2 for a usage error"
        ),
    )
    parser.add_argument("model", metavar="MODEL",
                        help="the .keras, .tflite or .onnx model file, or a microcontroller's C array "
                        "(.cc, .cpp, .c)")
    parser.add_argument("paths", metavar="IMAGE_OR_FOLDER", nargs="+",
                        help="image files, or folders searched recursively for "
                             f"{', '.join(IMAGE_SUFFIXES)} files (any case)")
    parser.add_argument("--top", type=positive_int, default=5, metavar="K",
                        help="classes to print per image (default: 5)")
    parser.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                        help="images per model call (default: 32)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads of the runtime (default: the runtime's own)")
    parser.add_argument("--rescale", type=number, default=None, metavar="FACTOR",
                        help="feed pixels * FACTOR + OFFSET, for a model that does not take "
                             "pixels (e.g. 1/255 for [0, 1]); needed for such a .keras model")
    parser.add_argument("--offset", type=number, default=0.0, metavar="OFFSET",
                        help="added after --rescale (e.g. -1 with --rescale 1/127.5 for [-1, 1])")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="what runs the model: auto (the default) takes the file's own "
                             "runtime, and for a .onnx file the one measured fastest on this "
                             "kind of CPU (OpenVINO, when installed, on CPUs with bfloat16 "
                             "instructions, AVX-512 BF16 or AMX; "
                             "else ONNX Runtime); openvino needs the `openvino` extra; "
                             "tflite-micro runs a microcontroller's C array (.cc, .cpp, .c) "
                             "or int8 .tflite in TensorFlow Lite Micro")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list, one object per image (path, top, error, and "
                             "runtime: the runtime that answered)")


def run(args: argparse.Namespace) -> int:
    """``mobilenet predict``: prints the top classes of each image."""
    import json

    if args.threads and args.model.endswith(".keras"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from mobilenet.predict import Classifier

    runtime = args.runtime
    if args.model.endswith(".onnx") and runtime == "auto":
        from mobilenet.export import fastest_onnx_runtime

        runtime = fastest_onnx_runtime()
    if args.model.endswith(".onnx") and runtime == "onnxruntime":
        require_onnx("MODEL", "onnxruntime")
    if runtime == "openvino":
        require_openvino("--runtime")
    try:
        classifier = Classifier(args.model, rescale=args.rescale, offset=args.offset,
                                num_threads=args.threads, runtime=runtime)
    except InvalidArgument as error:
        if error.argument != "rescale" or args.rescale is not None:
            raise
        raise usage_error(
            "--rescale", "", None, shown="no --rescale",
            problem="the model does not take pixels 0-255 (it says not, or its first layer is "
            "not a Rescaling), so say what its input is: pixels * --rescale + --offset, e.g. "
            "--rescale 1/255 for [0, 1], or --rescale 1/127.5 --offset -1 for [-1, 1]",
        ) from error
    results = classifier.classify(args.paths, top=args.top, batch_size=args.batch_size)
    if args.json:
        print(json.dumps([{**result.to_dict(), "runtime": classifier.runtime}
                          for result in results], indent=2))
    for result in results:
        if result.error is not None:
            print(f"mobilenet predict: error: {result.error}", file=sys.stderr)
        elif not args.json:
            scores = ", ".join(f"{score.name} {score.probability:.1%}" for score in result.top)
            print(f"{result.path}: {scores}")
    failed = sum(result.error is not None for result in results)
    if failed:
        print(f"mobilenet predict: {failed} of {len(results)} files could not be classified",
              file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0
