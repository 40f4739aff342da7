"""The int8 ONNX file of a quantization-aware model: `to_onnx(qat_model, path, "int8")`.

The truths used: the QAT model's own learned ranges and folded weights (the
file's scales must be ``(high - low) / 255`` of each range and its integers
times their scales the folded kernels), the QAT Keras model's answers,
TensorFlow's own FakeQuant rounding, and the node types ONNX Runtime makes of
the file.
"""

from __future__ import annotations

from collections import Counter

import keras
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the optional `onnx` extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the optional `onnx` extra is not installed")

from mobilenet.export import ONNXRunner, to_onnx  # noqa: E402
from mobilenet.quantization import (  # noqa: E402
    ActivationQuantizer,
    QuantizedConv,
    QuantizedDense,
    export_graph,
    quantize_aware,
)
from tests.qat_models import trained_pixel_qat  # noqa: E402

pytestmark = pytest.mark.tf_only


@pytest.fixture(scope="module")
def trained_qat(tmp_path_factory):
    """A small pixel QAT model after 2 epochs on random pixels, and its int8 ONNX file."""
    qat, pixels = trained_pixel_qat()
    path = to_onnx(qat, tmp_path_factory.mktemp("qat_onnx") / "qat_int8.onnx", "int8")
    return qat, pixels, path


def _constants(graph) -> dict[str, np.ndarray]:
    return {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}


def test_quantize_scales_and_zero_points_are_the_learned_ranges(trained_qat):
    qat, _, path = trained_qat
    quantizers = [layer for layer in qat.layers if isinstance(layer, ActivationQuantizer)]
    quantizers += [layer.output_quantizer for layer in qat.layers
                   if isinstance(layer, (QuantizedConv, QuantizedDense))]
    expected = []
    for quantizer in quantizers:
        low, high = quantizer.quantization_range()
        scale = (high - low) / 255
        expected.append((scale, round(-low / scale)))
    graph = onnx.load(str(path)).graph
    constants = _constants(graph)
    written = [(float(constants[node.input[1]]), int(constants[node.input[2]]))
               for node in graph.node if node.op_type == "QuantizeLinear"]
    assert all(constants[node.input[2]].dtype == np.uint8
               for node in graph.node if node.op_type == "QuantizeLinear")
    assert len(written) == len(expected) == 9
    written, expected = sorted(written), sorted(expected)
    np.testing.assert_allclose([s for s, _ in written], [s for s, _ in expected], rtol=1e-6)
    assert [z for _, z in written] == [z for _, z in expected]


def _onnx_layout(layer) -> np.ndarray:
    """``layer``'s folded kernel as the file holds it: Conv [out, in/group, h, w], Gemm [in, out]."""
    kernel = layer.folded_weights()[0]
    if isinstance(layer, QuantizedDense):
        return kernel
    if layer.kind == "depthwise":  # (h, w, channels, multiplier) -> (channels * multiplier, 1, h, w)
        return kernel.reshape(*kernel.shape[:2], -1, 1).transpose(2, 3, 0, 1)
    return kernel.transpose(3, 2, 0, 1)


def test_integer_weights_times_their_scales_are_the_folded_weights(trained_qat):
    qat, _, path = trained_qat
    graph = onnx.load(str(path)).graph
    constants = _constants(graph)
    weights, biases = [], 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in constants:
            continue
        integers, scale, zero_point = (constants[name] for name in node.input)
        if integers.dtype == np.int32:
            biases += 1
            continue
        # Stored as uint8 around 128 (ONNX Runtime's uint8 x uint8 kernels, which do not
        # saturate on AVX2), the trained integers are k in [-127, 127].
        assert integers.dtype == np.uint8 and np.all(zero_point == 128)
        steps = integers.astype(int) - 128
        assert np.abs(steps).max() == 127 and np.abs(steps).min() >= 0
        axis = dict((a.name, a.i) for a in node.attribute)["axis"]
        shape = [1] * integers.ndim
        shape[axis] = -1
        assert scale.shape == (integers.shape[axis],)  # one scale per output channel
        weights.append(steps * scale.reshape(shape))
    layers = [layer for layer in qat.layers if isinstance(layer, (QuantizedConv, QuantizedDense))]
    assert len(weights) == len(layers) == 4 and biases == 4
    for layer in layers:
        folded = _onnx_layout(layer)
        matches = [w for w in weights if w.shape == folded.shape
                   and np.allclose(w, folded, rtol=0, atol=1e-6)]
        assert len(matches) == 1, layer.name
    assert not [init for init in graph.initializer  # no float weight is left
                if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) >= 2]


