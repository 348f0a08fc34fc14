/*
 * chist_redis.h - clustered history: with redis.url set, the seq, epoch and
 * history of every topic that matches a history rule live in Redis, so every
 * node agrees on seq and any node can serve a recovery.
 *
 * Keys, per topic T (P = redis.prefix):
 *   P hist: T    a hash {e: epoch, s: last seq}
 *   P stream: T  a stream, entry id "<seq>-0", fields t (Redis time, ms) and
 *                e (the envelope, bridge_redis.h, with "epoch")
 * On a Redis Cluster they are P{T}hist and P{T}stream, and the channel
 * P{T} (T escaped as redis_cluster.h's rc_tag_name says): one slot, whose
 * master runs the scripts (chist_redis_set_cluster).
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
 * Threads: a chist_op_t (core/chist.h) is made by a worker, handed to the
 * bridge thread with chist_redis_submit(), and handed back to the worker
 * with chist_complete() once its reply arrived or failed. The worker owns
 * it before and after; the bridge thread in between. Everything below that
 * takes a chist_redis_t runs on the bridge thread unless it says otherwise.
 */
#ifndef WSB_BROKER_CHIST_REDIS_H
#define WSB_BROKER_CHIST_REDIS_H

#include "core/chist.h"
#include "wsb/common.h"
#include "wsb/topic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisAsyncContext;
struct redisReply;

/* ---- pure parts (unit tests) ------------------------------------------------------------ */

/* The Lua sources. */
extern const char chist_publish_script[];
extern const char chist_read_script[];
extern const char chist_pattern_script[];

/* A pattern read examines at most cap x this many index entries (its
 * literal prefix's range), else it is refused like too many topics. */
#define CHIST_PATTERN_SCAN_FACTOR 16

#define CHIST_MAX_ARGS 14

/* The arguments of one EVALSHA, pointing into `op`, `sha` and `scratch`. */
typedef struct {
    int argc;
    const char *argv[CHIST_MAX_ARGS];
    size_t argvlen[CHIST_MAX_ARGS];
    char *scratch; /* heap: keys, channel, numbers, envelope head */
} chist_args_t;

/*
 * Builds `EVALSHA sha 2 <P>hist:T <P>stream:T ...` for `op`:
 *   publish: channel, envelope head ({"v":1,"node":N,"topic":T,"epoch":"),
 *            data, epoch candidate, size, ttl_ms, publish command
 *   read:    epoch candidate, size, ttl_ms, mode (p, s, l), since epoch,
 *            since seq / N
 * Release with chist_args_free().
 * With `cluster` (a Redis Cluster) the keys and channel carry the topic as
 * their hash tag (redis_cluster.h's rc_tag_name): <P>{T}hist, <P>{T}stream
 * and the channel <P>{T}, one slot; the topic index argument is empty (no
 * index: it would be a key in another slot, and its one reader, a
 * wildcard's last value, is refused on a cluster).
 */
void chist_build_args(const chist_op_t *op, const char *sha, const char *prefix,
                      const char *node_id, const char *publish_cmd, bool cluster, chist_args_t *a);
void chist_args_free(chist_args_t *a);

/* Reads the publish script's reply {seq, epoch} into op->seq/op->epoch.
 * 0, or -1 for anything else (an error reply, a wrong shape). */
int chist_parse_publish_reply(const struct redisReply *r, chist_op_t *op);

/* Reads the read script's reply into op->seq, op->epoch, op->recovered and,
 * building one xmsg per envelope (for `nworkers` = 0: replay only),
 * op->msgs/op->nmsgs. An envelope that is not valid, or not of op's topic,
 * makes the whole reply invalid (a recovery is exact or refused). 0 or -1. */
int chist_parse_read_reply(const struct redisReply *r, chist_op_t *op);

/* Reads the pattern script's reply into op->pos/op->npos (each topic's
 * position) and op->msgs/op->nmsgs (every topic's replay, each in seq
 * order), or op->over_limit. An envelope that is not of its topic and
 * epoch, a topic the pattern does not match, or a wrong shape makes the
 * whole reply invalid. 0 or -1. */
int chist_parse_pattern_reply(const struct redisReply *r, chist_op_t *op);

/* True when the reply is Redis's NOSCRIPT error (the script cache was
 * flushed): the op is sent again once the scripts are loaded again. */
bool chist_reply_is_noscript(const struct redisReply *r);

/* ---- the bridge side ---------------------------------------------------------------------- */

