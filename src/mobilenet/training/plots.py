"""Plots of a training run: loss and accuracy curves, the confusion matrix (matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mobilenet._files import atomic_target
from mobilenet.training.evaluation import EvaluationReport

__all__ = ["PLOT_EXTRA_HINT", "plot_confusion_matrix", "plot_history", "save_plots"]

#: How to get plotting, for messages.
PLOT_EXTRA_HINT = "install the `plot` extra: pip install 'mobilenet[plot]'"



def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"Plotting needs matplotlib: {PLOT_EXTRA_HINT}"
        ) from error
    return plt


def plot_history(history: list[dict[str, float]], path: str | os.PathLike) -> Path:
    """Saves loss and accuracy curves of a training history as a PNG.

    Args:
        history: rows as in ``TrainResult.history`` or ``history.json``.
        path: the PNG to write (atomically).

    Returns:
        The path written.

    Example:

    ```python
    from mobilenet.training import plot_history

    history = [  # as in `train(...).history` or history.json
        {"epoch": 1, "loss": 2.1, "accuracy": 0.25, "val_loss": 1.9, "val_accuracy": 0.31},
        {"epoch": 2, "loss": 1.7, "accuracy": 0.38, "val_loss": 1.6, "val_accuracy": 0.42},
    ]
    plot_history(history, "runs/cifar10/curves.png")
    ```
    """
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix in ("", "val_"):
            values = [row.get(prefix + metric) for row in history]
            if any(v is not None for v in values):
                axis.plot(epochs, values, label=(prefix or "train_") + metric)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    return _save_figure(plt, figure, Path(path))


def plot_confusion_matrix(report: EvaluationReport, path: str | os.PathLike) -> Path:
    """Saves the confusion matrix of an `EvaluationReport` as a PNG.

    Args:
        report: the result of `evaluate`.
        path: the PNG to write (atomically).

    Returns:
        The path written.

    Example:

    ```python
    from mobilenet.datasets import CIFAR10_CLASS_NAMES, load_cifar10
    from mobilenet.training import build_model, evaluate, plot_confusion_matrix

    _, (x_test, y_test) = load_cifar10("../shared/data/cifar10-subset")
    model = build_model(alpha=0.25, class_names=CIFAR10_CLASS_NAMES)  # untrained: use yours
    plot_confusion_matrix(evaluate(model, x_test[:100], y_test[:100]), "confusion.png")
    ```
    """
    plt = _pyplot()
    matrix = report.confusion_matrix
    names = list(report.class_names or report.per_class_accuracy)
    side = min(30, max(6, 0.4 * len(names) + 2))
    figure, axis = plt.subplots(figsize=(side + 1, side))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis)
    ticks = range(len(names))
    axis.set_xticks(ticks, names, rotation=45, ha="right")
    axis.set_yticks(ticks, names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if len(names) <= 30:  # beyond, the counts would not fit their cells
        for i in ticks:
            for j in ticks:
                axis.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7)
    axis.set_title(f"accuracy {report.accuracy:.1%}")
    return _save_figure(plt, figure, Path(path))


def save_plots(
    history: list[dict[str, float]], report: EvaluationReport | None, output_dir: str | os.PathLike
) -> list[Path]:
    """Saves ``curves.png`` and ``confusion.png`` in ``output_dir`` if matplotlib is installed.

    Args:
        history: training history rows.
        report: optional `EvaluationReport` for the confusion matrix.
        output_dir: the folder to write into.

    Returns:
        The paths written; empty without matplotlib (the ``plot`` extra).

    Example:

    ```python
    from mobilenet.datasets import CIFAR10_CLASS_NAMES, load_cifar10
    from mobilenet.training import build_model, evaluate, save_plots

    _, (x_test, y_test) = load_cifar10("../shared/data/cifar10-subset")
    model = build_model(alpha=0.25, class_names=CIFAR10_CLASS_NAMES)
    report = evaluate(model, x_test[:100], y_test[:100])
    history = [{"epoch": 1, "loss": 2.1, "accuracy": 0.25}, {"epoch": 2, "loss": 1.7, "accuracy": 0.38}]
    save_plots(history, report, "runs/cifar10")  # runs/cifar10/curves.png and confusion.png
    ```
    """
    try:
        _pyplot()
    except ImportError:
        return []
    output_dir = Path(output_dir)
    written = [plot_history(history, output_dir / "curves.png")] if history else []
    if report is not None:
        written.append(plot_confusion_matrix(report, output_dir / "confusion.png"))
    return written


def _save_figure(plt: Any, figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.tight_layout()
        with atomic_target(path, suffix=".png") as temporary:
            figure.savefig(temporary, format="png", dpi=100)
    finally:
        plt.close(figure)
    return path
