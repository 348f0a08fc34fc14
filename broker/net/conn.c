/* conn.c - connection lifecycle, reads, corked writes and timers (see conn.h). */
#include "net/conn.h"

#include "app/broker.h"
#include "app/worker.h"
#include "core/router.h"
#include "ingress/http_api.h"
#include "ingress/static_files.h"
#include "ingress/ws_session.h"
#include "net/proxy.h"
#include "net/tls.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/handshake.h"
#include "wsb/ws_frame.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Slices gathered per write call. Linux's IOV_MAX is 1024; 256 keeps the
 * array on the stack small while still batching a whole fan-out burst. */
#define FLUSH_IOV_MAX 256

/* A TLS connection encrypts queued frames only while less than this much
 * ciphertext waits for the socket: the ciphertext is bounded per connection
 * and the rest stays in the outq as shared frames (counted against
 * max_outbound_bytes like a plain connection's). */
#define TLS_OUT_HIGH ((size_t)64 * 1024)

/* One uv_write of ciphertext: the request and the bytes in one allocation. */
typedef struct {
    uv_write_t req;
    uint8_t bytes[];
} tls_write_t;

static void conn_upgrade(conn_t *c, const wsb_http_request_t *req, bool echo);
static void http_unblock(conn_t *c);

/* ---- lifetime ---------------------------------------------------------------------------- */

/* Frees a closed connection whose handles are all closed. Pending writes
 * were cancelled before the close callbacks, so the queue owns every
 * remaining reference. */
void conn_free(conn_t *c)
{
    assert(c->state == CONN_CLOSED && c->handles_open == 0 && !c->dirty);
    worker_t *s = c->server;
    s->outbound_bytes -= outq_bytes(&c->outq);
    outq_clear(&c->outq);
    tls_conn_free(c->tls);
    free(c);
    if (s->shutting_down && s->nconns == 0) {
        worker_shutdown(s); /* lets the shutdown finish now instead of at its timer */
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles_open > 0) {
        return;
    }
    /* Close callbacks run after the loop's prepare phase, so a connection
     * closed during this turn may still sit on the server's dirty list: the
     * next flush frees it instead. */
    if (!c->dirty) {
        conn_free(c);
    }
}

void conn_close(conn_t *c)
{
    if (c->state == CONN_CLOSED) {
        return;
    }
    worker_t *s = c->server;
    assert(!s->in_fanout);
    conn_resume_publisher(c); /* leaves the server's paused list */
    c->state = CONN_CLOSED;
    if (c->session != NULL) {
        session_free(c->session);
        c->session = NULL;
        s->nws--;
    }
    if (c->http != NULL) {
        wsb_http_request_free(c->http);
        c->http = NULL;
    }
    if (c->http_pub != NULL) {
        http_api_cancel(c); /* its Redis ops come back to find no owner */
    }
    static_cancel(c); /* a file read in progress finishes unowned */
    free(c->http_held);
    c->http_held = NULL;
    c->http_held_len = c->http_held_cap = 0;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    if (c->counted) {
        atomic_fetch_sub_explicit(&s->broker->connections, 1, memory_order_relaxed);
    }
    if (c->ip_counted) {
        auth_ip_release(&s->broker->auth, c->ip);
        c->ip_counted = false;
    }
    worker_update_gauges(s);
    /* A conn still on the dirty list stays allocated until the flush has
     * taken it off (see on_handle_closed). */
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* Sets the connection's one deadline (0: none). The worker's tick checks
 * every connection's deadline (worker.c), so a connection carries 8 bytes
 * for its timeouts instead of a uv_timer_t. */
static void timer_in(conn_t *c, uint64_t ms)
{
    c->deadline_ms = ms == 0 ? 0 : worker_now(c->server) + ms;
}

/* ---- writing ----------------------------------------------------------------------------- */

static void maybe_shutdown(conn_t *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Replies (acks, errors, pongs, echoes, HTTP responses) are caused by the
 * peer's own requests, so a peer that sends but never reads is not cut off:
 * it stops being read once its queue passes max_outbound_bytes, and TCP
 * pushes back on it. Reading resumes when the queue drains below half. */
/* True while the HTTP requests read are not parsed but held: a response is
 * owed (Redis, a file read) or the replies are over their bounds. */
static bool http_holding(const conn_t *c)
{
    return c->http_pub != NULL || c->static_load != NULL || c->http_blocked;
}

/* Reads while neither its replies, the workers' inboxes nor a full held
 * input behind a deferred HTTP response (conn_http_defer) hold it back. */
static void update_reading(conn_t *c)
{
    bool held_full = http_holding(c) && c->http_held_len >= WORKER_READ_BUF_SIZE;
    bool want = !c->read_paused && !c->pub_paused && !held_full;
    if (c->state == CONN_CLOSED || want == c->reading) {
        return;
    }
    c->reading = want;
    if (!want) {
        uv_read_stop((uv_stream_t *)&c->tcp);
    } else if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
    }
}

static void apply_read_backpressure(conn_t *c)
{
    size_t limit = c->server->cfg->max_outbound_bytes;
    if (!c->read_paused && outq_bytes(&c->outq) > limit) {
        c->read_paused = true;
        update_reading(c);
    } else if (c->read_paused && outq_bytes(&c->outq) <= limit / 2) {
        c->read_paused = false;
        update_reading(c);
    }
}

void conn_pause_publisher(conn_t *c)
{
    worker_t *s = c->server;
    if (c->pub_paused || c->state == CONN_CLOSED) {
        return;
    }
    c->pub_paused = true;
    METRIC_ADD(s->metrics.publisher_pauses, 1);
    c->pause_prev = NULL;
    c->pause_next = s->paused;
    if (s->paused != NULL) {
        s->paused->pause_prev = c;
    }
    s->paused = c;
    update_reading(c);
    worker_watch_pressure(s);
}

void conn_resume_publisher(conn_t *c)
{
    worker_t *s = c->server;
    if (!c->pub_paused) {
        return;
    }
    c->pub_paused = false;
    if (c->pause_prev != NULL) {
        c->pause_prev->pause_next = c->pause_next;
    } else {
        s->paused = c->pause_next;
    }
    if (c->pause_next != NULL) {
        c->pause_next->pause_prev = c->pause_prev;
    }
    c->pause_prev = c->pause_next = NULL;
    update_reading(c);
}

/* A write (plain or TLS) finished: a failure closes, success writes what
 * was queued meanwhile. */
static void write_done(conn_t *c, int status)
{
    if (status < 0) {
        if (status != UV_ECANCELED) {
            log_debug("write failed", "peer=%s err=%s", conn_peer(c), uv_err_name(status));
            conn_close(c);
        }
        return;
    }
    if (c->state != CONN_CLOSED) {
        conn_flush(c);
    }
}

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    free(req); /* allocated per uv_write: an idle connection holds no request */
    worker_t *s = c->server;
    size_t before = outq_bytes(&c->outq);
    c->writing = false;
    outq_complete_inflight(&c->outq);
    s->outbound_bytes -= before - outq_bytes(&c->outq);
    write_done(c, status);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED) {
        conn_close(c);
    }
    /* Otherwise keep reading until EOF or the linger timer. */
}

