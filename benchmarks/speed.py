"""Speed, size and int8 agreement: ours vs keras.applications, Keras vs LiteRT vs ONNX Runtime.

Measures, in one process with TensorFlow's default threading (all cores), on
the CPU it runs on:

0. The machine: CPU model and ISA flags (AVX2, AVX-512, VNNI, BF16, AMX),
   whether TensorFlow's oneDNN custom ops are on (observed in TensorFlow's own
   import log), the float32 GEMM peak: the best of an n x n float32 matrix
   product (GFLOP/s = 2 n^3 / t) in TensorFlow as this process runs it, in
   TensorFlow with oneDNN on (``TF_ENABLE_ONEDNN_OPTS=1``, a child process)
   and in NumPy's BLAS (a child process without ``OPENBLAS_CORETYPE`` and
   ``OPENBLAS_L2_SIZE``, which slow a current OpenBLAS), named with where it
   came from; the load average and the busiest other processes, at the start
   and at the end, and the versions of everything timed. Every inference row
   gets its share of that peak: images/s x 2 x mult-adds per image (from
   `mobilenet.profile`) / peak, so no float32 row can pass 100%.
1. ``inference``: Keras at batch 1 and 32 (224x224 at alpha 1.0 and 0.25,
   32x32 at alpha 1.0): ``keras.applications.MobileNet``, our ``MobileNetV1``
   and ours after ``fold_batchnorm``, each a ``tf.function`` of
   ``model(x, training=False)``.
2. ``training``: a ``train_on_batch`` step at 32x32, batch 64, alpha 1.0,
   keras.applications vs ours, as TensorFlow runs by default on this CPU and,
   in a child process of this script, with ``TF_ENABLE_ONEDNN_OPTS=0`` (what
   TensorFlow does by default on an AVX2-only CPU). The variable is read when
   TensorFlow is imported, hence the child.
3. ``litert``: LiteRT files of ours (`mobilenet.export.to_tflite`) against our
   Keras model at the same batch. At 224x224, alpha 1.0: float32 and int8 at
   batch 1 and 32, float16 and the pointwise conv kept as matmul at batch 1.
   At 224x224 alpha 0.25 and 32x32 alpha 1.0: float32, float16 and int8 at
   batch 1. File sizes, and the LiteRT ops of the conv and matmul forms.
4. ``onnx``: ONNX Runtime at 224x224, alpha 1.0, batch 1 and 32: Keras' own
   ``model.export(path, format="onnx")`` of our model (which keeps
   ``PointwiseConv2D``'s matmul form), `mobilenet.export.to_onnx` float32 and
   ``to_onnx(..., "int8")``, against our Keras model.
5. ``peers``: one model (ours, 224x224, alpha 1.0, 1000 classes, batch 1)
   in every runtime, each in its own child process, the processes taking
   turns (``--peer-rounds`` rounds, medians): LiteRT, ONNX Runtime and
   OpenVINO (the optional ``openvino`` extra) on our float32 and int8 files,
   our Keras model, and timm's ``mobilenetv1_100`` on PyTorch, eager, when
   torch and timm are installed (the ``benchmark`` extra), which also gets a
   training row (96x96, batch 64, SGD) beside ours. float32 rows get their
   share of the float32 GEMM peak; int8 rows their share of the int8 peak
   where the CPU's flags give it: 4x the float32 peak with AVX-512 VNNI (one
   VPDPBUSD does 64 int8 multiply-adds where one FMA does 16 float32, on the
   same ports), none otherwise. OpenVINO's float precision
   (``INFERENCE_PRECISION_HINT``) is read back from the compiled model.
6. ``int8``: a CIFAR-10 model (``--model``, or trained here with
   `mobilenet.cifar10.train` on the shared subset's training batches), written
   to LiteRT and ONNX files, int8 calibrated on 500 training images; top-1
   agreement of each file with the Keras model on the subset's 1,000 test
   images, split by the float model's top-1 margin, and test accuracy.
7. ``predict``: `mobilenet.predict.Classifier` (what ``mobilenet predict``
   runs) over a folder of PNG files (CIFAR-10 test images, written at 64x64
   so that each is decoded and resized back to 32x32) with the ``.keras``
   file and its LiteRT and ONNX files, float32 and int8: images/s from file to
   top-5, and the load time.

Then a table of issue 13's goals, met or missed, computed from the figures
above. Compared models are timed in turns (`interleaved_rates`), so that
other load on the machine hits them alike; every figure is the median of
several timed turns after two warm-up runs. LiteRT and ONNX Runtime get the
same threads (``--threads``, default: all cores); the library's ONNX Runtime
sessions do not spin-wait between runs, which would slow whatever is timed
next. Prints markdown tables, progress rows on stderr.

Run it alone, on a quiet machine, through the shared lock, from the
repository root (about 12 minutes on 2 cores: 4 for the timing sections, 2
for int8 and predict, and up to 6 to train the CIFAR-10 model unless
``--model`` gives one):

    PYTHONPATH=src flock /work/bench.lock python benchmarks/speed.py
    PYTHONPATH=src python benchmarks/speed.py --quick   # a 2-3 minute smoke run
    PYTHONPATH=src python benchmarks/speed.py --only onnx litert
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# PyTorch's OpenMP threads spin at every barrier: on 2 cores shared with other processes timm's
# model then ran 0.25 img/s instead of 27 (benchmarks/RESULTS.md). Passive waiting, like ONNX
# Runtime's spin-wait off (`mobilenet.export.ONNXRunner`), before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import (  # noqa: E402  (benchmarks/_common.py)
    ISA_FLAGS,
    ONEDNN_ON_LOG,
    ONEDNN_VARIABLE,
    cpu_model_and_flags,
    interleaved_rates,
    litert_runtime,
    load_line,
    onednn_setting,
    onednn_state,
    progress,
    versions,
)

DEFAULT_CIFAR10 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"
SECTIONS = ("inference", "training", "litert", "onnx", "peers", "int8", "predict")
#: The line a `--child` run prints its result on (JSON after it).
CHILD_RESULT = "speed.py child result: "


@dataclass
class Bench:
    """What every section needs: the arguments, the GEMM peak, a scratch folder, the figures."""

    args: argparse.Namespace
    folder: Path
    peak_gflops: float = float("nan")
    #: Whether TensorFlow's oneDNN ops are on in this process ("on" or "off"), from the header.
    onednn: str = "unknown"
    #: Figures the goals table reads, by name (see `GOALS`).
    found: dict[str, float] = field(default_factory=dict)

    @property
    def big_batch(self) -> int:
        return 8 if self.args.quick else 32

    def share(self, images_per_second: float, mult_adds: int) -> str:
        """The share of the GEMM peak that ``images_per_second`` of ``mult_adds`` each reach."""
        return f"{images_per_second * 2 * mult_adds / (self.peak_gflops * 1e9):.1%}"


# --------------------------------------------------------------------------- timing


def keras_step(model, batch: int, size: int) -> Callable[[], Any]:
    """One ``tf.function`` inference of ``model`` on a random batch, as a callable."""
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).random((batch, size, size, 3), np.float32))
    forward = tf.function(lambda x: model(x, training=False))
    return lambda: forward(x).numpy()


def mult_adds(model) -> int:
    from mobilenet import profile

    return profile(model).mult_adds


# --------------------------------------------------------------------------- the machine


def matmul_peak(n: int, repeats: int) -> tuple[float, float]:
    """GFLOP/s of an ``n x n`` float32 ``tf.matmul``: the median and the best of ``repeats`` runs."""
    import tensorflow as tf

    a = tf.random.stateless_uniform((n, n), seed=(0, 1))
    b = tf.random.stateless_uniform((n, n), seed=(0, 2))
    # One element of the product is enough to wait for all of it.
    multiply = tf.function(lambda: tf.matmul(a, b)[0, 0])
    multiply().numpy()
    multiply().numpy()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        multiply().numpy()
        times.append(time.perf_counter() - begin)
    flops = 2 * n**3
    return flops / statistics.median(times) / 1e9, flops / min(times) / 1e9


def numpy_matmul_peak(n: int, repeats: int) -> tuple[float, float]:
    """GFLOP/s of an ``n x n`` float32 ``a @ b`` in NumPy's BLAS: the median and the best."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.random((n, n), np.float32) for _ in range(2))
    a @ b
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - begin)
    flops = 2 * n**3
    return flops / statistics.median(times) / 1e9, flops / min(times) / 1e9


