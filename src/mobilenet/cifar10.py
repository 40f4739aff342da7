"""CIFAR-10 for MobileNet V1: safe loading, a tf.data pipeline, training and evaluation.

```python
from mobilenet import cifar10

(x_train, y_train), (x_test, y_test) = cifar10.load_cifar10("../shared/data/cifar10-subset")
result = cifar10.train(x_train, y_train, output_dir="runs/cifar10", epochs=30)
report = cifar10.evaluate(result.model, x_test, y_test)
print(report.accuracy)
```

Data come from the official python-pickle release (a ``cifar-10-batches-py/``
folder or the ``cifar-10-python.tar.gz`` archive), read with an unpickler that
refuses every global but NumPy's array reconstruction, since a pickle is code.
Training is ``keras.Model.fit`` with the recipe measured in ``docs/cifar10.md``;
it checkpoints the best model, writes its history atomically and resumes an
interrupted run from the last finished epoch.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mobilenet._files import atomic_target

__all__ = [
    "CLASS_NAMES",
    "DATA_DIR_ENV",
    "EvaluationReport",
    "BestCheckpoint",
    "HistoryWriter",
    "TimeBudget",
    "TrainResult",
    "WarmupCosineDecay",
    "build_model",
    "evaluate",
    "load_cifar10",
    "make_dataset",
    "make_strategy",
    "normalize",
    "plot_confusion_matrix",
    "plot_history",
    "save_plots",
    "split_validation",
    "train",
]

#: The ten CIFAR-10 classes, in label order.
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
#: Environment variable naming a folder that holds the dataset.
DATA_DIR_ENV = "MOBILENET_CIFAR10_DIR"
_FOLDER = "cifar-10-batches-py"
_ARCHIVE = "cifar-10-python.tar.gz"
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILE = "test_batch"
_IMAGE_SIZE = 32
_PIXELS = 3 * _IMAGE_SIZE * _IMAGE_SIZE

#: Per-channel mean and standard deviation of the 50,000 CIFAR-10 training images (pixels / 255).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

# What NumPy needs to rebuild an array from a pickle, under NumPy 1 and 2 module names.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
}

# Output files of a training run.
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
BEST_MODEL = "best.keras"
FINAL_MODEL = "final.keras"
BACKUP_DIR = "backup"


# --------------------------------------------------------------------------- data


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, numbers, bytes and NumPy arrays; refuses any other global."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"refused to load the global {module}.{name}: a CIFAR-10 batch "
                "holds only NumPy arrays, lists, ints and bytes"
            )
        return allowed


def _parse_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Turns the bytes of one pickled batch into (NHWC uint8 images, int64 labels)."""
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as error:
        if str(error).startswith("refused"):
            raise ValueError(f"Unsafe CIFAR-10 batch file {source}: {error}") from error
        raise ValueError(f"Corrupt CIFAR-10 batch file {source}: {error}") from error
    except Exception as error:  # truncated or garbled bytes raise many kinds
        raise ValueError(
            f"Corrupt CIFAR-10 batch file {source}: cannot unpickle it "
            f"({type(error).__name__}: {error})"
        ) from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(
            f"Corrupt CIFAR-10 batch file {source}: expected a dict with keys "
            f"b'data' and b'labels'. Received: {keys}"
        )
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        described = (data.dtype, data.shape) if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(
            f"Corrupt CIFAR-10 batch file {source}: expected b'data' as a uint8 array "
            f"of shape (n, {_PIXELS}). Received: {described}"
        )
    try:
        labels = np.asarray(labels)
    except Exception:  # noqa: BLE001 - anything that is not a flat list of ints
        labels = np.asarray(None)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise ValueError(
            f"Corrupt CIFAR-10 batch file {source}: expected b'labels' as {len(data)} "
            f"integers. Received: {labels.dtype} of shape {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise ValueError(
            f"Corrupt CIFAR-10 batch file {source}: labels must lie in 0..9. "
            f"Received: min {labels.min()}, max {labels.max()}"
        )
    images = data.reshape(-1, 3, _IMAGE_SIZE, _IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _read_folder(folder: Path) -> dict[str, bytes]:
    raws = {}
    for name in (*_TRAIN_FILES, _TEST_FILE):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(
                f"CIFAR-10 batch file {path} is missing: a complete {_FOLDER}/ holds "
                f"{', '.join(_TRAIN_FILES)} and {_TEST_FILE}"
            )
        raws[str(path)] = path.read_bytes()
    return raws


def _read_archive(archive: Path) -> dict[str, bytes]:
    raws = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in (*_TRAIN_FILES, _TEST_FILE):
                member = f"{_FOLDER}/{name}"
                try:
                    handle = tar.extractfile(member)
                except KeyError:
                    handle = None
                if handle is None:
                    raise FileNotFoundError(
                        f"CIFAR-10 batch file {member} is missing from {archive}"
                    )
                raws[f"{archive}:{member}"] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"Corrupt CIFAR-10 archive {archive}: {error}") from error
    return raws


