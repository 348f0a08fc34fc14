/* conn.c - connection lifecycle, reads, corked writes and timers (see conn.h;
 * accept and admission are in conn_accept.c). */
#include "net/conn.h"

#include "net/conn_internal.h"
#include "net/net.h"
#include "net/tls.h"
#include "shared/log.h"
#include "shared/util.h"
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

/* One uv_write of ciphertext the kernel did not take at once: the request
 * owns the bytes (detached from the TLS session, no copy). */
typedef struct {
    uv_write_t req;
    uint8_t *bytes;
} tls_write_t;

/* The HTTP and WebSocket modes' ingress (conn_set_handlers). */
const conn_handlers_t *conn_ingress;

void conn_set_handlers(const conn_handlers_t *h)
{
    conn_ingress = h;
}

/* The RESP mode's session (conn_set_resp_handlers). */
static const conn_resp_handlers_t *resp_handlers;

void conn_set_resp_handlers(const conn_resp_handlers_t *h)
{
    resp_handlers = h;
}

/* The SSE mode's session (conn_set_sse_handlers). */
static const conn_resp_handlers_t *sse_handlers;

void conn_set_sse_handlers(const conn_resp_handlers_t *h)
{
    sse_handlers = h;
}

/* The handler table of c->resp: RESP's or SSE's. */
static const conn_resp_handlers_t *mode_handlers(const conn_t *c)
{
    return c->sse ? sse_handlers : resp_handlers;
}

void conn_become_sse(conn_t *c, void *sess)
{
    wsb_http_request_free(c->http);
    c->http = NULL;
    c->sse = true;
    c->resp = sess;
    c->state = CONN_SSE;
}

void net_mark_dirty(net_t *net, conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = net->dirty;
        net->dirty = c;
    }
}

/* ---- lifetime ---------------------------------------------------------------------------- */

/* Frees a closed connection whose handles are all closed. Pending writes
 * were cancelled before the close callbacks, so the queue owns every
 * remaining reference. */
