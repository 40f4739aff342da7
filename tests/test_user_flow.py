"""The user's flow, one command per new process, through the installed console script.

A user trains with one command, evaluates with the next, exports with a third
and loads the files in their own script: each a fresh Python process that has
imported nothing of ours. These tests run exactly that, so a model that only
loads because the test process had already imported our layers cannot pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.console import console_script as _console_script

BIN = Path(sys.executable).parent
# One pytest-xdist worker runs this whole module, so the trained run below is made once.
pytestmark = pytest.mark.xdist_group("user_flow")




def _run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-c", textwrap.dedent(code)], cwd)


def _train_args(data_dir: Path) -> list[str]:
    """The tiny `mobilenet train` command line of this module's runs."""
    return ["train", "--data-dir", str(data_dir), "--epochs", "2", "--limit", "80", "--alpha",
            "0.25", "--batch-size", "16", "--validation-fraction", "0.25", "--seed", "3",
            "--deterministic"]


@pytest.fixture(scope="module")
def trained(cifar10_subset_dir, tmp_path_factory):
    """`mobilenet train` run once, tiny, as a user runs it (deterministic, for the repeat test)."""
    work = tmp_path_factory.mktemp("flow")
    completed = _run([_console_script(), *_train_args(cifar10_subset_dir), "--output-dir", "run"], work)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return work, completed


