"""Makes ``import mobilenet`` enough for Keras to load the files this library writes.

Keras finds custom classes in ``.keras`` files only through its registry of
serializable objects, filled when the module that defines a class is imported
(Keras >= 3.9 does not import the modules a file names, outside its own
packages). ``import mobilenet`` must stay light, without Keras or TensorFlow,
so that ``mobilenet --help`` answers at once and the command line can quiet
TensorFlow's start-up log before TensorFlow loads. So the registering modules
are imported as soon as Keras is: now, if Keras is already loaded, or right
after the first ``import keras``, through an import hook that removes itself
once it has run.

Keras may be first imported from inside a registering module (``from mobilenet
import DepthwiseSeparableConv2D`` in a new process imports ``mobilenet.layers``,
whose ``import keras`` runs the hook). The others import names from that
half-run module, so registering then would fail on a circular import: it waits,
and each registering module calls :func:`ready` at its end, which registers the
rest once no registering module is half-run.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

__all__ = ["REGISTERING_MODULES", "install", "ready", "register"]

#: The modules whose import registers every class the library saves in a model file.
REGISTERING_MODULES = ("mobilenet.layers", "mobilenet.quantization", "mobilenet.schedules")


#: Registering modules whose whole body has run (they may still be finishing their import).
_READY: set[str] = set()


def _half_run(name: str) -> bool:
    """Whether a registering module is being imported and has not reached its end.

    Each one calls `ready` as its last line, and a module whose import fails
    leaves ``sys.modules``: one that is there but not ready is half-run.
    """
    return name in sys.modules and name not in _READY


def register() -> None:
    """Imports the registering modules (which imports Keras).

    While one of them is half-run, it does nothing: that module's :func:`ready`
    call registers the rest.
    """
    if any(_half_run(module) for module in REGISTERING_MODULES):
        return
    for module in REGISTERING_MODULES:
        importlib.import_module(module)


def ready(module: str) -> None:
    """Called last in each registering module: its names exist, so register the rest."""
    _READY.add(module)
    register()


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of ``keras`` to register after it runs.

    It stays installed until Keras is really imported: a mere
    ``importlib.util.find_spec("keras")`` (TensorFlow makes one to see whether
    Keras is there) also comes through here without executing anything.
    """

    def __init__(self) -> None:
        self._searching = False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "keras" or self._searching:
            return None
        self._searching = True  # let the other finders answer the search below
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        uninstall()
        # Keras is whole now; the registering modules import it from sys.modules.
        register()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader and the like
        return getattr(self.loader, name)


_HOOK = _RegisterAfterKeras()


def install() -> None:
    """Registers now if Keras is loaded, else as soon as it is."""
    if "keras" in sys.modules:
        register()
    elif _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def uninstall() -> None:
    """Removes the import hook (it removes itself once Keras is imported)."""
    while _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)
