/* conn_accept.c - a connection's admission: accept on a listener (plain,
 * TLS or RESP), max_connections, max_connections_per_ip, the handshake
 * budget of TLS, and the peer's address (see conn.h). */
#include "net/conn.h"
#include "net/conn_internal.h"
#include "net/net.h"
#include "net/proxy.h"
#include "net/tls.h"
#include "shared/log.h"
#include "shared/util.h"

#include <stdio.h>
#include <string.h>

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
int conn_socket_ip(conn_t *c, uint8_t ip[16])
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) {
        return -1;
    }
    sockaddr_ip(&ss, ip);
    return 0;
}

void net_format_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
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
    net_format_addr(&ss, sock, sizeof(sock));
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
    if (conn_socket_ip(c, c->ip) != 0) {
        memset(c->ip, 0, sizeof(c->ip));
    }
}

/* A new conn_t on `net`, accepted from `listener` and reading. NULL when the
 * accept failed (closed already). */
static conn_t *accept_new(net_t *net, uv_stream_t *listener)
{
    conn_t *c = xcalloc(1, sizeof(*c));
    c->net = net;
    outq_init(&c->outq);
    uv_tcp_init(net->loop, &c->tcp);
    c->tcp.data = c;
    c->handles_open = 1;
    c->next = net->conns;
    if (net->conns != NULL) {
        net->conns->prev = c;
    }
    net->conns = c;
    net->nconns++;
    net->hooks->update_gauges(net);
    c->state = CONN_HTTP;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return NULL;
    }
    return c;
}

/* Starts reading and counts the connection in max_connections (the whole
 * process, not each worker). False when it is over the bound. */
static bool admit(conn_t *c)
{
    net_t *net = c->net;
    uv_tcp_nodelay(&c->tcp, 1);
    c->last_rx_ms = net_now(net);
    conn_update_reading(c);
    if (c->state == CONN_CLOSED) {
        return false;
    }
    size_t total = atomic_fetch_add_explicit(net->admit.connections, 1, memory_order_relaxed) + 1;
    c->counted = true;
    if (total > net->lim.max_connections) {
        METRIC_ADD(net->metrics->connections_rejected, 1);
        log_debug("connection rejected", "peer=%s reason=max_connections", conn_peer(c));
        return false;
    }
    peer_ip(c);
    return true;
}

/* Takes the connection's max_connections_per_ip slot. False when over. */
static bool admit_ip(conn_t *c)
{
    net_t *net = c->net;
    if (!net->admit.ip_acquire(net->admit.ctx, c->ip)) {
        METRIC_ADD(net->metrics->connections_rejected, 1);
        log_debug("connection rejected", "peer=%s reason=max_connections_per_ip", conn_peer(c));
        return false;
    }
    c->ip_counted = true;
    return true;
}

/* Refuses a RESP connection with an error line, then closes it. */
static void resp_refuse(conn_t *c, const char *line)
{
    conn_send_always(c, frame_buf_copy(line, strlen(line)));
    conn_linger(c);
}

void conn_accept_resp(net_t *net, uv_stream_t *listener)
{
    conn_t *c = accept_new(net, listener);
    if (c == NULL) {
        return;
    }
    METRIC_ADD(net->metrics->resp_connections_accepted, 1);
    /* Redis's words for its maxclients. A trusted proxy cannot name the
     * client of a RESP connection: it counts under its own address. */
    if (!admit(c)) {
        if (c->state != CONN_CLOSED) {
            resp_refuse(c, "-ERR max number of clients reached\r\n");
        }
        return;
    }
    if (!admit_ip(c)) {
        resp_refuse(c, "-ERR too many connections from this address\r\n");
        return;
    }
    c->state = CONN_RESP;
    c->resp = conn_resp_open(c);
}

void conn_accept(net_t *net, uv_stream_t *listener, bool tls)
{
    conn_t *c = accept_new(net, listener);
    if (c == NULL) {
        return;
    }
    if (tls) {
        c->tls = tls_conn_new(net->tls);
        if (c->tls == NULL) {
            conn_close(c);
            return;
        }
    }
    METRIC_ADD(net->metrics->connections_accepted, 1);
    if (!admit(c)) {
        if (c->state != CONN_CLOSED) {
            conn_http_error(c, 503, "too many connections");
        }
        return;
    }
    /* A trusted proxy's connections are counted per request, under the
     * client it names (admit_forwarded), not under the proxy here. */
    const net_limits_t *lim = &net->lim;
    bool from_proxy = lim->ntrusted > 0 && proxy_is_trusted(lim->trusted, lim->ntrusted, c->ip);
    if (!from_proxy && !admit_ip(c)) {
        if (c->tls != NULL) {
            conn_close(c); /* no handshake yet: nothing to say it with */
        } else {
            conn_http_respond(c, 429, "text/plain; charset=utf-8",
                              "too many connections from this address\n", 39, false,
                              "Retry-After: 1\r\n");
        }
        return;
    }
    /* A TLS handshake is the expensive part of a wss:// connection (key
     * exchange, signature), so it takes the handshake budget before any
     * cryptography runs. There is no way to say 429 before the handshake:
     * the connection is closed, as over the per-IP limit. */
    if (c->tls != NULL) {
        if (!net->admit.handshake_allowed(net->admit.ctx, uv_hrtime())) {
            METRIC_ADD(net->metrics->connections_rejected, 1);
            log_debug("connection rejected", "peer=%s reason=max_handshakes_per_second",
                      conn_peer(c));
            conn_close(c);
            return;
        }
        c->hs_counted = true;
    }
    c->http = wsb_http_request_new(net->lim.max_header_size, net->lim.max_http_body);
    if (c->http == NULL) {
        conn_close(c);
        return;
    }
    conn_timer_in(c, net->lim.header_timeout_ms);
}
