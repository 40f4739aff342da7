"""Classify image files with a trained model: a ``.keras``, ``.tflite`` or ``.onnx`` file.

```python
import keras
import numpy as np
from mobilenet import MobileNetV1
from mobilenet.predict import classify

model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
model.save("model.keras")
keras.utils.save_img("cat.png", np.random.default_rng(0).integers(0, 256, (48, 48, 3)))
for result in classify("model.keras", ["cat.png", "missing.jpg"], top=3):
    print(result.path, result.error or result.top[0].name)  # missing.jpg: its error
```

Each model says how it is fed and what it answers (`mobilenet.facts`:
every file this library writes carries it), and images go in as it says,
through `mobilenet.preprocessing`, the one path from a file to a model's
input that `mobilenet.training.evaluate` takes too: read (TensorFlow decodes
JPEG, PNG, GIF's first frame, BMP and WebP; the file's EXIF orientation turns
a phone photo upright, which needs Pillow, the ``images`` extra), cropped
around the centre (``crop_fraction`` of each side: 0.875 above 64 px for the
models `mobilenet train` writes), resized to the input size (bilinear unless
the model says otherwise, antialiased) and rounded to whole pixels 0-255:

- a model that takes pixels (every model `mobilenet train` writes, and the
  files `mobilenet.export` writes from them) gets them as they are; a file
  whose input is ``uint8`` gets the pixel bytes themselves (its own scale and
  zero point say what they mean);
- any other model needs ``rescale`` (and ``offset``): its input is then
  ``pixels * rescale + offset`` (a ``uint8`` or ``int8`` input then quantizes
  them with the file's scale and zero point).

Whether the outputs are class probabilities or logits is read from the
model's facts (declared, else read from its last computing operation: a
softmax or not); logits go through a softmax first, and ``outputs=`` says it
instead for a model that ends otherwise. Classes are named as the model's
facts name them; a model that names none gets CIFAR-10's names for 10
classes, ImageNet's for 1000 (Keras' ``decode_predictions``, which downloads
its class index once), else ``"class N"``, unless ``class_names`` are given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mobilenet._validation import (
    check_choice,
    check_existing_file,
    check_positive_int,
    first_line,
    invalid,
    is_real,
)
from mobilenet.export.openvino import OpenVINORunner, fastest_onnx_runtime
from mobilenet.export.runtimes import KerasRunner, LiteRTRunner, ONNXRunner, Runner
from mobilenet.facts import OUTPUTS, ModelFacts, read_facts
from mobilenet.images import IMAGE_SUFFIXES
from mobilenet.preprocessing import load_image

__all__ = [
    "IMAGE_SUFFIXES",
    "RUNTIMES",
    "ClassScore",
    "Classifier",
    "Prediction",
    "classify",
    "image_files",
]

#: The model files `Classifier` reads: Keras, LiteRT, ONNX, and a microcontroller's C array
#: (run in TensorFlow Lite Micro's interpreter).
MODEL_SUFFIXES = (".keras", ".tflite", ".onnx", ".cc", ".cpp", ".c")

#: The values of `Classifier`'s ``runtime``: ``"auto"`` or a runtime that reads the model.
RUNTIMES = ("auto", "keras", "litert", "onnxruntime", "openvino", "tflite-micro")

#: The runtimes that read each kind of model; ``"auto"`` takes the first, or for an
#: ``.onnx`` file the one `mobilenet.export.fastest_onnx_runtime` names.
_READERS = {".keras": ("keras",), ".tflite": ("litert", "tflite-micro"),
            ".onnx": ("onnxruntime", "openvino"), ".cc": ("tflite-micro",),
            ".cpp": ("tflite-micro",), ".c": ("tflite-micro",)}


@dataclasses.dataclass(frozen=True)
class ClassScore:
    """One class of a prediction: its index, name and probability."""

    index: int
    name: str
    probability: float


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The top classes of one image file, best first, or why it could not be classified.

    Attributes:
        path: the image file.
        top: tuple of `ClassScore`, best first; empty when ``error`` is set.
        error: None, or a one-line message naming the file.
    """

    path: Path
    top: tuple[ClassScore, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``path``, ``top`` (list of dicts) and ``error``."""
        return {
            "path": str(self.path),
            "top": [dataclasses.asdict(score) for score in self.top],
            "error": self.error,
        }


def image_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The image files ``paths`` name: files as given, folders searched recursively.

    A folder contributes its files ending in one of
    `mobilenet.images.IMAGE_SUFFIXES` (any case; hidden ones skipped), sorted:
    the formats a file named directly is read in. A file is kept whatever its
    name, so that a file that is not an image is reported, not skipped. A path that
    does not exist is kept too (classifying it reports it).

    Raises:
        ValueError: no path, or a folder without image files.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(
            file for file in path.rglob("*")
            if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file()
            and not any(part.startswith(".") for part in file.relative_to(path).parts)
        )
        if not found:
            raise invalid(
                "paths", "", None, shown=f"paths={str(path)!r}",
                problem=f"the folder {str(path)!r} holds no image files (ending in "
                f"{', '.join(IMAGE_SUFFIXES)})",
            )
        files.extend(found)
    if not files:
        raise invalid("paths", "at least one image file or folder", [])
    return files


class Classifier:
    """A trained image classifier, from a ``keras.Model`` or a model file, fed image files.

    Loads the model once, in the runner of its runtime
    (`mobilenet.export.KerasRunner`, `~mobilenet.export.LiteRTRunner` or
    `~mobilenet.export.ONNXRunner`); `classify` then reads, resizes and
    classifies image files in batches, and `predict` classifies pixel arrays.

    Args:
        model: a ``keras.Model``, or the path of a ``.keras``, ``.tflite``
            (run in LiteRT) or ``.onnx`` file (run in ONNX Runtime, the
            optional ``onnx`` extra).
        rescale: float or None, for a model that does not take pixels: its
            input is ``pixels * rescale + offset`` (e.g. ``1 / 255`` for
            [0, 1]). None (the default): pixels as they are (see the module
            docstring); required for a model that does not take pixels.
        offset: float, added after ``rescale``. Defaults to 0.
        num_threads: int or None, the LiteRT or ONNX Runtime threads (None:
            the runtime's default). Keras models use TensorFlow's thread pools.
        class_names: optional sequence of one name per class.
        outputs: ``"probabilities"``, ``"logits"`` (given a softmax) or None
            (the default): what the model outputs, read from the model (see
            the module docstring).
        runtime: ``"auto"`` (the default), ``"keras"``, ``"litert"``,
            ``"onnxruntime"`` or ``"openvino"`` (the optional ``openvino``
            extra, float32 unless its file is int8): the runtime that runs
            the model. ``"auto"`` takes the model's own (Keras for a
            ``keras.Model`` or ``.keras`` file, LiteRT for ``.tflite``) and,
            for an ``.onnx`` file, which OpenVINO and ONNX Runtime both read,
            the one `mobilenet.export.fastest_onnx_runtime` names for this
            CPU. A runtime that cannot read the model is an error.

    Attributes:
        input_size: ``(height, width)`` images are resized to.
        channels: 1, 3 or 4, the channels images are decoded to.
        num_classes: int.
        class_names: tuple of str, one per class.
        runtime: ``"keras"``, ``"litert"``, ``"onnxruntime"``, ``"openvino"`` or
            ``"tflite-micro"``: the runtime that runs the model.
        facts: the model's `mobilenet.facts.ModelFacts`: how images are
            cropped and resized for it, and what it answers.
        outputs: ``"probabilities"`` or ``"logits"``.
        runner: the `mobilenet.export.Runner` that runs the model.

    Raises:
        FileNotFoundError: no file at ``model``.
        ValueError: a model file of an unknown kind or that cannot be read,
            a model that is not an image classifier with a fixed input size,
            a Keras model that does not take pixels and no ``rescale``, or
            ``class_names`` of the wrong length.

    Example:

    ```python
    import keras
    import numpy as np
    from mobilenet import MobileNetV1
    from mobilenet.predict import Classifier

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    classifier = Classifier(model)   # or the path of a .keras, .tflite or .onnx file
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    probabilities = classifier.predict(pixels)   # (N, H, W, C), 0-255
    keras.utils.save_img("cat.png", pixels[0])
    results = classifier.classify(["cat.png"], top=3)
    ```
    """

    def __init__(
        self,
        model: keras.Model | str | os.PathLike,
        *,
        rescale: float | None = None,
        offset: float = 0.0,
        num_threads: int | None = None,
        class_names: Sequence[str] | None = None,
        outputs: str | None = None,
        runtime: str = "auto",
    ) -> None:
        if rescale is not None and not is_real(rescale):
            raise invalid("rescale", "a number or None", rescale)
        if not is_real(offset):
            raise invalid("offset", "a number", offset)
        if num_threads is not None:
            num_threads = check_positive_int(num_threads, "num_threads")
        check_choice(outputs, "outputs", (None, *OUTPUTS))
        check_choice(runtime, "runtime", RUNTIMES)
        self.rescale = rescale
        self.offset = float(offset)
        self.num_threads = num_threads
        self.runner = _load_runner(model, num_threads, runtime)
        self._set_shapes(self.runner.input_shape, self.runner.output_shape)
        # What the model or file says of itself: how to feed it, what it answers.
        source = self.runner.model if isinstance(self.runner, KerasRunner) else \
            getattr(self.runner, "data", None) or self.runner.path  # a C array's flatbuffer
        self.facts: ModelFacts = read_facts(source, argument="model")
        if rescale is None and not self.facts.takes_pixels:
            raise invalid(
                "rescale", "", None,
                problem="the model does not take pixels 0-255 (it says not, or its first layer "
                "is not a Rescaling), so say what its input is: pixels * rescale + offset, e.g. "
                "rescale=1/255 for [0, 1], or rescale=1/127.5 and offset=-1 for [-1, 1]",
            )
        self.runtime = self.runner.runtime
        self.outputs = outputs or self.facts.outputs
        if class_names is None:  # the names the model or file carries, if any
            class_names = self.facts.class_names
        self.class_names = _class_names(self.num_classes, class_names)

    def _set_shapes(self, input_shape: tuple, output_shape: tuple) -> None:
        dims = input_shape[1:]
        fixed = len(dims) == 3 and all(isinstance(d, (int, np.integer)) and d > 0 for d in dims)
        if not fixed or dims[-1] not in (1, 3, 4):
            raise invalid(
                "model", "an image model with a fixed input size, (N, height, width, 1, 3 or 4 "
                "channels)", None, shown=f"input shape {input_shape}",
            )
        classes = output_shape[-1] if len(output_shape) == 2 else None
        if not isinstance(classes, (int, np.integer)) or classes < 1:
            raise invalid("model", "a classifier, with an output of shape (N, classes)", None,
                          shown=f"output shape {output_shape}")
        self.input_size = (int(dims[0]), int(dims[1]))
        self.channels = int(dims[2])
        self.num_classes = int(classes)

    # ---------------------------------------------------------------- running

    def _input(self, pixels: np.ndarray) -> np.ndarray:
        """What the runner is fed for float ``pixels`` 0-255."""
        if self.rescale is not None:
            return pixels * np.float32(self.rescale) + np.float32(self.offset)
        if self.runner.input_type == "uint8":  # the pixel bytes themselves
            return np.clip(np.round(pixels), 0, 255).astype(np.uint8)
        return pixels

    def predict(self, pixels: Any, *, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities for images ``(N, height, width, channels)`` of pixels 0-255.

        The images must already have the model's input size (`read_image`
        brings a file to it; `classify` reads files). ``batch_size`` images
        go to the runtime at a time (None: all of them). Returns a float32
        array ``(N, num_classes)``.
        """
        array = np.asarray(pixels, np.float32)
        if array.ndim != 4 or array.shape[1:] != (*self.input_size, self.channels) or not len(array):
            raise invalid(
                "pixels",
                f"a non-empty array of shape (N, {self.input_size[0]}, {self.input_size[1]}, "
                f"{self.channels})", None, shown=f"pixels with shape {array.shape}",
            )
        batch_size = len(array) if batch_size is None else check_positive_int(batch_size, "batch_size")
        scores = self.runner.run(self._input(array), batch_size).reshape(len(array), -1)
        if self.outputs == "logits":
            scores = np.asarray(keras.ops.softmax(scores, axis=-1), np.float32)
        return scores

    def read_image(self, path: str | os.PathLike | bytes | np.ndarray) -> np.ndarray:
        """An image file (or its bytes, or a camera frame) as the model's input pixels.

        `mobilenet.preprocessing.load_image` with the model's facts: read and
        turned upright by its EXIF orientation, cropped and resized as the
        model says (``facts.crop_fraction``, ``facts.interpolation``), whole
        pixel values 0-255: the pixels `mobilenet.training.evaluate` feeds.

        Returns:
            A float32 array ``(height, width, channels)``.

        Raises:
            ValueError: the file is missing or not a readable image; the message names it.
            ImportError: Pillow (the optional ``images`` extra) is not installed.
        """
        return load_image(path, channels=self.channels, **self.facts.image_options())

    def classify(
        self,
        paths: str | os.PathLike | Iterable[str | os.PathLike],
        *,
        top: int = 5,
        batch_size: int = 32,
    ) -> list[Prediction]:
        """Classifies image files and folders (see `image_files`), ``batch_size`` at a time.

        A file that cannot be read gets a `Prediction` with ``error`` set,
        and the others are classified all the same.

        Args:
            paths: a file or folder, or several.
            top: int, how many classes to keep per image, best first (at most
                ``num_classes``). Defaults to 5.
            batch_size: int, images per model call. Defaults to 32.

        Returns:
            One `Prediction` per image file, in the order of ``paths``.
        """
        top = min(check_positive_int(top, "top"), self.num_classes)
        batch_size = check_positive_int(batch_size, "batch_size")
        files = image_files(paths)
        results: list[Prediction] = []
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            images, errors = {}, {}
            for index, file in enumerate(chunk):
                try:
                    images[index] = self.read_image(file)
                except ValueError as error:
                    errors[index] = str(error)
            scores = iter(self.predict(np.stack(list(images.values()))) if images else ())
            for index, file in enumerate(chunk):
                if index in errors:
                    results.append(Prediction(file, error=errors[index]))
                else:
                    results.append(Prediction(file, self._top(next(scores), top)))
        return results

    def _top(self, probabilities: np.ndarray, top: int) -> tuple[ClassScore, ...]:
        best = np.argsort(-probabilities, kind="stable")[:top]
        return tuple(
            ClassScore(int(i), self.class_names[i], float(probabilities[i])) for i in best
        )


def classify(
    model: keras.Model | str | os.PathLike,
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    top: int = 5,
    batch_size: int = 32,
    rescale: float | None = None,
    offset: float = 0.0,
    num_threads: int | None = None,
    class_names: Sequence[str] | None = None,
    outputs: str | None = None,
    runtime: str = "auto",
) -> list[Prediction]:
    """Classifies image files and folders with a model or a model file.

    ``Classifier(model, ...).classify(paths, top=top, batch_size=batch_size)``;
    see `Classifier` for the arguments and how pixels are fed.

    Returns:
        One `Prediction` per image file, in order; an unreadable file's has
        ``error`` set and the others are classified all the same.

    Example:

    ```python
    import os
    import keras
    import numpy as np
    from mobilenet import MobileNetV1
    from mobilenet.predict import classify

    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10, include_preprocessing=True)
    model.save("model.keras")   # or a .tflite or .onnx file from mobilenet.export
    os.makedirs("images")
    keras.utils.save_img("images/cat.png", np.random.default_rng(0).integers(0, 256, (48, 48, 3)))
    for result in classify("model.keras", ["images/"], top=3):
        print(result.path, [(s.name, round(s.probability, 3)) for s in result.top])
    ```
    """
    classifier = Classifier(
        model, rescale=rescale, offset=offset, num_threads=num_threads, class_names=class_names,
        outputs=outputs, runtime=runtime,
    )
    return classifier.classify(paths, top=top, batch_size=batch_size)


# ---------------------------------------------------------------- helpers


def _load_runner(
    model: keras.Model | str | os.PathLike, num_threads: int | None, runtime: str = "auto"
) -> Runner:
    """The runner of ``model`` in ``runtime``: a Keras model, or a .keras, .tflite or .onnx file."""
    file = None if isinstance(model, keras.Model) else Path(model)
    if file is not None and file.suffix not in MODEL_SUFFIXES:
        raise invalid("model", "a .keras, .tflite or .onnx file, or a C array (.cc, .cpp, .c)",
                      str(model))
    readers = _READERS[".keras" if file is None else file.suffix]
    if runtime == "auto":
        runtime = fastest_onnx_runtime() if file is not None and file.suffix == ".onnx" else readers[0]
    elif runtime not in readers:
        kind = "a keras.Model" if file is None else f"a {file.suffix} file"
        raise invalid("runtime", f"'auto' or {' or '.join(map(repr, readers))} for {kind}",
                      runtime)
    if runtime == "keras":
        if file is None:
            return KerasRunner(model)
        from mobilenet.saving import load_model

        return KerasRunner(load_model(file, argument="model"))
    check_existing_file(model, "model", f"{file.suffix} file")
    if runtime == "tflite-micro":
        from mobilenet.export.micro import MicroRunner

        return MicroRunner(file, argument="model")
    runner = {"litert": LiteRTRunner, "onnxruntime": ONNXRunner, "openvino": OpenVINORunner}[runtime]
    return runner(file, num_threads, argument="model")


def _class_names(num_classes: int, names: Sequence[str] | None) -> tuple[str, ...]:
    if names is not None:
        names = tuple(str(name) for name in names)
        if len(names) != num_classes:
            raise invalid(
                "class_names", f"one name per class, {num_classes} names", names,
                shown=f"{len(names)} names",
            )
        return names
    if num_classes == 10:
        from mobilenet.datasets import CIFAR10_CLASS_NAMES

        return tuple(CIFAR10_CLASS_NAMES)
    if num_classes == 1000:
        return _imagenet_class_names()
    return tuple(f"class {index}" for index in range(num_classes))


def _imagenet_class_names() -> tuple[str, ...]:
    """ImageNet's 1000 class names, through Keras' `decode_predictions`.

    Keras downloads its class index (a 35 KB JSON file) to its cache on first
    use; offline, classes are numbered instead, with a warning.
    """
    from keras.applications import imagenet_utils

    scores = np.arange(1000, 0, -1, dtype=np.float32)[None]  # class i ranks i-th
    try:
        # Keras prints "Downloading data from ..." to stdout, where our results go.
        with contextlib.redirect_stdout(sys.stderr):
            decoded = imagenet_utils.decode_predictions(scores, top=1000)[0]
    except Exception as error:  # Keras raises a bare Exception when the download fails
        warnings.warn(
            f"ImageNet class names are unavailable ({first_line(error)}); classes are "
            "shown as numbers", stacklevel=3,
        )
        return tuple(f"class {index}" for index in range(1000))
    return tuple(name for _, name, _ in decoded)

