"""Hides TensorFlow's C++ log lines from what a process writes to stderr.

TensorFlow prints a screenful of start-up notices from C++ straight to file
descriptor 2 (CUDA probing, CPU features, absl's banner), and from 2.19 on
``TF_CPP_MIN_LOG_LEVEL`` does not hide those printed at import: setting it
even shows lines that are otherwise held back. `without_tensorflow_log`
filters at the file-descriptor level, whatever the variable says, and passes
every other line through (Python's warnings and errors, Keras' progress).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

__all__ = ["is_tensorflow_log_line", "without_tensorflow_log"]

#: Lines of TensorFlow's C++ log (absl format, e.g. ``I0000 00:00:17.5 123 port.cc:153] ...``),
#: its banner, the continuation line of its CPU-feature notice, and LiteRT's notices.
_TF_LOG_LINE = re.compile(
    r"^([IWE]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w./-]+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|fully_quantize: \d+, inference_type: "  # the LiteRT quantizer's settings
    r"|INFO: Created TensorFlow Lite XNNPACK delegate)"
)

#: Seconds to wait, on leaving, for the last lines to be forwarded.
_DRAIN_SECONDS = 5


def is_tensorflow_log_line(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's (or LiteRT's) C++ log lines."""
    return _TF_LOG_LINE.match(line) is not None


def _forward(pipe_fd: int, out_fd: int) -> None:
    """Copies lines from ``pipe_fd`` to ``out_fd`` until the pipe closes, dropping TF's log.

    Owns both descriptors and closes them.
    """
    with os.fdopen(pipe_fd, "rb") as pipe, os.fdopen(out_fd, "wb", buffering=0) as out:
        for line in pipe:
            if not is_tensorflow_log_line(line.decode(errors="replace")):
                out.write(line)


@contextlib.contextmanager
def without_tensorflow_log() -> Iterator[None]:
    """Within the block, passes stderr through except TensorFlow's C++ log lines.

    File descriptor 2 becomes a pipe that a thread reads, forwarding every
    other line to the real stderr. On leaving, fd 2 is restored (which closes
    the pipe's last write end) and the thread drains what is left; an
    exception raised in the block propagates after that, to the real stderr.

    Example:

    ```python
    from mobilenet import without_tensorflow_log

    with without_tensorflow_log():
        import tensorflow as tf  # its start-up notices are not shown

        print(tf.constant(1.0).numpy())
    ```
    """
    sys.stderr.flush()
    saved = os.dup(2)
    # The thread's own descriptors are made here, before the block can end:
    # a thread that duplicated `saved` itself could find it already closed.
    out = os.dup(saved)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_forward, args=(read_end, out), daemon=True,
                              name="tensorflow-log-filter")
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the thread sees the end
        os.close(saved)
        thread.join(timeout=_DRAIN_SECONDS)