#: Variables that pin an older OpenBLAS to a generic kernel where it misbehaved; they slow a
#: current NumPy, so the NumPy peak runs without them (in its child process only).
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def gemm_in_child(library: str, n: int, repeats: int, env: dict[str, str]) -> tuple[float, float] | str:
    """`matmul_peak` (``"tensorflow"``) or `numpy_matmul_peak` in a child process with ``env``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child-gemm", library,
               "--gemm-size", str(n), "--repeats", str(repeats)]
    child = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    results = [line for line in child.stdout.splitlines() if line.startswith(CHILD_RESULT)]
    if child.returncode != 0 or not results:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed (exit {child.returncode}: {last})"
    median, best = json.loads(results[-1][len(CHILD_RESULT):])
    return median, best


def gemm_peaks(bench: Bench, n: int, repeats: int) -> list[tuple[str, float, float]]:
    """The float32 GEMM rates this machine reaches: ``(source, median, best)``, fastest first."""
    here = dict(os.environ)
    found = [(f"tf.matmul in this process (oneDNN {bench.onednn}, {onednn_setting(here)})",
              *matmul_peak(n, repeats))]
    onednn = gemm_in_child("tensorflow", n, repeats, {**here, ONEDNN_VARIABLE: "1"})
    numpy = gemm_in_child("numpy", n, repeats,
                          {k: v for k, v in here.items() if k not in OPENBLAS_VARIABLES})
    pinned = ", ".join(f"{name}={here[name]}" for name in OPENBLAS_VARIABLES if name in here)
    for source, rates in (
        (f"tf.matmul, {ONEDNN_VARIABLE}=1 (a child process)", onednn),
        ("NumPy a @ b, its BLAS (a child process"
         + (f"; {pinned} unset there)" if pinned else ")"), numpy),
    ):
        if isinstance(rates, str):
            progress(f"GEMM peak, {source}: {rates}")
            continue
        found.append((source, *rates))
    return sorted(found, key=lambda row: -row[1])


def header(bench: Bench) -> None:
    args = bench.args
    cpu, flags = cpu_model_and_flags()
    missing = [flag for flag in ISA_FLAGS if flag not in flags]
    onednn = bench.onednn = onednn_state(dict(os.environ))
    print(f"# mobilenet speed benchmark{' (--quick)' if args.quick else ''}\n")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`")
    print(f"- CPU: {cpu}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"- ISA flags: {', '.join(flags) or 'none of ' + ', '.join(ISA_FLAGS)}"
          + (f" (absent: {', '.join(missing)})" if missing and flags else ""))
    print(f"- TensorFlow's oneDNN custom ops: {onednn} ({onednn_setting(os.environ)}; read from "
          "TensorFlow's import log in a child process)")
    n = 2048 if args.quick else 4096
    peaks = gemm_peaks(bench, n, repeats=5 if args.quick else 7)
    (source, peak, best), others = peaks[0], peaks[1:]
    bench.peak_gflops = peak
    print(f"- float32 GEMM peak: {peak:.1f} GFLOP/s (median; best {best:.1f}) of a {n}x{n} "
          f"float32 matrix product, from {source}, the fastest of: "
          + "; ".join(f"{name} {median:.1f}" for name, median, _ in others)
          + ". \"share of peak\" below: images/s x 2 x mult-adds per image / this peak (int8 "
          "rows can pass 100%: the peak is float32's)")
    print(f"- at the start: {load_line()}")
    print(f"- {versions()}")
    print(f"- LiteRT runs in {litert_runtime()} (XNNPACK), ONNX Runtime on its CPU provider "
          "with its threads' spin-wait off (it slows whatever runs next); both with "
          f"{args.threads} threads. Keras: a tf.function of model(x, training=False)")
    print(f"- each figure: median of >= {args.repeats} timed runs (and >= {args.min_seconds} s) "
          "after 2 warm-up runs, the compared models taking turns\n")


# --------------------------------------------------------------------------- Keras


def keras_inference(bench: Bench) -> str:
    import keras

    from mobilenet import MobileNetV1
    from mobilenet.export import fold_batchnorm

    args = bench.args
    configs = [(32, 1.0)] if args.quick else [(224, 1.0), (224, 0.25), (32, 1.0)]
    rows = []
    for size, alpha in configs:
        models = {
            "keras.applications": keras.applications.MobileNet(
                input_shape=(size, size, 3), alpha=alpha, weights=None, classes=1000
            ),
            "ours": MobileNetV1(alpha=alpha, input_shape=(size, size, 3), num_classes=1000),
        }
        models["ours, BN folded"] = fold_batchnorm(models["ours"])
        costs = {name: mult_adds(model) for name, model in models.items()}
        for batch in (1, bench.big_batch):
            steps = {name: (keras_step(model, batch, size), batch) for name, model in models.items()}
            rates = interleaved_rates(steps, args.repeats, args.min_seconds)
            base, ours, folded = (rates[name] for name in models)
            shares = " / ".join(bench.share(rates[name], costs[name]) for name in models)
            rows.append(
                f"| {size}x{size} | {alpha} | {batch} | {base:.1f} | {ours:.1f} | {folded:.1f} "
                f"| {ours / base:.2f}x | {folded / base:.2f}x | {folded / ours:.2f}x | {shares} |"
            )
            progress(rows[-1])
        del models
        keras.backend.clear_session()
    return (
        "| input | alpha | batch | keras.applications img/s | ours img/s | ours BN-folded img/s "
        "| ours / keras.app | folded / keras.app | folded / ours "
        "| share of peak (keras.app / ours / folded) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


def training_rates(args: argparse.Namespace) -> dict:
    """Images/s of a ``train_on_batch`` step, keras.applications vs ours, in this process."""
    import keras
    import numpy as np

    from mobilenet import MobileNetV1

    batch = 16 if args.quick else 64
    rng = np.random.default_rng(0)
    x = rng.random((batch, 32, 32, 3), np.float32)
    y = rng.integers(0, 10, batch)
    steps = {}
    for name, build in {
        "keras.applications": lambda: keras.applications.MobileNet(
            input_shape=(32, 32, 3), alpha=1.0, weights=None, classes=10
        ),
        "ours": lambda: MobileNetV1(alpha=1.0, input_shape=(32, 32, 3), num_classes=10),
    }.items():
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=False)
        steps[name] = (lambda model=model: model.train_on_batch(x, y), batch)
    rates = interleaved_rates(steps, max(3, args.repeats // 2))
    return {"batch": batch, **rates}


def training_in_child(args: argparse.Namespace, env: dict[str, str]) -> tuple[dict | None, str]:
    """`training_rates` in a child process with ``env``: its figures and oneDNN state (or why not)."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", "--only", "training",
        "--repeats", str(args.repeats), "--min-seconds", str(args.min_seconds),
    ] + (["--quick"] if args.quick else [])
    # INFO logging, so that the child's own import log says whether oneDNN is on.
    child = subprocess.run(command, env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"},
                           capture_output=True, text=True, check=False)
    results = [line for line in child.stdout.splitlines() if line.startswith(CHILD_RESULT)]
    if child.returncode != 0 or not results:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"child failed (exit {child.returncode}: {last})"
    return json.loads(results[-1][len(CHILD_RESULT):]), (
        "on" if ONEDNN_ON_LOG in child.stderr else "off"
    )


