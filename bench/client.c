/*
 * client.c - one wsbench worker: its libuv loop and its connections.
 *
 * Connection life: IDLE -> CONNECTING (TCP) -> HANDSHAKE (upgrade request
 * sent, waiting for 101) -> SUBSCRIBING (subscribers: subscribe sent, waiting
 * for its ack) -> READY -> CLOSED. Publishers go from HANDSHAKE to READY.
 *
 * Memory per connection is the uv_tcp_t, the protocol's client-role frame
 * parser and a few words; the handshake buffer exists only during the upgrade
 * and a message's first bytes are copied only when that message is split
 * across reads before its timestamp. Reads go to one buffer per worker.
 *
 * A delivery costs the parser (header, UTF-8 check) plus a prefix compare and
 * a short substring search for "data":"t=, no JSON parse and no allocation.
 *
 * wss:// (b->tls_ctx set): each connection has a wsb_tls_t (the C client's
 * TLS engine, OpenSSL over memory BIOs) between the socket and everything
 * above. The TLS handshake runs in C_HANDSHAKE before the upgrade request is
 * sent; reads feed the ciphertext in and decrypt into the worker's read
 * buffer (free again once OpenSSL has copied the ciphertext); every write
 * (upgrade, subscribe, a publish batch, pongs) is encrypted as one burst.
 *
 * nats:// (o->nats, the peer mode): the same run against a NATS server. A
 * subscriber sends CONNECT, SUB and PING and is ready at the PONG; a
 * publisher sends CONNECT and PING and is ready at its PONG; every PUB is
 * followed by a PING whose PONG is the publish's ack (the server handles a
 * connection's commands in order, so the PONG means the message was handed
 * to every subscriber's connection, like wsbroker's ack). nats_wire.c reads
 * MSG lines and the payload's timestamp. nats+tls://: the server's INFO
 * arrives in plaintext, then the TLS handshake, then CONNECT over TLS.
 */
#include "deflate_rx.h"
#include "nats_wire.h"
#include "payload.h"
#include "wsb/topic.h"
#include "wsbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HS_CAP   1024 /* the broker's 101 response is about 130 bytes */
#define HEAD_CAP 384u /* type, a topic of up to 256 bytes, seq, "data":"t=…; */
#define TICK_MS  1
/* A publish batch is at most this many bytes (or one frame). */
#define BATCH_BYTES ((size_t)1 << 20)
/* Parser callbacks return this to stop parsing a connection that is closing. */
#define STOP 1

enum { C_IDLE = 0, C_CONNECTING, C_HANDSHAKE, C_SUBSCRIBING, C_READY, C_CLOSED };
enum { F_CONNECT, F_HANDSHAKE, F_SUBSCRIBE, F_TIMEOUT };

typedef struct {
    uv_connect_t req;
    uint32_t len;
    char buf[HS_CAP];
} handshake_t;

struct pub_s {
    uint64_t sent;  /* publishes with ids 1..sent are written */
    uint64_t acked; /* replies for ids 1..acked have arrived */
    uint64_t quota; /* messages this publisher sends; 0 = until the deadline */
    bool done;      /* finished and every reply arrived (or the connection is gone) */
    bool want_pump; /* a reply freed window space during this read */
};

struct bconn_s {
    uv_tcp_t tcp;
    wsb_ws_parser_t parser;
    bthread_t *t;
    handshake_t *hs; /* during the upgrade only */
    pub_t *pub;      /* publishers only */
    uint8_t *head;   /* the current message's first bytes, when split across reads */
    uint64_t value;  /* the timestamp (message) or id (ack, error) of the current message */
    uint32_t index;  /* global subscriber or publisher number */
    uint16_t head_len;
    uint8_t state;
    uint8_t kind;   /* msg_kind_t of the current message */
    bool resolved;  /* kind and value of the current message are settled */
    bool has_value; /* value was found */
    bool closing;
    bool tls_open;   /* wss://: the TLS handshake has completed */
    bool churn_busy; /* --churn: an unsubscribe or subscribe awaits its reply */
    bool churn_off;  /* --churn: unsubscribed now */
    bool stalled;    /* --stall: reading is stopped while publishing lasts */
    uint8_t mask[4];
    wsb_tls_t *tls;  /* wss:// only */
    nats_rx_t *nats; /* nats:// only */
    deflate_rx_t z;  /* --deflate: the compressed message arriving */
};

typedef struct {
    uv_write_t req;
    size_t len;
    uint8_t data[];
} wbuf_t;

static const wsb_ws_parser_callbacks_t parser_cb;

/* ---- helpers ----------------------------------------------------------------------------- */

static uint32_t topic_of(const bench_t *b, uint32_t pub_index, uint64_t j)
{
    /* Round robin over all publishers: the k-th message overall goes to k % topics. */
    return (uint32_t)((j * b->o.publishers + pub_index) % b->o.topics);
}

