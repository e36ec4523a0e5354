"""The benchmarks' one entry point: ``python -m benchmarks [COMMAND] [OPTIONS]``.

Without a command it runs the peer comparison (``benchmarks.peers.compare``, under 10 minutes)
and writes ``docs/benchmarks.md``. The other commands::

    python -m benchmarks profile micrec micrec-meter parecord arecord   # CPU per thread
    python -m benchmarks floor        # the least a recorder shaped like micrec costs here
    python -m benchmarks vad --takes 8
    python -m benchmarks aec --runs 20
    python -m benchmarks mixing --seconds 8
    python -m benchmarks segments
    python -m benchmarks web-load --encoders wav --seconds 5
    python -m benchmarks dsp-cpu
    python -m benchmarks encoders-cpu --runs 1 --seconds 4

``python -m benchmarks COMMAND --help`` describes each.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: command -> module whose ``main(argv)`` runs it.
COMMANDS = {
    "compare": "benchmarks.peers.compare",
    "profile": "benchmarks.profiles",
    "floor": "benchmarks.floor",
    "vad": "benchmarks.features.vad",
    "aec": "benchmarks.features.aec",
    "mixing": "benchmarks.features.mixing",
    "segments": "benchmarks.features.segments",
    "web-load": "benchmarks.features.web_load",
    "dsp-cpu": "benchmarks.features.dsp_cpu",
    "encoders-cpu": "benchmarks.features.encoders_cpu",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help") and len(args) == 1:
        print(__doc__)
    command = args.pop(0) if args and args[0] in COMMANDS else "compare"
    module = importlib.import_module(COMMANDS[command])
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
