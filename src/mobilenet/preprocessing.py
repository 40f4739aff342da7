"""One way from an image to a model's input: decode, turn upright, crop, resize, round.

Every command that feeds images to a model goes through this module, so that
they all feed the same pixels: `mobilenet.training.evaluate` (and training's
validation), `mobilenet.predict.Classifier` (``mobilenet predict``), int8
calibration and ``--verify`` from an image folder, and the benchmarks. What
the accuracy of ``mobilenet evaluate`` measures is then what ``mobilenet
predict``, and a phone app that does the same, answers.

The evaluation transform, `eval_transform`, takes a decoded image of any size
and gives the model's input:

1. a central crop keeping ``crop_fraction`` of each side (1.0: the whole
   image; TF-Slim's and timm's 0.875 above 64 px, see `default_crop_fraction`);
2. a resize to the model's input size, with ``interpolation`` (antialiased
   when shrinking), the aspect ratio not kept;
3. rounding to whole pixel values 0-255, as a camera's uint8 frame resized by
   an app would be, and as the uint8 input of an int8 file takes them.

A model carries the crop and interpolation it expects
(`mobilenet.facts.ModelFacts`); training's augmentations (random resized
crops, flips) end in the same resize.

```python
import numpy as np
from mobilenet.preprocessing import eval_transform, load_image

photo = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
pixels = eval_transform(photo, size=(224, 224), crop_fraction=0.875)
pixels.shape, float(pixels.numpy().max()) <= 255  # (TensorShape([224, 224, 3]), True)
same = load_image(photo, size=(224, 224), crop_fraction=0.875)   # a camera frame, a file or bytes
assert (same == pixels.numpy()).all()
```
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from mobilenet._validation import check_choice, check_number, check_positive_int, invalid

__all__ = [
    "CENTRAL_CROP_FRACTION",
    "INTERPOLATIONS",
    "SMALL_IMAGE_MAX",
    "default_crop_fraction",
    "eval_transform",
    "file_dataset",
    "load_image",
    "load_images",
    "skip_unreadable",
]

#: The share of each side the evaluation crop keeps for inputs above `SMALL_IMAGE_MAX`
#: (TF-Slim's and timm's 0.875: 224 from 256).
CENTRAL_CROP_FRACTION = 0.875
#: The largest input side evaluated on the whole image (no crop): at 32x32 an object
#: fills the frame, and a crop would cut it.
SMALL_IMAGE_MAX = 64
#: The resize methods (``tf.image.resize``'s names) a model may ask for.
INTERPOLATIONS = ("bilinear", "bicubic", "area", "nearest", "lanczos3")


def default_crop_fraction(image_size: int) -> float:
    """The evaluation crop of a model of input side ``image_size`` that carries none.

    1.0 (the whole image) up to `SMALL_IMAGE_MAX` pixels, `CENTRAL_CROP_FRACTION` above:
    the crops `mobilenet.training.train` validates with.
    """
    return 1.0 if image_size <= SMALL_IMAGE_MAX else CENTRAL_CROP_FRACTION


def _check_size(size: Any) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise invalid("size", "an int or a pair (height, width) of ints >= 1", size)
    return (check_positive_int(size[0], "size"), check_positive_int(size[1], "size"))


def _check_options(crop_fraction: Any, interpolation: Any) -> float:
    check_choice(interpolation, "interpolation", INTERPOLATIONS)
    return check_number(crop_fraction, "crop_fraction", low=0.0, high=1.0, low_open=True,
                        high_open=False)


def eval_transform(
    image: Any,
    *,
    size: int | Sequence[int],
    crop_fraction: float = 1.0,
    interpolation: str = "bilinear",
) -> Any:
    """An upright decoded image as the model's input: central crop, resize, whole pixel values.

    TensorFlow ops only, so it runs eagerly and inside a ``tf.data`` map alike.

    Args:
        image: pixels 0-255, ``(height, width, channels)``, any size: a NumPy
            array or a tensor, uint8 or float.
        size: int or ``(height, width)``, the model's input size.
        crop_fraction: float in (0, 1], the share of each side kept around the
            centre before resizing (1.0: the whole image).
        interpolation: one of `INTERPOLATIONS` (``tf.image.resize``'s methods),
            antialiased.

    Returns:
        A float32 tensor ``(height, width, channels)`` of whole numbers 0-255.
    """
    import tensorflow as tf

    height, width = _check_size(size)
    crop_fraction = _check_options(crop_fraction, interpolation)
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3:
        raise invalid("image", "an image (height, width, channels)", None,
                      shown=f"an array of shape {tuple(image.shape)}")
    image = tf.cast(image, tf.float32)
    if crop_fraction < 1.0:
        image = tf.image.central_crop(image, crop_fraction)
    image = tf.image.resize(image, (height, width), method=interpolation, antialias=True)
    return tf.clip_by_value(tf.round(image), 0.0, 255.0)


def load_image(
    source: str | os.PathLike | bytes | np.ndarray,
    *,
    size: int | Sequence[int],
    crop_fraction: float = 1.0,
    interpolation: str = "bilinear",
    channels: int = 3,
) -> np.ndarray:
    """An image file, its bytes, or a camera frame as a model's input (`eval_transform`).

    A file is read by `mobilenet.images.read_image` (JPEG, PNG, GIF's first
    frame, BMP, WebP; turned upright by its EXIF orientation, which needs
    Pillow, the ``images`` extra); bytes are decoded the same way; an array is
    taken as upright pixels ``(height, width, channels)``.

    Args:
        source: a path, the bytes of an image file, or a uint8 (or 0-255
            float) array.
        size: int or ``(height, width)``, the model's input size.
        crop_fraction: see `eval_transform`.
        interpolation: see `eval_transform`.
        channels: 1, 3 or 4, the channels the model takes.

    Returns:
        A float32 NumPy array ``(height, width, channels)`` of whole numbers 0-255.

    Raises:
        ValueError: the file is missing or is not a readable image (the message names it).
    """
    from mobilenet.images import decode_image, read_image

    if isinstance(source, (str, os.PathLike)):
        image = read_image(source, channels=channels)
    elif isinstance(source, (bytes, bytearray)):
        image = decode_image(bytes(source), channels=channels)
    else:
        image = np.asarray(source)
        if image.ndim != 3 or image.shape[-1] != channels:
            raise invalid("source", f"an image file, its bytes, or an array (height, width, "
                          f"{channels})", None, shown=f"an array of shape {image.shape}")
    return np.asarray(eval_transform(image, size=size, crop_fraction=crop_fraction,
                                     interpolation=interpolation))


def file_dataset(
    files: Sequence[str],
    orientations: Sequence[int] | np.ndarray,
    *,
    size: int | Sequence[int],
    crop_fraction: float = 1.0,
    interpolation: str = "bilinear",
    batch_size: int = 64,
    folder: Any = None,
) -> Any:
    """A ``tf.data.Dataset`` of batches of image files as a model's input, in file order.

    The same pixels `load_image` gives file by file (decoded by TensorFlow,
    turned by each file's EXIF orientation, `eval_transform`), decoded in
    parallel. ``orientations`` are the files' EXIF orientations, read once
    when a folder is listed (`mobilenet.datasets.ImageFolder.orientations`).
    With the ``folder`` (a `mobilenet.datasets.ImageFolder`) the files come
    from, a file that will not decode is left out, named in a warning and
    recorded in ``folder.unreadable`` (`skip_unreadable`); without it, it is
    an error.

    Returns:
        A dataset of float32 batches ``(n, height, width, 3)``.
    """
    import tensorflow as tf

    from mobilenet.images import apply_orientation, decode_rgb

    batch_size = check_positive_int(batch_size, "batch_size")
    height, width = _check_size(size)
    _check_options(crop_fraction, interpolation)
    if len(files) != len(orientations):
        raise invalid("orientations", f"one orientation per file ({len(files)})", None,
                      shown=f"{len(orientations)} orientations")

    def load(path: Any, orientation: Any) -> Any:
        image = apply_orientation(decode_rgb(tf.io.read_file(path)), orientation)
        image.set_shape([None, None, 3])
        return eval_transform(image, size=(height, width), crop_fraction=crop_fraction,
                              interpolation=interpolation)

    dataset = tf.data.Dataset.from_tensor_slices(
        (list(map(str, files)), np.asarray(orientations, np.int32))
    )
    if folder is not None:
        dataset = skip_unreadable(dataset, load, folder)
    else:
        dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(2)


def load_images(
    images: np.ndarray,
    *,
    size: int | Sequence[int],
    crop_fraction: float = 1.0,
    interpolation: str = "bilinear",
    batch_size: int = 256,
) -> np.ndarray:
    """Arrays of pixels ``(n, height, width, channels)`` of another size as a model's input.

    Images already of ``size`` are returned as they are (as float32): a
    resize to the same size with no crop changes nothing. Others go through
    `eval_transform`, a batch at a time: CIFAR-10's 32x32 images for a 96x96
    model, say, as int8 calibration from ``--calibration-dir`` needs them.

    Returns:
        A float32 array ``(n, height, width, channels)``.
    """
    height, width = _check_size(size)
    images = np.asarray(images)
    if images.ndim != 4:
        raise invalid("images", "an array of images (n, height, width, channels)", None,
                      shown=f"an array of shape {images.shape}")
    if images.shape[1:3] == (height, width) and _check_options(crop_fraction, interpolation) == 1.0:
        return images.astype(np.float32, copy=False)
    import tensorflow as tf

    batches = []
    for start in range(0, len(images), batch_size):
        chunk = tf.convert_to_tensor(images[start:start + batch_size])
        batches.append(np.asarray(tf.map_fn(
            lambda image: eval_transform(image, size=(height, width), crop_fraction=crop_fraction,
                                         interpolation=interpolation),
            chunk, fn_output_signature=tf.float32,
        )))
    return np.concatenate(batches) if batches else np.zeros((0, height, width, images.shape[-1]),
                                                            np.float32)


def skip_unreadable(dataset: Any, decode: Any, folder: Any) -> Any:
    """``dataset.map(decode)`` in parallel, leaving out the files that will not decode, by name.

    Every pipeline that decodes a folder's files goes through it: training's
    (`mobilenet.training.pipeline.make_file_dataset`) and evaluation's
    (`file_dataset`), so a damaged file gets one policy everywhere.

    The safety net under listing's checks (`mobilenet.datasets.image_folder`),
    for damage inside a complete file, which only decoding shows (a PNG or GIF
    with corrupt data). ``ignore_errors`` leaves such an element out at no
    cost to the others, and a count (a ``scan``) runs beside it: a marker
    element after the last one compares the count with the elements that
    went in. Only when some are missing does it look for them, decoding each
    of ``folder``'s files as `mobilenet.images.read_image` does (every file
    once: slow, but only for a broken folder); each it finds is warned about
    once (a ``UserWarning`` naming it) and added to ``folder.unreadable``.
    The order of the others is kept, so evaluation can match them to labels.
    """
    import tensorflow as tf

    expected = int(dataset.cardinality())  # known: make_file_dataset's datasets start from a list
    if expected < 0:
        expected = len(folder)
    stand_in = tf.nest.map_structure(
        lambda spec: tf.zeros([size or 1 for size in spec.shape], spec.dtype),
        dataset.map(decode).element_spec,
    )

    def report(count: Any) -> bool:
        missing = expected - int(count)
        if missing > len(folder.unreadable):
            found = _undecodable(folder.files)
            for path, reason in found:
                if path not in folder.unreadable:
                    folder.unreadable.append(path)
                    warnings.warn(f"left out {path!r}, which will not decode: {reason}", stacklevel=1)
            if len(found) < missing:
                warnings.warn(
                    f"{missing - len(found)} of the files in {str(folder.root)!r} could not be read "
                    "in this pass and were left out, though they decode now (a read error?)",
                    stacklevel=1,
                )
        return False

    def decoded(*element: Any) -> Any:
        return decode(*element), False

    def counted(count: Any, element: Any) -> Any:
        output, last = element
        return count + tf.cast(tf.logical_not(last), tf.int64), (output, last, count)

    def kept(output: Any, last: Any, count: Any) -> Any:
        def check() -> Any:
            keep = tf.py_function(report, [count], tf.bool)
            keep.set_shape([])
            return keep

        return tf.cond(last, check, lambda: tf.constant(True))

    def output(example: Any, last: Any, count: Any) -> Any:
        return example

    end = tf.data.Dataset.from_tensors((stand_in, True))
    dataset = dataset.map(decoded, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    return dataset.concatenate(end).scan(np.int64(0), counted).filter(kept).map(output)


def _undecodable(files: Any) -> list[tuple[str, str]]:
    """The files that `mobilenet.images.read_image` cannot decode, and why, in order."""
    from concurrent.futures import ThreadPoolExecutor

    from mobilenet.images import read_image

    def problem(path: str) -> str | None:
        try:
            read_image(path)
        except ValueError as error:
            return str(error)
        return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        problems = list(pool.map(problem, files, chunksize=16))
    return [(path, reason) for path, reason in zip(files, problems) if reason is not None]