static void on_closed(uv_handle_t *h)
{
    bconn_t *c = h->data;
    free(c->hs);
    c->hs = NULL;
    free(c->head);
    c->head = NULL;
    deflate_rx_free(&c->z);
    wsb_tls_free(c->tls);
    c->tls = NULL;
    free(c->nats);
    c->nats = NULL;
    c->state = C_CLOSED;
}

static void conn_close(bconn_t *c)
{
    if (c->closing || c->state == C_IDLE || c->state == C_CLOSED) {
        return;
    }
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void pub_finish(bconn_t *c)
{
    if (c->pub != NULL && !c->pub->done) {
        c->pub->done = true;
        STAT_ADD(c->t->st.pubs_done, 1);
    }
}

/* A connection that was not ready yet failed. */
static void conn_fail(bconn_t *c, int why)
{
    bthread_t *t = c->t;
    if (c->closing || c->state >= C_READY) {
        return;
    }
    t->in_progress--;
    switch (why) {
    case F_CONNECT:
        STAT_ADD(t->st.fail_connect, 1);
        break;
    case F_HANDSHAKE:
        STAT_ADD(t->st.fail_handshake, 1);
        break;
    case F_SUBSCRIBE:
        STAT_ADD(t->st.fail_subscribe, 1);
        break;
    default:
        STAT_ADD(t->st.fail_timeout, 1);
        break;
    }
    if (c->state == C_IDLE) {
        c->state = C_CLOSED; /* never started: no handle to close */
        return;
    }
    conn_close(c);
}

/* The broker closed (or broke) a connection. */
static void conn_lost(bconn_t *c)
{
    if (c->closing) {
        return;
    }
    if (c->state < C_READY) {
        conn_fail(c, c->state == C_CONNECTING  ? F_CONNECT
                     : c->state == C_HANDSHAKE ? F_HANDSHAKE
                                               : F_SUBSCRIBE);
        return;
    }
    if (!c->t->stopping) {
        STAT_ADD(c->t->st.disconnects, 1);
    }
    pub_finish(c);
    conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    wbuf_t *w = (wbuf_t *)(void *)req;
    bconn_t *c = req->handle->data;
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        conn_lost(c);
    }
}

/* Writes and frees `w` (w->len bytes) as they are. */
static void write_raw(bconn_t *c, wbuf_t *w)
{
    if (c->closing) {
        free(w);
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        free(w);
        conn_lost(c);
    }
}

static wbuf_t *wbuf_new(size_t cap)
{
    wbuf_t *w = malloc(sizeof(*w) + cap);
    if (w != NULL) {
        w->len = 0;
    }
    return w;
}

/* wss://: writes the ciphertext OpenSSL has produced (records, handshake
 * messages, alerts) in one write. */
static void tls_flush(bconn_t *c)
{
    size_t n = wsb_tls_pending(c->tls);
    if (n == 0 || c->closing) {
        return;
    }
    wbuf_t *w = wbuf_new(n);
    if (w == NULL) {
        conn_lost(c);
        return;
    }
    w->len = wsb_tls_take(c->tls, w->data, n);
    write_raw(c, w);
}

/* Writes and frees `w`: as is for ws://, encrypted for wss://. */
static void send_wbuf(bconn_t *c, wbuf_t *w)
{
    if (c->tls == NULL || c->closing) {
        write_raw(c, w);
        return;
    }
    int rc = wsb_tls_write(c->tls, w->data, w->len);
    free(w);
    if (rc != 0) {
        STAT_ADD(c->t->st.errors, 1);
        conn_lost(c);
        return;
    }
    tls_flush(c);
}

/* Sends one masked frame. */
static void send_frame(bconn_t *c, int opcode, const void *payload, size_t len)
{
    size_t cap = len + WSB_WS_MAX_HEADER_LEN;
    wbuf_t *w = wbuf_new(cap);
    if (w == NULL) {
        conn_lost(c);
        return;
    }
    int n = wsb_ws_build_frame(w->data, cap, true, opcode, payload, len, c->mask);
    if (n < 0) {
        free(w);
        conn_lost(c);
        return;
    }
    w->len = (size_t)n;
    send_wbuf(c, w);
}

/* ---- publishing -------------------------------------------------------------------------- */

/* Deliveries the whole run may still have in flight before publishers wait. */
static int64_t lag_room(const bench_t *b)
{
    if (b->lag_limit == 0) {
        return INT64_MAX;
    }
    uint64_t sent = 0;
    uint64_t received = 0;
    for (uint32_t i = 0; i < b->nthreads; i++) {
        sent += STAT_GET(b->threads[i]->st.expected_sent);
        received += STAT_GET(b->threads[i]->st.received);
        received += STAT_GET(b->threads[i]->st.listener_events);
    }
    received -= b->ramp_events;
    uint64_t outstanding = sent > received ? sent - received : 0;
    return (int64_t)b->lag_limit - (int64_t)outstanding;
}

