"""A training run's data: arrays, an image folder or a ``tf.data.Dataset``, made into pipelines.

`prepare_data` is the first phase of `mobilenet.training.train`: it checks
the data, splits off validation images, picks the image size and the class
names, and builds the ``tf.data`` pipelines (`mobilenet.training.pipeline`),
one share of the files per worker under a multi-worker strategy.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import numpy as np

from mobilenet._validation import check_positive_int, invalid
from mobilenet.datasets.arrays import check_images_and_labels, split_validation
from mobilenet.datasets.image_folder import ImageFolder, ImageFolderSplits, load_image_folder
from mobilenet.training import distribution
from mobilenet.training.pipeline import cache_bytes, make_dataset, make_file_dataset, make_image_dataset
from mobilenet.training.recipe import RECIPE

__all__ = [
    "CACHE_CHOICES",
    "TrainingData",
    "check_cache",
    "is_path",
    "is_tf_dataset",
    "prepare_data",
    "sharded_file_dataset",
]

#: What ``cache`` accepts besides a file path.
CACHE_CHOICES = ("auto", "memory", None)
#: The smallest batch validation runs in (``batch_size`` if larger).
VALIDATION_BATCH_SIZE = RECIPE.evaluation_batch_size


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
    test: ImageFolder | None = None
    validation_source: Any = None


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


def check_cache(cache: Any) -> Any:
    if cache in CACHE_CHOICES or cache == "none" or is_path(cache):
        return os.fspath(cache) if is_path(cache) and cache not in ("auto", "memory", "none") else cache
    raise invalid("cache", "'auto', 'memory', None or a file path prefix", cache)


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
    data: Any, labels: Any, *, validation_data: Any, validation_fraction: float,
    class_names: Any, image_size: int | None, model: Any, batch_size: int, augment: bool,
    random_erasing: float, cutmix: bool, cache: Any, seed: int, strategy: Any,
) -> TrainingData:
    """Phase 1: the training and validation pipelines from arrays, an image folder or a dataset."""
    model_size = None
    if model is not None:
        shape = tuple(model.input_shape[1:])
        model_size = shape[0] if shape[0] == shape[1] else None
        if image_size is not None and model_size is not None and image_size != model_size:
            raise invalid("image_size", f"None or the model's input side ({model_size})", image_size)
    if image_size is not None:
        image_size = check_positive_int(image_size, "image_size")
    model_classes = int(model.output_shape[-1]) if model is not None else None
    common = dict(random_erasing=random_erasing, cutmix=cutmix)

    if is_path(data) or isinstance(data, (ImageFolder, ImageFolderSplits)):
        if labels is not None:
            raise invalid("y", "None with an image folder (the folders are the labels)", labels)
        return _folder_data(
            data, validation_data=validation_data, validation_fraction=validation_fraction,
            class_names=class_names, image_size=image_size or model_size or RECIPE.image_size,
            model_classes=model_classes, batch_size=batch_size, augment=augment, cache=cache,
            seed=seed, strategy=strategy, **common,
        )
    if is_tf_dataset(data):
        if labels is not None:
            raise invalid("y", "None with a tf.data.Dataset of (image, label)", labels)
        return _dataset_data(
            data, validation_data=validation_data, class_names=class_names,
            image_size=image_size or model_size or RECIPE.image_size, model_classes=model_classes,
            batch_size=batch_size, augment=augment, seed=seed, **common,
        )
    return _array_data(
        data, labels, validation_data=validation_data, validation_fraction=validation_fraction,
        class_names=class_names, image_size=image_size, model=model, model_classes=model_classes,
        batch_size=batch_size, augment=augment, seed=seed, strategy=strategy, **common,
    )


def _array_data(
    images: Any, labels: Any, *, validation_data: Any, validation_fraction: float,
    class_names: Any, image_size: int | None, model: Any, model_classes: int | None,
    batch_size: int, augment: bool, random_erasing: float, cutmix: bool, seed: int,
    strategy: Any,
) -> TrainingData:
    num_classes = model_classes or (len(class_names) if class_names is not None else None)
    if model is not None:
        image_shape = tuple(model.input_shape[1:])
    else:
        image_shape = (image_size, image_size, 3) if image_size else (None, None, 3)
    images, labels = check_images_and_labels(
        images, labels, num_classes=num_classes, image_shape=image_shape,
        images_argument="x", labels_argument="y",
    )
    if len(images) == 0:
        raise invalid("x", "at least one image", images, shown="no images (an empty array)")
    if model is None and images.shape[1] != images.shape[2]:
        raise invalid("x", "square images (rows == cols) for the model train builds", images,
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
    elif validation_fraction > 0:
        (images, labels), validation_data = split_validation(images, labels, validation_fraction, seed)
    validation_batch_size = max(batch_size, VALIDATION_BATCH_SIZE)
    # An epoch's short last batch is left out (the images are reshuffled every
    # epoch, so a different few miss each time): 2,500 images in batches of 64
    # would end every epoch on a step from 4 images, whose BatchNorm statistics
    # and gradient are noise at the full learning rate (docs/cifar10.md measures
    # what it cost). With fewer images than one batch, that one batch is kept.
    drop_remainder = len(images) >= batch_size
    distribution.check_even_batches(strategy, "batch_size", len(images), batch_size,
                                    "training images", drop_remainder=drop_remainder)
    if validation_data is not None:
        distribution.check_even_batches(
            strategy, validation_argument, len(validation_data[0]), validation_batch_size,
            "validation images",
        )
    train_ds = make_dataset(
        images, labels, batch_size=batch_size, training=True, seed=seed,
        padding=RECIPE.padding if augment else None, num_classes=num_classes,
        random_erasing=random_erasing, cutmix=cutmix, drop_remainder=drop_remainder,
    )
    val_ds = None
    if validation_data is not None:
        val_ds = make_dataset(*validation_data, batch_size=validation_batch_size, num_classes=num_classes)
    return TrainingData(
        train=train_ds, validation=val_ds,
        steps_per_epoch=len(images) // batch_size if drop_remainder else 1,
        num_train=len(images), num_validation=0 if validation_data is None else len(validation_data[0]),
        image_size=int(images.shape[1]), num_classes=num_classes, class_names=names,
        validation_source=validation_data,
    )


def _folder_data(
    data: Any, *, validation_data: Any, validation_fraction: float, class_names: Any,
    image_size: int, model_classes: int | None, batch_size: int, augment: bool,
    random_erasing: float, cutmix: bool, cache: Any, seed: int, strategy: Any,
) -> TrainingData:
    if isinstance(data, ImageFolderSplits):
        splits = data
    elif isinstance(data, ImageFolder):
        validation, train_folder = None, data
        if validation_data is None and validation_fraction > 0:
            train_folder, validation = data.split(validation_fraction, seed)
        splits = ImageFolderSplits(train_folder, validation, None, data.class_names, "classes")
    else:
        splits = load_image_folder(
            data, validation_fraction=0.0 if validation_data is not None else validation_fraction,
            seed=seed, argument="x",
        )
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
    drop_remainder = len(train_folder) >= batch_size
    cache = _resolve_cache(cache, train_folder, image_size)
    options = dict(
        image_size=image_size, seed=seed, augment=augment, num_classes=len(names),
        random_erasing=random_erasing, cutmix=cutmix,
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
        steps = len(train_folder) // batch_size if drop_remainder else 1
    val_ds = None
    if splits.validation is not None:
        val_ds = make_file_dataset(
            splits.validation, batch_size=max(batch_size, VALIDATION_BATCH_SIZE),
            cache=_resolve_cache("auto", splits.validation, image_size), **options,
        )
    return TrainingData(
        train=train_ds, validation=val_ds, steps_per_epoch=steps, num_train=len(train_folder),
        num_validation=0 if splits.validation is None else len(splits.validation),
        image_size=image_size, num_classes=len(names), class_names=names, test=splits.test,
        validation_source=splits.validation,
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
    dataset: Any, *, validation_data: Any, class_names: Any, image_size: int,
    model_classes: int | None, batch_size: int, augment: bool, random_erasing: float,
    cutmix: bool, seed: int,
) -> TrainingData:
    count, top = _count_dataset(dataset, "x")
    if count == 0:
        raise invalid("x", "a dataset with at least one (image, label)", dataset,
                      shown="an empty dataset")
    num_classes = model_classes or (len(class_names) if class_names is not None else max(top, 2))
    if top > num_classes:
        raise invalid("x", f"labels in 0..{num_classes - 1}", dataset, shown=f"a label {top - 1}")
    names = _check_class_names(class_names, num_classes)
    drop_remainder = count >= batch_size
    options = dict(image_size=image_size, num_classes=num_classes)
    train_ds = make_image_dataset(
        dataset, batch_size=batch_size, training=True, seed=seed, augment=augment,
        random_erasing=random_erasing, cutmix=cutmix, drop_remainder=drop_remainder,
        shuffle_buffer=count, **options,
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
        steps_per_epoch=count // batch_size if drop_remainder else 1, num_train=count,
        num_validation=num_validation, image_size=image_size, num_classes=num_classes,
        class_names=names, validation_source=validation_data,
    )
