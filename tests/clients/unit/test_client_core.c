/*
 * test_client_core.c - the client core (client.c, client_req.c) driven
 * through fake adapter hooks, with no loop and no socket.
 *
 * A harness plays the adapter: its want_write hook takes the core's output
 * at once; a fake server reads that output (the upgrade request with the
 * broker's own HTTP parser and handshake check, then the masked frames with
 * the broker's frame parser in server role, which rejects unmasked ones)
 * and answers with scripted bytes. Every callback is recorded in a text
 * trace and every client frame in a `sent` log, so a script fed whole,
 * split at every byte, one byte at a time, and in seeded random chunks
 * (each piece copied to the end of a guard page) must give the same trace.
 */
#define _DEFAULT_SOURCE 1

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four headers above first. */
#include "client_internal.h"
#include "guard_page.h"
#include "wsb/client.h"
#include "wsb/handshake.h"
#include "wsb/http.h"
#include "wsb/ws_frame.h"

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- byte buffers ---- */

typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
} bytes_t;

static void bytes_add(bytes_t *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
    b->p[b->len] = 0;
}

static void bytes_clear(bytes_t *b)
{
    b->len = 0;
    if (b->p != NULL) {
        b->p[0] = 0;
    }
}

static void bytes_printf(bytes_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bytes_printf(bytes_t *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(tmp));
    bytes_add(b, tmp, (size_t)n);
}

/* An unmasked server frame. */
static void srv_frame(bytes_t *b, bool fin, int opcode, const void *payload, size_t len)
{
    uint8_t *buf = malloc(len + WSB_WS_MAX_HEADER_LEN);
    assert_non_null(buf);
    int n = wsb_ws_build_frame(buf, len + WSB_WS_MAX_HEADER_LEN, fin, opcode, payload, len, NULL);
    assert_true(n > 0);
    bytes_add(b, buf, (size_t)n);
    free(buf);
}

static void srv_text(bytes_t *b, const char *json)
{
    srv_frame(b, true, WSB_WS_OP_TEXT, json, strlen(json));
}

static void srv_close(bytes_t *b, int code, const char *reason)
{
    uint8_t payload[WSB_WS_MAX_CONTROL_PAYLOAD];
    size_t n = wsb_ws_close_payload(payload, code, reason);
    srv_frame(b, true, WSB_WS_OP_CLOSE, payload, n);
}

#define WELCOME                                                                                    \
    "{\"type\":\"welcome\",\"protocol\":1,\"client_id\":\"c1\",\"node_id\":\"n1\","                \
    "\"version\":\"0.1.0\",\"limits\":{\"max_message_size\":65536,\"max_subscriptions\":1000,"     \
    "\"ping_interval_ms\":25000}}"

/* ---- the harness (fake adapter + recorder) ---- */

typedef struct {
    wsb_client_t *c;
    int connects;
    char host[64];
    unsigned port;
    int connect_rc;
    int closes;
    bool close_flush;
    bool timer_armed;
    uint64_t timer_ms;
    int cleanups;
    bytes_t wire; /* everything the client wrote */
    size_t wire_off;
    wsb_ws_parser_t srv; /* server-role parser of the client's frames */
    bytes_t srv_msg;
    bytes_t sent;  /* decoded client frames, one line each */
    bytes_t trace; /* callbacks, one line each */
    int64_t reconnect_ms;
    /* behaviour switches for callbacks */
    bool free_on_message;
    bool close_on_message;
    bool publish_on_ack;
    bool free_on_disconnect;
} harness_t;

static int h_connect(void *data, const char *host, uint16_t port, bool tls)
{
    harness_t *h = data;
    (void)tls;
    h->connects++;
    (void)snprintf(h->host, sizeof(h->host), "%s", host);
    h->port = port;
    return h->connect_rc;
}

static void h_want_write(void *data)
{
    harness_t *h = data;
    size_t len = 0;
    uint8_t *p = wsb_client_io_take_output(h->c, &len);
    if (p != NULL) {
        bytes_add(&h->wire, p, len);
        free(p);
    }
}

static void h_close(void *data, bool flush)
{
    harness_t *h = data;
    h->closes++;
    h->close_flush = flush;
}

static void h_timer_start(void *data, uint64_t ms)
{
    harness_t *h = data;
    h->timer_armed = true;
    h->timer_ms = ms;
}

static void h_timer_stop(void *data)
{
    harness_t *h = data;
    h->timer_armed = false;
}

static void h_cleanup(void *data)
{
    harness_t *h = data;
    h->cleanups++;
}

/* Server-side parser callbacks: log each complete client frame. */
static int s_begin(void *ud, int opcode)
{
    harness_t *h = ud;
    h->srv_msg.len = 0;
    bytes_printf(&h->sent, "%s ", opcode == WSB_WS_OP_TEXT ? "TEXT" : "BINARY");
    return 0;
}

static int s_data(void *ud, const uint8_t *p, size_t n)
{
    harness_t *h = ud;
    bytes_add(&h->srv_msg, p, n);
    return 0;
}

static int s_end(void *ud)
{
    harness_t *h = ud;
    bytes_add(&h->sent, h->srv_msg.p, h->srv_msg.len);
    bytes_add(&h->sent, "\n", 1);
    return 0;
}

static int s_ping(void *ud, const uint8_t *p, size_t n)
{
    harness_t *h = ud;
    bytes_printf(&h->sent, "PING %.*s\n", (int)n, (const char *)p);
    return 0;
}

static int s_pong(void *ud, const uint8_t *p, size_t n)
{
    harness_t *h = ud;
    bytes_printf(&h->sent, "PONG %.*s\n", (int)n, (const char *)p);
    return 0;
}

static int s_close(void *ud, int code, const uint8_t *reason, size_t n)
{
    harness_t *h = ud;
    bytes_printf(&h->sent, "CLOSE %d %.*s\n", code, (int)n, (const char *)reason);
    return 0;
}

static const wsb_ws_parser_callbacks_t srv_cb = {s_begin, s_data, s_end, s_ping, s_pong, s_close};

