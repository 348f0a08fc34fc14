/*
 * pubsub.h - the one publish, subscribe and unsubscribe API that every
 * ingress (the WebSocket session, the HTTP API, the RESP session) calls. An
 * ingress parses its wire format, calls one of these, and formats the
 * result in its own words; the rules live here once:
 *
 *   publish:     permission (credentials or API key) -> clustered history
 *                (the seq comes from Redis: the op is submitted, the caller
 *                answers from its done_cb) -> seq, history append and
 *                inbox pushes under the topic's shard lock (router.h) ->
 *                fan-out -> backpressure verdict for the caller to apply.
 *   subscribe:   wildcard refused by the bridge -> permission -> the
 *                subscriber's limit -> trie insert (and the bridge's
 *                interest on a pattern's first subscriber) -> for an exact
 *                topic that keeps history, the switch-over below.
 *                On an exact topic whose rule has presence or join_leave
 *                (topic_rules.h), the subscriber becomes a member first
 *                (presence.h) and, with join_leave, the topic's subscribers
 *                get a join (one shared frame through the fan-out), not the
 *                joiner itself.
 *   unsubscribe: trie removal (and the bridge's interest on the last), then
 *                a member leaves (and the leave event goes out).
 *
 * The history switch-over: every message of a topic is assigned its seq,
 * appended to history and pushed into every worker's inbox under the
 * topic's shard lock. Holding that lock, the subscribing worker first
 * delivers what its inbox already holds (all of the topic's messages up to
 * the current seq C are in there or delivered already: none reaches the new
 * subscription), then registers the subscription and reads the history up
 * to C. Messages after C can only be pushed once the lock is released, and
 * then reach the subscription live: no gap, no duplicate.
 *
 * Streams (stream.h): a subscription (topic or pattern) inside a stream
 * rule's pattern makes the same switch-over under the STREAM's lock (every
 * publish of the stream's topics takes it): drain, register, then read the
 * log after `since` (or its last `history` N) filtered by the subscription.
 * The position in the ack is the stream's. `since` on a pattern outside
 * every stream is PUBSUB_SINCE_OUTSIDE_STREAM.
 *
 * Last value on wildcards (`history` N on a pattern, local history): the
 * same switch-over over many topics and shards at once. The subscribing
 * worker locks EVERY shard (seqtab_lock_all, in index order; publishers
 * hold one shard lock at a time, so no deadlock). While they are held no
 * topic gets a seq, so for every topic t with current seq C_t all of its
 * messages up to C_t are in this worker's inbox or delivered already: the
 * worker delivers its inbox (none reaches the new subscription), counts the
 * matching topics with history (over max_history_topics_per_subscribe:
 * nothing changes, PUBSUB_HISTORY_LIMIT), registers the subscription, reads
 * the last N of every matching topic (all <= C_t), then unlocks. Every
 * message after C_t, and every message of a topic created later, is pushed
 * after the unlock and reaches the subscription live: per topic no gap, no
 * duplicate, seq order. The cost: publishes on every worker wait while the
 * walk runs (one pass over the topics with history, bounded by
 * history_max_topics, plus the reads). With clustered history (redis.url)
 * the history is in Redis, not here: the subscription is added and
 * out->chist_rule set, and the caller reads every matching topic in Redis
 * (chist.h, CHIST_READ_PATTERN). PUBSUB_NO_PATTERN_HISTORY is no longer
 * returned.
 *
 * Input validation (topic syntax, reserved topics, sizes) is the ingress's:
 * each reports it in its own protocol and order. Everything here runs on the
 * calling worker's thread.
 */
#ifndef WSB_BROKER_CORE_PUBSUB_H
#define WSB_BROKER_CORE_PUBSUB_H

#include "core/core.h"
#include "core/subscriber.h"
#include "core/topic_rules.h"
#include "core/xmsg.h"
#include "wsb/common.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct perms_s perms_t;
typedef struct apikey_s apikey_t;

/* Which ingress a request came through (per-ingress metrics). PUBSUB_SYS:
 * the broker's own `$sys` messages (sys_events.h), not counted. */
typedef enum { PUBSUB_WS = 0, PUBSUB_HTTP = 1, PUBSUB_RESP = 2, PUBSUB_SYS = 3 } pubsub_ingress_t;

