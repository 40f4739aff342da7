"""The training recipe: every knob of `mobilenet.training.train`, in one frozen dataclass.

`train` takes a `Recipe` (``recipe=RECIPE`` by default); change a knob with
``dataclasses.replace``. A recipe checks itself when it is made, so a bad
value fails before any data is read, with an error that names the field as
the argument (`mobilenet._validation.InvalidArgument`), which the command
line turns into its flag. ``mobilenet train`` builds its flags from these
fields, and ``examples/cifar10.py``, the docs and the benchmarks read the
values from `RECIPE` rather than copying them. The module imports nothing
heavy, so ``mobilenet train --help`` shows the defaults without loading
TensorFlow.

```python
import dataclasses

from mobilenet.training import RECIPE

RECIPE.learning_rate, RECIPE.batch_size  # (0.15, 64)
short = dataclasses.replace(RECIPE, epochs=5, alpha=0.25)
```
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from mobilenet._validation import check_bool, check_int, check_number, check_positive_int, invalid
from mobilenet.preprocessing import CENTRAL_CROP_FRACTION, SMALL_IMAGE_MAX

__all__ = ["MAX_IMAGE_SIZE", "RECIPE", "Recipe"]

#: The largest ``image_size`` `train` accepts. A MobileNet V1 (alpha 1) keeps
#: about 15 million activations per 224 px image for the backward pass (each
#: convolution's, BatchNorm's and ReLU's output: ~60 MB in float32), growing
#: with the side squared: about 1.3 GB per image at 1024 px, so a batch of 64
#: needs ~80 GB, more than one accelerator holds. Larger sides are refused
#: before any work, rather than running out of memory in the first step.
MAX_IMAGE_SIZE = 1024

#: What ``cache`` accepts besides a file path prefix.
CACHE_CHOICES = ("auto", "memory", None)
#: What ``mixed_precision`` accepts.
MIXED_PRECISION_CHOICES = (False, True, "auto", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How `train` trains: the model, the data pipeline, the schedule and the run.

    Defaults are measured on CIFAR-10 (``docs/cifar10.md``) unless said
    otherwise. Each knob is checked when the recipe is made (`validate`).

    Attributes:
        alpha: width multiplier of the model `train` builds.
        early_downsampling: 4, 2 or 1, see `mobilenet.MobileNetV1`; None
            picks 2 for images up to ``small_image_max`` px, else 4.
        shallow: the paper's Shallow MobileNet (blocks 7-11 removed); None
            picks it for images up to ``small_image_max`` px.
        dropout: dropout before the classifier.
        image_size: the model's square input side; None: an array's own
            size, ``file_image_size`` for files and datasets, the model's
            with a ``model``. At most `MAX_IMAGE_SIZE`.
        validation_fraction: share of each class held out for validation
            when no validation data is given (0 trains on everything).
        batch_size: global batch size. An epoch's short last batch is kept
            unless it is under a quarter of a batch (``docs/own-images.md``).
        augment: random crops and flips of training images.
        random_erasing: share of training images with a rectangle erased.
        cutmix: CutMix within each training batch: True, False or "auto"
            (on for runs of ``cutmix_min_epochs`` planned epochs or more).
        cache: for image files: "auto" (in memory when that takes at most
            ``auto_cache_bytes``, else streamed), "memory", None (always
            stream) or a file path prefix (``tf.data``'s cache on disk).
        epochs: total float epochs, ``freeze_epochs`` included,
            ``qat_epochs`` not.
        freeze_epochs: with pretrained ``weights``, epochs that train only
            the new classifier, the backbone frozen with its BatchNorm in
            inference mode (0: fine-tune everything from the start).
        qat_epochs: epochs of quantization-aware training after the float
            ones (0: none; `mobilenet.quantization`).
        learning_rate: peak learning rate of SGD (Nesterov momentum 0.9),
            of the frozen phase with ``weights``.
        fine_tune_learning_rate: the peak rate of fine-tuning with
            ``weights``; None: ``learning_rate`` x ``fine_tune_factor``.
        qat_learning_rate: the peak rate of quantization-aware training;
            None: ``learning_rate`` x ``qat_factor``.
        warmup_epochs: epochs of linear warm-up, at most a quarter of a phase.
        weight_decay: decoupled weight decay on the kernels, except depthwise.
        label_smoothing: label smoothing of the cross-entropy.
        mixed_precision: False, True/"auto" (mixed_float16 on GPU,
            mixed_bfloat16 otherwise), "mixed_float16" or "mixed_bfloat16".
        time_budget: optional seconds: the run is cut to the epochs that
            fit, the learning-rate decay ending at the new last epoch. Not
            with ``freeze_epochs`` or ``qat_epochs``.
        seed: seed of the weights, split, shuffle and augmentation (set
            process-wide with ``keras.utils.set_random_seed``).
        deterministic: make the run repeat exactly (TensorFlow's op
            determinism, for the rest of the process).

    The constants below are the recipe's measured choices, not knobs the
    command line offers:

    Attributes:
        bn_momentum: momentum of every BatchNorm's moving statistics (0.9
            follows a short run's weights within an epoch; Keras' 0.99 lags).
        fine_tune_factor: with pretrained ``weights``, the fine-tuning rate
            is ``learning_rate`` times this: the full rate would scramble the
            pretrained features while the new classifier is still random.
        qat_factor: the quantization-aware rate is ``learning_rate`` times
            this: QAT only adapts trained weights to int8 rounding.
        qat_batch_norm_freeze: the share of the QAT steps after which the
            BatchNorm statistics stop moving (Jacob et al. freeze them late).
        qat_range_freeze: the share of the QAT steps after which the
            activation ranges stop moving.
        cutmix_min_epochs: the shortest planned run that ``cutmix="auto"``
            turns CutMix on in.
        file_image_size: the input side for image files and datasets when
            ``image_size`` is None (the paper's 224).
        small_image_max: the largest input side trained with the 32x32
            recipe (Shallow MobileNet, early downsampling 2, pad-and-crop
            augmentation); larger inputs get the paper's network and the
            Inception-style random resized crop.
        padding: pixels of reflect padding before the small-image random crop.
        crop_area: the share of the image area a random resized crop covers
            (Inception's and TF-Slim's 0.08-1).
        crop_aspect_ratio: the crop's aspect ratio range (3/4 to 4/3).
        central_crop: the share of each side kept for evaluation of inputs
            above ``small_image_max`` (TF-Slim's 0.875: 224 from 256).
        interpolation: how evaluation resizes its crop (`mobilenet.preprocessing`);
            `train` takes the crop and interpolation of timm's weights when it
            starts from them (bicubic).
        evaluation_batch_size: the batch size of evaluation and validation.
        auto_cache_bytes: ``cache="auto"`` keeps a file dataset in memory
            after its first epoch when it needs at most this many bytes there.
        min_validation_images: the smallest validation share that picks
            ``best.keras``; a smaller one cannot tell epochs apart (one image
            is 2% of 50), so ``best.keras`` is then ``final.keras``.
        min_validation_per_class: the same, per class.
    """

    # The model.
    alpha: float = 0.5
    early_downsampling: int | None = None
    shallow: bool | None = None
    dropout: float = 0.2
    # The data.
    image_size: int | None = None
    validation_fraction: float = 0.1
    batch_size: int = 64
    augment: bool = True
    random_erasing: float = 0.0
    cutmix: bool | str = "auto"
    cache: str | None = "auto"
    # The schedule.
    epochs: int = 30
    freeze_epochs: int = 0
    qat_epochs: int = 0
    learning_rate: float = 0.15
    fine_tune_learning_rate: float | None = None
    qat_learning_rate: float | None = None
    warmup_epochs: int = 2
    weight_decay: float = 5e-3
    label_smoothing: float = 0.1
    # The run.
    mixed_precision: bool | str = False
    time_budget: float | None = None
    seed: int = 0
    deterministic: bool = False
    # Constants of the recipe.
    bn_momentum: float = 0.9
    fine_tune_factor: float = 0.1
    qat_factor: float = 0.01
    qat_batch_norm_freeze: float = 0.5
    qat_range_freeze: float = 0.75
    cutmix_min_epochs: int = 100
    file_image_size: int = 224
    small_image_max: int = SMALL_IMAGE_MAX
    padding: int = 4
    crop_area: tuple[float, float] = (0.08, 1.0)
    crop_aspect_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    central_crop: float = CENTRAL_CROP_FRACTION
    interpolation: str = "bilinear"
    evaluation_batch_size: int = 256
    auto_cache_bytes: int = 64 * 2**20
    min_validation_images: int = 50
    min_validation_per_class: int = 5

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> Recipe:
        """Checks every knob, and normalises numbers (an int learning rate becomes a float).

        Returns:
            The recipe itself.

        Raises:
            InvalidArgument: a bad value, naming its field as the argument.
        """
        set_ = object.__setattr__  # frozen: normalising is part of construction
        set_(self, "alpha", check_number(self.alpha, "alpha", low=0.0, low_open=True))
        if self.early_downsampling not in (None, 1, 2, 4) or isinstance(self.early_downsampling, bool):
            raise invalid("early_downsampling", "None, 4, 2 or 1", self.early_downsampling)
        if self.shallow is not None:
            check_bool(self.shallow, "shallow")
        set_(self, "dropout", check_number(self.dropout, "dropout", low=0.0, high=1.0))
        if self.image_size is not None:
            size = check_positive_int(self.image_size, "image_size")
            if size > MAX_IMAGE_SIZE:
                raise invalid(
                    "image_size", f"an integer from 1 to {MAX_IMAGE_SIZE} (a larger input needs "
                    "more memory for one batch's activations than an accelerator holds)", size,
                )
            set_(self, "image_size", size)
        set_(self, "validation_fraction", check_number(
            self.validation_fraction, "validation_fraction", low=0.0, high=1.0))
        set_(self, "batch_size", check_positive_int(self.batch_size, "batch_size"))
        check_bool(self.augment, "augment")
        set_(self, "random_erasing", check_number(self.random_erasing, "random_erasing",
                                                  low=0.0, high=1.0, high_open=False))
        if self.cutmix != "auto" and not isinstance(self.cutmix, bool):
            raise invalid("cutmix", 'True, False or "auto"', self.cutmix)
        if self.cache not in CACHE_CHOICES:
            if not isinstance(self.cache, (str, os.PathLike)) or not os.fspath(self.cache):
                raise invalid("cache", "'auto', 'memory', None or a file path prefix", self.cache)
            set_(self, "cache", os.fspath(self.cache))
        set_(self, "epochs", check_positive_int(self.epochs, "epochs"))
        set_(self, "freeze_epochs", check_int(self.freeze_epochs, "freeze_epochs", minimum=0))
        if self.freeze_epochs and self.freeze_epochs >= self.epochs:
            raise invalid("freeze_epochs", f"fewer than epochs ({self.epochs}), so fine-tuning "
                          "has epochs", self.freeze_epochs)
        set_(self, "qat_epochs", check_int(self.qat_epochs, "qat_epochs", minimum=0))
        for name in ("learning_rate", "fine_tune_learning_rate", "qat_learning_rate"):
            if name == "learning_rate" or getattr(self, name) is not None:
                set_(self, name, check_number(getattr(self, name), name, low=0.0, low_open=True))
        set_(self, "warmup_epochs", check_int(self.warmup_epochs, "warmup_epochs", minimum=0))
        set_(self, "weight_decay", check_number(self.weight_decay, "weight_decay", low=0.0))
        set_(self, "label_smoothing", check_number(self.label_smoothing, "label_smoothing",
                                                   low=0.0, high=1.0))
        if self.mixed_precision not in MIXED_PRECISION_CHOICES or (
                self.mixed_precision in (0, 1) and not isinstance(self.mixed_precision, bool)):
            raise invalid("mixed_precision", "False, True/'auto' (mixed_float16 on GPU, "
                          "mixed_bfloat16 on CPU/TPU), 'mixed_float16' or 'mixed_bfloat16'",
                          self.mixed_precision)
        if self.time_budget is not None:
            if self.qat_epochs:
                raise invalid("time_budget", "None with qat_epochs (the budget cuts a one-phase "
                              "run)", self.time_budget)
            if self.freeze_epochs:
                raise invalid("time_budget", "None with freeze_epochs (the budget cuts a "
                              "one-phase run)", self.time_budget)
            set_(self, "time_budget", check_number(self.time_budget, "time_budget", low=0.0,
                                                   low_open=True))
        set_(self, "seed", check_int(self.seed, "seed", minimum=0))
        check_bool(self.deterministic, "deterministic")
        return self

    def is_small(self, image_size: int) -> bool:
        """Whether inputs of side ``image_size`` get the small-image (32x32) recipe."""
        return image_size <= self.small_image_max

    def evaluation_crop(self, image_size: int) -> float:
        """The share of each side evaluation keeps at ``image_size``: all of it up to
        ``small_image_max``, ``central_crop`` above (the crop the trained model declares,
        `mobilenet.facts`)."""
        return 1.0 if self.is_small(image_size) else self.central_crop

    def uses_cutmix(self) -> bool:
        """Whether the run mixes batches with CutMix (``cutmix="auto"``: a long run)."""
        return self.epochs >= self.cutmix_min_epochs if self.cutmix == "auto" else self.cutmix

    def peak_rates(self, pretrained: bool) -> tuple[float, float, float]:
        """``(learning_rate, fine-tuning rate, QAT rate)``, the defaults derived from ``learning_rate``."""
        fine_tune = self.fine_tune_learning_rate
        if fine_tune is None:
            fine_tune = self.learning_rate * (self.fine_tune_factor if pretrained else 1.0)
        qat = self.qat_learning_rate
        if qat is None:
            qat = self.learning_rate * self.qat_factor
        return self.learning_rate, fine_tune, qat

    def knobs(self) -> dict[str, Any]:
        """The fields a run sets (every field above the recipe's constants), by name."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.name in KNOBS}


#: The fields of `Recipe` that are knobs of a run (the command line has a flag for each).
KNOBS = (
    "alpha", "early_downsampling", "shallow", "dropout", "image_size", "validation_fraction",
    "batch_size", "augment", "random_erasing", "cutmix", "cache", "epochs", "freeze_epochs",
    "qat_epochs", "learning_rate", "fine_tune_learning_rate", "qat_learning_rate",
    "warmup_epochs", "weight_decay", "label_smoothing", "mixed_precision", "time_budget",
    "seed", "deterministic",
)

#: The recipe `train` uses.
RECIPE = Recipe()
