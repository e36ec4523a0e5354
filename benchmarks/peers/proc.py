"""Run a recorder as a group of processes and measure it from outside: CPU, peak RSS, exit.

CPU while running comes from each thread's ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds:
the tick-based ``utime``/``stime`` are too coarse for a few milliseconds per second). The total
comes from ``wait4()`` when each process is reaped, which also counts threads and children that
ended before; the peak RSS from each process's ``VmHWM``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

_POLL_S = 0.002
#: (pid, tid) -> (process name, run time ns, times scheduled in), from /proc/PID/task/TID/schedstat.
Schedstat = dict[tuple[int, int], tuple[str, int, int]]


def process_schedstat(pid: int) -> Schedstat:
    """Every thread of one process (nothing if it is gone)."""
    found = {}
    with contextlib.suppress(OSError):
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                run_ns, _, slices = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:3]
                found[(pid, int(tid))] = (name, int(run_ns), int(slices))
    return found


class ProcessTree:
    """Commands piped one into the next, in a process group of their own.

    Parameters
    ----------
    commands : sequence of argv lists
        ``[a, b]`` runs ``a | b``.
    env : mapping
        The environment (the private PulseAudio server's).
    log : path
        Where the processes' stderr goes (kept for diagnosis).
    talk : bool
        Give the last process a stdin and stdout pipe (the in-process API driver).
    """

    def __init__(self, commands: Sequence[Sequence[str]], env: dict[str, str], log: Path,
                 *, talk: bool = False) -> None:
        self.launched = time.monotonic()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        with open(log, "ab") as err:
            self._spawn(commands, env, err, talk)
        self.cpu_seconds = 0.0
        self.peak_rss_mb = 0.0
        self.exited_at = 0.0

    def _spawn(self, commands: Sequence[Sequence[str]], env: dict[str, str], err: IO[bytes],
               talk: bool) -> None:
        upstream: IO[bytes] | int | None = subprocess.PIPE if talk else subprocess.DEVNULL
        for i, argv in enumerate(commands):
            last = i == len(commands) - 1
            stdout = (subprocess.PIPE if talk else subprocess.DEVNULL) if last else subprocess.PIPE
            proc = subprocess.Popen(list(argv), env=env, stdin=upstream, stdout=stdout, stderr=err,
                                    process_group=self.procs[0].pid if self.procs else 0)
            if self.procs and self.procs[-1].stdout is not None:
                self.procs[-1].stdout.close()  # only the reader keeps the pipe open
            if i == 0 and talk:
                self.stdin = proc.stdin
            upstream = proc.stdout
            self.procs.append(proc)
        if talk:
            self.stdout = self.procs[-1].stdout

    @property
    def pid(self) -> int:
        return self.procs[0].pid

    def runtime_ns(self) -> int:
        """CPU time of every live thread of the tree so far, in nanoseconds."""
        return sum(run_ns for _, run_ns, _ in self.schedstat().values())

    def schedstat(self) -> Schedstat:
        """Every live thread of the tree: (pid, tid) -> (process name, run time ns, times scheduled)."""
        found: Schedstat = {}
        for pid in self.live_pids():
            found.update(process_schedstat(pid))
        return found

    def note_peak_rss(self) -> None:
        """Add up every live process's peak RSS (VmHWM) now; :attr:`peak_rss_mb` keeps the highest.

        ``ru_maxrss`` from ``wait4()`` cannot be used: Linux carries the forking parent's RSS
        (the harness's) over the exec into it.
        """
        total_kb = 0
        for pid in self.live_pids():
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total_kb += int(line.split()[1])
        self.peak_rss_mb = max(self.peak_rss_mb, total_kb / 1024)

    def live_pids(self) -> list[int]:
        """The pids of the tree's processes still running, and of their children."""
        pids = []
        for proc in self.procs:
            if proc.returncode is None:
                pids.append(proc.pid)
                with contextlib.suppress(psutil.Error):
                    pids.extend(child.pid for child in psutil.Process(proc.pid).children(recursive=True))
        return pids

    def send(self, sig: int) -> float:
        """Signal the whole group (as a terminal's Ctrl-C does); returns when it was sent."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)
        return time.monotonic()

    def reap(self, timeout: float) -> bool:
        """Wait for every process to exit (SIGKILL after ``timeout``); True if all exited in time."""
        deadline = time.monotonic() + timeout
        in_time = True
        for proc in self.procs:
            while proc.returncode is None:
                if time.monotonic() > deadline and in_time:
                    in_time = False
                    self.send(signal.SIGKILL)
                self._try_reap(proc)
        self.exited_at = time.monotonic()
        return in_time

    def _try_reap(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            proc.returncode = -1
            return
        if pid == 0:
            time.sleep(_POLL_S)
            return
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds += usage.ru_utime + usage.ru_stime

    def close_pipes(self) -> None:
        for stream in (self.stdin, self.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@dataclass(frozen=True)
class Profile:
    """CPU and wake-ups of a process tree over a window, in total and thread by thread."""

    cpu: float  # CPU seconds per second
    wakeups: float  # times a thread was scheduled in, per second
    threads: dict[str, tuple[float, float]]  # "process#n" (n-th thread by tid) -> (CPU s/s, wake-ups/s)


def profile(before: Schedstat, after: Schedstat, seconds: float) -> Profile:
    """What the threads seen at the window's end did since its start (threads born meanwhile from 0)."""
    threads: dict[str, tuple[float, float]] = {}
    ranks: dict[int, int] = {}
    for pid, tid in sorted(after):
        name, run_ns, slices = after[(pid, tid)]
        _, run0, slices0 = before.get((pid, tid), (name, 0, 0))
        rank = ranks[pid] = ranks.get(pid, -1) + 1
        threads[f"{name}#{rank}"] = ((run_ns - run0) / 1e9 / seconds, (slices - slices0) / seconds)
    return Profile(sum(c for c, _ in threads.values()), sum(w for _, w in threads.values()), threads)
