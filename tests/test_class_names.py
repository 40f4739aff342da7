"""Class names travel with the model: the ClassNames layer, .keras, .tflite and .onnx metadata."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from mobilenet import MobileNetV1
from mobilenet.class_names import get_class_names, with_class_names
from mobilenet.layers import ClassNames
from tests.inference_models import tiny_pixel_cnn

NAMES = ("daisy", "rose", "tulip")


def _named_model():
    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=3, include_preprocessing=True)
    return with_class_names(model, NAMES)


def _named_small_model():
    """A pixel model with the block, named: for the files, which it converts to in seconds."""
    return with_class_names(tiny_pixel_cnn(num_classes=3), NAMES)


def test_the_layer_passes_outputs_through_and_keeps_its_names_in_its_config():
    layer = ClassNames(["a", "b"])
    values = np.array([[0.25, 0.75]], np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(values)), values)
    assert ClassNames.from_config(layer.get_config()).names == ("a", "b")
    with pytest.raises(ValueError, match="`names`"):
        ClassNames("ab")
    with pytest.raises(ValueError, match="one name per output"):
        ClassNames(["a", "b", "c"])(values)


def test_names_change_nothing_the_model_computes():
    model = _named_model()
    plain = keras.Model(model.inputs, model.layers[-2].output)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(pixels, verbose=0), plain.predict(pixels, verbose=0))
    assert get_class_names(model) == NAMES
    assert get_class_names(with_class_names(model, ["x", "y", "z"])) == ("x", "y", "z")
    assert len([layer for layer in with_class_names(model, NAMES).layers
                if isinstance(layer, ClassNames)]) == 1


def test_a_saved_model_carries_its_names_into_a_new_process(tmp_path):
    _named_model().save(tmp_path / "flowers.keras")
    assert get_class_names(tmp_path / "flowers.keras") == NAMES  # read from the file, no model built
    code = ("import mobilenet, keras\n"
            "model = keras.saving.load_model('flowers.keras')\n"
            "from mobilenet.class_names import get_class_names\n"
            "print(list(get_class_names(model)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"')) == list(NAMES)


def test_a_model_without_names_has_none(tmp_path):
    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=3)
    model.save(tmp_path / "plain.keras")
    assert get_class_names(model) is None and get_class_names(tmp_path / "plain.keras") is None


@pytest.mark.tf_only
def test_tflite_files_carry_the_names_and_run_as_before(tmp_path):
    from mobilenet.export import run_tflite, to_tflite

    model = _named_small_model()
    plain = keras.Model(model.inputs, model.layers[-2].output)
    to_tflite(model, tmp_path / "named.tflite")
    to_tflite(plain, tmp_path / "plain.tflite")
    assert get_class_names(tmp_path / "named.tflite") == NAMES
    assert get_class_names(tmp_path / "plain.tflite") is None
    pixels = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(run_tflite(tmp_path / "named.tflite", pixels),
                               run_tflite(tmp_path / "plain.tflite", pixels), atol=1e-6)


@pytest.mark.tf_only
def test_onnx_files_carry_the_names(tmp_path):
    pytest.importorskip("onnxruntime")
    from mobilenet.export import to_onnx

    to_onnx(_named_small_model(), tmp_path / "named.onnx")
    assert get_class_names(tmp_path / "named.onnx") == NAMES
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "named.onnx"))
    assert json.loads(session.get_modelmeta().custom_metadata_map["mobilenet.class_names"]) == list(NAMES)


@pytest.mark.tf_only
@pytest.mark.parametrize("suffix", [".keras", ".tflite"])
def test_predict_names_the_classes_from_the_file(tmp_path, suffix):
    from mobilenet.export import to_tflite
    from mobilenet.predict import Classifier

    model = _named_small_model()
    path = tmp_path / f"flowers{suffix}"
    model.save(path) if suffix == ".keras" else to_tflite(model, path)
    keras.utils.save_img(tmp_path / "x.png", np.zeros((40, 40, 3), np.uint8))
    (result,) = Classifier(path).classify([tmp_path / "x.png"], top=3)
    assert result.error is None and sorted(score.name for score in result.top) == sorted(NAMES)
