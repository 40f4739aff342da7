"""A training run's data: arrays, an image folder or a ``tf.data.Dataset``, made into pipelines.

`load_data` reads what a data folder holds (an image folder's splits, or
CIFAR-10's release as arrays with CIFAR-10's class names), so that the
command line does no data work. `prepare_data` is the first phase of
`mobilenet.training.train`: it checks the data, splits off validation images,
picks the image size and the class names, and builds the ``tf.data``
pipelines (`mobilenet.training.pipeline`), one share of the files per worker
under a multi-worker strategy.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mobilenet._validation import invalid
from mobilenet.datasets.arrays import check_images_and_labels, split_validation
from mobilenet.datasets.image_folder import ImageFolder, ImageFolderSplits, load_image_folder
from mobilenet.training import distribution
from mobilenet.training.pipeline import cache_bytes, make_dataset, make_file_dataset, make_image_dataset
from mobilenet.training.recipe import CACHE_CHOICES, RECIPE, Recipe

__all__ = [
    "CACHE_CHOICES",
    "ArraySplits",
    "TrainingData",
    "check_cache_folder",
    "drops_remainder",
    "is_path",
    "is_tf_dataset",
    "limited",
    "load_data",
    "prepare_data",
    "sharded_file_dataset",
]

#: The smallest batch validation runs in (``batch_size`` if larger).
VALIDATION_BATCH_SIZE = RECIPE.evaluation_batch_size


@dataclasses.dataclass(frozen=True)
class ArraySplits:
    """Images held as arrays, split as an image folder is: what `load_data` reads from CIFAR-10.

    `train` takes it as its ``data``: it trains on ``train``, validates on
    ``validation`` (else on a held-out share), and hands ``test`` back in
    its result, with ``class_names`` carried by the model.

    Attributes:
        train: ``(images, labels)``: uint8 pixels ``(n, rows, cols, 3)`` and int labels.
        validation: ``(images, labels)``, or None.
        test: ``(images, labels)``, or None.
        class_names: the class names in label order, or None.
    """

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray] | None = None
    test: tuple[np.ndarray, np.ndarray] | None = None
    class_names: tuple[str, ...] | None = None


@dataclasses.dataclass
class TrainingData:
    """A training run's input: its pipelines, their sizes and the classes (`prepare_data`)."""

    train: Any
    validation: Any
    steps_per_epoch: int
    num_train: int
    num_validation: int
    image_size: int
    num_classes: int
    class_names: tuple[str, ...] | None
    test: Any = None
    validation_source: Any = None
    #: The fewest validation images of one class (0 without validation).
    validation_per_class: int = 0
    #: Training files that could not be read, skipped (counted in ``run.json``).
    skipped_files: tuple[str, ...] = ()


def is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def is_tf_dataset(value: Any) -> bool:
    """Whether ``value`` is a ``tf.data.Dataset`` (without importing TensorFlow to ask)."""
    if "tensorflow" not in sys.modules:
        return False
    import tensorflow as tf

    return isinstance(value, tf.data.Dataset)


def _resolve_cache(cache: Any, folder: ImageFolder, image_size: int) -> str | None:
    if cache == "auto":
        return "memory" if cache_bytes(folder, image_size) <= RECIPE.auto_cache_bytes else None
    return None if cache in (None, "none") else str(cache)


def check_cache_folder(cache: Any) -> None:
    """Refuses a cache file prefix whose folder does not exist, before any training.

    ``tf.data`` would fail there only when the first epoch ends, with a
    TensorFlow traceback.
    """
    if cache in CACHE_CHOICES:
        return
    folder = Path(cache).expanduser().parent
    if not folder.is_dir():
        raise invalid("cache", "'auto', 'memory', None or a file path prefix in an existing "
                      "folder", cache, shown=f"cache={os.fspath(cache)!r} (no folder "
                      f"{str(folder)!r})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise invalid("cache", "a file path prefix in a writable folder", cache,
                      shown=f"cache={os.fspath(cache)!r} (folder {str(folder)!r} is not writable)")