def keras_training(bench: Bench) -> str:
    here = dict(os.environ)
    # The child runs the other setting: oneDNN off, or TensorFlow's default if this process has it off.
    other = dict(here)
    if here.get(ONEDNN_VARIABLE) == "0":
        other.pop(ONEDNN_VARIABLE)
    else:
        other[ONEDNN_VARIABLE] = "0"
    measured = [(f"{onednn_setting(here)}, this process", training_rates(bench.args),
                 bench.onednn)]
    progress(f"training, this process: {measured[0][1]}")
    rates, state = training_in_child(bench.args, other)
    measured.append((f"{onednn_setting(other)}, a child process", rates, state))
    progress(f"training, child: {rates} (oneDNN {state})")
    rows = []
    for setting, rates, state in measured:
        if rates is None:
            rows.append(f"| {setting} | {state} | | | | |")
            continue
        base, ours = rates["keras.applications"], rates["ours"]
        rows.append(f"| {setting} | {state} | {rates['batch']} | {base:.1f} | {ours:.1f} "
                    f"| {ours / base:.2f}x |")
    table = (
        "`train_on_batch` (Adam), 32x32, alpha 1.0, 10 classes; keras.applications and ours take "
        "turns within a row; the two rows ran one after the other, not interleaved.\n\n"
        "| TensorFlow setting | oneDNN | batch | keras.applications img/s | ours img/s "
        "| ours / keras.app |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    if all(rates is not None for _, rates, _ in measured):
        (_, a, _), (_, b, _) = measured
        table += (f"\n\nFirst row / second row: ours {a['ours'] / b['ours']:.2f}x, "
                  f"keras.applications {a['keras.applications'] / b['keras.applications']:.2f}x.")
    return table


# --------------------------------------------------------------------------- LiteRT and ONNX


def litert_step(path: Path, batch: int, threads: int) -> Callable[[], Any]:
    """One inference of the ``.tflite`` file at ``path`` on a random batch, as a callable.

    The batch is made in the file's input type, so the runner feeds it as it
    is: what is timed is the interpreter, plus reading its output.
    """
    from mobilenet.export import LiteRTRunner

    runner = LiteRTRunner(path, threads)
    x = random_input(runner, batch)
    return lambda: runner.run(x, batch)


def onnx_step(path: Path, batch: int, threads: int) -> Callable[[], Any]:
    """One inference of the ``.onnx`` file at ``path`` on a random batch, as a callable."""
    from mobilenet.export import ONNXRunner

    runner = ONNXRunner(path, threads)
    x = random_input(runner, batch)
    return lambda: runner.run(x, batch)


def random_input(runner, batch: int):
    """A random batch for ``runner`` in its own input type (integers over their whole range)."""
    import numpy as np

    rng, dtype = np.random.default_rng(0), np.dtype(runner.input_type)
    shape = (batch, *runner.input_shape[1:])
    if np.issubdtype(dtype, np.integer):
        return rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    return rng.random(shape).astype(dtype)


def op_counts(path: Path) -> str:
    from mobilenet.export import LiteRTRunner

    counts = Counter(LiteRTRunner(path, 1).op_names)
    return ", ".join(f"{n} {name}" for name, n in counts.most_common())


def onnx_op_counts(path: Path) -> str:
    from mobilenet.export import ONNXRunner

    counts = Counter(ONNXRunner(path, 1).op_names)
    return ", ".join(f"{n} {name}" for name, n in counts.most_common())


def litert(bench: Bench) -> str:
    import keras
    import numpy as np

    from mobilenet import MobileNetV1, export

    args = bench.args
    # (input size, alpha, batches, files): the first is the goals' setting.
    if args.quick:
        configs = [(32, 1.0, (1, bench.big_batch), ("float32", "int8", "float32, pw as matmul"))]
    else:
        configs = [
            (224, 1.0, (1, 32), ("float32", "float16", "int8",
                                 "float32, pw as matmul", "int8, pw as matmul")),
            (224, 0.25, (1,), ("float32", "float16", "int8")),
            (32, 1.0, (1,), ("float32", "float16", "int8")),
        ]
    rows, op_rows = [], []
    for index, (size, alpha, batches, labels) in enumerate(configs):
        model = MobileNetV1(alpha=alpha, input_shape=(size, size, 3), num_classes=1000)
        cost = mult_adds(model)
        # Speed only: random images in [0, 1] are enough to calibrate.
        calibration = np.random.default_rng(1).random((32, size, size, 3), np.float32)
        paths = {}
        for label in labels:
            quantization = None if label.startswith("float32") else label.split(",")[0]
            paths[label] = bench.folder / f"m{size}_{alpha}_{label.replace(', ', '_').replace(' ', '_')}.tflite"
            export.to_tflite(
                model, paths[label], quantization,
                representative_data=calibration if quantization == "int8" else None,
                pointwise_as_conv="matmul" not in label,
            )
            if index == 0 and label.startswith("float32"):
                form = "matmul" if "matmul" in label else "conv"
                op_rows.append(f"| {form} | {op_counts(paths[label])} |")
        for batch in batches:
            # At the larger batch only the two files the goals are about.
            timed = labels if batch == 1 else ("float32", "int8")
            steps = {"our Keras model": (keras_step(model, batch, size), batch)}
            steps.update({label: (litert_step(paths[label], batch, args.threads), batch)
                          for label in timed})
            rates = interleaved_rates(steps, args.repeats * (3 if batch == 1 else 1),
                                      args.min_seconds * 2)
            keras_rate = rates["our Keras model"]
            for label, rate in rates.items():
                size_mb = relative = ""
                if label in paths:
                    bytes_ = paths[label].stat().st_size
                    size_mb = f"{bytes_ / 1e6:.2f}"
                    relative = f"{bytes_ / paths['float32'].stat().st_size:.0%}"
                rows.append(
                    f"| {size}x{size} | {alpha} | {batch} | {label} | {size_mb} | {relative} "
                    f"| {rate:.1f} | {rate / keras_rate:.2f}x | {bench.share(rate, cost)} |"
                )
                progress(rows[-1])
            if index == 0:
                key = "1" if batch == 1 else "big"
                bench.found[f"litert int8 / keras, batch {key}"] = rates["int8"] / keras_rate
                bench.found[f"litert float32 share, batch {key}"] = (
                    rates["float32"] * 2 * cost / (bench.peak_gflops * 1e9)
                )
        del model
        keras.backend.clear_session()
    return (
        "| input | alpha | batch | model | size MB | size / float32 | img/s | / our Keras "
        "| share of peak |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        + "\n\n\"pw as matmul\" keeps `PointwiseConv2D` in its training form; the other files "
        "write it as a 1x1 conv (`to_tflite`'s default). LiteRT ops of the float32 files:\n\n"
        "| pointwise conv written as | LiteRT ops |\n|---|---|\n" + "\n".join(op_rows)
    )


def onnx_runtime(bench: Bench) -> str:
    import keras
    import numpy as np

    from mobilenet import MobileNetV1, export

    args = bench.args
    size, alpha = (32, 1.0) if args.quick else (224, 1.0)
    model = MobileNetV1(alpha=alpha, input_shape=(size, size, 3), num_classes=1000)
    cost = mult_adds(model)
    calibration = np.random.default_rng(1).random((32, size, size, 3), np.float32)
    keras_export, ours_float, ours_int8 = (
        "Keras' model.export (pw as matmul)", "to_onnx float32", "to_onnx int8"
    )
    paths = {label: bench.folder / f"m{size}_{alpha}_{name}.onnx" for label, name in (
        (keras_export, "keras_export"), (ours_float, "float32"), (ours_int8, "int8"))}
    # Keras' export without an input signature refuses a model never called
    # ("The model provided has never called."), as a fresh functional model is;
    # a trained one has been, so call it once, as training or predict would.
    model(calibration[:1], training=False)
    with warnings.catch_warnings():
        # Keras' numpy-2 patch of tf2onnx looks up `np.object`, which warns.
        warnings.simplefilter("ignore", FutureWarning)
        model.export(str(paths[keras_export]), format="onnx", verbose=False)
    export.to_onnx(model, paths[ours_float])
    export.to_onnx(model, paths[ours_int8], "int8", representative_data=calibration)
    rows = []
    for batch in (1, bench.big_batch):
        steps = {"our Keras model": (keras_step(model, batch, size), batch)}
        steps.update({label: (onnx_step(path, batch, args.threads), batch)
                      for label, path in paths.items()})
        rates = interleaved_rates(steps, args.repeats * (3 if batch == 1 else 1), args.min_seconds * 2)
        keras_rate, export_rate = rates["our Keras model"], rates[keras_export]
        for label, rate in rates.items():
            size_mb = f"{paths[label].stat().st_size / 1e6:.2f}" if label in paths else ""
            rows.append(
                f"| {size}x{size} | {alpha} | {batch} | {label} | {size_mb} | {rate:.1f} "
                f"| {rate / keras_rate:.2f}x | {rate / export_rate:.2f}x | {bench.share(rate, cost)} |"
            )
            progress(rows[-1])
        key = "1" if batch == 1 else "big"
        bench.found[f"onnx float32 / keras export, batch {key}"] = rates[ours_float] / export_rate
        bench.found[f"onnx int8 / keras, batch {key}"] = rates[ours_int8] / keras_rate
    del model
    keras.backend.clear_session()
    ops = "\n".join(f"| {label} | {onnx_op_counts(path)} |" for label, path in paths.items())
    return (
        "| input | alpha | batch | model | size MB | img/s | / our Keras | / Keras' ONNX export "
        "| share of peak |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        + "\n\nThe files' ONNX nodes (ONNX Runtime fuses some when it loads them):\n\n"
        "| file | ONNX nodes |\n|---|---|\n" + ops
    )


# --------------------------------------------------------------------------- peers, one process each

#: The peers' rows: label -> (file kind, what runs it). File kinds: see `peer_files`.
PEERS = {
    "LiteRT int8": ("int8.tflite", "litert"),
    "OpenVINO int8 (our QDQ .onnx)": ("int8.onnx", "openvino"),
    "ONNX Runtime int8": ("int8.onnx", "onnxruntime"),
    "OpenVINO float32 (our .onnx)": ("float32.onnx", "openvino"),
    "OpenVINO float, its default precision (our .onnx)": ("float32.onnx", "openvino-default"),
    "LiteRT float32": ("float32.tflite", "litert"),
    "ONNX Runtime float32": ("float32.onnx", "onnxruntime"),
    "our Keras model (tf.function)": ("", "keras"),
    "timm mobilenetv1_100, PyTorch eager": ("", "timm"),
}
#: Training rows (96x96, batch 64), run only where timm is installed.
PEER_TRAINING = {"ours, Keras train_on_batch (SGD)": "keras-train",
                 "timm mobilenetv1_100, PyTorch (SGD)": "timm-train"}
#: Multiply-adds per instruction, int8 over float32, by the flag that brings the int8 kernel.
INT8_PER_FLOAT32 = {"avx512_vnni": 4}


def has_timm() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("torch", "timm"))


