"""Per-layer cost of any built Keras model: mult-adds and parameters, the paper's way.

MobileNets (Howard et al. 2017, section 3) are argued in cost: the number of
multiply-adds of the convolutions and the fully connected layer, and their
parameter count without BatchNorm. `profile` walks a built Keras model, nested
layers and models included, and counts both for every layer that holds a
convolution or a dense kernel:

- standard conv (``Conv1D/2D/3D``, any kernel, stride, dilation or groups):
  ``kernel elements x output positions`` = ``K*K*(M/groups)*N*D_F'*D_F'``;
- depthwise (``DepthwiseConv1D/2D``, and a grouped conv with one group per
  input channel): ``K*K*M*depth_multiplier*D_F'*D_F'``;
- pointwise (any conv whose kernel is 1x1, such as `PointwiseConv2D`):
  ``M*N*D_F'*D_F'``;
- fully connected (``Dense``): ``M*N`` per position of the input;
- ``SeparableConv1D/2D`` counts as two rows, its depthwise and its pointwise
  halves; transposed convolutions count ``kernel elements x input positions``
  (as standard convs, or pointwise for a 1x1 kernel).

Biases are parameters but no mult-adds. BatchNorm, activations, pooling and
other layers without a kernel cost no mult-adds, as in the paper; BatchNorm
parameters are totalled apart, and any other layer that holds weights the
profiler cannot cost is listed as uncosted rather than dropped.

With ``memory=True`` it also says what the model needs on a microcontroller
(`mobilenet.memory.memory_profile`: flash by dtype, the tensor arena and the
layer where activations peak in TensorFlow Lite Micro).

The module is ``profiler`` rather than ``profile`` so that importing it never
replaces the package's ``mobilenet.profile`` function with a module of the
same name.

```python
from mobilenet import MobileNetV1, profile

costs = profile(MobileNetV1(alpha=1.0))
costs.mult_adds  # 568_740_352
print(costs)     # the per-layer table, totals and shares per kind
```
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras

from mobilenet._keras_compat import flatten_layers
from mobilenet._validation import InvalidType, check_bool, invalid

if TYPE_CHECKING:
    from mobilenet.memory import MemoryProfile

__all__ = [
    "KINDS",
    "LayerCost",
    "ModelProfile",
    "WeightedLayer",
    "profile",
    "sweep_table",
]

#: The layer kinds of paper Table 2, in its order of appearance in the network.
STANDARD_CONV = "standard conv"
DEPTHWISE = "depthwise"
POINTWISE = "pointwise"
FULLY_CONNECTED = "fully connected"
KINDS: tuple[str, ...] = (STANDARD_CONV, DEPTHWISE, POINTWISE, FULLY_CONNECTED)

_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_DEPTHWISE_CONVS = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE_CONVS = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_TRANSPOSED_CONVS = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_COSTABLE = (*_CONVS, *_DEPTHWISE_CONVS, *_SEPARABLE_CONVS, *_TRANSPOSED_CONVS, keras.layers.Dense)


@dataclass(frozen=True)
class LayerCost:
    """The cost of one convolution or dense kernel.

    Attributes:
        name: the layer's path below the profiled model, parts joined by
            ``/`` (``"block_1/block_1_dw"``; a SeparableConv's halves end in
            ``/depthwise`` and ``/pointwise``).
        layer_type: the Keras class name (``"DepthwiseConv2D"``).
        kind: one of `KINDS`.
        output_shape: the output of one sample, batch axis left out
            (``(112, 112, 32)``).
        mult_adds: multiply-adds for one sample.
        params: weights and biases (no BatchNorm).
        biases: how many of ``params`` are biases.
    """

    name: str
    layer_type: str
    kind: str
    output_shape: tuple[int, ...]
    mult_adds: int
    params: int
    biases: int

    @property
    def weights(self) -> int:
        """Parameters that are not biases."""
        return self.params - self.biases


@dataclass(frozen=True)
class WeightedLayer:
    """A layer whose weights are counted apart from the costed ones.

    Attributes:
        name: the layer's path below the profiled model.
        layer_type: the Keras class name.
        params: the number of values in the layer's own weights (trainable or
            not; for BatchNorm 4 a channel).
        reason: why it is not costed (empty for BatchNorm).
    """

    name: str
    layer_type: str
    params: int
    reason: str = ""


@dataclass(frozen=True)
class ModelProfile:
    """Mult-adds and parameters of a model, per layer, per kind and in total.

    Returned by `profile`. ``rows`` are the costed layers in the model's
    order; ``batch_norm`` the BatchNorm layers (parameters counted apart, as
    the paper leaves them out); ``uncosted`` any other layer that holds
    weights the profiler could not cost.

    Attributes:
        model_name: the profiled model's name.
        rows: one `LayerCost` per costed convolution or dense kernel.
        batch_norm: one `WeightedLayer` per BatchNorm layer.
        uncosted: one `WeightedLayer` per layer whose weights were not costed.
        memory: with ``profile(..., memory=True)``, the model's flash and RAM in
            TensorFlow Lite Micro (a `mobilenet.memory.MemoryProfile`), else None.
    """

    model_name: str
    rows: tuple[LayerCost, ...]
    batch_norm: tuple[WeightedLayer, ...] = ()
    uncosted: tuple[WeightedLayer, ...] = ()
    memory: MemoryProfile | None = None

    @property
    def mult_adds(self) -> int:
        """Total mult-adds of one sample over all costed layers."""
        return sum(row.mult_adds for row in self.rows)

    @property
    def params(self) -> int:
        """Total parameters of the costed layers: weights and biases, no BatchNorm."""
        return sum(row.params for row in self.rows)

    @property
    def biases(self) -> int:
        """How many of `params` are biases."""
        return sum(row.biases for row in self.rows)

    @property
    def weights(self) -> int:
        """`params` without the biases (the convention of paper Table 2)."""
        return self.params - self.biases

    @property
    def bn_params(self) -> int:
        """Parameters of all BatchNorm layers (4 a channel in Keras)."""
        return sum(layer.params for layer in self.batch_norm)

    @property
    def uncosted_params(self) -> int:
        """Parameters of the layers listed in `uncosted`."""
        return sum(layer.params for layer in self.uncosted)

    def kind_totals(self) -> dict[str, dict[str, int]]:
        """Mult-adds, params and biases summed per kind.

        Returns:
            ``{kind: {"mult_adds": int, "params": int, "biases": int}}`` for
            every kind in `KINDS`, zeros included.
        """
        totals = {kind: {"mult_adds": 0, "params": 0, "biases": 0} for kind in KINDS}
        for row in self.rows:
            totals[row.kind]["mult_adds"] += row.mult_adds
            totals[row.kind]["params"] += row.params
            totals[row.kind]["biases"] += row.biases
        return totals

    def shares(self, include_biases: bool = True) -> dict[str, dict[str, float]]:
        """Each kind's fraction of the total mult-adds and parameters (paper Table 2).

        Args:
            include_biases: whether biases count as parameters. Paper Table 2
                leaves them out (its shares come out exactly only so).

        Returns:
            ``{kind: {"mult_adds": fraction, "params": fraction}}`` for every
            kind in `KINDS`; fractions are in [0, 1] and 0 for an empty total.

        Example:

        ```python
        from mobilenet import MobileNetV1, profile

        shares = profile(MobileNetV1()).shares(include_biases=False)
        round(100 * shares["pointwise"]["mult_adds"], 2)  # 94.86
        ```
        """
        totals = self.kind_totals()
        all_mult_adds = self.mult_adds
        all_params = self.params if include_biases else self.weights

        def fraction(part: int, whole: int) -> float:
            return part / whole if whole else 0.0

        return {
            kind: {
                "mult_adds": fraction(counts["mult_adds"], all_mult_adds),
                "params": fraction(
                    counts["params"] if include_biases else counts["params"] - counts["biases"],
                    all_params,
                ),
            }
            for kind, counts in totals.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain dicts, lists, strings and numbers (JSON-ready).

        Returns:
            A dict with ``model``, ``rows`` (one dict per `LayerCost`),
            ``batch_norm``, ``uncosted``, ``totals`` and ``shares`` (with
            biases) and ``shares_without_biases``.
        """
        return {
            "model": self.model_name,
            "rows": [
                {
                    "name": row.name,
                    "layer_type": row.layer_type,
                    "kind": row.kind,
                    "output_shape": list(row.output_shape),
                    "mult_adds": row.mult_adds,
                    "params": row.params,
                    "biases": row.biases,
                }
                for row in self.rows
            ],
            "batch_norm": [_weighted_to_dict(layer) for layer in self.batch_norm],
            "uncosted": [_weighted_to_dict(layer) for layer in self.uncosted],
            "totals": {
                "mult_adds": self.mult_adds,
                "params": self.params,
                "biases": self.biases,
                "weights": self.weights,
                "bn_params": self.bn_params,
                "uncosted_params": self.uncosted_params,
            },
            "kind_totals": self.kind_totals(),
            "shares": self.shares(include_biases=True),
            "shares_without_biases": self.shares(include_biases=False),
            "memory": None if self.memory is None else self.memory.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_markdown(self) -> str:
        """The per-layer table, totals and shares per kind as GitHub Markdown."""
        return self._render(markdown=True)

    def __str__(self) -> str:
        return self._render(markdown=False)

    def _render(self, markdown: bool) -> str:
        header = ("layer", "type", "kind", "output", "mult-adds", "params")
        body = [
            (
                row.name,
                row.layer_type,
                row.kind,
                "x".join(str(side) for side in row.output_shape),
                f"{row.mult_adds:,}",
                f"{row.params:,}",
            )
            for row in self.rows
        ]
        body.append(("total", "", "", "", f"{self.mult_adds:,}", f"{self.params:,}"))
        parts = [f"Profile of `{self.model_name}`" if markdown else f"Profile of {self.model_name}"]
        parts.append(_table(header, body, markdown, numeric_columns=(4, 5)))

        summary = [
            f"mult-adds: {self.mult_adds:,}{_in_millions(self.mult_adds, 1)}",
            f"params (conv and dense weights and biases, no BatchNorm): "
            f"{self.params:,}{_in_millions(self.params, 2)}, of which {self.biases:,} biases",
            f"BatchNorm params (counted apart): {self.bn_params:,} "
            f"(BatchNorm layers: {len(self.batch_norm)})",
        ]
        if self.uncosted:
            summary.append(
                f"uncosted layers with weights: {len(self.uncosted)} "
                f"({self.uncosted_params:,} params): "
                + ", ".join(f"{layer.name} ({layer.layer_type}: {layer.reason})" for layer in self.uncosted)
            )
        parts.append("\n".join(f"- {line}" for line in summary) if markdown else "\n".join(summary))

        shares = self.shares(include_biases=True)
        totals = self.kind_totals()
        share_rows = [
            (
                kind,
                f"{totals[kind]['mult_adds']:,}",
                f"{100 * shares[kind]['mult_adds']:.2f}%",
                f"{totals[kind]['params']:,}",
                f"{100 * shares[kind]['params']:.2f}%",
            )
            for kind in KINDS
        ]
        parts.append(
            _table(
                ("kind", "mult-adds", "share", "params", "share"),
                share_rows,
                markdown,
                numeric_columns=(1, 2, 3, 4),
            )
        )
        if self.memory is not None:
            parts.append(str(self.memory))
        return "\n\n".join(parts)


def _in_millions(count: int, decimals: int) -> str:
    """`` (12.3 M)`` for counts of a million or more, else nothing."""
    return f" ({count / 1e6:,.{decimals}f} M)" if count >= 10**6 else ""


def _weighted_to_dict(layer: WeightedLayer) -> dict[str, Any]:
    return {
        "name": layer.name,
        "layer_type": layer.layer_type,
        "params": layer.params,
        "reason": layer.reason,
    }


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    markdown: bool,
    numeric_columns: Sequence[int] = (),
) -> str:
    """Lays out a table as Markdown or as aligned plain text."""
    rows = [tuple(row) for row in rows]
    if markdown:
        rule = ["---:" if i in numeric_columns else "---" for i in range(len(header))]
        lines = [header, rule, *rows]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(str(line[i])) for line in (header, *rows)) for i in range(len(header))]

    def layout(line: Sequence[str]) -> str:
        cells = [
            str(cell).rjust(width) if i in numeric_columns else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([layout(header), rule, *(layout(row) for row in rows)])


def _size(variables: Iterable[Any]) -> int:
    return sum(math.prod(variable.shape) for variable in variables)


def _spatial(shape: Sequence[int | None], data_format: str) -> tuple[int | None, ...]:
    """The spatial sides of a (batch, ..., channels) or (batch, channels, ...) shape."""
    return tuple(shape[1:-1]) if data_format == "channels_last" else tuple(shape[2:])


class _Walker:
    """Collects rows while walking a layer tree depth first, in model order."""

    def __init__(self) -> None:
        self.rows: list[LayerCost] = []
        self.batch_norm: list[WeightedLayer] = []
        self.uncosted: list[WeightedLayer] = []
        self._seen: set[int] = set()

    def walk(self, layer: keras.layers.Layer, path: str) -> None:
        if id(layer) in self._seen:  # a shared layer is counted once
            return
        self._seen.add(id(layer))
        layer_type = type(layer).__name__
        if isinstance(layer, keras.layers.BatchNormalization):
            self.batch_norm.append(WeightedLayer(path, layer_type, _size(layer.weights)))
        elif isinstance(layer, _COSTABLE) and not layer.built:
            self.uncosted.append(WeightedLayer(path, layer_type, 0, "not built, so its shapes are unknown"))
        elif isinstance(layer, _COSTABLE):
            rows = _cost(layer, path)
            self.rows.extend(rows)
            extra = _size(layer.weights) - sum(row.params for row in rows)
            if extra > 0:  # e.g. LoRA factors next to the kernel
                self.uncosted.append(
                    WeightedLayer(path, layer_type, extra, "weights besides its kernel and bias")
                )
        else:
            self.walk_children(layer, path)

    def walk_children(self, layer: keras.layers.Layer, path: str) -> None:
        """Walks a container's tracked sublayers; lists weights of its own as uncosted."""
        self._seen.add(id(layer))
        children = list(flatten_layers(layer, recursive=False))
        child_weights = {id(w) for child in children for w in child.weights}
        own = [w for w in layer.weights if id(w) not in child_weights]
        if own:
            self.uncosted.append(
                WeightedLayer(
                    path or layer.name, type(layer).__name__, _size(own),
                    "no cost rule for its weights",
                )
            )
        for child in children:
            self.walk(child, f"{path}/{child.name}" if path else child.name)


def _input_shape(layer: keras.layers.Layer, path: str) -> tuple[int | None, ...]:
    config = layer.get_build_config() or {}
    shape = config.get("input_shape")
    if shape is None:
        raise invalid("model", "", None, shown=f"layer `{path}` ({type(layer).__name__})",
                      problem="a layer does not record the input shape it was built with, so "
                      "its cost is unknown")
    return tuple(shape)


def _known(sides: Sequence[int | None], layer: keras.layers.Layer, path: str, shape: Any) -> int:
    if any(side is None for side in sides):
        raise invalid(
            "model", "", None,
            shown=f"layer `{path}` ({type(layer).__name__}) built for input shape {tuple(shape)}",
            problem="the layer's spatial size is unknown, so its mult-adds are too; build "
            "the model with a fixed input size (e.g. MobileNetV1(input_shape=(224, 224, 3)))",
        )
    return math.prod(sides)


def _cost(layer: keras.layers.Layer, path: str) -> list[LayerCost]:
    """The row(s) of one costable Keras layer."""
    input_shape = _input_shape(layer, path)
    output_shape = tuple(layer.compute_output_shape(input_shape))
    per_sample = tuple(output_shape[1:])
    layer_type = type(layer).__name__
    biases = 0 if layer.bias is None else _size([layer.bias])

    if isinstance(layer, keras.layers.Dense):
        kernel = _size([layer.kernel])
        positions = _known(output_shape[1:-1], layer, path, input_shape)
        return [
            LayerCost(path, layer_type, FULLY_CONNECTED, per_sample, kernel * positions, kernel + biases, biases)
        ]

    data_format = layer.data_format
    if isinstance(layer, _SEPARABLE_CONVS):
        # Two convolutions in one layer: depthwise to C*depth_multiplier, then 1x1.
        positions = _known(_spatial(output_shape, data_format), layer, path, input_shape)
        depthwise = _size([layer.depthwise_kernel])
        pointwise = _size([layer.pointwise_kernel])
        middle_channels = layer.pointwise_kernel.shape[-2]
        sides = _spatial(output_shape, data_format)
        middle_shape = (*sides, middle_channels) if data_format == "channels_last" else (middle_channels, *sides)
        return [
            LayerCost(f"{path}/depthwise", layer_type, DEPTHWISE, middle_shape, depthwise * positions, depthwise, 0),
            LayerCost(
                f"{path}/pointwise", layer_type, POINTWISE, per_sample,
                pointwise * positions, pointwise + biases, biases,
            ),
        ]

    kernel_shape = tuple(layer.kernel.shape)
    kernel = math.prod(kernel_shape)
    one_by_one = math.prod(kernel_shape[:-2]) == 1
    if isinstance(layer, _DEPTHWISE_CONVS):
        kind = DEPTHWISE
        positions = _known(_spatial(output_shape, data_format), layer, path, input_shape)
    elif isinstance(layer, _TRANSPOSED_CONVS):
        # Every input position is multiplied by the whole kernel.
        kind = POINTWISE if one_by_one else STANDARD_CONV
        positions = _known(_spatial(input_shape, data_format), layer, path, input_shape)
    else:
        groups = getattr(layer, "groups", 1)
        in_channels = kernel_shape[-2] * groups
        if one_by_one:
            kind = POINTWISE
        elif groups > 1 and groups == in_channels:
            kind = DEPTHWISE  # one group per input channel is a depthwise conv
        else:
            kind = STANDARD_CONV
        positions = _known(_spatial(output_shape, data_format), layer, path, input_shape)
    # Every kernel element takes part in one mult-add per output position (per
    # input position for a transposed conv): mult-adds = kernel size x positions.
    return [LayerCost(path, layer_type, kind, per_sample, kernel * positions, kernel + biases, biases)]


def profile(model: keras.layers.Layer, memory: bool = False) -> ModelProfile:
    """Counts the mult-adds and parameters of a built Keras model, layer by layer.

    Works on any built model or layer: functional, ``Sequential`` or
    subclassed, with nested models and layers (such as
    `DepthwiseSeparableConv2D`, whose sublayers are found through Keras'
    layer tracking). Each layer's cost follows from the input shape it was
    built with, so the model must have been built for a fixed input size. A
    layer shared by several calls is counted once.

    Args:
        model: a built ``keras.Model`` or ``keras.layers.Layer``.
        memory: bool, whether to add what the model needs in TensorFlow Lite
            Micro (``.memory``: flash by dtype, tensor arena, peak layer; see
            `mobilenet.memory.memory_profile`). It converts the model to an
            int8 file, which takes some seconds. Needs a ``keras.Model`` with a
            fixed input size. Defaults to False.

    Returns:
        A `ModelProfile`: rows per costed layer, totals (``.mult_adds``,
        ``.params``), ``.shares()`` per kind, ``to_dict()``,
        ``to_markdown()`` and a plain-text table as ``str()``.

    Raises:
        TypeError: if ``model`` is not a Keras layer or model.
        ValueError: if it is not built, or was built with an unknown spatial
            size (mult-adds depend on it).

    Example:

    ```python
    import keras
    from mobilenet import MobileNetV1, profile

    costs = profile(MobileNetV1(alpha=0.5, rho=5 / 7))
    print(costs.mult_adds, costs.params)
    print(profile(keras.applications.MobileNet(weights=None)).to_markdown())
    ```
    """
    if not isinstance(model, keras.layers.Layer):
        raise invalid("model", "a built keras.Model or keras.layers.Layer", None,
                      shown=f"model={type(model).__name__}", error=InvalidType)
    if not model.built:
        raise invalid(
            "model",
            "a built model (an unbuilt one has unknown shapes: call it on data or "
            "build it with an input shape first)",
            model,
            shown=f"model={model.name!r}, which is not built",
        )
    check_bool(memory, "memory")
    if memory and not isinstance(model, keras.Model):
        raise invalid("model", "a keras.Model with memory=True", model,
                      shown=f"model={type(model).__name__}")
    walker = _Walker()
    if isinstance(model, _COSTABLE) or isinstance(model, keras.layers.BatchNormalization):
        walker.walk(model, model.name)
    else:
        # Rows are named by their path below the profiled model.
        walker.walk_children(model, "")
    return ModelProfile(
        model_name=model.name,
        rows=tuple(walker.rows),
        batch_norm=tuple(walker.batch_norm),
        uncosted=tuple(walker.uncosted),
        memory=_memory(model) if memory else None,
    )


def _memory(model: keras.Model) -> MemoryProfile:
    from mobilenet.memory import memory_profile

    return memory_profile(model)


def sweep_table(
    profiles: Sequence[tuple[dict[str, Any], ModelProfile]], markdown: bool = False
) -> str:
    """One row per profile, led by the settings that made it (an --alpha/--input-size sweep).

    Args:
        profiles: ``(settings, profile)`` pairs, such as ``({"alpha": 0.25,
            "input": 96}, profile(model, memory=True))``; every settings dict
            has the same keys.
        markdown: bool, GitHub Markdown rather than aligned plain text.

    Returns:
        The table: mult-adds and parameters, and where the profiles have
        ``memory``, the int8 file's bytes (flash), its int8 weight bytes, the
        tensor-arena estimate on a 64-bit host (with the offline memory plan
        `to_micro` writes), the same for a 32-bit microcontroller (an
        estimate) and the layer where activations peak.
    """
    keys = list(profiles[0][0]) if profiles else []
    with_memory = all(costs.memory is not None for _, costs in profiles)
    header = [*keys, "mult-adds", "params"]
    if with_memory:
        header += ["flash bytes", "int8 weights", "arena bytes", "32-bit arena (est.)", "peak at"]
    rows = []
    for settings, costs in profiles:
        row = [*(f"{settings[key]:g}" if isinstance(settings[key], float) else str(settings[key])
                 for key in keys), f"{costs.mult_adds:,}", f"{costs.params:,}"]
        if with_memory:
            memory = costs.memory
            row += [f"{memory.file_bytes:,}", f"{memory.weight_bytes.get('int8', 0):,}",
                    f"{memory.arena_bytes:,}", f"~{memory.arena_bytes_32bit:,}",
                    f"{memory.peak_op.op} {memory.peak_op.layer}"]
        rows.append(row)
    numeric = tuple(range(len(keys) + (6 if with_memory else 2)))
    return _table(header, rows, markdown, numeric_columns=numeric)