def drops_remainder(count: int, batch_size: int, replicas: int = 1) -> bool:
    """Whether an epoch of ``count`` images leaves out its short last batch.

    It is kept, unless it is under a quarter of a batch: a step on a few
    images gives BatchNorm statistics and a gradient that are noise at the
    full learning rate (2,500 CIFAR-10 images in batches of 64 end on 4), while
    leaving out a large remainder (29 of 221 photos) throws away a share of a
    small dataset every epoch. The images are reshuffled every epoch, so a
    dropped remainder misses different images each time. With fewer images
    than one batch, that one batch is kept. Several replicas drop it always
    (a short batch need not split evenly over them).
    """
    if count <= batch_size:
        return False
    return replicas > 1 or count % batch_size < batch_size / 4


def _steps(count: int, batch_size: int, drop_remainder: bool) -> int:
    return count // batch_size if drop_remainder else -(-count // batch_size)


def _replicas(strategy: Any) -> int:
    if strategy is None:
        return 1
    if distribution.is_keras_distribution(strategy):
        return 2  # DataParallel shards every batch: no short batch
    return int(getattr(strategy, "num_replicas_in_sync", 1))


def limited(data: Any, limit: int | None, seed: int = 0) -> Any:
    """A seeded random choice of ``limit`` files of an `ImageFolder`, or the first ``limit`` of a pair of arrays.

    Returns ``data`` itself without a limit, or when it holds no more.
    """
    if data is None or limit is None:
        return data
    if isinstance(data, tuple):
        return data if limit >= len(data[0]) else (data[0][:limit], data[1][:limit])
    if limit >= len(data):
        return data
    return data.subset(np.sort(np.random.default_rng(seed).permutation(len(data))[:limit]))


def load_data(
    path: str | os.PathLike | None, *, validation_fraction: float = RECIPE.validation_fraction,
    seed: int = 0, limit: int | None = None, argument: str = "data",
) -> ImageFolderSplits | ArraySplits:
    """What a data folder holds, for `train`: an image folder's splits, or CIFAR-10's arrays.

    Args:
        path: a folder with one sub-folder of images per class (or
            ``train/``, ``val/`` and ``test/`` with those inside, see
            `mobilenet.datasets.load_image_folder`), or CIFAR-10's python
            release (see `mobilenet.datasets.load_cifar10`; None: its
            ``MOBILENET_CIFAR10_DIR`` or Keras's download).
        validation_fraction: the share of each class an image folder without
            ``val/`` holds out (CIFAR-10's arrays are split by `train`).
        seed: seed of the held-out share and of ``limit``'s choice.
        limit: use at most this many images of each split: a seeded random
            choice of an image folder's files, the first of CIFAR-10's.
        argument: the name errors give ``path``.

    Returns:
        An `ImageFolderSplits`, or an `ArraySplits` with CIFAR-10's class names.

    Example:

    ```python
    from mobilenet.training import load_data

    cifar = load_data("../shared/data/cifar10-subset", limit=100)
    len(cifar.train[0]), cifar.class_names[:2]  # (100, ('airplane', 'automobile'))
    ```
    """
    from mobilenet.datasets.cifar10 import CLASS_NAMES, load_cifar10
    from mobilenet.datasets.image_folder import is_image_folder

    if path is not None and not Path(path).expanduser().exists():
        raise invalid(
            argument, "a folder with one sub-folder of images per class, or one holding "
            "CIFAR-10's cifar-10-batches-py/ or cifar-10-python.tar.gz", path,
            shown=f"{argument}={os.fspath(path)!r} (no such folder)",
        )
    if path is not None and is_image_folder(path):
        splits = load_image_folder(Path(path).expanduser(), validation_fraction=validation_fraction,
                                   seed=seed, argument=argument)
        return dataclasses.replace(
            splits, train=limited(splits.train, limit, seed),
            validation=limited(splits.validation, limit, seed), test=limited(splits.test, limit, seed),
        )
    train, test = load_cifar10(path)
    return ArraySplits(limited(train, limit), None, limited(test, limit), tuple(CLASS_NAMES))


def _check_class_names(class_names: Any, num_classes: int | None) -> tuple[str, ...] | None:
    if class_names is None:
        return None
    if isinstance(class_names, str) or not all(isinstance(name, str) for name in class_names):
        raise invalid("class_names", "a list of class names (str)", class_names)
    names = tuple(class_names)
    if num_classes is not None and len(names) != num_classes:
        raise invalid("class_names", f"one name per class ({num_classes})", class_names,
                      shown=f"{len(names)} names")
    if len(set(names)) != len(names):
        raise invalid("class_names", "distinct names", class_names)
    return names


