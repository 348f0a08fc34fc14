/* test_http_api.c - the HTTP API (ingress/http_api.c) driven without sockets: each request is
 * parsed by the protocol library as net/ parses it, handed to http_api_handle() (or, over
 * max_http_body, to http_api_body_too_large()) on a conn_t whose socket is never read (the loop
 * does not run), and the response read back from the connection's output queue. Checked against
 * protocol/PROTOCOL.md section 11 and README's HTTP table: POST /api/publish with a valid key, a
 * missing or unknown key (401), a key without the topic's permission (403), bad JSON, a missing
 * field, a bad or reserved topic (400 or 403 with the documented code), a body over max_http_body
 * (413), a wrong method (405), the message reaching a subscriber with the WebSocket frame, and the
 * shape of GET /healthz. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* cmocka.h needs the headers above first. */
#include "app/broker.h"
#include "app/config.h"
#include "app/worker.h"
#include "core/pubsub.h"
#include "core/router.h"
#include "core/seqtab.h"
#include "core/subscriber.h"
#include "ingress/http_api.h"
#include "net/conn.h"
#include "net/outq.h"
#include "shared/frame_buf.h"
#include "wsb/http.h"

#include <cmocka.h>
#include <jansson.h>

#define KEY_NEWS  "http-unit-key-000001"
#define KEY_OTHER "http-unit-key-000002"

/* What /healthz and /metrics ask of the process: app/'s own answers. */
static const ingress_ops_t test_ops = {
    .healthz_cb = worker_healthz,
    .metrics_cb = worker_metrics_text,
};

/* One broker with one worker, no sockets. */
typedef struct {
    config_t cfg;
    broker_t b;
    worker_t *w;
    worker_t *workers[1];
    core_worker_t *cworkers[1];
} world_t;

static void no_wake(core_worker_t *w)
{
    (void)w;
}

/* `extra` adds "--api-keys VALUE" or "--max-http-body VALUE" style flags (NULL: none). */
static world_t *world_new(const char *flag, const char *value)
{
    world_t *x = calloc(1, sizeof(*x));
    char prog[] = "wsbroker", f[32], v[128];
    (void)snprintf(f, sizeof f, "%s", flag != NULL ? flag : "");
    (void)snprintf(v, sizeof v, "%s", value != NULL ? value : "");
    char *argv[] = {prog, f, v, NULL};
    char *envp[] = {NULL};
    char err[256];
    assert_int_equal(config_load(&x->cfg, flag != NULL ? 3 : 1, argv, envp, err, sizeof err),
                     CONFIG_OK);
    worker_t *w = calloc(1, sizeof(worker_t));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->cfg = &x->cfg;
    metrics_init(&w->metrics);
    xqueue_init(&w->core.inbox, 1024);
    x->workers[0] = w;
    x->cworkers[0] = &w->core;
    x->w = w;
    x->b.cfg = &x->cfg;
    x->b.nworkers = 1;
    x->b.workers = x->workers;
    x->b.started_ns = uv_hrtime();
    (void)snprintf(x->b.node_id, sizeof x->b.node_id, "unit-node");
    x->b.seqtab = seqtab_new(&x->b.history_rules, 100, 1 << 20);
    x->b.core.nworkers = 1;
    x->b.core.workers = x->cworkers;
    x->b.core.seqtab = x->b.seqtab;
    x->b.core.history_rules = &x->b.history_rules;
    x->b.core.max_subscriptions = x->cfg.max_subscriptions;
    x->b.core.wake_cb = no_wake;
    auth_config_t acfg;
    config_auth(&x->cfg, &acfg);
    char aerr[256];
    assert_int_equal(auth_init(&x->b.auth, &acfg, aerr, sizeof aerr), 0);
    broker_ingress_config(&x->cfg, &x->b.ingress_cfg);
    broker_worker_env(&x->b);
    worker_setup_contexts(w, &x->b.worker_env, 0);
    w->env = &x->b.worker_env;
    w->ingress.ops = &test_ops;
    w->net.outbound_limit = x->cfg.max_total_outbound;
    /* The worker's heartbeat, as its timer keeps it (a stale one is a stuck worker: 503). */
    METRIC_SET(w->metrics.heartbeat_ms, broker_uptime_ns(&x->b) / 1000000);
    return x;
}