/* Client callbacks: the trace. */
static void c_open(wsb_client_t *c, const wsb_client_welcome_t *w, void *ud)
{
    harness_t *h = ud;
    (void)c;
    bytes_printf(&h->trace, "open %s %s p=%d max=%llu\n", w->client_id, w->node_id, w->protocol,
                 (unsigned long long)w->max_message_size);
}

static void c_message(wsb_client_t *c, const wsb_client_message_t *m, void *ud)
{
    harness_t *h = ud;
    assert_int_equal(m->data.p[m->data.len], '\0');
    assert_int_equal(m->topic.p[m->topic.len], '\0');
    assert_non_null(m->value);
    bytes_printf(&h->trace, "msg %s seq=%llu epoch=%s data=%s\n", m->topic.p,
                 (unsigned long long)m->seq, m->epoch.p ? m->epoch.p : "-", m->data.p);
    if (h->free_on_message) {
        wsb_client_free(c);
        h->c = NULL;
    } else if (h->close_on_message) {
        assert_int_equal(wsb_client_close(c), 0);
    }
}

static void c_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    harness_t *h = ud;
    (void)c;
    bytes_printf(&h->trace, "cerr st=%d code=%s msg=%s id=%s topic=%s\n", e->status,
                 e->code ? e->code : "-", e->message, e->has_id ? "yes" : "no",
                 e->topic ? e->topic : "-");
}

static void c_disconnect(wsb_client_t *c, const wsb_client_disconnect_t *d, void *ud)
{
    harness_t *h = ud;
    h->reconnect_ms = d->reconnect_ms;
    bytes_printf(&h->trace, "disc st=%d code=%d http=%d open=%d retry=%s reason=%s\n", d->status,
                 d->close_code, d->http_status, d->was_open, d->reconnect_ms >= 0 ? "yes" : "no",
                 d->reason);
    if (h->free_on_disconnect) {
        wsb_client_free(c);
        h->c = NULL;
    }
}

static void c_closed(wsb_client_t *c, void *ud)
{
    harness_t *h = ud;
    (void)c;
    bytes_printf(&h->trace, "closed\n");
}

static const wsb_client_callbacks_t client_cb = {c_open, c_message, c_error, c_disconnect,
                                                 c_closed};

static void r_ack(wsb_client_t *c, const wsb_client_ack_t *a, void *ud)
{
    harness_t *h = ud;
    char seq[32] = "-";
    if (a->has_seq) {
        (void)snprintf(seq, sizeof(seq), "%llu", (unsigned long long)a->seq);
    }
    bytes_printf(&h->trace, "ack id=%llu seq=%s rec=%d\n", (unsigned long long)a->id, seq,
                 a->recovered);
    if (h->publish_on_ack) {
        h->publish_on_ack = false;
        assert_true(wsb_client_publish(c, "from.ack", "true", 4, NULL, NULL) == 0);
    }
}

static void r_err(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    harness_t *h = ud;
    (void)c;
    bytes_printf(&h->trace, "rerr id=%llu st=%d code=%s msg=%s topic=%s\n",
                 (unsigned long long)e->id, e->status, e->code ? e->code : "-", e->message,
                 e->topic ? e->topic : "-");
}

static const wsb_client_reply_cb_t reply_cb = {r_ack, r_err};

static harness_t *h_new_opts(const wsb_client_options_t *o)
{
    harness_t *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    h->c = wsb_client_new(o, &client_cb, h);
    assert_non_null(h->c);
    wsb_client_io_t io = {h,       false,         h_connect,    h_want_write,
                          h_close, h_timer_start, h_timer_stop, h_cleanup};
    assert_int_equal(wsb_client_attach(h->c, &io), 0);
    wsb_ws_parser_init(&h->srv, WSB_WS_ROLE_SERVER, 0, &srv_cb, h);
    bytes_add(&h->sent, "", 0);
    bytes_add(&h->trace, "", 0);
    return h;
}

static wsb_client_options_t default_opts(void)
{
    wsb_client_options_t o;
    wsb_client_options_init(&o);
    o.url = "ws://127.0.0.1:8080/ws";
    return o;
}

static harness_t *h_new(void)
{
    wsb_client_options_t o = default_opts();
    return h_new_opts(&o);
}

static void h_free(harness_t *h)
{
    if (h->c != NULL) {
        wsb_client_free(h->c);
    }
    free(h->wire.p);
    free(h->srv_msg.p);
    free(h->sent.p);
    free(h->trace.p);
    free(h);
}

/* The fake server reads the upgrade request and returns its 101 response. */
static void srv_accept(harness_t *h, bytes_t *out)
{
    wsb_http_request_t *r = wsb_http_request_new(0, 0);
    assert_non_null(r);
    size_t used = 0;
    assert_int_equal(wsb_http_request_feed(r, (const char *)h->wire.p + h->wire_off,
                                           h->wire.len - h->wire_off, &used),
                     0);
    h->wire_off += used;
    wsb_handshake_t hs;
    assert_int_equal(wsb_handshake_check(r, NULL, &hs), 0);
    char resp[512];
    int n = wsb_handshake_response(resp, sizeof(resp), &hs);
    assert_true(n > 0);
    bytes_add(out, resp, (size_t)n);
    wsb_http_request_free(r);
}

/* Decodes what the client wrote since the last call into h->sent. */
static void srv_read(harness_t *h)
{
    size_t n = h->wire.len - h->wire_off;
    if (n > 0) {
        int rc = wsb_ws_parser_feed(&h->srv, h->wire.p + h->wire_off, n, NULL);
        if (rc != 0) {
            fail_msg("client sent an invalid frame: %s", h->srv.error);
        }
        h->wire_off = h->wire.len;
    }
}

enum { FEED_WHOLE = 0, FEED_SPLIT, FEED_BYTES, FEED_RANDOM };

