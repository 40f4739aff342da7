"""Tests for ``mobilenet predict``: the installed console script in a new process, on real images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobilenet.cifar10 import CLASS_NAMES, load_cifar10
from mobilenet.cli import main
from tests.inference_models import tiny_pixel_cnn


def _console_script() -> str:
    script = Path(sys.executable).parent / "mobilenet"
    if script.is_file():
        return str(script)
    found = shutil.which("mobilenet")
    if found is None:
        pytest.fail("the `mobilenet` console script is not installed (pip install -e .)")
    return found


@pytest.fixture(scope="module")
def work(cifar10_subset_dir, tmp_path_factory):
    """A saved 10-class pixel model, 4 real test images as PNG and one JPEG, and the model."""
    (_, _), (x_test, _) = load_cifar10(cifar10_subset_dir)
    folder = tmp_path_factory.mktemp("predict")
    keras.utils.set_random_seed(0)
    model = tiny_pixel_cnn()
    model.save(folder / "model.keras")
    (folder / "images").mkdir()
    for index in range(4):
        tf.io.write_file(str(folder / "images" / f"{index}.png"), tf.io.encode_png(x_test[index]))
    tf.io.write_file(str(folder / "images" / "4.jpg"), tf.io.encode_jpeg(x_test[4], quality=95))
    return folder, model


def test_predict_prints_top_classes_and_exits_1_naming_an_unreadable_file(work):
    folder, model = work
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 a truncated JPEG")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    completed = subprocess.run(
        [_console_script(), "predict", "model.keras", "images", "broken.jpg", "--top", "2",
         "--batch-size", "2", "--json"],
        capture_output=True, text=True, cwd=folder, env=env, timeout=300,
    )
    assert completed.returncode == 1, completed.stderr[-2000:]
    results = json.loads(completed.stdout)
    assert [result["path"] for result in results] == [
        *(os.path.join("images", f"{i}.png") for i in range(4)), os.path.join("images", "4.jpg"),
        "broken.jpg",
    ]
    assert results[-1]["error"] and results[-1]["top"] == []
    assert "mobilenet predict: error: cannot read 'broken.jpg' as an image" in completed.stderr
    assert "1 of 6 files could not be classified" in completed.stderr

    pngs = np.stack([tf.io.decode_png(tf.io.read_file(str(folder / "images" / f"{i}.png"))).numpy()
                     for i in range(4)])
    expected = model.predict(pngs.astype(np.float32), verbose=0)
    for result, row in zip(results, expected):
        assert result["error"] is None and len(result["top"]) == 2
        best = result["top"][0]
        assert best["index"] == int(row.argmax()) and best["name"] == CLASS_NAMES[best["index"]]
        assert abs(best["probability"] - float(row.max())) < 1e-4


def test_text_output_and_usage_errors(work, capsys):
    folder, model = work
    assert main(["predict", str(folder / "model.keras"), str(folder / "images" / "0.png"),
                 "--top", "3"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    path, scores = line.split(": ", 1)
    assert path == str(folder / "images" / "0.png") and len(scores.split(", ")) == 3
    assert scores.split(", ")[0].split(" ")[0] in CLASS_NAMES

    assert main(["predict", str(folder / "model.pt"), str(folder / "images")]) == 2
    assert "`MODEL`: expected a .keras, .tflite or .onnx file" in capsys.readouterr().err
    (folder / "empty").mkdir()
    assert main(["predict", str(folder / "model.keras"), str(folder / "empty")]) == 2
    assert "`IMAGE_OR_FOLDER`: the folder" in capsys.readouterr().err


def test_help_lists_predict_without_loading_tensorflow():
    code = (
        "import sys\nfrom mobilenet.cli import main\n"
        "try:\n    main(['predict', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr
    for flag in ("--top", "--batch-size", "--threads", "--json", "IMAGE_OR_FOLDER"):
        assert flag in result.stdout


def test_an_onnx_model_without_the_extra_is_a_usage_error(work, capsys, monkeypatch):
    folder, _ = work
    (folder / "model.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    assert main(["predict", str(folder / "model.onnx"), str(folder / "images"),
                 "--runtime", "onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert "`MODEL`" in err and 'pip install "mobilenet[onnx]"' in err
