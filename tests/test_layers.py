"""Tests of `mobilenet.layers`: the block against plain Keras layers and hand counts."""

from __future__ import annotations

import numpy as np
import pytest
import keras

from mobilenet import DepthwiseSeparableConv2D, PointwiseConv2D
from mobilenet.errors import InvalidArgument
from tests.keras_checks import assert_save_load_round_trip


def _reference_block(filters, strides=1, dilation_rate=1, padding="same", depth_multiplier=1):
    """The paper's block written out in stock Keras layers (Figure 3)."""
    return [
        keras.layers.DepthwiseConv2D(
            3, strides=strides, padding=padding, dilation_rate=dilation_rate,
            depth_multiplier=depth_multiplier, use_bias=False,
        ),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(6.0),
        keras.layers.Conv2D(filters, 1, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(6.0),
    ]


def _give_bn_statistics(block: DepthwiseSeparableConv2D, rng: np.random.Generator) -> None:
    for bn in (block.depthwise_bn, block.pointwise_bn):
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([
            rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
            rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape),
        ])


def test_pointwise_matches_keras_conv2d_1x1():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 7, 16)).astype("float32")
    ours = PointwiseConv2D(24, use_bias=True)
    theirs = keras.layers.Conv2D(24, 1, use_bias=True)
    ours.build(x.shape)
    theirs.build(x.shape)
    assert ours.kernel.shape == theirs.kernel.shape == (1, 1, 16, 24)
    theirs.set_weights([rng.normal(size=(1, 1, 16, 24)), rng.normal(size=(24,))])
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_pointwise_with_unknown_spatial_size():
    layer = PointwiseConv2D(8)
    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, layer(inputs))
    assert model.output_shape == (None, None, None, 8)
    assert model(np.ones((2, 3, 5, 4), "float32")).shape == (2, 3, 5, 8)


@pytest.mark.parametrize("argument", ["kernel_size", "strides", "dilation_rate", "groups"])
def test_pointwise_rejects_other_than_1x1(argument):
    with pytest.raises(ValueError, match=f"`{argument}`.*Received: {argument}=3"):
        PointwiseConv2D(8, **{argument: 3})


