"""Tests of `mobilenet.weights`: keras.applications files give keras.applications outputs."""

from __future__ import annotations

import numpy as np
import pytest
import keras

from mobilenet import MobileNetV1
from mobilenet import weights as weights_module


def _randomize_batch_norm(model: keras.Model, rng: np.random.Generator) -> None:
    """Moves every BN off its initial values, so a skipped BN cannot go unnoticed."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2.0, var.shape),
            ])


def _reference(alpha, side, include_top=True, classes=1000, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNet(
        input_shape=(side, side, 3), alpha=alpha, weights=None, include_top=include_top, classes=classes
    )
    _randomize_batch_norm(model, np.random.default_rng(seed))
    return model


def _save(model: keras.Model, folder, legacy: bool) -> str:
    if legacy:  # the HDF5 layout of the files keras.applications downloads
        path = str(folder / "mobilenet.h5")
        model.save(path)
    else:
        path = str(folder / "mobilenet.weights.h5")
        model.save_weights(path)
    return path


def _images(side: int, n: int = 2) -> np.ndarray:
    return np.random.default_rng(side).uniform(-1, 1, size=(n, side, side, 3)).astype("float32")


@pytest.mark.parametrize(
    "alpha, side, legacy",
    [
        (1.0, 224, True), (1.0, 128, False),
        (0.75, 192, False), (0.75, 160, True),
        (0.5, 160, True), (0.5, 224, False),
        (0.25, 128, True), (0.25, 192, False),
    ],
)
def test_outputs_equal_keras_applications(alpha, side, legacy, tmp_path):
    reference = _reference(alpha, side)
    path = _save(reference, tmp_path, legacy)
    model = MobileNetV1(alpha, input_shape=(side, side, 3), weights=path)
    x = _images(side)
    expected = np.asarray(reference(x, training=False))
    np.testing.assert_allclose(np.asarray(model(x, training=False)), expected, rtol=1e-4, atol=1e-6)


def test_moved_batch_norm_statistics_change_the_outputs():
    """The equality above would prove less if BN statistics did not reach the outputs."""
    reference = _reference(0.25, 128)
    x = _images(128)
    before = np.asarray(reference(x, training=False))
    _randomize_batch_norm(reference, np.random.default_rng(1))
    assert np.abs(before - np.asarray(reference(x, training=False))).max() > 1e-4


@pytest.mark.parametrize("legacy", [True, False])
def test_backbone_loads_from_a_file_with_classifier(legacy, tmp_path):
    reference = _reference(0.25, 128)
    path = _save(reference, tmp_path, legacy)
    backbone = MobileNetV1(0.25, rho=4 / 7, include_top=False, weights=path)
    features = keras.Model(reference.input, reference.get_layer("conv_pw_13_relu").output)
    x = _images(128)
    np.testing.assert_allclose(np.asarray(backbone(x)), np.asarray(features(x)), rtol=1e-4, atol=1e-5)


def test_weights_load_at_another_input_size(tmp_path):
    reference = _reference(0.25, 224, include_top=False)
    path = _save(reference, tmp_path, legacy=False)
    model = MobileNetV1(0.25, input_shape=(96, 128, 3), include_top=False, weights=path)
    for ours, theirs in [("conv1", "conv1"), ("block_13", "conv_pw_13")]:
        got = model.get_layer(ours)
        kernel = got.kernel if ours == "conv1" else got.pointwise.kernel
        np.testing.assert_array_equal(kernel.numpy(), reference.get_layer(theirs).kernel.numpy())


def test_other_number_of_classes(tmp_path):
    reference = _reference(0.5, 128, classes=10)
    path = _save(reference, tmp_path, legacy=False)
    model = MobileNetV1(0.5, rho=4 / 7, num_classes=10, weights=path)
    x = _images(128)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference(x)), rtol=1e-4, atol=1e-6)


def test_imagenet_downloads_the_keras_applications_file(tmp_path, monkeypatch):
    reference = _reference(0.25, 128)
    local = _save(reference, tmp_path, legacy=True)
    requests = []

    def fake_get_file(fname, origin, cache_subdir="datasets", **kwargs):
        requests.append((fname, origin, cache_subdir))
        return local

    monkeypatch.setattr(weights_module.keras.utils, "get_file", fake_get_file)
    model = MobileNetV1(0.25, rho=4 / 7, weights="imagenet")
    # The file name and address keras.applications.MobileNet uses for alpha 0.25 at 128.
    assert requests == [(
        "mobilenet_2_5_128_tf.h5",
        "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/mobilenet_2_5_128_tf.h5",
        "models",
    )]
    x = _images(128)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference(x)), rtol=1e-4, atol=1e-6)


def test_imagenet_backbone_file_name(monkeypatch):
    names = []

    def fake_get_file(fname, origin, cache_subdir="datasets", **kwargs):
        names.append(fname)
        raise OSError("stop here")

    monkeypatch.setattr(weights_module.keras.utils, "get_file", fake_get_file)
    with pytest.raises(ConnectionError):
        MobileNetV1(0.75, rho=6 / 7, include_top=False, weights="imagenet")
    assert names == ["mobilenet_7_5_192_tf_no_top.h5"]


def test_imagenet_offline_error_says_what_to_do(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(weights_module.keras.utils, "get_file", offline)
    with pytest.raises(ConnectionError, match=r"mobilenet_1_0_224_tf\.h5.*offline.*local path"):
        MobileNetV1(weights="imagenet")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="`weights`.*no file at"):
        MobileNetV1(0.25, weights=tmp_path / "absent.h5")


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.h5"
    path.write_bytes(b"\x89HDF\r\n" + bytes(range(256)) * 8)
    with pytest.raises(ValueError, match=r"`weights`.*corrupt\.h5.*alpha=0.25"):
        MobileNetV1(0.25, rho=4 / 7, weights=path)


def test_file_for_another_alpha(tmp_path):
    path = _save(_reference(0.5, 128), tmp_path, legacy=True)
    with pytest.raises(ValueError, match=r"`weights`.*alpha=0.25.*Received saved weight"):
        MobileNetV1(0.25, rho=4 / 7, weights=path)


def test_file_with_another_number_of_classes(tmp_path):
    path = _save(_reference(0.25, 128, classes=10), tmp_path, legacy=False)
    with pytest.raises(ValueError, match=r"`weights`.*1000-class classifier"):
        MobileNetV1(0.25, rho=4 / 7, weights=path)
