/* conn_deadline.c - what a connection's one deadline means in each state:
 * the header timeout, the end of a close handshake or linger; the WebSocket
 * session's (keepalive, idle, auth) and the RESP session's deadlines are
 * theirs, through the handlers (see conn.h, conn_on_deadline). */
#include "net/conn.h"
#include "net/conn_internal.h"
#include "net/net.h"
#include "net/tls.h"
#include "shared/log.h"

/* The RESP session decides what its deadline meant (conn_resp_handlers_t). */
static void resp_deadline(conn_t *c)
{
    switch (conn_resp_deadline(c)) {
    case CONN_TIMEOUT_HEADER:
        METRIC_ADD(c->net->metrics->header_timeouts, 1);
        break;
    case CONN_TIMEOUT_IDLE:
        METRIC_ADD(c->net->metrics->idle_timeouts, 1);
        break;
    case CONN_TIMEOUT_NONE:
        break;
    }
}

void conn_on_deadline(conn_t *c)
{
    switch (c->state) {
    case CONN_HTTP:
        METRIC_ADD(c->net->metrics->header_timeouts, 1);
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
        conn_ws_deadline(c);
        break;
    case CONN_RESP:
    case CONN_SSE:
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
