"""The training recipe: every default of `mobilenet.training.train`, in one place.

The command line, ``examples/cifar10.py``, the docs and the benchmarks read
these values from `RECIPE` rather than copying them. The module imports
nothing heavy, so ``mobilenet train --help`` shows the defaults without
loading TensorFlow.

```python
from mobilenet.training import RECIPE

RECIPE.learning_rate, RECIPE.batch_size  # (0.15, 64)
```
"""

from __future__ import annotations

import dataclasses

__all__ = ["RECIPE", "Recipe"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The defaults of `train`, measured on CIFAR-10 (``docs/cifar10.md``) unless said otherwise.

    Attributes:
        alpha: width multiplier of the model `train` builds.
        dropout: dropout before the classifier.
        bn_momentum: momentum of every BatchNorm's moving statistics (0.9
            follows a short run's weights within an epoch; Keras' 0.99 lags).
        epochs: total epochs.
        batch_size: global batch size.
        learning_rate: peak learning rate of SGD (Nesterov momentum 0.9).
        warmup_epochs: epochs of linear warm-up, at most a quarter of the run.
        weight_decay: decoupled weight decay on the kernels, except depthwise.
        label_smoothing: label smoothing of the cross-entropy.
        validation_fraction: share of each class held out for validation
            (the command line's default; `train` itself holds out this share).
        random_erasing: share of training images with a rectangle erased.
        cutmix_min_epochs: the shortest planned run that ``cutmix="auto"``
            turns CutMix on in.
        image_size: the input side a model trained on image files gets when
            none is asked for (the paper's 224).
        small_image_max: the largest input side trained with the 32x32
            recipe (Shallow MobileNet, early downsampling 2, pad-and-crop
            augmentation); larger inputs get the paper's network and the
            Inception-style random resized crop.
        padding: pixels of reflect padding before the small-image random crop.
        crop_area: the share of the image area a random resized crop covers,
            drawn from this range (Inception's and TF-Slim's 0.08-1).
        crop_aspect_ratio: the crop's aspect ratio range (3/4 to 4/3).
        central_crop: the share of each side kept for evaluation of inputs
            above ``small_image_max`` (TF-Slim's 0.875: 224 from 256).
        freeze_epochs: with pretrained ``weights``, epochs that train only
            the new classifier, the backbone frozen with its BatchNorm in
            inference mode (0: fine-tune everything from the start).
        fine_tune_factor: with pretrained ``weights``, the fine-tuning rate
            is ``learning_rate`` times this: the pretrained features are
            already good, and the full rate would scramble them in the first
            steps while the new classifier is still random.
        qat_epochs: epochs of quantization-aware training after the float
            ones (0: none; `mobilenet.quantization`).
        qat_factor: the peak learning rate of quantization-aware training is
            the float run's ``learning_rate`` times this: the float model is
            trained already, and QAT only adapts its weights to int8 rounding.
        qat_batch_norm_freeze: the share of the QAT steps after which the
            BatchNorm statistics stop moving (Jacob et al. freeze them late in
            training, so that the last steps train exactly the inference graph).
        qat_range_freeze: the share of the QAT steps after which the
            activation ranges stop moving.
        evaluation_batch_size: the batch size of evaluation and validation.
        auto_cache_bytes: `train` keeps a file dataset in memory after its
            first epoch when it needs at most this many bytes there (the
            decoded images at 64 px or less, else the files' bytes).
    """

    alpha: float = 0.5
    dropout: float = 0.2
    bn_momentum: float = 0.9
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 0.15
    warmup_epochs: int = 2
    weight_decay: float = 5e-3
    label_smoothing: float = 0.1
    validation_fraction: float = 0.1
    random_erasing: float = 0.0
    cutmix_min_epochs: int = 100
    image_size: int = 224
    small_image_max: int = 64
    padding: int = 4
    crop_area: tuple[float, float] = (0.08, 1.0)
    crop_aspect_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    central_crop: float = 0.875
    freeze_epochs: int = 0
    fine_tune_factor: float = 0.1
    qat_epochs: int = 0
    qat_factor: float = 0.01
    qat_batch_norm_freeze: float = 0.5
    qat_range_freeze: float = 0.75
    evaluation_batch_size: int = 256
    auto_cache_bytes: int = 64 * 2**20

    def is_small(self, image_size: int) -> bool:
        """Whether inputs of side ``image_size`` get the small-image (32x32) recipe."""
        return image_size <= self.small_image_max


#: The recipe `train` uses.
RECIPE = Recipe()
