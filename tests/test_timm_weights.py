"""Tests of `mobilenet.timm_weights`: timm's files give timm's outputs.

Truth is timm itself: tools/make_timm_reference.py ran timm (its version is
in each tests/data/timm/*.json) on weights drawn from a seed by a NumPy-only
recipe, and stored timm's state_dict layout and its probabilities. Here the
same recipe writes the same weights as a .safetensors file, with no torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from mobilenet import MobileNetV1
from mobilenet._validation import InvalidArgument
from mobilenet.timm_weights import (
    TIMM_VARIANTS,
    find_timm_variant,
    read_timm_weights,
    timm_model_options,
    timm_state_dict_shapes,
)

safetensors_numpy = pytest.importorskip("safetensors.numpy")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "timm"
ARCHITECTURES = ("mobilenetv1_100", "mobilenetv1_100h", "mobilenetv1_125")


def _recipe():
    """tools/make_timm_reference.py, the one place the seeded weights' recipe is written."""
    spec = importlib.util.spec_from_file_location("make_timm_reference",
                                                  ROOT / "tools" / "make_timm_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECIPE = _recipe()


def _reference(architecture: str) -> dict:
    return json.loads((DATA / f"{architecture}.json").read_text())


def _pixels(reference: dict) -> np.ndarray:
    return RECIPE.seeded_pixels(tuple(reference["pixels_shape"]), reference["pixels_seed"])


@pytest.fixture(scope="module")
def timm_files(tmp_path_factory) -> dict[str, str]:
    """Each variant's seeded weights, written as timm's state_dict in a .safetensors file."""
    folder = tmp_path_factory.mktemp("timm")
    paths = {}
    for architecture in ARCHITECTURES:
        reference = _reference(architecture)
        tensors = RECIPE.seeded_state_dict(reference["state_dict"], reference["seed"])
        paths[architecture] = str(folder / f"{architecture}.safetensors")
        safetensors_numpy.save_file(tensors, paths[architecture])
    return paths


def _probabilities(path: str, reference: dict, **kwargs) -> np.ndarray:
    pixels = _pixels(reference)
    model = MobileNetV1(weights=path, input_shape=pixels.shape[1:], include_preprocessing=True,
                        **kwargs)
    return np.asarray(model(pixels, training=False))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_probabilities_equal_timms(architecture, timm_files):
    reference = _reference(architecture)
    expected = np.asarray(reference["probabilities"])
    probabilities = _probabilities(timm_files[architecture], reference)
    assert probabilities.shape == expected.shape == (2, 1000)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-4)
    assert (probabilities.argmax(-1) == expected.argmax(-1)).all()
    # The comparison means something: the probabilities are far from uniform.
    assert expected.max() > 0.2


@pytest.mark.parametrize("broken", [dict(padding="same"), dict(batch_norm_epsilon=1e-3)])
def test_parity_needs_timms_padding_and_epsilon(broken, timm_files):
    """The parity test fails without either of timm's differences (so it can fail)."""
    reference = _reference("mobilenetv1_100")
    probabilities = _probabilities(timm_files["mobilenetv1_100"], reference, **broken)
    assert np.abs(probabilities - np.asarray(reference["probabilities"])).max() > 1e-2


def test_the_reference_says_which_timm_made_it():
    for architecture in ARCHITECTURES:
        made_by = _reference(architecture)["made_by"]
        assert made_by["timm"] and made_by["torch"]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_our_state_dict_layout_is_timms(architecture):
    """`timm_state_dict_shapes` against the layout timm itself wrote (counters aside)."""
    variant = next(v for v in TIMM_VARIANTS.values() if v.architecture == architecture)
    theirs = {name: tuple(shape) for name, shape, dtype in _reference(architecture)["state_dict"]
              if dtype != "int64"}
    assert timm_state_dict_shapes(variant.alpha, variant.head_filters) == theirs


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_network_follows_the_file(architecture, timm_files):
    variant = next(v for v in TIMM_VARIANTS.values() if v.architecture == architecture)
    read = read_timm_weights(timm_files[architecture])
    assert (read.alpha, read.head_filters, read.num_classes) == (variant.alpha, variant.head_filters, 1000)
    assert read.variant is variant
    model = MobileNetV1(weights=timm_files[architecture], input_shape=(64, 64, 3))
    names = {layer.name for layer in model.layers}
    assert ("head_conv" in names) == (variant.head_filters is not None)
    assert "conv1_pad" in names and "block_2_pad" in names and "block_3_pad" not in names
    # Every float tensor of the file is in the model, once: BatchNorm's 4 a channel included.
    sizes = sum(array.size for array in read.tensors.values())
    assert model.count_params() == sizes
    assert model.get_layer("conv1_bn").epsilon == 1e-5


def test_options_for_a_trainer(timm_files):
    options = timm_model_options(timm_files["mobilenetv1_125"])
    assert options == {"alpha": 1.25, "head_filters": None, "padding": "symmetric",
                       "batch_norm_epsilon": 1e-5, "activation": "relu6"}


