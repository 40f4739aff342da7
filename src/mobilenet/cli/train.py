"""``mobilenet train``: train with the library's recipe, then report the test accuracy.

The recipe's flags are made from `mobilenet.training.Recipe`'s knobs: each
gets ``--`` and its name in dashes, a type from its annotation, and the
recipe's value as its default; `RECIPE_HELP` holds only their help texts. A
new knob of the recipe needs a line there and nothing else.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mobilenet.cli.common import check_output_folder, command_parser, number, positive_int
from mobilenet.cli.data import add_data_options
from mobilenet.cli.report import plots_missing, print_report
from mobilenet.training.recipe import KNOBS, MAX_IMAGE_SIZE, RECIPE, Recipe

#: Each knob of `Recipe` -> its help text (the default is added), or (help, argparse options)
#: where the annotation's type is not the whole story.
RECIPE_HELP: dict[str, str | tuple[str, dict]] = {
    "alpha": "width multiplier alpha: channels x alpha",
    "early_downsampling": (
        "combined stride of the stem and block 2: 4 is the paper's net (1x1 final map at "
        "32x32), 2 and 1 keep 2x2 and 4x4 maps at about 4x and 15x the cost (default: 2 up "
        "to 64 px, 4 above)", dict(choices=(4, 2, 1))),
    "shallow": "the paper's Shallow MobileNet (blocks 7-11 removed), which learns faster from "
    "few images; --no-shallow trains the full network (default: shallow up to 64 px)",
    "dropout": "dropout before the classifier",
    "image_size": "the model's square input side for a folder dataset: the paper's 224, 192, "
    f"160, 128 or any other up to {MAX_IMAGE_SIZE} (default: {RECIPE.file_image_size}; "
    "CIFAR-10 is 32)",
    "validation_fraction": "share of each class held out for validation and for picking "
    f"best.keras (not with a val/ folder; a share under {RECIPE.min_validation_images} images "
    f"or under {RECIPE.min_validation_per_class} per class picks final.keras); 0 trains on all",
    "batch_size": "images per step (an epoch's last, short batch is kept unless it is under "
    "a quarter of a batch)",
    "augment": "random crops and flips of training images; --no-augment turns them off",
    "random_erasing": "also erase a random rectangle from this share of the training images",
    "cutmix": ("CutMix within each training batch, against overfitting in long runs "
               f"(default: on for --epochs {RECIPE.cutmix_min_epochs} or more)",
               dict(action=argparse.BooleanOptionalAction)),
    "cache": "keep a folder dataset after its first epoch: auto (in memory when it takes at "
    f"most {RECIPE.auto_cache_bytes // 2**20} MiB there), memory, none (stream every epoch), "
    "or a file path prefix for a cache on disk, in an existing folder",
    "epochs": "total epochs, --freeze-epochs included",
    "freeze_epochs": "with --weights: first train only the new classifier for N epochs, the "
    "backbone frozen, then fine-tune every layer",
    "qat_epochs": "after the --epochs float epochs, N epochs of quantization-aware training, "
    "so that the int8 file keeps the float model's accuracy",
    "learning_rate": "peak learning rate of SGD's warm-up + cosine schedule",
    "fine_tune_learning_rate": "with --weights: the peak rate of fine-tuning (default: "
    f"--learning-rate x {RECIPE.fine_tune_factor:g})",
    "qat_learning_rate": "the peak rate of quantization-aware training (default: "
    f"--learning-rate x {RECIPE.qat_factor:g})",
    "warmup_epochs": "epochs of linear warm-up from 0, at most a quarter of a phase",
    "weight_decay": "decoupled weight decay on kernels, except depthwise ones",
    "label_smoothing": "label smoothing of the cross-entropy",
    "mixed_precision": (
        "mixed precision policy; alone means auto: mixed_float16 on GPU, mixed_bfloat16 on "
        "CPU/TPU (default: float32)",
        dict(nargs="?", const="auto", choices=("auto", "mixed_float16", "mixed_bfloat16"))),
    "time_budget": "fit the run into this many seconds: fewer epochs if needed, with the "
    "learning-rate schedule shortened to match",
    "seed": "random seed of the weights, split, shuffle and augmentation",
    "deterministic": "repeat exactly: the same --seed on the same machine gives the same "
    "history and weights (TensorFlow's op determinism; on a GPU some ops run slower or are "
    "refused)",
}

#: The library's argument names that are not knobs of the recipe -> the flags that set them.
OTHER_FLAGS = {
    "data": "--data-dir", "data_dir": "--data-dir", "limit": "--limit",
    "output_dir": "--output-dir", "resume": "--resume", "weights": "--weights",
    "strategy": "--strategy",
}


def flag(field: str) -> str:
    """The flag of a recipe knob: ``learning_rate`` -> ``--learning-rate``."""
    return "--" + field.replace("_", "-")


#: The library's argument names -> the flags of `train` that set them.
FLAGS = {**{name: flag(name) for name in KNOBS}, **OTHER_FLAGS}


def _kind(field: dataclasses.Field) -> str:
    """A field's annotation without spaces: ``"int|None"`` (annotations are strings here)."""
    return str(field.type).replace(" ", "")


