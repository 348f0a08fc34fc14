/*
 * frame_buf.h - a refcounted, immutable buffer holding bytes to send: usually
 * one complete WebSocket frame shared by every subscriber of a publish, or an
 * HTTP response.
 *
 * Local buffers: the header lives in the same allocation right before the
 * bytes. Protocol builders (wsb_msg_build_*) are asked for FRAME_BUF_HEADROOM
 * bytes of headroom and frame_buf_adopt() turns their buffer into a
 * frame_buf_t: one allocation however many subscribers it reaches.
 *
 * Published messages cross workers as one xmsg_t (xmsg.h): each worker gets
 * its own frame_buf_t inside the xmsg, whose bytes point into the shared
 * frame. Its count is that worker's alone; when it drops to zero the worker
 * releases its (atomic) reference on the xmsg. So the per-delivery refcount
 * traffic stays plain integer arithmetic on one thread.
 *
 * Ownership: a new frame_buf has refcnt 1, owned by its creator. Each holder
 * (an outbound queue slice) takes a reference; the last unref frees it.
 */
#ifndef WSB_BROKER_FRAME_BUF_H
#define WSB_BROKER_FRAME_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct frame_buf_s frame_buf_t;

/* Releases a shared buffer whose last reference went (the header too, when
 * it was allocated apart from the bytes). */
typedef void (*frame_buf_release_cb)(frame_buf_t *fb);

struct frame_buf_s {
    uint32_t refcnt;
    uint32_t len;
    uint8_t *bytes;
    /* NULL: a local buffer, freed with free(). Else what `bytes` belong to
     * (a published message, xmsg.h), released by release_cb: this module
     * does not know what it shares. */
    void *shared;
    frame_buf_release_cb release_cb;
    /* NULL, or the chunk (a local frame_buf) that holds `bytes` together
     * with the frames published right before and after on the same topic
     * (xmsg.h, "chunks"); this buffer holds a reference on it. An outbound
     * queue appends a slice that continues the previous one in the same
     * chunk to that slice: one iovec for a run of frames (outq.h). */
    frame_buf_t *backing;
    void *reserved; /* keeps the header a multiple of 16 bytes */
};

#define FRAME_BUF_HEADROOM sizeof(frame_buf_t)

/* Takes ownership of `raw` (a malloc'd buffer whose first FRAME_BUF_HEADROOM
 * bytes are free and whose frame of `len` bytes follows). NULL raw -> abort. */
frame_buf_t *frame_buf_adopt(uint8_t *raw, size_t len);

/* Allocates a buffer for `len` bytes (contents uninitialised). Aborts on OOM. */
frame_buf_t *frame_buf_new(size_t len);

/* Allocates and copies `len` bytes. */
frame_buf_t *frame_buf_copy(const void *data, size_t len);

static inline frame_buf_t *frame_buf_ref(frame_buf_t *fb)
{
    fb->refcnt++;
    return fb;
}

void frame_buf_unref(frame_buf_t *fb);

#endif
