/* client_harness.c - see client_harness.h. */
#include "client_harness.h"

#include "guard.h"
#include "wsb/handshake.h"
#include "wsb/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bytes_add(bytes_t *b, const void *p, size_t n)
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

void bytes_clear(bytes_t *b)
{
    b->len = 0;
    if (b->p != NULL) {
        b->p[0] = 0;
    }
}

void bytes_printf(bytes_t *b, const char *fmt, ...)
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
void srv_frame(bytes_t *b, bool fin, int opcode, const void *payload, size_t len)
{
    uint8_t *buf = malloc(len + WSB_WS_MAX_HEADER_LEN);
    assert_non_null(buf);
    int n = wsb_ws_build_frame(buf, len + WSB_WS_MAX_HEADER_LEN, fin, opcode, payload, len, NULL);
    assert_true(n > 0);
    bytes_add(b, buf, (size_t)n);
    free(buf);
}

void srv_text(bytes_t *b, const char *json)
{
    srv_frame(b, true, WSB_WS_OP_TEXT, json, strlen(json));
}

void srv_close(bytes_t *b, int code, const char *reason)
{
    uint8_t payload[WSB_WS_MAX_CONTROL_PAYLOAD];
    size_t n = wsb_ws_close_payload(payload, code, reason);
    srv_frame(b, true, WSB_WS_OP_CLOSE, payload, n);
}

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
    bytes_printf(&h->trace, "msg %s seq=%llu epoch=%s data=%s", m->topic.p,
                 (unsigned long long)m->seq, m->epoch.p ? m->epoch.p : "-", m->data.p);
    if (m->reply_to.p != NULL) {
        assert_int_equal(m->reply_to.p[m->reply_to.len], '\0');
        bytes_printf(&h->trace, " reply_to=%s", m->reply_to.p);
    }
    bytes_printf(&h->trace, "\n");
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

static void c_member(harness_t *h, const char *what, const char *topic,
                     const wsb_client_member_t *m)
{
    bytes_printf(&h->trace, "%s %s %s/%s\n", what, topic, m->client, m->user ? m->user : "(null)");
}

static void c_join(wsb_client_t *c, const char *topic, const wsb_client_member_t *m, void *ud)
{
    (void)c;
    c_member(ud, "join", topic, m);
}

static void c_leave(wsb_client_t *c, const char *topic, const wsb_client_member_t *m, void *ud)
{
    (void)c;
    c_member(ud, "leave", topic, m);
}

static const wsb_client_callbacks_t client_cb = {c_open,   c_message, c_error, c_disconnect,
                                                 c_closed, c_join,    c_leave};

void r_ack(wsb_client_t *c, const wsb_client_ack_t *a, void *ud)
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

const wsb_client_reply_cb_t reply_cb = {r_ack, r_err};

wsb_client_io_t harness_io(harness_t *h)
{
    wsb_client_io_t io = {
        .data = h,
        .tls = false,
        .connect = h_connect,
        .want_write = h_want_write,
        .close = h_close,
        .timer_start = h_timer_start,
        .timer_stop = h_timer_stop,
        .cleanup = h_cleanup,
    };
    return io;
}

harness_t *h_new_opts(const wsb_client_options_t *o)
{
    harness_t *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    h->c = wsb_client_new(o, &client_cb, h);
    assert_non_null(h->c);
    wsb_client_io_t io = harness_io(h);
    assert_int_equal(wsb_client_attach(h->c, &io), 0);
    wsb_ws_parser_init(&h->srv, WSB_WS_ROLE_SERVER, 0, &srv_cb, h);
    bytes_add(&h->sent, "", 0);
    bytes_add(&h->trace, "", 0);
    return h;
}

wsb_client_options_t default_opts(void)
{
    wsb_client_options_t o;
    wsb_client_options_init(&o);
    o.url = "ws://127.0.0.1:8080/ws";
    return o;
}

harness_t *h_new(void)
{
    wsb_client_options_t o = default_opts();
    return h_new_opts(&o);
}

void h_free(harness_t *h)
{
    if (h->c != NULL) {
        wsb_client_free(h->c);
    }
    free(h->wire.p);
    wsb_ws_parser_release(&h->srv);
    free(h->srv_msg.p);
    free(h->sent.p);
    free(h->trace.p);
    free(h);
}

/* The fake server reads the upgrade request and returns its 101 response. */
void srv_accept(harness_t *h, bytes_t *out)
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
void srv_read(harness_t *h)
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

/* Feeds `len` bytes in pieces; stops when the client is freed. */
void h_feed(harness_t *h, const uint8_t *p, size_t len, int mode, size_t arg)
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
        guard_buf_t g;
        unsigned char *copy = guard_copy(&g, p + pos, n);
        wsb_client_io_read(h->c, copy, n);
        guard_free(&g);
        pos += n;
    }
}

void h_feed_bytes(harness_t *h, const bytes_t *b)
{
    h_feed(h, b->p, b->len, FEED_WHOLE, 0);
}

void h_feed_text(harness_t *h, const char *json)
{
    bytes_t b = {0};
    srv_text(&b, json);
    h_feed_bytes(h, &b);
    free(b.p);
}

/* connect -> transport up -> 101 + welcome: the client is open. */
void h_open(harness_t *h)
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

void assert_contains(const bytes_t *b, const char *needle)
{
    if (strstr((const char *)b->p, needle) == NULL) {
        fail_msg("expected to find:\n%s\nin:\n%s", needle, (const char *)b->p);
    }
}

void assert_lacks(const bytes_t *b, const char *needle)
{
    if (strstr((const char *)b->p, needle) != NULL) {
        fail_msg("did not expect:\n%s\nin:\n%s", needle, (const char *)b->p);
    }
}
