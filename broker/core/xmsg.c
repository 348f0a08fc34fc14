/* xmsg.c - a published message shared by every worker (see xmsg.h). */
#include "core/xmsg.h"

#include "shared/util.h"
#include "wsb/message.h"

#include <stdlib.h>
#include <string.h>

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* A worker's frame_buf lives inside the xmsg: releasing it is the worker's
 * unref of the message. */
static void release_slot(frame_buf_t *fb)
{
    xmsg_unref(fb->shared);
}

/* A replay's header (xmsg_replay_buf) is its own allocation. */
static void release_replay(frame_buf_t *fb)
{
    xmsg_unref(fb->shared);
    free(fb);
}

/* Layout: [xmsg_t][slots: nworkers * stride][topic + NUL][frame]. The
 * frame builder leaves `headroom` bytes in front of the frame, so the whole
 * message is one allocation. */
static size_t headroom_for(wsb_str_t topic, unsigned nworkers, size_t *topic_off)
{
    size_t slots_off = round_up(sizeof(xmsg_t), XMSG_SLOT_STRIDE);
    *topic_off = slots_off + (size_t)nworkers * XMSG_SLOT_STRIDE;
    return round_up(*topic_off + topic.len + 1, 16);
}

/* Fills the header and the worker slots of a message whose frame the
 * builder put at raw + headroom. */
static xmsg_t *finish(uint8_t *raw, size_t headroom, size_t topic_off, size_t frame_len,
                      wsb_str_t topic, uint64_t seq, wsb_str_t epoch, unsigned nworkers)
{
    if (raw == NULL) {
        wsb_oom("message frame");
    }
    if (frame_len > UINT32_MAX) {
        abort(); /* not memory: max_message_size bounds a frame far below 4 GiB */
    }
    size_t slots_off = round_up(sizeof(xmsg_t), XMSG_SLOT_STRIDE);
    xmsg_t *m = (xmsg_t *)(void *)raw;
    atomic_init(&m->refs, 0);
    m->nslots = nworkers;
    m->seq = seq;
    m->frame = raw + headroom;
    m->frame_len = (uint32_t)frame_len;
    m->topic_len = (uint16_t)topic.len;
    m->topic = (char *)raw + topic_off;
    m->data_len = 0;
    m->data_off = 0;
    m->event = false;
    m->probe = NULL;
    memcpy(m->topic, topic.p, topic.len);
    m->topic[topic.len] = '\0';
    m->drop_slow = false;
    m->conflate = false;
    size_t elen = epoch.len < XMSG_EPOCH_MAX ? epoch.len : XMSG_EPOCH_MAX;
    if (elen > 0) {
        memcpy(m->epoch, epoch.p, elen);
    }
    m->epoch[elen] = '\0';
    for (unsigned w = 0; w < nworkers; w++) {
        frame_buf_t *fb = (frame_buf_t *)(void *)(raw + slots_off + (size_t)w * XMSG_SLOT_STRIDE);
        fb->refcnt = 1;
        fb->len = m->frame_len;
        fb->bytes = m->frame;
        fb->shared = m;
        fb->release_cb = release_slot;
    }
    return m;
}

xmsg_t *xmsg_new(wsb_str_t topic, uint64_t seq, wsb_str_t epoch, wsb_str_t data_json,
                 unsigned nworkers)
{
    return xmsg_new_from(topic, seq, epoch, WSB_STR_NULL, data_json, nworkers);
}

xmsg_t *xmsg_new_from(wsb_str_t topic, uint64_t seq, wsb_str_t epoch, wsb_str_t from_json,
                      wsb_str_t data_json, unsigned nworkers)
{
    return xmsg_new_request(topic, seq, epoch, from_json, WSB_STR_NULL, data_json, nworkers);
}

xmsg_t *xmsg_new_request(wsb_str_t topic, uint64_t seq, wsb_str_t epoch, wsb_str_t from_json,
                         wsb_str_t reply_to, wsb_str_t data_json, unsigned nworkers)
{
    size_t topic_off = 0;
    size_t headroom = headroom_for(topic, nworkers, &topic_off);
    size_t frame_len = 0;
    uint8_t *raw = wsb_msg_build_request_message(topic, seq, epoch, from_json, reply_to, data_json,
                                                 headroom, &frame_len);
    xmsg_t *m = finish(raw, headroom, topic_off, frame_len, topic, seq, epoch, nworkers);
    /* The builder writes data last, verbatim (or null): RESP subscribers
     * and the Redis bridge take it from here instead of serializing again. */
    m->data_len = data_json.len > 0 ? (uint32_t)data_json.len : 4;
    m->data_off = m->frame_len - 1 - m->data_len;
    return m;
}

xmsg_t *xmsg_new_event(wsb_str_t topic, const json_t *event, unsigned nworkers)
{
    size_t topic_off = 0;
    size_t headroom = headroom_for(topic, nworkers, &topic_off);
    size_t frame_len = 0;
    uint8_t *raw = wsb_msg_build_json(event, headroom, &frame_len);
    xmsg_t *m = finish(raw, headroom, topic_off, frame_len, topic, 0, WSB_STR_NULL, nworkers);
    m->event = true;
    return m;
}

void xmsg_ref(xmsg_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

frame_buf_t *xmsg_replay_buf(xmsg_t *m)
{
    frame_buf_t *fb = xmalloc(sizeof(*fb));
    xmsg_ref(m);
    fb->refcnt = 1;
    fb->len = m->frame_len;
    fb->bytes = m->frame;
    fb->shared = m;
    fb->release_cb = release_replay;
    return fb;
}

/* The message and what it owns. */
static void destroy(xmsg_t *m)
{
    free(m->probe);
    free(m);
}

void xmsg_set_refs(xmsg_t *m, uint32_t refs)
{
    if (refs == 0) {
        destroy(m);
        return;
    }
    atomic_store_explicit(&m->refs, refs, memory_order_release);
}

void xmsg_unref(xmsg_t *m)
{
    /* acq_rel: every worker's reads of the frame happen before the free. */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        destroy(m);
    }
}

frame_buf_t *xmsg_worker_buf(xmsg_t *m, unsigned w)
{
    size_t slots_off = round_up(sizeof(xmsg_t), XMSG_SLOT_STRIDE);
    return (frame_buf_t *)(void *)((uint8_t *)m + slots_off + (size_t)w * XMSG_SLOT_STRIDE);
}
