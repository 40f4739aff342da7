"""Tests of `mobilenet.training.pipeline.make_dataset`: the array pipeline `train` feeds."""

from __future__ import annotations

import numpy as np
import pytest

from mobilenet.training import make_dataset


def test_dataset_keeps_pixels_and_one_hots():
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 3, 9, 3, 1])
    batches = list(make_dataset(images, labels, batch_size=2))
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    # The models normalise inside, so the pipeline feeds the pixels themselves.
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, images.astype(np.float32))
    np.testing.assert_array_equal(y, np.eye(10)[labels])


def test_pipeline_runs_without_tf_data_autotuning_and_gives_the_same_batches():
    # Its model thread stalled some epochs for seconds at their start
    # (benchmarks/epoch_stalls.py); turning it off must change the speed only.
    import tensorflow as tf

    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 40)

    def two_epochs(autotune: bool | None) -> list:
        # A new dataset each time: its Keras augmentation layers keep their own seed state.
        dataset = make_dataset(images, labels, batch_size=8, training=True, seed=3,
                                       random_erasing=0.5, cutmix=True)
        if autotune is not None:
            options = tf.data.Options()
            options.autotune.enabled = autotune
            dataset = dataset.with_options(options)
        assert dataset.options().autotune.enabled is bool(autotune)
        return [np.asarray(tensor) for _ in range(2) for batch in dataset for tensor in batch]

    assert make_dataset(images, labels).options().autotune.enabled is False
    shipped, tuned = two_epochs(None), two_epochs(True)
    assert len(shipped) == len(tuned) == 2 * 5 * 2
    for ours, theirs in zip(shipped, tuned):
        np.testing.assert_array_equal(ours, theirs)


def test_drop_remainder_leaves_out_a_different_short_batch_each_epoch():
    images, labels = _distinct_images(10)
    dataset = make_dataset(images, labels, batch_size=4, training=True, padding=None,
                                   drop_remainder=True, seed=2)
    kept = []
    for _ in range(2):
        batches = list(dataset)
        assert [len(batch[0]) for batch in batches] == [4, 4]
        # Image i is labelled i (_distinct_images): the labels name the images kept.
        kept.append(sorted(int(i) for batch in batches for i in np.argmax(np.asarray(batch[1]), axis=1)))
        assert len(set(kept[-1])) == 8
    assert kept[0] != kept[1]  # reshuffled: not always the same two left out


def test_training_dataset_crops_and_flips_reproducibly():
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(16) % 10
    dataset = make_dataset(images, labels, batch_size=16, training=True, seed=3)
    first = next(iter(dataset))
    again = next(iter(make_dataset(images, labels, batch_size=16, training=True, seed=3)))
    np.testing.assert_array_equal(first[0], again[0])
    second_epoch = next(iter(dataset))
    assert not np.array_equal(first[0], second_epoch[0])  # reshuffled and re-augmented

    pixels = np.asarray(first[0]).astype(np.int64)
    sources = np.argmax(np.asarray(first[1]), axis=1)
    assert sorted(sources.tolist()) == sorted(labels.tolist())
    transforms = set()
    for out, label in zip(pixels, sources):
        # Every output must be a 32x32 window of a reflect-padded training image, maybe mirrored.
        candidates = [images[i] for i in np.flatnonzero(labels == label)]
        found = None
        for image in candidates:
            padded = np.pad(image.astype(np.int64), ((4, 4), (4, 4), (0, 0)), mode="reflect")
            for flip in (False, True):
                source = padded[:, ::-1] if flip else padded
                for dy in range(9):
                    for dx in range(9):
                        if np.array_equal(source[dy : dy + 32, dx : dx + 32], out):
                            found = (flip, dy, dx)
                            break
                    if found:
                        break
                if found:
                    break
            if found:
                break
        assert found is not None
        transforms.add(found)
    assert len(transforms) > 4  # offsets and flips vary from image to image


