"""``mobilenet evaluate``: a trained model's accuracy on test images, overall and per class."""

from __future__ import annotations

import argparse

from mobilenet.cli.common import (
    check_output_file,
    command_parser,
    positive_int,
    require_onnx,
    usage_error,
)
from mobilenet.cli.data import add_data_options, cifar10_arrays, is_folder_dataset, limited
from mobilenet.cli.report import plots_missing, print_report
from mobilenet.training.recipe import RECIPE


#: The library's argument names -> the flags of `evaluate` that set them.
FLAGS = {
    "model": "MODEL", "path": "MODEL", "data_dir": "--data-dir",
    "x_test": "--data-dir", "y_test": "--data-dir", "batch_size": "--batch-size",
    "limit": "--limit", "top_k": "--top-k", "errors": "--errors", "json": "--json",
    "plot": "--plot", "flip_tta": "--flip-tta",
}


def add_command(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``mobilenet evaluate`` and its flags to ``subcommands``."""
    parser = command_parser(
        subcommands, "evaluate", run, FLAGS,
        help="report a trained model's accuracy on test images, per class",
        description=(
            "Evaluate a model saved by `mobilenet train` (a .keras file) or exported from one "
            "(a .tflite file, run in LiteRT, or an .onnx file, run in ONNX Runtime) on test "
            "images: a folder dataset's test/ (else val/, else all of its class folders), or "
            "CIFAR-10's test batch. Images reach the model as `mobilenet predict` feeds them "
            "(the crop and resize the model's file asks for), so each image gets the "
            "probabilities `predict` prints. Prints overall and top-k accuracy, accuracy per "
            "class with the model's class names, and optionally the worst-classified files and "
            "the confusion matrix as a PNG."
        ),
    )
    parser.add_argument("model", metavar="MODEL",
                        help="the model file to evaluate: .keras, .tflite or .onnx, or a "
                        "microcontroller's C array (.cc, .cpp, .c; run in TensorFlow Lite Micro)")
    add_data_options(parser)
    parser.add_argument(
        "--limit", type=positive_int, default=None, metavar="N",
        help="evaluate only N test images (a seeded random choice from a folder dataset, the "
        "first N of CIFAR-10)",
    )
    parser.add_argument("--top-k", type=positive_int, default=5, metavar="K",
                        help="also report top-K accuracy (default: 5)")
    parser.add_argument("--errors", type=int, default=0, metavar="N",
                        help="print the N most confidently misclassified images (default: 0)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON here")
    parser.add_argument("--plot", metavar="PATH",
                        help="also save the confusion matrix as a PNG (needs matplotlib)")
    parser.add_argument("--flip-tta", action="store_true",
                        help="also classify each image flipped left-right and average the two "
                        "(test-time augmentation; twice the inference time)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads of LiteRT or ONNX Runtime for a .tflite or .onnx MODEL "
                        "(default: the runtime's own)")


def _load(args: argparse.Namespace):  # noqa: ANN202 - a keras.Model, or the path of a file
    """The model MODEL names: a loaded .keras model, or the checked path of a .tflite/.onnx file."""
    from pathlib import Path

    from mobilenet.saving import load_model

    suffix = Path(args.model).suffix.lower()
    if suffix in (".tflite", ".onnx", ".cc", ".cpp", ".c"):
        from mobilenet._validation import check_existing_file

        if suffix == ".onnx":
            require_onnx("MODEL", "onnx", "onnxruntime")
        check_existing_file(args.model, "model", f"{suffix} file")
        return args.model
    return load_model(args.model, argument="model")


def _facts(model):  # noqa: ANN001, ANN202 - a keras.Model or a path; a ModelFacts
    """The model's facts; a microcontroller's C array is read for its flatbuffer."""
    from pathlib import Path

    from mobilenet.facts import read_facts

    if not isinstance(model, str) or Path(model).suffix.lower() not in (".cc", ".cpp", ".c"):
        return read_facts(model, argument="model")
    from mobilenet.export.micro import read_c_array

    return read_facts(read_c_array(model), argument="model")


def _evaluation_folder(args: argparse.Namespace):  # noqa: ANN202 - (ImageFolder, what)
    """The images `evaluate` reports on in a folder dataset: test/, else val/, else all."""
    from mobilenet.datasets import load_image_folder

    splits = load_image_folder(args.data_dir, validation_fraction=0.0, argument="data_dir")
    for what, folder in (("test", splits.test), ("validation", splits.validation)):
        if folder is not None:
            return limited(folder, args.limit), what
    return limited(splits.train, args.limit), "test"


def run(args: argparse.Namespace) -> int:
    """``mobilenet evaluate``: prints the model's accuracy on the test images."""
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            check_output_file(path, flag)
    from mobilenet import training
    from mobilenet.datasets import CIFAR10_CLASS_NAMES
    if args.plot and plots_missing():
        raise usage_error("--plot", "", args.plot, shown="", problem=plots_missing())
    if args.errors < 0:
        raise usage_error("--errors", "an integer >= 0", args.errors)
    model = _load(args)  # before any data download
    facts = _facts(model)
    if not facts.takes_pixels:
        raise usage_error(
            "MODEL", "", args.model, shown="",
            problem=f"{args.model} does not take pixels 0-255 (it says so, or its first layer "
            "is no Rescaling), and evaluate feeds it pixels; evaluate it in Python on images "
            "preprocessed as it expects",
        )
    if is_folder_dataset(args.data_dir):
        (x_test, what), y_test = _evaluation_folder(args), None
    else:
        _, (x_test, y_test) = cifar10_arrays(args)
        what = "test"
    report = training.evaluate(model, x_test, y_test, batch_size=args.batch_size or RECIPE.evaluation_batch_size,
                               flip_tta=args.flip_tta, top_k=args.top_k,
                               default_class_names=CIFAR10_CLASS_NAMES, num_threads=args.threads)
    print_report(report, what, flip_tta=args.flip_tta, errors=args.errors)
    if args.json:
        print(f"wrote {report.save_json(args.json)}")
    if args.plot:
        print(f"wrote {training.plot_confusion_matrix(report, args.plot)}")
    return 0
