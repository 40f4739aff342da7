"""Loading keras.applications.MobileNet weights into `MobileNetV1` models.

The weights files are read by Keras itself, into a ``keras.applications``
model of the same width; this module only moves each tensor to the layer of
ours that plays the same part in the network.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from mobilenet.layers import DepthwiseSeparableConv2D
from mobilenet.model import BLOCKS

__all__ = ["imagenet_weights_url", "load_keras_applications_weights"]

#: Where keras.applications keeps its MobileNet V1 ImageNet weights.
IMAGENET_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}


def imagenet_weights_url(alpha: float, resolution: int, include_top: bool) -> tuple[str, str]:
    """Returns ``(file_name, url)`` of keras.applications' ImageNet MobileNet weights."""
    suffix = "" if include_top else "_no_top"
    file_name = f"mobilenet_{_ALPHA_TEXT[alpha]}_{resolution}_tf{suffix}.h5"
    return file_name, IMAGENET_BASE_URL + file_name


def _download_imagenet(alpha: float, resolution: int, include_top: bool) -> str:
    file_name, url = imagenet_weights_url(alpha, resolution, include_top)
    try:
        # Same file name and cache folder as keras.applications: one download serves both.
        return keras.utils.get_file(file_name, url, cache_subdir="models")
    except Exception as error:  # get_file raises a bare Exception when offline.
        raise ConnectionError(
            f"Could not download the ImageNet weights {file_name} ({error}). If this "
            f"machine is offline, fetch {url} elsewhere and pass its local path as "
            "`weights=`."
        ) from error


def _reference_model(alpha: float, include_top: bool, num_classes: int) -> keras.Model:
    return keras.applications.MobileNet(
        input_shape=(224, 224, 3),
        alpha=alpha,
        include_top=include_top,
        weights=None,
        classes=num_classes,
    )


def _read_into_reference(path: str, alpha: float, include_top: bool, num_classes: int) -> keras.Model:
    """Loads ``path`` into a keras.applications model, accepting a file with a top for a no-top model."""
    reference = _reference_model(alpha, include_top, num_classes)
    try:
        reference.load_weights(path)
        return reference
    except Exception as first_error:
        error = first_error
    if not include_top and not path.endswith(".weights.h5"):
        # A legacy .h5 file with a classifier still holds the whole backbone.
        try:
            reference.load_weights(path, by_name=True)
            return reference
        except Exception as second_error:
            error = second_error
    raise ValueError(
        f"Invalid value for argument `weights`: {path!r} does not hold "
        f"keras.applications.MobileNet weights for alpha={alpha}"
        + (f" with a {num_classes}-class classifier" if include_top else "")
        + f" (Keras said: {error})"
    ) from error


def load_keras_applications_weights(
    model: keras.Model, weights: str | os.PathLike[str], *, alpha: float, rows: Any, cols: Any
) -> None:
    """Fills a standard `MobileNetV1` model with keras.applications.MobileNet weights.

    Args:
        model: a model built by `MobileNetV1` with ``separable=True`` and
            ``shallow=False``.
        weights: ``"imagenet"`` or the path of a weights file saved from
            ``keras.applications.MobileNet`` (legacy ``.h5`` or ``.weights.h5``).
        alpha: the model's width multiplier.
        rows, cols: the model's input size (selects the ImageNet file).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is unreadable or holds weights of another shape.
        ConnectionError: the ImageNet download failed.
    """
    try:
        classifier = model.get_layer("fc")
    except ValueError:
        classifier = None
    include_top = classifier is not None
    num_classes = classifier.units if include_top else 1000

    if weights == "imagenet":
        path = _download_imagenet(alpha, rows, include_top)
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Invalid value for argument `weights`: no file at {path!r}. Expected "
                "None, 'imagenet' or the path of a keras.applications.MobileNet weights file."
            )
    reference = _read_into_reference(path, alpha, include_top, num_classes)

    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = [
        (model.get_layer("conv1"), reference.get_layer("conv1")),
        (model.get_layer("conv1_bn"), reference.get_layer("conv1_bn")),
    ]
    for number in range(1, len(BLOCKS) + 1):
        block = model.get_layer(f"block_{number}")
        if not isinstance(block, DepthwiseSeparableConv2D):
            raise ValueError(f"Layer block_{number} of {model.name} is not a separable block.")
        pairs += [
            (block.depthwise, reference.get_layer(f"conv_dw_{number}")),
            (block.depthwise_bn, reference.get_layer(f"conv_dw_{number}_bn")),
            (block.pointwise, reference.get_layer(f"conv_pw_{number}")),
            (block.pointwise_bn, reference.get_layer(f"conv_pw_{number}_bn")),
        ]
    for ours, theirs in pairs:
        ours.set_weights(theirs.get_weights())
    if include_top:
        kernel, bias = reference.get_layer("conv_preds").get_weights()
        classifier.set_weights([kernel.reshape(kernel.shape[-2:]), bias])
