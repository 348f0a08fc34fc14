/* server.c - listener, per-turn flush, signals and graceful shutdown (see server.h). */
#include "server.h"

#include "conn.h"
#include "log.h"
#include "router.h"
#include "util.h"
#include "wsb/ws_frame.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t server_now(const server_t *s)
{
    return uv_now(s->loop);
}

void server_mark_dirty(server_t *s, conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = s->dirty;
        s->dirty = c;
    }
}

/* Runs once per loop turn, right before the loop would block: everything the
 * callbacks of this turn queued goes out now, in as few writes as possible. */
static void on_flush(uv_prepare_t *p)
{
    server_t *s = p->data;
    while (s->dirty != NULL) {
        conn_t *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->state == CONN_CLOSED) {
            if (c->handles_open == 0) {
                conn_free(c); /* its close callbacks ran while it was listed */
            }
            continue;
        }
        conn_flush(c);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    server_t *s = listener->data;
    if (status < 0) {
        log_warn("accept failed", "err=%s", uv_err_name(status));
        return;
    }
    conn_accept(s);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server_t *s = sig->data;
    log_info("signal received", "signal=%s", signum == SIGINT ? "SIGINT" : "SIGTERM");
    server_shutdown(s);
}

static void on_server_handle_closed(uv_handle_t *h)
{
    server_t *s = h->data;
    s->handles_open--;
}

static void close_server_handles(server_t *s)
{
    uv_handle_t *handles[] = {(uv_handle_t *)&s->flush_prepare, (uv_handle_t *)&s->sig_int,
                              (uv_handle_t *)&s->sig_term, (uv_handle_t *)&s->shutdown_timer};
    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        if (!uv_is_closing(handles[i])) {
            uv_close(handles[i], on_server_handle_closed);
        }
    }
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    server_t *s = t->data;
    log_warn("shutdown timeout: closing remaining connections", "connections=%zu", s->nconns);
    while (s->conns != NULL) {
        conn_close(s->conns);
    }
}

void server_shutdown(server_t *s)
{
    if (!s->shutting_down) {
        s->shutting_down = true;
        log_info("shutting down", "connections=%zu", s->nconns);
        if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener)) {
            uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
        }
        for (conn_t *c = s->conns; c != NULL; c = c->next) {
            if (c->state == CONN_WS) {
                conn_ws_close(c, WSB_WS_CLOSE_GOING_AWAY, "server shutting down", false);
            } else if (c->state == CONN_HTTP && !c->writing && outq_bytes(&c->outq) == 0) {
                conn_linger(c); /* idle keep-alive connection */
            }
        }
        uv_timer_start(&s->shutdown_timer, on_shutdown_timeout, s->cfg->shutdown_timeout_ms, 0);
    }
    if (s->nconns == 0) {
        close_server_handles(s);
    }
}

static void make_node_id(server_t *s)
{
    if (s->cfg->node_id != NULL && s->cfg->node_id[0] != '\0') {
        (void)snprintf(s->node_id, sizeof(s->node_id), "%s", s->cfg->node_id);
        return;
    }
    uint8_t rnd[6];
    random_bytes(rnd, sizeof(rnd));
    hex_encode(rnd, sizeof(rnd), s->node_id);
}

int server_init(server_t *s, uv_loop_t *loop, const config_t *cfg)
{
    memset(s, 0, offsetof(server_t, read_buf));
    s->loop = loop;
    s->cfg = cfg;
    s->exit_status = 0;
    make_node_id(s);
    s->trie = trie_new();
    s->router = router_new(s);
    s->started_ms = uv_now(loop);
    if (cfg->web_root != NULL && cfg->web_root[0] != '\0') {
        char resolved[PATH_MAX];
        if (realpath(cfg->web_root, resolved) == NULL) {
            log_warn("web root unavailable: static files off", "web_root=%s err=%s",
                     log_quote(cfg->web_root), log_quote(strerror(errno)));
        } else {
            s->web_root = xstrdup(resolved);
        }
    }
    uv_prepare_init(loop, &s->flush_prepare);
    s->flush_prepare.data = s;
    uv_prepare_start(&s->flush_prepare, on_flush);
    uv_signal_init(loop, &s->sig_int);
    uv_signal_init(loop, &s->sig_term);
    uv_timer_init(loop, &s->shutdown_timer);
    s->sig_int.data = s;
    s->sig_term.data = s;
    s->shutdown_timer.data = s;
    s->handles_open = 4;
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    return 0;
}

static int resolve(const char *host, unsigned port, struct sockaddr_storage *out)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    (void)snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        log_error("cannot resolve host", "host=%s err=%s", log_quote(host),
                  log_quote(gai_strerror(rc)));
        return UV_EINVAL;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[64] = "";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof(ip));
        (void)snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof(ip));
        (void)snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
    }
}

/* Atomically (temporary file + rename) writes the bound port for scripts that
 * started us with --port 0. */
static int write_port_file(const char *path, unsigned port)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    int ok = fprintf(f, "%u\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        (void)unlink(tmp);
        return -1;
    }
    return 0;
}

int server_listen(server_t *s)
{
    const config_t *cfg = s->cfg;
    struct sockaddr_storage addr;
    int rc = resolve(cfg->host, cfg->port, &addr);
    if (rc != 0) {
        return rc;
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->handles_open++;
    s->listening = true;
    /* libuv sets SO_REUSEADDR on bind, so a restart does not wait for TIME_WAIT. */
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&s->listener, (int)cfg->backlog, on_connection);
    }
    char where[96];
    format_addr(&addr, where, sizeof(where));
    if (rc != 0) {
        log_error("cannot listen", "addr=%s err=%s", where, log_quote(uv_strerror(rc)));
        return rc;
    }
    int len = sizeof(addr);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &len);
    format_addr(&addr, where, sizeof(where));
    unsigned port =
        ntohs(addr.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)&addr)->sin6_port
                                         : ((const struct sockaddr_in *)&addr)->sin_port);
    log_info("listening", "addr=%s ws_path=%s node_id=%s", where, log_quote(cfg->ws_path),
             s->node_id);
    if (cfg->port_file != NULL && cfg->port_file[0] != '\0' &&
        write_port_file(cfg->port_file, port) != 0) {
        log_error("cannot write port file", "path=%s err=%s", log_quote(cfg->port_file),
                  log_quote(strerror(errno)));
        return UV_EIO;
    }
    return 0;
}

void server_free(server_t *s)
{
    router_free(s->router);
    trie_free(s->trie);
    free(s->web_root);
}
