"""Public names that a package imports on first use, so that importing the package stays light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's module ``__getattr__`` and ``__dir__`` (PEP 562) for names imported on first use.

    Args:
        package: the package's name, for the error on an unknown name.
        namespace: the package's ``globals()``; each name is stored there
            once imported, so later lookups do not come back here.
        exports: public name -> the module that defines it.

    Example:

    ```python
    from mobilenet._lazy import lazy_exports

    _EXPORTS = {"MobileNetV1": "mobilenet.model"}
    __getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
    ```
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
