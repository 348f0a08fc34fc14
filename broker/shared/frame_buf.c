/* frame_buf.c - refcounted shared output buffers (see frame_buf.h). */
#include "shared/frame_buf.h"

#include "shared/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(frame_buf_t) % 16 == 0, "frame_buf_t keeps the payload 16-byte aligned");

frame_buf_t *frame_buf_adopt(uint8_t *raw, size_t len)
{
    if (raw == NULL) {
        wsb_oom("frame"); /* the builders return NULL on ENOMEM only */
    }
    if (len > UINT32_MAX) {
        abort(); /* cannot happen: frames are bounded by max_message_size and max_http_body */
    }
    frame_buf_t *fb = (frame_buf_t *)(void *)raw;
    fb->refcnt = 1;
    fb->len = (uint32_t)len;
    fb->bytes = raw + FRAME_BUF_HEADROOM;
    fb->shared = NULL;
    fb->release_cb = NULL;
    fb->backing = NULL;
    fb->reserved = NULL;
    return fb;
}

frame_buf_t *frame_buf_new(size_t len)
{
    return frame_buf_adopt(xmalloc(FRAME_BUF_HEADROOM + len), len);
}

frame_buf_t *frame_buf_copy(const void *data, size_t len)
{
    frame_buf_t *fb = frame_buf_new(len);
    if (len > 0) {
        memcpy(fb->bytes, data, len);
    }
    return fb;
}

void frame_buf_unref(frame_buf_t *fb)
{
    if (--fb->refcnt == 0) {
        if (fb->shared != NULL) {
            fb->release_cb(fb);
        } else {
            free(fb);
        }
    }
}
