/* sse_session.c - the Server-Sent Events ingress (see sse_session.h). */
#include "ingress/sse_session.h"

#include "core/pubsub.h"
#include "core/user_limits.h"
#include "ingress/ingress.h"
#include "ingress/ws_session.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/jwt.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* `topic` parameters of one GET /sse at most (max_subscriptions bounds it
 * further). */
#define SSE_MAX_TOPICS 64

typedef struct sse_s {
    subscriber_t sub; /* first: the core's view */
    conn_t *conn;
    ingress_ctx_t *ctx;
    trie_sub_t *subs[SSE_MAX_TOPICS];
    uint32_t nsubs;
    wsb_jwt_claims_t claims; /* valid when has_claims */
    bool has_claims;
    perms_t perms;
    const perms_t *pp;
    struct user_entry_s *uentry;
    char *user;
    uint64_t ping_due_ms; /* 0: no heartbeat */
    uint64_t exp_due_ms;  /* 0: no token expiry */
    bool slow;            /* closed as a slow consumer */
} sse_t;

/* ---- delivery ---------------------------------------------------------------------------- */

static subscriber_verdict_t deliver_cb(void *user_data, frame_buf_t *fb, xmsg_t *m)
{
    sse_t *s = user_data;
    if (s->slow || s->conn->state != CONN_SSE || m->event) {
        return SUBSCRIBER_SKIPPED; /* join/leave events are WebSocket only */
    }
    frame_buf_t *ev = xmsg_sse_buf(fb);
    int rc = conn_send(s->conn, ev, 0, ev->len);
    frame_buf_unref(ev);
    return rc == 0 ? SUBSCRIBER_DELIVERED : SUBSCRIBER_FULL;
}

/* SSE has no gap notice: a stream that would suspend the subscriber closes
 * it instead; EventSource reconnects with Last-Event-ID. */
static int gap_cb(void *user_data, const xmsg_t *m)
{
    (void)user_data;
    (void)m;
    return -1;
}

static void close_cb(void *user_data, int code, const char *why)
{
    (void)code;
    sse_t *s = user_data;
    if (s->slow) {
        return;
    }
    s->slow = true;
    log_debug("sse: slow subscriber disconnected", "peer=%s why=%s", conn_peer(s->conn),
              log_quote(why));
    conn_abort_output(s->conn);
}

static const subscriber_ops_t sse_subscriber_ops = {
    .deliver_cb = deliver_cb,
    .gap_cb = gap_cb,
    .close_cb = close_cb,
};

/* ---- the connection's handlers ----------------------------------------------------------- */

static void send_text(sse_t *s, const char *text)
{
    conn_send_always(s->conn, frame_buf_copy(text, strlen(text)));
}

static void rearm(sse_t *s)
{
    uint64_t due = s->ping_due_ms;
    if (s->exp_due_ms != 0 && (due == 0 || s->exp_due_ms < due)) {
        due = s->exp_due_ms;
    }
    s->conn->deadline_ms = due;
}

static void *sse_handler_open(conn_t *c)
{
    (void)c;
    return NULL; /* not used: sse_open makes the session */
}

/* The client sends nothing after its request: bytes are dropped (reading
 * goes on so that its EOF closes the stream). */
static void sse_feed(void *sess, const char *data, size_t len)
{
    (void)sess;
    (void)data;
    (void)len;
}

static void sse_writable(void *sess)
{
    (void)sess;
}

static conn_timeout_t sse_deadline(void *sess)
{
    sse_t *s = sess;
    uint64_t now = ingress_now(s->ctx);
    if (s->exp_due_ms != 0 && now >= s->exp_due_ms) {
        log_debug("sse: token expired", "peer=%s", conn_peer(s->conn));
        send_text(s, "event: close\ndata: {\"code\":4002,\"reason\":\"token expired\"}\n\n");
        conn_linger(s->conn);
        return CONN_TIMEOUT_NONE;
    }
    if (s->ping_due_ms != 0 && now >= s->ping_due_ms) {
        send_text(s, ": ping\n\n");
        s->ping_due_ms = now + s->ctx->cfg->ping_interval_ms;
    }
    rearm(s);
    return CONN_TIMEOUT_NONE;
}

static void sse_shutdown(void *sess)
{
    sse_t *s = sess;
    send_text(s, "event: close\ndata: {\"code\":1001,\"reason\":\"server shutting down\"}\n\n");
    conn_linger(s->conn);
}

static void sse_free(sse_t *s)
{
    for (uint32_t i = 0; i < s->nsubs; i++) {
        pubsub_unsubscribe(s->ctx->core, s->subs[i]);
    }
    if (s->nsubs > 0) {
        s->ctx->ops->update_gauges_cb(s->ctx);
    }
    if (s->uentry != NULL) {
        user_limits_release(s->ctx->auth->users, s->uentry);
    }
    if (s->has_claims) {
        wsb_jwt_claims_free(&s->claims);
    }
    free(s->user);
    free(s);
}

