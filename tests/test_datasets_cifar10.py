"""Tests of `mobilenet.datasets`' CIFAR-10 reader (`load_cifar10`), the split and the input checks."""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
from pathlib import Path

import keras
import numpy as np
import pytest

from mobilenet import datasets


# From the shared subset's README.
SUBSET_SHA256 = {
    "data_batch_1": "0df720f674bba099d11b3bb43f56e1f4c4ac9af25a676862577dacf3d2096ec8",
    "test_batch": "c78ed33eab8cb5d49bc0d8b72bd3ef7b6fea948decb54c0fb2192df720be0ac5",
}


def _batch_bytes(data: np.ndarray, labels: list[int], protocol: int = 3) -> bytes:
    """A batch pickled the way the official release is (bytes keys, uint8 rows)."""
    return pickle.dumps({b"batch_label": b"x", b"labels": labels, b"data": data}, protocol=protocol)


def _fake_batches(rng: np.random.Generator, per_file: int = 6) -> dict[str, tuple[np.ndarray, list[int]]]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {
        name: (
            rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8),
            [int(v) for v in rng.integers(0, 10, size=per_file)],
        )
        for name in names
    }


def _write_folder(root: Path, batches: dict) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, (data, labels) in batches.items():
        (folder / name).write_bytes(_batch_bytes(data, labels))
    return folder


def _to_nhwc(rows: np.ndarray) -> np.ndarray:
    """Official layout by hand: 1,024 red, then green, then blue values, each row-major."""
    out = np.empty((len(rows), 32, 32, 3), np.uint8)
    for channel in range(3):
        out[..., channel] = rows[:, channel * 1024 : (channel + 1) * 1024].reshape(-1, 32, 32)
    return out


def test_loads_shared_subset(cifar10_subset_dir):
    folder = cifar10_subset_dir / "cifar-10-batches-py"
    for name, digest in SUBSET_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    (x_train, y_train), (x_test, y_test) = datasets.load_cifar10(cifar10_subset_dir)
    assert x_train.shape == (2500, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (1000, 32, 32, 3) and x_test.dtype == np.uint8
    assert y_train.shape == (2500,) and y_test.shape == (1000,)
    # The README: every class has 86 to 112 test images, 37 to 67 per training file.
    assert np.bincount(y_test, minlength=10).min() >= 86
    assert np.bincount(y_test, minlength=10).max() <= 112
    for part in np.split(y_train, 5):
        counts = np.bincount(part, minlength=10)
        assert counts.min() >= 37 and counts.max() <= 67
    # Against a plain read of the (trusted) file, decoded by hand.
    with open(folder / "data_batch_2", "rb") as stream:
        raw = pickle.load(stream, encoding="bytes")
    np.testing.assert_array_equal(x_train[500:1000], _to_nhwc(raw[b"data"]))
    np.testing.assert_array_equal(y_train[500:1000], raw[b"labels"])


def test_subset_pickles_need_only_numpy_globals(cifar10_subset_dir):
    import pickletools

    raw = (cifar10_subset_dir / "cifar-10-batches-py" / "test_batch").read_bytes()
    globals_used = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert globals_used <= {"numpy ndarray", "numpy dtype", "numpy._core.multiarray _reconstruct",
                            "numpy.core.multiarray _reconstruct"}


def test_loads_folder_archive_and_environment_alike(tmp_path, monkeypatch):
    batches = _fake_batches(np.random.default_rng(1))
    folder = _write_folder(tmp_path / "plain", batches)
    archive_dir = tmp_path / "archived"
    archive_dir.mkdir()
    with tarfile.open(archive_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")

    expected_train = _to_nhwc(np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]))
    expected_labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(archive_dir))
    for source in (tmp_path / "plain", folder, archive_dir, archive_dir / "cifar-10-python.tar.gz", None):
        (x_train, y_train), (x_test, y_test) = datasets.load_cifar10(source)
        np.testing.assert_array_equal(x_train, expected_train)
        np.testing.assert_array_equal(y_train, expected_labels)
        np.testing.assert_array_equal(x_test, _to_nhwc(batches["test_batch"][0]))
        np.testing.assert_array_equal(y_test, batches["test_batch"][1])
    assert sorted(p.name for p in archive_dir.iterdir()) == ["cifar-10-python.tar.gz"]  # nothing extracted


def test_falls_back_to_keras_download(monkeypatch):
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    images = np.zeros((4, 32, 32, 3), np.uint8)
    monkeypatch.setattr(
        keras.datasets.cifar10, "load_data",
        lambda: ((images, np.array([[1], [2], [3], [4]], np.uint8)), (images[:2], np.array([[5], [6]]))),
    )
    (_, y_train), (_, y_test) = datasets.load_cifar10()
    assert y_train.tolist() == [1, 2, 3, 4] and y_test.tolist() == [5, 6]


