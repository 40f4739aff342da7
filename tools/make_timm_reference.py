"""Makes the timm reference outputs that tests/test_timm_weights.py compares against.

The parity test needs timm's own outputs for weights that the test can
rebuild without torch. So the weights come from a seed, by a recipe that
needs only NumPy (`seeded_state_dict`, below), and only small things are
checked in, one JSON file per timm variant in tests/data/timm/:

- the names, shapes and dtypes of timm's ``state_dict`` (as timm builds it:
  the test writes its ``.safetensors`` from them, so a tensor our loader
  forgot or misnamed shows up there);
- the pixels' seed and shape, and timm's probabilities (softmax of its
  logits) on them, the pixels scaled as timm's data config says for these
  weights, ``(pixels / 255 - 0.5) / 0.5``;
- the versions of timm, torch and NumPy that made them.

The recipe (the test imports it from this file, so both sides share it):
every tensor is drawn from its own ``numpy.random.Generator(PCG64([seed,
crc32(name)]))``, through ``Generator.random`` only (uniform doubles, the
most stable stream NumPy has), then cast to float32:

- a convolution kernel (O, I, kh, kw): uniform with the variance of He's
  initialization, ``+-sqrt(6 / (I * kh * kw))``;
- BatchNorm: ``weight`` in [0.5, 1.5], ``bias`` in [-0.3, 0.3],
  ``running_mean`` in [-0.3, 0.3], ``running_var`` in [0.02, 1.5] (some
  channels small, so epsilon 1e-5 against 1e-3 shows);
- ``num_batches_tracked``: 0 (int64), as in a fresh timm model;
- the classifier: ``weight`` ``+-4 * sqrt(3 / features)``, ``bias`` in
  [-0.5, 0.5], so that the probabilities spread over a few classes;
- the pixels: integers in [0, 255], ``floor(256 * random)``, NHWC uint8.

Run it in a virtual environment with torch, timm and safetensors (never the
project's own; see docs/weights.md), from the repository root:

    python tools/make_timm_reference.py            # rewrites tests/data/timm/*.json
    python tools/make_timm_reference.py --weights-dir /tmp/timm  # also the .safetensors
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

import numpy as np

#: timm's MobileNet V1 architectures with ImageNet weights, by their hub names.
VARIANTS = {
    "mobilenetv1_100": "timm/mobilenetv1_100.ra4_e3600_r224_in1k",
    "mobilenetv1_100h": "timm/mobilenetv1_100h.ra4_e3600_r224_in1k",
    "mobilenetv1_125": "timm/mobilenetv1_125.ra4_e3600_r224_in1k",
}
SEED = 2024
#: Two images of 64x64: every stride-2 layer sees an even side, where padding matters.
PIXELS_SHAPE = (2, 64, 64, 3)
PIXELS_SEED = 7
DATA_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "timm"


def _uniform(rng: np.random.Generator, low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
    return (low + (high - low) * rng.random(shape)).astype(np.float32)


def seeded_tensor(name: str, shape: tuple[int, ...], dtype: str, seed: int = SEED) -> np.ndarray:
    """One tensor of the recipe in this module's docstring."""
    shape = tuple(shape)
    if dtype == "int64":
        return np.zeros(shape, np.int64)
    rng = np.random.Generator(np.random.PCG64([seed, zlib.crc32(name.encode())]))
    leaf = name.rsplit(".", 1)[-1]
    if len(shape) == 4:
        bound = float(np.sqrt(6.0 / np.prod(shape[1:])))
        return _uniform(rng, -bound, bound, shape)
    if name.startswith("classifier."):
        if leaf == "weight":
            bound = 4 * float(np.sqrt(3.0 / shape[1]))
            return _uniform(rng, -bound, bound, shape)
        return _uniform(rng, -0.5, 0.5, shape)
    ranges = {"weight": (0.5, 1.5), "bias": (-0.3, 0.3), "running_mean": (-0.3, 0.3),
              "running_var": (0.02, 1.5)}
    return _uniform(rng, *ranges[leaf], shape)


def seeded_state_dict(entries: list, seed: int = SEED) -> dict[str, np.ndarray]:
    """``{name: array}`` for ``[name, shape, dtype]`` entries, by the recipe."""
    return {name: seeded_tensor(name, tuple(shape), dtype, seed) for name, shape, dtype in entries}


def seeded_pixels(shape: tuple[int, ...] = PIXELS_SHAPE, seed: int = PIXELS_SEED) -> np.ndarray:
    """uint8 NHWC pixels in [0, 255]."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return np.floor(256 * rng.random(shape)).astype(np.uint8)


def _reference(architecture: str, hub_name: str, weights_dir: Path | None) -> dict:
    import timm
    import torch

    model = timm.create_model(architecture, pretrained=False)
    entries = [[name, list(value.shape), str(value.dtype).removeprefix("torch.")]
               for name, value in model.state_dict().items()]
    arrays = seeded_state_dict(entries)
    model.load_state_dict({name: torch.from_numpy(array) for name, array in arrays.items()})
    model.eval()
    pixels = seeded_pixels()
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    x = (x - 0.5) / 0.5  # timm's mean and std for these weights: 0.5
    with torch.no_grad():
        probabilities = torch.softmax(model(x), dim=-1).numpy()
    if weights_dir is not None:
        from safetensors.numpy import save_file

        weights_dir.mkdir(parents=True, exist_ok=True)
        save_file(arrays, str(weights_dir / f"{architecture}.safetensors"))
    return {
        "architecture": architecture,
        "hub_name": hub_name,
        "made_by": {"timm": timm.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "seed": SEED,
        "pixels_seed": PIXELS_SEED,
        "pixels_shape": list(PIXELS_SHAPE),
        "state_dict": entries,
        "probabilities": [[float(f"{p:.9g}") for p in row] for row in probabilities],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="also write each variant's seeded .safetensors here")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for architecture, hub_name in VARIANTS.items():
        reference = _reference(architecture, hub_name, args.weights_dir)
        path = args.out_dir / f"{architecture}.json"
        path.write_text(json.dumps(reference, separators=(",", ":")) + "\n")
        top = np.max(reference["probabilities"], axis=-1)
        print(f"{path}: timm {reference['made_by']['timm']}, torch {reference['made_by']['torch']}; "
              f"top probabilities {np.round(top, 3).tolist()}")


if __name__ == "__main__":
    main()
