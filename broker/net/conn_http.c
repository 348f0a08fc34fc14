/* conn_http.c - a connection's HTTP phase: requests in, responses out,
 * admission, and the dispatch to the upgrade to WebSocket (the handshake's
 * policy is the WebSocket ingress's: ingress/ws_upgrade.c) or the HTTP API
 * (see conn.h). */
#include "net/conn.h"
#include "net/conn_internal.h"
#include "net/net.h"
#include "net/proxy.h"
#include "shared/log.h"
#include "wsb/handshake.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void http_hold(conn_t *c, const char *data, size_t len);

/* ---- HTTP mode --------------------------------------------------------------------------- */

void conn_http_respond_buf(conn_t *c, frame_buf_t *fb, bool keep_alive)
{
    if (c->state != CONN_HTTP) {
        frame_buf_unref(fb);
        return;
    }
    conn_send_always(c, fb);
    if (!keep_alive || c->net->shutting_down) {
        conn_linger(c);
    }
}

void conn_http_respond(conn_t *c, int status, const char *content_type, const void *body,
                       size_t len, bool keep_alive, const char *extra_headers)
{
    char head[1024];
    keep_alive = keep_alive && !c->net->shutting_down;
    size_t body_len = c->head_request ? 0 : len; /* HEAD: the length, not the body */
    int hl = wsb_http_write_head(head, sizeof(head), status, content_type, len, keep_alive,
                                 extra_headers);
    assert(hl > 0);
    frame_buf_t *fb = frame_buf_new((size_t)hl + body_len);
    memcpy(fb->bytes, head, (size_t)hl);
    if (body_len > 0) {
        memcpy(fb->bytes + hl, body, body_len);
    }
    conn_http_respond_buf(c, fb, keep_alive);
}

void conn_http_respond_shared(conn_t *c, frame_buf_t *head, frame_buf_t *body, bool keep_alive)
{
    if (c->state != CONN_HTTP) {
        frame_buf_unref(head);
        if (body != NULL) {
            frame_buf_unref(body);
        }
        return;
    }
    conn_send_always(c, head);
    if (body != NULL) {
        conn_send_always(c, body);
    }
    if (!keep_alive || c->net->shutting_down) {
        conn_linger(c);
    }
}

void conn_http_error(conn_t *c, int status, const char *message)
{
    char buf[1024];
    int n = wsb_handshake_error_response(buf, sizeof(buf), status, message);
    assert(n > 0);
    conn_http_respond_buf(c, frame_buf_copy(buf, (size_t)n), false);
}

static wsb_str_t url_path(wsb_str_t url)
{
    const char *q = memchr(url.p, '?', url.len);
    return (wsb_str_t){url.p, q ? (size_t)(q - url.p) : url.len};
}

static bool path_is(wsb_str_t path, const char *configured)
{
    return configured != NULL && configured[0] != '\0' && wsb_str_eq(path, configured);
}

/* A connection from a trusted proxy is counted under the client address its
 * X-Forwarded-For names, request by request (the proxy may reuse one upstream
 * connection for several clients), instead of at accept under the proxy's
 * address. Returns false when that client is over max_connections_per_ip: the
 * 429 is queued and the connection lingers. Any other peer was counted at
 * accept and is left alone: its header is the client's own claim. */
static bool admit_forwarded(conn_t *c, const wsb_http_request_t *req)
{
    net_t *net = c->net;
    const net_limits_t *cfg = &net->lim;
    uint8_t peer[16];
    if (cfg->ntrusted == 0 || conn_socket_ip(c, peer) != 0 ||
        !proxy_is_trusted(cfg->trusted, cfg->ntrusted, peer)) {
        return true;
    }
    wsb_str_t xff[WSB_HTTP_MAX_HEADERS];
    size_t nxff = 0;
    size_t nh = wsb_http_request_header_count(req);
    for (size_t i = 0; i < nh && nxff < WSB_HTTP_MAX_HEADERS; i++) {
        const wsb_http_header_t *h = wsb_http_request_header_at(req, i);
        if (wsb_str_eq_nocase(h->name, "X-Forwarded-For")) {
            xff[nxff++] = h->value;
        }
    }
    uint8_t client[16];
    (void)proxy_client_addr(cfg->trusted, cfg->ntrusted, peer, xff, nxff, client);
    if (c->ip_counted && memcmp(c->ip, client, 16) == 0) {
        return true;
    }
    if (c->ip_counted) {
        net->admit.ip_release(net->admit.ctx, c->ip);
        c->ip_counted = false;
    }
    memcpy(c->ip, client, 16);
    if (!net->admit.ip_acquire(net->admit.ctx, c->ip)) {
        METRIC_ADD(net->metrics->connections_rejected, 1);
        log_debug("connection rejected", "peer=%s reason=max_connections_per_ip", conn_peer(c));
        conn_http_respond(c, 429, "text/plain; charset=utf-8",
                          "too many connections from this address\n", 39, false,
                          "Retry-After: 1\r\n");
        return false;
    }
    c->ip_counted = true;
    return true;
}

/* Handles one complete request. Returns true when the connection is still in
 * HTTP mode and may parse the next pipelined request. */
