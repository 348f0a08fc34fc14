/* xmsg.c - a published message shared by every worker (see xmsg.h). */
#include "core/xmsg.h"

#include "shared/util.h"
#include "wsb/message.h"
#include "wsb/ws_deflate.h"
#include "wsb/ws_frame.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* zlib level of the shared compressed frames: compressed once per message,
 * so the level costs once too; 6 is zlib's default balance. */
#define XMSG_DEFLATE_LEVEL 6

/* A worker's slot: its frame_buf on the plain frame and, once a subscriber
 * that negotiated permessage-deflate needed it, the compressed frame (one
 * reference held by the slot, dropped with the slot). */
typedef struct {
    frame_buf_t fb;
    frame_buf_t *deflated; /* NULL: not tried yet; NO_GAIN: compression did not pay */
    frame_buf_t *sse;      /* the SSE event (xmsg_sse_buf), once an SSE subscriber needed it */
} xmsg_slot_t;

/* The `deflated` of a slot whose frame compression did not make smaller. */
static frame_buf_t no_gain;
#define NO_GAIN (&no_gain)

_Static_assert(sizeof(xmsg_slot_t) <= XMSG_SLOT_STRIDE, "a worker slot fits its stride");

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* A worker's frame_buf lives inside the xmsg: releasing it is the worker's
 * unref of the message. */
static void release_slot(frame_buf_t *fb)
{
    xmsg_slot_t *slot = (xmsg_slot_t *)(void *)fb;
    if (slot->deflated != NULL && slot->deflated != NO_GAIN) {
        frame_buf_unref(slot->deflated);
    }
    slot->deflated = NULL;
    if (fb->backing != NULL) {
        frame_buf_unref(fb->backing); /* the chunk its bytes were copied to */
        fb->backing = NULL;
    }
    if (slot->sse != NULL) {
        frame_buf_unref(slot->sse);
        slot->sse = NULL;
    }
    xmsg_unref(fb->shared);
}

/* A compressed frame (xmsg_deflated_buf) is its own allocation holding a
 * reference on the message. */
