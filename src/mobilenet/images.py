"""Reading image files the right way up: decoding, and a photo's EXIF orientation.

A phone stores a photo as its sensor saw it and records in the file's EXIF
orientation tag how to turn it upright; viewers turn it, and so must a model's
input, or a portrait photo goes in lying on its side. Image files come into
the library through `read_image` (`mobilenet predict` reads them so) or, in a
``tf.data`` pipeline, through `image_orientation` and `apply_orientation`;
either way they are turned as Pillow's ``ImageOps.exif_transpose`` turns them.

- `read_image`: a file as an upright ``uint8`` array ``(height, width, 3)``.
  TensorFlow decodes it (``tf.io.decode_image``: JPEG, PNG, GIF's first frame,
  BMP, WebP); grayscale and RGBA become RGB.
- `image_orientation`: a file's EXIF orientation (1-8) from its header alone.
- `apply_orientation`: turns a decoded image by an orientation with TensorFlow
  ops, so that a ``tf.data`` pipeline that decodes with ``tf.io`` can turn
  images inside the graph, given each file's `image_orientation`.

Reading the orientation needs Pillow, the optional ``images`` extra
(``pip install "mobilenet[images]"``); TensorFlow and Keras do not depend on
it. Without it, `read_image` and `image_orientation` raise an ``ImportError``
naming the extra rather than read a photo sideways.

```python
import numpy as np
from PIL import Image
from mobilenet.images import image_orientation, read_image

upright = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
exif = Image.Exif()
exif[0x0112] = 6   # "turn 90 degrees clockwise to view", as a phone held upright writes it
Image.fromarray(np.rot90(upright)).save("photo.png", exif=exif)   # stored lying on its side
print(image_orientation("photo.png"))   # 6
assert (read_image("photo.png") == upright).all()
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet._validation import invalid, is_int

__all__ = [
    "IMAGES_EXTRA_HINT",
    "IMAGE_SUFFIXES",
    "apply_orientation",
    "decode_image",
    "decode_rgb",
    "image_orientation",
    "read_image",
]

#: The suffixes (any case) of the image files folders are searched for: the
#: formats `read_image` decodes.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")

#: How to install Pillow, which reading an EXIF orientation needs.
IMAGES_EXTRA_HINT = 'pip install "mobilenet[images]"'

#: EXIF's orientation tag (0x0112).
_ORIENTATION_TAG = 0x0112

#: For each EXIF orientation, how to turn the stored image upright: transpose
#: (swap rows and columns) first or not, then reverse the columns (left-right)
#: and/or the rows (top-bottom). The same turns as Pillow's exif_transpose:
#: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE,
#: 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90.
_TURNS = {
    1: (False, False, False),
    2: (False, True, False),
    3: (False, True, True),
    4: (False, False, True),
    5: (True, False, False),
    6: (True, True, False),
    7: (True, True, True),
    8: (True, False, True),
}


def read_image(path: str | os.PathLike, *, channels: int = 3) -> np.ndarray:
    """An image file, upright, as a ``uint8`` array ``(height, width, channels)``.

    TensorFlow decodes the file (``tf.io.decode_image``: JPEG, PNG, GIF's first
    frame, BMP, WebP), whatever its name; the file's EXIF orientation (see
    `image_orientation`) then turns it as Pillow's ``ImageOps.exif_transpose``
    would, so ``height`` and ``width`` are those of the upright image.

    Args:
        path: the image file.
        channels: int, 3 (the default: grayscale and RGBA become RGB, alpha
            dropped), 1 (grayscale) or 4 (RGBA).

    Returns:
        A ``uint8`` NumPy array ``(height, width, channels)``.

    Raises:
        ValueError: the file is missing or not an image these formats hold;
            the message names it.
        ImportError: Pillow (the optional ``images`` extra) is not installed.
    """
    if not (is_int(channels) and channels in (1, 3, 4)):
        raise invalid("channels", "1, 3 or 4", channels)
    import tensorflow as tf

    file = _existing_file(path)
    # Read by TensorFlow's own op: an undecodable file read into Python bytes first leaves
    # TensorFlow a log line to print at exit, past the command line's filter.
    return _decode_upright(tf.io.read_file(str(file)), channels, str(path), file)


def decode_image(data: bytes, *, channels: int = 3) -> np.ndarray:
    """An image file's bytes, upright, as a ``uint8`` array ``(height, width, channels)``.

    `read_image` for bytes already in memory (an upload, a camera app's JPEG):
    the same decoding and the same EXIF turn.

    Raises:
        ValueError: the bytes are not an image these formats hold.
        ImportError: Pillow (the optional ``images`` extra) is not installed.
    """
    import io

    if not (is_int(channels) and channels in (1, 3, 4)):
        raise invalid("channels", "1, 3 or 4", channels)
    if not isinstance(data, (bytes, bytearray)):
        raise invalid("data", "the bytes of an image file", data,
                      shown=f"data of type {type(data).__name__}")
    return _decode_upright(bytes(data), channels, "the image bytes", io.BytesIO(bytes(data)))


def _decode_upright(data: Any, channels: int, shown: str, exif_source: Any) -> np.ndarray:
    import tensorflow as tf

    try:
        # The file's own channels: TensorFlow's decoders convert to some
        # channel counts and refuse others (1 from GIF, BMP or WebP, 4 from
        # JPEG or GIF, 3 from an RGBA WebP), so every format is converted here.
        image = tf.io.decode_image(data, expand_animations=False)
    except tf.errors.OpError as error:
        raise ValueError(f"cannot read {shown!r} as an image ({_op_message(error)})") from error
    image = _with_channels(image, channels)
    return np.asarray(apply_orientation(image, _orientation(exif_source, shown)))


def image_orientation(path: str | os.PathLike) -> int:
    """A file's EXIF orientation, 1 to 8, read from its header (1: upright as stored).

    Pillow reads the tag where its ``Image.getexif`` finds it (a JPEG's or
    WebP's EXIF block, a PNG's ``eXIf`` chunk or EXIF text, XMP's
    ``tiff:Orientation``) without decoding the pixels, so listing a folder's
    orientations is cheap. A PNG's EXIF is looked for before the image data
    only, where PNG writers put it (Pillow's own ``getexif`` would decode the
    whole file to look after it too). Files without the tag, formats that
    cannot hold one (BMP, GIF), and values outside 1-8 give 1, as
    ``ImageOps.exif_transpose`` leaves such images as they are.

    Args:
        path: the image file.

    Returns:
        int, 1 to 8; `apply_orientation` turns the decoded image by it.

    Raises:
        ValueError: the file is missing or Pillow cannot open it as an image.
        ImportError: Pillow (the optional ``images`` extra) is not installed.
    """
    return _orientation(_existing_file(path), str(path))


def _orientation(source: Any, shown: str) -> int:
    """`image_orientation` of an existing file or a binary file object."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as error:
        raise ImportError(
            "reading an image's EXIF orientation (which way up a photo goes) needs Pillow, "
            f"which is not installed; install the optional `images` extra: {IMAGES_EXTRA_HINT}"
        ) from error
    try:
        with Image.open(source) as image:
            # The base class's getexif parses what opening read (the header);
            # PNG's override would decode the pixels to look for a late eXIf.
            exif = Image.Image.getexif(image)
            value = exif.get(_ORIENTATION_TAG, 1)
    except UnidentifiedImageError as error:
        raise ValueError(f"cannot read {shown!r} as an image (unknown format)") from error
    except (OSError, SyntaxError) as error:  # Pillow's errors for a broken header
        raise ValueError(f"cannot read {shown!r} as an image ({error})") from error
    return int(value) if is_int(value) and value in _TURNS else 1


def apply_orientation(image: Any, orientation: Any) -> Any:
    """Turns a decoded image upright by its EXIF orientation, with TensorFlow ops.

    Args:
        image: an image ``(height, width, channels)``: a NumPy array or a
            ``tf.Tensor``.
        orientation: the file's EXIF orientation (`image_orientation`): an int
            1 to 8, or an integer scalar tensor, as in a ``tf.data`` pipeline,
            where values outside 1-8 leave the image as it is.

    Returns:
        A ``tf.Tensor`` of the image's dtype; orientations 5 to 8 swap
        ``height`` and ``width``.

    Raises:
        ValueError: ``image`` is not 3-dimensional, or ``orientation`` is an
            int outside 1-8.

    Example:

    ```python
    import keras
    import numpy as np
    import tensorflow as tf
    from mobilenet.images import apply_orientation, image_orientation

    stored = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)   # a photo stored on its side
    print(apply_orientation(stored, 6).shape)                  # (3, 2, 1): turned clockwise

    # In a tf.data pipeline: each file's orientation is read once, beside its path.
    keras.utils.save_img("a.png", np.zeros((4, 6, 3), np.uint8))
    paths = ["a.png"]
    orientations = [image_orientation(path) for path in paths]
    images = tf.data.Dataset.from_tensor_slices((paths, orientations)).map(
        lambda path, orientation: apply_orientation(
            tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False),
            orientation,
        )
    )
    ```
    """
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3:
        raise invalid("image", "an image (height, width, channels)", image,
                      shown=f"image with shape {tuple(image.shape)}")
    if isinstance(orientation, (bool, np.bool_)) or (
        not tf.is_tensor(orientation) and not is_int(orientation)
    ):
        raise invalid("orientation", "an EXIF orientation, an integer 1 to 8", orientation)
    if not tf.is_tensor(orientation):
        if orientation not in _TURNS:
            raise invalid("orientation", "an EXIF orientation, an integer 1 to 8", orientation)
        return _turn(image, *_TURNS[int(orientation)])
    orientation = tf.cast(orientation, tf.int32)
    index = tf.where((orientation >= 1) & (orientation <= 8), orientation - 1, 0)
    branches = [lambda turns=_TURNS[value]: _turn(image, *turns) for value in sorted(_TURNS)]
    return tf.switch_case(index, branches)


def decode_rgb(data: Any) -> Any:
    """Decodes an image file's bytes to RGB ``uint8`` ``(height, width, 3)``, in a ``tf.data`` graph too.

    The file's own channels are decoded (TensorFlow's decoders refuse some
    conversions, see `read_image`) and then mapped: gray and gray+alpha are
    repeated into three channels, RGBA loses its alpha. Unlike
    `read_image`, it does not turn the image: `apply_orientation` does.

    Args:
        data: the file's bytes, a string tensor (``tf.io.read_file``).

    Returns:
        A ``uint8`` tensor with 3 channels (height and width dynamic).
    """
    import tensorflow as tf

    image = tf.io.decode_image(data, expand_animations=False)
    # A slice or a tile, not a gather: gathering the channels took two thirds of the
    # pipeline's time on photo-sized JPEGs (benchmarks/RESULTS.md, "Your own images").
    image = tf.cond(
        tf.shape(image)[-1] >= 3,
        lambda: image[..., :3],
        lambda: tf.tile(image[..., :1], [1, 1, 3]),
    )
    image.set_shape([None, None, 3])
    return image


def _with_channels(image: Any, channels: int) -> Any:
    """A decoded uint8 image (gray, gray+alpha, RGB or RGBA) with `channels` 1, 3 or 4."""
    import tensorflow as tf

    native = image.shape[-1]
    if channels == 1 and native <= 2:
        return image[..., :1]
    color = image[..., :3] if native >= 3 else tf.image.grayscale_to_rgb(image[..., :1])
    if channels == 1:
        return tf.image.rgb_to_grayscale(color)
    if channels == 3:
        return color
    if native in (2, 4):
        alpha = image[..., -1:]
    else:
        alpha = tf.fill(tf.shape(image[..., :1]), tf.constant(255, tf.uint8))
    return tf.concat([color, alpha], -1)


def _turn(image: Any, transpose: bool, left_right: bool, top_bottom: bool) -> Any:
    import tensorflow as tf

    if transpose:
        image = tf.transpose(image, [1, 0, 2])
    axes = [axis for axis, flip in ((1, left_right), (0, top_bottom)) if flip]
    return tf.reverse(image, axes) if axes else image


def _existing_file(path: str | os.PathLike) -> Path:
    file = Path(path)
    if not file.is_file():
        reason = "a folder, not a file" if file.is_dir() else "no such file"
        raise ValueError(f"cannot read {str(path)!r}: {reason}")
    return file


def _op_message(error: Any) -> str:
    """A TensorFlow op error's first line, without its op and device decorations."""
    import re

    text = str(error.message).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    return re.sub(r"\s*\[Op:\w+\].*$", "", text)
