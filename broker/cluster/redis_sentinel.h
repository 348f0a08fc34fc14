/*
 * redis_sentinel.h - the federation's Redis server found through Redis
 * Sentinel (redis.sentinels, redis.master_name) instead of redis.url.
 *
 * The bridge (bridge_redis.h) asks this module which server its two
 * connections use. It asks the sentinels in turn, on one connection each
 * (bridge_sub.h, non-blocking on the bridge loop, with a timeout):
 *
 *   [AUTH <redis.sentinel_password>]
 *   SENTINEL get-master-addr-by-name <redis.master_name>
 *   SUBSCRIBE +switch-master
 *
 * pipelined, so no switch can fall between the answer and the subscription.
 * A sentinel that does not answer, refuses, or does not know the name is
 * left for the next one; when every sentinel failed, the round starts again
 * after a backoff (100 ms doubling to redis.reconnect_max). The connection
 * that answered stays open, subscribed: a `+switch-master <name> <old-ip>
 * <old-port> <new-ip> <new-port>` for our name moves both bridge connections
 * to the new master at once (sentinel_cb_t.on_switch).
 *
 * A node that answers ROLE with anything but "master" (a demoted master that
 * still accepts connections) is not used: the bridge drops the connection
 * and calls sentinel_master_lost(), which asks the sentinels again, as any
 * loss of a master connection does: a +switch-master sent while our
 * subscription was down is not missed for long.
 *
 * Bridge thread only, but sentinel_addr() (any thread, under a mutex).
 * Lifetime: sentinel_new() -> sentinel_start() (on the loop) ->
 * sentinel_stop() (on the loop; closes) -> the loop runs its closes ->
 * sentinel_free().
 */
#ifndef WSB_BROKER_REDIS_SENTINEL_H
#define WSB_BROKER_REDIS_SENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sentinel_s sentinel_t;
struct redisReply;

/* Longest host name the module keeps (a sentinel's or a master's). */
#define SENTINEL_HOST_MAX 255
/* The most sentinels redis.sentinels may list. */
#define SENTINEL_MAX 16

typedef struct {
    /* The master is now host:port (found the first time, or moved): the
     * bridge's connections must (re)connect there now. `host` is borrowed
     * until the callback returns. */
    void (*on_switch)(void *user_data, const char *host, unsigned port);
} sentinel_cb_t;

typedef struct {
    const char *sentinels;   /* "host:port,[::1]:port,…" (validated by sentinel_parse_list) */
    const char *master_name; /* redis.master_name */
    const char *password;    /* redis.sentinel_password; NULL: no AUTH */
    uint64_t backoff_max_ms; /* redis.reconnect_max */
} sentinel_config_t;

/* Validates a comma-separated list of host:port entries (an IPv6 address in
 * brackets; port 1-65535; at most SENTINEL_MAX; "" is valid and empty).
 * Returns the number of entries, or -1. */
int sentinel_parse_list(const char *list);

/* A sentinel client for `cfg` (strings borrowed: they must outlive it).
 * Owner: the caller, released with sentinel_free(). Aborts on OOM. */
sentinel_t *sentinel_new(const sentinel_config_t *cfg, const sentinel_cb_t *cb, void *user_data);

/* Starts asking the sentinels, on `loop` (the bridge's). */
void sentinel_start(sentinel_t *s, uv_loop_t *loop);

/* Copies the master in use, "host:port", into `buf` ("" until one is
 * known). Any thread. */
void sentinel_addr(sentinel_t *s, char *buf, size_t len);

/* The master in use: true with *host (valid until the next callback of this
 * module) and *port, or false when none is known yet. Bridge thread. */
bool sentinel_master(const sentinel_t *s, const char **host, unsigned *port);

/* A connection to the master was lost, refused, or found a node that is not
 * a master: ask the sentinels again (unless a round is under way). */
void sentinel_master_lost(sentinel_t *s);

/* True when `reply` (to ROLE) says the node is a master. */
bool sentinel_role_is_master(const struct redisReply *reply);

/* Closes the sentinel connection and timer (bridge thread, once). */
void sentinel_stop(sentinel_t *s);

/* Frees it, after the loop ran the closes sentinel_stop() started (or when
 * it was never started). NULL is fine. */
void sentinel_free(sentinel_t *s);

#endif
