/*
 * xmsg.h - one published message as it crosses workers: the complete
 * `message` frame (serialized once), its topic, and one frame_buf_t per
 * worker, all in a single allocation.
 *
 * The reference count is atomic and counts workers, not deliveries: the
 * publisher sets it to the number of inboxes the message was pushed to; each
 * worker drops its reference when its own frame_buf (see frame_buf.h) is
 * released by its last subscriber write. The bytes are immutable from
 * creation on, which is what makes sharing them across threads safe.
 */
#ifndef WSB_BROKER_XMSG_H
#define WSB_BROKER_XMSG_H

#include "shared/frame_buf.h"
#include "wsb/common.h"
#include "wsb/topic.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Per-worker frame_buf slots are this far apart, so two workers' refcounts
 * do not share a cache line. */
#define XMSG_SLOT_STRIDE 64

/* Longest epoch string (seqtab.h makes 12 hex digits). */
#define XMSG_EPOCH_MAX 16

typedef struct xmsg_s {
    _Atomic uint32_t refs;
    uint32_t nslots;
    uint64_t seq;
    uint8_t *frame; /* the WebSocket frame, inside this allocation */
    uint32_t frame_len;
    uint16_t topic_len;
    char *topic;       /* NUL-terminated, inside this allocation */
    uint32_t data_off; /* the data JSON inside the frame (it is the last field) */
    uint32_t data_len;
    bool drop_slow; /* history rule says: gap, not close 1013 */
    bool event;     /* a join/leave frame (xmsg_new_event): no seq, no data */
    bool conflate;  /* topic rule conflate:true: a newer frame replaces an unsent older one */
    /* A request's no-responders count (core/request.h), freed with the
     * message; NULL for every other message. */
    struct request_probe_s *probe;
    char epoch[XMSG_EPOCH_MAX + 1]; /* "" when the topic keeps no history */
} xmsg_t;

/*
 * Builds the message for `nworkers` workers: serializes the frame
 * {"type":"message","topic":T,"seq":S[,"epoch":E],"data":D} once.
 * `data_json` is the serialized data; `epoch` is empty ({NULL,0}) unless the
 * topic keeps history (at most XMSG_EPOCH_MAX bytes). Refcount starts at 0:
 * the publisher sets it with xmsg_set_refs() before handing it out. Aborts
 * on OOM.
 */
xmsg_t *xmsg_new(wsb_str_t topic, uint64_t seq, wsb_str_t epoch, wsb_str_t data_json,
                 unsigned nworkers);

/* The same with the publisher's identity: `from_json` (serialized, copied
 * verbatim; empty: none) goes into the frame as "from", before "data"
 * (wsb_msg_build_message_from). */
xmsg_t *xmsg_new_from(wsb_str_t topic, uint64_t seq, wsb_str_t epoch, wsb_str_t from_json,
                      wsb_str_t data_json, unsigned nworkers);

/* The same for a request: "reply_to" (request.h's inbox) before "data"
 * (wsb_msg_build_request_message). */
xmsg_t *xmsg_new_request(wsb_str_t topic, uint64_t seq, wsb_str_t epoch, wsb_str_t from_json,
                         wsb_str_t reply_to, wsb_str_t data_json, unsigned nworkers);

/*
 * Builds an event for `nworkers` workers: the frame is `event` (a JSON
 * object such as {"type":"join",...}, serialized once) as a text frame, routed
 * like a message of `topic` to its subscribers, with `event` set, seq 0, no
 * epoch and no data (subscribers that only take messages, RESP, skip it).
 * Refcount starts at 0 as for xmsg_new. Aborts on OOM.
 */
xmsg_t *xmsg_new_event(wsb_str_t topic, const json_t *event, unsigned nworkers);

/* Takes one more reference (a history ring or a replay). Any thread, but only
 * by a holder of a reference. */
void xmsg_ref(xmsg_t *m);

/* A frame_buf (refcnt 1, owned by the caller, for one thread) on the shared
 * frame of `m`, for a history replay: takes its own reference on `m` and
 * mallocs only the small header, never a copy of the frame. */
frame_buf_t *xmsg_replay_buf(xmsg_t *m);

/* Sets the number of references (the workers it is handed to). With 0 the
 * message is freed at once. */
void xmsg_set_refs(xmsg_t *m, uint32_t refs);

/* Drops one worker's reference; the last frees the message. Any thread. */
void xmsg_unref(xmsg_t *m);

/* The frame_buf of worker `w` (refcnt 1, owned by that worker). */
frame_buf_t *xmsg_worker_buf(xmsg_t *m, unsigned w);

