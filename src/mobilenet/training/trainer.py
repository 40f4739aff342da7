"""Training a MobileNet V1 on your images: data, model, output folder, optimizer, callbacks, fit.

`train` wires these phases, each a function of its own:

1. `prepare_data`: arrays, an image folder or a ``tf.data.Dataset`` become
   the training and validation pipelines, with their class names;
2. `_prepare_model`: the recipe's model for the image size, or the caller's,
   optionally started from pretrained weights, with the class names attached;
3. `_prepare_output_dir`: the run's folder, locked against a second run, and
   checked against ``resume``;
4. `compile_model`: SGD with Nesterov momentum, warm-up and cosine decay,
   decoupled weight decay, label smoothing;
5. `_callbacks`: history files, best checkpoint, time budget, backup;
6. `_fit_phases`: ``model.fit`` once, or twice when a frozen-backbone phase
   comes before fine-tuning.

The defaults are `mobilenet.training.recipe.RECIPE`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import keras

from mobilenet._files import atomic_save_model, atomic_write_text
from mobilenet._keras_compat import flatten_layers
from mobilenet._validation import ExistingPath, InvalidArgument, check_bool, invalid
from mobilenet.schedules import WarmupCosineDecay
from mobilenet.training import distribution
from mobilenet.training.callbacks import (
    HISTORY_CSV,
    HISTORY_JSON,
    BestCheckpoint,
    HistoryWriter,
    TimeBudget,
    read_history,
)
from mobilenet.training.data import (
    CACHE_CHOICES,
    TrainingData,
    check_cache_folder,
    is_path,
    is_tf_dataset,
    prepare_data,
)
from mobilenet.training.recipe import RECIPE, Recipe

__all__ = [
    "BACKUP_DIR",
    "BEST_MODEL",
    "CACHE_CHOICES",
    "CUTMIX_MIN_EPOCHS",
    "FINAL_MODEL",
    "HEAD_MODEL",
    "FLOAT_MODEL",
    "LOCK_FILE",
    "MAX_WARMUP_FRACTION",
    "RUN_JSON",
    "TrainResult",
    "build_model",
    "compile_model",
    "fit_verbosity",
    "train",
]

# Output files of a training run (with callbacks.HISTORY_JSON and HISTORY_CSV).
BEST_MODEL = "best.keras"
FINAL_MODEL = "final.keras"
#: The model after the frozen-backbone epochs (``freeze_epochs``), where fine-tuning starts.
HEAD_MODEL = "head.keras"
#: The float model where quantization-aware training (``qat_epochs``) starts.
FLOAT_MODEL = "float.keras"
#: The run's plan (epochs, image size, classes), which a resumed run must match.
RUN_JSON = "run.json"
#: Held (``flock``) while a run writes the folder, so that a second run there is refused.
LOCK_FILE = ".lock"
BACKUP_DIR = "backup"
#: The longest warm-up, as a share of a phase: a phase shorter than its warm-up still decays.
MAX_WARMUP_FRACTION = 0.25
#: The shortest run (in planned epochs) that `train`'s ``cutmix="auto"`` uses CutMix in.
CUTMIX_MIN_EPOCHS = RECIPE.cutmix_min_epochs


@dataclasses.dataclass
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
        class_names: the class names the model carries, or None.
        test: the held-back test files of an image folder (its ``test/``),
            or None.
        validation: the validation data the run used (arrays, an
            `ImageFolder` or a dataset), or None.
        best_is_final: whether ``best.keras`` is ``final.keras``'s copy,
            the validation share being too small to choose an epoch by.
        skipped_files: training files that could not be read and were left
            out (also in ``run.json``'s ``skipped_files``).
    """

    model: Any
    history: list[dict[str, float]]
    output_dir: Path
    best_model_path: Path | None
    final_model_path: Path | None = None
    stopped_early: bool = False
    chief: bool = True
    class_names: tuple[str, ...] | None = None
    test: Any = None
    validation: Any = None
    best_is_final: bool = False
    skipped_files: tuple[str, ...] = ()

    def held_out(self) -> tuple[str, Any, Any] | None:
        """The images to report on: ``("test", images, labels)``, else the validation ones, else None.

        ``images`` is an `ImageFolder` (``labels`` None) or an array, ready
        for `mobilenet.training.evaluate`; a dataset's validation is not
        handed back.
        """
        for what, data in (("test", self.test), ("validation", self.validation)):
            if isinstance(data, (tuple, list)):
                return what, data[0], data[1]
            if data is not None and not is_tf_dataset(data):
                return what, data, None
        return None