/* Feeds `len` bytes in pieces; stops when the client is freed. */
static void h_feed(harness_t *h, const uint8_t *p, size_t len, int mode, size_t arg)
{
    size_t pos = 0;
    unsigned seed = (unsigned)arg;
    while (pos < len && h->c != NULL) {
        size_t n = len - pos;
        if (mode == FEED_SPLIT && pos < arg) {
            n = arg - pos;
        } else if (mode == FEED_BYTES) {
            n = 1;
        } else if (mode == FEED_RANDOM) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 23;
            if (n > len - pos) {
                n = len - pos;
            }
        }
        guard_page_t g;
        unsigned char *copy = guard_page_copy(&g, p + pos, n);
        wsb_client_io_read(h->c, copy, n);
        guard_page_free(&g);
        pos += n;
    }
}

static void h_feed_bytes(harness_t *h, const bytes_t *b)
{
    h_feed(h, b->p, b->len, FEED_WHOLE, 0);
}

static void h_feed_text(harness_t *h, const char *json)
{
    bytes_t b = {0};
    srv_text(&b, json);
    h_feed_bytes(h, &b);
    free(b.p);
}

/* connect -> transport up -> 101 + welcome: the client is open. */
static void h_open(harness_t *h)
{
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_CONNECTING);
    wsb_client_io_connected(h->c);
    bytes_t b = {0};
    srv_accept(h, &b);
    srv_text(&b, WELCOME);
    h_feed_bytes(h, &b);
    free(b.p);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_OPEN);
    srv_read(h);
}

static void assert_contains(const bytes_t *b, const char *needle)
{
    if (strstr((const char *)b->p, needle) == NULL) {
        fail_msg("expected to find:\n%s\nin:\n%s", needle, (const char *)b->p);
    }
}

static void assert_lacks(const bytes_t *b, const char *needle)
{
    if (strstr((const char *)b->p, needle) != NULL) {
        fail_msg("did not expect:\n%s\nin:\n%s", needle, (const char *)b->p);
    }
}

/* ---- the scripted session, fed every possible way ---- */

/* Runs one session; the server's bytes after the 101 come from the script. */
static void run_session(int mode, size_t arg, bytes_t *trace, bytes_t *sent)
{
    harness_t *h = h_new();
    assert_int_equal(wsb_client_subscribe(h->c, "a.*", &reply_cb, h), 1);
    assert_int_equal(wsb_client_publish(h->c, "a.b", "{\"x\":1}", 7, &reply_cb, h), 2);
    assert_int_equal(wsb_client_publish(h->c, "a.c", "[true]", 6, NULL, NULL), 0);
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_int_equal(h->connects, 1);
    assert_string_equal(h->host, "127.0.0.1");
    assert_int_equal(h->port, 8080);
    wsb_client_io_connected(h->c);

    bytes_t s = {0};
    srv_accept(h, &s);
    srv_text(&s, WELCOME);
    srv_text(&s, "{\"type\":\"ack\",\"id\":1}");
    /* A message in three fragments with a ping between them. */
    const char *msg = "{\"type\":\"message\",\"topic\":\"a.b\",\"seq\":7,\"data\":{\"x\":1}}";
    srv_frame(&s, false, WSB_WS_OP_TEXT, msg, 10);
    srv_frame(&s, false, WSB_WS_OP_CONT, msg + 10, 20);
    srv_frame(&s, true, WSB_WS_OP_PING, "hi", 2);
    srv_frame(&s, true, WSB_WS_OP_CONT, msg + 30, strlen(msg) - 30);
    srv_text(&s, "{\"type\":\"ack\",\"id\":2,\"seq\":7}");
    srv_text(&s, "{\"type\":\"future\",\"x\":1}"); /* unknown type: ignored */
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"a.\\\"q\",\"seq\":8,\"epoch\":\"e1\","
                 "\"data\":\"s\",\"extra\":[1]}");
    srv_text(&s, "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"m\"}");
    srv_close(&s, 1001, "going away");
    h_feed(h, s.p, s.len, mode, arg);
    free(s.p);
    srv_read(h);
    assert_int_equal(h->closes, 1);
    assert_true(h->close_flush);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_CLOSING);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    bytes_add(trace, h->trace.p, h->trace.len);
    bytes_add(sent, h->sent.p, h->sent.len);
    h_free(h);
}

static void test_session_every_split(void **state)
{
    (void)state;
    bytes_t ref_trace = {0};
    bytes_t ref_sent = {0};
    run_session(FEED_WHOLE, 0, &ref_trace, &ref_sent);
    const char *expect_trace =
        "open c1 n1 p=1 max=65536\n"
        "ack id=1 seq=- rec=-1\n"
        "msg a.b seq=7 epoch=- data={\"x\":1}\n"
        "ack id=2 seq=7 rec=-1\n"
        "msg a.\"q seq=8 epoch=e1 data=\"s\"\n"
        "cerr st=-30102 code=bad_json msg=m id=no topic=-\n"
        "disc st=-30101 code=1001 http=0 open=1 retry=no reason=the broker closed the connection "
        "(1001: going away)\n";
    assert_string_equal((const char *)ref_trace.p, expect_trace);
    const char *expect_sent = "TEXT {\"type\":\"subscribe\",\"id\":1,\"topic\":\"a.*\"}\n"
                              "TEXT {\"type\":\"publish\",\"id\":2,\"topic\":\"a.b\",\"data\":{"
                              "\"x\":1}}\n"
                              "TEXT {\"type\":\"publish\",\"topic\":\"a.c\",\"data\":[true]}\n"
                              "PONG hi\n"
                              "CLOSE 1001 \n";
    assert_string_equal((const char *)ref_sent.p, expect_sent);

    /* The script's length after the 101 is what matters; splitting the
     * whole transcript at every byte covers both the head and the frames. */
    harness_t *probe = h_new();
    assert_int_equal(wsb_client_connect(probe->c), 0);
    wsb_client_io_connected(probe->c);
    bytes_t s = {0};
    srv_accept(probe, &s);
    size_t total = s.len + 400;
    free(s.p);
    h_free(probe);

    for (size_t split = 1; split < total; split++) {
        bytes_t t = {0};
        bytes_t o = {0};
        run_session(FEED_SPLIT, split, &t, &o);
        assert_string_equal((const char *)t.p, expect_trace);
        assert_string_equal((const char *)o.p, expect_sent);
        free(t.p);
        free(o.p);
    }
    for (unsigned seed = 1; seed <= 50; seed++) {
        bytes_t t = {0};
        bytes_t o = {0};
        run_session(FEED_RANDOM, seed, &t, &o);
        assert_string_equal((const char *)t.p, expect_trace);
        assert_string_equal((const char *)o.p, expect_sent);
        free(t.p);
        free(o.p);
    }
    bytes_t t = {0};
    bytes_t o = {0};
    run_session(FEED_BYTES, 0, &t, &o);
    assert_string_equal((const char *)t.p, expect_trace);
    assert_string_equal((const char *)o.p, expect_sent);
    free(t.p);
    free(o.p);
    free(ref_trace.p);
    free(ref_sent.p);
}