/* The test's ends of the connections' socket pairs. */
static int peers[8];
static int npeers;

/* A CONN_HTTP connection as accept leaves it. The only place that knows conn_t's
 * insides beyond its outq: adapt it when net/ changes. */
static conn_t *conn_new(world_t *x)
{
    worker_t *w = x->w;
    conn_t *c = calloc(1, sizeof(*c));
    c->net = &w->net;
    outq_init(&c->outq);
    /* A socket pair nobody writes to: closing and lingering need a handle. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(uv_tcp_init(&w->loop, &c->tcp), 0);
    assert_int_equal(uv_tcp_open(&c->tcp, sv[0]), 0);
    peers[npeers++] = sv[1];
    c->tcp.data = c;
    c->handles_open = 1;
    c->last_rx_ms = uv_now(&w->loop);
    c->next = w->net.conns;
    if (w->net.conns != NULL) {
        w->net.conns->prev = c;
    }
    w->net.conns = c;
    w->net.nconns++;
    c->state = CONN_HTTP;
    c->http = wsb_http_request_new(x->cfg.max_header_size, x->cfg.max_http_body);
    assert_non_null(c->http);
    return c;
}

/* Everything queued on `c` so far, as a string (consumed, like a write). */
static char *output(conn_t *c)
{
    static char out[1 << 16];
    size_t n = 0;
    while (outq_pending_bytes(&c->outq) > 0) {
        uv_buf_t bufs[16];
        size_t total = 0;
        unsigned k = outq_iov(&c->outq, bufs, 16, &total);
        for (unsigned i = 0; i < k; i++) {
            assert_true(n + bufs[i].len < sizeof out);
            memcpy(out + n, bufs[i].base, bufs[i].len);
            n += bufs[i].len;
        }
        outq_consume(&c->outq, total);
        c->net->outbound_bytes -= total;
    }
    out[n] = '\0';
    return out;
}

/* One response, taken apart. */
typedef struct {
    int status;
    char head[2048]; /* status line and headers */
    json_t *body;    /* NULL when not JSON */
} reply_t;

/* Sends `raw` (one complete request) as net/ would: parsed, then the API's answer; a body over
 * max_http_body goes to http_api_body_too_large(). Returns the response. */
static reply_t request(conn_t *c, const char *raw)
{
    size_t used = 0;
    size_t len = strlen(raw);
    char *copy = malloc(len + 1);
    memcpy(copy, raw, len + 1);
    int rc = wsb_http_request_feed(c->http, copy, len, &used);
    if (rc == 0) {
        assert_int_equal(used, len);
        http_api_handle(c, c->http);
    } else {
        assert_int_not_equal(rc, WSB_EAGAIN);
        assert_int_equal(wsb_http_request_status(c->http), 413);
        assert_true(http_api_body_too_large(c, c->http));
    }
    free(copy);
    wsb_http_request_reset(c->http);
    reply_t r = {0};
    const char *out = output(c);
    assert_int_equal(sscanf(out, "HTTP/1.1 %d ", &r.status), 1);
    const char *end = strstr(out, "\r\n\r\n");
    assert_non_null(end);
    size_t hlen = (size_t)(end - out) + 2;
    assert_true(hlen < sizeof r.head);
    memcpy(r.head, out, hlen);
    r.head[hlen] = '\0';
    if (strstr(r.head, "Content-Type: application/json\r\n") != NULL) {
        json_error_t jerr;
        r.body = json_loads(end + 4, 0, &jerr);
        assert_non_null(r.body);
    }
    return r;
}

/* A POST /api/publish of `body`; `headers` adds lines ("Name: value\r\n"). */
static reply_t post(conn_t *c, const char *headers, const char *body)
{
    char raw[4096];
    int n = snprintf(raw, sizeof raw,
                     "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\n\r\n%s",
                     headers != NULL ? headers : "", strlen(body), body);
    assert_true(n > 0 && (size_t)n < sizeof raw);
    return request(c, raw);
}

/* `r` is the documented error: `status`, {"error":{"code":CODE,"message":"..."}}. */
static void assert_error(reply_t *r, int status, const char *code)
{
    assert_int_equal(r->status, status);
    assert_non_null(r->body);
    json_t *error = json_object_get(r->body, "error");
    assert_true(json_is_object(error));
    assert_string_equal(json_string_value(json_object_get(error, "code")), code);
    assert_true(json_string_length(json_object_get(error, "message")) > 0);
    assert_int_equal(json_object_size(r->body), 1);
    assert_int_equal(json_object_size(error), 2);
    json_decref(r->body);
    r->body = NULL;
}

/* The seq of a {"seq":N} 200. */
static json_int_t assert_published(reply_t *r)
{
    assert_int_equal(r->status, 200);
    assert_non_null(r->body);
    assert_int_equal(json_object_size(r->body), 1);
    json_t *seq = json_object_get(r->body, "seq");
    assert_true(json_is_integer(seq));
    json_int_t v = json_integer_value(seq);
    json_decref(r->body);
    r->body = NULL;
    return v;
}

static void world_free(world_t *x)
{
    worker_t *w = x->w;
    /* Off the dirty list first: the worker's flush would free them. */
    w->net.dirty = NULL;
    for (conn_t *d = w->net.conns; d != NULL; d = d->next) {
        d->dirty = false;
        d->dirty_next = NULL;
    }
    while (w->net.conns != NULL) {
        conn_close(w->net.conns);
    }
    router_drain_pushed(&w->core);
    assert_int_equal(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    xqueue_destroy(&w->core.inbox);
    trie_free(w->core.trie);
    free(w);
    while (npeers > 0) {
        close(peers[--npeers]);
    }
    seqtab_free(x->b.seqtab);
    auth_free(&x->b.auth);
    config_free(&x->cfg);
    free(x);
}

/* A subscriber as the core sees it: what it was given. */
typedef struct {
    subscriber_t sub;
    size_t ndelivered;
    char frame[256];
} fake_t;

static subscriber_verdict_t fake_deliver(void *user_data, frame_buf_t *fb, xmsg_t *m)
{
    (void)m;
    fake_t *f = user_data;
    f->ndelivered++;
    (void)snprintf(f->frame, sizeof f->frame, "%.*s", (int)fb->len, (const char *)fb->bytes);
    return SUBSCRIBER_DELIVERED;
}

static int fake_gap(void *user_data, const xmsg_t *m)
{
    (void)user_data;
    (void)m;
    fail_msg("no gap expected");
    return -1;
}

static void fake_close(void *user_data, int code, const char *why)
{
    (void)user_data;
    fail_msg("closed with %d: %s", code, why);
}

static const subscriber_ops_t fake_ops = {fake_deliver, fake_gap, fake_close};

static void test_publish_reaches_a_subscriber_with_the_websocket_frame(void **state)
{
    (void)state;
    world_t *x = world_new(NULL, NULL);
    fake_t f = {0};
    subscriber_init(&f.sub, &fake_ops, &f);
    pubsub_subscribe_t sreq = {.sub = &f.sub, .pattern = {"news.a", 6}};
    pubsub_subscribed_t sout;
    assert_int_equal(pubsub_subscribe(&x->w->core, &sreq, &sout), PUBSUB_OK);
    conn_t *c = conn_new(x);
    reply_t r = post(c, NULL, "{\"topic\":\"news.a\",\"data\":{\"k\":[1,\"two\"]}}");
    assert_int_equal(assert_published(&r), 1);
    assert_null(strstr(r.head, "Connection: close")); /* kept alive */
    router_drain(&x->w->core);
    assert_int_equal(f.ndelivered, 1);
    assert_string_equal(f.frame, "\x81" /* FIN, text */ "\x42" /* 66 bytes */
                                 "{\"type\":\"message\",\"topic\":\"news.a\",\"seq\":1,"
                                 "\"data\":{\"k\":[1,\"two\"]}}");
    /* An array: one result per element, in order, a bad element alone refused. */
    r = post(c, NULL, "[{\"topic\":\"news.a\",\"data\":null},{\"topic\":\"$sys.x\",\"data\":2}]");
    assert_int_equal(r.status, 200);
    json_t *results = json_object_get(r.body, "results");
    assert_int_equal(json_array_size(results), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(results, 0), "seq")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(results, 1), "error"), "code")),
                        "forbidden");
    json_decref(r.body);
    router_drain(&x->w->core);
    assert_int_equal(f.ndelivered, 2);
    assert_string_equal(f.frame, "\x81\x37"
                                 "{\"type\":\"message\",\"topic\":\"news.a\",\"seq\":2,"
                                 "\"data\":null}");
    pubsub_unsubscribe(&x->w->core, sout.handle);
    world_free(x);
}