def test_data_config_of_each_variant():
    """timm's pretrained_cfg (efficientnet.py default_cfgs): what the evaluation crop needs."""
    v100 = TIMM_VARIANTS["timm/mobilenetv1_100.ra4_e3600_r224_in1k"]
    v125 = TIMM_VARIANTS["timm/mobilenetv1_125.ra4_e3600_r224_in1k"]
    assert (v100.input_size, v100.crop_fraction, v100.interpolation) == (224, 0.875, "bicubic")
    assert v100.mean == v100.std == (0.5, 0.5, 0.5)
    assert (v125.crop_fraction, v125.test_crop_fraction) == (0.9, 1.0)
    assert find_timm_variant(1.0, 1024).architecture == "mobilenetv1_100h"
    assert find_timm_variant(0.5, None) is None


def test_backbone_and_pooling(timm_files):
    path = timm_files["mobilenetv1_100h"]
    pixels = _pixels(_reference("mobilenetv1_100h"))
    full = MobileNetV1(weights=path, input_shape=(64, 64, 3), include_preprocessing=True)
    pooled = keras.Model(full.input, full.get_layer("avg_pool").output)
    backbone = MobileNetV1(weights=path, include_top=False, pooling="avg", include_preprocessing=True)
    assert backbone.output.shape == (None, 1024)
    np.testing.assert_allclose(np.asarray(backbone(pixels)), np.asarray(pooled(pixels)),
                               rtol=1e-5, atol=1e-5)
    feature_map = MobileNetV1(weights=path, include_top=False, input_shape=(96, 64, 3))
    assert feature_map.output.shape == (None, 3, 2, 1024)


@pytest.mark.parametrize(
    "kwargs, argument",
    [(dict(alpha=1.0), "alpha"), (dict(num_classes=10), "num_classes"),
     (dict(head_filters=1024), "head_filters"), (dict(separable=False), "weights"),
     (dict(input_shape=(64, 64, 1)), "input_shape")],
)
def test_arguments_that_disagree_with_the_file(kwargs, argument, timm_files):
    with pytest.raises(InvalidArgument) as caught:
        MobileNetV1(weights=timm_files["mobilenetv1_125"], **{"input_shape": (64, 64, 3), **kwargs})
    assert caught.value.argument == argument
    if argument == "alpha":
        assert "alpha=1.0" in str(caught.value) and "alpha=1.25" in str(caught.value)


def test_a_file_that_is_not_timms_mobilenet(timm_files, tmp_path):
    tensors = safetensors_numpy.load_file(timm_files["mobilenetv1_100"])
    del tensors["blocks.3.2.conv_pw.weight"]
    path = str(tmp_path / "broken.safetensors")
    safetensors_numpy.save_file(tensors, path)
    with pytest.raises(InvalidArgument, match="blocks.3.2.conv_pw.weight"):
        MobileNetV1(weights=path)
    (tmp_path / "empty.safetensors").write_bytes(b"not a file")
    with pytest.raises(InvalidArgument, match="not a readable"):
        MobileNetV1(weights=str(tmp_path / "empty.safetensors"))
    with pytest.raises(FileNotFoundError):
        MobileNetV1(weights=str(tmp_path / "missing.safetensors"))
    with pytest.raises(InvalidArgument, match="one of timm's"):
        MobileNetV1(weights="timm/mobilenetv2_100.ra_in1k")


HUB_NAME = "timm/mobilenetv1_100.ra4_e3600_r224_in1k"


def test_a_hub_name_downloads_once_into_keras_cache(timm_files, tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    calls = []

    def fake_download(repo_id, filename, local_dir):  # no network in tests
        calls.append((repo_id, filename))
        os.makedirs(local_dir, exist_ok=True)
        target = os.path.join(local_dir, filename)
        with open(timm_files["mobilenetv1_100"], "rb") as source, open(target, "wb") as out:
            out.write(source.read())
        return target

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    for _ in range(2):
        model = MobileNetV1(weights=HUB_NAME, input_shape=(64, 64, 3))
    assert calls == [(HUB_NAME, "model.safetensors")]
    cached = tmp_path / "keras" / "models" / "timm" / HUB_NAME.split("/")[1] / "model.safetensors"
    assert cached.is_file()
    assert model.get_layer("conv1_bn").epsilon == 1e-5


def test_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(ConnectionError) as caught:
        MobileNetV1(weights=HUB_NAME)
    message = str(caught.value)
    assert "\n" not in message
    assert f"https://huggingface.co/{HUB_NAME}/resolve/main/model.safetensors" in message
    assert str(tmp_path / "keras" / "models" / "timm") in message


def test_without_huggingface_hub_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match=r"mobilenet\[timm\].*put it at"):
        MobileNetV1(weights=HUB_NAME)


