"""Loading timm's MobileNet V1 ImageNet weights into `MobileNetV1` models.

timm (PyTorch Image Models) publishes the best MobileNet V1 ImageNet weights
there are (75.4% top-1 at 224 for alpha 1.0, against the paper's 70.6%), as
Hugging Face Hub ``model.safetensors`` files of a PyTorch ``state_dict``. Its
networks are ours with three differences, which `timm_model_options` turns
into `MobileNetV1` arguments:

- symmetric padding (one row and column on every side) in the stride-2 3x3
  convolutions, where TensorFlow's ``"same"`` pads only the bottom and right;
- BatchNorm epsilon 1e-5 (Keras' default is 1e-3);
- in ``mobilenetv1_100h``, a 1x1 convolution (with BatchNorm and ReLU6) to
  1024 channels after block 13 (``head_filters``).

The network follows from the file: `read_timm_weights` reads the tensors'
shapes (alpha from the stem's channels, the head conv if there is one, the
classes), checks every tensor against the table of `MobileNetV1`, and
`load_timm_weights` moves them into a built model (kernels from PyTorch's
OIHW to Keras' HWIO, BatchNorm's running statistics to its moving ones).

The evaluation transform each variant expects (input size, crop fraction,
interpolation, mean and std, from timm's ``pretrained_cfg``) is in
`TIMM_VARIANTS`: ``TIMM_VARIANTS[hub_name].crop_fraction`` and so on.

This module imports the architecture table, never the factory
(`mobilenet.model`), which imports it. safetensors (reading) and
huggingface_hub (downloading) are the ``timm`` extra, imported when needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mobilenet._validation import MissingPath, invalid
from mobilenet.architecture import BLOCKS, STEM, layer_table

__all__ = [
    "TIMM_ACTIVATION",
    "TIMM_BATCH_NORM_EPSILON",
    "TIMM_PADDING",
    "TIMM_VARIANTS",
    "TimmVariant",
    "TimmWeights",
    "find_timm_variant",
    "is_timm_weights",
    "load_timm_weights",
    "read_timm_weights",
    "timm_model_options",
    "timm_state_dict_shapes",
    "timm_weights_path",
]

#: timm's BatchNorm epsilon (PyTorch's default).
TIMM_BATCH_NORM_EPSILON = 1e-5
#: timm's activation in MobileNet V1 (``_gen_mobilenet_v1``'s ``relu6``).
TIMM_ACTIVATION = "relu6"
#: The `MobileNetV1` ``padding`` that gives timm's convolutions.
TIMM_PADDING = "symmetric"
#: The file each Hub repository holds.
HUB_FILE_NAME = "model.safetensors"
HUB_URL = "https://huggingface.co/{name}/resolve/main/" + HUB_FILE_NAME
#: How many blocks each of timm's five stages holds (``blocks.STAGE.INDEX``), paper Table 1's order.
_STAGE_SIZES = (1, 2, 2, 6, 2)
_INCEPTION = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class TimmVariant:
    """One of timm's MobileNet V1 ImageNet weights: its network and how to feed it.

    The data fields are timm's ``pretrained_cfg`` for the weights: what
    timm's evaluation transform does before the network (resize the shorter
    side to ``input_size / crop_fraction`` with ``interpolation``, take the
    central ``input_size`` square, scale to [0, 1], subtract ``mean``,
    divide by ``std``). The mean and std of 0.5 are ``pixels / 127.5 - 1``,
    what ``MobileNetV1(include_preprocessing=True)`` does.

    Attributes:
        hub_name: the Hugging Face Hub repository, the ``weights=`` name.
        architecture: timm's model name (``timm.create_model``).
        alpha: the width multiplier.
        head_filters: channels of the 1x1 head conv, or None for none.
        input_size: the side timm evaluates at by default.
        crop_fraction: timm's ``crop_pct`` at ``input_size``.
        interpolation: the resize filter, timm's name (``"bicubic"``).
        mean, std: per channel, on pixels scaled to [0, 1].
        test_input_size: the larger side timm also evaluates at.
        test_crop_fraction: ``crop_pct`` at ``test_input_size``.
        top1: ImageNet top-1 (%) at ``input_size``, as timm publishes it.
        test_top1: ImageNet top-1 (%) at ``test_input_size``.
        params_millions: parameters, as timm publishes them.
    """

    hub_name: str
    architecture: str
    alpha: float
    head_filters: int | None
    top1: float
    test_top1: float
    params_millions: float
    crop_fraction: float = 0.875
    test_crop_fraction: float = 0.95
    input_size: int = 224
    test_input_size: int = 256
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = _INCEPTION
    std: tuple[float, float, float] = _INCEPTION


#: timm's MobileNet V1 ImageNet weights, by Hub name. Accuracies: timm's README
#: (July and August 2024 entries) and ``results/results-imagenet.csv``.
TIMM_VARIANTS: dict[str, TimmVariant] = {
    variant.hub_name: variant
    for variant in (
        TimmVariant("timm/mobilenetv1_100.ra4_e3600_r224_in1k", "mobilenetv1_100", 1.0, None,
                    top1=75.382, test_top1=76.094, params_millions=4.23),
        TimmVariant("timm/mobilenetv1_100h.ra4_e3600_r224_in1k", "mobilenetv1_100h", 1.0, 1024,
                    top1=75.662, test_top1=76.596, params_millions=5.28),
        TimmVariant("timm/mobilenetv1_125.ra4_e3600_r224_in1k", "mobilenetv1_125", 1.25, None,
                    top1=76.924, test_top1=77.600, params_millions=6.27,
                    crop_fraction=0.9, test_crop_fraction=1.0),
    )
}


def find_timm_variant(alpha: float, head_filters: int | None) -> TimmVariant | None:
    """The published variant with this network (so its data config), or None."""
    for variant in TIMM_VARIANTS.values():
        if variant.alpha == alpha and variant.head_filters == head_filters:
            return variant
    return None


def is_timm_weights(weights: Any) -> bool:
    """Whether ``weights`` asks for timm's weights: a ``timm/`` Hub name or a ``.safetensors`` path."""
    if isinstance(weights, str) and weights.startswith("timm/"):
        return True
    return isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".safetensors")


