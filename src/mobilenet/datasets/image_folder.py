"""Your own images as a dataset: one folder per class, listed and checked, never loaded whole.

Two layouts are read:

- ``DIR/<class>/<images>``: every sub-folder is a class; `load_image_folder`
  holds out a seeded, class-stratified share for validation;
- ``DIR/train/<class>/...`` beside ``DIR/val/<class>/...`` (or
  ``validation/``) and optionally ``DIR/test/<class>/...``: the splits as
  given, with the same classes in each.

Class names are the folder names, sorted, so label ``i`` is the ``i``-th
name. Images are found in each class folder and its sub-folders by suffix
(`IMAGE_SUFFIXES`, any case; hidden files and folders skipped). Other files
(``notes.txt``) are skipped and counted in `ImageFolder.skipped`.

Listing reads the first and last bytes of every image file. A file that will
not decode is refused before anything runs, with every such file named in one
error: an empty file, one whose content is not a JPEG, PNG, GIF, BMP or WebP,
one whose header Pillow cannot parse, and one cut short (a JPEG without its
end-of-image marker, a PNG without its IEND chunk, a GIF without its trailer,
a BMP or WebP shorter than its header says). A file that fails these checks is
decoded by the pipeline's decoder, whose verdict is final, so a complete JPEG
followed by other data (a phone's motion photo) is kept. The EXIF orientation
is read then too, so that phone photos come in the right way up. Damage inside
a complete file is left to decoding (``make_file_dataset``).

Nothing here decodes an image: `mobilenet.training.pipeline.make_file_dataset`
streams the files through ``tf.data``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mobilenet._validation import MissingPath, check_number, invalid
from mobilenet.images import IMAGE_SUFFIXES

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageFolder",
    "ImageFolderSplits",
    "find_image_files",
    "is_image_folder",
    "load_image_folder",
]

#: Folder names of the split layout, first match wins.
TRAIN_NAMES = ("train",)
VALIDATION_NAMES = ("val", "validation")
TEST_NAMES = ("test",)
#: Image formats by their first bytes (WebP: RIFF....WEBP).
_MAGIC = {
    b"\xff\xd8\xff": "jpeg",
    b"\x89PNG\r\n\x1a\n": "png",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
    b"BM": "bmp",
}
#: How a complete file ends, after any padding of zeros: JPEG's end-of-image
#: marker, PNG's IEND chunk (with its CRC), GIF's trailer.
_ENDINGS = {"jpeg": b"\xff\xd9", "png": b"IEND\xaeB`\x82", "gif": b";"}
_END_NAMES = {"jpeg": "JPEG's end-of-image marker", "png": "PNG's IEND chunk",
              "gif": "GIF's trailer"}
#: Bytes read from each end of every file when listing.
_HEAD, _TAIL = 32, 32


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """Image files, their labels and EXIF orientations, and the class names.

    Attributes:
        root: the folder the files were listed from.
        files: tuple of file paths (str), sorted by class, then path.
        labels: int64 array ``(n,)``, each file's class index.
        orientations: int32 array ``(n,)``, each file's EXIF orientation
            (1 = upright; 2-8 as the EXIF standard numbers them).
        class_names: tuple of the class names, label order.
        skipped: tuple of files left out because their suffix is not an
            image's (hidden files are not counted).
        unreadable: list of the files that the pipeline reading this folder
            (`mobilenet.training.pipeline.make_file_dataset`) left out because
            they would not decode, damaged inside where listing cannot see,
            each added (and warned about) at the end of the first pass that
            meets it. Empty until then; a subset starts its own.
    """

    root: Path
    files: tuple[str, ...]
    labels: np.ndarray = dataclasses.field(repr=False)
    orientations: np.ndarray = dataclasses.field(repr=False)
    class_names: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    unreadable: list[str] = dataclasses.field(default_factory=list, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def class_counts(self) -> dict[str, int]:
        """Class name -> number of images."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts)}

    def subset(self, indices: np.ndarray) -> ImageFolder:
        """The files at ``indices`` (an int or bool array), with the same classes."""
        indices = np.flatnonzero(indices) if np.asarray(indices).dtype == bool else np.asarray(indices)
        return dataclasses.replace(
            self,
            files=tuple(self.files[i] for i in indices),
            labels=self.labels[indices],
            orientations=self.orientations[indices],
            skipped=(),
            unreadable=[],
        )

    def split(self, fraction: float, seed: int = 0) -> tuple[ImageFolder, ImageFolder]:
        """Holds out a class-stratified ``fraction`` of the files; returns ``(kept, held_out)``."""
        from mobilenet.datasets.arrays import stratified_holdout

        held = stratified_holdout(self.labels, fraction, seed)
        return self.subset(~held), self.subset(held)

    def shard(self, num_shards: int, index: int) -> ImageFolder:
        """Every ``num_shards``-th file from ``index``: worker ``index``'s share of the files."""
        return self.subset(np.arange(index, len(self), num_shards))