static void test_bad_requests_get_the_documented_codes(void **state)
{
    (void)state;
    world_t *x = world_new(NULL, NULL);
    conn_t *c = conn_new(x);
    reply_t r = post(c, NULL, "{\"topic\":\"a\",");
    assert_error(&r, 400, "bad_json");
    r = post(c, NULL, "{\"topic\":\"a\"}");
    assert_error(&r, 400, "missing_field");
    r = post(c, NULL, "{\"data\":1}");
    assert_error(&r, 400, "missing_field");
    r = post(c, NULL, "{\"topic\":7,\"data\":1}");
    assert_error(&r, 400, "bad_field");
    r = post(c, NULL, "{\"topic\":\"a..b\",\"data\":1}");
    assert_error(&r, 400, "bad_topic");
    r = post(c, NULL, "{\"topic\":\"a.*\",\"data\":1}");
    assert_error(&r, 400, "bad_topic");
    r = post(c, NULL, "[1]");
    assert_int_equal(r.status, 200);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(r.body, "results"), 0), "error"),
            "code")),
        "bad_json");
    json_decref(r.body);
    /* Reserved: forbidden, 403 (PROTOCOL.md 11: 403 when the code is forbidden). */
    r = post(c, NULL, "{\"topic\":\"$sys.x\",\"data\":1}");
    assert_error(&r, 403, "forbidden");
    /* Another type than JSON. */
    r = request(c, "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 2\r\n\r\n{}");
    assert_error(&r, 415, "unsupported_media_type");
    /* Not POST: 405 naming the method allowed. */
    r = request(c, "GET /api/publish HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(r.head, "\r\nAllow: POST\r\n"));
    assert_error(&r, 405, "method_not_allowed");
    r = request(c, "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(r.head, "\r\nAllow: GET, HEAD\r\n"));
    assert_error(&r, 405, "method_not_allowed");
    /* Still the same kept-alive connection: none of these closed it. */
    assert_int_equal(c->state, CONN_HTTP);
    world_free(x);
}

static void test_body_over_max_http_body_is_413_and_closes(void **state)
{
    (void)state;
    world_t *x = world_new("--max-http-body", "64");
    conn_t *c = conn_new(x);
    char body[128];
    (void)snprintf(body, sizeof body, "{\"topic\":\"a\",\"data\":\"%060d\"}", 0);
    reply_t r = post(c, NULL, body);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(r.body, "error"), "message")),
               "max_http_body (64 bytes)"));
    assert_error(&r, 413, "too_large");
    assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
    assert_int_equal(c->state, CONN_LINGER);
    world_free(x);
}

