/* outq.c - ring of frame_buf slices waiting to be written (see outq.h). */
#include "net/outq.h"

#include "shared/util.h"

#include <assert.h>
#include <stdlib.h>

void outq_init(outq_t *q)
{
    q->ring = q->inline_ring;
    q->cap = OUTQ_INLINE;
    q->head = 0;
    q->count = 0;
    q->inflight = 0;
    q->bytes = 0;
    q->inflight_bytes = 0;
}

static outq_slice_t *at(const outq_t *q, uint32_t i)
{
    return &q->ring[(q->head + i) & (q->cap - 1)];
}

/* An emptied queue keeps its heap ring: a busy subscriber empties it on
 * every flush, and freeing it each time cost a malloc per flush (callgrind:
 * 6.6% of fan-out). outq_trim() gives it back once the connection is idle. */
static void maybe_shrink(outq_t *q)
{
    if (q->count == 0) {
        q->head = 0;
    }
}

void outq_trim(outq_t *q)
{
    if (q->count == 0 && q->ring != q->inline_ring) {
        free(q->ring);
        q->ring = q->inline_ring;
        q->cap = OUTQ_INLINE;
        q->head = 0;
    }
}

void outq_clear(outq_t *q)
{
    for (uint32_t i = 0; i < q->count; i++) {
        frame_buf_unref(at(q, i)->fb);
    }
    q->count = 0;
    q->inflight = 0;
    q->bytes = 0;
    q->inflight_bytes = 0;
    outq_trim(q);
}

size_t outq_drop_pending(outq_t *q)
{
    size_t dropped = 0;
    while (q->count > q->inflight) {
        outq_slice_t *s = at(q, q->count - 1);
        dropped += s->len;
        frame_buf_unref(s->fb);
        q->count--;
    }
    q->bytes -= dropped;
    maybe_shrink(q);
    return dropped;
}

size_t outq_drop_matching(outq_t *q, bool (*match)(const frame_buf_t *fb, void *user_data),
                          void *user_data)
{
    size_t dropped = 0;
    uint32_t kept = q->inflight;
    for (uint32_t i = q->inflight; i < q->count; i++) {
        outq_slice_t s = *at(q, i);
        if (s.off == 0 && s.len == s.fb->len && match(s.fb, user_data)) {
            dropped += s.len;
            frame_buf_unref(s.fb);
            continue;
        }
        *at(q, kept++) = s;
    }
    q->count = kept;
    q->bytes -= dropped;
    maybe_shrink(q);
    return dropped;
}

size_t outq_drop_last_matching(outq_t *q, bool (*match)(const frame_buf_t *fb, void *user_data),
                               void *user_data)
{
    for (uint32_t i = q->count; i > q->inflight; i--) {
        outq_slice_t *s = at(q, i - 1);
        if (s->off != 0 || s->len != s->fb->len || !match(s->fb, user_data)) {
            continue;
        }
        size_t dropped = s->len;
        frame_buf_unref(s->fb);
        for (uint32_t j = i; j < q->count; j++) {
            *at(q, j - 1) = *at(q, j);
        }
        q->count--;
        q->bytes -= dropped;
        maybe_shrink(q);
        return dropped;
    }
    return 0;
}

static void grow(outq_t *q)
{
    uint32_t ncap = q->cap * 2;
    outq_slice_t *n = xmalloc(sizeof(*n) * ncap);
    for (uint32_t i = 0; i < q->count; i++) {
        n[i] = *at(q, i);
    }
    if (q->ring != q->inline_ring) {
        free(q->ring);
    }
    q->ring = n;
    q->cap = ncap;
    q->head = 0;
}

void outq_push(outq_t *q, frame_buf_t *fb, uint32_t off, uint32_t len)
{
    if (fb->backing != NULL && q->count > q->inflight) {
        outq_slice_t *t = at(q, q->count - 1);
        if (t->fb->backing == fb->backing && t->fb->bytes + t->off + t->len == fb->bytes + off) {
            /* The next bytes of the same chunk: the tail slice grows over
             * them, and its buffer's reference on the chunk keeps them. */
            t->len += len;
            q->bytes += len;
            frame_buf_unref(fb);
            return;
        }
    }
    if (q->count == q->cap) {
        grow(q);
    }
    outq_slice_t *s = at(q, q->count);
    s->fb = fb;
    s->off = off;
    s->len = len;
    q->count++;
    q->bytes += len;
}

unsigned outq_iov(const outq_t *q, uv_buf_t *bufs, unsigned max, size_t *total)
{
    unsigned n = 0;
    size_t sum = 0;
    for (uint32_t i = q->inflight; i < q->count && n < max; i++, n++) {
        const outq_slice_t *s = at(q, i);
        bufs[n].base = (char *)s->fb->bytes + s->off;
        bufs[n].len = s->len;
        sum += s->len;
    }
    *total = sum;
    return n;
}

void outq_consume(outq_t *q, size_t n)
{
    assert(q->inflight == 0);
    assert(n <= q->bytes);
    q->bytes -= n;
    while (n > 0) {
        outq_slice_t *s = at(q, 0);
        if (n < s->len) {
            s->off += (uint32_t)n;
            s->len -= (uint32_t)n;
            break;
        }
        n -= s->len;
        frame_buf_unref(s->fb);
        q->head = (q->head + 1) & (q->cap - 1);
        q->count--;
    }
    maybe_shrink(q);
}

void outq_mark_inflight(outq_t *q, unsigned nslices, size_t bytes)
{
    assert(q->inflight == 0 && nslices <= q->count);
    q->inflight = nslices;
    q->inflight_bytes = bytes;
}

void outq_complete_inflight(outq_t *q)
{
    size_t n = q->inflight_bytes;
    q->inflight = 0;
    q->inflight_bytes = 0;
    outq_consume(q, n);
}
