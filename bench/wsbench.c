/*
 * wsbench.c - the load generator's main thread: options, the shared run
 * state, the phases of a run, /proc sampling, progress and the report.
 * The connections themselves live in the workers (client.c).
 *
 * A run: RAMP (workers open connections at --connect-rate, subscribers wait
 * for their subscribe ack) -> count what every topic should reach -> --hold
 * -> RUN (publishers publish until --duration or --messages, then wait for
 * their acks) -> drain (until every expected delivery arrived or --drain
 * passed) -> STOP (workers close everything) -> report.
 */
#include "wsbench.h"

#include "deflate_rx.h"
#include "options.h"
#include "payload.h"
#include "probe.h"
#include "procstat.h"
#include "report.h"
#include "wsb/handshake.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_MS 5
/* With --messages and no --duration, publishing may take at most this long. */
#define MESSAGES_MAX_S 3600.0

static uint64_t topic_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

int64_t bench_topic_find(const bench_t *b, const char *topic, size_t len)
{
    uint64_t i = topic_hash(topic, len);
    for (uint32_t probes = 0; probes <= b->topic_hash_mask; probes++) {
        uint32_t slot = b->topic_hash[(i + probes) & b->topic_hash_mask];
        if (slot == 0) {
            return -1;
        }
        uint32_t k = slot - 1;
        if (b->topic_len[k] == len && memcmp(b->topic_buf + b->topic_off[k], topic, len) == 0) {
            return k;
        }
    }
    return -1;
}

/* Expands the publish template for every n (duplicates are possible when the
 * template has no {n}: every k then names the same topic, which is fine). */
static int build_topics(bench_t *b)
{
    const opts_t *o = &b->o;
    uint32_t k_count = o->topics;
    size_t cap = (size_t)k_count * (strlen(o->pub_topic) + 8);
    b->topic_buf = malloc(cap);
    b->topic_off = calloc(k_count, sizeof(uint32_t));
    b->topic_len = calloc(k_count, sizeof(uint16_t));
    uint32_t slots = 1;
    while (slots < 2 * k_count) {
        slots *= 2;
    }
    b->topic_hash = calloc(slots, sizeof(uint32_t));
    b->topic_hash_mask = slots - 1;
    b->match = calloc(k_count, sizeof(uint32_t));
    if (b->topic_buf == NULL || b->topic_off == NULL || b->topic_len == NULL ||
        b->topic_hash == NULL || b->match == NULL) {
        return -1;
    }
    size_t used = 0;
    for (uint32_t k = 0; k < k_count; k++) {
        char topic[OPTS_TEMPLATE_MAX + 64];
        int n = opts_expand(o->pub_topic, k, topic, sizeof(topic));
        if (n < 0 || used + (size_t)n > cap) {
            return -1;
        }
        memcpy(b->topic_buf + used, topic, (size_t)n);
        b->topic_off[k] = (uint32_t)used;
        b->topic_len[k] = (uint16_t)n;
        used += (size_t)n;
        if (bench_topic_find(b, topic, (size_t)n) >= 0) {
            continue;
        }
        uint64_t i = topic_hash(topic, (size_t)n);
        while (b->topic_hash[i & b->topic_hash_mask] != 0) {
            i++;
        }
        b->topic_hash[i & b->topic_hash_mask] = k + 1;
    }
    return 0;
}

static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[w++] = tbl[(v >> 18) & 63];
        out[w++] = tbl[(v >> 12) & 63];
        out[w++] = tbl[(v >> 6) & 63];
        out[w++] = tbl[v & 63];
    }
    /* One or two input bytes short of a full group: pad with '='. */
    if (n % 3 > 0) {
        out[w - 1] = '=';
        if (n % 3 == 1) {
            out[w - 2] = '=';
        }
    }
    out[w] = '\0';
}

/* The upgrade request and the accept key it must get back. One random key
 * serves every connection: the broker only hashes it. */
