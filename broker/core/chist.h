/*
 * chist.h - clustered history, the core's side: with redis.url set, the seq,
 * epoch and history of every topic that matches a history rule live in
 * Redis (cluster/chist_redis.h), so every node agrees on seq and any node
 * can serve a recovery.
 *
 * A worker makes an op (chist_op_new), hands it to federation through the
 * core's hook (core_fed_ops_t.chist_submit_cb), and gets it back on its own
 * thread: the bridge thread calls chist_complete(), the worker's next loop
 * turn chist_drain(), which runs the op's done_cb. The worker owns the op
 * before and after; the bridge thread in between. What a WebSocket session
 * does with its ops (reply order, switch-over floors) is
 * ingress/chist_session.h.
 *
 * Every clustered-history name starts with chist_ (CHIST_ for constants).
 */
#ifndef WSB_BROKER_CORE_CHIST_H
#define WSB_BROKER_CORE_CHIST_H

#include "core/core.h"
#include "core/xmsg.h"
#include "wsb/common.h"
#include "wsb/topic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct chist_redis_s chist_redis_t;

enum { CHIST_PUBLISH = 1, CHIST_READ = 2 };
/* CHIST_READ_PATTERN: `history` N on a pattern (op->topic): the last N of
 * every matching topic Redis knows (cluster/chist_redis.h), at most op->cap
 * topics (else op->over_limit). */
enum { CHIST_READ_POSITION = 0, CHIST_READ_SINCE = 1, CHIST_READ_LAST = 2, CHIST_READ_PATTERN = 3 };

/* CHIST_READ_PATTERN's result: one matching topic's position. */
typedef struct chist_pos_s {
    char *topic; /* NUL-terminated, heap */
    uint64_t seq;
    char epoch[XMSG_EPOCH_MAX + 1];
} chist_pos_t;

#define CHIST_EPOCH_LEN       12
#define CHIST_SINCE_EPOCH_MAX 64

/* Called on the worker thread when the op came back and its owner is still
 * there (op->owner != NULL). The callee frees the op (chist_op_free). */
typedef void (*chist_done_cb)(chist_op_t *op);

struct chist_op_s {
    chist_op_t *next; /* bridge: waiting/retry lists; worker: its owner's list */
    void *owner;      /* worker thread: a session, a RESP connection; NULL: gone */
    chist_done_cb done_cb;
    core_worker_t *worker; /* the worker it returns to */
    chist_redis_t *hr;     /* set by chist_redis_submit() */
    uint8_t kind;          /* CHIST_PUBLISH, CHIST_READ */
    uint8_t mode;          /* CHIST_READ_*: what a read returns besides the position */
    bool has_id;           /* the request's id, for the reply */
    bool done;             /* worker thread: the result is in */
    bool live_overflow;    /* worker: more live messages arrived than `live` holds */
    bool over_limit;       /* result of CHIST_READ_PATTERN: more than `cap` topics */
    bool new_sub;          /* CHIST_READ_PATTERN: the subscribe added the subscription */
    int64_t id;
    int status;      /* result: 0, or -1 (Redis unavailable, or refused) */
    int recovered;   /* result of CHIST_READ_SINCE: 0 or 1; -1 otherwise */
    uint32_t size;   /* the topic's rule */
    uint32_t last_n; /* CHIST_READ_LAST, CHIST_READ_PATTERN */
    uint32_t cap;    /* CHIST_READ_PATTERN: at most this many topics */
    uint64_t ttl_ms; /* the topic's rule */
    uint64_t since_seq;
    uint64_t seq;  /* result: the message's seq / the topic's position */
    xmsg_t **msgs; /* result: replay, oldest first (one reference each) */
    size_t nmsgs;
    chist_pos_t *pos; /* result of CHIST_READ_PATTERN: each replayed topic's position */
    size_t npos;
    xmsg_t **live; /* worker: live messages held while a read is pending */
    size_t nlive, live_cap;
    char since_epoch[CHIST_SINCE_EPOCH_MAX + 1];
    char epoch[XMSG_EPOCH_MAX + 1];      /* result */
    char epoch_new[CHIST_EPOCH_LEN + 1]; /* used when the topic has no epoch in Redis yet */
    uint16_t topic_len;
    uint32_t data_len;
    char *topic; /* NUL-terminated, inside this allocation */
    char *data;  /* CHIST_PUBLISH: the data JSON, inside this allocation */
    char *from;  /* CHIST_PUBLISH: the publisher's stamp (serialized, heap) or NULL */
    uint32_t from_len;
    /* Clustered streams (core/chist_stream.h): the stream's name (its rule's
     * pattern) when the op is a stream's, "" otherwise; `topic` is then the
     * published topic or the subscription's pattern. */
    uint64_t max_bytes; /* a stream read: bytes of envelopes replayed at most */
    /* Result of a stream's CHIST_READ_SINCE that was not recovered: the
     * stream's seqs after gap_seq up to gap_to are lost (a `gap` follows
     * the ack); msgs holds what is left after gap_to. */
    bool gap;
    uint64_t gap_seq, gap_to;
    char stream[WSB_TOPIC_MAX_LEN + 1];
};

/* A bare op for `topic` (and, for CHIST_PUBLISH, the serialized
 * `data_json`), with a fresh random epoch candidate and no worker. Owner:
 * the caller; chist_op_free(). Aborts on OOM. */
chist_op_t *chist_op_alloc(int kind, wsb_str_t topic, wsb_str_t data_json);

/* CHIST_PUBLISH under a "publisher" rule: the envelope carries `from_json`
 * (copied; empty: none) as "from", and so does every replay of it. */
void chist_op_set_from(chist_op_t *op, wsb_str_t from_json);

/* Unrefs and frees the replay (msgs) and leaves it empty: a reply refused
 * whole drops what it had parsed so far. */
void chist_op_drop_replay(chist_op_t *op);

/* Releases the op, its replay and its held live messages. NULL is fine. */
void chist_op_free(chist_op_t *op);

/* The rule index when `topic` (exact) is clustered on this node, else -1. */
int chist_rule(const core_t *c, wsb_str_t topic);

/* A new op (CHIST_PUBLISH with `data_json`, or CHIST_READ) for worker `w` and
 * the exact `topic`, with the size and ttl of history rule `rule` (an index
 * chist_rule() returned). Owner: the caller until it is submitted
 * (chist_submit), then whoever its done_cb hands it to; freed with
 * chist_op_free(). The caller sets owner and done_cb. Aborts on OOM. */
chist_op_t *chist_op_new(core_worker_t *w, int kind, wsb_str_t topic, wsb_str_t data_json,
                         int rule);

/* Hands `op` to federation (Redis). 0, or -1 when Redis is not usable now:
 * the op was not taken (the caller answers "unavailable" and frees it). */
int chist_submit(core_worker_t *w, chist_op_t *op);

/* Hands a finished op back to its worker. Any thread (the bridge's). */
void chist_complete(chist_op_t *op);

/* Runs the callbacks of the ops handed back to `w` (frees orphans). */
void chist_drain(core_worker_t *w);

/* Frees what is left in the worker's queue (after the bridge thread ended). */
void chist_worker_free(core_worker_t *w);

#endif