def _cache_folder() -> str:
    """Keras' cache folder (``$KERAS_HOME``, else ``~/.keras``), as ``keras.utils.get_file`` uses."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", "timm")


def _download(name: str) -> str:
    """The local path of the Hub file ``name`` (downloading it into Keras' cache once)."""
    folder = os.path.join(_cache_folder(), name.split("/", 1)[1])
    path = os.path.join(folder, HUB_FILE_NAME)
    if os.path.isfile(path):
        return path
    url = HUB_URL.format(name=name)
    where = f"fetch {url} elsewhere and put it at {path} (or pass its path as `weights=`)"
    try:
        import huggingface_hub
    except ImportError as error:
        raise ImportError(
            f"Downloading {name} needs huggingface_hub, the `timm` extra "
            f"(pip install 'mobilenet[timm]'); or {where}."
        ) from error
    try:
        return huggingface_hub.hf_hub_download(name, HUB_FILE_NAME, local_dir=folder)
    except Exception as error:  # offline, refused or missing: many exception types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConnectionError(f"Could not download {name} ({reason}). If this machine is "
                              f"offline, {where}.") from error


def timm_weights_path(weights: str | os.PathLike[str]) -> str:
    """The local ``.safetensors`` file for ``weights``: a path, or a Hub name (downloaded once).

    Raises:
        ValueError: a ``timm/`` name that is not in `TIMM_VARIANTS`.
        FileNotFoundError: a path with no file.
        ImportError: a Hub name not yet downloaded without huggingface_hub.
        ConnectionError: the download failed (the message says where to put the file).
    """
    if isinstance(weights, str) and weights.startswith("timm/"):
        if weights not in TIMM_VARIANTS:
            raise invalid("weights", f"one of timm's MobileNet V1 weights {tuple(TIMM_VARIANTS)}, "
                          "or the path of a timm .safetensors file", weights)
        return _download(weights)
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise invalid("weights", "", None, shown=f"weights={path!r}", error=MissingPath,
                      problem="no file at that path; expected the path of a timm .safetensors "
                      f"file or one of {tuple(TIMM_VARIANTS)}")
    return path


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError as error:
        raise ImportError("Reading timm's .safetensors weights needs safetensors, the `timm` "
                          "extra: pip install 'mobilenet[timm]'") from error
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own error types
        raise invalid("weights", "", path, problem=f"{path!r} is not a readable .safetensors "
                      f"file (safetensors said: {error})") from error


def _block_prefixes() -> list[str]:
    """timm's ``blocks.STAGE.INDEX`` of blocks 1..13, in order."""
    return [f"blocks.{stage}.{index}"
            for stage, size in enumerate(_STAGE_SIZES) for index in range(size)]


def _batch_norm_shapes(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{leaf}": (channels,)
            for leaf in ("weight", "bias", "running_mean", "running_var")}


