/*
 * chist_session.c - the WebSocket session's side of clustered history
 * (core/chist.h, cluster/chist_redis.h):
 * publishes whose seq Redis assigns, subscribes whose position and replay
 * Redis reads, and the order of the replies around them.
 *
 * A topic is "clustered" when redis.url is set and a history rule matches
 * it. Its seq comes from the publish script's reply, so a publish is
 * answered asynchronously: the request becomes an chist_op_t that the bridge
 * thread sends (EVALSHA) and hands back through the worker's queue
 * (chist_complete -> chist_drain). The connection goes on being read and
 * served meanwhile.
 *
 * Reply order (PROTOCOL.md 2.1): while a session has an op in flight, every
 * later reply (ack, error, pong, gap) is held behind it, in a FIFO; when the
 * op at the head completes, the FIFO is sent up to the next op still in
 * flight. Per-publisher order: one worker pushes a connection's ops in
 * request order into one queue; the bridge sends them in that order on one
 * Redis connection; Redis runs the scripts (seq, XADD, PUBLISH) in that
 * order; every node receives the PUBLISHes in that order on its subscribed
 * connection and hands them to its workers in that order.
 *
 * Delivery: a clustered message reaches every subscriber, on every node
 * including the one it was published on, through Redis pub/sub (bridge ->
 * core_inject_remote), so all subscribers of a node see one order, seq's.
 *
 * Switch-over of a subscribe: the subscription is in the trie before the
 * read is sent, and the bridge sends the read only once Redis has confirmed
 * the channel's SUBSCRIBE, so every message published after the read ran
 * arrives live. Live messages of the topic that arrive while the read is
 * pending are held in the op; when it completes the session sends the ack,
 * the replay (seq <= position), then the held live messages with seq >
 * position. Because a message published before the read may still be on
 * its way through the subscribed connection afterwards, the session keeps
 * the position as a floor: a live message of that epoch with seq <= floor
 * is dropped (a duplicate); the first one above it ends the floor.
 *
 * Clustered streams (core/chist_stream.h) use the same mechanism with a
 * pattern instead of one topic: a stream read (op->stream set) holds the
 * live messages whose topic matches the subscription, and its floor drops
 * the live messages of the stream's epoch that match it with seq <= the
 * position (one seq for all the stream's topics, delivered in seq order).
 */
#include "core/chist_stream.h"
#include "ingress/ingress.h"
#include "ingress/ws_session.h"
#include "net/conn.h"

#include <stdlib.h>
#include <string.h>

/* Live messages one pending read may hold; beyond, the session is closed
 * as a slow consumer (1013) when the read completes. */
#define CLUSTER_MAX_HELD_LIVE 4096

/* A reply waiting behind an op, or the op itself. */
typedef struct held_s {
    struct held_s *next;
    frame_buf_t *fb; /* a ready reply, or NULL */
    chist_op_t *op;  /* an op in flight or done, or NULL */
} held_t;

/* After a switch-over: live messages of `topic` in `epoch` up to `seq` are
 * duplicates of the replay (or older than the position in the ack). */
typedef struct {
    char *topic; /* a stream's floor: the subscription (a topic or a pattern) */
    char epoch[XMSG_EPOCH_MAX + 1];
    uint64_t seq;
    bool stream;
} floor_t;

struct chist_sess_s {
    held_t *head, *tail;
    floor_t *floors;
    uint32_t nfloors;
};

/* ---- replies ------------------------------------------------------------------------------ */

static struct chist_sess_s *state(session_t *s)
{
    if (s->cl == NULL) {
        s->cl = xcalloc(1, sizeof(struct chist_sess_s));
    }
    return s->cl;
}

static void push_held(session_t *s, frame_buf_t *fb, chist_op_t *op)
{
    struct chist_sess_s *cl = state(s);
    held_t *h = xmalloc(sizeof(*h));
    h->next = NULL;
    h->fb = fb;
    h->op = op;
    if (cl->tail != NULL) {
        cl->tail->next = h;
    } else {
        cl->head = h;
    }
    cl->tail = h;
}