/* What one call of xmsg_deflated_buf cost (all 0 when it compressed
 * nothing): the payload bytes in, the compressed payload bytes out, and the
 * time spent in zlib. */
typedef struct {
    uint64_t in_bytes;
    uint64_t out_bytes;
    uint64_t ns;
} xmsg_deflate_stats_t;

/*
 * permessage-deflate (RFC 7692) for a subscriber that negotiated it: the
 * frame to send instead of `fb`, a worker's frame of a message
 * (xmsg_worker_buf). The compressed frame (RSV1 set, compressed without
 * context, so any such subscriber can take it) is built the first time a
 * worker needs it and kept with the worker's slot: one compression per
 * message and worker, shared by reference. It has `shared` set to the
 * message like the plain frame (queue filters match both) and holds its own
 * reference on it. Borrowed: valid while `fb` is; conn_send takes its ref.
 * Returns `fb` itself (send it plain, RSV1 clear, which the extension
 * allows) when the payload is below `min_size`, when it is longer than
 * 2^window_bits (a client that limited our window; a shorter message can
 * only refer back within itself), when compression does not make it smaller,
 * or when `fb` is not a worker frame (a history replay). Worker thread of
 * `fb`. *stats says what this call compressed.
 */
frame_buf_t *xmsg_deflated_buf(frame_buf_t *fb, size_t min_size, unsigned window_bits,
                               xmsg_deflate_stats_t *stats);

/*
 * Server-Sent Events (GET /sse): the message `fb` carries (a worker frame or
 * a history replay's) as one SSE event, "event: message", "id:
 * <epoch>:<seq>" (epoch "" when the topic keeps no history) and "data:" the
 * frame's JSON. Built the first time a worker needs it and kept with the
 * worker's slot beside the deflated frame: once per message and worker, not
 * per subscriber (a replay's is built per call). Returns a reference the
 * caller owns (conn_send takes its own). Worker thread of `fb`.
 */
frame_buf_t *xmsg_sse_buf(frame_buf_t *fb);

/*
 * Chunks (DESIGN.md "Memory ownership"): the frames of a run of messages of
 * one topic that a worker delivers within one loop turn are copied, one
 * after the other, into one worker-local chunk (a plain frame_buf), and
 * each message's worker frame_buf points its bytes there and holds a
 * reference on the chunk (frame_buf_t.backing). A subscriber that takes
 * consecutive frames of the run then queues them as one slice, so its
 * flush writes one iovec per chunk instead of one per frame (outq.h); one
 * that skips a frame (a filter, a suspended subscription) simply gets
 * several slices. The frames stay where they are for everything else: the
 * compressed and SSE forms are per message as before, and a history replay
 * sends the message's own frame.
 *
 * Not chunked: events, conflated topics and topics whose history rule drops
 * slow consumers (their queued frames are replaced or dropped one by one),
 * and frames longer than XMSG_CHUNK_FRAME_MAX.
 *
 * Memory: a chunk lives until the last slice on it is written; it only
 * holds frames of one topic, which every subscriber of the topic takes
 * together, and grows by doubling from 1 KiB to XMSG_CHUNK_MAX per run, so
 * the bytes it keeps alive stay within about twice what the queues count
 * (outbound accounting counts each subscriber's bytes exactly, as before).
 */
#define XMSG_CHUNK_FRAME_MAX 1024u
#define XMSG_CHUNK_MAX       (64u * 1024u)

/* A worker's open chunk and the topic of the run it collects. Zeroed is
 * closed. Worker thread only. */
typedef struct {
    frame_buf_t *open; /* the chunk frames go into (its own reference); NULL: none */
    uint32_t cap;      /* bytes it has room for */
    uint32_t used;
    uint16_t topic_len;
    bool has_topic; /* topic holds the last placed message's topic */
    char topic[WSB_TOPIC_MAX_LEN];
} xmsg_chunker_t;

/* Before worker `w` delivers `m`: when `m` continues a run of its topic,
 * copies its frame into the open chunk (a new one when there is none or it
 * is full) and points the worker's frame_buf of `m` there. Call it before
 * any subscriber took the frame_buf. */
void xmsg_chunk_place(xmsg_chunker_t *ch, xmsg_t *m, unsigned w);

/* Ends the run: drops the chunker's reference on its open chunk (the
 * slices on it keep it alive). The worker calls it at the end of every loop
 * turn, and before it frees the chunker. */
void xmsg_chunker_close(xmsg_chunker_t *ch);

#endif
