"""Tests of `mobilenet.cifar10` (loading, pipeline, training, evaluation) and of
`MobileNetV1(early_downsampling=...)`, the small-image option it relies on."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from mobilenet import MobileNetV1, cifar10

REPO_ROOT = Path(__file__).resolve().parents[1]

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


# ------------------------------------------------------------------ loading


def test_loads_shared_subset(cifar10_subset_dir):
    folder = cifar10_subset_dir / "cifar-10-batches-py"
    for name, digest in SUBSET_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    (x_train, y_train), (x_test, y_test) = cifar10.load_cifar10(cifar10_subset_dir)
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
    monkeypatch.setenv(cifar10.DATA_DIR_ENV, str(archive_dir))
    for source in (tmp_path / "plain", folder, archive_dir, archive_dir / "cifar-10-python.tar.gz", None):
        (x_train, y_train), (x_test, y_test) = cifar10.load_cifar10(source)
        np.testing.assert_array_equal(x_train, expected_train)
        np.testing.assert_array_equal(y_train, expected_labels)
        np.testing.assert_array_equal(x_test, _to_nhwc(batches["test_batch"][0]))
        np.testing.assert_array_equal(y_test, batches["test_batch"][1])
    assert sorted(p.name for p in archive_dir.iterdir()) == ["cifar-10-python.tar.gz"]  # nothing extracted


def test_falls_back_to_keras_download(monkeypatch):
    monkeypatch.delenv(cifar10.DATA_DIR_ENV, raising=False)
    images = np.zeros((4, 32, 32, 3), np.uint8)
    monkeypatch.setattr(
        keras.datasets.cifar10, "load_data",
        lambda: ((images, np.array([[1], [2], [3], [4]], np.uint8)), (images[:2], np.array([[5], [6]]))),
    )
    (_, y_train), (_, y_test) = cifar10.load_cifar10()
    assert y_train.tolist() == [1, 2, 3, 4] and y_test.tolist() == [5, 6]


def test_offline_without_local_copy_says_how_to_point_at_one(monkeypatch):
    monkeypatch.delenv(cifar10.DATA_DIR_ENV, raising=False)

    def offline():
        raise Exception("URL fetch failure on https://www.cs.toronto.edu/: None -- no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(RuntimeError, match="MOBILENET_CIFAR10_DIR") as error:
        cifar10.load_cifar10()
    assert "data_dir" in str(error.value) and "no network" in str(error.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Invalid value for argument `data_dir`.*Received: data_dir="):
        cifar10.load_cifar10(tmp_path)


def test_missing_batch_file_is_named(tmp_path):
    folder = _write_folder(tmp_path, _fake_batches(np.random.default_rng(2)))
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        cifar10.load_cifar10(tmp_path)


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
        cifar10.load_cifar10(tmp_path)
    assert "data_batch_4" in str(error.value)


def test_corrupt_archive_is_named(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b truncated gzip")
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz"):
        cifar10.load_cifar10(tmp_path)


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
        cifar10.load_cifar10(tmp_path / "data")
    assert ("system" in str(error.value)) or ("exec" in str(error.value))
    assert not marker.exists()


def test_split_validation_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(10), 50)
    images = np.arange(500).reshape(500, 1, 1, 1).astype(np.uint8)  # image i holds i % 256
    ids = np.arange(500)
    (fit_ids, fit_labels), (val_ids, val_labels) = cifar10.split_validation(ids, labels, 0.2, seed=5)
    assert len(val_ids) == 100 and len(fit_ids) == 400
    assert np.bincount(val_labels).tolist() == [10] * 10
    assert set(fit_ids.tolist()).isdisjoint(val_ids.tolist())
    np.testing.assert_array_equal(labels[val_ids], val_labels)
    assert images.shape[0] == 500
    with pytest.raises(ValueError, match="Invalid value for argument `fraction`"):
        cifar10.split_validation(ids, labels, 1.5)


# ------------------------------------------------------------------ pipeline


def test_dataset_normalises_and_one_hots():
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 3, 9, 3, 1])
    batches = list(cifar10.make_dataset(images, labels, batch_size=2))
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    expected = (images / 255.0 - np.array([0.4914, 0.4822, 0.4465])) / np.array([0.2470, 0.2435, 0.2616])
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)
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

    mean, std = np.array(cifar10.CIFAR10_MEAN), np.array(cifar10.CIFAR10_STD)
    pixels = np.rint((np.asarray(first[0]) * std + mean) * 255).astype(np.int64)
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


# ------------------------------------------------------------------ small-image option


@pytest.mark.parametrize("early_downsampling, side", [(4, 1), (2, 2), (1, 4)])
def test_early_downsampling_keeps_larger_maps_and_the_same_weights(early_downsampling, side):
    model = MobileNetV1(1.0, input_shape=(32, 32, 3), early_downsampling=early_downsampling)
    assert model.get_layer("block_13").output.shape == (None, side, side, 1024)
    # Same weights as the standard network: keras.applications' count from paper.md.
    assert model.count_params() == 4_253_864
    stem = model.get_layer("conv1").strides
    block_2 = model.get_layer("block_2").depthwise.strides
    assert (stem, block_2) == {4: ((2, 2), (2, 2)), 2: ((1, 1), (2, 2)), 1: ((1, 1), (1, 1))}[early_downsampling]


def test_early_downsampling_at_224_matches_a_larger_input():
    # Dropping the stem's stride at side s gives the maps the standard net has at 2s.
    small = MobileNetV1(0.25, input_shape=(64, 64, 3), include_top=False, early_downsampling=2)
    large = MobileNetV1(0.25, input_shape=(128, 128, 3), include_top=False)
    for name in ("block_1", "block_6", "block_13"):
        assert small.get_layer(name).output.shape == large.get_layer(name).output.shape


def _paper_mult_adds(alpha: float, side: int, strides: list[int], classes: int) -> int:
    """Paper section 3 by hand: stem conv, then depthwise + pointwise per block, then the FC."""
    widths = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    side = -(-side // strides[0])
    channels = int(32 * alpha)
    total = 3 * 3 * 3 * channels * side * side
    for width, stride in zip(widths, strides[1:]):
        side = -(-side // stride)
        out = int(width * alpha)
        total += 3 * 3 * channels * side * side + channels * out * side * side
        channels = out
    return total + channels * classes


PAPER_STRIDES = [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]


def test_early_downsampling_cost_by_hand():
    from mobilenet import profile

    standard_224 = _paper_mult_adds(1.0, 224, PAPER_STRIDES, 1000)
    assert standard_224 == 568_740_352  # paper.md's exact recount of Table 8
    no_stem_stride = [1] + PAPER_STRIDES[1:]
    no_early_strides = [1, 1, 1] + PAPER_STRIDES[3:]
    for alpha, early_downsampling, strides in [(1.0, 2, no_stem_stride), (1.0, 1, no_early_strides),
                                               (0.5, 2, no_stem_stride), (0.5, 1, no_early_strides)]:
        model = MobileNetV1(alpha, num_classes=10, input_shape=(32, 32, 3), early_downsampling=early_downsampling)
        assert profile(model).mult_adds == _paper_mult_adds(alpha, 32, strides, 10)
    # Dropping the stem's stride at side s costs exactly the standard net at side 2s.
    assert _paper_mult_adds(0.5, 32, no_stem_stride, 10) == _paper_mult_adds(0.5, 64, PAPER_STRIDES, 10)
    # The docs' table, in millions.
    assert round(_paper_mult_adds(0.5, 32, no_stem_stride, 10) / 1e5) == 122
    assert round(_paper_mult_adds(1.0, 32, no_early_strides, 10) / 1e5) == 1756


def test_early_downsampling_works_with_output_stride():
    model = MobileNetV1(0.25, input_shape=(64, 64, 3), include_top=False, early_downsampling=2,
                        output_stride=8)
    assert model.output.shape == (None, 8, 8, 256)


@pytest.mark.parametrize("bad", [3, 0, 8, True, "2", 2.0])
def test_early_downsampling_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=r"Invalid value for argument `early_downsampling`.*Received: early_downsampling="):
        MobileNetV1(0.25, input_shape=(32, 32, 3), early_downsampling=bad)


# ------------------------------------------------------------------ schedule and callbacks


def test_warmup_cosine_schedule_by_hand():
    schedule = cifar10.WarmupCosineDecay(0.1, warmup_steps=10, total_steps=110)
    values = {step: float(schedule(step)) for step in (0, 5, 10, 60, 110, 200)}
    assert values[0] == 0.0
    assert values[5] == pytest.approx(0.05)
    assert values[10] == pytest.approx(0.1)
    assert values[60] == pytest.approx(0.05, abs=1e-6)  # halfway down the cosine
    assert values[110] == pytest.approx(0.0, abs=1e-7)
    assert values[200] == pytest.approx(0.0, abs=1e-7)
    schedule.total_steps.assign(60.0)  # what TimeBudget does
    assert float(schedule(35)) == pytest.approx(0.05, abs=1e-6)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(restored(35)) == pytest.approx(0.05, abs=1e-6)


def test_time_budget_shortens_the_run_and_the_schedule(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(cifar10.time, "monotonic", lambda: clock["now"])

    class TenSecondEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            clock["now"] += 10.0

    schedule = cifar10.WarmupCosineDecay(0.1, 0, 20 * 2)
    budget = cifar10.TimeBudget(35.0, epochs=20, steps_per_epoch=2, schedule=schedule)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(schedule), "mse")
    history = model.fit(np.zeros((4, 2)), np.zeros((4, 1)), batch_size=2, epochs=20, verbose=0,
                        callbacks=[TenSecondEpochs(), budget])
    assert len(history.history["loss"]) == 3  # 3 x 10 s fit in 35 s, a 4th would not
    assert budget.stopped
    assert float(keras.ops.convert_to_numpy(schedule.total_steps)) == 6.0


# ------------------------------------------------------------------ training


def _slice(cifar10_subset_dir, n_train=400):
    (x, y), (x_test, y_test) = cifar10.load_cifar10(cifar10_subset_dir)
    return x[:n_train], y[:n_train], x_test, y_test


def test_short_training_run_learns(cifar10_subset_dir, tmp_path):
    x, y, _, _ = _slice(cifar10_subset_dir, 256)
    result = cifar10.train(
        x, y, output_dir=tmp_path, epochs=8, alpha=0.25, early_downsampling=4, batch_size=32,
        learning_rate=0.05, warmup_epochs=1, augment=False, validation_fraction=0, verbose=0,
    )
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 8
    assert losses[-1] < 0.8 * losses[0]
    report = cifar10.evaluate(result.model, x, y)  # inference mode, on what it trained on
    assert report.accuracy > 0.25  # chance is 0.1
    for name in ("history.json", "history.csv", "best.keras", "final.keras"):
        assert (tmp_path / name).is_file()
    assert not (tmp_path / "backup").exists()
    rows = list(__import__("csv").DictReader(io.StringIO((tmp_path / "history.csv").read_text())))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert float(rows[-1]["learning_rate"]) == pytest.approx(0.0, abs=1e-6)
    assert [float(r["loss"]) for r in rows] == pytest.approx(losses)
    best = keras.saving.load_model(tmp_path / "best.keras")  # loads without custom_objects
    assert best.count_params() == result.model.count_params()


class _Killed(Exception):
    pass


def _tiny_model() -> keras.Model:
    """A small stand-in for MobileNet where a test is about train's bookkeeping, not the net."""
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, strides=4, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])