static void sse_close(void *sess)
{
    sse_free(sess);
}

static const conn_resp_handlers_t sse_handlers = {
    .open = sse_handler_open,
    .feed = sse_feed,
    .writable = sse_writable,
    .deadline = sse_deadline,
    .shutdown = sse_shutdown,
    .close = sse_close,
};

void sse_register(void)
{
    conn_set_sse_handlers(&sse_handlers);
}

/* ---- GET /sse ---------------------------------------------------------------------------- */

static void refuse(conn_t *c, const wsb_http_request_t *req, int status, const char *code,
                   const char *message, const char *extra_headers)
{
    log_debug("sse refused", "peer=%s status=%d why=%s", conn_peer(c), status, log_quote(message));
    json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        conn_http_respond(c, 500, "text/plain", "internal error\n", 15, false, NULL);
        return;
    }
    conn_http_respond(c, status, "application/json", text, strlen(text),
                      wsb_http_request_keep_alive(req), extra_headers);
    free(text);
}

/* One "name=value" pair of the query as a query of its own, decoded by
 * wsb_http_query_param: the value of `name` (length), WSB_EAGAIN when the
 * pair is another name, or < 0 when malformed or too long. */
static int pair_param(const char *p, size_t n, const char *name, char *out, size_t cap)
{
    char one[3 * WSB_TOPIC_MAX_LEN + 16];
    if (n + 1 > sizeof(one)) {
        return WSB_ENOSPC;
    }
    one[0] = '?';
    memcpy(one + 1, p, n);
    return wsb_http_query_param((wsb_str_t){one, n + 1}, name, out, cap);
}

/* "<epoch>:<seq>" (Last-Event-ID or ?since=): 0, or -1 when malformed. */
static int parse_since(const char *p, size_t n, char *epoch, uint64_t *seq)
{
    const char *colon = memchr(p, ':', n);
    if (colon == NULL || (size_t)(colon - p) > XMSG_EPOCH_MAX) {
        return -1;
    }
    size_t elen = (size_t)(colon - p);
    memcpy(epoch, p, elen);
    epoch[elen] = '\0';
    const char *d = colon + 1;
    size_t dl = n - elen - 1;
    if (dl == 0 || dl > 19) {
        return -1;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < dl; i++) {
        if (d[i] < '0' || d[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(d[i] - '0');
    }
    *seq = v;
    return 0;
}

typedef struct {
    char topics[SSE_MAX_TOPICS][WSB_TOPIC_MAX_LEN + 1];
    size_t ntopics;
    bool has_since;
    char since_epoch[XMSG_EPOCH_MAX + 1];
    uint64_t since_seq;
} sse_query_t;

/* Reads the query's `topic` (repeated) and `since` parameters; other names
 * (token, and whatever a cache buster adds) are ignored. NULL, or why not. */
static const char *parse_query(const wsb_http_request_t *req, sse_query_t *q)
{
    wsb_str_t url = wsb_http_request_url(req);
    const char *qs = memchr(url.p, '?', url.len);
    const char *end = url.p + url.len;
    const char *hash = memchr(url.p, '#', url.len);
    if (hash != NULL) {
        end = hash;
    }
    for (const char *p = qs != NULL ? qs + 1 : end; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp != NULL ? amp : end;
        size_t plen = (size_t)(pe - p);
        char val[WSB_TOPIC_MAX_LEN + 1];
        int n = pair_param(p, plen, "topic", val, sizeof(val));
        if (n != WSB_EAGAIN) {
            if (q->ntopics == SSE_MAX_TOPICS) {
                return "too many topic parameters";
            }
            const char *why = "malformed topic";
            if (n < 0 || wsb_topic_check(val, (size_t)n, WSB_TOPIC_PATTERN, &why) != 0) {
                return why;
            }
            for (size_t i = 0; i < q->ntopics; i++) {
                if (strcmp(q->topics[i], val) == 0) {
                    return "the same topic twice";
                }
            }
            memcpy(q->topics[q->ntopics++], val, (size_t)n + 1);
        } else if ((n = pair_param(p, plen, "since", val, sizeof(val))) != WSB_EAGAIN) {
            if (n < 0 || parse_since(val, (size_t)n, q->since_epoch, &q->since_seq) != 0) {
                return "since must be <epoch>:<seq>";
            }
            q->has_since = true;
        }
        p = pe + 1;
    }
    if (q->ntopics == 0) {
        return "at least one topic parameter is required";
    }
    /* EventSource's own resume header wins over the URL's since. */
    wsb_str_t lei = wsb_http_request_header(req, "Last-Event-ID");
    if (lei.p != NULL && lei.len > 0) {
        if (parse_since(lei.p, lei.len, q->since_epoch, &q->since_seq) != 0) {
            return "Last-Event-ID must be <epoch>:<seq>";
        }
        q->has_since = true;
    }
    return NULL;
}

/* The token from the `wsb_token` cookie (EventSource cannot set headers;
 * the app's backend sets the cookie, HttpOnly, on the broker's origin):
 * its length, 0 without one, -1 when it does not fit. Several Cookie
 * headers or pairs: the first `wsb_token` wins. */
static int sse_cookie_token(const wsb_http_request_t *req, char *out, size_t cap)
{
    static const char name[] = "wsb_token=";
    const size_t nlen = sizeof(name) - 1;
    for (size_t i = 0; i < wsb_http_request_header_count(req); i++) {
        const wsb_http_header_t *h = wsb_http_request_header_at(req, i);
        if (!wsb_str_eq_nocase(h->name, "Cookie")) {
            continue;
        }
        const char *p = h->value.p;
        const char *end = p + h->value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ';')) {
                p++;
            }
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi != NULL ? semi : end;
            if ((size_t)(stop - p) >= nlen && memcmp(p, name, nlen) == 0) {
                size_t len = (size_t)(stop - p) - nlen;
                while (len > 0 && (p[nlen + len - 1] == ' ' || p[nlen + len - 1] == '\t')) {
                    len--;
                }
                if (len == 0 || len >= cap) {
                    return -1;
                }
                memcpy(out, p + nlen, len);
                out[len] = '\0';
                return (int)len;
            }
            p = stop;
        }
    }
    return 0;
}

