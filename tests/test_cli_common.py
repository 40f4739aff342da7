"""What every ``mobilenet`` command shares, run as a user runs it: the console script in a new process.

Its advice runs, TensorFlow's start-up log stays hidden whatever
``TF_CPP_MIN_LOG_LEVEL`` says, other packages' deprecation and future
warnings too, each error is one line that names the command
and the flag (and comes before any work), and a closed output pipe ends a
command quietly.

What only a new process shows (the start-up log, warnings, a closed pipe, an
error before and after TensorFlow loads) runs the console script. The other
error messages run `main` in this process, where TensorFlow is already loaded
(a new process spends seconds loading it), with stderr read at the file
descriptor, so C++ lines printed during the command would still count.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.console import console_script as _console_script
import tensorflow as tf

from mobilenet.cli import EXIT_CLOSED_PIPE, build_parser, main
from tests.inference_models import tiny_pixel_cnn

SRC = Path(__file__).resolve().parents[1] / "src" / "mobilenet"
COMMANDS = ("profile", "paper", "train", "evaluate", "export", "predict")
#: Positional arguments that let each command's parser accept a line.
POSITIONALS = {"evaluate": ["m.keras"], "export": ["m.keras", "o.tflite"],
               "predict": ["m.keras", "i.png"]}
#: A line of TensorFlow's C++ log (absl format) or its start-up banner, as TF 2.19-2.21 print them.
TF_LOG = re.compile(r"^([IWE]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)", re.M)




def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    return {**env, **extra}


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([_console_script(), *args], capture_output=True, text=True, cwd=cwd,
                          env=env or _env(), timeout=300)


def _main(args: list[str], cwd: Path, capfd: pytest.CaptureFixture,
          monkeypatch: pytest.MonkeyPatch) -> subprocess.CompletedProcess:
    """`main` run in this process from ``cwd``, as a finished process: status, stdout, stderr."""
    monkeypatch.chdir(cwd)
    capfd.readouterr()  # what came before is not this command's
    status = main(args)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(["mobilenet", *args], status, out, err)


def _one_error_line(completed: subprocess.CompletedProcess, command: str) -> str:
    """The single stderr line of a usage error, after checking the exit status and the prefix."""
    assert completed.returncode == 2, (completed.returncode, completed.stderr[-2000:])
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr[-3000:]
    assert lines[0].startswith(f"mobilenet {command}: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Saved models (pixels in, normalised input, 64x64, 1000 classes) and three PNG images."""
    folder = tmp_path_factory.mktemp("cli_common")
    keras.utils.set_random_seed(0)
    tiny_pixel_cnn().save(folder / "pixels.keras")
    keras.Sequential([  # takes [-1, 1]: no Rescaling first
        keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, strides=4), keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ]).save(folder / "normalised.keras")
    keras.Sequential([
        keras.Input((64, 64, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(4, 3, strides=8),
        keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax"),
    ]).save(folder / "big.keras")
    keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
        keras.layers.Dense(1000, activation="softmax"),
    ]).save(folder / "imagenet.keras")
    (folder / "images").mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        tf.io.write_file(str(folder / "images" / f"{index}.png"), tf.io.encode_png(pixels))
    return folder


# --------------------------------------------------------------------------- advice that runs


def _help_texts() -> dict[str, str]:
    texts = {}
    for command in COMMANDS:
        completed = subprocess.run([_console_script(), command, "--help"], capture_output=True,
                                   text=True, env=_env(), timeout=120)
        assert completed.returncode == 0, completed.stderr
        texts[command] = completed.stdout
    return texts


def _suggestions_in_help(command: str, text: str) -> set[tuple[str, str, str]]:
    """(command, flag, value) for every ``--flag VALUE`` and every "e.g. VALUE" under a flag."""
    found = {(command, flag, value) for flag, value in
             re.findall(r"(--[a-z][a-z0-9-]*)[ =](-?\d[\d./e+-]*)", text)}
    # Option blocks: a line starting "  --flag", then its indented help lines.
    for block in re.split(r"\n(?=  -)", text):
        flags = re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", block)
        if not flags:
            continue
        for value in re.findall(r"(?:e\.g\.|such as)\s+(-?\d[\d./e+-]*\d)", " ".join(block.split())):
            found.add((command, flags[0], value))
    return found


