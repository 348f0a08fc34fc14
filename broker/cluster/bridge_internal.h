/*
 * bridge_internal.h - what the Redis bridge's files share on the bridge
 * thread (bridge_redis.c: interest, messages, publishes, lifetime;
 * bridge_conn.c: the two connections). Not for other modules.
 */
#ifndef WSB_BROKER_BRIDGE_INTERNAL_H
#define WSB_BROKER_BRIDGE_INTERNAL_H

#include "cluster/bridge_config.h"
#include "cluster/bridge_sub.h"
#include "cluster/chist_redis.h"
#include "core/core.h"
#include "core/xqueue.h"

#include <hiredis/async.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct bridge_s bridge_t;
typedef struct shard_s shard_t;
typedef struct bcluster_s bcluster_t;

#define BACKOFF_MIN_MS     100
#define CONNECT_TIMEOUT_MS 3000
#define CHAN_BUCKETS       4096
#define LAST_VIA_MAX       64
/* Envelope fields around the data: node id, topic (escaped), seq, from, keys. */
#define ENVELOPE_OVERHEAD 2048

typedef enum { CHAN_NONE = 0, CHAN_SUBSCRIBING, CHAN_SUBSCRIBED, CHAN_UNSUBSCRIBING } chan_state_t;

/* One Redis channel or glob with the number of (worker, pattern) pairs that
 * want it. Guarded by bridge->lock. */
typedef struct chan_s {
    struct chan_s *next;       /* hash bucket */
    struct chan_s *dirty_next; /* bridge->dirty */
    bool dirty;
    bool glob;
    chan_state_t state;
    shard_t *shard; /* Redis Cluster: the master it is (un)subscribing or subscribed on */
    unsigned slot;  /* Redis Cluster: its hash slot */
    long refs;
    size_t len;
    char name[]; /* NUL-terminated */
} chan_t;

/* One of the two Redis connections. Bridge thread only. */
typedef struct {
    bridge_t *br;
    const char *role; /* "pub" or "sub", for logs */
    bool is_sub;
    shard_t *shard;        /* Redis Cluster: the master it talks to; NULL: the one server */
    redisAsyncContext *ac; /* pub: hiredis async */
    bridge_sub_t *bs;      /* sub: our own reader loop (bridge_sub.h) */
    unsigned handshake;    /* sub: AUTH/PING replies still awaited */
    bool connected;        /* TCP connected */
    bool ready;            /* connected and authenticated */
    bool ever_ready;
    bool closed; /* for good: no reconnect (bridge_rconn_close) */
    unsigned backoff_ms;
    uv_timer_t timer; /* reconnect wait, or connect timeout while connecting */
} rconn_t;

typedef enum {
    PUB_PLAIN = 0, /* a message (or the presence bus): PUBLISH/SPUBLISH as configured */
    PUB_REQUEST,   /* a request: as PLAIN, and Redis's receiver count goes to `count` */
    PUB_INBOX,     /* a reply: one publish on its node's inbox channel */
} pub_kind_t;

/* A publish waiting for the bridge thread: channel then envelope. */
typedef struct {
    uint32_t chan_len;
    uint32_t env_len;
    pub_kind_t kind;
    inbox_count_t *count; /* PUB_REQUEST: told exactly once (core/inbox.h) */
    char bytes[];
} pub_item_t;

/* Laid out by purpose, not size: one per process. */
struct bridge_s {        // NOLINT(clang-analyzer-optin.performance.Padding)
    core_t *core;        /* where messages from other nodes go */
    bridge_config_t cfg; /* strings borrowed (bridge_new) */
    size_t prefix_len;
    size_t max_envelope;
    uv_loop_t loop;
    uv_async_t wake;
    uv_async_t stop_async;
    rconn_t pub, sub;
    pthread_t thread;
    bool thread_started;
    bool joined;
    bool stopping; /* bridge thread */
    _Atomic int stop_requested;
    _Atomic int pub_up;  /* workers drop at once while 0 */
    _Atomic int healthy; /* both connections ready */
    xqueue_t outq;
    _Atomic size_t pending; /* queued + sent without reply: bounded by queue_size */

    pthread_mutex_t lock; /* guards the channel table */
    chan_t **buckets;
    chan_t *dirty;
    size_t nchans_active;

    /* The last payload received, to inject a message once however many of
     * our subscriptions matched it (bridge thread only). */
    char *last;
    size_t last_len, last_cap;
    /* The subscriptions it came through: the same payload through one of
     * them again is a new PUBLISH (e.g. seq restarted after eviction). */
    uint32_t last_via[LAST_VIA_MAX];
    unsigned nlast_via;

    /* Own subscriptions as Redis counts them in a request's receivers
     * (bridge thread only): commands sent and not yet confirmed, and a
     * number that changes with every command sent or connection lost. */
    unsigned sub_inflight;
    uint64_t sub_epoch;
    /* This node's inbox channel: <prefix>_inbox.<tag> (core/inbox.h). */
    char inbox_tag[17];

    /* The admin bus (bridge_admin_hook): "<prefix> admin". */
    char admin_chan[320];
    size_t admin_chan_len;
    void (*admin_cb)(void *user_data, const char *env, size_t len);
    void *admin_user_data;

