/*
 * bridge_redis.h - federation: several nodes behave like one broker through
 * a Redis server's pub/sub (off unless redis.url is set).
 *
 * The bridge runs on a thread and libuv loop of its own with two Redis
 * connections: one in subscribed mode (bridge_sub.h: hiredis's reader under
 * our own poll loop, since hiredis 0.14's async API cannot route sharded
 * pushes), one hiredis async connection for PUBLISH (a subscribed connection
 * may not publish). Workers talk to it from their own threads:
 *
 *  - interest: bridge_interest() when a pattern gets its first (+1) or loses
 *    its last (-1) subscriber in a worker's trie. The bridge keeps one
 *    reference count per Redis channel or glob (under a mutex: subscriptions
 *    are not the publish hot path) and reconciles Redis with it: SUBSCRIBE
 *    <prefix><topic> for an exact topic, PSUBSCRIBE <prefix><glob> for a
 *    pattern ('*' and '>' tokens become Redis '*', which is looser: the
 *    workers' tries filter exactly), UNSUBSCRIBE/PUNSUBSCRIBE at zero.
 *  - publishes: bridge_publish() from a local publish (core/pubsub.c,
 *    through the core's federation hooks, bridge_plug) queues an envelope
 *    {"v":1,"node":ID,"topic":T,"seq":S,"data":D} in a bounded MPSC queue
 *    (redis.queue_size, shared with the commands waiting for a reply); the
 *    bridge thread sends PUBLISH <prefix><topic> <envelope>. A full queue, or
 *    Redis being down, drops the message for the other nodes
 *    (wsbroker_redis_dropped_total): at-most-once across nodes.
 *
 * Sharded mode (redis.sharded): exact topics use SSUBSCRIBE and SPUBLISH;
 * patterns stay on PSUBSCRIBE, so each publish also goes out as a classic
 * PUBLISH in the same MULTI/EXEC (redis.sharded_patterns, default on), or
 * wildcard subscriptions are refused (bridge_refuses_patterns). The two
 * copies reach a node that wants both back to back: the rule below keeps one.
 *
 * Messages from Redis are delivered through core_inject_remote() unless their
 * envelope names this node (a node never delivers its own message twice).
 * Redis sends one PUBLISH to a connection once per matching subscription
 * (a channel and two globs: three times), always back to back, so the bridge
 * injects a message only when it differs from the one received just before
 * or arrives again through a subscription it already came through.
 *
 * Failure: connection loss or refusal reconnects with exponential backoff
 * (100 ms doubling to redis.reconnect_max, each wait with +-25% jitter) and
 * re-subscribes everything; meanwhile bridge_healthy() is false (/healthz
 * "redis":"degraded") and local delivery goes on.
 *
 * The bridge sees the core only through core/core.h: it is created with its
 * own configuration (bridge_config_t) and the core_t it injects into, and
 * bridge_plug() fills the core's federation hooks (publish, interest,
 * clustered history submit) with its own functions.
 *
 * Lifetime: bridge_new() (main thread, after the workers exist) ->
 * bridge_plug() -> bridge_start() -> bridge_stop() (any thread) -> bridge_free() after the
 * workers' threads ended (joins the bridge thread).
 */
#ifndef WSB_BROKER_BRIDGE_REDIS_H
#define WSB_BROKER_BRIDGE_REDIS_H

#include "cluster/bridge_config.h"
#include "core/core.h"
#include "shared/util.h"
#include "wsb/common.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct bridge_s bridge_t;

/* Creates a bridge that delivers messages from other nodes into `core`
 * (core_inject_remote). Owner: the caller, released with bridge_free().
 * Aborts on OOM. */
bridge_t *bridge_new(const bridge_config_t *cfg, core_t *core);

/* Fills `core`'s federation hooks (core_fed_ops_t) with this bridge's
 * publish, interest and clustered history submit. Before the workers run. */
void bridge_plug(bridge_t *br, core_t *core);

/* Starts the bridge thread, which connects. 0, or -1 (logged). */
int bridge_start(bridge_t *br);