static bool http_dispatch(conn_t *c)
{
    net_t *net = c->net;
    const net_limits_t *cfg = &net->lim;
    wsb_http_request_t *req = c->http;
    const char *host_error = wsb_http_request_host_error(req);
    if (host_error != NULL) {
        conn_http_error(c, 400, host_error);
        return false;
    }
    if (!admit_forwarded(c, req)) {
        return false;
    }
    wsb_str_t path = url_path(wsb_http_request_url(req));
    bool ws = path_is(path, cfg->ws_path);
    bool echo = !ws && path_is(path, cfg->echo_path);
    if (ws || echo) {
        if (net->shutting_down) {
            conn_http_error(c, 503, "server shutting down");
            return false;
        }
        conn_ingress->ws_upgrade(c, req, echo);
        return false;
    }
    if (wsb_http_request_is_upgrade(req) ||
        wsb_http_request_header_has_token(req, "Upgrade", "websocket")) {
        METRIC_ADD(net->metrics->handshake_failures, 1);
        conn_http_error(c, 404, "no WebSocket endpoint at this path");
        return false;
    }
    METRIC_ADD(net->metrics->http_requests, 1);
    c->head_request = wsb_str_eq(wsb_http_request_method(req), "HEAD");
    conn_ingress->http_request(c, req);
    c->head_request = false;
    return c->state == CONN_HTTP;
}

/* Keeps input that arrives behind a deferred response (see conn_http_defer).
 * Reading stops at NET_READ_BUF_SIZE held bytes, so this takes at most
 * one more read past that (over TLS: its plaintext, plus a record that was
 * incomplete before it): under 3 * NET_READ_BUF_SIZE in all. */
static void http_hold(conn_t *c, const char *data, size_t len)
{
    size_t need = (size_t)c->http_held_len + len;
    if (need > c->http_held_cap) {
        size_t cap = c->http_held_cap ? c->http_held_cap : 1024;
        while (cap < need) {
            cap *= 2;
        }
        c->http_held = xrealloc(c->http_held, cap);
        c->http_held_cap = (uint32_t)cap;
    }
    memcpy(c->http_held + c->http_held_len, data, len);
    c->http_held_len = (uint32_t)need;
    conn_update_reading(c);
}

/* True when the replies queued so far leave no room for another: over
 * `conn_limit` (max_outbound_bytes, or half of it to resume), or behind
 * others while the worker is over its share of max_total_outbound. A
 * connection with nothing queued may always be answered, so it never waits
 * on other connections' peers. */
static bool http_output_full(const conn_t *c, size_t conn_limit)
{
    return conn_output_full(c, conn_limit, 0);
}

void conn_http_feed(conn_t *c, char *data, size_t len)
{
    if (conn_http_holding(c)) {
        http_hold(c, data, len);
        return;
    }
    while (len > 0 && c->state == CONN_HTTP) {
        if (http_output_full(c, c->net->lim.max_outbound_bytes)) {
            /* Pipelined requests are answered only as fast as the peer reads
             * the replies: the rest waits, unparsed (see conn_http_defer). */
            c->http_blocked = true;
            http_hold(c, data, len);
            return;
        }
        size_t used = 0;
        int rc = wsb_http_request_feed(c->http, data, len, &used);
        if (rc == WSB_EAGAIN) {
            if (wsb_http_request_take_continue(c->http)) {
                /* The client waits for this before it sends the body. */
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                conn_send_always(c, frame_buf_copy(cont, sizeof(cont) - 1));
            }
            return;
        }
        if (rc != 0) {
            int status = wsb_http_request_status(c->http);
            log_debug("bad http request", "peer=%s status=%d why=%s", conn_peer(c), status,
                      log_quote(wsb_http_request_error(c->http)));
            if (status != 413 || !conn_ingress->http_body_too_large(c, c->http)) {
                conn_http_error(c, status, wsb_http_request_error(c->http));
            }
            return;
        }
        data += used;
        len -= used;
        if (!http_dispatch(c)) {
            if (c->state == CONN_WS && len > 0) {
                /* Frames sent right behind the upgrade request. The shared read
                 * buffer is writable, which session_feed needs for unmasking. */
                conn_ingress->ws_feed(c->session, (uint8_t *)data, len);
            }
            return;
        }
        if (conn_http_holding(c)) {
            /* The response waits for Redis or a file read: the requests
             * behind it too. */
            if (len > 0) {
                http_hold(c, data, len);
            }
            return;
        }
        wsb_http_request_reset(c->http);
        conn_timer_in(c, c->net->lim.header_timeout_ms);
    }
}

void conn_http_defer(conn_t *c)
{
    assert((c->http_pub != NULL || c->static_load != NULL) && c->state == CONN_HTTP);
    c->deadline_ms = 0;
}

/* Parses the input held while dispatch waited. */
static void http_feed_held(conn_t *c)
{
    char *held = c->http_held;
    size_t len = c->http_held_len;
    c->http_held = NULL;
    c->http_held_len = c->http_held_cap = 0;
    if (c->state == CONN_HTTP) {
        wsb_http_request_reset(c->http);
        conn_timer_in(c, c->net->lim.header_timeout_ms);
        if (len > 0) {
            /* A heap copy, writable as session_feed needs after an upgrade;
             * a new deferral copies what it leaves into a new http_held. */
            conn_http_feed(c, held, len);
        }
    }
    free(held);
    conn_update_reading(c);
}

void conn_http_resume(conn_t *c)
{
    assert(c->http_pub == NULL && c->static_load == NULL);
    if (c->http_blocked) {
        return; /* the replies are over their bounds: http_unblock goes on */
    }
    http_feed_held(c);
}

/* Called after every flush: resumes a paused dispatch once the replies have
 * drained to half of max_outbound_bytes (the hysteresis keeps a peer that
 * reads slowly from being parsed a request at a time). */
void conn_http_unblock(conn_t *c)
{
    if (!c->http_blocked || c->state != CONN_HTTP ||
        http_output_full(c, c->net->lim.max_outbound_bytes / 2)) {
        return;
    }
    c->http_blocked = false;
    if (c->http_pub == NULL && c->static_load == NULL) {
        http_feed_held(c);
    }
}
