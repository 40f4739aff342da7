"""Where features meet, they give the same answer: one way from a file to a model's input, the facts every file carries.

Each test here failed on the library before `mobilenet.preprocessing` and
`mobilenet.facts`: ``predict`` applied a second softmax to the models
``train`` writes (they end in a ``ClassNames`` layer), ``evaluate`` cropped
where ``predict`` resized, a quantization-aware model could not be
evaluated on a folder, calibration images were not brought to the model's
size, and a float file could not be verified on a folder. The same crossings
run through the console script, in new processes, in tests/test_path_matrix.py.
"""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
import tensorflow as tf

from mobilenet import DepthwiseSeparableConv2D
from mobilenet.class_names import with_class_names
from mobilenet.export import to_onnx, to_tflite
from mobilenet.facts import read_facts, with_facts
from mobilenet.predict import Classifier, classify
from mobilenet.preprocessing import eval_transform, load_image, load_images
from mobilenet.training import evaluate
from tests.image_folders import CLASSES, picture, save
from tests.inference_models import has_onnx

pytestmark = pytest.mark.tf_only

SIZE = 96  # above 64 px: evaluation crops (0.875 of each side), as for photos


def _sensitive_model(size: int = SIZE, classes: int = 3) -> keras.Model:
    """A pixel model whose answers move with every pixel, near the borders too.

    Strong random weights make its probabilities far from uniform, so feeding
    another crop or a second softmax shows in the first decimals.
    """
    keras.utils.set_random_seed(1)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu",
                            kernel_initializer=keras.initializers.RandomNormal(stddev=1.0))(x)
    x = DepthwiseSeparableConv2D(16, strides=2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax",
                                 kernel_initializer=keras.initializers.RandomNormal(stddev=0.3))(x)
    return keras.Model(inputs, outputs, name="sensitive")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Class folders of photo-sized JPEGs and PNGs (120-300 px sides), one with a space in its name."""
    root = tmp_path_factory.mktemp("photos") / "my photos"
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        for index in range(4):
            rows, cols = (int(v) for v in rng.integers(120, 300, 2))
            suffix = "jpg" if index % 2 == 0 else "png"
            save(picture(label, rng, rows, cols), root / name / f"photo {index}.{suffix}")
    return root


def test_eval_transform_is_a_central_crop_then_a_resize_rounded():
    image = np.random.default_rng(0).integers(0, 256, (200, 160, 3)).astype(np.uint8)
    # Hand-computed crop: the margin is int((200 - 175) / 2) = 12 rows and int((160 - 140) / 2)
    # = 10 columns on each side (TensorFlow's central_crop), so rows 12-187 and columns 10-149.
    crop = image[12:188, 10:150]
    expected = np.clip(np.round(tf.image.resize(crop.astype(np.float32), (96, 96),
                                                antialias=True).numpy()), 0, 255)
    got = eval_transform(image, size=96, crop_fraction=0.875).numpy()
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32 and np.all(got == np.round(got))
    # No crop and the model's size: the image itself.
    np.testing.assert_array_equal(eval_transform(image, size=(200, 160)).numpy(), image)
    with pytest.raises(ValueError, match="`crop_fraction`"):
        eval_transform(image, size=96, crop_fraction=0.0)
    with pytest.raises(ValueError, match="`interpolation`"):
        eval_transform(image, size=96, interpolation="cubic")


def test_a_file_its_bytes_and_its_pixels_give_the_same_input(photos):
    path = next((photos / "red").glob("*.png"))
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"))
    options = dict(size=SIZE, crop_fraction=0.875, interpolation="bicubic")
    from_file = load_image(path, **options)
    np.testing.assert_array_equal(from_file, load_image(path.read_bytes(), **options))
    np.testing.assert_array_equal(from_file, load_image(pixels, **options))
    np.testing.assert_array_equal(load_images(pixels[None], **options)[0], from_file)


def test_predict_gives_a_trained_models_own_probabilities(tmp_path):
    """A model that ends in ClassNames, as train writes them: predict applied a second softmax."""
    model = with_class_names(_sensitive_model(), list(CLASSES))
    model.save(tmp_path / "named.keras")
    pixels = np.random.default_rng(1).integers(0, 256, (4, SIZE, SIZE, 3)).astype(np.float32)
    own = model.predict(pixels, verbose=0)
    assert own.max() > 0.6  # far from uniform, so a second softmax would show
    classifier = Classifier(tmp_path / "named.keras")
    assert classifier.outputs == "probabilities"
    np.testing.assert_allclose(classifier.predict(pixels), own, atol=1e-5)


@pytest.mark.skipif(not has_onnx(), reason="needs the onnx extra")
def test_one_image_gets_the_same_probabilities_from_keras_tflite_and_onnx(photos, tmp_path):
    model = with_facts(_sensitive_model(), class_names=list(CLASSES))
    model.save(tmp_path / "m.keras")
    to_tflite(model, tmp_path / "m.tflite")
    to_onnx(model, tmp_path / "m.onnx")
    image = next((photos / "green").glob("*.jpg"))
    answers = {}
    for name in ("m.keras", "m.tflite", "m.onnx"):
        (result,) = classify(tmp_path / name, image, top=3)
        answers[name] = {score.name: score.probability for score in result.top}
    reference = answers["m.keras"]
    assert max(reference.values()) > 0.5
    for name, answer in answers.items():
        assert answer.keys() == reference.keys(), name
        for label, probability in answer.items():
            assert abs(probability - reference[label]) < 1e-3, (name, label, probability)


def test_evaluate_answers_what_predict_answers_on_the_same_files(photos):
    """evaluate cropped 87.5% where predict resized the whole image: other pixels, other answers."""
    model = with_facts(_sensitive_model(), class_names=list(CLASSES))
    report = evaluate(model, photos, max_errors=0)
    predictions = {str(p.path): p.top[0] for p in classify(model, photos, top=1)}
    assert sorted(predictions) == sorted(report.paths)
    for path, label, confidence in zip(report.paths, report.predicted, report.confidence):
        assert predictions[path].index == label, path
        assert abs(predictions[path].probability - confidence) < 1e-5, path
    from_predict = np.mean([predictions[path].name == CLASSES[true]
                            for path, true in zip(report.paths, _labels(report.paths))])
    assert report.accuracy == pytest.approx(from_predict)
    as_json = report.to_dict()["predictions"]
    assert [row["path"] for row in as_json] == list(report.paths)


def _labels(paths):
    return [CLASSES.index(next(name for name in CLASSES if f"/{name}/" in path)) for path in paths]


def test_a_quantization_aware_model_is_evaluated_on_a_folder(photos):
    """Its first layer is the input quantizer, not a Rescaling: it was refused as not taking pixels."""
    from mobilenet.quantization import quantize_aware

    model = quantize_aware(with_facts(_sensitive_model(), class_names=list(CLASSES)))
    facts = read_facts(model)
    assert facts.takes_pixels and facts.quantization_aware and facts.outputs == "probabilities"
    report = evaluate(model, photos, max_errors=0)
    assert report.num_examples == 12
    (first,) = classify(model, report.paths[0], top=1)
    assert first.top[0].index == report.predicted[0]


def test_an_older_file_declares_nothing_and_its_facts_come_from_its_graph(tmp_path):
    model = with_class_names(_sensitive_model(32), list(CLASSES))  # as train wrote them before
    model.save(tmp_path / "old.keras")
    facts = read_facts(tmp_path / "old.keras")
    assert (facts.takes_pixels, facts.crop_fraction, facts.interpolation, facts.outputs) == \
        (True, 1.0, "bilinear", "probabilities")
    assert facts.class_names == CLASSES and facts.input_size == (32, 32)
    plain = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(2, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)])
    facts = read_facts(plain)
    assert not facts.takes_pixels and facts.outputs == "logits" and facts.crop_fraction == 1.0


@pytest.mark.skipif(not has_onnx(), reason="needs the onnx extra")
def test_the_facts_travel_in_every_file(tmp_path):
    model = with_facts(_sensitive_model(), class_names=list(CLASSES), crop_fraction=0.9,
                       interpolation="bicubic")
    calibration = np.random.default_rng(0).integers(0, 256, (16, SIZE, SIZE, 3)).astype(np.uint8)
    model.save(tmp_path / "m.keras")
    files = {
        "m.keras": tmp_path / "m.keras",
        "float.tflite": to_tflite(model, tmp_path / "float.tflite"),
        "int8.tflite": to_tflite(model, tmp_path / "int8.tflite", "int8",
                                 representative_data=calibration),
        "float.onnx": to_onnx(model, tmp_path / "float.onnx"),
        "int8.onnx": to_onnx(model, tmp_path / "int8.onnx", "int8", representative_data=calibration),
    }
    for name, path in files.items():
        facts = read_facts(path)
        assert facts.class_names == CLASSES, name
        assert (facts.takes_pixels, facts.crop_fraction, facts.interpolation, facts.outputs,
                facts.quantization_aware) == (True, 0.9, "bicubic", "probabilities", False), name
        assert facts.input_size == (SIZE, SIZE) and facts.num_classes == 3, name
    int8 = read_facts(files["int8.tflite"])
    assert (int8.input_type, int8.input_quantization) == ("uint8", (1.0, 0))
    assert read_facts(files["float.onnx"]).format == "onnx"


def test_export_brings_calibration_images_to_the_models_size(cifar10_subset_dir, tmp_path, capsys):
    """CIFAR-10's 32x32 images for a 96x96 model were refused, the error naming a flag not given."""
    from mobilenet.cli import main

    # Ten CIFAR classes would not fit a 3-class model for evaluate; export needs no labels.
    with_facts(_sensitive_model(), class_names=list(CLASSES)).save(tmp_path / "m96.keras")
    assert main(["export", str(tmp_path / "m96.keras"), str(tmp_path / "m.tflite"), "--int8",
                 "--calibration-dir", str(cifar10_subset_dir), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "verified on 1000 images" in out and "input: uint8, scale 1, zero point 0" in out


def test_a_float_file_is_verified_on_a_folder_and_verify_data_alone_verifies(photos, tmp_path, capsys):
    from mobilenet.cli import main

    with_facts(_sensitive_model(), class_names=list(CLASSES)).save(tmp_path / "m.keras")
    assert main(["export", str(tmp_path / "m.keras"), str(tmp_path / "m.tflite"), "--verify",
                 "--calibration-dir", str(photos)]) == 0
    out = capsys.readouterr().out
    assert "float32" in out and "verified on" in out and "top-1 agreement 100.00%" in out
    # A float file with the folder but no --verify: the folder would do nothing, so it is refused.
    assert main(["export", str(tmp_path / "m.keras"), str(tmp_path / "n.tflite"),
                 "--calibration-dir", str(photos)]) == 2
    assert "`--calibration-dir`: only int8 export is calibrated" in capsys.readouterr().err
    images = np.stack([load_image(path, size=SIZE, crop_fraction=0.875)
                       for path in sorted(photos.rglob("*.jpg"))])
    np.save(tmp_path / "held.npy", images)
    assert main(["export", str(tmp_path / "m.keras"), str(tmp_path / "o.tflite"),
                 "--verify-data", str(tmp_path / "held.npy")]) == 0
    assert f"verified on {len(images)} images" in capsys.readouterr().out


def test_decode_image_reads_bytes_upright():
    from PIL import Image

    from mobilenet.images import decode_image

    upright = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    stream = io.BytesIO()
    Image.fromarray(np.rot90(upright)).save(stream, format="PNG", exif=exif)
    np.testing.assert_array_equal(decode_image(stream.getvalue()), upright)
    with pytest.raises(ValueError, match="cannot read 'the image bytes' as an image"):
        decode_image(b"not an image")