static int build_request(bench_t *b)
{
    const opts_t *o = &b->o;
    uint8_t key[16];
    char key64[32];
    for (size_t i = 0; i < sizeof(key); i += 4) {
        if (wsb_ws_random_mask(key + i) != 0) {
            return -1;
        }
    }
    base64(key, sizeof(key), key64);
    wsb_handshake_accept_key((wsb_str_t){key64, strlen(key64)}, b->accept);
    bool v6 = strchr(o->host, ':') != NULL;
    int n = snprintf(b->request, sizeof(b->request),
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nUser-Agent: wsbench\r\n%s\r\n",
                     o->path, v6 ? "[" : "", o->host, v6 ? "]" : "", o->port, key64,
                     o->deflate ? DEFLATE_RX_OFFER : "");
    if (n < 0 || (size_t)n >= sizeof(b->request) || b->accept[0] == '\0') {
        return -1;
    }
    b->request_len = (size_t)n;
    return 0;
}

/* Sums one counter over the workers. */
#define SUM(b, field) sum_counter(b, offsetof(stat_t, field))

static uint64_t sum_counter(const bench_t *b, size_t off)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < b->nthreads; i++) {
        const counter_t *c =
            (const counter_t *)(const void *)((const char *)&b->threads[i]->st + off);
        total += atomic_load_explicit(c, memory_order_relaxed);
    }
    return total;
}

typedef struct {
    bench_t *b;
    bool enabled;
    uint64_t next_ns;
    uint64_t last_received;
    uint64_t last_ns;
    procstat_t broker;
    uint64_t rss_peak_kib;
    uint64_t next_sample_ns;
} monitor_t;

/* Every 100 ms: the broker's RSS (for the peak). Every second: the progress line. */
static void monitor(monitor_t *m, const char *phase)
{
    bench_t *b = m->b;
    uint64_t now = bench_now(b);
    if (b->o.broker_pid > 0 && now >= m->next_sample_ns) {
        m->next_sample_ns = now + 100000000ULL;
        procstat_t ps;
        if (procstat_read(b->o.broker_pid, &ps) == 0) {
            m->broker = ps;
            if (ps.rss_kib > m->rss_peak_kib) {
                m->rss_peak_kib = ps.rss_kib;
            }
        }
    }
    if (!m->enabled || now < m->next_ns) {
        return;
    }
    m->next_ns = now + 1000000000ULL;
    uint64_t ready = SUM(b, subs_ready) + SUM(b, pubs_ready);
    uint64_t failed = SUM(b, fail_connect) + SUM(b, fail_handshake) + SUM(b, fail_subscribe) +
                      SUM(b, fail_timeout);
    uint64_t received = SUM(b, received);
    double dt = (double)(now - m->last_ns) / 1e9;
    double rate = m->last_ns > 0 && dt > 0 ? (double)(received - m->last_received) / dt : 0;
    m->last_received = received;
    m->last_ns = now;
    (void)fprintf(stderr,
                  "\r[%6.1fs %-5s] conns %llu ok %llu failed | published %llu | delivered %llu "
                  "(%.0f/s) | lost conns %llu \033[K",
                  (double)now / 1e9, phase, (unsigned long long)ready, (unsigned long long)failed,
                  (unsigned long long)SUM(b, published), (unsigned long long)received, rate,
                  (unsigned long long)SUM(b, disconnects));
    (void)fflush(stderr);
}

static void sleep_ms(unsigned ms)
{
    uv_sleep(ms);
}

static bool ramp_done(const bench_t *b)
{
    for (uint32_t i = 0; i < b->nthreads; i++) {
        if (!atomic_load_explicit(&b->threads[i]->st.ramp_done, memory_order_acquire)) {
            return false;
        }
    }
    return true;
}

/* Frees the workers that were set up but never started. */
static void discard_threads(bench_t *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        bthread_t *t = b->threads[i];
        uv_close((uv_handle_t *)&t->tick, NULL);
        (void)uv_run(&t->loop, UV_RUN_DEFAULT);
        client_thread_free(t);
        free(t);
        b->threads[i] = NULL;
    }
}

static void free_bench(bench_t *b)
{
    free(b->topic_buf);
    free(b->topic_off);
    free(b->topic_len);
    free(b->topic_hash);
    free(b->match);
    wsb_tls_ctx_free(b->tls_ctx);
    free(b);
}

