"""Tests of mobilenet.memory and mobilenet.export.micro_memory.

Flash by dtype (and the flash of a model not yet trained), TFLite Micro's
greedy arena plan, our offline plan, the peak layer.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mobilenet import MobileNetV1, profile
from mobilenet.export.micro_memory import live_peak, plan_offsets
from mobilenet.memory import greedy_plan, memory_profile

# Each Keras-to-int8 conversion takes 20-30 s on 2 cores: those tests are slow,
# run by .ci/run's own step; the planners' tests are plain Python, and fast.
slow = pytest.mark.slow


def _overlaps(sizes, lifetimes, offsets) -> list[tuple[int, int]]:
    """Pairs of buffers alive at one op whose byte ranges overlap: a broken plan."""
    found = []
    for a in range(len(sizes)):
        for b in range(a + 1, len(sizes)):
            together = not (lifetimes[a][1] < lifetimes[b][0] or lifetimes[b][1] < lifetimes[a][0])
            apart = offsets[a] + sizes[a] <= offsets[b] or offsets[b] + sizes[b] <= offsets[a]
            if together and not apart:
                found.append((a, b))
    return found


def test_the_offline_plan_packs_a_chain_into_its_live_peak():
    # MobileNet's first ops at 96x96, alpha 0.25 (bytes, ops): input, stem conv
    # out, dw out, pw out, the next dw out. TFLM's greedy planner takes 73,728
    # (test below); at most two are alive at once, 18,432 + 36,864 = 55,296 at
    # op 2, and alternating ends of the arena reaches exactly that.
    sizes = [27_648, 18_432, 18_432, 36_864, 9_216]
    lifetimes = [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4)]
    offsets = plan_offsets(sizes, lifetimes)
    assert live_peak(sizes, lifetimes) == 55_296
    assert max(o + s for o, s in zip(offsets, sizes)) == 55_296
    assert _overlaps(sizes, lifetimes, offsets) == []
    assert greedy_plan(sizes, lifetimes) == 73_728


def test_the_overlap_check_sees_a_broken_plan():
    assert _overlaps([16, 16], [(0, 1), (1, 2)], [0, 8]) == [(0, 1)]
    assert _overlaps([16, 16], [(0, 0), (1, 2)], [0, 0]) == []


def test_offline_plans_are_valid_and_never_worse_than_greedy_on_random_graphs():
    rng = np.random.default_rng(0)
    for _ in range(200):
        count = int(rng.integers(1, 12))
        sizes = [16 * int(rng.integers(1, 64)) for _ in range(count)]
        firsts = rng.integers(0, 10, count)
        lifetimes = [(int(f), int(f + rng.integers(0, 4))) for f in firsts]
        offsets = plan_offsets(sizes, lifetimes)
        end = max(o + s for o, s in zip(offsets, sizes))
        assert _overlaps(sizes, lifetimes, offsets) == [], (sizes, lifetimes, offsets)
        assert live_peak(sizes, lifetimes) <= end <= greedy_plan(sizes, lifetimes)
        assert all(offset % 16 == 0 for offset in offsets)


def test_greedy_plan_places_largest_first_in_the_lowest_free_gap():
    # Worked by hand: C (40, ops 1-2) at 0; A (30, op 0) at 0 (no overlap in time);
    # B (20, ops 0-1) overlaps A [0, 30) and C [0, 40): at 40. End: 60.
    assert greedy_plan([30, 20, 40], [(0, 0), (0, 1), (1, 2)]) == 60
    # Buffers alive at different times share offset 0.
    assert greedy_plan([16, 16, 16], [(0, 0), (1, 1), (2, 2)]) == 16
    # All alive together: they stack.
    assert greedy_plan([16, 32, 48], [(0, 2), (0, 2), (0, 2)]) == 96


def test_greedy_plan_breaks_ties_as_tflite_micro_does():
    # The TFLM layout of MobileNet's first ops at 96x96, alpha 0.25 (bytes, ops):
    # input 27,648 (0-0), conv1 out 18,432 (0-1), dw out 18,432 (1-2), pw out 36,864 (2-3).
    # Equal sizes go last-added first, so dw out is placed before conv1 out and
    # conv1 out does not fit the 9,216-byte gap left: 73,728, what TFLM lays out.
    sizes = [27_648, 18_432, 18_432, 36_864]
    lifetimes = [(0, 0), (0, 1), (1, 2), (2, 3)]
    assert greedy_plan(sizes, lifetimes) == 73_728


@pytest.fixture(scope="module")
def small():
    model = MobileNetV1(0.25, input_shape=(64, 64, 3), num_classes=3, activation="relu")
    fc = model.get_layer("fc")
    fc.set_weights([fc.get_weights()[0], np.array([0.5, -0.5, 1.0], "float32")])  # a zero bias is dropped
    return model, memory_profile(model)


@slow
def test_weight_bytes_by_dtype_are_the_models_kernels_and_one_bias_per_channel(small):
    model, memory = small
    costs = profile(model)
    # int8: one byte per kernel weight; int32: the folded bias of every conv and
    # the classifier, and the two axes the global average pool (MEAN) reduces.
    assert memory.weight_bytes["int8"] == costs.weights
    channels = sum(row.output_shape[-1] for row in costs.rows)
    assert memory.weight_bytes["int32"] == 4 * channels + 4 * 2
    assert memory.file_bytes > memory.weight_bytes["int8"] + memory.weight_bytes["int32"]


@slow
def test_peak_is_the_largest_input_plus_output_of_a_chain(small):
    model, memory = small
    # In a chain every op's input dies after it; the most bytes alive are some
    # op's input and output. From Keras' own shapes: the stem conv (64x64x3 in,
    # 32x32x8 out), block 1's dw (32x32x8 -> 32x32x8) or pw (32x32x8 -> 32x32x16).
    candidates = {
        "conv1": 64 * 64 * 3 + 32 * 32 * 8,
        "block_1/block_1_pw": 32 * 32 * 8 + 32 * 32 * 16,
    }
    assert memory.peak_live_bytes == max(candidates.values()) == 32 * 32 * 24
    assert memory.peak_op.layer == "block_1/block_1_pw" and memory.peak_op.op == "CONV_2D"
    assert memory.activation_bytes >= memory.peak_live_bytes
    assert memory.arena_bytes == memory.activation_bytes + memory.interpreter_bytes
    assert memory.input_dtype == "int8"
    assert len(memory.ops) == 1 + 2 * 13 + 3  # stem, 13 blocks, mean, fc, softmax
    assert "block_1/block_1_pw" in str(memory)


@slow
def test_a_tflite_file_and_its_bytes_give_the_same_profile(small, tmp_path):
    from mobilenet.export.micro import to_micro

    model, memory = small
    images = np.random.default_rng(0).uniform(-1, 1, (4, 64, 64, 3)).astype("float32")
    path = to_micro(model, tmp_path / "m.tflite", images, check=False)
    from_file = memory_profile(path)
    assert from_file.arena_bytes == memory.arena_bytes
    assert memory_profile(path.read_bytes()).weight_bytes == from_file.weight_bytes
    assert from_file.file_bytes == path.stat().st_size


@slow
def test_profile_memory_option(small):
    model, memory = small
    costs = profile(model, memory=True)
    assert costs.memory.arena_bytes == memory.arena_bytes
    assert costs.to_dict()["memory"]["arena_bytes"] == memory.arena_bytes
    assert "tensor arena" in str(costs)
    with pytest.raises(ValueError, match="`memory`"):
        profile(model, memory="yes")


@slow
def test_bad_sources_name_the_argument(tmp_path):
    bogus = tmp_path / "x.tflite"
    bogus.write_bytes(b"PK\x03\x04 not a flatbuffer")
    with pytest.raises(ValueError, match=r"`source`.*TFL3"):
        memory_profile(bogus)
    with pytest.raises(ValueError, match=r"`source`.*no such file"):
        memory_profile(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="`source`"):
        memory_profile(42)
    open_size = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="fixed input size"):
        memory_profile(open_size)


@slow
def test_cli_sweep_prints_one_row_per_combination(capsys):
    from mobilenet.cli import main

    assert main(["profile", "--alpha", "0.25", "0.5", "--input-size", "32", "64"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line.split() for line in lines[2:]]
    assert [(row[0], row[1]) for row in rows] == [("0.25", "32"), ("0.25", "64"), ("0.5", "32"), ("0.5", "64")]
    expected = profile(MobileNetV1(0.5, input_shape=(64, 64, 3))).mult_adds
    assert rows[3][2] == f"{expected:,}"


@slow
def test_cli_memory_sweep_and_file(capsys, tmp_path):
    from mobilenet.cli import main

    assert main(["profile", "--memory", "--alpha", "0.25", "0.5", "--input-size", "32",
                 "--num-classes", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "arena bytes" in lines[0] and "peak at" in lines[0]
    small = memory_profile(MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=2))
    assert f"{small.arena_bytes:,}" in lines[2] and "CONV_2D block_1/block_1_pw" in lines[2]


@slow
def test_the_flash_of_an_untrained_model_is_its_trained_files_size(tmp_path):
    # A fresh model's zero biases and unit BatchNorm statistics convert to a
    # file some 6% smaller (the converter shares and drops constants); the
    # estimate must be the size of the file the trained network exports to.
    from mobilenet.export.micro import to_micro

    keras.utils.set_random_seed(0)
    model = MobileNetV1(0.25, input_shape=(64, 64, 3), num_classes=2, activation="relu")
    before = [weight.numpy().copy() for weight in model.weights]
    estimate = memory_profile(model).file_bytes
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))  # restored
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 64, 64, 3)).astype("float32")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, rng.integers(0, 2, 64), batch_size=32, epochs=1, verbose=0)
    exported = to_micro(model, tmp_path / "trained.tflite", x[:16], check=False).stat().st_size
    assert abs(estimate - exported) <= 0.005 * exported, (estimate, exported)
