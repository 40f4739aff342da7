"""Argument checks shared by every module, with one message format.

Each check returns the normalised value or raises `InvalidArgument` (a
``ValueError``) worded as Keras words its own: the argument in backticks, what
is allowed, and what was received, e.g. ``Invalid value for argument `epochs`:
expected an integer >= 1. Received: epochs=0``. The error carries the
argument's name (``.argument``), so the command line can say the same with its
flag (``--epochs``) without reading the message.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# The errors are public (mobilenet.errors); every module of the package takes them from here.
from mobilenet.errors import ExistingPath, InvalidArgument, InvalidKey, InvalidType, MissingPath

__all__ = [
    "ExistingPath",
    "InvalidArgument",
    "InvalidKey",
    "InvalidType",
    "MissingPath",
    "check_existing_file",
    "check_activation",
    "check_bool",
    "check_choice",
    "check_int",
    "check_number",
    "check_positive_int",
    "first_line",
    "invalid",
    "is_int",
    "is_real",
]


def invalid(
    argument: str,
    expected: str,
    value: Any,
    *,
    shown: str | None = None,
    problem: str | None = None,
    mentions: tuple[str, ...] = (),
    error: type[InvalidArgument] = InvalidArgument,
) -> InvalidArgument:
    """The `InvalidArgument` error for ``argument=value`` where ``expected`` was allowed.

    Args:
        argument: the argument's name, as the caller spells it.
        expected: what is allowed, as a phrase ("an integer >= 1").
        value: the received value; shown with ``repr`` unless ``shown`` is given.
        shown: optional text to show for the received value (e.g. a shape).
        problem: optional phrase said instead of "expected EXPECTED", where
            what is wrong is not a range (``expected`` is then ignored).
        mentions: other arguments that ``expected`` or ``problem`` names in
            backticks, e.g. ``("weights",)`` for "0 without `weights`".
        error: the class to raise: `InvalidArgument`, or `MissingPath`,
            `InvalidType` or `InvalidKey` where callers expect a
            ``FileNotFoundError``, ``TypeError`` or ``KeyError``.
    """
    received = shown if shown is not None else f"{argument}={value!r}"
    return error(argument, problem or f"expected {expected}", received, mentions)


def first_line(error: BaseException | str) -> str:
    """The first line of an error's message (or of a text), or the error type's name when empty.

    An ``OSError`` with a file name and a reason (as the operating system
    raises them) reads ``REASON: FILE``.
    """
    text = str(error).strip()
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.strerror}: {error.filename}"
    return text.splitlines()[0] if text else type(error).__name__


def check_existing_file(path: str | Path, argument: str, expected: str = "file") -> Path:
    """``path`` as a `Path` if it is an existing file; else a `MissingPath` error.

    Args:
        path: the path to check.
        argument: the argument's name.
        expected: what the file is, after "an existing" (".keras file").
    """
    file = Path(path)
    if not file.is_file():
        reason = "a folder" if file.is_dir() else "no such file"
        raise invalid(argument, f"an existing {expected}", None,
                      shown=f"{argument}={str(path)!r} ({reason})", error=MissingPath)
    return file


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (bools excluded)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (bools excluded; numpy integers included)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value: Any, argument: str, *, minimum: int | None = None) -> int:
    """``value`` as an int, rejecting bools, floats and values under ``minimum``."""
    if not is_int(value) or (minimum is not None and value < minimum):
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise invalid(argument, expected, value)
    return int(value)


def check_bool(value: Any, argument: str) -> bool:
    """``value`` if it is True or False (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise invalid(argument, "True or False", value)
    return value


def check_positive_int(value: Any, argument: str) -> int:
    """``value`` as an int >= 1."""
    return check_int(value, argument, minimum=1)


def check_number(
    value: Any,
    argument: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = True,
) -> float:
    """``value`` as a finite float inside an interval.

    The interval is ``[low, high)`` by default; ``low_open`` excludes ``low``
    and ``high_open=False`` includes ``high``. A bound left None is unbounded.
    """
    inside = is_real(value) and math.isfinite(value)
    if inside and low is not None:
        inside = value > low if low_open else value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        raise invalid(argument, _interval(low, high, low_open, high_open), value)
    return float(value)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is None and high is None:
        return "a finite number"
    if high is None:
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"a finite number {'<' if high_open else '<='} {high:g}"
    return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_choice(value: Any, argument: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared with ``==``, bools kept apart)."""
    choices = tuple(choices)
    for choice in choices:
        if type(value) is bool and type(choice) is not bool:
            continue
        if value == choice:
            return value
    raise invalid(argument, f"one of {choices}", value)


def check_activation(value: Any, argument: str = "activation") -> Any:
    """The Keras activation function for ``value`` (a name, a callable or None)."""
    import keras

    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as error:
        raise invalid(
            argument,
            "the name of a Keras activation (such as 'relu6', 'relu' or 'softmax'), "
            "a callable or None",
            value,
        ) from error