def build_model(
    alpha: float = RECIPE.alpha,
    early_downsampling: int | None = None,
    dropout: float = RECIPE.dropout,
    num_classes: int = 10,
    bn_momentum: float = RECIPE.bn_momentum,
    shallow: bool | None = None,
    *,
    image_size: int = 32,
    class_names: Sequence[str] | None = None,
    network: dict[str, Any] | None = None,
) -> keras.Model:
    """The MobileNet V1 that `train` builds for square images of side ``image_size``, taking pixels.

    Args:
        alpha: width multiplier.
        early_downsampling: 4, 2 or 1, see `mobilenet.MobileNetV1`. None: 2
            up to 64 px (a 2x2 final map at 32x32), else 4 (the paper's).
        dropout: dropout before the classifier.
        num_classes: classifier outputs.
        bn_momentum: momentum of every BatchNorm's moving statistics. Keras's
            0.99 averages over ~100 steps, several epochs of a small set, so
            inference-mode accuracy lags far behind; 0.9 follows within an
            epoch. It is part of the model's config, so it survives saving.
        shallow: the paper's "Shallow MobileNet" (Table 6): blocks 7-11, the
            five 512-channel blocks at one resolution, removed. Without
            residual connections the 28-layer network learns slowly from a
            few thousand images; the 18-layer one learns faster per epoch and
            runs each epoch faster (measured in ``docs/cifar10.md``). None:
            True up to 64 px, False above (the paper's network).
        image_size: int, the input side (32 for CIFAR-10).
        class_names: optional names of the classes, carried by the model
            (`mobilenet.class_names`); their number sets ``num_classes``.
        network: optional further `mobilenet.MobileNetV1` arguments
            (``padding``, ``batch_norm_epsilon``, ``head_filters``,
            ``activation``): timm's network, for timm's weights
            (`mobilenet.timm_weights.timm_model_options`).

    Returns:
        A ``keras.Model`` taking ``(image_size, image_size, 3)`` pixels,
        0-255 (uint8 or float), and normalising them inside
        (``include_preprocessing``), so the saved model needs no
        preprocessing step anywhere it runs.

    Example:

    ```python
    from mobilenet.training import build_model

    model = build_model(alpha=0.25)                        # CIFAR-10's 32x32, 10 classes
    flowers = build_model(1.0, image_size=224, class_names=["daisy", "rose", "tulip"])
    ```
    """
    from mobilenet.class_names import with_class_names
    from mobilenet.model import MobileNetV1

    small = RECIPE.is_small(image_size)
    shallow = small if shallow is None else shallow
    early_downsampling = (2 if small else 4) if early_downsampling is None else early_downsampling
    if class_names is not None:
        num_classes = len(class_names)
    model = MobileNetV1(
        alpha,
        num_classes=num_classes,
        input_shape=(image_size, image_size, 3),
        dropout=dropout,
        early_downsampling=early_downsampling,
        include_preprocessing=True,
        batch_norm_momentum=bn_momentum,
        shallow=shallow,
        name=f"mobilenet_v1_{alpha:g}{'_shallow' if shallow else ''}_{image_size}",
        **(network or {}),
    )
    return with_class_names(model, class_names) if class_names is not None else model


def _mixed_precision_policy(mixed_precision: bool | str) -> str | None:
    if mixed_precision in (False, None, "", "none"):
        return None
    if mixed_precision in (True, "auto"):
        import tensorflow as tf

        return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    if mixed_precision in ("mixed_float16", "mixed_bfloat16"):
        return mixed_precision
    raise invalid("mixed_precision", "False, True/'auto' (mixed_float16 on GPU, mixed_bfloat16 "
                  "on CPU/TPU), 'mixed_float16' or 'mixed_bfloat16'", mixed_precision)



def fit_verbosity(verbose: int | str) -> int | str:
    """Keras ``fit``'s ``verbose`` for ``"auto"``: a progress bar on a terminal, one line per epoch when output is redirected."""
    if verbose != "auto":
        return verbose
    stream = sys.stdout
    return 1 if hasattr(stream, "isatty") and stream.isatty() else 2


# --------------------------------------------------------------------------- 2. model