def timm_state_dict_shapes(
    alpha: float, head_filters: int | None = None, num_classes: int | None = 1000
) -> dict[str, tuple[int, ...]]:
    """The float tensors of timm's MobileNet V1 ``state_dict``, name -> PyTorch shape.

    Args:
        alpha: the width multiplier.
        head_filters: channels of the 1x1 head conv (``mobilenetv1_100h``: 1024), or None.
        num_classes: the classifier's outputs, or None for a file without one.

    Returns:
        ``{name: shape}``, without BatchNorm's ``num_batches_tracked`` counters.
    """
    stem, *blocks = layer_table(alpha)
    shapes = {"conv_stem.weight": (stem.filters, 3, 3, 3), **_batch_norm_shapes("bn1", stem.filters)}
    channels = stem.filters
    for spec, prefix in zip(blocks, _block_prefixes()):
        shapes[f"{prefix}.conv_dw.weight"] = (channels, 1, 3, 3)
        shapes.update(_batch_norm_shapes(f"{prefix}.bn1", channels))
        shapes[f"{prefix}.conv_pw.weight"] = (spec.filters, channels, 1, 1)
        shapes.update(_batch_norm_shapes(f"{prefix}.bn2", spec.filters))
        channels = spec.filters
    if head_filters:
        shapes["conv_head.weight"] = (head_filters, channels, 1, 1)
        shapes.update(_batch_norm_shapes("bn2", head_filters))
        channels = head_filters
    if num_classes:
        shapes["classifier.weight"] = (num_classes, channels)
        shapes["classifier.bias"] = (num_classes,)
    return shapes


@dataclass(frozen=True)
class TimmWeights:
    """A timm MobileNet V1 weights file, read, with the network its tensors describe.

    Attributes:
        path: the local ``.safetensors`` file.
        tensors: its tensors by name, as NumPy arrays in PyTorch's layout.
        alpha: the width multiplier (the stem's channels / 32).
        head_filters: channels of the 1x1 head conv, or None.
        num_classes: the classifier's outputs, or None without a classifier.
    """

    path: str
    tensors: dict[str, np.ndarray] = field(repr=False)
    alpha: float
    head_filters: int | None
    num_classes: int | None

    @property
    def variant(self) -> TimmVariant | None:
        """The published variant with this network (`find_timm_variant`), or None."""
        return find_timm_variant(self.alpha, self.head_filters)

    def check_request(
        self, *, alpha: float | None, head_filters: int | None, include_top: bool, num_classes: int,
    ) -> None:
        """Rejects `MobileNetV1` arguments that disagree with the file, naming both.

        ``alpha`` and ``head_filters`` may be None (take the file's).
        """
        if alpha is not None and alpha != self.alpha:
            raise invalid("alpha", f"the width of the weights file, {self.alpha:g} (or None, "
                          "which takes it)", alpha,
                          shown=f"alpha={alpha!r}, weights={self.path!r} of alpha={self.alpha:g}")
        if head_filters is not None and head_filters != self.head_filters:
            raise invalid("head_filters", f"the weights file's {self.head_filters} (or None, "
                          "which takes it)", head_filters,
                          shown=f"head_filters={head_filters!r}, weights={self.path!r} with "
                          f"head_filters={self.head_filters}")
        if include_top and self.num_classes is None:
            raise invalid("include_top", "False with a weights file that has no classifier",
                          include_top, shown=f"include_top=True, weights={self.path!r}")
        if include_top and num_classes != self.num_classes:
            raise invalid("num_classes", f"the weights file's {self.num_classes} (use "
                          "include_top=False for a backbone with your own head)", num_classes,
                          shown=f"num_classes={num_classes!r}, weights={self.path!r} with "
                          f"{self.num_classes} classes")


