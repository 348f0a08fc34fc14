/* ws_upgrade.c - a WebSocket connection's life around its session, moved
 * out of net/: the handshake's policy (the connection's HTTP phase hands a
 * request for ws_path or echo_path here through conn_handlers_t.ws_upgrade:
 * Origin, the handshake budget, the token, then the 101 and the session;
 * refusals as PROTOCOL.md 10 says), and the connection's deadline in
 * WebSocket mode (keepalive, idle and auth timeouts), which read session
 * fields. */
#include "core/admin_ban.h"
#include "ingress/ingress.h"
#include "ingress/ws_session.h"
#include "net/conn.h"
#include "net/net.h"
#include "shared/frame_buf.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/handshake.h"
#include "wsb/ws_deflate.h"
#include "wsb/ws_frame.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Answers a refused upgrade with `status` and `message` as its body, and
 * closes. The caller logs it. */
static void refusal_respond(conn_t *c, int status, const char *message, const char *extra_headers)
{
    METRIC_ADD(ingress_ctx(c)->metrics->handshake_failures, 1);
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
    metrics_t *metrics = ingress_ctx(c)->metrics;
    METRIC_ADD(metrics->handshake_failures, 1);
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
    metrics_count_close(metrics, code);
    conn_linger(c);
}

/* The token of an upgrade request: the `token` query parameter (browsers
 * cannot set headers on a WebSocket) or "Authorization: Bearer". Returns its
 * length, 0 when there is none, -1 when it is malformed or too long. */
int ws_request_token(const wsb_http_request_t *req, char *out, size_t cap)
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

/* max_connections_per_user (user_limits.h) for a token that came with the
 * upgrade: counts the connection under its `sub` (*entry, which the session
 * takes over), or refuses it as it refuses a flood: a browser (Origin) sees
 * 4100 `too many connections` right after the 101, others get 429. */
static bool admit_user(conn_t *c, const wsb_handshake_t *hs, const wsb_jwt_claims_t *claims,
                       struct user_entry_s **entry)
{
    bool refused = false;
    *entry = session_user_acquire(ingress_ctx(c)->auth, claims, &refused);
    if (!refused) {
        return true;
    }
    METRIC_ADD(ingress_ctx(c)->metrics->connections_rejected, 1);
    if (hs->origin.p == NULL) {
        log_info("handshake refused", "peer=%s status=429 why=max_connections_per_user",
                 conn_peer(c));
        http_refuse(c, 429, "too many connections for this user", "Retry-After: 1\r\n");
        return false;
    }
    refuse_credentials(c, hs, WSB_WS_CLOSE_TOO_MANY_CONNECTIONS, "too many connections", "",
                       "max_connections_per_user");
    return false;
}

