/* bridge_conn.c - the bridge's two Redis connections: connect, AUTH, ready,
 * loss and reconnect with backoff (see bridge_redis.h). */
#include "cluster/bridge_internal.h"
#include "cluster/bridge_redis.h"
#include "cluster/redis_sentinel.h"
#include "shared/log.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- connections ---------------------------------------------------------------------------- */

/* The address a connection dials: its master's in a Redis Cluster, the
 * master the sentinels named (false while they have not), or the one
 * server's. Bridge thread. */
static bool rconn_addr(const rconn_t *rc, const char **host, unsigned *port)
{
    if (rc->shard != NULL) {
        *host = rc->shard->host;
        *port = rc->shard->port;
        return true;
    }
    if (rc->br->sent != NULL) {
        return sentinel_master(rc->br->sent, host, port);
    }
    *host = rc->br->cfg.host;
    *port = rc->br->cfg.port;
    return true;
}

void bridge_update_health(bridge_t *br)
{
    bool up = br->pub.ready && br->sub.ready, pub_up = br->pub.ready;
    if (br->cl != NULL) {
        bridge_cluster_health(br, &up, &pub_up);
    }
    int was = atomic_exchange_explicit(&br->healthy, up ? 1 : 0, memory_order_acq_rel);
    atomic_store_explicit(&br->pub_up, pub_up ? 1 : 0, memory_order_release);
    if (was != (up ? 1 : 0) && !br->stopping) {
        const char *host = "";
        unsigned port = 0;
        (void)rconn_addr(&br->pub, &host, &port);
        if (up) {
            log_info("redis: connected", "host=%s port=%u", host, port);
        } else {
            log_warn("redis: unavailable, serving local traffic only (degraded)", "host=%s port=%u",
                     host, port);
        }
    }
}

static void on_retry_timer(uv_timer_t *t)
{
    rconn_t *rc = t->data;
    if (rc->br->stopping || rc->closed) {
        return;
    }
    if (rc->is_sub) {
        if (rc->bs != NULL && !rc->connected) {
            log_warn("redis: connect timed out", "conn=%s", rc->role);
            bridge_sub_close(rc->bs);
            rc->bs = NULL;
        }
        if (rc->bs == NULL) {
            bridge_count(&rc->br->reconnects);
            bridge_rconn_connect(rc);
        }
        return;
    }
    if (rc->ac != NULL && !rc->connected) {
        /* Connect timeout: hiredis 0.14 has none of its own. */
        log_warn("redis: connect timed out", "conn=%s", rc->role);
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        redisAsyncFree(ac);
    }
    if (rc->ac == NULL) {
        bridge_count(&rc->br->reconnects);
        bridge_rconn_connect(rc);
    }
}

static void schedule_retry(rconn_t *rc)
{
    bridge_t *br = rc->br;
    if (br->stopping || rc->closed) {
        return;
    }
    if (br->cl != NULL) {
        bridge_cluster_refresh_soon(br); /* a master gone may mean a failover */
    }
    /* Exponential backoff with +-25% jitter, so nodes that lost Redis at the
     * same moment do not come back in lockstep. */
    uint32_t rnd = 0;
    random_bytes(&rnd, sizeof(rnd));
    uint64_t base = rc->backoff_ms;
    uint64_t wait = base * 3 / 4 + (base > 0 ? rnd % (base / 2 + 1) : 0);
    uint64_t max = br->cfg.reconnect_max_ms;
    rc->backoff_ms = (unsigned)(base * 2 > max ? max : base * 2);
    uv_timer_start(&rc->timer, on_retry_timer, wait, 0);
    if (br->sent != NULL && !br->switching) {
        sentinel_master_lost(br->sent); /* the master may have moved: ask the sentinels */
    }
}

void bridge_set_ready(rconn_t *rc)
{
    bridge_t *br = rc->br;
    rc->ready = true;
    rc->ever_ready = true;
    rc->backoff_ms = BACKOFF_MIN_MS;
    if (rc->is_sub) {
        bridge_mark_shard(br, NULL, false); /* (re)subscribe everything wanted */
    } else if (br->hr != NULL && rc->shard != NULL) {
        chist_redis_shard_up(br->hr, rc->ac); /* clustered history hook: scripts on this master */
    } else if (br->hr != NULL) {
        chist_redis_set_pub(br->hr, rc->ac); /* clustered history hook: load the scripts */
    }
    bridge_update_health(br);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    rconn_t *rc = ac->data;
    redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_error("redis: AUTH refused", "conn=%s err=%s", rc->role, log_quote(reply->str));
        redisAsyncDisconnect(ac); /* retried with backoff: the password may be fixed */
    }
}

void bridge_handshake_done(rconn_t *rc, const redisReply *reply)
{
    bridge_t *br = rc->br;
    if (br->sent != NULL && !sentinel_role_is_master(reply)) {
        /* A demoted master still answers, but what is published there
         * reaches none of the other nodes. */
        log_warn("redis: not a master, dropped (sentinel)", "conn=%s", rc->role);
        if (rc->is_sub) {
            bridge_sub_lost(rc, NULL);
        } else {
            redisAsyncDisconnect(rc->ac);
        }
        return;
    }
    bridge_set_ready(rc);
}