static int resolve_address(bench_t *b)
{
    const opts_t *o = &b->o;
    int rc = strchr(o->host, ':') != NULL
                 ? uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)&b->addr)
                 : uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)&b->addr);
    b->pub_addr = b->addr;
    if (rc == 0 && o->pub_port != 0) {
        /* The handshake's path and Host stay --url's: the broker routes on the path only. */
        rc = strchr(o->pub_host, ':') != NULL
                 ? uv_ip6_addr(o->pub_host, o->pub_port, (struct sockaddr_in6 *)&b->pub_addr)
                 : uv_ip4_addr(o->pub_host, o->pub_port, (struct sockaddr_in *)&b->pub_addr);
    }
    return rc;
}

/* Runs the phases; fills `r`. Returns 0, or 1 when nothing could connect. */
static int run(bench_t *b, results_t *r, monitor_t *m)
{
    const opts_t *o = &b->o;
    while (!ramp_done(b)) {
        monitor(m, "ramp");
        sleep_ms(POLL_MS);
    }
    r->ramp_s = (double)bench_now(b) / 1e9;
    /* Every worker is done with its match counts (acquire above). */
    for (uint32_t i = 0; i < b->nthreads; i++) {
        for (uint32_t k = 0; k < o->topics; k++) {
            b->match[k] += b->threads[i]->match_local[k];
        }
    }
    uint64_t subs = SUM(b, subs_ready);
    uint64_t pubs = SUM(b, pubs_ready);
    uint64_t hold_end = bench_now(b) + (uint64_t)(o->hold * 1e9);
    while (bench_now(b) < hold_end) {
        monitor(m, "hold");
        sleep_ms(POLL_MS);
    }
    if (o->broker_pid > 0) {
        (void)procstat_read(o->broker_pid, &r->broker_connected);
        r->broker_run_start = r->broker_connected;
    }
    uint32_t lag = opts_effective_lag(o);
    b->lag_limit = (uint64_t)lag * subs;
    if (lag > 0 && b->lag_limit == 0) {
        b->lag_limit = 1; /* no subscriber: publish one message at a time */
    }
    if (o->churn > 0 && !o->churn_quiet) {
        b->churn_listeners = SUM(b, listeners_ready);
    }
    /* Listeners that subscribed during the ramp told each other (--hold lets
     * those frames arrive); the run owes only what comes after. */
    b->ramp_events = SUM(b, listener_events);
    double publish_s = o->duration;
    if (o->messages > 0 && !o->duration_set) {
        publish_s = MESSAGES_MAX_S;
    }
    if (o->messages == 0 && o->duration == 0) {
        publish_s = 0;
    }
    double cpu0 = procstat_self_cpu_s();
    b->run_start_ns = bench_now(b);
    b->run_deadline_ns = b->run_start_ns + (uint64_t)(publish_s * 1e9);
    atomic_store_explicit(&b->phase, PHASE_RUN, memory_order_release);

    /* Publishing ends when every publisher has every reply; should replies
     * stop coming, when the deadline and --drain have passed. */
    uint64_t backstop = b->run_deadline_ns + (uint64_t)(o->drain * 1e9) + 1000000000ULL;
    uint64_t now = bench_now(b);
    while (SUM(b, pubs_done) < pubs && now < backstop) {
        monitor(m, "run");
        sleep_ms(POLL_MS);
        now = bench_now(b);
    }
    while (o->churn > 0 && now < b->run_deadline_ns) {
        monitor(m, "churn");
        sleep_ms(POLL_MS);
        now = bench_now(b);
    }
    uint64_t pub_end = now;
    uint64_t drain_end = now + (uint64_t)(o->drain * 1e9);
    /* --churn: until the listeners have the frames every request sent owes. */
    while (SUM(b, received) + SUM(b, listener_events) - b->ramp_events <
               (o->churn > 0 ? SUM(b, expected_sent) : SUM(b, expected)) &&
           now < drain_end) {
        monitor(m, "drain");
        sleep_ms(POLL_MS);
        now = bench_now(b);
    }
    if (o->broker_pid > 0) {
        (void)procstat_read(o->broker_pid, &r->broker_run_end);
    }
    r->churn_ops = SUM(b, churn_ops);
    r->events = SUM(b, events);
    r->listener_events = SUM(b, listener_events) - b->ramp_events;
    r->self_cpu_s = procstat_self_cpu_s() - cpu0;
    atomic_store_explicit(&b->phase, PHASE_STOP, memory_order_release);
    monitor(m, "stop");
    for (uint32_t i = 0; i < b->nthreads; i++) {
        (void)uv_thread_join(&b->threads[i]->tid);
    }
    if (m->enabled) {
        (void)fprintf(stderr, "\n");
    }

    uint64_t last_rx = 0;
    for (uint32_t i = 0; i < b->nthreads; i++) {
        uint64_t t = STAT_GET(b->threads[i]->st.last_rx_ns);
        last_rx = t > last_rx ? t : last_rx;
    }
    r->subs_ready = subs;
    r->pubs_ready = pubs;
    r->fail_connect = SUM(b, fail_connect);
    r->fail_handshake = SUM(b, fail_handshake);
    r->fail_subscribe = SUM(b, fail_subscribe);
    r->fail_timeout = SUM(b, fail_timeout);
    r->disconnects = SUM(b, disconnects);
    r->errors = SUM(b, errors);
    r->bad_payload = SUM(b, bad_payload);
    r->published = SUM(b, published);
    r->acked = SUM(b, acked);
    r->expected = o->churn > 0 ? SUM(b, expected_sent) : SUM(b, expected);
    r->received = SUM(b, received);
    r->bytes_in = SUM(b, bytes_in);
    r->publish_s = (double)(pub_end - b->run_start_ns) / 1e9;
    r->deliver_s = last_rx > b->run_start_ns ? (double)(last_rx - b->run_start_ns) / 1e9 : 0;
    r->broker_rss_peak_kib = m->rss_peak_kib;
    if (r->broker_connected.rss_kib > r->broker_rss_peak_kib) {
        r->broker_rss_peak_kib = r->broker_connected.rss_kib;
    }
    return subs + pubs > 0 ? 0 : 1;
}

