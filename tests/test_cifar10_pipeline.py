"""Tests of `mobilenet.cifar10.pipeline.make_dataset`."""

from __future__ import annotations

import numpy as np

from mobilenet import cifar10

def test_dataset_keeps_pixels_and_one_hots():
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 3, 9, 3, 1])
    batches = list(cifar10.make_dataset(images, labels, batch_size=2))
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    # The models normalise inside, so the pipeline feeds the pixels themselves.
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, images.astype(np.float32))
    np.testing.assert_array_equal(y, np.eye(10)[labels])


def test_training_dataset_crops_and_flips_reproducibly():
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(16) % 10
    dataset = cifar10.make_dataset(images, labels, batch_size=16, training=True, seed=3)
    first = next(iter(dataset))
    again = next(iter(cifar10.make_dataset(images, labels, batch_size=16, training=True, seed=3)))
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