typedef enum {
    PUBSUB_OK = 0,                    /* published / subscribed */
    PUBSUB_PENDING = 1,               /* clustered history: the op went to Redis */
    PUBSUB_FORBIDDEN = 2,             /* the credentials or API key do not allow it */
    PUBSUB_NO_PATTERNS = 3,           /* the bridge refuses wildcard subscriptions */
    PUBSUB_LIMIT = 4,                 /* the subscriber holds max_subscriptions already */
    PUBSUB_UNAVAILABLE = 5,           /* clustered history and Redis is unavailable */
    PUBSUB_PRESENCE_LIMIT = 6,        /* presence.max_members or presence.max_topics reached */
    PUBSUB_NO_PRESENCE = 7,           /* no topics rule with presence matches the topic */
    PUBSUB_HISTORY_LIMIT = 8,         /* history on a pattern matching more than
                                       * max_history_topics_per_subscribe topics */
    PUBSUB_NO_PATTERN_HISTORY = 9,    /* history on a pattern with clustered history */
    PUBSUB_SINCE_OUTSIDE_STREAM = 10, /* since on a pattern no stream rule covers */
} pubsub_status_t;

/* What PUBSUB_NO_PATTERNS means, for the ingresses' replies. */
#define PUBSUB_NO_PATTERNS_WHY                                                                     \
    "wildcard subscriptions are off: nodes federate with sharded pub/sub only "                    \
    "(redis.sharded_patterns is false, or redis.cluster is set)"

typedef struct pubsub_publish_s {
    wsb_str_t topic;    /* a valid, non-reserved exact topic */
    const json_t *data; /* any JSON value; borrowed (used when data_json is empty) */
    /* Or the value already serialized: the bytes of one valid JSON value
     * (protocol/json_scan.h accepted them), forwarded into the frames as
     * they are, with no jansson round trip. Borrowed. */
    wsb_str_t data_json;
    pubsub_ingress_t ingress; /* counted in its messages_published_* */
    const perms_t *perms;     /* checked when non-NULL (WebSocket credentials) */
    const apikey_t *key;      /* checked when non-NULL (HTTP, RESP API keys) */
    /* The publisher's identity, stamped as "from":{"client","user"} when the
     * topic's rule says "publisher" (topic_rules.h): the WebSocket's client
     * (its subscriber_t.client_no: the id is formatted by core_client_id on
     * the publishing worker) and token sub, or (HTTP, RESP) 0 and the API
     * key's name. 0 / {NULL,0} are written as null. Borrowed. */
    uint64_t from_client_no;
    wsb_str_t from_user;
    /* Clustered history only: who gets the op back, on this worker, when
     * Redis assigned the seq (core/chist.h). `owner` is not NULL. With
     * no done_cb (the broker's $sys messages) such a topic is
     * PUBSUB_UNAVAILABLE. */
    void *owner;
    void (*done_cb)(chist_op_t *op);
    bool has_id;
    int64_t id;
    /* A request (core/request.h sets these): the frame's "reply_to" and
     * the no-responders probe the message takes over (NULL: none). Not
     * sent to federation; refused (PUBSUB_UNAVAILABLE) on a topic with
     * clustered history. */
    wsb_str_t reply_to;
    struct request_probe_s *probe;
    /* The caller calls pubsub_deliver_local() before it queues anything
     * else, closes anything, or returns to the loop (a WebSocket read's
     * burst of publishes): this worker's subscribers then get the burst as
     * runs (router.c), not one fan-out per message. false: they get the
     * message before pubsub_publish returns. */
    bool defer_local;
} pubsub_publish_t;

typedef struct pubsub_published_s {
    uint64_t seq;   /* PUBSUB_OK: the message's seq */
    bool pause;     /* PUBSUB_OK: a worker inbox is filling: stop reading the
                     * publisher until worker.c's pressure timer resumes it */
    chist_op_t *op; /* PUBSUB_PENDING: the op in flight (for cancelling) */
} pubsub_published_t;

/*
 * Publishes req->data to req->topic. Returns PUBSUB_OK (out->seq, out->pause
 * set), PUBSUB_PENDING (out->op submitted; its done_cb answers), or
 * PUBSUB_FORBIDDEN / PUBSUB_UNAVAILABLE with nothing published. Our own
 * worker's subscribers get the message before this returns (before the
 * publisher's ack is queued), or with req->defer_local at the caller's
 * pubsub_deliver_local() (at the latest once SUBSCRIBER_RUN_MAX messages
 * wait: this returns after delivering them); the other workers in their
 * next loop turn.
 */
pubsub_status_t pubsub_publish(core_worker_t *w, const pubsub_publish_t *req,
                               pubsub_published_t *out);

