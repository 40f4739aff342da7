"""The ``mobilenet`` command line: argument parsing and printing only.

Each command's handler imports the module that does the work, so that
``mobilenet --help`` answers without loading TensorFlow, and calls the
library: what a command does, a Python user can do with the same call.

Every error a user can cause (a missing or corrupt file, a bad data folder, a
bad value, an unwritable output) ends in `main` as one line on stderr that
names the flag as the command line spells it, and exit status 2; Ctrl-C exits
with 130 (saying how to resume a training run), and a closed output pipe
(``mobilenet predict ... | head``) ends the command quietly. TensorFlow's C++
start-up log is hidden, whatever ``TF_CPP_MIN_LOG_LEVEL`` says, and so are
other packages' deprecation and future warnings; other warnings show as one
line, ``mobilenet COMMAND: warning: ...``. ``--verbose`` shows it all, and the
full traceback of an error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from mobilenet._tf_log import without_tensorflow_log
from mobilenet._validation import InvalidArgument

__all__ = ["build_parser", "main"]

#: Exit status for a user error (as argparse uses), for Ctrl-C (128 + SIGINT) and for a
#: closed output pipe (128 + SIGPIPE, what a shell reports for a command the pipe ended).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    """The ``mobilenet`` argument parser, with one sub-command per task."""
    from mobilenet import __version__

    parser = argparse.ArgumentParser(
        prog="mobilenet",
        description="MobileNet V1 for Keras 3: profile, train, evaluate, export and predict.",
    )
    parser.add_argument("--version", action="version", version=f"mobilenet {__version__}")
    parser.set_defaults(verbose=False)
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    subcommands.required = True
    # Each task adds its sub-command here, one function per command.
    _add_profile_command(subcommands)
    _add_paper_command(subcommands)
    _add_train_command(subcommands)
    _add_evaluate_command(subcommands)
    _add_export_command(subcommands)
    _add_predict_command(subcommands)
    return parser


class UsageError(ValueError):
    """A bad combination of flags, found by a handler; its message names the flags."""


def _verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", action="store_true",
        help="show TensorFlow's start-up log, and a traceback with any error",
    )


def _flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Maps each option's Python name (``data_dir``) to its flag (``--data-dir``)."""
    names = {}
    for action in parser._actions:  # argparse has no public list of a parser's actions
        if action.dest in (argparse.SUPPRESS, "help"):
            continue
        if action.option_strings:
            names[action.dest] = max(action.option_strings, key=len)
        else:
            names[action.dest] = str(action.metavar or action.dest)
    return names


