/* session.c - WebSocket sessions: frames in, protocol v1 operations, replies out. */
#include "session.h"

#include "bridge_redis.h"
#include "broker.h"
#include "conn.h"
#include "frame_buf.h"
#include "log.h"
#include "router.h"
#include "server.h"
#include "util.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Callback return value that stops the parser: the session is closing. */
#define STOP 1

static const wsb_ws_parser_callbacks_t parser_callbacks;

/* ---- replies ----------------------------------------------------------------------------- */

/* Takes the builder's buffer; `len` is read after the builder ran (the
 * builders report the length through a pointer). */
static void reply(session_t *s, uint8_t *raw, const size_t *len)
{
    conn_send_always(s->conn, frame_buf_adopt(raw, *len));
}

static void reply_error(session_t *s, bool has_id, int64_t id, const char *code,
                        const char *message)
{
    size_t len = 0;
    metrics_count_error(&s->conn->server->metrics, code);
    reply(s, wsb_msg_build_error(has_id, id, code, message, FRAME_BUF_HEADROOM, &len), &len);
}

static void reply_ack(session_t *s, const wsb_msg_t *m, bool has_seq, uint64_t seq, int recovered)
{
    if (!m->has_id) {
        return;
    }
    wsb_ack_t ack = {.id = m->id, .has_seq = has_seq, .seq = seq, .recovered = recovered};
    size_t len = 0;
    reply(s, wsb_msg_build_ack(&ack, FRAME_BUF_HEADROOM, &len), &len);
}

/* ---- operations -------------------------------------------------------------------------- */

void session_unsubscribe(server_t *srv, trie_sub_t *sub)
{
    bridge_t *br = srv->broker->bridge;
    if (br == NULL) {
        trie_remove(srv->trie, sub);
        return;
    }
    /* The pattern is owned by the entry trie_remove frees: copy it first. */
    char pattern[WSB_TOPIC_MAX_LEN + 1];
    size_t len = strlen(trie_sub_pattern(sub));
    memcpy(pattern, trie_sub_pattern(sub), len + 1);
    if (trie_remove(srv->trie, sub) == 1) {
        bridge_interest(br, pattern, len, -1);
    }
}

