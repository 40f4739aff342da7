"""Tests of `mobilenet.training.train`: the recipe it takes, its checks, resuming and strategies."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from mobilenet.datasets import CIFAR10_CLASS_NAMES, load_cifar10
from mobilenet.training import RECIPE, build_model, evaluate, fit_verbosity, make_strategy, train
from mobilenet.training.recipe import KNOBS

REPO_ROOT = Path(__file__).resolve().parents[1]


def _train(x, y, **arguments):
    """`train` on ``(x, y)`` with CIFAR-10's class names; recipe knobs go in as keywords."""
    knobs = {name: arguments.pop(name) for name in KNOBS if name in arguments}
    arguments.setdefault("verbose", 0)
    arguments.setdefault("class_names", CIFAR10_CLASS_NAMES)
    return train((x, y), recipe=dataclasses.replace(RECIPE, **knobs), **arguments)


def _slice(cifar10_subset_dir, n_train=400):
    (x, y), (x_test, y_test) = load_cifar10(cifar10_subset_dir)
    return x[:n_train], y[:n_train], x_test, y_test


def test_short_training_run_learns(cifar10_subset_dir, tmp_path):
    x, y, _, _ = _slice(cifar10_subset_dir, 256)
    result = _train(
        x, y, output_dir=tmp_path, epochs=8, alpha=0.25, early_downsampling=4, batch_size=32,
        learning_rate=0.05, warmup_epochs=1, augment=False, validation_fraction=0, verbose=0,
    )
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 8
    assert losses[-1] < 0.8 * losses[0]
    report = evaluate(result.model, x, y)  # inference mode, on what it trained on
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
    # The model takes pixels: its predictions on raw uint8 images are what evaluate counted.
    predicted = np.argmax(result.model.predict(x, verbose=0), axis=-1)
    assert np.mean(predicted == y) == pytest.approx(report.accuracy)


def test_build_model_is_the_shallow_network_by_default():
    """The recipe's model is paper Table 6's Shallow MobileNet: the full one less blocks 7-11."""
    shallow, full = build_model(), build_model(shallow=False)
    blocks = lambda m: [l.name for l in m.layers if l.name.startswith("block_")]  # noqa: E731
    assert blocks(full) == [f"block_{i}" for i in range(1, 14)]
    assert blocks(shallow) == [f"block_{i}" for i in (1, 2, 3, 4, 5, 6, 12, 13)]
    # Each removed block at alpha 0.5 is 256 -> 256 channels: a 3x3 depthwise kernel,
    # a 256x256 pointwise kernel and two BatchNorms of 4 vectors each.
    removed = 5 * (3 * 3 * 256 + 256 * 256 + 2 * 4 * 256)
    assert full.count_params() - shallow.count_params() == removed
    assert shallow.output_shape == full.output_shape == (None, 10)


def test_weight_decay_spares_depthwise_kernels_batchnorm_and_biases(tmp_path):
    """One step with and without weight decay: the same gradients, so only decay differs."""
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(8) % 10
    weights = {}
    for decay in (0.0, 0.5):
        result = _train(
            images, labels, output_dir=tmp_path / str(decay), epochs=1, batch_size=8,
            warmup_epochs=0, alpha=0.25, weight_decay=decay, augment=False,
            validation_fraction=0, verbose=0,
        )
        weights[decay] = {v.path: keras.ops.convert_to_numpy(v) for v in result.model.trainable_variables}
    decayed = {path for path in weights[0.0] if not np.array_equal(weights[0.0][path], weights[0.5][path])}
    assert decayed, "weight decay changed nothing"
    for path in weights[0.0]:
        spared = path.endswith(("_dw/kernel", "/gamma", "/beta", "/bias"))
        assert (path in decayed) != spared, path
    assert "conv1/kernel" in decayed and "fc/kernel" in decayed
    assert "block_1/block_1_pw/kernel" in decayed and "block_1/block_1_dw/kernel" not in decayed


class _DatasetMade(Exception):
    pass