/* Sends what the window, the rate, the quota and the lag bound allow, as one write. */
static void pub_pump(bconn_t *c, uint64_t now)
{
    bthread_t *t = c->t;
    const bench_t *b = t->b;
    const opts_t *o = &b->o;
    pub_t *p = c->pub;
    if (c->state != C_READY || c->closing || p->done) {
        return;
    }
    if (now >= b->run_deadline_ns || (p->quota > 0 && p->sent >= p->quota)) {
        if (p->acked == p->sent) {
            pub_finish(c);
        }
        return;
    }
    uint64_t n = o->inflight - (p->sent - p->acked);
    if (o->rate > 0) {
        double per_pub = o->rate / (double)o->publishers;
        uint64_t due = (uint64_t)((double)(now - b->run_start_ns) * per_pub / 1e9) + 1;
        n = due > p->sent ? (n < due - p->sent ? n : due - p->sent) : 0;
    }
    if (p->quota > 0 && n > p->quota - p->sent) {
        n = p->quota - p->sent;
    }
    if (n == 0) {
        return;
    }
    int64_t room = lag_room(b);
    if (room <= 0) {
        return;
    }
    size_t frame_max =
        o->nats ? nats_pub_max(WSB_TOPIC_MAX_LEN, o->payload)
                : WSB_WS_MAX_HEADER_LEN + payload_publish_max(WSB_TOPIC_MAX_LEN, o->payload);
    if (n * frame_max > BATCH_BYTES) {
        n = BATCH_BYTES / frame_max > 0 ? BATCH_BYTES / frame_max : 1;
    }
    wbuf_t *w = wbuf_new(n * frame_max);
    if (w == NULL) {
        conn_lost(c);
        return;
    }
    uint64_t expected = 0;
    uint64_t written = 0;
    for (uint64_t i = 0; i < n && room > 0; i++) {
        uint32_t k = topic_of(b, c->index, p->sent);
        uint8_t *out = w->data + w->len;
        if (o->nats) {
            size_t len = nats_pub((char *)out, frame_max, b->topic_buf + b->topic_off[k],
                                  b->topic_len[k], o->payload, now, true);
            if (len == 0) {
                break; /* cannot happen: frame_max is an upper bound */
            }
            w->len += len;
            p->sent++;
            written++;
            expected += b->match[k];
            room -= (int64_t)b->match[k];
            continue;
        }
        /* The JSON goes after the longest possible header; the builder moves it. */
        char *json = (char *)out + WSB_WS_MAX_HEADER_LEN;
        size_t jlen = payload_publish_json(json, frame_max - WSB_WS_MAX_HEADER_LEN,
                                           b->topic_buf + b->topic_off[k], b->topic_len[k],
                                           o->payload, now, p->sent + 1);
        if (o->filler_market) {
            deflate_rx_fill_market(json, jlen, p->sent + 1);
        }
        int flen = wsb_ws_build_frame(out, frame_max, true, WSB_WS_OP_TEXT, (uint8_t *)json, jlen,
                                      c->mask);
        if (jlen == 0 || flen < 0) {
            break; /* cannot happen: frame_max is an upper bound */
        }
        w->len += (size_t)flen;
        p->sent++;
        written++;
        expected += b->match[k];
        room -= (int64_t)b->match[k];
    }
    STAT_ADD(t->st.published, written);
    STAT_ADD(t->st.expected_sent, expected);
    if (w->len == 0) {
        free(w);
        return;
    }
    send_wbuf(c, w);
}

/* A reply to publish `id` arrived (an ack, or an error when !ok). */
static void pub_reply(bconn_t *c, uint64_t id, bool ok)
{
    bthread_t *t = c->t;
    pub_t *p = c->pub;
    if (id <= p->acked || id > p->sent) {
        STAT_ADD(t->st.errors, 1); /* replies come in request order: this is a broker bug */
        return;
    }
    if (id != p->acked + 1) {
        STAT_ADD(t->st.errors, 1);
    }
    p->acked = id;
    if (ok) {
        STAT_ADD(t->st.acked, 1);
        STAT_ADD(t->st.expected, t->b->match[topic_of(t->b, c->index, id - 1)]);
    } else {
        STAT_ADD(t->st.errors, 1);
    }
    p->want_pump = true;
}

/* ---- receiving --------------------------------------------------------------------------- */

/* Tries to settle the current message's kind and value from its first `len`
 * bytes; `final` says no more bytes will come. Returns true when settled. */
static bool resolve(bconn_t *c, const uint8_t *p, size_t len, bool final)
{
    msg_kind_t kind = payload_kind(p, len);
    if (kind == KIND_NEED_MORE) {
        if (!final) {
            return false;
        }
        kind = KIND_OTHER;
    }
    int r = PAYLOAD_FOUND;
    if (kind == KIND_MESSAGE) {
        r = payload_find_time(p, len, &c->value);
    } else if (kind == KIND_ACK || kind == KIND_ERROR) {
        r = payload_find_id(p, len, &c->value);
    }
    if (r == PAYLOAD_NEED_MORE && !final) {
        return false;
    }
    c->kind = (uint8_t)kind;
    c->has_value =
        r == PAYLOAD_FOUND && (kind == KIND_MESSAGE || kind == KIND_ACK || kind == KIND_ERROR);
    c->resolved = true;
    return true;
}