typedef struct pubsub_subscribe_s {
    subscriber_t *sub;
    wsb_str_t pattern;    /* a valid pattern (or exact topic) */
    const perms_t *perms; /* checked when non-NULL */
    uint32_t nsubs;       /* subscriptions `sub` holds now (limit check) */
    bool already;         /* `sub` holds this pattern: checks only, no insert */
    /* Position and recovery (the WebSocket session): with `position` false
     * no history is read and no clustered read is asked for. */
    bool position;
    bool has_since;
    wsb_str_t since_epoch;
    uint64_t since_seq;
    uint64_t history; /* the last N messages, 0: none */
} pubsub_subscribe_t;

typedef struct pubsub_subscribed_s {
    trie_sub_t *handle; /* the new subscription; NULL when `already` */
    int chist_rule;     /* >= 0: clustered history, the caller reads Redis */
    bool has_seq;       /* the topic keeps (local) history: seq and epoch set */
    uint64_t seq;
    char epoch[XMSG_EPOCH_MAX + 1];
    int recovered; /* -1 not asked, 0 or 1 */
    /* Inside a stream (stream.h): its rule's pattern, NUL-terminated (the
     * stream's, valid while the broker runs); has_seq, seq and epoch are
     * the stream's. NULL otherwise. */
    const char *stream;
    size_t stream_len;
    /* Inside a stream, a `since` whose next messages are lost (stream.h,
     * stream_recover): recovered is 0, the caller announces the loss with
     * a `gap` {epoch, gap_seq, gap_to} before the replay, which then holds
     * what is left after gap_to. */
    bool gap;
    uint64_t gap_seq;
    uint64_t gap_to;
    /* Clustered streams (chist_stream.h): the stream's rule when the stream
     * lives in Redis; then the caller reads the position and replay there
     * (has_seq is false). NULL otherwise. */
    const topic_rule_t *cstream;
    xmsg_t **msgs; /* replay, oldest first, one reference each: the caller
                    * sends them, xmsg_unref()s each and free()s the array */
    size_t nmsgs;
} pubsub_subscribed_t;

/*
 * Subscribes req->sub. Returns PUBSUB_OK with *out filled, or
 * PUBSUB_NO_PATTERNS, PUBSUB_FORBIDDEN, PUBSUB_LIMIT, PUBSUB_PRESENCE_LIMIT,
 * PUBSUB_HISTORY_LIMIT, PUBSUB_NO_PATTERN_HISTORY with nothing changed. On a
 * pattern with history, out->msgs holds the replay of every matching topic
 * (each topic's in seq order) and has_seq is false: each frame carries its
 * own seq and epoch.
 * Updates the worker's gauges.
 */
pubsub_status_t pubsub_subscribe(core_worker_t *w, const pubsub_subscribe_t *req,
                                 pubsub_subscribed_t *out);

/* What this worker's publishes with defer_local left for its own
 * subscribers (and anything else its inbox holds) is queued to them now. */
void pubsub_deliver_local(core_worker_t *w);

/* Removes one subscription from the worker's trie and, when it was the
 * pattern's last subscriber there, tells the Redis bridge. `sub` is freed;
 * the caller updates the gauges once it removed what it removes. Never
 * during a fan-out walk (the close path or a request). */
void pubsub_unsubscribe(core_worker_t *w, trie_sub_t *sub);

/* The name (rule pattern, NUL-terminated, valid while the broker runs) of
 * the stream the exact `topic` is in, or NULL; *len set when not NULL. */
const char *pubsub_stream_of(core_worker_t *w, wsb_str_t topic, size_t *len);

/* The name of the stream a subscription to `pattern` is inside (as
 * pubsub_subscribe decides it), or NULL. Names compare by pointer. */
const char *pubsub_stream_within(core_worker_t *w, wsb_str_t pattern);

/*
 * May the presence of the exact `topic` be asked for? PUBSUB_OK when its
 * rule has presence and the asker may subscribe to it (`perms`, when not
 * NULL) or its API key covers it (`key`, when not NULL); else
 * PUBSUB_NO_PRESENCE (checked first: it says nothing about anyone) or
 * PUBSUB_FORBIDDEN. The answer then comes from presence_json() on
 * w->core->presence.
 */
pubsub_status_t pubsub_presence_check(core_worker_t *w, wsb_str_t topic, const perms_t *perms,
                                      const apikey_t *key);

#endif
