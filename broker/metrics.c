/* metrics.c - counters and their Prometheus text exposition (see metrics.h). */
#include "metrics.h"

#include <string.h>

void metrics_count_close(metrics_t *m, int code)
{
    switch (code) {
#define X(c)                                                                                       \
    case c:                                                                                        \
        m->close_##c++;                                                                            \
        break;
        METRICS_CLOSE_CODES(X)
#undef X
    default:
        break;
    }
}

void metrics_count_error(metrics_t *m, const char *code)
{
#define X(c)                                                                                       \
    if (strcmp(code, #c) == 0) {                                                                   \
        m->error_##c++;                                                                            \
        return;                                                                                    \
    }
    METRICS_ERROR_CODES(X)
#undef X
}

void metrics_count_batch(metrics_t *m, unsigned frames)
{
    unsigned b = 0;
    while (b < METRICS_BATCH_BUCKETS - 1 && (1u << b) < frames) {
        b++;
    }
    m->batch_hist[b]++;
    m->batch_frames += frames;
}

static void counter(sbuf_t *o, const char *name, const char *help, uint64_t v)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                (unsigned long long)v);
}

static void gauge(sbuf_t *o, const char *name, const char *help, double v)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

void metrics_render(const metrics_t *m, const metrics_gauges_t *g, sbuf_t *o)
{
    gauge(o, "wsbroker_connections", "Open TCP connections.", (double)g->connections);
    gauge(o, "wsbroker_websocket_connections", "Open WebSocket sessions.",
          (double)g->ws_connections);
    gauge(o, "wsbroker_subscriptions", "Subscriptions (pattern, connection pairs).",
          (double)g->subscriptions);
    gauge(o, "wsbroker_subscription_patterns", "Distinct subscribed patterns.",
          (double)g->patterns);
    gauge(o, "wsbroker_topics", "Topics with a sequence counter.", (double)g->topics);
    gauge(o, "wsbroker_outbound_queued_bytes", "Bytes queued for slow readers.",
          (double)g->outbound_bytes);
    gauge(o, "wsbroker_uptime_seconds", "Seconds since start.", g->uptime_seconds);
    counter(o, "wsbroker_connections_accepted_total", "TCP connections accepted.",
            m->connections_accepted);
    counter(o, "wsbroker_connections_rejected_total", "Connections refused over max_connections.",
            m->connections_rejected);
    counter(o, "wsbroker_websocket_upgrades_total", "Successful WebSocket handshakes.",
            m->ws_upgrades);
    counter(o, "wsbroker_handshake_failures_total", "Refused WebSocket handshakes.",
            m->handshake_failures);
    counter(o, "wsbroker_http_requests_total", "Plain HTTP requests served.", m->http_requests);
    counter(o, "wsbroker_messages_published_total", "Messages accepted for publishing.",
            m->messages_published);
    counter(o, "wsbroker_http_publishes_total", "Messages published through /api/publish.",
            m->messages_published_http);
    counter(o, "wsbroker_messages_delivered_total", "Message frames queued to subscribers.",
            m->messages_delivered);
    counter(o, "wsbroker_messages_received_total", "WebSocket data messages received.",
            m->messages_received);
    counter(o, "wsbroker_bytes_in_total", "Bytes read from clients.", m->bytes_in);
    counter(o, "wsbroker_bytes_out_total", "Bytes written to clients.", m->bytes_out);
    counter(o, "wsbroker_slow_consumer_closes_total",
            "Connections closed with 1013 for exceeding their outbound bound.",
            m->slow_consumer_closes);
    counter(o, "wsbroker_header_timeouts_total", "HTTP request heads not received in time.",
            m->header_timeouts);
    counter(o, "wsbroker_idle_timeouts_total", "WebSocket sessions closed for silence.",
            m->idle_timeouts);
    counter(o, "wsbroker_write_calls_total", "Socket write calls (try_write and write).",
            m->write_calls);

    sbuf_puts(o, "# HELP wsbroker_close_frames_total WebSocket close frames sent, by code.\n"
                 "# TYPE wsbroker_close_frames_total counter\n");
#define X(c)                                                                                       \
    sbuf_printf(o, "wsbroker_close_frames_total{code=\"%d\"} %llu\n", c,                           \
                (unsigned long long)m->close_##c);
    METRICS_CLOSE_CODES(X)
#undef X
    sbuf_puts(o, "# HELP wsbroker_protocol_errors_total Error replies sent, by code.\n"
                 "# TYPE wsbroker_protocol_errors_total counter\n");
#define X(c)                                                                                       \
    sbuf_printf(o, "wsbroker_protocol_errors_total{code=\"%s\"} %llu\n", #c,                       \
                (unsigned long long)m->error_##c);
    METRICS_ERROR_CODES(X)
#undef X
    sbuf_puts(o, "# HELP wsbroker_write_batch_frames Frames per socket write (fan-out batching).\n"
                 "# TYPE wsbroker_write_batch_frames histogram\n");
    uint64_t cum = 0;
    for (unsigned b = 0; b < METRICS_BATCH_BUCKETS; b++) {
        cum += m->batch_hist[b];
        if (b == METRICS_BATCH_BUCKETS - 1) {
            sbuf_printf(o, "wsbroker_write_batch_frames_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)cum);
        } else {
            sbuf_printf(o, "wsbroker_write_batch_frames_bucket{le=\"%u\"} %llu\n", 1u << b,
                        (unsigned long long)cum);
        }
    }
    sbuf_printf(o, "wsbroker_write_batch_frames_sum %llu\nwsbroker_write_batch_frames_count %llu\n",
                (unsigned long long)m->batch_frames, (unsigned long long)cum);
}
