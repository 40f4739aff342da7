"""Reading image files the right way up (placeholder until the images module lands)."""

from __future__ import annotations

import os

__all__ = ["exif_orientation"]

#: The EXIF tag of the orientation.
_ORIENTATION = 0x0112


def exif_orientation(path: str | os.PathLike) -> int:
    """The EXIF orientation of an image file (1-8), 1 where it has none; reads the header only."""
    from PIL import Image

    with Image.open(path) as image:
        value = image.getexif().get(_ORIENTATION, 1)
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1