def test_train_output_is_quiet_and_line_per_epoch(trained):
    work, completed = trained
    # TensorFlow's C++ start-up log is hidden unless --verbose.
    assert "I0000" not in completed.stderr and "oneDNN" not in completed.stderr
    # Redirected output: one line per epoch, no carriage-return progress bars.
    assert "\r" not in completed.stdout
    assert "test accuracy:" in completed.stdout and "on 80 images" in completed.stdout
    history = json.loads((work / "run" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]


def test_evaluate_in_a_new_process_matches_what_train_reported(trained, cifar10_subset_dir):
    work, _ = trained
    completed = _run([_console_script(), "evaluate", "run/final.keras", "--data-dir",
                      str(cifar10_subset_dir), "--limit", "80", "--json", "eval.json"], work)
    assert completed.returncode == 0, completed.stderr[-3000:]
    trained_report = json.loads((work / "run" / "test.json").read_text())
    assert json.loads((work / "eval.json").read_text())["accuracy"] == trained_report["accuracy"]


def test_export_int8_in_a_new_process_takes_pixels(trained, cifar10_subset_dir):
    work, _ = trained
    completed = _run([_console_script(), "export", "run/final.keras", "model_int8.tflite", "--int8",
                      "--calibration-dir", str(cifar10_subset_dir), "--verify"], work)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "input: uint8, scale 1, zero point 0" in completed.stdout
    assert "verified on 1000 images" in completed.stdout
    # A new interpreter reads the file as a phone app would.
    checked = _python("""
        import warnings
        import numpy as np
        import tensorflow as tf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_path="model_int8.tflite")
        (detail,) = interpreter.get_input_details()
        print(np.dtype(detail["dtype"]).name, detail["quantization"])
    """, work)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert checked.stdout.strip().splitlines()[-1] == "uint8 (1.0, 0)"


def test_files_load_after_only_import_mobilenet_and_take_raw_pixels(trained, cifar10_subset_dir):
    work, _ = trained
    completed = _python(f"""
        import json
        import mobilenet
        import keras
        import numpy as np
        from mobilenet.cifar10 import load_cifar10

        best = keras.saving.load_model("run/best.keras")               # compiled, with its schedule
        final = keras.saving.load_model("run/final.keras", compile=False)
        _, (x_test, y_test) = load_cifar10({str(cifar10_subset_dir)!r})
        x_test, y_test = x_test[:80], y_test[:80]
        assert x_test.dtype == np.uint8
        accuracy = float(np.mean(np.argmax(final.predict(x_test, verbose=0), -1) == y_test))
        parts = [p for layer in final.layers
                 for p in (layer, getattr(layer, "depthwise_bn", None), getattr(layer, "pointwise_bn", None))]
        norms = [p for p in parts if isinstance(p, keras.layers.BatchNormalization)]
        print(json.dumps({{
            "accuracy": accuracy,
            "optimizer": type(best.optimizer).__name__,
            "momenta": sorted({{bn.momentum for bn in norms}}),
            "norms": len(norms),
        }}))
    """, work)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["accuracy"] == json.loads((work / "run" / "test.json").read_text())["accuracy"]
    assert result["optimizer"] == "SGD"
    # The stem and 8 blocks of the default (shallow) network, each block with 2 BatchNorms.
    assert result["norms"] == 1 + 2 * 8 and result["momenta"] == [0.9]


@pytest.mark.parametrize("order", [
    "import mobilenet\nimport keras\nload = keras.saving.load_model",
    "import keras\nimport mobilenet\nload = keras.saving.load_model",
    "import mobilenet\nimport tensorflow as tf\nload = tf.keras.models.load_model",
])
def test_a_user_model_with_the_block_loads_in_a_new_process(user_model, order):
    loaded = _python(order + "\nmodel = load('user.keras')\nprint(type(model.layers[0]).__name__)\n", user_model)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip().splitlines()[-1] == "DepthwiseSeparableConv2D"


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    """A user's own Sequential model with the block, saved by one process."""
    folder = tmp_path_factory.mktemp("user")
    built = _python("""
        import keras
        from mobilenet import DepthwiseSeparableConv2D
        model = keras.Sequential([keras.Input((16, 16, 3)), DepthwiseSeparableConv2D(8, strides=2),
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
        model.save("user.keras")
    """, folder)
    assert built.returncode == 0, built.stderr[-3000:]
    return folder


_REGISTERED = """
import keras
print(sorted(name for name in keras.saving.get_custom_objects() if name.startswith("mobilenet>")))
"""


@pytest.mark.parametrize("first_import", [
    "from mobilenet import DepthwiseSeparableConv2D",
    "from mobilenet import MobileNetV1",
    *(f"import {module}" for module in ("mobilenet.layers", "mobilenet.quantization", "mobilenet.schedules")),
])
def test_any_first_import_registers_every_class(first_import, registered_by_keras_first, tmp_path):
    """Keras may first load from inside any module; each way registers the same classes."""
    completed = _python(first_import + "\n" + _REGISTERED, tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == registered_by_keras_first


@pytest.fixture(scope="module")
def registered_by_keras_first(tmp_path_factory):
    """The classes registered when Keras is loaded before ``import mobilenet`` (no hook at all)."""
    completed = _python("import keras\nimport mobilenet\n" + _REGISTERED, tmp_path_factory.mktemp("registry"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    registered = completed.stdout.strip().splitlines()[-1]
    for name in ("DepthwiseSeparableConv2D", "PointwiseConv2D", "ActivationQuantizer", "WarmupCosineDecay"):
        assert f"'mobilenet>{name}'" in registered
    return registered


def test_import_mobilenet_alone_loads_no_tensorflow(tmp_path):
    completed = _python("import sys, mobilenet; print('tensorflow' in sys.modules, 'keras' in sys.modules)", tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False False"


def test_deterministic_runs_repeat_exactly_in_new_processes(trained, cifar10_subset_dir):
    """`--deterministic`: a second run, in its own process, gives the same history and weights."""
    work, _ = trained
    completed = _run([_console_script(), *_train_args(cifar10_subset_dir), "--output-dir", "again"],
                     work)
    assert completed.returncode == 0, completed.stderr[-3000:]
    first, second = (json.loads((work / name / "history.json").read_text()) for name in ("run", "again"))
    assert len(first) == 2 and first == second  # every loss and metric, to the last bit

    import numpy as np

    import mobilenet

    weights = [mobilenet.load_model(work / name / "final.keras").get_weights() for name in ("run", "again")]
    assert len(weights[0]) == len(weights[1]) > 0
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