@dataclasses.dataclass(frozen=True)
class ImageFolderSplits:
    """What `load_image_folder` returns: the training files and the held-out ones.

    Attributes:
        train: the `ImageFolder` to train on.
        validation: the validation files (``val/``, or the held-out share),
            or None.
        test: the ``test/`` files of the split layout, or None.
        class_names: the class names, label order.
        layout: ``"classes"`` (``DIR/<class>/``) or ``"splits"``
            (``DIR/train/<class>/`` and beside it).
    """

    train: ImageFolder
    validation: ImageFolder | None
    test: ImageFolder | None
    class_names: tuple[str, ...]
    layout: str


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _sniff(head: bytes) -> str | None:
    """The image format that a file's first bytes announce, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return None


def _incomplete(kind: str, head: bytes, tail: bytes, size: int) -> str | None:
    """What the file's ends say is missing (a cut-off copy or download), or None.

    Reads only what `_inspect` read: the first and last bytes and the size. A
    JPEG ends with its end-of-image marker (zeros may pad it), a PNG with its
    IEND chunk, a GIF with its trailer byte; a BMP or WebP is as long as its
    header declares.
    """
    if kind in _ENDINGS:
        if tail.rstrip(b"\0").endswith(_ENDINGS[kind]):
            return None
        return f"it ends without {_END_NAMES[kind]}"
    if kind == "bmp":
        declared = int.from_bytes(head[2:6], "little")
    else:  # webp: RIFF's size field counts what follows it, padded to even
        declared = int.from_bytes(head[4:8], "little") + 8
    if size >= declared:
        return None
    return f"it holds {size:,} bytes of the {declared:,} its header declares"


def _inspect(path: str) -> tuple[int, str | None]:
    """A file's EXIF orientation, and why it will not decode (None: it will).

    The cheap checks read the file's first and last bytes: its format (by its
    first bytes), its header (Pillow parses it for the orientation) and its
    end (`_incomplete`). Only a file that fails one is decoded, by the decoder
    the pipeline uses (`mobilenet.images.read_image`), and refused only if
    that fails too: a JPEG with a video after its end (a phone's motion
    photo) passes.
    """
    from mobilenet.images import image_orientation, read_image

    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        head = stream.read(_HEAD)
        if size > _HEAD + _TAIL:
            stream.seek(size - _TAIL)
            tail = stream.read(_TAIL)
        else:
            tail = (head + stream.read())[-_TAIL:]
    if size == 0:
        return 1, "an empty file"
    kind = _sniff(head)
    if kind is None:
        return 1, "not a JPEG, PNG, GIF, BMP or WebP file"
    orientation, suspect = 1, _incomplete(kind, head, tail, size)
    if kind in ("jpeg", "png", "webp"):
        try:
            orientation = image_orientation(path)
        except ValueError as error:
            suspect = suspect or f"its header is broken ({_reason(error)})"
    if suspect is None:
        return orientation, None
    try:
        read_image(path)
    except ValueError as error:
        return 1, f"{suspect}, and TensorFlow cannot decode it: {_reason(error)}"
    return orientation, None


def _reason(error: ValueError) -> str:
    """The part of `read_image`'s or `image_orientation`'s message after the file name."""
    text = str(error)
    start = text.find(" as an image (")
    if start < 0:
        return text
    return text[start + len(" as an image ("):].removesuffix(")")


def find_image_files(folder: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The image files under ``folder`` (recursively, sorted) and the other files skipped."""
    images, others = [], []
    for current, folders, names in os.walk(folder, followlinks=True):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = os.path.join(current, name)
            (images if name.lower().endswith(IMAGE_SUFFIXES) else others).append(path)
    return images, others


