/* resp_conn.c - the RESP ingress as a mode of the common connection
 * (net/conn.h, CONN_RESP): the listener on worker 0, and the handlers the
 * connection calls with the bytes it read, when it may take more replies,
 * at its deadline, at shutdown and when it closes. Reads, writes, bounds,
 * publisher pauses and admission are the connection's (see resp_session.h).
 * Commands are in resp_session.c. */
#include "core/chist.h"
#include "core/pubsub.h"
#include "ingress/auth_key.h"
#include "ingress/ingress.h"
#include "ingress/resp_internal.h"
#include "ingress/resp_session.h"
#include "net/conn.h"
#include "net/net.h"
#include "shared/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- subscriptions --------------------------------------------------------------------------- */

void resp_remove_subs(resp_conn_t *c, bool glob_only, bool channels_only)
{
    ingress_ctx_t *ctx = c->l->ctx;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < c->nsubs; i++) {
        bool drop = (glob_only && c->subs[i].glob) || (channels_only && !c->subs[i].glob);
        if (drop) {
            pubsub_unsubscribe(ctx->core, c->subs[i].sub);
        } else {
            c->subs[kept++] = c->subs[i];
        }
    }
    c->nsubs = kept;
    ctx->ops->update_gauges_cb(ctx);
}

/* ---- deadlines ------------------------------------------------------------------------------- */

static uint64_t now_ms(const resp_conn_t *c)
{
    return uv_now(c->conn->tcp.loop);
}

/* The connection's one deadline: the earliest of the AUTH deadline (API
 * keys configured, not authenticated), the partial-request timeout (part of
 * a request read, the rest missing) and the idle timeout (no subscription:
 * as in Redis, a subscriber waiting for messages is not idle). */
static void rearm(resp_conn_t *c)
{
    const ingress_config_t *cfg = c->l->ctx->cfg;
    if (c->authed || !auth_api_keys_configured(c->l->ctx->auth)) {
        c->auth_due_ms = 0;
    } else if (c->auth_due_ms == 0) {
        c->auth_due_ms = now_ms(c) + cfg->auth_timeout_ms; /* at accept, or after RESET */
    }
    uint64_t due = c->auth_due_ms;
    if (c->partial_since_ms != 0) {
        uint64_t t = c->partial_since_ms + cfg->header_timeout_ms;
        due = due == 0 || t < due ? t : due;
    }
    if (c->nsubs == 0 && cfg->idle_timeout_ms > 0) {
        uint64_t t = c->conn->last_rx_ms + cfg->idle_timeout_ms;
        due = due == 0 || t < due ? t : due;
    }
    c->conn->deadline_ms = due;
}

/* Answers `line` (if any), then closes once it is written. */
static void close_with(resp_conn_t *c, const char *line)
{
    if (line != NULL) {
        resp_out_err(c, line);
    }
    c->quit = true;
    resp_commit(c);
    conn_hold_input(c->conn, false); /* lingering reads (and drops) until EOF */
    conn_linger(c->conn);
}

static conn_timeout_t on_deadline(void *sess)
{
    resp_conn_t *c = sess;
    uint64_t now = now_ms(c);
    const ingress_config_t *cfg = c->l->ctx->cfg;
    if (c->auth_due_ms != 0 && now >= c->auth_due_ms) {
        log_debug("resp: auth deadline", "peer=%s", conn_peer(c->conn));
        close_with(c, "NOAUTH Authentication timeout.");
        return CONN_TIMEOUT_NONE;
    }
    if (c->partial_since_ms != 0 && now >= c->partial_since_ms + cfg->header_timeout_ms) {
        log_debug("resp: request timeout", "peer=%s", conn_peer(c->conn));
        close_with(c, "ERR Protocol error: request timeout");
        return CONN_TIMEOUT_HEADER;
    }
    if (c->nsubs == 0 && cfg->idle_timeout_ms > 0 &&
        now >= c->conn->last_rx_ms + cfg->idle_timeout_ms) {
        log_debug("resp: idle timeout", "peer=%s", conn_peer(c->conn));
        close_with(c, NULL); /* as Redis's timeout: closed without a word */
        return CONN_TIMEOUT_IDLE;
    }
    rearm(c);
    return CONN_TIMEOUT_NONE;
}

/* ---- requests -------------------------------------------------------------------------------- */

void resp_pause_reading(resp_conn_t *c)
{
    conn_hold_input(c->conn, true);
}

/* Runs every complete request in the input, in order. Stops early, the
 * rest held and the socket not read, while a clustered PUBLISH waits for
 * Redis, the connection is paused as a publisher, or its replies are over
 * max_outbound_bytes (or the worker over its share of max_total_outbound):
 * the connection's writable handler goes on. */
