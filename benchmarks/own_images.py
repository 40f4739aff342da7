"""Your own images (issue 22): the image-folder path measured, on the CPU it runs on.

Four parts, each a sub-command; ``all`` runs them in this order. Every one
prints markdown tables, and writes files only under ``--work-dir`` (the
generated image folders are kept there and reused by later runs):

- ``accuracy``: the shared CIFAR-10 subset written out as PNG class folders
  (``train/<class>/`` from data_batch_*, ``test/<class>/`` from test_batch)
  and trained both ways for each seed, one run after the other: the pickle
  path, ``python examples/cifar10.py --data-dir SUBSET --seed N``, and the
  folder path, ``mobilenet train --data-dir PNGS --image-size 32 --epochs 26
  --validation-fraction 0 --seed N`` (the example's recipe: the rest are
  `RECIPE`'s defaults in both). Test accuracy per seed, and the steady epoch:
  the median over epochs 3..26 of Keras's per-epoch line (ms/step x steps)
  and of the wall time between two such lines (callbacks included). The
  bytes each process read per steady epoch (``rchar`` of /proc/PID/io,
  sampled at each epoch line) show whether the folder path kept its images
  in memory after the first epoch, as ``--cache auto`` should at 32 px.
- ``memory``: peak RSS (``wait4``'s ``ru_maxrss`` of the child) of
  ``mobilenet train --image-size 96 --epochs 1 --alpha 0.25 --batch-size 64
  --validation-fraction 0`` on generated folders of 2,000 and 20,000 96x96
  JPEGs, with ``--cache none`` and with the default ``--cache auto`` (which
  caches the files' bytes in memory up to `RECIPE.auto_cache_bytes`).
- ``pipeline``: images/s of `make_file_dataset` alone (``training=True``:
  read, decode, random resized crop, flip, batch) against images/s of the
  training step (``train_on_batch`` of `mobilenet.training.build_model`,
  compiled as `train` compiles it, on a batch the pipeline made), at 96 px
  (from the 96x96 JPEGs and from photo-sized JPEGs) and at 224 px (photo-sized
  JPEGs, 320x240 to 500x375).
- ``decode``: on the photo-sized JPEGs, where the pipeline's time goes: the
  shipped decode and crop against variants (channels picked by a slice
  instead of ``tf.gather``; a plain bilinear resize), taking turns.
- ``workers``: ``mobilenet train --strategy multi-worker`` as two local
  processes (``TF_CONFIG`` on 127.0.0.1 ports, as ``tests/test_multiworker.py``)
  on the PNG folders; each worker's "reads N of M training files" line, exit
  codes, and the end of the logs.

Run it alone, from the repository root, with the venv whose ``mobilenet``
console script is this checkout's (about 40 minutes for ``all`` on 2 cores):

    python benchmarks/own_images.py all --work-dir /tmp/own-images
    python benchmarks/own_images.py accuracy --work-dir /tmp/own-images --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import (  # noqa: E402  (benchmarks/_common.py: the machine header's helpers)
    cpu_model_and_flags,
    free_ports,
    interleaved_rates,
    load_line,
    onednn_setting,
    onednn_state,
    versions,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CIFAR10 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
MOBILENET = Path(sys.executable).with_name("mobilenet")
PARTS = ("accuracy", "memory", "pipeline", "decode", "workers")
#: Keras's one line per epoch at verbose=2: "39/39 - 5s - 127ms/step - accuracy: ...".
EPOCH_LINE = re.compile(r"^\s*(\d+)/(\d+) - (\d+)s - ([\d.]+)(us|ms|s)/step")
ACCURACY_LINE = re.compile(r"test accuracy: ([\d.]+)%")
WORKER_LINE = re.compile(r"worker \d+ of \d+ reads [\d,]+ of [\d,]+ training files")
STEP_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
#: The epochs the steady epoch time is the median of (1-based, inclusive).
STEADY_FROM = 3


def section(title: str) -> None:
    print(f"\n### {title}\n", flush=True)


def table(header: list[str], rows: list[list]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    print(flush=True)


def machine_header(args: argparse.Namespace) -> None:
    cpu, flags = cpu_model_and_flags()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    print("# Your own images (issue 22): benchmarks/own_images.py\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`")
    print(f"- code: commit {commit or 'unknown'}{' with uncommitted changes' if dirty else ''}")
    print(f"- CPU: {cpu}, {os.cpu_count()} cores; ISA flags: {', '.join(flags) or 'none listed'}")
    print(f"- TensorFlow's oneDNN custom ops: {onednn_state(dict(os.environ))} "
          f"({onednn_setting(os.environ)})")
    print(f"- {versions()}")
    print(f"- at the start: {load_line()}", flush=True)


# --------------------------------------------------------------------------- child processes


@dataclass
class Epoch:
    """One of Keras's per-epoch lines, with when it came and what the process had read by then."""

    steps: int
    keras_seconds: float  # ms/step x steps, from the line (its whole seconds at >= 1 s/step)
    arrived: float  # time.monotonic() when the line was read
    read_bytes: int | None  # rchar of /proc/PID/io then