void conn_free(conn_t *c)
{
    assert(c->state == CONN_CLOSED && c->handles_open == 0 && !c->dirty);
    net_t *net = c->net;
    net->outbound_bytes -= outq_bytes(&c->outq);
    outq_clear(&c->outq);
    tls_conn_free(c->tls);
    free(c);
    if (net->shutting_down && net->nconns == 0) {
        net->hooks->drained(net); /* lets the shutdown finish now instead of at its timer */
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles_open > 0) {
        return;
    }
    /* Close callbacks run after the loop's prepare phase, so a connection
     * closed during this turn may still sit on the worker's dirty list: the
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
    net_t *net = c->net;
    assert(net->in_fanout == NULL || !*net->in_fanout);
    c->state = CONN_CLOSED;
    conn_resume_publisher(c); /* leaves the worker's paused list */
    if (c->resp != NULL) {
        mode_handlers(c)->close(c->resp); /* its subscriptions leave the trie */
        c->resp = NULL;
    }
    if (c->session != NULL) {
        conn_ingress->ws_free(c->session);
        c->session = NULL;
        net->nws--;
    }
    if (c->http != NULL) {
        wsb_http_request_free(c->http);
        c->http = NULL;
    }
    if (c->http_pub != NULL || c->static_load != NULL) {
        /* Its Redis ops come back, or its file read finishes, unowned. */
        conn_ingress->http_cancel(c);
    }
    free(c->http_held);
    c->http_held = NULL;
    c->http_held_len = c->http_held_cap = 0;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        net->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    net->nconns--;
    if (c->counted) {
        atomic_fetch_sub_explicit(net->admit.connections, 1, memory_order_relaxed);
    }
    if (c->ip_counted) {
        net->admit.ip_release(net->admit.ctx, c->ip);
        c->ip_counted = false;
    }
    net->hooks->update_gauges(net);
    /* A conn still on the dirty list stays allocated until the flush has
     * taken it off (see on_handle_closed). */
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* Sets the connection's one deadline (0: none). The worker's tick checks
 * every connection's deadline (worker.c), so a connection carries 8 bytes
 * for its timeouts instead of a uv_timer_t. */
void conn_timer_in(conn_t *c, uint64_t ms)
{
    c->deadline_ms = ms == 0 ? 0 : net_now(c->net) + ms;
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
bool conn_http_holding(const conn_t *c)
{
    return c->http_pub != NULL || c->static_load != NULL || c->http_blocked;
}

/* Reads while neither its replies, the workers' inboxes nor a full held
 * input behind a deferred HTTP response (conn_http_defer) hold it back. */
void conn_update_reading(conn_t *c)
{
    bool held_full = conn_http_holding(c) && c->http_held_len >= NET_READ_BUF_SIZE;
    bool want =
        !c->read_paused && !c->pub_paused && !held_full && !c->input_held && !c->read_yielded;
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
    size_t limit = c->net->lim.max_outbound_bytes;
    if (!c->read_paused && outq_bytes(&c->outq) > limit) {
        c->read_paused = true;
        conn_update_reading(c);
    } else if (c->read_paused && outq_bytes(&c->outq) <= limit / 2) {
        c->read_paused = false;
        conn_update_reading(c);
    }
}

void conn_hold_input(conn_t *c, bool hold)
{
    c->input_held = hold;
    conn_update_reading(c);
}

bool conn_output_full(const conn_t *c, size_t limit, size_t extra)
{
    const net_t *net = c->net;
    size_t queued = outq_bytes(&c->outq) + extra;
    return queued > limit || (queued > 0 && net->outbound_bytes + extra > net->outbound_limit);
}

/* After a flush: a RESP session whose replies have drained (to half of
 * max_outbound_bytes, as HTTP) goes on with the requests it held back. */
static void resp_unblock(conn_t *c)
{
    if (c->state == CONN_RESP && c->resp != NULL && !c->pub_paused &&
        !conn_output_full(c, c->net->lim.max_outbound_bytes / 2, 0)) {
        resp_handlers->writable(c->resp);
    }
}

void conn_pause_publisher(conn_t *c)
{
    net_t *net = c->net;
    if (c->pub_paused || c->state == CONN_CLOSED) {
        return;
    }
    c->pub_paused = true;
    METRIC_ADD(net->metrics->publisher_pauses, 1);
    c->pause_prev = NULL;
    c->pause_next = net->paused;
    if (net->paused != NULL) {
        net->paused->pause_prev = c;
    }
    net->paused = c;
    conn_update_reading(c);
    net->hooks->watch_pressure(net);
}

void conn_resume_publisher(conn_t *c)
{
    net_t *net = c->net;
    if (!c->pub_paused) {
        return;
    }
    c->pub_paused = false;
    if (c->pause_prev != NULL) {
        c->pause_prev->pause_next = c->pause_next;
    } else {
        net->paused = c->pause_next;
    }
    if (c->pause_next != NULL) {
        c->pause_next->pause_prev = c->pause_prev;
    }
    c->pause_prev = c->pause_next = NULL;
    conn_update_reading(c);
    if (c->state == CONN_RESP) {
        /* Its held requests run at this turn's flush (resp_unblock), not
         * here: they may pause it again while the paused list is walked. */
        net_mark_dirty(net, c);
    }
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
    net_t *net = c->net;
    size_t before = outq_bytes(&c->outq);
    c->writing = false;
    outq_complete_inflight(&c->outq);
    net->outbound_bytes -= before - outq_bytes(&c->outq);
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
    free(((tls_write_t *)req)->bytes);
    free(req);
    c->writing = false;
    write_done(c, status);
}

/* Encrypts queued frames into the connection's TLS session, straight from
 * the shared frame buffers: a burst of small frames becomes one TLS record
 * (up to 2^14 bytes each) instead of one record per frame. */
static int tls_encrypt_queued(conn_t *c)
{
    net_t *net = c->net;
    uv_buf_t bufs[FLUSH_IOV_MAX];
    tls_iov_t iov[FLUSH_IOV_MAX];
    while (outq_pending_bytes(&c->outq) > 0 && tls_conn_out_pending(c->tls) < TLS_OUT_HIGH) {
        size_t total = 0;
        unsigned n = outq_iov(&c->outq, bufs, FLUSH_IOV_MAX, &total);
        for (unsigned i = 0; i < n; i++) {
            iov[i] = (tls_iov_t){(const uint8_t *)bufs[i].base, bufs[i].len};
        }
        long w = tls_conn_writev(c->tls, iov, n);
        if (w < 0) {
            log_debug("tls write failed", "peer=%s why=%s", conn_peer(c),
                      log_quote(tls_conn_error(c->tls)));
            return -1;
        }
        if (w == 0) {
            break; /* handshake not finished: the frames wait */
        }
        outq_consume(&c->outq, (size_t)w);
        net->outbound_bytes -= (size_t)w;
    }
    return 0;
}

/* Writes the pending ciphertext: what the kernel takes now, the rest in one
 * uv_write that owns the detached buffer. */
static int tls_write_out(conn_t *c)
{
    net_t *net = c->net;
    size_t len = 0;
    uint8_t *bytes = tls_conn_detach_out(c->tls, &len);
    if (bytes == NULL) {
        return 0;
    }
    uv_buf_t b = uv_buf_init((char *)bytes, (unsigned)len);
    METRIC_ADD(net->metrics->write_calls, 1);
    int rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (rc == UV_EAGAIN || rc == UV_ENOSYS) {
        rc = 0;
    } else if (rc < 0) {
        free(bytes);
        log_debug("write failed", "peer=%s err=%s", conn_peer(c), uv_err_name(rc));
        return -1;
    }
    METRIC_ADD(net->metrics->bytes_out, (uint64_t)rc);
    if ((size_t)rc == len) {
        free(bytes);
        return 0;
    }
    tls_write_t *w = xmalloc(sizeof(*w));
    w->bytes = bytes;
    w->req.data = c;
    b = uv_buf_init((char *)bytes + rc, (unsigned)(len - (size_t)rc));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_tls_write) < 0) {
        free(bytes);
        free(w);
        return -1;
    }
    METRIC_ADD(net->metrics->write_calls, 1);
    METRIC_ADD(net->metrics->bytes_out, len - (size_t)rc);
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
    conn_http_unblock(c);
}

