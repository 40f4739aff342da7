"""What the benchmarks share: fair timing, the machine they ran on, free ports, and one `report`.

Each script imports these (``from _common import ...``: a script's own folder
is on ``sys.path`` when Python runs it), so every table is timed the same way
and names the same facts about the CPU: its model and ISA flags, whether
TensorFlow's oneDNN ops are on, the load and the busiest other processes
(`machine_header`). A benchmark measures into rows (dataclasses), and
`report` renders them: measuring and printing stay apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

#: The /proc/cpuinfo flags that decide which kernels TensorFlow, XNNPACK and ONNX Runtime use.
ISA_FLAGS = (
    "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
)
#: What TensorFlow logs (at INFO level) when it is imported with oneDNN's custom ops on.
ONEDNN_ON_LOG = "oneDNN custom operations are on"
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
#: Versions printed in the headers (distribution names).
PACKAGES = ("tensorflow", "keras", "numpy", "onnxruntime", "onnx", "tf2onnx", "ai-edge-litert",
            "openvino", "torch", "timm")


# --------------------------------------------------------------------------- timing


def interleaved_rates(steps: dict, repeats: int, min_seconds: float = 0.0) -> dict:
    """Images/s of each ``(step, images)`` in ``steps``: medians over interleaved rounds.

    Every step runs twice to warm up, then the steps take turns, one timed run
    each per round, for at least ``repeats`` rounds and ``min_seconds``. Taking
    turns spreads the load of anything else on the machine evenly over the
    compared models, so their ratios stay fair on a shared CPU.
    """
    for step, _ in steps.values():
        step()
        step()
    times: dict = {name: [] for name in steps}
    started = time.perf_counter()
    rounds = 0
    while rounds < repeats or (time.perf_counter() - started < min_seconds and rounds < 200):
        for name, (step, _) in steps.items():
            begin = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - begin)
        rounds += 1
    return {name: steps[name][1] / statistics.median(times[name]) for name in steps}


def progress(row: str) -> None:
    """A progress row on stderr, so that stdout keeps only the tables."""
    print(row, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the machine


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of `ISA_FLAGS` it has, from /proc/cpuinfo."""
    name, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                if flags and name:
                    break
    return name, [flag for flag in ISA_FLAGS if flag in flags]


def onednn_state(env: dict[str, str]) -> str:
    """``"on"`` or ``"off"``: whether TensorFlow, imported with ``env``, turns oneDNN's ops on.

    TensorFlow logs `ONEDNN_ON_LOG` at INFO level on import when they are on,
    so a child process imports it with INFO logging and the log is read.
    """
    child = subprocess.run(
        [sys.executable, "-c", "import tensorflow"], env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"},
        capture_output=True, text=True, check=False,
    )
    if child.returncode != 0:
        return f"unknown (importing TensorFlow failed: exit {child.returncode})"
    return "on" if ONEDNN_ON_LOG in child.stderr else "off"


def onednn_setting(env: dict[str, str]) -> str:
    value = env.get(ONEDNN_VARIABLE)
    return f"{ONEDNN_VARIABLE}={value}" if value is not None else f"{ONEDNN_VARIABLE} unset"


def busy_processes(seconds: float = 1.0, top: int = 5) -> list[str]:
    """The processes that used the most CPU over ``seconds`` (this one left out), busiest first.

    Sampled from /proc, so only processes this system shows are listed
    (another container's are not, though the load average counts them).
    """
    def cpu_ticks() -> dict[int, int]:
        ticks = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry.name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                ticks[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks

    if not os.path.isdir("/proc"):
        return []
    before = cpu_ticks()
    time.sleep(seconds)
    after = cpu_ticks()
    hertz = os.sysconf("SC_CLK_TCK")
    used = sorted(
        ((after[pid] - before[pid]) / hertz / seconds, pid)
        for pid in after.keys() & before.keys() if pid != os.getpid()
    )
    rows = []
    for share, pid in reversed(used[-top:]):
        if share < 0.02:
            break
        command = ""
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
        if len(command) > 90:
            command = command[:87] + "..."
        rows.append(f"{share:.0%} pid {pid} `{command or '?'}`")
    return rows


def load_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    busy = busy_processes()
    others = "; ".join(busy) if busy else "none above 2% of a core"
    return (f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min) on "
            f"{os.cpu_count()} cores; busiest other processes over 1 s: {others}")


def versions() -> str:
    from importlib import metadata

    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found) + f", Python {platform.python_version()}"


def litert_runtime() -> str:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return "TensorFlow's tf.lite.Interpreter (ai-edge-litert is not installed)"
    return "ai_edge_litert.interpreter.Interpreter"


def machine_header(env: dict[str, str] | None = None, *, onednn: bool = True) -> str:
    """The lines every RESULTS.md entry starts with: date, CPU and flags, oneDNN, versions, load."""
    env = dict(os.environ) if env is None else env
    cpu, flags = cpu_model_and_flags()
    lines = [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu}, {os.cpu_count()} cores; ISA flags: {', '.join(flags) or 'none of note'}",
    ]
    if onednn:
        lines.append(f"- TensorFlow's oneDNN ops: {onednn_state(env)} ({onednn_setting(env)})")
    lines += [f"- {versions()}", f"- at the start: {load_line()}"]
    return "\n".join(lines)


def free_ports(count: int) -> list[int]:
    """``count`` free local TCP ports for a local multi-worker cluster (`mobilenet.training.free_ports`)."""
    from mobilenet.training import free_ports as library_free_ports

    return library_free_ports(count)


def _cell(value: Any, style: str | Callable[[Any], str] | None) -> str:
    if value is None:
        return "-"
    if callable(style):
        return style(value)
    if style:
        return format(value, style)
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def report(
    rows: Sequence[Any], columns: dict[str, tuple[str, str | Callable[[Any], str] | None]] | None = None,
    *, title: str | None = None,
) -> str:
    """A markdown table of ``rows`` (dataclass instances of one kind), one row each.

    Args:
        rows: the measured rows.
        columns: field -> (header, format): a ``format()`` spec such as
            ``".1%"``, or a function of the value. Default: every field,
            its name as header.
        title: an optional heading line above the table.
    """
    if columns is None:
        names = [field.name for field in dataclasses.fields(rows[0])] if rows else []
        columns = {name: (name, None) for name in names}
    header = [heading for heading, _ in columns.values()]
    lines = [] if title is None else [title, ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in rows:
        lines.append("| " + " | ".join(_cell(getattr(row, name), style)
                                        for name, (_, style) in columns.items()) + " |")
    return "\n".join(lines)