@dataclass
class ChildRun:
    command: list[str]
    returncode: int
    wall: float
    peak_rss_mib: float
    lines: list[str] = field(default_factory=list)
    epochs: list[Epoch] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)

    def steady(self) -> tuple[float, float, float | None]:
        """Medians over epochs `STEADY_FROM`.. : Keras's epoch time, wall between lines, MB read."""
        keras_times = [e.keras_seconds for e in self.epochs[STEADY_FROM - 1:]]
        walls = [b.arrived - a.arrived for a, b in zip(self.epochs, self.epochs[1:])][STEADY_FROM - 2:]
        reads = [
            (b.read_bytes - a.read_bytes) / 1e6 for a, b in zip(self.epochs, self.epochs[1:])
            if a.read_bytes is not None and b.read_bytes is not None
        ][STEADY_FROM - 2:]
        return (statistics.median(keras_times) if keras_times else float("nan"),
                statistics.median(walls) if walls else float("nan"),
                statistics.median(reads) if reads else None)


def _read_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/io") as io:
            for line in io:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_child(command: list[str], log: Path, env: dict[str, str] | None = None,
              echo: bool = True) -> ChildRun:
    """Runs ``command``, timestamping its output lines; its peak RSS comes from ``os.wait4``."""
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1, env=env, cwd=REPO)
    lines, epochs = [], []
    with open(log, "w") as sink:
        for line in process.stdout:
            now = time.monotonic()
            sink.write(line)
            line = line.rstrip("\n")
            lines.append(line)
            match = EPOCH_LINE.match(line)
            if match:
                steps = int(match.group(1))
                # Keras rounds to whole units: "301ms/step" is finer than "12s", "1s/step" is not.
                seconds = (float(match.group(3)) if match.group(5) == "s"
                           else steps * float(match.group(4)) * STEP_UNITS[match.group(5)])
                epochs.append(Epoch(steps, seconds, now, _read_bytes(process.pid)))
            if echo:
                print(f"  {line}", file=sys.stderr, flush=True)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    return ChildRun(command, process.returncode, wall, usage.ru_maxrss / 1024, lines, epochs)


# --------------------------------------------------------------------------- image folders


def write_cifar10_pngs(data_dir: Path, out: Path) -> Path:
    """The CIFAR-10 subset as ``out/train/<class>/*.png`` and ``out/test/<class>/*.png`` (once)."""
    from PIL import Image

    from mobilenet.datasets import load_cifar10
    from mobilenet.datasets.cifar10 import CLASS_NAMES

    done = out / ".complete"
    if done.is_file():
        return out
    (x_train, y_train), (x_test, y_test) = load_cifar10(str(data_dir))
    partial = out.with_name(out.name + ".partial")
    for split, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        for name in CLASS_NAMES:
            (partial / split / name).mkdir(parents=True, exist_ok=True)
        for index, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(image).save(partial / split / CLASS_NAMES[label] / f"{index:05d}.png")
    (partial / ".complete").write_text(f"{len(x_train)} train, {len(x_test)} test\n")
    partial.rename(out)
    return out