/* The token's claims (401 when refused); false when answered. */
static bool authenticate(conn_t *c, const wsb_http_request_t *req, sse_t *s)
{
    ingress_ctx_t *ctx = s->ctx;
    static const char www[] = "WWW-Authenticate: Bearer\r\n";
    if (ctx->auth->jwt != NULL) {
        char token[WSB_JWT_MAX_LEN + 1];
        int tlen = ws_request_token(req, token, sizeof(token));
        if (tlen == 0) {
            tlen = sse_cookie_token(req, token, sizeof(token));
        }
        if (tlen < 0) {
            refuse(c, req, 401, WSB_ERR_UNAUTHORIZED, "malformed token", www);
            return false;
        }
        if (tlen > 0) {
            const char *why = "";
            if (auth_verify(ctx->auth, token, (size_t)tlen, &s->claims, &why) != 0) {
                refuse(c, req, 401, WSB_ERR_UNAUTHORIZED,
                       auth_why_expired(why) ? "token expired" : "invalid token", www);
                return false;
            }
            s->has_claims = true;
            wsb_jwt_claims_t *cl = &s->claims;
            s->perms = (perms_t){cl->subscribe, cl->nsubscribe, cl->publish, cl->npublish};
            s->pp = &s->perms;
            if (cl->sub.len > 0) {
                s->user = xstrndup(cl->sub.p, cl->sub.len);
            }
            if (cl->has_exp) {
                int64_t left =
                    cl->exp + (int64_t)(ctx->cfg->auth_leeway_ms / 1000) - (int64_t)time(NULL);
                s->exp_due_ms = ingress_now(ctx) + (left > 0 ? (uint64_t)left * 1000 : 1);
            }
            return true;
        }
    }
    if (ctx->cfg->auth_required) {
        refuse(c, req, 401, WSB_ERR_UNAUTHORIZED,
               "a token is required (?token= or Authorization: Bearer)", www);
        return false;
    }
    s->pp = &ctx->auth->anonymous;
    return true;
}

static const char *refusal_text(pubsub_status_t st, int *status, const char **code)
{
    *status = 403;
    *code = WSB_ERR_FORBIDDEN;
    switch (st) {
    case PUBSUB_FORBIDDEN:
        return "your credentials do not allow subscribing to this pattern";
    case PUBSUB_NO_PATTERNS:
        return PUBSUB_NO_PATTERNS_WHY;
    default:
        break;
    }
    *status = 400;
    *code = WSB_ERR_LIMIT;
    return st == PUBSUB_LIMIT ? "more topics than max_subscriptions"
                              : "this topic cannot be subscribed over SSE now";
}

