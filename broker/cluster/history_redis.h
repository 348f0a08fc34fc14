/*
 * history_redis.h - clustered history: with redis.url set, the seq, epoch and
 * history of every topic that matches a history rule live in Redis, so every
 * node agrees on seq and any node can serve a recovery.
 *
 * Keys, per topic T (P = redis.prefix):
 *   P hist: T    a hash {e: epoch, s: last seq}
 *   P stream: T  a stream, entry id "<seq>-0", fields t (Redis time, ms) and
 *                e (the envelope, bridge_redis.h, with "epoch")
 *
 * Two Lua scripts, loaded with SCRIPT LOAD whenever the publishing connection
 * (re)connects and run with EVALSHA:
 *   publish  creates the epoch if the hash is absent (the broker's random
 *            candidate; the stream is deleted then), HINCRBY s, XADD with
 *            MAXLEN ~ size, trims entries older than ttl (XTRIM MINID) and
 *            sets PEXPIRE ttl on both keys when the rule has a ttl, then
 *            PUBLISHes the envelope on the topic's channel. Returns {seq, epoch}.
 *   read     the topic's position {epoch, seq} (creating the epoch if absent,
 *            so a subscriber learns it before the first publish) and, by
 *            mode, the envelopes after `since` (XRANGE) or the last N
 *            (XREVRANGE): {epoch, seq, recovered (-1, 0, 1), envelope...}.
 * Each runs atomically in Redis, which is what makes "assign seq, append to
 * history, publish" one step for the whole cluster, and the position and
 * the replay of a recovery consistent.
 *
 * The window is exact, as on one node: a recovery succeeds only when since+1
 * is within the last `size` seqs (MAXLEN ~ may keep more entries) and, with a
 * ttl, the oldest message to replay is younger than ttl (Redis's clock).
 *
 * Threads: an hr_op_t is made by a worker (hr_op_new), handed to the bridge
 * thread with hr_submit(), and handed back to the worker with
 * cluster_complete() (history_ops.h) once its reply arrived or failed.
 * The worker owns it before and after; the bridge thread in between.
 * Everything named hr_* below that takes an hr_t runs on the bridge thread
 * unless it says otherwise.
 */
#ifndef WSB_BROKER_HISTORY_REDIS_H
#define WSB_BROKER_HISTORY_REDIS_H

#include "core/xmsg.h"
#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hr_s hr_t;
typedef struct hr_op_s hr_op_t;
typedef struct worker_s worker_t;
typedef struct bridge_s bridge_t;
struct redisAsyncContext;
struct redisReply;

enum { HR_PUBLISH = 1, HR_READ = 2 };
enum { HR_READ_POSITION = 0, HR_READ_SINCE = 1, HR_READ_LAST = 2 };

#define HR_EPOCH_LEN       12
#define HR_SINCE_EPOCH_MAX 64

/* Called on the worker thread when the op came back and its owner is still
 * there (op->owner != NULL). The callee frees the op (hr_op_free). */
typedef void (*hr_done_cb)(hr_op_t *op);

struct hr_op_s {
    hr_op_t *next; /* bridge: waiting/retry lists; worker: its owner's list */
    void *owner;   /* worker thread: a session, a RESP connection; NULL: gone */
    hr_done_cb done_cb;
    worker_t *worker;   /* the worker it returns to */
    hr_t *hr;           /* set by hr_submit() */
    uint8_t kind;       /* HR_PUBLISH, HR_READ */
    uint8_t mode;       /* HR_READ_*: what a read returns besides the position */
    bool has_id;        /* the request's id, for the reply */
    bool done;          /* worker thread: the result is in */
    bool live_overflow; /* worker: more live messages arrived than `live` holds */
    int64_t id;
    int status;      /* result: 0, or -1 (Redis unavailable, or refused) */
    int recovered;   /* result of HR_READ_SINCE: 0 or 1; -1 otherwise */
    uint32_t size;   /* the topic's rule */
    uint32_t last_n; /* HR_READ_LAST */
    uint64_t ttl_ms; /* the topic's rule */
    uint64_t since_seq;
    uint64_t seq;  /* result: the message's seq / the topic's position */
    xmsg_t **msgs; /* result: replay, oldest first (one reference each) */
    size_t nmsgs;
    xmsg_t **live; /* worker: live messages held while a read is pending */
    size_t nlive, live_cap;
    char since_epoch[HR_SINCE_EPOCH_MAX + 1];
    char epoch[XMSG_EPOCH_MAX + 1];   /* result */
    char epoch_new[HR_EPOCH_LEN + 1]; /* used when the topic has no epoch in Redis yet */
    uint16_t topic_len;
    uint32_t data_len;
    char *topic; /* NUL-terminated, inside this allocation */
    char *data;  /* HR_PUBLISH: the data JSON, inside this allocation */
    char *from;  /* HR_PUBLISH: the publisher's stamp (serialized, heap) or NULL */
    uint32_t from_len;
};