def int8_peak(bench: Bench) -> tuple[float, str]:
    """This CPU's int8 multiply-add peak in GOP/s, from its flags and the float32 peak (or nan)."""
    _, flags = cpu_model_and_flags()
    if "amx_int8" in flags:
        return float("nan"), "AMX: its tile rate is not derived here"
    for flag, factor in INT8_PER_FLOAT32.items():
        if flag in flags:
            return factor * bench.peak_gflops, f"{factor}x the float32 peak ({flag})"
    return float("nan"), "no VNNI: not derived"


def peer_step(kind: str, path: str, threads: int) -> tuple[Callable[[], Any], int, str]:
    """``(step, images per step, precision)`` for one peer row, in this (child) process."""
    import numpy as np

    if kind in ("keras", "keras-train"):
        from mobilenet import MobileNetV1

        if kind == "keras":
            return keras_step(MobileNetV1(1.0, input_shape=(224, 224, 3)), 1, 224), 1, "float32"
        import keras

        model = MobileNetV1(1.0, input_shape=(96, 96, 3), num_classes=1000)
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x, y = rng.random((64, 96, 96, 3), np.float32), rng.integers(0, 1000, 64)
        return lambda: model.train_on_batch(x, y), 64, "float32"
    if kind in ("timm", "timm-train"):
        import timm
        import torch

        torch.set_num_threads(threads)
        model = timm.create_model("mobilenetv1_100", pretrained=False, num_classes=1000)
        if kind == "timm":
            model.eval()
            x = torch.rand(1, 3, 224, 224)

            def infer():
                with torch.inference_mode():
                    return model(x)
            return infer, 1, "float32"
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.rand(64, 3, 96, 96), torch.randint(0, 1000, (64,))

        def train():
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return train, 64, "float32"
    from mobilenet.export import LiteRTRunner, ONNXRunner, OpenVINORunner

    if kind == "litert":
        runner = LiteRTRunner(path, threads)
    elif kind == "onnxruntime":
        runner = ONNXRunner(path, threads)
    else:
        runner = OpenVINORunner(path, threads, precision=None if kind == "openvino-default" else "f32")
    x = random_input(runner, 1)
    precision = getattr(runner, "precision", "int8" if "int8" in Path(path).name else "float32")
    return lambda: runner.run(x, 1), 1, precision


