"""Runs examples/cifar10.py as a user would, on a tiny slice of the shared subset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("validation_fraction", [None, "0.25"])
def test_example_runs_and_prints_test_accuracy(cifar10_subset_dir, tmp_path, validation_fraction):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable, str(REPO_ROOT / "examples" / "cifar10.py"),
        "--data-dir", str(cifar10_subset_dir), "--epochs", "1", "--limit", "40",
        "--alpha", "0.25", "--batch-size", "20", "--seed", "1", "--output-dir", str(tmp_path / "run"),
    ]
    if validation_fraction is not None:
        command += ["--validation-fraction", validation_fraction]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "40 training images, 40 test images" in completed.stdout
    assert "test accuracy:" in completed.stdout
    assert (tmp_path / "run" / "best.keras").is_file()
    (row,) = json.loads((tmp_path / "run" / "history.json").read_text())
    if validation_fraction is None:
        # The main job trains on every training image: nothing is held out to validate on.
        assert "val_accuracy" not in row
    else:
        assert "val_accuracy" in row