static int on_message_begin(void *user_data, int opcode)
{
    bconn_t *c = user_data;
    (void)opcode;
    c->resolved = false;
    c->has_value = false;
    c->head_len = 0;
    return 0;
}

static int on_message_data(void *user_data, const uint8_t *data, size_t len)
{
    bconn_t *c = user_data;
    if (c->parser.msg_compressed) {
        /* Read at the message's end, inflated (on_message_end). */
        if (!deflate_rx_append(&c->z, data, len)) {
            conn_lost(c);
            return STOP;
        }
        return 0;
    }
    if (c->resolved) {
        return 0;
    }
    /* Usual case: the message starts in this read with enough bytes. */
    if (c->head_len == 0 && resolve(c, data, len, false)) {
        return 0;
    }
    if (c->head == NULL) {
        c->head = malloc(HEAD_CAP);
        if (c->head == NULL) {
            conn_lost(c);
            return STOP;
        }
    }
    size_t take = len < HEAD_CAP - c->head_len ? len : HEAD_CAP - c->head_len;
    memcpy(c->head + c->head_len, data, take);
    c->head_len = (uint16_t)(c->head_len + take);
    (void)resolve(c, c->head, c->head_len, c->head_len == HEAD_CAP);
    return 0;
}

/* Sends {"type":TYPE,"topic":<this subscriber's pattern>,"id":ID}. */
static void send_sub_request(bconn_t *c, const char *type, int id)
{
    const opts_t *o = &c->t->b->o;
    char pattern[WSB_TOPIC_MAX_LEN + 1];
    char json[WSB_TOPIC_MAX_LEN + 64];
    int plen = opts_expand(o->patterns[c->index % o->npatterns], c->index % o->topics, pattern,
                           sizeof(pattern));
    int jlen = snprintf(json, sizeof(json), "{\"type\":\"%s\",\"topic\":\"%.*s\",\"id\":%d}", type,
                        plen, pattern, id);
    send_frame(c, WSB_WS_OP_TEXT, json, (size_t)jlen);
}

/* --churn: the next unsubscribe or subscribe of a churning subscriber, while
 * the run lasts and the listeners are not too far behind (each request owes
 * every listener one join/leave frame: the same lag bound as publishing).
 * One request in flight per connection; a paused one is resumed by the tick. */
static void churn_next(bconn_t *c)
{
    bthread_t *t = c->t;
    const bench_t *b = t->b;
    if (c->closing || atomic_load_explicit(&b->phase, memory_order_acquire) != PHASE_RUN ||
        bench_now(b) >= b->run_deadline_ns || lag_room(b) <= 0) {
        return;
    }
    c->churn_busy = true;
    STAT_ADD(t->st.expected_sent, b->churn_listeners);
    send_sub_request(c, c->churn_off ? "subscribe" : "unsubscribe", 2);
}

static void subscriber_ready(bconn_t *c)
{
    bthread_t *t = c->t;
    c->state = C_READY;
    t->in_progress--;
    STAT_ADD(t->st.subs_ready, 1);
    if (c->index >= t->b->o.churn) {
        STAT_ADD(t->st.listeners_ready, 1);
    }
}

static int on_message_end(void *user_data)
{
    bconn_t *c = user_data;
    bthread_t *t = c->t;
    if (c->parser.msg_compressed) {
        uint8_t *plain = NULL;
        size_t plain_len = 0;
        if (!deflate_rx_finish(&c->z, &plain, &plain_len)) {
            STAT_ADD(t->st.errors, 1);
            conn_lost(c);
            return STOP;
        }
        (void)resolve(c, plain, plain_len, true);
        free(plain);
    }
    if (!c->resolved) {
        (void)resolve(c, c->head, c->head_len, true);
    }
    if (c->head != NULL) {
        free(c->head);
        c->head = NULL;
    }
    switch ((msg_kind_t)c->kind) {
    case KIND_MESSAGE:
        STAT_ADD(t->st.received, 1);
        if (c->has_value) {
            hist_record(&t->hist, t->rx_now > c->value ? t->rx_now - c->value : 0);
        } else {
            STAT_ADD(t->st.bad_payload, 1);
        }
        break;
    case KIND_ACK:
        if (c->pub != NULL) {
            if (c->has_value) {
                pub_reply(c, c->value, true);
            }
        } else if (c->state == C_SUBSCRIBING) {
            subscriber_ready(c);
        } else if (c->churn_busy) {
            c->churn_busy = false;
            c->churn_off = !c->churn_off;
            STAT_ADD(t->st.churn_ops, 1);
            churn_next(c);
        }
        break;
    case KIND_ERROR:
        if (c->pub != NULL && c->has_value) {
            pub_reply(c, c->value, false);
        } else if (c->state == C_SUBSCRIBING) {
            conn_fail(c, F_SUBSCRIBE);
        } else {
            STAT_ADD(t->st.errors, 1);
            c->churn_busy = false; /* the next tick tries again */
        }
        break;
    case KIND_JOIN:
    case KIND_LEAVE:
        STAT_ADD(t->st.events, 1);
        if (t->b->o.churn > 0 && c->index >= t->b->o.churn) {
            STAT_ADD(t->st.listener_events, 1);
        }
        break;
    default:
        break; /* welcome, pong: nothing to do */
    }
    return c->closing ? STOP : 0;
}