static void test_api_keys_401_and_403(void **state)
{
    (void)state;
    world_t *x = world_new("--api-keys", KEY_NEWS ":news.>," KEY_OTHER ":other.>");
    conn_t *c = conn_new(x);
    /* Missing. */
    reply_t r = post(c, NULL, "{\"topic\":\"news.a\",\"data\":1}");
    assert_non_null(strstr(r.head, "\r\nWWW-Authenticate: Bearer\r\n"));
    assert_error(&r, 401, "unauthorized");
    /* Unknown. */
    r = post(c, "X-API-Key: http-unit-key-999999\r\n", "{\"topic\":\"news.a\",\"data\":1}");
    assert_non_null(strstr(r.head, "\r\nWWW-Authenticate: Bearer\r\n"));
    assert_error(&r, 401, "unauthorized");
    /* Valid, both ways of presenting it. */
    r = post(c, "Authorization: Bearer " KEY_NEWS "\r\n", "{\"topic\":\"news.a\",\"data\":1}");
    assert_int_equal(assert_published(&r), 1);
    r = post(c, "X-API-Key: " KEY_NEWS "\r\n", "{\"topic\":\"news.b.c\",\"data\":1}");
    assert_int_equal(assert_published(&r), 1);
    /* Valid, but not for this topic. */
    r = post(c, "X-API-Key: " KEY_OTHER "\r\n", "{\"topic\":\"news.a\",\"data\":1}");
    assert_error(&r, 403, "forbidden");
    r = post(c, "X-API-Key: " KEY_OTHER "\r\n", "{\"topic\":\"other.a\",\"data\":1}");
    assert_int_equal(assert_published(&r), 1);
    assert_int_equal(c->state, CONN_HTTP);
    world_free(x);
}