def _suggestions_in_messages(help_texts: dict[str, str]) -> set[tuple[str, str, str]]:
    """Suggestions in the source's messages: ``--flag VALUE`` and the library's ``e.g. name=VALUE``."""
    found = set()
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        pairs = set(re.findall(r"(--[a-z][a-z0-9-]*)[ =](-?\d[\d./e+-]*\d|-?\d)", text))
        for name, value in re.findall(r"(?:e\.g\.|or|and) ([a-z_]+)=(-?\d[\d./e+-]*\d|-?\d)", text):
            pairs.add(("--" + name.replace("_", "-"), value))
        for flag, value in pairs:
            for command, help_text in help_texts.items():
                if re.search(rf"^\s+(?:-\w, )?{re.escape(flag)}\b", help_text, re.M):
                    found.add((command, flag, value))
    return found


def test_every_flag_value_the_cli_suggests_is_accepted():
    help_texts = _help_texts()
    suggestions = _suggestions_in_messages(help_texts)
    for command, text in help_texts.items():
        suggestions |= _suggestions_in_help(command, text)
    # The collection itself must see the advice this test is about.
    assert ("predict", "--rescale", "1/127.5") in suggestions
    assert ("predict", "--offset", "-1") in suggestions
    assert ("export", "--rescale", "1/255") in suggestions
    assert ("profile", "--rho", "5/7") in suggestions
    parser = build_parser()
    refused = []
    for command, flag, value in sorted(suggestions):
        for spelling in ([flag, value], [f"{flag}={value}"]):
            try:
                parser.parse_args([command, *POSITIONALS.get(command, []), *spelling])
            except SystemExit:
                refused.append(" ".join([command, *spelling]))
    assert not refused, refused


def test_the_rescale_advice_of_predict_runs(work, capfd, monkeypatch):
    completed = _run(["predict", "normalised.keras", "images/0.png"], work)  # after TF loads
    line = _one_error_line(completed, "predict")
    advice = [match.strip() for match in re.findall(r"((?:--[a-z]+ -?[\d./]+ ?)+)", line)]
    assert advice == ["--rescale 1/255", "--rescale 1/127.5 --offset -1"], line
    for suggestion in advice:
        ran = _main(["predict", "normalised.keras", "images/0.png", *suggestion.split()], work,
                    capfd, monkeypatch)
        assert ran.returncode == 0, (suggestion, ran.stderr[-2000:])
        assert ran.stdout.startswith(os.path.join("images", "0.png") + ": "), ran.stdout


def test_number_flags_take_fractions(work, tmp_path, capfd, monkeypatch):
    completed = _main(["export", str(work / "pixels.keras"), "out.tflite", "--rescale", "1/255"],
                      tmp_path, capfd, monkeypatch)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (tmp_path / "out.tflite").is_file()
    parser = build_parser()
    assert parser.parse_args(["profile", "--alpha", "1/4"]).alpha == [0.25]  # a sweep of one
    assert parser.parse_args(["profile", "--rho", "1/1.5"]).rho == pytest.approx(2 / 3)
    with pytest.raises(SystemExit):
        parser.parse_args(["profile", "--alpha", "1/2/3"])


# --------------------------------------------------------------------------- TensorFlow's log