/* The 101 and the first frames usually arrive in one read. */
static void test_handshake_and_welcome_in_one_read(void **state)
{
    (void)state;
    harness_t *h = h_new();
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_true(h->timer_armed);
    assert_int_equal(h->timer_ms, WSB_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS);
    wsb_client_io_connected(h->c);
    bytes_t s = {0};
    srv_accept(h, &s);
    srv_text(&s, WELCOME);
    h_feed_bytes(h, &s);
    free(s.p);
    assert_string_equal((const char *)h->trace.p, "open c1 n1 p=1 max=65536\n");
    /* The keepalive replaced the connect timeout. */
    assert_true(h->timer_armed);
    assert_int_equal(h->timer_ms, WSB_CLIENT_DEFAULT_PING_INTERVAL_MS);
    h_free(h);
}

/* ---- the handshake's failures ---- */

static void test_bad_accept_is_refused(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_connected(h->c);
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                       "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    h_feed(h, (const uint8_t *)resp, strlen(resp), FEED_BYTES, 0);
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, "disc st=-30009 code=1006 http=0 open=0 retry=no");
    assert_contains(&h->trace, "does not match the key");
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    h_free(h);
}

static void run_reject(int mode, size_t arg, bytes_t *trace)
{
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_connected(h->c);
    const char *resp = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 22\r\nConnection: close\r\n\r\n"
                       "no WebSocket at /wsx\r\n";
    h_feed(h, (const uint8_t *)resp, strlen(resp), mode, arg);
    assert_int_equal(h->closes, 1);
    wsb_client_io_closed(h->c, 0, NULL);
    bytes_add(trace, h->trace.p, h->trace.len);
    h_free(h);
}

static void test_http_error_with_body_every_split(void **state)
{
    (void)state;
    const char *expect = "disc st=-30009 code=1006 http=404 open=0 retry=no reason=the broker "
                         "refused the upgrade: HTTP 404: no WebSocket at /wsx\n";
    for (size_t split = 0; split < 110; split++) {
        bytes_t t = {0};
        run_reject(FEED_SPLIT, split, &t);
        assert_string_equal((const char *)t.p, expect);
        free(t.p);
    }
    bytes_t t = {0};
    run_reject(FEED_BYTES, 0, &t);
    assert_string_equal((const char *)t.p, expect);
    free(t.p);
}

static void test_http_503_is_retried_and_eof_ends_the_body(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 1000;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_connected(h->c);
    /* No Content-Length: the body ends when the connection does. */
    const char *resp = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\nbusy";
    h_feed(h, (const uint8_t *)resp, strlen(resp), FEED_WHOLE, 0);
    assert_int_equal(h->closes, 0);
    wsb_client_io_closed(h->c, -4095, "end of file");
    assert_contains(&h->trace, "disc st=-30009 code=1006 http=503 open=0 retry=yes reason=the "
                               "broker refused the upgrade: HTTP 503: busy\n");
    assert_true(h->reconnect_ms >= 50 && h->reconnect_ms <= 100);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_BACKOFF);
    assert_true(h->timer_armed);
    assert_int_equal((int64_t)h->timer_ms, h->reconnect_ms);
    wsb_client_io_timer(h->c);
    assert_int_equal(h->connects, 2);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_CONNECTING);
    h_free(h);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.connect_timeout_ms = 1500;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_int_equal(h->timer_ms, 1500);
    wsb_client_io_timer(h->c);
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_string_equal((const char *)h->trace.p,
                        "disc st=-30103 code=1006 http=0 open=0 retry=no reason=connecting to "
                        "127.0.0.1:8080 timed out after 1500 ms\n");
    h_free(h);
}

static void test_connect_hook_failure_and_state_errors(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h->connect_rc = -111;
    assert_int_equal(wsb_client_connect(h->c), -111);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    assert_false(h->timer_armed);
    h->connect_rc = 0;
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_int_equal(wsb_client_connect(h->c), WSB_ESTATE);
    assert_string_equal((const char *)h->trace.p, "");
    h_free(h);

    /* No adapter: nothing can start. */
    wsb_client_options_t o = default_opts();
    wsb_client_t *c = wsb_client_new(&o, NULL, NULL);
    assert_non_null(c);
    assert_int_equal(wsb_client_connect(c), WSB_ESTATE);
    assert_int_equal(wsb_client_close(c), WSB_ESTATE);
    wsb_client_io_t io = {NULL,    false,         h_connect, h_want_write,
                          h_close, h_timer_start, NULL,      h_cleanup};
    assert_int_equal(wsb_client_attach(c, &io), WSB_EINVAL);
    wsb_client_free(c);

    /* wss:// needs an adapter with TLS. */
    o.url = "wss://127.0.0.1/ws";
    h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), WSB_ENOTSUP);
    assert_int_equal(h->connects, 0);
    h_free(h);
}

/* ---- options ---- */

