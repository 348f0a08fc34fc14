/*
 * core.h - the pub/sub core's context: what core/ needs of the process and
 * of one worker, so that it includes nothing of app/, net/, ingress/ or
 * cluster/.
 *
 *   core_t         one per process (app/ fills it, embedded in broker_t):
 *                  the workers' core parts, the sequence table, the history
 *                  and topic rules, the presence table, the limits the
 *                  core enforces, the wake hook and the federation hook
 *                  table.
 *   core_worker_t  one per worker (embedded in worker_t): its trie, its
 *                  inbox, the queue of clustered history ops coming back,
 *                  its metrics and its loop clock. Everything in it belongs
 *                  to the worker's thread except the inbox and the
 *                  chist_done queue (any thread pushes, the owner pops)
 *                  and the interest summary (any thread reads it).
 *
 * Federation (cluster/) is reached through core_fed_ops_t, which app/ fills
 * when redis.url is set, so that core/ never includes cluster/. Federation
 * hands messages from other nodes back through ONE function,
 * core_inject_remote() (router.h).
 */
#ifndef WSB_BROKER_CORE_CORE_H
#define WSB_BROKER_CORE_CORE_H

#include "core/history.h"
#include "core/interest.h"
#include "core/seqtab.h"
#include "core/subscriber.h"
#include "core/topic_rules.h"
#include "core/topic_trie.h"
#include "core/xmsg.h"
#include "core/xqueue.h"
#include "shared/metrics.h"
#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct core_s core_t;
typedef struct stream_s stream_t;
typedef struct core_worker_s core_worker_t;
typedef struct chist_op_s chist_op_t;
typedef struct presence_s presence_t;
typedef struct inbox_count_s inbox_count_t;

/* Published messages a worker delivers per loop turn before it yields to
 * I/O (the rest wait for the next turn, in order). */
#define CORE_INBOX_BATCH 4096

/* The most workers a process has (config "workers" allows 256). */
#define CORE_MAX_WORKERS 256

/*
 * What the core asks of federation (cluster/bridge_redis.h implements it).
 * `fed` is core_t.fed. Every callback runs on a worker thread and never
 * blocks.
 *   publish_cb:  a local publish for the other nodes, with the publisher's
 *                identity (`from_json`, serialized; empty: none); called
 *                with the topic's seq shard locked (a topic's messages
 *                leave in seq order).
 *   interest_cb: a worker's trie got the first subscriber of `pattern`
 *                (delta +1) or lost its last (-1).
 *   chist_submit_cb: hands a clustered history op to Redis: 0, or -1 when
 *                Redis is not usable now (the op was not taken).
 *   presence_cb: a member of a presence topic on this node joined or left
 *                (`type` "join" / "leave"), for the other nodes
 *                (cluster/presence_bus.h). NULL: presence is node-local.
 */
typedef struct core_fed_ops_s {
    void (*publish_cb)(void *fed, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                       wsb_str_t data_json);
    void (*interest_cb)(void *fed, const char *pattern, size_t len, int delta);
    int (*chist_submit_cb)(void *fed, chist_op_t *op);
    void (*presence_cb)(void *fed, const char *type, wsb_str_t topic, const char *client,
                        const char *user);
    /* request_cb: a local request (core/request.h) for the other nodes, as
     *             publish_cb plus its inbox `reply_to`; `count` (inbox.h)
     *             gets, exactly once, whether another node may have a
     *             subscriber of the topic. */
    void (*request_cb)(void *fed, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                       wsb_str_t reply_to, wsb_str_t data_json, inbox_count_t *count);
} core_fed_ops_t;

