/* report.c - renderings of a run's results (see report.h). */
#include "report.h"

#include <inttypes.h>

void report_derive(const results_t *r, derived_t *d)
{
    d->failures = r->fail_connect + r->fail_handshake + r->fail_subscribe + r->fail_timeout;
    d->loss = (int64_t)r->expected - (int64_t)(r->o->churn > 0 ? r->listener_events : r->received);
    d->deliveries_per_s = r->deliver_s > 0 ? (double)r->received / r->deliver_s : 0;
    d->publish_per_s = r->publish_s > 0 ? (double)r->acked / r->publish_s : 0;
    d->payload_bytes_per_s = d->deliveries_per_s * (double)r->o->payload;
    d->wire_bytes_per_s = r->deliver_s > 0 ? (double)r->bytes_in / r->deliver_s : 0;
    d->broker_cpu_s = 0;
    d->broker_cpu_s_per_m = 0;
    d->deliveries_per_broker_cpu = 0;
    d->rss_per_conn_bytes = 0;
    if (r->broker) {
        d->broker_cpu_s = (r->broker_run_end.user_s + r->broker_run_end.system_s) -
                          (r->broker_run_start.user_s + r->broker_run_start.system_s);
        if (r->received > 0) {
            d->broker_cpu_s_per_m = d->broker_cpu_s / ((double)r->received / 1e6);
        }
        if (d->broker_cpu_s > 0) {
            d->deliveries_per_broker_cpu = (double)r->received / d->broker_cpu_s;
        }
        uint64_t conns = r->subs_ready + r->pubs_ready;
        if (conns > 0 && r->broker_connected.rss_kib >= r->broker_start.rss_kib) {
            d->rss_per_conn_bytes =
                (double)(r->broker_connected.rss_kib - r->broker_start.rss_kib) * 1024.0 /
                (double)conns;
        }
    }
    d->churn_ops_per_s = r->publish_s > 0 ? (double)r->churn_ops / r->publish_s : 0;
    d->events_per_s = r->publish_s > 0 ? (double)r->events / r->publish_s : 0;
    d->broker_cpu_us_per_op = r->churn_ops > 0 ? d->broker_cpu_s * 1e6 / (double)r->churn_ops : 0;
    d->broker_cpu_us_per_event = r->events > 0 ? d->broker_cpu_s * 1e6 / (double)r->events : 0;
    d->self_cpu_s_per_m = r->received > 0 ? r->self_cpu_s / ((double)r->received / 1e6) : 0;
}