def _photo_like(rng, rows: int, cols: int):
    """A smooth random image (a few blurred blobs and a gradient, light noise), as uint8."""
    import numpy as np
    from PIL import Image

    coarse = rng.integers(0, 256, (rng.integers(3, 9), rng.integers(3, 9), 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((cols, rows), Image.BICUBIC), np.float32)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def generate_jpegs(out: Path, count: int, sizes: tuple[tuple[int, int], tuple[int, int]],
                   classes: int = 10, seed: int = 0) -> Path:
    """``count`` JPEGs in ``classes`` class folders, sides drawn from ``sizes`` ((min rows, cols), (max ...)) (once)."""
    import numpy as np
    from PIL import Image

    done = out / ".complete"
    if done.is_file():
        return out
    rng = np.random.default_rng(seed)
    partial = out.with_name(out.name + ".partial")
    (low_rows, low_cols), (high_rows, high_cols) = sizes
    for index in range(count):
        folder = partial / f"class_{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        rows, cols = int(rng.integers(low_rows, high_rows + 1)), int(rng.integers(low_cols, high_cols + 1))
        Image.fromarray(_photo_like(rng, rows, cols)).save(folder / f"{index:06d}.jpg", quality=90)
    (partial / ".complete").write_text(f"{count} images\n")
    partial.rename(out)
    return out


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(number of image files, their bytes) under ``folder``."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png")]
    return len(files), sum(p.stat().st_size for p in files)


def auto_cache(folder: Path, image_size: int) -> tuple[int, bool]:
    """What ``--cache auto`` holds for ``folder``'s training files at ``image_size``, and whether it caches."""
    from mobilenet.datasets import load_image_folder
    from mobilenet.training.pipeline import cache_bytes
    from mobilenet.training.recipe import RECIPE

    train = load_image_folder(folder, validation_fraction=0).train
    held = cache_bytes(train, image_size)
    return held, held <= RECIPE.auto_cache_bytes


# --------------------------------------------------------------------------- 1. accuracy


