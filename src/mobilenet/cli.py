"""The ``mobilenet`` command line: argument parsing only.

Each command's handler imports the module that does the work, so that
``mobilenet --help`` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``mobilenet`` command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