def _outputs(path, images, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def test_file_answers_like_the_qat_model_in_int8_kernels(trained_qat, tmp_path):
    qat, pixels, path = trained_qat
    expected = qat.predict(pixels, verbose=0)
    runner = ONNXRunner(path)
    assert runner.input_type == "float32" and runner.outputs == "probabilities"
    outputs = runner.run(pixels)
    assert np.mean(outputs.argmax(-1) == expected.argmax(-1)) >= 0.95
    assert np.abs(outputs - expected).max() <= 2 / 256  # two steps of the softmax output
    plain = _outputs(path, pixels, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    np.testing.assert_allclose(outputs, plain, atol=1 / 256)

    # ONNX Runtime fuses every QDQ group into its int8 ops.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)
    assert ops["QLinearConv"] == 3 and ops["QGemm"] == 1 and ops["QLinearSoftmax"] == 1
    assert ops["Conv"] == ops["Gemm"] == ops["MatMul"] == 0


def test_pixel_rescaling_ties_round_up_as_tensorflow_rounds_them(tmp_path):
    """x / 127.5 - 1 of a pixel lies half way between two steps of its range (-1, 1).

    TensorFlow's FakeQuant (what the QAT model computes) rounds those up;
    ONNX's QuantizeLinear would round half of them down (to even).
    """
    inputs = keras.Input((16, 16, 1))
    outputs = keras.layers.Rescaling(1 / 127.5, -1)(inputs)
    qat = quantize_aware(keras.Model(inputs, outputs))
    pixels = np.arange(256, dtype="float32").reshape(1, 16, 16, 1)
    expected = keras.ops.convert_to_numpy(export_graph(qat)(pixels))  # TensorFlow's FakeQuant ops
    # Steps of 2/255; TensorFlow nudges the zero point 127.5 (computed in float32:
    # 127.49999) to 127, and every value x / 127.5 - 1 = (p - 127.5) steps rounds up.
    np.testing.assert_allclose(expected.ravel(), (np.arange(256) - 127) / 127.5, rtol=0, atol=1e-5)
    path = to_onnx(qat, tmp_path / "rescaling.onnx", "int8")
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED):
        outputs = _outputs(path, pixels, level).ravel()
        np.testing.assert_allclose(outputs[:255], expected.ravel()[:255], rtol=0, atol=1e-5)
        # tf2onnx rounds the zero point in float64 (to 128), so the top value clips one
        # step lower than TensorFlow's: a known difference of one step on pixel 255.
        assert outputs[255] == pytest.approx(127 / 127.5, abs=1e-5)


def test_calibration_images_are_not_used_and_old_opsets_are_refused(trained_qat, tmp_path):
    qat, pixels, path = trained_qat
    with pytest.warns(UserWarning, match="representative_data is not used"):
        again = to_onnx(qat, tmp_path / "again.onnx", "int8", representative_data=pixels)
    np.testing.assert_array_equal(ONNXRunner(again).run(pixels), ONNXRunner(path).run(pixels))
    with pytest.raises(ValueError, match="`opset`: expected None or an opset >= 13"):
        to_onnx(qat, tmp_path / "old.onnx", "int8", opset=12)
    assert not (tmp_path / "old.onnx").exists()