def test_offline_without_local_copy_says_how_to_point_at_one(monkeypatch):
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)

    def offline():
        raise Exception("URL fetch failure on https://www.cs.toronto.edu/: None -- no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(ConnectionError, match="MOBILENET_CIFAR10_DIR") as error:
        datasets.load_cifar10()
    assert "data_dir" in str(error.value) and "no network" in str(error.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Invalid value for argument `data_dir`.*Received: data_dir="):
        datasets.load_cifar10(tmp_path)


def test_missing_batch_file_is_named(tmp_path):
    folder = _write_folder(tmp_path, _fake_batches(np.random.default_rng(2)))
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3") as error:
        datasets.load_cifar10(tmp_path)
    assert error.value.argument == "data_dir"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x80\x02}q\x00(X", "Corrupt"),  # truncated pickle
        (b"not a pickle at all", "Corrupt"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "uint8"),
        (pickle.dumps({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}), "3072"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), "0..9"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "2 integers"),
        (pickle.dumps([1, 2, 3]), "b'labels'"),
    ],
)
def test_corrupt_batch_file_is_named(tmp_path, content, message):
    folder = _write_folder(tmp_path, _fake_batches(np.random.default_rng(3)))
    (folder / "data_batch_4").write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        datasets.load_cifar10(tmp_path)
    assert "data_batch_4" in str(error.value)
    assert error.value.argument == "data_dir"  # an InvalidArgument: the CLI names --data-dir


def test_corrupt_archive_is_named(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b truncated gzip")
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz"):
        datasets.load_cifar10(tmp_path)


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _RunsExec:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('pwned').touch()",))


@pytest.mark.parametrize("payload", ["os.system", "builtins.exec"])
def test_malicious_pickle_is_refused(tmp_path, payload, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    evil = _RunsShell(marker) if payload == "os.system" else _RunsExec()
    folder = _write_folder(tmp_path / "data", _fake_batches(np.random.default_rng(4)))
    blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [evil]}, protocol=3)
    assert b"system" in blob or b"exec" in blob
    (folder / "data_batch_1").write_bytes(blob)
    with pytest.raises(ValueError, match=r"Unsafe.*data_batch_1.*refused") as error:
        datasets.load_cifar10(tmp_path / "data")
    assert ("system" in str(error.value)) or ("exec" in str(error.value))
    assert not marker.exists()


def test_split_validation_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(10), 50)
    # Image i carries its index in its first two pixels, so each can be traced back.
    ids = np.arange(500)
    images = np.zeros((500, 2, 2, 3), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 1, 0] = ids // 256, ids % 256
    (fit_images, fit_labels), (val_images, val_labels) = datasets.split_validation(images, labels, 0.2, seed=5)
    fit_ids = fit_images[:, 0, 0, 0].astype(int) * 256 + fit_images[:, 0, 1, 0]
    val_ids = val_images[:, 0, 0, 0].astype(int) * 256 + val_images[:, 0, 1, 0]
    assert len(val_ids) == 100 and len(fit_ids) == 400
    assert np.bincount(val_labels).tolist() == [10] * 10
    assert set(fit_ids.tolist()).isdisjoint(val_ids.tolist())
    assert sorted(fit_ids.tolist() + val_ids.tolist()) == ids.tolist()
    np.testing.assert_array_equal(labels[val_ids], val_labels)
    np.testing.assert_array_equal(labels[fit_ids], fit_labels)
    with pytest.raises(ValueError, match="Invalid value for argument `fraction`"):
        datasets.split_validation(images, labels, 1.5)


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (np.zeros((4, 32, 32), np.uint8), [0, 1, 2, 3], r"`images`.*shape \(4, 32, 32\)"),
        (np.zeros((4, 32, 32, 1), np.uint8), [0, 1, 2, 3], r"`images`.*\(n, any, any, 3\)"),
        (np.zeros((4, 32, 32, 3), np.int32), [0, 1, 2, 3], r"`images`.*dtype int32"),
        (np.full((4, 32, 32, 3), -1.5, np.float32), [0, 1, 2, 3], r"`images`.*pixels in 0..255.*-1.5"),
        (np.zeros((4, 32, 32, 3), np.uint8), [0, 1, 2], r"`labels`.*one label per image.*3 labels"),
        (np.zeros((4, 32, 32, 3), np.uint8), [0, 1, 2, 10], r"`labels`.*0..9.*labels from 0 to 10"),
        (np.zeros((4, 32, 32, 3), np.uint8), [0, 1, -1, 3], r"`labels`.*0..9.*from -1"),
        (np.zeros((4, 32, 32, 3), np.uint8), [0.0, 1.0, 2.0, 3.0], r"`labels`.*integer class indices"),
    ],
)
def test_bad_images_and_labels_are_named(images, labels, message):
    with pytest.raises(ValueError, match=message):
        datasets.check_images_and_labels(images, labels, num_classes=10)  # CIFAR-10's classes


def test_good_images_and_labels_pass_as_arrays():
    images, labels = datasets.check_images_and_labels(
        np.full((3, 32, 32, 3), 255.0, np.float32), np.array([[0], [9], [4]])  # Keras' (n, 1) labels
    )
    assert images.dtype == np.float32 and labels.tolist() == [0, 9, 4] and labels.dtype == np.int64
