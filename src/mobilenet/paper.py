"""The paper's cost tables, as printed and as this library computes them.

Howard et al. (2017) print mult-adds and parameter counts for every model they
compare: per layer type (Table 2), separable vs full convolutions (Table 4),
narrow vs shallow (Table 6), per resolution (Table 7) and per width (Table 8).
This module keeps the printed values as data, builds each model with
`MobileNetV1`, profiles it with `mobilenet.profile`, and lays the two side by
side, marking every cell where the computed value, rounded as the paper
rounds, differs from the print.

The paper's parameter counts are conv and FC weights without BatchNorm. Table
2's shares come out exactly only when the FC bias is left out too, so the
"params" computed here are weights only (``ModelProfile.weights``); the notes
under each table say whether counting the biases would change any cell.

```python
from mobilenet.paper import reproduce_paper_tables

tables = reproduce_paper_tables()
print(tables.to_markdown())
[cell.where for cell in tables.differing_cells()]
```
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from mobilenet._validation import InvalidKey, invalid

__all__ = [
    "TABLES",
    "TABLE_2",
    "PaperCell",
    "PaperModel",
    "PaperRow",
    "PaperTable",
    "PaperTables",
    "reproduce_paper_tables",
]

PAPER = "Howard et al. 2017, arXiv:1704.04861"


@dataclass(frozen=True)
class PaperModel:
    """One model row of paper Tables 4, 6, 7 or 8, as printed.

    Attributes:
        label: the model's name in the paper (``"0.75 MobileNet-224"``).
        top1: ImageNet top-1 accuracy as printed (``"68.4%"``); not
            recomputed here (that needs ImageNet training).
        mult_adds: mult-adds in millions, as printed (``"325"``).
        params: parameters in millions, as printed (``"2.6"``).
        build: keyword arguments of `MobileNetV1` that build this model.
    """

    label: str
    top1: str
    mult_adds: str
    params: str
    build: Mapping[str, Any] = field(default_factory=dict)


def _mobilenet(alpha: float = 1.0, resolution: int = 224, **options: Any) -> dict[str, Any]:
    return {"alpha": alpha, "input_shape": (resolution, resolution, 3), **options}


#: Paper Table 4: depthwise separable vs full convolution MobileNet, 224x224.
TABLE_4 = (
    PaperModel("Conv MobileNet", "71.7%", "4866", "29.3", _mobilenet(separable=False)),
    PaperModel("MobileNet", "70.6%", "569", "4.2", _mobilenet()),
)
#: Paper Table 6: narrow vs shallow MobileNet, 224x224.
TABLE_6 = (
    PaperModel("0.75 MobileNet", "68.4%", "325", "2.6", _mobilenet(0.75)),
    PaperModel("Shallow MobileNet", "65.3%", "307", "2.9", _mobilenet(shallow=True)),
)
#: Paper Table 7: MobileNet resolution (alpha = 1.0).
TABLE_7 = (
    PaperModel("1.0 MobileNet-224", "70.6%", "569", "4.2", _mobilenet(1.0, 224)),
    PaperModel("1.0 MobileNet-192", "69.1%", "418", "4.2", _mobilenet(1.0, 192)),
    PaperModel("1.0 MobileNet-160", "67.2%", "290", "4.2", _mobilenet(1.0, 160)),
    PaperModel("1.0 MobileNet-128", "64.4%", "186", "4.2", _mobilenet(1.0, 128)),
)
#: Paper Table 8: MobileNet width multiplier, 224x224.
TABLE_8 = (
    PaperModel("1.0 MobileNet-224", "70.6%", "569", "4.2", _mobilenet(1.0)),
    PaperModel("0.75 MobileNet-224", "68.4%", "325", "2.6", _mobilenet(0.75)),
    PaperModel("0.5 MobileNet-224", "63.7%", "149", "1.3", _mobilenet(0.5)),
    PaperModel("0.25 MobileNet-224", "50.6%", "41", "0.5", _mobilenet(0.25)),
)
#: Paper Table 2 (1.0 MobileNet-224): (type as printed, profiler kind,
#: mult-adds share, parameter share), shares as printed.
TABLE_2 = (
    ("Conv 1x1", "pointwise", "94.86%", "74.59%"),
    ("Conv DW 3x3", "depthwise", "3.06%", "1.06%"),
    ("Conv 3x3", "standard conv", "1.19%", "0.02%"),
    ("Fully connected", "fully connected", "0.18%", "24.33%"),
)
#: The one cell of Table 2 known to be misprinted: (type, column).
TABLE_2_MISPRINT = ("Conv 3x3", "mult-adds")

_MODEL_TABLES = (
    ("table_4", "Table 4: depthwise separable vs full convolution MobileNet (224x224)", TABLE_4),
    ("table_6", "Table 6: narrow vs shallow MobileNet (224x224)", TABLE_6),
    ("table_7", "Table 7: MobileNet resolution (alpha = 1.0)", TABLE_7),
    ("table_8", "Table 8: MobileNet width multiplier (224x224)", TABLE_8),
)

#: The keys of the tables `reproduce_paper_tables` compares, in the paper's order.
TABLES = ("table_2", *(key for key, _, _ in _MODEL_TABLES))


@dataclass(frozen=True)
class PaperCell:
    """One compared cell: the paper's value and ours, rounded the same way.

    Attributes:
        where: ``(table key, row label, column)``, e.g.
            ``("table_8", "0.5 MobileNet-224", "mult-adds")``.
        printed: the value as the paper prints it (``"149"``, ``"94.86%"``).
        computed: our value rounded to the printed precision.
        exact: our unrounded value (a count, or a percentage for Table 2).
        matches: whether ``computed == printed``.
        note: why a differing cell differs (empty when it matches).
    """

    where: tuple[str, str, str]
    printed: str
    computed: str
    exact: int | float
    matches: bool
    note: str = ""


@dataclass(frozen=True)
class PaperRow:
    """One row of a compared table: its label, the printed top-1 and its cells."""

    label: str
    top1: str | None
    cells: tuple[PaperCell, ...]


@dataclass(frozen=True)
class PaperTable:
    """One paper table, printed and computed side by side."""

    key: str
    title: str
    rows: tuple[PaperRow, ...]
    notes: tuple[str, ...] = ()

    def cell(self, label: str, column: str) -> PaperCell:
        """The cell of row ``label`` and column ``column`` (``"mult-adds"`` or ``"params"``)."""
        for row in self.rows:
            for cell in row.cells:
                if cell.where[1:] == (label, column):
                    return cell
        raise invalid("label", "", label, shown=f"label={label!r}, column={column!r}",
                      problem=f"{self.key} has no cell in that row and column", error=InvalidKey)


@dataclass(frozen=True)
class PaperTables:
    """The paper's Tables 2, 4, 6, 7 and 8 with our computed values; see `reproduce_paper_tables`."""

    tables: tuple[PaperTable, ...]

    def __getitem__(self, key: str) -> PaperTable:
        for table in self.tables:
            if table.key == key:
                return table
        raise invalid("key", f"one of {[table.key for table in self.tables]}", key, error=InvalidKey)

    def cells(self) -> list[PaperCell]:
        """Every compared cell of every table."""
        return [cell for table in self.tables for row in table.rows for cell in row.cells]

    def differing_cells(self) -> list[PaperCell]:
        """The cells whose computed value, rounded as printed, is not the printed one."""
        return [cell for cell in self.cells() if not cell.matches]

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts for JSON: per table its rows, cells and notes."""
        return {
            "source": PAPER,
            "tables": [
                {
                    "key": table.key,
                    "title": table.title,
                    "rows": [
                        {
                            "label": row.label,
                            "top1_printed": row.top1,
                            "cells": {
                                cell.where[2]: {
                                    "printed": cell.printed,
                                    "computed": cell.computed,
                                    "exact": cell.exact,
                                    "matches": cell.matches,
                                    "note": cell.note,
                                }
                                for cell in row.cells
                            },
                        }
                        for row in table.rows
                    ],
                    "notes": list(table.notes),
                }
                for table in self.tables
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_markdown(self) -> str:
        """Every table as Markdown, a differing computed cell in bold with a ``≠`` mark."""
        parts = [
            f"Paper values ({PAPER}) next to this library's, computed by building "
            "each model with `MobileNetV1` and counting it with `mobilenet.profile`. "
            "Computed values are rounded as the paper rounds them, the exact count "
            "follows in brackets, and a cell that differs from the print is marked "
            "**≠**. Mult-adds and params are in millions; params are conv and FC "
            "weights without biases and BatchNorm, the paper's convention. ImageNet "
            "top-1 is the paper's (not recomputed)."
        ]
        for table in self.tables:
            parts.append(f"## {table.title}")
            if table.key == "table_2":
                header = ("type (paper)", "kind (profiler)", "mult-adds, paper",
                          "mult-adds, ours", "params, paper", "params, ours")
                lines = [
                    (row.label, _TABLE_2_KINDS[row.label], *_cell_pair(row.cells[0]), *_cell_pair(row.cells[1]))
                    for row in table.rows
                ]
            else:
                header = ("model", "ImageNet top-1 (paper)", "mult-adds (M), paper",
                          "mult-adds (M), ours", "params (M), paper", "params (M), ours")
                lines = [
                    (row.label, row.top1 or "", *_cell_pair(row.cells[0]), *_cell_pair(row.cells[1]))
                    for row in table.rows
                ]
            rule = ("---",) * 2 + ("---:",) * 4
            parts.append("\n".join("| " + " | ".join(line) + " |" for line in (header, rule, *lines)))
            notes = [*table.notes]
            notes += [
                f"**≠** {cell.where[1]}, {cell.where[2]}: printed {cell.printed}, computed "
                f"{cell.computed}. {cell.note}".rstrip()
                for row in table.rows
                for cell in row.cells
                if not cell.matches
            ]
            if notes:
                parts.append("\n".join(f"- {note}" for note in notes))
        return "\n\n".join(parts) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()


_TABLE_2_KINDS = {label: kind for label, kind, _, _ in TABLE_2}


def _cell_pair(cell: PaperCell) -> tuple[str, str]:
    exact = f"{cell.exact:,}" if isinstance(cell.exact, int) else f"{cell.exact:.4f}%"
    computed = f"{cell.computed} ({exact})"
    return cell.printed, computed if cell.matches else f"**≠ {computed}**"


def _round_like(value: Decimal, printed: str) -> str:
    """``value`` rounded half up to as many decimals as ``printed`` shows."""
    digits = printed.rstrip("%")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{rounded}%" if printed.endswith("%") else str(rounded)


def _millions(count: int, printed: str) -> str:
    return _round_like(Decimal(count) / Decimal(10**6), printed)


def _percent(part: int, whole: int, printed: str) -> str:
    return _round_like(Decimal(100 * part) / Decimal(whole), printed)


def reproduce_paper_tables(tables: Iterable[str] = TABLES) -> PaperTables:
    """Builds every model of paper Tables 2, 4, 6, 7 and 8 and compares its costs.

    Each model is built with `MobileNetV1` (``separable=False`` for Table 4's
    Conv MobileNet, ``shallow=True`` for Table 6's Shallow MobileNet) and
    counted with `mobilenet.profile`. Takes some seconds (nine models, one of
    them 29 M parameters); the result is immutable and cached, so later calls
    in the same process return it at once. ``tables`` picks some of them.

    The caller's Keras state is left alone: no ``clear_session`` (which would
    reset the global dtype policy and the layer-name counters, among
    others). Each model is dropped as soon as it is counted, so at most one
    is held in memory at a time.

    Args:
        tables: the keys of the tables to compare, from `TABLES`
            (``"table_2"``, ``"table_4"``, ...); all of them by default.

    Returns:
        `PaperTables`: per table its rows of `PaperCell` (printed, computed,
        exact, matches, note), ``to_markdown()``, ``to_dict()`` and
        ``differing_cells()``.

    Example:

    ```python
    from mobilenet import reproduce_paper_tables

    tables = reproduce_paper_tables()
    tables["table_8"].cell("1.0 MobileNet-224", "mult-adds").exact  # 568_740_352
    ```
    """
    keys = tuple(tables) if not isinstance(tables, str) else (tables,)
    if not keys:
        raise invalid("tables", f"one or more of {TABLES}", tables)
    for key in keys:
        if key not in TABLES:
            raise invalid("tables", f"keys among {TABLES}", tables, error=InvalidKey)
    return _reproduce(tuple(key for key in TABLES if key in keys))


@functools.cache
def _reproduce(keys: tuple[str, ...]) -> PaperTables:
    """`reproduce_paper_tables` for ``keys`` (known, in the paper's order), cached."""
    from mobilenet.model import MobileNetV1
    from mobilenet.profiler import FULLY_CONNECTED, profile

    profiles: dict[tuple, Any] = {}

    def profile_of(build: Mapping[str, Any]):
        key = tuple(sorted(build.items()))
        if key not in profiles:
            # The model is referenced nowhere else, so it is freed once counted.
            profiles[key] = profile(MobileNetV1(**build))
        return profiles[key]

    tables = []
    # Table 2: shares per layer type of 1.0 MobileNet-224.
    base = profile_of(_mobilenet())
    totals = base.kind_totals()
    rows = []
    for label, kind, printed_mult_adds, printed_params in TABLE_2:
        mult_adds = totals[kind]["mult_adds"]
        weights = totals[kind]["params"] - totals[kind]["biases"]
        cells = []
        for column, part, whole, printed in (
            ("mult-adds", mult_adds, base.mult_adds, printed_mult_adds),
            ("params", weights, base.weights, printed_params),
        ):
            computed = _percent(part, whole, printed)
            matches = computed == printed
            note = ""
            if not matches and (label, column) == TABLE_2_MISPRINT:
                note = (
                    f"A misprint in the paper: the first conv's {part:,} mult-adds are "
                    f"{computed} of {whole:,}; with {computed} the column sums to 100% "
                    "(within rounding), with the printed value it does not."
                )
            cells.append(PaperCell(("table_2", label, column), printed, computed, 100 * part / whole, matches, note))
        rows.append(PaperRow(label, None, tuple(cells)))
    printed_sum = sum(Decimal(m.rstrip("%")) for _, _, m, _ in TABLE_2)
    computed_sum = sum(Decimal(cell.computed.rstrip("%")) for row in rows for cell in row.cells[:1])
    tables.append(
        PaperTable(
            "table_2",
            "Table 2: resources per layer type (1.0 MobileNet-224)",
            tuple(rows),
            (
                f"The mult-adds column sums to {printed_sum}% as printed and "
                f"{computed_sum}% as computed.",
                f"Parameter shares are of the {base.weights:,} conv and FC weights "
                f"(no biases, no BatchNorm); counting the FC's "
                f"{base.biases:,} biases too shifts the FC share to "
                f"{_percent(totals[FULLY_CONNECTED]['params'], base.params, '0.00%')}.",
            ),
        )
    )

    for key, title, models in _MODEL_TABLES:
        if key not in keys:
            continue
        rows = []
        params_with_biases_agree = True
        for model in models:
            costs = profile_of(model.build)
            mult_adds = _millions(costs.mult_adds, model.mult_adds)
            note = ""
            if mult_adds != model.mult_adds:
                classifier = costs.kind_totals()[FULLY_CONNECTED]["mult_adds"]
                without = _millions(costs.mult_adds - classifier, model.mult_adds)
                note = (
                    f"Without the FC's {classifier:,} mult-adds the count rounds to {without}"
                    + (", the printed value: the paper seems to have left the FC out of this "
                       "row (the other rows count it)." if without == model.mult_adds else ".")
                )
            params = _millions(costs.weights, model.params)
            params_with_biases_agree &= _millions(costs.params, model.params) == params
            rows.append(
                PaperRow(
                    model.label,
                    model.top1,
                    (
                        PaperCell((key, model.label, "mult-adds"), model.mult_adds, mult_adds,
                                  costs.mult_adds, mult_adds == model.mult_adds, note),
                        PaperCell((key, model.label, "params"), model.params, params,
                                  costs.weights, params == model.params),
                    ),
                )
            )
        bias_note = (
            "Counting the FC biases as parameters too rounds every params cell the same."
            if params_with_biases_agree
            else "Counting the FC biases as parameters too would change some params cells."
        )
        tables.append(PaperTable(key, title, tuple(rows), (bias_note,)))
    return PaperTables(tuple(table for table in tables if table.key in keys))
