"""Tests of mobilenet.profiler against the paper, keras.applications, TensorFlow's
own FLOP counter and counts worked out by hand."""

from __future__ import annotations

import json

import keras
import pytest

from mobilenet import DepthwiseSeparableConv2D, MobileNetV1, PointwiseConv2D, profile


def _single(layer: keras.layers.Layer, input_shape: tuple[int, ...]):
    """A one-layer functional model, and the profile's rows."""
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    return profile(model).rows


# ---------------------------------------------------------------- the paper


def test_mobilenet_224_has_the_papers_exact_cost():
    costs = profile(MobileNetV1(alpha=1.0))
    # paper.md: 568,740,352 mult-adds; 4,209,088 weights, 4,210,088 with the FC bias.
    assert costs.mult_adds == 568_740_352
    assert costs.weights == 4_209_088
    assert costs.params == 4_210_088
    assert isinstance(costs.mult_adds, int) and isinstance(costs.params, int)
    # Table 1: 28 costed layers (stem, 13 x (dw, pw), FC) with its output sizes.
    assert len(costs.rows) == 28
    assert costs.rows[0].output_shape == (112, 112, 32)
    assert [row.output_shape for row in costs.rows[-3:]] == [(7, 7, 1024), (7, 7, 1024), (1000,)]
    # The first conv is D_K*D_K*M*N*D_F*D_F = 3*3*3*32*112*112 (paper.md: 10,838,016).
    assert costs.rows[0].mult_adds == 3 * 3 * 3 * 32 * 112 * 112 == 10_838_016
    assert [row.kind for row in costs.rows[:3]] == ["standard conv", "depthwise", "pointwise"]
    assert costs.rows[-1].kind == "fully connected"
    # Table 2 (to the printed two decimals; its 1.19% is a misprint of 1.91%).
    shares = costs.shares(include_biases=False)
    percent = {kind: {k: round(100 * v, 2) for k, v in s.items()} for kind, s in shares.items()}
    assert percent["pointwise"] == {"mult_adds": 94.86, "params": 74.59}
    assert percent["depthwise"] == {"mult_adds": 3.06, "params": 1.06}
    assert percent["standard conv"] == {"mult_adds": 1.91, "params": 0.02}
    assert percent["fully connected"] == {"mult_adds": 0.18, "params": 24.33}


@pytest.mark.parametrize(
    "alpha, side, keras_count",
    [
        (1.0, 224, 4_253_864),  # paper.md: keras.applications counts at 1000 classes
        (0.25, 224, 475_544),
        (0.5, 160, None),
        (0.75, 128, None),
    ],
)
def test_totals_equal_keras_applications_mobilenet(alpha, side, keras_count):
    ours = MobileNetV1(alpha, input_shape=(side, side, 3))
    theirs = keras.applications.MobileNet(
        input_shape=(side, side, 3), alpha=alpha, weights=None
    )
    a, b = profile(ours), profile(theirs)
    assert a.mult_adds == b.mult_adds
    assert a.params == b.params
    assert a.bn_params == b.bn_params
    assert a.uncosted == b.uncosted == ()
    # Nothing is lost: costed + BatchNorm parameters are all of Keras' count.
    for model, costs in ((ours, a), (theirs, b)):
        assert costs.params + costs.bn_params == model.count_params()
    if keras_count is not None:
        assert theirs.count_params() == keras_count


