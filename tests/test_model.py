"""Tests of `mobilenet.model`: shapes and counts against paper Table 1, paper.md and keras.applications."""

from __future__ import annotations

import numpy as np
import pytest
import keras

from mobilenet import DepthwiseSeparableConv2D, MobileNetV1
from mobilenet._keras_compat import flatten_layers
from tests.keras_checks import assert_save_load_round_trip

# Paper Table 1 at 224x224 (with the s2 typo of the last block read as s1): output of each layer.
TABLE_1_OUTPUTS = {
    "conv1_act": (112, 112, 32),
    "block_1": (112, 112, 64),
    "block_2": (56, 56, 128),
    "block_3": (56, 56, 128),
    "block_4": (28, 28, 256),
    "block_5": (28, 28, 256),
    "block_6": (14, 14, 512),
    **{f"block_{n}": (14, 14, 512) for n in range(7, 12)},
    "block_12": (7, 7, 1024),
    "block_13": (7, 7, 1024),
}

# From ../shared/paper.md: keras.applications.MobileNet parameter counts, 1000 classes.
KERAS_APPLICATIONS_PARAMS = {1.0: 4_253_864, 0.75: 2_601_976, 0.5: 1_342_536, 0.25: 475_544}
# Paper Tables 6/7/8, params in millions as printed (BN left out).
PAPER_PARAMS_M = {1.0: 4.2, 0.75: 2.6, 0.5: 1.3, 0.25: 0.5}
RHOS = {1.0: 224, 6 / 7: 192, 5 / 7: 160, 4 / 7: 128}


def paper_param_count(model: keras.Model) -> int:
    """Weights the way the paper counts them: every variable except BatchNorm's."""
    total = 0
    for layer in flatten_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) or any(flatten_layers(layer)):
            continue
        total += sum(int(np.prod(w.shape)) for w in layer.weights)
    return total


def test_table_1_shapes():
    model = MobileNetV1()
    assert model.input_shape == (None, 224, 224, 3)
    for name, shape in TABLE_1_OUTPUTS.items():
        assert model.get_layer(name).output.shape[1:] == shape, name
    assert model.output_shape == (None, 1000)
    blocks = [layer for layer in model.layers if isinstance(layer, DepthwiseSeparableConv2D)]
    assert len(blocks) == 13


@pytest.mark.parametrize("alpha", [1.0, 0.75, 0.5, 0.25])
@pytest.mark.parametrize("rho", list(RHOS))
def test_width_and_resolution_multipliers(alpha, rho):
    side = RHOS[rho]
    model = MobileNetV1(alpha, rho, include_top=False)
    assert model.input_shape == (None, side, side, 3)
    # Five stride-2 layers (the stem and blocks 2, 4, 6, 12), 'same' padding: ceil at each.
    final = side
    for _ in range(5):
        final = -(-final // 2)
    assert model.output_shape == (None, final, final, int(1024 * alpha))
    assert model.get_layer("conv1").filters == int(32 * alpha)


@pytest.mark.parametrize("alpha", [1.0, 0.75, 0.5, 0.25])
def test_parameters_equal_keras_applications(alpha):
    model = MobileNetV1(alpha)
    assert model.count_params() == KERAS_APPLICATIONS_PARAMS[alpha]
    # The paper's count (no BN) rounds to Tables 6, 7 and 8 as printed.
    assert round(paper_param_count(model) / 1e6, 1) == PAPER_PARAMS_M[alpha]


def test_paper_parameter_count_exact():
    # paper.md: 4,209,088 weights without biases and BN; 4,210,088 with the FC's bias.
    assert paper_param_count(MobileNetV1(1.0)) == 4_210_088


def test_resolution_does_not_change_parameters():
    counts = {MobileNetV1(1.0, rho).count_params() for rho in RHOS}
    assert counts == {KERAS_APPLICATIONS_PARAMS[1.0]}


@pytest.mark.parametrize("alpha", [0.6, 1.4])
def test_any_alpha_matches_keras_applications(alpha):
    ours = MobileNetV1(alpha, input_shape=(96, 96, 3), num_classes=10)
    theirs = keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=alpha, weights=None, classes=10)
    assert ours.count_params() == theirs.count_params()
    assert ours.get_layer("block_13").output.shape[-1] == int(1024 * alpha)


def test_min_depth_floors_narrow_layers():
    model = MobileNetV1(0.1, include_top=False, input_shape=(64, 64, 3))
    assert model.get_layer("conv1").filters == 8  # int(0.1 * 32) = 3, floored at min_depth
    assert model.get_layer("block_1").filters == 8  # int(6.4)
    assert model.get_layer("block_13").filters == 102  # int(102.4)
    assert MobileNetV1(0.1, min_depth=1, include_top=False, input_shape=(64, 64, 3)).get_layer("conv1").filters == 3


