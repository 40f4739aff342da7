"""Tests of mobilenet.paper: every cost cell of the paper's Tables 2, 4, 6, 7 and 8.

The printed values below are copied from ../shared/paper.md (Howard et al.
2017), independently of the data held in mobilenet.paper.
"""

from __future__ import annotations

import json

import pytest

from mobilenet.paper import PaperTables, reproduce_paper_tables

#: (table, model) -> (mult-adds in M, params in M), as printed.
PRINTED = {
    ("table_8", "1.0 MobileNet-224"): (569, 4.2),
    ("table_8", "0.75 MobileNet-224"): (325, 2.6),
    ("table_8", "0.5 MobileNet-224"): (149, 1.3),
    ("table_8", "0.25 MobileNet-224"): (41, 0.5),
    ("table_7", "1.0 MobileNet-224"): (569, 4.2),
    ("table_7", "1.0 MobileNet-192"): (418, 4.2),
    ("table_7", "1.0 MobileNet-160"): (290, 4.2),
    ("table_7", "1.0 MobileNet-128"): (186, 4.2),
    ("table_4", "Conv MobileNet"): (4866, 29.3),
    ("table_4", "MobileNet"): (569, 4.2),
    ("table_6", "0.75 MobileNet"): (325, 2.6),
    ("table_6", "Shallow MobileNet"): (307, 2.9),
}
#: Table 2 as printed: type -> (mult-adds %, params %).
PRINTED_TABLE_2 = {
    "Conv 1x1": (94.86, 74.59),
    "Conv DW 3x3": (3.06, 1.06),
    "Conv 3x3": (1.19, 0.02),
    "Fully connected": (0.18, 24.33),
}
#: Mult-add cells that do not round to the print. Both are one unit above it and
#: come out as printed if the FC's 1024 x 1000 mult-adds are left out of that row.
OFF_BY_THE_FC = {("table_4", "Conv MobileNet"), ("table_7", "1.0 MobileNet-160")}
FC_MULT_ADDS = 1024 * 1000


@pytest.fixture(scope="module")
def tables() -> PaperTables:
    return reproduce_paper_tables()


def test_printed_values_are_the_papers(tables):
    for (key, label), (mult_adds, params) in PRINTED.items():
        assert tables[key].cell(label, "mult-adds").printed == str(mult_adds)
        assert tables[key].cell(label, "params").printed == str(params)
    for label, (mult_adds, params) in PRINTED_TABLE_2.items():
        assert tables["table_2"].cell(label, "mult-adds").printed == f"{mult_adds:.2f}%"
        assert tables["table_2"].cell(label, "params").printed == f"{params:.2f}%"
    compared = {cell.where[:2] for cell in tables.cells() if cell.where[0] != "table_2"}
    assert compared == set(PRINTED)


def test_exact_counts_of_mobilenet_224(tables):
    # paper.md: 568,740,352 mult-adds and 4,209,088 weights (no biases, no BN).
    for key, label in (("table_8", "1.0 MobileNet-224"), ("table_4", "MobileNet")):
        assert tables[key].cell(label, "mult-adds").exact == 568_740_352
        assert tables[key].cell(label, "params").exact == 4_209_088


def test_every_params_cell_rounds_to_the_print(tables):
    for (key, label), (_, params) in PRINTED.items():
        cell = tables[key].cell(label, "params")
        assert round(cell.exact / 1e6, 1) == params, (key, label, cell.exact)
        assert cell.matches and cell.computed == str(params)


def test_every_mult_adds_cell_rounds_to_the_print_but_two(tables):
    for (key, label), (mult_adds, _) in PRINTED.items():
        cell = tables[key].cell(label, "mult-adds")
        millions = cell.exact / 1e6
        if (key, label) in OFF_BY_THE_FC:
            # 4,867.29 M and 290.68 M round one above the print; without the
            # FC (4,866.27 M, 289.65 M) they round to it.
            assert round(millions) == mult_adds + 1
            assert round((cell.exact - FC_MULT_ADDS) / 1e6) == mult_adds
            assert not cell.matches
            assert "FC" in cell.note and str(mult_adds) in cell.note
        else:
            assert round(millions) == mult_adds, (key, label, cell.exact)
            assert cell.matches and cell.note == ""