def test_interrupted_run_resumes_at_the_right_epoch(cifar10_subset_dir, tmp_path):
    x, y, _, _ = _slice(cifar10_subset_dir, 64)
    options = dict(epochs=4, batch_size=32, validation_fraction=0.25, verbose=0)

    full = cifar10.train(x, y, output_dir=tmp_path / "full", model=_tiny_model(), **options)

    class KillDuringThirdEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 2 and batch == 0:
                raise _Killed

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    with pytest.raises(_Killed):
        cifar10.train(x, y, output_dir=tmp_path / "cut", model=_tiny_model(),
                      extra_callbacks=[KillDuringThirdEpoch()], **options)
    metadata = json.loads((tmp_path / "cut" / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 2
    assert [row["epoch"] for row in json.loads((tmp_path / "cut" / "history.json").read_text())] == [1, 2]

    with pytest.raises(FileExistsError, match="resume"):
        cifar10.train(x, y, output_dir=tmp_path / "cut", model=_tiny_model(), **options)

    class RecordEpochs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    record = RecordEpochs()
    resumed = cifar10.train(x, y, output_dir=tmp_path / "cut", model=_tiny_model(), resume=True,
                            extra_callbacks=[record], **options)
    assert record.epochs == [2, 3]  # epochs 3 and 4, counted from 1
    assert len(resumed.history) == len(full.history) == 4
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert not (tmp_path / "cut" / "backup").exists()
    # The learning rate picks up where it was: the same schedule point as the uninterrupted run.
    assert resumed.history[-1]["learning_rate"] == pytest.approx(full.history[-1]["learning_rate"])
    assert resumed.history[1]["learning_rate"] == pytest.approx(full.history[1]["learning_rate"])


def test_train_rejects_bad_arguments(tmp_path):
    x = np.zeros((8, 32, 32, 3), np.uint8)
    y = np.arange(8) % 10
    with pytest.raises(ValueError, match="Invalid value for argument `epochs`"):
        cifar10.train(x, y, output_dir=tmp_path, epochs=0)
    with pytest.raises(ValueError, match="Invalid value for argument `label_smoothing`"):
        cifar10.train(x, y, output_dir=tmp_path, label_smoothing=1.0)
    with pytest.raises(ValueError, match="Invalid value for argument `mixed_precision`"):
        cifar10.train(x, y, output_dir=tmp_path, mixed_precision="float64")
    with pytest.raises(ValueError, match="Invalid value for argument `strategy`"):
        cifar10.make_strategy("gpus")


@pytest.mark.slow
def test_mixed_bfloat16_training_on_cpu(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    y = np.arange(32) % 10
    result = cifar10.train(x, y, output_dir=tmp_path, epochs=1, alpha=0.25, early_downsampling=4,
                           batch_size=16, validation_fraction=0, mixed_precision=True, verbose=0)
    conv = result.model.get_layer("conv1")
    assert conv.dtype_policy.name == "mixed_bfloat16"
    assert conv.kernel.dtype == "float32"  # variables stay float32
    assert result.model.get_layer("predictions").dtype_policy.name == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    assert np.isfinite(result.history[0]["loss"])


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    from mobilenet import cifar10
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    y = np.arange(32) % 10
    result = cifar10.train(x, y, output_dir=sys.argv[1], epochs=2, alpha=0.25, early_downsampling=4,
                           batch_size=16, validation_fraction=0, strategy=strategy, verbose=0)
    kernel = result.model.get_layer("fc").kernel
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "variable": type(getattr(kernel, "value", kernel)).__name__,
        "devices": sorted({v.device for v in getattr(kernel.value, "values", [])}),
        "epochs": [row["epoch"] for row in result.history],
        "loss": result.history[-1]["loss"],
    }))
    """
)


def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    # Logical devices must be set before TensorFlow starts, hence a fresh process.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT, str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["variable"] == "MirroredVariable"
    assert len(report["devices"]) == 2 and all("CPU" in d.upper() for d in report["devices"])
    assert report["epochs"] == [1, 2]
    assert np.isfinite(report["loss"])


# ------------------------------------------------------------------ evaluation and plots


class _FixedPredictions:
    """Stands in for a model: returns given class probabilities."""

    def __init__(self, predicted: list[int]) -> None:
        self.probabilities = np.eye(10)[predicted]

    def predict(self, dataset, verbose=0):
        assert sum(len(x) for x, _ in dataset) == len(self.probabilities)
        return self.probabilities


def test_evaluate_by_hand():
    y_true = np.array([0, 0, 0, 1, 1, 2, 9, 9])
    predicted = [0, 0, 1, 1, 1, 9, 9, 2]
    report = cifar10.evaluate(_FixedPredictions(predicted), np.zeros((8, 32, 32, 3), np.uint8), y_true)
    assert report.accuracy == pytest.approx(5 / 8)
    assert report.per_class_accuracy["airplane"] == pytest.approx(2 / 3)
    assert report.per_class_accuracy["automobile"] == 1.0
    assert report.per_class_accuracy["bird"] == 0.0
    assert report.per_class_accuracy["truck"] == 0.5
    assert np.isnan(report.per_class_accuracy["cat"])  # no cat in the set
    expected = np.zeros((10, 10), int)
    for t, p in zip(y_true, predicted):
        expected[t, p] += 1
    np.testing.assert_array_equal(report.confusion_matrix, expected)
    assert report.num_examples == 8


def test_plots_are_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    history = [{"epoch": 1, "loss": 2.0, "accuracy": 0.2, "val_loss": 2.1, "val_accuracy": 0.15},
               {"epoch": 2, "loss": 1.5, "accuracy": 0.4, "val_loss": 1.8, "val_accuracy": 0.3}]
    report = cifar10.evaluate(_FixedPredictions([0, 1]), np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 2]))
    written = cifar10.save_plots(history, report, tmp_path)
    assert sorted(p.name for p in written) == ["confusion.png", "curves.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "curves.png"]  # no temp left


def test_plots_without_matplotlib_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cifar10.save_plots([{"epoch": 1, "loss": 1.0}], None, tmp_path) == []
    with pytest.raises(ImportError, match=r"mobilenet\[plot\]"):
        cifar10.plot_history([{"epoch": 1, "loss": 1.0}], tmp_path / "curves.png")
