/* resp_conn.c - a RESP connection's life on worker 0: the listener, reads,
 * writes, pausing and closing (see resp_session.h). Commands are in
 * resp_session.c. */
#include "app/broker.h"
#include "app/worker.h"
#include "core/chist.h"
#include "core/pubsub.h"
#include "core/router.h"
#include "ingress/resp_internal.h"
#include "ingress/resp_session.h"
#include "shared/log.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- lifetime -------------------------------------------------------------------------------- */

static void conn_free_resp(resp_conn_t *c)
{
    sbuf_free(&c->out);
    sbuf_free(&c->wbuf);
    free(c->in);
    free(c->subs);
    free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
    resp_conn_t *c = h->data;
    worker_t *s = c->l->s;
    c->handle_closed = true;
    /* Still listed as dirty: the flush frees it. */
    if (!c->dirty) {
        conn_free_resp(c);
    }
    if (s->shutting_down && resp_connection_count(s) == 0) {
        worker_shutdown(s); /* the drain may be complete now */
    }
}

void resp_remove_subs(resp_conn_t *c, bool glob_only, bool channels_only)
{
    worker_t *s = c->l->s;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < c->nsubs; i++) {
        bool drop = (glob_only && c->subs[i].glob) || (channels_only && !c->subs[i].glob);
        if (drop) {
            pubsub_unsubscribe(&s->core, c->subs[i].sub);
        } else {
            c->subs[kept++] = c->subs[i];
        }
    }
    c->nsubs = kept;
    worker_update_gauges(s);
}

static void conn_close_resp(resp_conn_t *c)
{
    if (c->closed) {
        return;
    }
    resp_listener_t *l = c->l;
    c->closed = true;
    resp_remove_subs(c, true, true);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        l->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    l->nconns--;
    if (c->cluster_op != NULL) {
        c->cluster_op->owner = NULL; /* freed when it comes back (chist_drain) */
        c->cluster_op = NULL;
    }
    if (c->pub_paused) {
        c->pub_paused = false;
        l->npub_paused--;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- writing --------------------------------------------------------------------------------- */

static void flush_conn(resp_conn_t *c);

static void on_written(uv_write_t *req, int status)
{
    resp_conn_t *c = req->data;
    c->writing = false;
    c->wbuf.len = 0;
    if (c->closed) {
        return; /* cancelled by the close; the close callback frees */
    }
    if (status < 0) {
        conn_close_resp(c);
        return;
    }
    flush_conn(c);
}

static void flush_conn(resp_conn_t *c)
{
    if (c->closed || c->writing) {
        return;
    }
    if (c->slow) {
        log_debug("resp: slow subscriber disconnected", "queued=%zu", resp_queued(c));
        conn_close_resp(c);
        return;
    }
    if (c->out.len == 0) {
        if (c->quit) {
            conn_close_resp(c);
        } else if (c->read_paused) {
            resp_resume_reading(c);
        }
        return;
    }
    /* Swap the buffers: the queued bytes go out, new output queues behind. */
    sbuf_t t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
    uv_buf_t buf = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
    int rc = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (rc == (int)c->wbuf.len) {
        c->wbuf.len = 0;
        flush_conn(c); /* quit / resume handling */
        return;
    }
    size_t done = rc > 0 ? (size_t)rc : 0;
    if (rc < 0 && rc != UV_EAGAIN) {
        conn_close_resp(c);
        return;
    }
    buf = uv_buf_init(c->wbuf.p + done, (unsigned)(c->wbuf.len - done));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        conn_close_resp(c);
        return;
    }
    c->writing = true;
}

void resp_flush_dirty(worker_t *s)
{
    resp_listener_t *l = s->resp;
    if (l == NULL) {
        return;
    }
    while (l->dirty != NULL) {
        resp_conn_t *c = l->dirty;
        l->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->closed) {
            if (c->handle_closed) {
                conn_free_resp(c); /* its close callback ran while it was listed */
            }
            continue;
        }
        flush_conn(c);
    }
}

/* ---- reading -----------------------------------------------------------------------------------
 */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    resp_conn_t *c = h->data;
    worker_t *s = c->l->s;
    buf->base = (char *)s->read_buf;
    buf->len = sizeof(s->read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Reads while neither its replies nor the workers' inboxes hold it back. */
static void update_reading(resp_conn_t *c)
{
    bool want = !c->read_paused && !c->pub_paused && !c->quit;
    if (c->closed || want == c->reading) {
        return;
    }
    c->reading = want;
    if (!want) {
        uv_read_stop((uv_stream_t *)&c->tcp);
    } else if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close_resp(c);
    }
}

void resp_pause_reading(resp_conn_t *c)
{
    c->read_paused = true;
}

/* Handles every complete request in the input, in order; stops early when
 * the replies pile up past max_outbound_bytes (the rest waits). */