bool chist_session_hold(session_t *s, frame_buf_t *fb)
{
    if (s->cl == NULL || s->cl->head == NULL) {
        return false;
    }
    push_held(s, fb, NULL);
    return true;
}

static void send_reply(session_t *s, uint8_t *raw, size_t len)
{
    conn_send_always(s->conn, frame_buf_adopt(raw, len));
}

static void send_error(session_t *s, const chist_op_t *op, const char *code, const char *message)
{
    size_t len = 0;
    metrics_count_error(s->ctx->metrics, code);
    uint8_t *raw = wsb_msg_build_error(op->has_id, op->id, code, message, FRAME_BUF_HEADROOM, &len);
    send_reply(s, raw, len);
}

static void send_ack(session_t *s, const chist_op_t *op, bool has_seq, int recovered,
                     const char *epoch)
{
    if (!op->has_id) {
        return;
    }
    /* A stream's ack names it, as on one node (PROTOCOL.md 3.1b). */
    bool in_stream = op->kind == CHIST_READ && op->stream[0] != '\0';
    wsb_ack_t ack = {.id = op->id,
                     .has_seq = has_seq,
                     .seq = op->seq,
                     .recovered = recovered,
                     .epoch = {epoch, epoch != NULL ? strlen(epoch) : 0},
                     .stream = {in_stream ? op->stream : NULL, in_stream ? strlen(op->stream) : 0}};
    size_t len = 0;
    uint8_t *raw = wsb_msg_build_ack(&ack, FRAME_BUF_HEADROOM, &len);
    send_reply(s, raw, len);
}

/* A stream's loss found by a `since` read (trimmed, another epoch, or more
 * than max_bytes): announced after the ack, before what is left of it is
 * replayed, as on one node (PROTOCOL.md 3.1b, 13.1a). */
static void send_stream_gap(session_t *s, const chist_op_t *op)
{
    wsb_gap_t gap = {.topic = {op->topic, op->topic_len},
                     .stream = {op->stream, strlen(op->stream)},
                     .epoch = {op->epoch, strlen(op->epoch)},
                     .seq = op->gap_seq,
                     .has_to = true,
                     .to = op->gap_to};
    size_t len = 0;
    uint8_t *raw = wsb_msg_build_gap_ex(&gap, FRAME_BUF_HEADROOM, &len);
    send_reply(s, raw, len);
}

