/*
 * outq.h - a connection's outbound queue: slices of shared frame buffers
 * waiting to be written, in order.
 *
 * A slice holds one reference to its frame_buf. The queue is a ring with a
 * small inline array, grown on the heap for bursts; an emptied heap ring is
 * kept while the connection is busy and released by outq_trim() (the worker
 * trims idle connections every second), so an idle connection owns no heap
 * memory for it.
 *
 * Writes: the connection gathers the queued slices into an iovec array
 * (outq_iov), writes what the kernel takes at once (uv_try_write), drops the
 * written bytes (outq_consume), and hands the rest to one uv_write whose
 * slices are marked in flight (outq_mark_inflight) until its callback
 * (outq_consume of the in-flight bytes). Only one uv_write is in flight per
 * connection; frames queued meanwhile wait behind it.
 *
 * The queue does not enforce a bound itself: outq_bytes() is the number the
 * connection compares against its limit before pushing.
 */
#ifndef WSB_BROKER_OUTQ_H
#define WSB_BROKER_OUTQ_H

#include "shared/frame_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define OUTQ_INLINE 2

typedef struct {
    frame_buf_t *fb;
    uint32_t off;
    uint32_t len;
} outq_slice_t;

typedef struct {
    outq_slice_t *ring; /* inline_ring or a heap array */
    uint32_t cap;       /* power of two */
    uint32_t head;
    uint32_t count;    /* slices queued, in flight included */
    uint32_t inflight; /* the first `inflight` slices belong to the uv_write in flight */
    size_t bytes;      /* bytes queued, in flight included */
    size_t inflight_bytes;
    outq_slice_t inline_ring[OUTQ_INLINE];
} outq_t;

void outq_init(outq_t *q);

/* Drops every slice (unref) and any heap ring. The queue may be reused after. */
void outq_clear(outq_t *q);

/* Frees a heap ring if the queue is empty (an idle connection's memory goes
 * back to the inline ring). The queue stays usable. */
void outq_trim(outq_t *q);

/* Drops the slices that are not in flight; returns the bytes dropped. */
size_t outq_drop_pending(outq_t *q);

/* Drops the whole, not-in-flight slices (offset 0, the frame's full length)
 * for which match(fb, user_data) is true, keeping the others in order;
 * returns the bytes dropped. A partly written slice is never dropped: the
 * peer has part of that frame already. */
size_t outq_drop_matching(outq_t *q, bool (*match)(const frame_buf_t *fb, void *user_data),
                          void *user_data);

/* Drops the newest whole, not-in-flight slice for which match(fb, user_data)
 * is true (scanning from the tail), keeping the others in order; returns its
 * bytes, 0 when none matched. The primitive behind "a newer frame of key K
 * replaces the unsent older one" (conflation): the queue knows no keys, the
 * caller's `match` does. Like outq_drop_matching, a slice in flight or partly
 * written is never dropped. */
size_t outq_drop_last_matching(outq_t *q, bool (*match)(const frame_buf_t *fb, void *user_data),
                               void *user_data);

/* Appends a slice; takes over one reference the caller holds on `fb`.
 * When `fb` has a backing chunk (frame_buf.h) and its bytes continue the
 * last slice's in that chunk, and that slice is not in flight, the last
 * slice grows over them instead and the reference is dropped: a run of a
 * topic's frames is one slice, one iovec (a slice may then span several
 * frames; outq_drop_matching and outq_drop_last_matching never drop such a
 * slice, and xmsg.h keeps the frames they are for out of chunks). */
void outq_push(outq_t *q, frame_buf_t *fb, uint32_t off, uint32_t len);

/* Fills up to `max` buffers with the slices after the in-flight ones;
 * returns how many were filled and their total in *total. */
unsigned outq_iov(const outq_t *q, uv_buf_t *bufs, unsigned max, size_t *total);

/* Removes `n` written bytes from the front of the not-in-flight slices
 * (partial slices advance their offset). Requires inflight == 0. */
void outq_consume(outq_t *q, size_t n);

/* Marks the first `nslices` slices (as returned by outq_iov) as in flight. */
void outq_mark_inflight(outq_t *q, unsigned nslices, size_t bytes);

/* The in-flight write completed: drops its slices. */
void outq_complete_inflight(outq_t *q);

static inline size_t outq_bytes(const outq_t *q)
{
    return q->bytes;
}

static inline size_t outq_pending_bytes(const outq_t *q)
{
    return q->bytes - q->inflight_bytes;
}

#endif
