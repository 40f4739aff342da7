"""Builds the paper's MobileNet V1 variants and prints their shapes and parameter counts.

Run: python examples/variants.py
"""

from __future__ import annotations

import keras

from mobilenet import MobileNetV1

ALPHAS = (1.0, 0.75, 0.5, 0.25)
RHOS = {"1": 1.0, "6/7": 6 / 7, "5/7": 5 / 7, "4/7": 4 / 7}


def paper_params(model: keras.Model) -> int:
    """Parameters as the paper counts them: BatchNorm left out."""
    batch_norm = sum(
        layer.count_params()
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    return model.count_params() - batch_norm


def main() -> None:
    print("| alpha | rho | input | feature map | Keras params | params without BN |")
    print("|---|---|---|---|---|---|")
    for alpha in ALPHAS:
        for rho_text, rho in RHOS.items():
            model = MobileNetV1(alpha, rho)
            features = model.get_layer("block_13").output.shape[1:]
            print(
                f"| {alpha} | {rho_text} | {'x'.join(map(str, model.input_shape[1:]))} "
                f"| {'x'.join(map(str, features))} | {model.count_params():,} "
                f"| {paper_params(model):,} |"
            )


if __name__ == "__main__":
    main()