static void maybe_shutdown(conn_t *c)
{
    if (c->state != CONN_LINGER || c->shutdown_started || outq_pending_bytes(&c->outq) > 0 ||
        (c->tls != NULL && tls_conn_out_pending(c->tls) > 0)) {
        return;
    }
    c->shutdown_started = true;
    /* libuv runs the shutdown after the write in flight, so the response or
     * close frame still reaches the peer before our FIN. */
    uv_shutdown_t *req = xmalloc(sizeof(*req));
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
    }
}

static void on_tls_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    free(req); /* the tls_write_t, bytes included */
    c->writing = false;
    write_done(c, status);
}

/* Encrypts queued frames into the connection's TLS session. Slices are
 * gathered into the worker's staging buffer so that a burst of small frames
 * becomes one TLS record instead of one record per frame: the shared frame
 * buffers are read, never copied per subscriber beyond this staging. */
static int tls_encrypt_queued(conn_t *c)
{
    worker_t *s = c->server;
    uv_buf_t bufs[FLUSH_IOV_MAX];
    while (outq_pending_bytes(&c->outq) > 0 && tls_conn_out_pending(c->tls) < TLS_OUT_HIGH) {
        size_t total = 0;
        unsigned n = outq_iov(&c->outq, bufs, FLUSH_IOV_MAX, &total);
        size_t staged = 0;
        for (unsigned i = 0; i < n && staged < sizeof(s->tls_stage); i++) {
            size_t take = bufs[i].len;
            if (take > sizeof(s->tls_stage) - staged) {
                take = sizeof(s->tls_stage) - staged;
            }
            memcpy(s->tls_stage + staged, bufs[i].base, take);
            staged += take;
        }
        long w = tls_conn_write(c->tls, s->tls_stage, staged);
        if (w < 0) {
            log_debug("tls write failed", "peer=%s why=%s", conn_peer(c),
                      log_quote(tls_conn_error(c->tls)));
            return -1;
        }
        if (w == 0) {
            break; /* handshake not finished: the frames wait */
        }
        outq_consume(&c->outq, (size_t)w);
        s->outbound_bytes -= (size_t)w;
    }
    return 0;
}

/* Writes the pending ciphertext: what the kernel takes now, the rest in one
 * uv_write that owns its copy. */