static int find_sub(const session_t *s, wsb_str_t pattern)
{
    for (uint32_t i = 0; i < s->nsubs; i++) {
        const char *p = trie_sub_pattern(s->subs[i]);
        if (strlen(p) == pattern.len && memcmp(p, pattern.p, pattern.len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void op_subscribe(session_t *s, const wsb_msg_t *m)
{
    server_t *srv = s->conn->server;
    /* Subscribing twice to one pattern is idempotent: the client still gets
     * each message once, and its ack. */
    if (find_sub(s, m->topic) < 0) {
        if (bridge_refuses_patterns(srv->broker->bridge) &&
            wsb_topic_is_pattern(m->topic.p, m->topic.len)) {
            reply_error(s, m->has_id, m->id, WSB_ERR_FORBIDDEN, BRIDGE_NO_PATTERNS_WHY);
            return;
        }
        if (s->nsubs >= srv->cfg->max_subscriptions) {
            char why[96];
            (void)snprintf(why, sizeof(why), "at most %u subscriptions per connection",
                           srv->cfg->max_subscriptions);
            reply_error(s, m->has_id, m->id, WSB_ERR_LIMIT, why);
            return;
        }
        if (s->nsubs == s->subs_cap) {
            s->subs_cap = s->subs_cap ? s->subs_cap * 2 : 1;
            s->subs = xrealloc(s->subs, sizeof(trie_sub_t *) * s->subs_cap);
        }
        int first = 0;
        s->subs[s->nsubs++] = trie_insert(srv->trie, m->topic.p, m->topic.len, &s->tc, &first);
        if (first && srv->broker->bridge != NULL) {
            bridge_interest(srv->broker->bridge, m->topic.p, m->topic.len, +1);
        }
        server_update_gauges(srv);
    }
    /* Without history a recovery request cannot succeed: say so, deliver live. */
    reply_ack(s, m, false, 0, m->has_since ? 0 : -1);
}

static void op_unsubscribe(session_t *s, const wsb_msg_t *m)
{
    int i = find_sub(s, m->topic);
    if (i < 0) {
        reply_error(s, m->has_id, m->id, WSB_ERR_NOT_SUBSCRIBED, "no subscription to this topic");
        return;
    }
    session_unsubscribe(s->conn->server, s->subs[i]);
    server_update_gauges(s->conn->server);
    s->subs[i] = s->subs[--s->nsubs];
    reply_ack(s, m, false, 0, -1);
}

static void op_publish(session_t *s, const wsb_msg_t *m)
{
    uint64_t seq = router_publish(s->conn->server, s->conn, m->topic, m->data);
    reply_ack(s, m, true, seq, -1);
}

static void handle_text(session_t *s, const uint8_t *data, size_t len)
{
    wsb_msg_t m;
    wsb_msg_error_t err;
    if (wsb_msg_parse((const char *)data, len, &m, &err) != 0) {
        reply_error(s, err.has_id, err.id, err.code, err.message);
        return;
    }
    switch (m.type) {
    case WSB_MSG_SUBSCRIBE:
        op_subscribe(s, &m);
        break;
    case WSB_MSG_UNSUBSCRIBE:
        op_unsubscribe(s, &m);
        break;
    case WSB_MSG_PUBLISH:
        op_publish(s, &m);
        break;
    case WSB_MSG_PING: {
        size_t flen = 0;
        reply(s, wsb_msg_build_pong(m.has_id, m.id, FRAME_BUF_HEADROOM, &flen), &flen);
        break;
    }
    }
    wsb_msg_free(&m);
}

static void echo_message(session_t *s, int opcode, const uint8_t *data, size_t len)
{
    size_t hl = wsb_ws_header_len(len, false);
    frame_buf_t *fb = frame_buf_new(hl + len);
    wsb_ws_write_header(fb->bytes, true, opcode, len, NULL);
    if (len > 0) {
        memcpy(fb->bytes + hl, data, len);
    }
    conn_send_always(s->conn, fb);
}

/* ---- parser callbacks -------------------------------------------------------------------- */

static bool is_open(const session_t *s)
{
    return s->conn->state == CONN_WS;
}

static int on_message_begin(void *ud, int opcode)
{
    session_t *s = ud;
    if (!is_open(s)) {
        return 0;
    }
    if (opcode == WSB_WS_OP_BINARY && !s->echo) {
        conn_ws_close(s->conn, WSB_WS_CLOSE_UNSUPPORTED, "binary messages are not supported",
                      false);
        return 0; /* keep parsing: the peer's close frame may follow */
    }
    s->msg_opcode = opcode;
    s->msg_len = 0;
    s->pending = NULL;
    s->pending_len = 0;
    return 0;
}

static void msg_append(session_t *s, const uint8_t *data, size_t len)
{
    if (s->msg_len + len > s->msg_cap) {
        size_t cap = s->msg_cap ? s->msg_cap : 1024;
        while (cap < s->msg_len + len) {
            cap *= 2;
        }
        s->msg = xrealloc(s->msg, cap);
        s->msg_cap = cap;
    }
    memcpy(s->msg + s->msg_len, data, len);
    s->msg_len += len;
}

static int on_message_data(void *ud, const uint8_t *data, size_t len)
{
    session_t *s = ud;
    if (!is_open(s)) {
        return 0;
    }
    /* The first slice of a message is borrowed from the read buffer; only a
     * message that spans reads or frames is copied (the bound is the parser's
     * max_message_size). */
    if (s->msg_len == 0 && s->pending == NULL) {
        s->pending = data;
        s->pending_len = len;
        return 0;
    }
    if (s->pending != NULL) {
        msg_append(s, s->pending, s->pending_len);
        s->pending = NULL;
    }
    msg_append(s, data, len);
    return 0;
}

static int on_message_end(void *ud)
{
    session_t *s = ud;
    if (!is_open(s)) {
        return 0;
    }
    const uint8_t *data = s->pending ? s->pending : s->msg;
    size_t len = s->pending ? s->pending_len : s->msg_len;
    METRIC_ADD(s->conn->server->metrics.messages_received, 1);
    if (s->echo) {
        echo_message(s, s->msg_opcode, data, len);
    } else {
        handle_text(s, data, len);
    }
    s->pending = NULL;
    s->pending_len = 0;
    s->msg_len = 0;
    /* A large message's buffer is not kept around for an idle connection. */
    if (s->msg_cap > (size_t)64 * 1024) {
        free(s->msg);
        s->msg = NULL;
        s->msg_cap = 0;
    }
    return 0;
}

static int on_ping(void *ud, const uint8_t *payload, size_t len)
{
    session_t *s = ud;
    if (is_open(s)) {
        uint8_t frame[2 + WSB_WS_MAX_CONTROL_PAYLOAD];
        int n = wsb_ws_build_frame(frame, sizeof(frame), true, WSB_WS_OP_PONG, payload, len, NULL);
        assert(n > 0);
        conn_send_always(s->conn, frame_buf_copy(frame, (size_t)n));
    }
    return 0;
}

static int on_close(void *ud, int code, const uint8_t *reason, size_t len)
{
    (void)reason;
    (void)len;
    session_t *s = ud;
    conn_t *c = s->conn;
    c->got_peer_close = true;
    if (c->state == CONN_WS) {
        /* Echo the peer's code (RFC 6455 5.5.1); no code received -> empty close. */
        conn_ws_close(c, code == WSB_WS_CLOSE_NO_STATUS ? 0 : code, NULL, false);
        if (c->state == CONN_WS_CLOSING) {
            conn_linger(c);
        }
    } else if (c->state == CONN_WS_CLOSING) {
        conn_linger(c);
    }
    return STOP;
}

static const wsb_ws_parser_callbacks_t parser_callbacks = {
    .on_message_begin = on_message_begin,
    .on_message_data = on_message_data,
    .on_message_end = on_message_end,
    .on_ping = on_ping,
    .on_pong = NULL,
    .on_close = on_close,
};

/* ---- public ------------------------------------------------------------------------------ */

session_t *session_new(conn_t *c, bool echo)
{
    server_t *srv = c->server;
    session_t *s = xcalloc(1, sizeof(*s));
    s->conn = c;
    s->echo = echo;
    wsb_ws_parser_init(&s->parser, WSB_WS_ROLE_SERVER, srv->cfg->max_message_size,
                       &parser_callbacks, s);
    srv->next_client_seq++;
    /* Unique in the process without coordination: node, worker, counter. */
    char client_id[48];
    (void)snprintf(client_id, sizeof(client_id), "%.16s-%u-%llu", srv->broker->node_id, srv->index,
                   (unsigned long long)srv->next_client_seq);
    if (!echo) {
        wsb_welcome_t w = {
            .client_id = client_id,
            .node_id = srv->broker->node_id,
            .version = WSB_VERSION,
            .max_message_size = srv->cfg->max_message_size,
            .max_subscriptions = srv->cfg->max_subscriptions,
            .ping_interval_ms = (uint32_t)srv->cfg->ping_interval_ms,
        };
        size_t len = 0;
        reply(s, wsb_msg_build_welcome(&w, FRAME_BUF_HEADROOM, &len), &len);
    }
    return s;
}

void session_feed(session_t *s, uint8_t *data, size_t len)
{
    conn_t *c = s->conn;
    int rc = wsb_ws_parser_feed(&s->parser, data, len, NULL);
    if (rc < 0) {
        log_debug("ws protocol error", "peer=%s code=%d why=%s", conn_peer(c), s->parser.close_code,
                  log_quote(s->parser.error ? s->parser.error : ""));
        /* The peer broke the protocol: it will not send a valid close frame, so
         * after ours the connection only lingers. */
        c->got_peer_close = true;
        conn_ws_close(c, s->parser.close_code, s->parser.error, false);
        conn_linger(c);
        return;
    }
    /* A borrowed first slice must not outlive this read: keep a copy. */
    if (s->pending != NULL) {
        msg_append(s, s->pending, s->pending_len);
        s->pending = NULL;
        s->pending_len = 0;
    }
}

int session_deliver(session_t *s, frame_buf_t *fb)
{
    return conn_send(s->conn, fb, 0, fb->len);
}

void session_free(session_t *s)
{
    for (uint32_t i = 0; i < s->nsubs; i++) {
        session_unsubscribe(s->conn->server, s->subs[i]);
    }
    free(s->subs);
    free(s->msg);
    free(s);
}
