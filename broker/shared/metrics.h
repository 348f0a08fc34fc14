/*
 * metrics.h - the broker's counters and their Prometheus text rendering.
 *
 * Each worker owns one metrics_t and is its only writer; /metrics, served by
 * whichever worker got the request, reads every worker's. The fields are
 * atomics written with a relaxed load + store (no read-modify-write, so no
 * locked instruction on the hot path: there is one writer) and read with
 * relaxed loads: a scrape sees each value whole, possibly a moment old.
 * One exception, off the hot path: `inbox_dropped` is counted by whichever
 * thread found that worker's inbox full, with METRIC_ADD_SHARED (an atomic
 * add), so that each worker's series says which worker missed messages.
 */
#ifndef WSB_BROKER_METRICS_H
#define WSB_BROKER_METRICS_H

#include "shared/util.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* WebSocket close codes the broker sends, counted by code. */
#define METRICS_CLOSE_CODES(X)                                                                     \
    X(1000)                                                                                        \
    X(1001) X(1002) X(1003) X(1007) X(1008) X(1009) X(1011) X(1013) X(4001) X(4002) X(4003) X(4100)

/* Error replies, counted by code (the WSB_ERR_* strings). */
#define METRICS_ERROR_CODES(X)                                                                     \
    X(bad_json)                                                                                    \
    X(bad_type)                                                                                    \
    X(missing_field)                                                                               \
    X(bad_field)                                                                                   \
    X(bad_topic)                                                                                   \
    X(bad_since)                                                                                   \
    X(forbidden)                                                                                   \
    X(too_large)                                                                                   \
    X(limit_exceeded) X(not_subscribed) X(rate_limited) X(internal) X(unauthorized) X(not_available)

#define METRICS_BATCH_BUCKETS 12 /* frames per write: 1, 2, 4, ... 1024, +Inf */

typedef _Atomic uint64_t metric_t;

/* Single-writer update and any-thread read (see the header comment). */
#define METRIC_ADD(m, n)                                                                           \
    atomic_store_explicit(&(m), atomic_load_explicit(&(m), memory_order_relaxed) + (uint64_t)(n),  \
                          memory_order_relaxed)
/* Any-thread update of a counter several threads add to (see above). */
#define METRIC_ADD_SHARED(m, n) atomic_fetch_add_explicit(&(m), (uint64_t)(n), memory_order_relaxed)
#define METRIC_SET(m, v)        atomic_store_explicit(&(m), (uint64_t)(v), memory_order_relaxed)
#define METRIC_GET(m)           atomic_load_explicit(&(m), memory_order_relaxed)

typedef struct {
    /* gauges, mirrored by the owning worker */
    metric_t connections;
    metric_t ws_connections;
    metric_t subscriptions;
    metric_t patterns;
    metric_t outbound_bytes;
    metric_t inbox_depth;
    metric_t heartbeat_ms; /* loop time of the worker's last heartbeat */
    metric_t resp_connections;
    /* counters */
    metric_t connections_accepted;
    metric_t connections_rejected; /* over max_connections */
    metric_t ws_upgrades;
    metric_t handshake_failures;
    metric_t http_requests;
    metric_t messages_published; /* accepted publishes, all ingresses */
    metric_t messages_published_http;
    metric_t messages_published_resp;
    metric_t resp_commands;
    metric_t resp_connections_accepted;
    metric_t messages_delivered; /* frames queued to subscribers */
    metric_t messages_received;  /* WebSocket data messages read */
    metric_t inbox_dropped;      /* messages this worker missed: its inbox was full (shared) */
    metric_t publisher_pauses;   /* publishers this worker stopped reading: inbox pressure */
    metric_t read_yields;        /* reads stopped for the turn: NET_READ_TURN_BUDGET used */
    metric_t bytes_in;
    metric_t bytes_out;
    metric_t slow_consumer_closes;
    metric_t history_gaps;          /* gap notices sent instead of close 1013 */
    metric_t conflated;             /* unsent frames replaced by a newer one of their topic */
    metric_t history_recovered;     /* subscribes with since answered recovered:true */
    metric_t history_not_recovered; /* ... recovered:false */
    metric_t history_replayed;      /* messages replayed from history */
    metric_t presence_events;       /* join/leave events handed to the fan-out */
    metric_t header_timeouts;
    metric_t idle_timeouts;
    metric_t write_calls; /* uv_try_write + uv_write */
    /* permessage-deflate (xmsg_deflated_buf): compressions run (one per
     * message and worker), their payload bytes before and after, their time,
     * compressed frames queued, and compressed messages received */
    metric_t deflate_messages;
    metric_t deflate_bytes_in;
    metric_t deflate_bytes_out;
    metric_t deflate_ns;
    metric_t deflate_deliveries;
    metric_t inflate_messages;
    metric_t batch_hist[METRICS_BATCH_BUCKETS];
    metric_t batch_frames;
#define X(code) metric_t close_##code;
    METRICS_CLOSE_CODES(X)
#undef X
#define X(code) metric_t error_##code;
    METRICS_ERROR_CODES(X)
#undef X
} metrics_t;

/* Sets every field to 0 (the owner does this before its thread starts). */
void metrics_init(metrics_t *m);

/* Counts one sent close code (codes outside the list are ignored). */
void metrics_count_close(metrics_t *m, int code);

/* Counts one error reply by its code string. */
void metrics_count_error(metrics_t *m, const char *code);

/* Records a write of `frames` queued slices in the batch histogram. */
void metrics_count_batch(metrics_t *m, unsigned frames);

/* Process-wide gauges supplied at render time. */
typedef struct {
    size_t topics;
    double uptime_seconds; /* the clock of heartbeat_ms, in seconds */
    unsigned workers;
    unsigned max_connections; /* the configured bound, for "near the limit" alerts */
} metrics_gauges_t;

/* Appends the Prometheus text exposition (version 0.0.4) of `n` workers'
 * metrics to `out`: totals, plus per-worker series labelled worker="i"
 * for connections, deliveries, inbox drops and the age of each worker's last
 * heartbeat (a stuck loop's age grows), plus the process's open and maximum
 * file descriptors (process_open_fds from /proc/self/fd, process_max_fds from
 * RLIMIT_NOFILE; each left out when it cannot be read). */
void metrics_render(metrics_t *const *workers, unsigned n, const metrics_gauges_t *g, sbuf_t *out);

#endif