def _find_local(data_dir: Path, argument: str) -> dict[str, bytes]:
    """Reads the batch files under ``data_dir`` (folder, archive, or either inside it)."""
    candidates = [data_dir / _FOLDER, data_dir / _ARCHIVE]
    if (data_dir / _TRAIN_FILES[0]).exists() or data_dir.name == _FOLDER:
        candidates.insert(0, data_dir)
    for candidate in candidates:
        if candidate.is_dir():
            return _read_folder(candidate)
        if candidate.is_file():
            return _read_archive(candidate)
    if data_dir.is_file() and data_dir.name.endswith((".tar.gz", ".tgz")):
        return _read_archive(data_dir)
    raise FileNotFoundError(
        f"Invalid value for argument `{argument}`: expected a folder holding "
        f"{_FOLDER}/ or {_ARCHIVE} (the official python release of CIFAR-10). "
        f"Received: {argument}={str(data_dir)!r}, where neither exists"
    )


def _assemble(raws: dict[str, bytes]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    parsed = [_parse_batch(raw, source) for source, raw in raws.items()]
    train_parts, test = parsed[:-1], parsed[-1]
    x_train = np.concatenate([images for images, _ in train_parts])
    y_train = np.concatenate([labels for _, labels in train_parts])
    return (x_train, y_train), test


def load_cifar10(
    data_dir: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads CIFAR-10 as NumPy arrays from a local copy or Keras's download.

    Sources, first match wins: ``data_dir`` (a folder holding the official
    ``cifar-10-batches-py/`` folder or ``cifar-10-python.tar.gz`` archive, or
    that folder or archive itself); the folder named by the
    ``MOBILENET_CIFAR10_DIR`` environment variable; Keras's cache, downloading
    the dataset there on first use (``keras.datasets.cifar10``). The archive is
    read in memory, never extracted. Every batch is read with an unpickler that
    refuses any global but NumPy's array reconstruction, then checked.

    Args:
        data_dir: optional folder (or archive) holding the dataset.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images of shape
        ``(n, 32, 32, 3)`` and int64 labels of shape ``(n,)`` in 0..9.

    Raises:
        FileNotFoundError: ``data_dir`` or the variable holds no dataset, or a
            batch file is missing (the message names it).
        ValueError: a batch file is corrupt or asks for a forbidden global.
        RuntimeError: no local copy and the download failed (offline).

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = load_cifar10("../shared/data/cifar10-subset")
    x_train.shape  # (2500, 32, 32, 3)
    ```
    """
    if data_dir is not None:
        return _assemble(_find_local(Path(data_dir).expanduser(), "data_dir"))
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return _assemble(_find_local(Path(from_env).expanduser(), DATA_DIR_ENV))

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # get_file raises a bare Exception when offline
        raise RuntimeError(
            f"Could not download CIFAR-10 through keras.datasets.cifar10 ({error}). "
            f"Point at a local copy instead: pass data_dir= (or --data-dir) or set "
            f"{DATA_DIR_ENV} to a folder holding {_FOLDER}/ or {_ARCHIVE}"
        ) from error
    return (
        (np.asarray(x_train, np.uint8), np.asarray(y_train).reshape(-1).astype(np.int64)),
        (np.asarray(x_test, np.uint8), np.asarray(y_test).reshape(-1).astype(np.int64)),
    )


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
    (x_fit, y_fit), (x_val, y_val) = split_validation(x_train, y_train, 0.1)
    ```
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            "Invalid value for argument `fraction`: expected a number in (0, 1). "
            f"Received: fraction={fraction!r}"
        )
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(fraction * len(members)))
        held[rng.choice(members, size=count, replace=False)] = True
    return (images[~held], labels[~held]), (images[held], labels[held])


