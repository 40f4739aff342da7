"""Tests of `mobilenet.export.openvino` and of choosing a runtime: `predict --runtime`.

OpenVINO is in the ``dev`` extra, so CI has it: there these tests run, and
elsewhere they skip when it is absent. ONNX Runtime (the ``onnx`` extra) is
the independent reference: both read the same ``.onnx`` file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobilenet._validation import InvalidArgument
from mobilenet.cifar10 import load_cifar10
from mobilenet.cli import main
from mobilenet.export import ONNXRunner, OpenVINORunner, fastest_onnx_runtime, to_onnx
from mobilenet.predict import Classifier
from tests.console import console_script
from tests.inference_models import has_onnx, tiny_pixel_cnn


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _needs(module: str, extra: str) -> pytest.MarkDecorator:
    """Skips where ``module`` is absent, except on CI, where the ``dev`` extra brings it."""
    missing = importlib.util.find_spec(module) is None and not _on_ci()
    return pytest.mark.skipif(missing, reason=f"the optional `{extra}` extra is not installed")


needs_openvino = _needs("openvino", "openvino")
pytestmark = [
    pytest.mark.skipif(not has_onnx() and not _on_ci(),
                       reason="the optional `onnx` extra is not installed"),
    pytest.mark.tf_only,
]


@pytest.fixture(scope="module")
def files(cifar10_subset_dir, tmp_path_factory):
    """A tiny pixel model as .onnx (softmax) and as a logits .onnx, and 6 real test images."""
    (_, _), (x_test, _) = load_cifar10(cifar10_subset_dir)
    folder = tmp_path_factory.mktemp("openvino")
    keras.utils.set_random_seed(0)
    model = tiny_pixel_cnn()
    to_onnx(model, folder / "model.onnx")
    logits = keras.Sequential([keras.Input((32, 32, 3)), *model.layers[:-1], keras.layers.Dense(10)])
    to_onnx(logits, folder / "logits.onnx")
    (folder / "images").mkdir()
    for index in range(6):
        tf.io.write_file(str(folder / "images" / f"{index}.png"), tf.io.encode_png(x_test[index]))
    return folder, model, x_test[:64].astype(np.float32)


@needs_openvino
def test_openvino_runs_our_onnx_file_as_onnx_runtime_does_in_float32(files):
    folder, model, images = files
    runner = OpenVINORunner(folder / "model.onnx")
    assert runner.runtime == "openvino" and runner.precision == "f32"
    assert runner.input_shape == (None, 32, 32, 3) and runner.output_shape == (None, 10)
    assert runner.input_type == runner.output_type == "float32"
    assert runner.outputs == "probabilities"
    assert OpenVINORunner(folder / "logits.onnx").outputs == "logits"
    got = runner.run(images, batch_size=5)  # a last batch of 4: the batch size is free
    reference = ONNXRunner(folder / "model.onnx").run(images)
    keras_outputs = model.predict(images, verbose=0)
    assert got.shape == (64, 10) and got.dtype == np.float32
    assert np.abs(got - reference).max() < 1e-5
    assert np.abs(got - keras_outputs).max() < 1e-5
    # OpenVINO's own choice is one of its precisions (f32 without bf16 instructions).
    assert OpenVINORunner(folder / "model.onnx", 1, precision=None).precision in ("f32", "bf16", "f16")


@needs_openvino
def test_openvino_runner_rejects_bad_arguments(files, tmp_path):
    folder, _, _ = files
    with pytest.raises(InvalidArgument, match=r"`precision`: expected one of"):
        OpenVINORunner(folder / "model.onnx", precision="fp32")
    with pytest.raises(InvalidArgument, match=r"`model`: expected an existing \.onnx file"):
        OpenVINORunner(tmp_path / "missing.onnx", argument="model")
    (tmp_path / "empty.onnx").write_bytes(b"not onnx")
    with pytest.raises(InvalidArgument, match="not an ONNX model that OpenVINO can read"):
        OpenVINORunner(tmp_path / "empty.onnx")


def test_classifier_runtime_must_read_the_model(files):
    folder, model, _ = files
    with pytest.raises(InvalidArgument, match=r"`runtime`: expected 'auto' or 'keras' for a "
                                              r"keras\.Model\. Received: runtime='litert'"):
        Classifier(model, runtime="litert")
    with pytest.raises(InvalidArgument, match=r"`runtime`: expected 'auto' or 'onnxruntime' or "
                                              r"'openvino' for a \.onnx file"):
        Classifier(folder / "model.onnx", runtime="keras")
    with pytest.raises(InvalidArgument, match=r"`runtime`: expected one of"):
        Classifier(model, runtime="tensorrt")
    assert Classifier(model).runtime == "keras"
    assert Classifier(folder / "model.onnx", runtime="onnxruntime").runtime == "onnxruntime"


def test_fastest_onnx_runtime_follows_the_measured_rule():
    """OpenVINO only on CPUs with bfloat16 instructions; ONNX Runtime elsewhere."""
    assert fastest_onnx_runtime(frozenset({"sse4_2", "avx2", "fma"})) == "onnxruntime"
    assert fastest_onnx_runtime(frozenset({"fp", "asimd"})) == "onnxruntime"  # ARM
    vnni = frozenset({"avx2", "avx512f", "avx512_vnni"})  # the Intel Xeon of this project
    assert fastest_onnx_runtime(vnni) == "onnxruntime"
    openvino = importlib.util.find_spec("openvino") is not None
    expected = "openvino" if openvino else "onnxruntime"
    assert fastest_onnx_runtime(vnni | {"avx512_bf16"}) == expected  # the AMD EPYC of issue 33
    assert fastest_onnx_runtime(vnni | {"amx_tile", "amx_bf16"}) == expected


def _predict_json(folder, *flags: str) -> list[dict]:
    """``mobilenet predict model.onnx images --json FLAGS`` in a new process, through the script."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    completed = subprocess.run(
        [console_script(), "predict", "model.onnx", "images", "--top", "3", "--json", *flags],
        capture_output=True, text=True, cwd=folder, env=env, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout)