def _count_dataset(dataset: Any, argument: str) -> tuple[int, int]:
    """(elements, largest label + 1) of an unbatched dataset of (image, label), in one pass."""
    import tensorflow as tf

    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2 and spec[0].shape.rank == 3
            and spec[1].shape.rank == 0 and spec[1].dtype.is_integer):
        raise invalid(
            argument, "a tf.data.Dataset of unbatched (image (rows, cols, channels), integer "
            "label) pairs", dataset, shown=f"a dataset of {spec}",
        )
    labels = dataset.map(lambda image, label: label)
    count, top = labels.reduce(
        (tf.constant(0, tf.int64), tf.constant(-1, tf.int64)),
        lambda state, label: (state[0] + 1, tf.maximum(state[1], tf.cast(label, tf.int64))),
    )
    return int(count), int(top) + 1


def prepare_data(
    data: Any, *, recipe: Recipe, validation_data: Any, class_names: Any, model: Any,
    strategy: Any,
) -> TrainingData:
    """Phase 1: the training and validation pipelines from arrays, an image folder or a dataset.

    ``data`` is what `train` takes: a pair ``(images, labels)`` of arrays, an
    `ArraySplits`, an image folder path (or CIFAR-10's release, see
    `load_data`), an `ImageFolder` or `ImageFolderSplits`, or a
    ``tf.data.Dataset``. Errors name it ``data``.
    """
    image_size = recipe.image_size
    model_size = None
    if model is not None:
        shape = tuple(model.input_shape[1:])
        model_size = shape[0] if shape[0] == shape[1] else None
        if image_size is not None and model_size is not None and image_size != model_size:
            raise invalid("image_size", f"None or the model's input side ({model_size})", image_size)
    model_classes = int(model.output_shape[-1]) if model is not None else None
    options = dict(recipe=recipe, model_classes=model_classes, strategy=strategy)

    if is_path(data):
        data = load_data(data, validation_fraction=0.0 if validation_data is not None
                         else recipe.validation_fraction, seed=recipe.seed)
    if isinstance(data, ArraySplits):
        if class_names is None:
            class_names = data.class_names
        if validation_data is None:
            validation_data = data.validation
        prepared = _array_data(data.train, validation_data=validation_data,
                               class_names=class_names, model=model, **options)
        return dataclasses.replace(prepared, test=data.test)
    if isinstance(data, (ImageFolder, ImageFolderSplits)):
        return _folder_data(
            data, validation_data=validation_data, class_names=class_names,
            image_size=image_size or model_size or recipe.file_image_size, **options,
        )
    if is_tf_dataset(data):
        return _dataset_data(
            data, validation_data=validation_data, class_names=class_names,
            image_size=image_size or model_size or recipe.file_image_size, **options,
        )
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise invalid(
            "data", "a pair (images, labels) of arrays, an image folder path, an ImageFolder "
            "or ImageFolderSplits, or a tf.data.Dataset of (image, label)", data,
            shown=f"data of type {type(data).__name__}",
        )
    return _array_data(tuple(data), validation_data=validation_data, class_names=class_names,
                       model=model, **options)


def _fewest_per_class(labels: np.ndarray, num_classes: int) -> int:
    return int(np.bincount(np.asarray(labels, np.int64), minlength=num_classes).min())


