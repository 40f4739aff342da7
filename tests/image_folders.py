"""Image-folder datasets written by the tests: small, learnable, and in every format users have.

`write_pets` writes three classes told apart by colour (``blue``, ``green``,
``red`` pictures with noise and a random bright square), at sizes and aspect
ratios that differ from file to file, as JPEG, PNG (RGB, grayscale, RGBA),
GIF, BMP and WebP, so that a test that trains on it can learn something in a
few epochs and every decoder path runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("blue", "green", "red")
#: The formats cycled through, with the PIL mode each file is written in.
FORMATS = (("jpg", "RGB"), ("png", "RGB"), ("png", "L"), ("png", "RGBA"), ("gif", "P"),
           ("bmp", "RGB"), ("webp", "RGB"), ("jpeg", "RGB"))


def picture(label: int, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A ``rows x cols`` RGB picture of class ``label``: its channel bright, noise, a square."""
    image = rng.integers(0, 90, (rows, cols, 3)).astype(np.int16)
    image[..., label] += 140
    side = max(4, min(rows, cols) // 3)
    top, left = rng.integers(0, rows - side), rng.integers(0, cols - side)
    image[top:top + side, left:left + side] += 60
    return np.clip(image, 0, 255).astype(np.uint8)


def save(array: np.ndarray, path: Path, mode: str = "RGB") -> Path:
    """Writes ``array`` (RGB uint8) to ``path`` in ``mode`` through Pillow."""
    from PIL import Image

    image = Image.fromarray(array)
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95) if path.suffix in (".jpg", ".jpeg", ".webp") else image.save(path)
    return path


def write_pets(root: Path, per_class: int = 12, seed: int = 0, formats=FORMATS,
               classes=CLASSES) -> Path:
    """Writes ``root/<class>/<i>.<ext>`` for each class; returns ``root``."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        for index in range(per_class):
            suffix, mode = formats[(index + label) % len(formats)]
            rows, cols = (int(v) for v in rng.integers(36, 90, 2))
            save(picture(label % 3, rng, rows, cols), root / name / f"{index:03d}.{suffix}", mode)
    return root