def part_accuracy(args: argparse.Namespace) -> None:
    from mobilenet.training.recipe import RECIPE

    work = args.work_dir
    pngs = write_cifar10_pngs(args.data_dir, work / "cifar10-png")
    held, caches = auto_cache(pngs, 32)
    section("1. CIFAR-10 subset: pickle path vs PNG folder path (26 epochs, seeds one after the other)")
    print(f"- PNG folders: {pngs} ({folder_bytes(pngs)[0]} files, {folder_bytes(pngs)[1] / 1e6:.1f} MB); "
          f"`--cache auto` at 32 px holds {held / 2**20:.1f} MiB of decoded images "
          f"(limit {RECIPE.auto_cache_bytes / 2**20:.0f} MiB): {'caches' if caches else 'streams'}")
    commands = {
        "pickle (examples/cifar10.py)": lambda seed: [
            sys.executable, "examples/cifar10.py", "--data-dir", str(args.data_dir), "--seed", str(seed),
            "--epochs", str(args.epochs), "--output-dir", str(work / "runs" / f"pickle-{seed}"),
        ],
        "folder (mobilenet train)": lambda seed: [
            str(MOBILENET), "train", "--data-dir", str(pngs), "--image-size", "32",
            "--epochs", str(args.epochs), "--validation-fraction", "0", "--seed", str(seed),
            "--output-dir", str(work / "runs" / f"folder-{seed}"),
        ],
    }
    rows, results = [], {name: [] for name in commands}
    for seed in args.seeds:
        for name, command in commands.items():
            print(f"before {name}, seed {seed}: {load_line()}", file=sys.stderr, flush=True)
            tag = name.split()[0]
            (work / "runs").mkdir(parents=True, exist_ok=True)
            run = run_child(command(seed), work / "runs" / f"{tag}-{seed}.log")
            accuracy = ACCURACY_LINE.findall(run.text())
            if run.returncode != 0 or not accuracy:
                print(f"FAILED: {name}, seed {seed}, exit {run.returncode}:\n" + "\n".join(run.lines[-20:]))
                continue
            keras_epoch, wall_epoch, read_mb = run.steady()
            first = run.epochs[0].keras_seconds if run.epochs else float("nan")
            results[name].append((float(accuracy[-1]), keras_epoch, wall_epoch))
            rows.append([name, seed, f"{float(accuracy[-1]):.2f}%", len(run.epochs), f"{first:.1f}",
                         f"{keras_epoch:.2f}", f"{wall_epoch:.2f}",
                         "?" if read_mb is None else f"{read_mb:.2f}", f"{run.wall:.0f}",
                         f"{run.peak_rss_mib:.0f}"])
    table(["path", "seed", "test accuracy", "epochs", "first epoch (s, Keras)",
           f"steady epoch (s, Keras, median {STEADY_FROM}..)", "steady epoch (s, between lines)",
           "MB read per steady epoch", "wall, whole command (s)", "peak RSS (MiB)"], rows)
    summary = []
    for name, values in results.items():
        if values:
            accuracies = [v[0] for v in values]
            summary.append([name, f"{statistics.mean(accuracies):.2f}%",
                            f"{min(accuracies):.2f}-{max(accuracies):.2f}% "
                            f"(spread {max(accuracies) - min(accuracies):.1f} points)",
                            f"{statistics.median(v[1] for v in values):.2f}",
                            f"{statistics.median(v[2] for v in values):.2f}"])
    table(["path", "mean test accuracy", "range", "steady epoch (s, Keras), median of seeds",
           "steady epoch (s, between lines), median of seeds"], summary)
    interleaved_epochs(args, pngs)
    pickle, folder = results.values()
    if pickle and folder:
        ratio_keras = statistics.median(v[1] for v in folder) / statistics.median(v[1] for v in pickle)
        ratio_wall = statistics.median(v[2] for v in folder) / statistics.median(v[2] for v in pickle)
        print(f"folder / pickle steady epoch: {ratio_keras:.2f}x (Keras's time), {ratio_wall:.2f}x "
              "(between lines); goal <= 1.15x")
        print(f"at the end: {load_line()}")


def interleaved_epochs(args: argparse.Namespace, pngs: Path) -> None:
    """The two training pipelines in one process, epochs taking turns: pipeline alone, then fit.

    Other load on the machine drifts over the minutes of the full runs above;
    here the array pipeline (`make_dataset`) and the folder pipeline
    (`make_file_dataset`, cached in memory as ``--cache auto`` does at 32 px)
    alternate epoch by epoch, alone and under ``model.fit`` of the recipe's
    model, so that the same load hits both.
    """
    import keras

    from mobilenet.datasets import load_cifar10, load_image_folder
    from mobilenet.training import build_model
    from mobilenet.training.pipeline import make_dataset, make_file_dataset
    from mobilenet.training.recipe import RECIPE
    from mobilenet.training import compile_model  # the optimizer and loss `train` uses

    (x_train, y_train), _ = load_cifar10(str(args.data_dir))
    folder = load_image_folder(pngs, validation_fraction=0).train
    batch = RECIPE.batch_size
    steps = len(x_train) // batch
    datasets = {
        "array (make_dataset)": make_dataset(x_train, y_train, batch_size=batch, training=True,
                                             padding=RECIPE.padding, drop_remainder=True),
        "folder (make_file_dataset, cache memory)": make_file_dataset(
            folder, image_size=32, batch_size=batch, training=True, drop_remainder=True,
            cache="memory"),
    }
    alone = {name: [] for name in datasets}
    for round_ in range(1 + args.diagnostic_rounds):  # the first round fills the cache, untimed
        for name, dataset in datasets.items():
            begin = time.perf_counter()
            for _ in dataset:
                pass
            if round_:
                alone[name].append(time.perf_counter() - begin)
    fitted = {name: [] for name in datasets}
    models = {}
    for name in datasets:
        keras.utils.set_random_seed(0)
        models[name] = build_model(RECIPE.alpha, num_classes=10, image_size=32)
        compile_model(models[name], learning_rate=RECIPE.learning_rate, epochs=26, steps_per_epoch=steps,
                 warmup_epochs=RECIPE.warmup_epochs, weight_decay=RECIPE.weight_decay,
                 label_smoothing=RECIPE.label_smoothing)
    for round_ in range(1 + args.diagnostic_rounds):  # the first round traces, untimed
        for name, dataset in datasets.items():
            begin = time.perf_counter()
            models[name].fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            if round_:
                fitted[name].append(time.perf_counter() - begin)
    rows = [[name, f"{statistics.median(alone[name]):.2f}", f"{statistics.median(fitted[name]):.2f}",
             f"{min(fitted[name]):.2f}-{max(fitted[name]):.2f}"] for name in datasets]
    print(f"In one process, {args.diagnostic_rounds} epochs of each ({steps} steps of {batch}), "
          "taking turns with the other (`interleaved_epochs`):\n")
    table(["training pipeline", "epoch, pipeline alone (s, median)", "epoch under model.fit (s, median)",
           "model.fit epochs, range (s)"], rows)
    (array, folder_), (fit_array, fit_folder) = ([statistics.median(v) for v in d.values()]
                                                 for d in (alone, fitted))
    print(f"folder / array: {folder_ / array:.2f}x alone, {fit_folder / fit_array:.2f}x under model.fit")


