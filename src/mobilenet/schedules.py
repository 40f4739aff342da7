"""Learning-rate schedules, registered so that compiled model files load anywhere."""

from __future__ import annotations

import math
from typing import Any

import keras

__all__ = ["WarmupCosineDecay"]


@keras.saving.register_keras_serializable(package="mobilenet")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak``, then cosine decay to 0 at ``total_steps``.

    ``total_steps`` lives in a variable, so `TimeBudget` can shorten a run
    that would not fit its budget and the decay still ends at 0.

    Args:
        peak: the learning rate at the end of the warm-up.
        warmup_steps: steps of linear warm-up.
        total_steps: steps at which the rate reaches 0.

    Example:

    ```python
    import keras
    from mobilenet.schedules import WarmupCosineDecay

    optimizer = keras.optimizers.SGD(WarmupCosineDecay(0.1, 100, 3000), momentum=0.9)
    ```
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int) -> None:
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = keras.Variable(
            float(total_steps), dtype="float32", trainable=False, name="total_steps"
        )

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        total = keras.ops.convert_to_tensor(self.total_steps)
        warmup = float(max(self.warmup_steps, 1))
        progress = keras.ops.clip(
            (step - self.warmup_steps) / keras.ops.maximum(total - self.warmup_steps, 1.0), 0.0, 1.0
        )
        cosine = 0.5 * self.peak * (1.0 + keras.ops.cos(math.pi * progress))
        return keras.ops.where(step < self.warmup_steps, self.peak * step / warmup, cosine)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": int(keras.ops.convert_to_numpy(self.total_steps)),
        }