def peer_child(args: argparse.Namespace) -> dict:
    """Times one peer (``--child-peer KIND``) alone in this process: images/s, median of runs."""
    step, images, precision = peer_step(args.child_peer, args.peer_file, args.threads)
    rate = interleaved_rates({"peer": (step, images)}, args.repeats, args.min_seconds)["peer"]
    return {"rate": rate, "precision": precision}


def peer_in_child(kind: str, path: str, args: argparse.Namespace) -> dict | str:
    command = [sys.executable, str(Path(__file__).resolve()), "--child-peer", kind,
               "--peer-file", path, "--threads", str(args.threads), "--repeats",
               str(args.repeats), "--min-seconds", str(args.min_seconds)]
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    results = [line for line in child.stdout.splitlines() if line.startswith(CHILD_RESULT)]
    if child.returncode != 0 or not results:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed (exit {child.returncode}: {last[:150]})"
    return json.loads(results[-1][len(CHILD_RESULT):])


def peer_loop(args: argparse.Namespace) -> dict:
    """The ``--child-loop`` rows (JSON ``{label: [kind, file]}``) in this process, taking turns."""
    steps = {}
    for label, (kind, path) in json.loads(args.child_loop).items():
        step, images, _ = peer_step(kind, path, args.threads)
        steps[label] = (step, images)
    return interleaved_rates(steps, args.repeats, args.min_seconds * 2)


def peer_loop_in_child(rows: dict, files: dict, args: argparse.Namespace) -> dict | str:
    spec = {label: [kind, str(files[file]) if file else ""] for label, (file, kind) in rows.items()}
    command = [sys.executable, str(Path(__file__).resolve()), "--child-loop", json.dumps(spec),
               "--threads", str(args.threads), "--repeats", str(args.repeats),
               "--min-seconds", str(args.min_seconds)]
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    results = [line for line in child.stdout.splitlines() if line.startswith(CHILD_RESULT)]
    if child.returncode != 0 or not results:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed (exit {child.returncode}: {last[:150]})"
    return json.loads(results[-1][len(CHILD_RESULT):])


def peer_files(bench: Bench) -> dict[str, Path]:
    """Our float32 and int8 files of MobileNetV1 (224x224, alpha 1.0, 1000 classes, random weights)."""
    import importlib.util

    import numpy as np

    from mobilenet import MobileNetV1, export

    model = MobileNetV1(1.0, input_shape=(224, 224, 3), num_classes=1000)
    calibration = np.random.default_rng(1).random((32, 224, 224, 3), np.float32)
    files = {name: bench.folder / f"peer_{name}" for name in
             ("float32.tflite", "int8.tflite", "float32.onnx", "int8.onnx")}
    export.to_tflite(model, files["float32.tflite"])
    export.to_tflite(model, files["int8.tflite"], "int8", representative_data=calibration)
    if importlib.util.find_spec("onnxruntime"):
        export.to_onnx(model, files["float32.onnx"])
        export.to_onnx(model, files["int8.onnx"], "int8", representative_data=calibration)
    return files


