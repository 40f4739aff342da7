"""The ``mobilenet`` command line: argument parsing only.

Each command's handler imports the module that does the work, so that
``mobilenet --help`` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import os
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
    _add_profile_command(subcommands)
    _add_paper_command(subcommands)
    return parser


def _error(command: str, message: str) -> int:
    """Prints a one-line error for ``mobilenet <command>`` and returns exit code 2."""
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "error"
    print(f"mobilenet {command}: error: {first_line}", file=sys.stderr)
    return 2


def _number(text: str) -> float:
    """An argparse type: a decimal number or a fraction such as ``5/7``."""
    from fractions import Fraction

    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(
            f"expected a number or a fraction such as 5/7, received {text!r}"
        ) from error


def _add_profile_command(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "profile",
        help="per-layer mult-adds and parameters of a MobileNet V1",
        description=(
            "Builds MobileNetV1(alpha, rho) and prints its mult-adds and parameters "
            "per layer, in total and per layer kind (paper Table 2)."
        ),
    )
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="width multiplier alpha > 0 (default 1.0)")
    parser.add_argument("--rho", type=_number, default=None,
                        help="resolution multiplier rho > 0, a number or a fraction such "
                             "as 5/7: input side round(224 * rho) (default: 1, or --input-size)")
    parser.add_argument("--input-size", type=int, default=None, metavar="N",
                        help="square input side N >= 32, instead of --rho")
    parser.add_argument("--num-classes", type=int, default=1000, metavar="K",
                        help="classifier outputs (default 1000)")
    parser.add_argument("--conv", action="store_true",
                         help="the Conv MobileNet of paper Table 4 (full 3x3 convs)")
    parser.add_argument("--shallow", action="store_true",
                         help="the Shallow MobileNet of paper Table 6 (blocks 7-11 removed)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(handler=_run_profile)


#: MobileNetV1 keyword -> the `mobilenet profile` option that sets it, for error messages.
_PROFILE_FLAGS = {
    "alpha": "--alpha",
    "rho": "--rho",
    "num_classes": "--num-classes",
    "input_shape": "--input-size",
}


def _run_profile(args: argparse.Namespace) -> int:
    input_shape = None if args.input_size is None else (args.input_size, args.input_size, 3)
    if args.input_size is not None and args.rho is not None:
        return _error(
            "profile",
            "Arguments `--rho` and `--input-size` both set the input size; give one of "
            f"them. Received: --rho={args.rho}, --input-size={args.input_size}",
        )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mobilenet.model import MobileNetV1
    from mobilenet.profiler import profile

    try:
        model = MobileNetV1(
            args.alpha, args.rho, args.num_classes, input_shape=input_shape,
            separable=not args.conv, shallow=args.shallow,
        )
    except ValueError as error:
        message = str(error)
        for keyword, flag in _PROFILE_FLAGS.items():
            message = message.replace(f"`{keyword}`", f"`{flag}`")
        return _error("profile", message)
    costs = profile(model)
    print(costs.to_json() if args.json else costs)
    return 0


def _add_paper_command(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "paper",
        help="the paper's Tables 2, 4, 6, 7 and 8, printed vs computed",
        description=(
            "Builds every model of the paper's cost tables (Tables 2, 4, 6, 7 and 8), "
            "counts it, and prints the paper's values next to the computed ones, "
            "marking each cell that differs (Markdown)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.set_defaults(handler=_run_paper)


def _run_paper(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mobilenet.paper import reproduce_paper_tables

    tables = reproduce_paper_tables()
    print(tables.to_json() if args.json else tables.to_markdown(), end="" if not args.json else "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``mobilenet`` command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
