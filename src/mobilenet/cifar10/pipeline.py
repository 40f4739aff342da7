"""The tf.data input pipeline for CIFAR-10 training and evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np

from mobilenet._validation import check_bool, check_int, check_number, check_positive_int
from mobilenet.cifar10.data import CLASS_NAMES, IMAGE_SHAPE

__all__ = ["make_dataset"]


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
    from mobilenet.cifar10 import make_dataset

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
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4)

        def augment(example: Any, seed_pair: Any) -> Any:
            image, label = example
            crop_seed, flip_seed = seed_pair[:2], seed_pair[2:]
            if padding:
                pads = [[padding, padding], [padding, padding], [0, 0]]
                image = tf.pad(image, pads, mode="REFLECT")
                image = tf.image.stateless_random_crop(image, image_shape, seed=crop_seed)
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
            return image, label

        if padding is not None:
            dataset = tf.data.Dataset.zip((dataset, seeds)).map(
                augment, num_parallel_calls=tf.data.AUTOTUNE
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
