"""What PipeWire's graph does while a tool records: the tool's node.latency, the quantum, xruns.

``pw-dump`` gives every stream's ``node.latency`` (pipewire-pulse derives a record stream's from
its fragment size); ``pw-profiler`` gives the period, hence the quantum, of every graph cycle; the
daemons' log gives the xruns they warned about ("client too slow").
"""

from __future__ import annotations

import statistics
import time
from contextlib import ExitStack
from typing import Any

from micrec.vmic import VirtualMicrophone, stream_latencies_ms

#: The latency a stream must ask for to leave PipeWire's graph at its largest quantum (2048 at 48 kHz).
QUANTUM_FLOOR_MS = 2048 / 48000 * 1000
#: The first dump waits this long: pipewire-pulse raises a stream's latency soon after it connects.
_SETTLE_S = 0.3


class GraphObserver:
    """Watches one take's steady window on the private PipeWire (see take.Observer)."""

    def __init__(self, vm: VirtualMicrophone) -> None:
        self.vm = vm
        self._stack = ExitStack()
        self._pids: list[int] = []
        self._quanta: list[int] = []
        self._xruns_before = 0

    def begin(self, pids: list[int]) -> None:
        self._pids = pids
        self._xruns_before = self.vm.xrun_warnings()
        self._quanta = self._stack.enter_context(self.vm.profiling())

    def end(self) -> dict[str, Any]:
        time.sleep(_SETTLE_S)
        latencies = stream_latencies_ms(self.vm.pw_dump(), self._pids)
        self._stack.close()
        return summarize(latencies, self._quanta, self.vm.xrun_warnings() - self._xruns_before)


def summarize(latencies_ms: list[float], quanta: list[int], xruns: int) -> dict[str, Any]:
    """The figures of one take: the tool's smallest node.latency, the graph's quanta, the xruns."""
    return {
        "pw_node_latency_ms": min(latencies_ms) if latencies_ms else None,
        "pw_quantum": statistics.median(quanta) if quanta else None,
        "pw_quantum_min": min(quanta) if quanta else None,
        "pw_cycles": len(quanta),
        "pw_xruns": xruns,
    }
