"""Tests for the ``mobilenet export`` command: run the entry point, check files and output."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import keras
import tensorflow as tf

from mobilenet import DepthwiseSeparableConv2D
from mobilenet.cli import main


def _small_model() -> keras.Model:
    """A conv with BatchNorm and the separable block, on [0, 1] images: converts in a second or two.

    What the command does around the converter (flags, calibration, verify,
    folding, messages) does not depend on the network's depth; test_export.py
    converts a whole MobileNet.
    """
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False),
        keras.layers.BatchNormalization(), keras.layers.ReLU(),
        DepthwiseSeparableConv2D(16, strides=2),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax"),
    ])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small model saved as .keras and 24 images saved as .npy (uint8 pixels)."""
    folder = tmp_path_factory.mktemp("cli")
    model = _small_model()
    model.save(folder / "model.keras")
    images = np.random.default_rng(0).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    np.save(folder / "images.npy", images)
    return folder


def _file_types(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    return (
        np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
        {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()},
    )


def test_help_lists_export_without_loading_tensorflow():
    code = (
        "import sys\nfrom mobilenet.cli import main\n"
        "try:\n    main(['export', '--help'])\nexcept SystemExit as e:\n    pass\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr
    for flag in ("--quantization", "--int8", "--calibration-data", "--fold-bn", "--verify"):
        assert flag in result.stdout


def test_float32_export_with_verify(saved, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    code = main(["export", str(saved / "model.keras"), str(out), "--verify",
                 "--verify-data", str(saved / "images.npy"), "--rescale", str(1 / 255)])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"{out.stat().st_size:,} bytes" in printed
    assert "top-1 agreement 100.00%" in printed
    assert _file_types(out)[0] == "float32"


def test_int8_fold_bn_export_with_verify(saved, tmp_path, capsys):
    out = tmp_path / "m8.tflite"
    code = main(["export", str(saved / "model.keras"), str(out), "--int8", "--fold-bn",
                 "--calibration-data", str(saved / "images.npy"), "--rescale", str(1 / 255),
                 "--verify"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "int8, BatchNorm folded" in printed
    assert "verified on 24 images" in printed and "(input uint8, output uint8)" in printed
    input_type, types = _file_types(out)
    assert input_type == "uint8" and "float32" not in types


def test_int8_export_calibrated_on_a_cifar10_folder(saved, tmp_path, capsys, cifar10_subset_dir):
    out = tmp_path / "c8.tflite"
    pixels = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                               *_small_model().layers])
    pixels.save(tmp_path / "pixels.keras")
    code = main(["export", str(tmp_path / "pixels.keras"), str(out), "--int8",
                 "--calibration-dir", str(cifar10_subset_dir), "--verify"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "verified on 1000 images" in printed  # the subset's test_batch
    assert _file_types(out)[0] == "uint8"
    # The folder's images are pixels 0-255: a model on [0, 1] would be calibrated on the wrong
    # range, so it is refused, naming the flag.
    assert main(["export", str(saved / "model.keras"), str(tmp_path / "d.tflite"), "--int8",
                 "--calibration-dir", str(cifar10_subset_dir)]) == 2
    assert "`--calibration-dir`: its images are pixels 0-255" in capsys.readouterr().err


def test_calibration_dir_errors(saved, tmp_path, capsys):
    out = tmp_path / "bad.tflite"
    assert main(["export", str(saved / "model.keras"), str(out), "--int8",
                 "--calibration-dir", str(tmp_path / "nowhere")]) == 2
    assert "`--calibration-dir`" in capsys.readouterr().err
    assert main(["export", str(saved / "model.keras"), str(out),
                 "--calibration-dir", str(tmp_path)]) == 2
    assert "only int8 export is calibrated" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--int8"], "`--calibration-data`: int8 quantization calibrates"),
        (["--verify"], "`--verify`"),
        (["--calibration-data", "missing.npy", "--int8"], "`--calibration-data`"),
        (["--quantization", "float16", "--calibration-data", "x.npy"], "only int8 export is calibrated"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message_and_no_file(saved, tmp_path, capsys, extra, message):
    out = tmp_path / "m.tflite"
    code = main(["export", str(saved / "model.keras"), str(out), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_unwritable_output_and_missing_model(saved, tmp_path, capsys):
    assert main(["export", str(saved / "model.keras"), str(tmp_path / "no" / "m.tflite")]) == 2
    assert "`OUTPUT`: expected a file in an existing, writable folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "absent.keras"), str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err
    assert "`MODEL`: expected an existing .keras file" in err and "no such file" in err
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 half a zip")
    assert main(["export", str(tmp_path / "corrupt.keras"), str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err
    assert "`MODEL`" in err and "corrupt or truncated" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "corrupt.keras").unlink()
    assert os.listdir(tmp_path) == []


def test_export_a_model_saved_with_the_training_optimizer(tmp_path):
    """A model saved by `mobilenet train` carries its LR schedule; export must not need it.

    Runs in a fresh process, where `mobilenet.cifar10` (which registers the
    schedule) has not been imported.
    """
    from mobilenet.schedules import WarmupCosineDecay

    model = _small_model()
    schedule = WarmupCosineDecay(peak=0.1, warmup_steps=2, total_steps=10)
    model.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy")
    model.save(tmp_path / "trained.keras")
    out = tmp_path / "trained.tflite"
    result = subprocess.run(
        [sys.executable, "-m", "mobilenet.cli", "export", str(tmp_path / "trained.keras"), str(out)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.stat().st_size > 0


def test_a_c_array_from_a_file_that_is_no_flatbuffer_is_refused_once(tmp_path, capsys):
    model = tmp_path / "camera.tflite"
    model.write_bytes(b"not a model")
    assert main(["export", str(model), str(tmp_path / "camera.cc")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("Invalid value for argument") == 1, error  # said once, not wrapped again
    assert "`MODEL`: expected a LiteRT (.tflite) flatbuffer" in error and "MODEL=" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.tflite"]