def read_timm_weights(weights: str | os.PathLike[str]) -> TimmWeights:
    """Reads a timm MobileNet V1 file (a path, or a Hub name it downloads) and checks its tensors.

    Args:
        weights: the path of a ``.safetensors`` file of a timm MobileNet V1
            ``state_dict``, or a Hub name of `TIMM_VARIANTS`.

    Returns:
        A `TimmWeights`: the tensors and the network they fit.

    Raises:
        ValueError: the file is unreadable, or its tensors are not those of a
            timm MobileNet V1 (the message names the first that is not).
    """
    path = timm_weights_path(weights)
    tensors = _read_safetensors(path)
    stem = tensors.get("conv_stem.weight")
    if stem is None or stem.ndim != 4 or stem.shape[0] % 8:
        raise invalid("weights", "", path, problem=f"{path!r} does not hold timm MobileNet V1 "
                      "weights (no `conv_stem.weight` of 8k output channels)")
    alpha = stem.shape[0] / STEM.filters
    head = tensors.get("conv_head.weight")
    head_filters = None if head is None else int(head.shape[0])
    classifier = tensors.get("classifier.weight")
    num_classes = None if classifier is None else int(classifier.shape[0])
    expected = timm_state_dict_shapes(alpha, head_filters, num_classes)
    floats = {name: array for name, array in tensors.items()
              if not name.endswith("num_batches_tracked")}
    for name in sorted(set(expected) | set(floats)):
        found = tuple(floats[name].shape) if name in floats else None
        if found != expected.get(name):
            problem = (f"has no tensor {name}" if found is None
                       else f"has an unexpected tensor {name}" if name not in expected
                       else f"holds {name} of shape {found}, where alpha={alpha:g} has "
                       f"{expected[name]}")
            raise invalid("weights", "", path, problem=f"{path!r} does not hold timm MobileNet "
                          f"V1 weights: it {problem}")
    return TimmWeights(path, floats, alpha, head_filters, num_classes)


def timm_model_options(weights: str | os.PathLike[str] | TimmWeights) -> dict[str, Any]:
    """The `MobileNetV1` arguments that build timm's network for these weights.

    Args:
        weights: a Hub name, a ``.safetensors`` path or a `TimmWeights`.

    Returns:
        ``{"alpha", "head_filters", "padding", "batch_norm_epsilon",
        "activation"}``, to pass to `MobileNetV1` (e.g. by a trainer that
        builds its own model and copies the backbone's weights).

    Example:

    ```python
    from mobilenet.timm_weights import TIMM_VARIANTS, TimmWeights, timm_model_options

    TIMM_VARIANTS["timm/mobilenetv1_125.ra4_e3600_r224_in1k"].crop_fraction  # 0.9
    options = timm_model_options(TimmWeights("model.safetensors", {}, 1.25, None, 1000))
    options["padding"], options["batch_norm_epsilon"]  # ('symmetric', 1e-05)
    ```
    """
    read = weights if isinstance(weights, TimmWeights) else read_timm_weights(weights)
    return {"alpha": read.alpha, "head_filters": read.head_filters, "padding": TIMM_PADDING,
            "batch_norm_epsilon": TIMM_BATCH_NORM_EPSILON, "activation": TIMM_ACTIVATION}


def _conv_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch's (out, in, kh, kw) to Keras' (kh, kw, in, out)."""
    return np.transpose(weight, (2, 3, 1, 0))


def _batch_norm(tensors: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """Keras' [gamma, beta, moving_mean, moving_variance] from PyTorch's BatchNorm2d."""
    return [tensors[f"{prefix}.{leaf}"] for leaf in ("weight", "bias", "running_mean", "running_var")]


def load_timm_weights(model: Any, weights: TimmWeights) -> None:
    """Fills a `MobileNetV1` model built for ``weights`` (`timm_model_options`) with its tensors.

    Args:
        model: a standard `MobileNetV1` (``separable=True``, ``shallow=False``)
            of the file's alpha and head conv; with or without the classifier
            ``fc`` (a file's classifier is skipped without one).
        weights: what `read_timm_weights` returned.
    """
    tensors = weights.tensors
    _, *blocks = layer_table(weights.alpha)
    pairs = [
        ("conv1", [_conv_kernel(tensors["conv_stem.weight"])]),
        ("conv1_bn", _batch_norm(tensors, "bn1")),
    ]
    for spec, prefix in zip(blocks, _block_prefixes()):
        block = model.get_layer(spec.name)
        block.depthwise.set_weights([np.transpose(tensors[f"{prefix}.conv_dw.weight"], (2, 3, 0, 1))])
        block.depthwise_bn.set_weights(_batch_norm(tensors, f"{prefix}.bn1"))
        block.pointwise.set_weights([_conv_kernel(tensors[f"{prefix}.conv_pw.weight"])])
        block.pointwise_bn.set_weights(_batch_norm(tensors, f"{prefix}.bn2"))
    if weights.head_filters:
        pairs += [("head_conv", [_conv_kernel(tensors["conv_head.weight"])]),
                  ("head_bn", _batch_norm(tensors, "bn2"))]
    names = {layer.name for layer in model.layers}
    if "fc" in names:
        pairs.append(("fc", [tensors["classifier.weight"].T, tensors["classifier.bias"]]))
    for name, values in pairs:
        model.get_layer(name).set_weights(values)


# Blocks 1..13 fill timm's five stages exactly.
assert sum(_STAGE_SIZES) == len(BLOCKS)