def _array_data(
    data: tuple[Any, Any], *, recipe: Recipe, validation_data: Any, class_names: Any, model: Any,
    model_classes: int | None, strategy: Any,
) -> TrainingData:
    images, labels = data
    batch_size, image_size = recipe.batch_size, recipe.image_size
    num_classes = model_classes or (len(class_names) if class_names is not None else None)
    if model is not None:
        image_shape = tuple(model.input_shape[1:])
    else:
        image_shape = (image_size, image_size, 3) if image_size else (None, None, 3)
    images, labels = check_images_and_labels(
        images, labels, num_classes=num_classes, image_shape=image_shape,
        images_argument="data", labels_argument="data",
    )
    if len(images) == 0:
        raise invalid("data", "at least one image", images, shown="no images (an empty array)")
    if model is None and images.shape[1] != images.shape[2]:
        raise invalid("data", "square images (rows == cols) for the model train builds", images,
                      shown=f"images of {images.shape[1]}x{images.shape[2]}")
    if num_classes is None:
        num_classes = max(int(labels.max()) + 1, 2)
    names = _check_class_names(class_names, num_classes)
    validation_argument = "validation_data" if validation_data is not None else "validation_fraction"
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise invalid("validation_data", "None or a pair (images, labels)", validation_data,
                          shown=f"validation_data of type {type(validation_data).__name__}")
        validation_data = check_images_and_labels(
            *validation_data, num_classes=num_classes, image_shape=images.shape[1:],
            images_argument="validation_data", labels_argument="validation_data",
        )
    elif recipe.validation_fraction > 0:
        if len(images) < 2 * num_classes:
            raise invalid(
                "data", f"at least two images per class ({2 * num_classes}) to hold out a "
                "validation share", images, mentions=("validation_fraction",),
                shown=f"{len(images)} images; hold out none with `validation_fraction` 0",
            )
        (images, labels), validation_data = split_validation(
            images, labels, recipe.validation_fraction, recipe.seed)
    validation_batch_size = max(batch_size, VALIDATION_BATCH_SIZE)
    drop_remainder = drops_remainder(len(images), batch_size, _replicas(strategy))
    distribution.check_even_batches(strategy, "batch_size", len(images), batch_size,
                                    "training images", drop_remainder=drop_remainder)
    if validation_data is not None:
        distribution.check_even_batches(
            strategy, validation_argument, len(validation_data[0]), validation_batch_size,
            "validation images",
        )
    train_ds = make_dataset(
        images, labels, batch_size=batch_size, training=True, seed=recipe.seed,
        padding=recipe.padding if recipe.augment else None, num_classes=num_classes,
        random_erasing=recipe.random_erasing, cutmix=recipe.uses_cutmix(),
        drop_remainder=drop_remainder,
    )
    val_ds = None
    if validation_data is not None:
        val_ds = make_dataset(*validation_data, batch_size=validation_batch_size, num_classes=num_classes)
    return TrainingData(
        train=train_ds, validation=val_ds,
        steps_per_epoch=_steps(len(images), batch_size, drop_remainder),
        num_train=len(images), num_validation=0 if validation_data is None else len(validation_data[0]),
        image_size=int(images.shape[1]), num_classes=num_classes, class_names=names,
        validation_source=None if validation_data is None else tuple(validation_data),
        validation_per_class=0 if validation_data is None
        else _fewest_per_class(validation_data[1], num_classes),
    )


def _folder_data(
    data: Any, *, recipe: Recipe, validation_data: Any, class_names: Any, image_size: int,
    model_classes: int | None, strategy: Any,
) -> TrainingData:
    batch_size, seed = recipe.batch_size, recipe.seed
    if isinstance(data, ImageFolderSplits):
        splits = data
    else:
        validation, train_folder = None, data
        if validation_data is None and recipe.validation_fraction > 0:
            train_folder, validation = data.split(recipe.validation_fraction, seed)
        splits = ImageFolderSplits(train_folder, validation, None, data.class_names, "classes")
    if validation_data is not None:
        if is_path(validation_data):
            validation_data = load_image_folder(validation_data, validation_fraction=0.0,
                                                argument="validation_data").train
        if not isinstance(validation_data, ImageFolder):
            raise invalid("validation_data", "None, an image folder path or an ImageFolder with "
                          "image-folder training data", validation_data,
                          shown=f"validation_data of type {type(validation_data).__name__}")
        if validation_data.class_names != splits.class_names:
            raise invalid("validation_data", f"the training folders' classes {splits.class_names}",
                          validation_data.class_names)
        splits = dataclasses.replace(splits, validation=validation_data)
    names = splits.class_names
    if class_names is not None and tuple(class_names) != names:
        raise invalid("class_names", f"None or the folder names, sorted {names}", class_names)
    if model_classes is not None and model_classes != len(names):
        raise invalid("model", f"a classifier with {len(names)} outputs, one per class folder",
                      model_classes, shown=f"a model with {model_classes} outputs")
    train_folder = splits.train
    drop_remainder = drops_remainder(len(train_folder), batch_size, _replicas(strategy))
    cache = _resolve_cache(recipe.cache, train_folder, image_size)
    options = dict(
        image_size=image_size, seed=seed, augment=recipe.augment, num_classes=len(names),
        random_erasing=recipe.random_erasing, cutmix=recipe.uses_cutmix(),
    )
    workers, index = distribution.worker_shard(strategy)
    if workers > 1:
        train_ds, steps = sharded_file_dataset(strategy, train_folder, batch_size, cache, options)
        print(f"worker {index} of {workers} reads {len(train_folder) // workers:,} of "
              f"{len(train_folder):,} training files", flush=True)
    else:
        train_ds = make_file_dataset(
            train_folder, batch_size=batch_size, training=True, drop_remainder=drop_remainder,
            cache=cache, **options,
        )
        steps = _steps(len(train_folder), batch_size, drop_remainder)
    val_ds = None
    if splits.validation is not None:
        # Validated as the model will be evaluated: the crop and resize it declares.
        val_ds = make_file_dataset(
            splits.validation, batch_size=max(batch_size, VALIDATION_BATCH_SIZE),
            cache=_resolve_cache("auto", splits.validation, image_size), **options,
            crop_fraction=recipe.evaluation_crop(image_size), interpolation=recipe.interpolation,
        )
    return TrainingData(
        train=train_ds, validation=val_ds, steps_per_epoch=steps, num_train=len(train_folder),
        num_validation=0 if splits.validation is None else len(splits.validation),
        image_size=image_size, num_classes=len(names), class_names=names, test=splits.test,
        validation_source=splits.validation,
        validation_per_class=0 if splits.validation is None
        else _fewest_per_class(splits.validation.labels, len(names)),
    )


