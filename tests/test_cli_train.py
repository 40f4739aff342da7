"""Tests of the `mobilenet train` and `mobilenet evaluate` commands, run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mobilenet import training
from mobilenet.cli import build_parser, main
from mobilenet.datasets import ImageFolderSplits, load_cifar10

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
    out = capsys.readouterr().out
    assert "MODEL" in out and ".keras, .tflite or .onnx" in out


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

    # --flip-tta reports what evaluate(flip_tta=True) computes.
    code = main([
        "evaluate", str(output_dir / "final.keras"), "--data-dir", str(cifar10_subset_dir),
        "--limit", "48", "--flip-tta", "--json", str(report_path),
    ])
    assert code == 0
    assert "on 48 images, with flip TTA" in capsys.readouterr().out  # not mistaken for the plain figure
    _, (x_test, y_test) = load_cifar10(cifar10_subset_dir)
    expected = training.evaluate(output_dir / "final.keras", x_test[:48], y_test[:48], flip_tta=True)
    assert json.loads(report_path.read_text())["accuracy"] == pytest.approx(expected.accuracy)


def _one_error_line(capsys, prefix: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(prefix) and "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--learning-rate", "0"], "`--learning-rate`: expected a finite number > 0. Received: --learning-rate=0.0"),
        (["--time-budget", "-5"], "`--time-budget`: expected a finite number > 0"),
        (["--label-smoothing", "1.5"], "`--label-smoothing`: expected a number in [0, 1)"),
        (["--validation-fraction", "1"], "`--validation-fraction`"),
        (["--alpha", "-1"], "`--alpha`"),
        (["--seed", "-3"], "`--seed`"),
        (["--random-erasing", "2"], "`--random-erasing`: expected a number in [0, 1]. Received: --random-erasing=2.0"),
        (["--qat-epochs", "-1"], "`--qat-epochs`: expected an integer >= 0. Received: --qat-epochs=-1"),
        (["--qat-epochs", "1", "--qat-learning-rate", "0"], "`--qat-learning-rate`: expected a finite number > 0"),
        (["--qat-epochs", "1", "--time-budget", "60"], "`--time-budget`: expected None with qat_epochs"),
    ],
)
def test_bad_train_values_give_one_line_naming_the_flag(cifar10_subset_dir, tmp_path, capsys, extra, expected):
    code = main(["train", "--data-dir", str(cifar10_subset_dir), "--limit", "40",
                 "--output-dir", str(tmp_path / "run"), *extra])
    assert code == 2
    assert expected in _one_error_line(capsys, "mobilenet train: error:")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_bad_data_folders_give_one_line_naming_data_dir(tmp_path, capsys):
    assert main(["train", "--data-dir", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "r")]) == 2
    line = _one_error_line(capsys, "mobilenet train: error:")
    assert "`--data-dir`" in line and "cifar-10-batches-py" in line and "nowhere" in line

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(b"\x80\x03}q\x00(X")  # a truncated pickle
    assert main(["train", "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "r")]) == 2
    assert "Corrupt CIFAR-10 batch file" in _one_error_line(capsys, "mobilenet train: error:")
    assert not (tmp_path / "r").exists()


def test_evaluate_of_a_missing_or_corrupt_model_names_it(cifar10_subset_dir, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "absent.keras"), "--data-dir", str(cifar10_subset_dir)]) == 2
    assert "`MODEL`: expected an existing .keras file" in _one_error_line(capsys, "mobilenet evaluate: error:")
    (tmp_path / "cut.keras").write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    assert main(["evaluate", str(tmp_path / "cut.keras"), "--data-dir", str(cifar10_subset_dir)]) == 2
    assert "corrupt or truncated" in _one_error_line(capsys, "mobilenet evaluate: error:")


def test_unwritable_output_dir_is_one_line(cifar10_subset_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert main(["train", "--data-dir", str(cifar10_subset_dir), "--limit", "40",
                 "--output-dir", str(tmp_path / "file")]) == 2
    assert "`--output-dir`" in _one_error_line(capsys, "mobilenet train: error:")


def test_ctrl_c_says_how_to_resume_and_exits_130(cifar10_subset_dir, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", interrupted)
    assert main(["train", "--data-dir", str(cifar10_subset_dir), "--limit", "40",
                 "--output-dir", str(tmp_path / "run")]) == 130
    assert "--resume" in capsys.readouterr().err


def test_ctrl_c_in_the_final_evaluation_does_not_send_to_resume(cifar10_subset_dir, tmp_path, capsys,
                                                                 monkeypatch):
    from mobilenet import training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "evaluate", interrupted)
    assert main(["train", "--data-dir", str(cifar10_subset_dir), "--limit", "32", "--epochs", "1",
                 "--alpha", "0.25", "--batch-size", "16", "--validation-fraction", "0",
                 "--output-dir", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert "--resume" not in err and "training had finished" in err
    assert f"mobilenet evaluate {tmp_path / 'run' / 'final.keras'}" in err


class _Called(Exception):
    pass


def _train_call(monkeypatch, argv) -> dict:
    """The arguments `mobilenet train ARGV` calls `mobilenet.training.train` with (not training)."""
    asked = {}

    def record(data, **kwargs):
        asked.update(kwargs, data=data)
        raise _Called

    monkeypatch.setattr(training, "train", record)
    with pytest.raises(_Called):
        main(["train", *argv])
    return asked


@pytest.mark.parametrize("flags, expected", [
    ([], dict(shallow=None, early_downsampling=None, cutmix="auto", random_erasing=0.0,
              learning_rate=0.15)),
    (["--no-shallow", "--cutmix", "--random-erasing", "0.5"],
     dict(shallow=False, cutmix=True, random_erasing=0.5)),
    (["--no-cutmix", "--epochs", "200"], dict(cutmix=False, epochs=200)),
    ([], dict(qat_epochs=0, qat_learning_rate=None)),
    (["--qat-epochs", "2", "--qat-learning-rate", "0.003"], dict(qat_epochs=2, qat_learning_rate=0.003)),
    (["--mixed-precision"], dict(mixed_precision=True)),
    (["--mixed-precision", "mixed_bfloat16", "--no-augment", "--seed", "3"],
     dict(mixed_precision="mixed_bfloat16", augment=False, seed=3)),
])
def test_recipe_flags_reach_train(cifar10_subset_dir, tmp_path, monkeypatch, flags, expected):
    asked = _train_call(monkeypatch, ["--data-dir", str(cifar10_subset_dir), "--limit", "40",
                                      "--output-dir", str(tmp_path / "run"), *flags])
    recipe = asked["recipe"]
    assert {name: getattr(recipe, name) for name in expected} == expected
    assert isinstance(asked["data"], training.ArraySplits)  # CIFAR-10, through the one door
    assert asked["data"].class_names[0] == "airplane" and len(asked["data"].train[0]) == 40


def test_folder_flags_reach_train(tmp_path, monkeypatch):
    from tests.image_folders import write_pets

    write_pets(tmp_path / "pets", per_class=6)
    (tmp_path / "start.keras").write_bytes(b"")  # only its name travels here
    asked = _train_call(monkeypatch, [
        "--data-dir", str(tmp_path / "pets"), "--output-dir", str(tmp_path / "run"),
        "--image-size", "48", "--cache", "none", "--weights", str(tmp_path / "start.keras"),
        "--freeze-epochs", "1", "--fine-tune-learning-rate", "0.01", "--limit", "5",
        "--validation-fraction", "0.2", "--resume",
    ])
    recipe = asked["recipe"]
    assert (recipe.image_size, recipe.cache, recipe.freeze_epochs) == (48, None, 1)
    assert recipe.fine_tune_learning_rate == 0.01 and recipe.validation_fraction == 0.2
    assert asked["weights"] == str(tmp_path / "start.keras") and asked["resume"] is True
    data = asked["data"]
    assert isinstance(data, ImageFolderSplits)
    assert len(data.train) == 5 and data.validation is not None  # --limit picks from each split


def test_every_knob_of_the_recipe_is_a_flag_and_no_flag_means_the_recipe():
    from mobilenet.cli.train import FLAGS, recipe_from
    from mobilenet.training.recipe import KNOBS, RECIPE

    parser = build_parser()
    args = parser.parse_args(["train", "--data-dir", "somewhere"])
    assert recipe_from(args) == RECIPE
    help_text = args.subparser.format_help()
    for name in KNOBS:
        assert FLAGS[name] in help_text, name


def test_huge_image_sizes_and_missing_cache_folders_are_refused_before_training(
        cifar10_subset_dir, tmp_path, capsys):
    base = ["train", "--data-dir", str(cifar10_subset_dir), "--limit", "40",
            "--output-dir", str(tmp_path / "run")]
    assert main([*base, "--image-size", "100000"]) == 2
    line = _one_error_line(capsys, "mobilenet train: error:")
    assert "`--image-size`: expected an integer from 1 to 1024" in line and "--image-size=100000" in line
    assert main([*base, "--cache", "/nonexistent/dir/cache"]) == 2
    line = _one_error_line(capsys, "mobilenet train: error:")
    assert "`--cache`" in line and "--cache='/nonexistent/dir/cache' (no folder '/nonexistent/dir')" in line
    assert not (tmp_path / "run").exists()


def test_verbose_shows_the_traceback_and_keeps_the_usage_status(tmp_path, capsys):
    assert main(["train", "--verbose", "--data-dir", str(tmp_path / "nowhere"),
                 "--output-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("mobilenet train: error:")


def test_train_reports_the_files_it_wrote_and_skipped_plots(cifar10_subset_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a))
    output_dir = tmp_path / "run"
    assert main(["train", "--data-dir", str(cifar10_subset_dir), "--epochs", "1", "--limit", "32",
                 "--alpha", "0.25", "--batch-size", "16", "--validation-fraction", "0",
                 "--output-dir", str(output_dir)]) == 0
    out = capsys.readouterr().out
    wrote = next(line for line in out.splitlines() if line.startswith("wrote "))
    listed = wrote[len("wrote "):].split(" to ")[0].split(", ")
    assert sorted(listed) == sorted(p.name for p in output_dir.iterdir() if p.is_file())
    assert "plots skipped: matplotlib is not installed" in out and "mobilenet[plot]" in out


def test_evaluate_refuses_a_model_that_does_not_take_pixels(cifar10_subset_dir, tmp_path, capsys):
    from mobilenet import MobileNetV1

    # Without include_preprocessing the model wants [-1, 1]; pixels would score ~10% silently.
    MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=10).save(tmp_path / "raw.keras")
    assert main(["evaluate", str(tmp_path / "raw.keras"), "--data-dir", str(cifar10_subset_dir)]) == 2
    line = _one_error_line(capsys, "mobilenet evaluate: error:")
    assert "`MODEL`" in line and "does not take pixels 0-255" in line
