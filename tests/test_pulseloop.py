"""The compiled capture loop (csrc/pulseloop.c) against scripted peek/drop: fragments that fit,
fragments split across blocks, holes, an empty queue, a failing peek, the main-loop burst.

The real-stack tests (tests/test_pulse.py) run the pulse backend with it and without it; these
pin the edge cases that a live server produces only by chance.
"""

from __future__ import annotations

import ctypes
import os
import shutil
from collections.abc import Iterator

import pytest

from micrec.backends import _pulseloop

PEEK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                        ctypes.POINTER(ctypes.c_size_t))
DROP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
ITERATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)


def test_the_compiled_capture_loop_is_built() -> None:
    if os.environ.get("MICREC_PYTHON_CAPTURE", "") not in ("", "0"):
        pytest.skip("MICREC_PYTHON_CAPTURE switches the compiled loop off")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: the package was built without its capture loop")
    assert _pulseloop.load() is not None, "micrec was installed without csrc/pulseloop.c (see setup.py)"


@pytest.fixture
def loop() -> Iterator[object]:
    lib = _pulseloop.load()
    if lib is None:
        pytest.skip("the compiled capture loop was not built (test_the_compiled_capture_loop_is_built says why)")
    yield lib


class ScriptedStream:
    """A record stream's queue of fragments (bytes, or an int: a hole of that many bytes)."""

    def __init__(self, fragments: list[bytes | int], fail_after: int | None = None) -> None:
        self.fragments = list(fragments)
        self.peeks = self.drops = 0
        self.fail_after = fail_after
        self._keep: ctypes.Array[ctypes.c_char] | None = None
        self.peek = PEEK(self._peek)
        self.drop = DROP(self._drop)

    def _peek(self, _stream: int, data: ctypes._Pointer[ctypes.c_void_p],
              size: ctypes._Pointer[ctypes.c_size_t]) -> int:
        self.peeks += 1
        if self.fail_after is not None and self.peeks > self.fail_after:
            return -1
        if not self.fragments:
            data[0], size[0] = None, 0
            return 0
        head = self.fragments[0]
        if isinstance(head, int):
            data[0], size[0] = None, head
        else:
            self._keep = ctypes.create_string_buffer(head, len(head))
            data[0], size[0] = ctypes.addressof(self._keep), len(head)
        return 0

    def _drop(self, _stream: int) -> int:
        self.drops += 1
        self.fragments.pop(0)
        return 0

    def read(self, loop: object, capacity: int, skip: ctypes.c_size_t,
             holes: ctypes.c_size_t) -> tuple[int, bytes]:
        out = ctypes.create_string_buffer(capacity)
        peek, drop = (ctypes.cast(function, ctypes.c_void_p) for function in (self.peek, self.drop))
        copied = loop.micrec_read(None, peek, drop, ctypes.addressof(out), capacity, ctypes.byref(skip),
                                  ctypes.byref(holes))
        return copied, out.raw[:max(copied, 0)]


def test_fragments_that_fit_are_copied_and_dropped(loop: object) -> None:
    stream = ScriptedStream([b"abcd", b"efgh", b"ij"])
    skip, holes = ctypes.c_size_t(), ctypes.c_size_t()
    copied, data = stream.read(loop, 64, skip, holes)
    assert (copied, data) == (10, b"abcdefghij")
    assert stream.drops == 3 and not stream.fragments and skip.value == 0 and holes.value == 0


def test_a_fragment_split_across_blocks_goes_on_where_the_last_block_ended(loop: object) -> None:
    stream = ScriptedStream([b"abcdef", b"ghijklmnop", b"qr"])
    skip, holes = ctypes.c_size_t(), ctypes.c_size_t()
    blocks = []
    while True:
        copied, data = stream.read(loop, 4, skip, holes)
        blocks.append(data)
        if copied < 4:
            break
    assert blocks == [b"abcd", b"efgh", b"ijkl", b"mnop", b"qr"]
    assert stream.drops == 3 and skip.value == 0
    # A block boundary inside a fragment leaves it peeked, never dropped before it is all copied.
    assert stream.peeks > stream.drops


def test_a_hole_is_silence_and_is_counted(loop: object) -> None:
    stream = ScriptedStream([b"ab", 6, b"cd"])
    skip, holes = ctypes.c_size_t(), ctypes.c_size_t()
    copied, data = stream.read(loop, 64, skip, holes)
    assert (copied, data) == (10, b"ab" + bytes(6) + b"cd")
    assert holes.value == 6


