"""Tests of the `mobilenet profile` and `mobilenet paper` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mobilenet.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize("module", ["mobilenet", "mobilenet.cli"])
def test_help_runs_as_a_module(module):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "profile" in result.stdout and "paper" in result.stdout


def test_profile_prints_the_table_and_the_papers_totals(capsys):
    assert main(["profile", "--alpha", "1.0", "--rho", "1"]) == 0
    out = capsys.readouterr().out
    # paper.md: 568,740,352 mult-adds, 4,210,088 params with the FC bias.
    assert "568,740,352" in out and "4,210,088" in out
    assert "block_13/block_13_pw" in out
    first = next(line for line in out.splitlines() if line.startswith("conv1 "))
    assert "112x112x32" in first and f"{3 * 3 * 3 * 32 * 112 * 112:,}" in first


def test_profile_json(capsys):
    # rho = 4/7: the 128x128 input of Table 7's 1.0 MobileNet-128 (186 M mult-adds).
    assert main(["profile", "--rho", "4/7", "--num-classes", "10", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0]["output_shape"] == [64, 64, 32]
    fc = data["rows"][-1]
    assert fc["kind"] == "fully connected" and fc["output_shape"] == [10]
    assert fc["mult_adds"] == 1024 * 10 and fc["params"] == 1024 * 10 + 10
    # Table 7 counts 1000 classes: swap our 10-class FC for its 1024 x 1000 one.
    assert round((data["totals"]["mult_adds"] - 1024 * 10 + 1024 * 1000) / 1e6) == 186


def test_profile_input_size_and_variants(capsys):
    assert main(["profile", "--alpha", "0.25", "--input-size", "64", "--shallow", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in data["rows"]]
    blocks = {name.split("/")[0] for name in names if name.startswith("block_")}
    # The Shallow MobileNet leaves out the five 14x14x512 blocks, 7 to 11.
    assert blocks == {f"block_{n}" for n in (1, 2, 3, 4, 5, 6, 12, 13)}
    assert data["rows"][0]["output_shape"] == [32, 32, 8]
    assert main(["profile", "--alpha", "0.25", "--rho", str(64 / 224), "--conv", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {row["kind"] for row in data["rows"]} == {"standard conv", "fully connected"}
    assert "block_1_conv" in [row["name"] for row in data["rows"]]


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["profile", "--alpha", "-1"], "--alpha"),
        (["profile", "--rho", "0.1"], "--rho"),
        (["profile", "--input-size", "20"], "--input-size"),
        (["profile", "--num-classes", "0"], "--num-classes"),
        (["profile", "--rho", "1", "--input-size", "224"], "--input-size"),
    ],
)
def test_profile_rejects_bad_values_in_one_line(capsys, argv, flag):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert f"`{flag}`" in lines[0] and lines[0].startswith("mobilenet profile: error:")


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["profile", "--alpha", "wide"], "--alpha"),
        (["profile", "--rho", "5/0"], "--rho"),
        (["profile", "--input-size", "1.5"], "--input-size"),
        (["paper", "--alpha", "1"], "--alpha"),
        (["profile", "--bogus"], "--bogus"),
    ],
)
def test_argparse_errors_name_the_argument(capsys, argv, flag):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def test_paper_markdown_and_json(capsys):
    assert main(["paper"]) == 0
    out = capsys.readouterr().out
    for title in ("Table 2", "Table 4", "Table 6", "Table 7", "Table 8"):
        assert f"## {title}:" in out
    assert "| 569 | 569 (568,740,352) |" in out
    assert "1.19%" in out and "1.91%" in out and "misprint" in out

    assert main(["paper", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cells = [
        (table["key"], row["label"], column, cell)
        for table in data["tables"]
        for row in table["rows"]
        for column, cell in row["cells"].items()
    ]
    # 4 Table 2 types and 12 model rows, two cells each.
    assert len(cells) == 2 * (4 + 12)
    assert {(key, label, column) for key, label, column, cell in cells if not cell["matches"]} == {
        ("table_2", "Conv 3x3", "mult-adds"),
        ("table_4", "Conv MobileNet", "mult-adds"),
        ("table_7", "1.0 MobileNet-160", "mult-adds"),
    }
