/*
 * sys_stats.h - $sys.node.<id>.stats: worker 0 publishes the node's
 * statistics every sys.stats_interval (PROTOCOL.md "$sys topics"):
 *
 *   {"node","uptime_s","connections","subscriptions","topics",
 *    "messages_in_per_s","messages_out_per_s","slow_consumer_closes",
 *    "workers":[{"worker","connections","subscriptions","messages_in_per_s",
 *                "messages_out_per_s","slow_consumer_closes","inbox_depth"}…]}
 *
 * Rates are over the time since the previous publish; counts are gauges
 * (connections, subscriptions, topics) or totals since start
 * (slow_consumer_closes). Everything is read from the workers' metrics
 * (relaxed atomic loads, metrics.h): no lock, no message to the workers.
 *
 * Driven by worker 0's heartbeat (once a second), so the period has a
 * resolution of one heartbeat. State: one allocation per worker 0, created at
 * the first tick, freed by sys_stats_free(). It sees the process through the
 * core (core_t: the workers' metrics, the sequence table), not worker_t.
 */
#ifndef WSB_BROKER_APP_SYS_STATS_H
#define WSB_BROKER_APP_SYS_STATS_H

#include "core/core.h"

#include <stdint.h>

typedef struct sys_stats_s sys_stats_t;

/* What a tick needs besides the publishing worker's core part. */
typedef struct {
    const char *node_id;
    uint64_t interval_ms; /* sys.stats_interval; 0 = off */
    double uptime_s;
} sys_stats_env_t;

/* Called by worker 0 on every heartbeat: publishes when the period is due.
 * The first call only takes the baseline (*st, created then). Nothing when
 * the period is 0. */
void sys_stats_tick(sys_stats_t **st, core_worker_t *w, const sys_stats_env_t *env);

/* Releases worker 0's state (NULL-safe). */
void sys_stats_free(sys_stats_t *st);

#endif