@contextlib.contextmanager
def _building(strategy: Any, policy: str | None) -> Iterator[None]:
    """Builds under the strategy's scope and the mixed-precision policy, restored after."""
    previous = keras.mixed_precision.global_policy()
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    try:
        if policy:
            keras.mixed_precision.set_global_policy(policy)
        with scope:
            yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _load_pretrained(model: keras.Model, weights: Any, alpha: float) -> int:
    """Copies pretrained backbone weights into ``model`` by layer name; returns layers copied.

    ``weights`` is ``"imagenet"``, a keras.applications MobileNet weights file
    (their ``.h5``), or a ``.keras`` model this library wrote, for any classes:
    everything but the classifier (``fc``) is copied.
    """
    from mobilenet.model import MobileNetV1
    from mobilenet.saving import load_model

    if is_path(weights) and os.fspath(weights).endswith(".keras"):
        source = load_model(weights, argument="weights")
    else:
        # A file of another width makes Keras warn once per layer it cannot fill
        # ("Skipping nested container", 55 of them) before its error: one error says it.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping nested container")
            try:
                source = MobileNetV1(alpha, include_top=False, input_shape=(None, None, 3),
                                     weights=weights)
            except InvalidArgument:
                raise
            except ValueError as error:
                raise invalid(
                    "weights", f"the weights of a MobileNet V1 of the same width (alpha={alpha:g})",
                    weights, shown=f"weights={os.fspath(weights) if is_path(weights) else weights!r}"
                    ", whose layers do not fit the model's (another alpha?)",
                ) from error
    copied = 0
    for layer in source.layers:
        if not layer.weights or layer.name == "fc":
            continue
        try:
            target = model.get_layer(layer.name)
        except ValueError:
            continue
        theirs = {w.path: w for w in layer.weights}
        ours = {w.path: w for w in target.weights}
        if {p: tuple(w.shape) for p, w in theirs.items()} != {p: tuple(w.shape) for p, w in ours.items()}:
            raise invalid(
                "weights", f"the weights of a MobileNet V1 of the same width (alpha={alpha:g})",
                weights, shown=f"weights={os.fspath(weights) if is_path(weights) else weights!r}, "
                f"whose layer {layer.name!r} does not fit the model's",
            )
        for path, variable in ours.items():
            variable.assign(theirs[path])
        copied += 1
    if not copied:
        raise invalid("weights", "a file holding MobileNet V1 weights", weights,
                      shown=f"weights={weights!r}, which shares no layer with the model")
    return copied


def _timm_network(weights: Any, alpha: float) -> dict[str, Any] | None:
    """timm's network (padding, BatchNorm epsilon, head conv) for timm's weights, else None.

    The width stays the recipe's: a file of another width is refused when it
    loads, naming ``alpha``, as keras.applications' files are.
    """
    from mobilenet.timm_weights import is_timm_weights, timm_model_options

    if weights is None or not is_timm_weights(weights):
        return None
    options = timm_model_options(weights)
    options.pop("alpha")
    return options


def _timm_recipe(recipe: Recipe, weights: Any) -> Recipe:
    """The recipe, evaluating with timm's crop and interpolation when it starts from timm's weights."""
    from mobilenet.timm_weights import find_timm_variant, is_timm_weights, timm_model_options

    if weights is None or not is_timm_weights(weights):
        return recipe
    options = timm_model_options(weights)
    variant = find_timm_variant(options["alpha"], options["head_filters"])
    if variant is None:
        return recipe
    return dataclasses.replace(recipe, central_crop=variant.crop_fraction,
                               interpolation=variant.interpolation)


def _assign_by_path(model: keras.Model, source: keras.Model) -> None:
    """Gives ``model`` the weights of ``source``, matched by variable path.

    Order is no guide: a frozen layer lists its variables in another order
    than a trainable one.
    """
    values = {variable.path: variable for variable in source.weights}
    for variable in model.weights:
        variable.assign(values[variable.path])


def _set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freezes (or unfreezes) every layer with weights but the classifier ``fc``.

    A frozen BatchNorm runs in inference mode in Keras 3: it normalises with
    its moving statistics and does not update them.
    """
    for layer in model.layers:
        if layer.weights and layer.name != "fc":
            layer.trainable = trainable


def _prepare_model(
    model: Any, data: TrainingData, *, recipe: Recipe, weights: Any, strategy: Any,
    policy: str | None,
) -> keras.Model:
    """Phase 2: the model to train, with the data's classes, from pretrained weights if asked."""
    from mobilenet.class_names import get_class_names, with_class_names
    from mobilenet.facts import image_model_facts, with_facts

    with _building(strategy, policy):
        if model is None:
            model = build_model(
                recipe.alpha, recipe.early_downsampling, recipe.dropout, data.num_classes,
                recipe.bn_momentum, recipe.shallow, image_size=data.image_size,
                class_names=data.class_names, network=_timm_network(weights, recipe.alpha),
            )
            if weights is not None:
                _load_pretrained(model, weights, recipe.alpha)
            if distribution.needs_synchronized_batch_norm(strategy):
                distribution.synchronize_batch_norm(model)
        elif data.class_names is not None and get_class_names(model) != data.class_names:
            model = with_class_names(model, data.class_names)
        # The facts every file of the run carries (mobilenet.facts): the crop validation used,
        # which `evaluate`, `predict` and an app then use too.
        if image_model_facts(model) is not None:
            model = with_facts(model, crop_fraction=recipe.evaluation_crop(data.image_size),
                               interpolation=recipe.interpolation)
    return model


