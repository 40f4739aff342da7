"""Callbacks of a training run: its history files, its best checkpoint, its time budget."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from mobilenet._files import atomic_save_model, atomic_write_text
from mobilenet.schedules import WarmupCosineDecay

__all__ = ["BestCheckpoint", "HISTORY_CSV", "HISTORY_JSON", "HistoryWriter", "TimeBudget", "read_history"]

HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"


def read_history(output_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of ``history.json`` in ``output_dir`` (empty if there is none)."""
    path = Path(output_dir) / HISTORY_JSON
    if not path.is_file():
        return []
    return json.loads(path.read_text())


class HistoryWriter(keras.callbacks.Callback):
    """Keeps one row per finished epoch in history.json and history.csv, written atomically.

    Args:
        output_dir: the folder of the two files; rows already there are kept
            (a resumed run), and an epoch run again replaces its row.
    """

    def __init__(self, output_dir: str | os.PathLike) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.rows: list[dict[str, float]] = read_history(self.output_dir)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        # The rate the next step will use, from the schedule if there is one.
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.rows = self.rows[:epoch] + [row]
        atomic_write_text(self.output_dir / HISTORY_JSON, json.dumps(self.rows, indent=1))
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.output_dir / HISTORY_CSV, buffer.getvalue())


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model atomically to ``path`` whenever ``monitor`` reaches a new maximum.

    Args:
        path: the ``.keras`` file.
        monitor: the log to maximise, e.g. ``"val_accuracy"``.
        best: the best value so far (from a resumed run's history).
    """

    def __init__(self, path: str | os.PathLike, monitor: str, best: float = -math.inf) -> None:
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.best = best

    def restart(self) -> None:
        """Forgets the best so far: the next epoch's model is saved whatever its value."""
        self.best = -math.inf

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and float(value) > self.best:
            self.best = float(value)
            atomic_save_model(self.model, self.path)


class TimeBudget(keras.callbacks.Callback):
    """Ends training in time: fewer epochs when the planned ones would not fit.

    After every epoch it estimates how many epochs fit in what is left of
    ``seconds`` (from the median epoch time, the first epoch left out once
    there are others, as it also builds the graph) and plans the run for
    ``min(epochs, what fits)``, moving the end of a `WarmupCosineDecay`
    schedule with it, so the learning rate still decays to 0 at the end.

    Args:
        seconds: the wall-clock budget of this ``fit`` call.
        epochs: the planned total epochs.
        steps_per_epoch: steps in one epoch (to move the schedule's end).
        schedule: optional `WarmupCosineDecay` to shorten.
    """

    def __init__(
        self, seconds: float, epochs: int, steps_per_epoch: int = 1,
        schedule: WarmupCosineDecay | None = None,
    ) -> None:
        super().__init__()
        self.seconds = float(seconds)
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.schedule = schedule
        self.planned_epochs = int(epochs)
        self.durations: list[float] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        self.durations.append(now - self.epoch_start)
        # The first epoch also builds the graph: leave it out once others are timed.
        typical = float(np.median(self.durations[1:] or self.durations))
        left = self.start + self.seconds - now
        fits = epoch + 1 + int(left // typical)
        epochs = max(epoch + 1, min(self.planned_epochs, fits))
        if epochs != self.epochs and self.schedule is not None:
            self.schedule.total_steps.assign(float(epochs * self.steps_per_epoch))
        self.epochs = epochs
        if epoch + 1 >= self.epochs:
            self.model.stop_training = True

    @property
    def stopped(self) -> bool:
        """Whether the budget cut the run short of its planned epochs."""
        return self.epochs < self.planned_epochs
