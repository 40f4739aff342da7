"""Images and labels held as NumPy arrays: the checks every array input passes, a split."""

from __future__ import annotations

from typing import Any

import numpy as np

from mobilenet._validation import check_number, invalid

__all__ = ["check_images_and_labels", "split_validation", "stratified_holdout"]


def split_validation(
    images: np.ndarray, labels: np.ndarray, fraction: float = 0.1, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Holds out a class-stratified ``fraction`` of the training data for validation.

    Args:
        images: training images, ``(n, 32, 32, 3)``.
        labels: their labels, ``(n,)``.
        fraction: float in (0, 1), the share of each class to hold out.
        seed: seed of the random choice.

    Returns:
        ``(x_train, y_train), (x_val, y_val)``.

    Example:

    ```python
    from mobilenet.datasets import load_cifar10, split_validation

    (x_train, y_train), _ = load_cifar10("../shared/data/cifar10-subset")
    (x_fit, y_fit), (x_val, y_val) = split_validation(x_train, y_train, 0.1)
    len(x_fit), len(x_val)  # (2251, 249): 10% of each class held out
    ```
    """
    fraction = check_number(fraction, "fraction", low=0.0, high=1.0, low_open=True)
    images, labels = check_images_and_labels(images, labels)
    held = stratified_holdout(labels, fraction, seed)
    return (images[~held], labels[~held]), (images[held], labels[held])


def check_images_and_labels(
    images: Any,
    labels: Any,
    *,
    num_classes: int | None = None,
    image_shape: tuple[int | None, ...] | None = None,
    images_argument: str = "images",
    labels_argument: str = "labels",
) -> tuple[np.ndarray, np.ndarray]:
    """Checks a set of images and labels before any training or evaluation uses them.

    Images are pixels as they come from a file or camera, 0-255, as uint8 or
    as floats in that range (the models of this library normalise inside).

    Args:
        images: array ``(n, rows, cols, channels)`` of pixels.
        labels: integer class indices ``(n,)`` (or ``(n, 1)``, as Keras gives
            them) in ``0..num_classes-1``.
        num_classes: optional int, the number of classes; None accepts any
            label >= 0.
        image_shape: optional ``(rows, cols, channels)`` the images must have;
            None entries match any size. Default: any size, 3 channels.
        images_argument: the images' argument name, for errors.
        labels_argument: the labels' argument name, for errors.

    Returns:
        ``(images, labels)`` as arrays, labels flattened to int64.

    Raises:
        ValueError: naming the argument, for a wrong shape or dtype, pixels
            outside 0-255, labels outside the classes, or unequal lengths.

    Example:

    ```python
    import numpy as np
    from mobilenet.datasets import check_images_and_labels

    x, y = check_images_and_labels(np.zeros((4, 32, 32, 3), np.uint8), [0, 1, 2, 9])
    ```
    """
    expected_shape = image_shape if image_shape is not None else (None, None, 3)
    array = np.asarray(images)
    shown = ", ".join("any" if side is None else str(side) for side in expected_shape)
    if (
        array.ndim != 4
        or not all(want is None or want == got for want, got in zip(expected_shape, array.shape[1:]))
        or not (array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating))
    ):
        raise invalid(
            images_argument,
            f"pixels as a uint8 or float array of shape (n, {shown})",
            images,
            shown=f"an array of shape {array.shape} and dtype {array.dtype}",
        )
    if array.dtype != np.uint8 and array.size:
        low, high = float(np.min(array)), float(np.max(array))
        if not (np.isfinite(low) and np.isfinite(high) and low >= 0.0 and high <= 255.0):
            raise invalid(
                images_argument,
                "pixels in 0..255 (the models normalise inside; pass images as they "
                "come, not normalised)",
                images,
                shown=f"values from {low:g} to {high:g}",
            )
        if 0.0 < high <= 1.0:
            raise invalid(
                images_argument,
                "pixels in 0..255 (the models normalise inside); these look normalised to "
                "[0, 1]: multiply them by 255",
                images,
                shown=f"float values from {low:g} to {high:g}",
            )
    label_array = np.asarray(labels)
    if label_array.ndim == 2 and label_array.shape[1] == 1:
        label_array = label_array.reshape(-1)
    if label_array.ndim != 1 or (label_array.size and label_array.dtype.kind not in "iu"):
        raise invalid(
            labels_argument,
            "integer class indices of shape (n,)",
            labels,
            shown=f"an array of shape {label_array.shape} and dtype {label_array.dtype}",
        )
    if len(label_array) != len(array):
        raise invalid(
            labels_argument,
            f"one label per image ({len(array)} images in `{images_argument}`)",
            labels,
            shown=f"{len(label_array)} labels",
        )
    if label_array.size and (
        label_array.min() < 0 or (num_classes is not None and label_array.max() >= num_classes)
    ):
        raise invalid(
            labels_argument,
            "class indices >= 0" if num_classes is None else f"class indices in 0..{num_classes - 1}",
            labels,
            shown=f"labels from {label_array.min()} to {label_array.max()}",
        )
    return array, label_array.astype(np.int64)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A boolean mask holding out ``fraction`` of each class's members, chosen with ``seed``.

    Each class holds out ``round(fraction * count)`` of its members, and at
    least one where it has two or more, so that a small class is still
    validated on; a class of one member keeps it for training.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(fraction * len(members)))
        if fraction > 0 and len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        held[rng.choice(members, size=count, replace=False)] = True
    return held