/* The PING (ROLE with Sentinel) queued behind AUTH: its answer means the
 * connection is usable. */
static void on_ready_ping(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    rconn_t *rc = ac->data;
    redisReply *reply = r;
    if (reply != NULL && reply->type != REDIS_REPLY_ERROR && !rc->br->stopping) {
        bridge_handshake_done(rc, reply);
    }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    rconn_t *rc = cac->data;
    uv_timer_stop(&rc->timer);
    if (status != REDIS_OK) {
        log_debug("redis: connect failed", "conn=%s err=%s", rc->role, log_quote(cac->errstr));
        rc->ac = NULL; /* hiredis frees the context after this callback */
        schedule_retry(rc);
        return;
    }
    rc->connected = true; /* usable once the PING queued at connect time answers */
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    rconn_t *rc = cac->data;
    bridge_t *br = rc->br;
    if (!br->stopping && !rc->closed) { /* closed: bridge_rconn_close() freed it on purpose */
        log_warn("redis: connection lost", "conn=%s err=%s", rc->role,
                 log_quote(status == REDIS_OK ? "closed" : cac->errstr));
    }
    rc->ac = NULL;
    rc->connected = false;
    rc->ready = false;
    if (br->hr != NULL && rc->shard == NULL) {
        /* clustered history hook: what waited on it fails (on a Redis
         * Cluster each op in flight fails with its own master's connection) */
        chist_redis_set_pub(br->hr, NULL);
    }
    bridge_update_health(br);
    schedule_retry(rc);
}

/* The subscriber connection broke (`why`), was refused (NULL: logged by the
 * caller) or could not connect: nothing is subscribed any more. */
void bridge_sub_lost(rconn_t *rc, const char *why)
{
    bridge_t *br = rc->br;
    if (why != NULL && !br->stopping) {
        if (rc->connected) {
            log_warn("redis: connection lost", "conn=%s err=%s", rc->role, log_quote(why));
        } else {
            log_debug("redis: connect failed", "conn=%s err=%s", rc->role, log_quote(why));
        }
    }
    if (rc->bs != NULL) {
        bridge_sub_close(rc->bs);
        rc->bs = NULL;
    }
    uv_timer_stop(&rc->timer);
    rc->connected = false;
    rc->ready = false;
    rc->handshake = 0;
    bridge_mark_shard(br, rc->shard, true);
    if (br->hr != NULL) {
        chist_redis_sub_lost(
            br->hr); /* clustered history hook: reads waiting on a SUBSCRIBE fail */
    }
    bridge_update_health(br);
    schedule_retry(rc);
}

static void on_sub_connected(bridge_sub_t *bs, void *user_data)
{
    (void)bs;
    rconn_t *rc = user_data;
    uv_timer_stop(&rc->timer);
    rc->connected = true; /* usable once the PING queued at connect time answers */
}

static void on_sub_closed(bridge_sub_t *bs, const char *why, void *user_data)
{
    (void)bs;
    bridge_sub_lost(user_data, why);
}

static void sub_connect(rconn_t *rc)
{
    static const bridge_sub_cb_t callbacks = {on_sub_connected, bridge_on_sub_reply, on_sub_closed};
    bridge_t *br = rc->br;
    char err[160];
    const char *host = NULL;
    unsigned port = 0;
    if (!rconn_addr(rc, &host, &port)) {
        schedule_retry(rc); /* the sentinels have not named the master yet */
        return;
    }
    rc->bs = bridge_sub_connect(&br->loop, host, port, &callbacks, rc, err, sizeof(err));
    if (rc->bs == NULL) {
        log_debug("redis: connect failed", "conn=%s err=%s", rc->role, log_quote(err));
        schedule_retry(rc);
        return;
    }
    rc->connected = false;
    rc->handshake = 0;
    if (br->cfg.password != NULL) {
        const char *argv[3] = {"AUTH", br->cfg.user, br->cfg.password};
        size_t lens[3] = {4, br->cfg.user != NULL ? strlen(br->cfg.user) : 0,
                          strlen(br->cfg.password)};
        if (br->cfg.user == NULL) {
            argv[1] = argv[2];
            lens[1] = lens[2];
        }
        bridge_sub_command(rc->bs, br->cfg.user != NULL ? 3 : 2, argv, lens);
        rc->handshake++;
    }
    const char *ping = br->sent != NULL ? "ROLE" : "PING";
    size_t ping_len = 4;
    bridge_sub_command(rc->bs, 1, &ping, &ping_len);
    rc->handshake++;
    uv_timer_start(&rc->timer, on_retry_timer, CONNECT_TIMEOUT_MS, 0);
}