def normalize(images: Any) -> Any:
    """Scales uint8 pixels to floats with CIFAR-10's per-channel mean 0 and std 1 (a tf op)."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32) / 255.0
    return (images - tf.constant(CIFAR10_MEAN)) / tf.constant(CIFAR10_STD)


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 128,
    training: bool = False,
    seed: int = 0,
    padding: int | None = 4,
) -> Any:
    """A ``tf.data.Dataset`` of normalised images and one-hot labels.

    With ``training``, each epoch is shuffled (seeded) and every image is
    augmented: padded by ``padding`` pixels (reflected), randomly cropped back
    to 32x32 and flipped left-right with probability 1/2.

    Args:
        images: uint8 images ``(n, 32, 32, 3)``.
        labels: int labels ``(n,)`` in 0..9.
        batch_size: int >= 1.
        training: bool, shuffle and augment.
        seed: seed of the shuffle and the augmentation.
        padding: int >= 0, pixels of padding before the random crop (0: no
            crop); None turns augmentation off (training then only shuffles).

    Returns:
        A batched, prefetched dataset of ``(float32 images, float32 one-hot labels)``.

    Example:

    ```python
    train_ds = make_dataset(x_train, y_train, batch_size=128, training=True)
    ```
    """
    import tensorflow as tf

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            "Invalid value for argument `batch_size`: expected an integer >= 1. "
            f"Received: batch_size={batch_size!r}"
        )
    num_classes = len(CLASS_NAMES)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, np.int32)))
    if training:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4)

        def augment(example: Any, seed_pair: Any) -> Any:
            image, label = example
            crop_seed, flip_seed = seed_pair[:2], seed_pair[2:]
            if padding:
                pads = [[padding, padding], [padding, padding], [0, 0]]
                image = tf.pad(image, pads, mode="REFLECT")
                image = tf.image.stateless_random_crop(
                    image, (_IMAGE_SIZE, _IMAGE_SIZE, 3), seed=crop_seed
                )
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
            return image, label

        if padding is not None:
            dataset = tf.data.Dataset.zip((dataset, seeds)).map(
                augment, num_parallel_calls=tf.data.AUTOTUNE
            )
    dataset = dataset.batch(batch_size).map(
        lambda x, y: (normalize(x), tf.one_hot(y, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """What `train` returns: the trained model, its history and where files went."""

    model: Any
    history: list[dict[str, float]]
    output_dir: Path
    best_model_path: Path | None
    stopped_early: bool = False


def build_model(
    alpha: float = 0.5,
    early_downsampling: int = 2,
    dropout: float = 0.2,
    num_classes: int = 10,
    bn_momentum: float = 0.9,
) -> Any:
    """The MobileNet V1 that `train` uses for 32x32 images.

    Args:
        alpha: width multiplier.
        early_downsampling: 4, 2 or 1, see `mobilenet.MobileNetV1`; 2 keeps a
            2x2 final feature map at 32x32, 1 a 4x4 one.
        dropout: dropout before the classifier.
        num_classes: classifier outputs.
        bn_momentum: momentum of every BatchNorm's moving statistics. Keras's
            0.99 averages over ~100 steps, several epochs of a small set, so
            inference-mode accuracy lags far behind; 0.9 follows within an epoch.

    Returns:
        A ``keras.Model`` taking ``(32, 32, 3)`` normalised images.

    Example:

    ```python
    model = build_model(alpha=0.5)
    ```
    """
    from mobilenet.model import MobileNetV1

    model = MobileNetV1(
        alpha, num_classes=num_classes, input_shape=(_IMAGE_SIZE, _IMAGE_SIZE, 3),
        dropout=dropout, early_downsampling=early_downsampling,
        name=f"mobilenet_v1_{alpha:g}_cifar10",
    )
    for layer in model.layers:
        for norm in (layer, getattr(layer, "depthwise_bn", None), getattr(layer, "pointwise_bn", None)):
            if isinstance(norm, keras.layers.BatchNormalization):
                norm.momentum = bn_momentum
    return model


def _atomic_write(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temp file in the same folder."""
    with atomic_target(path, suffix=".tmp") as temporary:
        with open(temporary, "w", newline="") as stream:
            stream.write(text)