static int tls_write_out(conn_t *c)
{
    worker_t *s = c->server;
    size_t pending = tls_conn_out_pending(c->tls);
    if (pending == 0) {
        return 0;
    }
    tls_write_t *w = xmalloc(sizeof(*w) + pending);
    size_t len = tls_conn_take_out(c->tls, w->bytes, pending);
    uv_buf_t b = uv_buf_init((char *)w->bytes, (unsigned)len);
    METRIC_ADD(s->metrics.write_calls, 1);
    int rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (rc == UV_EAGAIN || rc == UV_ENOSYS) {
        rc = 0;
    } else if (rc < 0) {
        free(w);
        log_debug("write failed", "peer=%s err=%s", conn_peer(c), uv_err_name(rc));
        return -1;
    }
    METRIC_ADD(s->metrics.bytes_out, (uint64_t)rc);
    if ((size_t)rc == len) {
        free(w);
        return 0;
    }
    b = uv_buf_init((char *)w->bytes + rc, (unsigned)(len - (size_t)rc));
    w->req.data = c;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_tls_write) < 0) {
        free(w);
        return -1;
    }
    METRIC_ADD(s->metrics.write_calls, 1);
    METRIC_ADD(s->metrics.bytes_out, len - (size_t)rc);
    c->writing = true;
    return 0;
}

static void tls_flush(conn_t *c)
{
    for (;;) {
        size_t before = outq_pending_bytes(&c->outq);
        if (tls_encrypt_queued(c) != 0) {
            conn_close(c);
            return;
        }
        /* Everything is encrypted and the connection is finishing:
         * close_notify goes out before our FIN. */
        if (c->state == CONN_LINGER && outq_pending_bytes(&c->outq) == 0) {
            tls_conn_close_notify(c->tls);
        }
        if (tls_write_out(c) != 0) {
            conn_close(c);
            return;
        }
        /* The kernel took every byte of ciphertext while frames still wait
         * (more than TLS_OUT_HIGH was queued): no write completion will come
         * to flush them, so encrypt the next batch now. */
        size_t after = outq_pending_bytes(&c->outq);
        if (c->writing || after == 0 || after == before) {
            break;
        }
    }
    apply_read_backpressure(c);
    maybe_shutdown(c);
    http_unblock(c);
}

void conn_flush(conn_t *c)
{
    worker_t *s = c->server;
    if (c->state == CONN_CLOSED || c->writing) {
        return;
    }
    if (c->tls != NULL) {
        tls_flush(c);
        return;
    }
    uv_buf_t bufs[FLUSH_IOV_MAX];
    while (outq_pending_bytes(&c->outq) > 0) {
        size_t total = 0;
        unsigned n = outq_iov(&c->outq, bufs, FLUSH_IOV_MAX, &total);
        METRIC_ADD(s->metrics.write_calls, 1);
        metrics_count_batch(&s->metrics, n);
        int rc = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (rc == UV_EAGAIN || rc == UV_ENOSYS) {
            rc = 0;
        } else if (rc < 0) {
            log_debug("write failed", "peer=%s err=%s", conn_peer(c), uv_err_name(rc));
            conn_close(c);
            return;
        }
        size_t written = (size_t)rc;
        METRIC_ADD(s->metrics.bytes_out, written);
        outq_consume(&c->outq, written);
        s->outbound_bytes -= written;
        if (written == total) {
            continue;
        }
        /* The kernel's buffer is full: hand the rest to libuv, which writes it
         * when the socket becomes writable. One write in flight at a time. */
        n = outq_iov(&c->outq, bufs, FLUSH_IOV_MAX, &total);
        uv_write_t *req = xmalloc(sizeof(*req));
        req->data = c;
        rc = uv_write(req, (uv_stream_t *)&c->tcp, bufs, n, on_write);
        if (rc < 0) {
            free(req);
            conn_close(c);
            return;
        }
        METRIC_ADD(s->metrics.write_calls, 1);
        METRIC_ADD(s->metrics.bytes_out, total);
        outq_mark_inflight(&c->outq, n, total);
        c->writing = true;
        break;
    }
    apply_read_backpressure(c);
    maybe_shutdown(c);
    http_unblock(c);
}

int conn_send(conn_t *c, frame_buf_t *fb, uint32_t off, uint32_t len)
{
    worker_t *s = c->server;
    if (c->state != CONN_WS) {
        return -1;
    }
    const config_t *cfg = s->cfg;
    if (outq_bytes(&c->outq) + len > cfg->max_outbound_bytes ||
        (s->outbound_bytes + len > s->outbound_limit && outq_bytes(&c->outq) > 0)) {
        return -1;
    }
    outq_push(&c->outq, frame_buf_ref(fb), off, len);
    s->outbound_bytes += len;
    worker_mark_dirty(s, c);
    return 0;
}

void conn_send_always(conn_t *c, frame_buf_t *fb)
{
    worker_t *s = c->server;
    if (c->state == CONN_CLOSED) {
        frame_buf_unref(fb);
        return;
    }
    outq_push(&c->outq, fb, 0, fb->len);
    s->outbound_bytes += fb->len;
    worker_mark_dirty(s, c);
    apply_read_backpressure(c);
}

/* ---- closing ----------------------------------------------------------------------------- */

void conn_linger(conn_t *c)
{
    if (c->state == CONN_CLOSED || c->state == CONN_LINGER) {
        return;
    }
    c->state = CONN_LINGER;
    timer_in(c, c->server->cfg->close_timeout_ms);
    worker_mark_dirty(c->server, c); /* the flush starts the shutdown */
}