void bridge_rconn_connect(rconn_t *rc)
{
    bridge_t *br = rc->br;
    if (rc->is_sub) {
        sub_connect(rc);
        return;
    }
    const char *host = NULL;
    unsigned port = 0;
    if (!rconn_addr(rc, &host, &port)) {
        schedule_retry(rc); /* the sentinels have not named the master yet */
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(host, (int)port);
    if (ac == NULL || ac->err) {
        log_debug("redis: connect failed", "conn=%s err=%s", rc->role,
                  log_quote(ac != NULL ? ac->errstr : "out of memory"));
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        schedule_retry(rc);
        return;
    }
    ac->data = rc;
    rc->ac = ac;
    rc->connected = false;
    if (bridge_sub_attach_async(ac, &br->loop) != 0) {
        log_debug("redis: connect failed", "conn=%s err=%s", rc->role,
                  log_quote("cannot poll the socket"));
        rc->ac = NULL;
        redisAsyncFree(ac);
        schedule_retry(rc);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (br->cfg.password != NULL) {
        if (br->cfg.user != NULL) {
            redisAsyncCommand(ac, on_auth, NULL, "AUTH %s %s", br->cfg.user, br->cfg.password);
        } else {
            redisAsyncCommand(ac, on_auth, NULL, "AUTH %s", br->cfg.password);
        }
    }
    /* hiredis 0.14 completes a non-blocking connect only when it has
     * something to write: the PING is also what makes it connect. With
     * Sentinel, ROLE both says the connection is usable and that the node
     * is (still) a master. */
    redisAsyncCommand(ac, on_ready_ping, NULL, br->sent != NULL ? "ROLE" : "PING");
    uv_timer_start(&rc->timer, on_retry_timer, CONNECT_TIMEOUT_MS, 0);
}

/* ---- Sentinel (redis_sentinel.h) ----------------------------------------------------------- */

/* The sentinels named a (new) master: both connections go there now, with
 * their backoff reset. Runs in a sentinel connection's callback, never in
 * one of these two connections'. */
static void on_master_switch(void *user_data, const char *host, unsigned port)
{
    (void)host;
    (void)port;
    bridge_t *br = user_data;
    if (br->stopping) {
        return;
    }
    br->switching = true; /* not a loss: no need to ask the sentinels again */
    if (br->sub.bs != NULL) {
        bridge_sub_lost(&br->sub, br->sub.connected ? "the master moved" : NULL);
    }
    if (br->pub.ac != NULL) {
        redisAsyncContext *ac = br->pub.ac;
        br->pub.ac = NULL;
        redisAsyncFree(ac); /* calls on_disconnect when it was connected */
        br->pub.connected = false;
        br->pub.ready = false;
        bridge_update_health(br);
    }
    br->switching = false;
    rconn_t *conns[2] = {&br->pub, &br->sub};
    for (int i = 0; i < 2; i++) {
        conns[i]->backoff_ms = BACKOFF_MIN_MS;
        uv_timer_start(&conns[i]->timer, on_retry_timer, 0, 0);
    }
}

void bridge_sentinel_init(bridge_t *br)
{
    if (br->cfg.sentinels == NULL) {
        return;
    }
    static const sentinel_cb_t cb = {on_master_switch};
    sentinel_config_t sc = {
        .sentinels = br->cfg.sentinels,
        .master_name = br->cfg.master_name,
        .password = br->cfg.sentinel_password,
        .backoff_max_ms = br->cfg.reconnect_max_ms,
    };
    br->sent = sentinel_new(&sc, &cb, br);
}

const char *bridge_server(bridge_t *br, char *addr, size_t len)
{
    if (br->sent != NULL) {
        sentinel_addr(br->sent, addr, len);
        return "sentinel";
    }
    if (br->cl != NULL) {
        /* The first seed: a cluster has as many servers as masters. */
        bool v6 = strchr(br->cfg.host, ':') != NULL;
        (void)snprintf(addr, len, v6 ? "[%s]:%u" : "%s:%u", br->cfg.host, br->cfg.port);
        return "cluster";
    }
    bool v6 = strchr(br->cfg.host, ':') != NULL;
    (void)snprintf(addr, len, v6 ? "[%s]:%u" : "%s:%u", br->cfg.host, br->cfg.port);
    return "single";
}

void bridge_rconn_init(bridge_t *br, rconn_t *rc, bool is_sub, shard_t *shard)
{
    rc->br = br;
    rc->role = is_sub ? "sub" : "pub";
    rc->is_sub = is_sub;
    rc->shard = shard;
    rc->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(&br->loop, &rc->timer);
    rc->timer.data = rc;
}

void bridge_rconn_close(rconn_t *rc, uv_close_cb close_cb)
{
    rc->closed = true;
    uv_timer_stop(&rc->timer);
    if (rc->ac != NULL) {
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks get NULL; on_disconnect returns early */
    }
    if (rc->bs != NULL) {
        bridge_sub_close(rc->bs); /* freed as the loop winds down */
        rc->bs = NULL;
    }
    rc->connected = false;
    rc->ready = false;
    uv_close((uv_handle_t *)&rc->timer, close_cb);
}