static int on_ping(void *user_data, const uint8_t *payload, size_t len)
{
    bconn_t *c = user_data;
    send_frame(c, WSB_WS_OP_PONG, payload, len);
    return c->closing ? STOP : 0;
}

static int on_close(void *user_data, int code, const uint8_t *reason, size_t len)
{
    bconn_t *c = user_data;
    (void)code;
    (void)reason;
    (void)len;
    conn_lost(c);
    return STOP;
}

static const wsb_ws_parser_callbacks_t parser_cb = {
    .on_message_begin = on_message_begin,
    .on_message_data = on_message_data,
    .on_message_end = on_message_end,
    .on_ping = on_ping,
    .on_close = on_close,
};

static void feed(bconn_t *c, uint8_t *data, size_t len)
{
    if (c->closing || len == 0) {
        return;
    }
    int rc = wsb_ws_parser_feed(&c->parser, data, len, NULL);
    if (rc < 0) {
        STAT_ADD(c->t->st.errors, 1); /* the broker broke RFC 6455 */
        conn_lost(c);
    }
}

static void upgraded(bconn_t *c)
{
    bthread_t *t = c->t;
    if (c->pub != NULL) {
        c->state = C_READY;
        t->in_progress--;
        STAT_ADD(t->st.pubs_ready, 1);
        return;
    }
    c->state = C_SUBSCRIBING;
    send_sub_request(c, "subscribe", 1);
}

/* Collects the upgrade response; the bytes after it are frames. */
static void handshake_feed(bconn_t *c, uint8_t *data, size_t len)
{
    handshake_t *hs = c->hs;
    const bench_t *b = c->t->b;
    size_t room = HS_CAP - 1 - hs->len;
    size_t take = len < room ? len : room;
    memcpy(hs->buf + hs->len, data, take);
    hs->len += (uint32_t)take;
    hs->buf[hs->len] = '\0';
    char *end = strstr(hs->buf, "\r\n\r\n");
    if (end == NULL) {
        if (hs->len == HS_CAP - 1) {
            conn_fail(c, F_HANDSHAKE);
        }
        return;
    }
    *end = '\0'; /* the accept key must be in the header section */
    if (strncmp(hs->buf, "HTTP/1.1 101 ", 13) != 0 || strstr(hs->buf, b->accept) == NULL) {
        conn_fail(c, F_HANDSHAKE);
        return;
    }
    size_t head_len = (size_t)(end - hs->buf) + 4;
    if (b->o.deflate && deflate_rx_accepted(hs->buf)) {
        c->parser.rsv_mask |= WSB_WS_RSV1;
        c->parser.deflate = true;
    }
    c->hs = NULL;
    upgraded(c);
    feed(c, (uint8_t *)hs->buf + head_len, hs->len - head_len);
    if (take < len) {
        feed(c, data + take, len - take);
    }
    free(hs);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    bconn_t *c = h->data;
    (void)suggested;
    buf->base = (char *)c->t->read_buf;
    buf->len = sizeof(c->t->read_buf);
}

/* Plaintext from the broker: the upgrade response, then frames. */
static void nats_input(bconn_t *c, const uint8_t *data, size_t len);
static void nats_connect(bconn_t *c);

static void process(bconn_t *c, uint8_t *data, size_t len)
{
    if (c->nats != NULL) {
        STAT_ADD(c->t->st.bytes_in, (uint64_t)len);
        nats_input(c, data, len);
    } else if (c->hs != NULL) {
        handshake_feed(c, data, len);
    } else {
        STAT_ADD(c->t->st.bytes_in, (uint64_t)len);
        feed(c, data, len);
    }
}

static void send_upgrade(bconn_t *c)
{
    const bench_t *b = c->t->b;
    wbuf_t *w = wbuf_new(b->request_len);
    if (w == NULL) {
        conn_fail(c, F_HANDSHAKE);
        return;
    }
    memcpy(w->data, b->request, b->request_len);
    w->len = b->request_len;
    send_wbuf(c, w);
}

/* The first TLS failure of the run is worth a line: it is usually the
 * certificate (--cafile, --insecure), and every connection would repeat it. */
static atomic_flag tls_failure_reported = ATOMIC_FLAG_INIT;

/* wss://: runs the TLS handshake as far as it goes; once complete, sends the
 * upgrade request. True when the connection is past the TLS handshake. */
static bool tls_handshake_step(bconn_t *c)
{
    if (c->tls_open) {
        return true;
    }
    int rc = wsb_tls_handshake(c->tls);
    if (rc == WSB_ETLS) {
        if (!atomic_flag_test_and_set(&tls_failure_reported)) {
            (void)fprintf(stderr, "wsbench: %s\n", wsb_tls_error(c->tls));
        }
        conn_fail(c, F_HANDSHAKE);
        return false;
    }
    tls_flush(c);
    if (rc != 0 || c->closing) {
        return false;
    }
    c->tls_open = true;
    if (c->nats != NULL) {
        nats_connect(c);
    } else {
        send_upgrade(c);
    }
    return !c->closing;
}