@needs_openvino
def test_predict_runtime_openvino_and_auto_agree_with_onnx_runtime(files):
    folder, _, _ = files
    reference = Classifier(folder / "model.onnx", runtime="onnxruntime").classify(
        folder / "images", top=3)
    openvino = _predict_json(folder, "--runtime", "openvino")
    auto = _predict_json(folder)  # --runtime auto is the default
    assert len(openvino) == len(auto) == len(reference) == 6
    for expected, by_openvino, by_auto in zip(reference, openvino, auto):
        assert by_openvino["runtime"] == "openvino"
        assert by_auto["runtime"] == fastest_onnx_runtime()
        for result in (by_openvino, by_auto):
            assert result["path"] == os.path.relpath(expected.path, folder)
            assert result["top"][0]["index"] == expected.top[0].index
            assert abs(result["top"][0]["probability"] - expected.top[0].probability) < 1e-4


def test_predict_runtime_usage_errors(files, capsys, monkeypatch):
    folder, _, _ = files
    assert main(["predict", str(folder / "model.onnx"), str(folder / "images"),
                 "--runtime", "litert"]) == 2
    assert "`--runtime`: expected 'auto' or 'onnxruntime' or 'openvino'" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)  # as if not installed
    assert main(["predict", str(folder / "model.onnx"), str(folder / "images"),
                 "--runtime", "openvino"]) == 2
    err = capsys.readouterr().err
    assert "`--runtime`" in err and 'pip install "mobilenet[openvino]"' in err


@pytest.mark.slow
@needs_openvino
def test_int8_file_in_openvino_agrees_with_onnx_runtime(cifar10_subset_dir, tmp_path):
    """The int8 QDQ file: OpenVINO's int8 kernels and ONNX Runtime's pick the same top-1."""
    from tests.inference_models import trained_cifar_mobilenet

    model, calibration, test_images = trained_cifar_mobilenet(cifar10_subset_dir)
    path = to_onnx(model, tmp_path / "int8.onnx", "int8", representative_data=calibration)
    images = test_images[:500].astype(np.float32)
    by_openvino = OpenVINORunner(path).run(images).argmax(-1)
    by_onnx_runtime = ONNXRunner(path).run(images).argmax(-1)
    by_keras = model.predict(images, verbose=0).argmax(-1)
    assert np.mean(by_openvino == by_onnx_runtime) >= 0.97
    # Against the float model, OpenVINO's int8 answers are as good as ONNX Runtime's: this weakly
    # trained model has many near ties, so the int8 file itself agrees with it on about 90%
    # (88-91% measured, see test_int8_onnx_agreement.py), whichever runtime runs it.
    assert np.mean(by_openvino == by_keras) >= np.mean(by_onnx_runtime == by_keras) - 0.03


@needs_openvino
def test_export_verify_runtime_openvino(files, tmp_path, capsys, monkeypatch):
    folder, model, images = files
    ran = []
    run = OpenVINORunner.run
    monkeypatch.setattr(OpenVINORunner, "run", lambda self, *a, **k: ran.append(1) or run(self, *a, **k))
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "images.npy", images[:16])
    assert main(["export", str(tmp_path / "model.keras"), str(tmp_path / "model.onnx"), "--verify",
                 "--verify-data", str(tmp_path / "images.npy"),
                 "--verify-runtime", "openvino"]) == 0
    printed = capsys.readouterr().out
    assert "verified on 16 images in openvino: top-1 agreement 100.00%" in printed
    assert ran, "OpenVINO did not run the file"