/* The floor named `name` (a topic, or a stream subscription when `stream`). */
static int find_floor(const struct chist_sess_s *cl, const char *name, size_t len, bool stream)
{
    for (uint32_t i = 0; i < cl->nfloors; i++) {
        if (cl->floors[i].stream == stream && strlen(cl->floors[i].topic) == len &&
            memcmp(cl->floors[i].topic, name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void drop_floor(struct chist_sess_s *cl, uint32_t i)
{
    free(cl->floors[i].topic);
    cl->floors[i] = cl->floors[--cl->nfloors];
}

/* True when floor `f` applies to live message `m`: its topic's, or a
 * stream subscription's that matches its topic in the same epoch. */
static bool floor_applies(const floor_t *f, const xmsg_t *m)
{
    return f->stream
               ? strcmp(f->epoch, m->epoch) == 0 &&
                     wsb_topic_matches(f->topic, strlen(f->topic), m->topic, m->topic_len)
               : strlen(f->topic) == m->topic_len && memcmp(f->topic, m->topic, m->topic_len) == 0;
}

/* Live message `m` goes past the floors that apply to it: those it is above
 * end (seq order: no duplicate of them can follow). True when it is at or
 * below one of them: a duplicate of a replay, or older than an acked
 * position. */
static bool pass_floors(struct chist_sess_s *cl, const xmsg_t *m)
{
    bool dup = false;
    uint32_t i = 0;
    while (i < cl->nfloors) {
        const floor_t *f = &cl->floors[i];
        if (!floor_applies(f, m)) {
            i++;
        } else if (strcmp(f->epoch, m->epoch) == 0 && m->seq <= f->seq) {
            dup = true;
            i++;
        } else {
            drop_floor(cl, i);
        }
    }
    return dup;
}

static void set_floor_of(session_t *s, const char *topic, size_t len, bool stream,
                         const char *epoch, uint64_t seq)
{
    struct chist_sess_s *cl = state(s);
    int i = find_floor(cl, topic, len, stream);
    if (i < 0) {
        cl->floors = xrealloc(cl->floors, sizeof(floor_t) * (cl->nfloors + 1));
        i = (int)cl->nfloors++;
        cl->floors[i].topic = xmalloc(len + 1);
        memcpy(cl->floors[i].topic, topic, len);
        cl->floors[i].topic[len] = '\0';
        cl->floors[i].stream = stream;
    }
    (void)snprintf(cl->floors[i].epoch, sizeof cl->floors[i].epoch, "%s", epoch);
    cl->floors[i].seq = seq;
}

static void set_floor(session_t *s, const chist_op_t *op)
{
    set_floor_of(s, op->topic, op->topic_len, op->stream[0] != '\0', op->epoch, op->seq);
}

/* The replayed position of `m`'s topic in a pattern read, or NULL. */
static const chist_pos_t *pattern_pos(const chist_op_t *op, const xmsg_t *m)
{
    for (size_t i = 0; i < op->npos; i++) {
        if (strlen(op->pos[i].topic) == m->topic_len &&
            memcmp(op->pos[i].topic, m->topic, m->topic_len) == 0) {
            return &op->pos[i];
        }
    }
    return NULL;
}

/* A finished pattern read at the head of the FIFO: the ack (no position),
 * each topic's replay (at most its rule's size), the floors, then the held
 * live messages newer than their topic's replay. Too many topics: the
 * error, and the subscription it added is gone. */
static void emit_pattern_read(session_t *s, chist_op_t *op)
{
    ingress_ctx_t *srv = s->ctx;
    if (op->status == 0 && op->over_limit) {
        char why[128];
        (void)snprintf(why, sizeof(why),
                       "history on a pattern: it matches more than %u topics with history",
                       op->cap);
        send_error(s, op, WSB_ERR_LIMIT, why);
        if (op->new_sub) {
            session_remove_pattern(s, (wsb_str_t){op->topic, op->topic_len});
        }
        return;
    }
    send_ack(s, op, false, -1, NULL);
    const history_rules_t *rules = srv->core->core->history_rules;
    size_t replayed = 0;
    for (size_t i = 0; op->status == 0 && i < op->nmsgs; i++) {
        xmsg_t *m = op->msgs[i];
        const chist_pos_t *p = pattern_pos(op, m);
        int rule =
            rules != NULL ? history_rules_match(rules, (wsb_str_t){m->topic, m->topic_len}) : -1;
        /* Redis may keep a little more than the rule's size (MAXLEN ~). */
        if (rule < 0 || p == NULL || p->seq - m->seq >= rules->rules[rule].size) {
            continue;
        }
        conn_send_always(s->conn, xmsg_replay_buf(m));
        replayed++;
    }
    METRIC_ADD(srv->metrics->history_replayed, replayed);
    for (size_t i = 0; op->status == 0 && i < op->npos; i++) {
        const chist_pos_t *p = &op->pos[i];
        set_floor_of(s, p->topic, strlen(p->topic), false, p->epoch, p->seq);
    }
    if (op->live_overflow) {
        conn_ws_close(s->conn, WSB_WS_CLOSE_TRY_AGAIN, "slow consumer", false);
        return;
    }
    for (size_t i = 0; i < op->nlive; i++) {
        xmsg_t *m = op->live[i];
        const chist_pos_t *p = op->status == 0 ? pattern_pos(op, m) : NULL;
        if (p == NULL || strcmp(m->epoch, p->epoch) != 0 || m->seq > p->seq) {
            conn_send_always(s->conn, xmsg_replay_buf(m));
            if (s->cl != NULL) {
                (void)pass_floors(s->cl, m); /* seq order: no duplicate can follow */
            }
        }
    }
}

/* A finished read at the head of the FIFO: ack, replay, held live messages. */
static void emit_read(session_t *s, chist_op_t *op)
{
    ingress_ctx_t *srv = s->ctx;
    bool since = op->mode == CHIST_READ_SINCE;
    if (op->status != 0) {
        /* Redis unavailable: no position to give, nothing replayed. */
        if (since) {
            METRIC_ADD(srv->metrics->history_not_recovered, 1);
        }
        send_ack(s, op, false, since ? 0 : -1, NULL);
    } else {
        if (since) {
            if (op->recovered == 1) {
                METRIC_ADD(srv->metrics->history_recovered, 1);
            } else {
                METRIC_ADD(srv->metrics->history_not_recovered, 1);
            }
        }
        send_ack(s, op, true, op->recovered, op->epoch);
        if (op->gap) {
            send_stream_gap(s, op);
        }
        for (size_t i = 0; i < op->nmsgs; i++) {
            conn_send_always(s->conn, xmsg_replay_buf(op->msgs[i]));
        }
        METRIC_ADD(srv->metrics->history_replayed, op->nmsgs);
        set_floor(s, op);
    }
    if (op->live_overflow) {
        conn_ws_close(s->conn, WSB_WS_CLOSE_TRY_AGAIN, "slow consumer", false);
        return;
    }
    for (size_t i = 0; i < op->nlive; i++) {
        xmsg_t *m = op->live[i];
        if (op->status != 0 || strcmp(m->epoch, op->epoch) != 0 || m->seq > op->seq) {
            frame_buf_t *fb = xmsg_replay_buf(m);
            conn_send_always(s->conn, fb);
            if (s->cl != NULL) {
                (void)pass_floors(s->cl, m); /* seq order: no duplicate can follow */
            }
        }
    }
}

static void emit_publish(session_t *s, chist_op_t *op)
{
    if (op->status != 0) {
        send_error(s, op, WSB_ERR_UNAVAILABLE,
                   "the topic is numbered in Redis (clustered history or stream) and Redis is "
                   "unavailable: not published");
        return;
    }
    send_ack(s, op, true, -1, NULL);
}

/* Sends the FIFO from its head up to the first op still in flight. */
static void flush_held(session_t *s)
{
    struct chist_sess_s *cl = s->cl;
    while (cl->head != NULL && (cl->head->op == NULL || cl->head->op->done)) {
        held_t *h = cl->head;
        cl->head = h->next;
        if (cl->head == NULL) {
            cl->tail = NULL;
        }
        /* An entry holds either a reply (fb) or an op, never both. */
        if (h->op == NULL) {
            conn_send_always(s->conn, h->fb);
        } else if (h->op->kind == CHIST_READ && h->op->mode == CHIST_READ_PATTERN) {
            emit_pattern_read(s, h->op);
            chist_op_free(h->op);
        } else if (h->op->kind == CHIST_READ) {
            emit_read(s, h->op);
            chist_op_free(h->op);
        } else {
            emit_publish(s, h->op);
            chist_op_free(h->op);
        }
        free(h);
    }
}

void chist_session_op_done(chist_op_t *op)
{
    session_t *s = op->owner;
    op->done = true;
    flush_held(s);
}

/* ---- operations ---------------------------------------------------------------------------- */

static void submit(session_t *s, chist_op_t *op)
{
    op->owner = s;
    op->done_cb = chist_session_op_done;
    push_held(s, NULL, op);
    if (chist_submit(s->ctx->core, op) != 0) {
        op->status = -1;
        op->done = true;
        flush_held(s);
    }
}

void chist_session_hold_op(session_t *s, chist_op_t *op)
{
    push_held(s, NULL, op);
}

/* `history` N on a pattern: the last N of every matching topic Redis knows,
 * at most max_history_topics_per_subscribe of them. */
static void subscribe_pattern(session_t *s, const wsb_msg_t *m, bool new_sub)
{
    core_worker_t *w = s->ctx->core;
    chist_op_t *op = chist_op_alloc(CHIST_READ, m->topic, WSB_STR_NULL);
    op->worker = w;
    op->has_id = m->has_id;
    op->id = m->id;
    op->mode = CHIST_READ_PATTERN;
    op->last_n = m->history > UINT32_MAX ? UINT32_MAX : (uint32_t)m->history;
    op->cap = w->core->max_history_topics_per_subscribe;
    op->new_sub = new_sub;
    submit(s, op);
}

static void subscribe_read(session_t *s, const wsb_msg_t *m, chist_op_t *op);

void chist_session_subscribe(session_t *s, const wsb_msg_t *m, int rule, bool new_sub)
{
    if (wsb_topic_is_pattern(m->topic.p, m->topic.len)) {
        subscribe_pattern(s, m, new_sub);
        return;
    }
    subscribe_read(s, m, chist_op_new(s->ctx->core, CHIST_READ, m->topic, WSB_STR_NULL, rule));
}

void chist_session_subscribe_stream(session_t *s, const wsb_msg_t *m, const topic_rule_t *rule)
{
    subscribe_read(s, m,
                   chist_stream_op_new(s->ctx->core, CHIST_READ, m->topic, WSB_STR_NULL, rule));
}

/* A read of the subscription `m` (mode by its since / history), submitted. */
static void subscribe_read(session_t *s, const wsb_msg_t *m, chist_op_t *op)
{
    op->has_id = m->has_id;
    op->id = m->id;
    op->mode = CHIST_READ_POSITION;
    if (m->has_since) {
        op->mode = CHIST_READ_SINCE;
        op->since_seq = m->since_seq;
        size_t n =
            m->since_epoch.len < CHIST_SINCE_EPOCH_MAX ? m->since_epoch.len : CHIST_SINCE_EPOCH_MAX;
        memcpy(op->since_epoch, m->since_epoch.p, n);
        op->since_epoch[n] = '\0';
    } else if (m->has_history && m->history > 0) {
        op->mode = CHIST_READ_LAST;
        op->last_n = m->history > UINT32_MAX ? UINT32_MAX : (uint32_t)m->history;
    }
    submit(s, op);
}

bool chist_session_filter(session_t *s, xmsg_t *m)
{
    struct chist_sess_s *cl = s->cl;
    if (cl == NULL || m->epoch[0] == '\0') {
        return false;
    }
    bool held = false;
    for (held_t *h = cl->head; h != NULL; h = h->next) {
        chist_op_t *op = h->op;
        bool of_op =
            op != NULL && op->kind == CHIST_READ &&
            (op->mode == CHIST_READ_PATTERN || op->stream[0] != '\0'
                 ? wsb_topic_matches(op->topic, op->topic_len, m->topic, m->topic_len)
                 : op->topic_len == m->topic_len && memcmp(op->topic, m->topic, m->topic_len) == 0);
        if (of_op) {
            /* The read of this subscription is not answered yet. */
            if (op->nlive >= CLUSTER_MAX_HELD_LIVE) {
                op->live_overflow = true; /* closed as a slow consumer when it completes */
            } else {
                if (op->nlive == op->live_cap) {
                    op->live_cap = op->live_cap ? op->live_cap * 2 : 8;
                    op->live = xrealloc(op->live, sizeof(xmsg_t *) * op->live_cap);
                }
                xmsg_ref(m);
                op->live[op->nlive++] = m;
            }
            held = true;
            break;
        }
    }
    if (held) {
        return true;
    }
    return cl->nfloors > 0 && pass_floors(cl, m);
}

void chist_session_free(session_t *s)
{
    struct chist_sess_s *cl = s->cl;
    if (cl == NULL) {
        return;
    }
    held_t *h = cl->head;
    while (h != NULL) {
        held_t *next = h->next;
        if (h->fb != NULL) {
            frame_buf_unref(h->fb);
        } else if (h->op->done) {
            chist_op_free(h->op);
        } else {
            h->op->owner = NULL; /* freed when it comes back (chist_drain) */
        }
        free(h);
        h = next;
    }
    for (uint32_t i = 0; i < cl->nfloors; i++) {
        free(cl->floors[i].topic);
    }
    free(cl->floors);
    free(cl);
    s->cl = NULL;
}
