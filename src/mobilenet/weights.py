"""Loading keras.applications.MobileNet weights into `MobileNetV1` models.

Every rule about pretrained weights lives here: which widths and resolutions
have ImageNet weights, which models they fit (`check_weights_request`, run by
the factory before it builds any layer), which file a request downloads, and
how the tensors move. The weights files are read by Keras itself, into a
``keras.applications`` model of the same width; this module only moves each
tensor to the layer of ours that plays the same part in the network.

This module imports the architecture table, never the factory
(`mobilenet.model`), which imports it.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from mobilenet._validation import MissingPath, invalid
from mobilenet.architecture import BASE_RESOLUTION, STEM, layer_table
from mobilenet.layers import DepthwiseSeparableConv2D

__all__ = [
    "PUBLISHED_ALPHAS",
    "PUBLISHED_RESOLUTIONS",
    "check_weights_request",
    "imagenet_resolution",
    "imagenet_weights_url",
    "load_keras_applications_weights",
]

#: The widths for which keras.applications publishes ImageNet weights.
PUBLISHED_ALPHAS = (0.25, 0.5, 0.75, 1.0)
#: The square input sides for which it publishes them.
PUBLISHED_RESOLUTIONS = (128, 160, 192, 224)

#: Where keras.applications keeps its MobileNet V1 ImageNet weights.
IMAGENET_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}


def imagenet_weights_url(alpha: float, resolution: int, include_top: bool) -> tuple[str, str]:
    """Returns ``(file_name, url)`` of keras.applications' ImageNet MobileNet weights."""
    suffix = "" if include_top else "_no_top"
    file_name = f"mobilenet_{_ALPHA_TEXT[alpha]}_{resolution}_tf{suffix}.h5"
    return file_name, IMAGENET_BASE_URL + file_name


def imagenet_resolution(rows: int | None, cols: int | None) -> int | None:
    """The side of the ImageNet weights file for a model of input ``rows x cols``.

    A model whose input size is left open (rows and cols both None, the
    default of ``MobileNetV1(include_top=False)``) gets the 224 file, as
    ``keras.applications.MobileNet`` does; the weights have the same shapes at
    every side, only their training resolution differs. Otherwise the side is
    the model's own if the input is square, which `check_weights_request`
    also checks is published; None (no file) for a non-square input.
    """
    if rows is None and cols is None:
        return BASE_RESOLUTION
    return rows if rows == cols else None


def check_weights_request(
    weights: Any,
    *,
    alpha: float,
    rows: int | None,
    cols: int | None,
    channels: int,
    include_top: bool,
    num_classes: int,
    min_depth: int,
    separable: bool,
    shallow: bool,
) -> None:
    """Rejects a ``weights`` request that cannot fit, before any layer is built.

    `MobileNetV1` calls it with its checked arguments; the messages name the
    argument to change, what would fit and what was received.

    Args:
        weights: ``"imagenet"``, a timm Hub name or a path (None needs no check).
        alpha: the width multiplier.
        rows, cols, channels: the model's input shape (rows and cols may be None).
        include_top: whether the model has the classifier.
        num_classes: the classifier's outputs.
        min_depth: the fewest channels any layer gets.
        separable, shallow: the variant; only the standard network has weights.

    Raises:
        ValueError: naming the argument that makes the weights unusable.
    """
    if not isinstance(weights, (str, os.PathLike)):
        raise invalid("weights", "None, 'imagenet', a timm Hub name or the path of a weights file",
                      weights)
    if not separable or shallow:
        raise invalid(
            "weights",
            "pretrained weights only with the standard network (separable=True, shallow=False)",
            weights,
            shown=f"weights={weights!r}, separable={separable}, shallow={shallow}",
        )
    if channels != 3:
        raise invalid(
            "input_shape",
            "3 input channels (RGB) with pretrained weights",
            None,
            shown=f"{channels} channels with weights={weights!r}",
        )
    if int(alpha * STEM.filters) < min_depth:
        raise invalid(
            "min_depth",
            f"at most int(alpha * 32) = {int(alpha * STEM.filters)} with pretrained weights "
            f"of alpha={alpha}, whose layers have int(alpha * N) channels",
            min_depth,
        )
    if weights == "imagenet":
        if alpha not in PUBLISHED_ALPHAS:
            raise invalid(
                "alpha", f"one of {PUBLISHED_ALPHAS}, the widths with published ImageNet weights", alpha
            )
        side = imagenet_resolution(rows, cols)
        if rows != cols or side not in PUBLISHED_RESOLUTIONS:
            raise invalid(
                "input_shape",
                f"a square input of side {PUBLISHED_RESOLUTIONS} (or an open size, which "
                f"gets the {BASE_RESOLUTION} weights) with ImageNet weights; or pass the path "
                "of a downloaded weights file, which loads at any input size",
                None,
                shown=f"{rows}x{cols}",
            )
        if include_top and num_classes != 1000:
            raise invalid(
                "num_classes",
                "1000 with the ImageNet classifier (use include_top=False for a backbone "
                "with your own head)",
                num_classes,
            )


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
    classifier = f" with a {num_classes}-class classifier" if include_top else ""
    raise invalid(
        "weights", "", path,
        problem=f"{path!r} does not hold keras.applications.MobileNet weights for "
        f"alpha={alpha}{classifier} (Keras said: {error})",
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
        rows, cols: the model's input size (selects the ImageNet file, see
            `imagenet_resolution`).

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
        path = _download_imagenet(alpha, imagenet_resolution(rows, cols), include_top)
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise invalid("weights", "", None, shown=f"weights={path!r}", error=MissingPath,
                          problem="no file at that path; expected None, 'imagenet' or the "
                          "path of a keras.applications.MobileNet weights file")
    reference = _read_into_reference(path, alpha, include_top, num_classes)

    # The standard network's table (the only one with weights): the stem, then blocks 1..13.
    stem, *blocks = layer_table(alpha)
    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = [
        (model.get_layer(stem.name), reference.get_layer("conv1")),
        (model.get_layer(f"{stem.name}_bn"), reference.get_layer("conv1_bn")),
    ]
    for spec in blocks:
        block = model.get_layer(spec.name)
        if not isinstance(block, DepthwiseSeparableConv2D):
            raise ValueError(f"Layer {spec.name} of {model.name} is not a separable block.")
        pairs += [
            (block.depthwise, reference.get_layer(f"conv_dw_{spec.number}")),
            (block.depthwise_bn, reference.get_layer(f"conv_dw_{spec.number}_bn")),
            (block.pointwise, reference.get_layer(f"conv_pw_{spec.number}")),
            (block.pointwise_bn, reference.get_layer(f"conv_pw_{spec.number}_bn")),
        ]
    for ours, theirs in pairs:
        ours.set_weights(theirs.get_weights())
    if include_top:
        kernel, bias = reference.get_layer("conv_preds").get_weights()
        classifier.set_weights([kernel.reshape(kernel.shape[-2:]), bias])