    _Atomic uint64_t reconnects;
    _Atomic uint64_t dropped;
    _Atomic uint64_t published;
    _Atomic uint64_t received;
    _Atomic uint64_t own_ignored;
    _Atomic uint64_t bad_envelopes;

    /* ---- clustered history (chist_redis.h): NULL without history rules ---- */
    chist_redis_t *hr;
    /* ---- presence across nodes (presence_bus.h): NULL without presence rules ---- */
    struct pbus_s *pbus;
    /* ---- the master found through Redis Sentinel (redis_sentinel.h): NULL without ---- */
    struct sentinel_s *sent;
    bool switching; /* bridge thread: moving to a new master, not a loss */
    /* ---- Redis Cluster (bridge_cluster.c): NULL with one server ---- */
    bcluster_t *cl;
};

/* One master of a Redis Cluster and the bridge's two connections to it,
 * as br->pub and br->sub are to the one server. Bridge thread only. Freed
 * once both timers closed (bridge_cluster.c). */
struct shard_s {
    bridge_t *br;
    char host[256];
    unsigned port;
    rconn_t pub, sub;
    bool retired; /* no longer a master: its connections are closing */
    unsigned open_handles;
    unsigned long pub_inflight; /* SPUBLISHes sent on `pub`, their reply not in yet */
};

/* Counts one event in a bridge counter (read by /metrics). */
static inline void bridge_count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* bridge_redis.c */

/* The sub connection's replies: confirmations and messages. */
void bridge_on_sub_reply(bridge_sub_t *bs, const redisReply *reply, void *user_data);

/* Queues `env` for PUBLISH on the channel `chan` (the presence bus), as a
 * message's envelope is. Any thread; dropped and counted when full or down. */
void bridge_send_raw(bridge_t *br, const char *chan, size_t chan_len, const char *env,
                     size_t env_len);

/* bridge_cluster.c */

/* The cluster state of a bridge with cfg.cluster set (seeds parsed, the
 * refresh timer made); bridge_cluster_start() on the bridge thread reads
 * the topology and connects; bridge_cluster_stop() closes everything (the
 * shards are freed as the loop winds down); bridge_cluster_free() after
 * the loop ended. */
bcluster_t *bridge_cluster_new(bridge_t *br);
void bridge_cluster_start(bridge_t *br);
void bridge_cluster_stop(bridge_t *br);
void bridge_cluster_free(bridge_t *br);

/* The master that serves `slot` now, or NULL when none is known. */
shard_t *bridge_cluster_shard(bridge_t *br, unsigned slot);

/* Reads the topology now (asynchronously, on the bridge loop; a round in
 * progress is followed by another): a slot moved away from a master that
 * dropped our subscription. */
void bridge_cluster_refresh_now(bridge_t *br);

/* A MOVED or ASK error reply `err` to a command sent on `from` (a shard's
 * publishing connection): the publishing connection of the master it names
 * when that one is ready (*ask set for an ASK), else NULL. A MOVED or a
 * CLUSTERDOWN also asks for a topology refresh soon. */
redisAsyncContext *bridge_cluster_redirect(bridge_t *br, const redisAsyncContext *from,
                                           const char *err, size_t len, bool *ask);

/* Asks for a topology refresh soon (a connection lost, a MOVED). */
void bridge_cluster_refresh_soon(bridge_t *br);

/* Health of a cluster bridge: every master's two connections ready. */
void bridge_cluster_health(bridge_t *br, bool *healthy, bool *pub_up);

/* Sends one publish to its slot's master with SPUBLISH, following MOVED
 * and ASK (a few hops); `cb(ac, reply, priv)` runs once with the outcome
 * (reply NULL: not sent or lost). Frees `it`. */
void bridge_cluster_publish(bridge_t *br, pub_item_t *it, redisCallbackFn *cb, void *priv);

/* Marks every channel for (re)subscription; `lost`: the sub connection to
 * `s` (NULL: the one server) dropped, so none on it is subscribed any more. */
void bridge_mark_shard(bridge_t *br, shard_t *s, bool lost);

/* bridge_conn.c */

/* Recomputes `healthy` and `pub_up` from the connections' states. */
void bridge_update_health(bridge_t *br);

/* Sets up a connection's fields and timer (not connected yet). */
void bridge_rconn_init(bridge_t *br, rconn_t *rc, bool is_sub, shard_t *shard);

/* Closes a connection for good (its shard is retired, or the bridge stops):
 * no reconnect follows; the timer is closed with `close_cb`. */
void bridge_rconn_close(rconn_t *rc, uv_close_cb close_cb);

/* Connects (or reconnects) one of the two connections. */
void bridge_rconn_connect(rconn_t *rc);

/* The connection is connected and authenticated: publishes flow, the
 * channel table is reconciled. */
void bridge_set_ready(rconn_t *rc);

/* The sub connection is gone (`why` for the log): reconnect with backoff. */
void bridge_sub_lost(rconn_t *rc, const char *why);

/* The handshake's last reply (PING, or ROLE with Sentinel) came: the
 * connection is ready, or (ROLE says not a master) dropped. */
void bridge_handshake_done(rconn_t *rc, const redisReply *reply);

/* With redis.sentinels: creates br->sent (bridge_new). Its start, stop and
 * free are the bridge's (bridge_redis.c). */
void bridge_sentinel_init(bridge_t *br);

#endif