/* Asks the bridge to disconnect and end its thread. Idempotent, any thread. */
void bridge_stop(bridge_t *br);

/* Waits for the bridge thread to end (after bridge_stop): from then on
 * nothing is injected into the workers' inboxes. Idempotent. */
void bridge_join(bridge_t *br);

/* Joins the thread (after bridge_stop) and frees everything. */
void bridge_free(bridge_t *br);

/* A worker's trie got the first subscriber of `pattern` (delta +1) or lost
 * its last (-1). Any worker thread. */
void bridge_interest(bridge_t *br, const char *pattern, size_t len, int delta);

/* Queues a local publish for the other nodes, with the publisher's identity
 * (`from_json`, serialized; empty: none) in the envelope's "from"
 * (PROTOCOL.md 13). Any worker thread, called with the topic's seq shard
 * locked. Never blocks; drops and counts when full. */
void bridge_publish(bridge_t *br, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                    wsb_str_t data_json);

/* Queues a local request (core/request.h) for the other nodes: as
 * bridge_publish, with its inbox in the envelope's "reply_to". Once Redis
 * answered, `count` (core/inbox.h) is told whether another node received
 * it: Redis's receiver count less this node's own subscriptions that match
 * the channel; when that cannot be told (a subscription change of this node
 * in flight, Redis down, queue full), "maybe", so the request ends with its
 * reply or timeout, never a wrong no_responders. Any worker thread, with
 * the topic's seq shard locked. */
void bridge_request(bridge_t *br, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                    wsb_str_t reply_to, wsb_str_t data_json, inbox_count_t *count);

/* Redis's match of glob `p` (as bridge_redis_name makes them: '*' and
 * '\'-escapes only) against channel `s`. Exposed for the unit tests. */
bool bridge_glob_match(const char *p, size_t pl, const char *s, size_t sl);

/* A member of a presence topic on this node joined or left (`type` "join"
 * or "leave"): tells the other nodes (presence_bus.h). Any worker thread.
 * Never blocks; dropped and counted when the queue is full or Redis down. */
void bridge_presence(bridge_t *br, const char *type, wsb_str_t topic, const char *client,
                     const char *user);

/* True when wildcard subscriptions must be refused: sharded mode without the
 * classic PUBLISH they need (redis.sharded_patterns false), where a pattern
 * would silently see this node's messages only. `br` may be NULL (no
 * federation: false). Any thread. */
bool bridge_refuses_patterns(const bridge_t *br);

/* True while both connections are up (and authenticated). Any thread. */
bool bridge_healthy(const bridge_t *br);

/* The admin bus (PROTOCOL.md 16): one channel, "<prefix> admin", that every
 * node subscribes to. `cb` gets every envelope received on it (bridge
 * thread; borrowed until it returns). Set before bridge_start(). */
void bridge_admin_hook(bridge_t *br, void (*cb)(void *user_data, const char *env, size_t len),
                       void *user_data);

/* PUBLISHes `env` on the admin bus (queued; any thread). False when it
 * cannot go (Redis down, queue full, or larger than bridge_admin_max()). */
bool bridge_admin_send(bridge_t *br, const char *env, size_t len);
size_t bridge_admin_max(const bridge_t *br);

/* Which Redis server the bridge uses: returns the mode, "single"
 * (redis.url) or "sentinel" (redis.sentinels), and writes the server's
 * "host:port" to `addr` ("" while the sentinels have not named a master).
 * Any thread. */
const char *bridge_server(bridge_t *br, char *addr, size_t len);

/* Appends the bridge's Prometheus series to `out`. Any thread. */
void bridge_render_metrics(bridge_t *br, sbuf_t *out);

/* Translates a valid wsbroker pattern into a Redis channel (exact topic,
 * *is_glob = false) or glob (*is_glob = true) with `prefix` in front, written
 * NUL-terminated to `out` (room for 2 * len + strlen(prefix) + 1 bytes).
 * Returns its length. Exposed for the unit tests. */
size_t bridge_redis_name(const char *prefix, const char *pattern, size_t len, char *out,
                         bool *is_glob);

#endif
