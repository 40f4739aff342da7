"""Tests for mobilenet.export: LiteRT files, their verification, BatchNorm folding.

Truth comes from outside the module: the Keras model's own outputs,
TensorFlow's LiteRT interpreter read directly here, and the bytes on disk.
"""

from __future__ import annotations

import os
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobilenet import MobileNetV1
from mobilenet._keras_compat import flatten_layers
from mobilenet.cifar10 import load_cifar10
from mobilenet.export import fold_batchnorm, run_tflite, to_tflite, verify_tflite
from mobilenet.layers import DepthwiseSeparableConv2D, PointwiseConv2D
from tests.inference_models import trained_cifar_mobilenet


def _cifar_subset(folder, count_train, count_test):
    """The first images of the shared subset, through the library's loader, scaled to [0, 1]."""
    (x_train, y_train), (x_test, _) = load_cifar10(folder)
    return x_train[:count_train] / np.float32(255), y_train[:count_train], x_test[:count_test] / np.float32(255)


def _interpreter(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


def _ops(path):
    return [op["op_name"] for op in _interpreter(path)._get_ops_details()]


def _tiny(**kwargs):
    return MobileNetV1(alpha=0.25, input_shape=(32, 32, 3), num_classes=10, **kwargs)


def _randomize_batchnorm(model, seed=0):
    """Gives every BatchNorm (nested ones included) statistics far from identity.

    gamma and beta are drawn at random; the moving statistics are first set
    to a batch's own (one training-mode call with momentum 0, so the signal
    neither dies nor explodes through 14 layers), then scaled and shifted at
    random, so inference differs clearly from training mode.
    """
    rng = np.random.default_rng(seed)
    bns = [l for l in flatten_layers(model) if isinstance(l, keras.layers.BatchNormalization)]
    for bn in bns:
        n = bn.gamma.shape[0]
        bn.gamma.assign(rng.uniform(0.5, 2.0, n))
        bn.beta.assign(rng.normal(0.0, 0.3, n))
        bn.momentum = 0.0
    model(rng.normal(size=(16, *model.input_shape[1:])).astype(np.float32), training=True)
    for bn in bns:
        n = bn.gamma.shape[0]
        std = np.sqrt(np.asarray(bn.moving_variance))
        bn.moving_mean.assign(np.asarray(bn.moving_mean) + rng.normal(0.0, 0.3, n) * std)
        bn.moving_variance.assign(np.asarray(bn.moving_variance) * rng.uniform(0.5, 2.0, n))
        bn.momentum = 0.99
    return len(bns)


#: Tests of the module's trained model and its files: one pytest-xdist worker runs them
#: all, so `trained` and `exported` (a fit and four conversions) are made once, not per worker.
ON_THE_TRAINED_MODEL = pytest.mark.xdist_group("export_trained")


@pytest.fixture(scope="module")
def cifar(cifar10_subset_dir):
    """500 training images (the first 200 calibrate) and 200 test images of the real subset."""
    return _cifar_subset(cifar10_subset_dir, 500, 200)


@pytest.fixture(scope="module")
def trained(cifar):
    """A tiny MobileNet trained a little on real images, so its classes differ."""
    keras.utils.set_random_seed(1)
    train_images, train_labels, _ = cifar
    model = _tiny()
    for layer in flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.5  # moving statistics that settle within a few steps
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(train_images, train_labels, batch_size=50, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def exported(trained, cifar, tmp_path_factory):
    """The trained model written in every quantization mode: {mode: path}."""
    folder = tmp_path_factory.mktemp("tflite")
    calibration = cifar[0][:200]
    return {
        mode: to_tflite(
            trained, folder / f"{mode}.tflite", mode,
            representative_data=calibration if mode == "int8" else None,
        )
        for mode in (None, "float16", "dynamic", "int8")
    }


@ON_THE_TRAINED_MODEL
def test_every_mode_writes_a_tflite_flatbuffer_of_the_expected_size(exported):
    sizes = {mode: path.stat().st_size for mode, path in exported.items()}
    for path in exported.values():
        assert path.read_bytes()[4:8] == b"TFL3"  # the flatbuffer's file identifier
    # float16 halves the weights, dynamic and int8 quarter them.
    assert 0.45 < sizes["float16"] / sizes[None] < 0.6
    assert sizes["dynamic"] / sizes[None] < 0.35
    assert sizes["int8"] / sizes[None] < 0.4  # int32 biases and scales weigh more in a tiny model
    assert sorted(os.listdir(exported[None].parent)) == sorted(
        f"{mode}.tflite" for mode in exported
    )


@ON_THE_TRAINED_MODEL
def test_weight_types_follow_the_quantization_mode(exported):
    def types(path):
        return {np.dtype(t["dtype"]).name for t in _interpreter(path).get_tensor_details()}

    assert "int8" not in types(exported[None]) and "float16" not in types(exported[None])
    assert "float16" in types(exported["float16"])  # weights, dequantized at load
    assert "int8" in types(exported["dynamic"])  # weights
    for mode in (None, "float16", "dynamic"):
        interpreter = _interpreter(exported[mode])
        assert np.dtype(interpreter.get_input_details()[0]["dtype"]) == np.float32
        assert np.dtype(interpreter.get_output_details()[0]["dtype"]) == np.float32


@ON_THE_TRAINED_MODEL
def test_int8_file_is_integer_only(exported):
    interpreter = _interpreter(exported["int8"])
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert np.dtype(inp["dtype"]) == np.uint8 and np.dtype(out["dtype"]) == np.uint8
    assert inp["quantization"][0] > 0 and out["quantization"][0] > 0
    types = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert "float32" not in types and "float16" not in types
    assert "int8" in types  # weights and activations
    # Every compute op runs on int8 tensors: convs, depthwise convs, the FC.
    details = interpreter.get_tensor_details()
    by_index = {t["index"]: t for t in details}
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            data, weights = op["inputs"][:2]
            assert np.dtype(by_index[data]["dtype"]) == np.int8
            assert np.dtype(by_index[weights]["dtype"]) == np.int8


@ON_THE_TRAINED_MODEL
def test_int8_from_a_dataset_of_image_label_batches_with_int8_io(trained, cifar, tmp_path):
    data = tf.data.Dataset.from_tensor_slices((cifar[0][:40], cifar[1][:40])).batch(8)
    path = to_tflite(trained, tmp_path / "m.tflite", "int8", data, io_type="int8")
    interpreter = _interpreter(path)
    assert np.dtype(interpreter.get_input_details()[0]["dtype"]) == np.int8
    assert np.dtype(interpreter.get_output_details()[0]["dtype"]) == np.int8
    report = verify_tflite(path, trained, cifar[2][:50])
    assert report.input_type == "int8" and report.top1_agreement > 0.3


@ON_THE_TRAINED_MODEL
def test_verify_float32_matches_keras_on_real_images(exported, trained, cifar):
    images = cifar[2]
    report = verify_tflite(exported[None], trained, images)
    assert report.num_images == len(images)
    assert report.top1_agreement == 1.0
    assert report.max_abs_diff < 1e-4
    # The model was trained enough that its answers are not all one class.
    assert len(np.unique(trained.predict(images, verbose=0).argmax(-1))) > 2


@ON_THE_TRAINED_MODEL
def test_verify_int8_against_a_hand_run_of_the_interpreter(exported, trained, cifar):
    images = cifar[2]
    report = verify_tflite(exported["int8"], trained, images)

    interpreter = _interpreter(exported["int8"])
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    outputs = []
    for image in images:  # batch 1, the phone's way
        quantized = np.clip(np.round(image / in_scale + in_zero), 0, 255).astype(np.uint8)
        interpreter.set_tensor(inp["index"], quantized[None])
        interpreter.invoke()
        outputs.append((interpreter.get_tensor(out["index"])[0].astype(np.float32) - out_zero) * out_scale)
    outputs = np.stack(outputs)
    expected = trained.predict(images, verbose=0)

    assert report.top1_agreement == pytest.approx(np.mean(outputs.argmax(-1) == expected.argmax(-1)))
    assert report.max_abs_diff == pytest.approx(np.abs(outputs - expected).max(), abs=1e-6)
    assert report.input_type == "uint8" and report.output_type == "uint8"
    # A sanity bound only: this tiny, briefly trained model has small margins
    # between classes, so int8 flips many of its answers (benchmarks/speed.py
    # measures agreement on a properly trained model). Chance would be ~10%.
    assert report.top1_agreement > 0.4
    assert report.max_abs_diff < 0.5


@pytest.mark.slow  # trains for about 40 s (once for both files): .ci/run runs it
@pytest.mark.xdist_group("trained_cifar_mobilenet")
def test_int8_file_keeps_a_trained_models_answers(cifar10_subset_dir, tmp_path):
    """Top-1 agreement of the int8 file with a trained Keras model, on whatever CPU runs this.

    Measured on an AVX2-only AMD EPYC (benchmarks/RESULTS.md): 88.8% of the
    1,000 test images, 97.4% where the float top-1 margin is >= 0.1.
    """
    model, calibration, images = trained_cifar_mobilenet(cifar10_subset_dir)
    path = to_tflite(model, tmp_path / "int8.tflite", "int8", representative_data=calibration)
    expected = model.predict(images, verbose=0)
    top2 = np.sort(expected, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= 0.1
    assert clear.mean() > 0.5  # a trained model: most answers are not near ties
    agree = run_tflite(path, images).argmax(-1) == expected.argmax(-1)
    assert agree.mean() >= 0.83 and agree[clear].mean() >= 0.95
    assert verify_tflite(path, model, images).top1_agreement == pytest.approx(agree.mean())


@ON_THE_TRAINED_MODEL
def test_run_tflite_batches_agree_with_batch_one(exported, cifar):
    images = cifar[2][:40]
    np.testing.assert_allclose(
        run_tflite(exported[None], images, batch_size=7),
        run_tflite(exported[None], images, batch_size=1),
        atol=1e-6,
    )


@ON_THE_TRAINED_MODEL
def test_pointwise_written_as_conv_for_litert_then_restored(trained, exported, tmp_path):
    as_conv = exported[None]  # the default
    as_matmul = to_tflite(trained, tmp_path / "matmul.tflite", pointwise_as_conv=False)
    assert _ops(as_conv).count("CONV_2D") == 14  # conv1 + 13 pointwise
    assert "RESHAPE" not in _ops(as_conv)
    assert _ops(as_matmul).count("CONV_2D") == 1
    assert _ops(as_matmul).count("FULLY_CONNECTED") == 14  # 13 pointwise + the classifier
    pointwise = [l for l in flatten_layers(trained) if isinstance(l, PointwiseConv2D)]
    assert len(pointwise) == 13 and {l.implementation for l in pointwise} == {"matmul"}
    x = np.random.default_rng(0).random((4, 32, 32, 3), np.float32)
    np.testing.assert_allclose(run_tflite(as_conv, x), run_tflite(as_matmul, x), atol=1e-5)


def test_pointwise_implementations_give_the_same_outputs():
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 8)).astype(np.float32)
    matmul = PointwiseConv2D(6, use_bias=True, bias_initializer="random_normal")
    y = matmul(x)
    conv = PointwiseConv2D.from_config({**matmul.get_config(), "implementation": "conv"})
    conv.build(x.shape)
    conv.set_weights(matmul.get_weights())
    reference = keras.layers.Conv2D(6, 1)
    reference.build(x.shape)
    reference.set_weights(matmul.get_weights())
    np.testing.assert_allclose(np.asarray(conv(x)), np.asarray(reference(x)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(y), np.asarray(reference(x)), atol=1e-5)
    with pytest.raises(ValueError, match="`implementation`"):
        PointwiseConv2D(6, implementation="winograd")


@pytest.mark.parametrize("separable", [True, False])
def test_fold_batchnorm_matches_the_original(separable):
    model = _tiny(separable=separable)
    # conv1, then 2 per separable block or 1 per full conv block.
    assert _randomize_batchnorm(model) == (27 if separable else 14)
    folded = fold_batchnorm(model)
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(folded.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-6)
    # The softmax of an untrained net varies little between inputs, so also
    # compare the logits and a feature map in the middle, which do.
    for name in ("fc", "block_7"):
        want = keras.Model(model.inputs, model.get_layer(name).output).predict(x, verbose=0)
        got = keras.Model(folded.inputs, folded.get_layer(name).output).predict(x, verbose=0)
        assert np.ptp(want, axis=0).max() > 1e-2  # differs between the inputs
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())

    def batchnorms(m):
        return [l for l in flatten_layers(m) if isinstance(l, keras.layers.BatchNormalization)]

    assert batchnorms(folded) == []
    assert len(list(flatten_layers(folded))) < len(list(flatten_layers(model)))
    assert len(folded.layers) < len(model.layers)
    # Each BN's 4 vectors become one bias vector: 3 fewer numbers per channel.
    bn_channels = sum(int(b.gamma.shape[0]) for b in batchnorms(model))
    assert model.count_params() - folded.count_params() == 3 * bn_channels
    assert "dropout" not in [l.name for l in folded.layers]
    # The original is untouched.
    np.testing.assert_allclose(model.predict(x, verbose=0), expected)


def test_fold_batchnorm_keeps_pre_activation_outputs_of_every_block():
    model = _tiny()
    _randomize_batchnorm(model, seed=3)
    folded = fold_batchnorm(model)
    blocks = [l for l in folded.layers if isinstance(l, DepthwiseSeparableConv2D)]
    assert len(blocks) == 13
    assert all(b.depthwise.use_bias and b.pointwise.use_bias for b in blocks)
    # Compare an intermediate feature map, not only the softmax.
    x = np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype(np.float32)
    take = lambda m: keras.Model(m.inputs, m.get_layer("block_7").output)  # noqa: E731
    np.testing.assert_allclose(
        take(folded).predict(x, verbose=0), take(model).predict(x, verbose=0), rtol=1e-4, atol=1e-5
    )


def test_fold_batchnorm_after_training_steps_and_export(tmp_path):
    model = _tiny()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((64, 32, 32, 3), np.float32) * 3 + 1  # moves the moving statistics
    model.fit(x, rng.integers(0, 10, 64), batch_size=16, epochs=2, verbose=0)
    assert not np.allclose(np.asarray(model.get_layer("conv1_bn").moving_mean), 0)
    folded = fold_batchnorm(model)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    report = verify_tflite(to_tflite(folded, tmp_path / "folded.tflite"), model, x[:16])
    assert report.top1_agreement == 1.0 and report.max_abs_diff < 1e-4


def test_fold_batchnorm_on_a_sequential_model():
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(8, 3, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        DepthwiseSeparableConv2D(16, strides=2),
        keras.layers.DepthwiseConv2D(3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(4),
    ])
    assert _randomize_batchnorm(model, seed=4) == 4
    folded = fold_batchnorm(model)
    assert isinstance(folded, keras.Model) and not isinstance(folded, keras.Sequential)
    assert not [l for l in flatten_layers(folded) if isinstance(l, keras.layers.BatchNormalization)]
    assert not [l for l in folded.layers if isinstance(l, keras.layers.Dropout)]
    x = np.random.default_rng(2).normal(size=(6, 12, 12, 3)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    assert np.ptp(expected, axis=0).max() > 1e-2  # the outputs differ between inputs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # called like the Sequential, on one array: no structure warning
        got = np.asarray(folded(x))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_fold_batchnorm_rejects_a_subclassed_model():
    class Subclassed(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(2, 3)

        def call(self, inputs):
            return self.conv(inputs)

    model = Subclassed()
    model(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"`model`.*functional or Sequential.*subclassed Subclassed"):
        fold_batchnorm(model)


def test_fold_batchnorm_rejects_what_it_cannot_fold():
    with pytest.raises(ValueError, match="`model`"):
        fold_batchnorm(keras.layers.Dense(3))


# ----- bad inputs: clear errors, nothing written ---------------------------


def test_int8_without_representative_data(tmp_path):
    with pytest.raises(ValueError, match=r"`representative_data`.*Received: representative_data=None"):
        to_tflite(_tiny(), tmp_path / "m.tflite", "int8")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("shape", [(10, 28, 28, 3), (10, 32, 32), (0, 32, 32, 3)])
def test_int8_with_wrongly_shaped_representative_data(tmp_path, shape):
    pattern = rf"`representative_data`.*{re.escape('(N, 32, 32, 3)')}.*{re.escape(str(shape))}"
    with pytest.raises(ValueError, match=pattern):
        to_tflite(_tiny(), tmp_path / "m.tflite", "int8", np.zeros(shape, np.float32))
    assert os.listdir(tmp_path) == []


def test_int8_with_a_wrongly_shaped_dataset(tmp_path):
    data = tf.data.Dataset.from_tensor_slices(np.zeros((4, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="`representative_data`"):
        to_tflite(_tiny(), tmp_path / "m.tflite", "int8", data)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["missing/m.tflite", "m.txt", "folder.tflite"])
def test_unwritable_or_wrong_path(tmp_path, name):
    (tmp_path / "folder.tflite").mkdir()
    with pytest.raises(ValueError, match=r"`path`.*Received: path="):
        to_tflite(_tiny(), tmp_path / name)
    assert os.listdir(tmp_path) == ["folder.tflite"]


def test_failed_conversion_leaves_no_partial_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"previous export")

    def broken():  # calibration data that fails halfway
        yield np.zeros((1, 32, 32, 3), np.float32)
        raise RuntimeError("camera unplugged")

    data = tf.data.Dataset.from_generator(
        broken, output_signature=tf.TensorSpec((1, 32, 32, 3), tf.float32)
    )
    with pytest.raises(Exception, match="camera unplugged"):
        to_tflite(_tiny(), target, "int8", data)
    assert os.listdir(tmp_path) == ["m.tflite"]
    assert target.read_bytes() == b"previous export"


def test_bad_quantization_and_io_type(tmp_path):
    with pytest.raises(ValueError, match=r"`quantization`.*Received: quantization='int4'"):
        to_tflite(_tiny(), tmp_path / "m.tflite", "int4")
    with pytest.raises(ValueError, match=r"`io_type`.*Received: io_type='uint16'"):
        to_tflite(_tiny(), tmp_path / "m.tflite", "int8", io_type="uint16")
    assert os.listdir(tmp_path) == []


@ON_THE_TRAINED_MODEL
def test_verify_rejects_images_of_the_wrong_shape(exported, trained):
    with pytest.raises(ValueError, match=r"`images`.*\(N, 32, 32, 3\).*\(5, 64, 64, 3\)"):
        verify_tflite(exported[None], trained, np.zeros((5, 64, 64, 3), np.float32))


@ON_THE_TRAINED_MODEL
def test_run_and_verify_reject_a_missing_file_and_a_bad_batch_size(trained, tmp_path):
    images = np.zeros((2, 32, 32, 3), np.float32)
    with pytest.raises(ValueError, match=r"`path`.*Received: path="):
        verify_tflite(tmp_path / "absent.tflite", trained, images)
    with pytest.raises(ValueError, match=r"`batch_size`.*Received: batch_size=0"):
        run_tflite(tmp_path / "absent.tflite", images, batch_size=0)
    with pytest.raises(ValueError, match=r"`model`"):
        to_tflite("not a model", tmp_path / "m.tflite")