bool report_clean(const results_t *r, const derived_t *d)
{
    return d->failures == 0 && d->loss == 0 && r->disconnects == 0 && r->errors == 0 &&
           r->bad_payload == 0;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

void report_human(FILE *f, const results_t *r)
{
    derived_t d;
    report_derive(r, &d);
    const hist_t *h = r->latency;
    (void)fprintf(f,
                  "connections  %" PRIu64 " subscribers + %" PRIu64
                  " publishers ready in %.2f s (%u threads)\n",
                  r->subs_ready, r->pubs_ready, r->ramp_s, r->threads);
    (void)fprintf(f,
                  "failures     %" PRIu64 " (connect %" PRIu64 ", handshake %" PRIu64
                  ", subscribe %" PRIu64 ", timeout %" PRIu64 "); disconnects %" PRIu64
                  ", errors %" PRIu64 "\n",
                  d.failures, r->fail_connect, r->fail_handshake, r->fail_subscribe,
                  r->fail_timeout, r->disconnects, r->errors);
    (void)fprintf(f, "published    %" PRIu64 " (%" PRIu64 " acked) in %.2f s: %.0f msg/s\n",
                  r->published, r->acked, r->publish_s, d.publish_per_s);
    (void)fprintf(f,
                  "deliveries   %" PRIu64 " of %" PRIu64 " expected, loss %" PRId64
                  " in %.2f s: %.0f/s, payload %.1f MiB/s, wire %.1f MiB/s\n",
                  r->received, r->expected, d.loss, r->deliver_s, d.deliveries_per_s,
                  d.payload_bytes_per_s / 1048576.0, d.wire_bytes_per_s / 1048576.0);
    if (h->total > 0) {
        (void)fprintf(f,
                      "latency us   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean "
                      "%.1f (%" PRIu64 " samples)\n",
                      us(hist_percentile(h, 50)), us(hist_percentile(h, 90)),
                      us(hist_percentile(h, 99)), us(hist_percentile(h, 99.9)), us(h->max),
                      hist_mean(h) / 1000.0, h->total);
    }
    if (r->o->churn > 0) {
        (void)fprintf(f,
                      "churn        %u subscribers: %" PRIu64 " unsubscribes/resubscribes in %.2f "
                      "s: %.0f/s; %" PRIu64 " join/leave received: %.0f/s (listeners: %" PRIu64
                      " of %" PRIu64 " owed)\n",
                      r->o->churn, r->churn_ops, r->publish_s, d.churn_ops_per_s, r->events,
                      d.events_per_s, r->listener_events, r->expected);
        if (r->broker) {
            (void)fprintf(f,
                          "churn CPU    broker %.2f us per join/leave, %.3f us per event "
                          "delivered\n",
                          d.broker_cpu_us_per_op, d.broker_cpu_us_per_event);
        }
    }
    if (r->bad_payload > 0) {
        (void)fprintf(f, "warning      %" PRIu64 " deliveries had no readable timestamp\n",
                      r->bad_payload);
    }
    (void)fprintf(f, "wsbench      %.2f CPU s during the run (%.3f s per million deliveries)\n",
                  r->self_cpu_s, d.self_cpu_s_per_m);
    if (r->broker) {
        (void)fprintf(f,
                      "broker       pid %d: %.2f CPU s during the run, %.3f s per million "
                      "deliveries, %.2f M deliveries per CPU-second\n",
                      r->broker_pid, d.broker_cpu_s, d.broker_cpu_s_per_m,
                      d.deliveries_per_broker_cpu / 1e6);
        (void)fprintf(f,
                      "broker RSS   %" PRIu64 " KiB before, %" PRIu64 " KiB connected (%.0f B "
                      "per connection), peak %" PRIu64 " KiB\n",
                      r->broker_start.rss_kib, r->broker_connected.rss_kib, d.rss_per_conn_bytes,
                      r->broker_rss_peak_kib);
    }
}

void report_json(FILE *f, const results_t *r)
{
    derived_t d;
    report_derive(r, &d);
    const hist_t *h = r->latency;
    (void)fprintf(f, "{\"label\":\"%s\",\"subscribers\":%u,\"publishers\":%u,\"threads\":%u,",
                  r->o->label, r->o->subscribers, r->o->publishers, r->threads);
    (void)fprintf(f, "\"topics\":%u,\"payload_bytes\":%u,\"rate\":%.17g,\"inflight\":%u,",
                  r->o->topics, r->o->payload, r->o->rate, r->o->inflight);
    (void)fprintf(
        f, "\"subscribers_ready\":%" PRIu64 ",\"publishers_ready\":%" PRIu64 ",\"ramp_s\":%.3f,",
        r->subs_ready, r->pubs_ready, r->ramp_s);
    (void)fprintf(f,
                  "\"failures\":{\"total\":%" PRIu64 ",\"connect\":%" PRIu64
                  ",\"handshake\":%" PRIu64 ",\"subscribe\":%" PRIu64 ",\"timeout\":%" PRIu64 "},",
                  d.failures, r->fail_connect, r->fail_handshake, r->fail_subscribe,
                  r->fail_timeout);
    (void)fprintf(f,
                  "\"disconnects\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"bad_payload\":%" PRIu64 ",",
                  r->disconnects, r->errors, r->bad_payload);
    (void)fprintf(f,
                  "\"published\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"expected\":%" PRIu64
                  ",\"received\":%" PRIu64 ",\"loss\":%" PRId64 ",",
                  r->published, r->acked, r->expected, r->received, d.loss);
    (void)fprintf(f,
                  "\"publish_s\":%.3f,\"deliver_s\":%.3f,\"publish_per_s\":%.1f,"
                  "\"deliveries_per_s\":%.1f,\"payload_bytes_per_s\":%.1f,"
                  "\"wire_bytes_per_s\":%.1f,",
                  r->publish_s, r->deliver_s, d.publish_per_s, d.deliveries_per_s,
                  d.payload_bytes_per_s, d.wire_bytes_per_s);
    (void)fprintf(f,
                  "\"latency_us\":{\"samples\":%" PRIu64
                  ",\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
                  "\"mean\":%.1f},",
                  h->total, us(hist_percentile(h, 50)), us(hist_percentile(h, 90)),
                  us(hist_percentile(h, 99)), us(hist_percentile(h, 99.9)), us(h->max),
                  hist_mean(h) / 1000.0);
    if (r->o->churn > 0) {
        (void)fprintf(f,
                      "\"churn\":{\"subscribers\":%u,\"ops\":%" PRIu64 ",\"ops_per_s\":%.1f,"
                      "\"events\":%" PRIu64 ",\"listener_events\":%" PRIu64
                      ",\"events_per_s\":%.1f,\"broker_cpu_us_per_op\":%.3f,"
                      "\"broker_cpu_us_per_event\":%.4f},",
                      r->o->churn, r->churn_ops, d.churn_ops_per_s, r->events, r->listener_events,
                      d.events_per_s, d.broker_cpu_us_per_op, d.broker_cpu_us_per_event);
    }
    (void)fprintf(f, "\"wsbench_cpu_s\":%.3f,\"wsbench_cpu_s_per_m_deliveries\":%.4f",
                  r->self_cpu_s, d.self_cpu_s_per_m);
    if (r->broker) {
        (void)fprintf(f,
                      ",\"broker\":{\"pid\":%d,\"cpu_s\":%.3f,\"cpu_s_per_m_deliveries\":%.4f,"
                      "\"deliveries_per_cpu_s\":%.1f,\"rss_start_kib\":%" PRIu64
                      ",\"rss_connected_kib\":%" PRIu64 ",\"rss_peak_kib\":%" PRIu64
                      ",\"rss_per_connection_bytes\":%.1f,\"threads\":%u}",
                      r->broker_pid, d.broker_cpu_s, d.broker_cpu_s_per_m,
                      d.deliveries_per_broker_cpu, r->broker_start.rss_kib,
                      r->broker_connected.rss_kib, r->broker_rss_peak_kib, d.rss_per_conn_bytes,
                      r->broker_run_end.threads);
    }
    (void)fprintf(f, "}\n");
}

void report_row_header(FILE *f)
{
    (void)fprintf(f, "| scenario | subs | pubs | published | deliveries | loss | fail/drop "
                     "| deliveries/s | payload MiB/s | p50 µs | p90 µs | p99 µs | p99.9 µs "
                     "| max µs | broker CPU s | broker CPU s / M deliv | M deliv / broker "
                     "CPU-s | broker RSS MiB | RSS / conn B | wsbench CPU s |\n");
    (void)fprintf(f, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
                     "--:|--:|--:|\n");
}

void report_row(FILE *f, const results_t *r)
{
    derived_t d;
    report_derive(r, &d);
    const hist_t *h = r->latency;
    /* --churn rows: "published" counts the unsubscribes/resubscribes and
     * "deliveries" the join/leave frames received. */
    bool churn = r->o->churn > 0;
    uint64_t sent = churn ? r->churn_ops : r->acked;
    uint64_t got = churn ? r->events : r->received;
    double got_per_s = churn ? d.events_per_s : d.deliveries_per_s;
    (void)fprintf(f,
                  "| %s | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRId64
                  " | %" PRIu64 "/%" PRIu64 " | %.0f | %.1f |",
                  r->o->label, r->subs_ready, r->pubs_ready, sent, got, d.loss, d.failures,
                  r->disconnects, got_per_s, d.payload_bytes_per_s / 1048576.0);
    if (h->total > 0) {
        (void)fprintf(f, " %.0f | %.0f | %.0f | %.0f | %.0f |", us(hist_percentile(h, 50)),
                      us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
                      us(hist_percentile(h, 99.9)), us(h->max));
    } else {
        (void)fprintf(f, " - | - | - | - | - |");
    }
    if (r->broker) {
        char per_m[32] = "-";
        char per_cpu[32] = "-";
        if (got > 0) {
            (void)snprintf(per_m, sizeof(per_m), "%.3f", d.broker_cpu_s / ((double)got / 1e6));
            (void)snprintf(per_cpu, sizeof(per_cpu), "%.2f",
                           d.broker_cpu_s > 0 ? (double)got / d.broker_cpu_s / 1e6 : 0.0);
        }
        (void)fprintf(f, " %.2f | %s | %s | %.1f | %.0f |", d.broker_cpu_s, per_m, per_cpu,
                      (double)r->broker_rss_peak_kib / 1024.0, d.rss_per_conn_bytes);
    } else {
        (void)fprintf(f, " - | - | - | - | - |");
    }
    (void)fprintf(f, " %.2f |\n", r->self_cpu_s);
}