/* Prints the report in the chosen format; returns the exit status: `status`
 * (non-zero: nothing could connect), or 3 when --strict finds a failure. */
static int report_and_check(const opts_t *o, const results_t *r, int status)
{
    switch (o->format) {
    case OUT_JSON:
        report_json(stdout, r);
        break;
    case OUT_ROW:
        report_row(stdout, r);
        break;
    case OUT_HUMAN:
        report_human(stdout, r);
        break;
    }
    derived_t d;
    report_derive(r, &d);
    if (status != 0) {
        (void)fprintf(stderr, "wsbench: no connection to %s:%u%s succeeded\n", o->host, o->port,
                      o->path);
    } else if (o->strict && !report_clean(r, &d)) {
        (void)fprintf(stderr,
                      "wsbench: --strict: %llu failures, loss %lld, %llu disconnects, %llu "
                      "errors, %llu unreadable deliveries\n",
                      (unsigned long long)d.failures, (long long)d.loss,
                      (unsigned long long)r->disconnects, (unsigned long long)r->errors,
                      (unsigned long long)r->bad_payload);
        status = 3;
    }
    return status;
}

/* --probe: one sequential measurement instead of the fan-out run. */
static int run_probe(bench_t *b)
{
    results_t r;
    memset(&r, 0, sizeof(r));
    r.o = &b->o;
    r.broker_pid = b->o.broker_pid;
    hist_t *h = malloc(sizeof(hist_t));
    if (h == NULL) {
        (void)fprintf(stderr, "wsbench: out of memory\n");
        free_bench(b);
        return 1;
    }
    hist_init(h);
    r.latency = h;
    if (b->o.broker_pid > 0) {
        procstat_t ps;
        if (procstat_read(b->o.broker_pid, &ps) != 0) {
            (void)fprintf(stderr, "wsbench: --broker-pid %d: cannot read /proc/%d/stat\n",
                          b->o.broker_pid, b->o.broker_pid);
            free(h);
            free_bench(b);
            return 1;
        }
        r.broker = true;
    }
    int status = report_and_check(&b->o, &r, probe_run(b, &r, h));
    free(h);
    free_bench(b);
    return status;
}