@pytest.mark.parametrize("epochs, cutmix, expected", [
    (RECIPE.cutmix_min_epochs - 1, "auto", False),
    (RECIPE.cutmix_min_epochs, "auto", True),
    (1, True, True),
    (300, False, False),
])
def test_cutmix_auto_is_on_for_long_runs_only(monkeypatch, tmp_path, epochs, cutmix, expected):
    from mobilenet.training import data as training

    asked = {}

    def record(*args, **kwargs):
        asked.update(kwargs)
        raise _DatasetMade

    monkeypatch.setattr(training, "make_dataset", record)
    with pytest.raises(_DatasetMade):
        _train(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10, output_dir=tmp_path,
                      epochs=epochs, cutmix=cutmix, validation_fraction=0, verbose=0)
    assert asked["cutmix"] is expected


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

    full = _train(x, y, output_dir=tmp_path / "full", model=_tiny_model(), **options)

    class KillDuringThirdEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 2 and batch == 0:
                raise _Killed

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    with pytest.raises(_Killed):
        _train(x, y, output_dir=tmp_path / "cut", model=_tiny_model(),
                      extra_callbacks=[KillDuringThirdEpoch()], **options)
    metadata = json.loads((tmp_path / "cut" / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 2
    assert [row["epoch"] for row in json.loads((tmp_path / "cut" / "history.json").read_text())] == [1, 2]

    with pytest.raises(FileExistsError, match="resume"):
        _train(x, y, output_dir=tmp_path / "cut", model=_tiny_model(), **options)

    class RecordEpochs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    record = RecordEpochs()
    resumed = _train(x, y, output_dir=tmp_path / "cut", model=_tiny_model(), resume=True,
                            extra_callbacks=[record], **options)
    assert record.epochs == [2, 3]  # epochs 3 and 4, counted from 1
    assert len(resumed.history) == len(full.history) == 4
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert not (tmp_path / "cut" / "backup").exists()
    # The learning rate picks up where it was: the same schedule point as the uninterrupted run.
    assert resumed.history[-1]["learning_rate"] == pytest.approx(full.history[-1]["learning_rate"])
    assert resumed.history[1]["learning_rate"] == pytest.approx(full.history[1]["learning_rate"])


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(epochs=0), "`epochs`: expected an integer >= 1"),
        (dict(label_smoothing=1.0), "`label_smoothing`: expected a number in [0, 1)"),
        (dict(mixed_precision="float64"), "`mixed_precision`"),
        (dict(learning_rate=0.0), "`learning_rate`: expected a finite number > 0. Received: learning_rate=0.0"),
        (dict(learning_rate=-0.1), "`learning_rate`"),
        (dict(time_budget=-5.0), "`time_budget`: expected a finite number > 0"),
        (dict(warmup_epochs=-1), "`warmup_epochs`"),
        (dict(weight_decay=-1e-4), "`weight_decay`"),
        (dict(y_train=np.arange(8) % 10 + 3), "`data`: expected class indices in 0..9"),
        (dict(y_train=np.arange(7) % 10), "`data`: expected one label per image (8 images in `data`)"),
        (dict(x_train=np.zeros((8, 28, 28, 3), np.uint8), image_size=32),
         "`data`: expected pixels as a uint8 or float array of shape (n, 32, 32, 3)"),
        (dict(x_train=np.zeros((8, 32, 32, 3), np.int16)), "`data`"),
        (dict(x_train=np.full((8, 32, 32, 3), 300.0)), "`data`: expected pixels in 0..255"),
        (dict(validation_data=(np.zeros((2, 32, 32, 3), np.uint8), [0, 11])), "`validation_data`: expected class indices"),
        (dict(strategy="mirrored"), "`strategy`: expected None, a tf.distribute.Strategy (see make_strategy)"),
        (dict(shallow="no"), "`shallow`: expected True or False. Received: shallow='no'"),
        (dict(random_erasing=2.0), "`random_erasing`: expected a number in [0, 1]"),
        (dict(cutmix=1), '`cutmix`: expected True, False or "auto". Received: cutmix=1'),
        (dict(x_train=np.full((8, 32, 32, 3), 0.5)), "`data`: expected pixels in 0..255 (the models "
         "normalise inside); these look normalised to [0, 1]"),
        (dict(x_train=np.zeros((0, 32, 32, 3), np.uint8), y_train=np.zeros(0, int)),
         "`data`: expected at least one image"),
        (dict(alpha=0.0), "`alpha`"),
        (dict(freeze_epochs=1), "`freeze_epochs`: expected 0 without pretrained `weights`"),
        (dict(weights="imagenet", shallow=True), "`shallow`: expected None or False"),
        (dict(image_size=100_000), "`image_size`: expected an integer from 1 to 1024"),
        (dict(cache="/nonexistent/dir/cache"), "`cache`: expected 'auto', 'memory', None or a "
         "file path prefix in an existing folder. Received: cache='/nonexistent/dir/cache' "
         "(no folder '/nonexistent/dir')"),
        (dict(epochs=3, freeze_epochs=3, weights="imagenet"), "`freeze_epochs`: expected fewer than epochs (3)"),
        (dict(weights="nowhere.h5"), "`weights`: expected 'imagenet', a timm/ name or an existing file"),
        (dict(recipe={"epochs": 1}), "`recipe`: expected a mobilenet.training.Recipe"),
    ],
)
def test_train_rejects_bad_arguments_before_training(tmp_path, change, message):
    arguments = dict(x_train=np.zeros((8, 32, 32, 3), np.uint8), y_train=np.arange(8) % 10,
                     output_dir=tmp_path / "run", validation_fraction=0, verbose=0)
    arguments.update(change)
    x, y = arguments.pop("x_train"), arguments.pop("y_train")
    with pytest.raises(ValueError) as error:
        if "recipe" in arguments:
            arguments.pop("validation_fraction")
            train((x, y), **arguments)
        else:
            _train(x, y, **arguments)
    assert message in str(error.value)
    assert not (tmp_path / "run").exists()  # nothing written before the checks pass


