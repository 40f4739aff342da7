"""Tests of `mobilenet.datasets.image_folder`: layouts, splits, shards and every refusal."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mobilenet.datasets import is_image_folder, load_image_folder
from tests.image_folders import CLASSES, picture, save, write_pets


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    return write_pets(tmp_path_factory.mktemp("pets") / "pets", per_class=10)


def test_class_folders_become_sorted_classes_with_every_format(pets):
    splits = load_image_folder(pets, validation_fraction=0)
    folder = splits.train
    assert splits.layout == "classes" and splits.validation is None and splits.test is None
    assert folder.class_names == CLASSES
    assert folder.class_counts == {"blue": 10, "green": 10, "red": 10}
    # Each file's label is its folder's index among the sorted names.
    for path, label in zip(folder.files, folder.labels):
        assert os.path.basename(os.path.dirname(path)) == CLASSES[label]
    suffixes = {os.path.splitext(path)[1] for path in folder.files}
    assert suffixes == {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
    assert is_image_folder(pets)


def test_validation_split_is_stratified_seeded_and_disjoint(pets):
    first = load_image_folder(pets, validation_fraction=0.2, seed=1)
    again = load_image_folder(pets, validation_fraction=0.2, seed=1)
    other = load_image_folder(pets, validation_fraction=0.2, seed=2)
    assert first.validation.class_counts == {name: 2 for name in CLASSES}
    assert first.train.class_counts == {name: 8 for name in CLASSES}
    assert set(first.train.files).isdisjoint(first.validation.files)
    assert len(set(first.train.files) | set(first.validation.files)) == 30
    assert first.validation.files == again.validation.files
    assert first.validation.files != other.validation.files


def test_a_small_class_still_holds_out_one_image(tmp_path):
    root = write_pets(tmp_path / "few", per_class=3)
    splits = load_image_folder(root, validation_fraction=0.1)
    assert splits.validation.class_counts == {name: 1 for name in CLASSES}


def test_train_val_test_folders_are_taken_as_given(tmp_path):
    for split, count in (("train", 6), ("val", 2), ("test", 3)):
        write_pets(tmp_path / "data" / split, per_class=count, seed=len(split))
    splits = load_image_folder(tmp_path / "data", validation_fraction=0.5)
    assert splits.layout == "splits"
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (18, 6, 9)
    assert splits.class_names == splits.test.class_names == CLASSES


def test_shards_split_the_files_between_workers(pets):
    folder = load_image_folder(pets, validation_fraction=0).train
    shards = [folder.shard(3, index) for index in range(3)]
    assert [len(shard) for shard in shards] == [10, 10, 10]
    assert sorted(path for shard in shards for path in shard.files) == sorted(folder.files)


def test_other_files_are_skipped_and_counted(tmp_path):
    root = write_pets(tmp_path / "pets", per_class=2)
    (root / "blue" / "notes.txt").write_text("not an image")
    (root / "red" / ".DS_Store").write_bytes(b"\0")  # hidden: neither listed nor counted
    folder = load_image_folder(root, validation_fraction=0).train
    assert len(folder) == 6
    assert [os.path.basename(path) for path in folder.skipped] == ["notes.txt"]


def test_exif_orientation_is_read_when_listing(tmp_path):
    from PIL import Image

    root = write_pets(tmp_path / "pets", per_class=2, formats=(("png", "RGB"),))
    image = Image.fromarray(picture(0, np.random.default_rng(0), 40, 60))
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(root / "blue" / "phone.jpg", exif=exif.tobytes())
    folder = load_image_folder(root, validation_fraction=0).train
    orientations = dict(zip((os.path.basename(p) for p in folder.files), folder.orientations))
    assert orientations["phone.jpg"] == 6 and orientations["000.png"] == 1


@pytest.mark.parametrize("make, message", [
    (lambda root: root.mkdir(), "has no sub-folders"),
    (lambda root: (root / "cat").mkdir(parents=True), "one class folder, 'cat'"),
    (lambda root: (write_pets(root, 2), (root / "empty").mkdir()), "data/empty' holds none"),
    (lambda root: (write_pets(root, 2), (root / "red" / "fake.jpg").write_text("hello")),
     "fake.jpg' (not a JPEG, PNG, GIF, BMP or WebP file)"),
    (lambda root: (write_pets(root / "train", 2), write_pets(root / "val", 2, classes=("blue", "red", "teal"))),
     "missing green, with extra teal"),
])
def test_bad_folders_are_refused_naming_the_argument(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(ValueError, match="Invalid value for argument `data_dir`") as raised:
        load_image_folder(root)
    assert message in str(raised.value)


def test_a_missing_folder_or_a_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="`data_dir`.*no such folder"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="`data_dir`.*a file"):
        load_image_folder(tmp_path / "file.jpg")


def test_a_class_of_one_image_cannot_be_validated(tmp_path):
    root = write_pets(tmp_path / "pets", per_class=3)
    for path in sorted((root / "red").iterdir())[1:]:
        path.unlink()
    with pytest.raises(ValueError, match="`validation_fraction`.*no image of 'red'"):
        load_image_folder(root, validation_fraction=0.2)
    assert len(load_image_folder(root, validation_fraction=0).train) == 7


def test_cifar10_folders_are_not_taken_for_class_folders(tmp_path):
    assert is_image_folder(tmp_path) and is_image_folder(tmp_path / "missing")
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert not is_image_folder(tmp_path) and not is_image_folder(tmp_path / "cifar-10-batches-py")
    save(picture(0, np.random.default_rng(0), 40, 40), tmp_path / "x" / "a.png")
    assert not is_image_folder(tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    assert not is_image_folder(tmp_path / "cifar-10-python.tar.gz")