def peers(bench: Bench) -> str:
    import importlib.util

    import keras

    from mobilenet import MobileNetV1

    args = bench.args
    files = peer_files(bench)
    cost = mult_adds(MobileNetV1(1.0, input_shape=(224, 224, 3)))
    keras.backend.clear_session()
    rows = {label: spec for label, spec in PEERS.items()
            if (spec[1] not in ("timm",) or has_timm())
            and (not spec[1].startswith("openvino") or importlib.util.find_spec("openvino"))
            and (not spec[0] or files[spec[0]].is_file())}
    training = PEER_TRAINING if has_timm() else {}
    runs: dict[str, list] = {label: [] for label in (*rows, *training)}
    order = [(label, *spec) for label, spec in rows.items()] + [
        (label, "", kind) for label, kind in training.items()]
    precision = {}
    for round_ in range(args.peer_rounds):
        turn = order[round_ % len(order):] + order[:round_ % len(order)]
        for label, file, kind in turn:
            result = peer_in_child(kind, str(files[file]) if file else "", args)
            if isinstance(result, str):
                progress(f"{label}: {result}")
                continue
            runs[label].append(result["rate"])
            precision[label] = result["precision"]
            progress(f"round {round_ + 1}: {label}: {result['rate']:.1f} img/s ({result['precision']})")
    peak8, how = int8_peak(bench)
    # The same rows again, in one child process, taking turns run by run: on a shared CPU
    # their ratios are steadier than those of processes minutes apart. Not timm: with
    # torch, TensorFlow, LiteRT and OpenVINO in one process, that process crashed (SIGSEGV).
    looped = {label: spec for label, spec in rows.items() if not spec[1].startswith("timm")}
    together = peer_loop_in_child(looped, files, args)
    if isinstance(together, str):
        progress(f"one loop: {together}")
        together = {}
    reference = together.get("ONNX Runtime float32") or next(iter(together.values()), 1.0)
    table = []
    for label in rows:
        loop = (f"{together[label]:.1f} | {together[label] / reference:.2f}x"
                if label in together else " | ")
        if not runs[label]:
            table.append(f"| {label} | {precision.get(label, '')} | | | {loop} | |")
            continue
        rate = statistics.median(runs[label])
        int8 = "int8" in label
        share = (f"{rate * 2 * cost / (peak8 * 1e9):.1%} of int8" if int8 and peak8 == peak8
                 else "" if int8 else bench.share(rate, cost))
        table.append(f"| {label} | {precision[label]} | {rate:.1f} | "
                     f"{' / '.join(f'{r:.1f}' for r in runs[label])} | {loop} | {share} |")
    text = (
        f"Batch 1, 224x224, alpha 1.0, 1000 classes, random weights; each row in its own "
        f"process, the processes taking turns, {args.peer_rounds} rounds (median, and each "
        f"round's figure), then all in one process, taking turns run by run (\"one loop\", "
        f"and its ratio to ONNX Runtime float32); {args.threads} threads. int8 peak: "
        + (f"{peak8:.0f} GOP/s, {how}" if peak8 == peak8 else how) + ".\n\n"
        "| runtime | precision | img/s (own process) | rounds | img/s (one loop) | ratio (one loop) "
        "| share of peak |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(table)
    )
    if training:
        lines = [f"| {label} | {statistics.median(runs[label]):.1f} |" if runs[label]
                 else f"| {label} | failed |" for label in training]
        text += ("\n\nTraining step, 96x96, batch 64, 1000 classes, SGD with momentum, the same "
                 "turns:\n\n| model | img/s |\n|---|---|\n" + "\n".join(lines))
    else:
        text += "\n\n(timm rows: torch and timm are not installed: `pip install \".[benchmark]\"`.)"
    return text


# --------------------------------------------------------------------------- a trained CIFAR-10 model

#: The files of the CIFAR-10 model: suffix and quantization.
CIFAR_FILES = {
    "LiteRT float32": (".tflite", None),
    "LiteRT float16": (".tflite", "float16"),
    "LiteRT dynamic": (".tflite", "dynamic"),
    "LiteRT int8": (".tflite", "int8"),
    "ONNX float32": (".onnx", None),
    "ONNX int8": (".onnx", "int8"),
}


