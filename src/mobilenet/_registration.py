"""Makes ``import mobilenet`` enough for Keras to load the files this library writes.

Each class that a file of ours can hold registers itself with Keras where it
is defined (``@keras.saving.register_keras_serializable`` in `layers`,
`quantization` and `schedules`), so Keras knows it once its module has run.
`register` is the one function that runs them.

Why ``import mobilenet`` does not simply import them: they subclass Keras
classes, so importing them loads Keras and TensorFlow (seconds), which
``import mobilenet`` and ``mobilenet --help`` must not, and the command line
must quiet TensorFlow's start-up log first. Keras (>= 3.9) imports no module a
file names outside its own packages, so nothing else would run them before
``keras.saving.load_model``. Hence `install`, which ``mobilenet/__init__.py``
calls: it runs `register` now if Keras is loaded, else right after the first
``import keras`` finishes, through an import hook that then removes itself.

Keras may be first imported by one of those modules (``from mobilenet import
DepthwiseSeparableConv2D`` in a new process runs ``layers.py``, whose ``import
keras`` runs the hook). `register` then imports the others while that one has
not defined its classes yet; it works because they need nothing of each other
while they run (`quantization` imports ``mobilenet.layers`` as a module and
reads its classes when called), and the half-run module registers its own
classes as it reaches them. ``tests/test_layout.py`` holds that rule, and
``tests/test_user_flow.py`` tries each first import in a new process.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import Any

__all__ = ["install", "register"]


def register() -> None:
    """Imports every module that registers a class the library saves in its files (and Keras)."""
    import mobilenet.layers  # noqa: F401
    import mobilenet.quantization  # noqa: F401
    import mobilenet.schedules  # noqa: F401


def install() -> None:
    """Runs `register` now if Keras is loaded, else as soon as the first ``import keras`` finishes."""
    if "keras" in sys.modules:
        register()
    elif _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of ``keras`` to run `register` after it.

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
        while _HOOK in sys.meta_path:
            sys.meta_path.remove(_HOOK)
        register()  # Keras is whole now; the modules find it in sys.modules

    def __getattr__(self, name: str) -> Any:  # get_resource_reader and the like
        return getattr(self.loader, name)


_HOOK = _RegisterAfterKeras()
