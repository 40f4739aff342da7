"""Files that will not decode (issue 29, item 4): what checking them costs, and what each check sees.

Sub-commands, each printing a markdown table; ``all`` runs them in order. Files
are written only under ``--work-dir`` (kept and reused):

- ``breakage``: one 640x480 picture as JPEG, PNG, GIF, BMP and WebP, broken
  eight ways (cut at 10%, 50%, 90% and by its last 2 bytes; 1 KiB zeroed in
  the middle; 64 bytes zeroed at a quarter; a text file renamed; an empty
  file). For each: does listing catch it before this change (first bytes and
  Pillow's header parse), listing now (`load_image_folder`, which also reads
  each file's end), Pillow's full load, and TensorFlow's decoder, which is
  the truth of "will not decode" (the pipeline decodes with it).
- ``listing``: 20,000 photo-sized JPEGs (400x300 to 1200x900, two class
  folders; 400 distinct pictures written 50 times each) listed four ways:
  the listing before this change (first 32 bytes and the EXIF orientation of
  each file, 16 threads, as `load_image_folder` did), `load_image_folder` now
  (also each file's last 32 bytes), a full decode of every file by
  TensorFlow (``tf.data``, parallel) and a full decode at 1/8 scale by Pillow
  (``Image.draft``, 16 threads). Cold: every file's pages dropped from the
  page cache first (``posix_fadvise(DONTNEED)``, file by file); warm: right
  after.
- ``pipeline``: images/s of `make_file_dataset` now against the version
  before the safety net (``--before``: a copy of the old
  ``training/pipeline.py``, loaded beside the new one), taking turns: at 224
  px (evaluation's central crop and training's random crop) on 1,000 of the
  photo-sized JPEGs, and at 32 px on 3,000 32x32 PNGs (where the per-file
  overhead shows most), without a cache.

Run it alone, from the repository root (about 10 minutes on 2 cores):

    git show c289ae9:src/mobilenet/training/pipeline.py > /tmp/pipeline_before.py
    python benchmarks/bad_files.py all --work-dir /tmp/bad-files --before /tmp/pipeline_before.py
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import cpu_model_and_flags, interleaved_rates, load_line, progress, versions

PHOTOS = 20_000
DISTINCT = 400


def _picture(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth picture with sensor-like noise: compresses as photos do (about 130 KB at 800x600)."""
    from PIL import Image

    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(small).resize((cols, rows), Image.BICUBIC), np.int16)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def make_photos(root: Path) -> Path:
    """``root/photos/{a,b}/NNNNN.jpg``: 20,000 JPEGs, 400 distinct pictures written 50 times."""
    from PIL import Image

    folder = root / "photos"
    if (folder / "b" / f"{PHOTOS - 1:05d}.jpg").exists():
        return folder
    rng = np.random.default_rng(0)
    blobs = []
    for index in range(DISTINCT):
        cols = int(rng.integers(400, 1201))
        rows = cols * 3 // 4
        if index % 3 == 0:
            rows, cols = cols, rows
        buffer = io.BytesIO()
        Image.fromarray(_picture(rows, cols, rng)).save(buffer, "JPEG", quality=90)
        blobs.append(buffer.getvalue())
    for name in "ab":
        (folder / name).mkdir(parents=True, exist_ok=True)
    for index in range(PHOTOS):
        (folder / "ab"[index % 2] / f"{index:05d}.jpg").write_bytes(blobs[index % DISTINCT])
    return folder


def make_pngs(root: Path, count: int = 3000) -> Path:
    """``root/pngs/{a,b}/N.png``: small 32x32 PNGs, as a CIFAR-10 folder holds."""
    from PIL import Image

    folder = root / "pngs"
    if (folder / "b").exists():
        return folder
    rng = np.random.default_rng(1)
    for index in range(count):
        path = folder / "ab"[index % 2] / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(32, 32, rng)).save(path)
    return folder


# --------------------------------------------------------------------------- breakage


@dataclasses.dataclass
class BreakageRow:
    format: str
    breakage: str
    listing_before: bool
    listing_now: bool
    pillow_load: bool
    tensorflow: bool


