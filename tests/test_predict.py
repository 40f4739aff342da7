"""Tests for mobilenet.predict: real CIFAR-10 images, as PNG and JPEG files, through three runtimes.

Truth is the Keras model's own prediction on the same pixels; image files are
written by TensorFlow's encoders from the shared subset's test images.
"""

from __future__ import annotations


import keras
import numpy as np
import pytest
import tensorflow as tf

from mobilenet.cifar10 import CLASS_NAMES, load_cifar10
from mobilenet.export import run_tflite, to_tflite
from mobilenet.predict import Classifier, classify, image_files
from tests.inference_models import has_onnx, tiny_pixel_cnn

#: Test images written as PNG files; one more goes in as a larger JPEG.
NUM_PNG = 8


def small_model(num_classes: int, activation: str | None = "softmax", pixels: bool = True):
    """A two-layer classifier of 8x8 images, for what does not need a MobileNet."""
    layers = [keras.layers.Rescaling(1 / 255)] if pixels else []
    return keras.Sequential([
        keras.Input((8, 8, 3)), *layers, keras.layers.Flatten(),
        keras.layers.Dense(num_classes, activation=activation),
    ])


@pytest.fixture(scope="module")
def images(cifar10_subset_dir, tmp_path_factory):
    """A folder of real test images: 8 PNG files at 32x32 and one 48x40 JPEG; and their pixels."""
    (_, _), (x_test, _) = load_cifar10(cifar10_subset_dir)
    folder = tmp_path_factory.mktemp("images")
    for index in range(NUM_PNG):
        tf.io.write_file(str(folder / f"{index}.png"), tf.io.encode_png(x_test[index]))
    larger = tf.cast(tf.image.resize(x_test[NUM_PNG], (48, 40)), tf.uint8)
    tf.io.write_file(str(folder / "larger.jpg"), tf.io.encode_jpeg(larger, quality=95))
    return folder, x_test[: NUM_PNG + 1]


@pytest.fixture(scope="module")
def models(tmp_path_factory, images):
    """A tiny 10-class pixel model, saved as .keras and exported to .tflite (float, int8) and .onnx."""
    keras.utils.set_random_seed(0)
    model = tiny_pixel_cnn()
    folder = tmp_path_factory.mktemp("models")
    model.save(folder / "model.keras")
    to_tflite(model, folder / "model.tflite")
    to_tflite(model, folder / "int8.tflite", "int8", representative_data=images[1])
    if has_onnx():
        from mobilenet.export import to_onnx

        to_onnx(model, folder / "model.onnx")
    return model, folder


def test_image_files_expands_folders_in_order(images, tmp_path):
    folder, _ = images
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.PNG").write_bytes(b"")
    (tmp_path / "b" / "y.webp").write_bytes(b"")
    (tmp_path / ".hidden.png").write_bytes(b"")
    found = image_files([folder, tmp_path])
    assert [path.name for path in found] == [
        *(f"{i}.png" for i in range(NUM_PNG)), "larger.jpg", "x.PNG", "y.webp"
    ]
    assert image_files(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]  # a file is kept
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="`paths`: the folder .* holds no image files"):
        image_files(tmp_path / "empty")


@pytest.mark.parametrize("runtime", ["keras", "tflite", "onnx"])
def test_every_runtime_agrees_with_the_keras_model(models, images, runtime):
    model, folder = models
    if runtime == "onnx" and not has_onnx():
        pytest.skip("the optional `onnx` extra is not installed")
    image_folder, pixels = images
    file = {"keras": "model.keras", "tflite": "model.tflite", "onnx": "model.onnx"}[runtime]
    classifier = Classifier(folder / file)
    assert classifier.input_size == (32, 32) and classifier.num_classes == 10
    assert classifier.class_names == tuple(CLASS_NAMES)

    results = classifier.classify(image_folder, top=3, batch_size=4)  # batches of 4, 4 and 1
    assert [result.path.name for result in results][-1] == "larger.jpg"
    assert all(result.error is None and len(result.top) == 3 for result in results)
    # What the Keras model says on the same pixels: PNG files hold them exactly.
    seen = np.concatenate([pixels[:NUM_PNG], classifier.read_image(image_folder / "larger.jpg")[None]])
    expected = model.predict(seen.astype(np.float32), verbose=0)
    assert [result.top[0].index for result in results] == list(expected.argmax(-1))
    for result, row in zip(results, expected):
        assert result.top[0].name == CLASS_NAMES[result.top[0].index]
        np.testing.assert_allclose([s.probability for s in result.top], np.sort(row)[::-1][:3], atol=1e-4)


def test_a_uint8_tflite_input_takes_the_pixel_bytes(models, images):
    """The int8 file of a pixel model has scale 1, zero point 0: pixels go in unchanged."""
    _, folder = models
    classifier = Classifier(folder / "int8.tflite")
    pixels = images[1][:NUM_PNG].astype(np.float32)
    np.testing.assert_allclose(classifier.predict(pixels), run_tflite(folder / "int8.tflite", pixels),
                               atol=1e-6)


