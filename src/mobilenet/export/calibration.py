"""Calibration data for int8 files: the images both converters see, and the input's range.

LiteRT's converter takes a generator of single images
(`representative_dataset`); ONNX Runtime's ``quantize_static`` takes a
``CalibrationDataReader`` of batches (`calibration_reader`). Both are fed the
same images, with the input range anchored (`anchored`) so that a model that
takes pixels gets an integer input that is the pixel itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from mobilenet._validation import invalid
from mobilenet.export.common import check_images

__all__ = ["anchored", "calibration_reader", "pixel_input_range", "representative_dataset"]

#: A calibration source: called, it yields one ``[image[None]]`` per image, float32.
Images = Callable[[], Iterator[list[np.ndarray]]]


def pixel_input_range(model: keras.Model) -> tuple[float, float] | None:
    """``(0.0, 255.0)`` if ``model`` takes pixels, else None.

    A model takes pixels when the first layer after its input is a
    ``keras.layers.Rescaling`` (as in ``MobileNetV1(include_preprocessing=True)``
    and the models `mobilenet.training.train` makes).
    """
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if layers and isinstance(layers[0], keras.layers.Rescaling):
        return (0.0, 255.0)
    return None


def representative_dataset(data: Any, model: keras.Model) -> Images:
    """The images of ``data`` (an array or a ``tf.data.Dataset``), one at a time, as float32.

    A dataset may hold single images or batches of them, or ``(images,
    labels)`` pairs; either way each image is checked against the model's
    input shape. ``data`` None is an error: int8 needs real inputs.
    """
    if data is None:
        raise invalid(
            "representative_data", "", None,
            problem="int8 quantization calibrates activation ranges on real inputs, so it "
            "needs an array or a tf.data.Dataset of images shaped like the model input, "
            f"{tuple(model.input_shape)}",
            shown="representative_data=None",
        )
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if isinstance(spec, (tuple, list)):  # (images, labels) pairs
            data = data.map(lambda *element: element[0])
            spec = data.element_spec
        expected = tuple(model.input_shape[1:])
        dims = tuple(spec.shape)
        if len(dims) == len(expected) + 1:  # batched: split into single images
            data = data.unbatch()
            dims = dims[1:]
        if len(dims) != len(expected) or any(
            want is not None and got is not None and want != got
            for want, got in zip(expected, dims)
        ):
            raise invalid(
                "representative_data",
                f"a dataset of images of shape {expected} (or batches of them), the model's "
                "input shape", None, shown=f"a dataset of shape {tuple(spec.shape)}",
            )

        def generate() -> Iterator[list[np.ndarray]]:
            for image in data.as_numpy_iterator():
                yield [np.asarray(image, np.float32)[None]]

        return generate

    images = check_images(data, model, "representative_data")

    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None]]

    return generate


def anchored(generate: Images, input_range: tuple[float, float] | None) -> Images:
    """Calibration that also sees both ends of ``input_range`` (one value each).

    A converter sets the input's quantization from the smallest and largest
    input it saw; two values in one copy of the first image make those
    exactly ``input_range`` (for pixels: uint8 scale 1, zero point 0) and
    leave every other activation range as the real images make it.
    """
    if input_range is None:
        return generate

    def with_ends() -> Iterator[list[np.ndarray]]:
        first = True
        for (image,) in generate():
            if first:
                ends = np.array(image, np.float32, copy=True)
                flat = ends.reshape(-1)
                flat[0], flat[-1] = input_range
                yield [ends]
                first = False
            yield [image]

    return with_ends


def calibration_reader(generate: Images, input_name: str, batch_size: int = 32) -> Any:
    """An ONNX Runtime ``CalibrationDataReader`` over ``generate``'s images, in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    def batches() -> Iterator[np.ndarray]:
        images = []
        for (image,) in generate():
            images.append(image)
            if len(images) == batch_size:
                yield np.concatenate(images)
                images = []
        if images:
            yield np.concatenate(images)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = batches()

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    return Reader()
