"""Your own images, as a user runs them: one command per new process, through the console script.

train on class folders -> evaluate -> export int8 (calibrated on the same
folders) to .tflite and .onnx -> predict a JPEG with each file, which must
print the folders' class names; then fine-tuning from that model offline, and
every bad folder refused with one line, exit 2 and nothing written.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.console import console_script
from tests.image_folders import CLASSES, picture, save, write_pets

# Slow (about 4 minutes on 2 cores): .ci/run runs it in its own step.
pytestmark = [pytest.mark.xdist_group("own_images"), pytest.mark.tf_only, pytest.mark.slow]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    return subprocess.run([console_script(), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("own")
    write_pets(work / "pets", per_class=16)
    done = _run(["train", "--data-dir", "pets", "--image-size", "32", "--epochs", "4",
                 "--alpha", "0.25", "--batch-size", "8", "--learning-rate", "0.05",
                 "--validation-fraction", "0.25", "--output-dir", "run"], work)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, done


def test_train_reports_on_the_held_out_images_with_the_folder_names(trained):
    work, done = trained
    assert "validation accuracy:" in done.stdout and "on 12 images" in done.stdout
    for name in CLASSES:
        assert f"  {name} " in done.stdout
    report = json.loads((work / "run" / "test.json").read_text())
    assert report["class_names"] == list(CLASSES)
    assert json.loads((work / "run" / "run.json").read_text())["class_names"] == list(CLASSES)


def test_evaluate_in_a_new_process_names_classes_and_worst_files(trained):
    work, _ = trained
    done = _run(["evaluate", "run/final.keras", "--data-dir", "pets", "--errors", "2",
                 "--top-k", "2", "--json", "eval.json"], work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy:" in done.stdout and "on 48 images" in done.stdout and "top-2" in done.stdout
    report = json.loads((work / "eval.json").read_text())
    assert report["class_names"] == list(CLASSES) and report["num_examples"] == 48
    wrong = [line for line in done.stdout.splitlines() if line.startswith("  wrong: ")]
    assert len(wrong) == min(2, len(report["errors"]))
    for line, error in zip(wrong, report["errors"]):
        assert error["path"] in line and error["path"].startswith("pets")


@pytest.mark.parametrize("output", ["model.tflite", "model.onnx"])
def test_exported_int8_files_predict_with_the_folder_names(trained, output):
    if output.endswith(".onnx"):
        pytest.importorskip("onnxruntime")
    work, _ = trained
    done = _run(["export", "run/final.keras", output, "--int8", "--calibration-dir", "pets",
                 "--verify"], work)
    assert done.returncode == 0, done.stderr[-3000:]
    # A photo of a red thing, as a JPEG, classified by the .keras and the int8 file.
    save(picture(2, np.random.default_rng(9), 64, 48), work / "photo.jpg")
    printed = {}
    for model in ("run/final.keras", output):
        done = _run(["predict", model, "photo.jpg", "--top", "3", "--json"], work)
        assert done.returncode == 0, done.stderr[-3000:]
        (result,) = json.loads(done.stdout)
        printed[model] = [score["name"] for score in result["top"]]
    for names in printed.values():
        assert sorted(names) == sorted(CLASSES)


def test_fine_tuning_from_a_model_of_other_classes_offline(trained):
    work, _ = trained
    write_pets(work / "two", per_class=8, classes=("cyan", "magenta"))
    done = _run(["train", "--data-dir", "two", "--image-size", "32", "--weights", "run/final.keras",
                 "--freeze-epochs", "1", "--epochs", "2", "--alpha", "0.25", "--batch-size", "8",
                 "--output-dir", "tuned"], work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "tuned" / "head.keras").is_file()
    rows = json.loads((work / "tuned" / "history.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2]
    from mobilenet.class_names import get_class_names

    assert get_class_names(work / "tuned" / "final.keras") == ("cyan", "magenta")


def _bad(root: Path, case: str) -> None:
    if case == "empty":
        root.mkdir()
    elif case == "one class":
        write_pets(root, 2, classes=("cat",))
    elif case == "empty class":
        write_pets(root, 2)
        (root / "zebra").mkdir()
    elif case == "not an image":
        write_pets(root, 2)
        (root / "red" / "broken.png").write_text("not a png")
    elif case == "splits differ":
        write_pets(root / "train", 2)
        write_pets(root / "val", 2, classes=("blue", "green"))


@pytest.mark.parametrize("case, message", [
    ("empty", "no sub-folders"),
    ("one class", "at least two class folders"),
    ("empty class", "zebra' holds none"),
    ("not an image", "broken.png' (not a JPEG, PNG, GIF, BMP or WebP file)"),
    ("splits differ", "missing red"),
])
def test_bad_folders_get_one_line_exit_2_and_nothing_written(tmp_path, case, message):
    _bad(tmp_path / "data", case)
    done = _run(["train", "--data-dir", "data", "--output-dir", "out", "--epochs", "1"], tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mobilenet train: error: ")
    assert "`--data-dir`" in lines[0] and message in lines[0]
    assert not (tmp_path / "out").exists()