def test_an_empty_queue_copies_nothing(loop: object) -> None:
    stream = ScriptedStream([])
    skip, holes = ctypes.c_size_t(), ctypes.c_size_t()
    assert stream.read(loop, 64, skip, holes) == (0, b"")
    assert stream.drops == 0


def test_a_failing_peek_is_reported(loop: object) -> None:
    stream = ScriptedStream([b"abcd"], fail_after=0)
    skip, holes = ctypes.c_size_t(), ctypes.c_size_t()
    copied, _ = stream.read(loop, 64, skip, holes)
    assert copied == -1 and stream.drops == 0


def test_take_in_iterates_until_nothing_is_dispatched_or_the_loop_quits(loop: object) -> None:
    calls: list[int] = []

    def script(results: list[int]) -> ITERATE:
        def iterate(_mainloop: int, block: int, _retval: int) -> int:
            calls.append(block)
            return results.pop(0)
        return ITERATE(iterate)

    drained = script([2, 1, 0, 5])
    assert loop.micrec_take_in(None, ctypes.cast(drained, ctypes.c_void_p), 100) == 0
    assert calls == [0, 0, 0]  # never blocking; stops at the first iteration that dispatched nothing
    calls.clear()
    quit_ = script([1, -2])
    assert loop.micrec_take_in(None, ctypes.cast(quit_, ctypes.c_void_p), 100) == -1
    calls.clear()
    endless = script([1] * 10)
    assert loop.micrec_take_in(None, ctypes.cast(endless, ctypes.c_void_p), 3) == 0
    assert len(calls) == 3


STEP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
PREPARE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
READABLE = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p)


class ScriptedConnection:
    """A main loop whose every poll brings the stream to the next of ``held`` readable bytes."""

    def __init__(self, held: list[int], interrupt_at: int | None = None, fail_at: int | None = None) -> None:
        self.held = list(held)
        self.polls = 0
        self.interrupt = ctypes.c_int()
        self._interrupt_at, self._fail_at = interrupt_at, fail_at
        self.functions = (PREPARE(lambda _m, _t: 0), STEP(self._poll), STEP(lambda _m: 0),
                          ITERATE(lambda _m, _b, _r: 0), READABLE(self._readable))

    def _poll(self, _mainloop: int) -> int:
        self.polls += 1
        if self.polls == self._fail_at:
            return -1
        if self.polls == self._interrupt_at:
            self.interrupt.value = 1
        if len(self.held) > 1:
            self.held.pop(0)
        return 1

    def _readable(self, _stream: int) -> int:
        return self.held[0]

    def wait_for(self, loop: object, needed: int, min_packet: int) -> tuple[int, int]:
        prepare, poll, dispatch, iterate, readable = (ctypes.cast(f, ctypes.c_void_p) for f in self.functions)
        before = ctypes.c_size_t()
        result = loop.micrec_wait_for(None, prepare, poll, dispatch, iterate, 10_000_000, 100, -1, None, readable,
                                      needed, min_packet, ctypes.byref(before), ctypes.byref(self.interrupt))
        return result, before.value


def test_wait_for_sleeps_through_whole_packets_until_the_block_is_complete(loop: object) -> None:
    connection = ScriptedConnection([0, 100, 200, 300, 400])
    assert connection.wait_for(loop, needed=250, min_packet=50) == (0, 200)
    assert connection.polls == 3  # one Python wake-up for three packets


def test_wait_for_sleeps_through_wake_ups_that_bring_no_packet(loop: object) -> None:
    # A timing reply, libpulse waking its own loop: nothing for the caller to do.
    connection = ScriptedConnection([0, 0, 0, 100])
    assert connection.wait_for(loop, needed=100, min_packet=50) == (0, 0)
    assert connection.polls == 3


def test_wait_for_hands_back_a_small_packet_an_interrupt_and_a_failure(loop: object) -> None:
    small = ScriptedConnection([0, 100, 110, 300])
    assert small.wait_for(loop, needed=250, min_packet=50) == (0, 100)
    assert small.polls == 2  # the caller judges the packets again
    interrupted = ScriptedConnection([0, 0, 0, 0, 100], interrupt_at=2)
    assert interrupted.wait_for(loop, needed=100, min_packet=50)[0] == 0
    assert interrupted.polls == 2  # close() or a new block size: back at once
    failed = ScriptedConnection([0, 100, 200], fail_at=2)
    assert failed.wait_for(loop, needed=250, min_packet=50)[0] == -1


def test_the_python_capture_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICREC_PYTHON_CAPTURE", "1")
    _pulseloop.load.cache_clear()
    try:
        assert _pulseloop.load() is None
    finally:
        monkeypatch.delenv("MICREC_PYTHON_CAPTURE")
        _pulseloop.load.cache_clear()