static void release_deflated(frame_buf_t *fb)
{
    xmsg_unref(fb->shared);
    free(fb);
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
        xmsg_slot_t *slot = (xmsg_slot_t *)(void *)(raw + slots_off + (size_t)w * XMSG_SLOT_STRIDE);
        slot->deflated = NULL;
        slot->sse = NULL;
        frame_buf_t *fb = &slot->fb;
        fb->refcnt = 1;
        fb->len = m->frame_len;
        fb->bytes = m->frame;
        fb->shared = m;
        fb->release_cb = release_slot;
        fb->backing = NULL;
        fb->reserved = NULL;
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
    fb->backing = NULL;
    fb->reserved = NULL;
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

/* ---- permessage-deflate ---------------------------------------------------------------------- */

/* One compressor per worker thread, made on its first use and freed when the
 * thread exits (a compressor is ~256 KiB of zlib state: never per message,
 * never per connection). */
static pthread_key_t deflater_key;
static pthread_once_t deflater_once = PTHREAD_ONCE_INIT;

static void deflater_destroy(void *d)
{
    wsb_pmd_deflater_free(d);
}

static void deflater_key_make(void)
{
    if (pthread_key_create(&deflater_key, deflater_destroy) != 0) {
        abort();
    }
}

static wsb_pmd_deflater_t *thread_deflater(void)
{
    (void)pthread_once(&deflater_once, deflater_key_make);
    wsb_pmd_deflater_t *d = pthread_getspecific(deflater_key);
    if (d == NULL) {
        d = wsb_pmd_deflater_new(XMSG_DEFLATE_LEVEL);
        if (d == NULL || pthread_setspecific(deflater_key, d) != 0) {
            wsb_oom("deflate state");
        }
    }
    return d;
}

/* The worker thread's CPU time: what compressing costs, not the wall time
 * of a thread the kernel may have preempted meanwhile. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Header length of a server frame (unmasked) from its second byte. */
static size_t frame_header_len(const uint8_t *frame)
{
    unsigned len7 = frame[1] & 0x7Fu;
    return len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
}

/* Compresses the slot's frame; NULL when that does not make it smaller. */
static frame_buf_t *deflate_frame(const frame_buf_t *plain, xmsg_deflate_stats_t *stats)
{
    size_t hl = frame_header_len(plain->bytes);
    const uint8_t *payload = plain->bytes + hl;
    size_t plen = plain->len - hl;
    size_t bound = wsb_pmd_deflate_bound(plen);
    /* [frame_buf_t][room for the longest header][compressed payload] */
    size_t at = FRAME_BUF_HEADROOM + WSB_WS_MAX_HEADER_LEN;
    uint8_t *raw = xmalloc(at + bound);
    size_t clen = 0;
    uint64_t t0 = now_ns();
    int rc = wsb_pmd_deflate(thread_deflater(), payload, plen, raw + at, bound, &clen);
    stats->ns = now_ns() - t0;
    stats->in_bytes = plen;
    stats->out_bytes = rc == 0 ? clen : plen;
    if (rc == WSB_ENOMEM) {
        wsb_oom("deflate");
    }
    size_t chl = wsb_ws_header_len(clen, false);
    if (rc != 0 || chl + clen >= plain->len) {
        free(raw);
        return NULL;
    }
    /* The header goes right before the payload: the frame is contiguous. */
    uint8_t *frame = raw + at - chl;
    wsb_ws_write_header(frame, true, plain->bytes[0] & 0x0F, clen, NULL);
    frame[0] |= WSB_WS_RSV1;
    /* Give back the bound's slack: shared frames may sit in queues. */
    size_t used = at + clen;
    uint8_t *shrunk = realloc(raw, used);
    if (shrunk != NULL) {
        raw = shrunk;
        frame = raw + at - chl;
    }
    frame_buf_t *fb = (frame_buf_t *)(void *)raw;
    fb->refcnt = 1; /* the slot's */
    fb->len = (uint32_t)(chl + clen);
    fb->bytes = frame;
    fb->shared = plain->shared;
    fb->release_cb = release_deflated;
    fb->backing = NULL;
    fb->reserved = NULL;
    xmsg_ref(plain->shared);
    return fb;
}

frame_buf_t *xmsg_deflated_buf(frame_buf_t *fb, size_t min_size, unsigned window_bits,
                               xmsg_deflate_stats_t *stats)
{
    *stats = (xmsg_deflate_stats_t){0};
    if (fb->release_cb != release_slot) {
        return fb;
    }
    size_t plen = fb->len - frame_header_len(fb->bytes);
    if (plen < min_size || (window_bits < 15 && plen > ((size_t)1 << window_bits))) {
        return fb;
    }
    xmsg_slot_t *slot = (xmsg_slot_t *)(void *)fb;
    if (slot->deflated == NULL) {
        frame_buf_t *d = deflate_frame(fb, stats);
        slot->deflated = d != NULL ? d : NO_GAIN;
    }
    return slot->deflated != NO_GAIN ? slot->deflated : fb;
}

/* ---- Server-Sent Events ---------------------------------------------------------------------- */

/* "event: message\nid: <epoch>:<seq>\ndata: <frame JSON>\n\n" of the
 * message under `fb`, in an allocation of its own holding a reference on
 * the message. The JSON has no raw line breaks inside strings (JSON
 * escapes them); any between tokens become spaces, so it is one data line. */
static frame_buf_t *sse_event(const frame_buf_t *fb)
{
    xmsg_t *m = fb->shared;
    size_t hl = frame_header_len(m->frame);
    const uint8_t *json = m->frame + hl;
    size_t jlen = m->frame_len - hl;
    char head[64 + XMSG_EPOCH_MAX];
    int n = snprintf(head, sizeof(head), "event: message\nid: %s:%llu\ndata: ", m->epoch,
                     (unsigned long long)m->seq);
    size_t hlen = (size_t)n;
    size_t len = hlen + jlen + 2;
    uint8_t *raw = xmalloc(FRAME_BUF_HEADROOM + len);
    uint8_t *p = raw + FRAME_BUF_HEADROOM;
    memcpy(p, head, hlen);
    for (size_t i = 0; i < jlen; i++) {
        uint8_t ch = json[i];
        p[hlen + i] = ch == '\n' || ch == '\r' ? ' ' : ch;
    }
    p[len - 2] = '\n';
    p[len - 1] = '\n';
    frame_buf_t *out = (frame_buf_t *)(void *)raw;
    out->refcnt = 1;
    out->len = (uint32_t)len;
    out->bytes = p;
    out->shared = m;
    out->release_cb = release_replay;
    out->backing = NULL;
    out->reserved = NULL;
    xmsg_ref(m);
    return out;
}

frame_buf_t *xmsg_sse_buf(frame_buf_t *fb)
{
    if (fb->release_cb != release_slot) {
        return sse_event(fb); /* a history replay: built for this one send */
    }
    xmsg_slot_t *slot = (xmsg_slot_t *)(void *)fb;
    if (slot->sse == NULL) {
        slot->sse = sse_event(fb);
    }
    return frame_buf_ref(slot->sse);
}

/* ---- chunks ---------------------------------------------------------------------------------- */

/* A run's first chunk holds this much; each next one of the same run twice
 * the one before, up to XMSG_CHUNK_MAX: the slack a short run leaves is
 * small, a long run needs few chunks (and its subscribers few iovecs). */
#define XMSG_CHUNK_MIN 1024u

/* What a message must be for its frame to go into a chunk: shared as is by
 * every subscriber that takes it, never dropped from a queue by itself (a
 * conflated topic's frame is replaced, a drop_slow topic's is dropped on a
 * gap: outq drops whole frames only), and small (a large frame is one
 * iovec's worth of work anyway, and copying it is not free). */
static bool chunkable(const xmsg_t *m)
{
    return !m->event && !m->conflate && !m->drop_slow && m->frame_len <= XMSG_CHUNK_FRAME_MAX;
}

void xmsg_chunker_close(xmsg_chunker_t *ch)
{
    if (ch->open != NULL) {
        frame_buf_unref(ch->open);
        ch->open = NULL;
    }
    ch->used = 0;
    ch->topic_len = 0;
    ch->has_topic = false;
}

void xmsg_chunk_place(xmsg_chunker_t *ch, xmsg_t *m, unsigned w)
{
    if (!chunkable(m)) {
        xmsg_chunker_close(ch);
        return;
    }
    bool same = ch->has_topic && ch->topic_len == m->topic_len &&
                memcmp(ch->topic, m->topic, m->topic_len) == 0;
    if (!same) {
        /* The first frame of a run stays where it is: most topics get one
         * message per turn, and copying those would buy nothing. */
        xmsg_chunker_close(ch);
        memcpy(ch->topic, m->topic, m->topic_len);
        ch->topic_len = m->topic_len;
        ch->has_topic = true;
        return;
    }
    if (ch->open == NULL || ch->cap - ch->used < m->frame_len) {
        uint32_t cap = ch->open == NULL ? XMSG_CHUNK_MIN : ch->cap * 2;
        if (cap > XMSG_CHUNK_MAX) {
            cap = XMSG_CHUNK_MAX;
        }
        if (cap < m->frame_len) {
            cap = m->frame_len;
        }
        if (ch->open != NULL) {
            frame_buf_unref(ch->open);
        }
        ch->open = frame_buf_new(cap);
        ch->cap = cap;
        ch->used = 0;
    }
    frame_buf_t *fb = xmsg_worker_buf(m, w);
    uint8_t *at = ch->open->bytes + ch->used;
    memcpy(at, m->frame, m->frame_len);
    fb->bytes = at;
    fb->backing = frame_buf_ref(ch->open);
    ch->used += m->frame_len;
}