# --------------------------------------------------------------------------- 2. memory


def part_memory(args: argparse.Namespace) -> None:
    from mobilenet.training.recipe import RECIPE

    work = args.work_dir
    folders = {
        count: generate_jpegs(work / f"jpeg96-{count}", count, ((96, 96), (96, 96)), seed=count)
        for count in (args.small_count, args.large_count)
    }
    section("2. Streaming memory: peak RSS of `mobilenet train` at 96 px, 1 epoch, alpha 0.25, batch 64")
    rows = []
    for count, folder in folders.items():
        files, size = folder_bytes(folder)
        held, caches = auto_cache(folder, 96)
        # The default (auto) always; --cache none as well where auto caches (else they are the same).
        for cache in ("auto", "none") if caches else ("auto",):
            print(f"before {count} images, --cache {cache}: {load_line()}", file=sys.stderr, flush=True)
            out = work / "runs" / f"memory-{count}-{cache}"
            out.parent.mkdir(parents=True, exist_ok=True)
            run = run_child([
                str(MOBILENET), "train", "--data-dir", str(folder), "--image-size", "96",
                "--epochs", "1", "--alpha", "0.25", "--batch-size", "64", "--validation-fraction", "0",
                "--cache", cache, "--output-dir", str(out),
            ], out.with_suffix(".log"))
            rate = (run.epochs[0].steps * 64 / run.epochs[0].keras_seconds) if run.epochs else float("nan")
            cached = "n/a (off)" if cache == "none" else ("yes" if caches else "no") + \
                f" ({held / 2**20:.1f} MiB of files vs {RECIPE.auto_cache_bytes / 2**20:.0f} MiB)"
            rows.append([f"{files:,}", f"{size / 2**20:.1f}", cache, cached, run.returncode,
                         f"{run.peak_rss_mib:.0f}", f"{rate:.0f}", f"{run.wall:.0f}"])
            if run.returncode != 0:
                print("\n".join(run.lines[-20:]))
    table(["images", "file MiB", "--cache", "cached in memory", "exit", "peak RSS (MiB)",
           "training images/s (Keras's epoch)", "wall (s)"], rows)
    by = {(row[0], row[2]): float(row[5]) for row in rows}
    small, large = f"{args.small_count:,}", f"{args.large_count:,}"
    for cache in ("auto", "none"):
        large_cache = cache if (large, cache) in by else "auto"
        if (small, cache) in by and (large, large_cache) in by:
            by[(large, cache)] = by[(large, large_cache)]
            print(f"{large} images (--cache {large_cache}) / {small} images (--cache {cache}): peak RSS "
                  f"{by[(large, cache)] / by[(small, cache)]:.2f}x (goal <= 1.2x)")
    print(f"\nat the end: {load_line()}")


