"""MobileNet V1 building blocks for Keras 3 on TensorFlow.

```python
from mobilenet import MobileNetV1, DepthwiseSeparableConv2D
```

Public names are imported on first use, so that ``import mobilenet`` (and the
``mobilenet`` command's ``--help``) does not load TensorFlow. ``import
mobilenet`` is still enough for ``keras.saving.load_model`` to load any file
this library writes: the library's Keras classes register themselves as soon
as Keras is imported (see ``mobilenet._registration``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobilenet import _registration
from mobilenet._lazy import lazy_exports

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    "DepthwiseSeparableConv2D": "mobilenet.layers",
    "PointwiseConv2D": "mobilenet.layers",
    "MobileNetV1": "mobilenet.model",
    "profile": "mobilenet.profiler",
    "ModelProfile": "mobilenet.profiler",
    "LayerCost": "mobilenet.profiler",
    "reproduce_paper_tables": "mobilenet.paper",
    "load_model": "mobilenet.saving",
    "without_tensorflow_log": "mobilenet._tf_log",
    "InvalidArgument": "mobilenet.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from mobilenet.errors import InvalidArgument
    from mobilenet.layers import DepthwiseSeparableConv2D, PointwiseConv2D
    from mobilenet.model import MobileNetV1
    from mobilenet.paper import reproduce_paper_tables
    from mobilenet.profiler import LayerCost, ModelProfile, profile
    from mobilenet.saving import load_model
    from mobilenet._tf_log import without_tensorflow_log

_registration.install()


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