void conn_ws_close(conn_t *c, int code, const char *reason, bool drop_pending)
{
    if (c->state != CONN_WS) {
        return;
    }
    worker_t *s = c->server;
    if (drop_pending) {
        s->outbound_bytes -= outq_drop_pending(&c->outq);
    }
    uint8_t payload[WSB_WS_MAX_CONTROL_PAYLOAD];
    size_t plen = wsb_ws_close_payload(payload, code, reason);
    frame_buf_t *fb = frame_buf_new(2 + plen);
    int n = wsb_ws_build_frame(fb->bytes, 2 + plen, true, WSB_WS_OP_CLOSE, payload, plen, NULL);
    assert(n == (int)(2 + plen));
    (void)n;
    conn_send_always(c, fb);
    metrics_count_close(&s->metrics, code);
    log_debug("ws close sent", "peer=%s code=%d reason=%s", conn_peer(c), code,
              log_quote(reason ? reason : ""));
    if (c->got_peer_close) {
        conn_linger(c);
    } else {
        c->state = CONN_WS_CLOSING;
        timer_in(c, s->cfg->close_timeout_ms);
    }
}

/* ---- HTTP mode --------------------------------------------------------------------------- */

void conn_http_respond_buf(conn_t *c, frame_buf_t *fb, bool keep_alive)
{
    if (c->state != CONN_HTTP) {
        frame_buf_unref(fb);
        return;
    }
    conn_send_always(c, fb);
    if (!keep_alive || c->server->shutting_down) {
        conn_linger(c);
    }
}

void conn_http_respond(conn_t *c, int status, const char *content_type, const void *body,
                       size_t len, bool keep_alive, const char *extra_headers)
{
    char head[1024];
    keep_alive = keep_alive && !c->server->shutting_down;
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
    if (!keep_alive || c->server->shutting_down) {
        conn_linger(c);
    }
}

static void http_error(conn_t *c, int status, const char *message)
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

static int socket_ip(conn_t *c, uint8_t ip[16]);

/* A connection from a trusted proxy is counted under the client address its
 * X-Forwarded-For names, request by request (the proxy may reuse one upstream
 * connection for several clients), instead of at accept under the proxy's
 * address. Returns false when that client is over max_connections_per_ip: the
 * 429 is queued and the connection lingers. Any other peer was counted at
 * accept and is left alone: its header is the client's own claim. */
static bool admit_forwarded(conn_t *c, const wsb_http_request_t *req)
{
    worker_t *s = c->server;
    const config_t *cfg = s->cfg;
    uint8_t peer[16];
    if (cfg->ntrusted == 0 || socket_ip(c, peer) != 0 ||
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
        auth_ip_release(&s->broker->auth, c->ip);
        c->ip_counted = false;
    }
    memcpy(c->ip, client, 16);
    if (!auth_ip_acquire(&s->broker->auth, c->ip)) {
        METRIC_ADD(s->metrics.connections_rejected, 1);
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
    worker_t *s = c->server;
    const config_t *cfg = s->cfg;
    wsb_http_request_t *req = c->http;
    const char *host_error = wsb_http_request_host_error(req);
    if (host_error != NULL) {
        http_error(c, 400, host_error);
        return false;
    }
    if (!admit_forwarded(c, req)) {
        return false;
    }
    wsb_str_t path = url_path(wsb_http_request_url(req));
    bool ws = path_is(path, cfg->ws_path);
    bool echo = !ws && path_is(path, cfg->echo_path);
    if (ws || echo) {
        if (s->shutting_down) {
            http_error(c, 503, "server shutting down");
            return false;
        }
        conn_upgrade(c, req, echo);
        return false;
    }
    if (wsb_http_request_is_upgrade(req) ||
        wsb_http_request_header_has_token(req, "Upgrade", "websocket")) {
        METRIC_ADD(s->metrics.handshake_failures, 1);
        http_error(c, 404, "no WebSocket endpoint at this path");
        return false;
    }
    METRIC_ADD(s->metrics.http_requests, 1);
    c->head_request = wsb_str_eq(wsb_http_request_method(req), "HEAD");
    http_api_handle(c, req);
    c->head_request = false;
    return c->state == CONN_HTTP;
}

/* Keeps input that arrives behind a deferred response (see conn_http_defer).
 * Reading stops at WORKER_READ_BUF_SIZE held bytes, so this takes at most
 * one more read past that (over TLS: its plaintext, plus a record that was
 * incomplete before it): under 3 * WORKER_READ_BUF_SIZE in all. */
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
    update_reading(c);
}

/* True when the replies queued so far leave no room for another: over
 * `conn_limit` (max_outbound_bytes, or half of it to resume), or behind
 * others while the worker is over its share of max_total_outbound. A
 * connection with nothing queued may always be answered, so it never waits
 * on other connections' peers. */
static bool http_output_full(const conn_t *c, size_t conn_limit)
{
    const worker_t *s = c->server;
    size_t queued = outq_bytes(&c->outq);
    return queued > conn_limit || (queued > 0 && s->outbound_bytes > s->outbound_limit);
}