# --------------------------------------------------------------------------- 3. output folder


@contextlib.contextmanager
def _locked(output_dir: Path, chief: bool) -> Iterator[None]:
    """Holds an exclusive lock on ``output_dir`` while a run writes it (the chief only).

    The operating system releases the lock when the process ends, however it
    ends, so a killed run leaves no stale lock behind.
    """
    if not chief:
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield
        return
    with open(output_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise invalid(
                "output_dir", "a folder no other training run is writing", str(output_dir),
                shown=f"output_dir={str(output_dir)!r}, which {holder} is writing now",
            ) from error
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.remove(output_dir / LOCK_FILE)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise invalid("output_dir", "a folder", str(output_dir),
                      shown=f"output_dir={str(output_dir)!r}, a file")


def _prepare_output_dir(
    output_dir: Path, resume: bool, chief: bool, plan: dict[str, Any], notes: dict[str, Any],
) -> None:
    """Phase 3: checks what ``output_dir`` holds against ``resume`` and the plan; clears a replaced run.

    ``run.json`` gets the plan, and ``notes`` (how ``best.keras`` is picked,
    the training images) beside it.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise invalid("output_dir", "a writable folder", str(output_dir))
    finished = len(read_history(output_dir))
    final = (output_dir / FINAL_MODEL).is_file()
    interrupted = (output_dir / BACKUP_DIR).exists() or (finished > 0 and not final)
    if interrupted and not resume:
        raise invalid(
            "output_dir", "", str(output_dir), mentions=("resume", "output_dir"), error=ExistingPath,
            problem=f"it holds an interrupted run ({finished} epochs finished); continue it "
            "with `resume`, or choose another `output_dir`",
        )
    if resume and not interrupted and final:
        raise invalid(
            "resume", "", True, shown=repr(str(output_dir)), mentions=("output_dir", "resume"),
            problem=f"the run in {str(output_dir)!r} is finished ({finished} epochs, "
            f"{FINAL_MODEL} written), so there is nothing to resume; train into another "
            "`output_dir`, or without `resume` to start it over",
        )
    if resume and not interrupted and not final and chief:
        print(f"nothing to resume in {output_dir}: no earlier run there, starting a new one",
              flush=True)
    if resume and (output_dir / RUN_JSON).is_file():
        planned = json.loads((output_dir / RUN_JSON).read_text())
        for key, value in plan.items():
            if key in planned and planned[key] != value:
                raise invalid(
                    key, f"{planned[key]!r}, as the interrupted run in {str(output_dir)!r} was "
                    "planned (a resumed run continues that plan)", value,
                )
    if not resume and chief:
        for name in (HISTORY_JSON, HISTORY_CSV, BEST_MODEL, FINAL_MODEL, HEAD_MODEL, FLOAT_MODEL,
                     RUN_JSON):
            if (output_dir / name).exists():
                (output_dir / name).unlink()
    if chief:
        atomic_write_text(output_dir / RUN_JSON, json.dumps({**plan, **notes}, indent=1))


# --------------------------------------------------------------------------- 4. optimizer


def compile_model(
    model: keras.Model, *, learning_rate: float, epochs: int, steps_per_epoch: int,
    warmup_epochs: int, weight_decay: float, label_smoothing: float,
) -> WarmupCosineDecay:
    """Phase 4: SGD (Nesterov 0.9), linear warm-up then cosine decay to 0, decoupled weight decay.

    Compiles ``model`` as `train` does (for a benchmark or a loop of your
    own) and returns its learning-rate schedule.

    Args:
        model: the model to compile.
        learning_rate: the peak rate.
        epochs: the phase's epochs, over which the rate decays to 0.
        steps_per_epoch: optimizer steps per epoch.
        warmup_epochs: epochs of linear warm-up, capped at a quarter of the phase.
        weight_decay: decoupled weight decay on the kernels except depthwise ones.
        label_smoothing: of the categorical cross-entropy.

    Returns:
        The `WarmupCosineDecay` schedule the optimizer follows.
    """
    total_steps = epochs * steps_per_epoch
    warmup_steps = min(warmup_epochs * steps_per_epoch, int(MAX_WARMUP_FRACTION * total_steps))
    schedule = WarmupCosineDecay(learning_rate, warmup_steps, total_steps)
    optimizer = keras.optimizers.SGD(
        schedule, momentum=0.9, nesterov=True, weight_decay=weight_decay or None,
    )
    # The paper puts little or no weight decay on the depthwise filters,
    # which have few parameters; BatchNorm and biases get none either.
    from mobilenet.quantization import QuantizedConv

    depthwise_kernels = [
        layer.kernel for layer in flatten_layers(model)
        if isinstance(layer, keras.layers.DepthwiseConv2D)
        or (isinstance(layer, QuantizedConv) and layer.kind == "depthwise")
    ]
    optimizer.exclude_from_weight_decay(
        var_list=depthwise_kernels, var_names=["gamma", "beta", "bias"]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"],
    )
    return schedule


# --------------------------------------------------------------------------- 5. callbacks, 6. fit


class _SaveOnTrainEnd(keras.callbacks.Callback):
    """Saves the model atomically when ``fit`` ends, before the backup is deleted."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def on_train_end(self, logs: dict | None = None) -> None:
        atomic_save_model(self.model, self.path)


@dataclasses.dataclass(frozen=True)
class _Phase:
    """Epochs ``start`` to ``end`` of a run, with the backbone frozen or not, at a peak rate.

    A ``quantize`` phase trains the model made quantization-aware from the
    float phases' end (``float.keras``).
    """

    start: int
    end: int
    frozen: bool
    learning_rate: float
    quantize: bool = False
    saves: str | None = None  # the model file written when the phase ends


def _callbacks(
    *, phase: _Phase, history: HistoryWriter, best: BestCheckpoint | None, output_dir: Path,
    write_dir: Path, chief: bool, time_budget: float | None, steps_per_epoch: int,
    schedule: WarmupCosineDecay, extra_callbacks: list | None,
) -> tuple[list, TimeBudget | None]:
    """Phase 5: the callbacks of one ``fit``; the backup comes last, after the history it records."""
    callbacks: list = [history] + ([best] if best is not None else [])
    budget = None
    if time_budget is not None:
        budget = TimeBudget(time_budget, phase.end, steps_per_epoch, schedule)
        callbacks.append(budget)
    callbacks.extend(extra_callbacks or [])
    if phase.saves:
        callbacks.append(_SaveOnTrainEnd(write_dir / phase.saves))
    # Every worker restores the chief's backup; only the chief writes and deletes it.
    backup = keras.callbacks.BackupAndRestore if chief else distribution.RestoreOnly
    callbacks.append(backup(str(output_dir / BACKUP_DIR), double_checkpoint=True))
    return callbacks, budget


def _fit_phases(
    model: keras.Model, data: TrainingData, phases: list[_Phase], *, output_dir: Path, write_dir: Path,
    chief: bool, strategy: Any, policy: str | None, compile_options: dict, callback_options: dict,
    verbose: Any,
) -> tuple[keras.Model, TimeBudget | None]:
    """Phase 6: ``model.fit`` for each phase not finished yet, compiled afresh for each.

    Returns the trained model (quantization-aware after a ``quantize``
    phase) and the time budget, if any.
    """
    history: HistoryWriter = callback_options["history"]
    done = len(history.rows)
    budget = None
    for before, phase in zip([None, *phases], phases):
        if done >= phase.end:
            continue
        if len(phases) > 1:
            _set_backbone_trainable(model, not phase.frozen)
        handed_over = before is not None and before.saves and output_dir / before.saves
        if handed_over and done == phase.start and not (output_dir / BACKUP_DIR).exists() \
                and handed_over.is_file():
            # Resumed between two phases: the next one starts from the file the first wrote.
            from mobilenet.saving import load_model

            _assign_by_path(model, load_model(handed_over))
        if phase.quantize:
            model = _quantize(model, phase, data.steps_per_epoch, strategy)
        with _building(strategy, policy):
            schedule = compile_model(model, learning_rate=phase.learning_rate,
                                epochs=phase.end - phase.start, **compile_options)
        if phase.quantize and done == phase.start and callback_options["best"] is not None:
            callback_options["best"].restart()  # best.keras: the best quantization-aware epoch
        callbacks, budget = _callbacks(phase=phase, write_dir=write_dir, output_dir=output_dir,
                                       chief=chief, schedule=schedule, **callback_options)
        with distribution.fit_scope(strategy), warnings.catch_warnings():
            # A folder's pipeline leaves out files that will not decode, so tf.data cannot
            # count its batches ahead: Keras learns an epoch's length from the first one and
            # says "Your input ran out of data; interrupting training" when it ends, though
            # training goes on through every epoch (and the steps of the schedule are known).
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(
                data.train, initial_epoch=phase.start, epochs=phase.end,
                # A tf.data pipeline ends each pass by itself; the per-worker shares
                # (a distributed dataset, of no known length) run the steps planned.
                steps_per_epoch=None if is_tf_dataset(data.train) else data.steps_per_epoch,
                validation_data=data.validation, callbacks=callbacks,
                verbose=fit_verbosity(verbose), shuffle=False,
            )
        done = phase.end
    return model, budget


def _quantize(model: keras.Model, phase: _Phase, steps_per_epoch: int, strategy: Any) -> keras.Model:
    """The quantization-aware copy of the float model, freezing on `RECIPE`'s schedule."""
    from mobilenet.quantization import quantize_aware

    steps = (phase.end - phase.start) * steps_per_epoch
    with _building(strategy, None):
        return quantize_aware(
            model,
            freeze_batch_norm_after=max(1, round(RECIPE.qat_batch_norm_freeze * steps)),
            freeze_ranges_after=max(1, round(RECIPE.qat_range_freeze * steps)),
        )


# --------------------------------------------------------------------------- train


def train(
    data: Any,
    *,
    output_dir: str | os.PathLike,
    recipe: Recipe = RECIPE,
    weights: str | os.PathLike | None = None,
    strategy: Any = None,
    resume: bool = False,
    validation_data: Any = None,
    class_names: Sequence[str] | None = None,
    model: Any = None,
    extra_callbacks: list | None = None,
    verbose: int | str = "auto",
) -> TrainResult:
    """Trains a MobileNet V1 with ``model.fit``, on arrays, an image folder or a ``tf.data.Dataset``.

    How it trains is the ``recipe`` (`Recipe`; `RECIPE` by default, measured
    in ``docs/cifar10.md``): SGD with Nesterov momentum 0.9, a linear warm-up
    to ``learning_rate`` then cosine decay to 0, decoupled weight decay on the
    kernels except the depthwise ones, label smoothing 0.1, and CutMix in runs
    of 100 epochs or more. Images of 64 px or less train the paper's Shallow
    MobileNet at ``early_downsampling`` 2 with random crops (reflect padding)
    and flips; larger ones the paper's network with Inception's random
    resized crops and flips, validated on a central crop
    (``docs/own-images.md``). Change a knob with
    ``dataclasses.replace(RECIPE, epochs=5)``.

    Files in ``output_dir``: ``history.json`` and ``history.csv`` (one row per
    finished epoch, rewritten atomically), ``best.keras`` (the best validation
    accuracy, or training accuracy without validation; ``final.keras``'s copy
    when the validation share is too small to choose by, see
    `Recipe.min_validation_images`), ``final.keras``, ``run.json`` (the plan a
    resumed run must match, and how ``best.keras`` was picked), ``head.keras``
    after frozen-backbone epochs, ``float.keras`` before quantization-aware
    epochs and, while a run is unfinished, ``backup/``. Every model carries
    its class names (`mobilenet.class_names`). Killed at any point and called
    again with ``resume=True``, training continues from the last finished
    epoch and ends with the planned number of epochs. A second run into a
    folder that a run is writing is refused.

    Args:
        data: the training images, one of: a pair ``(images, labels)``,
            pixels ``(n, rows, cols, 3)`` as uint8 or 0-255 floats with int
            labels ``(n,)``; an `ArraySplits` (CIFAR-10 from `load_data`,
            its class names and test images with it); the path of an image
            folder (``DIR/<class>/...``, or ``DIR/train/<class>/...`` with
            ``val/`` and ``test/`` beside it, see
            `mobilenet.datasets.load_image_folder`), streamed from the
            files, or of CIFAR-10's release (`load_data`); an `ImageFolder`
            or `ImageFolderSplits`; or a ``tf.data.Dataset`` of unbatched
            ``(image, integer label)`` pairs, pixels 0-255 of any size
            (counted in one pass first).
        output_dir: folder for checkpoints and history (created).
        recipe: the `Recipe`: model, data pipeline, schedule, seed.
        weights: start from pretrained weights: ``"imagenet"``
            (keras.applications' files, downloaded), a keras.applications
            MobileNet weights file (``.h5``), or a ``.keras`` model this
            library wrote, for any classes. Everything but the classifier is
            copied; the classifier is new, for the data's classes.
        strategy: optional ``tf.distribute.Strategy`` (MirroredStrategy,
            MultiWorkerMirroredStrategy, TPUStrategy, see `make_strategy`),
            or a ``keras.distribution.DataParallel`` on the JAX backend. With
            several workers each reads only its own share of an image
            folder's files; only the chief (worker 0) writes ``output_dir``.
        resume: continue an interrupted run found in ``output_dir`` (nothing
            there: start it, and say so); its ``epochs``, ``freeze_epochs``,
            image size and classes must be the planned ones.
        validation_data: optional data to validate on, of the training
            data's kind: ``(images, labels)`` arrays, an image folder path (or
            `ImageFolder`), or a ``tf.data.Dataset``. None: the recipe's
            ``validation_fraction`` of each class is held out (arrays and
            image folders without ``val/``; a dataset is not split).
        class_names: names of the classes in label order, for arrays and
            datasets (an image folder's are its folder names, CIFAR-10's
            `ArraySplits` has its own). They travel with the model into every
            file; None: the model carries none.
        model: optional Keras model taking pixels (0-255) with a softmax
            output, so it must normalise inside (e.g.
            ``MobileNetV1(..., include_preprocessing=True)``). By default
            `build_model` from the recipe. With a ``strategy``, build it
            inside ``strategy.scope()``.
        extra_callbacks: more Keras callbacks for ``fit``.
        verbose: Keras ``fit`` verbosity ("auto": a progress bar on a
            terminal, one line per epoch when output is redirected).

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: a bad argument (named; a recipe's field is named as
            itself) before any file is written: images of the wrong shape,
            dtype or range, labels outside the classes, an image folder with
            no classes or an empty class, a finished run with ``resume``, a
            folder another run is writing.
        FileExistsError: ``output_dir`` holds an interrupted run and
            ``resume`` is False.

    Example:

    ```python
    import dataclasses

    from mobilenet.datasets import load_cifar10
    from mobilenet.training import RECIPE, train

    (x_train, y_train), _ = load_cifar10("../shared/data/cifar10-subset")
    result = train((x_train[:64], y_train[:64]), output_dir="runs/tiny",
                   recipe=dataclasses.replace(RECIPE, epochs=1, alpha=0.25), verbose=0)
    result.final_model_path  # runs/tiny/final.keras
    ```
    """
    if not isinstance(recipe, Recipe):
        raise invalid("recipe", "a mobilenet.training.Recipe", recipe,
                      shown=f"recipe of type {type(recipe).__name__}")
    recipe = recipe.validate()
    _check_combination(recipe, weights=weights, model=model, strategy=strategy)
    check_bool(resume, "resume")
    distribution.check_strategy(strategy)
    policy = _mixed_precision_policy(recipe.mixed_precision)
    output_dir = Path(output_dir)
    _check_output_dir(output_dir)
    chief = distribution.is_chief(strategy)

    keras.utils.set_random_seed(recipe.seed)
    if recipe.deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    # 1-2: data and model, both checked before anything is written.
    recipe = _timm_recipe(recipe, weights)
    data_ = prepare_data(data, recipe=recipe, validation_data=validation_data,
                         class_names=class_names, model=model, strategy=strategy)
    model = _prepare_model(model, data_, recipe=recipe, weights=weights, strategy=strategy,
                           policy=policy)
    picks_best = _validation_can_choose(data_, recipe)
    plan = {
        "epochs": recipe.epochs, "freeze_epochs": recipe.freeze_epochs,
        "qat_epochs": recipe.qat_epochs, "image_size": data_.image_size,
        "class_names": list(data_.class_names) if data_.class_names else None,
        "num_classes": data_.num_classes,
    }
    notes = {"best_model": picks_best[1], "train_images": data_.num_train,
             "steps_per_epoch": data_.steps_per_epoch}
    if data_.skipped_files:
        notes["skipped_files"] = list(data_.skipped_files)
    phases = _plan_phases(recipe, pretrained=weights is not None)
    # 3: the folder, locked while this run writes it.
    output_dir.mkdir(parents=True, exist_ok=True)
    with _locked(output_dir, chief):
        _prepare_output_dir(output_dir, resume, chief, plan, notes)
        if not picks_best[0] and chief:
            print(f"best.keras: {picks_best[1]}", flush=True)
        monitor = "val_accuracy" if data_.validation is not None and picks_best[0] else "accuracy"
        # Another worker writes the same files to a private folder, removed at the end.
        write_dir = output_dir if chief else Path(tempfile.mkdtemp(prefix="mobilenet-worker-"))
        if resume and not chief and (output_dir / HISTORY_JSON).is_file():
            shutil.copy(output_dir / HISTORY_JSON, write_dir / HISTORY_JSON)
        history = HistoryWriter(write_dir)
        best = None
        if picks_best[0]:
            # With QAT, best.keras is the best quantization-aware epoch once there is one.
            epochs = recipe.epochs
            rows_ = history.rows[epochs:] if recipe.qat_epochs and len(history.rows) > epochs \
                else history.rows
            seen = [row[monitor] for row in rows_ if monitor in row]
            best = BestCheckpoint(
                write_dir / BEST_MODEL, monitor,
                max(seen) if seen and (output_dir / BEST_MODEL).is_file() else -math.inf,
            )
        try:
            model, budget = _fit_phases(
                model, data_, phases, output_dir=output_dir, write_dir=write_dir, chief=chief,
                strategy=strategy, policy=policy, verbose=verbose,
                compile_options=dict(steps_per_epoch=data_.steps_per_epoch,
                                     warmup_epochs=recipe.warmup_epochs,
                                     weight_decay=recipe.weight_decay,
                                     label_smoothing=recipe.label_smoothing),
                callback_options=dict(history=history, best=best, time_budget=recipe.time_budget,
                                      steps_per_epoch=data_.steps_per_epoch,
                                      extra_callbacks=extra_callbacks),
            )
            atomic_save_model(model, write_dir / FINAL_MODEL)
            if best is None:
                atomic_save_model(model, write_dir / BEST_MODEL)
            rows = read_history(write_dir)
        finally:
            if not chief:
                shutil.rmtree(write_dir, ignore_errors=True)
    best_path, final = output_dir / BEST_MODEL, output_dir / FINAL_MODEL
    return TrainResult(
        model=model,
        history=rows,
        output_dir=output_dir,
        best_model_path=best_path if chief and best_path.is_file() else None,
        final_model_path=final if chief else None,
        stopped_early=bool(budget and budget.stopped),
        chief=chief,
        class_names=data_.class_names,
        test=data_.test,
        validation=data_.validation_source,
        best_is_final=not picks_best[0],
        skipped_files=tuple(data_.skipped_files),
    )


def _check_combination(recipe: Recipe, *, weights: Any, model: Any, strategy: Any) -> None:
    """Refuses a recipe that does not fit the other arguments of `train`."""
    if weights is not None and model is not None:
        raise invalid("weights", "None with a model of your own (load weights into it first)", weights)
    if weights is not None and recipe.shallow:
        raise invalid("shallow", "None or False with pretrained weights (they fill the full network)",
                      recipe.shallow)
    if recipe.freeze_epochs and weights is None:
        raise invalid("freeze_epochs", "0 without pretrained `weights` (a random backbone has "
                      "nothing to keep)", recipe.freeze_epochs, mentions=("weights",))
    if recipe.time_budget is not None and strategy is not None \
            and distribution.is_multi_worker(strategy):
        raise invalid(
            "time_budget", "None with several workers (each would cut the run by its own "
            "clock, and the workers would wait on each other)", recipe.time_budget,
        )
    hub_name = isinstance(weights, str) and weights.startswith("timm/")
    if weights is not None and weights != "imagenet" and not hub_name and not Path(weights).is_file():
        raise invalid("weights", "'imagenet', a timm/ name or an existing file", weights,
                      shown=f"weights={os.fspath(weights) if is_path(weights) else weights!r} "
                      "(no such file)")
    check_cache_folder(recipe.cache)


def _validation_can_choose(data: TrainingData, recipe: Recipe) -> tuple[bool, str]:
    """Whether the validation share is large enough to pick ``best.keras`` by, and how it is picked.

    Each validation image is 1/n of the accuracy: with 24 images an epoch
    that is better by one image scores 4 points higher, and the epoch picked
    is mostly chance (`Recipe.min_validation_images`).
    """
    if data.validation is None:
        return True, "the epoch of highest training accuracy (no validation images)"
    if data.num_validation < recipe.min_validation_images \
            or data.validation_per_class < recipe.min_validation_per_class:
        return False, (
            f"final.keras (the validation share, {data.num_validation} images, fewest "
            f"{data.validation_per_class} in a class, is too small to choose an epoch by: it "
            f"needs {recipe.min_validation_images} images and {recipe.min_validation_per_class} "
            "per class)"
        )
    return True, f"the epoch of highest validation accuracy on {data.num_validation} images"


def _plan_phases(recipe: Recipe, pretrained: bool) -> list[_Phase]:
    """The run's phases: frozen backbone, then fine-tuning (or one float phase), then QAT."""
    learning_rate, fine_tune, qat = recipe.peak_rates(pretrained)
    epochs = recipe.epochs
    phases = [_Phase(0, epochs, False, fine_tune if pretrained else learning_rate)]
    if recipe.freeze_epochs:
        phases = [_Phase(0, recipe.freeze_epochs, True, learning_rate, saves=HEAD_MODEL),
                  _Phase(recipe.freeze_epochs, epochs, False, fine_tune)]
    if recipe.qat_epochs:
        phases[-1] = dataclasses.replace(phases[-1], saves=FLOAT_MODEL)
        phases.append(_Phase(epochs, epochs + recipe.qat_epochs, False, qat, quantize=True))
    return phases