static void test_options_check(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    char why[200];
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), 0);
    o.url = "http://x";
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    assert_non_null(strstr(why, "ws://"));
    assert_null(wsb_client_new(&o, NULL, NULL));
    o = default_opts();
    o.token = "a b";
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    assert_non_null(strstr(why, "token"));
    o.token = "abc\r\nX-Injected: 1";
    assert_int_equal(wsb_client_options_check(&o, NULL, 0), WSB_EINVAL);
    o = default_opts();
    o.origin = "http://a\nb";
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    o = default_opts();
    o.max_queue_bytes = 0;
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    o = default_opts();
    o.reconnect = true;
    o.reconnect_min_ms = 5000;
    o.reconnect_max_ms = 100;
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    assert_non_null(strstr(why, "reconnect_min_ms"));
    assert_int_equal(wsb_client_options_check(NULL, why, sizeof(why)), WSB_EINVAL);
    assert_string_equal(wsb_client_strerror(WSB_EQUEUEFULL), "the outgoing queue is full");
    assert_string_equal(wsb_client_strerror(WSB_EINVAL), wsb_strerror(WSB_EINVAL));
}

/* ---- requests ---- */

static void test_request_validation(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.max_message_size = 100;
    harness_t *h = h_new_opts(&o);
    wsb_client_t *c = h->c;
    assert_int_equal(wsb_client_subscribe(c, "a..b", NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_subscribe(c, "a.>.b", NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_subscribe(c, NULL, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_unsubscribe(c, "", NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a.*", "1", 1, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "{", 1, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "1 2", 3, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "{\"k\":1,\"k\":2}", 13, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "NaN", 3, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "", 0, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", NULL, 0, NULL, NULL), WSB_EINVAL);
    /* Reserved topics are the broker's call (forbidden), not the client's. */
    assert_int_equal(wsb_client_publish(c, "$sys.x", "null", 4, NULL, NULL), 0);
    char big[120];
    memset(big, ' ', sizeof(big));
    big[0] = '1';
    assert_int_equal(wsb_client_publish(c, "a", big, sizeof(big), NULL, NULL), WSB_ETOOBIG);
    assert_int_equal(wsb_client_publish(c, "a", " \"\\u0000\" ", 10, &reply_cb, h), 1);
    assert_int_equal(wsb_client_pending(c), 2);
    h_free(h);
}

static void test_queue_is_bounded(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.max_queue_bytes = 300;
    harness_t *h = h_new_opts(&o);
    int ok = 0;
    int64_t rc;
    while ((rc = wsb_client_publish(h->c, "topic.x", "12345", 5, NULL, NULL)) == 0) {
        ok++;
    }
    assert_int_equal(rc, WSB_EQUEUEFULL);
    assert_true(ok >= 3 && ok <= 6);
    assert_true(wsb_client_queued_bytes(h->c) <= 300);
    assert_int_equal(wsb_client_pending(h->c), (size_t)ok);
    /* Once open, the queue drains into the transport and there is room again. */
    h_open(h);
    assert_int_equal(wsb_client_pending(h->c), 0);
    assert_int_equal(wsb_client_queued_bytes(h->c), 0);
    assert_int_equal(wsb_client_publish(h->c, "topic.x", "12345", 5, NULL, NULL), 0);
    h_free(h);
}

static void test_welcome_limit_applies(void **state)
{
    (void)state;
    harness_t *h = h_new();
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_connected(h->c);
    bytes_t s = {0};
    srv_accept(h, &s);
    srv_text(&s, "{\"type\":\"welcome\",\"protocol\":1,\"limits\":{\"max_message_size\":64}}");
    h_feed_bytes(h, &s);
    free(s.p);
    char data[80];
    memset(data, ' ', sizeof(data));
    data[0] = '0';
    assert_int_equal(wsb_client_publish(h->c, "t", data, sizeof(data), NULL, NULL), WSB_ETOOBIG);
    assert_int_equal(wsb_client_publish(h->c, "t", data, 20, NULL, NULL), 0);
    assert_contains(&h->trace, "open   p=1 max=64");
    h_free(h);
}

static void test_unsubscribe_and_subscription_set(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_subscribe(h->c, "a.>", &reply_cb, h), 1);
    assert_int_equal(wsb_client_subscribe(h->c, "b", NULL, NULL), 2);
    h_feed_text(h, "{\"type\":\"ack\",\"id\":1}");
    h_feed_text(h, "{\"type\":\"ack\",\"id\":2}");
    assert_int_equal(wsb_client_subscription_count(h->c), 2);
    assert_int_equal(wsb_client_unsubscribe(h->c, "a.>", &reply_cb, h), 3);
    assert_int_equal(wsb_client_unsubscribe(h->c, "b", &reply_cb, h), 4);
    h_feed_text(h, "{\"type\":\"ack\",\"id\":3}");
    assert_int_equal(wsb_client_subscription_count(h->c), 1);
    h_feed_text(h, "{\"type\":\"error\",\"id\":4,\"code\":\"not_subscribed\",\"message\":\"no\"}");
    assert_int_equal(wsb_client_subscription_count(h->c), 0);
    /* Replies to unknown ids are ignored. */
    h_feed_text(h, "{\"type\":\"ack\",\"id\":99}");
    srv_read(h);
    assert_contains(&h->sent, "TEXT {\"type\":\"unsubscribe\",\"id\":3,\"topic\":\"a.>\"}\n");
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "ack id=1 seq=- rec=-1\n"
                        "ack id=3 seq=- rec=-1\n"
                        "rerr id=4 st=-30102 code=not_subscribed msg=no topic=b\n");
    h_free(h);
}

static void test_error_without_callback_goes_to_on_error(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_subscribe(h->c, "x", NULL, NULL), 1);
    h_feed_text(h, "{\"type\":\"error\",\"id\":1,\"code\":\"forbidden\",\"message\":\"nope\"}");
    /* A per-request struct with no on_error routes there too. */
    wsb_client_reply_cb_t ack_only = {r_ack, NULL};
    assert_int_equal(wsb_client_publish(h->c, "y", "1", 1, &ack_only, h), 2);
    h_feed_text(h, "{\"type\":\"error\",\"id\":2,\"code\":\"rate_limited\",\"message\":\"slow\"}");
    assert_contains(&h->trace, "cerr st=-30102 code=forbidden msg=nope id=yes topic=x\n");
    assert_contains(&h->trace, "cerr st=-30102 code=rate_limited msg=slow id=yes topic=y\n");
    assert_int_equal(wsb_client_subscription_count(h->c), 0);
    h_free(h);
}

/* ---- control frames and the protocol's failures ---- */

static void test_ping_answered_every_split(void **state)
{
    (void)state;
    bytes_t s = {0};
    srv_frame(&s, true, WSB_WS_OP_PING, "payload-125", 11);
    srv_frame(&s, true, WSB_WS_OP_PING, NULL, 0);
    srv_frame(&s, true, WSB_WS_OP_PONG, "x", 1);
    for (size_t split = 0; split <= s.len; split++) {
        harness_t *h = h_new();
        h_open(h);
        bytes_clear(&h->sent);
        h_feed(h, s.p, s.len, FEED_SPLIT, split);
        srv_read(h);
        assert_string_equal((const char *)h->sent.p, "PONG payload-125\nPONG \n");
        h_free(h);
    }
    free(s.p);
}

static void run_violation(const bytes_t *s, size_t max_incoming, const char *sent_close,
                          const char *disc)
{
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    if (max_incoming != 0) {
        o.max_incoming_size = max_incoming;
    }
    harness_t *h = h_new_opts(&o);
    h_open(h);
    bytes_clear(&h->sent);
    h_feed(h, s->p, s->len, FEED_WHOLE, 0);
    srv_read(h);
    assert_contains(&h->sent, sent_close);
    assert_int_equal(h->closes, 1);
    assert_true(h->close_flush);
    /* The flush is bounded by the close timeout. */
    assert_int_equal(h->timer_ms, WSB_CLIENT_DEFAULT_CLOSE_TIMEOUT_MS);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, disc);
    h_free(h);
}

static void test_protocol_violations(void **state)
{
    (void)state;
    bytes_t s = {0};
    /* A masked frame from the server. */
    static const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t frame[32];
    int n = wsb_ws_build_frame(frame, sizeof(frame), true, WSB_WS_OP_TEXT, (const uint8_t *)"{}", 2,
                               key);
    assert_true(n > 0);
    bytes_add(&s, frame, (size_t)n);
    run_violation(&s, 0, "CLOSE 1002", "disc st=-30003 code=1002 http=0 open=1 retry=yes");
    bytes_clear(&s);
    srv_frame(&s, true, WSB_WS_OP_TEXT, "\"\xff\"", 3);
    run_violation(&s, 0, "CLOSE 1007", "disc st=-30005 code=1007");
    bytes_clear(&s);
    char big[400];
    memset(big, 'x', sizeof(big));
    srv_frame(&s, true, WSB_WS_OP_TEXT, big, sizeof(big));
    run_violation(&s, 300, "CLOSE 1009", "disc st=-30004 code=1009");
    bytes_clear(&s);
    uint8_t reserved[2] = {0x83, 0x00}; /* opcode 3 */
    bytes_add(&s, reserved, 2);
    run_violation(&s, 0, "CLOSE 1002", "code=1002");
    free(s.p);
}

static void test_non_json_and_binary_ignored(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    bytes_t s = {0};
    srv_text(&s, "not json");
    srv_text(&s, "[1,2]");
    srv_text(&s, "{\"type\":7}");
    srv_text(&s, "{\"type\":\"message\",\"seq\":1}"); /* no topic */
    srv_text(&s, "{\"type\":\"ack\",\"id\":-1}");
    srv_frame(&s, true, WSB_WS_OP_BINARY, "\x01\x02", 2);
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"t\"}"); /* no seq, no data: 0 and null */
    h_feed_bytes(h, &s);
    free(s.p);
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\nmsg t seq=0 epoch=- data=null\n");
    assert_int_equal(h->closes, 0);
    h_free(h);
}

/* ---- reconnecting ---- */

static void test_reconnect_resubscribes_then_flushes_queue(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    h_open(h);
    assert_int_equal(wsb_client_subscribe(h->c, "keep.*", NULL, NULL), 1);
    assert_int_equal(wsb_client_subscribe(h->c, "pending.>", &reply_cb, h), 2);
    assert_int_equal(wsb_client_publish(h->c, "lost", "1", 1, &reply_cb, h), 3);
    h_feed_text(h, "{\"type\":\"ack\",\"id\":1}");
    /* The TCP connection drops: the publish in flight fails, the subscribe
     * in flight will be sent again. */
    wsb_client_io_closed(h->c, -104, "connection reset by peer");
    assert_contains(&h->trace, "rerr id=3 st=-30101 code=- msg=the connection ended before the "
                               "broker acknowledged the publish topic=lost\n");
    assert_contains(&h->trace, "disc st=-104 code=1006 http=0 open=1 retry=yes "
                               "reason=connection reset by peer\n");
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_BACKOFF);
    assert_true(h->reconnect_ms >= 125 && h->reconnect_ms <= 250);
    /* Requests made meanwhile are queued. */
    assert_int_equal(wsb_client_publish(h->c, "later", "2", 1, &reply_cb, h), 4);
    assert_int_equal(wsb_client_pending(h->c), 2);
    wsb_client_io_timer(h->c);
    assert_int_equal(h->connects, 2);
    bytes_clear(&h->sent);
    h->wire_off = h->wire.len;
    wsb_client_io_connected(h->c);
    bytes_t s = {0};
    srv_accept(h, &s);
    h_feed_bytes(h, &s);
    free(s.p);
    srv_read(h);
    assert_string_equal((const char *)h->sent.p,
                        "TEXT {\"type\":\"subscribe\",\"id\":5,\"topic\":\"keep.*\"}\n"
                        "TEXT {\"type\":\"subscribe\",\"id\":2,\"topic\":\"pending.>\"}\n"
                        "TEXT {\"type\":\"publish\",\"id\":4,\"topic\":\"later\",\"data\":2}\n");
    h_feed_text(h, "{\"type\":\"ack\",\"id\":5}");
    h_feed_text(h, "{\"type\":\"ack\",\"id\":2}");
    h_feed_text(h, "{\"type\":\"ack\",\"id\":4,\"seq\":1}");
    assert_int_equal(wsb_client_subscription_count(h->c), 2);
    assert_contains(&h->trace, "ack id=2 seq=- rec=-1\nack id=4 seq=1 rec=-1\n");
    h_free(h);
}

static void test_failed_resubscription_reported(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    h_open(h);
    assert_int_equal(wsb_client_subscribe(h->c, "secret.>", NULL, NULL), 1);
    h_feed_text(h, "{\"type\":\"ack\",\"id\":1}");
    bytes_t s = {0};
    srv_close(&s, 1008, "token expired");
    h_feed_bytes(h, &s);
    free(s.p);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, "disc st=-30101 code=1008 http=0 open=1 retry=yes");
    wsb_client_io_timer(h->c);
    h->wire_off = h->wire.len;
    wsb_client_io_connected(h->c);
    s = (bytes_t){0};
    srv_accept(h, &s);
    srv_text(&s, "{\"type\":\"error\",\"id\":2,\"code\":\"forbidden\",\"message\":\"no\"}");
    h_feed_bytes(h, &s);
    free(s.p);
    assert_contains(&h->trace, "cerr st=-30102 code=forbidden msg=no id=yes topic=secret.>\n");
    assert_int_equal(wsb_client_subscription_count(h->c), 0);
    h_free(h);
}