/* Bridge thread: 1 when Redis confirmed SUBSCRIBE of the channel `name`,
 * 0 when not (yet), -1 when the subscribed connection is down. */
typedef int (*chist_channel_state_cb)(void *user_data, const char *name, size_t len);

/* The longest channel or glob name the bridge makes for a topic or pattern
 * (a redis.prefix is at most 64 bytes), NUL included. */
#define CHIST_NAME_MAX (3 * 64 + 4 * WSB_TOPIC_MAX_LEN + 8)

/* Bridge thread: the bridge's name (exact channel, or glob for a pattern)
 * of a topic or pattern, written to `out` (CHIST_NAME_MAX bytes). */
typedef size_t (*chist_name_fn)(void *user_data, const char *pattern, size_t len, char *out,
                                bool *is_glob);

/* Redis Cluster, bridge thread: the publishing connection to the master of
 * `slot` when it is ready, else NULL. */
typedef struct redisAsyncContext *(*chist_route_cb)(void *user_data, unsigned slot);

/* Redis Cluster, bridge thread: `err` (`len` bytes) came back from `from`;
 * when it is a MOVED or ASK redirection to a master the bridge has ready,
 * that master's publishing connection (*ask set for ASK), else NULL. Asks
 * for a topology refresh when the slot moved or the cluster is down. */
typedef struct redisAsyncContext *(*chist_redirect_cb)(void *user_data,
                                                       struct redisAsyncContext *from,
                                                       const char *err, size_t len, bool *ask);

/* Creates the state of clustered history for a bridge: `publish_cmd` is how
 * the script publishes (see chist_publish_script: PUBLISH, SPUBLISH or
 * SPUBLISH+PUBLISH, a static string); `queue_size` bounds the ops submitted
 * and not yet answered; `wake` is the bridge thread's async handle;
 * `channel_state_cb` (with `user_data`) tells whether a read may go (its
 * channel or, for a pattern read, its glob is subscribed), under the name
 * `name_fn` gives it. Owner: the bridge; chist_redis_free(). */
chist_redis_t *chist_redis_new(const char *prefix, const char *node_id, const char *publish_cmd,
                               size_t queue_size, void *wake_async,
                               chist_channel_state_cb channel_state_cb, chist_name_fn name_fn,
                               void *user_data);
void chist_redis_free(chist_redis_t *hr);

/* Any worker thread: queues `op` for the bridge thread. Returns 0, or -1
 * when the publishing connection to Redis is down or too many ops are in
 * flight: the op was not taken (the caller answers "unavailable"). */
int chist_redis_submit(chist_redis_t *hr, chist_op_t *op);

/* The publishing connection is usable (ac, scripts are loaded now; ops wait
 * until they are), or was lost (NULL: everything in flight fails). */
void chist_redis_set_pub(chist_redis_t *hr, struct redisAsyncContext *ac);

/*
 * Makes `hr` work on a Redis Cluster (before any op): each op goes to the
 * master of its keys' slot (`route`), a MOVED or ASK reply is followed
 * (`redirect`, at most 3 hops; a MOVED or ASK means the script did not run,
 * so sending it again never duplicates it), and the keys and channels are
 * named with hash tags (chist_build_args). An op in flight when its
 * master's connection is lost, or whose master is down, fails (the client
 * gets `unavailable`; the script may or may not have run): never sent twice.
 * The scripts are loaded on each master as its publishing connection comes
 * up (chist_redis_shard_up); a NOSCRIPT from one master loads them there
 * again and resends, in order, what failed with it.
 */
void chist_redis_set_cluster(chist_redis_t *hr, chist_route_cb route, chist_redirect_cb redirect);

/* Redis Cluster: a master's publishing connection `ac` is ready; the
 * scripts are loaded on it before anything else is sent there. */
void chist_redis_shard_up(chist_redis_t *hr, struct redisAsyncContext *ac);

/* A subscribed connection was lost: reads waiting for a SUBSCRIBE on it
 * fail (those whose channel_state_cb now says -1; on a Redis Cluster the
 * reads waiting on the other masters keep waiting). */
void chist_redis_sub_lost(chist_redis_t *hr);

/* Redis confirmed SUBSCRIBE of channel `name`: reads waiting for it go. */
void chist_redis_subscribed(chist_redis_t *hr, const char *name, size_t len);

/* Sends what workers queued (the bridge's wake-up). */
void chist_redis_drain(chist_redis_t *hr);

/* The bridge stops: fails everything queued or waiting. */
void chist_redis_stop(chist_redis_t *hr);

#endif