@pytest.mark.parametrize("level", [None, "0", "3"])
def test_tensorflow_start_up_log_is_hidden_whatever_tf_cpp_min_log_level_says(tmp_path, level):
    env = _env() if level is None else _env(TF_CPP_MIN_LOG_LEVEL=level)
    completed = _run(["profile", "--alpha", "0.25", "--input-size", "32", "--num-classes", "10"],
                     tmp_path, env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Total" in completed.stdout or "total" in completed.stdout
    assert not TF_LOG.search(completed.stderr), completed.stderr[-2000:]


def test_verbose_shows_the_log_the_filter_hides(tmp_path):
    # Without this, the test above would pass on a machine where TensorFlow prints nothing.
    completed = _run(["profile", "--alpha", "0.25", "--input-size", "32", "--verbose"], tmp_path,
                     _env(TF_CPP_MIN_LOG_LEVEL="0"))
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert TF_LOG.search(completed.stderr), completed.stderr[-2000:]


# --------------------------------------------------------------------------- warnings

#: A new process whose `profile` handler warns as other packages and our own modules do, each
#: warning attributed to a module as `warnings` attributes it (the caller, at the stacklevel given).
_WARNING_HANDLER = """
import sys, warnings
import mobilenet.cli as cli
import mobilenet.cli.profile as profile

def warn(message, category, module):
    warnings.warn_explicit(message, category, module.replace(".", "/") + ".py", 1, module=module)

def handler(args):
    # NumPy 2.4 under Keras 3.13.0: `hasattr(np, "object")` in keras/src/export/tf2onnx_lib.py.
    warn("In the future `np.object` will be defined", FutureWarning, "keras.src.export.tf2onnx_lib")
    warn("third-party deprecation", DeprecationWarning, "tensorflow.python.util")
    warn("third-party pending deprecation", PendingDeprecationWarning, "numpy")
    warn("third-party user warning", UserWarning, "keras.src.trainers")
    warn("our future warning", FutureWarning, "mobilenet.predict")
    warn("our deprecation", DeprecationWarning, "mobilenet")
    return 0

profile.run = handler  # what `mobilenet profile` calls, as build_parser reads it
sys.exit(cli.main(["profile", *sys.argv[1:]]))
"""


def _run_warning_handler(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in _env().items() if k != "PYTHONWARNINGS"} | env
    completed = subprocess.run([sys.executable, "-c", _WARNING_HANDLER, *args], capture_output=True,
                               text=True, env=environment, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed


def test_other_packages_deprecation_and_future_warnings_are_hidden_ours_and_user_warnings_shown():
    lines = _run_warning_handler().stderr.strip().splitlines()
    assert lines == ["mobilenet profile: warning: third-party user warning",
                     "mobilenet profile: warning: our future warning",
                     "mobilenet profile: warning: our deprecation"], lines


def test_verbose_or_python_warning_options_show_what_the_command_hides():
    verbose = _run_warning_handler("--verbose").stderr  # Python's own filters and format
    assert "FutureWarning: In the future `np.object` will be defined" in verbose, verbose
    assert "third-party deprecation" not in verbose, verbose  # Python's default hides these
    asked = _run_warning_handler(PYTHONWARNINGS="default").stderr.strip().splitlines()
    assert len(asked) == 6, asked
    assert "mobilenet profile: warning: In the future `np.object` will be defined" in asked, asked


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_flag_names_the_command(tmp_path, command):
    completed = _run([command, *POSITIONALS.get(command, []), "--bogus"], tmp_path)
    assert completed.returncode == 2
    last = completed.stderr.strip().splitlines()[-1]
    assert last == f"mobilenet {command}: error: unrecognized arguments: --bogus", completed.stderr


@pytest.mark.parametrize("args, flag", [
    (["export", "pixels.keras", "x.tflite", "--calibration-dir", "images"], "`--calibration-dir`"),
    (["export", "pixels.keras", "x.tflite", "--verify"], "`--verify`"),
    (["export", "pixels.keras", "x.tflite", "--calibration-dir", "images",
      "--calibration-data", "c.npy"], "`--calibration-dir`"),
    (["profile", "--rho", "5/7", "--input-size", "160"], "`--rho`"),
])
def test_an_error_before_tensorflow_loads_is_one_clean_line(work, args, flag):
    # A handler that fails at once must leave the log filter's thread working (no "Bad file descriptor").
    line = _one_error_line(_run(args, work), args[0])
    assert flag in line
    assert not (work / "x.tflite").exists()


def test_export_into_an_existing_folder_name_says_it_is_a_folder(work, tmp_path, capfd, monkeypatch):
    (tmp_path / "existing.tflite").mkdir()
    line = _one_error_line(_main(["export", str(work / "pixels.keras"), "existing.tflite"], tmp_path,
                                 capfd, monkeypatch), "export")
    assert "`OUTPUT`" in line and "'existing.tflite' (a folder)" in line
    assert "not writable" not in line


@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_evaluate_checks_its_outputs_before_evaluating(work, tmp_path, cifar10_subset_dir, flag,
                                                       capfd, monkeypatch):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "folder.png").mkdir()
    for output, problem in (("afile/r.out", "'afile' is a file, not a folder"),
                            ("folder.png", "(a folder)")):
        completed = _main(["evaluate", str(work / "pixels.keras"), "--data-dir",
                           str(cifar10_subset_dir), "--limit", "20", flag, output], tmp_path,
                          capfd, monkeypatch)
        line = _one_error_line(completed, "evaluate")
        assert f"`{flag}`" in line and f"{flag}={output!r}" in line and problem in line, line
        assert "test accuracy" not in completed.stdout  # refused before the work


def test_evaluate_brings_cifar10_images_to_a_pixel_models_size(work, cifar10_subset_dir, capfd,
                                                              monkeypatch):
    """A 64x64 pixel model gets CIFAR-10's 32x32 images resized, as `predict` resizes a 32x32 PNG."""
    completed = _main(["evaluate", "big.keras", "--data-dir", str(cifar10_subset_dir), "--limit", "20",
                       "--json", "big.json"], work, capfd, monkeypatch)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "test accuracy" in completed.stdout and "on 20 images" in completed.stdout
    # A model that does not take pixels cannot be given resized pixels: refused, naming MODEL.
    line = _one_error_line(_main(["evaluate", "normalised.keras", "--data-dir",
                                  str(cifar10_subset_dir), "--limit", "20"], work, capfd,
                                 monkeypatch), "evaluate")
    assert "`MODEL`" in line and "does not take pixels 0-255" in line, line


def test_onnx_quantization_error_lists_the_flag_values(work, tmp_path, capfd, monkeypatch):
    line = _one_error_line(_main(["export", str(work / "pixels.keras"), "x.onnx", "--quantization",
                                  "float16"], tmp_path, capfd, monkeypatch), "export")
    assert "`--quantization`: expected float32 or int8 for an .onnx OUTPUT" in line, line
    assert "None" not in line


@pytest.mark.parametrize("content, problem", [
    (b"", "(an empty file)"),
    (None, "not a LiteRT flatbuffer"),  # a .keras file renamed .tflite
])
def test_a_tflite_that_is_not_a_litert_model_says_so(work, tmp_path, content, problem, capfd,
                                                     monkeypatch):
    model = tmp_path / "model.tflite"
    if content is None:
        shutil.copy(work / "pixels.keras", model)
    else:
        model.write_bytes(content)
    line = _one_error_line(_main(["predict", str(model), str(work / "images")], tmp_path, capfd,
                                 monkeypatch), "predict")
    assert "`MODEL`" in line and problem in line, line
    assert "Mmap" not in line


def test_offline_imagenet_names_warn_in_one_line(work, tmp_path):
    env = _env(KERAS_HOME=str(tmp_path / "keras"), https_proxy="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", no_proxy="", NO_PROXY="")
    completed = _run(["predict", "imagenet.keras", "images/0.png", "--top", "1"], work, env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith(os.path.join("images", "0.png") + ": class "), completed.stdout
    lines = completed.stderr.strip().splitlines()  # Keras' "Downloading data from ...", then ours
    assert lines[-1].startswith("mobilenet predict: warning: ImageNet class names are unavailable")
    assert not any("UserWarning" in line or ".py:" in line for line in lines), lines


def test_messages_name_extras_and_flags_as_a_user_types_them(tmp_path, cifar10_subset_dir, capsys,
                                                             monkeypatch):
    import importlib.util

    from mobilenet.training import BACKUP_DIR

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a))
    assert main(["evaluate", "m.keras", "--plot", "c.png"]) == 2
    line = capsys.readouterr().err.strip()
    assert "the `plot` extra" in line and "`--plot` extra" not in line, line

    (tmp_path / "run" / BACKUP_DIR).mkdir(parents=True)
    assert main(["train", "--data-dir", str(cifar10_subset_dir), "--limit", "40",
                 "--output-dir", str(tmp_path / "run")]) == 2
    line = capsys.readouterr().err.strip()
    assert "interrupted run" in line and "continue it with `--resume`" in line and "resume=" not in line, line
    assert "=True" not in line