def _class_folders(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_dir() and _visible(path))


def _split_folder(root: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def is_image_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is to be read as an image folder rather than as CIFAR-10's release.

    Everything is, except CIFAR-10's python release: its ``.tar.gz``, its
    ``cifar-10-batches-py/`` folder, or a folder holding either. A path that
    does not exist counts as an image folder, so that reading it says so.
    """
    root = Path(path)
    if root.is_file():
        return not root.name.endswith((".tar.gz", ".tgz"))
    markers = ("cifar-10-batches-py", "cifar-10-python.tar.gz", "data_batch_1")
    return root.name != "cifar-10-batches-py" and not any((root / name).exists() for name in markers)


def _list(root: Path, argument: str, class_names: Sequence[str] | None = None) -> ImageFolder:
    """Lists ``root/<class>/`` and checks it: images in every class, at least two classes."""
    folders = _class_folders(root)
    loose, _ = _files_directly_in(root)
    if not folders:
        raise invalid(
            argument, "a folder with one sub-folder of images per class (DIR/<class>/*.jpg)",
            str(root),
            shown=f"{argument}={str(root)!r}, which has no sub-folders"
            + (f" ({len(loose)} images lie in it directly)" if loose else ""),
        )
    names = tuple(folder.name for folder in folders)
    if class_names is not None and tuple(class_names) != names:
        missing = sorted(set(class_names) - set(names))
        extra = sorted(set(names) - set(class_names))
        raise invalid(
            argument, f"the same class folders as the training split ({len(class_names)}: "
            f"{', '.join(class_names)})", str(root),
            shown=f"{str(root)!r}"
            + (f", missing {', '.join(missing)}" if missing else "")
            + (f", with extra {', '.join(extra)}" if extra else ""),
        )
    if len(names) < 2:
        raise invalid(
            argument, "at least two class folders (a classifier needs two classes)", str(root),
            shown=f"{str(root)!r} with one class folder, {names[0]!r}",
        )
    files: list[str] = []
    labels: list[int] = []
    skipped: list[str] = []
    for label, folder in enumerate(folders):
        found, others = find_image_files(folder)
        if not found:
            raise invalid(
                argument, f"image files ({', '.join(IMAGE_SUFFIXES)}) in every class folder",
                str(root), shown=f"the class folder {str(folder)!r} holds none"
                + (f" ({len(others)} other files)" if others else ""),
            )
        files += found
        labels += [label] * len(found)
        skipped += others
    # Reading a file's ends is I/O-bound: threads overlap the waits (network storage most of all).
    with ThreadPoolExecutor(max_workers=16) as pool:
        inspected = list(pool.map(_inspect, files, chunksize=64))
    unreadable = [(path, problem) for path, (_, problem) in zip(files, inspected) if problem]
    if unreadable:
        raise invalid(
            argument, "image files that decode (JPEG, PNG, GIF, BMP or WebP; remove or replace "
            "the others)", str(root),
            shown=f"{len(unreadable)} file{'s' * (len(unreadable) > 1)} in {str(root)!r} that "
            "will not decode: " + "; ".join(f"{path!r} ({problem})" for path, problem in unreadable),
        )
    return ImageFolder(
        root=root,
        files=tuple(files),
        labels=np.asarray(labels, np.int64),
        orientations=np.asarray([orientation for orientation, _ in inspected], np.int32),
        class_names=names,
        skipped=tuple(skipped),
    )


def _files_directly_in(folder: Path) -> tuple[list[str], list[str]]:
    """The image files lying directly in ``folder`` (not in sub-folders), and the others."""
    images, others = [], []
    for path in sorted(folder.iterdir()):
        if path.is_file() and _visible(path):
            (images if path.suffix.lower() in IMAGE_SUFFIXES else others).append(str(path))
    return images, others


def load_image_folder(
    data_dir: str | os.PathLike,
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    argument: str = "data_dir",
) -> ImageFolderSplits:
    """Lists and checks an image-folder dataset, and splits off validation images.

    Args:
        data_dir: ``DIR`` with one folder per class, or with ``train/`` and
            ``val/`` (or ``validation/``), and optionally ``test/``, each
            holding the same class folders.
        validation_fraction: float in [0, 1), the share of each class held
            out for validation in the ``DIR/<class>/`` layout (0: none). The
            split layout takes ``val/`` as it is and ignores it.
        seed: int, seed of the held-out choice.
        argument: the argument name that errors name.

    Returns:
        `ImageFolderSplits`.

    Raises:
        FileNotFoundError: ``data_dir`` does not exist.
        ValueError: naming ``argument``: no class folders, one class only, a
            class folder without images, splits whose classes differ, files
            named as images that will not decode (each named), or too few
            images of a class to hold one out.

    Example:

    ```python
    import os

    import numpy as np
    from PIL import Image
    from mobilenet.datasets import load_image_folder

    for name in ("cat", "dog"):
        os.makedirs(f"pets/{name}", exist_ok=True)
        for i in range(5):
            Image.fromarray(np.full((40, 30, 3), 40 * i, np.uint8)).save(f"pets/{name}/{i}.png")
    splits = load_image_folder("pets", validation_fraction=0.2)
    splits.class_names, len(splits.train), len(splits.validation)  # ('cat', 'dog'), 8, 2
    ```
    """
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise invalid(argument, "an existing folder", None,
                      shown=f"{argument}={str(data_dir)!r} (no such folder)", error=MissingPath)
    if not root.is_dir():
        raise invalid(argument, "a folder", str(data_dir), shown=f"{argument}={str(data_dir)!r}, a file")
    validation_fraction = check_number(validation_fraction, "validation_fraction", low=0.0, high=1.0)
    train_dir = _split_folder(root, TRAIN_NAMES)
    if train_dir is not None:
        train = _list(train_dir, argument)
        val_dir = _split_folder(root, VALIDATION_NAMES)
        test_dir = _split_folder(root, TEST_NAMES)
        validation = _list(val_dir, argument, train.class_names) if val_dir else None
        test = _list(test_dir, argument, train.class_names) if test_dir else None
        if validation is None and validation_fraction > 0:
            train, validation = _held_out(train, validation_fraction, seed, argument)
        return ImageFolderSplits(train, validation, test, train.class_names, "splits")
    folder = _list(root, argument)
    validation = None
    if validation_fraction > 0:
        folder, validation = _held_out(folder, validation_fraction, seed, argument)
    return ImageFolderSplits(folder, validation, None, folder.class_names, "classes")


def _held_out(
    folder: ImageFolder, fraction: float, seed: int, argument: str
) -> tuple[ImageFolder, ImageFolder]:
    kept, held = folder.split(fraction, seed)
    counts = np.bincount(held.labels, minlength=len(folder.class_names))
    empty = [name for name, count in zip(folder.class_names, counts) if count == 0]
    if empty:
        raise invalid(
            "validation_fraction", "a share that holds out at least one image of every class "
            "(or 0: no validation)", fraction,
            shown=f"validation_fraction={fraction:g}, which holds out no image of "
            f"{', '.join(repr(name) for name in empty[:3])} in {str(folder.root)!r}",
        )
    return kept, held