def test_table_2_shares_and_its_misprint(tables):
    table = tables["table_2"]
    for label, (mult_adds, params) in PRINTED_TABLE_2.items():
        share = table.cell(label, "params")
        assert round(share.exact, 2) == params and share.matches
        cell = table.cell(label, "mult-adds")
        if label == "Conv 3x3":
            # The stem is 3*3*3*32*112*112 = 10,838,016 of 568,740,352 mult-adds: 1.91%.
            assert cell.exact == pytest.approx(100 * 10_838_016 / 568_740_352)
            assert cell.computed == "1.91%" and not cell.matches
            assert "misprint" in cell.note
        else:
            assert round(cell.exact, 2) == mult_adds and cell.matches
    computed = [table.cell(label, "mult-adds").exact for label in PRINTED_TABLE_2]
    assert sum(computed) == pytest.approx(100.0)
    # The note adds up the column: as printed, 94.86 + 3.06 + 1.19 + 0.18; as computed, 1.91 for 1.19.
    assert table.notes[0] == "The mult-adds column sums to 99.29% as printed and 100.01% as computed."


def test_only_the_known_cells_differ(tables):
    differing = {cell.where for cell in tables.differing_cells()}
    assert differing == {
        ("table_2", "Conv 3x3", "mult-adds"),
        ("table_4", "Conv MobileNet", "mult-adds"),
        ("table_7", "1.0 MobileNet-160", "mult-adds"),
    }


def test_markdown_shows_both_values_and_marks_differences(tables):
    text = tables.to_markdown()
    for title in ("Table 2", "Table 4", "Table 6", "Table 7", "Table 8"):
        assert f"## {title}:" in text
    table_lines = [line for line in text.splitlines() if line.startswith("| ")]
    marked = [line for line in table_lines if "**≠" in line]
    assert len(marked) == 3
    (stem,) = [line for line in table_lines if line.startswith("| Conv 3x3 |")]
    assert "| 1.19% |" in stem and "1.91%" in stem
    assert "misprint" in text
    for (key, label), (mult_adds, params) in PRINTED.items():
        assert any(line.startswith(f"| {label} |") and f"| {mult_adds} |" in line for line in table_lines)


def test_to_dict_is_plain_json(tables):
    data = tables.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert [table["key"] for table in data["tables"]] == [
        "table_2", "table_4", "table_6", "table_7", "table_8",
    ]
    row = data["tables"][4]["rows"][3]
    assert row["label"] == "0.25 MobileNet-224" and row["top1_printed"] == "50.6%"
    assert row["cells"]["mult-adds"]["printed"] == "41"
    assert round(row["cells"]["mult-adds"]["exact"] / 1e6) == 41


def test_leaves_the_callers_keras_state_alone():
    """No clear_session: a model built before still works, the dtype policy and name counters stay."""
    import keras
    import numpy as np

    from mobilenet import MobileNetV1, paper

    keras.mixed_precision.set_global_policy("mixed_float16")
    model = MobileNetV1(0.25, input_shape=(32, 32, 3), num_classes=3)
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    before = np.asarray(model(x))
    name_before = keras.layers.Dense(1).name

    tables = paper.reproduce_paper_tables(["table_2"])  # one model, a few seconds; no other test asks

    assert [table.key for table in tables.tables] == ["table_2"]
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    # clear_session would restart the counters, and the next Dense would be named "dense" again.
    assert keras.layers.Dense(1).name not in (name_before, "dense")
    np.testing.assert_array_equal(np.asarray(model(x)), before)


@pytest.mark.parametrize("tables", [[], ["table_3"], "table_9"])
def test_unknown_tables_name_the_argument(tables):
    from mobilenet.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match=r"`tables`: expected .*'table_2', 'table_4'") as error:
        reproduce_paper_tables(tables)
    assert error.value.argument == "tables"
