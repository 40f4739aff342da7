"""Quantization-aware training (`mobilenet.quantization`) against Keras' own layers and LiteRT.

The truths used: Keras' BatchNormalization (the statistics and outputs a QAT
convolution must reproduce while its statistics move), hand-computed
rounding in NumPy, the LiteRT converter's own int8 weights and scales (which
must be the ones trained with), and the paper's 28 layers.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

from mobilenet import DepthwiseSeparableConv2D, MobileNetV1
from mobilenet.quantization import (
    ActivationQuantizer,
    QuantizedConv,
    QuantizedDense,
    export_graph,
    is_quantize_aware,
    quantize_aware,
)
from tests.qat_models import trained_pixel_qat

pytestmark = pytest.mark.tf_only


def _conv_bn_model(seed: int = 0) -> keras.Model:
    """A conv, its BatchNorm and ReLU6; non-trivial BatchNorm parameters and statistics."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")
    bn = keras.layers.BatchNormalization(momentum=0.9, name="bn")
    outputs = keras.layers.ReLU(6.0, name="relu")(bn(conv(inputs)))
    model = keras.Model(inputs, outputs)
    bn.set_weights([rng.uniform(0.5, 2, 4), rng.normal(0, 0.5, 4), rng.normal(0, 0.5, 4),
                    rng.uniform(0.5, 2, 4)])
    return model


def _images(n: int = 16, shape: tuple = (8, 8, 3), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, *shape)).astype("float32")


def test_a_conv_its_batch_norm_and_relu6_become_one_quantized_conv():
    qat = quantize_aware(_conv_bn_model())
    kinds = [type(layer).__name__ for layer in qat.layers]
    assert kinds == ["InputLayer", "ActivationQuantizer", "QuantizedConv"]
    conv = qat.layers[-1]
    assert conv.batch_norm and conv.activation == "relu6"


def test_folded_weights_are_the_batch_norm_fold_rounded_per_channel_to_127_steps():
    model = _conv_bn_model()
    conv, bn = model.get_layer("conv"), model.get_layer("bn")
    qat = quantize_aware(model)
    kernel, bias = qat.layers[-1].folded_weights()

    gamma, beta, mean, variance = (np.asarray(w, np.float64) for w in bn.get_weights())
    scale = gamma / np.sqrt(variance + bn.epsilon)
    folded = np.asarray(conv.kernel, np.float64) * scale
    step = np.abs(folded).max(axis=(0, 1, 2)) / 127
    np.testing.assert_allclose(kernel, np.round(folded / step) * step, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bias, beta - mean * scale, rtol=1e-5, atol=1e-6)
    levels = kernel / step
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert np.allclose(np.abs(levels).max(axis=(0, 1, 2)), 127)


def test_depthwise_weights_get_a_range_per_output_channel():
    inputs = keras.Input((8, 8, 3))
    depthwise = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")
    model = keras.Model(inputs, depthwise(inputs))
    kernel = np.random.default_rng(0).normal(0, 1, (3, 3, 3, 2)) * np.array([[1, 10], [100, 0.1],
                                                                             [3, 7]])
    depthwise.set_weights([kernel.astype("float32"), np.zeros(6, "float32")])
    folded, _ = quantize_aware(model).layers[-1].folded_weights()
    step = np.abs(kernel).max(axis=(0, 1)) / 127  # one step per (channel, multiplier)
    np.testing.assert_allclose(folded, np.round(kernel / step) * step, rtol=1e-5, atol=1e-7)


