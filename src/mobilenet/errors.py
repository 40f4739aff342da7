"""The errors the library raises for a bad argument, each carrying the argument's name.

Every check in the library raises `InvalidArgument` (a ``ValueError``), or
one of its subclasses where Python has a more specific built-in error, with
one message format, the one Keras uses for its own arguments::

    Invalid value for argument `epochs`: expected an integer >= 1. Received: epochs=0

The error keeps the parts of that message apart (`argument`, `problem`,
`received`), so a caller can say which of *its* inputs was wrong without
reading the message: the command line names its flag (``--epochs``) this way.

Example:

```python
from mobilenet import MobileNetV1
from mobilenet.errors import InvalidArgument

try:
    MobileNetV1(alpha=0)
except InvalidArgument as error:
    print(error.argument)  # alpha
    print(error)           # Invalid value for argument `alpha`: expected ... Received: alpha=0
```
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ExistingPath", "InvalidArgument", "InvalidKey", "InvalidType", "MissingPath"]


class InvalidArgument(ValueError):
    """A bad value for one argument, carrying the argument's name.

    The message reads ``Invalid value for argument `NAME`: PROBLEM. Received:
    RECEIVED`` (without the last sentence when ``received`` is empty);
    `message` says it again with the arguments under other names (such as
    command-line flags).

    Args:
        argument: the argument's name, as the raising function spells it.
        problem: what is wrong, as a phrase ("expected an integer >= 1").
        received: what was received, as shown ("epochs=0"); empty where
            ``problem`` says it.
        mentions: other arguments that ``problem`` names in backticks (as
            in "0 without `weights`"), renamed with ``argument`` by `message`.

    Attributes:
        argument: the argument's name, as the raising function spells it.
        problem: what is wrong, as a phrase.
        received: what was received, as shown.
        mentions: the other arguments ``problem`` names.

    Example:

    ```python
    from mobilenet.errors import InvalidArgument

    error = InvalidArgument("epochs", "expected an integer >= 1", "epochs=0")
    assert isinstance(error, ValueError)
    assert str(error) == "Invalid value for argument `epochs`: expected an integer >= 1. Received: epochs=0"
    assert error.message({"epochs": "--epochs"}).startswith("Invalid value for argument `--epochs`")
    ```
    """

    def __init__(self, argument: str, problem: str, received: str = "",
                 mentions: tuple[str, ...] = ()) -> None:
        self.argument = argument
        self.problem = problem
        self.received = received
        self.mentions = tuple(mentions)
        super().__init__(self.message())

    def __reduce__(self) -> tuple:  # pickles (multiprocessing) with its parts
        return type(self), (self.argument, self.problem, self.received, self.mentions)

    def __str__(self) -> str:  # KeyError's own would quote the message
        return self.message()

    def message(self, names: str | Mapping[str, str] | None = None) -> str:
        """The message, with the arguments called as ``names`` says.

        Args:
            names: the argument's name to use instead of its own, or a
                mapping from argument names (this one and its `mentions`) to
                the names to use; a name it leaves out keeps its own. A
                ``received`` text that starts with ``argument=`` is renamed
                too.

        Returns:
            The message, one line unless ``problem`` or ``received`` hold more.
        """
        if names is None:
            names = {}
        elif isinstance(names, str):
            names = {self.argument: names}
        name = names.get(self.argument, self.argument)
        problem = self.problem
        for mention in self.mentions:
            problem = problem.replace(f"`{mention}`", f"`{names.get(mention, mention)}`")
        received = self.received
        if received.startswith(f"{self.argument}="):
            received = f"{name}={received[len(self.argument) + 1:]}"
        text = f"Invalid value for argument `{name}`: {problem}"
        return f"{text}. Received: {received}" if received else text


class MissingPath(InvalidArgument, FileNotFoundError):
    """An argument naming a file or folder that does not exist (also a ``FileNotFoundError``)."""


class ExistingPath(InvalidArgument, FileExistsError):
    """An argument naming a file or folder that holds what the call would replace (also a ``FileExistsError``)."""


class InvalidType(InvalidArgument, TypeError):
    """An argument of the wrong type (also a ``TypeError``)."""


class InvalidKey(InvalidArgument, KeyError):
    """A key that is not among those allowed (also a ``KeyError``)."""