def _breakages(data: bytes):
    size = len(data)
    yield "intact", data
    for fraction in (0.1, 0.5, 0.9):
        yield f"cut at {fraction:.0%}", data[: int(size * fraction)]
    yield "last 2 bytes cut", data[:-2]
    yield "1 KiB zeroed mid", data[: size // 2] + bytes(1024) + data[size // 2 + 1024:]
    yield "64 B zeroed at 25%", data[: size // 4] + bytes(64) + data[size // 4 + 64:]
    yield "text renamed", b"hello, this is not an image\n"
    yield "empty", b""


def breakage(work: Path) -> list[BreakageRow]:
    import tensorflow as tf
    from PIL import Image

    from mobilenet.datasets import load_image_folder
    from mobilenet.images import image_orientation

    picture = Image.fromarray(_picture(480, 640, np.random.default_rng(2)))
    rows = []
    for fmt, suffix in (("JPEG", "jpg"), ("PNG", "png"), ("GIF", "gif"), ("BMP", "bmp"), ("WEBP", "webp")):
        buffer = io.BytesIO()
        picture.save(buffer, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
        for name, data in _breakages(buffer.getvalue()):
            root = work / "breakage" / suffix / name.replace(" ", "_").replace("%", "")
            for label in "ab":
                (root / label).mkdir(parents=True, exist_ok=True)
                picture.resize((8, 8)).save(root / label / "good.png")
            path = root / "a" / f"x.{suffix}"
            path.write_bytes(data)

            def before() -> bool:
                with open(path, "rb") as stream:
                    head = stream.read(32)
                known = head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")) or (
                    head[:4] == b"RIFF" and head[8:12] == b"WEBP")
                if known and not head.startswith((b"GIF8", b"BM")):
                    try:
                        image_orientation(path)
                    except ValueError:
                        return False
                return known

            def now() -> bool:
                try:
                    load_image_folder(root, validation_fraction=0)
                    return True
                except ValueError:
                    return False

            def pillow() -> bool:
                try:
                    with Image.open(path) as image:
                        image.load()
                    return True
                except Exception:  # noqa: BLE001 - any failure counts
                    return False

            def decoder() -> bool:
                try:
                    tf.io.decode_image(tf.io.read_file(str(path)), expand_animations=False)
                    return True
                except tf.errors.OpError:
                    return False

            rows.append(BreakageRow(fmt, name, not before(), not now(), not pillow(), not decoder()))
    return rows


# --------------------------------------------------------------------------- listing


@dataclasses.dataclass
class ListingRow:
    check: str
    cache: str
    seconds: float
    files_per_second: float


def _drop_from_page_cache(files: list[str]) -> None:
    for path in files:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def listing(work: Path) -> list[ListingRow]:
    import tensorflow as tf
    from PIL import Image

    from mobilenet.datasets import load_image_folder
    from mobilenet.datasets.image_folder import find_image_files
    from mobilenet.images import image_orientation

    folder = make_photos(work)
    files = sorted(str(path) for path in folder.rglob("*.jpg"))

    def before() -> None:
        found = find_image_files(folder / "a")[0] + find_image_files(folder / "b")[0]

        def inspect(path: str) -> int:
            with open(path, "rb") as stream:
                stream.read(32)
            return image_orientation(path)

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(inspect, found, chunksize=64))

    def now() -> None:
        load_image_folder(folder, validation_fraction=0)

    def tensorflow() -> None:
        dataset = tf.data.Dataset.from_tensor_slices(files).map(
            lambda path: tf.shape(tf.io.decode_image(tf.io.read_file(path), expand_animations=False))[0],
            num_parallel_calls=tf.data.AUTOTUNE,
        ).ignore_errors().batch(256)
        for _ in dataset:
            pass

    def pillow_draft() -> None:
        def decode(path: str) -> None:
            with Image.open(path) as image:
                image.draft("RGB", (image.width // 8, image.height // 8))
                image.load()

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(decode, files, chunksize=64))

    rows = []
    for name, run, caches in (
        ("first bytes + EXIF orientation (listing before)", before, ("cold", "warm")),
        ("+ last bytes: load_image_folder (listing now)", now, ("cold", "warm")),
        ("full decode, TensorFlow (tf.data, parallel)", tensorflow, ("warm",)),
        ("full decode at 1/8 scale, Pillow draft (16 threads)", pillow_draft, ("warm",)),
    ):
        for cache in caches:
            if cache == "cold":
                _drop_from_page_cache(files)
            started = time.perf_counter()
            run()
            seconds = time.perf_counter() - started
            rows.append(ListingRow(name, cache, seconds, len(files) / seconds))
            progress(f"{name} ({cache}): {seconds:.1f} s")
    return rows


# --------------------------------------------------------------------------- pipeline


@dataclasses.dataclass
class PipelineRow:
    images: str
    size: int
    mode: str
    before: float
    now: float


def pipeline(work: Path, before_path: Path) -> list[PipelineRow]:
    from mobilenet.datasets import load_image_folder
    from mobilenet.training import pipeline as now_module

    spec = importlib.util.spec_from_file_location("pipeline_before", before_path)
    before_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(before_module)
    photos = load_image_folder(make_photos(work), validation_fraction=0).train
    photos = photos.subset(np.arange(0, len(photos), len(photos) // 1000))
    pngs = load_image_folder(make_pngs(work), validation_fraction=0).train
    rows = []
    for images, folder, size, training in (
        ("photo-sized JPEGs", photos, 224, False),
        ("photo-sized JPEGs", photos, 224, True),
        ("32x32 PNGs", pngs, 32, False),
        ("32x32 PNGs", pngs, 32, True),
    ):
        def step(module, folder=folder, size=size, training=training):
            dataset = module.make_file_dataset(folder, image_size=size, batch_size=64, training=training)
            return lambda: [None for _ in dataset]

        rates = interleaved_rates(
            {"before": (step(before_module), len(folder)), "now": (step(now_module), len(folder))},
            repeats=3,
        )
        mode = "training (random crop)" if training else "evaluation"
        rows.append(PipelineRow(f"{len(folder):,} {images}", size, mode, rates["before"], rates["now"]))
        progress(f"{rows[-1]}")
    return rows


# --------------------------------------------------------------------------- report


def _table(rows: list) -> str:
    fields = [field.name for field in dataclasses.fields(rows[0])]
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    for row in rows:
        cells = []
        for name in fields:
            value = getattr(row, name)
            if isinstance(value, bool):
                value = "caught" if value else "-"
            elif isinstance(value, float):
                value = f"{value:,.1f}"
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("breakage", "listing", "pipeline", "all"))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bad-files"))
    parser.add_argument("--before", type=Path, help="the old training/pipeline.py, for `pipeline`")
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    model, flags = cpu_model_and_flags()
    print(f"- machine: {model}, {os.cpu_count()} cores, flags {' '.join(flags)}; {versions()}")
    print(f"- {load_line()}")
    if args.part in ("breakage", "all"):
        print("\n" + _table(breakage(args.work_dir)))
    if args.part in ("listing", "all"):
        print("\n" + _table(listing(args.work_dir)))
    if args.part in ("pipeline", "all"):
        if args.before is None:
            parser.error("`pipeline` needs --before (the old training/pipeline.py)")
        print("\n" + _table(pipeline(args.work_dir, args.before)))


if __name__ == "__main__":
    main()