def test_while_statistics_move_a_training_step_is_batch_norm_on_the_batch():
    model = _conv_bn_model()
    qat = quantize_aware(model)
    x = _images()
    expected = model(x, training=True)  # Keras' own BatchNorm, on the batch; moves its statistics
    bn, conv = model.get_layer("bn"), qat.layers[-1]
    got = conv(x, training=True)  # the layer alone: the model would round its input first
    np.testing.assert_allclose(conv.moving_mean, bn.moving_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(conv.moving_variance, bn.moving_variance, rtol=1e-5, atol=1e-6)
    # Equal but for the int8 rounding of weights and output: a few output steps at most.
    output_step = (np.max(expected) - 0) / 255
    assert np.max(np.abs(np.asarray(got) - np.asarray(expected))) < 4 * output_step


def test_frozen_statistics_stop_moving_and_training_computes_inference():
    qat = quantize_aware(_conv_bn_model(), freeze_batch_norm_after=2, freeze_ranges_after=2)
    conv = qat.layers[-1]
    for seed in (1, 2):
        qat(_images(seed=seed), training=True)
    frozen = [conv.moving_mean.numpy(), conv.moving_variance.numpy(),
              conv.output_quantizer.quantization_range()]
    x = _images(seed=3)
    training = qat(x, training=True)
    assert int(conv.steps) == 2
    np.testing.assert_array_equal(conv.moving_mean, frozen[0])
    np.testing.assert_array_equal(conv.moving_variance, frozen[1])
    assert conv.output_quantizer.quantization_range() == frozen[2]
    np.testing.assert_allclose(training, qat(x, training=False), atol=1e-6)


def test_an_activation_range_starts_at_the_first_batch_then_moves_as_an_average():
    quantizer = ActivationQuantizer(momentum=0.9)
    quantizer(np.array([[-1.0, 2.0]], "float32"), training=True)
    assert quantizer.quantization_range() == pytest.approx((-1.0, 2.0))
    quantizer(np.array([[-3.0, 12.0]], "float32"), training=True)
    assert quantizer.quantization_range() == pytest.approx((-1.2, 3.0))
    # Inference rounds to 255 steps over the range and clips outside it (0 is exact).
    outputs = np.asarray(quantizer(np.array([[0.0, 0.5, 10.0]], "float32")))
    step = 4.2 / 255
    assert outputs[0, 0] == 0.0
    assert outputs[0, 1] == pytest.approx(round(0.5 / step) * step, abs=1e-6)
    assert outputs[0, 2] == pytest.approx(3.0, abs=step)


def test_a_fixed_range_must_hold_zero():
    with pytest.raises(ValueError, match="`fixed_range`.*low <= 0 <= high.*Received: fixed_range=\\(1, 2\\)"):
        ActivationQuantizer(fixed_range=(1, 2))


def test_mobilenet_has_the_papers_27_convolutions_and_one_dense_layer_quantized():
    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    qat = quantize_aware(model)
    convs = [layer for layer in qat.layers if isinstance(layer, QuantizedConv)]
    assert len(convs) == 27 and all(layer.batch_norm for layer in convs)
    assert sum(isinstance(layer, QuantizedDense) for layer in qat.layers) == 1
    assert not any(isinstance(layer, (keras.layers.BatchNormalization, DepthwiseSeparableConv2D))
                   for layer in qat.layers)
    ranges = {layer.name: layer.fixed_range for layer in qat.layers
              if isinstance(layer, ActivationQuantizer)}
    assert ranges["input_range"] == (0.0, 255.0)  # pixels: the uint8 input itself
    assert ranges["predictions_range"] == (0.0, 255 / 256)  # LiteRT's softmax output
    np.testing.assert_allclose(  # same weights, so nearly the float model's outputs
        qat.predict(np.zeros((1, 32, 32, 3)), verbose=0),
        model.predict(np.zeros((1, 32, 32, 3)), verbose=0), atol=0.1)


def test_layers_left_in_float_are_named_with_the_reason():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    with pytest.warns(UserWarning, match=r"left in float: norm \(LayerNormalization: it has no int8"):
        qat = quantize_aware(model)
    assert is_quantize_aware(qat)


def test_a_subclassed_model_or_a_qat_model_is_refused():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="`model`: expected a functional or Sequential model"):
        quantize_aware(Net())
    qat = quantize_aware(_conv_bn_model())
    with pytest.raises(ValueError, match="`model`: expected a float model.*quantization-aware already"):
        quantize_aware(qat)