@pytest.mark.tf_only  # the other half of the check: on JAX it is the tf.distribute strategy that is refused
def test_a_keras_distribution_is_refused_on_the_tensorflow_backend(tmp_path):
    try:
        distribution = keras.distribution.DataParallel()
    except AttributeError as error:
        # Keras 3.13 and 3.14 cannot build one on TensorFlow at all: DataParallel
        # asks the TensorFlow backend for num_processes(), which it lacks.
        pytest.skip(f"Keras {keras.__version__} cannot build a DataParallel on TensorFlow: {error}")
    with pytest.raises(ValueError, match=r"`strategy`: expected a tf.distribute.Strategy on the "
                       r"TensorFlow backend .* with KERAS_BACKEND='tensorflow'"):
        _train(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10, output_dir=tmp_path,
                      strategy=distribution, validation_fraction=0, verbose=0)
    assert not tmp_path.joinpath("backup").exists()


def test_make_strategy_names_the_choices():
    with pytest.raises(ValueError, match=r"`strategy`: expected one of \('default'"):
        make_strategy("gpus")


def test_resume_of_a_finished_run_says_it_is_finished(tmp_path):
    x, y = np.zeros((16, 32, 32, 3), np.uint8), np.arange(16) % 10
    options = dict(epochs=1, batch_size=8, validation_fraction=0, verbose=0)
    _train(x, y, output_dir=tmp_path, model=_tiny_model(), **options)
    with pytest.raises(ValueError, match=r"`resume`: the run in .* is finished \(1 epochs"):
        _train(x, y, output_dir=tmp_path, model=_tiny_model(), resume=True, **options)
    # Without resume the finished run is replaced, not appended to.
    again = _train(x, y, output_dir=tmp_path, model=_tiny_model(), **options)
    assert [row["epoch"] for row in again.history] == [1]


