/* conn_deadline.c - what a connection's one deadline means in each state:
 * the header timeout, the WebSocket keepalive, idle and auth timeouts, and
 * the end of a close handshake or linger (see conn.h, conn_on_deadline). */
#include "app/worker.h"
#include "ingress/ws_session.h"
#include "net/conn.h"
#include "net/conn_internal.h"
#include "net/tls.h"
#include "shared/frame_buf.h"
#include "shared/log.h"
#include "wsb/ws_frame.h"

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

/* The RESP session decides what its deadline meant (conn_resp_handlers_t). */
static void resp_deadline(conn_t *c)
{
    switch (conn_resp_deadline(c)) {
    case CONN_TIMEOUT_HEADER:
        METRIC_ADD(c->server->metrics.header_timeouts, 1);
        break;
    case CONN_TIMEOUT_IDLE:
        METRIC_ADD(c->server->metrics.idle_timeouts, 1);
        break;
    case CONN_TIMEOUT_NONE:
        break;
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
        conn_http_error(c, 408, "request header timeout");
        break;
    case CONN_WS:
        ws_deadline(c);
        break;
    case CONN_RESP:
        resp_deadline(c);
        break;
    case CONN_WS_CLOSING:
    case CONN_LINGER:
        conn_close(c);
        break;
    case CONN_CLOSED:
        break;
    }
}
