"""Tests of the `mobilenet train` and `mobilenet evaluate` commands, run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mobilenet.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_help_explains_the_options_without_loading_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "from mobilenet.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main(['train', '--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0\n"
        "print(out.getvalue())\n"
        "print('tensorflow loaded:', 'tensorflow' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 0, completed.stderr
    text = completed.stdout
    for option in ("--data-dir", "--epochs", "--alpha", "--batch-size", "--output-dir", "--resume",
                   "--limit", "--strategy", "--mixed-precision", "--early-downsampling"):
        assert option in text
    assert "tensorflow loaded: False" in text


def test_evaluate_help(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["evaluate", "--help"])
    assert exit.value.code == 0
    assert "MODEL.keras" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["train", "--strategy", "gpus"], ["train", "--early-downsampling", "3"], ["train", "--epochs", "x"], ["train", "--limit", "0"],
     ["evaluate"]],
)
def test_bad_options_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_train_then_evaluate_end_to_end(cifar10_subset_dir, tmp_path, capsys):
    output_dir = tmp_path / "run"
    code = main([
        "train", "--data-dir", str(cifar10_subset_dir), "--epochs", "1", "--limit", "48",
        "--alpha", "0.25", "--early-downsampling", "4", "--batch-size", "16",
        "--output-dir", str(output_dir),
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert "test accuracy:" in out and "on 48 images" in out
    for name in ("best.keras", "final.keras", "history.csv", "history.json", "test.json"):
        assert (output_dir / name).is_file()
    trained = json.loads((output_dir / "test.json").read_text())
    assert trained["num_examples"] == 48
    assert len(json.loads((output_dir / "history.json").read_text())) == 1

    report_path = tmp_path / "report.json"
    code = main([
        "evaluate", str(output_dir / "final.keras"), "--data-dir", str(cifar10_subset_dir),
        "--limit", "48", "--json", str(report_path),
    ])
    assert code == 0
    out = capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["num_examples"] == 48
    # The saved final model scores what the trained one scored in memory.
    assert report["accuracy"] == pytest.approx(trained["accuracy"])
    assert f"{report['accuracy']:.2%}" in out
    assert sum(map(sum, report["confusion_matrix"])) == 48