@pytest.mark.parametrize(
    "input_shape, expected",
    [((32, 32, 3), (1, 1)), ((96, 96, 3), (3, 3)), ((160, 224, 3), (5, 7)), ((33, 47, 3), (2, 2))],
)
def test_odd_input_sizes(input_shape, expected):
    model = MobileNetV1(input_shape=input_shape, include_top=False)
    assert model.output_shape[1:3] == expected
    x = np.zeros((1, *input_shape), "float32")
    assert model(x).shape[1:3] == expected


def test_unknown_input_size():
    model = MobileNetV1(0.25, input_shape=(None, None, 3), num_classes=7)
    assert model(np.zeros((2, 64, 96, 3), "float32")).shape == (2, 7)


@pytest.mark.parametrize("pooling, shape", [(None, (None, 7, 7, 1024)), ("avg", (None, 1024)), ("max", (None, 1024))])
def test_feature_extractor_pooling(pooling, shape):
    model = MobileNetV1(include_top=False, pooling=pooling, input_shape=(224, 224, 3))
    assert model.output_shape == shape
    assert not any(layer.name in ("fc", "predictions") for layer in model.layers)


def test_pooling_values():
    model = MobileNetV1(0.25, include_top=False, input_shape=(64, 64, 3))
    x = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype("float32")
    features = np.asarray(model(x))
    avg = MobileNetV1(0.25, include_top=False, pooling="avg", input_shape=(64, 64, 3))
    mx = MobileNetV1(0.25, include_top=False, pooling="max", input_shape=(64, 64, 3))
    avg.set_weights(model.get_weights())
    mx.set_weights(model.get_weights())
    np.testing.assert_allclose(avg(x), features.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mx(x), features.max(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize("output_stride, side", [(32, 7), (16, 14), (8, 28)])
def test_output_stride(output_stride, side):
    model = MobileNetV1(include_top=False, output_stride=output_stride, input_shape=(224, 224, 3))
    assert model.output_shape == (None, side, side, 1024)
    # Parameters do not change: strides become dilation, weights stay.
    assert model.count_params() == MobileNetV1(include_top=False).count_params()


def test_output_stride_turns_strides_into_dilation():
    model = MobileNetV1(include_top=False, output_stride=8, input_shape=(64, 64, 3))
    # Running stride reaches 8 after block 4; later stride-2 blocks (6, 12) become rate 2 then 4.
    rates = {n: model.get_layer(f"block_{n}").dilation_rate[0] for n in range(1, 14)}
    strides = {n: model.get_layer(f"block_{n}").strides[0] for n in range(1, 14)}
    assert [strides[n] for n in (2, 4, 6, 12)] == [2, 2, 1, 1]
    assert [rates[n] for n in (5, 6, 7, 11, 12, 13)] == [1, 1, 2, 2, 2, 4]


def test_intermediate_features_for_ssd():
    """SSD-MobileNet at 300x300 taps a 19x19x512 map (block 11) and a 10x10x1024 map (block 13)."""
    backbone = MobileNetV1(include_top=False, input_shape=(300, 300, 3))
    features = keras.Model(
        backbone.input,
        [backbone.get_layer("block_11").output, backbone.get_layer("block_13").output],
    )
    small, large = features(np.zeros((1, 300, 300, 3), "float32"))
    assert small.shape == (1, 19, 19, 512)
    assert large.shape == (1, 10, 10, 1024)


def test_input_tensor():
    inputs = keras.Input((64, 64, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    model = MobileNetV1(0.25, input_tensor=scaled, num_classes=5)
    assert model.inputs[0] is inputs
    assert model.output_shape == (None, 5)


def test_classifier():
    model = MobileNetV1(0.25, input_shape=(64, 64, 3), num_classes=10)
    probabilities = np.asarray(model(np.random.default_rng(0).uniform(size=(3, 64, 64, 3)).astype("float32")))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    logits = MobileNetV1(0.25, input_shape=(64, 64, 3), num_classes=10, classifier_activation=None)
    assert logits.get_layer("fc").units == 10


def test_relu_activation_and_default_names():
    model = MobileNetV1(0.5, rho=4 / 7, activation="relu")
    assert model.name == "mobilenet_v1_0.50_128"
    assert model.get_layer("block_3").activation is keras.activations.relu


def test_conv_and_shallow_variants():
    conv = MobileNetV1(separable=False, include_top=False, input_shape=(64, 64, 3))
    assert not any(isinstance(layer, DepthwiseSeparableConv2D) for layer in conv.layers)
    assert conv.get_layer("block_7_conv").kernel.shape == (3, 3, 512, 512)
    shallow = MobileNetV1(shallow=True)
    names = {layer.name for layer in shallow.layers}
    assert {"block_6", "block_12"} <= names and not names & {f"block_{n}" for n in range(7, 12)}
    assert shallow.output_shape == (None, 1000)


def test_mixed_precision_model():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10)
    assert model.get_layer("block_5").compute_dtype == "float16"
    assert model.output.dtype == "float32"
    y = model(np.ones((2, 32, 32, 3), "float32"))
    assert y.dtype == "float32"


def test_model_saves_and_loads(tmp_path):
    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10)
    x = np.random.default_rng(1).uniform(size=(4, 32, 32, 3)).astype("float32")
    rng = np.random.default_rng(2)
    for layer in flatten_layers(model):  # BN statistics off their defaults
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    assert_save_load_round_trip(model, x, tmp_path / "mobilenet.keras")


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(alpha=0), r"`alpha`.*> 0.*alpha=0"),
        (dict(alpha=-0.5), r"`alpha`.*alpha=-0.5"),
        (dict(alpha=float("nan")), r"`alpha`.*alpha=nan"),
        (dict(alpha="1.0"), r"`alpha`.*alpha='1.0'"),
        (dict(alpha=True), r"`alpha`.*alpha=True"),
        (dict(rho=0), r"`rho`.*rho=0"),
        (dict(rho=-1), r"`rho`.*rho=-1"),
        (dict(rho=0.1), r"`rho`.*>= 0.1429.*Received: rho=0.1, an input side of 22, under the minimum of 32"),
        (dict(rho=5 / 7, input_shape=(224, 224, 3)), r"`rho` and `input_shape` disagree"),
        (dict(num_classes=0), r"`num_classes`.*num_classes=0"),
        (dict(num_classes=2.5), r"`num_classes`.*num_classes=2.5"),
        (dict(input_shape=(224, 224)), r"`input_shape`.*\(rows, cols, channels\)"),
        (dict(input_shape=(224, 224, 3, 1)), r"`input_shape`.*\(rows, cols, channels\)"),
        (dict(input_shape=(224, 224, 0)), r"`input_shape`.*channel count"),
        (dict(input_shape=(16, 224, 3)), r"`input_shape`.*>= 32"),
        (dict(pooling="sum", include_top=False), r"`pooling`.*pooling='sum'"),
        (dict(activation="swishy"), r"`activation`.*activation='swishy'"),
        (dict(classifier_activation="nope"), r"`classifier_activation`"),
        (dict(output_stride=4), r"`output_stride`.*output_stride=4"),
        (dict(dropout=1.0), r"`dropout`.*dropout=1.0"),
        (dict(early_downsampling=3), r"`early_downsampling`.*\(4, 2, 1\).*early_downsampling=3"),
        (dict(early_downsampling=4.0), r"`early_downsampling`.*integer.*early_downsampling=4.0"),
        (dict(batch_norm_momentum=1.0), r"`batch_norm_momentum`.*\[0, 1\).*batch_norm_momentum=1.0"),
        (dict(batch_norm_momentum="0.9"), r"`batch_norm_momentum`.*batch_norm_momentum='0.9'"),
        (dict(batch_norm_epsilon=0), r"`batch_norm_epsilon`.*> 0.*batch_norm_epsilon=0"),
        (dict(batch_norm_epsilon=float("inf")), r"`batch_norm_epsilon`.*batch_norm_epsilon=inf"),
        (dict(min_depth=0), r"`min_depth`.*min_depth=0"),
        (dict(weights=3), r"`weights`.*weights=3"),
        (dict(weights="imagenet", alpha=0.6), r"`alpha`.*ImageNet.*alpha=0.6"),
        (dict(weights="imagenet", input_shape=(200, 200, 3)), r"`input_shape`.*200x200"),
        (dict(weights="imagenet", num_classes=10), r"`num_classes`.*1000"),
        (dict(weights="imagenet", separable=False), r"`weights`.*separable=False"),
        (dict(weights="imagenet", input_shape=(224, 224, 1)), r"`input_shape`.*3 input channels"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        MobileNetV1(**kwargs)


def test_num_classes_is_ignored_without_top():
    model = MobileNetV1(0.25, include_top=False, num_classes=0, input_shape=(32, 32, 3))
    assert model.output_shape == (None, 1, 1, 256)


# ------------------------------- open input size, BatchNorm settings, preprocessing, output stride


def test_feature_extractor_takes_any_input_size():
    model = MobileNetV1(0.25, include_top=False)
    assert model.input_shape == (None, None, None, 3)
    assert model.name == "mobilenet_v1_0.25_any"
    for side, final in ((64, 2), (97, 4)):  # 'same' padding: ceil(side / 32)
        assert model(np.zeros((1, side, side, 3), "float32")).shape == (1, final, final, 256)
    # The classifier keeps the paper's fixed 224x224 input; so does a rho.
    assert MobileNetV1(0.25).input_shape == (None, 224, 224, 3)
    assert MobileNetV1(0.25, 4 / 7, include_top=False).input_shape == (None, 128, 128, 3)


def _batch_norms(model):
    return [layer for layer in flatten_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("separable", [True, False])
def test_batch_norm_momentum_and_epsilon_reach_every_batch_norm_and_survive_saving(separable, tmp_path):
    model = MobileNetV1(
        0.25, input_shape=(32, 32, 3), num_classes=10, separable=separable,
        batch_norm_momentum=0.9, batch_norm_epsilon=1e-4,
    )
    # The stem's, then 2 per separable block or 1 per full-conv block.
    assert len(_batch_norms(model)) == (27 if separable else 14)
    x = np.random.default_rng(3).uniform(size=(2, 32, 32, 3)).astype("float32")
    restored = assert_save_load_round_trip(model, x, tmp_path / "bn.keras")
    for built in (model, restored):
        norms = _batch_norms(built)
        assert len(norms) == (27 if separable else 14)
        assert {(bn.momentum, bn.epsilon) for bn in norms} == {(0.9, 1e-4)}
    # The defaults are Keras' own.
    default = MobileNetV1(0.25, input_shape=(32, 32, 3), separable=separable)
    assert {(bn.momentum, bn.epsilon) for bn in _batch_norms(default)} == {(0.99, 1e-3)}


def test_include_preprocessing_takes_pixels():
    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=4, include_preprocessing=True)
    layer = model.layers[1]
    assert layer.name == "preprocessing" and isinstance(layer, keras.layers.Rescaling)
    assert model.get_layer("conv1").input is layer.output
    plain = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=4)
    assert "preprocessing" not in [layer.name for layer in plain.layers]
    plain.set_weights(model.get_weights())
    pixels = np.random.default_rng(5).integers(0, 256, size=(3, 32, 32, 3)).astype("uint8")
    # Pixels in [0, 255] become [-1, 1] inside the model, as uint8 or as float.
    scaled = pixels.astype("float32") / 127.5 - 1
    expected = np.asarray(plain(scaled))
    np.testing.assert_allclose(np.asarray(model(pixels)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(pixels.astype("float32"))), expected, rtol=1e-5, atol=1e-6)


def test_include_preprocessing_with_an_input_tensor():
    inputs = keras.Input((32, 32, 3))
    model = MobileNetV1(0.25, input_tensor=inputs, include_top=False, include_preprocessing=True)
    assert model.inputs[0] is inputs
    assert model.get_layer("preprocessing").input is inputs


@pytest.mark.parametrize(
    "early_downsampling, network_stride",
    [(4, 32), (2, 16), (1, 8)],
)
def test_output_stride_within_what_early_downsampling_allows(early_downsampling, network_stride):
    side = 64
    reference = MobileNetV1(
        0.25, include_top=False, input_shape=(side, side, 3), early_downsampling=early_downsampling
    )
    assert reference.output_shape[1:3] == (side // network_stride,) * 2
    for output_stride in (8, 16, 32):
        if output_stride > network_stride:
            continue
        model = MobileNetV1(
            0.25, include_top=False, input_shape=(side, side, 3),
            early_downsampling=early_downsampling, output_stride=output_stride,
        )
        assert model.output_shape[1:3] == (side // output_stride,) * 2
        dilations = [model.get_layer(f"block_{n}").dilation_rate[0] for n in range(1, 14)]
        # Asking for the network's own stride changes nothing; less dilates the rest.
        assert (max(dilations) == 1) == (output_stride == network_stride)


@pytest.mark.parametrize(
    "early_downsampling, output_stride, network_stride",
    [(2, 32, 16), (1, 32, 8), (1, 16, 8)],
)
def test_output_stride_that_early_downsampling_makes_impossible(
    early_downsampling, output_stride, network_stride, monkeypatch
):
    def no_input(*args, **kwargs):
        raise AssertionError("a layer was built before the arguments were checked")

    monkeypatch.setattr(keras, "Input", no_input)  # the factory's first layer
    pattern = (
        rf"`output_stride`.*early_downsampling={early_downsampling} makes the whole "
        rf"network's stride {network_stride}.*Received: output_stride={output_stride}"
    )
    with pytest.raises(ValueError, match=pattern):
        MobileNetV1(early_downsampling=early_downsampling, output_stride=output_stride)
