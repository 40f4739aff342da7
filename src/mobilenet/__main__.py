"""``python -m mobilenet``: the ``mobilenet`` command, where its script is not on PATH."""

import sys

from mobilenet.cli import main

# Guarded: pytest imports every module under src/ to collect its docstring
# examples, and an unguarded call would run the command there.
if __name__ == "__main__":
    sys.exit(main())