# --------------------------------------------------------------------------- 3. pipeline


def pipeline_rate(folder, image_size: int, batch_size: int, batches: int) -> float:
    """Images/s of `make_file_dataset(training=True)` over ``batches`` batches after 3 warm-up ones."""
    from mobilenet.training.pipeline import make_file_dataset

    dataset = make_file_dataset(folder, image_size=image_size, batch_size=batch_size, training=True,
                                drop_remainder=True).repeat()
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    begin = time.perf_counter()
    for _ in range(batches):
        images, _ = next(iterator)
    images.numpy()
    return batches * batch_size / (time.perf_counter() - begin)


def training_step_rate(folder, image_size: int, alpha: float, batch_size: int, repeats: int) -> float:
    """Images/s of ``train_on_batch`` on one batch the pipeline made, the model compiled as `train` does."""
    from mobilenet.training import build_model
    from mobilenet.training.pipeline import make_file_dataset
    from mobilenet.training.recipe import RECIPE
    from mobilenet.training import compile_model  # the optimizer and loss `train` uses

    images, labels = next(iter(make_file_dataset(folder, image_size=image_size, batch_size=batch_size,
                                                 training=True, drop_remainder=True)))
    model = build_model(alpha, num_classes=len(folder.class_names), image_size=image_size)
    compile_model(model, learning_rate=RECIPE.learning_rate, epochs=10, steps_per_epoch=100,
             warmup_epochs=RECIPE.warmup_epochs, weight_decay=RECIPE.weight_decay,
             label_smoothing=RECIPE.label_smoothing)
    rates = interleaved_rates({"step": (lambda: model.train_on_batch(images, labels), batch_size)},
                                    repeats)
    return rates["step"]


def part_pipeline(args: argparse.Namespace) -> None:
    from mobilenet.datasets import load_image_folder

    work = args.work_dir
    small = generate_jpegs(work / f"jpeg96-{args.large_count}", args.large_count, ((96, 96), (96, 96)),
                           seed=args.large_count)
    photos = generate_jpegs(work / "photos", args.photo_count, ((240, 320), (375, 500)), seed=1)
    section("3. Input pipeline alone vs the training step (images/s, batch 64, all cores each)")
    print(f"- photo-like JPEGs: {folder_bytes(photos)[0]:,} files, 320x240 to 500x375, "
          f"{folder_bytes(photos)[1] / folder_bytes(photos)[0] / 1e3:.0f} kB each on average")
    print(f"- before: {load_line()}", flush=True)
    folders = {"96x96 JPEGs": load_image_folder(small, validation_fraction=0).train,
               "photo-like JPEGs": load_image_folder(photos, validation_fraction=0).train}
    cases = [("96x96 JPEGs", 96, 0.5), ("96x96 JPEGs", 96, 0.25), ("photo-like JPEGs", 96, 0.5),
             ("photo-like JPEGs", 224, 0.5)]
    rows, steps = [], {}
    for source, size, alpha in cases:
        folder = folders[source]
        rate = pipeline_rate(folder, size, 64, args.pipeline_batches)
        print(f"pipeline {source} at {size}: {rate:.0f} images/s", file=sys.stderr, flush=True)
        if (size, alpha) not in steps:
            steps[(size, alpha)] = training_step_rate(folder, size, alpha, 64, args.repeats)
            print(f"training step {size} px alpha {alpha}: {steps[(size, alpha)]:.1f} images/s",
                  file=sys.stderr, flush=True)
        step = steps[(size, alpha)]
        rows.append([source, size, alpha, f"{rate:.0f}", f"{step:.1f}", f"{rate / step:.1f}x",
                     "met" if rate >= 3 * step else "missed"])
    table(["files", "image size", "alpha (training step)", "pipeline images/s (decode + crop + flip)",
           "training step images/s (train_on_batch)", "pipeline / step", "goal >= 3x"], rows)
    print(f"at the end: {load_line()}")


