"""int8 ONNX settings that keep the stem conv in float: agreement, CPU independence, speed.

`benchmarks/int8_agreement.py` found that on x86 CPUs without VNNI nearly all
of ONNX Runtime's int8 saturation is in the stem conv (its input is the dense
pixel range), and that 7-bit weights everywhere (``reduce_range``, what
`mobilenet.export.to_onnx` writes) remove it at about one point of agreement.
This script tries the settings that leave the stem conv in float
(``nodes_to_exclude``) against that file, with that script's calibration,
tables and timing:

- 7-bit or 8-bit weights elsewhere; 7-bit only in the pointwise convs and the
  classifier (the layers whose kernels add pairs of products in int16);
- MinMax, percentile or entropy calibration (calibration batches of equal
  size: ONNX Runtime's histogram collectors need them);
- U8S8, and the classifier and softmax kept in float too;
- 8-bit weights where ONNX Runtime's kernels keep int32 sums (depthwise convs)
  and 7-bit where they add pairs in int16 (pointwise convs, classifier): the
  recommended setting, run with (a) and `to_onnx`'s over three calibration
  draws (500 training images each, seeds 0-2);
- images/s at 224x224, alpha 1.0 (random weights), batch 1 and 32.

"same top-1, kernels vs QDQ" is the share of images on which this CPU's int8
kernels give the top-1 of the file's plain QDQ arithmetic (graph optimization
off), which is what CPUs whose kernels do not saturate (x86 with VNNI, ARM)
compute; 100% means the file answers alike on every CPU kind.

Run it alone, from the repository root (about 12 minutes on 2 busy cores):

    PYTHONPATH=src python benchmarks/int8_onnx_settings.py --model runs/cifar10/final.keras
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_agreement import (  # noqa: E402
    DEFAULT_CIFAR10, agreement_table, speed_rows, stem_conv, write_files,
)
from speed import cpu_model_and_flags, load_line, versions  # noqa: E402

NOW = "S8S8, 7-bit weights everywhere (reduce_range; to_onnx before issue 33)"
FLOAT_STEM = "(a) stem conv in float, 7-bit weights elsewhere (to_onnx now)"
FLOAT_STEM_8BIT = "(b) stem conv in float, 8-bit weights elsewhere"
RECOMMENDED = ("(d) stem conv in float, 7-bit weights in pointwise convs and classifier, "
               "8-bit depthwise")
# 500 training images and the anchor image: 3 equal batches of 167.
CALIBRATION_BATCH = 167


def stem_and_inputs(graph) -> list[str]:
    """Names of the stem conv and every node it depends on (the input's rescaling, transpose).

    All must stay in float: with a quantized input (a DequantizeLinear feeding
    it) ONNX Runtime's graph optimizer quantizes a float conv's weights itself,
    to 8 bits, and the stem saturates again.
    """
    producers = {output: node for node in graph.node for output in node.output}
    names, pending = [], [stem_conv(graph)]
    while pending:
        node = pending.pop()
        if node.name not in names:
            names.append(node.name)
            pending += [producers[name] for name in node.input if name in producers]
    return names


def candidate_settings(ort_quantization, graph) -> dict[str, dict]:
    """quantize_static keyword arguments by row label (QDQ, per-channel, S8S8 unless changed)."""
    q = ort_quantization.QuantType
    method = ort_quantization.CalibrationMethod
    stem = stem_conv(graph)

    def groups(node):
        return next((a.i for a in node.attribute if a.name == "group"), 1)

    # The kernels that add pairs of uint8 x int8 products in int16 (VPMADDUBSW):
    # the GEMM behind pointwise convs and the classifier, not the depthwise conv.
    paired = [node for node in graph.node if node is not stem
              and (node.op_type == "Gemm" or (node.op_type == "Conv" and groups(node) == 1))]
    head = [node.name for node in graph.node if node.op_type in ("Gemm", "Softmax")]
    float_stem = {"nodes_to_exclude": stem_and_inputs(graph)}
    seven_bit = {"reduce_range": True}
    return {
        NOW: seven_bit,
        "(a0) stem conv alone excluded (its input stays quantized), 7-bit weights elsewhere": {
            "nodes_to_exclude": [stem.name], **seven_bit},
        FLOAT_STEM: {**float_stem, **seven_bit},
        FLOAT_STEM_8BIT: float_stem,
        "(c) (a) with percentile calibration (99.999)": {
            **float_stem, **seven_bit, "calibrate_method": method.Percentile},
        "(c) (a) with entropy calibration": {
            **float_stem, **seven_bit, "calibrate_method": method.Entropy},
        "(d) (a) as U8S8": {**float_stem, **seven_bit, "activation_type": q.QUInt8},
        "(d) stem conv in float, U8U8 (8-bit weights; no VPMADDUBSW)": {
            **float_stem, "activation_type": q.QUInt8, "weight_type": q.QUInt8},
        "(d) (a) with classifier and softmax in float too": {
            "nodes_to_exclude": stem_and_inputs(graph) + head, **seven_bit},
        RECOMMENDED: {**float_stem, "extra_options": {"TensorQuantOverrides": {
            node.input[1]: [{"reduce_range": True}] for node in paired}}},
    }


def calibration_images(x_train: np.ndarray, seed: int) -> np.ndarray:
    """500 training images drawn as `int8_agreement.py` draws them (seed 0 there)."""
    return x_train[np.random.default_rng(seed).permutation(len(x_train))[:500]]


def subfolder(folder: Path, name: str) -> Path:
    """``folder / name``, made."""
    (folder / name).mkdir()
    return folder / name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained CIFAR-10 .keras model taking pixels")
    parser.add_argument("--cifar10-dir", default=str(DEFAULT_CIFAR10))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="calibration draws for the recommended setting")
    parser.add_argument("--skip-224", action="store_true", help="no 224x224 speed rows")
    args = parser.parse_args(argv)

    import keras

    from mobilenet import MobileNetV1, load_model
    from mobilenet.cifar10 import load_cifar10

    cpu, flags = cpu_model_and_flags()
    print("# int8 ONNX settings with the stem conv in float\n")
    print(f"- CPU: {cpu}, {os.cpu_count()} cores; ISA flags: {', '.join(flags)}")
    print(f"- {versions()}")
    print(f"- at the start: {load_line()}\n")
    model = load_model(args.model)
    (x_train, _), (x_test, _) = load_cifar10(args.cifar10_dir)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with contextlib.redirect_stdout(sys.stderr):  # the histogram calibrators' prints
            files = write_files(model, subfolder(folder, "seed0"), calibration_images(x_train, 0),
                                make_settings=candidate_settings, calibration_batch=CALIBRATION_BATCH)
        print(f"## Agreement with `{args.model}` on the subset's test images "
              "(calibration seed 0)\n")
        print(agreement_table(model, files, x_test, args.threads) + "\n")

        draws = {}
        for seed in args.seeds:
            seed_files = write_files(
                model, subfolder(folder, f"draw{seed}"), calibration_images(x_train, seed),
                labels=(NOW, FLOAT_STEM, RECOMMENDED), make_settings=candidate_settings,
                calibration_batch=CALIBRATION_BATCH, own_files=False)
            draws.update({f"seed {seed}: {label}": path for label, path in seed_files.items()})
        print(f"## Calibration draws (500 training images, seeds {args.seeds})\n")
        print(agreement_table(model, draws, x_test, args.threads) + "\n")

        if not args.skip_224:
            keras.utils.set_random_seed(0)
            big = keras.Sequential([keras.Input((224, 224, 3)),
                                    keras.layers.Rescaling(1 / 127.5, offset=-1),
                                    MobileNetV1(alpha=1.0, input_shape=(224, 224, 3))])
            pixels = np.random.default_rng(1).integers(0, 256, (64, 224, 224, 3)).astype(np.float32)
            timed = (NOW, FLOAT_STEM, FLOAT_STEM_8BIT, RECOMMENDED)
            big_files = write_files(big, subfolder(folder, "big"), pixels, labels=timed,
                                    make_settings=candidate_settings, own_files=False)
            rows = speed_rows("224x224, alpha 1.0", big_files, 224, args.threads, args.repeats)
            print(f"## Speed (images/s, {args.threads} threads, the files taking turns)\n")
            print("| model | batch | file | img/s |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print(f"- at the end: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
