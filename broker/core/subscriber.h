/*
 * subscriber.h - how the pub/sub core delivers to whatever subscribed: a
 * small table of callbacks plus the subscriber's own pointer (libuv and
 * hiredis style), so that the core never includes a connection, session or
 * RESP header and never casts a trie client to one of them.
 *
 * A subscriber embeds a subscriber_t and registers &sub->tc in its worker's
 * trie; the fan-out (router.c) gets the subscriber_t back from the trie
 * client (tc is its first member) and calls:
 *   - deliver_cb: queue one delivery of the shared frame `fb` of message `m`
 *     (take a reference on `fb` if it is kept). SUBSCRIBER_DELIVERED when
 *     queued; SUBSCRIBER_SKIPPED when this subscriber does not take it now
 *     (held for a recovery, suspended after a gap, closing, or its own
 *     framing said no): nothing else happens; SUBSCRIBER_FULL when it is over
 *     its outbound bound: the core then reports a gap (when the topic's
 *     history rule says "drop") or closes it.
 *   - deliver_run_cb (optional, NULL: per frame): queue a run of consecutive
 *     frames of one topic at once (subscriber_run_t), all or none:
 *     SUBSCRIBER_DELIVERED, SUBSCRIBER_SKIPPED and SUBSCRIBER_FULL as for
 *     deliver_cb, for every frame of the run together; or
 *     SUBSCRIBER_PER_FRAME when this subscriber needs each frame on its own
 *     (a filter, compression, another framing): the core then calls
 *     deliver_cb for each, in order. Runs never hold events, conflated or
 *     drop_slow topics' messages, requests or inbox traffic (router.c).
 *   - gap_cb: tell the subscriber it missed `m` and suspend the topic for it;
 *     0, or -1 when it cannot (it is then closed).
 *   - close_cb: close the subscriber with WebSocket-style `code` and `why`;
 *     must not remove trie entries (the fan-out is walking the trie): the
 *     removal happens on the subscriber's own close path.
 * Every callback runs on the subscriber's worker, inside a trie walk.
 */
#ifndef WSB_BROKER_SUBSCRIBER_H
#define WSB_BROKER_SUBSCRIBER_H

#include "core/topic_trie.h"

#include <stdbool.h>
#include <stdint.h>

struct frame_buf_s;
struct xmsg_s;

typedef enum {
    SUBSCRIBER_DELIVERED = 0,
    SUBSCRIBER_SKIPPED = 1,
    SUBSCRIBER_FULL = 2,
    SUBSCRIBER_PER_FRAME = 3, /* deliver_run_cb only: "call deliver_cb per frame" */
} subscriber_verdict_t;

/* Most segments of one run: its first frame stays where it was published
 * and the others fill chunks of doubling size (xmsg.h), so a run of
 * SUBSCRIBER_RUN_MAX frames of up to XMSG_CHUNK_FRAME_MAX bytes fits. */
#define SUBSCRIBER_RUN_SEGS 12
#define SUBSCRIBER_RUN_MAX  128

/* A run: `nframes` consecutive messages of one topic (msgs, in order), whose
 * frames lie in `nsegs` contiguous byte ranges: segment i is the first `len[i]`
 * bytes from fb[i]->bytes (a slice that may go past fb[i]'s own frame, into
 * the chunk that backs it: outq.h), `bytes` in all. Owned by the worker's
 * router; borrowed by the callback (take a reference on fb[i] to keep it). */
typedef struct subscriber_run_s {
    struct xmsg_s *msgs[SUBSCRIBER_RUN_MAX];
    struct frame_buf_s *fb[SUBSCRIBER_RUN_SEGS];
    uint32_t len[SUBSCRIBER_RUN_SEGS];
    unsigned nframes;
    unsigned nsegs;
    size_t bytes;
} subscriber_run_t;

typedef struct subscriber_ops_s {
    subscriber_verdict_t (*deliver_cb)(void *user_data, struct frame_buf_s *fb, struct xmsg_s *m);
    subscriber_verdict_t (*deliver_run_cb)(void *user_data, const subscriber_run_t *run);
    int (*gap_cb)(void *user_data, const struct xmsg_s *m);
    void (*close_cb)(void *user_data, int code, const char *why);
} subscriber_ops_t;

typedef struct subscriber_s {
    trie_client_t tc; /* first: the trie reports this pointer */
    const subscriber_ops_t *ops;
    void *user_data;
    /* Who it is, for presence and join/leave (presence.h): the connection's
     * number on its worker, whose client id (the welcome's client_id)
     * core_client_id() formats when needed (0: never a member, e.g. the RESP
     * and SSE ingresses), and its user (the token's sub, NULL when
     * anonymous), owned by the subscriber. */
    uint64_t client_no;
    char *user;
    /* A request's inbox (core/request.h): the only kind of subscriber that
     * gets "_inbox." messages. */
    bool inbox;
    /* Seconds of the loop clock when it connected (the admin API's age_s);
     * in what was padding. */
    uint32_t connected_s;
} subscriber_t;

/* Sets up an embedded subscriber; `ops` is borrowed (static in practice). */
static inline void subscriber_init(subscriber_t *sub, const subscriber_ops_t *ops, void *user_data)
{
    sub->tc.match_gen = 0;
    sub->ops = ops;
    sub->user_data = user_data;
    sub->client_no = 0;
    sub->user = NULL;
    sub->inbox = false;
    sub->connected_s = 0;
}

/* The subscriber a trie match reports. */
static inline subscriber_t *subscriber_of(trie_client_t *client)
{
    return (subscriber_t *)(void *)client;
}

#endif