def _flag_options(field: dataclasses.Field, help_text: str, extra: dict) -> dict:
    """argparse options for a knob, from its annotation; the default is None (the recipe's)."""
    kind = _kind(field)
    options: dict = {"default": None, "dest": field.name}
    default = getattr(RECIPE, field.name)
    if kind in ("bool", "bool|None"):
        options["action"] = argparse.BooleanOptionalAction
    elif kind.startswith("int"):
        options.update(type=int, metavar="N")
    elif kind.startswith("float"):
        options.update(type=number, metavar="X")
    elif kind == "str|None":
        options.update(metavar="TEXT")  # "none" is None
    options.update(extra)
    if options.get("action") is not None:
        options.pop("metavar", None)
    shown = "none" if default is None else default
    if "default:" not in help_text and not (default is None and "(" in help_text):
        help_text = f"{help_text} (default: {shown})"
    options["help"] = help_text.replace("%", "%%")
    return options


def add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """One flag per knob of `Recipe`, typed by its annotation, helped by `RECIPE_HELP`."""
    group = parser.add_argument_group("the recipe (mobilenet.training.Recipe's knobs)")
    for field in dataclasses.fields(Recipe):
        if field.name not in KNOBS:
            continue
        entry = RECIPE_HELP[field.name]
        help_text, extra = entry if isinstance(entry, tuple) else (entry, {})
        group.add_argument(flag(field.name), **_flag_options(field, help_text, extra))


def recipe_from(args: argparse.Namespace) -> Recipe:
    """The `Recipe` the flags ask for: `RECIPE` with every flag given replaced (checked)."""
    given = {name: getattr(args, name) for name in KNOBS if getattr(args, name, None) is not None}
    for field in dataclasses.fields(Recipe):
        if _kind(field) == "str|None" and given.get(field.name) == "none":
            given[field.name] = None
    if given.get("mixed_precision") == "auto":
        given["mixed_precision"] = True
    return dataclasses.replace(RECIPE, **given)


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
            "  mobilenet train --data-dir ../shared/data/cifar10-subset --epochs 15 "
            "--output-dir runs/c10\n"
            "  mobilenet train --data-dir photos/ --image-size 160 --weights imagenet "
            "--freeze-epochs 3 --epochs 20 --output-dir runs/photos\n"
            "  mobilenet train --data-dir photos/ --weights imagenet --epochs 10 --qat-epochs 2 "
            "--output-dir runs/photos\n"
            "   # then: mobilenet export runs/photos/final.keras photos_int8.tflite --int8\n"
            "  mobilenet train --data-dir ~/data --output-dir runs/full --epochs 60 --resume   # after a kill\n"
            "  mobilenet train --strategy mirrored --mixed-precision --batch-size 256"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_options(parser, batch_size=False)
    parser.add_argument(
        "--limit", type=positive_int, default=None, metavar="N",
        help="use only N training and N test images (for a quick check; a seeded random "
        "choice from a folder dataset, the first N of CIFAR-10)",
    )
    parser.add_argument("--output-dir", default="runs/cifar10", metavar="DIR",
                        help="folder for checkpoints, history and plots (default: runs/cifar10)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output-dir from its last finished epoch")
    parser.add_argument("--weights", metavar="imagenet|timm/NAME|FILE", default=None,
                        help="start from pretrained weights: imagenet (keras.applications' "
                        "files, downloaded), their .h5 file, timm's (e.g. "
                        "timm/mobilenetv1_100.ra4_e3600_r224_in1k, 75.4%% ImageNet top-1; "
                        "needs mobilenet[timm]) or a timm .safetensors file, or a .keras "
                        "model trained by mobilenet train on any classes; the classifier is new")
    parser.add_argument(
        "--strategy", choices=("default", "mirrored", "multi-worker", "tpu"), default="default",
        help="tf.distribute strategy: mirrored (all local GPUs), multi-worker "
        "(machines listed in TF_CONFIG; each reads its own share of a folder dataset), tpu "
        "(default: one device)",
    )
    add_recipe_options(parser)


def run(args: argparse.Namespace) -> int:
    """``mobilenet train``: trains, reports on the test images, and lists the files written."""
    recipe = recipe_from(args)  # a bad value fails here, naming its flag
    check_output_folder(args.output_dir, "--output-dir")
    from mobilenet import training

    output_dir = Path(args.output_dir)
    data = training.load_data(args.data_dir, validation_fraction=recipe.validation_fraction,
                              seed=recipe.seed, limit=args.limit)
    result = training.train(data, output_dir=output_dir, recipe=recipe, weights=args.weights,
                            strategy=training.make_strategy(args.strategy), resume=args.resume)
    # Ctrl-C from here on finds a finished run: --resume would have nothing to do.
    args.trained_model = result.final_model_path
    # Every worker of a multi-worker run evaluates (predict is collective); the chief writes.
    held_out = result.held_out()
    report = None
    if held_out is not None:
        report = training.evaluate(result.model, held_out[1], held_out[2])
    if not result.chief:
        return 0
    written = []
    if report is not None:
        print_report(report, held_out[0])
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


__all__ = ["FLAGS", "RECIPE_HELP", "add_command", "add_recipe_options", "flag", "recipe_from", "run"]