static void http_feed(conn_t *c, char *data, size_t len)
{
    if (http_holding(c)) {
        http_hold(c, data, len);
        return;
    }
    while (len > 0 && c->state == CONN_HTTP) {
        if (http_output_full(c, c->server->cfg->max_outbound_bytes)) {
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
            if (status != 413 || !http_api_body_too_large(c, c->http)) {
                http_error(c, status, wsb_http_request_error(c->http));
            }
            return;
        }
        data += used;
        len -= used;
        if (!http_dispatch(c)) {
            if (c->state == CONN_WS && len > 0) {
                /* Frames sent right behind the upgrade request. The shared read
                 * buffer is writable, which session_feed needs for unmasking. */
                session_feed(c->session, (uint8_t *)data, len);
            }
            return;
        }
        if (http_holding(c)) {
            /* The response waits for Redis or a file read: the requests
             * behind it too. */
            if (len > 0) {
                http_hold(c, data, len);
            }
            return;
        }
        wsb_http_request_reset(c->http);
        timer_in(c, c->server->cfg->header_timeout_ms);
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
        timer_in(c, c->server->cfg->header_timeout_ms);
        if (len > 0) {
            /* A heap copy, writable as session_feed needs after an upgrade;
             * a new deferral copies what it leaves into a new http_held. */
            http_feed(c, held, len);
        }
    }
    free(held);
    update_reading(c);
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
static void http_unblock(conn_t *c)
{
    if (!c->http_blocked || c->state != CONN_HTTP ||
        http_output_full(c, c->server->cfg->max_outbound_bytes / 2)) {
        return;
    }
    c->http_blocked = false;
    if (c->http_pub == NULL && c->static_load == NULL) {
        http_feed_held(c);
    }
}

/* Answers a refused upgrade with `status` and `message` as its body, and
 * closes. The caller logs it. */
static void refusal_respond(conn_t *c, int status, const char *message, const char *extra_headers)
{
    METRIC_ADD(c->server->metrics.handshake_failures, 1);
    char body[512];
    int n = snprintf(body, sizeof(body), "%s\n", message);
    size_t len = n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0;
    conn_http_respond(c, status, "text/plain; charset=utf-8", body, len, false, extra_headers);
}

/* A refusal for load (429): logged at debug only, as a flood must not flood
 * the log. */
static void http_refuse(conn_t *c, int status, const char *message, const char *extra_headers)
{
    log_debug("handshake refused", "peer=%s status=%d why=%s", conn_peer(c), status,
              log_quote(message));
    refusal_respond(c, status, message, extra_headers);
}

/*
 * An upgrade refused for its credentials or its Origin (PROTOCOL.md 10). A
 * browser cannot read an HTTP refusal (its WebSocket API reports 1006 and no
 * more), so a request with an Origin header, which every browser sends, is
 * upgraded and closed at once with `code` and `reason`, which the page sees in
 * its close event; no welcome is sent and nothing it sends is processed (the
 * connection lingers: reads are discarded until the peer closes or
 * close_timeout). A client without Origin gets 403 with `body`, which does
 * not name the exact failure; `why` goes to the log.
 */
static void refuse_credentials(conn_t *c, const wsb_handshake_t *hs, int code, const char *reason,
                               const char *body, const char *why)
{
    if (hs->origin.p == NULL) {
        /* The exact cause is for the operator, at info; the body says less. */
        log_info("handshake refused", "peer=%s status=403 why=%s", conn_peer(c), log_quote(why));
        refusal_respond(c, 403, body, NULL);
        return;
    }
    worker_t *s = c->server;
    METRIC_ADD(s->metrics.handshake_failures, 1);
    char origin[136];
    (void)snprintf(origin, sizeof(origin), "%.*s",
                   (int)(hs->origin.len < 128 ? hs->origin.len : 128), hs->origin.p);
    log_info("handshake refused", "peer=%s close=%d why=%s origin=%s", conn_peer(c), code,
             log_quote(why), log_quote(origin));
    char head[512];
    int hl = wsb_handshake_response(head, sizeof(head), hs);
    assert(hl > 0);
    uint8_t payload[WSB_WS_MAX_CONTROL_PAYLOAD];
    size_t plen = wsb_ws_close_payload(payload, code, reason);
    frame_buf_t *fb = frame_buf_new((size_t)hl + 2 + plen);
    memcpy(fb->bytes, head, (size_t)hl);
    int n =
        wsb_ws_build_frame(fb->bytes + hl, 2 + plen, true, WSB_WS_OP_CLOSE, payload, plen, NULL);
    assert(n == (int)(2 + plen));
    (void)n;
    conn_send_always(c, fb);
    metrics_count_close(&s->metrics, code);
    conn_linger(c);
}

/* The token of an upgrade request: the `token` query parameter (browsers
 * cannot set headers on a WebSocket) or "Authorization: Bearer". Returns its
 * length, 0 when there is none, -1 when it is malformed or too long. */
static int request_token(const wsb_http_request_t *req, char *out, size_t cap)
{
    int n = wsb_http_query_param(wsb_http_request_url(req), "token", out, cap);
    if (n >= 0) {
        return n;
    }
    if (n != WSB_EAGAIN) {
        return -1;
    }
    wsb_str_t h = wsb_http_request_header(req, "Authorization");
    if (h.p == NULL) {
        return 0;
    }
    if (h.len < 7 || strncasecmp(h.p, "Bearer ", 7) != 0 || h.len - 7 >= cap) {
        return -1;
    }
    memcpy(out, h.p + 7, h.len - 7);
    out[h.len - 7] = '\0';
    return (int)(h.len - 7);
}

static void conn_upgrade(conn_t *c, const wsb_http_request_t *req, bool echo)
{
    worker_t *s = c->server;
    broker_t *b = s->broker;
    const config_t *cfg = s->cfg;
    wsb_handshake_t hs;
    if (wsb_handshake_check(req, NULL, &hs) != 0) {
        METRIC_ADD(s->metrics.handshake_failures, 1);
        http_error(c, hs.status, hs.reason);
        return;
    }
    /* Cross-site WebSocket hijacking: a page on another site must not ride on
     * the user's cookies or network position. */
    if (!auth_origin_allowed(cfg, hs.origin)) {
        refuse_credentials(c, &hs, WSB_WS_CLOSE_ORIGIN_NOT_ALLOWED, "origin not allowed",
                           "an Origin header is required",
                           hs.origin.p ? "origin not in allowed_origins"
                                       : "no Origin header and allow_missing_origin is false");
        return;
    }
    /* A TLS connection paid for its handshake at accept: one token each. */
    if (!c->hs_counted && !auth_handshake_allowed(&b->auth, uv_hrtime())) {
        http_refuse(c, 429, "too many handshakes: retry later", "Retry-After: 1\r\n");
        return;
    }
    c->hs_counted = true;
    wsb_jwt_claims_t *claims = NULL;
    /* Without a configured key there is nothing to check a token against: it
     * is ignored (an open broker behind a client that always sends one). */
    if (!echo && b->auth.jwt != NULL) {
        char token[WSB_JWT_MAX_LEN + 1];
        int tlen = request_token(req, token, sizeof(token));
        if (tlen < 0) {
            refuse_credentials(c, &hs, WSB_WS_CLOSE_INVALID_TOKEN, "invalid token",
                               "invalid credentials",
                               "malformed token (query parameter or Authorization header)");
            return;
        }
        if (tlen > 0) {
            wsb_jwt_claims_t verified;
            const char *why = "";
            if (auth_verify(&b->auth, token, (size_t)tlen, &verified, &why) != 0) {
                if (auth_why_expired(why)) {
                    refuse_credentials(c, &hs, WSB_WS_CLOSE_TOKEN_EXPIRED, "token expired",
                                       "invalid credentials", why);
                } else {
                    refuse_credentials(c, &hs, WSB_WS_CLOSE_INVALID_TOKEN, "invalid token",
                                       "invalid credentials", why);
                }
                return;
            }
            claims = xmalloc(sizeof(*claims));
            *claims = verified;
        }
    }
    char buf[512];
    int n = wsb_handshake_response(buf, sizeof(buf), &hs);
    assert(n > 0);
    conn_send_always(c, frame_buf_copy(buf, (size_t)n));
    wsb_http_request_free(c->http);
    c->http = NULL;
    c->state = CONN_WS;
    s->nws++;
    worker_update_gauges(s);
    METRIC_ADD(s->metrics.ws_upgrades, 1);
    c->session = session_new(c, echo, claims);
    c->last_rx_ms = worker_now(s);
    c->session->keepalive_due_ms =
        worker_now(s) + (cfg->ping_interval_ms ? cfg->ping_interval_ms : cfg->idle_timeout_ms);
    conn_ws_rearm(c);
}

void conn_ws_rearm(conn_t *c)
{
    session_t *ss = c->session;
    if (c->state != CONN_WS || ss == NULL) {
        return;
    }
    uint64_t due = ss->keepalive_due_ms;
    if (ss->auth_deadline_ms != 0 && ss->auth_deadline_ms < due) {
        due = ss->auth_deadline_ms;
    }
    c->deadline_ms = due != 0 ? due : 1; /* 0 means "none"; a past time fires at once */
}

/* ---- reading ----------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = h->data;
    buf->base = (char *)c->server->read_buf;
    buf->len = sizeof(c->server->read_buf);
}

/* Plaintext from the peer, by state. */
static void conn_dispatch(conn_t *c, char *data, size_t len)
{
    switch (c->state) {
    case CONN_HTTP:
        http_feed(c, data, len);
        break;
    case CONN_WS:
    case CONN_WS_CLOSING:
        /* While closing the parser still runs, to find the peer's close frame;
         * the session drops everything else. */
        session_feed(c->session, (uint8_t *)data, len);
        break;
    case CONN_LINGER:
    case CONN_CLOSED:
        break; /* discarded: see LINGER in conn.h */
    }
}

/* Ciphertext from the peer: decrypt record by record into the worker's
 * plaintext buffer and dispatch each piece (the parsers copy what they keep).
 * Handshake messages and alerts OpenSSL produces meanwhile go out with the
 * flush at the end of this loop turn. */
static void tls_read(conn_t *c, const uint8_t *data, size_t len)
{
    worker_t *s = c->server;
    if (tls_conn_feed(c->tls, data, len) != 0) {
        conn_close(c);
        return;
    }
    while (c->state != CONN_CLOSED) {
        long n = tls_conn_read(c->tls, s->plain_buf, sizeof(s->plain_buf));
        if (n > 0) {
            conn_dispatch(c, (char *)s->plain_buf, (size_t)n);
            continue;
        }
        if (n == TLS_AGAIN) {
            break;
        }
        if (n == TLS_FATAL) {
            if (!tls_conn_handshake_done(c->tls)) {
                METRIC_ADD(s->metrics.handshake_failures, 1);
            }
            log_debug("tls error", "peer=%s why=%s", conn_peer(c),
                      log_quote(tls_conn_error(c->tls)));
            /* Best effort: the alert OpenSSL queued tells the peer why. */
            (void)tls_write_out(c);
        }
        conn_close(c); /* fatal, or the peer's close_notify (like EOF) */
        return;
    }
    if (c->state != CONN_CLOSED) {
        worker_mark_dirty(s, c);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = stream->data;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        if (nread != UV_EOF) {
            log_debug("read failed", "peer=%s err=%s", conn_peer(c), uv_err_name((int)nread));
        }
        conn_close(c);
        return;
    }
    worker_t *s = c->server;
    /* Whatever was published before these bytes were sent (e.g. acked to
     * another client on another worker) is delivered before we answer them:
     * a reply never overtakes a message that was published earlier. */
    router_drain(s);
    METRIC_ADD(s->metrics.bytes_in, (uint64_t)nread);
    /* Bytes alone do not reset the idle timer (c->last_rx_ms): a peer that
     * dribbles one frame a byte at a time would keep the connection forever.
     * The session stamps it when a frame is complete (session_frame_done). */
    if (c->tls != NULL) {
        tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
    } else {
        conn_dispatch(c, buf->base, (size_t)nread);
    }
}

/* ---- timers ------------------------------------------------------------------------------ */

static void ws_keepalive(conn_t *c)
{
    worker_t *s = c->server;
    const config_t *cfg = s->cfg;
    uint64_t now = worker_now(s);
    uint64_t silent = now - c->last_rx_ms;
    if (cfg->idle_timeout_ms > 0 && silent >= cfg->idle_timeout_ms) {
        METRIC_ADD(s->metrics.idle_timeouts, 1);
        log_debug("idle timeout", "peer=%s silent_ms=%llu", conn_peer(c),
                  (unsigned long long)silent);
        conn_ws_close(c, WSB_WS_CLOSE_POLICY, "idle timeout", true);
        return;
    }
    uint64_t next = cfg->ping_interval_ms;
    if (cfg->ping_interval_ms > 0) {
        uint8_t frame[2];
        size_t hl = wsb_ws_write_header(frame, true, WSB_WS_OP_PING, 0, NULL);
        conn_send_always(c, frame_buf_copy(frame, hl));
    }
    if (cfg->idle_timeout_ms > 0) {
        uint64_t left = cfg->idle_timeout_ms - silent;
        if (next == 0 || left < next) {
            next = left;
        }
    }
    c->session->keepalive_due_ms = now + next;
    conn_ws_rearm(c);
}

static void ws_deadline(conn_t *c)
{
    session_t *ss = c->session;
    uint64_t now = worker_now(c->server);
    if (ss->auth_deadline_ms != 0 && now >= ss->auth_deadline_ms) {
        log_debug("auth deadline", "peer=%s why=%s", conn_peer(c),
                  ss->authed ? "token expired" : "authentication timeout");
        /* An expired token is not a policy violation: 4002 tells the client
         * to fetch a fresh one before it reconnects (PROTOCOL.md 8). */
        if (ss->authed) {
            conn_ws_close(c, WSB_WS_CLOSE_TOKEN_EXPIRED, "token expired", true);
        } else {
            conn_ws_close(c, WSB_WS_CLOSE_POLICY, "authentication timeout", true);
        }
        return;
    }
    if (now >= ss->keepalive_due_ms) {
        ws_keepalive(c);
    } else {
        conn_ws_rearm(c);
    }
}

void conn_on_deadline(conn_t *c)
{
    switch (c->state) {
    case CONN_HTTP:
        METRIC_ADD(c->server->metrics.header_timeouts, 1);
        if (c->tls != NULL && !tls_conn_handshake_done(c->tls)) {
            /* A TLS slowloris: no handshake, so nobody to answer 408 to. */
            log_debug("tls handshake timeout", "peer=%s", conn_peer(c));
            conn_close(c);
            break;
        }
        log_debug("header timeout", "peer=%s", conn_peer(c));
        http_error(c, 408, "request header timeout");
        break;
    case CONN_WS:
        ws_deadline(c);
        break;
    case CONN_WS_CLOSING:
    case CONN_LINGER:
        conn_close(c);
        break;
    case CONN_CLOSED:
        break;
    }
}

/* ---- accept ------------------------------------------------------------------------------ */

/* A socket address as 16 bytes (IPv4 mapped into IPv6). */
static void sockaddr_ip(const struct sockaddr_storage *ss, uint8_t ip[16])
{
    memset(ip, 0, 16);
    if (ss->ss_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    } else {
        ip[10] = 0xff;
        ip[11] = 0xff;
        memcpy(ip + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    }
}

/* The TCP peer's address as 16 bytes. Returns 0, or -1 when it is gone. */
static int socket_ip(conn_t *c, uint8_t ip[16])
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) {
        return -1;
    }
    sockaddr_ip(&ss, ip);
    return 0;
}