def _atomic_save_model(model: Any, path: Path) -> None:
    with atomic_target(path, suffix=".keras") as temporary:
        model.save(temporary)


def _history_rows(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    return json.loads(path.read_text())


@keras.saving.register_keras_serializable(package="mobilenet")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak``, then cosine decay to 0 at ``total_steps``.

    ``total_steps`` lives in a variable, so `TimeBudget` can shorten a run
    that would not fit its budget and the decay still ends at 0.

    Args:
        peak: the learning rate at the end of the warm-up.
        warmup_steps: steps of linear warm-up.
        total_steps: steps at which the rate reaches 0.

    Example:

    ```python
    optimizer = keras.optimizers.SGD(WarmupCosineDecay(0.1, 100, 3000), momentum=0.9)
    ```
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int) -> None:
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = keras.Variable(
            float(total_steps), dtype="float32", trainable=False, name="total_steps"
        )

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        total = keras.ops.convert_to_tensor(self.total_steps)
        warmup = float(max(self.warmup_steps, 1))
        progress = keras.ops.clip(
            (step - self.warmup_steps) / keras.ops.maximum(total - self.warmup_steps, 1.0), 0.0, 1.0
        )
        cosine = 0.5 * self.peak * (1.0 + keras.ops.cos(math.pi * progress))
        return keras.ops.where(step < self.warmup_steps, self.peak * step / warmup, cosine)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": int(keras.ops.convert_to_numpy(self.total_steps)),
        }


