/* metrics.c - counters and their Prometheus text exposition (see metrics.h). */
#include "shared/metrics.h"

#include <dirent.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

void metrics_init(metrics_t *m)
{
    /* Atomics of integer type have no padding or traps: zeroing their bytes
     * is a valid initialisation before the object is shared. */
    memset(m, 0, sizeof(*m));
}

void metrics_count_close(metrics_t *m, int code)
{
    switch (code) {
#define X(c)                                                                                       \
    case c:                                                                                        \
        METRIC_ADD(m->close_##c, 1);                                                               \
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
        METRIC_ADD(m->error_##c, 1);                                                               \
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
    METRIC_ADD(m->batch_hist[b], 1);
    METRIC_ADD(m->batch_frames, frames);
}

static void header(sbuf_t *o, const char *name, const char *type, const char *help)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(sbuf_t *o, const char *name, const char *help, uint64_t v)
{
    header(o, name, "counter", help);
    sbuf_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(sbuf_t *o, const char *name, const char *help, double v)
{
    header(o, name, "gauge", help);
    sbuf_printf(o, "%s %.17g\n", name, v);
}

static uint64_t sum_field(metrics_t *const *w, unsigned n, size_t offset)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++) {
        metric_t *f = (metric_t *)(void *)((char *)w[i] + offset);
        sum += METRIC_GET(*f);
    }
    return sum;
}

#define TOTAL(field) sum_field(w, n, offsetof(metrics_t, field))

static void per_worker(sbuf_t *o, metrics_t *const *w, unsigned n, const char *name,
                       const char *type, const char *help, size_t offset)
{
    header(o, name, type, help);
    for (unsigned i = 0; i < n; i++) {
        metric_t *f = (metric_t *)(void *)((char *)w[i] + offset);
        sbuf_printf(o, "%s{worker=\"%u\"} %llu\n", name, i, (unsigned long long)METRIC_GET(*f));
    }
}

/* Open descriptors of this process, -1 when /proc/self/fd cannot be read.
 * Linux 6.2 and later give the count as the directory's size (constant
 * time); older kernels say 0 there, and the directory is read instead, which
 * costs about 2 ms per 1,000 descriptors on the scraping worker's loop. The
 * directory's own descriptor is not counted. */
static long open_fds(void)
{
    struct stat st;
    if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0) {
        return (long)st.st_size;
    }
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    long n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

static void process_fds(sbuf_t *o)
{
    long open = open_fds();
    if (open >= 0) {
        gauge(o, "process_open_fds", "Open file descriptors.", (double)open);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        gauge(o, "process_max_fds", "Maximum open file descriptors (RLIMIT_NOFILE soft limit).",
              (double)rl.rlim_cur);
    }
}

static void heartbeat_ages(sbuf_t *o, metrics_t *const *w, unsigned n, double now_s)
{
    header(o, "wsbroker_worker_heartbeat_age_seconds", "gauge",
           "Seconds since the worker's loop last ran its 1 s heartbeat; a stuck worker's grows.");
    for (unsigned i = 0; i < n; i++) {
        double age = now_s - (double)METRIC_GET(w[i]->heartbeat_ms) / 1000.0;
        sbuf_printf(o, "wsbroker_worker_heartbeat_age_seconds{worker=\"%u\"} %.3f\n", i,
                    age > 0 ? age : 0.0);
    }
}

void metrics_render(metrics_t *const *w, unsigned n, const metrics_gauges_t *g, sbuf_t *o)
{
    gauge(o, "wsbroker_connections", "Open TCP connections.", (double)TOTAL(connections));
    gauge(o, "wsbroker_websocket_connections", "Open WebSocket sessions.",
          (double)TOTAL(ws_connections));
    gauge(o, "wsbroker_subscriptions", "Subscriptions (pattern, connection pairs).",
          (double)TOTAL(subscriptions));
    gauge(o, "wsbroker_subscription_patterns", "Distinct subscribed patterns, summed over workers.",
          (double)TOTAL(patterns));
    gauge(o, "wsbroker_topics", "Topics with a sequence counter.", (double)g->topics);
    gauge(o, "wsbroker_outbound_queued_bytes", "Bytes queued for slow readers.",
          (double)TOTAL(outbound_bytes));
    gauge(o, "wsbroker_uptime_seconds", "Seconds since start.", g->uptime_seconds);
    gauge(o, "wsbroker_workers", "Worker threads (event loops).", (double)g->workers);
    gauge(o, "wsbroker_max_connections", "Configured max_connections (open connections at most).",
          (double)g->max_connections);
    process_fds(o);
    counter(o, "wsbroker_connections_accepted_total", "TCP connections accepted.",
            TOTAL(connections_accepted));
    counter(o, "wsbroker_connections_rejected_total",
            "Connections refused at accept: max_connections, max_connections_per_ip, or the TLS "
            "handshake budget (max_handshakes_per_second).",
            TOTAL(connections_rejected));
    counter(o, "wsbroker_websocket_upgrades_total", "Successful WebSocket handshakes.",
            TOTAL(ws_upgrades));
    counter(o, "wsbroker_handshake_failures_total", "Refused WebSocket handshakes.",
            TOTAL(handshake_failures));
    counter(o, "wsbroker_http_requests_total", "Plain HTTP requests served.", TOTAL(http_requests));
    counter(o, "wsbroker_messages_published_total", "Messages accepted for publishing.",
            TOTAL(messages_published));
    counter(o, "wsbroker_http_publishes_total", "Messages published through /api/publish.",
            TOTAL(messages_published_http));
    counter(o, "wsbroker_resp_publishes_total", "Messages published through the RESP ingress.",
            TOTAL(messages_published_resp));
    counter(o, "wsbroker_resp_commands_total", "Commands received on the RESP ingress.",
            TOTAL(resp_commands));
    counter(o, "wsbroker_resp_connections_accepted_total", "RESP connections accepted.",
            TOTAL(resp_connections_accepted));
    gauge(o, "wsbroker_resp_connections", "Open RESP connections.",
          (double)TOTAL(resp_connections));
    counter(o, "wsbroker_messages_delivered_total", "Message frames queued to subscribers.",
            TOTAL(messages_delivered));
    counter(o, "wsbroker_messages_received_total", "WebSocket data messages received.",
            TOTAL(messages_received));
    counter(o, "wsbroker_inbox_dropped_total",
            "Messages not delivered on a worker because its inbox was full.", TOTAL(inbox_dropped));
    counter(o, "wsbroker_publisher_pauses_total",
            "Times a publishing connection (WebSocket, HTTP or RESP) stopped being read because "
            "some worker's inbox was over its high mark.",
            TOTAL(publisher_pauses));
    counter(o, "wsbroker_read_yields_total",
            "Times a connection that had read 128 KiB in a row stopped being read until the end "
            "of its worker's loop turn, so the worker's other connections are served.",
            TOTAL(read_yields));
    counter(o, "wsbroker_bytes_in_total", "Bytes read from clients.", TOTAL(bytes_in));
    counter(o, "wsbroker_bytes_out_total", "Bytes written to clients.", TOTAL(bytes_out));
    counter(o, "wsbroker_slow_consumer_closes_total",
            "Connections closed with 1013 for exceeding their outbound bound.",
            TOTAL(slow_consumer_closes));
    counter(o, "wsbroker_history_gaps_total",
            "Gap notices sent to slow consumers on history topics instead of close 1013.",
            TOTAL(history_gaps));
    counter(o, "wsbroker_conflated_total",
            "Unsent message frames dropped because a newer one of the same conflated topic "
            "replaced them in a subscriber's backlog.",
            TOTAL(conflated));
    header(o, "wsbroker_history_recoveries_total", "counter",
           "Subscribes with since, by outcome (recovered true or false).");
    sbuf_printf(o,
                "wsbroker_history_recoveries_total{result=\"recovered\"} %llu\n"
                "wsbroker_history_recoveries_total{result=\"failed\"} %llu\n",
                (unsigned long long)TOTAL(history_recovered),
                (unsigned long long)TOTAL(history_not_recovered));
    counter(o, "wsbroker_history_replayed_total", "Messages replayed from history.",
            TOTAL(history_replayed));
    counter(o, "wsbroker_presence_events_total",
            "Join and leave events handed to the fan-out (one per event, not per subscriber).",
            TOTAL(presence_events));
    counter(o, "wsbroker_header_timeouts_total", "HTTP request heads not received in time.",
            TOTAL(header_timeouts));
    counter(o, "wsbroker_idle_timeouts_total", "WebSocket sessions closed for silence.",
            TOTAL(idle_timeouts));
    counter(o, "wsbroker_write_calls_total", "Socket write calls (try_write and write).",
            TOTAL(write_calls));
    counter(o, "wsbroker_deflate_messages_total",
            "permessage-deflate compressions run (at most one per published message and worker, "
            "shared by its compressed deliveries).",
            TOTAL(deflate_messages));
    counter(o, "wsbroker_deflate_bytes_in_total",
            "Payload bytes given to permessage-deflate compression.", TOTAL(deflate_bytes_in));
    counter(o, "wsbroker_deflate_bytes_out_total",
            "Payload bytes out of permessage-deflate compression (a message that did not shrink "
            "counts its own size and goes out plain).",
            TOTAL(deflate_bytes_out));
    header(o, "wsbroker_deflate_seconds_total", "counter",
           "Time spent in permessage-deflate compression.");
    sbuf_printf(o, "wsbroker_deflate_seconds_total %.6f\n", (double)TOTAL(deflate_ns) / 1e9);
    counter(o, "wsbroker_deflate_deliveries_total",
            "Compressed message frames queued to subscribers (each one a shared frame).",
            TOTAL(deflate_deliveries));
    counter(o, "wsbroker_inflate_messages_total",
            "Compressed WebSocket messages received and inflated.", TOTAL(inflate_messages));

    per_worker(o, w, n, "wsbroker_worker_connections", "gauge", "Open connections per worker.",
               offsetof(metrics_t, connections));
    per_worker(o, w, n, "wsbroker_worker_messages_delivered_total", "counter",
               "Message frames queued to subscribers, per worker.",
               offsetof(metrics_t, messages_delivered));
    per_worker(o, w, n, "wsbroker_worker_inbox_depth", "gauge",
               "Messages waiting in the worker's inbox at its last turn.",
               offsetof(metrics_t, inbox_depth));
    per_worker(o, w, n, "wsbroker_worker_inbox_dropped_total", "counter",
               "Messages dropped for the worker because its inbox was full.",
               offsetof(metrics_t, inbox_dropped));
    heartbeat_ages(o, w, n, g->uptime_seconds);

    header(o, "wsbroker_close_frames_total", "counter", "WebSocket close frames sent, by code.");
#define X(c)                                                                                       \
    sbuf_printf(o, "wsbroker_close_frames_total{code=\"%d\"} %llu\n", c,                           \
                (unsigned long long)TOTAL(close_##c));
    METRICS_CLOSE_CODES(X)
#undef X
    header(o, "wsbroker_protocol_errors_total", "counter", "Error replies sent, by code.");
#define X(c)                                                                                       \
    sbuf_printf(o, "wsbroker_protocol_errors_total{code=\"%s\"} %llu\n", #c,                       \
                (unsigned long long)TOTAL(error_##c));
    METRICS_ERROR_CODES(X)
#undef X
    header(o, "wsbroker_write_batch_frames", "histogram",
           "Buffers per socket write (fan-out batching): one per frame, or one per run of a "
           "topic's frames that share a chunk.");
    uint64_t cum = 0;
    for (unsigned b = 0; b < METRICS_BATCH_BUCKETS; b++) {
        cum += TOTAL(batch_hist[b]);
        if (b == METRICS_BATCH_BUCKETS - 1) {
            sbuf_printf(o, "wsbroker_write_batch_frames_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)cum);
        } else {
            sbuf_printf(o, "wsbroker_write_batch_frames_bucket{le=\"%u\"} %llu\n", 1u << b,
                        (unsigned long long)cum);
        }
    }
    sbuf_printf(o, "wsbroker_write_batch_frames_sum %llu\nwsbroker_write_batch_frames_count %llu\n",
                (unsigned long long)TOTAL(batch_frames), (unsigned long long)cum);
}