struct core_s {
    unsigned nworkers;
    core_worker_t **workers; /* [nworkers], borrowed */
    seqtab_t *seqtab;
    const history_rules_t *history_rules;      /* borrowed; seqtab borrows it too */
    uint32_t max_subscriptions;                /* per subscriber */
    uint32_t max_history_topics_per_subscribe; /* history on a pattern (pubsub.h) */
    const topic_rules_t *topic_rules;          /* borrowed; presence and join_leave per topic */
    /* [topic_rules->n]: the stream of each rule with `stream` (stream.h),
     * NULL for the others; NULL when no rule has one. Borrowed. */
    stream_t *const *streams;
    presence_t *presence; /* members of presence topics; NULL: no rule has them */
    /* Wakes worker `w`'s loop to drain its inbox (any thread). */
    void (*wake_cb)(core_worker_t *w);
    /* Federation: NULL ops when redis.url is "" (the node is alone). */
    const core_fed_ops_t *fed_ops;
    void *fed;
    bool refuse_patterns; /* federation cannot carry wildcard subscriptions */
    char inbox_tag[17];   /* this node's tag in its inbox names (inbox.h); "" until set */
    const char *node_id;  /* this node (borrowed), for client ids (core_client_id) */
};

/* The inboxes' cache-line alignment (xqueue.h) costs some padding, once per
 * worker. */
struct core_worker_s { // NOLINT(clang-analyzer-optin.performance.Padding)
    core_t *core;
    unsigned index; /* worker number, 0 .. nworkers-1 */
    trie_t *trie;
    uv_loop_t *loop;    /* its clock: uv_now() */
    metrics_t *metrics; /* the worker's own */
    bool in_fanout;     /* true while the trie is walked: nothing may leave it */
    /* The owner's pointer back (the worker), for app/'s wake hook. */
    void *owner;
    xqueue_t inbox;      /* xmsg_t* published by any worker, for our subscribers */
    xqueue_t chist_done; /* chist_op_t* back from Redis (clustered history only) */
    /* What its subscribers want, read by every publishing worker
     * (interest.h): messages nobody here can want stay off the inbox. */
    interest_t interest;
    /* Workers this worker's publishes pushed to since its last
     * router_flush_wakes (owner thread only): one wake-up per worker and
     * loop turn, not per message (router.h). */
    uint64_t wake_pending[CORE_MAX_WORKERS / 64];
    uint32_t pushes_unwoken; /* publishes since the last router_flush_wakes */
    /* The chunk this turn's frames of one topic go into (xmsg.h); the
     * worker closes it at the end of each loop turn. */
    xmsg_chunker_t chunker;
    /* Consecutive messages of one topic that router.c fans out with one trie
     * walk; it closes the run before anything else is delivered and at the
     * end of each drain. */
    subscriber_run_t run;
};

/* Milliseconds of the worker's loop clock. */
static inline uint64_t core_now(const core_worker_t *w)
{
    return uv_now(w->loop);
}

/* True when the node federates (redis.url set). */
static inline bool core_federated(const core_t *c)
{
    return c->fed_ops != NULL;
}

/* True when some worker's inbox is over its high mark (256 messages, or
 * half its capacity if that is less): the publisher should pause. */
bool core_inbox_pressure(const core_worker_t *w);

/* True when every worker's inbox is back under its low mark (64 messages,
 * or half its capacity if that is less): paused publishers may resume. */
bool core_inbox_relieved(const core_worker_t *w);

/* Mirrors the trie's gauges (subscriptions, patterns) into the metrics. */
void core_update_gauges(core_worker_t *w);

/* "NODE-WORKER-COUNTER": 16 + 1 + 10 + 1 + 20 characters at most. */
#define CORE_CLIENT_ID_MAX 48

/* The client id (the welcome's client_id) of connection number `counter`
 * (subscriber_t.client_no) of worker `w`: node, worker, counter, unique in
 * the process without coordination (DESIGN.md "Application layer").
 * Connections keep only the counter and every user of the id formats it
 * here. Writes `out` and returns it. */
const char *core_client_id(const core_worker_t *w, uint64_t counter,
                           char out[CORE_CLIENT_ID_MAX + 1]);

#endif