def test_an_unreadable_file_is_named_and_the_others_classified(models, images, tmp_path):
    model, _ = models
    image_folder, _ = images
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    paths = [image_folder / "0.png", tmp_path / "broken.png", tmp_path / "absent.jpg",
             image_folder / "1.png"]
    results = classify(model, paths, top=1, batch_size=2)
    assert [result.path for result in results] == paths
    assert [result.error is None for result in results] == [True, False, False, True]
    assert "cannot read" in results[1].error and "broken.png" in results[1].error
    assert "absent.jpg" in results[2].error and "no such file" in results[2].error
    assert results[1].to_dict() == {"path": str(paths[1]), "top": [], "error": results[1].error}


def test_class_names_for_other_and_imagenet_sized_models(monkeypatch):
    assert Classifier(small_model(7)).class_names == tuple(f"class {i}" for i in range(7))
    assert Classifier(small_model(3), class_names=["a", "b", "c"]).class_names == ("a", "b", "c")
    with pytest.raises(ValueError, match="`class_names`: expected one name per class, 3 names"):
        Classifier(small_model(3), class_names=["a"])

    # 1000 classes: ImageNet's names through Keras' decode_predictions, stubbed (no download).
    from keras.applications import imagenet_utils

    def decode_predictions(scores, top=5):
        order = np.argsort(-scores[0])[:top]
        return [[(f"n{i:08d}", f"imagenet_{i}", float(scores[0, i])) for i in order]]

    monkeypatch.setattr(imagenet_utils, "decode_predictions", decode_predictions)
    classifier = Classifier(small_model(1000))
    assert classifier.class_names[:2] == ("imagenet_0", "imagenet_1")
    assert classifier.class_names[999] == "imagenet_999"

    def offline(scores, top=5):
        raise Exception("URL fetch failure")  # what keras.utils.get_file raises offline

    monkeypatch.setattr(imagenet_utils, "decode_predictions", offline)
    with pytest.warns(UserWarning, match="ImageNet class names are unavailable"):
        assert Classifier(small_model(1000)).class_names[5] == "class 5"


def test_a_model_without_preprocessing_needs_rescale_and_logits_get_a_softmax(images):
    image_folder, pixels = images
    model = small_model(4, activation=None, pixels=False)
    with pytest.raises(ValueError, match="`rescale`: the model does not take pixels"):
        Classifier(model)
    classifier = Classifier(model, rescale=1 / 255)
    assert classifier.input_size == (8, 8)
    (result,) = classifier.classify(image_folder / "0.png", top=4)
    # The evaluation transform rounds to whole pixels, as a camera app's uint8 resize does.
    resized = np.round(tf.image.resize(pixels[0], (8, 8), antialias=True).numpy())
    logits = model.predict(resized[None] / 255, verbose=0)[0]
    probabilities = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose([s.probability for s in result.top], np.sort(probabilities)[::-1],
                               atol=1e-5)


def test_bad_arguments(models, tmp_path):
    model, folder = models
    with pytest.raises(ValueError, match="`model`: expected a .keras, .tflite or .onnx file"):
        Classifier(tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match="`model`: expected an existing .tflite file"):
        Classifier(tmp_path / "absent.tflite")
    with pytest.raises(FileNotFoundError, match="`model`: expected an existing .keras file"):
        Classifier(tmp_path / "absent.keras")
    (tmp_path / "bad.tflite").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="`model`: .* is not a LiteRT model"):
        Classifier(tmp_path / "bad.tflite")
    classifier = Classifier(model)
    with pytest.raises(ValueError, match="`top`: expected an integer >= 1"):
        classifier.classify(tmp_path, top=0)
    with pytest.raises(ValueError, match="`pixels`: expected a non-empty array of shape"):
        classifier.predict(np.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="fixed input size"):
        Classifier(keras.Sequential([keras.Input((None, None, 3)), keras.layers.Rescaling(1.0),
                                     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)]))


def test_a_folder_finds_every_format_a_file_named_directly_is_read_in(models, images, tmp_path):
    """A .webp file is classified when named; a folder holding it must not skip it."""
    model, _ = models
    pixels = images[1][0]
    keras.utils.save_img(tmp_path / "photo.webp", pixels, lossless=True)
    (named,) = classify(model, tmp_path / "photo.webp", top=1)
    (found,) = classify(model, tmp_path, top=1)
    assert named.error is None and found.path == tmp_path / "photo.webp"
    assert found.top == named.top


