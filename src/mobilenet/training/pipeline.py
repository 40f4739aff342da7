"""The tf.data input pipelines of training and evaluation: from arrays, from image files."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mobilenet._validation import check_bool, check_int, check_number, check_positive_int
from mobilenet.datasets.cifar10 import CLASS_NAMES, IMAGE_SHAPE
from mobilenet.preprocessing import eval_transform, file_dataset, skip_unreadable

__all__ = [
    "cache_bytes",
    "load_folder_images",
    "make_dataset",
    "make_file_dataset",
    "make_image_dataset",
]


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 128,
    training: bool = False,
    seed: int = 0,
    padding: int | None = 4,
    num_classes: int = len(CLASS_NAMES),
    random_erasing: float = 0.0,
    cutmix: bool = False,
    drop_remainder: bool = False,
) -> Any:
    """A ``tf.data.Dataset`` of pixel images and one-hot labels.

    Images stay pixels (0-255, as float32): the models `train` builds
    normalise inside, so what the pipeline feeds them is what a user or a
    phone feeds them later. With ``training``, each epoch is shuffled (seeded)
    and every image is augmented: padded by ``padding`` pixels (reflected),
    randomly cropped back to its size and flipped left-right with
    probability 1/2. Two stronger augmentations, for long runs that
    overfit, are off by default: ``random_erasing`` (Keras's
    ``RandomErasing``: with that probability a random rectangle of 2-33% of
    the image is filled with noise) and ``cutmix`` (Keras's ``CutMix``: each
    image gets a patch of another image of the batch, and the labels are
    mixed by area; the area kept is drawn from Beta(0.5, 0.5) for every
    image).

    Args:
        images: uint8 (or float, 0-255) images ``(n, rows, cols, 3)``.
        labels: int labels ``(n,)`` in ``0..num_classes-1``.
        batch_size: int >= 1.
        training: bool, shuffle and augment.
        seed: seed of the shuffle and the augmentation.
        padding: int >= 0, pixels of padding before the random crop (0: no
            crop); None turns augmentation off (training then only shuffles).
        num_classes: int, the length of the one-hot labels.
        random_erasing: float in [0, 1], the share of training images that
            get a random rectangle erased.
        cutmix: bool, CutMix within each training batch.
        drop_remainder: bool, leave out the short last batch of each pass
            (with ``training`` the images are reshuffled every epoch, so a
            different few miss each epoch). `train` sets it when there is at
            least one full batch.

    Returns:
        A batched, prefetched dataset of ``(float32 pixels, float32 one-hot labels)``,
        with ``tf.data``'s autotuning off (its per-iterator thread stalled
        epochs at their start; ``docs/cifar10.md``). ``dataset.with_options``
        turns it back on.

    Example:

    ```python
    import numpy as np
    from mobilenet.training.pipeline import make_dataset

    images = np.zeros((8, 32, 32, 3), np.uint8)
    train_ds = make_dataset(images, np.arange(8) % 10, batch_size=4, training=True)
    ```
    """
    import tensorflow as tf

    batch_size = check_positive_int(batch_size, "batch_size")
    if padding is not None:
        padding = check_int(padding, "padding", minimum=0)
    random_erasing = check_number(random_erasing, "random_erasing", low=0.0, high=1.0, high_open=False)
    check_bool(cutmix, "cutmix")
    check_bool(drop_remainder, "drop_remainder")
    images = np.asarray(images)
    image_shape = images.shape[1:] if images.ndim == 4 else IMAGE_SHAPE
    dataset = tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, np.int32)))
    if training:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        if padding is not None:
            dataset = _with_seeds(dataset, seed).map(
                _pad_crop_flip(padding, image_shape), num_parallel_calls=tf.data.AUTOTUNE
            )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(
        lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if training and (random_erasing or cutmix):
        dataset = dataset.map(_batch_augmentation(random_erasing, cutmix, seed))
    # tf.data's autotuning runs a model thread per iterator, and Keras makes a
    # new iterator every epoch: destroying the old one waited for that thread,
    # which left both cores idle for up to 5 s at the start of some epochs
    # (13 of 78 in the main job's runs; docs/cifar10.md, "Input pipeline").
    # Without it, AUTOTUNE means as many map calls at once as cores (at most
    # 16) and a prefetch buffer that grows while the model waits, which keeps
    # up with training.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def _batch_augmentation(random_erasing: float, cutmix: bool, seed: int) -> Any:
    """Keras's batch augmentation layers as one ``tf.data`` map function."""
    import keras

    # A pair: Keras reads a single float factor f as a probability drawn from
    # [0, f] for each image, which would erase only half the share asked for.
    erase = keras.layers.RandomErasing(
        factor=(random_erasing, random_erasing), value_range=(0, 255), seed=seed
    ) if random_erasing else None
    # A pair again: with a single float f, Keras draws each batch's Beta
    # parameter from [0, f]: a batch drawn near 0 is barely mixed, one near 1
    # gets every share alike, and the epoch loss jumps with the draws.
    # Beta(0.5, 0.5) mixes about as hard on average, every batch alike.
    mix = keras.layers.CutMix(factor=(0.5, 0.5), seed=seed) if cutmix else None

    def augment(images: Any, labels: Any) -> Any:
        if erase is not None:
            images = erase(images, training=True)
        if mix is not None:
            mixed = mix({"images": images, "labels": labels}, training=True)
            images, labels = mixed["images"], mixed["labels"]
        return images, labels

    return augment