def test_each_command_maps_library_arguments_to_flags_it_has():
    from mobilenet import cli

    for command in cli.COMMANDS:
        name = command.__name__.rsplit(".", 1)[-1]
        args = build_parser().parse_args([name, *POSITIONALS.get(name, [])])
        assert args.flags is command.FLAGS
        usage = args.subparser.format_usage()
        missing = {flag for flag in command.FLAGS.values()
                   if not re.search(rf"(?<![\w.-]){re.escape(flag)}(?![\w.-])", usage)}
        assert not missing, (name, missing)


def test_evaluate_help_says_limit_takes_test_images(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--limit N evaluate only N test images" in text and "training" not in text.split("--limit N")[1].split("--")[0], text


def test_no_tpu_is_a_usage_error_saying_how_to_name_one(monkeypatch):
    from mobilenet.cli.common import error_message
    from mobilenet.cli.train import FLAGS
    from mobilenet.training import make_strategy

    for variable in ("TPU_NAME", "TPU_CONFIG", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ValueError, match=r"`strategy`: no TPU was found.*TPU_NAME") as error:
        make_strategy("tpu")
    assert "`--strategy`: no TPU was found" in error_message(error.value, FLAGS)


# --------------------------------------------------------------------------- a closed pipe


@pytest.mark.parametrize("command", ["predict", "profile"])
def test_a_closed_output_pipe_is_a_quiet_exit(work, command):
    args = {"predict": ["predict", "pixels.keras", "images", "images", "images"],
            "profile": ["profile", "--alpha", "0.25", "--input-size", "32"]}[command]
    read_end, write_end = os.pipe()
    with subprocess.Popen([_console_script(), *args], stdout=write_end, stderr=subprocess.PIPE,
                          text=True, cwd=work, env=_env()) as process:
        os.close(write_end)
        os.close(read_end)  # the reader is gone before the command prints (`| head` done)
        stderr = process.communicate(timeout=300)[1]
    assert process.returncode == EXIT_CLOSED_PIPE, stderr[-2000:]
    assert stderr.strip() == "", stderr[-2000:]


#: Command modules that still hand-write "Invalid value for argument" into a `UsageError`
#: (the old form); each goes once its command raises `usage_error`. The list only shrinks.
HAND_WRITTEN_USAGE_ERRORS: set[str] = set()


def _hand_writing(folder: Path) -> set[str]:
    """The modules of ``folder`` that write the message format themselves (common.py defines it)."""
    return {path.name for path in folder.glob("*.py")
            if path.name != "common.py" and "Invalid value for argument" in path.read_text()}


def test_commands_raise_usage_errors_through_the_one_format(tmp_path):
    import mobilenet.cli

    found = _hand_writing(Path(mobilenet.cli.__file__).parent)
    assert found <= HAND_WRITTEN_USAGE_ERRORS, f"raise usage_error(...) in {sorted(found - HAND_WRITTEN_USAGE_ERRORS)}"
    (tmp_path / "common.py").write_text('"Invalid value for argument"')
    (tmp_path / "data.py").write_text('raise UsageError(f"Invalid value for argument `{flag}`: ...")')
    assert _hand_writing(tmp_path) == {"data.py"}


def test_a_usage_error_is_an_invalid_argument_named_by_its_flag():
    from mobilenet.cli.common import UsageError, error_message, usage_error
    from mobilenet.errors import InvalidArgument

    error = usage_error("--errors", "an integer >= 0", -1)
    assert isinstance(error, UsageError) and isinstance(error, InvalidArgument)
    assert error.argument == "--errors" and error.received == "--errors=-1"
    expected = "Invalid value for argument `--errors`: expected an integer >= 0. Received: --errors=-1"
    assert error_message(error, {"errors": "--not-this"}) == str(error) == expected
    bare = usage_error("--plot", "", "p.png", shown="", problem="matplotlib is not installed")
    assert str(bare) == "Invalid value for argument `--plot`: matplotlib is not installed"
    old = UsageError("Invalid value for argument `--x`: a whole message")  # until every command converts
    assert error_message(old, {}) == "Invalid value for argument `--x`: a whole message"


def test_evaluate_refuses_a_negative_errors_count(work, capfd, monkeypatch):
    line = _one_error_line(_main(["evaluate", "pixels.keras", "--errors", "-1"], work, capfd,
                                 monkeypatch), "evaluate")
    assert line.endswith("Invalid value for argument `--errors`: expected an integer >= 0. "
                         "Received: --errors=-1"), line
