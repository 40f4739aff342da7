"""``mobilenet train``: train with the library's recipe, then report the test accuracy."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from mobilenet.cli.common import UsageError, check_output_folder, command_parser, number, positive_int
from mobilenet.cli.data import add_data_options, cifar10_arrays, is_folder_dataset, limited
from mobilenet.cli.evaluate import plots_missing, print_report
from mobilenet.training.recipe import RECIPE


#: The library's argument names -> the flags of `train` that set them.
FLAGS = {
    "x": "--data-dir", "y": "--data-dir", "x_train": "--data-dir", "y_train": "--data-dir",
    "data_dir": "--data-dir", "batch_size": "--batch-size", "limit": "--limit",
    "output_dir": "--output-dir", "resume": "--resume", "epochs": "--epochs",
    "image_size": "--image-size", "weights": "--weights", "freeze_epochs": "--freeze-epochs",
    "alpha": "--alpha", "early_downsampling": "--early-downsampling", "shallow": "--shallow",
    "learning_rate": "--learning-rate", "fine_tune_learning_rate": "--fine-tune-learning-rate",
    "weight_decay": "--weight-decay", "label_smoothing": "--label-smoothing",
    "validation_fraction": "--validation-fraction", "fraction": "--validation-fraction",
    "augment": "--no-augment", "random_erasing": "--random-erasing", "cutmix": "--cutmix",
    "cache": "--cache", "strategy": "--strategy", "mixed_precision": "--mixed-precision",
    "time_budget": "--time-budget", "seed": "--seed", "deterministic": "--deterministic",
    "qat_epochs": "--qat-epochs", "qat_learning_rate": "--qat-learning-rate",
}


def add_command(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``mobilenet train`` and its flags to ``subcommands``."""
    parser = command_parser(
        subcommands, "train", run, FLAGS,
        help="train a MobileNet V1 on your image folders or CIFAR-10 and report its accuracy",
        description=(
            "Train a MobileNet V1 with the library's measured recipe on your images (a folder "
            "per class, streamed from the files) or on CIFAR-10, then print its accuracy on "
            "the test images (test/ of a folder dataset, else its validation images). "
            "Writes best.keras, final.keras, history.csv/json, run.json, test.json (and PNG "
            "plots when matplotlib is installed) to --output-dir; with --qat-epochs, "
            "float.keras too, and best.keras and final.keras are quantization-aware models "
            "that export to int8 with no calibration data; the models carry their "
            "class names and take pixels (0-255) as they are. If the run is killed, run the "
            "same command with --resume to continue from the last finished epoch."
        ),
        epilog=(
            "examples:\n"
            "  mobilenet train --data-dir ../shared/data/cifar10-subset --epochs 15\n"
            "  mobilenet train --data-dir photos/ --image-size 160 --weights imagenet "
            "--freeze-epochs 3 --epochs 20\n"
            "  mobilenet train --data-dir photos/ --weights imagenet --epochs 10 --qat-epochs 2"
            "   # then: mobilenet export runs/cifar10/final.keras model.tflite --int8\n"
            "  mobilenet train --data-dir ~/data --output-dir runs/full --epochs 60 --resume   # after a kill\n"
            "  mobilenet train --strategy mirrored --mixed-precision --batch-size 256"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_options(parser)
    parser.add_argument(
        "--limit", type=positive_int, default=None, metavar="N",
        help="use only N training and N test images (for a quick check; a seeded random "
        "choice from a folder dataset, the first N of CIFAR-10)",
    )
    parser.add_argument("--output-dir", default="runs/cifar10", metavar="DIR",
                        help="folder for checkpoints, history and plots (default: runs/cifar10)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output-dir from its last finished epoch")
    parser.add_argument("--epochs", type=positive_int, default=RECIPE.epochs, metavar="N",
                        help=f"total epochs, --freeze-epochs included (default: {RECIPE.epochs})")
    parser.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                        help="the model's square input side for a folder dataset: the paper's "
                        "224, 192, 160, 128 or any other (default: 224; CIFAR-10 is 32)")
    parser.add_argument("--weights", metavar="imagenet|timm/NAME|FILE", default=None,
                        help="start from pretrained weights: imagenet (keras.applications' "
                        "files, downloaded), their .h5 file, timm's (e.g. "
                        "timm/mobilenetv1_100.ra4_e3600_r224_in1k, 75.4%% ImageNet top-1; "
                        "needs mobilenet[timm]) or a timm .safetensors file, or a .keras "
                        "model trained by mobilenet train on any classes; the classifier is new")
    parser.add_argument("--freeze-epochs", type=int, default=RECIPE.freeze_epochs, metavar="N",
                        help="with --weights: first train only the new classifier for N epochs, "
                        "the backbone frozen, then fine-tune every layer (default: "
                        f"{RECIPE.freeze_epochs})")
    parser.add_argument("--qat-epochs", type=int, default=RECIPE.qat_epochs, metavar="N",
                        help="after the --epochs float epochs, N epochs of quantization-aware "
                        "training, so that the int8 file keeps the float model's accuracy "
                        f"(default: {RECIPE.qat_epochs}, none)")
    parser.add_argument("--qat-learning-rate", type=number, default=None, metavar="LR",
                        help="the peak rate of quantization-aware training (default: "
                        f"--learning-rate x {RECIPE.qat_factor:g})")
    parser.add_argument("--alpha", type=number, default=RECIPE.alpha, metavar="A",
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
    parser.add_argument("--learning-rate", type=number, default=RECIPE.learning_rate, metavar="LR",
                        help="peak learning rate of SGD's warm-up + cosine schedule "
                        f"(default: {RECIPE.learning_rate})")
    parser.add_argument("--fine-tune-learning-rate", type=number, default=None, metavar="LR",
                        help="with --weights: the peak rate of fine-tuning (default: "
                        f"--learning-rate x {RECIPE.fine_tune_factor:g})")
    parser.add_argument("--weight-decay", type=number, default=RECIPE.weight_decay, metavar="WD",
                        help="decoupled weight decay on kernels, except depthwise ones "
                        f"(default: {RECIPE.weight_decay:g})")
    parser.add_argument("--label-smoothing", type=number, default=RECIPE.label_smoothing,
                        metavar="S", help=f"label smoothing (default: {RECIPE.label_smoothing})")
    parser.add_argument("--validation-fraction", type=number,
                        default=RECIPE.validation_fraction, metavar="F",
                        help="share of each class held out for validation and for picking "
                        "best.keras (not with a val/ folder); 0 trains on all (default: "
                        f"{RECIPE.validation_fraction})")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="turn off the random crops and flips of training images")
    parser.add_argument("--random-erasing", type=number, default=RECIPE.random_erasing,
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
    parser.add_argument("--time-budget", type=number, default=None, metavar="SECONDS",
                        help="fit the run into this many seconds: fewer epochs if needed, with the "
                        "learning-rate schedule shortened to match")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    parser.add_argument("--deterministic", action="store_true",
                        help="repeat exactly: the same --seed on the same machine gives the same "
                        "history and weights (TensorFlow's op determinism; on a GPU some ops "
                        "run slower or are refused)")


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


def _train_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of `train` that the flags set, the same for every kind of data."""
    return dict(
        resume=args.resume, epochs=args.epochs, alpha=args.alpha,
        early_downsampling=args.early_downsampling, shallow=args.shallow,
        batch_size=args.batch_size or RECIPE.batch_size,
        learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, validation_fraction=args.validation_fraction,
        augment=args.augment, random_erasing=args.random_erasing,
        cutmix="auto" if args.cutmix is None else args.cutmix,
        strategy=_make_strategy(args.strategy),
        mixed_precision=args.mixed_precision or False,
        time_budget=args.time_budget, seed=args.seed, deterministic=args.deterministic,
        qat_epochs=args.qat_epochs, qat_learning_rate=args.qat_learning_rate,
    )


def _train_folders(args: argparse.Namespace, output_dir) -> tuple:  # noqa: ANN001
    """Trains on an image folder dataset; returns the result and the images to report on."""
    from mobilenet import training
    from mobilenet.datasets import load_image_folder

    if (args.weights not in (None, "imagenet") and not args.weights.startswith("timm/")
            and not Path(args.weights).is_file()):
        raise UsageError(
            "Invalid value for argument `--weights`: expected imagenet, a timm/ name or an "
            f"existing file. Received: --weights={args.weights!r} (no such file)"
        )
    splits = load_image_folder(args.data_dir, validation_fraction=args.validation_fraction,
                               seed=args.seed, argument="data_dir")
    if args.limit is not None:
        splits = dataclasses.replace(
            splits, train=limited(splits.train, args.limit, args.seed),
            validation=limited(splits.validation, args.limit, args.seed),
            test=limited(splits.test, args.limit, args.seed),
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


def _trained(args: argparse.Namespace, output_dir: Path) -> tuple:
    """Trains as the flags say; returns the result and the images to report on (what, x, y)."""
    from mobilenet import cifar10

    if is_folder_dataset(args.data_dir):
        return _train_folders(args, output_dir)
    for flag, value, default in (("--image-size", args.image_size, None),
                                 ("--weights", args.weights, None),
                                 ("--freeze-epochs", args.freeze_epochs, RECIPE.freeze_epochs),
                                 ("--fine-tune-learning-rate", args.fine_tune_learning_rate, None),
                                 ("--cache", args.cache, "auto")):
        if value != default:
            raise UsageError(
                f"Invalid value for argument `{flag}`: it applies to a folder dataset "
                f"(a folder per class), and --data-dir holds CIFAR-10. Received: {flag}={value}"
            )
    (x_train, y_train), (x_test, y_test) = cifar10_arrays(args)
    if args.validation_fraction and len(x_train) < 20:
        raise UsageError(
            f"Invalid value for argument `--limit`: {len(x_train)} training images are too "
            "few to hold out a validation split; use more, or --validation-fraction 0"
        )
    result = cifar10.train(x_train, y_train, output_dir=output_dir, **_train_options(args))
    return result, "test", x_test, y_test


def run(args: argparse.Namespace) -> int:
    """``mobilenet train``: trains, reports on the test images, and lists the files written."""
    from mobilenet import training

    check_output_folder(args.output_dir, "--output-dir")
    output_dir = Path(args.output_dir)
    result, what, x_test, y_test = _trained(args, output_dir)
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
        print_report(report, what)
        written.append(report.save_json(output_dir / "test.json"))
    missing = plots_missing()
    if missing is None:
        written += training.save_plots(result.history, report, output_dir)
    for path in (result.best_model_path, result.final_model_path):
        if path is not None:
            written.append(path)
    written += [output_dir / name for name in (training.HISTORY_CSV, training.HISTORY_JSON,
                                               training.RUN_JSON, training.HEAD_MODEL,
                                               training.FLOAT_MODEL)]
    names = ", ".join(sorted(path.name for path in written if path.is_file()))
    print(f"wrote {names} to {output_dir}/")
    if missing is not None:
        print(f"plots skipped: {missing}")
    return 0