def _as_flags(message: str, names: dict[str, str]) -> str:
    """Rewrites the library's `argument` names in ``message`` as this command's flags.

    For the messages not raised as `InvalidArgument`: backticked names and
    ``name=``, and advice to pass ``name=True`` as the on/off flag itself
    (the library's own mention of the flag after it dropped).
    """
    def flag(match: re.Match[str]) -> str:
        return names.get(match.group(1), match.group(1))

    message = re.sub(
        r"(?<![\w-])([a-z_][a-z0-9_]*)=True(?: \(`--[\w-]+`\))?",
        lambda m: names[m.group(1)] if m.group(1) in names else m.group(0),
        message,
    )
    message = re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)`", lambda m: f"`{flag(m)}`", message)
    return re.sub(
        r"(?<![\w-])([a-z_][a-z0-9_]*)=",
        lambda m: f"{names[m.group(1)]}=" if m.group(1) in names else m.group(0),
        message,
    )


def _error_message(error: BaseException, parser: argparse.ArgumentParser) -> str:
    """One line for a user error, naming the flags as this command spells them."""
    if isinstance(error, UsageError):  # the CLI's own, written with its flags
        return _first_line(error)
    names = _flag_names(parser)
    names.update(parser.get_default("aliases") or {})
    if isinstance(error, InvalidArgument):
        return _first_line(error.message(names.get(error.argument, error.argument)))
    return _as_flags(_first_line(error), names)


def _first_line(error: BaseException | str) -> str:
    text = str(error).strip()
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.strerror}: {error.filename}"
    return text.splitlines()[0] if text else type(error).__name__


def _command(
    subcommands: argparse._SubParsersAction,
    name: str,
    handler: object,
    aliases: dict[str, str] | None = None,
    **kwargs: object,
) -> argparse.ArgumentParser:
    """Adds sub-command ``name``; ``aliases`` maps library argument names to its flags."""
    parser = subcommands.add_parser(name, **kwargs)
    _verbose_option(parser)
    parser.set_defaults(handler=handler, subparser=parser, aliases=aliases or {})
    return parser


def _number(text: str) -> float:
    """An argparse type: a decimal number or a fraction of two, such as ``5/7`` or ``1/127.5``."""
    from fractions import Fraction

    try:
        numerator, slash, denominator = text.strip().partition("/")
        if "/" in denominator:
            raise ValueError(text)
        return float(Fraction(numerator) / Fraction(denominator if slash else "1"))
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(
            f"expected a number or a fraction such as 5/7 or 1/127.5, received {text!r}"
        ) from error


def _check_output_file(path: str, flag: str) -> None:
    """Refuses, before any work, an output file ``flag`` names that cannot be written.

    Missing folders above it are fine (they are created); a folder in its
    place, a file where a folder should be, or an unwritable folder are not.
    """
    target = Path(path)
    problem = None
    if target.is_dir():
        problem = "a folder"
    else:
        folder = target.parent
        while not folder.exists() and folder != folder.parent:  # the folders to be created
            folder = folder.parent
        if not folder.is_dir():
            problem = f"{str(folder)!r} is a file, not a folder"
        elif not os.access(folder, os.W_OK | os.X_OK):
            problem = f"folder {str(folder)!r} is not writable"
    if problem is not None:
        raise UsageError(
            f"Invalid value for argument `{flag}`: expected a file name in a writable folder. "
            f"Received: {flag}={path!r} ({problem})"
        )


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


# --------------------------------------------------------------------------- profile, paper


def _add_profile_command(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "profile", _run_profile,
        aliases={"input_shape": "--input-size", "source": "MODEL"},
        help="per-layer mult-adds and parameters of a MobileNet V1; flash and RAM with --memory",
        description=(
            "Builds MobileNetV1(alpha, rho) and prints its mult-adds and parameters "
            "per layer, in total and per layer kind (paper Table 2). With --memory, also "
            "what it needs on a microcontroller in TensorFlow Lite Micro: flash (the int8 "
            "file, weights by dtype) and RAM (the tensor arena a greedy planner lays out, "
            "and the layer where activations peak). Several --alpha or --input-size values "
            "print one row per combination. Given MODEL (.keras or .tflite), profiles that."
        ),
    )
    parser.add_argument("model", metavar="MODEL", nargs="?", default=None,
                        help="a .keras or .tflite file to profile instead of building one "
                             "(a .tflite file: memory only)")
    parser.add_argument("--alpha", type=_number, nargs="+", default=[1.0], metavar="A",
                        help="width multiplier alpha > 0, or several (default 1.0)")
    parser.add_argument("--rho", type=_number, default=None,
                        help="resolution multiplier rho > 0, a number or a fraction such "
                             "as 5/7: input side round(224 * rho) (default: 1, or --input-size)")
    parser.add_argument("--input-size", type=int, nargs="+", default=None, metavar="N",
                        help="square input side N >= 32, instead of --rho; or several")
    parser.add_argument("--num-classes", type=int, default=1000, metavar="K",
                        help="classifier outputs (default 1000)")
    parser.add_argument("--conv", action="store_true",
                        help="the Conv MobileNet of paper Table 4 (full 3x3 convs)")
    parser.add_argument("--shallow", action="store_true",
                        help="the Shallow MobileNet of paper Table 6 (blocks 7-11 removed)")
    parser.add_argument("--memory", action="store_true",
                        help="also flash and tensor arena in TensorFlow Lite Micro (converts "
                             "each model to int8, some seconds each)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _run_profile(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _profile_file(args)
    if args.input_size is not None and args.rho is not None:
        raise UsageError(
            "Arguments `--rho` and `--input-size` both set the input size; give one of "
            f"them. Received: --rho={args.rho}, --input-size={args.input_size[0]}"
        )
    from mobilenet.model import MobileNetV1
    from mobilenet.profiler import profile

    sizes = args.input_size or [None]
    settings = [(alpha, size) for alpha in args.alpha for size in sizes]
    results = []
    for alpha, size in settings:
        model = MobileNetV1(
            alpha, args.rho, args.num_classes,
            input_shape=None if size is None else (size, size, 3),
            separable=not args.conv, shallow=args.shallow,
        )
        results.append(({"alpha": alpha, "input": model.input_shape[1]},
                        profile(model, memory=args.memory)))
    if len(results) == 1:
        costs = results[0][1]
        print(costs.to_json() if args.json else costs)
    elif args.json:
        import json

        print(json.dumps([{**keys, **costs.to_dict()} for keys, costs in results], indent=2))
    else:
        from mobilenet.profiler import sweep_table

        print(sweep_table(results))
    return 0


def _profile_file(args: argparse.Namespace) -> int:
    """``mobilenet profile MODEL``: a .tflite file's memory, or a .keras file's costs and memory."""
    given = [flag for flag, value, default in (
        ("--alpha", args.alpha, [1.0]), ("--rho", args.rho, None),
        ("--input-size", args.input_size, None), ("--num-classes", args.num_classes, 1000),
        ("--conv", args.conv, False), ("--shallow", args.shallow, False),
    ) if value != default]
    if given:
        raise UsageError(
            f"Invalid value for argument `{given[0]}`: it builds a model, and MODEL is given. "
            f"Received: MODEL={args.model!r} and {given[0]}"
        )
    if args.model.endswith(".tflite"):
        from mobilenet.memory import memory_profile

        memory = memory_profile(args.model)
        print(memory.to_json() if args.json else memory)
        return 0
    from mobilenet.profiler import profile
    from mobilenet.saving import load_model

    costs = profile(load_model(args.model, argument="source"), memory=True)
    print(costs.to_json() if args.json else costs)
    return 0


def _add_paper_command(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "paper", _run_paper,
        help="the paper's Tables 2, 4, 6, 7 and 8, printed vs computed",
        description=(
            "Builds every model of the paper's cost tables (Tables 2, 4, 6, 7 and 8), "
            "counts it, and prints the paper's values next to the computed ones, "
            "marking each cell that differs (Markdown)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")


def _run_paper(args: argparse.Namespace) -> int:
    from mobilenet.paper import reproduce_paper_tables

    tables = reproduce_paper_tables()
    print(tables.to_json() if args.json else tables.to_markdown(), end="\n" if args.json else "")
    return 0


# --------------------------------------------------------------------------- train, evaluate


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `train` and `evaluate`: where the data is and how much to use."""
    parser.add_argument(
        "--data-dir", metavar="DIR",
        help="your images, one folder per class (DIR/<class>/*.jpg, or DIR/train/<class>/ with "
        "DIR/val/ and DIR/test/ beside it), or a folder holding CIFAR-10's "
        "cifar-10-batches-py/ or cifar-10-python.tar.gz; default: $MOBILENET_CIFAR10_DIR, "
        "else Keras's CIFAR-10 download (170 MB on first use)",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=None, metavar="N",
        help="images per step (train default 64, evaluate default 256)",
    )


def _add_train_command(subcommands: argparse._SubParsersAction) -> None:
    from mobilenet.training.recipe import RECIPE

    parser = _command(
        subcommands, "train", _run_train,
        aliases={"x_train": "--data-dir", "y_train": "--data-dir", "x": "--data-dir",
                 "y": "--data-dir", "fraction": "--validation-fraction"},
        help="train a MobileNet V1 on your image folders or CIFAR-10 and report its accuracy",
        description=(
            "Train a MobileNet V1 with the library's measured recipe on your images (a folder "
            "per class, streamed from the files) or on CIFAR-10, then print its accuracy on "
            "the test images (test/ of a folder dataset, else its validation images). "
            "Writes best.keras, final.keras, history.csv/json, run.json, test.json (and PNG "
            "plots when matplotlib is installed) to --output-dir; the models carry their "
            "class names and take pixels (0-255) as they are. If the run is killed, run the "
            "same command with --resume to continue from the last finished epoch."
        ),
        epilog=(
            "examples:\n"
            "  mobilenet train --data-dir ../shared/data/cifar10-subset --epochs 15\n"
            "  mobilenet train --data-dir photos/ --image-size 160 --weights imagenet "
            "--freeze-epochs 3 --epochs 20\n"
            "  mobilenet train --data-dir ~/data --output-dir runs/full --epochs 60 --resume   # after a kill\n"
            "  mobilenet train --strategy mirrored --mixed-precision --batch-size 256"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(parser)
    parser.add_argument(
        "--limit", type=_positive_int, default=None, metavar="N",
        help="use only N training and N test images (for a quick check; a seeded random "
        "choice from a folder dataset, the first N of CIFAR-10)",
    )
    parser.add_argument("--output-dir", default="runs/cifar10", metavar="DIR",
                        help="folder for checkpoints, history and plots (default: runs/cifar10)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output-dir from its last finished epoch")
    parser.add_argument("--epochs", type=_positive_int, default=RECIPE.epochs, metavar="N",
                        help=f"total epochs, --freeze-epochs included (default: {RECIPE.epochs})")
    parser.add_argument("--image-size", type=_positive_int, default=None, metavar="N",
                        help="the model's square input side for a folder dataset: the paper's "
                        "224, 192, 160, 128 or any other (default: 224; CIFAR-10 is 32)")
    parser.add_argument("--weights", metavar="imagenet|FILE", default=None,
                        help="start from pretrained weights: imagenet (keras.applications' "
                        "files, downloaded), their .h5 file, or a .keras model trained by "
                        "mobilenet train on any classes; the classifier is new")
    parser.add_argument("--freeze-epochs", type=int, default=RECIPE.freeze_epochs, metavar="N",
                        help="with --weights: first train only the new classifier for N epochs, "
                        "the backbone frozen, then fine-tune every layer (default: "
                        f"{RECIPE.freeze_epochs})")
    parser.add_argument("--alpha", type=_number, default=RECIPE.alpha, metavar="A",
                        help=f"width multiplier alpha: channels x alpha (default: {RECIPE.alpha})")
    parser.add_argument(
        "--early-downsampling", type=int, choices=(4, 2, 1), default=None,
        help="combined stride of the stem and block 2: 4 is the paper's net (1x1 "
        "final map at 32x32), 2 and 1 keep 2x2 and 4x4 maps at about 4x and 15x the cost "
        "(default: 2 up to 64 px, 4 above)",
    )
    parser.add_argument(
        "--shallow", action=argparse.BooleanOptionalAction, default=None,
        help="the paper's Shallow MobileNet (blocks 7-11 removed), which learns faster from "
        "few images; --no-shallow trains the full network (default: shallow up to 64 px "
        "without --weights)",
    )
    parser.add_argument("--learning-rate", type=_number, default=RECIPE.learning_rate, metavar="LR",
                        help="peak learning rate of SGD's warm-up + cosine schedule "
                        f"(default: {RECIPE.learning_rate})")
    parser.add_argument("--fine-tune-learning-rate", type=_number, default=None, metavar="LR",
                        help="with --weights: the peak rate of fine-tuning (default: "
                        f"--learning-rate x {RECIPE.fine_tune_factor:g})")
    parser.add_argument("--weight-decay", type=_number, default=RECIPE.weight_decay, metavar="WD",
                        help="decoupled weight decay on kernels, except depthwise ones "
                        f"(default: {RECIPE.weight_decay:g})")
    parser.add_argument("--label-smoothing", type=_number, default=RECIPE.label_smoothing,
                        metavar="S", help=f"label smoothing (default: {RECIPE.label_smoothing})")
    parser.add_argument("--validation-fraction", type=_number,
                        default=RECIPE.validation_fraction, metavar="F",
                        help="share of each class held out for validation and for picking "
                        "best.keras (not with a val/ folder); 0 trains on all (default: "
                        f"{RECIPE.validation_fraction})")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="turn off the random crops and flips of training images")
    parser.add_argument("--random-erasing", type=_number, default=RECIPE.random_erasing,
                        metavar="P", help="also erase a random rectangle from this share of the "
                        f"training images (default: {RECIPE.random_erasing:g})")
    parser.add_argument("--cutmix", action=argparse.BooleanOptionalAction, default=None,
                        help="CutMix within each training batch, against overfitting in long "
                        f"runs (default: on for --epochs {RECIPE.cutmix_min_epochs} or more)")
    parser.add_argument(
        "--cache", default="auto", metavar="auto|memory|none|PATH",
        help="keep a folder dataset after its first epoch: auto (in memory when it takes at "
        f"most {RECIPE.auto_cache_bytes // 2**20} MiB there), memory, none (stream every "
        "epoch), or a file path prefix for a cache on disk (default: auto)",
    )
    parser.add_argument(
        "--strategy", choices=("default", "mirrored", "multi-worker", "tpu"), default="default",
        help="tf.distribute strategy: mirrored (all local GPUs), multi-worker "
        "(machines listed in TF_CONFIG; each reads its own share of a folder dataset), tpu "
        "(default: one device)",
    )
    parser.add_argument(
        "--mixed-precision", nargs="?", const="auto", default=None,
        choices=("auto", "mixed_float16", "mixed_bfloat16"),
        help="mixed precision policy; alone means auto: mixed_float16 on GPU, "
        "mixed_bfloat16 on CPU/TPU (default: float32)",
    )
    parser.add_argument("--time-budget", type=_number, default=None, metavar="SECONDS",
                        help="fit the run into this many seconds: fewer epochs if needed, with the "
                        "learning-rate schedule shortened to match")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    parser.add_argument("--deterministic", action="store_true",
                        help="repeat exactly: the same --seed on the same machine gives the same "
                        "history and weights (TensorFlow's op determinism; on a GPU some ops "
                        "run slower or are refused)")


def _add_evaluate_command(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "evaluate", _run_evaluate,
        aliases={"path": "MODEL.keras", "x_test": "--data-dir", "y_test": "--data-dir"},
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
    _add_data_options(parser)
    parser.add_argument(
        "--limit", type=_positive_int, default=None, metavar="N",
        help="evaluate only N test images (a seeded random choice from a folder dataset, the "
        "first N of CIFAR-10)",
    )
    parser.add_argument("--top-k", type=_positive_int, default=5, metavar="K",
                        help="also report top-K accuracy (default: 5)")
    parser.add_argument("--errors", type=int, default=0, metavar="N",
                        help="print the N most confidently misclassified images (default: 0)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON here")
    parser.add_argument("--plot", metavar="PATH",
                        help="also save the confusion matrix as a PNG (needs matplotlib)")
    parser.add_argument("--flip-tta", action="store_true",
                        help="also classify each image flipped left-right and average the two "
                        "(test-time augmentation; twice the inference time)")


def _print_report(report, what: str = "test", flip_tta: bool = False, errors: int = 0) -> None:  # noqa: ANN001
    how = ", with flip TTA" if flip_tta else ""
    top = (f"; top-{report.top_k} {report.top_k_accuracy:.2%}"
           if report.top_k < len(report.class_names) else "")
    print(f"{what} accuracy: {report.accuracy:.2%} on {report.num_examples} images{how}{top}")
    width = max(11, *(len(name) + 1 for name in report.per_class_accuracy))
    for name, accuracy in report.per_class_accuracy.items():
        print(f"  {name:<{width}}{accuracy:7.1%}")
    for error in report.errors[:errors]:
        where = error.path if error.path is not None else f"image {error.index}"
        print(f"  wrong: {where}: {error.label}, predicted {error.predicted} "
              f"({error.confidence:.1%})")


def _is_folder_dataset(data_dir: str | None, flag: str = "--data-dir") -> bool:
    """Whether ``data_dir`` is a folder dataset (else CIFAR-10's release, or its download)."""
    if not data_dir:
        return False
    from pathlib import Path

    from mobilenet.datasets.image_folder import is_image_folder

    if not Path(data_dir).expanduser().exists():
        raise UsageError(
            f"Invalid value for argument `{flag}`: expected a folder with one sub-folder of "
            "images per class, or one holding CIFAR-10's cifar-10-batches-py/ or "
            f"cifar-10-python.tar.gz. Received: {flag}={data_dir!r} (no such folder)"
        )
    return is_image_folder(data_dir)


def _limited(folder, limit: int | None, seed: int = 0):  # noqa: ANN001, ANN202 - an ImageFolder
    """A seeded random choice of ``limit`` files of ``folder`` (all of them without a limit)."""
    if folder is None or limit is None or limit >= len(folder):
        return folder
    import numpy as np

    return folder.subset(np.sort(np.random.default_rng(seed).permutation(len(folder))[:limit]))


def _load_cifar10(args: argparse.Namespace) -> tuple:
    from mobilenet import cifar10

    (x_train, y_train), (x_test, y_test) = cifar10.load_cifar10(args.data_dir)
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    return (x_train, y_train), (x_test, y_test)


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


def _make_strategy(name: str):  # noqa: ANN202 - a tf.distribute.Strategy or None
    """`mobilenet.training.make_strategy`, with a usage error where no TPU can be found."""
    from mobilenet import training

    try:
        return training.make_strategy(name)
    except ValueError as error:
        if name != "tpu" or os.environ.get("TPU_NAME"):
            raise
        raise UsageError(
            "Invalid value for argument `--strategy`: no TPU was found from this machine "
            "(TensorFlow looks for the TPU of a Cloud TPU VM); name one in the TPU_NAME "
            "environment variable, as its Cloud TPU name or grpc://HOST:PORT address. "
            "Received: --strategy=tpu"
        ) from error


def _plots_missing() -> str | None:
    """Why plots cannot be drawn here, or None when matplotlib is installed."""
    import importlib.util

    from mobilenet.training.plots import PLOT_EXTRA_HINT

    if importlib.util.find_spec("matplotlib") is None:
        return f"matplotlib is not installed ({PLOT_EXTRA_HINT})"
    return None


def _train_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of `train` that the flags set, the same for every kind of data."""
    from mobilenet import training

    return dict(
        resume=args.resume, epochs=args.epochs, alpha=args.alpha,
        early_downsampling=args.early_downsampling, shallow=args.shallow,
        batch_size=args.batch_size or training.RECIPE.batch_size,
        learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, validation_fraction=args.validation_fraction,
        augment=args.augment, random_erasing=args.random_erasing,
        cutmix="auto" if args.cutmix is None else args.cutmix,
        strategy=_make_strategy(args.strategy),
        mixed_precision=args.mixed_precision or False,
        time_budget=args.time_budget, seed=args.seed, deterministic=args.deterministic,
    )


def _train_folders(args: argparse.Namespace, output_dir) -> tuple:  # noqa: ANN001
    """Trains on an image folder dataset; returns the result and the images to report on."""
    from mobilenet import training
    from mobilenet.datasets import load_image_folder

    splits = load_image_folder(args.data_dir, validation_fraction=args.validation_fraction,
                               seed=args.seed, argument="data_dir")
    if args.limit is not None:
        splits = dataclasses.replace(
            splits, train=_limited(splits.train, args.limit, args.seed),
            validation=_limited(splits.validation, args.limit, args.seed),
            test=_limited(splits.test, args.limit, args.seed),
        )
    cache = None if args.cache == "none" else args.cache
    result = training.train(
        splits, output_dir=output_dir, image_size=args.image_size, weights=args.weights,
        freeze_epochs=args.freeze_epochs, fine_tune_learning_rate=args.fine_tune_learning_rate,
        cache=cache, **_train_options(args),
    )
    if splits.test is not None:
        return result, "test", splits.test, None
    if splits.validation is not None:
        return result, "validation", splits.validation, None
    return result, None, None, None


def _run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mobilenet import cifar10, training

    output_dir = Path(args.output_dir)
    if _is_folder_dataset(args.data_dir):
        result, what, x_test, y_test = _train_folders(args, output_dir)
    else:
        for flag, value, default in (("--image-size", args.image_size, None),
                                     ("--weights", args.weights, None),
                                     ("--freeze-epochs", args.freeze_epochs, 0),
                                     ("--fine-tune-learning-rate", args.fine_tune_learning_rate, None),
                                     ("--cache", args.cache, "auto")):
            if value != default:
                raise UsageError(
                    f"Invalid value for argument `{flag}`: it applies to a folder dataset "
                    f"(a folder per class), and --data-dir holds CIFAR-10. Received: {flag}={value}"
                )
        (x_train, y_train), (x_test, y_test) = _load_cifar10(args)
        if args.validation_fraction and len(x_train) < 20:
            raise UsageError(
                f"Invalid value for argument `--limit`: {len(x_train)} training images are too "
                "few to hold out a validation split; use more, or --validation-fraction 0"
            )
        result = cifar10.train(x_train, y_train, output_dir=output_dir, **_train_options(args))
        what = "test"
    # Ctrl-C from here on finds a finished run: --resume would have nothing to do.
    args.trained_model = result.final_model_path
    # Every worker of a multi-worker run evaluates (predict is collective); the chief writes.
    report = None
    if what is not None:
        report = training.evaluate(result.model, x_test, y_test)
    if not result.chief:
        return 0
    written = []
    if report is not None:
        _print_report(report, what)
        written.append(report.save_json(output_dir / "test.json"))
    missing = _plots_missing()
    if missing is None:
        written += training.save_plots(result.history, report, output_dir)
    for path in (result.best_model_path, result.final_model_path):
        if path is not None:
            written.append(path)
    written += [output_dir / name for name in (training.HISTORY_CSV, training.HISTORY_JSON,
                                               training.RUN_JSON, training.HEAD_MODEL)]
    names = ", ".join(sorted(path.name for path in written if path.is_file()))
    print(f"wrote {names} to {output_dir}/")
    if missing is not None:
        print(f"plots skipped: {missing}")
    return 0


def _evaluation_folder(args: argparse.Namespace):  # noqa: ANN202 - (ImageFolder, what)
    """The images `evaluate` reports on in a folder dataset: test/, else val/, else all."""
    from mobilenet.datasets import load_image_folder

    splits = load_image_folder(args.data_dir, validation_fraction=0.0, argument="data_dir")
    for what, folder in (("test", splits.test), ("validation", splits.validation)):
        if folder is not None:
            return _limited(folder, args.limit), what
    return _limited(splits.train, args.limit), "test"


def _run_evaluate(args: argparse.Namespace) -> int:
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            _check_output_file(path, flag)
    from mobilenet import training
    from mobilenet.datasets import CIFAR10_CLASS_NAMES
    from mobilenet.saving import load_model

    if args.plot and _plots_missing():
        raise UsageError(f"Invalid value for argument `--plot`: {_plots_missing()}")
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
    if _is_folder_dataset(args.data_dir):
        (x_test, what), y_test = _evaluation_folder(args), None
    else:
        _, (x_test, y_test) = _load_cifar10(args)
        _check_input_size(model, x_test.shape[1:], "MODEL.keras", "--data-dir")
        what = "test"
    report = training.evaluate(model, x_test, y_test, batch_size=args.batch_size or 256,
                               flip_tta=args.flip_tta, top_k=args.top_k,
                               default_class_names=CIFAR10_CLASS_NAMES)
    _print_report(report, what, flip_tta=args.flip_tta, errors=args.errors)
    if args.json:
        print(f"wrote {report.save_json(args.json)}")
    if args.plot:
        print(f"wrote {training.plot_confusion_matrix(report, args.plot)}")
    return 0


# --------------------------------------------------------------------------- export


def _add_export_command(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "export", _run_export,
        aliases={"model_path": "MODEL", "path": "OUTPUT", "output_path": "OUTPUT",
                 "representative_data": "--calibration-data", "images": "--verify-data",
                 "verify_images": "--verify-data", "calibration_images": "--calibration-data"},
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
             "(needs --calibration-data or --calibration-dir); .onnx: float32 or int8. "
             "Default: float32",
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
    parser.add_argument("--rescale", type=_number, default=1.0, metavar="FACTOR",
                        help="multiply the .npy images by this first, for a model that does "
                             "not take pixels (e.g. 1/255 for [0, 1]). Default: 1")
    parser.add_argument("--fold-bn", action="store_true",
                        help="fold every BatchNorm into the conv before it first")
    parser.add_argument("--verify", action="store_true",
                        help="run the file in LiteRT (or ONNX Runtime) and report agreement "
                             "with the Keras model")
    parser.add_argument("--verify-data", metavar="IMAGES.npy",
                        help="images for --verify (default: the calibration images)")


def _load_images(path: str, rescale: float, flag: str):
    import numpy as np

    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UsageError(
            f"Invalid value for argument `{flag}`: expected a .npy file of images "
            f"(N, H, W, C). Received: {flag}={path!r} ({_first_line(error)})"
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
    if args.calibration_dir and _is_folder_dataset(args.calibration_dir, "--calibration-dir"):
        calibration, verification = _folder_export_images(args)
    elif args.calibration_dir:
        from mobilenet import cifar10

        try:
            (x_train, _), (x_test, _) = cifar10.load_cifar10(args.calibration_dir)
        except (OSError, ValueError) as error:
            raise UsageError(
                "Invalid value for argument `--calibration-dir`: expected a folder per class or "
                f"a folder holding CIFAR-10. Received: --calibration-dir={args.calibration_dir!r} "
                f"({_first_line(error)})"
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


def _require_onnx(flag: str, *packages: str) -> None:
    """A UsageError naming ``flag`` when a package of the optional `onnx` extra is missing."""
    from mobilenet.export.common import import_onnx_package

    try:
        for package in packages:
            import_onnx_package(package)
    except ImportError as error:
        raise UsageError(f"Invalid value for argument `{flag}`: {error}") from error


#: The --quantization values an .onnx OUTPUT can have.
ONNX_QUANTIZATIONS = ("float32", "int8")


#: OUTPUT suffixes of a C array, which is for a microcontroller.
C_SUFFIXES = (".cc", ".cpp", ".c")


def _run_export(args: argparse.Namespace) -> int:
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
        _require_onnx("OUTPUT", "onnx", "onnxruntime", "tf2onnx")
    result = export.export_model(
        args.model, args.output,
        quantization=None if quantization == "float32" else quantization,
        calibration_images=calibration, io_type=args.io_type or "uint8", fold_bn=args.fold_bn,
        verify_images=verification,
    )
    size = result.path.stat().st_size
    print(f"wrote {result.path} ({size:,} bytes, {size / 1e6:.2f} MB; {quantization}"
          f"{', BatchNorm folded' if args.fold_bn else ''})")
    if result.input_quantization is not None:
        scale, zero_point = result.input_quantization
        print(f"input: {result.input_type}, scale {scale:g}, zero point {zero_point}")
    if result.report is not None:
        report = result.report
        print(f"verified on {report.num_images} images: top-1 agreement "
              f"{report.top1_agreement:.2%}, max abs difference {report.max_abs_diff:.4g} "
              f"(input {report.input_type}, output {report.output_type})")
    return 0


def _run_micro_export(args: argparse.Namespace) -> int:
    """``mobilenet export ... --target micro`` (or a .cc OUTPUT): the file TFLite Micro runs."""
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
    if not (args.calibration_data or args.calibration_dir):
        raise UsageError(
            "Invalid value for argument `--calibration-data`: an int8 file for a microcontroller "
            "is calibrated on real images; give --calibration-data or --calibration-dir. "
            "Received: neither"
        )
    calibration, verification = _export_images(args, "int8")
    from mobilenet.micro import export_micro

    result = export_micro(args.model, args.output, calibration, fold_bn=args.fold_bn,
                          verify_images=verification)
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
    if Path(args.output).suffix not in C_SUFFIXES:
        raise UsageError(
            "Invalid value for argument `OUTPUT`: from a .tflite MODEL only a C array "
            f"(.cc, .cpp, .c) is written. Received: OUTPUT={args.output!r}"
        )
    from mobilenet import micro

    try:
        data = micro.check_micro(args.model)
    except ValueError as error:
        raise UsageError(f"Invalid value for argument `MODEL`: {_first_line(error)}") from error
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


# --------------------------------------------------------------------------- predict

#: Exit status of `predict` when some image files could not be read (the others were printed).
EXIT_SOME_FAILED = 1


def _add_predict_command(subcommands: argparse._SubParsersAction) -> None:
    parser = _command(
        subcommands, "predict", _run_predict,
        aliases={"model": "MODEL", "paths": "IMAGE_OR_FOLDER", "num_threads": "--threads"},
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
    parser.add_argument("model", metavar="MODEL", help="the .keras, .tflite or .onnx model file")
    parser.add_argument("paths", metavar="IMAGE_OR_FOLDER", nargs="+",
                        help="image files, or folders searched recursively for .jpg, .jpeg, "
                             ".png, .gif and .bmp files")
    parser.add_argument("--top", type=_positive_int, default=5, metavar="K",
                        help="classes to print per image (default: 5)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                        help="images per model call (default: 32)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="CPU threads of the runtime (default: the runtime's own)")
    parser.add_argument("--rescale", type=_number, default=None, metavar="FACTOR",
                        help="feed pixels * FACTOR + OFFSET, for a model that does not take "
                             "pixels (e.g. 1/255 for [0, 1]); needed for such a .keras model")
    parser.add_argument("--offset", type=_number, default=0.0, metavar="OFFSET",
                        help="added after --rescale (e.g. -1 with --rescale 1/127.5 for [-1, 1])")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list, one object per image (path, top, error)")


def _run_predict(args: argparse.Namespace) -> int:
    import json

    if args.threads and args.model.endswith(".keras"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from mobilenet.predict import Classifier

    if args.model.endswith(".onnx"):
        _require_onnx("MODEL", "onnxruntime")
    try:
        classifier = Classifier(args.model, rescale=args.rescale, offset=args.offset,
                                num_threads=args.threads)
    except InvalidArgument as error:
        if error.argument != "rescale" or args.rescale is not None:
            raise
        raise UsageError(
            "Invalid value for argument `--rescale`: the model does not take pixels (its "
            "first layer is not a Rescaling), so say what its input is: pixels * --rescale "
            "+ --offset, e.g. --rescale 1/255 for [0, 1], or --rescale 1/127.5 --offset -1 "
            "for [-1, 1]. Received: no --rescale"
        ) from error
    results = classifier.classify(args.paths, top=args.top, batch_size=args.batch_size)
    if args.json:
        print(json.dumps([result.to_dict() for result in results], indent=2))
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


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``mobilenet`` command line; returns the process exit code.

    User errors print one line, ``mobilenet COMMAND: error: ...``, naming the
    flag, the value and what is allowed, and return 2; Ctrl-C returns 130; a
    closed output pipe returns 141 quietly.
    """
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, so the error names the command
        args.subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        with contextlib.ExitStack() as stack:
            if not args.verbose:
                stack.enter_context(without_tensorflow_log())
                stack.enter_context(_one_line_warnings(args.command))
            status = int(args.handler(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
            return status
    except BrokenPipeError:
        return _after_closed_pipe()
    except KeyboardInterrupt:
        hint = ""
        if args.command == "train" and getattr(args, "trained_model", None):
            hint = (f"; training had finished, and {args.trained_model} is written: evaluate "
                    f"it with `mobilenet evaluate {args.trained_model}`")
        elif args.command == "train":
            hint = "; run the same command with --resume to continue from the last finished epoch"
        print(f"\nmobilenet {args.command}: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as error:
        if args.verbose:
            raise
        print(f"mobilenet {args.command}: error: {_error_message(error, args.subparser)}",
              file=sys.stderr)
        return EXIT_USAGE
    except ImportError as error:  # an optional extra that is not installed; its message says which
        if args.verbose:
            raise
        print(f"mobilenet {args.command}: error: {_first_line(error)}", file=sys.stderr)
        return EXIT_USAGE


#: Warnings addressed to the developers of the code that triggers them.
_DEVELOPER_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


@contextlib.contextmanager
def _one_line_warnings(command: str):  # noqa: ANN202
    """Shows each warning as ``mobilenet COMMAND: warning: ...``, without file and source line.

    Deprecation and future warnings that other packages raise (NumPy's about
    ``np.object`` when Keras 3.13.0 probes for it, say) are for those who write
    code against them, not for someone running a command: they are hidden. Our
    own (from ``mobilenet.*`` modules) and every other category still show. Set
    ``-W`` or ``PYTHONWARNINGS`` and Python's filters decide alone, as with
    ``--verbose``, which leaves this filter and format out.
    """
    def format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
        return f"mobilenet {command}: warning: {_first_line(str(message))}\n"

    original = warnings.formatwarning
    warnings.formatwarning = format_warning
    try:
        with warnings.catch_warnings():
            if not sys.warnoptions:
                for category in _DEVELOPER_WARNINGS:
                    warnings.filterwarnings("ignore", category=category)
                    warnings.filterwarnings("default", category=category, module=r"mobilenet(\.|$)")
            yield
    finally:
        warnings.formatwarning = original


def _after_closed_pipe() -> int:
    """The reader of stdout went away (``| head``): stop quietly.

    As Python's documentation of SIGPIPE advises, stdout is pointed at
    os.devnull so that the flush at exit finds no pipe to fail on.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_CLOSED_PIPE


if __name__ == "__main__":
    sys.exit(main())
