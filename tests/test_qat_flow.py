"""Quantization-aware training as a user runs it: one command per new process, the console script.

train a tiny model with ``--qat-epochs 1`` on the CIFAR-10 subset -> export it
with ``--int8`` and no calibration data (``--verify`` compares the file with
the QAT model) -> check the file against the QAT model again here, with
LiteRT's own interpreter and Keras -> predict a PNG with the file.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.console import console_script

# Slow (two traces of the model and a conversion: about 3 minutes on 2 cores): CI's slow step.
pytestmark = [pytest.mark.xdist_group("qat_flow"), pytest.mark.tf_only, pytest.mark.slow]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    return subprocess.run([console_script(), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=900)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cifar10_subset_dir):
    work = tmp_path_factory.mktemp("qat")
    done = _run(["train", "--data-dir", str(cifar10_subset_dir), "--limit", "256", "--epochs", "2",
                 "--qat-epochs", "1", "--alpha", "0.25", "--validation-fraction", "0",
                 "--output-dir", "run"], work)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, done


def test_train_writes_the_float_model_and_quantization_aware_ones(trained):
    work, done = trained
    assert "float.keras" in done.stdout and "final.keras" in done.stdout
    assert "test accuracy:" in done.stdout
    python = str(Path(console_script()).parent / "python")
    check = subprocess.run(
        [python, "-c", "import sys, mobilenet; from mobilenet.quantization import "
         "is_quantize_aware; print([is_quantize_aware(mobilenet.load_model(p)) "
         "for p in sys.argv[1:]])", "run/float.keras", "run/final.keras", "run/best.keras"],
        capture_output=True, text=True, cwd=work, timeout=300)
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.strip().splitlines()[-1] == "[False, True, True]"


def test_int8_export_needs_no_calibration_and_agrees_with_the_qat_model(trained, cifar10_subset_dir):
    work, _ = trained
    done = _run(["export", "run/final.keras", "qat.tflite", "--int8", "--verify",
                 "--calibration-dir", str(cifar10_subset_dir)], work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "input: uint8, scale 1, zero point 0" in done.stdout
    agreement = re.search(r"top-1 agreement ([\d.]+)%", done.stdout)
    assert agreement and float(agreement.group(1)) >= 99.0, done.stdout

    # The same, checked here: LiteRT's interpreter on the file, Keras on the QAT model.
    import mobilenet  # noqa: F401  (registers the library's layers, as a user's import does)
    from ai_edge_litert.interpreter import Interpreter
    from mobilenet.datasets import load_cifar10
    from mobilenet.saving import load_model

    _, (images, _) = load_cifar10(cifar10_subset_dir)
    images = images[:200]
    keras_top1 = load_model(work / "run" / "final.keras").predict(
        images.astype("float32"), verbose=0).argmax(1)
    interpreter = Interpreter(str(work / "qat.tflite"))
    entry, exit_ = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(entry["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], images)  # uint8 pixels, as they come
    interpreter.invoke()
    file_top1 = interpreter.get_tensor(exit_["index"]).argmax(1)
    assert np.mean(file_top1 == keras_top1) >= 0.99


def test_int8_onnx_needs_no_calibration_either(trained, cifar10_subset_dir):
    work, _ = trained
    done = _run(["export", "run/final.keras", "qat.onnx", "--int8", "--verify",
                 "--calibration-dir", str(cifar10_subset_dir)], work)
    assert done.returncode == 0, done.stderr[-3000:]
    agreement = re.search(r"top-1 agreement ([\d.]+)%", done.stdout)
    assert agreement and float(agreement.group(1)) >= 95.0, done.stdout


def test_a_float_model_still_asks_for_calibration_images(trained):
    work, _ = trained
    done = _run(["export", "run/float.keras", "float.tflite", "--int8"], work)
    assert done.returncode == 2
    assert "--calibration-data" in done.stderr and not (work / "float.tflite").exists()


def test_predict_with_the_int8_file_in_a_new_process(trained, cifar10_subset_dir):
    work, _ = trained
    if not (work / "qat.tflite").exists():
        pytest.skip("the export test did not run first")
    from PIL import Image

    from mobilenet.datasets import load_cifar10

    _, (images, labels) = load_cifar10(cifar10_subset_dir)
    Image.fromarray(images[0]).save(work / "image.png")
    done = _run(["predict", "qat.tflite", "image.png"], work)
    assert done.returncode == 0, done.stderr[-3000:]
    from mobilenet.datasets.cifar10 import CLASS_NAMES

    assert "image.png" in done.stdout
    assert any(name in done.stdout for name in CLASS_NAMES), done.stdout  # names travel in the file