class HistoryWriter(keras.callbacks.Callback):
    """Keeps one row per finished epoch in history.json and history.csv, written atomically.

    Args:
        output_dir: the folder of the two files; rows already there are kept
            (a resumed run), and an epoch run again replaces its row.
    """

    def __init__(self, output_dir: str | os.PathLike) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.rows: list[dict[str, float]] = _history_rows(self.output_dir / HISTORY_JSON)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        optimizer = self.model.optimizer
        row["learning_rate"] = float(keras.ops.convert_to_numpy(
            optimizer._get_current_learning_rate()
            if hasattr(optimizer, "_get_current_learning_rate") else optimizer.learning_rate
        ))
        self.rows = self.rows[:epoch] + [row]
        _atomic_write(self.output_dir / HISTORY_JSON, json.dumps(self.rows, indent=1))
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        _atomic_write(self.output_dir / HISTORY_CSV, buffer.getvalue())


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model atomically to ``path`` whenever ``monitor`` reaches a new maximum.

    Args:
        path: the ``.keras`` file.
        monitor: the log to maximise, e.g. ``"val_accuracy"``.
        best: the best value so far (from a resumed run's history).
    """

    def __init__(self, path: str | os.PathLike, monitor: str, best: float = -math.inf) -> None:
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.best = best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and float(value) > self.best:
            self.best = float(value)
            _atomic_save_model(self.model, self.path)


class TimeBudget(keras.callbacks.Callback):
    """Ends training in time: fewer epochs when the planned ones would not fit.

    After every epoch it estimates how many epochs fit in what is left of
    ``seconds`` (from the median epoch time, the first epoch left out once
    there are others, as it also builds the graph) and plans the run for
    ``min(epochs, what fits)``, moving the end of a `WarmupCosineDecay`
    schedule with it, so the learning rate still decays to 0 at the end.

    Args:
        seconds: the wall-clock budget of this ``fit`` call.
        epochs: the planned total epochs.
        steps_per_epoch: steps in one epoch (to move the schedule's end).
        schedule: optional `WarmupCosineDecay` to shorten.
    """

    def __init__(
        self, seconds: float, epochs: int, steps_per_epoch: int = 1,
        schedule: WarmupCosineDecay | None = None,
    ) -> None:
        super().__init__()
        self.seconds = float(seconds)
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.schedule = schedule
        self.planned_epochs = int(epochs)
        self.durations: list[float] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        self.durations.append(now - self.epoch_start)
        # The first epoch also builds the graph: leave it out once others are timed.
        typical = float(np.median(self.durations[1:] or self.durations))
        left = self.start + self.seconds - now
        fits = epoch + 1 + int(left // typical)
        epochs = max(epoch + 1, min(self.planned_epochs, fits))
        if epochs != self.epochs and self.schedule is not None:
            self.schedule.total_steps.assign(float(epochs * self.steps_per_epoch))
        self.epochs = epochs
        if epoch + 1 >= self.epochs:
            self.model.stop_training = True

    @property
    def stopped(self) -> bool:
        """Whether the budget cut the run short of its planned epochs."""
        return self.epochs < self.planned_epochs


def _mixed_precision_policy(mixed_precision: bool | str) -> str | None:
    if mixed_precision in (False, None, "", "none"):
        return None
    if mixed_precision in (True, "auto"):
        import tensorflow as tf

        return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    if mixed_precision in ("mixed_float16", "mixed_bfloat16"):
        return mixed_precision
    raise ValueError(
        "Invalid value for argument `mixed_precision`: expected False, True/'auto' "
        "(mixed_float16 on GPU, mixed_bfloat16 on CPU/TPU), 'mixed_float16' or "
        f"'mixed_bfloat16'. Received: mixed_precision={mixed_precision!r}"
    )


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    output_dir: str | os.PathLike,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    validation_fraction: float = 0.1,
    model: Any = None,
    alpha: float = 0.5,
    early_downsampling: int = 2,
    dropout: float = 0.2,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 0.2,
    warmup_epochs: int = 2,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.1,
    augment: bool = True,
    strategy: Any = None,
    mixed_precision: bool | str = False,
    resume: bool = False,
    time_budget: float | None = None,
    extra_callbacks: list | None = None,
    seed: int = 0,
    verbose: int | str = "auto",
) -> TrainResult:
    """Trains a MobileNet V1 on CIFAR-10 images with ``model.fit``.

    The recipe (measured in ``docs/cifar10.md``): MobileNetV1 alpha 0.5 with
    ``early_downsampling=2`` and BatchNorm momentum 0.9, SGD with Nesterov
    momentum 0.9, a linear warm-up to 0.2 then cosine decay to 0, decoupled
    weight decay on the kernels, label smoothing 0.1, random crops with
    reflect padding and horizontal flips.

    Files in ``output_dir``: ``history.json`` and ``history.csv`` (one row per
    finished epoch, rewritten atomically), ``best.keras`` (the model with the
    best validation accuracy, or training accuracy without validation),
    ``final.keras`` and, while a run is unfinished, ``backup/`` (Keras's
    ``BackupAndRestore``). Killed at any point and called again with the same
    ``output_dir`` and ``resume=True``, training continues from the last
    finished epoch and ends with the same number of epochs.

    Args:
        x_train: uint8 images ``(n, 32, 32, 3)``.
        y_train: int labels ``(n,)``.
        output_dir: folder for checkpoints and history (created).
        validation_data: optional ``(images, labels)`` to validate on. When
            None and ``validation_fraction`` > 0, a stratified split of the
            training data is held out.
        validation_fraction: share held out when ``validation_data`` is None;
            0 trains on everything with no validation.
        model: optional Keras model taking normalised 32x32 images with a
            softmax output; by default `build_model(alpha, early_downsampling,
            dropout)`. With a ``strategy``, build it inside ``strategy.scope()``.
        alpha: width multiplier of the default model.
        early_downsampling: see `mobilenet.MobileNetV1`; the default 2 keeps
            a 2x2 final map at 32x32, the measured trade-off on a CPU.
        dropout: dropout before the default model's classifier.
        epochs: int >= 1, total epochs (a resumed run counts finished ones).
        batch_size: int >= 1, global batch size.
        learning_rate: peak learning rate (scaled by nothing: give the value
            for your global batch size).
        warmup_epochs: epochs of linear warm-up from 0.
        weight_decay: decoupled weight decay on kernels (not BN or biases).
        label_smoothing: float in [0, 1).
        augment: random crop and flip of training images.
        strategy: optional ``tf.distribute.Strategy`` (MirroredStrategy,
            MultiWorkerMirroredStrategy, TPUStrategy).
        mixed_precision: False, True/'auto' (mixed_float16 on GPU,
            mixed_bfloat16 otherwise), 'mixed_float16' or 'mixed_bfloat16'.
        resume: continue an interrupted run found in ``output_dir``. Without
            it, a leftover backup there is an error, so nothing is overwritten
            by accident.
        time_budget: optional seconds for this call: the run is cut to the
            epochs that fit (measured as it goes), with the learning-rate
            decay ending at the new last epoch.
        extra_callbacks: more Keras callbacks for ``fit`` (run before the
            backup).
        seed: seed of the weights, split, shuffle and augmentation.
        verbose: Keras ``fit`` verbosity ("auto": a progress bar).

    Returns:
        A `TrainResult` with the trained model (the last epoch's weights) and
        the history rows.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = load_cifar10()
    result = train(x_train, y_train, output_dir="runs/cifar10", epochs=30)
    ```
    """
    for argument, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"Invalid value for argument `{argument}`: expected an integer >= 1. "
                f"Received: {argument}={value!r}"
            )
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(
            "Invalid value for argument `label_smoothing`: expected a number in "
            f"[0, 1). Received: label_smoothing={label_smoothing!r}"
        )
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(
            "Invalid value for argument `validation_fraction`: expected a number in "
            f"[0, 1). Received: validation_fraction={validation_fraction!r}"
        )
    policy = _mixed_precision_policy(mixed_precision)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if (output_dir / BACKUP_DIR).exists() and not resume:
        raise FileExistsError(
            f"Invalid value for argument `output_dir`: {output_dir} holds an "
            f"interrupted run ({BACKUP_DIR}/). Pass resume=True (--resume) to "
            "continue it, or choose another output_dir."
        )
    if not resume:
        for name in (HISTORY_JSON, HISTORY_CSV, BEST_MODEL):
            if (output_dir / name).exists():
                (output_dir / name).unlink()

    if validation_data is None and validation_fraction > 0:
        (x_train, y_train), validation_data = split_validation(
            x_train, y_train, validation_fraction, seed
        )
    keras.utils.set_random_seed(seed)
    train_ds = make_dataset(
        x_train, y_train, batch_size=batch_size, training=True, seed=seed,
        padding=4 if augment else None,
    )
    val_ds = None
    if validation_data is not None:
        val_ds = make_dataset(*validation_data, batch_size=max(batch_size, 256))

    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    previous_policy = keras.mixed_precision.global_policy()
    scope = strategy.scope() if strategy is not None else _null_scope()
    try:
        if policy:
            keras.mixed_precision.set_global_policy(policy)
        with scope:
            if model is None:
                model = build_model(alpha, early_downsampling, dropout)
            schedule = WarmupCosineDecay(
                learning_rate, warmup_epochs * steps_per_epoch, epochs * steps_per_epoch
            )
            optimizer = keras.optimizers.SGD(
                schedule, momentum=0.9, nesterov=True, weight_decay=weight_decay or None,
            )
            optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
            model.compile(
                optimizer=optimizer,
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                metrics=["accuracy"],
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    monitor = "val_accuracy" if val_ds is not None else "accuracy"
    history = HistoryWriter(output_dir)
    seen = [row[monitor] for row in history.rows if monitor in row]
    best = BestCheckpoint(
        output_dir / BEST_MODEL, monitor,
        max(seen) if seen and (output_dir / BEST_MODEL).is_file() else -math.inf,
    )
    # The backup comes last: an epoch it has recorded is already in the history.
    callbacks = [history, best]
    budget = None
    if time_budget:
        budget = TimeBudget(time_budget, epochs, steps_per_epoch, schedule)
        callbacks.append(budget)
    callbacks.extend(extra_callbacks or [])
    callbacks.append(
        keras.callbacks.BackupAndRestore(str(output_dir / BACKUP_DIR), double_checkpoint=True)
    )
    model.fit(
        train_ds, epochs=epochs, validation_data=val_ds, callbacks=callbacks,
        verbose=verbose, shuffle=False,
    )
    _atomic_save_model(model, output_dir / FINAL_MODEL)
    best = output_dir / BEST_MODEL
    return TrainResult(
        model=model,
        history=_history_rows(output_dir / HISTORY_JSON),
        output_dir=output_dir,
        best_model_path=best if best.is_file() else None,
        stopped_early=bool(budget and budget.stopped),
    )


def make_strategy(name: str | None) -> Any:
    """A ``tf.distribute`` strategy from its command-line name.

    Args:
        name: None or "default" (no strategy: one device), "mirrored" (all
            local GPUs, or the CPU), "multi-worker" (the machines in the
            ``TF_CONFIG`` environment variable), or "tpu" (the TPU this
            machine reaches).

    Returns:
        A strategy, or None for "default".

    Example:

    ```python
    train(x, y, output_dir="runs/gpus", strategy=make_strategy("mirrored"))
    ```
    """
    import tensorflow as tf

    if name in (None, "default"):
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        "Invalid value for argument `strategy`: expected one of 'default', "
        f"'mirrored', 'multi-worker', 'tpu'. Received: strategy={name!r}"
    )


class _null_scope:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvaluationReport:
    """What `evaluate` returns."""

    accuracy: float
    per_class_accuracy: dict[str, float]
    confusion_matrix: np.ndarray = field(repr=False)
    num_examples: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the report."""
        return {
            "accuracy": self.accuracy,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion_matrix": self.confusion_matrix.tolist(),
            "num_examples": self.num_examples,
        }

    def save_json(self, path: str | os.PathLike) -> Path:
        """Writes the report as JSON (atomically); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, json.dumps(self.to_dict(), indent=1))
        return path


def evaluate(
    model: Any, x_test: np.ndarray, y_test: np.ndarray, *, batch_size: int = 256
) -> EvaluationReport:
    """Overall and per-class accuracy and the confusion matrix of ``model`` on a test set.

    Args:
        model: a Keras model taking normalised 32x32 images (as `train` makes),
            or the path of a ``.keras`` file.
        x_test: uint8 images ``(n, 32, 32, 3)``.
        y_test: int labels ``(n,)``.
        batch_size: inference batch size.

    Returns:
        An `EvaluationReport`; ``confusion_matrix[i, j]`` counts images of
        class i predicted as class j.

    Example:

    ```python
    report = evaluate("runs/cifar10/best.keras", x_test, y_test)
    print(f"{report.accuracy:.1%}", report.per_class_accuracy["cat"])
    ```
    """
    import tensorflow as tf

    if isinstance(model, (str, os.PathLike)):
        model = keras.saving.load_model(model, compile=False)
    dataset = make_dataset(x_test, y_test, batch_size=batch_size)
    probabilities = model.predict(dataset, verbose=0)
    predicted = np.argmax(probabilities, axis=-1)
    labels = np.asarray(y_test).reshape(-1)
    num_classes = len(CLASS_NAMES)
    matrix = tf.math.confusion_matrix(labels, predicted, num_classes=num_classes).numpy()
    totals = matrix.sum(axis=1)
    per_class = {
        name: float(matrix[i, i] / totals[i]) if totals[i] else float("nan")
        for i, name in enumerate(CLASS_NAMES)
    }
    return EvaluationReport(
        accuracy=float(np.trace(matrix) / max(1, matrix.sum())),
        per_class_accuracy=per_class,
        confusion_matrix=matrix,
        num_examples=int(matrix.sum()),
    )


# --------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "Plotting needs matplotlib: install the `plot` extra "
            "(pip install 'mobilenet[plot]')"
        ) from error
    return plt


def plot_history(history: list[dict[str, float]], path: str | os.PathLike) -> Path:
    """Saves loss and accuracy curves of a training history as a PNG.

    Args:
        history: rows as in ``TrainResult.history`` or ``history.json``.
        path: the PNG to write (atomically).

    Returns:
        The path written.

    Example:

    ```python
    plot_history(result.history, "runs/cifar10/curves.png")
    ```
    """
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix in ("", "val_"):
            values = [row.get(prefix + metric) for row in history]
            if any(v is not None for v in values):
                axis.plot(epochs, values, label=(prefix or "train_") + metric)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    return _save_figure(plt, figure, Path(path))


def plot_confusion_matrix(report: EvaluationReport, path: str | os.PathLike) -> Path:
    """Saves the confusion matrix of an `EvaluationReport` as a PNG.

    Args:
        report: the result of `evaluate`.
        path: the PNG to write (atomically).

    Returns:
        The path written.

    Example:

    ```python
    plot_confusion_matrix(evaluate(model, x_test, y_test), "confusion.png")
    ```
    """
    plt = _pyplot()
    matrix = report.confusion_matrix
    figure, axis = plt.subplots(figsize=(7, 6))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis)
    ticks = range(len(CLASS_NAMES))
    axis.set_xticks(ticks, CLASS_NAMES, rotation=45, ha="right")
    axis.set_yticks(ticks, CLASS_NAMES)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in ticks:
        for j in ticks:
            axis.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7)
    axis.set_title(f"accuracy {report.accuracy:.1%}")
    return _save_figure(plt, figure, Path(path))


def save_plots(
    history: list[dict[str, float]], report: EvaluationReport | None, output_dir: str | os.PathLike
) -> list[Path]:
    """Saves ``curves.png`` and ``confusion.png`` in ``output_dir`` if matplotlib is installed.

    Args:
        history: training history rows.
        report: optional `EvaluationReport` for the confusion matrix.
        output_dir: the folder to write into.

    Returns:
        The paths written; empty without matplotlib (the ``plot`` extra).

    Example:

    ```python
    save_plots(result.history, evaluate(result.model, x_test, y_test), "runs/cifar10")
    ```
    """
    try:
        _pyplot()
    except ImportError:
        return []
    output_dir = Path(output_dir)
    written = [plot_history(history, output_dir / "curves.png")] if history else []
    if report is not None:
        written.append(plot_confusion_matrix(report, output_dir / "confusion.png"))
    return written


def _save_figure(plt: Any, figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.tight_layout()
        with atomic_target(path, suffix=".png") as temporary:
            figure.savefig(temporary, format="png", dpi=100)
    finally:
        plt.close(figure)
    return path