def sharded_file_dataset(
    strategy: Any, folder: ImageFolder, batch_size: int, cache: Any, options: dict
) -> tuple[Any, int]:
    """Each worker's own share of the files, read by it alone, in per-replica batches.

    Every worker takes the same number of files (``len(folder) // workers``,
    the last few of a larger share left out), so that all run the same
    number of steps and none waits at a collective for a batch that never comes.
    """
    import tensorflow as tf

    workers, _ = distribution.worker_shard(strategy)
    share = len(folder) // workers
    per_replica = batch_size // strategy.num_replicas_in_sync
    local_replicas = max(1, strategy.num_replicas_in_sync // workers)
    steps = max(1, share // (per_replica * local_replicas))

    def dataset_fn(context: tf.distribute.InputContext) -> Any:
        own = folder.shard(context.num_input_pipelines, context.input_pipeline_id)
        own = own.subset(np.arange(share))
        return make_file_dataset(
            own, batch_size=context.get_per_replica_batch_size(batch_size), training=True,
            drop_remainder=True, cache=cache, **options,
        )

    return strategy.distribute_datasets_from_function(dataset_fn), steps


def _dataset_data(
    dataset: Any, *, recipe: Recipe, validation_data: Any, class_names: Any, image_size: int,
    model_classes: int | None, strategy: Any,
) -> TrainingData:
    batch_size = recipe.batch_size
    count, top = _count_dataset(dataset, "data")
    if count == 0:
        raise invalid("data", "a dataset with at least one (image, label)", dataset,
                      shown="an empty dataset")
    num_classes = model_classes or (len(class_names) if class_names is not None else max(top, 2))
    if top > num_classes:
        raise invalid("data", f"labels in 0..{num_classes - 1}", dataset, shown=f"a label {top - 1}")
    names = _check_class_names(class_names, num_classes)
    drop_remainder = drops_remainder(count, batch_size, _replicas(strategy))
    options = dict(image_size=image_size, num_classes=num_classes)
    train_ds = make_image_dataset(
        dataset, batch_size=batch_size, training=True, seed=recipe.seed, augment=recipe.augment,
        random_erasing=recipe.random_erasing, cutmix=recipe.uses_cutmix(),
        drop_remainder=drop_remainder, shuffle_buffer=count, **options,
    )
    val_ds, num_validation = None, 0
    if validation_data is not None:
        if not is_tf_dataset(validation_data):
            raise invalid("validation_data", "None or a tf.data.Dataset of (image, label) with a "
                          "dataset as training data", validation_data,
                          shown=f"validation_data of type {type(validation_data).__name__}")
        num_validation, _ = _count_dataset(validation_data, "validation_data")
        val_ds = make_image_dataset(
            validation_data, batch_size=max(batch_size, VALIDATION_BATCH_SIZE), **options
        )
    return TrainingData(
        train=train_ds, validation=val_ds,
        steps_per_epoch=_steps(count, batch_size, drop_remainder), num_train=count,
        num_validation=num_validation, image_size=image_size, num_classes=num_classes,
        class_names=names, validation_source=validation_data,
        # A dataset's classes are not counted: its share is judged by its size alone.
        validation_per_class=num_validation,
    )