def test_a_run_shorter_than_its_warmup_still_reaches_the_peak_and_decays(tmp_path):
    x, y = np.zeros((32, 32, 32, 3), np.uint8), np.arange(32) % 10
    seen = []

    class RecordRate(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    _train(x, y, output_dir=tmp_path, model=_tiny_model(), epochs=1, batch_size=2,
                  learning_rate=0.2, warmup_epochs=5, validation_fraction=0, verbose=0,
                  extra_callbacks=[RecordRate()])
    # 16 steps; the warm-up is capped at a quarter of them: 4 steps up, then cosine down.
    assert len(seen) == 16
    assert seen[4] == pytest.approx(0.2)
    assert seen[:5] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert seen[-1] < 0.01


@pytest.mark.parametrize("images, batch_size, steps", [(40, 16, 3), (36, 16, 3), (35, 16, 2), (10, 16, 1)])
def test_an_epochs_short_last_batch_is_kept_unless_tiny(tmp_path, images, batch_size, steps):
    # 40 images in batches of 16: two full batches, and the 8 left over are a third step.
    # 36: the 4 left over are a quarter of a batch, still kept; 35: 3 are fewer, left out.
    # 10 images, fewer than a batch: the one short batch is all there is, and is kept.
    x, y = np.zeros((images, 32, 32, 3), np.uint8), np.arange(images) % 10
    result = _train(x, y, output_dir=tmp_path, model=_tiny_model(), epochs=2,
                           batch_size=batch_size, warmup_epochs=0, validation_fraction=0, verbose=0)
    optimizer = result.model.optimizer
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 2 * steps
    # The schedule counts the same steps, so it ends at 0 on the last one.
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.0, abs=1e-7)


