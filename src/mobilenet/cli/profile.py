"""``mobilenet profile``: a model's mult-adds and parameters per layer, and its memory."""

from __future__ import annotations

import argparse

from mobilenet.cli.common import command_parser, number, usage_error


#: The library's argument names -> the flags of `profile` that set them.
FLAGS = {
    "model": "MODEL", "source": "MODEL", "alpha": "--alpha", "rho": "--rho",
    "input_shape": "--input-size", "num_classes": "--num-classes", "shallow": "--shallow",
}


def add_command(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``mobilenet profile`` and its flags to ``subcommands``."""
    parser = command_parser(
        subcommands, "profile", run, FLAGS,
        help="per-layer mult-adds and parameters of a MobileNet V1; flash and RAM with --memory",
        description=(
            "Builds MobileNetV1(alpha, rho) and prints its mult-adds and parameters "
            "per layer, in total and per layer kind (paper Table 2). With --memory, also "
            "what it needs on a microcontroller in TensorFlow Lite Micro: flash (the int8 "
            "file, weights by dtype) and RAM (the tensor arena with the offline memory plan the "
            "file carries, for a 64-bit host and, estimated, a 32-bit microcontroller; the ops; "
            "and the layer where activations peak). Several --alpha or --input-size values "
            "print one row per combination. Given MODEL (.keras or .tflite), profiles that."
        ),
    )
    parser.add_argument("model", metavar="MODEL", nargs="?", default=None,
                        help="a .keras or .tflite file to profile instead of building one "
                             "(a .tflite file: memory only)")
    parser.add_argument("--alpha", type=number, nargs="+", default=[1.0], metavar="A",
                        help="width multiplier alpha > 0, or several (default 1.0)")
    parser.add_argument("--rho", type=number, default=None,
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


def run(args: argparse.Namespace) -> int:
    """``mobilenet profile``: prints the costs (and memory) of each model the flags ask for."""
    if args.model is not None:
        return _profile_file(args)
    if args.input_size is not None and args.rho is not None:
        raise usage_error("--rho", "", args.rho,
                          problem="`--rho` and `--input-size` both set the input size; give one "
                          "of them", shown=f"--rho={args.rho}, --input-size={args.input_size[0]}")
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
        raise usage_error(given[0], "", args.model, problem="it builds a model, and MODEL is given",
                          shown=f"MODEL={args.model!r} and {given[0]}")
    if args.model.endswith(".tflite"):
        from mobilenet.export.micro_memory import profile_tflite

        memory = profile_tflite(args.model)
        print(memory.to_json() if args.json else memory)
        return 0
    from mobilenet.profiler import profile
    from mobilenet.saving import load_model

    costs = profile(load_model(args.model, argument="source"), memory=True)
    print(costs.to_json() if args.json else costs)
    return 0