static void process(resp_conn_t *c)
{
    resp_listener_t *l = c->l;
    conn_t *conn = c->conn;
    size_t limit = l->ctx->cfg->max_outbound_bytes;
    size_t off = 0;
    bool need_more = false;
    c->stalled = false;
    while (conn->state == CONN_RESP && !c->quit && c->cluster_op == NULL && off < c->in_len) {
        if (conn->pub_paused || conn_output_full(conn, limit, c->out.len)) {
            c->stalled = true;
            break;
        }
        size_t argc = 0, used = 0;
        const char *why = NULL;
        int rc = wsb_resp_parse(c->in + off, c->in_len - off, &l->lim, l->argv, &argc, &used, &why);
        if (rc == WSB_EAGAIN) {
            need_more = true;
            break;
        }
        if (rc != 0) {
            char msg[200];
            (void)snprintf(msg, sizeof(msg), "ERR Protocol error: %s", why);
            off = c->in_len;
            close_with(c, msg);
            break;
        }
        off += used;
        conn->last_rx_ms = now_ms(c); /* a complete request: not idle */
        if (argc > 0) {
            resp_dispatch(c, l->argv, argc);
        }
    }
    if (!need_more || c->in_len == off) {
        c->partial_since_ms = 0;
    } else if (c->partial_since_ms == 0 || off > 0) {
        /* A new request has begun (a pipelining client's reads often end
         * inside one): its own clock. Bytes alone never extend it. */
        c->partial_since_ms = now_ms(c);
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    resp_commit(c);
    if (c->quit && conn->state == CONN_RESP) {
        conn_linger(conn); /* QUIT: closed once the replies are written */
        return;
    }
    if (conn->state != CONN_RESP) {
        return;
    }
    /* Input that cannot be run now is not read further: what is held is at
     * most one read behind the request that stopped it. */
    conn_hold_input(conn, c->cluster_op != NULL || c->stalled);
    rearm(c);
    /* A big request's buffer is not kept for an idle connection. */
    if (c->in_len == 0 && c->in_cap > (size_t)64 * 1024) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

void resp_resume_reading(resp_conn_t *c)
{
    process(c);
}

/* ---- the connection's handlers --------------------------------------------------------------- */

static void *on_open(conn_t *conn)
{
    resp_listener_t *l = ingress_ctx(conn)->resp;
    resp_conn_t *c = xcalloc(1, sizeof(*c));
    subscriber_init(&c->sub, &resp_subscriber_ops, c);
    c->conn = conn;
    c->l = l;
    sbuf_init(&c->out);
    l->nconns++;
    l->ctx->ops->update_gauges_cb(l->ctx);
    conn->resp = c; /* rearm reads it through c */
    rearm(c);
    return c;
}

static void on_feed(void *sess, const char *data, size_t n)
{
    resp_conn_t *c = sess;
    if (c->quit) {
        return; /* after QUIT or a protocol error nothing more is read */
    }
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + n) {
            cap *= 2;
        }
        c->in = xrealloc(c->in, cap);
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, n);
    c->in_len += n;
    process(c);
}

static void on_writable(void *sess)
{
    resp_conn_t *c = sess;
    if (c->stalled && c->cluster_op == NULL) {
        process(c);
    }
}

static void on_shutdown(void *sess)
{
    /* Like a WebSocket getting its close frame: nothing more is pushed or
     * read, what is queued is written, then the connection closes.
     * Commands not yet executed are dropped. */
    resp_conn_t *c = sess;
    resp_remove_subs(c, true, true);
    close_with(c, NULL);
}

static void on_close(void *sess)
{
    resp_conn_t *c = sess;
    resp_remove_subs(c, true, true);
    if (c->cluster_op != NULL) {
        c->cluster_op->owner = NULL; /* freed when it comes back (cluster_drain) */
        c->cluster_op = NULL;
    }
    c->l->nconns--;
    sbuf_free(&c->out);
    free(c->in);
    free(c->subs);
    free(c);
}

const conn_resp_handlers_t resp_conn_handlers = {
    .open = on_open,
    .feed = on_feed,
    .writable = on_writable,
    .deadline = on_deadline,
    .shutdown = on_shutdown,
    .close = on_close,
};

/* ---- listener -------------------------------------------------------------------------------- */

static void on_connection(uv_stream_t *listener, int status)
{
    resp_listener_t *l = listener->data;
    if (status < 0) {
        return;
    }
    conn_accept_resp(l->net, listener);
}

resp_listener_t *resp_listener_init(ingress_ctx_t *ctx, net_t *net)
{
    resp_listener_t *l = xcalloc(1, sizeof(*l));
    l->ctx = ctx;
    l->net = net;
    l->lim.max_args = RESP_MAX_ARGS;
    l->lim.max_bulk = ctx->cfg->max_message_size;
    l->lim.max_inline = RESP_MAX_INLINE;
    l->lim.max_request = ctx->cfg->max_message_size + RESP_REQ_EXTRA;
    ctx->resp = l;
    conn_set_resp_handlers(&resp_conn_handlers);
    return l;
}

int resp_listener_listen(ingress_ctx_t *ctx, net_t *net, const struct sockaddr *addr, int backlog)
{
    resp_listener_t *l = resp_listener_init(ctx, net);
    uv_tcp_init(net->loop, &l->tcp);
    l->tcp.data = l;
    l->open = true;
    /* Without SO_REUSEPORT (libuv sets only SO_REUSEADDR): bind or listen
     * fails with EADDRINUSE while any other socket listens on the address. */
    int rc = uv_tcp_bind(&l->tcp, addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&l->tcp, backlog, on_connection);
    }
    return rc;
}

int resp_listener_sockname(const ingress_ctx_t *ctx, struct sockaddr_storage *ss)
{
    int len = sizeof(*ss);
    return uv_tcp_getsockname(&ctx->resp->tcp, (struct sockaddr *)ss, &len);
}

static void on_listener_closed(uv_handle_t *h)
{
    (void)h;
}

void resp_listener_shutdown(ingress_ctx_t *ctx)
{
    resp_listener_t *l = ctx->resp;
    if (l != NULL && l->open) {
        l->open = false;
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    }
}

void resp_listener_free(ingress_ctx_t *ctx)
{
    free(ctx->resp);
    ctx->resp = NULL;
}

size_t resp_connection_count(const ingress_ctx_t *ctx)
{
    return ctx->resp != NULL ? ctx->resp->nconns : 0;
}