void conn_flush(conn_t *c)
{
    net_t *net = c->net;
    if (c->state == CONN_CLOSED) {
        return;
    }
    if (c->read_yielded) {
        /* Its turn's read budget is spent once the others had theirs. */
        c->read_yielded = false;
        conn_update_reading(c);
    }
    if (c->writing) {
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
        METRIC_ADD(net->metrics->write_calls, 1);
        metrics_count_batch(net->metrics, n);
        int rc = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (rc == UV_EAGAIN || rc == UV_ENOSYS) {
            rc = 0;
        } else if (rc < 0) {
            log_debug("write failed", "peer=%s err=%s", conn_peer(c), uv_err_name(rc));
            conn_close(c);
            return;
        }
        size_t written = (size_t)rc;
        METRIC_ADD(net->metrics->bytes_out, written);
        outq_consume(&c->outq, written);
        net->outbound_bytes -= written;
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
        METRIC_ADD(net->metrics->write_calls, 1);
        METRIC_ADD(net->metrics->bytes_out, total);
        outq_mark_inflight(&c->outq, n, total);
        c->writing = true;
        break;
    }
    apply_read_backpressure(c);
    maybe_shutdown(c);
    conn_http_unblock(c);
    resp_unblock(c);
}

int conn_send(conn_t *c, frame_buf_t *fb, uint32_t off, uint32_t len)
{
    return conn_send_scaled(c, fb, off, len, 1);
}

/* True when `c` takes `bytes` more output: it is open for it, stays within
 * `factor` times its own bound, and the worker's bound (a connection with
 * nothing queued always gets one more). */
static bool may_queue(const conn_t *c, size_t bytes, unsigned factor)
{
    const net_t *net = c->net;
    if (c->state != CONN_WS && c->state != CONN_RESP && c->state != CONN_SSE) {
        return false;
    }
    return outq_bytes(&c->outq) + bytes <= net->lim.max_outbound_bytes * factor &&
           (net->outbound_bytes + bytes <= net->outbound_limit || outq_bytes(&c->outq) == 0);
}

int conn_send_scaled(conn_t *c, frame_buf_t *fb, uint32_t off, uint32_t len, unsigned factor)
{
    if (!may_queue(c, len, factor)) {
        return -1;
    }
    outq_push(&c->outq, frame_buf_ref(fb), off, len);
    c->net->outbound_bytes += len;
    net_mark_dirty(c->net, c);
    return 0;
}

int conn_send_ranges(conn_t *c, frame_buf_t *const *fb, const uint32_t *len, unsigned n,
                     size_t total)
{
    if (!may_queue(c, total, 1)) {
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        outq_push(&c->outq, frame_buf_ref(fb[i]), 0, len[i]);
    }
    c->net->outbound_bytes += total;
    net_mark_dirty(c->net, c);
    return 0;
}

void conn_send_always(conn_t *c, frame_buf_t *fb)
{
    net_t *net = c->net;
    if (c->state == CONN_CLOSED) {
        frame_buf_unref(fb);
        return;
    }
    outq_push(&c->outq, fb, 0, fb->len);
    net->outbound_bytes += fb->len;
    net_mark_dirty(net, c);
    apply_read_backpressure(c);
}

void conn_abort_output(conn_t *c)
{
    if (c->state == CONN_CLOSED || c->state == CONN_LINGER) {
        return;
    }
    c->net->outbound_bytes -= outq_drop_pending(&c->outq);
    conn_linger(c);
}

void conn_ws_deadline(conn_t *c)
{
    conn_ingress->ws_deadline(c);
}

void *conn_resp_open(conn_t *c)
{
    return resp_handlers->open(c);
}

conn_timeout_t conn_resp_deadline(conn_t *c)
{
    return c->resp != NULL ? mode_handlers(c)->deadline(c->resp) : CONN_TIMEOUT_NONE;
}

