"""Tests of `mobilenet.schedules.WarmupCosineDecay` and the training callbacks."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mobilenet.schedules import WarmupCosineDecay
from mobilenet.training import TimeBudget

def test_warmup_cosine_schedule_by_hand():
    schedule = WarmupCosineDecay(0.1, warmup_steps=10, total_steps=110)
    values = {step: float(schedule(step)) for step in (0, 5, 10, 60, 110, 200)}
    assert values[0] == 0.0
    assert values[5] == pytest.approx(0.05)
    assert values[10] == pytest.approx(0.1)
    assert values[60] == pytest.approx(0.05, abs=1e-6)  # halfway down the cosine
    assert values[110] == pytest.approx(0.0, abs=1e-7)
    assert values[200] == pytest.approx(0.0, abs=1e-7)
    schedule.total_steps.assign(60.0)  # what TimeBudget does
    assert float(schedule(35)) == pytest.approx(0.05, abs=1e-6)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(restored(35)) == pytest.approx(0.05, abs=1e-6)


def test_time_budget_shortens_the_run_and_the_schedule(monkeypatch):
    clock = {"now": 0.0}
    from mobilenet.training import callbacks

    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock["now"])

    class TenSecondEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            clock["now"] += 10.0

    schedule = WarmupCosineDecay(0.1, 0, 20 * 2)
    budget = TimeBudget(35.0, epochs=20, steps_per_epoch=2, schedule=schedule)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(schedule), "mse")
    history = model.fit(np.zeros((4, 2)), np.zeros((4, 1)), batch_size=2, epochs=20, verbose=0,
                        callbacks=[TenSecondEpochs(), budget])
    assert len(history.history["loss"]) == 3  # 3 x 10 s fit in 35 s, a 4th would not
    assert budget.stopped
    assert float(keras.ops.convert_to_numpy(schedule.total_steps)) == 6.0
