"""Every path, as users run it: data x training mode x file format x command, in new processes.

For each kind of data (CIFAR-10 arrays from the python release, and class
folders of photo-sized JPEGs and PNGs under names with a space and a
non-ASCII letter) and each way of training (float, fine-tuned from a
``--weights`` file, and with ``--qat-epochs``), a ``mobilenet train`` run is
exported to every format (float and int8 ``.tflite``, float and int8
``.onnx``, the microcontroller's ``.cc`` C array, run in TFLite Micro) with
``--verify``, and each file is evaluated and asked to predict, one command per
new process through the installed console script. Where the paths meet, the
answers must agree:

- the same image gets the same probabilities from ``.keras`` and each float
  file (within 1e-3), and the int8 files agree with it on the top class as
  ``--verify`` measured (for a quantization-aware model, whose Keras model
  rounds activations as int8 does, the int8 files are the close ones and the
  float files agree on the class);
- ``evaluate``'s answer for each image is what ``predict`` prints for it, and
  its accuracy on a folder is the accuracy of ``predict``'s answers.

Slow (each of the six cells trains and runs about fifteen commands): CI runs
it in its slow step.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.console import console_script
from tests.image_folders import picture, save
from tests.inference_models import has_onnx

pytestmark = [pytest.mark.slow, pytest.mark.tf_only]

#: The photo folders' classes: one name with a space, one with a non-ASCII letter.
PHOTO_CLASSES = ("blue sky", "grün", "red")
#: CIFAR-10 test images written as PNG files for `predict` (evaluate reads the same from the batch).
CIFAR_FILES = 40


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    done = subprocess.run([console_script(), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=900)
    assert done.returncode == 0, f"mobilenet {' '.join(map(str, args))}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def data(tmp_path_factory, cifar10_subset_dir):
    """The two kinds of data, and the image files `predict` reads for each."""
    root = tmp_path_factory.mktemp("matrix")
    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("test", 6)):
        for label, name in enumerate(PHOTO_CLASSES):
            for index in range(count):
                rows, cols = (int(v) for v in rng.integers(160, 420, 2))
                suffix = "jpg" if index % 3 else "png"
                save(picture(label, rng, rows, cols), root / "photos" / split / name / f"{index}.{suffix}")
    from mobilenet.datasets import load_cifar10

    _, (x_test, y_test) = load_cifar10(cifar10_subset_dir)
    cifar_files = []
    for index in range(CIFAR_FILES):
        cifar_files.append(save(x_test[index], root / "cifar_png" / f"{index:03d}.png"))
    return {
        "cifar": {"flags": ["--data-dir", cifar10_subset_dir, "--limit", "400"],
                  "evaluate": ["--data-dir", cifar10_subset_dir, "--limit", str(CIFAR_FILES)],
                  "files": cifar_files, "calibration": cifar10_subset_dir, "root": root},
        "photos": {"flags": ["--data-dir", root / "photos", "--image-size", "96"],
                   "evaluate": ["--data-dir", root / "photos"],
                   "files": sorted((root / "photos" / "test").rglob("*.*")),
                   "calibration": root / "photos", "root": root},
    }


def _train(work: Path, kind: dict, mode: str, float_run: Path | None) -> Path:
    out = work / f"run-{mode}"
    flags = [*kind["flags"], "--alpha", "0.25", "--epochs", "2", "--batch-size", "16",
             "--output-dir", out, "--seed", "1"]
    if mode == "fine-tune":
        flags += ["--weights", float_run / "final.keras", "--epochs", "1"]
    if mode == "qat":
        flags += ["--qat-epochs", "1"]
    _run(["train", *flags], work)
    return out / "final.keras"


def _probabilities(done: subprocess.CompletedProcess) -> dict[str, dict[str, float]]:
    return {row["path"]: {s["name"]: s["probability"] for s in row["top"]}
            for row in json.loads(done.stdout)}


@pytest.fixture(scope="module")
def float_runs(data, tmp_path_factory):
    """The float run of each kind of data, which fine-tuning starts from: trained when first asked."""
    runs: dict[str, Path] = {}

    def run(name: str) -> Path:
        if name not in runs:
            runs[name] = _train(tmp_path_factory.mktemp(f"{name}-float"), data[name], "float",
                                None).parent
        return runs[name]

    return run


#: Each kind of data's cells on one xdist worker, so that its float run trains once.
CELLS = [pytest.param(kind, mode, marks=pytest.mark.xdist_group(f"matrix-{kind}"), id=f"{kind}-{mode}")
         for kind in ("cifar", "photos") for mode in ("float", "fine-tune", "qat")]


@pytest.mark.skipif(not has_onnx(), reason="needs the onnx extra")
@pytest.mark.parametrize(("kind_name", "mode"), CELLS)
def test_every_format_and_command_agree(kind_name, mode, data, float_runs, tmp_path):
    kind = data[kind_name]
    model = float_runs(kind_name) / "final.keras" if mode == "float" else \
        _train(tmp_path, kind, mode, float_runs(kind_name))
    calibration = ["--calibration-dir", kind["calibration"]]
    files = {"keras": model}
    agreement = {}
    for name, flags in (("float.tflite", []), ("int8.tflite", ["--int8"]),
                        ("float.onnx", []), ("int8.onnx", ["--int8"]), ("micro.cc", [])):
        done = _run(["export", model, tmp_path / name, *flags, *calibration, "--verify"], tmp_path)
        found = re.search(r"top-1 agreement ([\d.]+)%", done.stdout)
        assert found, done.stdout
        agreement[name] = float(found.group(1)) / 100
        files[name] = tmp_path / name
    # Float files follow the Keras model to float precision; int8 ones to the class, mostly.
    # A quantization-aware model is the exception: its Keras model rounds every activation to
    # int8 as the int8 files do, while its float files are the folded float graph without that
    # rounding, so there the int8 files are the ones that follow it.
    if mode == "qat":
        assert min(agreement["float.tflite"], agreement["float.onnx"]) >= 0.9, agreement
        assert min(agreement["int8.tflite"], agreement["int8.onnx"]) >= 0.9, agreement
    else:
        assert agreement["float.tflite"] == agreement["float.onnx"] == 1.0, agreement
    assert min(agreement["int8.tflite"], agreement["int8.onnx"], agreement["micro.cc"]) >= 0.8, \
        agreement

    images = [str(path) for path in kind["files"]]
    answers = {}
    for name, path in files.items():
        answers[name] = _probabilities(_run(["predict", path, *images, "--json", "--top", "3"],
                                            tmp_path))
        _run(["evaluate", path, *kind["evaluate"], "--json", tmp_path / f"{name}.json"], tmp_path)
        report = json.loads((tmp_path / f"{name}.json").read_text())
        _check_evaluate_is_predict(report, answers[name], kind_name, images)

    reference = answers["keras"]
    for name in ("float.tflite", "float.onnx") if mode != "qat" else ():
        for image in images:
            for label, probability in answers[name][image].items():
                assert abs(probability - reference[image][label]) < 1e-3, (name, image, label)
    for name in ("int8.tflite", "int8.onnx", "micro.cc"):
        same = np.mean([_top(answers[name][image]) == _top(reference[image]) for image in images])
        assert same >= agreement[name] - 0.15, (name, same, agreement[name])


def _top(scores: dict[str, float]) -> str:
    return max(scores, key=scores.get)


def _check_evaluate_is_predict(report: dict, answers: dict, kind_name: str, images: list[str]) -> None:
    """evaluate's answer for each image is predict's, and so is its accuracy on a folder."""
    rows = report["predictions"]
    if kind_name == "cifar":  # the first CIFAR_FILES test images, written as PNG files in order
        by_image = dict(zip(images, rows))
    else:
        by_image = {row["path"]: row for row in rows}
    assert sorted(by_image) == sorted(images)
    correct = []
    for image in images:
        row, answer = by_image[image], answers[image]
        assert row["predicted"] == _top(answer), image
        assert abs(row["confidence"] - answer[row["predicted"]]) < 1e-4, image
        if kind_name == "photos":
            correct.append(_top(answer) == Path(image).parent.name)
    if kind_name == "photos":
        assert report["accuracy"] == pytest.approx(np.mean(correct))
