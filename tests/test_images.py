"""Tests for mobilenet.images: files read the right way up, in every format folders list.

Truth is Pillow's: ``ImageOps.exif_transpose`` turns each file, and Pillow's
own decoder reads the lossless formats, whose pixels must then agree exactly.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from mobilenet.images import IMAGE_SUFFIXES, apply_orientation, image_orientation, read_image

#: A stored image, not square, so that each orientation gives another array.
STORED = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
ORIENTATIONS = range(1, 9)


def save(path, pixels, orientation=None, **options):
    """Writes ``pixels`` with Pillow, tagged with an EXIF ``orientation`` when given."""
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    Image.fromarray(pixels).save(path, **options)
    return path


def pillow_upright(path):
    """The file as Pillow turns it upright, RGB."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


@pytest.mark.parametrize("suffix", [".png", ".webp"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_every_orientation_turns_as_pillow_does(tmp_path, orientation, suffix):
    options = {"lossless": True} if suffix == ".webp" else {}
    path = save(tmp_path / f"photo{suffix}", STORED, orientation, **options)
    assert image_orientation(path) == orientation
    upright = read_image(path)
    assert upright.dtype == np.uint8
    np.testing.assert_array_equal(upright, pillow_upright(path))
    if orientation >= 5:
        assert upright.shape == (10, 6, 3)  # rows and columns swapped


def test_a_jpeg_photo_turns_as_pillow_does(tmp_path):
    """JPEG, where phones write the tag: equal to Pillow's turn up to the two decoders' IDCTs."""
    smooth = tf.cast(tf.image.resize(STORED, (60, 100)), tf.uint8).numpy()
    path = save(tmp_path / "photo.jpg", smooth, 6, quality=95)
    upright = read_image(path)
    assert upright.shape == (100, 60, 3)
    difference = np.abs(upright.astype(float) - pillow_upright(path))
    assert difference.mean() < 3  # TensorFlow's fast integer IDCT against Pillow's accurate one
    # Orientation 6: the stored image turned a quarter clockwise (up to JPEG's loss).
    assert np.abs(upright.astype(float) - np.rot90(smooth, k=-1)).mean() < 3


def test_every_format_comes_as_rgb(tmp_path):
    gray = STORED[..., 0]
    rgba = np.dstack([STORED, np.full(STORED.shape[:2], 128, np.uint8)])
    frames = [Image.fromarray(STORED), Image.fromarray(255 - STORED)]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    files = {
        "gray.png": save(tmp_path / "gray.png", gray),
        "rgba.png": save(tmp_path / "rgba.png", rgba),
        "image.bmp": save(tmp_path / "image.bmp", STORED),
        "rgba.webp": save(tmp_path / "rgba.webp", rgba, lossless=True),
        "animated.gif": tmp_path / "animated.gif",
    }
    for name, path in files.items():
        with Image.open(path) as image:  # a GIF's first frame, alpha dropped, gray repeated
            expected = np.asarray(image.convert("RGB"))
        np.testing.assert_array_equal(read_image(path), expected, err_msg=name)
        assert image_orientation(path) == 1
    np.testing.assert_array_equal(read_image(files["gray.png"], channels=1)[..., 0], gray)
    np.testing.assert_array_equal(read_image(files["rgba.png"], channels=4), rgba)
    np.testing.assert_array_equal(read_image(files["rgba.webp"], channels=4), rgba)
    rgb_webp = save(tmp_path / "rgb.webp", STORED, lossless=True)
    with_alpha = read_image(rgb_webp, channels=4)
    np.testing.assert_array_equal(with_alpha[..., :3], STORED)
    assert (with_alpha[..., 3] == 255).all()
    gray_of_rgb = np.asarray(Image.fromarray(STORED).convert("L"))[..., None]
    for path in (rgb_webp, files["image.bmp"], files["rgba.png"]):
        # TensorFlow's gray weights against Pillow's: a level apart at most.
        np.testing.assert_allclose(read_image(path, channels=1), gray_of_rgb, atol=1,
                                   err_msg=path.name)
    la = save(tmp_path / "la.png", np.dstack([gray, rgba[..., 3]]))
    np.testing.assert_array_equal(read_image(la), np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(read_image(la, channels=4)[..., 3], rgba[..., 3])
    assert {path.suffix for path in files.values()} <= set(IMAGE_SUFFIXES)


def test_orientation_is_read_from_the_header_alone(tmp_path, monkeypatch):
    from PIL import PngImagePlugin

    tagged = save(tmp_path / "photo.png", STORED, 8)
    plain = save(tmp_path / "plain.png", STORED)  # Pillow's getexif decodes such a file

    def load(self):
        raise AssertionError("image_orientation decoded the pixels")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", load)
    assert image_orientation(tagged) == 8
    assert image_orientation(plain) == 1


def test_no_tag_and_tags_outside_1_to_8_leave_the_image_as_stored(tmp_path):
    for name, orientation in (("none.jpg", None), ("zero.jpg", 0), ("nine.jpg", 9)):
        path = save(tmp_path / name, STORED, orientation, quality=95)
        assert image_orientation(path) == 1, name
        assert read_image(path).shape == STORED.shape


def test_apply_orientation_in_a_tf_data_pipeline_matches_pillow(tmp_path):
    """Tensor orientations, as a pipeline that decodes with tf.io holds them."""
    paths = [str(save(tmp_path / f"{o}.png", STORED, o)) for o in ORIENTATIONS]
    orientations = [image_orientation(path) for path in paths] + [0]
    paths.append(paths[0])  # and an orientation outside 1-8: left as stored

    def decode(path, orientation):
        image = tf.io.decode_png(tf.io.read_file(path), channels=3)
        return apply_orientation(image, orientation)

    dataset = tf.data.Dataset.from_tensor_slices((paths, orientations)).map(decode)
    turned = [image.numpy() for image in dataset]
    for path, image in zip(paths[:-1], turned):
        np.testing.assert_array_equal(image, pillow_upright(path))
    np.testing.assert_array_equal(turned[-1], STORED)
    # An int gives the same as a tensor, for arrays as for tensors.
    for orientation in ORIENTATIONS:
        as_tensors = apply_orientation(tf.constant(STORED), tf.constant(orientation))
        np.testing.assert_array_equal(apply_orientation(STORED, orientation), as_tensors)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="cannot read '.*absent.jpg': no such file"):
        read_image(tmp_path / "absent.jpg")
    with pytest.raises(ValueError, match="cannot read '.*': a folder, not a file"):
        image_orientation(tmp_path)
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read '.*notes.jpg' as an image"):
        read_image(tmp_path / "notes.jpg")
    with pytest.raises(ValueError, match="cannot read '.*notes.jpg' as an image"):
        image_orientation(tmp_path / "notes.jpg")
    path = save(tmp_path / "photo.png", STORED)
    with pytest.raises(ValueError, match=r"`channels`: expected 1, 3 or 4. Received: channels=2"):
        read_image(path, channels=2)
    with pytest.raises(ValueError, match=r"`orientation`: expected an EXIF orientation, an integer "
                                         r"1 to 8. Received: orientation=9"):
        apply_orientation(STORED, 9)
    with pytest.raises(ValueError, match="`orientation`: .* Received: orientation=True"):
        apply_orientation(STORED, True)
    with pytest.raises(ValueError, match=r"`image`: .* Received: image with shape \(6, 10\)"):
        apply_orientation(STORED[..., 0], 1)


def test_without_pillow_the_error_names_the_extra(tmp_path, monkeypatch):
    path = save(tmp_path / "photo.png", STORED, 6)
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    hint = r"needs Pillow.*`images` extra: pip install \"mobilenet\[images\]\""
    with pytest.raises(ImportError, match=hint):
        image_orientation(path)
    with pytest.raises(ImportError, match="`images` extra"):
        read_image(path)