# --------------------------------------------------------------------------- image files


def _decode(data: Any, orientation: Any) -> Any:
    """A file's bytes as an upright RGB image (`mobilenet.images`)."""
    from mobilenet.images import apply_orientation, decode_rgb

    image = apply_orientation(decode_rgb(data), orientation)
    image.set_shape([None, None, 3])
    return image


def _resize(image: Any, image_size: int) -> Any:
    import tensorflow as tf

    return tf.image.resize(image, (image_size, image_size), antialias=True)


def _random_resized_crop(image: Any, seed: Any, image_size: int, recipe: Any) -> Any:
    """Inception's crop: a random box of 8-100% of the area, 3/4-4/3 aspect, resized."""
    import tensorflow as tf

    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.1,
        aspect_ratio_range=recipe.crop_aspect_ratio,
        area_range=recipe.crop_area,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return _resize(tf.slice(image, begin, size), image_size)


def cache_bytes(folder: Any, image_size: int) -> int:
    """What `make_file_dataset` holds in memory when it caches ``folder`` at ``image_size``."""

    from mobilenet.training.recipe import RECIPE

    if RECIPE.is_small(image_size):
        return len(folder) * image_size * image_size * 3
    return sum(os.path.getsize(path) for path in folder.files)


def make_file_dataset(
    folder: Any,
    *,
    image_size: int,
    batch_size: int = 128,
    training: bool = False,
    seed: int = 0,
    augment: bool = True,
    num_classes: int | None = None,
    random_erasing: float = 0.0,
    cutmix: bool = False,
    drop_remainder: bool = False,
    cache: str | None = None,
    shard: tuple[int, int] = (1, 0),
    crop_fraction: float | None = None,
    interpolation: str = "bilinear",
) -> Any:
    """A ``tf.data.Dataset`` that streams an image folder's files: decode, augment, batch.

    Memory holds the list of file names, the shuffle of that list and a few
    batches in flight, whatever the number of images, unless ``cache`` keeps
    the data after its first pass. Every image is decoded by TensorFlow (JPEG,
    PNG, GIF's first frame, BMP, WebP; grayscale and RGBA become RGB), turned
    upright by its EXIF orientation and sized to ``image_size`` square:

    - up to 64 px (`Recipe.small_image_max`), the 32x32 recipe: the whole
      image resized, then in training padded by 4 pixels (reflected),
      randomly cropped back and flipped left-right;
    - above, in training, Inception's random resized crop (8-100% of the
      area, aspect 3/4 to 4/3) and a left-right flip, as the paper trained;
      in evaluation, a central crop of 87.5% of each side, resized.

    A file that will not decode (damage inside a complete file, which
    listing cannot see) is left out: at the end of the pass that first meets
    it, a ``UserWarning`` names it and it is added to ``folder.unreadable``;
    the other files keep their order. It costs nothing while no file is
    broken (benchmarks/RESULTS.md, "Files that will not decode").

    Args:
        folder: a `mobilenet.datasets.ImageFolder`.
        image_size: int >= 1, the side of the square images fed to the model.
        batch_size: int >= 1.
        training: shuffle the files every epoch (seeded) and augment.
        seed: seed of the shuffle and the augmentation.
        augment: with ``training``, crop and flip (False: only shuffle).
        num_classes: length of the one-hot labels (default: the folder's classes).
        random_erasing: float in [0, 1], share of training images with a
            random rectangle erased (`make_dataset`).
        cutmix: bool, CutMix within each training batch (`make_dataset`).
        drop_remainder: leave out each pass's short last batch.
        cache: None (stream every epoch), ``"memory"``, or a file path
            prefix for ``tf.data``'s file cache. What is cached is the
            decoded, resized image up to 64 px, else the file's bytes (the
            random crop needs the whole image).
        shard: ``(number of workers, this worker's index)``: the worker
            reads only every n-th file from its index, chosen before any
            file is read (`mobilenet.training.distribution.worker_shard`).
        crop_fraction: evaluation's crop above 64 px (None: `Recipe.central_crop`).
        interpolation: how evaluation resizes (`mobilenet.preprocessing.INTERPOLATIONS`).

    Returns:
        A batched, prefetched dataset of ``(float32 pixels 0-255, float32
        one-hot labels)``, with ``tf.data``'s autotuning off, and its
        auto-sharding off in training (this function shards by itself) and
        by data otherwise.

    Example:

    ```python
    import os

    import numpy as np
    from PIL import Image
    from mobilenet.datasets import load_image_folder
    from mobilenet.training.pipeline import make_file_dataset

    for name in ("cat", "dog"):
        os.makedirs(f"pets/{name}", exist_ok=True)
        for i in range(4):
            Image.fromarray(np.full((50, 70, 3), 60 * i, np.uint8)).save(f"pets/{name}/{i}.jpg")
    folder = load_image_folder("pets", validation_fraction=0).train
    images, labels = next(iter(make_file_dataset(folder, image_size=96, batch_size=8, training=True)))
    images.shape, labels.shape  # (8, 96, 96, 3), (8, 2)
    ```
    """
    import tensorflow as tf

    from mobilenet.training.recipe import RECIPE

    image_size = check_positive_int(image_size, "image_size")
    batch_size = check_positive_int(batch_size, "batch_size")
    random_erasing = check_number(random_erasing, "random_erasing", low=0.0, high=1.0, high_open=False)
    check_bool(cutmix, "cutmix")
    num_classes = len(folder.class_names) if num_classes is None else num_classes
    listed, (workers, index) = folder, shard
    if workers > 1:
        folder = folder.shard(workers, index)
    small = RECIPE.is_small(image_size)
    dataset = tf.data.Dataset.from_tensor_slices(
        (list(folder.files), folder.labels.astype(np.int32), folder.orientations)
    )
    parallel = tf.data.AUTOTUNE

    def cached(ds: Any) -> Any:
        if cache is None:
            return ds
        return ds.cache() if cache == "memory" else ds.cache(str(cache))

    def shuffled(ds: Any) -> Any:
        return ds.shuffle(len(folder), seed=seed, reshuffle_each_iteration=True) if training else ds

    if small:
        def load(path: Any, label: Any, orientation: Any) -> Any:
            # The evaluation transform (no crop at this size), kept as uint8 for the cache;
            # training's pad-crop-flip then works on what evaluation sees.
            image = eval_transform(_decode(tf.io.read_file(path), orientation), size=image_size)
            return tf.cast(image, tf.uint8), label

        # Cached: decode once, shuffle the decoded images. Streamed: shuffle the names.
        if cache is None:
            dataset = skip_unreadable(shuffled(dataset), load, listed)
        else:
            dataset = shuffled(cached(skip_unreadable(dataset, load, listed)))
        if training and augment:
            dataset = _with_seeds(dataset, seed).map(
                _pad_crop_flip(RECIPE.padding, (image_size, image_size, 3)),
                num_parallel_calls=parallel,
            )
    else:
        def read(path: Any, label: Any, orientation: Any) -> Any:
            return tf.io.read_file(path), label, orientation

        dataset = shuffled(dataset) if cache is None else shuffled(cached(dataset.map(read)))
        if cache is None:
            dataset = dataset.map(read, num_parallel_calls=parallel)
        if training and augment:
            def crop(example: Any, seed_pair: Any) -> Any:
                data, label, orientation = example
                image = _random_resized_crop(_decode(data, orientation), seed_pair[:2], image_size, RECIPE)
                return tf.image.stateless_random_flip_left_right(image, seed=seed_pair[2:]), label

            dataset = skip_unreadable(_with_seeds(dataset, seed), crop, listed)
        else:
            def center(data: Any, label: Any, orientation: Any) -> Any:
                # The one evaluation transform (mobilenet.preprocessing), as `evaluate` and
                # `mobilenet predict` feed images: validation scores what they will answer.
                image = eval_transform(
                    _decode(data, orientation), size=image_size, interpolation=interpolation,
                    crop_fraction=RECIPE.central_crop if crop_fraction is None else crop_fraction,
                )
                return image, label

            dataset = skip_unreadable(dataset, center, listed)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(
        lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)),
        num_parallel_calls=parallel,
    )
    if training and (random_erasing or cutmix):
        dataset = dataset.map(_batch_augmentation(random_erasing, cutmix, seed))
    options = tf.data.Options()
    options.autotune.enabled = False  # see make_dataset
    # Training reads its own share (`shard`), chosen before any file is read; evaluation
    # and validation under a multi-worker strategy let tf.data give each worker its part
    # of every batch (off there, every worker predicted the first half of each batch).
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = policy.OFF if training else policy.DATA
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def _with_seeds(dataset: Any, seed: int) -> Any:
    """Pairs every element with 4 fresh random ints, new each epoch, for stateless ops."""
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4)
    return tf.data.Dataset.zip((dataset, seeds))


