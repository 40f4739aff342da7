"""Training a MobileNet V1 on CIFAR-10: the model, the recipe, distribution and resuming."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mobilenet._files import atomic_save_model
from mobilenet._keras_compat import flatten_layers
from mobilenet._validation import check_bool, check_choice, check_int, check_number, check_positive_int, invalid
from mobilenet.cifar10.callbacks import HISTORY_CSV, HISTORY_JSON, BestCheckpoint, HistoryWriter, TimeBudget, read_history
from mobilenet.cifar10.data import CLASS_NAMES, IMAGE_SHAPE, check_images_and_labels, split_validation
from mobilenet.cifar10.pipeline import make_dataset
from mobilenet.schedules import WarmupCosineDecay

__all__ = [
    "BACKUP_DIR",
    "BEST_MODEL",
    "CUTMIX_MIN_EPOCHS",
    "FINAL_MODEL",
    "MAX_WARMUP_FRACTION",
    "STRATEGIES",
    "TrainResult",
    "build_model",
    "make_strategy",
    "train",
]

# Output files of a training run (with callbacks.HISTORY_JSON and HISTORY_CSV).
BEST_MODEL = "best.keras"
FINAL_MODEL = "final.keras"
BACKUP_DIR = "backup"
#: The longest warm-up, as a share of the run: a run shorter than its warm-up still decays.
MAX_WARMUP_FRACTION = 0.25
#: The shortest run (in planned epochs) that `train`'s ``cutmix="auto"`` uses CutMix in.
CUTMIX_MIN_EPOCHS = 100
#: The smallest batch validation runs in (``batch_size`` if larger).
VALIDATION_BATCH_SIZE = 256
#: The names `make_strategy` accepts.
STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")


@dataclass
class TrainResult:
    """What `train` returns: the trained model, its history and where files went.

    Attributes:
        model: the trained ``keras.Model`` (the last epoch's weights).
        history: one dict per finished epoch, as in ``history.json``.
        output_dir: the run's folder.
        best_model_path: ``best.keras`` if it was written, else None.
        final_model_path: ``final.keras``.
        stopped_early: whether ``time_budget`` cut the run short.
        chief: whether this process wrote the files (False on the other
            workers of a multi-worker run).
    """

    model: Any
    history: list[dict[str, float]]
    output_dir: Path
    best_model_path: Path | None
    final_model_path: Path | None = None
    stopped_early: bool = False
    chief: bool = True


def build_model(
    alpha: float = 0.5,
    early_downsampling: int = 2,
    dropout: float = 0.2,
    num_classes: int = len(CLASS_NAMES),
    bn_momentum: float = 0.9,
    shallow: bool = True,
) -> keras.Model:
    """The MobileNet V1 that `train` uses for 32x32 images, taking raw pixels.

    Args:
        alpha: width multiplier.
        early_downsampling: 4, 2 or 1, see `mobilenet.MobileNetV1`; 2 keeps a
            2x2 final feature map at 32x32, 1 a 4x4 one.
        dropout: dropout before the classifier.
        num_classes: classifier outputs.
        bn_momentum: momentum of every BatchNorm's moving statistics. Keras's
            0.99 averages over ~100 steps, several epochs of a small set, so
            inference-mode accuracy lags far behind; 0.9 follows within an
            epoch. It is part of the model's config, so it survives saving.
        shallow: build the paper's "Shallow MobileNet" (Table 6): blocks 7-11,
            the five 512-channel blocks at one resolution, removed. Without
            residual connections the 28-layer network learns slowly from a
            few thousand images; the 18-layer one learns faster per epoch and
            runs each epoch faster (measured in ``docs/cifar10.md``). False
            gives the full network.

    Returns:
        A ``keras.Model`` taking ``(32, 32, 3)`` pixels, 0-255 (uint8 or
        float), and normalising them inside (``include_preprocessing``), so
        the saved model needs no preprocessing step anywhere it runs.

    Example:

    ```python
    from mobilenet.cifar10 import build_model

    model = build_model(alpha=0.25)
    ```
    """
    from mobilenet.model import MobileNetV1

    return MobileNetV1(
        alpha,
        num_classes=num_classes,
        input_shape=IMAGE_SHAPE,
        dropout=dropout,
        early_downsampling=early_downsampling,
        include_preprocessing=True,
        batch_norm_momentum=bn_momentum,
        shallow=shallow,
        name=f"mobilenet_v1_{alpha:g}{'_shallow' if shallow else ''}_cifar10",
    )


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



def _fit_verbosity(verbose: int | str) -> int | str:
    """Keras' progress bar on a terminal; one line per epoch when output is redirected."""
    if verbose != "auto":
        return verbose
    stream = sys.stdout
    return 1 if hasattr(stream, "isatty") and stream.isatty() else 2


def _prepare_output_dir(output_dir: Path, resume: bool, chief: bool = True) -> None:
    """Checks what ``output_dir`` holds against ``resume``; clears a run being replaced."""
    if output_dir.exists() and not output_dir.is_dir():
        raise invalid("output_dir", "a folder", str(output_dir), shown=f"output_dir={str(output_dir)!r}, a file")
    output_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise PermissionError(
            f"Invalid value for argument `output_dir`: {str(output_dir)!r} is not writable"
        )
    interrupted = (output_dir / BACKUP_DIR).exists()
    if interrupted and not resume:
        raise FileExistsError(
            f"Invalid value for argument `output_dir`: {str(output_dir)!r} holds an "
            f"interrupted run ({BACKUP_DIR}/). Pass resume=True (`--resume`) to "
            "continue it, or choose another output_dir."
        )
    finished = len(read_history(output_dir))
    if resume and not interrupted and finished and (output_dir / FINAL_MODEL).is_file():
        raise ValueError(
            f"Invalid value for argument `resume`: the run in {str(output_dir)!r} is "
            f"finished ({finished} epochs, {FINAL_MODEL} written); nothing to resume. "
            "Train into another output_dir, or without resume to start it over."
        )
    if not resume and chief:
        for name in (HISTORY_JSON, HISTORY_CSV, BEST_MODEL, FINAL_MODEL):
            if (output_dir / name).exists():
                (output_dir / name).unlink()


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
    shallow: bool = True,
    dropout: float = 0.2,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 0.15,
    warmup_epochs: int = 2,
    weight_decay: float = 5e-3,
    label_smoothing: float = 0.1,
    augment: bool = True,
    random_erasing: float = 0.0,
    cutmix: bool | str = "auto",
    strategy: Any = None,
    mixed_precision: bool | str = False,
    resume: bool = False,
    time_budget: float | None = None,
    extra_callbacks: list | None = None,
    seed: int = 0,
    deterministic: bool = False,
    verbose: int | str = "auto",
) -> TrainResult:
    """Trains a MobileNet V1 on CIFAR-10 images with ``model.fit``.

    The recipe (measured in ``docs/cifar10.md``): the paper's Shallow
    MobileNet at alpha 0.5 with ``early_downsampling=2`` and BatchNorm
    momentum 0.9, SGD with Nesterov momentum 0.9, a linear warm-up to 0.15
    then cosine decay to 0, decoupled weight decay on the kernels except the
    depthwise ones, label smoothing 0.1, random crops with reflect padding
    and horizontal flips, and CutMix in runs of 100 epochs or more.

    Files in ``output_dir``: ``history.json`` and ``history.csv`` (one row per
    finished epoch, rewritten atomically), ``best.keras`` (the model with the
    best validation accuracy, or training accuracy without validation),
    ``final.keras`` and, while a run is unfinished, ``backup/`` (Keras's
    ``BackupAndRestore``). Killed at any point and called again with the same
    ``output_dir`` and ``resume=True``, training continues from the last
    finished epoch and ends with the same number of epochs.

    Args:
        x_train: pixels ``(n, 32, 32, 3)``, uint8 or floats in 0..255, as they
            come (the model normalises inside; do not normalise them).
        y_train: int labels ``(n,)`` in ``0..num_classes-1``.
        output_dir: folder for checkpoints and history (created).
        validation_data: optional ``(images, labels)`` to validate on. When
            None and ``validation_fraction`` > 0, a stratified split of the
            training data is held out.
        validation_fraction: share held out when ``validation_data`` is None;
            0 trains on everything with no validation.
        model: optional Keras model taking pixels (0-255) with a softmax
            output, so it must normalise inside (e.g.
            ``MobileNetV1(..., include_preprocessing=True)``); by default
            `build_model(alpha, early_downsampling, dropout)`. With a
            ``strategy``, build it inside ``strategy.scope()``.
        alpha: width multiplier of the default model.
        early_downsampling: see `mobilenet.MobileNetV1`; the default 2 keeps
            a 2x2 final map at 32x32, the measured trade-off on a CPU.
        shallow: the default model is the paper's Shallow MobileNet (blocks
            7-11 removed, see `build_model`); False trains the full network.
        dropout: dropout before the default model's classifier.
        epochs: int >= 1, total epochs (a resumed run counts finished ones).
        batch_size: int >= 1, global batch size. Each epoch leaves out its
            short last batch (a different few images each epoch, as they are
            reshuffled), unless there are fewer images than one batch.
        learning_rate: float > 0, the peak learning rate (scaled by nothing:
            give the value for your global batch size).
        warmup_epochs: int >= 0, epochs of linear warm-up from 0, capped at
            a quarter of the run (``MAX_WARMUP_FRACTION``) so that a short run
            still reaches its peak and decays.
        weight_decay: decoupled weight decay on the kernels of the full and
            pointwise convolutions and the classifier; none on depthwise
            kernels (as the paper advises), BatchNorm or biases.
        label_smoothing: float in [0, 1).
        augment: random crop and flip of training images.
        random_erasing: float in [0, 1], the share of training images that
            also get a random rectangle erased (`make_dataset`).
        cutmix: CutMix within each training batch (`make_dataset`): True,
            False, or "auto", on for runs of ``CUTMIX_MIN_EPOCHS`` (100)
            epochs or more. It slows learning (a short run scores less with
            it) and holds off overfitting (a long run scores more); "auto"
            decides by ``epochs``, the planned length, also when
            ``time_budget`` cuts the run shorter.
        strategy: optional ``tf.distribute.Strategy`` (MirroredStrategy,
            MultiWorkerMirroredStrategy, TPUStrategy) on the TensorFlow
            backend, or a ``keras.distribution.DataParallel`` over this
            process's devices on the JAX backend. For several workers,
            use ``make_strategy("multi-worker")`` and call ``train`` the same
            way on every worker, with one ``output_dir`` on shared storage:
            only the chief (worker 0) writes there. With more than one
            replica, the default model's BatchNorms are synchronised (under
            ``DataParallel`` XLA computes the statistics of the global batch
            by itself). ``batch_size`` is the global batch, split across
            replicas; with ``DataParallel`` every batch, the last one of an
            epoch included, must split evenly across the devices.
        mixed_precision: False, True/'auto' (mixed_float16 on GPU,
            mixed_bfloat16 otherwise), 'mixed_float16' or 'mixed_bfloat16'.
        resume: continue an interrupted run found in ``output_dir`` (nothing
            there: start it). Without it, a leftover backup there is an error,
            so nothing is overwritten by accident; with it, a finished run
            there is an error, since there is nothing left to do.
        time_budget: optional seconds > 0 for this call: the run is cut to the
            epochs that fit (measured as it goes), with the learning-rate
            decay ending at the new last epoch.
        extra_callbacks: more Keras callbacks for ``fit`` (run before the
            backup).
        seed: int >= 0, seed of the weights, split, shuffle and augmentation.
            `train` sets it as the process-wide seed of Keras, NumPy and
            Python (``keras.utils.set_random_seed``), as a script would.
        deterministic: make the run repeat exactly: the same seed on the same
            machine and software gives a bit-identical history and weights.
            On TensorFlow this turns on op determinism
            (``tf.config.experimental.enable_op_determinism``) for the rest of
            the process, which `train` cannot turn off again; an op with no
            deterministic kernel (mostly on GPUs) then raises instead of
            running, and some run slower. Without it, runs with one seed
            repeated exactly on the CPUs measured (``docs/cifar10.md``), but
            GPU kernels that add up in a varying order make them drift apart.
            On JAX's CPU backend runs repeat without it.
        verbose: Keras ``fit`` verbosity ("auto": a progress bar on a
            terminal, one line per epoch when output is redirected).

    Returns:
        A `TrainResult` with the trained model (the last epoch's weights) and
        the history rows.

    Raises:
        ValueError: a bad argument (named), before any training: images of
            the wrong shape, dtype or range, labels outside the classes, a
            length mismatch, a rate <= 0, a finished run with ``resume``.
        FileExistsError: ``output_dir`` holds an interrupted run and
            ``resume`` is False.

    Example:

    ```python
    from mobilenet.cifar10 import load_cifar10, train

    (x_train, y_train), (x_test, y_test) = load_cifar10("../shared/data/cifar10-subset")
    result = train(x_train[:64], y_train[:64], output_dir="runs/tiny", epochs=1, alpha=0.25,
                   verbose=0)
    result.final_model_path  # runs/tiny/final.keras
    ```
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    learning_rate = check_number(learning_rate, "learning_rate", low=0.0, low_open=True)
    warmup_epochs = check_int(warmup_epochs, "warmup_epochs", minimum=0)
    weight_decay = check_number(weight_decay, "weight_decay", low=0.0)
    label_smoothing = check_number(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    validation_fraction = check_number(validation_fraction, "validation_fraction", low=0.0, high=1.0)
    if time_budget is not None:
        time_budget = check_number(time_budget, "time_budget", low=0.0, low_open=True)
    seed = check_int(seed, "seed", minimum=0)
    random_erasing = check_number(random_erasing, "random_erasing", low=0.0, high=1.0, high_open=False)
    check_bool(deterministic, "deterministic")
    check_bool(shallow, "shallow")
    if cutmix == "auto":
        cutmix = epochs >= CUTMIX_MIN_EPOCHS
    elif not isinstance(cutmix, bool):
        raise invalid("cutmix", 'True, False or "auto"', cutmix)
    _check_strategy(strategy)
    policy = _mixed_precision_policy(mixed_precision)
    image_shape = tuple(model.input_shape[1:]) if model is not None else IMAGE_SHAPE
    num_classes = int(model.output_shape[-1]) if model is not None else len(CLASS_NAMES)
    x_train, y_train = check_images_and_labels(
        x_train, y_train, num_classes=num_classes, image_shape=image_shape,
        images_argument="x_train", labels_argument="y_train",
    )
    # Named in an error about the validation batches: the argument that made them.
    validation_argument = "validation_data" if validation_data is not None else "validation_fraction"
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise invalid("validation_data", "None or a pair (images, labels)", validation_data,
                          shown=f"validation_data of type {type(validation_data).__name__}")
        validation_data = check_images_and_labels(
            *validation_data, num_classes=num_classes, image_shape=image_shape,
            images_argument="validation_data", labels_argument="validation_data",
        )
    elif validation_fraction > 0:
        (x_train, y_train), validation_data = split_validation(
            x_train, y_train, validation_fraction, seed
        )
    validation_batch_size = max(batch_size, VALIDATION_BATCH_SIZE)
    # An epoch's short last batch is left out (the images are reshuffled every
    # epoch, so a different few miss each time): 2,500 images in batches of 64
    # would end every epoch on a step from 4 images, whose BatchNorm statistics
    # and gradient are noise at the full learning rate (docs/cifar10.md measures
    # what it cost). With fewer images than one batch, that one batch is kept.
    drop_remainder = len(x_train) >= batch_size
    _check_even_batches(strategy, "batch_size", len(x_train), batch_size, "training images",
                        drop_remainder=drop_remainder)
    if validation_data is not None:
        _check_even_batches(
            strategy, validation_argument, len(validation_data[0]), validation_batch_size,
            "validation images",
        )
    # Only the chief (worker 0 of a multi-worker run; the only process otherwise)
    # writes to output_dir, so that no two processes write one file.
    chief = _is_chief(strategy)
    if time_budget is not None and strategy is not None and _is_multi_worker(strategy):
        raise invalid(
            "time_budget", "None with several workers (each would cut the run by its own "
            "clock, and the workers would wait on each other)", time_budget,
        )
    output_dir = Path(output_dir)
    _prepare_output_dir(output_dir, resume, chief)

    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    train_ds = make_dataset(
        x_train, y_train, batch_size=batch_size, training=True, seed=seed,
        padding=4 if augment else None, num_classes=num_classes,
        random_erasing=random_erasing, cutmix=cutmix, drop_remainder=drop_remainder,
    )
    val_ds = None
    if validation_data is not None:
        val_ds = make_dataset(
            *validation_data, batch_size=validation_batch_size, num_classes=num_classes
        )

    steps_per_epoch = len(x_train) // batch_size if drop_remainder else 1
    previous_policy = keras.mixed_precision.global_policy()
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    try:
        if policy:
            keras.mixed_precision.set_global_policy(policy)
        with scope:
            if model is None:
                model = build_model(alpha, early_downsampling, dropout, shallow=shallow)
                if _needs_synchronized_batch_norm(strategy):
                    _synchronize_batch_norm(model)
            total_steps = epochs * steps_per_epoch
            warmup_steps = min(
                warmup_epochs * steps_per_epoch, int(MAX_WARMUP_FRACTION * total_steps)
            )
            schedule = WarmupCosineDecay(learning_rate, warmup_steps, total_steps)
            optimizer = keras.optimizers.SGD(
                schedule, momentum=0.9, nesterov=True, weight_decay=weight_decay or None,
            )
            # The paper puts little or no weight decay on the depthwise filters,
            # which have few parameters; BatchNorm and biases get none either.
            depthwise_kernels = [
                layer.kernel for layer in flatten_layers(model)
                if isinstance(layer, keras.layers.DepthwiseConv2D)
            ]
            optimizer.exclude_from_weight_decay(
                var_list=depthwise_kernels, var_names=["gamma", "beta", "bias"]
            )
            model.compile(
                optimizer=optimizer,
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                metrics=["accuracy"],
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    monitor = "val_accuracy" if val_ds is not None else "accuracy"
    # Another worker writes the same files to a private folder, removed at the end.
    write_dir = output_dir if chief else Path(tempfile.mkdtemp(prefix="mobilenet-worker-"))
    if resume and not chief and (output_dir / HISTORY_JSON).is_file():
        shutil.copy(output_dir / HISTORY_JSON, write_dir / HISTORY_JSON)
    history = HistoryWriter(write_dir)
    seen = [row[monitor] for row in history.rows if monitor in row]
    best = BestCheckpoint(
        write_dir / BEST_MODEL, monitor,
        max(seen) if seen and (output_dir / BEST_MODEL).is_file() else -math.inf,
    )
    # The backup comes last: an epoch it has recorded is already in the history.
    callbacks = [history, best]
    budget = None
    if time_budget is not None:
        budget = TimeBudget(time_budget, epochs, steps_per_epoch, schedule)
        callbacks.append(budget)
    callbacks.extend(extra_callbacks or [])
    # Every worker restores the chief's backup; only the chief writes and deletes it.
    backup = keras.callbacks.BackupAndRestore if chief else _RestoreOnly
    callbacks.append(backup(str(output_dir / BACKUP_DIR), double_checkpoint=True))
    try:
        with _fit_scope(strategy):
            model.fit(
                train_ds, epochs=epochs, validation_data=val_ds, callbacks=callbacks,
                verbose=_fit_verbosity(verbose), shuffle=False,
            )
        atomic_save_model(model, write_dir / FINAL_MODEL)
        rows = read_history(write_dir)
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    best, final = output_dir / BEST_MODEL, output_dir / FINAL_MODEL
    return TrainResult(
        model=model,
        history=rows,
        output_dir=output_dir,
        best_model_path=best if chief and best.is_file() else None,
        final_model_path=final if chief else None,
        stopped_early=bool(budget and budget.stopped),
        chief=chief,
    )


def _is_keras_distribution(strategy: Any) -> bool:
    return isinstance(strategy, keras.distribution.DataParallel)


def _check_strategy(strategy: Any) -> None:
    """Rejects a strategy that this backend cannot train with, before any work."""
    if strategy is None:
        return
    backend = keras.backend.backend()
    if _is_keras_distribution(strategy):
        if backend != "jax":
            raise invalid(
                "strategy", "a tf.distribute.Strategy on the TensorFlow backend (Keras "
                "trains with a keras.distribution only on the JAX backend)", strategy,
                shown=f"strategy={strategy!r} with KERAS_BACKEND={backend!r}",
            )
        # JAX's own count: DataParallel has no public one before Keras 3.15.
        import jax

        processes = jax.process_count()
        if processes > 1:
            raise invalid(
                "strategy", "a keras.distribution.DataParallel over the devices of one "
                "process (train does not run several JAX processes)", strategy,
                shown=f"strategy={strategy!r} over {processes} processes",
            )
        return
    if not hasattr(strategy, "scope"):
        raise invalid(
            "strategy", "None, a tf.distribute.Strategy (see make_strategy) or, on the "
            "JAX backend, a keras.distribution.DataParallel", strategy,
        )
    if backend != "tensorflow":
        raise invalid(
            "strategy", "a keras.distribution.DataParallel on the "
            f"{backend} backend (a tf.distribute strategy needs KERAS_BACKEND=tensorflow)",
            strategy, shown=f"strategy={strategy!r} with KERAS_BACKEND={backend!r}",
        )


def _check_even_batches(
    strategy: Any, argument: str, count: int, batch_size: int, what: str, drop_remainder: bool = False,
) -> None:
    """Under ``DataParallel``, refuses batches that do not split evenly over the devices.

    JAX shards each batch over the devices along its first axis, and a batch
    that does not divide (an epoch's short last batch, say) fails in the
    middle of ``fit``, after the compilation; here it fails before any work.
    """
    if not _is_keras_distribution(strategy):
        return
    # DataParallel's mesh is one axis of devices (num_model_replicas, its own
    # count, is new in Keras 3.15).
    devices = strategy.device_mesh.devices.size
    sizes = {batch_size} if count >= batch_size else set()
    if not drop_remainder:
        sizes |= {count % batch_size} - {0}
    uneven = sorted(size for size in sizes if size % devices)
    if uneven:
        raise invalid(
            argument, f"batches that split evenly over the {devices} devices of the "
            "DataParallel strategy", None,
            shown=f"{count} {what} in batches of {batch_size}, which makes a batch of {uneven[0]}",
        )


def _is_chief(strategy: Any) -> bool:
    """Whether this process writes the run's files: worker 0, or the only process."""
    if strategy is None or _is_keras_distribution(strategy):
        return True  # one process (_check_strategy refuses several)
    return bool(strategy.extended.should_checkpoint)


def _needs_synchronized_batch_norm(strategy: Any) -> bool:
    """Whether BatchNorm must be told to use the global batch's statistics.

    A tf.distribute strategy runs one copy of the model per replica, each
    seeing its share of the batch. Under a Keras ``DataParallel`` (JAX), XLA
    compiles one program for the global batch, sharded over the devices, so
    BatchNorm's mean and variance are already those of the global batch (and
    ``synchronized`` is a TensorFlow-only option).
    """
    return (
        strategy is not None
        and not _is_keras_distribution(strategy)
        and strategy.num_replicas_in_sync > 1
    )


def _fit_scope(strategy: Any) -> Any:
    """The scope ``fit`` runs in: a Keras distribution's, else none.

    A model remembers the tf.distribute strategy it was built under, so its
    ``fit`` needs no scope. A Keras distribution is global state that ``fit``
    reads while it runs (to shard each batch over the devices), so ``fit``
    runs inside its ``scope()``, which sets it and restores the previous
    one on the way out.
    """
    return strategy.scope() if _is_keras_distribution(strategy) else contextlib.nullcontext()


def _is_multi_worker(strategy: Any) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return False
    cluster = resolver.cluster_spec().as_dict()
    return sum(len(tasks) for tasks in cluster.values()) > 1


def _synchronize_batch_norm(model: keras.Model) -> None:
    """Makes every BatchNorm of ``model`` normalise with the statistics of the global batch.

    Keras 3 keeps a BatchNorm's moving statistics in mirrored variables that
    each replica updates with its own share of the batch, so replicas (workers)
    drift apart, and the model the chief saves is not the one the other
    workers evaluate with. Synchronised, every replica sees the statistics of
    the whole global batch, as one process training at that batch size would.
    """
    for layer in flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


class _RestoreOnly(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that restores the backup at the start but never writes or deletes it.

    Keras 3's ``BackupAndRestore`` has no multi-worker mode: every worker would
    write the same files (and h5py's file lock makes the second writer fail).
    A non-chief worker uses this one on the chief's backup folder.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        return None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        return None

    def on_train_end(self, logs: dict | None = None) -> None:
        return None


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
    from mobilenet.cifar10 import load_cifar10, make_strategy, train

    (x, y), _ = load_cifar10("../shared/data/cifar10-subset")
    strategy = make_strategy("mirrored")  # every local GPU, or the CPU
    result = train(x[:64], y[:64], output_dir="runs/gpus", epochs=1, alpha=0.25,
                   strategy=strategy, verbose=0)
    ```
    """
    import tensorflow as tf

    if name in (None, "default"):
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return _multi_worker_strategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise invalid("strategy", f"one of {STRATEGIES}", name)


def _multi_worker_strategy() -> Any:
    """A ``MultiWorkerMirroredStrategy`` whose ``reduce`` serves the two calls of Keras 3's ``fit``.

    With several workers, Keras 3 (up to 3.15 at least, keras-team/keras#20585)
    asks ``strategy.reduce`` for two things this strategy cannot do
    (keras/src/backend/tensorflow/trainer.py):

    - ``_maybe_symbolic_build`` averages the first input batch, a nest
      ``(images, labels)`` of per-replica values, only to learn its shapes.
      ``Strategy.reduce`` takes no nest, and an all-reduce would fail anyway
      where the workers' batches differ in size: this worker's batch serves.
    - ``reduce_per_replica`` averages each scalar log (loss, accuracy) with
      ``axis=0``, which a scalar lacks: the mean across workers is ``axis=None``.
    """
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op: Any, value: Any, axis: Any = None) -> Any:
            if tf.nest.is_nested(value):
                return tf.nest.map_structure(lambda v: self.experimental_local_results(v)[0], value)
            if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
                axis = None
            return super().reduce(reduce_op, value, axis)

    return MultiWorkerMirroredStrategy()
