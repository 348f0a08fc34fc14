/* ws_session.c - WebSocket sessions: frames in, protocol v1 operations, replies out. */
#include "ingress/ws_session.h"

#include "core/admin_ban.h"
#include "core/presence.h"
#include "core/pubsub.h"
#include "core/sys_events.h"
#include "core/user_limits.h"
#include "core/xmsg.h"
#include "ingress/ingress.h"
#include "net/conn.h"
#include "net/net.h"
#include "shared/frame_buf.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/message.h"
#include "wsb/topic.h"
#include "wsb/ws_frame.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Callback return value that stops the parser: the session is closing. */
#define STOP 1

static const wsb_ws_parser_callbacks_t parser_callbacks;

/* ---- replies ----------------------------------------------------------------------------- */

/* Takes the builder's buffer; `len` is read after the builder ran (the
 * builders report the length through a pointer). */
static void reply(session_t *s, uint8_t *raw, const size_t *len)
{
    frame_buf_t *fb = frame_buf_adopt(raw, *len);
    /* Behind a publish or subscribe waiting for Redis: replies keep request order. */
    if (s->cl != NULL && chist_session_hold(s, fb)) {
        return;
    }
    conn_send_always(s->conn, fb);
}

static void reply_error(session_t *s, bool has_id, int64_t id, const char *code,
                        const char *message)
{
    size_t len = 0;
    metrics_count_error(s->ctx->metrics, code);
    reply(s, wsb_msg_build_error(has_id, id, code, message, FRAME_BUF_HEADROOM, &len), &len);
}

static void reply_ack_stream(session_t *s, const wsb_msg_t *m, bool has_seq, uint64_t seq,
                             int recovered, const char *epoch, wsb_str_t stream)
{
    if (!m->has_id) {
        return;
    }
    wsb_ack_t ack = {.id = m->id,
                     .has_seq = has_seq,
                     .seq = seq,
                     .recovered = recovered,
                     .epoch = {epoch, epoch != NULL ? strlen(epoch) : 0},
                     .stream = stream};
    size_t len = 0;
    reply(s, wsb_msg_build_ack(&ack, FRAME_BUF_HEADROOM, &len), &len);
}

static void reply_ack_epoch(session_t *s, const wsb_msg_t *m, bool has_seq, uint64_t seq,
                            int recovered, const char *epoch)
{
    reply_ack_stream(s, m, has_seq, seq, recovered, epoch, WSB_STR_NULL);
}

static void reply_ack(session_t *s, const wsb_msg_t *m, bool has_seq, uint64_t seq, int recovered)
{
    reply_ack_epoch(s, m, has_seq, seq, recovered, NULL);
}

/* ---- gaps (slow consumers on "drop" rules) ------------------------------------------------- */

/* One suspension: an exact topic of a history rule (stream NULL), or a
 * subscription (topic or pattern, the string subscribed) inside `stream`
 * (its name, pubsub_stream_within). */
typedef struct session_gap_s {
    char *topic;
    const char *stream;
    uint64_t first_dropped; /* report_stream_gap's scratch: lowest seq dropped */
    uint64_t seq;           /* a stream's: the seq its gap announced */
} session_gap_t;