void conn_resp_shutdown(conn_t *c)
{
    if ((c->state == CONN_RESP || c->state == CONN_SSE) && c->resp != NULL) {
        mode_handlers(c)->shutdown(c->resp);
    }
}

/* ---- closing ----------------------------------------------------------------------------- */

void conn_linger(conn_t *c)
{
    if (c->state == CONN_CLOSED || c->state == CONN_LINGER) {
        return;
    }
    c->state = CONN_LINGER;
    conn_timer_in(c, c->net->lim.close_timeout_ms);
    net_mark_dirty(c->net, c); /* the flush starts the shutdown */
}

void conn_ws_close(conn_t *c, int code, const char *reason, bool drop_pending)
{
    if (c->state != CONN_WS) {
        return;
    }
    net_t *net = c->net;
    if (drop_pending) {
        net->outbound_bytes -= outq_drop_pending(&c->outq);
    }
    uint8_t payload[WSB_WS_MAX_CONTROL_PAYLOAD];
    size_t plen = wsb_ws_close_payload(payload, code, reason);
    frame_buf_t *fb = frame_buf_new(2 + plen);
    int n = wsb_ws_build_frame(fb->bytes, 2 + plen, true, WSB_WS_OP_CLOSE, payload, plen, NULL);
    assert(n == (int)(2 + plen));
    (void)n;
    conn_send_always(c, fb);
    metrics_count_close(net->metrics, code);
    log_debug("ws close sent", "peer=%s code=%d reason=%s", conn_peer(c), code,
              log_quote(reason ? reason : ""));
    if (c->got_peer_close) {
        conn_linger(c);
    } else {
        c->state = CONN_WS_CLOSING;
        conn_timer_in(c, net->lim.close_timeout_ms);
    }
}

/* ---- reading ----------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = h->data;
    buf->base = (char *)c->net->read_buf;
    buf->len = sizeof(c->net->read_buf);
}

/* Plaintext from the peer, by state. */
static void conn_dispatch(conn_t *c, char *data, size_t len)
{
    switch (c->state) {
    case CONN_HTTP:
        conn_http_feed(c, data, len);
        break;
    case CONN_WS:
    case CONN_WS_CLOSING:
        /* While closing the parser still runs, to find the peer's close frame;
         * the session drops everything else. */
        conn_ingress->ws_feed(c->session, (uint8_t *)data, len);
        break;
    case CONN_RESP:
    case CONN_SSE:
        mode_handlers(c)->feed(c->resp, data, len);
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
    net_t *net = c->net;
    if (tls_conn_feed(c->tls, data, len) != 0) {
        conn_close(c);
        return;
    }
    while (c->state != CONN_CLOSED) {
        long n = tls_conn_read(c->tls, net->plain_buf, sizeof(net->plain_buf));
        if (n > 0) {
            conn_dispatch(c, (char *)net->plain_buf, (size_t)n);
            continue;
        }
        if (n == TLS_AGAIN) {
            break;
        }
        if (n == TLS_FATAL) {
            if (!tls_conn_handshake_done(c->tls)) {
                METRIC_ADD(net->metrics->handshake_failures, 1);
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
        net_mark_dirty(net, c);
    }
}

/* Fairness between the connections of a worker: one that has read
 * NET_READ_TURN_BUDGET bytes in a row stops being read until this turn's
 * flush (conn_flush), so the others' requests are not parsed only after
 * megabytes of a pipelining publisher's. Publishes to topics nobody
 * subscribes to put no pressure on any inbox (router.h), so nothing else
 * would pause such a publisher. */
static void yield_after_budget(conn_t *c, size_t nread)
{
    net_t *net = c->net;
    if (net->read_run != c) {
        net->read_run = c;
        net->read_run_bytes = 0;
    }
    net->read_run_bytes += nread;
    if (net->read_run_bytes < NET_READ_TURN_BUDGET || c->state == CONN_CLOSED || !c->reading) {
        return;
    }
    net->read_run = NULL;
    c->read_yielded = true;
    conn_update_reading(c);
    net_mark_dirty(net, c);
    METRIC_ADD(net->metrics->read_yields, 1);
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
    net_t *net = c->net;
    /* Whatever was published before these bytes were sent (e.g. acked to
     * another client on another worker) is delivered before we answer them:
     * a reply never overtakes a message that was published earlier. */
    conn_ingress->before_input(net);
    METRIC_ADD(net->metrics->bytes_in, (uint64_t)nread);
    /* Bytes alone do not reset the idle timer (c->last_rx_ms): a peer that
     * dribbles one frame a byte at a time would keep the connection forever.
     * The session stamps it when a frame is complete (session_frame_done). */
    if (c->tls != NULL) {
        tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
    } else {
        conn_dispatch(c, buf->base, (size_t)nread);
    }
    yield_after_budget(c, (size_t)nread);
}