@pytest.mark.parametrize(
    "strides, dilation_rate, padding, depth_multiplier",
    [(1, 1, "same", 1), (2, 1, "same", 1), (2, 1, "valid", 2), (1, 2, "same", 1)],
)
def test_block_matches_stock_keras_layers(strides, dilation_rate, padding, depth_multiplier):
    """Same weights in, same outputs out, in inference and in training mode."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 9, 10, 6)).astype("float32")
    block = DepthwiseSeparableConv2D(
        12, strides=strides, dilation_rate=dilation_rate, padding=padding,
        depth_multiplier=depth_multiplier,
    )
    reference = keras.Sequential(
        [keras.Input(x.shape[1:]), *_reference_block(12, strides, dilation_rate, padding, depth_multiplier)]
    )
    block.build(x.shape)
    _give_bn_statistics(block, rng)
    dw, dw_bn, _, pw, pw_bn, _ = reference.layers
    dw.set_weights(block.depthwise.get_weights())
    dw_bn.set_weights(block.depthwise_bn.get_weights())
    pw.set_weights(block.pointwise.get_weights())
    pw_bn.set_weights(block.pointwise_bn.get_weights())

    assert block.compute_output_shape(x.shape) == reference.compute_output_shape(x.shape)
    for training in (False, True):
        np.testing.assert_allclose(
            block(x, training=training), reference(x, training=training), rtol=1e-4, atol=1e-4
        )


def test_weights_are_shaped_as_keras_keeps_them():
    block = DepthwiseSeparableConv2D(64, depth_multiplier=2)
    block.build((None, 8, 8, 32))
    assert block.depthwise.kernel.shape == (3, 3, 32, 2)
    assert block.pointwise.kernel.shape == (1, 1, 64, 64)
    assert block.depthwise.bias is None and block.pointwise.bias is None


@pytest.mark.parametrize("use_batch_norm", [True, False])
def test_parameter_count_by_formula(use_batch_norm):
    channels, filters, k, m = 32, 64, 3, 1
    block = DepthwiseSeparableConv2D(filters, kernel_size=k, use_batch_norm=use_batch_norm)
    block.build((None, 16, 16, channels))
    depthwise = k * k * channels * m  # D_K * D_K * M
    pointwise = channels * m * filters  # M * N
    if use_batch_norm:
        # BN keeps gamma, beta, moving mean and moving variance per channel; no conv biases.
        expected = depthwise + 4 * channels * m + pointwise + 4 * filters
    else:
        expected = depthwise + channels * m + pointwise + filters
    assert block.count_params() == expected


@pytest.mark.parametrize(
    "input_shape, kwargs, expected",
    [
        ((None, 32, 32, 8), dict(strides=2), (None, 16, 16, 16)),
        ((None, 7, 7, 8), dict(strides=2), (None, 4, 4, 16)),  # same: ceil(7 / 2)
        ((None, 7, 7, 8), dict(strides=2, padding="valid"), (None, 3, 3, 16)),  # (7 - 3) // 2 + 1
        ((None, 9, 9, 8), dict(dilation_rate=2, padding="valid"), (None, 5, 5, 16)),  # 9 - 2*2
        ((None, 10, 6, 8), dict(kernel_size=(5, 3), padding="valid"), (None, 6, 4, 16)),
    ],
)
def test_output_shape(input_shape, kwargs, expected):
    block = DepthwiseSeparableConv2D(16, **kwargs)
    assert block.compute_output_shape(input_shape) == expected
    inputs = keras.Input(input_shape[1:])
    assert block(inputs).shape == expected


def test_batch_norm_follows_training_flag():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(16, 8, 8, 4)) * 3 + 2).astype("float32")
    block = DepthwiseSeparableConv2D(8, activation=None)
    block.build(x.shape)
    # Fresh moving statistics are mean 0, variance 1: inference output is just the convs scaled.
    inference = np.asarray(block(x, training=False))
    training = np.asarray(block(x, training=True))
    # In training mode the last BN normalises with the batch's own statistics (gamma 1, beta 0).
    np.testing.assert_allclose(training.mean(axis=(0, 1, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(training.std(axis=(0, 1, 2)), 1.0, atol=2e-2)
    assert np.abs(inference.mean(axis=(0, 1, 2))).max() > 0.1
    # A training call updates the moving statistics; an inference call leaves them alone.
    before = block.depthwise_bn.moving_mean.numpy().copy()
    block(x, training=False)
    np.testing.assert_array_equal(block.depthwise_bn.moving_mean.numpy(), before)
    block(x, training=True)
    assert not np.allclose(block.depthwise_bn.moving_mean.numpy(), before)


def test_default_activation_is_relu6_and_relu_is_available():
    x = np.full((1, 4, 4, 2), 100.0, "float32")
    relu6 = DepthwiseSeparableConv2D(2, use_batch_norm=False, depthwise_initializer="ones", pointwise_initializer="ones")
    relu = DepthwiseSeparableConv2D(2, activation="relu", use_batch_norm=False, depthwise_initializer="ones", pointwise_initializer="ones")
    assert np.asarray(relu6(x)).max() == 6.0
    assert np.asarray(relu(x)).max() > 6.0


def test_trains_in_a_model():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32")
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        DepthwiseSeparableConv2D(16),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ])
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kernel_before = model.layers[0].pointwise.kernel.numpy().copy()
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(model.layers[0].pointwise.kernel.numpy(), kernel_before)


def test_regularizers_add_the_l2_of_the_kernels_to_the_loss():
    block = DepthwiseSeparableConv2D(
        8,
        depthwise_regularizer=keras.regularizers.L2(1e-2),
        pointwise_regularizer=keras.regularizers.L2(3e-3),
    )
    model = keras.Sequential([keras.Input((6, 6, 4)), block])
    depthwise = block.depthwise.kernel.numpy().astype(np.float64)
    pointwise = block.pointwise.kernel.numpy().astype(np.float64)
    # L2(l) adds l * sum(w ** 2) for each regularized kernel.
    expected = 1e-2 * np.sum(depthwise**2) + 3e-3 * np.sum(pointwise**2)
    assert len(model.losses) == 2
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    # ...and training sees them: the evaluated loss is the data loss plus the penalty.
    x = np.random.default_rng(6).normal(size=(4, 6, 6, 4)).astype("float32")
    model.compile(loss="mse")
    data_loss = float(np.mean(np.asarray(model(x, training=False), np.float64) ** 2))
    total = model.evaluate(x, np.zeros((4, 6, 6, 8), "float32"), verbose=0)
    assert total == pytest.approx(data_loss + expected, rel=1e-4)
    # The default leaves the kernels unregularized, as TF-Slim does.
    assert keras.Sequential([keras.Input((6, 6, 4)), DepthwiseSeparableConv2D(8)]).losses == []


def test_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    block = DepthwiseSeparableConv2D(8)
    y = block(np.ones((2, 8, 8, 4), "float32"), training=True)
    assert y.dtype == "float16"
    assert block.pointwise.kernel.dtype == "float32"
    assert block.depthwise_bn.moving_variance.dtype == "float32"


def test_config_round_trip():
    block = DepthwiseSeparableConv2D(
        24, kernel_size=5, strides=2, padding="valid", depth_multiplier=2, activation="relu",
        batch_norm_momentum=0.9, batch_norm_epsilon=1e-5,
        depthwise_initializer="he_normal", pointwise_regularizer=keras.regularizers.L2(4e-5),
        name="my_block",
    )
    config = block.get_config()
    clone = DepthwiseSeparableConv2D.from_config(config)
    assert clone.get_config() == config
    assert config["kernel_size"] == (5, 5) and config["strides"] == (2, 2)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(block))
    assert isinstance(restored, DepthwiseSeparableConv2D)
    assert restored.get_config() == config


@keras.saving.register_keras_serializable(package="mobilenet_tests")
class SubclassedClassifier(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = DepthwiseSeparableConv2D(8, strides=2)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(3)

    def call(self, inputs, training=None):
        return self.head(self.pool(self.block(inputs, training=training)))


def _sequential():
    return keras.Sequential([keras.Input((12, 12, 3)), DepthwiseSeparableConv2D(8, strides=2), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])


def _functional():
    inputs = keras.Input((12, 12, 3))
    x = DepthwiseSeparableConv2D(8, name="sep")(inputs)
    x = DepthwiseSeparableConv2D(8, strides=2, name="sep2")(x)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("make", [_sequential, _functional, SubclassedClassifier], ids=["sequential", "functional", "subclassed"])
def test_models_using_the_block_save_and_load(make, tmp_path):
    model = make()
    x = np.random.default_rng(5).normal(size=(4, 12, 12, 3)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.zeros((4, 3)), epochs=1, verbose=0)  # moves the BN statistics off their defaults
    assert_save_load_round_trip(model, x, tmp_path / "model.keras")


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(filters=0), "filters"),
        (dict(filters=2.5), "filters"),
        (dict(filters=8, kernel_size=0), "kernel_size"),
        (dict(filters=8, strides=(1, 2, 3)), "strides"),
        (dict(filters=8, padding="full"), "padding"),
        (dict(filters=8, depth_multiplier=0), "depth_multiplier"),
        (dict(filters=8, strides=2, dilation_rate=2), "dilation_rate"),
        (dict(filters=8, activation="not_an_activation"), "activation"),
        (dict(filters=8, batch_norm_momentum=1.0), "batch_norm_momentum"),
        (dict(filters=8, batch_norm_epsilon=0), "batch_norm_epsilon"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`.*Received"):
        DepthwiseSeparableConv2D(**kwargs)


@pytest.mark.parametrize("shape, shown", [((8, 3), "(None, 8, 3)"), ((8, 8, None), "(None, 8, 8, None)")])
def test_bad_input_shape_names_input_shape(shape, shown):
    with pytest.raises(InvalidArgument, match=r"expected a 4D input .* known channels") as error:
        DepthwiseSeparableConv2D(8, name="block")(keras.Input(shape))
    assert error.value.argument == "input_shape"
    assert str(error.value).endswith(f"for layer 'block'. Received: input_shape={shown}")
