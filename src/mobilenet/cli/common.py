"""What every ``mobilenet`` command shares.

Adding a command with its flag table, the flag types, the checks of output
paths, and the one-line errors and warnings that `mobilenet.cli.main` prints.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mobilenet._validation import first_line, invalid
from mobilenet.errors import InvalidArgument


#: Exit status for a user error (as argparse uses), for Ctrl-C (128 + SIGINT) and for a
#: closed output pipe (128 + SIGPIPE, what a shell reports for a command the pipe ended).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141


class UsageError(InvalidArgument):
    """A bad flag value or combination of flags, found by a command's handler.

    An `InvalidArgument` whose argument is the flag (``--epochs``, ``MODEL``),
    so `error_message` prints it like an error of the library: raise it with
    `usage_error`. ``UsageError(message)`` with a whole hand-written message
    is the old form, kept until every command raises the new one.
    """

    def __init__(self, argument: str, problem: str | None = None, received: str = "",
                 mentions: tuple[str, ...] = ()) -> None:
        self.whole = argument if problem is None else None
        super().__init__("" if problem is None else argument, problem or "", received, mentions)

    def __reduce__(self) -> tuple:
        if self.whole is not None:
            return type(self), (self.whole,)
        return super().__reduce__()

    def message(self, names: str | Mapping[str, str] | None = None) -> str:
        return self.whole if self.whole is not None else super().message(names)


def usage_error(flag: str, expected: str, value: Any, *, shown: str | None = None,
                problem: str | None = None) -> UsageError:
    """The `UsageError` for ``flag=value`` where ``expected`` was allowed.

    Args:
        flag: the flag as the command line spells it (``--errors``, ``MODEL``).
        expected: what is allowed, as a phrase ("an integer >= 0").
        value: the received value; shown as ``flag=value`` (with ``repr``)
            unless ``shown`` is given.
        shown: optional text to show for the received value; ``""`` leaves
            the "Received:" sentence out (where ``problem`` says it).
        problem: optional phrase said instead of "expected EXPECTED".

    Example:

    ```python
    from mobilenet.cli.common import usage_error

    error = usage_error("--errors", "an integer >= 0", -1)
    assert str(error) == "Invalid value for argument `--errors`: expected an integer >= 0. Received: --errors=-1"
    ```
    """
    return invalid(flag, expected, value, shown=shown, problem=problem, error=UsageError)


def _verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", action="store_true",
        help="show TensorFlow's start-up log, and a traceback with any error",
    )


def command_parser(
    subcommands: argparse._SubParsersAction,
    name: str,
    handler: object,
    flags: dict[str, str],
    **kwargs: object,
) -> argparse.ArgumentParser:
    """Adds sub-command ``name``; ``flags`` maps the library's argument names to its flags.

    An `InvalidArgument` the library raises names its argument as the called
    function spells it (``data_dir``, ``x_train``); the error line names the
    flag that set it (``--data-dir``) from this table.
    """
    parser = subcommands.add_parser(name, **kwargs)
    _verbose_option(parser)
    parser.set_defaults(handler=handler, subparser=parser, flags=flags)
    return parser


def error_message(error: BaseException, flags: dict[str, str]) -> str:
    """One line for a user error; an `InvalidArgument` names its argument by its flag in ``flags``."""
    if isinstance(error, InvalidArgument):
        return first_line(error.message(flags))
    return first_line(error)


def number(text: str) -> float:
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


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def check_output_file(path: str, flag: str) -> None:
    """Refuses, before any work, an output file ``flag`` names that cannot be written.

    Missing folders above it are fine (they are created); a folder in its
    place, a file where a folder should be, or an unwritable folder are not.
    """
    target = Path(path)
    problem = "a folder" if target.is_dir() else _unwritable(target.parent)
    if problem is not None:
        raise usage_error(flag, "a file name in a writable folder", path,
                          shown=f"{flag}={path!r} ({problem})")


def check_output_folder(path: str, flag: str) -> None:
    """Refuses, before any work, an output folder ``flag`` names that cannot be written."""
    problem = _unwritable(Path(path))
    if problem is not None:
        raise usage_error(flag, "a writable folder", path, shown=f"{flag}={path!r} ({problem})")


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be written in ``folder``, or None; missing folders are to be created."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{str(folder)!r} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {str(folder)!r} is not writable"
    return None


def require_onnx(flag: str, *packages: str) -> None:
    """A UsageError naming ``flag`` when a package of the optional `onnx` extra is missing."""
    from mobilenet.export.common import import_onnx_package

    try:
        for package in packages:
            import_onnx_package(package)
    except ImportError as error:
        raise usage_error(flag, "", None, shown="", problem=str(error)) from error


def require_openvino(flag: str) -> None:
    """A UsageError naming ``flag`` when the optional `openvino` extra is missing."""
    from mobilenet.export.openvino import import_openvino

    try:
        import_openvino()
    except ImportError as error:
        raise UsageError(f"Invalid value for argument `{flag}`: {error}") from error


#: Warnings addressed to the developers of the code that triggers them.
DEVELOPER_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


@contextlib.contextmanager
def one_line_warnings(command: str):  # noqa: ANN202
    """Shows each warning as ``mobilenet COMMAND: warning: ...``, without file and source line.

    Deprecation and future warnings that other packages raise (NumPy's about
    ``np.object`` when Keras 3.13.0 probes for it, say) are for those who write
    code against them, not for someone running a command: they are hidden. Our
    own (from ``mobilenet.*`` modules) and every other category still show. Set
    ``-W`` or ``PYTHONWARNINGS`` and Python's filters decide alone, as with
    ``--verbose``, which leaves this filter and format out.
    """
    def format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
        return f"mobilenet {command}: warning: {first_line(str(message))}\n"

    original = warnings.formatwarning
    warnings.formatwarning = format_warning
    try:
        with warnings.catch_warnings():
            if not sys.warnoptions:
                for category in DEVELOPER_WARNINGS:
                    warnings.filterwarnings("ignore", category=category)
                    warnings.filterwarnings("default", category=category, module=r"mobilenet(\.|$)")
            yield
    finally:
        warnings.formatwarning = original


def after_closed_pipe() -> int:
    """The reader of stdout went away (``| head``): stop quietly.

    As Python's documentation of SIGPIPE advises, stdout is pointed at
    os.devnull so that the flush at exit finds no pipe to fail on.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_CLOSED_PIPE
