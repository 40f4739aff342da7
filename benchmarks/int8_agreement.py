"""int8 ONNX settings on this CPU: agreement with Keras, CPU independence, speed.

Writes a trained CIFAR-10 model (``--model``, from `mobilenet train`) as int8
ONNX files with ONNX Runtime's own ``quantize_static`` under several settings
(activation/weight types, ``reduce_range``, per-tensor weights, 7-bit weights
for the stem conv alone), calibrated like `mobilenet.export.to_onnx` (500
training images, the input's range anchored to 0-255), plus `to_onnx`'s own
file and the LiteRT int8 file of `to_tflite`. For each, on the subset's 1,000
test images:

- top-1 agreement with the Keras model as ONNX Runtime runs the file (its
  int8 kernels for this CPU), overall and split by the float top-1 margin;
- the same for the file's plain QDQ arithmetic (ONNX Runtime with graph
  optimization off: dequantize, float op, quantize; no int8 kernel), which is
  what CPUs whose int8 kernels do not saturate compute (x86 with VNNI, ARM);
- how often the two give the same top-1 and their largest output difference:
  below 100% the file answers differently on this CPU than on those;
- images/s at batch 1 and 32 on this model, and at 224x224 alpha 1.0 (random
  weights: speed does not depend on training), the files taking turns.

Run it alone, from the repository root (about 5 minutes on 2 cores):

    PYTHONPATH=src python benchmarks/int8_agreement.py --model runs/cifar10/final.keras
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _common import cpu_model_and_flags, interleaved_rates, load_line, progress, versions  # noqa: E402

DEFAULT_CIFAR10 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset"


def stem_conv(graph):
    """The first Conv node of an ONNX graph: the stem conv, whose input is the pixels."""
    return next(node for node in graph.node if node.op_type == "Conv")


def settings(ort_quantization, graph) -> dict[str, dict]:
    """quantize_static keyword arguments by row label; `to_onnx` is the reduce_range row."""
    q = ort_quantization.QuantType
    seven_bit_stem = {"TensorQuantOverrides": {stem_conv(graph).input[1]: [{"reduce_range": True}]}}
    return {
        "S8S8, 8-bit weights (to_onnx before)": {},
        "S8S8, reduce_range (to_onnx now)": {"reduce_range": True},
        "U8S8": {"activation_type": q.QUInt8},
        "U8S8, reduce_range (ORT's advice without VNNI)": {"activation_type": q.QUInt8,
                                                           "reduce_range": True},
        "U8U8": {"activation_type": q.QUInt8, "weight_type": q.QUInt8},
        "S8S8, symmetric activations": {"extra_options": {"ActivationSymmetric": True}},
        "S8S8, per-tensor weights": {"per_channel": False},
        "S8S8, 7-bit weights in the stem conv only": {"extra_options": seven_bit_stem},
    }


def calibration_reader(ort_quantization, images: np.ndarray, input_name: str, batch_size: int = 32):
    """Batches of calibration images, the first preceded by a copy holding 0 and 255."""
    anchor = images[:1].copy()
    anchor.reshape(-1)[[0, -1]] = (0.0, 255.0)
    data = np.concatenate([anchor, images]).astype(np.float32)
    batches = iter(range(0, len(data), batch_size))

    class Reader(ort_quantization.CalibrationDataReader):
        def get_next(self):
            start = next(batches, None)
            return None if start is None else {input_name: data[start:start + batch_size]}

    return Reader()


def session(path: Path, threads: int, optimized: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def outputs(sess, images: np.ndarray) -> np.ndarray:
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: images[i:i + 100].astype(np.float32)})[0]
                           for i in range(0, len(images), 100)])


def write_files(model, folder: Path, calibration: np.ndarray, labels=None, *, make_settings=settings,
                calibration_batch: int = 32, own_files: bool = True) -> dict[str, Path]:
    """The int8 files of ``model``: each setting's (or those in ``labels``), `to_onnx`'s, LiteRT's.

    ``make_settings(ort_quantization, graph)`` gives the settings by label (default:
    `settings`); ``own_files=False`` leaves out the `to_onnx` and LiteRT files.
    """
    import onnx
    from onnxruntime import quantization as ort_quantization
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mobilenet.export import to_onnx, to_tflite

    float_path = to_onnx(model, folder / "float.onnx")
    prepared = folder / "prepared.onnx"
    quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
    graph = onnx.load(str(prepared)).graph
    input_name = graph.input[0].name
    files = {}
    for index, (label, kwargs) in enumerate(make_settings(ort_quantization, graph).items()):
        if labels is not None and label not in labels:
            continue
        path = folder / f"setting{index}.onnx"
        kwargs = {"quant_format": ort_quantization.QuantFormat.QDQ, "per_channel": True,
                  "activation_type": ort_quantization.QuantType.QInt8,
                  "weight_type": ort_quantization.QuantType.QInt8, **kwargs}
        ort_quantization.quantize_static(
            str(prepared), str(path),
            calibration_reader(ort_quantization, calibration, input_name, calibration_batch), **kwargs)
        files[label] = path
    if not own_files:
        return files
    files["to_onnx(..., 'int8') itself"] = to_onnx(model, folder / "to_onnx.onnx", "int8",
                                                   representative_data=calibration)
    files["LiteRT int8 (to_tflite)"] = to_tflite(model, folder / "int8.tflite", "int8",
                                                 representative_data=calibration)
    return files


def agreement_table(model, files: dict[str, Path], images: np.ndarray, threads: int) -> str:
    from mobilenet.export import run_tflite

    expected = model.predict(images, verbose=0)
    top2 = np.sort(expected, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] >= 0.1

    def agreement(out: np.ndarray) -> str:
        agree = out.argmax(-1) == expected.argmax(-1)
        return f"{agree.mean():.1%} | {agree[clear].mean():.1%} | {agree[~clear].mean():.1%}"

    rows = []
    for label, path in files.items():
        if path.suffix == ".tflite":
            out = run_tflite(path, images, num_threads=threads)
            rows.append(f"| {label} | {agreement(out)} | (XNNPACK: no saturation) | | | |")
        else:
            out = outputs(session(path, threads), images)
            reference = outputs(session(path, threads, optimized=False), images)
            same = np.mean(out.argmax(-1) == reference.argmax(-1))
            rows.append(f"| {label} | {agreement(out)} | {agreement(reference)} | {same:.1%} "
                        f"| {np.abs(out - reference).max():.3f} |")
        progress(rows[-1])
    return (
        f"{clear.mean():.0%} of the {len(images):,} test images have a float top-1 margin "
        "(p1 - p2) of at least 0.1 (\"clear\"); the others are near ties.\n\n"
        "| file | agreement, this CPU's int8 kernels | clear | near ties "
        "| agreement, plain QDQ arithmetic (no saturation) | clear | near ties "
        "| same top-1, kernels vs QDQ | max output difference |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


def speed_rows(label: str, files: dict[str, Path], size: int, threads: int, repeats: int) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    rows = []
    for batch in (1, 32):
        x = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3)).astype(np.float32)
        steps = {}
        for name, path in files.items():
            if path.suffix == ".tflite":
                interpreter = Interpreter(model_path=str(path), num_threads=threads)
                detail = interpreter.get_input_details()[0]
                interpreter.resize_tensor_input(detail["index"], x.shape)
                interpreter.allocate_tensors()
                interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
                steps[name] = (interpreter.invoke, batch)
            else:
                sess = session(path, threads)
                feed = {sess.get_inputs()[0].name: x}
                steps[name] = (lambda sess=sess, feed=feed: sess.run(None, feed), batch)
        rates = interleaved_rates(steps, repeats, min_seconds=2.0)
        for name, rate in rates.items():
            rows.append(f"| {label} | {batch} | {name} | {rate:.1f} |")
            progress(rows[-1])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained CIFAR-10 .keras model taking pixels")
    parser.add_argument("--cifar10-dir", default=str(DEFAULT_CIFAR10))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-224", action="store_true", help="no 224x224 speed rows")
    args = parser.parse_args(argv)

    import keras

    from mobilenet import MobileNetV1, load_model
    from mobilenet.cifar10 import load_cifar10

    cpu, flags = cpu_model_and_flags()
    print("# int8 ONNX settings: agreement with Keras, CPU independence, speed\n")
    print(f"- CPU: {cpu}, {os.cpu_count()} cores; ISA flags: {', '.join(flags)}")
    print(f"- {versions()}")
    print(f"- at the start: {load_line()}\n")
    model = load_model(args.model)
    (x_train, _), (x_test, _) = load_cifar10(args.cifar10_dir)
    calibration = x_train[np.random.default_rng(0).permutation(len(x_train))[:500]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "cifar").mkdir()
        (folder / "big").mkdir()
        files = write_files(model, folder / "cifar", calibration)
        print(f"## Agreement with `{args.model}` on the subset's test images\n")
        print(agreement_table(model, files, x_test, args.threads) + "\n")
        timed = ("S8S8, 8-bit weights (to_onnx before)", "to_onnx(..., 'int8') itself",
                 "U8S8, reduce_range (ORT's advice without VNNI)", "LiteRT int8 (to_tflite)")
        rows = speed_rows("32x32, this model", {k: files[k] for k in timed}, 32, args.threads,
                          args.repeats)
        if not args.skip_224:
            keras.utils.set_random_seed(0)
            big = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1),
                                    MobileNetV1(alpha=1.0, input_shape=(224, 224, 3))])
            pixels = np.random.default_rng(1).integers(0, 256, (64, 224, 224, 3)).astype(np.float32)
            big_files = write_files(big, folder / "big", pixels, labels=timed)
            rows += speed_rows("224x224, alpha 1.0", {k: big_files[k] for k in timed}, 224,
                               args.threads, args.repeats)
        print(f"## Speed (images/s, {args.threads} threads, the files taking turns)\n")
        print("| model | batch | file | img/s |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print(f"- at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