static void test_no_reconnect_after_client_bug_codes(void **state)
{
    (void)state;
    static const int codes[] = {1002, 1003, 1007, 1009};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        wsb_client_options_t o = default_opts();
        o.reconnect = true;
        harness_t *h = h_new_opts(&o);
        h_open(h);
        bytes_t s = {0};
        srv_close(&s, codes[i], NULL);
        h_feed_bytes(h, &s);
        free(s.p);
        wsb_client_io_closed(h->c, 0, NULL);
        assert_contains(&h->trace, "retry=no");
        assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
        h_free(h);
    }
}

static void test_backoff_doubles_with_jitter_and_stops(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 1000;
    o.reconnect_max_attempts = 6;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    static const int64_t ceil_ms[] = {100, 200, 400, 800, 1000, 1000};
    for (size_t i = 0; i < 6; i++) {
        wsb_client_io_closed(h->c, -111, "connection refused");
        assert_true(h->reconnect_ms >= ceil_ms[i] / 2 && h->reconnect_ms <= ceil_ms[i]);
        assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_BACKOFF);
        wsb_client_io_timer(h->c);
        assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_CONNECTING);
    }
    wsb_client_io_closed(h->c, -111, "connection refused");
    assert_int_equal(h->reconnect_ms, -1);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    assert_int_equal(h->connects, 7);
    /* A manual connect starts over. */
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_closed(h->c, -111, "connection refused");
    assert_true(h->reconnect_ms >= 50 && h->reconnect_ms <= 100);
    h_free(h);
}

