"""``python benchmarks/run.py [COMMAND] [OPTIONS]``: the same as ``python -m benchmarks`` (see there)."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # Run by path, Python puts benchmarks/ first on the path; the package needs the repository root.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from benchmarks.__main__ import main

    sys.exit(main())