/* wss://: the ciphertext is copied into OpenSSL, so the worker's read buffer
 * (where it came in) then receives the plaintext, record by record. */
static void tls_input(bconn_t *c, const uint8_t *data, size_t len)
{
    if (wsb_tls_feed(c->tls, data, len) != 0) {
        conn_lost(c);
        return;
    }
    if (!tls_handshake_step(c)) {
        return;
    }
    uint8_t *plain = c->t->read_buf;
    for (;;) {
        long n = wsb_tls_read(c->tls, plain, sizeof(c->t->read_buf));
        if (n > 0) {
            process(c, plain, (size_t)n);
            if (c->closing) {
                return;
            }
            continue;
        }
        if (n != WSB_EAGAIN) {
            conn_lost(c); /* close_notify (0) or a bad record */
            return;
        }
        break;
    }
    tls_flush(c); /* alerts or post-handshake messages, if any */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    bconn_t *c = s->data;
    bthread_t *t = c->t;
    if (nread == 0 || c->closing) {
        return;
    }
    if (nread < 0) {
        conn_lost(c);
        return;
    }
    t->rx_now = bench_now(t->b);
    uint64_t before = STAT_GET(t->st.received);
    if (c->tls != NULL) {
        tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
    } else {
        process(c, (uint8_t *)buf->base, (size_t)nread);
    }
    if (STAT_GET(t->st.received) != before) {
        atomic_store_explicit(&t->st.last_rx_ns, t->rx_now, memory_order_relaxed);
    }
    if (c->pub != NULL && c->pub->want_pump) {
        c->pub->want_pump = false;
        pub_pump(c, t->rx_now);
    }
}

/* ---- nats:// ------------------------------------------------------------------------------ */

static int nats_on_msg(void *user_data, bool has_time, uint64_t t_ns)
{
    bconn_t *c = user_data;
    bthread_t *t = c->t;
    STAT_ADD(t->st.received, 1);
    if (has_time) {
        hist_record(&t->hist, t->rx_now > t_ns ? t->rx_now - t_ns : 0);
    } else {
        STAT_ADD(t->st.bad_payload, 1);
    }
    return c->closing ? STOP : 0;
}

static void send_text(bconn_t *c, const char *text, size_t len)
{
    wbuf_t *w = wbuf_new(len);
    if (w == NULL) {
        conn_lost(c);
        return;
    }
    memcpy(w->data, text, len);
    w->len = len;
    send_wbuf(c, w);
}

static int nats_on_ping(void *user_data)
{
    bconn_t *c = user_data;
    send_text(c, "PONG\r\n", 6);
    return c->closing ? STOP : 0;
}

/* The PONG to the PING after CONNECT (and SUB) makes a connection ready;
 * after that, a publisher's PONGs ack its publishes in order. */
static int nats_on_pong(void *user_data)
{
    bconn_t *c = user_data;
    bthread_t *t = c->t;
    if (c->state == C_SUBSCRIBING) {
        subscriber_ready(c);
    } else if (c->state == C_HANDSHAKE && c->pub != NULL) {
        c->state = C_READY;
        t->in_progress--;
        STAT_ADD(t->st.pubs_ready, 1);
    } else if (c->pub != NULL) {
        pub_reply(c, c->pub->acked + 1, true);
    }
    return c->closing ? STOP : 0;
}

static int nats_on_err(void *user_data)
{
    bconn_t *c = user_data;
    if (c->state < C_READY) {
        conn_fail(c, c->state == C_SUBSCRIBING ? F_SUBSCRIBE : F_HANDSHAKE);
    } else {
        STAT_ADD(c->t->st.errors, 1);
    }
    return c->closing ? STOP : 0;
}

/* nats+tls://: the server's INFO came in plaintext; TLS starts now. */
static int nats_on_info(void *user_data)
{
    bconn_t *c = user_data;
    const bench_t *b = c->t->b;
    if (b->tls_ctx == NULL || c->tls != NULL) {
        return 0;
    }
    c->tls = wsb_tls_new(b->tls_ctx, b->o.host);
    if (c->tls == NULL) {
        conn_fail(c, F_HANDSHAKE);
        return STOP;
    }
    (void)tls_handshake_step(c); /* sends the ClientHello */
    return c->closing ? STOP : 0;
}

static const nats_rx_cb_t nats_cb = {
    .on_msg = nats_on_msg,
    .on_ping = nats_on_ping,
    .on_pong = nats_on_pong,
    .on_err = nats_on_err,
    .on_info = nats_on_info,
};

static void nats_input(bconn_t *c, const uint8_t *data, size_t len)
{
    if (nats_rx_feed(c->nats, data, len, &nats_cb, c) < 0) {
        STAT_ADD(c->t->st.errors, 1); /* a malformed MSG line */
        conn_lost(c);
    }
}