static void test_healthz_shape(void **state)
{
    (void)state;
    world_t *x = world_new(NULL, NULL);
    conn_t *c = conn_new(x);
    reply_t r = request(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "\r\nCache-Control: no-store\r\n"));
    json_t *b = r.body;
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "status")), "ok");
    assert_string_equal(json_string_value(json_object_get(b, "node_id")), "unit-node");
    assert_string_equal(json_string_value(json_object_get(b, "version")), WSB_VERSION);
    assert_true(json_is_number(json_object_get(b, "uptime_s")));
    assert_true(json_is_integer(json_object_get(b, "connections")));
    assert_true(json_is_integer(json_object_get(b, "websocket_connections")));
    assert_string_equal(json_string_value(json_object_get(b, "redis")), "off");
    json_t *workers = json_object_get(b, "workers");
    assert_int_equal(json_array_size(workers), 1);
    json_t *w0 = json_array_get(workers, 0);
    assert_int_equal(json_integer_value(json_object_get(w0, "id")), 0);
    assert_true(json_is_true(json_object_get(w0, "alive")));
    assert_true(json_is_integer(json_object_get(w0, "connections")));
    json_decref(b);
    /* A worker whose heartbeat stopped: 503, "degraded". */
    METRIC_SET(x->w->metrics.heartbeat_ms, 0);
    x->b.started_ns -= 10ull * 1000000000ull;
    r = request(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r.status, 503);
    assert_string_equal(json_string_value(json_object_get(r.body, "status")), "degraded");
    assert_true(json_is_false(
        json_object_get(json_array_get(json_object_get(r.body, "workers"), 0), "alive")));
    json_decref(r.body);
    world_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_reaches_a_subscriber_with_the_websocket_frame),
        cmocka_unit_test(test_bad_requests_get_the_documented_codes),
        cmocka_unit_test(test_body_over_max_http_body_is_413_and_closes),
        cmocka_unit_test(test_api_keys_401_and_403),
        cmocka_unit_test(test_healthz_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