static int find_gap(const session_t *s, const char *topic, size_t len)
{
    uint32_t n = s->extra != NULL ? s->extra->ngaps : 0;
    for (uint32_t i = 0; i < n; i++) {
        if (strlen(s->extra->gaps[i].topic) == len &&
            memcmp(s->extra->gaps[i].topic, topic, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void clear_gap(session_t *s, wsb_str_t topic)
{
    int i = find_gap(s, topic.p, topic.len);
    if (i >= 0) {
        if (s->extra->gaps[i].stream != NULL) {
            s->extra->nstream_gaps--;
        }
        free(s->extra->gaps[i].topic);
        s->extra->gaps[i] = s->extra->gaps[--s->extra->ngaps];
    }
}

static void add_gap(session_t *s, wsb_str_t topic, const char *stream, uint64_t first_dropped)
{
    (void)session_extra(s);
    s->extra->gaps = xrealloc(s->extra->gaps, sizeof(session_gap_t) * (s->extra->ngaps + 1));
    char *copy = xmalloc(topic.len + 1);
    memcpy(copy, topic.p, topic.len);
    copy[topic.len] = '\0';
    s->extra->gaps[s->extra->ngaps++] = (session_gap_t){copy, stream, first_dropped, 0};
    if (stream != NULL) {
        s->extra->nstream_gaps++;
    }
}

/* A stream's message is suspended for this session when every one of its
 * subscriptions that matches `topic` is suspended: a subscription that is
 * not (another pattern of the stream) still gets it. */
static bool stream_suspended(const session_t *s, const char *topic, size_t len)
{
    bool matched = false;
    for (uint32_t i = 0; i < s->nsubs; i++) {
        const char *p = trie_sub_pattern(s->subs[i]);
        size_t plen = strlen(p);
        if (!wsb_topic_matches(p, plen, topic, len)) {
            continue;
        }
        int g = find_gap(s, p, plen);
        if (g < 0 || s->extra->gaps[g].stream == NULL) {
            return false;
        }
        matched = true;
    }
    return matched;
}

static bool is_gapped(const session_t *s, const xmsg_t *m)
{
    if (s->extra == NULL || s->extra->ngaps == 0) {
        return false;
    }
    if (s->extra->nstream_gaps > 0 && !m->event &&
        pubsub_stream_of(s->ctx->core, (wsb_str_t){m->topic, m->topic_len}, NULL) != NULL) {
        return stream_suspended(s, m->topic, m->topic_len);
    }
    int g = find_gap(s, m->topic, m->topic_len);
    return g >= 0 && s->extra->gaps[g].stream == NULL;
}

typedef struct {
    session_t *s;
    const xmsg_t *msg;
    uint64_t first_dropped; /* lowest seq dropped, UINT64_MAX: none */
    uint32_t from;          /* stream gaps: the session's new suspensions are gaps[from..] */
} gap_match_t;

static bool same_topic_cb(const frame_buf_t *fb, void *user_data)
{
    gap_match_t *g = user_data;
    const xmsg_t *x = fb->shared;
    /* A join/leave event has no seq: it stays queued. */
    if (x == NULL || x->event || x->topic_len != g->msg->topic_len ||
        memcmp(x->topic, g->msg->topic, x->topic_len) != 0) {
        return false;
    }
    if (x->seq < g->first_dropped) {
        g->first_dropped = x->seq;
    }
    return true;
}

static void send_gap(session_t *s, const wsb_gap_t *gap)
{
    size_t len = 0;
    reply(s, wsb_msg_build_gap_ex(gap, FRAME_BUF_HEADROOM, &len), &len);
}

/* A queued frame of the stream (same epoch, same stream) that no longer
 * reaches any subscription of the session once the new suspensions hold,
 * and that no earlier gap of the session promised (a frame that matches a
 * subscription suspended before, at or under the seq its gap announced,
 * stays: that gap said it was sent). */
static bool stream_frame_cb(const frame_buf_t *fb, void *user_data)
{
    gap_match_t *g = user_data;
    const xmsg_t *x = fb->shared;
    if (x == NULL || x->event || strcmp(x->epoch, g->msg->epoch) != 0 ||
        !stream_suspended(g->s, x->topic, x->topic_len)) {
        return false;
    }
    for (uint32_t i = 0; i < g->from; i++) {
        const session_gap_t *e = &g->s->extra->gaps[i];
        if (e->stream != NULL && x->seq <= e->seq &&
            wsb_topic_matches(e->topic, strlen(e->topic), x->topic, x->topic_len)) {
            return false;
        }
    }
    for (uint32_t i = g->from; i < g->s->extra->ngaps; i++) {
        session_gap_t *e = &g->s->extra->gaps[i];
        if (x->seq < e->first_dropped &&
            wsb_topic_matches(e->topic, strlen(e->topic), x->topic, x->topic_len)) {
            e->first_dropped = x->seq;
        }
    }
    return true;
}

/*
 * report_gap for a message of stream `stream` (PROTOCOL.md 6.2): every
 * subscription of the session that matches it is suspended, each with a
 * `gap` naming it, the stream and the seq up to which it got every
 * matching message; the queued frames of the stream no other subscription
 * wants are dropped. -1 (close 1013) when a matching subscription is not
 * inside the stream (it cannot be told) or the suspensions would pass
 * SESSION_MAX_GAPS.
 */
static int report_stream_gap(session_t *s, const xmsg_t *m, const char *stream, size_t stream_len)
{
    uint32_t from = session_extra(s)->ngaps;
    for (uint32_t i = 0; i < s->nsubs; i++) {
        const char *p = trie_sub_pattern(s->subs[i]);
        wsb_str_t sub = {p, strlen(p)};
        if (!wsb_topic_matches(sub.p, sub.len, m->topic, m->topic_len) ||
            find_gap(s, sub.p, sub.len) >= 0) {
            continue;
        }
        if (pubsub_stream_within(s->ctx->core, sub) != stream ||
            s->extra->ngaps >= SESSION_MAX_GAPS) {
            while (s->extra->ngaps > from) { /* undo: the core closes the session */
                clear_gap(
                    s, (wsb_str_t){s->extra->gaps[from].topic, strlen(s->extra->gaps[from].topic)});
            }
            return -1;
        }
        add_gap(s, sub, stream, m->seq);
    }
    if (s->extra->ngaps == from) {
        return -1; /* nothing of the session's to suspend: never silent, close */
    }
    conn_t *c = s->conn;
    gap_match_t g = {.s = s, .msg = m, .first_dropped = UINT64_MAX, .from = from};
    c->net->outbound_bytes -= outq_drop_matching(&c->outq, stream_frame_cb, &g);
    for (uint32_t i = from; i < s->extra->ngaps; i++) {
        session_gap_t *e = &s->extra->gaps[i];
        e->seq = e->first_dropped - 1;
        wsb_gap_t gap = {.topic = {e->topic, strlen(e->topic)},
                         .stream = {stream, stream_len},
                         .epoch = {m->epoch, strlen(m->epoch)},
                         .seq = e->seq};
        send_gap(s, &gap);
    }
    return 0;
}

/* The fan-out could not queue `m` (over the outbound bound) and its rule
 * says "drop": drops the session's queued frames of that topic, sends a
 * `gap` notice naming the last seq it keeps, and suspends the topic for this
 * session (for a stream's message: report_stream_gap). Returns 0, or -1
 * when SESSION_MAX_GAPS topics are suspended already (the core then closes
 * the slow consumer as usual). */
static int report_gap(session_t *s, const xmsg_t *m)
{
    size_t stream_len = 0;
    const char *stream =
        pubsub_stream_of(s->ctx->core, (wsb_str_t){m->topic, m->topic_len}, &stream_len);
    if (stream != NULL) {
        return report_stream_gap(s, m, stream, stream_len);
    }
    if (session_extra(s)->ngaps >= SESSION_MAX_GAPS) {
        return -1;
    }
    conn_t *c = s->conn;
    /* The topic's frames are queued in seq order behind those already handed
     * to the kernel: after dropping them, the client holds every message of
     * the topic up to the first one dropped (or up to this one). */
    gap_match_t g = {.s = s, .msg = m, .first_dropped = UINT64_MAX};
    size_t dropped = outq_drop_matching(&c->outq, same_topic_cb, &g);
    c->net->outbound_bytes -= dropped;
    uint64_t last = (g.first_dropped < m->seq ? g.first_dropped : m->seq) - 1;
    add_gap(s, (wsb_str_t){m->topic, m->topic_len}, NULL, 0);
    wsb_gap_t gap = {
        .topic = {m->topic, m->topic_len}, .epoch = {m->epoch, strlen(m->epoch)}, .seq = last};
    send_gap(s, &gap);
    return 0;
}

/* ---- operations -------------------------------------------------------------------------- */

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

/* Records a new subscription handle in the session's list. */
static void keep_sub(session_t *s, trie_sub_t *sub)
{
    if (s->nsubs == s->subs_cap) {
        uint32_t cap = s->subs_cap < 2 ? 4 : s->subs_cap * 2;
        if (s->subs == &s->sub0) {
            s->subs = xmalloc(sizeof(trie_sub_t *) * cap);
            s->subs[0] = s->sub0;
        } else {
            s->subs = xrealloc(s->subs, sizeof(trie_sub_t *) * cap);
        }
        s->subs_cap = cap;
    }
    s->subs[s->nsubs++] = sub;
}

static void reply_subscribe_refused(session_t *s, const wsb_msg_t *m, pubsub_status_t st)
{
    if (st == PUBSUB_NO_PATTERNS) {
        reply_error(s, m->has_id, m->id, WSB_ERR_FORBIDDEN, PUBSUB_NO_PATTERNS_WHY);
    } else if (st == PUBSUB_FORBIDDEN) {
        reply_error(s, m->has_id, m->id, WSB_ERR_FORBIDDEN,
                    "your credentials do not allow subscribing to this pattern");
    } else if (st == PUBSUB_HISTORY_LIMIT) {
        char why[128];
        (void)snprintf(why, sizeof(why),
                       "history on a pattern: it matches more than %u topics with history",
                       s->ctx->cfg->max_history_topics_per_subscribe);
        reply_error(s, m->has_id, m->id, WSB_ERR_LIMIT, why);
    } else if (st == PUBSUB_NO_PATTERN_HISTORY) {
        reply_error(s, m->has_id, m->id, WSB_ERR_BAD_SINCE,
                    "\"history\" on a pattern is not available with clustered history "
                    "(redis.url): subscribe to each exact topic with history");
    } else if (st == PUBSUB_SINCE_OUTSIDE_STREAM) {
        reply_error(s, m->has_id, m->id, WSB_ERR_BAD_SINCE,
                    "\"since\" on a pattern needs a stream: no topics rule with \"stream\" "
                    "covers this pattern (use an exact topic with history)");
    } else if (st == PUBSUB_PRESENCE_LIMIT) {
        char why[160];
        const ingress_config_t *cfg = s->ctx->cfg;
        (void)snprintf(why, sizeof(why),
                       "presence topic full: at most %u members per topic and %u presence "
                       "topics per node",
                       cfg->presence_max_members, cfg->presence_max_topics);
        reply_error(s, m->has_id, m->id, WSB_ERR_LIMIT, why);
    } else {
        char why[96];
        (void)snprintf(why, sizeof(why), "at most %u subscriptions per connection",
                       s->ctx->cfg->max_subscriptions);
        reply_error(s, m->has_id, m->id, WSB_ERR_LIMIT, why);
    }
}

static void op_subscribe(session_t *s, const wsb_msg_t *m)
{
    ingress_ctx_t *srv = s->ctx;
    pubsub_subscribe_t req = {
        .sub = &s->sub,
        .pattern = m->topic,
        .perms = s->perms,
        .nsubs = s->nsubs,
        .already = find_sub(s, m->topic) >= 0,
        .position = true,
        .has_since = m->has_since,
        .since_epoch = m->since_epoch,
        .since_seq = m->since_seq,
        .history = m->has_history ? m->history : 0,
    };
    pubsub_subscribed_t out;
    pubsub_status_t st = pubsub_subscribe(srv->core, &req, &out);
    if (st != PUBSUB_OK) {
        reply_subscribe_refused(s, m, st);
        return;
    }
    if (out.handle != NULL) {
        keep_sub(s, out.handle);
    }
    clear_gap(s, m->topic);
    if (out.chist_rule >= 0) {
        chist_session_subscribe(s, m, out.chist_rule, out.handle != NULL);
        return;
    }
    if (out.cstream != NULL) {
        chist_session_subscribe_stream(s, m, out.cstream); /* clustered streams hook */
        return;
    }
    reply_ack_stream(s, m, out.has_seq, out.seq, out.recovered, out.has_seq ? out.epoch : NULL,
                     (wsb_str_t){out.stream, out.stream_len});
    if (out.gap) {
        /* A stream's loss (trimmed, or another epoch) is announced before
         * what is left of it is replayed (PROTOCOL.md 3.1b). */
        wsb_gap_t gap = {.topic = m->topic,
                         .stream = {out.stream, out.stream_len},
                         .epoch = {out.epoch, strlen(out.epoch)},
                         .seq = out.gap_seq,
                         .has_to = true,
                         .to = out.gap_to};
        send_gap(s, &gap);
    }
    /* The replay is bounded by the rule's size, not by max_outbound_bytes:
     * the client asked for it, and its frames are shared, not copied. */
    for (size_t i = 0; i < out.nmsgs; i++) {
        conn_send_always(s->conn, xmsg_replay_buf(out.msgs[i]));
        xmsg_unref(out.msgs[i]);
    }
    /* Only history (an exact topic's or a pattern's) fills out.msgs. */
    METRIC_ADD(srv->metrics->history_replayed, out.nmsgs);
    free(out.msgs);
}

/* Removes the session's subscription i: from the trie (and the bridge's
 * interest), its gap suspension, the gauges. Order of s->subs changes. */
static void remove_subscription(session_t *s, uint32_t i)
{
    trie_sub_t *sub = s->subs[i];
    /* clear_gap needs the pattern, which pubsub_unsubscribe frees. */
    clear_gap(s, (wsb_str_t){trie_sub_pattern(sub), strlen(trie_sub_pattern(sub))});
    pubsub_unsubscribe(s->ctx->core, sub);
    s->ctx->ops->update_gauges_cb(s->ctx);
    s->subs[i] = s->subs[--s->nsubs];
}

void session_remove_pattern(session_t *s, wsb_str_t pattern)
{
    int i = find_sub(s, pattern);
    if (i >= 0) {
        remove_subscription(s, (uint32_t)i);
    }
}

static void op_unsubscribe(session_t *s, const wsb_msg_t *m)
{
    int i = find_sub(s, m->topic);
    if (i < 0) {
        reply_error(s, m->has_id, m->id, WSB_ERR_NOT_SUBSCRIBED, "no subscription to this topic");
        return;
    }
    remove_subscription(s, (uint32_t)i);
    reply_ack(s, m, false, 0, -1);
}

/* After new credentials: removes every subscription they do not cover, as
 * an unsubscribe would, and tells the client with one `unsubscribed` notice
 * per pattern (PROTOCOL.md 4.7). A pattern is covered whole or not at all:
 * "chat.>" under a token allowing only "chat.room1" goes, it is not
 * narrowed. The notices are queued before the auth ack. */
static void revoke_uncovered(session_t *s)
{
    static const char why[] = "your new credentials do not allow this subscription";
    for (uint32_t i = 0; i < s->nsubs;) {
        const char *pattern = trie_sub_pattern(s->subs[i]);
        wsb_str_t p = {pattern, strlen(pattern)};
        if (perms_may_subscribe(s->perms, p)) {
            i++;
            continue;
        }
        json_t *notice = json_pack("{s:s, s:s#, s:s, s:s}", "type", "unsubscribed", "topic", p.p,
                                   (int)p.len, "code", WSB_ERR_FORBIDDEN, "message", why);
        if (notice == NULL) {
            wsb_oom("unsubscribed notice");
        }
        size_t len = 0;
        uint8_t *frame = wsb_msg_build_json(notice, FRAME_BUF_HEADROOM, &len);
        json_decref(notice);
        if (frame == NULL) {
            wsb_oom("unsubscribed frame");
        }
        log_debug("subscription revoked", "peer=%s pattern=%s", conn_peer(s->conn),
                  log_quote(pattern));
        remove_subscription(s, i); /* the notice and the log line used the pattern first */
        reply(s, frame, &len);
    }
}

/* The messages this read published so far reach this worker's subscribers,
 * this connection included, before anything else is queued or closed here:
 * a reply never overtakes a message (PROTOCOL.md 6), and a publisher's own
 * copy is never left behind its close. */
static void deliver_deferred(session_t *s)
{
    if (s->deferred) {
        s->deferred = false;
        pubsub_deliver_local(s->ctx->core);
    }
}

/* The publish a publish or request message asks for, on this connection's credentials. */
static pubsub_publish_t publish_of(session_t *s, const wsb_msg_t *m)
{
    return (pubsub_publish_t){
        .topic = m->topic,
        .data_json = m->data, /* validated; forwarded as sent */
        .ingress = PUBSUB_WS,
        .perms = s->perms,
        .from_client_no = s->sub.client_no,
        .from_user = session_user(s),
        .has_id = m->has_id,
        .id = m->id,
    };
}

static void op_publish(session_t *s, const wsb_msg_t *m)
{
    pubsub_publish_t req = publish_of(s, m);
    req.owner = s;
    req.done_cb = chist_session_op_done;
    req.defer_local = true;
    pubsub_published_t out;
    switch (pubsub_publish(s->ctx->core, &req, &out)) {
    case PUBSUB_OK:
        s->deferred = true;
        if (out.pause) {
            conn_pause_publisher(s->conn);
        }
        reply_ack(s, m, true, out.seq, -1);
        break;
    case PUBSUB_PENDING:
        deliver_deferred(s);
        chist_session_hold_op(s, out.op); /* acked once Redis assigned the seq */
        break;
    case PUBSUB_FORBIDDEN:
        deliver_deferred(s);
        reply_error(s, m->has_id, m->id, WSB_ERR_FORBIDDEN,
                    "your credentials do not allow publishing to this topic");
        break;
    default:
        deliver_deferred(s);
        reply_error(s, m->has_id, m->id, WSB_ERR_UNAVAILABLE,
                    "the topic is numbered in Redis (clustered history or stream) and Redis is "
                    "unavailable: not published");
        break;
    }
}

/* request (core/request.h): no ack; a reply, no_responders or timeout ends it. */
static void request_done(void *owner, const request_done_t *d)
{
    session_t *s = owner;
    if (d->outcome == REQUEST_NO_RESPONDERS) {
        reply_error(s, d->has_id, d->id, WSB_ERR_NO_RESPONDERS,
                    "no subscriber of the topic exists");
        return;
    }
    if (d->outcome == REQUEST_TIMEOUT) {
        reply_error(s, d->has_id, d->id, WSB_ERR_TIMEOUT, "no reply within timeout_ms");
        return;
    }
    json_t *r = json_pack("{s:s}", "type", "reply");
    if (r == NULL) {
        wsb_oom("reply");
    }
    if (d->has_id) {
        json_object_set_new(r, "id", json_integer(d->id));
    }
    json_object_set(r, "data", d->data != NULL ? d->data : json_null());
    json_object_set(r, "from", d->from != NULL ? d->from : json_null());
    size_t len = 0;
    uint8_t *raw = wsb_msg_build_json(r, FRAME_BUF_HEADROOM, &len);
    json_decref(r);
    if (raw == NULL) {
        wsb_oom("reply");
    }
    reply(s, raw, &len);
}

static void op_request(session_t *s, const wsb_msg_t *m)
{
    request_args_t a = {
        .pub = publish_of(s, m),
        .timeout_ms = m->timeout_ms,
        .list = &session_extra(s)->requests,
        .owner = s,
        .done_cb = request_done,
    };
    bool pause = false;
    switch (request_start(s->ctx->core, &a, &pause)) {
    case PUBSUB_OK:
        if (pause) {
            conn_pause_publisher(s->conn);
        }
        break;
    case PUBSUB_FORBIDDEN:
        reply_error(s, m->has_id, m->id, WSB_ERR_FORBIDDEN,
                    "your credentials do not allow publishing to this topic, or it is an inbox");
        break;
    case PUBSUB_LIMIT:
        reply_error(s, m->has_id, m->id, WSB_ERR_LIMIT,
                    "too many requests waiting for a reply on this connection (100)");
        break;
    default:
        deliver_deferred(s);
        reply_error(s, m->has_id, m->id, WSB_ERR_UNAVAILABLE,
                    "requests are not supported on topics that keep clustered history");
        break;
    }
}

/* presence / presence_stats: the members (or their counts) on this node. */
static void op_presence(session_t *s, const wsb_msg_t *m)
{
    core_worker_t *core = s->ctx->core;
    switch (pubsub_presence_check(core, m->topic, s->perms, NULL)) {
    case PUBSUB_OK:
        break;
    case PUBSUB_FORBIDDEN:
        reply_error(s, m->has_id, m->id, WSB_ERR_FORBIDDEN,
                    "your credentials do not allow subscribing to this topic, nor asking who is "
                    "subscribed");
        return;
    default:
        reply_error(s, m->has_id, m->id, WSB_ERR_NOT_AVAILABLE,
                    "presence is off for this topic: no topics rule with \"presence\":true "
                    "matches it");
        return;
    }
    bool stats = m->type == WSB_MSG_PRESENCE_STATS;
    json_t *body = presence_json(core->core->presence, wsb_msg_type_name(m->type), m->has_id, m->id,
                                 m->topic, !stats, stats);
    size_t len = 0;
    uint8_t *frame = wsb_msg_build_json(body, FRAME_BUF_HEADROOM, &len);
    json_decref(body);
    if (frame == NULL) {
        abort(); /* ENOMEM: the broker's allocation policy */
    }
    reply(s, frame, &len);
}

/* A token's claims and the permissions made of them, in one allocation that
 * only authenticated sessions carry. */
struct creds_s {
    wsb_jwt_claims_t claims;
    perms_t perms;
};

static const perms_t no_perms; /* auth.required and no token yet */

static void free_creds(session_t *s)
{
    if (s->creds != NULL) {
        wsb_jwt_claims_free(&s->creds->claims);
        free(s->creds);
        s->creds = NULL;
    }
}

/* The loop time at which a token expiring at `exp` (seconds since the
 * epoch) stops being valid, leeway included. The verifier bounds exp to
 * 0..WSB_JWT_MAX_TIME (year 9999) and auth.leeway is at most an hour, so no
 * step below can overflow: at most ~2.6e14 ms are added to the loop clock. */
static uint64_t token_deadline_ms(const ingress_ctx_t *srv, int64_t exp)
{
    if (exp > WSB_JWT_MAX_TIME) {
        exp = WSB_JWT_MAX_TIME; /* not reached: the verifier refuses such tokens */
    }
    int64_t left_s = exp + (int64_t)(srv->cfg->auth_leeway_ms / 1000) - (int64_t)time(NULL);
    return ingress_now(srv) + (left_s > 0 ? (uint64_t)left_s * 1000 : 0);
}

/* Takes over `claims` (heap; freed here) as the session's credentials:
 * permissions from its patterns, the user from "sub", the deadline from
 * "exp". Memberships made before keep the user they were made with. */
static void set_claims(session_t *s, wsb_jwt_claims_t *claims)
{
    free_creds(s);
    struct creds_s *cr = xmalloc(sizeof(*cr));
    cr->claims = *claims; /* the patterns live in a block of their own */
    free(claims);
    claims = &cr->claims;
    cr->perms = (perms_t){claims->subscribe, claims->nsubscribe, claims->publish, claims->npublish};
    s->creds = cr;
    s->perms = &cr->perms;
    s->authed = true;
    free(s->sub.user); /* the session's own copy (ws_session.h) */
    s->sub.user = claims->sub.len > 0 ? xstrndup(claims->sub.p, claims->sub.len) : NULL;
    s->auth_deadline_ms = claims->has_exp ? token_deadline_ms(s->ctx, claims->exp) : 0;
}

static void conn_event(session_t *s, bool connect)
{
    ingress_ctx_t *ctx = s->ctx;
    if (ctx->cfg->sys_conn_events) {
        char id[CORE_CLIENT_ID_MAX + 1];
        sys_conn_event(ctx->core, connect, core_client_id(ctx->core, s->sub.client_no, id),
                       session_user(s), ctx->node_id);
    }
}

/* Publishes $sys.conn.connect once the session has its first credentials
 * (at the upgrade, or at its first accepted `auth`). */
static void announce(session_t *s)
{
    if (s->announced || s->echo) {
        return;
    }
    s->announced = true;
    conn_event(s, true);
}

/* The per-user limits follow the session's user: a token for another `sub`
 * counts this connection under that user (refused when it is at
 * max_connections_per_user: false, nothing changed), the same `sub` keeps
 * its count. */
static bool switch_user(session_t *s, wsb_str_t sub)
{
    user_limits_t *users = s->ctx->auth->users;
    if (users == NULL || s->echo) {
        return true;
    }
    const char *user = s->sub.user;
    if (user != NULL && sub.len == strlen(user) && memcmp(user, sub.p, sub.len) == 0) {
        return true;
    }
    user_entry_t *e = NULL;
    if (sub.len > 0 && (e = user_limits_acquire(users, sub)) == NULL) {
        return false;
    }
    if (s->extra != NULL && s->extra->uentry != NULL) {
        user_limits_release(users, s->extra->uentry);
        s->extra->uentry = NULL;
    }
    if (e != NULL) {
        session_extra(s)->uentry = e;
    }
    return true;
}

static void op_auth(session_t *s, const wsb_msg_t *m)
{
    wsb_jwt_claims_t verified;
    const char *why = "";
    if (auth_verify(s->ctx->auth, m->token.p, m->token.len, &verified, &why) != 0) {
        char msg[160];
        (void)snprintf(msg, sizeof(msg), "token refused: %s", why);
        log_info("auth refused", "peer=%s why=%s", conn_peer(s->conn), log_quote(why));
        /* The connection keeps what it had; an unauthenticated one still
         * runs out of time at auth.timeout. */
        reply_error(s, m->has_id, m->id, WSB_ERR_UNAUTHORIZED, msg);
        return;
    }
    if (admin_ban_left_ms(s->ctx->auth->bans, verified.sub, ingress_now(s->ctx)) > 0) {
        /* A banned user's token ends the session, as its disconnect did. */
        wsb_jwt_claims_free(&verified);
        log_info("auth refused", "peer=%s why=user banned", conn_peer(s->conn));
        conn_ws_close(s->conn, WSB_WS_CLOSE_DISCONNECTED, "disconnected by admin", true);
        return;
    }
    if (!switch_user(s, verified.sub)) {
        char msg[200];
        (void)snprintf(msg, sizeof(msg),
                       "user %.*s has max_connections_per_user (%u) open connections on this node",
                       (int)(verified.sub.len < 128 ? verified.sub.len : 128), verified.sub.p,
                       (unsigned)s->ctx->cfg->max_connections_per_user);
        wsb_jwt_claims_free(&verified);
        reply_error(s, m->has_id, m->id, WSB_ERR_LIMIT, msg);
        return;
    }
    wsb_jwt_claims_t *claims = xmalloc(sizeof(*claims));
    *claims = verified;
    set_claims(s, claims);
    revoke_uncovered(s);
    conn_ws_rearm(s->conn);
    reply_ack(s, m, false, 0, -1);
    announce(s);
}

/* Token buckets on messages and bytes: takes this message's share and
 * returns false when the connection is over its rate. Every message counts,
 * valid or not, so that a flood of malformed requests is limited too. */
static bool within_rate(session_t *s, size_t len)
{
    const ingress_config_t *cfg = s->ctx->cfg;
    if (cfg->rate_messages == 0 && cfg->rate_bytes == 0) {
        return true;
    }
    uint64_t now = ingress_now(s->ctx);
    double burst = cfg->rate_burst ? cfg->rate_burst : cfg->rate_messages;
    double byte_burst = (double)cfg->rate_bytes;
    if (byte_burst < (double)cfg->max_message_size) {
        byte_burst = (double)cfg->max_message_size;
    }
    user_limits_t *users = s->ctx->auth->users;
    session_extra_t *x = session_extra(s);
    if (x->uentry != NULL && user_limits_per_user_rate(users)) {
        /* rate.per = "user": every connection of the user draws from one pair. */
        return user_limits_take(users, x->uentry, cfg->rate_messages, burst,
                                (double)cfg->rate_bytes, byte_burst, len, now);
    }
    if (x->buckets == NULL) {
        x->buckets = xcalloc(2, sizeof(bucket_t));
    }
    return bucket_take(&x->buckets[0], cfg->rate_messages, burst, 1.0, now) &&
           bucket_take(&x->buckets[1], (double)cfg->rate_bytes, byte_burst, (double)len, now);
}

/*
 * One request. The rate is charged before parsing (every message counts),
 * but with rate.action "error" the verdict is given only once the request
 * parsed: PROTOCOL.md 3.5 reports a request's first failure, and rate_limited
 * comes after validation, so that it can echo the request's id as every
 * reply to a request with an id must (2.1). With "close" nothing is replied,
 * so the connection is closed before paying for the parse.
 */
static void handle_text(session_t *s, const uint8_t *data, size_t len)
{
    wsb_msg_t m;
    wsb_msg_error_t err;
    bool limited = !within_rate(s, len);
    if (limited && strcmp(s->ctx->cfg->rate_action, "close") == 0) {
        deliver_deferred(s);
        conn_ws_close(s->conn, WSB_WS_CLOSE_POLICY, "rate limit exceeded", true);
        return;
    }
    if (wsb_msg_parse((const char *)data, len, &m, &err) != 0) {
        deliver_deferred(s);
        reply_error(s, err.has_id, err.id, err.code, err.message);
        return;
    }
    if (m.type != WSB_MSG_PUBLISH || limited || !s->authed) {
        deliver_deferred(s);
    }
    if (limited) {
        reply_error(s, m.has_id, m.id, WSB_ERR_RATE_LIMITED,
                    "rate limit exceeded: request dropped");
        wsb_msg_free(&m);
        return;
    }
    if (!s->authed && m.type != WSB_MSG_AUTH) {
        reply_error(s, m.has_id, m.id, WSB_ERR_UNAUTHORIZED,
                    "authentication required: send {\"type\":\"auth\",\"token\":...} first");
        wsb_msg_free(&m);
        return;
    }
    switch (m.type) {
    case WSB_MSG_AUTH:
        op_auth(s, &m);
        break;
    case WSB_MSG_SUBSCRIBE:
        op_subscribe(s, &m);
        break;
    case WSB_MSG_UNSUBSCRIBE:
        op_unsubscribe(s, &m);
        break;
    case WSB_MSG_PUBLISH:
        op_publish(s, &m);
        break;
    case WSB_MSG_REQUEST:
        op_request(s, &m);
        break;
    case WSB_MSG_PRESENCE:
    case WSB_MSG_PRESENCE_STATS:
        op_presence(s, &m);
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

/* A complete frame arrived: the idle timeout (PROTOCOL.md 1) counts from
 * here, not from the last bytes read. */
static void frame_done(session_t *s)
{
    s->conn->last_rx_ms = ingress_now(s->ctx);
}

static int on_message_begin(void *ud, int opcode)
{
    session_t *s = ud;
    if (!is_open(s)) {
        return 0;
    }
    if (opcode == WSB_WS_OP_BINARY && !s->echo) {
        deliver_deferred(s);
        conn_ws_close(s->conn, WSB_WS_CLOSE_UNSUPPORTED, "binary messages are not supported",
                      false);
        return 0; /* keep parsing: the peer's close frame may follow */
    }
    s->msg_opcode = (uint8_t)opcode;
    s->msg_len = 0;
    s->pending = NULL;
    s->pending_len = 0;
    return 0;
}

/* The parser bounds a message by max_message_size (<= 1 GiB), so the
 * buffer never passes 1 GiB and its sizes fit the session's 32 bits. */
static void msg_append(session_t *s, const uint8_t *data, size_t len)
{
    size_t need = (size_t)s->msg_len + len;
    if (need > s->msg_cap) {
        size_t cap = s->msg_cap ? s->msg_cap : 1024;
        while (cap < need) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            abort(); /* not reached: bounded by max_message_size */
        }
        s->msg = xrealloc(s->msg, cap);
        s->msg_cap = (uint32_t)cap;
    }
    memcpy(s->msg + s->msg_len, data, len);
    s->msg_len = (uint32_t)need;
}

static int on_message_data(void *ud, const uint8_t *data, size_t len)
{
    session_t *s = ud;
    /* The parser advanced frame_pos before this call: equal to frame_len
     * means these bytes end the frame (a FIN frame also gets
     * on_message_end; an empty frame, only that). */
    if (s->parser.frame_pos == s->parser.frame_len) {
        frame_done(s);
    }
    if (!is_open(s)) {
        return 0;
    }
    /* The first slice of a message is borrowed from the read buffer; only a
     * message that spans reads or frames is copied (the bound is the parser's
     * max_message_size). */
    if (s->msg_len == 0 && s->pending == NULL) {
        s->pending = data;
        s->pending_len = (uint32_t)len; /* within max_message_size (<= 1 GiB) */
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
    frame_done(s);
    if (!is_open(s)) {
        return 0;
    }
    const uint8_t *data = s->pending ? s->pending : s->msg;
    size_t len = s->pending ? s->pending_len : s->msg_len;
    METRIC_ADD(s->ctx->metrics->messages_received, 1);
    /* permessage-deflate: RSV1 on the first frame (ws_deflate.c). */
    uint8_t *inflated = NULL;
    if (s->parser.msg_compressed) {
        deliver_deferred(s); /* a failed inflate closes */
        if (session_inflate(s, s->msg_opcode, data, len, &inflated, &len) != 0) {
            return 0; /* closed (1007 or 1009); the parser goes on to the peer's close */
        }
        data = inflated;
    }
    if (s->echo) {
        echo_message(s, s->msg_opcode, data, len);
    } else {
        handle_text(s, data, len);
    }
    free(inflated);
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
    frame_done(s);
    deliver_deferred(s);
    if (is_open(s)) {
        uint8_t frame[2 + WSB_WS_MAX_CONTROL_PAYLOAD];
        int n = wsb_ws_build_frame(frame, sizeof(frame), true, WSB_WS_OP_PONG, payload, len, NULL);
        assert(n > 0);
        conn_send_always(s->conn, frame_buf_copy(frame, (size_t)n));
    }
    return 0;
}

/* The answer to our keepalive ping: nothing to do but count the frame. */
static int on_pong(void *ud, const uint8_t *payload, size_t len)
{
    (void)payload;
    (void)len;
    frame_done(ud);
    return 0;
}

static int on_close(void *ud, int code, const uint8_t *reason, size_t len)
{
    (void)reason;
    (void)len;
    session_t *s = ud;
    conn_t *c = s->conn;
    deliver_deferred(s);
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
    .on_pong = on_pong,
    .on_close = on_close,
};

/* ---- delivery (subscriber.h) ------------------------------------------------------------ */

static bool same_message_topic_cb(const frame_buf_t *fb, void *user_data)
{
    const xmsg_t *m = user_data;
    const xmsg_t *x = fb->shared;
    return x != NULL && !x->event && x->topic_len == m->topic_len &&
           memcmp(x->topic, m->topic, x->topic_len) == 0;
}

/* A message of a conflated topic (topic rule conflate:true): the newest one
 * replaces the topic's frame still waiting unsent in the queue (at most one
 * per topic, since each delivery replaces the one before), so a subscriber
 * that falls behind gets the latest value, not a backlog. Such frames may use
 * up to SESSION_CONFLATE_FACTOR times max_outbound_bytes: the backlog is one
 * frame per topic, and only past that (a reader stalled on very many topics)
 * is the subscriber handled as a slow consumer. */
static subscriber_verdict_t deliver_conflated(session_t *s, frame_buf_t *fb, xmsg_t *m)
{
    conn_t *c = s->conn;
    if (outq_pending_bytes(&c->outq) > 0) {
        size_t dropped = outq_drop_last_matching(&c->outq, same_message_topic_cb, m);
        if (dropped > 0) {
            c->net->outbound_bytes -= dropped;
            METRIC_ADD(s->ctx->metrics->conflated, 1);
        }
    }
    if (conn_send_scaled(c, fb, 0, fb->len, SESSION_CONFLATE_FACTOR) == 0) {
        return SUBSCRIBER_DELIVERED;
    }
    return c->state == CONN_WS ? SUBSCRIBER_FULL : SUBSCRIBER_SKIPPED;
}

static subscriber_verdict_t deliver_cb(void *user_data, frame_buf_t *fb, xmsg_t *m)
{
    session_t *s = user_data;
    if (s->cl != NULL && chist_session_filter(s, m)) {
        return SUBSCRIBER_SKIPPED; /* held for a pending recovery, or a duplicate of its replay */
    }
    if (is_gapped(s, m)) {
        return SUBSCRIBER_SKIPPED; /* suspended until the client recovers (report_gap) */
    }
    fb = session_deflate_frame(s, fb); /* the shared compressed frame, if negotiated */
    if (m->conflate && !m->event) {
        return deliver_conflated(s, fb, m);
    }
    if (conn_send(s->conn, fb, 0, fb->len) == 0) {
        return SUBSCRIBER_DELIVERED;
    }
    /* A closing connection takes nothing more and needs no verdict. */
    return s->conn->state == CONN_WS ? SUBSCRIBER_FULL : SUBSCRIBER_SKIPPED;
}

/* A run of one topic's frames (core/subscriber.h) in one call, when
 * nothing here needs to see them one by one: no recovery pending (its
 * filter is per message), no suspended topic, no compression (one
 * compressed frame per message). */
static subscriber_verdict_t deliver_run_cb(void *user_data, const subscriber_run_t *run)
{
    session_t *s = user_data;
    if (s->cl != NULL || (s->extra != NULL && (s->extra->ngaps > 0 || s->extra->deflate != NULL))) {
        return SUBSCRIBER_PER_FRAME;
    }
    if (conn_send_ranges(s->conn, run->fb, run->len, run->nsegs, run->bytes) == 0) {
        return SUBSCRIBER_DELIVERED;
    }
    return s->conn->state == CONN_WS ? SUBSCRIBER_FULL : SUBSCRIBER_SKIPPED;
}

static int gap_cb(void *user_data, const xmsg_t *m)
{
    return report_gap(user_data, m);
}

static void close_cb(void *user_data, int code, const char *why)
{
    session_t *s = user_data;
    conn_ws_close(s->conn, code, why, true);
}

static const subscriber_ops_t subscriber_ops = {
    .deliver_cb = deliver_cb,
    .deliver_run_cb = deliver_run_cb,
    .gap_cb = gap_cb,
    .close_cb = close_cb,
};

/* ---- public ------------------------------------------------------------------------------ */

session_t *session_new(conn_t *c, bool echo, wsb_jwt_claims_t *claims)
{
    ingress_ctx_t *srv = ingress_ctx(c);
    session_t *s = xcalloc(1, sizeof(*s));
    subscriber_init(&s->sub, &subscriber_ops, s);
    s->conn = c;
    s->ctx = srv;
    s->echo = echo;
    s->subs = &s->sub0;
    s->subs_cap = 1;
    if (claims != NULL) {
        set_claims(s, claims);
    } else if (!srv->cfg->auth_required) {
        s->authed = true;
        s->perms = &srv->auth->anonymous;
    } else {
        s->perms = &no_perms;
        /* No permissions until an auth message brings a token. */
        s->auth_deadline_ms = ingress_now(srv) + srv->cfg->auth_timeout_ms;
    }
    wsb_ws_parser_init(&s->parser, WSB_WS_ROLE_SERVER, srv->cfg->max_message_size,
                       &parser_callbacks, s);
    /* One per connection, whoever the user: the id is formatted from it
     * when needed (core_client_id), not kept. */
    s->sub.client_no = ++srv->next_client_seq;
    s->sub.connected_s = (uint32_t)(ingress_now(srv) / 1000);
    if (!echo) {
        char id[CORE_CLIENT_ID_MAX + 1];
        wsb_welcome_t w = {
            .client_id = core_client_id(srv->core, s->sub.client_no, id),
            .user = session_user(s),
            .node_id = srv->node_id,
            .version = WSB_VERSION,
            .max_message_size = srv->cfg->max_message_size,
            .max_subscriptions = srv->cfg->max_subscriptions,
            .ping_interval_ms = (uint32_t)srv->cfg->ping_interval_ms,
        };
        size_t len = 0;
        reply(s, wsb_msg_build_welcome(&w, FRAME_BUF_HEADROOM, &len), &len);
        if (s->authed) {
            announce(s);
        }
    }
    return s;
}

struct user_entry_s *session_user_acquire(auth_t *auth, const wsb_jwt_claims_t *claims,
                                          bool *refused)
{
    user_limits_t *users = auth->users;
    *refused = false;
    if (users == NULL || claims == NULL || claims->sub.len == 0) {
        return NULL;
    }
    user_entry_t *e = user_limits_acquire(users, claims->sub);
    *refused = e == NULL;
    return e;
}

wsb_str_t session_user(const session_t *s)
{
    const char *user = s->sub.user;
    return user != NULL ? (wsb_str_t){user, strlen(user)} : WSB_STR_NULL;
}

/* An idle subscribed connection's share of memory (README "Performance"):
 * the session must stay within a 288-byte malloc chunk on 64-bit targets. */
_Static_assert(sizeof(void *) != 8 || sizeof(session_t) <= 280,
               "session_t outgrew its 288-byte malloc chunk: move rarely used fields "
               "to session_extra_t");

session_extra_t *session_extra(session_t *s)
{
    if (s->extra == NULL) {
        s->extra = xcalloc(1, sizeof(*s->extra));
    }
    return s->extra;
}

void session_feed(session_t *s, uint8_t *data, size_t len)
{
    conn_t *c = s->conn;
    int rc = wsb_ws_parser_feed(&s->parser, data, len, NULL);
    deliver_deferred(s);
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

void session_free(session_t *s)
{
    session_extra_t *x = s->extra;
    if (x != NULL) {
        request_cancel_all(&x->requests);
    }
    chist_session_free(s);
    for (uint32_t i = 0; i < s->nsubs; i++) {
        pubsub_unsubscribe(s->ctx->core, s->subs[i]);
    }
    if (x != NULL && x->uentry != NULL) {
        user_limits_release(s->ctx->auth->users, x->uentry);
        x->uentry = NULL;
    }
    if (s->announced) {
        /* After the unsubscribes: the session does not hear of its own end. */
        conn_event(s, false);
    }
    wsb_ws_parser_release(&s->parser);
    session_deflate_free(s);
    if (x != NULL) {
        for (uint32_t i = 0; i < x->ngaps; i++) {
            free(x->gaps[i].topic);
        }
        free(x->gaps);
        free(x->buckets);
        free(x);
    }
    if (s->subs != &s->sub0) {
        free(s->subs);
    }
    free(s->msg);
    free_creds(s);
    free(s->sub.user);
    free(s);
}
