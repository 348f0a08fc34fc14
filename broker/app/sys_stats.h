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
 * the first tick, freed by sys_stats_free().
 */
#ifndef WSB_BROKER_APP_SYS_STATS_H
#define WSB_BROKER_APP_SYS_STATS_H

#include <stdint.h>

typedef struct worker_s worker_t;
typedef struct sys_stats_s sys_stats_t;

/* Called by worker 0 on every heartbeat: publishes when the period is due.
 * The first call only takes the baseline. Nothing when the period is 0. */
void sys_stats_tick(worker_t *w);

/* Releases worker 0's state (NULL-safe). */
void sys_stats_free(sys_stats_t *st);

#endif
