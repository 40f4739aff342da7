"""Tests of `mobilenet.weights`: keras.applications files give keras.applications outputs."""

from __future__ import annotations

import warnings

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


class _Asked(Exception):
    """Raised instead of a download: the file keras.applications asked for."""


@pytest.fixture
def keras_applications_file(monkeypatch):
    """Call with (alpha, side, include_top): the weights file keras.applications.MobileNet asks for."""
    from keras.src.utils import file_utils  # where keras.applications' MobileNet calls get_file

    def ask(fname, origin, **kwargs):
        raise _Asked(fname, origin)

    monkeypatch.setattr(file_utils, "get_file", ask)

    def asked(alpha, side, include_top):
        with pytest.raises(_Asked) as caught, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its warning that it falls back to the 224 file
            keras.applications.MobileNet(input_shape=(side, side, 3), alpha=alpha,
                                         include_top=include_top, weights="imagenet")
        return caught.value.args

    return asked


def test_published_widths_and_sides_are_keras_applications_files(keras_applications_file):
    for alpha in weights_module.PUBLISHED_ALPHAS:
        assert keras_applications_file(alpha, 224, True) == weights_module.imagenet_weights_url(alpha, 224, True)
    with pytest.raises(ValueError, match="alpha can be one of"):  # no file for other widths
        keras.applications.MobileNet(alpha=0.35, weights="imagenet")
    # At other sides keras.applications falls back to the 224 file; ours are those with a file of their own.
    sides = (96, *weights_module.PUBLISHED_RESOLUTIONS, 256)
    own = {side for side in sides
           if keras_applications_file(0.25, side, False)[0] == f"mobilenet_2_5_{side}_tf_no_top.h5"}
    assert own == set(weights_module.PUBLISHED_RESOLUTIONS)
    assert keras_applications_file(0.25, 128, False) == weights_module.imagenet_weights_url(0.25, 128, False)


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


def _same_weights(model: keras.Model, other: keras.Model) -> None:
    assert [w.path for w in model.weights] == [w.path for w in other.weights]
    for ours, theirs in zip(model.weights, other.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("output_stride, last_undilated", [(16, 11), (8, 5)])
def test_weights_load_with_output_stride(output_stride, last_undilated, tmp_path):
    reference = _reference(0.25, 128)
    path = _save(reference, tmp_path, legacy=True)
    model = MobileNetV1(0.25, rho=4 / 7, weights=path, output_stride=output_stride)
    _same_weights(model, MobileNetV1(0.25, rho=4 / 7, weights=path))
    # Up to the block where the running stride reaches output_stride, the
    # network is keras.applications' own; after it, strides become dilation.
    x = _images(128)
    ours = keras.Model(model.input, model.get_layer(f"block_{last_undilated}").output)(x)
    theirs = keras.Model(reference.input, reference.get_layer(f"conv_pw_{last_undilated}_relu").output)(x)
    assert ours.shape[1] == 128 // output_stride
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-4, atol=1e-5)
    assert model(x).shape == (2, 1000)


@pytest.mark.parametrize("early_downsampling", [2, 1])
def test_weights_load_with_early_downsampling(early_downsampling, tmp_path):
    reference = _reference(0.25, 128)
    path = _save(reference, tmp_path, legacy=False)
    model = MobileNetV1(0.25, rho=4 / 7, weights=path, early_downsampling=early_downsampling)
    _same_weights(model, MobileNetV1(0.25, rho=4 / 7, weights=path))
    # The stem without its stride: with 'same' padding, the stride-2 conv's
    # output i is centred on input 2i + 1, so it is every other row and column
    # of the stride-1 output, starting at 1.
    x = _images(128)
    ours = np.asarray(keras.Model(model.input, model.get_layer("conv1_act").output)(x))
    theirs = np.asarray(keras.Model(reference.input, reference.get_layer("conv1_relu").output)(x))
    assert ours.shape[1:3] == (128, 128) and theirs.shape[1:3] == (64, 64)
    np.testing.assert_allclose(ours[:, 1::2, 1::2], theirs, rtol=1e-4, atol=1e-5)


def test_include_preprocessing_equals_keras_preprocess_input(tmp_path):
    reference = _reference(0.25, 128)
    path = _save(reference, tmp_path, legacy=False)
    pixels = np.random.default_rng(7).integers(0, 256, size=(2, 128, 128, 3)).astype("uint8")
    # preprocess_input scales a float array in place: give it a copy.
    preprocessed = keras.applications.mobilenet.preprocess_input(pixels.astype("float32"))
    assert preprocessed.min() >= -1 and preprocessed.max() <= 1
    default = MobileNetV1(0.25, rho=4 / 7, weights=path)
    expected = np.asarray(default(preprocessed))
    np.testing.assert_allclose(expected, np.asarray(reference(preprocessed)), rtol=1e-4, atol=1e-6)
    with_preprocessing = MobileNetV1(0.25, rho=4 / 7, weights=path, include_preprocessing=True)
    for batch in (pixels, pixels.astype("float32")):
        np.testing.assert_allclose(np.asarray(with_preprocessing(batch)), expected, rtol=1e-4, atol=1e-6)


def test_imagenet_backbone_of_open_input_size_loads_the_224_file(tmp_path, monkeypatch):
    reference = _reference(0.25, 224, include_top=False)
    local = _save(reference, tmp_path, legacy=True)
    names = []

    def fake_get_file(fname, origin, cache_subdir="datasets", **kwargs):
        names.append(fname)
        return local

    monkeypatch.setattr(weights_module.keras.utils, "get_file", fake_get_file)
    model = MobileNetV1(0.25, include_top=False, weights="imagenet")
    # keras.applications' rule: an open input size gets the 224 weights.
    assert names == ["mobilenet_2_5_224_tf_no_top.h5"]
    assert model.input_shape == (None, None, None, 3)
    x = _images(224)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(reference(x)), rtol=1e-4, atol=1e-5)
    assert model(_images(96)).shape == (2, 3, 3, 256)


@pytest.mark.parametrize("input_shape", [(None, 224, 3), (None, None, 1)])
def test_imagenet_with_a_half_open_or_grey_input_is_refused_before_download(input_shape, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("no download for a request that cannot fit")

    monkeypatch.setattr(weights_module.keras.utils, "get_file", no_download)
    with pytest.raises(ValueError, match=r"`input_shape`"):
        MobileNetV1(0.25, include_top=False, weights="imagenet", input_shape=input_shape)
