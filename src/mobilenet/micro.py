"""Microcontrollers: ``mobilenet.micro`` is `mobilenet.export.micro`, under its older name.

The microcontroller target lives in the export package, with the others
(`mobilenet.export.micro`); this module re-exports its public names, and
`vww_model` from `mobilenet.model`, for code that imports them from here.
"""

from __future__ import annotations

from mobilenet.export.micro import (
    C_SUFFIXES,
    MICRO_OPS,
    MicroExport,
    MicroReport,
    c_identifier,
    check_micro,
    export_micro,
    io_quantization,
    read_c_array,
    run_micro,
    smallest_arena,
    to_micro,
    write_c_array,
)
from mobilenet.model import vww_model

__all__ = [
    "C_SUFFIXES",
    "MICRO_OPS",
    "MicroExport",
    "MicroReport",
    "c_identifier",
    "check_micro",
    "export_micro",
    "io_quantization",
    "read_c_array",
    "run_micro",
    "smallest_arena",
    "to_micro",
    "vww_model",
    "write_c_array",
]