def _distinct_images(n=10, seed=8):
    """n random images, image i labelled i, so a label names the image it came from."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return images, np.arange(n)


def test_random_erasing_replaces_one_rectangle_of_the_share_asked_for():
    images, labels = _distinct_images()
    # padding=None: no crop or flip, so every pixel outside the erased box is the source's.
    dataset = make_dataset(images, labels, batch_size=10, training=True, padding=None,
                                   random_erasing=1.0, seed=2)
    x, y = (np.asarray(t) for t in next(iter(dataset)))
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)  # labels untouched
    for image, label in zip(x, y.argmax(axis=1)):
        changed = np.any(image != images[label], axis=-1)
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        assert changed.any(), "random_erasing=1.0 erases every image"
        box = changed[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
        # One rectangle of noise (a noise pixel may equal the original by chance).
        assert box.mean() > 0.9
        assert changed.mean() < 0.34  # Keras's scale=(0.02, 0.33) of the area

    # A share of 0.5 erases about half the images (not a quarter: Keras reads a single
    # float factor as "a probability drawn from [0, factor]").
    many = np.repeat(images, 20, axis=0)
    dataset = make_dataset(many, np.repeat(labels, 20), batch_size=200, training=True,
                                   padding=None, random_erasing=0.5, seed=3)
    x, y = (np.asarray(t) for t in next(iter(dataset)))
    erased = np.mean([np.any(a != many[20 * l]) for a, l in zip(x, y.argmax(axis=1))])
    assert 0.38 < erased < 0.62  # 200 images: 0.5 +- 3.4 standard deviations


def test_cutmix_pastes_a_box_of_another_image_and_mixes_the_labels_by_area():
    images, labels = _distinct_images()
    dataset = make_dataset(images, labels, batch_size=10, training=True, padding=None,
                                   cutmix=True, seed=1)
    x, y = (np.asarray(t) for t in next(iter(dataset)))
    mixed = 0
    for image, label in zip(x, y):
        np.testing.assert_allclose(label.sum(), 1.0, atol=1e-6)
        sources = np.flatnonzero(label > 0)
        assert 1 <= len(sources) <= 2
        # Every pixel comes from one of the images the label names ...
        shares = {int(s): np.all(image == images[s], axis=-1) for s in sources}
        assert np.logical_or.reduce(list(shares.values())).all()
        if len(sources) == 2:
            mixed += 1
            for source, pixels in shares.items():
                # ... in the proportion of the label, to within the box's rounding to whole
                # pixels (Keras weighs the labels by the box before rounding: < 65/1024).
                assert abs(pixels.mean() - label[source]) < 65 / 1024
    assert mixed >= 5  # most images of the batch got a patch of another one


def test_cutmix_draws_the_mixing_share_from_beta_half_half_in_every_batch():
    # With 256 distinct images, each one-hot column names one source image, so
    # a label's larger weight is the share lam kept of one image (or 1 - lam).
    # For lam ~ Beta(0.5, 0.5) (the arcsine law), P(1/4 < lam < 3/4) = 1/3
    # exactly, in every batch. Keras's default CutMix draws the Beta parameter
    # per batch from U(0, 1), so its batches scatter (shares 0.16-0.41 seen);
    # Beta(1, 1) gives 1/2.
    images, labels = _distinct_images(256)
    dataset = make_dataset(images, labels, num_classes=256, batch_size=256,
                                   training=True, padding=None, cutmix=True, seed=3)
    shares = []
    for _ in range(16):  # each pass is a new epoch: a new shuffle and new draws
        y = np.asarray(next(iter(dataset))[1])
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
        shares.append(np.mean(y.max(axis=1) < 0.75))
    # One batch's share has a standard deviation of sqrt(2/9/256) = 0.03.
    assert all(abs(share - 1 / 3) < 0.1 for share in shares), shares
    assert abs(np.mean(shares) - 1 / 3) < 0.03, shares


def test_batch_augmentation_repeats_with_the_seed_and_changes_each_epoch():
    images, labels = _distinct_images()
    make = lambda: make_dataset(  # noqa: E731
        images, labels, batch_size=10, training=True, random_erasing=0.5, cutmix=True, seed=4)
    dataset = make()
    first, again = next(iter(dataset)), next(iter(make()))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], next(iter(dataset))[0])


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(random_erasing=1.5), "`random_erasing`: expected a number in [0, 1]. Received: random_erasing=1.5"),
        (dict(random_erasing=-0.1), "`random_erasing`"),
        (dict(cutmix="yes"), "`cutmix`: expected True or False. Received: cutmix='yes'"),
        (dict(drop_remainder=1), "`drop_remainder`: expected True or False. Received: drop_remainder=1"),
    ],
)
def test_batch_augmentation_arguments_are_checked(change, message):
    images, labels = _distinct_images(2)
    with pytest.raises(ValueError) as error:
        make_dataset(images, labels, training=True, **change)
    assert message in str(error.value)
