"""``mobilenet paper``: the paper's cost tables, printed beside the computed values."""

from __future__ import annotations

import argparse

from mobilenet.cli.common import command_parser

#: The library's argument names -> the flags of `paper` that set them: it has none to set.
FLAGS: dict[str, str] = {}


def add_command(subcommands: argparse._SubParsersAction) -> None:
    """Adds ``mobilenet paper`` and its flags to ``subcommands``."""
    parser = command_parser(
        subcommands, "paper", run, FLAGS,
        help="the paper's Tables 2, 4, 6, 7 and 8, printed vs computed",
        description=(
            "Builds every model of the paper's cost tables (Tables 2, 4, 6, 7 and 8), "
            "counts it, and prints the paper's values next to the computed ones, "
            "marking each cell that differs (Markdown)."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")


def run(args: argparse.Namespace) -> int:
    """``mobilenet paper``: prints the paper's tables beside the computed values."""
    from mobilenet.paper import reproduce_paper_tables

    tables = reproduce_paper_tables()
    print(tables.to_json() if args.json else tables.to_markdown(), end="\n" if args.json else "")
    return 0