def _pad_crop_flip(padding: int, image_shape: tuple[int, int, int]) -> Any:
    """The small-image augmentation: reflect-pad, random crop back, random left-right flip."""
    import tensorflow as tf

    def augment(example: Any, seed_pair: Any) -> Any:
        image, label = example
        if padding:
            pads = [[padding, padding], [padding, padding], [0, 0]]
            image = tf.pad(image, pads, mode="REFLECT")
            image = tf.image.stateless_random_crop(image, image_shape, seed=seed_pair[:2])
        return tf.image.stateless_random_flip_left_right(image, seed=seed_pair[2:]), label

    return augment


def make_image_dataset(
    dataset: Any,
    *,
    image_size: int,
    num_classes: int,
    batch_size: int = 128,
    training: bool = False,
    seed: int = 0,
    augment: bool = True,
    random_erasing: float = 0.0,
    cutmix: bool = False,
    drop_remainder: bool = False,
    shuffle_buffer: int = 10_000,
) -> Any:
    """Batches a ``tf.data.Dataset`` of unbatched ``(pixels, label)`` with the recipe's augmentation.

    The images (any size, pixels 0-255, 1 or 3 channels) get what
    `make_file_dataset` gives decoded files: resized to ``image_size`` up to
    64 px, with pad-crop-flip in training; above, Inception's random resized
    crop and a flip in training, a central crop otherwise.

    Args:
        dataset: a dataset of ``(image (rows, cols, channels), integer label)``.
        image_size: int, the side of the square images fed to the model.
        num_classes: int, the length of the one-hot labels.
        batch_size: int >= 1.
        training: shuffle (within ``shuffle_buffer`` elements) and augment.
        seed: seed of the shuffle and the augmentation.
        augment: with ``training``, crop and flip.
        random_erasing: see `make_dataset`.
        cutmix: see `make_dataset`.
        drop_remainder: leave out each pass's short last batch.
        shuffle_buffer: elements the shuffle draws from.

    Returns:
        A batched, prefetched dataset of ``(float32 pixels, float32 one-hot labels)``.
    """
    import tensorflow as tf

    from mobilenet.training.recipe import RECIPE

    small = RECIPE.is_small(image_size)

    def rgb(image: Any, label: Any) -> Any:
        image = tf.cast(image, tf.float32)
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        return image, tf.cast(label, tf.int32)

    dataset = dataset.map(rgb, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if training and augment and small:
        dataset = dataset.map(lambda x, y: (_resize(x, image_size), y))
        dataset = _with_seeds(dataset, seed).map(
            _pad_crop_flip(RECIPE.padding, (image_size, image_size, 3)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    elif training and augment:
        def crop(example: Any, seed_pair: Any) -> Any:
            image, label = example
            image = _random_resized_crop(image, seed_pair[:2], image_size, RECIPE)
            return tf.image.stateless_random_flip_left_right(image, seed=seed_pair[2:]), label

        dataset = _with_seeds(dataset, seed).map(crop, num_parallel_calls=tf.data.AUTOTUNE)
    elif small:
        dataset = dataset.map(lambda x, y: (eval_transform(x, size=image_size), y))
    else:
        dataset = dataset.map(lambda x, y: (
            eval_transform(x, size=image_size, crop_fraction=RECIPE.central_crop), y))
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(
        lambda x, y: (x, tf.one_hot(y, num_classes)), num_parallel_calls=tf.data.AUTOTUNE,
    )
    if training and (random_erasing or cutmix):
        dataset = dataset.map(_batch_augmentation(random_erasing, cutmix, seed))
    options = tf.data.Options()
    options.autotune.enabled = False  # see make_dataset
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def load_folder_images(
    folder: Any,
    image_size: int | tuple[int, int],
    limit: int | None = None,
    seed: int = 0,
    *,
    crop_fraction: float | None = None,
    interpolation: str = "bilinear",
) -> np.ndarray:
    """Pixels of ``folder``'s files, as evaluation feeds them to a model of side ``image_size``.

    The one evaluation transform (`mobilenet.preprocessing.file_dataset`):
    what ``mobilenet evaluate`` and ``mobilenet predict`` feed the model, so
    int8 calibration and verification see the images the file will see.

    Args:
        folder: a `mobilenet.datasets.ImageFolder`.
        image_size: int or ``(height, width)``, the model's input size.
        limit: optional number of files, a seeded random choice (for int8
            calibration, a few hundred of every class mixed).
        seed: seed of that choice.
        crop_fraction: the evaluation crop (None: the model's default,
            `mobilenet.preprocessing.default_crop_fraction`).
        interpolation: the resize method.

    Returns:
        A uint8 array ``(n, height, width, 3)``, in the files' order.
    """
    from mobilenet.preprocessing import default_crop_fraction

    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if crop_fraction is None:
        crop_fraction = default_crop_fraction(min(size))
    if limit is not None and limit < len(folder):
        chosen = np.sort(np.random.default_rng(seed).permutation(len(folder))[:limit])
        folder = folder.subset(chosen)
    dataset = file_dataset(folder.files, folder.orientations, size=size, batch_size=256,
                           crop_fraction=crop_fraction, interpolation=interpolation, folder=folder)
    batches = [np.asarray(images) for images in dataset]
    pixels = np.concatenate(batches) if batches else np.zeros((0, *size, 3))
    return pixels.astype(np.uint8)
