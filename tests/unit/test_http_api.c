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
#include "broker_world.h"
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

/* One broker with one worker, no sockets; `flag` `value` added to the
 * command line when not NULL. */
static world_t *world_new(const char *flag, const char *value)
{
    const char *args[] = {flag, value, NULL};
    world_t *x = world_new_args(flag != NULL ? args : NULL);
    x->w->ingress.ops = &test_ops;
    /* The worker's heartbeat, as its timer keeps it (a stale one is a stuck worker: 503). */
    METRIC_SET(x->w->metrics.heartbeat_ms, broker_uptime_ns(&x->b) / 1000000);
    return x;
}

/* A CONN_HTTP connection as accept leaves it. */
static conn_t *conn_new(world_t *x)
{
    conn_t *c = world_conn(x, CONN_HTTP);
    c->http = wsb_http_request_new(x->cfg.max_header_size, x->cfg.max_http_body);
    assert_non_null(c->http);
    return c;
}

static char *output(conn_t *c)
{
    return world_output(c);
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

static const subscriber_ops_t fake_ops = {
    .deliver_cb = fake_deliver, .gap_cb = fake_gap, .close_cb = fake_close};

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