def test_files_get_the_users_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        _train(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10, output_dir=tmp_path,
                      model=_tiny_model(), epochs=1, batch_size=8, validation_fraction=0, verbose=0)
    finally:
        os.umask(previous)
    for name in ("history.json", "history.csv", "final.keras", "best.keras"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_redirected_output_gets_one_line_per_epoch(monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert fit_verbosity("auto") == 2
    assert fit_verbosity(0) == 0


@pytest.mark.slow
def test_mixed_bfloat16_training_on_cpu(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    y = np.arange(32) % 10
    result = _train(x, y, output_dir=tmp_path, epochs=1, alpha=0.25, early_downsampling=4,
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
    import dataclasses
    from mobilenet.training import RECIPE, train
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    y = np.arange(32) % 10
    recipe = dataclasses.replace(RECIPE, epochs=2, alpha=0.25, early_downsampling=4, batch_size=16,
                                 validation_fraction=0)
    result = train((x, y), output_dir=sys.argv[1], recipe=recipe, strategy=strategy, verbose=0)
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


def test_time_budget_end_to_end_cuts_the_run_and_its_schedule(tmp_path):
    # A budget already spent after the first epoch: the run stops there, and the
    # schedule is moved to end at that epoch (2 steps), so its rate is 0 from there on.
    result = _train(np.zeros((16, 32, 32, 3), np.uint8), np.arange(16) % 10,
                           output_dir=tmp_path, model=_tiny_model(), epochs=50, batch_size=8,
                           warmup_epochs=0, time_budget=1e-3, validation_fraction=0, verbose=0)
    assert result.stopped_early
    assert [row["epoch"] for row in result.history] == [1]
    optimizer = result.model.optimizer
    assert int(optimizer.iterations.numpy()) == 2
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.0, abs=1e-7)
    assert (tmp_path / "final.keras").is_file() and not (tmp_path / "backup").exists()


_DATA_PARALLEL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np
    import dataclasses
    from mobilenet.training import RECIPE, train

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    y = np.arange(8) % 10
    options = dict(recipe=dataclasses.replace(RECIPE, epochs=1, alpha=0.25, early_downsampling=4,
                                              batch_size=8, validation_fraction=0, augment=False),
                   verbose=0)
    report, weights = {"devices": keras.distribution.list_devices()}, {}
    for name, strategy in (("single", None), ("parallel", keras.distribution.DataParallel())):
        result = train((x, y), output_dir=f"{sys.argv[1]}/{name}", strategy=strategy, **options)
        kernel = result.model.get_layer("fc").kernel.value
        report[name] = {
            "loss": result.history[0]["loss"],
            "steps": int(keras.ops.convert_to_numpy(result.model.optimizer.iterations)),
            "kernel_devices": len(kernel.sharding.device_set),
            "final_model": result.final_model_path.is_file(),
        }
        weights.update({f"{name}/{w.path}": keras.ops.convert_to_numpy(w) for w in result.model.weights})
        keras.backend.clear_session()
    report["distribution_after"] = repr(keras.distribution.distribution())
    try:  # 7 images in batches of 8: one batch of 7, which 2 devices cannot split
        train((x[:7], y[:7]), output_dir=f"{sys.argv[1]}/uneven",
                      strategy=keras.distribution.DataParallel(), **options)
    except ValueError as error:
        report["uneven"] = str(error)
    np.savez(f"{sys.argv[1]}/weights.npz", **weights)
    print(json.dumps(report))
    """
)


def test_data_parallel_on_jax_takes_the_same_step_as_one_device(tmp_path):
    """A keras.distribution.DataParallel over 2 CPU devices: one step equals one device's."""
    pytest.importorskip("jax", reason="jax is not installed (it comes with the dev extra)")
    # Keras' backend and JAX's device count are fixed when they start, hence a fresh
    # process. XLA's CPU optimisation level 0 only makes compiling, a good part of
    # this test's time, quicker; both runs are compiled alike.
    xla_flags = "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"
    env = {
        **os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": "jax", "XLA_FLAGS": xla_flags, "JAX_PLATFORMS": "cpu",
    }
    completed = subprocess.run(
        [sys.executable, "-c", _DATA_PARALLEL_SCRIPT, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["devices"] == ["cpu:0", "cpu:1"]
    single, parallel = report["single"], report["parallel"]
    assert single["steps"] == parallel["steps"] == 1
    assert (single["kernel_devices"], parallel["kernel_devices"]) == (1, 2)  # replicated on both
    assert single["final_model"] and parallel["final_model"]
    assert parallel["loss"] == pytest.approx(single["loss"], rel=1e-5)
    # The batch of 8 split 4 + 4, BatchNorm's statistics those of all 8: the same step.
    weights = np.load(tmp_path / "weights.npz")
    names = [name.removeprefix("single/") for name in weights.files if name.startswith("single/")]
    # Every weight of the shallow net: the stem's kernel and 4 BatchNorm vectors, 8 blocks
    # of 2 kernels and 2 x 4 BatchNorm vectors, the classifier's kernel and bias.
    assert len(names) == 1 + 4 + 8 * (2 + 2 * 4) + 2
    for name in names:
        expected, got = weights[f"single/{name}"], weights[f"parallel/{name}"]
        scale = float(np.max(np.abs(expected))) or 1.0
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale, err_msg=name)
    assert report["distribution_after"] == "None"  # the scope was left as it was found
    assert report["uneven"].startswith(
        "Invalid value for argument `batch_size`: expected batches that split evenly over "
        "the 2 devices of the DataParallel strategy. Received: 7 training images in batches "
        "of 8, which makes a batch of 7"
    )


def test_a_folder_another_run_is_writing_is_refused(tmp_path):
    import fcntl

    from mobilenet.training import trainer

    (tmp_path / "run").mkdir()
    with open(tmp_path / "run" / trainer.LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `train` holds it
        held.write("process 12345")
        held.flush()
        with pytest.raises(ValueError, match="`output_dir`: expected a folder no other training run "
                                             "is writing.*process 12345 is writing now"):
            _train(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10,
                          output_dir=tmp_path / "run", model=_tiny_model(), epochs=1,
                          validation_fraction=0, verbose=0)
    assert not (tmp_path / "run" / "history.json").exists()
    # Once the holder ends, the folder is free; a finished run leaves no lock file behind.
    _train(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10, output_dir=tmp_path / "run",
                  model=_tiny_model(), epochs=1, validation_fraction=0, verbose=0)
    assert not (tmp_path / "run" / trainer.LOCK_FILE).exists()


def test_resume_keeps_the_planned_epochs(tmp_path):
    x, y = np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10
    options = dict(model=_tiny_model(), validation_fraction=0, verbose=0, batch_size=8)

    class _Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise _Killed

    with pytest.raises(_Killed):
        _train(x, y, output_dir=tmp_path, epochs=4, extra_callbacks=[_Stop()], **options)
    with pytest.raises(ValueError, match="`epochs`: expected 4, as the interrupted run .* was planned"):
        _train(x, y, output_dir=tmp_path, epochs=2, resume=True, **options)
    resumed = _train(x, y, output_dir=tmp_path, epochs=4, resume=True, **options)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]


def test_the_recipe_checks_itself_when_made_and_names_the_field():
    with pytest.raises(ValueError, match=r"`epochs`: expected an integer >= 1. Received: epochs=0") as error:
        dataclasses.replace(RECIPE, epochs=0)
    assert error.value.argument == "epochs"
    with pytest.raises(ValueError, match="`image_size`: expected an integer from 1 to 1024") as error:
        dataclasses.replace(RECIPE, image_size=100_000)
    assert dataclasses.replace(RECIPE, learning_rate=1).learning_rate == 1.0  # normalised
    # Every knob of the recipe is a field with a default: train needs no other keyword.
    assert set(KNOBS) <= {field.name for field in dataclasses.fields(RECIPE)}
    import inspect

    assert len(inspect.signature(train).parameters) <= 12


def test_cifar10_arrays_enter_through_load_data_with_their_names_and_test_split(cifar10_subset_dir, tmp_path):
    from mobilenet.training import ArraySplits, load_data

    data = load_data(cifar10_subset_dir, limit=24)
    assert isinstance(data, ArraySplits) and data.class_names == tuple(CIFAR10_CLASS_NAMES)
    result = train(data, output_dir=tmp_path, model=_tiny_model(), verbose=0,
                   recipe=dataclasses.replace(RECIPE, epochs=1, batch_size=8, validation_fraction=0))
    assert result.class_names == tuple(CIFAR10_CLASS_NAMES)
    what, images, labels = result.held_out()
    assert what == "test" and len(images) == len(labels) == 24
    np.testing.assert_array_equal(labels, load_cifar10(cifar10_subset_dir)[1][1][:24])


def test_best_keras_is_final_keras_when_the_validation_share_cannot_choose(tmp_path, capsys):
    # 40 images, 10% held out: 4 validation images, under 50 (and under 5 per class).
    x, y = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), np.arange(40) % 10
    result = _train(x, y, output_dir=tmp_path, model=_tiny_model(), epochs=2, batch_size=8,
                    validation_fraction=0.1)
    assert result.best_is_final
    assert "best.keras: final.keras (the validation share, 10 images" in capsys.readouterr().out
    plan = json.loads((tmp_path / "run.json").read_text())
    assert plan["best_model"].startswith("final.keras (the validation share")
    best = keras.saving.load_model(tmp_path / "best.keras")
    for ours, theirs in zip(best.weights, result.model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs))


def test_resume_with_no_earlier_run_says_it_starts_afresh(tmp_path, capsys):
    _train(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10, output_dir=tmp_path / "new",
           model=_tiny_model(), epochs=1, batch_size=8, validation_fraction=0, resume=True)
    assert f"nothing to resume in {tmp_path / 'new'}: no earlier run there, starting a new one" \
        in capsys.readouterr().out


def test_weights_of_another_width_give_one_error_and_no_warnings(tmp_path, recwarn):
    from mobilenet import MobileNetV1

    MobileNetV1(0.25, input_shape=(32, 32, 3), include_top=False).save_weights(tmp_path / "a.weights.h5")
    with pytest.raises(ValueError, match=r"`weights`: .*alpha=0.5"):
        _train(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10, output_dir=tmp_path / "run",
               weights=tmp_path / "a.weights.h5", alpha=0.5, shallow=False, epochs=1,
               validation_fraction=0)
    assert not [w for w in recwarn if "Skipping nested container" in str(w.message)]


def test_the_old_cifar10_train_still_works_with_a_deprecation_warning(monkeypatch, tmp_path):
    from mobilenet import cifar10, training

    asked = {}

    def record(data, **kwargs):
        asked.update(kwargs, data=data)
        return "trained"

    monkeypatch.setattr(training, "train", record)
    x, y = np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10
    with pytest.warns(DeprecationWarning, match=r"mobilenet.cifar10.train is deprecated: call "
                      r"mobilenet.training.train\(\(x, y\)"):
        assert cifar10.train(x, y, output_dir=tmp_path, epochs=3, alpha=0.25, verbose=0) == "trained"
    assert (asked["recipe"].epochs, asked["recipe"].alpha) == (3, 0.25)  # knobs went into the recipe
    assert asked["class_names"] == cifar10.CLASS_NAMES and asked["data"][0] is x
    assert asked["output_dir"] == tmp_path and asked["verbose"] == 0