static void process(resp_conn_t *c)
{
    resp_listener_t *l = c->l;
    size_t off = 0;
    while (!c->closed && !c->quit && !c->pub_paused && c->cluster_op == NULL && off < c->in_len) {
        if (resp_queued(c) > l->s->cfg->max_outbound_bytes) {
            resp_pause_reading(c);
            break;
        }
        size_t argc = 0, used = 0;
        const char *why = NULL;
        int rc = wsb_resp_parse(c->in + off, c->in_len - off, &l->lim, l->argv, &argc, &used, &why);
        if (rc == WSB_EAGAIN) {
            break;
        }
        if (rc != 0) {
            char msg[200];
            (void)snprintf(msg, sizeof(msg), "ERR Protocol error: %s", why);
            resp_out_err(c, msg);
            c->quit = true;
            off = c->in_len;
            break;
        }
        off += used;
        if (argc > 0) {
            resp_dispatch(c, l->argv, argc);
        }
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    update_reading(c);
}

void resp_resume_reading(resp_conn_t *c)
{
    if (!c->read_paused || c->closed) {
        return;
    }
    c->read_paused = false;
    process(c);
}

bool resp_publishers_paused(const worker_t *s)
{
    return s->resp != NULL && s->resp->npub_paused > 0;
}

void resp_resume_publishers(worker_t *s)
{
    resp_listener_t *l = s->resp;
    resp_conn_t *next;
    for (resp_conn_t *c = l != NULL ? l->conns : NULL; c != NULL && l->npub_paused > 0; c = next) {
        next = c->next; /* processing may close c (unlinked, freed later), never another */
        if (c->pub_paused) {
            c->pub_paused = false;
            l->npub_paused--;
            process(c); /* the pipelined commands it held back; may pause it again */
        }
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    resp_conn_t *c = stream->data;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        conn_close_resp(c);
        return;
    }
    /* As for WebSocket input: what was published before these bytes were
     * sent is delivered before they are answered. */
    router_drain(&c->l->s->core);
    if (c->quit || c->closed) {
        return; /* after QUIT or a protocol error nothing more is read */
    }
    size_t n = (size_t)nread;
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + n) {
            cap *= 2;
        }
        c->in = xrealloc(c->in, cap);
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, buf->base, n);
    c->in_len += n;
    process(c);
    /* A big request's buffer is not kept for an idle connection. */
    if (c->in_len == 0 && c->in_cap > (size_t)64 * 1024) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

/* ---- listener ----------------------------------------------------------------------------------
 */

static void on_connection(uv_stream_t *server, int status)
{
    resp_listener_t *l = server->data;
    if (status < 0) {
        return;
    }
    resp_conn_t *c = xcalloc(1, sizeof(*c));
    subscriber_init(&c->sub, &resp_subscriber_ops, c);
    c->l = l;
    sbuf_init(&c->out);
    sbuf_init(&c->wbuf);
    uv_tcp_init(&l->s->loop, &c->tcp);
    c->tcp.data = c;
    c->next = l->conns;
    if (l->conns != NULL) {
        l->conns->prev = c;
    }
    l->conns = c;
    l->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close_resp(c);
        return;
    }
    update_reading(c);
    if (c->closed) {
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    METRIC_ADD(l->s->metrics.resp_connections_accepted, 1);
}

int resp_listener_start(worker_t *s)
{
    const config_t *cfg = s->cfg;
    resp_listener_t *l = xcalloc(1, sizeof(*l));
    l->s = s;
    l->lim.max_args = RESP_MAX_ARGS;
    l->lim.max_bulk = cfg->max_message_size;
    l->lim.max_inline = RESP_MAX_INLINE;
    l->lim.max_request = cfg->max_message_size + RESP_REQ_EXTRA;
    s->resp = l;

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(cfg->resp_host, cfg->resp_port, &hints, &res);
    if (rc != 0) {
        log_error("cannot resolve resp.host", "host=%s err=%s", log_quote(cfg->resp_host),
                  log_quote(gai_strerror(rc)));
        return -1;
    }
    uv_tcp_init(&s->loop, &l->tcp);
    l->tcp.data = l;
    l->open = true;
    /* Without SO_REUSEPORT (libuv sets only SO_REUSEADDR): bind or listen
     * fails with EADDRINUSE while any other socket listens on the address. */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, res->ai_addr, res->ai_addrlen < sizeof(ss) ? res->ai_addrlen : sizeof(ss));
    rc = uv_tcp_bind(&l->tcp, res->ai_addr, 0);
    freeaddrinfo(res);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&l->tcp, (int)cfg->backlog, on_connection);
    }
    int len = sizeof(ss);
    char where[96] = "?";
    if (rc == UV_EADDRINUSE) {
        broker_format_addr(&ss, where, sizeof(where));
        broker_log_addr_in_use("resp", where);
        return -1;
    }
    if (rc == 0 && uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) == 0) {
        broker_format_addr(&ss, where, sizeof(where));
    }
    if (rc != 0) {
        log_error("cannot listen (resp)", "host=%s port=%s err=%s", log_quote(cfg->resp_host),
                  cfg->resp_port, log_quote(uv_strerror(rc)));
        return -1;
    }
    unsigned port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    log_info("listening", "proto=resp addr=%s", where);
    if (cfg->resp_port_file[0] != '\0' && broker_write_port_file(cfg->resp_port_file, port) != 0) {
        log_error("cannot write resp port file", "path=%s err=%s", log_quote(cfg->resp_port_file),
                  log_quote(strerror(errno)));
        return -1;
    }
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    (void)h;
}

void resp_listener_shutdown(worker_t *s)
{
    resp_listener_t *l = s->resp;
    if (l == NULL) {
        return;
    }
    if (l->open) {
        l->open = false;
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    }
    for (resp_conn_t *c = l->conns; c != NULL; c = c->next) {
        /* Like a WebSocket getting its close frame: nothing more is pushed
         * or read, what is queued is written, then the connection closes
         * (flush_conn). Commands not yet executed are dropped. */
        resp_remove_subs(c, true, true);
        if (c->pub_paused) {
            c->pub_paused = false;
            l->npub_paused--;
        }
        c->quit = true;
        update_reading(c);
        resp_mark_dirty(c);
    }
}

void resp_listener_close_all(worker_t *s)
{
    resp_listener_t *l = s->resp;
    while (l != NULL && l->conns != NULL) {
        conn_close_resp(l->conns);
    }
}

void resp_listener_free(worker_t *s)
{
    free(s->resp);
    s->resp = NULL;
}

size_t resp_connection_count(const worker_t *s)
{
    return s->resp != NULL ? s->resp->nconns : 0;
}
