"""What `train` and `evaluate` print about a model's accuracy, and whether plots can be drawn."""

from __future__ import annotations

from typing import Any

__all__ = ["plots_missing", "print_report"]


def print_report(report: Any, what: str = "test", flip_tta: bool = False, errors: int = 0) -> None:
    """Prints an `EvaluationReport`: accuracy on ``what`` images, per class, and ``errors`` worst errors."""
    how = ", with flip TTA" if flip_tta else ""
    top = (f"; top-{report.top_k} {report.top_k_accuracy:.2%}"
           if report.top_k < len(report.class_names) else "")
    print(f"{what} accuracy: {report.accuracy:.2%} on {report.num_examples} images{how}{top}")
    width = max(11, *(len(name) + 1 for name in report.per_class_accuracy))
    for name, accuracy in report.per_class_accuracy.items():
        print(f"  {name:<{width}}{accuracy:7.1%}")
    for error in report.errors[:errors]:
        where = error.path if error.path is not None else f"image {error.index}"
        print(f"  wrong: {where}: {error.label}, predicted {error.predicted} "
              f"({error.confidence:.1%})")


def plots_missing() -> str | None:
    """Why plots cannot be drawn here, or None when matplotlib is installed."""
    import importlib.util

    from mobilenet.training.plots import PLOT_EXTRA_HINT

    if importlib.util.find_spec("matplotlib") is None:
        return f"matplotlib is not installed ({PLOT_EXTRA_HINT})"
    return None