def part_decode(args: argparse.Namespace) -> None:
    """Where the training pipeline's time goes on photo-sized JPEGs: its steps, variants in turns.

    The files' bytes are held in memory first, so that only decoding and
    augmentation are timed. "shipped" is `make_file_dataset`'s decode
    (`mobilenet.images.decode_rgb`, whose ``tf.gather`` picks the RGB channels,
    then `apply_orientation`) and crop (`_random_resized_crop`, an antialiased
    resize); the variants pick the channels with a slice instead, and resize
    without antialiasing, to see which step costs what.
    """
    import tensorflow as tf

    from mobilenet.datasets import load_image_folder
    from mobilenet.images import apply_orientation, decode_rgb
    from mobilenet.training.recipe import RECIPE

    work = args.work_dir
    photos = generate_jpegs(work / "photos", args.photo_count, ((240, 320), (375, 500)), seed=1)
    folder = load_image_folder(photos, validation_fraction=0).train
    files = tf.data.Dataset.from_tensor_slices((list(folder.files), folder.orientations)).map(
        lambda path, orientation: (tf.io.read_file(path), orientation)).cache()
    for _ in files:
        pass

    def shipped(data, orientation):  # as make_file_dataset decodes
        image = apply_orientation(decode_rgb(data), orientation)
        image.set_shape([None, None, 3])
        return image

    def sliced(data, orientation):
        image = tf.io.decode_image(data, expand_animations=False)
        image = tf.cond(tf.shape(image)[-1] >= 3, lambda: image[..., :3],
                        lambda: tf.tile(image[..., :1], [1, 1, 3]))
        image.set_shape([None, None, 3])
        return apply_orientation(image, orientation)

    def crop(decode, size, antialias=True):
        def augment(example, seed):
            image = decode(*example)
            begin, box, _ = tf.image.stateless_sample_distorted_bounding_box(
                tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed[:2],
                min_object_covered=0.1, aspect_ratio_range=RECIPE.crop_aspect_ratio,
                area_range=RECIPE.crop_area, max_attempts=10, use_image_if_no_bounding_boxes=True)
            return tf.image.resize(tf.slice(image, begin, box), (size, size), antialias=antialias)
        return augment

    cases = {
        "96: shipped (channels by tf.gather, antialiased resize)": crop(shipped, 96),
        "96: channels by slice, antialiased resize": crop(sliced, 96),
        "96: shipped decode, plain bilinear resize": crop(shipped, 96, False),
        "96: channels by slice, plain bilinear resize": crop(sliced, 96, False),
        "224: shipped": crop(shipped, 224),
        "224: channels by slice, antialiased resize": crop(sliced, 224),
    }
    seeds = tf.data.Dataset.random(seed=0).batch(4)
    pipelines = {name: tf.data.Dataset.zip((files, seeds)).map(augment, num_parallel_calls=tf.data.AUTOTUNE)
                 for name, augment in cases.items()}
    section("3b. Photo-sized JPEGs: decode + random resized crop, step by step (images/s, in turns)")
    print(f"- before: {load_line()}", flush=True)
    times = {name: [] for name in pipelines}
    for round_ in range(1 + args.decode_rounds):  # the first round traces, untimed
        for name, pipeline in pipelines.items():
            begin = time.perf_counter()
            for _ in pipeline.prefetch(64):
                pass
            if round_:
                times[name].append(time.perf_counter() - begin)
    n = len(folder)
    table(["variant (1,000 files, bytes in memory)", "images/s (median)", "range"],
          [[name, f"{n / statistics.median(v):.0f}", f"{n / max(v):.0f}-{n / min(v):.0f}"]
           for name, v in times.items()])
    print(f"at the end: {load_line()}")


# --------------------------------------------------------------------------- 4. workers