def test_a_phone_photo_is_read_the_right_way_up(models, images, tmp_path):
    """A JPEG stored sideways with EXIF orientation 6 is read, and classified, as its upright copy.

    Truth is independent of the library: Pillow's ``ImageOps.exif_transpose``
    of the same file, and the upright image saved as a JPEG without the tag.
    """
    from PIL import Image, ImageOps

    model, _ = models
    image_folder, pixels = images
    # A portrait photo, 64x48, from a real test image; a phone held upright
    # stores it as the sensor saw it, turned a quarter anticlockwise, and
    # tags it 6: "turn 90 degrees clockwise to view".
    upright = tf.cast(tf.image.resize(pixels[1], (64, 48)), tf.uint8).numpy()
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(
        tmp_path / "phone.jpg", quality=95, exif=exif
    )
    with Image.open(tmp_path / "phone.jpg") as photo:
        assert photo.size == (64, 48)  # stored landscape (width, height)
        turned = np.asarray(ImageOps.exif_transpose(photo), np.float32)

    classifier = Classifier(model)
    read = classifier.read_image(tmp_path / "phone.jpg")
    expected = tf.image.resize(turned, (32, 32), antialias=True).numpy()
    # TensorFlow decodes JPEG with its fast integer IDCT, Pillow with the
    # accurate one: about 2 levels apart on average, whichever way up.
    assert np.abs(read - expected).mean() < 3.0
    copy = classifier.read_image(tmp_path / "upright.jpg")
    assert np.abs(read - copy).mean() < 3.0       # two JPEG encodings of the same picture
    sideways = tf.image.resize(np.rot90(copy), (32, 32), antialias=True).numpy()
    assert np.abs(read - sideways).mean() > 20.0  # what reading it as stored gives

    phone, upright_copy = classifier.classify([tmp_path / "phone.jpg", tmp_path / "upright.jpg"])
    assert phone.top[0].index == upright_copy.top[0].index
    np.testing.assert_allclose([s.probability for s in phone.top],
                               [s.probability for s in upright_copy.top], atol=0.02)


def constant_model(scores, activation=None):
    """A pixel model of 8x8 images whose output is ``activation(scores)`` whatever the image."""
    model = small_model(len(scores), activation=activation)
    dense = model.layers[-1]
    dense.set_weights([np.zeros_like(dense.kernel), np.asarray(scores, np.float32)])
    return model


def test_logits_that_look_like_probabilities_still_get_a_softmax(images):
    """Logits of a model without a softmax are logits, even when a row is >= 0 and sums to 1."""
    _, pixels = images
    scores = [0.5, 0.3, 0.2]
    classifier = Classifier(constant_model(scores))
    assert classifier.outputs == "logits"
    resized = tf.image.resize(pixels[:2], (8, 8)).numpy()
    expected = np.exp(scores) / np.exp(scores).sum()
    np.testing.assert_allclose(classifier.predict(resized), [expected] * 2, rtol=1e-5)


def test_outputs_can_be_said_by_the_user(images):
    _, pixels = images
    resized = tf.image.resize(pixels[:1], (8, 8)).numpy()
    scores = [0.1, 0.7, 0.2]  # already probabilities, from a model that does not say so
    classifier = Classifier(constant_model(scores), outputs="probabilities")
    np.testing.assert_allclose(classifier.predict(resized), [scores], rtol=1e-6)
    # A sigmoid is no softmax: its outputs are read as logits unless the user says otherwise.
    assert Classifier(constant_model(scores, "sigmoid")).outputs == "logits"
    assert Classifier(constant_model(scores, "softmax")).outputs == "probabilities"
    with pytest.raises(ValueError, match="`outputs`: expected one of \\(None, 'probabilities'"):
        Classifier(constant_model(scores), outputs="softmax")


@pytest.mark.parametrize("suffix", [".tflite", ".onnx"])
def test_a_files_outputs_are_read_from_its_last_op(tmp_path, images, suffix):
    """Softmax or not, float or int8: the file says it, and logits files get a softmax."""
    if suffix == ".onnx" and not has_onnx():
        pytest.skip("the optional `onnx` extra is not installed")
    from mobilenet.export import to_onnx

    write = to_tflite if suffix == ".tflite" else to_onnx
    _, pixels = images
    resized = tf.image.resize(pixels, (8, 8)).numpy()
    keras.utils.set_random_seed(1)
    for activation, outputs in (("softmax", "probabilities"), (None, "logits")):
        model = small_model(4, activation=activation)
        float_file = write(model, tmp_path / f"{outputs}{suffix}")
        int8_file = write(model, tmp_path / f"{outputs}_int8{suffix}", "int8",
                          representative_data=resized)
        expected = model.predict(resized, verbose=0)
        if activation is None:
            expected = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
        for file, atol in ((float_file, 1e-5), (int8_file, 0.05)):
            classifier = Classifier(file)
            assert classifier.outputs == outputs, file.name
            np.testing.assert_allclose(classifier.predict(resized), expected, atol=atol)
