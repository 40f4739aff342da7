"""Every runtime on our files in one process, taking turns run by run: ratios on a shared CPU.

MobileNet V1 (alpha 1.0, 224x224, 1000 classes, random weights) at batch 1:
LiteRT, ONNX Runtime and OpenVINO on our float32 and int8 files, the int8
ONNX file twice: as `mobilenet.export.to_onnx` writes it (the stem conv in
float) and with every conv int8 (the file before issue 33). The runners take
turns run by run (`_common.interleaved_rates`), so that other load on the
machine hits them alike; ratios are to ONNX Runtime float32.

Run it from the repository root (about 2 minutes on 2 cores):

    PYTHONPATH=src python benchmarks/runtimes_loop.py
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _common import cpu_model_and_flags, interleaved_rates, load_line, versions  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Row:
    runtime: str
    images_per_second: float
    ratio: float


def write_files(folder: Path) -> dict[str, Path]:
    """Our float32 and int8 files, and the int8 ONNX file with the stem conv quantized too."""
    from onnxruntime import quantization

    from mobilenet import MobileNetV1
    from mobilenet.export import to_onnx, to_tflite

    model = MobileNetV1(1.0, input_shape=(224, 224, 3))
    calibration = np.random.default_rng(1).random((32, 224, 224, 3), np.float32)
    files = {
        "float32.onnx": to_onnx(model, folder / "float32.onnx"),
        "int8.onnx": to_onnx(model, folder / "int8.onnx", "int8", representative_data=calibration),
        "float32.tflite": to_tflite(model, folder / "float32.tflite"),
        "int8.tflite": to_tflite(model, folder / "int8.tflite", "int8",
                                 representative_data=calibration),
    }
    quantize = quantization.quantize_static
    # to_onnx passes nodes_to_exclude (the stem); without it every conv is int8.
    quantization.quantize_static = lambda *a, nodes_to_exclude=None, **k: quantize(*a, **k)
    try:
        files["all_int8.onnx"] = to_onnx(model, folder / "all_int8.onnx", "int8",
                                         representative_data=calibration)
    finally:
        quantization.quantize_static = quantize
    return files


def measure(files: dict[str, Path], threads: int, repeats: int, seconds: float) -> list[Row]:
    from mobilenet.export import LiteRTRunner, ONNXRunner, OpenVINORunner

    runners = {
        "LiteRT int8": (LiteRTRunner, "int8.tflite"),
        "OpenVINO int8, stem float (to_onnx)": (OpenVINORunner, "int8.onnx"),
        "ONNX Runtime int8, stem float (to_onnx)": (ONNXRunner, "int8.onnx"),
        "OpenVINO int8, every conv int8": (OpenVINORunner, "all_int8.onnx"),
        "ONNX Runtime int8, every conv int8": (ONNXRunner, "all_int8.onnx"),
        "OpenVINO float32": (OpenVINORunner, "float32.onnx"),
        "LiteRT float32": (LiteRTRunner, "float32.tflite"),
        "ONNX Runtime float32": (ONNXRunner, "float32.onnx"),
    }
    rng = np.random.default_rng(0)
    steps = {}
    for label, (runner_class, name) in runners.items():
        runner = runner_class(files[name], threads)
        dtype = np.dtype(runner.input_type)
        if np.issubdtype(dtype, np.integer):
            x = rng.integers(0, 256, (1, 224, 224, 3)).astype(dtype)
        else:
            x = rng.random((1, 224, 224, 3)).astype(dtype)
        steps[label] = (lambda runner=runner, x=x: runner.run(x, 1), 1)
    rates = interleaved_rates(steps, repeats, seconds)
    reference = rates["ONNX Runtime float32"]
    return [Row(label, rate, rate / reference) for label, rate in rates.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    cpu, flags = cpu_model_and_flags()
    print(f"- CPU: {cpu}, {os.cpu_count()} cores; ISA flags: {', '.join(flags)}")
    print(f"- {versions()}")
    print(f"- at the start: {load_line()}\n")
    with tempfile.TemporaryDirectory() as folder:
        rows = measure(write_files(Path(folder)), args.threads, args.repeats, args.min_seconds)
    print("| runtime | img/s | / ONNX Runtime float32 |\n|---|---|---|")
    for row in rows:
        print(f"| {row.runtime} | {row.images_per_second:.1f} | {row.ratio:.2f}x |")
    print(f"\n- at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