/* Appends one `subscribed` event for topic `t` to `out`. */
static void subscribed_event(sbuf_t *out, const char *t, const pubsub_subscribed_t *o)
{
    json_t *j = json_pack("{s:s}", "topic", t);
    if (o->has_seq) {
        json_object_set_new(j, "seq", json_integer((json_int_t)o->seq));
        json_object_set_new(j, "epoch", json_string(o->epoch));
    }
    if (o->recovered >= 0) {
        json_object_set_new(j, "recovered", json_boolean(o->recovered == 1));
    }
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL) {
        wsb_oom("sse event");
    }
    sbuf_printf(out, "event: subscribed\ndata: %s\n\n", text);
    free(text);
}

void sse_open(conn_t *c, const wsb_http_request_t *req)
{
    ingress_ctx_t *ctx = ingress_ctx(c);
    sse_query_t *q = xcalloc(1, sizeof(*q));
    const char *bad = parse_query(req, q);
    if (bad != NULL) {
        refuse(c, req, 400, WSB_ERR_BAD_TOPIC, bad, NULL);
        free(q);
        return;
    }
    sse_t *s = xcalloc(1, sizeof(*s));
    s->conn = c;
    s->ctx = ctx;
    subscriber_init(&s->sub, &sse_subscriber_ops, s);
    if (!authenticate(c, req, s)) {
        sse_free(s);
        free(q);
        return;
    }
    s->sub.user = s->user;
    bool refused = false;
    s->uentry = session_user_acquire(ctx->auth, s->has_claims ? &s->claims : NULL, &refused);
    if (refused) {
        METRIC_ADD(ctx->metrics->connections_rejected, 1);
        refuse(c, req, 429, WSB_ERR_LIMIT, "too many connections for this user",
               "Retry-After: 1\r\n");
        sse_free(s);
        free(q);
        return;
    }
    sbuf_t out;
    sbuf_init(&out);
    sbuf_printf(&out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
                      "Connection: keep-alive\r\n\r\n");
    /* A replay is resumed for one topic (or one stream's pattern) only: a
     * Last-Event-ID names one position, and seqs are per topic. */
    bool resume = q->has_since && q->ntopics == 1;
    xmsg_t **replay = NULL;
    size_t nreplay = 0;
    for (size_t i = 0; i < q->ntopics; i++) {
        wsb_str_t t = {q->topics[i], strlen(q->topics[i])};
        pubsub_subscribe_t sreq = {
            .sub = &s->sub,
            .pattern = t,
            .perms = s->pp,
            .nsubs = s->nsubs,
            .position = true,
            .has_since = resume,
            .since_epoch = {q->since_epoch, strlen(q->since_epoch)},
            .since_seq = q->since_seq,
        };
        pubsub_subscribed_t o;
        pubsub_status_t st = pubsub_subscribe(ctx->core, &sreq, &o);
        if (resume && (st == PUBSUB_SINCE_OUTSIDE_STREAM || st == PUBSUB_NO_PATTERN_HISTORY)) {
            sreq.has_since = false; /* nothing to resume from: live only */
            st = pubsub_subscribe(ctx->core, &sreq, &o);
            o.recovered = 0;
        }
        if (st != PUBSUB_OK || o.handle == NULL) {
            int status = 403;
            const char *code = WSB_ERR_FORBIDDEN;
            const char *why = refusal_text(st, &status, &code);
            for (size_t k = 0; k < nreplay; k++) {
                xmsg_unref(replay[k]);
            }
            free(replay);
            sbuf_free(&out);
            refuse(c, req, status, code, why, NULL);
            sse_free(s);
            free(q);
            return;
        }
        s->subs[s->nsubs++] = o.handle;
        if (q->has_since && !resume) {
            o.recovered = 0;
        }
        subscribed_event(&out, q->topics[i], &o);
        if (o.nmsgs > 0) {
            replay = xrealloc(replay, sizeof(xmsg_t *) * (nreplay + o.nmsgs));
            memcpy(replay + nreplay, o.msgs, sizeof(xmsg_t *) * o.nmsgs);
            nreplay += o.nmsgs;
        }
        free(o.msgs);
    }
    ctx->ops->update_gauges_cb(ctx);
    conn_send_always(c, frame_buf_copy(out.p, out.len));
    sbuf_free(&out);
    conn_become_sse(c, s);
    /* The replay is bounded by the history rule, as for a WebSocket. */
    for (size_t k = 0; k < nreplay; k++) {
        frame_buf_t *rb = xmsg_replay_buf(replay[k]);
        conn_send_always(c, xmsg_sse_buf(rb));
        frame_buf_unref(rb);
        xmsg_unref(replay[k]);
    }
    METRIC_ADD(ctx->metrics->history_replayed, nreplay);
    free(replay);
    free(q);
    if (ctx->cfg->ping_interval_ms > 0) {
        s->ping_due_ms = ingress_now(ctx) + ctx->cfg->ping_interval_ms;
    }
    rearm(s);
}