class CifarModel:
    """The trained CIFAR-10 model of the ``int8`` and ``predict`` sections, and its files, made once."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self._data = None
        self._model = None
        self.keras_path: Path | None = None
        self.description = ""
        self._files: dict[str, Path] = {}

    def data(self):
        """``(x_train, y_train), (x_test, y_test)`` of the subset, pixels as they come."""
        if self._data is None:
            from mobilenet.cifar10 import load_cifar10

            self._data = load_cifar10(self.bench.args.cifar10_dir)
        return self._data

    def model(self):
        if self._model is None:
            self._model = self._load() if self.bench.args.model else self._train()
        return self._model

    def _load(self):
        from mobilenet import load_model
        from mobilenet.export import pixel_input_range

        self.keras_path = Path(self.bench.args.model)
        model = load_model(self.keras_path)
        if pixel_input_range(model) is None:
            raise SystemExit(
                f"speed.py: error: --model {self.keras_path} does not take pixels (its first layer "
                "is not a Rescaling); give a model from `mobilenet train` or examples/cifar10.py"
            )
        self.description = f"`{self.keras_path}` (loaded)"
        return model

    def _train(self):
        from mobilenet.cifar10 import train

        args = self.bench.args
        (x_train, y_train), _ = self.data()
        epochs = 2 if args.quick else args.epochs
        budget = None if args.quick else args.train_minutes * 60
        started = time.perf_counter()
        result = train(x_train, y_train, output_dir=self.bench.folder / "cifar10-run",
                       validation_fraction=0.0, epochs=epochs, time_budget=budget, verbose=0)
        minutes = (time.perf_counter() - started) / 60
        self.keras_path = result.final_model_path
        if args.save_model:
            result.model.save(args.save_model)
        self.description = (
            f"trained here by `mobilenet.cifar10.train` with its defaults (MobileNetV1 alpha 0.5, "
            f"early_downsampling 2, SGD with warm-up and cosine decay, crop + flip), "
            f"{len(result.history)} of {epochs} epochs in {minutes:.1f} min"
            + (f" (time budget {args.train_minutes:g} min)" if budget else "")
            + f" on the subset's {len(x_train):,} training images, no validation split"
        )
        return result.model

    def calibration(self):
        """500 training images (never test images), as the model takes them: pixels."""
        import numpy as np

        (x_train, _), _ = self.data()
        chosen = np.random.default_rng(0).permutation(len(x_train))[:500]
        return x_train[chosen].astype(np.float32)

    def file(self, label: str) -> Path:
        if label not in self._files:
            from mobilenet import export

            suffix, quantization = CIFAR_FILES[label]
            path = self.bench.folder / f"cifar_{label.replace(' ', '_')}{suffix}"
            calibration = self.calibration() if quantization == "int8" else None
            if suffix == ".onnx":
                export.to_onnx(self.model(), path, quantization, representative_data=calibration)
            else:
                export.to_tflite(self.model(), path, quantization, representative_data=calibration)
            self._files[label] = path
        return self._files[label]


def int8_agreement(bench: Bench, cifar: CifarModel) -> str:
    import numpy as np

    from mobilenet import export

    args = bench.args
    model = cifar.model()
    _, (x_test, y_test) = cifar.data()
    if args.quick:
        x_test, y_test = x_test[:200], y_test[:200]
    probabilities = model.predict(x_test, verbose=0)
    float_accuracy = float(np.mean(probabilities.argmax(-1) == y_test))
    top2 = np.sort(probabilities, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= 0.1  # images the float model does not nearly tie on
    labels = ("LiteRT float32", "LiteRT int8", "ONNX float32", "ONNX int8")
    if not args.quick:
        labels = ("LiteRT float32", "LiteRT float16", "LiteRT dynamic", "LiteRT int8",
                  "ONNX float32", "ONNX int8")
    rows = []
    for label in labels:
        path = cifar.file(label)
        if path.suffix == ".onnx":
            report = export.verify_onnx(path, model, x_test, num_threads=args.threads)
            outputs = export.run_onnx(path, x_test, num_threads=args.threads)
        else:
            report = export.verify_tflite(path, model, x_test, num_threads=args.threads)
            outputs = export.run_tflite(path, x_test, num_threads=args.threads)
        agree = outputs.argmax(-1) == probabilities.argmax(-1)
        if label.endswith("int8"):
            bench.found[f"{label.split()[0].lower()} int8 agreement"] = report.top1_agreement
        rows.append(
            f"| {label} | {report.input_type} | {path.stat().st_size / 1e6:.3f} "
            f"| {report.top1_agreement:.1%} | {np.mean(agree[clear]):.1%} "
            f"| {np.mean(agree[~clear]) if (~clear).any() else float('nan'):.1%} "
            f"| {report.max_abs_diff:.4f} | {np.mean(outputs.argmax(-1) == y_test):.1%} |"
        )
        progress(rows[-1])
    rows += openvino_agreement(bench, cifar, x_test, probabilities, clear, y_test)
    return (
        f"The model: {cifar.description}; Keras float test accuracy {float_accuracy:.1%} on "
        f"{len(y_test):,} test images. int8 calibrated on 500 training images, as pixels. "
        f"{clear.mean():.0%} of the test images have a float top-1 margin (p1 - p2) of at least "
        "0.1; agreement is also shown separately for them and for the near ties.\n\n"
        "| file | input type | size MB | top-1 agreement with Keras | agreement, margin >= 0.1 "
        "| agreement, margin < 0.1 | max abs diff (probabilities) | test accuracy |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


def openvino_agreement(bench: Bench, cifar: CifarModel, x_test, probabilities, clear,
                       y_test) -> list[str]:
    """The int8 table's rows for the ONNX files in OpenVINO: float32, bfloat16 asked, int8."""
    import importlib.util

    import numpy as np

    from mobilenet.export import OpenVINORunner
    from mobilenet.export.verification import compare

    if importlib.util.find_spec("openvino") is None:
        return ["| OpenVINO (not installed) | | | | | | | |"]
    rows = []
    for label, file, precision in (("OpenVINO float32", "ONNX float32", "f32"),
                                   ("OpenVINO float, its default", "ONNX float32", None),
                                   ("OpenVINO float, bf16 asked", "ONNX float32", "bf16"),
                                   ("OpenVINO int8", "ONNX int8", "f32")):
        path = cifar.file(file)
        runner = OpenVINORunner(path, bench.args.threads, precision=precision)
        report = compare(runner, cifar.model(), x_test)
        outputs = runner.run(x_test)
        agree = outputs.argmax(-1) == probabilities.argmax(-1)
        rows.append(
            f"| {label} (compiled: {runner.precision}) | {report.input_type} "
            f"| {path.stat().st_size / 1e6:.3f} | {report.top1_agreement:.1%} "
            f"| {np.mean(agree[clear]):.1%} "
            f"| {np.mean(agree[~clear]) if (~clear).any() else float('nan'):.1%} "
            f"| {report.max_abs_diff:.4f} | {np.mean(outputs.argmax(-1) == y_test):.1%} |"
        )
        progress(rows[-1])
    return rows


def write_images(bench: Bench, cifar: CifarModel, count: int, size: int) -> Path:
    """The first ``count`` test images as ``size`` x ``size`` PNG files in a new folder."""
    import tensorflow as tf

    folder = bench.folder / "images"
    folder.mkdir(exist_ok=True)
    _, (x_test, _) = cifar.data()
    for index, image in enumerate(x_test[:count]):
        image = tf.convert_to_tensor(image)
        if size != image.shape[0]:
            image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bicubic")
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        tf.io.write_file(str(folder / f"{index:04d}.png"), tf.io.encode_png(image))
    return folder