@pytest.mark.tf_only  # traces the model into a TensorFlow graph, which needs TF's Keras backend
def test_tensorflow_flop_counter_agrees_per_op_type():
    """TF's graph profiler counts 2 FLOPs per mult-add of convs and matmuls."""
    tf = pytest.importorskip("tensorflow")

    def tf_flops(model, input_shape):
        function = tf.function(lambda x: model(x, training=False))
        graph = function.get_concrete_function(tf.TensorSpec((1, *input_shape), tf.float32)).graph
        counts = {}
        for op_type in ("Conv2D", "DepthwiseConv2dNative", "MatMul"):
            options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
            options["account_type_regexes"] = [op_type]
            options["output"] = "none"
            result = tf.compat.v1.profiler.profile(
                graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
            )
            counts[op_type] = result.total_float_ops
        return counts

    # Our MobileNet: the stem is a Conv2D, depthwise convs are DepthwiseConv2dNative,
    # PointwiseConv2D and the classifier are MatMuls.
    model = MobileNetV1(0.25, input_shape=(64, 64, 3), num_classes=10)
    costs = profile(model).kind_totals()
    flops = tf_flops(model, (64, 64, 3))
    assert flops["Conv2D"] == 2 * costs["standard conv"]["mult_adds"] > 0
    assert flops["DepthwiseConv2dNative"] == 2 * costs["depthwise"]["mult_adds"] > 0
    assert flops["MatMul"] == 2 * (
        costs["pointwise"]["mult_adds"] + costs["fully connected"]["mult_adds"]
    )

    # Keras layers of other shapes: strided conv, dilated depthwise, separable
    # (a depthwise then a 1x1 Conv2D in TF) and a Dense on the flattened map.
    model = keras.Sequential(
        [
            keras.Input((15, 15, 3)),
            keras.layers.Conv2D(8, 5, strides=2, padding="valid"),
            keras.layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", depth_multiplier=2),
            keras.layers.SeparableConv2D(12, 3, depth_multiplier=2, padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dense(7),
        ]
    )
    costs = profile(model).kind_totals()
    flops = tf_flops(model, (15, 15, 3))
    assert flops["Conv2D"] == 2 * (costs["standard conv"]["mult_adds"] + costs["pointwise"]["mult_adds"])
    assert flops["DepthwiseConv2dNative"] == 2 * costs["depthwise"]["mult_adds"]
    assert flops["MatMul"] == 2 * costs["fully connected"]["mult_adds"]


# --------------------------------------------------------- hand-computed counts


def test_strided_conv_on_odd_input():
    # 7x7x3 input, 3x3 kernel, stride 2, 8 filters.
    (same,) = _single(keras.layers.Conv2D(8, 3, strides=2, padding="same"), (7, 7, 3))
    # "same": ceil(7 / 2) = 4 rows and cols.
    assert same.output_shape == (4, 4, 8)
    assert same.mult_adds == 3 * 3 * 3 * 8 * 4 * 4  # 3,456
    assert same.params == 3 * 3 * 3 * 8 + 8 and same.biases == 8
    assert same.kind == "standard conv"
    (valid,) = _single(keras.layers.Conv2D(8, 3, strides=2, padding="valid", use_bias=False), (7, 7, 3))
    # "valid": floor((7 - 3) / 2) + 1 = 3.
    assert valid.output_shape == (3, 3, 8)
    assert valid.mult_adds == 3 * 3 * 3 * 8 * 3 * 3  # 1,944
    assert valid.params == 216 and valid.biases == 0


def test_dilated_depthwise_conv():
    # 9x9x4 input, 3x3 kernel with dilation 2 spans 5x5: "valid" leaves 9 - 4 = 5.
    (row,) = _single(keras.layers.DepthwiseConv2D(3, dilation_rate=2, padding="valid"), (9, 9, 4))
    assert row.kind == "depthwise"
    assert row.output_shape == (5, 5, 4)
    assert row.mult_adds == 3 * 3 * 4 * 5 * 5  # 900
    assert row.params == 3 * 3 * 4 + 4


def test_grouped_conv():
    # 8x8x8 input, 4 groups of 2 input channels, 12 filters, 3x3 "same".
    (row,) = _single(keras.layers.Conv2D(12, 3, groups=4, padding="same"), (8, 8, 8))
    assert row.kind == "standard conv"
    assert row.output_shape == (8, 8, 12)
    assert row.mult_adds == 3 * 3 * (8 // 4) * 12 * 8 * 8  # 13,824
    assert row.params == 3 * 3 * 2 * 12 + 12
    # One group per input channel is a depthwise convolution.
    (row,) = _single(keras.layers.Conv2D(8, 3, groups=8, padding="same", use_bias=False), (8, 8, 8))
    assert row.kind == "depthwise"
    assert row.mult_adds == 3 * 3 * 1 * 8 * 8 * 8


def test_separable_conv_with_depth_multiplier_two():
    # 6x6x3 input -> depthwise 3x3 x2 -> 6x6x6 -> pointwise to 5 channels.
    rows = _single(keras.layers.SeparableConv2D(5, 3, depth_multiplier=2, padding="same"), (6, 6, 3))
    depthwise, pointwise = rows
    assert depthwise.kind == "depthwise" and pointwise.kind == "pointwise"
    assert depthwise.name.endswith("/depthwise") and pointwise.name.endswith("/pointwise")
    assert depthwise.output_shape == (6, 6, 6)
    assert depthwise.mult_adds == 3 * 3 * 3 * 2 * 6 * 6  # 1,944
    assert depthwise.params == 3 * 3 * 3 * 2
    assert pointwise.output_shape == (6, 6, 5)
    assert pointwise.mult_adds == 6 * 5 * 6 * 6  # 1,080
    assert pointwise.params == 6 * 5 + 5 and pointwise.biases == 5


def test_one_by_one_convs_are_pointwise_and_dense_counts_every_position():
    (keras_1x1,) = _single(keras.layers.Conv2D(16, 1, use_bias=False), (5, 5, 4))
    (ours_1x1,) = _single(PointwiseConv2D(16, use_bias=False), (5, 5, 4))
    for row in (keras_1x1, ours_1x1):
        assert row.kind == "pointwise"
        assert row.mult_adds == 4 * 16 * 5 * 5
    assert ours_1x1.layer_type == "PointwiseConv2D"
    # A Dense on a sequence applies its 16x10 kernel at each of the 4 steps.
    (dense,) = _single(keras.layers.Dense(10), (4, 16))
    assert dense.kind == "fully connected"
    assert dense.output_shape == (4, 10)
    assert dense.mult_adds == 16 * 10 * 4
    assert dense.params == 16 * 10 + 10


def test_other_convolutions():
    # Conv1D: 10 steps of 4 channels, kernel 3 "valid" -> 8 steps of 6.
    (conv1d,) = _single(keras.layers.Conv1D(6, 3), (10, 4))
    assert conv1d.mult_adds == 3 * 4 * 6 * 8
    # Transposed 3x3 stride 2: every one of the 4x4 input positions meets the whole kernel.
    (transposed,) = _single(keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same"), (4, 4, 3))
    assert transposed.output_shape == (8, 8, 2)
    assert transposed.mult_adds == 3 * 3 * 3 * 2 * 4 * 4
    assert transposed.kind == "standard conv"
    # channels_first: 3x7x7 input, stride 2 "same" -> 8x4x4 (only shapes are needed).
    (first,) = _single(keras.layers.Conv2D(8, 3, strides=2, padding="same", data_format="channels_first"), (3, 7, 7))
    assert first.output_shape == (8, 4, 4)
    assert first.mult_adds == 3 * 3 * 3 * 8 * 4 * 4


# ------------------------------------------------------ walking any Keras model


def test_nested_layers_and_models_are_walked():
    block = DepthwiseSeparableConv2D(16, strides=2, use_batch_norm=False, name="sep")
    inner = keras.Sequential([keras.Input((8, 8, 16)), keras.layers.Conv2D(4, 3, name="c")], name="inner")
    inputs = keras.Input((16, 16, 8))
    x = block(inputs)
    x = inner(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, x)
    costs = profile(model)
    names = [row.name for row in costs.rows]
    assert names == ["sep/sep_dw", "sep/sep_pw", "inner/c"]
    dw, pw, conv = costs.rows
    # 16x16x8 -> depthwise 3x3 stride 2 ("same": 8x8x8) -> 1x1 to 16 -> 3x3 "valid" to 6x6x4.
    assert dw.mult_adds == 3 * 3 * 8 * 8 * 8 and dw.biases == 8
    assert pw.mult_adds == 8 * 16 * 8 * 8 and pw.biases == 16
    assert conv.output_shape == (6, 6, 4) and conv.mult_adds == 3 * 3 * 16 * 4 * 6 * 6
    assert [layer.name for layer in costs.batch_norm] == ["bn"]
    assert costs.bn_params == 4 * 4
    assert costs.params + costs.bn_params == model.count_params()


def test_a_shared_layer_is_counted_once():
    # One 3x3 conv (2 -> 4 channels, no bias) applied to two 8x8 inputs.
    conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="shared")
    first, second = keras.Input((8, 8, 2)), keras.Input((8, 8, 2))
    model = keras.Model([first, second], keras.layers.Add()([conv(first), conv(second)]))
    costs = profile(model)
    (row,) = costs.rows
    assert row.name == "shared" and row.mult_adds == 3 * 3 * 2 * 4 * 8 * 8
    assert costs.params == model.count_params() == 3 * 3 * 2 * 4
    # Shared between a nested model and the outer one: still one row.
    inner = keras.Sequential([keras.Input((8, 8, 2)), conv], name="inner")
    both = keras.Model([first, second], keras.layers.Add()([inner(first), conv(second)]))
    assert [row.name for row in profile(both).rows] == ["inner/shared"]
    assert profile(both).params == both.count_params()


def test_backbone_inside_a_model_costs_the_same():
    backbone = MobileNetV1(0.25, input_shape=(96, 96, 3), include_top=False, pooling="avg")
    inputs = keras.Input((96, 96, 3))
    model = keras.Model(inputs, keras.layers.Dense(5, name="head")(backbone(inputs)))
    whole, alone = profile(model), profile(backbone)
    # The head is a 256 -> 5 Dense: int(0.25 * 1024) = 256 inputs.
    assert whole.mult_adds == alone.mult_adds + 256 * 5
    assert whole.params == alone.params + 256 * 5 + 5
    assert whole.rows[0].name.startswith(backbone.name + "/")


def test_layers_with_uncostable_weights_are_listed():
    class Scale(keras.layers.Layer):
        """A custom layer with a weight of its own and a Dense sublayer."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(3, name="inner_dense")

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), name="scale")
            self.dense.build(input_shape)

        def call(self, x):
            return self.dense(x * self.scale)

    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(20, 4, name="embed")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = Scale(name="scale")(x)
    model = keras.Model(inputs, x)
    costs = profile(model)
    uncosted = {layer.name: layer.params for layer in costs.uncosted}
    assert uncosted == {"embed": 20 * 4, "norm": 2 * 4, "scale": 4}
    assert all(layer.reason for layer in costs.uncosted)
    (row,) = costs.rows
    assert row.name == "scale/inner_dense" and row.mult_adds == 4 * 3 * 6
    assert costs.params + costs.uncosted_params == model.count_params()
    assert "embed" in str(costs) and "uncosted" in str(costs)


def test_weights_beside_the_kernel_are_listed():
    dense = keras.layers.Dense(6, name="d")
    model = keras.Sequential([keras.Input((10,)), dense])
    dense.enable_lora(2)  # two extra factors: 10 x 2 and 2 x 6
    costs = profile(model)
    (row,) = costs.rows
    assert row.mult_adds == 10 * 6 and row.params == 10 * 6 + 6
    assert [(layer.name, layer.params) for layer in costs.uncosted] == [("d", 10 * 2 + 2 * 6)]
    assert costs.params + costs.uncosted_params == model.count_params()


def test_bad_models_are_rejected():
    with pytest.raises(TypeError, match="argument `model`"):
        profile("mobilenet")
    with pytest.raises(ValueError, match="argument `model`.*not built"):
        profile(keras.Sequential([keras.layers.Dense(3)]))
    with pytest.raises(ValueError, match="spatial size is unknown"):
        profile(MobileNetV1(0.25, input_shape=(None, None, 3)))


# ------------------------------------------------------------------ rendering


def test_profile_renders_and_converts_to_plain_types():
    model = MobileNetV1(0.5, input_shape=(64, 64, 3), num_classes=10)
    costs = profile(model)
    data = costs.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["totals"]["mult_adds"] == costs.mult_adds
    assert data["totals"]["params"] + data["totals"]["bn_params"] == model.count_params()
    assert len(data["rows"]) == len(costs.rows) == 28
    assert data["rows"][0] == {
        "name": "conv1", "layer_type": "Conv2D", "kind": "standard conv",
        "output_shape": [32, 32, 16], "mult_adds": 3 * 3 * 3 * 16 * 32 * 32,
        "params": 3 * 3 * 3 * 16, "biases": 0,
    }
    assert sum(s["mult_adds"] for s in data["shares"].values()) == pytest.approx(1.0)
    assert sum(s["params"] for s in data["shares_without_biases"].values()) == pytest.approx(1.0)

    text = str(costs)
    assert f"{costs.mult_adds:,}" in text and f"{costs.params:,}" in text
    for row in costs.rows:
        assert row.name in text
    markdown = costs.to_markdown().splitlines()
    table = [line for line in markdown if line.startswith("|")]
    # Header, rule, 28 rows and the total; then the 4-kind share table with its header and rule.
    assert len(table) == 2 + 28 + 1 + 2 + 4


def test_public_name_stays_the_function():
    import mobilenet
    import mobilenet.profiler  # noqa: F401  (importing the module must not shadow it)

    assert callable(mobilenet.profile) and mobilenet.profile is mobilenet.profiler.profile
    assert mobilenet.ModelProfile is mobilenet.profiler.ModelProfile
    assert mobilenet.LayerCost is mobilenet.profiler.LayerCost
    assert {"profile", "ModelProfile", "LayerCost", "reproduce_paper_tables"} <= set(mobilenet.__all__)
