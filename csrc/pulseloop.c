/*
 * micrec's capture loop for libpulse: the per-packet part of micrec.backends.pulse, compiled.
 *
 * A source that another client keeps at a short latency sends hundreds of packets a second;
 * taking each in and copying it out costs a few foreign calls from Python (about a microsecond
 * and a half each time). These two functions do that work for a whole block in one call.
 *
 * Neither Python's nor libpulse's headers are needed: the caller (ctypes) passes libpulse's
 * functions in as pointers, and the module is loaded with ctypes, never imported. The
 * signatures below are those of pulse/mainloop.h and pulse/stream.h.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int (*iterate_fn)(void *mainloop, int block, int *retval);
typedef int (*prepare_fn)(void *mainloop, int timeout);
typedef int (*poll_fn)(void *mainloop);
typedef int (*dispatch_fn)(void *mainloop);
typedef int (*peek_fn)(void *stream, const void **data, size_t *nbytes);
typedef int (*drop_fn)(void *stream);
typedef size_t (*readable_fn)(void *stream);

/* Dispatch everything the main loop has waiting, without blocking, at most `most` iterations.
 * Returns 0, or -1 once the loop quit or failed. */
int micrec_take_in(void *mainloop, iterate_fn iterate, int most)
{
    for (int i = 0; i < most; i++) {
        int dispatched = iterate(mainloop, 0, NULL);
        if (dispatched < 0)
            return -1;
        if (dispatched == 0)
            break;
    }
    return 0;
}

/* Ring the worker's doorbell (`bell`, an eventfd; -1: none), then sleep on the connection until
 * the server sends something (or `timeout` microseconds pass, or pa_mainloop_wakeup), then
 * dispatch everything waiting, as micrec_take_in does.
 *
 * One foreign call, so the caller lets go of Python's GIL once per sleep, and the worker it has
 * just handed blocks to is woken only then: rung from Python, or with a call per step, the
 * worker would wake to a GIL still held, and each would wait for the other (a context switch
 * each). Returns 0, or -1 once the loop quit or failed. */
int micrec_wait(void *mainloop, prepare_fn prepare, poll_fn poll, dispatch_fn dispatch, iterate_fn iterate,
                int timeout, int most, int bell)
{
    if (bell >= 0) {
        uint64_t one = 1;
        ssize_t written;
        do {
            written = write(bell, &one, sizeof one);
        } while (written < 0 && errno == EINTR);
    }
    if (prepare(mainloop, timeout) < 0 || poll(mainloop) < 0 || dispatch(mainloop) < 0)
        return -1;
    return micrec_take_in(mainloop, iterate, most);
}

static long long now_usec(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* micrec_wait, for as long as the server sends whole packets and the block is not complete.
 *
 * Waits as micrec_wait does, then, as long as each wake-up brought a packet of at least
 * `min_packet` bytes and the stream holds fewer than `needed` readable bytes, waits again (until
 * `timeout` microseconds have passed in all). A server that sends 100 ms packets for 250 ms
 * blocks so wakes Python once per block, not once per packet: the packets wait in libpulse
 * until the block is complete (two or three of them: no memory to speak of).
 *
 * A wake-up that brought no packet (a timing reply, libpulse waking its own loop after a drop)
 * is dispatched here; the caller gets control back when `*interrupt` is set (it sets it before
 * pa_mainloop_wakeup: close(), a new block size), the stream fails, or a small packet comes
 * (the caller judges the server's packets again). *last_before is what the stream held before
 * the latest packet. Returns 0, or -1 once the loop quit or failed. */
int micrec_wait_for(void *mainloop, prepare_fn prepare, poll_fn poll, dispatch_fn dispatch, iterate_fn iterate,
                    int timeout, int most, int bell, void *stream, readable_fn readable, size_t needed,
                    size_t min_packet, size_t *last_before, volatile int *interrupt)
{
    long long deadline = now_usec() + timeout;
    size_t before = readable(stream);
    *last_before = before;
    for (;;) {
        long long left = deadline - now_usec();
        if (micrec_wait(mainloop, prepare, poll, dispatch, iterate, left > 0 ? (int)left : 0, most, bell) < 0)
            return -1;
        bell = -1;
        size_t held = readable(stream);
        if (held == (size_t)-1)
            return 0;  /* the stream failed: its state callback has told the caller */
        size_t packet = held > before ? held - before : 0;
        if (packet)
            *last_before = before;
        if (*interrupt || (packet && packet < min_packet) || held >= needed || deadline - now_usec() <= 0)
            return 0;
        before = held;
    }
}

/* Copy the stream's queued fragments into dst, up to `capacity` bytes.
 *
 * Every fragment copied whole is dropped. A fragment that does not fit is copied as far as
 * it fits and left peeked, with *skip set to the bytes of it already copied: the caller hands
 * over the next buffer and calls again at once, and the copy goes on from there (a fragment is
 * never left peeked while the caller sleeps). A hole (data lost before it reached the stream)
 * is written as silence and its bytes are added to *holes.
 *
 * Returns the bytes written to dst (less than `capacity`: the queue is empty), or -1 when
 * peek fails. */
long micrec_read(void *stream, peek_fn peek, drop_fn drop, char *dst, size_t capacity,
                 size_t *skip, size_t *holes)
{
    size_t fill = 0;
    while (fill < capacity) {
        const void *data = NULL;
        size_t size = 0;
        if (peek(stream, &data, &size) < 0)
            return -1;
        if (size == 0)
            break;
        size_t offset = *skip;
        size_t take = size - offset;
        if (take > capacity - fill)
            take = capacity - fill;
        if (data) {
            memcpy(dst + fill, (const char *)data + offset, take);
        } else {
            memset(dst + fill, 0, take);
            *holes += take;
        }
        fill += take;
        if (offset + take < size) {
            *skip = offset + take;
            break;
        }
        *skip = 0;
        drop(stream);
    }
    return (long)fill;
}