void ws_upgrade(conn_t *c, const wsb_http_request_t *req, bool echo)
{
    ingress_ctx_t *ctx = ingress_ctx(c);
    const ingress_config_t *cfg = ctx->cfg;
    wsb_handshake_t hs;
    if (wsb_handshake_check(req, NULL, &hs) != 0) {
        METRIC_ADD(ctx->metrics->handshake_failures, 1);
        conn_http_error(c, hs.status, hs.reason);
        return;
    }
    /* Cross-site WebSocket hijacking: a page on another site must not ride on
     * the user's cookies or network position. */
    if (!ctx->ops->origin_allowed_cb(ctx, hs.origin)) {
        refuse_credentials(c, &hs, WSB_WS_CLOSE_ORIGIN_NOT_ALLOWED, "origin not allowed",
                           "an Origin header is required",
                           hs.origin.p ? "origin not in allowed_origins"
                                       : "no Origin header and allow_missing_origin is false");
        return;
    }
    /* A TLS connection paid for its handshake at accept: one token each. */
    if (!c->hs_counted && !auth_handshake_allowed(ctx->auth, uv_hrtime())) {
        http_refuse(c, 429, "too many handshakes: retry later", "Retry-After: 1\r\n");
        return;
    }
    c->hs_counted = true;
    wsb_jwt_claims_t *claims = NULL;
    /* Without a configured key there is nothing to check a token against: it
     * is ignored (an open broker behind a client that always sends one). */
    if (!echo && ctx->auth->jwt != NULL) {
        char token[WSB_JWT_MAX_LEN + 1];
        int tlen = ws_request_token(req, token, sizeof(token));
        if (tlen < 0) {
            refuse_credentials(c, &hs, WSB_WS_CLOSE_INVALID_TOKEN, "invalid token",
                               "invalid credentials",
                               "malformed token (query parameter or Authorization header)");
            return;
        }
        if (tlen > 0) {
            wsb_jwt_claims_t verified;
            const char *why = "";
            if (auth_verify(ctx->auth, token, (size_t)tlen, &verified, &why) != 0) {
                if (auth_why_expired(why)) {
                    refuse_credentials(c, &hs, WSB_WS_CLOSE_TOKEN_EXPIRED, "token expired",
                                       "invalid credentials", why);
                } else {
                    refuse_credentials(c, &hs, WSB_WS_CLOSE_INVALID_TOKEN, "invalid token",
                                       "invalid credentials", why);
                }
                return;
            }
            if (admin_ban_left_ms(ctx->auth->bans, verified.sub, ingress_now(ctx)) > 0) {
                wsb_jwt_claims_free(&verified);
                refuse_credentials(c, &hs, WSB_WS_CLOSE_DISCONNECTED, "disconnected by admin",
                                   "invalid credentials", "user banned (POST /api/disconnect)");
                return;
            }
            claims = xmalloc(sizeof(*claims));
            *claims = verified;
        }
    }
    struct user_entry_s *uentry = NULL;
    if (!admit_user(c, &hs, claims, &uentry)) {
        if (claims != NULL) {
            wsb_jwt_claims_free(claims);
            free(claims);
        }
        return;
    }
    /* permessage-deflate (RFC 7692): the first acceptable offer, answered
     * with server_no_context_takeover so our compressed frames can be shared. */
    wsb_pmd_params_t pmd;
    bool deflate = cfg->compression_enabled && wsb_pmd_negotiate(req, &pmd) == 1;
    char buf[768];
    int n = wsb_handshake_response(buf, sizeof(buf), &hs);
    assert(n > 0);
    if (deflate) {
        /* The extension's line goes before the blank line ending the head. */
        int e = wsb_pmd_response_header(buf + n - 2, sizeof(buf) - (size_t)n + 2, &pmd);
        assert(e > 0 && (size_t)(n - 2 + e + 2) < sizeof(buf));
        n = n - 2 + e;
        memcpy(buf + n, "\r\n", 3);
        n += 2;
    }
    conn_send_always(c, frame_buf_copy(buf, (size_t)n));
    wsb_http_request_free(c->http);
    c->http = NULL;
    c->state = CONN_WS;
    c->net->nws++;
    ctx->ops->update_gauges_cb(ctx);
    METRIC_ADD(ctx->metrics->ws_upgrades, 1);
    c->session = session_new(c, echo, claims);
    if (uentry != NULL) {
        session_extra(c->session)->uentry = uentry;
    }
    if (deflate) {
        session_enable_deflate(c->session, pmd.client_no_context_takeover,
                               pmd.server_max_window_bits);
    }
    c->last_rx_ms = ingress_now(ctx);
    c->session->keepalive_due_ms =
        ingress_now(ctx) + (cfg->ping_interval_ms ? cfg->ping_interval_ms : cfg->idle_timeout_ms);
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

/* ---- deadline: the keepalive, idle and auth timeouts (moved from net/conn_deadline.c) ---- */

static void ws_keepalive(conn_t *c)
{
    ingress_ctx_t *ctx = ingress_ctx(c);
    const ingress_config_t *cfg = ctx->cfg;
    uint64_t now = ingress_now(ctx);
    uint64_t silent = now - c->last_rx_ms;
    if (cfg->idle_timeout_ms > 0 && silent >= cfg->idle_timeout_ms) {
        METRIC_ADD(ctx->metrics->idle_timeouts, 1);
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

void session_on_deadline(conn_t *c)
{
    session_t *ss = c->session;
    uint64_t now = ingress_now(ingress_ctx(c));
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