def test_a_qat_model_loads_in_a_new_process_after_import_mobilenet(tmp_path):
    qat = quantize_aware(_conv_bn_model())
    x = _images()
    qat(x, training=True)
    qat.save(tmp_path / "qat.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", qat.predict(x, verbose=0))
    script = (
        "import sys, keras, numpy as np, mobilenet\n"
        "folder = sys.argv[1]\n"
        "model = keras.saving.load_model(folder + '/qat.keras')\n"
        "np.testing.assert_array_equal(model.predict(np.load(folder + '/x.npy'), verbose=0), "
        "np.load(folder + '/y.npy'))\n"
        "print(type(model.layers[-1]).__name__)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                               text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split()[-1] == "QuantizedConv"


# --------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def trained_qat(tmp_path_factory):
    """A small pixel model, quantization-aware, after a few training steps on real-looking pixels."""
    return trained_pixel_qat()


def test_int8_export_of_a_qat_model_needs_no_calibration_and_keeps_its_grid(trained_qat, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from mobilenet.export import LiteRTRunner, to_tflite

    qat, pixels = trained_qat
    path = to_tflite(qat, tmp_path / "qat.tflite", "int8")
    runner = LiteRTRunner(path)
    assert runner.input_type == "uint8" and runner.input_quantization == (1.0, 0)

    interpreter = Interpreter(str(path))
    tensors = interpreter.get_tensor_details()
    file_weights = []  # every int8 weight tensor of the file, dequantized, outputs first
    for tensor in tensors:
        scales = tensor["quantization_parameters"]["scales"]
        if tensor["dtype"] == np.int8 and len(tensor["shape"]) >= 2 and len(scales) > 1:
            integers = interpreter.get_tensor(tensor["index"]).astype(np.float64)
            axis = tensor["quantization_parameters"]["quantized_dimension"]
            shape = [1] * integers.ndim
            shape[axis] = -1
            file_weights.append(np.moveaxis(integers * scales.reshape(shape), axis, 0))
    for layer in qat.layers:
        if isinstance(layer, (QuantizedConv, QuantizedDense)):
            kernel, _ = layer.folded_weights()
            ours = np.moveaxis(kernel.reshape(*kernel.shape[:-2], -1) if getattr(
                layer, "kind", None) == "depthwise" else kernel, -1, 0)  # outputs first
            assert any(weights.size == ours.size and np.allclose(
                weights.reshape(ours.shape[0], -1), ours.reshape(ours.shape[0], -1),
                rtol=1e-5, atol=1e-7) for weights in file_weights), layer.name

    ranges = {round((high - low) / 255, 7) for layer in qat.layers
              for low, high in [_range_of(layer)] if low is not None}
    file_scales = {round(float(t["quantization_parameters"]["scales"][0]), 7) for t in tensors
                   if t["dtype"] in (np.int8, np.uint8)
                   and len(t["quantization_parameters"]["scales"]) == 1}
    assert ranges <= file_scales

    agreement = np.mean(runner.run(pixels).argmax(1) == qat.predict(pixels, verbose=0).argmax(1))
    assert agreement >= 0.95


def _range_of(layer) -> tuple:
    if isinstance(layer, ActivationQuantizer):
        return layer.quantization_range()
    if isinstance(layer, (QuantizedConv, QuantizedDense)):
        return layer.output_quantizer.quantization_range()
    return (None, None)


def test_the_export_graph_computes_the_qat_model(trained_qat):
    qat, pixels = trained_qat
    np.testing.assert_allclose(export_graph(qat).predict(pixels, verbose=0),
                               qat.predict(pixels, verbose=0), atol=1e-6)


def test_per_channel_must_be_what_the_model_trained_with(trained_qat, tmp_path):
    from mobilenet.export import to_tflite

    with pytest.raises(ValueError, match="`per_channel`: expected None or True for this model"):
        to_tflite(trained_qat[0], tmp_path / "x.tflite", "int8", per_channel=False)
    assert not (tmp_path / "x.tflite").exists()


def test_a_float_model_still_needs_calibration_images_for_int8(tmp_path):
    from mobilenet.export import to_tflite

    with pytest.raises(ValueError, match="`representative_data`"):
        to_tflite(_conv_bn_model(), tmp_path / "x.tflite", "int8")
    assert not (tmp_path / "x.tflite").exists()


def test_calibration_data_given_for_a_qat_model_is_said_to_be_unused(trained_qat, tmp_path):
    from mobilenet.export import to_tflite

    qat, pixels = trained_qat
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        to_tflite(qat, tmp_path / "qat.tflite", "int8", representative_data=pixels[:8])
    assert any("representative_data is not used" in str(w.message) for w in caught)


def test_a_qat_model_goes_to_a_microcontroller_without_calibration_images(trained_qat, tmp_path):
    """QAT, then TFLite Micro: the learned ranges, int8 at both ends, in TFLM's own interpreter."""
    from mobilenet.cli import main
    from mobilenet.export.micro import io_quantization, run_micro, to_micro

    qat, pixels = trained_qat
    path = to_micro(qat, tmp_path / "qat.tflite")
    assert io_quantization(path)[0] == (1.0, -128)  # the pixel shifted by 128
    on_micro = run_micro(path, pixels[:16])
    assert np.mean(on_micro.argmax(1) == qat.predict(pixels[:16], verbose=0).argmax(1)) >= 0.9

    qat.save(tmp_path / "qat.keras")  # and through the command line, to a C array
    assert main(["export", str(tmp_path / "qat.keras"), str(tmp_path / "qat.cc"), "--target", "micro"]) == 0
    assert (tmp_path / "qat.cc").is_file() and (tmp_path / "qat.h").is_file()


def test_a_float_model_for_a_microcontroller_still_needs_calibration_images(tmp_path, capsys):
    from mobilenet.cli import main

    _conv_bn_model().save(tmp_path / "float.keras")
    assert main(["export", str(tmp_path / "float.keras"), str(tmp_path / "m.cc"), "--target", "micro"]) == 2
    error = capsys.readouterr().err
    assert "Invalid value for argument `--calibration-data`: an int8 file for a microcontroller" in error
    assert "unless the model was trained quantization-aware" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.keras"]


# --------------------------------------------------------------------------- train(qat_epochs=)


class _Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt when epoch ``at`` (0-based, over the whole run) begins, once."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.fired = False

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at and not self.fired:
            self.fired = True
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.parametrize("killed_at", [1, 2], ids=["at the hand-over", "inside QAT"])
def test_a_qat_run_killed_resumes_and_ends_quantization_aware(tmp_path, killed_at):
    from mobilenet.saving import load_model
    import dataclasses

    from mobilenet.training import FLOAT_MODEL, RECIPE, train

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (64, 32, 32, 3)).astype("uint8")
    labels = np.arange(64) % 2
    recipe = dataclasses.replace(RECIPE, epochs=1, qat_epochs=2, alpha=0.25, batch_size=32,
                                 validation_fraction=0.0)
    options = dict(output_dir=tmp_path, recipe=recipe, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        train((pixels, labels), extra_callbacks=[_Interrupt(killed_at)], **options)
    assert (tmp_path / FLOAT_MODEL).is_file()
    assert not is_quantize_aware(load_model(tmp_path / FLOAT_MODEL))
    result = train((pixels, labels), resume=True, **options)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    final = load_model(result.final_model_path)
    assert is_quantize_aware(final) and is_quantize_aware(load_model(result.best_model_path))
    steps = [int(layer.steps) for layer in final.layers if isinstance(layer, QuantizedConv)]
    assert steps and all(step == 2 for step in steps), steps  # 2 QAT epochs x 2 steps, frozen at 2


def test_an_activation_litert_does_not_fuse_becomes_a_layer_with_its_own_range():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="swish", name="conv")(inputs)
    outputs = keras.layers.Dense(3, activation="sigmoid", name="fc")(
        keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    qat = quantize_aware(model)
    names = [layer.name for layer in qat.layers]
    assert names[names.index("conv") + 1:names.index("conv") + 3] == ["conv_activation",
                                                                     "conv_activation_range"]
    assert qat.get_layer("fc_activation_range").fixed_range == (0.0, 255 / 256)
    x = _images()
    np.testing.assert_allclose(qat.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.05)


def test_before_training_ranges_round_nothing_and_export_asks_for_training(tmp_path):
    from mobilenet.export import to_tflite

    model = _conv_bn_model()
    qat = quantize_aware(model)
    x = _images()
    # Only the folded weights are rounded: close to the float model, not a constant.
    np.testing.assert_allclose(qat.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.05)
    with pytest.raises(ValueError, match="trained for at least one step"):
        to_tflite(qat, tmp_path / "x.tflite", "int8")
    assert not (tmp_path / "x.tflite").exists()