def part_workers(args: argparse.Namespace) -> None:
    work = args.work_dir
    pngs = write_cifar10_pngs(args.data_dir, work / "cifar10-png")
    section("4. Two workers (`--strategy multi-worker`, 127.0.0.1) on the PNG folders")
    print(f"- before: {load_line()}", flush=True)
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    out = work / "runs" / ("workers" if args.source is None else "workers-source")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [str(MOBILENET), "train", "--strategy", "multi-worker", "--data-dir", str(pngs),
               "--image-size", "32", "--epochs", str(args.worker_epochs), "--alpha", "0.25",
               "--batch-size", "64", "--validation-fraction", "0", "--output-dir", str(out)]
    processes, logs = [], []
    begin = time.monotonic()
    for index in range(2):
        env = {key: value for key, value in os.environ.items()
               if key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")}
        if args.source is not None:
            env["PYTHONPATH"] = str(args.source)
        env.update(TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                         "task": {"type": "worker", "index": index}}),
                   TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", NO_PROXY="127.0.0.1",
                   PYTHONUNBUFFERED="1")
        logs.append(out.parent / f"{out.name}-{index}.log")
        with open(logs[-1], "w") as log:
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                              cwd=REPO))
    print(f"- command, run twice with TF_CONFIG task index 0 and 1: `{' '.join(command)}`"
          + (f", with PYTHONPATH={args.source}" if args.source is not None else ""))
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(args.worker_timeout))
        except subprocess.TimeoutExpired:
            codes.append("timed out")
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
    wall = time.monotonic() - begin
    rows = []
    for index, (log, code) in enumerate(zip(logs, codes)):
        text = log.read_text(errors="replace")
        shard = WORKER_LINE.findall(text)
        accuracy = ACCURACY_LINE.findall(text)
        rows.append([index, code, "; ".join(shard) or "(none)",
                     f"{accuracy[-1]}%" if accuracy else "-",
                     sum(bool(EPOCH_LINE.match(line)) for line in text.splitlines())])
    table(["worker", "exit", "its shard line", "test accuracy printed", "epoch lines"], rows)
    print(f"both workers together: {wall:.0f} s wall; output folder holds: "
          f"{', '.join(sorted(p.name for p in out.iterdir())) if out.is_dir() else '(nothing)'}")
    for index, log in enumerate(logs):
        print(f"\nworker {index}, last lines of its log:\n```")
        print("\n".join(log.read_text(errors="replace").splitlines()[-12:]))
        print("```")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=(*PARTS, "all"))
    parser.add_argument("--work-dir", type=Path, required=True,
                        help="where the generated image folders, runs and logs go (created)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_CIFAR10,
                        help="the CIFAR-10 subset (python pickles)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="seeds of the accuracy runs (none: only the interleaved comparison)")
    parser.add_argument("--epochs", type=int, default=26, help="epochs of the accuracy runs")
    parser.add_argument("--diagnostic-rounds", type=int, default=6,
                        help="timed epochs of each pipeline in the interleaved comparison")
    parser.add_argument("--small-count", type=int, default=2_000)
    parser.add_argument("--large-count", type=int, default=20_000)
    parser.add_argument("--photo-count", type=int, default=1_000)
    parser.add_argument("--pipeline-batches", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps")
    parser.add_argument("--decode-rounds", type=int, default=4,
                        help="decode: timed passes over the photo-sized files of each variant")
    parser.add_argument("--worker-epochs", type=int, default=1)
    parser.add_argument("--worker-timeout", type=float, default=600)
    parser.add_argument("--source", type=Path,
                        help="workers: put this src/ first on PYTHONPATH (to try a fix of the library)")
    args = parser.parse_args()
    args.work_dir = args.work_dir.resolve()
    args.data_dir = args.data_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if not MOBILENET.is_file():
        parser.error(f"the console script is not installed beside {sys.executable}")
    machine_header(args)
    for part in PARTS if args.part == "all" else (args.part,):
        globals()[f"part_{part}"](args)


if __name__ == "__main__":
    main()