int main(int argc, char **argv)
{
    static opts_t o;
    char err[256];
    (void)signal(SIGPIPE, SIG_IGN);
    opts_result_t pr = opts_parse(&o, argc, argv, err, sizeof(err));
    if (pr == OPTS_HELP) {
        (void)fputs(opts_usage(), stdout);
        return 0;
    }
    if (pr != OPTS_OK) {
        (void)fprintf(stderr, "wsbench: %s\n", err);
        return 2;
    }
    if (o.table_header) {
        report_row_header(stdout);
        return 0;
    }
    bench_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        (void)fprintf(stderr, "wsbench: out of memory\n");
        return 1;
    }
    b->o = o;
    b->t0 = uv_hrtime();
    if (resolve_address(b) != 0 || build_request(b) != 0 || build_topics(b) != 0) {
        (void)fprintf(stderr, "wsbench: cannot prepare the run (address, key or memory)\n");
        free_bench(b);
        return 1;
    }
    if (o.probe != PROBE_NONE) {
        return run_probe(b);
    }
    if (o.tls) {
        /* One context for every worker: SSL_new on a shared SSL_CTX is thread-safe. */
        char tls_err[320];
        b->tls_ctx = wsb_tls_ctx_new(o.cafile[0] != '\0' ? o.cafile : NULL, o.insecure, tls_err,
                                     sizeof(tls_err));
        if (b->tls_ctx == NULL) {
            (void)fprintf(stderr, "wsbench: %s\n", tls_err);
            free_bench(b);
            return 1;
        }
    }
    results_t r;
    memset(&r, 0, sizeof(r));
    r.o = &b->o;
    r.broker_pid = o.broker_pid;
    if (o.broker_pid > 0) {
        if (procstat_read(o.broker_pid, &r.broker_start) != 0) {
            (void)fprintf(stderr, "wsbench: --broker-pid %d: cannot read /proc/%d/stat\n",
                          o.broker_pid, o.broker_pid);
            free_bench(b);
            return 1;
        }
        r.broker = true;
    }
    uint32_t conns = o.subscribers + o.publishers;
    b->nthreads = o.threads < conns ? o.threads : conns;
    r.threads = b->nthreads;
    for (uint32_t i = 0; i < b->nthreads; i++) {
        b->threads[i] = calloc(1, sizeof(bthread_t));
        if (b->threads[i] == NULL || client_thread_init(b->threads[i], b, i) != 0) {
            free(b->threads[i]);
            discard_threads(b, i);
            (void)fprintf(stderr, "wsbench: cannot set up worker %u (out of memory)\n", i);
            free_bench(b);
            return 1;
        }
    }
    for (uint32_t i = 0; i < b->nthreads; i++) {
        if (uv_thread_create(&b->threads[i]->tid, client_thread_main, b->threads[i]) != 0) {
            (void)fprintf(stderr, "wsbench: cannot start worker thread %u\n", i);
            abort(); /* workers already running own their loops: no clean way back */
        }
    }
    monitor_t m;
    memset(&m, 0, sizeof(m));
    m.b = b;
    m.enabled = o.progress == 1 || (o.progress == -1 && isatty(STDERR_FILENO));
    m.rss_peak_kib = r.broker_start.rss_kib;
    int status = run(b, &r, &m);

    hist_t *all = malloc(sizeof(hist_t));
    if (all == NULL) {
        (void)fprintf(stderr, "wsbench: out of memory\n");
        abort();
    }
    hist_init(all);
    for (uint32_t i = 0; i < b->nthreads; i++) {
        hist_merge(all, &b->threads[i]->hist);
    }
    r.latency = all;
    status = report_and_check(&o, &r, status);
    for (uint32_t i = 0; i < b->nthreads; i++) {
        client_thread_free(b->threads[i]);
        free(b->threads[i]);
    }
    free(all);
    free_bench(b);
    return status;
}
