"""A file that will not decode, in every command that reads a folder: one policy, never a traceback.

Listing checks every file's two ends (`mobilenet.datasets.image_folder`); what
it sees is refused there, every file named, with exit 2 and nothing written.
Damage inside a complete file shows only when decoding: the pipeline
(`mobilenet.training.pipeline.make_file_dataset`) leaves the file out, warns
with its path once and counts it in `ImageFolder.unreadable`. TensorFlow's
decoder is the truth each case is checked against: every broken file below
fails ``tf.io.decode_image`` and every kept one decodes.
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mobilenet.class_names import with_class_names
from mobilenet.cli import main
from mobilenet.datasets import load_image_folder
from tests.console import console_script
from tests.image_folders import picture, write_pets
from tests.inference_models import tiny_pixel_cnn

pytestmark = pytest.mark.tf_only  # the decoder that is the truth is TensorFlow's


def _encoded(fmt: str, rows: int = 48, cols: int = 64) -> bytes:
    from PIL import Image

    image = Image.fromarray(picture(0, np.random.default_rng(1), rows, cols))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return buffer.getvalue()


def _tf_decodes(data: bytes) -> bool:
    import tensorflow as tf

    try:
        tf.io.decode_image(data, expand_animations=False)
        return True
    except tf.errors.OpError:
        return False


JPEG = _encoded("JPEG")
#: Broken files: (name, bytes, what the refusal says about it).
BROKEN = [
    ("half.jpg", JPEG[: len(JPEG) // 2], "ends without JPEG's end-of-image marker"),
    ("cut.jpg", JPEG[:-2], "ends without JPEG's end-of-image marker"),
    ("cut.png", _encoded("PNG")[:-2], "ends without PNG's IEND chunk"),
    ("half.gif", _encoded("GIF")[:300], "ends without GIF's trailer"),
    ("cut.bmp", _encoded("BMP")[:-100], "bytes of the 9,270 its header declares"),
    ("cut.webp", _encoded("WEBP")[:-10], "TensorFlow cannot decode it"),
    ("text.jpg", b"not an image, only named as one\n", "not a JPEG, PNG, GIF, BMP or WebP file"),
    ("empty.png", b"", "an empty file"),
]


def _folder_with(root: Path, name: str, data: bytes) -> Path:
    write_pets(root, per_class=3, formats=(("png", "RGB"), ("jpg", "RGB")))
    (root / "red" / name).write_bytes(data)
    return root / "red" / name


@pytest.mark.parametrize("name, data, reason", BROKEN, ids=[case[0] for case in BROKEN])
def test_a_file_that_will_not_decode_is_refused_when_listing(tmp_path, name, data, reason):
    assert not _tf_decodes(data)  # the truth: the pipeline's decoder fails on it
    bad = _folder_with(tmp_path / "data", name, data)
    with pytest.raises(ValueError, match="Invalid value for argument `data_dir`") as raised:
        load_image_folder(tmp_path / "data")
    message = str(raised.value)
    assert f"1 file in {str(tmp_path / 'data')!r} that will not decode: {str(bad)!r}" in message
    assert reason in message


def test_every_bad_file_is_named_in_one_refusal(tmp_path):
    root = tmp_path / "data"
    first = _folder_with(root, "half.jpg", JPEG[:500])
    second = root / "blue" / "empty.jpg"
    second.write_bytes(b"")
    with pytest.raises(ValueError, match="2 files in .* that will not decode") as raised:
        load_image_folder(root)
    assert str(first) in str(raised.value) and str(second) in str(raised.value)


@pytest.mark.parametrize("tail", [b"\0" * 100, b"ftypmp42" + bytes(range(256)) * 8],
                         ids=["zero padding", "a motion photo's video after the end"])
def test_a_complete_jpeg_with_bytes_after_its_end_is_kept(tmp_path, tail):
    assert _tf_decodes(JPEG + tail)
    _folder_with(tmp_path / "data", "phone.jpg", JPEG + tail)
    folder = load_image_folder(tmp_path / "data", validation_fraction=0).train
    assert any(path.endswith("phone.jpg") for path in folder.files)


def test_a_motion_photo_keeps_its_orientation(tmp_path):
    from PIL import Image

    image = Image.fromarray(picture(0, np.random.default_rng(3), 40, 60))
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    _folder_with(tmp_path / "data", "phone.jpg", buffer.getvalue() + b"ftypmp42" + bytes(500))
    folder = load_image_folder(tmp_path / "data", validation_fraction=0).train
    orientations = dict(zip(folder.files, folder.orientations))
    assert orientations[str(tmp_path / "data" / "red" / "phone.jpg")] == 6


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    """Three class folders of 32-px-trainable images, one a truncated JPEG; and a model for them."""
    work = tmp_path_factory.mktemp("bad")
    bad = _folder_with(work / "photos", "broken.jpg", JPEG[: len(JPEG) // 2])
    with_class_names(tiny_pixel_cnn(num_classes=3), ("blue", "green", "red")).save(work / "model.keras")
    return work, bad


def test_evaluate_refuses_a_folder_with_a_bad_file(bad_folder, capsys):
    work, bad = bad_folder
    report = work / "eval.json"
    code = main(["evaluate", str(work / "model.keras"), "--data-dir", str(work / "photos"),
                 "--json", str(report)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--data-dir" in err and str(bad) in err and "Traceback" not in err
    assert not report.exists()


def test_calibration_refuses_a_folder_with_a_bad_file(bad_folder, capsys):
    work, bad = bad_folder
    output = work / "model.tflite"
    code = main(["export", str(work / "model.keras"), str(output), "--int8",
                 "--calibration-dir", str(work / "photos")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--calibration-dir" in err and str(bad) in err and "Traceback" not in err
    assert not output.exists()


def test_train_in_a_new_process_refuses_before_writing_anything(bad_folder):
    work, bad = bad_folder
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    done = subprocess.run(
        [console_script(), "train", "--data-dir", "photos", "--output-dir", "run", "--epochs", "1",
         "--image-size", "32", "--alpha", "0.25", "--batch-size", "4"],
        capture_output=True, text=True, cwd=work, env=env, timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("mobilenet train: error: Invalid value for argument `--data-dir`")
    assert "photos/red/broken.jpg" in lines[-1] and "end-of-image marker" in lines[-1]
    assert not (work / "run").exists() or not any((work / "run").iterdir())


# --------------------------------------------------------------------------- damage inside a file


def _damaged_inside(fmt: str) -> bytes:
    """A complete file (its ends intact) with zeros inside its data: listing passes it."""
    data = _encoded(fmt, 96, 128)
    middle = len(data) // 2
    return data[:middle] + bytes(64) + data[middle + 64:]


@pytest.mark.parametrize("fmt, name, size, training", [
    ("PNG", "inside.png", 32, True), ("PNG", "inside.png", 32, False),
    ("PNG", "inside.png", 96, True), ("PNG", "inside.png", 96, False),
    ("GIF", "inside.gif", 96, True),
])  # each path of make_file_dataset: small (decode, resize), random crop, central crop
def test_damage_inside_a_file_is_left_out_named_and_counted(tmp_path, fmt, name, size, training):
    from mobilenet.training.pipeline import make_file_dataset

    data = _damaged_inside(fmt)
    assert not _tf_decodes(data)
    bad = _folder_with(tmp_path / "data", name, data)
    folder = load_image_folder(tmp_path / "data", validation_fraction=0).train  # listing passes it
    assert str(bad) in folder.files and folder.unreadable == []
    dataset = make_file_dataset(folder, image_size=size, batch_size=4, training=training)
    with pytest.warns(UserWarning, match="left out .*which will not decode") as caught:
        count = sum(int(labels.shape[0]) for _, labels in dataset)
    assert count == len(folder) - 1
    assert folder.unreadable == [str(bad)]
    assert [str(warning.message).count(str(bad)) for warning in caught] == [2]  # once, with its path
    # A second pass leaves it out again, without a second warning.
    assert sum(int(labels.shape[0]) for _, labels in dataset) == len(folder) - 1
    assert folder.unreadable == [str(bad)]


def test_evaluate_leaves_out_a_file_damaged_inside_and_scores_the_rest(tmp_path):
    from mobilenet.training import evaluate

    bad = _folder_with(tmp_path / "data", "inside.png", _damaged_inside("PNG"))
    model = with_class_names(tiny_pixel_cnn(num_classes=3), ("blue", "green", "red"))
    with pytest.warns(UserWarning, match="inside.png"):
        report = evaluate(model, tmp_path / "data", max_errors=100)
    assert report.num_examples == 9  # 3 classes x 3 good files; the bad one (a 10th) left out
    assert all(error.path != str(bad) for error in report.errors)
    # The labels stayed with their files: each error's label is its folder's name.
    for error in report.errors:
        assert os.path.basename(os.path.dirname(error.path)) == error.label


def test_calibration_images_leave_out_a_file_damaged_inside(tmp_path):
    from mobilenet.training.pipeline import load_folder_images

    bad = _folder_with(tmp_path / "data", "inside.gif", _damaged_inside("GIF"))
    folder = load_image_folder(tmp_path / "data", validation_fraction=0).train
    with pytest.warns(UserWarning, match="inside.gif"):
        pixels = load_folder_images(folder, 32)
    assert pixels.shape == (len(folder) - 1, 32, 32, 3) and folder.unreadable == [str(bad)]


@pytest.mark.slow  # a training run in a new process: about 20 s on 2 cores
def test_train_in_a_new_process_leaves_out_a_file_damaged_inside_and_says_so(tmp_path):
    bad = _folder_with(tmp_path / "photos", "inside.png", _damaged_inside("PNG"))
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    done = subprocess.run(
        [console_script(), "train", "--data-dir", "photos", "--output-dir", "run", "--epochs", "1",
         "--image-size", "32", "--alpha", "0.25", "--batch-size", "4", "--validation-fraction", "0"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    warned = [line for line in done.stderr.splitlines() if "which will not decode" in line]
    assert len(warned) == 1, done.stderr[-3000:]
    assert warned[0].startswith("mobilenet train: warning: left out 'photos/red/inside.png'")
    assert bad.exists() and (tmp_path / "run" / "final.keras").exists()
