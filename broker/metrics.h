/*
 * metrics.h - the broker's counters and their Prometheus text rendering.
 *
 * Counters are plain integers owned by one loop (the server); gauges that
 * other modules already know (connections, subscriptions, topics, queued
 * bytes) are read from them at render time instead of being duplicated.
 */
#ifndef WSB_BROKER_METRICS_H
#define WSB_BROKER_METRICS_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>

/* WebSocket close codes the broker sends, counted by code. */
#define METRICS_CLOSE_CODES(X)                                                                     \
    X(1000) X(1001) X(1002) X(1003) X(1007) X(1008) X(1009) X(1011) X(1013)

/* Error replies, counted by code (the WSB_ERR_* strings). */
#define METRICS_ERROR_CODES(X)                                                                     \
    X(bad_json)                                                                                    \
    X(bad_type)                                                                                    \
    X(missing_field) X(bad_field) X(bad_topic) X(bad_since) X(forbidden) X(too_large)              \
        X(limit_exceeded) X(not_subscribed) X(rate_limited) X(internal)

#define METRICS_BATCH_BUCKETS 12 /* frames per write: 1, 2, 4, ... 1024, +Inf */

typedef struct {
    uint64_t connections_accepted;
    uint64_t connections_rejected; /* over max_connections */
    uint64_t ws_upgrades;
    uint64_t handshake_failures;
    uint64_t http_requests;
    uint64_t messages_published; /* accepted publishes, all ingresses */
    uint64_t messages_published_http;
    uint64_t messages_delivered; /* frames queued to subscribers */
    uint64_t messages_received;  /* WebSocket data messages read */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t slow_consumer_closes;
    uint64_t header_timeouts;
    uint64_t idle_timeouts;
    uint64_t write_calls; /* uv_try_write + uv_write */
    uint64_t batch_hist[METRICS_BATCH_BUCKETS];
    uint64_t batch_frames;
#define X(code) uint64_t close_##code;
    METRICS_CLOSE_CODES(X)
#undef X
#define X(code) uint64_t error_##code;
    METRICS_ERROR_CODES(X)
#undef X
} metrics_t;

/* Counts one sent close code (codes outside the list are ignored). */
void metrics_count_close(metrics_t *m, int code);

/* Counts one error reply by its code string. */
void metrics_count_error(metrics_t *m, const char *code);

/* Records a write of `frames` queued slices in the batch histogram. */
void metrics_count_batch(metrics_t *m, unsigned frames);

/* Gauges supplied by the server at render time. */
typedef struct {
    size_t connections;
    size_t ws_connections;
    size_t subscriptions;
    size_t patterns;
    size_t topics;
    size_t outbound_bytes;
    double uptime_seconds;
} metrics_gauges_t;

/* Appends the Prometheus text exposition (version 0.0.4) to `out`. */
void metrics_render(const metrics_t *m, const metrics_gauges_t *g, sbuf_t *out);

#endif
