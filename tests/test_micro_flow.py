"""A microcontroller user's flow, one command per new process, through the console script.

Train on a 2-class image folder at 96x96 (vehicles against animals from the
CIFAR-10 subset, standing in for Visual Wake Words), export for TensorFlow
Lite Micro with verification in its interpreter, write the C array, profile
the file, and check in a fresh script that the array's bytes are the file's
and that TFLM's smallest arena is within the estimate.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.micro_data import VEHICLES

BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


def _write_folder(root: Path, data_dir: Path, per_class: int) -> Path:
    """vehicles/ and animals/ PNG folders from the subset's first training images."""
    from PIL import Image

    from mobilenet.cifar10 import load_cifar10

    (images, labels), _ = load_cifar10(data_dir)
    counts = {"vehicles": 0, "animals": 0}
    for image, label in zip(images, labels):
        name = "vehicles" if label in VEHICLES else "animals"
        if counts[name] < per_class:
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / name / f"{counts[name]}.png")
            counts[name] += 1
    return root


@pytest.mark.slow  # about 3 minutes on 2 shared cores: five TensorFlow processes and a training run
def test_train_export_for_micro_c_array_and_arena(cifar10_subset_dir, tmp_path):
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but the tflite-micro package (the micro extra) is not installed")
        pytest.skip('the tflite-micro package is not installed (pip install "mobilenet[micro]")')
    mobilenet = str(BIN / "mobilenet")
    folder = _write_folder(tmp_path / "images", cifar10_subset_dir, per_class=120)
    trained = _run([mobilenet, "train", "--data-dir", str(folder), "--image-size", "96",
                    "--alpha", "0.25", "--epochs", "2", "--batch-size", "32", "--seed", "1",
                    "--output-dir", "run"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    model = next((tmp_path / "run").glob("*.keras"))

    exported = _run([mobilenet, "export", str(model), "person.tflite", "--target", "micro",
                     "--calibration-dir", str(folder), "--verify"], tmp_path)
    assert exported.returncode == 0, exported.stderr[-2000:]
    out = exported.stdout
    assert "int8 input and output" in out
    assert "input: int8, scale 1, zero point -128" in out and "pixel - 128" in out
    agreement = re.search(r"top-1 agreement ([\d.]+)% with the Keras model, ([\d.]+)% with LiteRT", out)
    assert agreement, out
    assert float(agreement.group(1)) >= 90 and float(agreement.group(2)) >= 95
    estimate = int(re.search(r"tensor arena: ([\d,]+) bytes", out).group(1).replace(",", ""))
    assert "(the offline plan in the file, against" in out and "ops: " in out

    array = _run([mobilenet, "export", "person.tflite", "person_model.cc"], tmp_path)
    assert array.returncode == 0, array.stderr[-2000:]
    assert "person_model.h" in array.stdout and (tmp_path / "person_model.h").is_file()
    # A .c OUTPUT is C11 (issue 29, item 8).
    c_array = _run([mobilenet, "export", "person.tflite", "person_c.c"], tmp_path)
    assert c_array.returncode == 0, c_array.stderr[-2000:]
    if shutil.which("gcc") is not None:
        compiled = _run(["gcc", "-std=c11", "-Wall", "-Werror", "-c", "person_c.c"], tmp_path)
        assert compiled.returncode == 0, compiled.stderr[-2000:]

    profiled = _run([mobilenet, "profile", "person.tflite"], tmp_path)
    assert profiled.returncode == 0, profiled.stderr[-2000:]
    assert f"tensor arena (RAM): {estimate:,} bytes" in profiled.stdout

    check = _run([sys.executable, "-c", textwrap.dedent(f"""
        from pathlib import Path
        from mobilenet.export.micro import read_c_array, smallest_arena
        data = Path("person.tflite").read_bytes()
        assert read_c_array("person_model.cc") == data
        print(smallest_arena(data))
    """)], tmp_path)
    assert check.returncode == 0, check.stderr[-2000:]
    smallest = int(check.stdout.split()[-1])
    assert smallest <= estimate <= 1.10 * smallest, (smallest, estimate)


def test_micro_export_errors_name_the_flag(tmp_path):
    mobilenet = str(BIN / "mobilenet")
    cases = [
        (["export", "m.keras", "m.cc", "--target", "litert"], "--target"),
        (["export", "m.keras", "m.tflite", "--target", "micro", "--io-type", "uint8"], "--io-type"),
        # A missing model is named before calibration images are asked for: a
        # quantization-aware model needs none (test_quantization.py, a float one).
        (["export", "m.keras", "m.tflite", "--target", "micro"], "MODEL"),
        (["export", "m.keras", "m.onnx", "--target", "micro"], "OUTPUT"),
        (["export", "m.tflite", "m.cc", "--memory-plan", "greedy"], "--memory-plan"),
        (["profile", "m.tflite", "--alpha", "0.5"], "--alpha"),
    ]
    for argv, flag in cases:
        completed = _run([mobilenet, *argv], tmp_path)
        lines = completed.stderr.strip().splitlines()
        assert completed.returncode == 2, (argv, completed.stderr)
        assert len(lines) == 1 and f"`{flag}`" in lines[0], (argv, lines)
        assert not list(tmp_path.iterdir())