@pytest.mark.slow
def test_a_timm_model_exports_to_litert(timm_files, tmp_path):
    """Float and int8 LiteRT files of a timm model keep its symmetric padding (PAD ops).

    The float file gives the Keras model's probabilities. Of random weights on
    noise pixels, int8 keeps less (its top-1 agreed on 7 of 16 images when
    written): it is checked to side with the symmetric model, against the
    same weights with "same" padding, whose top-1 agrees with neither.
    """
    import tensorflow as tf

    from mobilenet.export import run_tflite, to_tflite

    path = timm_files["mobilenetv1_100"]
    model = MobileNetV1(weights=path, input_shape=(64, 64, 3), include_preprocessing=True)
    same = MobileNetV1(weights=path, input_shape=(64, 64, 3), include_preprocessing=True,
                       padding="same")
    images = RECIPE.seeded_pixels((16, 64, 64, 3), 9).astype("float32")
    expected, expected_same = np.asarray(model(images)), np.asarray(same(images))
    float_file = to_tflite(model, tmp_path / "timm.tflite")
    np.testing.assert_allclose(run_tflite(float_file, images), expected, rtol=0, atol=5e-4)
    int8_file = to_tflite(model, tmp_path / "timm_int8.tflite", "int8",
                          representative_data=RECIPE.seeded_pixels((64, 64, 64, 3), 8))
    ops = [op["op_name"] for op in tf.lite.Interpreter(model_path=str(int8_file))._get_ops_details()]
    assert ops.count("PAD") == 5
    quantized = run_tflite(int8_file, images)
    agree = (quantized.argmax(-1) == expected.argmax(-1)).mean()
    agree_same = (quantized.argmax(-1) == expected_same.argmax(-1)).mean()
    assert agree >= 0.3 and agree > agree_same + 0.2
    assert np.abs(quantized - expected).mean() < np.abs(quantized - expected_same).mean()


@pytest.mark.slow
def test_a_timm_model_exports_to_onnx(timm_files, tmp_path):
    """The float ONNX file of a timm model gives its probabilities (symmetric padding kept)."""
    pytest.importorskip("onnxruntime")
    from mobilenet.export import run_onnx, to_onnx

    model = MobileNetV1(weights=timm_files["mobilenetv1_100h"], input_shape=(64, 64, 3),
                        include_preprocessing=True)
    images = RECIPE.seeded_pixels((4, 64, 64, 3), 9).astype("float32")
    path = to_onnx(model, tmp_path / "timm.onnx")
    np.testing.assert_allclose(run_onnx(path, images), np.asarray(model(images)), rtol=0, atol=5e-4)


@pytest.mark.slow
@pytest.mark.tf_only
def test_train_names_the_flag_of_a_timm_file_that_does_not_fit(timm_files, tmp_path):
    """mobilenet train in a new process: a missing file and a width the file contradicts."""
    import subprocess

    from tests.console import console_script
    from tests.image_folders import write_pets

    write_pets(tmp_path / "pets", per_class=4)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}

    def train(*flags):
        return subprocess.run([console_script(), "train", "--data-dir", "pets", "--image-size", "32",
                               "--epochs", "1", "--output-dir", "run", *flags], capture_output=True,
                              text=True, cwd=tmp_path, env=env, timeout=600)

    missing = train("--weights", "missing.safetensors")
    assert missing.returncode == 2 and "`--weights`" in missing.stderr and "missing.safetensors" in missing.stderr
    wider = train("--weights", timm_files["mobilenetv1_125"], "--alpha", "1.0")
    assert wider.returncode == 2, wider.stderr[-2000:]
    assert "`--alpha`" in wider.stderr and "alpha=1.25" in wider.stderr
    assert not (tmp_path / "run" / "final.keras").exists()


@pytest.mark.slow
def test_train_starts_from_timms_network_and_evaluates_as_timm(timm_files, tmp_path):
    """train builds timm's network for timm's file (padding, epsilon, head conv), copies it, and its
    model declares timm's evaluation crop and bicubic resize, which validation used."""
    import dataclasses

    from mobilenet.facts import read_facts
    from mobilenet.training import RECIPE, train
    from tests.image_folders import write_pets

    write_pets(tmp_path / "pets", per_class=6)
    recipe = dataclasses.replace(RECIPE, alpha=1.0, image_size=96, epochs=2, freeze_epochs=1,
                                 batch_size=6, validation_fraction=0.0)
    path = timm_files["mobilenetv1_100h"]
    result = train(tmp_path / "pets", output_dir=tmp_path / "run", recipe=recipe, weights=path,
                   verbose=0)
    facts = read_facts(result.final_model_path)
    assert (facts.crop_fraction, facts.interpolation) == (0.875, "bicubic")
    assert facts.class_names == ("blue", "green", "red")
    head = keras.saving.load_model(tmp_path / "run" / "head.keras")  # after the frozen epoch
    timm = MobileNetV1(weights=path, include_top=False, input_shape=(96, 96, 3))
    for layer in timm.layers:
        if layer.weights:
            for ours, theirs in zip(head.get_layer(layer.name).weights, layer.weights):
                np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs), layer.name)
    assert any(layer.name.endswith("_pad") for layer in head.layers)