static void test_reconnect_start_failure_backs_off_again(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_closed(h->c, -111, "refused");
    h->connect_rc = -24; /* EMFILE */
    wsb_client_io_timer(h->c);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_BACKOFF);
    assert_contains(&h->trace, "disc st=-24 code=1006 http=0 open=0 retry=yes reason=cannot start "
                               "connecting");
    h_free(h);
}

/* ---- keepalive ---- */

static void test_keepalive_pings_and_detects_silence(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    o.ping_interval_ms = 5000;
    harness_t *h = h_new_opts(&o);
    h_open(h);
    bytes_clear(&h->sent);
    assert_int_equal(h->timer_ms, 5000);
    wsb_client_io_timer(h->c); /* ping 1 */
    bytes_t s = {0};
    srv_frame(&s, true, WSB_WS_OP_PONG, NULL, 0);
    h_feed_bytes(h, &s);
    free(s.p);
    wsb_client_io_timer(h->c); /* the pong arrived: ping 2 */
    wsb_client_io_timer(h->c); /* silence for a whole interval: dead */
    srv_read(h);
    assert_string_equal((const char *)h->sent.p, "PING \nPING \n");
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, "disc st=-30103 code=1006 http=0 open=1 retry=yes reason=nothing "
                               "received from the broker for 5000 ms after a ping\n");
    h_free(h);

    o.ping_interval_ms = 0;
    h = h_new_opts(&o);
    h_open(h);
    assert_false(h->timer_armed);
    h_free(h);
}

/* ---- closing and freeing ---- */

static void test_close_handshake(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, &reply_cb, h), 1);
    srv_read(h);
    bytes_clear(&h->sent);
    assert_int_equal(wsb_client_close(h->c), 0);
    assert_int_equal(wsb_client_close(h->c), 0); /* idempotent */
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_CLOSING);
    assert_int_equal(h->timer_ms, WSB_CLIENT_DEFAULT_CLOSE_TIMEOUT_MS);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, NULL, NULL), WSB_ESTATE);
    srv_read(h);
    assert_string_equal((const char *)h->sent.p, "CLOSE 1000 \n");
    assert_int_equal(h->closes, 0);
    /* The ack still arrives before the broker's close; messages are dropped. */
    bytes_t s = {0};
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"t\",\"seq\":1,\"data\":1}");
    srv_text(&s, "{\"type\":\"ack\",\"id\":1,\"seq\":1}");
    srv_close(&s, 1000, NULL);
    h_feed_bytes(h, &s);
    free(s.p);
    assert_int_equal(h->closes, 1);
    assert_true(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "ack id=1 seq=1 rec=-1\n"
                        "disc st=0 code=1000 http=0 open=1 retry=no reason=closed by the "
                        "application\n"
                        "closed\n");
    /* After on_closed the client may connect again. */
    assert_int_equal(wsb_client_connect(h->c), 0);
    h_free(h);
}