def predict_throughput(bench: Bench, cifar: CifarModel) -> str:
    import numpy as np

    from mobilenet.predict import Classifier

    args = bench.args
    count = 64 if args.quick else args.predict_images
    images = write_images(bench, cifar, count, args.predict_size)
    cost = mult_adds(cifar.model())
    labels = (".keras", "LiteRT float32", "LiteRT int8", "ONNX float32", "ONNX int8")
    classifiers, load_seconds = {}, {}
    for label in labels:
        path = cifar.keras_path if label == ".keras" else cifar.file(label)
        begin = time.perf_counter()
        classifiers[label] = Classifier(
            path, num_threads=None if label == ".keras" else args.threads
        )
        load_seconds[label] = time.perf_counter() - begin
    # Whether each runtime's top-1 class is the .keras file's, file by file.
    top1 = {label: np.array([result.top[0].index for result in classifier.classify(images, top=1)])
            for label, classifier in classifiers.items()}
    steps = {label: (lambda classifier=classifier: classifier.classify(images), count)
             for label, classifier in classifiers.items()}
    rates = interleaved_rates(steps, max(2, args.repeats // 2))
    rows = []
    for label in labels:
        rows.append(
            f"| {label} | {classifiers[label].runtime} | {load_seconds[label]:.2f} "
            f"| {rates[label]:.1f} | {rates[label] / rates['.keras']:.2f}x "
            f"| {np.mean(top1[label] == top1['.keras']):.1%} | {bench.share(rates[label], cost)} |"
        )
        progress(rows[-1])
    return (
        f"`Classifier(path).classify(folder)` (top 5, batch 32) over {count} PNG files: CIFAR-10 "
        f"test images written at {args.predict_size}x{args.predict_size}, so that each is read, "
        f"decoded{' and resized to 32x32' if args.predict_size != 32 else ''} and classified; "
        "the model is the one above. Load: building the Classifier (reading the file).\n\n"
        "| file | runtime | load s | img/s, file to top-5 | / .keras | top-1 same as .keras "
        "| share of peak |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


# --------------------------------------------------------------------------- goals

#: Issue 13's goals: text, the figure of `Bench.found` it reads, and the threshold.
GOALS = (
    ("to_onnx float32 >= 1.3x Keras' ONNX export in ONNX Runtime, batch 32",
     "onnx float32 / keras export, batch big", 1.3, "x"),
    ("LiteRT int8 >= 4x our Keras model, batch 32", "litert int8 / keras, batch big", 4.0, "x"),
    ("LiteRT int8 >= 5x our Keras model, batch 1", "litert int8 / keras, batch 1", 5.0, "x"),
    ("ONNX Runtime int8 (to_onnx) >= 4x our Keras model, batch 32",
     "onnx int8 / keras, batch big", 4.0, "x"),
    ("ONNX Runtime int8 (to_onnx) >= 5x our Keras model, batch 1",
     "onnx int8 / keras, batch 1", 5.0, "x"),
    ("LiteRT float32 >= 80% of the float32 GEMM peak, batch 32",
     "litert float32 share, batch big", 0.8, "%"),
    ("LiteRT int8 top-1 agreement >= 98% (trained CIFAR-10 model, test images)",
     "litert int8 agreement", 0.98, "%"),
    ("ONNX Runtime int8 top-1 agreement >= 98% (trained CIFAR-10 model, test images)",
     "onnx int8 agreement", 0.98, "%"),
)


def goals_table(bench: Bench) -> str:
    def shown(value: float, unit: str) -> str:
        return f"{value:.2f}x" if unit == "x" else f"{value:.1%}"

    rows = []
    for goal, key, threshold, unit in GOALS:
        if key not in bench.found:
            rows.append(f"| {goal} | not measured (its section was skipped) | |")
            continue
        value = bench.found[key]
        verdict = "met" if value >= threshold else (
            f"**missed** by {threshold - value:.2f}x" if unit == "x"
            else f"**missed** by {(threshold - value) * 100:.1f} points"
        )
        rows.append(f"| {goal} | {shown(value, unit)} | {verdict} |")
    _, flags = cpu_model_and_flags()
    vnni = [flag for flag in flags if "vnni" in flag or flag == "amx_int8"]
    note = (
        "Speed goals are set at 224x224, alpha 1.0, for one run on a CPU with VNNI; this CPU has "
        + (", ".join(vnni) if vnni else "no VNNI (AVX2-only int8 kernels)") + "."
    )
    if bench.args.quick:
        note += (" **--quick** measures 32x32 and batch 8 instead, with a 2-epoch model and a "
                 "smaller matmul, so these verdicts do not answer the goals.")
    return note + "\n\n| goal | measured | verdict |\n|---|---|---|\n" + "\n".join(rows)


# --------------------------------------------------------------------------- main


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 2-3 minute smoke run")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help=f"run only these sections, of: {', '.join(SECTIONS)}")
    parser.add_argument("--skip", nargs="+", default=(), choices=SECTIONS, metavar="SECTION",
                        help="skip these sections")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per figure")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="keep repeating a figure until this much time has passed")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="LiteRT and ONNX Runtime threads (default: all cores)")
    parser.add_argument("--cifar10-dir", default=str(DEFAULT_CIFAR10),
                        help="folder holding cifar-10-batches-py/ (default: %(default)s)")
    parser.add_argument("--model", help="a trained CIFAR-10 .keras model taking pixels (from "
                        "`mobilenet train` or examples/cifar10.py); default: train one here")
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs for the model trained here (default: %(default)s)")
    parser.add_argument("--train-minutes", type=float, default=6.0,
                        help="time budget for the model trained here (default: %(default)s)")
    parser.add_argument("--save-model", help="save the model trained here to this .keras file")
    parser.add_argument("--predict-images", type=int, default=300,
                        help="image files for the predict section (default: %(default)s)")
    parser.add_argument("--predict-size", type=int, default=64,
                        help="side of the PNG files the predict section reads (default: "
                        "%(default)s; 32 skips the resize)")
    parser.add_argument("--peer-rounds", type=int, default=2,
                        help="rounds of the peers section, each runtime once per round")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-peer", help=argparse.SUPPRESS)
    parser.add_argument("--peer-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--child-loop", help=argparse.SUPPRESS)
    parser.add_argument("--child-gemm", choices=("tensorflow", "numpy"), help=argparse.SUPPRESS)
    parser.add_argument("--gemm-size", type=int, default=4096, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 7)
    if args.min_seconds is None:
        args.min_seconds = 0.0 if args.quick else 2.0
    args.sections = [name for name in (args.only or SECTIONS) if name not in args.skip]
    return args


def main(argv=None) -> int:
    args = parse_arguments(argv)
    if args.child:  # the training step under another TensorFlow setting, for the parent
        print(CHILD_RESULT + json.dumps(training_rates(args)), flush=True)
        return 0
    if args.child_loop:  # the peers taking turns in one process
        print(CHILD_RESULT + json.dumps(peer_loop(args)), flush=True)
        return 0
    if args.child_peer:  # one runtime of the peers section, alone in this process
        print(CHILD_RESULT + json.dumps(peer_child(args)), flush=True)
        return 0
    if args.child_gemm:  # a GEMM peak under another setting, for the parent
        peak = matmul_peak if args.child_gemm == "tensorflow" else numpy_matmul_peak
        print(CHILD_RESULT + json.dumps(peak(args.gemm_size, args.repeats)), flush=True)
        return 0
    cifar_needed = {"int8", "predict"} & set(args.sections)
    if cifar_needed and not (Path(args.cifar10_dir) / "cifar-10-batches-py").is_dir():
        print(f"speed.py: no CIFAR-10 subset at {args.cifar10_dir}; skipping "
              f"{', '.join(sorted(cifar_needed))}", file=sys.stderr)
        args.sections = [name for name in args.sections if name not in cifar_needed]

    titles = {
        "inference": ("Keras inference (images/s)", keras_inference),
        "training": ("Keras training step (images/s), TensorFlow's default and oneDNN off",
                     keras_training),
        "litert": ("LiteRT vs our Keras model", litert),
        "onnx": ("ONNX Runtime: Keras' export vs to_onnx, float32 and int8", onnx_runtime),
        "peers": ("Peers: one model in every runtime, each in its own process", peers),
        "int8": ("int8 agreement on the CIFAR-10 subset's test images", int8_agreement),
        "predict": ("`mobilenet predict` per runtime", predict_throughput),
    }
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args, Path(tmp))
        header(bench)
        cifar = CifarModel(bench)
        for name in args.sections:
            title, section = titles[name]
            print(f"## {title}\n", flush=True)
            table = section(bench, cifar) if name in ("int8", "predict") else section(bench)
            print(table + "\n", flush=True)
        print("## Goals (issue 13)\n")
        print(goals_table(bench) + "\n")
        print(f"- at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
