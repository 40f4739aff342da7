"""``mobilenet evaluate``: a trained model's accuracy on test images, overall and per class."""

from __future__ import annotations

import argparse

from mobilenet.cli.common import UsageError, check_output_file, command_parser, positive_int
from mobilenet.cli.data import add_data_options, cifar10_arrays, is_folder_dataset, limited
from mobilenet.cli.report import plots_missing, print_report
from mobilenet.training.recipe import RECIPE


#: The library's argument names -> the flags of `evaluate` that set them.
FLAGS = {
    "model": "MODEL.keras", "path": "MODEL.keras", "data_dir": "--data-dir",
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
            "Evaluate a model saved by `mobilenet train` (a .keras file) on test images: a "
            "folder dataset's test/ (else val/, else all of its class folders), or CIFAR-10's "
            "test batch. Prints overall and top-k accuracy, accuracy per class with the "
            "model's class names, and optionally the worst-classified files and the "
            "confusion matrix as a PNG."
        ),
    )
    parser.add_argument("model", metavar="MODEL.keras", help="the model file to evaluate")
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


def _check_input_size(model, image_shape: tuple, model_flag: str, data_flag: str) -> None:  # noqa: ANN001
    """Refuses a model whose input is not the data's image shape, blaming the model.

    The data are what they are (CIFAR-10's are 32x32x3); a model made for
    other images is the argument to change.
    """
    expected = tuple(image_shape)
    takes = tuple(model.input_shape[1:]) if isinstance(model.input_shape, tuple) else None
    if takes is not None and len(takes) == len(expected) and any(
        side is not None and side != want for side, want in zip(takes, expected)
    ):
        shape = "x".join(str(side) for side in expected)
        raise UsageError(
            f"Invalid value for argument `{model_flag}`: expected a model that takes the "
            f"{shape} images of {data_flag}. Received: a model whose input is {takes}"
        )


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
    from mobilenet.saving import load_model

    if args.plot and plots_missing():
        raise UsageError(f"Invalid value for argument `--plot`: {plots_missing()}")
    if args.errors < 0:
        raise UsageError(f"Invalid value for argument `--errors`: expected an integer >= 0. "
                         f"Received: --errors={args.errors}")
    model = load_model(args.model, argument="model")  # before any data download
    from mobilenet.export import pixel_input_range

    if pixel_input_range(model) is None:
        raise UsageError(
            f"Invalid value for argument `MODEL.keras`: {args.model} does not take pixels 0-255 "
            "(its first layer is no Rescaling), and evaluate feeds it pixels; evaluate it in "
            "Python on images preprocessed as it expects"
        )
    if is_folder_dataset(args.data_dir):
        (x_test, what), y_test = _evaluation_folder(args), None
    else:
        _, (x_test, y_test) = cifar10_arrays(args)
        _check_input_size(model, x_test.shape[1:], "MODEL.keras", "--data-dir")
        what = "test"
    report = training.evaluate(model, x_test, y_test, batch_size=args.batch_size or RECIPE.evaluation_batch_size,
                               flip_tta=args.flip_tta, top_k=args.top_k,
                               default_class_names=CIFAR10_CLASS_NAMES)
    print_report(report, what, flip_tta=args.flip_tta, errors=args.errors)
    if args.json:
        print(f"wrote {report.save_json(args.json)}")
    if args.plot:
        print(f"wrote {training.plot_confusion_matrix(report, args.plot)}")
    return 0