static void test_close_timeout_and_inflight_fail(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, &reply_cb, h), 1);
    assert_int_equal(wsb_client_close(h->c), 0);
    wsb_client_io_timer(h->c); /* the broker never answers the close */
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, "rerr id=1 st=-30101 code=- msg=the connection ended before the "
                               "reply arrived topic=t\n");
    assert_contains(&h->trace, "disc st=0 code=1000");
    assert_contains(&h->trace, "closed\n");
    h_free(h);
}

static void test_close_when_idle_or_connecting(void **state)
{
    (void)state;
    /* Idle with queued requests: they are canceled, on_closed follows from
     * a 0 ms timer, never inside wsb_client_close(). */
    harness_t *h = h_new();
    assert_int_equal(wsb_client_subscribe(h->c, "a", &reply_cb, h), 1);
    assert_int_equal(wsb_client_close(h->c), 0);
    assert_string_equal((const char *)h->trace.p, "");
    assert_true(h->timer_armed);
    assert_int_equal(h->timer_ms, 0);
    wsb_client_io_timer(h->c);
    assert_string_equal((const char *)h->trace.p,
                        "rerr id=1 st=-30105 code=- msg=canceled: the client was closed before "
                        "the request was sent topic=a\n"
                        "closed\n");
    h_free(h);

    /* Connecting: the attempt is aborted. */
    h = h_new();
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_int_equal(wsb_client_close(h->c), 0);
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_string_equal((const char *)h->trace.p,
                        "disc st=0 code=1006 http=0 open=0 retry=no reason=closed by the "
                        "application while connecting\n"
                        "closed\n");
    h_free(h);

    /* Backing off: the retry is canceled. */
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_closed(h->c, -111, "refused");
    assert_int_equal(wsb_client_close(h->c), 0);
    wsb_client_io_timer(h->c);
    assert_int_equal(h->connects, 1);
    assert_contains(&h->trace, "closed\n");
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    h_free(h);
}

static void test_free_inside_callbacks(void **state)
{
    (void)state;
    /* From on_message, with more frames after it in the same read. */
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, &reply_cb, h), 1);
    h->free_on_message = true;
    bytes_t s = {0};
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"t\",\"seq\":1,\"data\":1}");
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"t\",\"seq\":2,\"data\":2}");
    srv_text(&s, "{\"type\":\"ack\",\"id\":1,\"seq\":1}");
    h_feed_bytes(h, &s);
    free(s.p);
    assert_null(h->c);
    assert_int_equal(h->cleanups, 1);
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "msg t seq=1 epoch=- data=1\n"
                        "rerr id=1 st=-30105 code=- msg=canceled: the client was freed before the "
                        "reply arrived topic=t\n");
    h_free(h);

    /* From on_disconnect. */
    h = h_new();
    h->free_on_disconnect = true;
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_t *c = h->c;
    wsb_client_io_closed(c, -111, "refused");
    assert_null(h->c);
    assert_int_equal(h->cleanups, 1);
    h_free(h);
}

static void test_callbacks_may_call_the_api(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    h->publish_on_ack = true;
    assert_int_equal(wsb_client_subscribe(h->c, "a", &reply_cb, h), 1);
    h->close_on_message = true;
    bytes_clear(&h->sent);
    bytes_t s = {0};
    srv_text(&s, "{\"type\":\"ack\",\"id\":1}");
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"a\",\"seq\":1,\"data\":1}");
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"a\",\"seq\":2,\"data\":2}");
    h_feed_bytes(h, &s);
    free(s.p);
    srv_read(h);
    assert_contains(&h->sent, "TEXT {\"type\":\"publish\",\"topic\":\"from.ack\",\"data\":true}\n"
                              "CLOSE 1000 \n");
    /* The message after close() is not delivered. */
    assert_lacks(&h->trace, "seq=2");
    h_free(h);
}

static void test_free_cancels_everything(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, &reply_cb, h), 1);
    assert_int_equal(wsb_client_subscribe(h->c, "s", &reply_cb, h), 2);
    wsb_client_free(h->c);
    h->c = NULL;
    assert_int_equal(h->cleanups, 1);
    assert_contains(&h->trace, "rerr id=1 st=-30105");
    assert_contains(&h->trace, "rerr id=2 st=-30105");
    h_free(h);
    wsb_client_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_every_split),
        cmocka_unit_test(test_handshake_and_welcome_in_one_read),
        cmocka_unit_test(test_bad_accept_is_refused),
        cmocka_unit_test(test_http_error_with_body_every_split),
        cmocka_unit_test(test_http_503_is_retried_and_eof_ends_the_body),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_connect_hook_failure_and_state_errors),
        cmocka_unit_test(test_options_check),
        cmocka_unit_test(test_request_validation),
        cmocka_unit_test(test_queue_is_bounded),
        cmocka_unit_test(test_welcome_limit_applies),
        cmocka_unit_test(test_unsubscribe_and_subscription_set),
        cmocka_unit_test(test_error_without_callback_goes_to_on_error),
        cmocka_unit_test(test_ping_answered_every_split),
        cmocka_unit_test(test_protocol_violations),
        cmocka_unit_test(test_non_json_and_binary_ignored),
        cmocka_unit_test(test_reconnect_resubscribes_then_flushes_queue),
        cmocka_unit_test(test_failed_resubscription_reported),
        cmocka_unit_test(test_no_reconnect_after_client_bug_codes),
        cmocka_unit_test(test_backoff_doubles_with_jitter_and_stops),
        cmocka_unit_test(test_reconnect_start_failure_backs_off_again),
        cmocka_unit_test(test_keepalive_pings_and_detects_silence),
        cmocka_unit_test(test_close_handshake),
        cmocka_unit_test(test_close_timeout_and_inflight_fail),
        cmocka_unit_test(test_close_when_idle_or_connecting),
        cmocka_unit_test(test_free_inside_callbacks),
        cmocka_unit_test(test_callbacks_may_call_the_api),
        cmocka_unit_test(test_free_cancels_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
