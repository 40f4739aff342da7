"""The ``mobilenet`` command line: argument parsing and printing only.

One module per command (`profile`, `paper`, `train`, `evaluate`, `export`,
`predict`), each with ``add_command`` (its flags, and ``FLAGS``: the
library's argument names -> those flags) and ``run`` (its handler); what
they share is in `common` and `data`.

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
full traceback of an error before its line (the exit status stays 2).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from collections.abc import Sequence

from mobilenet._tf_log import without_tensorflow_log
from mobilenet._validation import first_line
from mobilenet.cli import evaluate, export, paper, predict, profile, train
from mobilenet.cli.common import (
    EXIT_CLOSED_PIPE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    after_closed_pipe,
    error_message,
    one_line_warnings,
)

__all__ = ["EXIT_CLOSED_PIPE", "EXIT_INTERRUPTED", "EXIT_USAGE", "UsageError", "build_parser", "main"]

#: The commands, in the order ``mobilenet --help`` lists them.
COMMANDS = (profile, paper, train, evaluate, export, predict)


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
    for command in COMMANDS:
        command.add_command(subcommands)
    return parser


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
                stack.enter_context(one_line_warnings(args.command))
            status = int(args.handler(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
            return status
    except BrokenPipeError:
        return after_closed_pipe()
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
        if args.verbose:  # the traceback, and still the usage error's line and status
            traceback.print_exc()
        print(f"mobilenet {args.command}: error: {error_message(error, args.flags)}",
              file=sys.stderr)
        return EXIT_USAGE
    except ImportError as error:  # an optional extra that is not installed; its message says which
        if args.verbose:
            traceback.print_exc()
        print(f"mobilenet {args.command}: error: {first_line(error)}", file=sys.stderr)
        return EXIT_USAGE
