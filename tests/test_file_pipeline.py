"""Tests of the image-file pipeline (`mobilenet.training.pipeline.make_file_dataset`) and its helpers."""

from __future__ import annotations

import numpy as np
import pytest

from mobilenet.datasets import load_image_folder
from mobilenet.training.pipeline import (
    load_folder_images,
    make_file_dataset,
    make_image_dataset,
)
from tests.image_folders import CLASSES, save, write_pets

pytestmark = pytest.mark.tf_only  # tf.data is TensorFlow's by design


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    root = write_pets(tmp_path_factory.mktemp("pets") / "pets", per_class=8)
    return load_image_folder(root, validation_fraction=0).train


@pytest.mark.parametrize("size", [32, 96])
def test_every_format_and_mode_comes_out_rgb_at_the_size(pets, size):
    images, labels = next(iter(make_file_dataset(pets, image_size=size, batch_size=len(pets))))
    assert images.shape == (len(pets), size, size, 3) and images.dtype.name == "float32"
    assert labels.shape == (len(pets), len(CLASSES))
    assert 0.0 <= float(np.min(images)) and float(np.max(images)) <= 255.0
    # Every picture is brightest in its class's channel, grayscale files aside.
    modes = [path.rsplit(".", 1)[1] for path in pets.files]
    means = np.asarray(images).mean(axis=(1, 2))
    for mean, label, index in zip(means, pets.labels, range(len(pets))):
        channels_equal = np.ptp(mean) < 1.0
        assert channels_equal or int(np.argmax(mean)) == label, (pets.files[index], mean, modes[index])


def test_evaluation_keeps_the_central_crop(tmp_path):
    # Red border (outer 5% of each side), blue centre: the 87.5% central crop (6.25% off
    # each side) holds no red.
    image = np.zeros((200, 200, 3), np.uint8)
    image[..., 0] = 255
    image[10:190, 10:190] = (0, 0, 255)
    for name in ("a", "b"):
        save(image, tmp_path / "d" / name / "x.png")
    folder = load_image_folder(tmp_path / "d", validation_fraction=0).train
    images, _ = next(iter(make_file_dataset(folder, image_size=100, batch_size=2)))
    assert float(np.max(np.asarray(images)[..., 0])) < 20.0
    # Without the crop (the small-image path resizes the whole picture) the red is there.
    small, _ = next(iter(make_file_dataset(folder, image_size=32, batch_size=2)))
    assert float(np.max(np.asarray(small)[..., 0])) > 200.0


@pytest.mark.parametrize("size, cache", [(32, None), (32, "memory"), (96, None), (96, "memory")])
def test_training_sees_every_file_once_an_epoch_in_a_new_order(tmp_path, size, cache):
    # Each file is one flat grey level: its value survives resizing, cropping and flipping.
    for index in range(12):
        level = np.full((40 + index, 50, 3), 10 * index + 5, np.uint8)
        save(level, tmp_path / "d" / CLASSES[index % 3] / f"{index}.png")
    folder = load_image_folder(tmp_path / "d", validation_fraction=0).train
    dataset = make_file_dataset(folder, image_size=size, batch_size=4, training=True, cache=cache)
    epochs = []
    for _ in range(2):
        levels = [int(round(float(np.median(image)))) for images, _ in dataset for image in images]
        epochs.append(levels)
    assert sorted(epochs[0]) == sorted(epochs[1]) == [10 * i + 5 for i in range(12)]
    assert epochs[0] != epochs[1]


def test_a_worker_reads_only_its_share(pets):
    shares = [make_file_dataset(pets, image_size=32, batch_size=64, shard=(2, index))
              for index in range(2)]
    counts = [sum(int(labels.shape[0]) for _, labels in share) for share in shares]
    assert counts == [len(pets) // 2, len(pets) - len(pets) // 2]


def test_load_folder_images_gives_the_evaluation_pixels(pets):
    pixels = load_folder_images(pets, 48, limit=5, seed=3)
    assert pixels.shape == (5, 48, 48, 3) and pixels.dtype == np.uint8
    again = load_folder_images(pets, 48, limit=5, seed=3)
    np.testing.assert_array_equal(pixels, again)


def test_a_dataset_of_decoded_images_gets_the_same_recipe():
    import tensorflow as tf

    images = tf.data.Dataset.from_tensor_slices(
        (np.random.default_rng(0).integers(0, 256, (6, 50, 40, 1), dtype=np.uint8), np.arange(6) % 2)
    )
    batch, labels = next(iter(make_image_dataset(images, image_size=96, num_classes=2, batch_size=6,
                                                 training=True)))
    assert batch.shape == (6, 96, 96, 3) and labels.shape == (6, 2)