const char *conn_peer(conn_t *c)
{
    /* Formatted on demand (only debug logs use it): an idle connection does
     * not carry its address as text. */
    static _Thread_local char peer[160];
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    peer[0] = '\0';
    if (c->state == CONN_CLOSED || uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) {
        return peer;
    }
    char sock[64];
    broker_format_addr(&ss, sock, sizeof(sock));
    /* `ip` holds another address only when a trusted proxy forwarded this
     * client (admit_forwarded); it is all zeros when accept found no peer. */
    static const uint8_t none[16];
    uint8_t ip[16];
    sockaddr_ip(&ss, ip);
    if (memcmp(ip, c->ip, 16) != 0 && memcmp(c->ip, none, 16) != 0) {
        char client[48];
        proxy_format_addr(c->ip, client, sizeof(client));
        (void)snprintf(peer, sizeof(peer), "%s,via=%s", client, sock);
    } else {
        (void)snprintf(peer, sizeof(peer), "%s", sock);
    }
    return peer;
}

/* The peer's address as 16 bytes (IPv4 mapped into IPv6) for per-IP limits. */
static void peer_ip(conn_t *c)
{
    if (socket_ip(c, c->ip) != 0) {
        memset(c->ip, 0, sizeof(c->ip));
    }
}

void conn_accept(worker_t *s, bool tls)
{
    conn_t *c = xcalloc(1, sizeof(*c));
    c->server = s;
    outq_init(&c->outq);
    uv_tcp_init(&s->loop, &c->tcp);
    c->tcp.data = c;
    c->handles_open = 1;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    worker_update_gauges(s);
    c->state = CONN_HTTP;
    uv_stream_t *listener = tls ? (uv_stream_t *)&s->tls_listener : (uv_stream_t *)&s->listener;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (tls) {
        c->tls = tls_conn_new(s->broker->tls);
        if (c->tls == NULL) {
            conn_close(c);
            return;
        }
    }
    METRIC_ADD(s->metrics.connections_accepted, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    c->last_rx_ms = worker_now(s);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
    /* max_connections bounds the whole process, not each worker. */
    size_t total = atomic_fetch_add_explicit(&s->broker->connections, 1, memory_order_relaxed) + 1;
    c->counted = true;
    if (total > s->cfg->max_connections) {
        METRIC_ADD(s->metrics.connections_rejected, 1);
        log_debug("connection rejected", "peer=%s reason=max_connections", conn_peer(c));
        http_error(c, 503, "too many connections");
        return;
    }
    peer_ip(c);
    /* A trusted proxy's connections are counted per request, under the
     * client it names (admit_forwarded), not under the proxy here. */
    const config_t *cfg = s->cfg;
    bool from_proxy = cfg->ntrusted > 0 && proxy_is_trusted(cfg->trusted, cfg->ntrusted, c->ip);
    if (!from_proxy) {
        if (!auth_ip_acquire(&s->broker->auth, c->ip)) {
            METRIC_ADD(s->metrics.connections_rejected, 1);
            log_debug("connection rejected", "peer=%s reason=max_connections_per_ip", conn_peer(c));
            if (c->tls != NULL) {
                conn_close(c); /* no handshake yet: nothing to say it with */
            } else {
                conn_http_respond(c, 429, "text/plain; charset=utf-8",
                                  "too many connections from this address\n", 39, false,
                                  "Retry-After: 1\r\n");
            }
            return;
        }
        c->ip_counted = true;
    }
    /* A TLS handshake is the expensive part of a wss:// connection (key
     * exchange, signature), so it takes the handshake budget before any
     * cryptography runs. There is no way to say 429 before the handshake:
     * the connection is closed, as over the per-IP limit. */
    if (c->tls != NULL) {
        if (!auth_handshake_allowed(&s->broker->auth, uv_hrtime())) {
            METRIC_ADD(s->metrics.connections_rejected, 1);
            log_debug("connection rejected", "peer=%s reason=max_handshakes_per_second",
                      conn_peer(c));
            conn_close(c);
            return;
        }
        c->hs_counted = true;
    }
    c->http = wsb_http_request_new(s->cfg->max_header_size, s->cfg->max_http_body);
    if (c->http == NULL) {
        conn_close(c);
        return;
    }
    timer_in(c, s->cfg->header_timeout_ms);
}