/* CONNECT (no echo, no +OK), then SUB for a subscriber, then PING. */
static void nats_connect(bconn_t *c)
{
    const opts_t *o = &c->t->b->o;
    char cmd[WSB_TOPIC_MAX_LEN + 160];
    int n = snprintf(cmd, sizeof(cmd),
                     "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,"
                     "\"name\":\"wsbench\",\"lang\":\"c\",\"version\":\"1\",\"protocol\":1}\r\n");
    if (c->pub == NULL) {
        char pattern[WSB_TOPIC_MAX_LEN + 1];
        int plen = opts_expand(o->patterns[c->index % o->npatterns], c->index % o->topics, pattern,
                               sizeof(pattern));
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "SUB %.*s 1\r\n", plen, pattern);
        c->state = C_SUBSCRIBING;
    }
    n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "PING\r\n");
    send_text(c, cmd, (size_t)n);
}

/* nats://: CONNECT at once; nats+tls://: after the INFO line and the TLS
 * handshake (tls_handshake_step). */
static void nats_start(bconn_t *c)
{
    free(c->hs); /* only the connect request lived there */
    c->hs = NULL;
    c->nats = malloc(sizeof(*c->nats));
    if (c->nats == NULL) {
        conn_fail(c, F_HANDSHAKE);
        return;
    }
    nats_rx_init(c->nats);
    if (c->t->b->tls_ctx == NULL) {
        nats_connect(c);
    }
}

/* ---- connecting -------------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    bconn_t *c = req->data;
    const bench_t *b = c->t->b;
    if (c->closing) {
        return;
    }
    if (status < 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_fail(c, F_CONNECT);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    c->state = C_HANDSHAKE;
    if (b->o.nats) {
        nats_start(c);
        return;
    }
    if (b->tls_ctx == NULL) {
        send_upgrade(c);
        return;
    }
    c->tls = wsb_tls_new(b->tls_ctx, b->o.host);
    if (c->tls == NULL) {
        conn_fail(c, F_HANDSHAKE);
        return;
    }
    (void)tls_handshake_step(c); /* sends the ClientHello */
}

static void start_connect(bconn_t *c)
{
    bthread_t *t = c->t;
    t->in_progress++;
    c->hs = calloc(1, sizeof(*c->hs));
    if (c->hs == NULL || uv_tcp_init(&t->loop, &c->tcp) != 0) {
        free(c->hs);
        c->hs = NULL;
        conn_fail(c, F_CONNECT); /* state IDLE: nothing to close */
        return;
    }
    c->tcp.data = c;
    c->state = C_CONNECTING;
    c->hs->req.data = c;
    if (wsb_ws_random_mask(c->mask) != 0 ||
        uv_tcp_connect(&c->hs->req, &c->tcp,
                       (const struct sockaddr *)(c->pub != NULL ? &t->b->pub_addr : &t->b->addr),
                       on_connect) != 0) {
        conn_fail(c, F_CONNECT);
    }
}

/* The per-topic count of this worker's ready subscribers (for the expected
 * number of deliveries). Exact patterns find their one topic by lookup;
 * wildcard patterns are tested against every topic. */
static void count_matches(bthread_t *t)
{
    const bench_t *b = t->b;
    const opts_t *o = &b->o;
    if (t->match_local == NULL) {
        return;
    }
    for (uint32_t i = 0; i < t->nsubs; i++) {
        const bconn_t *c = &t->conns[i];
        if (c->state != C_READY || c->closing) {
            continue;
        }
        char pattern[WSB_TOPIC_MAX_LEN + 1];
        int n = opts_expand(o->patterns[c->index % o->npatterns], c->index % o->topics, pattern,
                            sizeof(pattern));
        if (!wsb_topic_is_pattern(pattern, (size_t)n)) {
            int64_t k = bench_topic_find(b, pattern, (size_t)n);
            if (k >= 0) {
                t->match_local[k]++;
            }
            continue;
        }
        for (uint32_t k = 0; k < o->topics; k++) {
            if (wsb_topic_matches(pattern, (size_t)n, b->topic_buf + b->topic_off[k],
                                  b->topic_len[k])) {
                t->match_local[k]++;
            }
        }
    }
}

static void ramp_step(bthread_t *t, uint64_t now)
{
    const opts_t *o = &t->b->o;
    if (atomic_load_explicit(&t->st.ramp_done, memory_order_relaxed)) {
        return;
    }
    uint64_t elapsed = now - t->ramp_start_ns;
    if ((double)elapsed > o->connect_timeout * 1e9) {
        for (uint32_t i = 0; i < t->nconns; i++) {
            bconn_t *c = &t->conns[i];
            if (i >= t->next_connect) {
                t->in_progress++; /* conn_fail counts it down */
                conn_fail(c, F_TIMEOUT);
            } else if (c->state < C_READY && !c->closing) {
                conn_fail(c, F_TIMEOUT);
            }
        }
        t->next_connect = t->nconns;
    }
    double per_thread = (double)o->connect_rate / (double)t->b->nthreads;
    uint64_t allowed = (uint64_t)((double)elapsed * per_thread / 1e9) + 1;
    while (t->next_connect < t->nconns && t->next_connect < allowed &&
           t->in_progress < o->connect_parallel) {
        start_connect(&t->conns[t->next_connect++]);
    }
    if (t->next_connect == t->nconns && t->in_progress == 0) {
        count_matches(t);
        atomic_store_explicit(&t->st.ramp_done, 1, memory_order_release);
    }
}