/* A new op for `topic` (and, for HR_PUBLISH, the serialized `data_json`),
 * with a fresh random epoch candidate. Owner: the caller; hr_op_free().
 * Aborts on OOM. */
hr_op_t *hr_op_new(int kind, wsb_str_t topic, wsb_str_t data_json);

/* HR_PUBLISH under a "publisher" rule: the envelope carries `from_json`
 * (copied; empty: none) as "from", and so does every replay of it. */
void hr_op_set_from(hr_op_t *op, wsb_str_t from_json);

/* Releases the op, its replay and its held live messages. */
void hr_op_free(hr_op_t *op);

/* ---- pure parts (unit tests) ------------------------------------------------------------ */

/* The Lua sources. */
extern const char hr_publish_script[];
extern const char hr_read_script[];

#define HR_MAX_ARGS 12

/* The arguments of one EVALSHA, pointing into `op`, `sha` and `scratch`. */
typedef struct {
    int argc;
    const char *argv[HR_MAX_ARGS];
    size_t argvlen[HR_MAX_ARGS];
    char *scratch; /* heap: keys, channel, numbers, envelope head */
} hr_args_t;

/*
 * Builds `EVALSHA sha 2 <P>hist:T <P>stream:T ...` for `op`:
 *   publish: channel, envelope head ({"v":1,"node":N,"topic":T,"epoch":"),
 *            data, epoch candidate, size, ttl_ms, publish command
 *   read:    epoch candidate, size, ttl_ms, mode (p, s, l), since epoch,
 *            since seq / N
 * Release with hr_args_free().
 */
void hr_build_args(const hr_op_t *op, const char *sha, const char *prefix, const char *node_id,
                   const char *publish_cmd, hr_args_t *a);
void hr_args_free(hr_args_t *a);

/* Reads the publish script's reply {seq, epoch} into op->seq/op->epoch.
 * 0, or -1 for anything else (an error reply, a wrong shape). */
int hr_parse_publish_reply(const struct redisReply *r, hr_op_t *op);

/* Reads the read script's reply into op->seq, op->epoch, op->recovered and,
 * building one xmsg per envelope (for `nworkers` = 0: replay only),
 * op->msgs/op->nmsgs. An envelope that is not valid, or not of op's topic,
 * makes the whole reply invalid (a recovery is exact or refused). 0 or -1. */
int hr_parse_read_reply(const struct redisReply *r, hr_op_t *op);

/* True when the reply is Redis's NOSCRIPT error (the script cache was
 * flushed): the op is sent again once the scripts are loaded again. */
bool hr_reply_is_noscript(const struct redisReply *r);

/* ---- the bridge side ---------------------------------------------------------------------- */

/* Creates the state of clustered history for bridge `br`: `publish_cmd`
 * is how the script publishes (see hr_publish_script: PUBLISH, SPUBLISH or
 * SPUBLISH+PUBLISH, a static string); `queue_size` bounds the ops submitted
 * and not yet answered; `wake` is the bridge thread's async handle. Owner:
 * the bridge; hr_free(). */
hr_t *hr_new(bridge_t *br, const char *prefix, const char *node_id, const char *publish_cmd,
             size_t queue_size, void *wake_async);
void hr_free(hr_t *hr);

/* Any worker thread: queues `op` for the bridge thread. Returns 0, or -1
 * when the publishing connection to Redis is down or too many ops are in
 * flight: the op was not taken (the caller answers "unavailable"). */
int hr_submit(hr_t *hr, hr_op_t *op);

/* The publishing connection is usable (ac, scripts are loaded now; ops wait
 * until they are), or was lost (NULL: everything in flight fails). */
void hr_set_pub(hr_t *hr, struct redisAsyncContext *ac);

/* The subscribed connection was lost: reads waiting for a SUBSCRIBE fail. */
void hr_sub_lost(hr_t *hr);

/* Redis confirmed SUBSCRIBE of channel `name`: reads waiting for it go. */
void hr_subscribed(hr_t *hr, const char *name, size_t len);

/* Sends what workers queued (the bridge's wake-up). */
void hr_drain(hr_t *hr);

/* The bridge stops: fails everything queued or waiting. */
void hr_stop(hr_t *hr);

#endif