static void stop_all(bthread_t *t)
{
    t->stopping = true;
    for (uint32_t i = 0; i < t->nconns; i++) {
        conn_close(&t->conns[i]);
    }
    uv_close((uv_handle_t *)&t->tick, NULL);
}

/* --stall: subscribers 0..stall-1 stop reading when publishing starts and
 * read again when it ends (the broker's backlog for them, conflated or not,
 * then arrives during the drain). */
static void stall_step(bconn_t *c, bool publishing)
{
    if (c->index >= c->t->b->o.stall || c->state != C_READY || c->closing) {
        return;
    }
    if (publishing && !c->stalled) {
        c->stalled = uv_read_stop((uv_stream_t *)&c->tcp) == 0;
    } else if (!publishing && c->stalled) {
        c->stalled = false;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            conn_lost(c);
        }
    }
}

static void on_tick(uv_timer_t *h)
{
    bthread_t *t = h->data;
    const bench_t *b = t->b;
    int phase = atomic_load_explicit(&t->b->phase, memory_order_acquire);
    if (phase == PHASE_STOP) {
        stop_all(t);
        return;
    }
    uint64_t now = bench_now(b);
    ramp_step(t, now);
    for (uint32_t i = 0; b->o.stall > 0 && i < t->nsubs; i++) {
        stall_step(&t->conns[i], phase == PHASE_RUN && now < b->run_deadline_ns);
    }
    if (phase == PHASE_RUN) {
        for (uint32_t i = t->nsubs; i < t->nconns; i++) {
            pub_pump(&t->conns[i], now);
        }
        for (uint32_t i = 0; b->o.churn > 0 && i < t->nsubs; i++) {
            bconn_t *c = &t->conns[i];
            if (c->index < b->o.churn && c->state == C_READY && !c->churn_busy) {
                churn_next(c);
            }
        }
    }
}

/* ---- the worker -------------------------------------------------------------------------- */

int client_thread_init(bthread_t *t, bench_t *b, uint32_t id)
{
    const opts_t *o = &b->o;
    uint32_t nt = b->nthreads;
    t->b = b;
    t->id = id;
    t->nsubs = o->subscribers > id ? (o->subscribers - id + nt - 1) / nt : 0;
    uint32_t first_pub = (id + nt - o->subscribers % nt) % nt;
    uint32_t npubs = o->publishers > first_pub ? (o->publishers - first_pub + nt - 1) / nt : 0;
    t->nconns = t->nsubs + npubs;
    t->conns = calloc(t->nconns ? t->nconns : 1, sizeof(bconn_t));
    t->pubs = calloc(npubs ? npubs : 1, sizeof(pub_t));
    t->match_local = calloc(o->topics, sizeof(uint32_t));
    if (t->conns == NULL || t->pubs == NULL || t->match_local == NULL) {
        client_thread_free(t);
        return -1;
    }
    if (uv_loop_init(&t->loop) != 0) {
        client_thread_free(t);
        return -1;
    }
    t->loop_ready = true;
    uv_timer_init(&t->loop, &t->tick);
    t->tick.data = t;
    for (uint32_t i = 0; i < t->nconns; i++) {
        bconn_t *c = &t->conns[i];
        c->t = t;
        wsb_ws_parser_init(&c->parser, WSB_WS_ROLE_CLIENT, 0, &parser_cb, c);
        if (i < t->nsubs) {
            c->index = id + i * nt;
        } else {
            uint32_t j = i - t->nsubs;
            c->index = first_pub + j * nt;
            c->pub = &t->pubs[j];
            if (o->messages > 0) {
                c->pub->quota =
                    o->messages / o->publishers + (c->index < o->messages % o->publishers ? 1 : 0);
            }
        }
    }
    hist_init(&t->hist);
    return 0;
}

void client_thread_free(bthread_t *t)
{
    if (t->loop_ready) {
        (void)uv_loop_close(&t->loop);
        t->loop_ready = false;
    }
    for (uint32_t i = 0; t->conns != NULL && i < t->nconns; i++) {
        wsb_ws_parser_release(&t->conns[i].parser);
    }
    free(t->conns);
    free(t->pubs);
    free(t->match_local);
    t->conns = NULL;
    t->pubs = NULL;
    t->match_local = NULL;
}

void client_thread_main(void *arg)
{
    bthread_t *t = arg;
    t->ramp_start_ns = bench_now(t->b);
    uv_timer_start(&t->tick, on_tick, 0, TICK_MS);
    uv_run(&t->loop, UV_RUN_DEFAULT);
}
