/* resp_session.c - the RESP2 ingress on worker 0 (see resp_session.h). */
#include "ingress/resp_session.h"

#include "app/broker.h"
#include "app/worker.h"
#include "cluster/bridge_redis.h"
#include "cluster/history_redis.h"
#include "core/pubsub.h"
#include "core/router.h"
#include "core/subscriber.h"
#include "ingress/auth_key.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/resp.h"
#include "wsb/topic.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define RESP_MAX_ARGS   1024
#define RESP_MAX_INLINE ((size_t)64 * 1024)
#define RESP_REQ_EXTRA  ((size_t)64 * 1024)

typedef struct resp_conn_s resp_conn_t;

typedef struct {
    trie_sub_t *sub;
    bool glob; /* PSUBSCRIBE (else SUBSCRIBE) */
} resp_sub_t;

struct resp_conn_s {
    subscriber_t sub; /* what the trie holds; the core delivers through it */
    uv_tcp_t tcp;
    resp_listener_t *l;
    resp_conn_t *prev, *next;
    resp_conn_t *dirty_next;
    bool dirty;
    bool closed;
    bool quit;        /* close once the output is written */
    bool slow;        /* over its output bound as a subscriber: close */
    bool read_paused; /* its replies are over max_outbound_bytes */
    bool pub_paused;  /* a worker inbox is filling (worker_inbox_pressure) */
    bool reading;     /* uv_read_start in effect */
    bool writing;
    bool authed;
    const apikey_t *key; /* after AUTH with API keys configured: what it may publish */
    bool handle_closed;  /* the close callback ran */
    char *in;            /* unparsed input */
    size_t in_len, in_cap;
    sbuf_t out;  /* queued output */
    sbuf_t wbuf; /* output in flight */
    uv_write_t wreq;
    resp_sub_t *subs;
    uint32_t nsubs, subs_cap;
    hr_op_t *cluster_op; /* clustered history: a PUBLISH waiting for Redis's seq */
};

struct resp_listener_s {
    worker_t *s;
    uv_tcp_t tcp;
    bool open;
    resp_conn_t *conns;
    size_t nconns;
    resp_conn_t *dirty;
    size_t npub_paused; /* connections with pub_paused */
    wsb_resp_limits_t lim;
    wsb_str_t argv[RESP_MAX_ARGS];
    uint64_t next_id;
};

/* ---- output -------------------------------------------------------------------------------- */

static void mark_dirty(resp_conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = c->l->dirty;
        c->l->dirty = c;
    }
}

static size_t queued(const resp_conn_t *c)
{
    return c->out.len + c->wbuf.len;
}

static void out_raw(resp_conn_t *c, const char *s, size_t n)
{
    sbuf_append(&c->out, s, n);
    mark_dirty(c);
}

static void out_str(resp_conn_t *c, const char *s)
{
    out_raw(c, s, strlen(s));
}

static void out_bulk(resp_conn_t *c, const char *p, size_t n)
{
    sbuf_printf(&c->out, "$%zu\r\n", n);
    sbuf_append(&c->out, p, n);
    sbuf_append(&c->out, "\r\n", 2);
    mark_dirty(c);
}

static void out_bulkz(resp_conn_t *c, const char *s)
{
    out_bulk(c, s, strlen(s));
}

static void out_int(resp_conn_t *c, long long v)
{
    sbuf_printf(&c->out, ":%lld\r\n", v);
    mark_dirty(c);
}

static void out_array(resp_conn_t *c, size_t n)
{
    sbuf_printf(&c->out, "*%zu\r\n", n);
    mark_dirty(c);
}

static void out_err(resp_conn_t *c, const char *msg)
{
    sbuf_printf(&c->out, "-%s\r\n", msg);
    mark_dirty(c);
}

/* An argument for an error message: printable ASCII only, at most 128 bytes
 * (Redis quotes user input in its errors the same way). */
static void printable(const wsb_str_t *a, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < a->len && n + 1 < cap && i < 128; i++) {
        char ch = a->p[i];
        if (ch < ' ' || ch == 0x7f || ch == '\'') {
            ch = '?'; /* bytes >= 0x80 are negative chars: replaced too */
        }
        out[n++] = ch;
    }
    out[n] = '\0';
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static void conn_free_resp(resp_conn_t *c)
{
    sbuf_free(&c->out);
    sbuf_free(&c->wbuf);
    free(c->in);
    free(c->subs);
    free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
    resp_conn_t *c = h->data;
    worker_t *s = c->l->s;
    c->handle_closed = true;
    /* Still listed as dirty: the flush frees it. */
    if (!c->dirty) {
        conn_free_resp(c);
    }
    if (s->shutting_down && resp_connection_count(s) == 0) {
        worker_shutdown(s); /* the drain may be complete now */
    }
}

static void remove_subs(resp_conn_t *c, bool glob_only, bool channels_only)
{
    worker_t *s = c->l->s;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < c->nsubs; i++) {
        bool drop = (glob_only && c->subs[i].glob) || (channels_only && !c->subs[i].glob);
        if (drop) {
            pubsub_unsubscribe(s, c->subs[i].sub);
        } else {
            c->subs[kept++] = c->subs[i];
        }
    }
    c->nsubs = kept;
    worker_update_gauges(s);
}

static void conn_close_resp(resp_conn_t *c)
{
    if (c->closed) {
        return;
    }
    resp_listener_t *l = c->l;
    c->closed = true;
    remove_subs(c, true, true);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        l->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    l->nconns--;
    if (c->cluster_op != NULL) {
        c->cluster_op->owner = NULL; /* freed when it comes back (cluster_drain) */
        c->cluster_op = NULL;
    }
    if (c->pub_paused) {
        c->pub_paused = false;
        l->npub_paused--;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- writing --------------------------------------------------------------------------------- */

static void flush_conn(resp_conn_t *c);
static void resume_reading(resp_conn_t *c);

static void on_written(uv_write_t *req, int status)
{
    resp_conn_t *c = req->data;
    c->writing = false;
    c->wbuf.len = 0;
    if (c->closed) {
        return; /* cancelled by the close; the close callback frees */
    }
    if (status < 0) {
        conn_close_resp(c);
        return;
    }
    flush_conn(c);
}

static void flush_conn(resp_conn_t *c)
{
    if (c->closed || c->writing) {
        return;
    }
    if (c->slow) {
        log_debug("resp: slow subscriber disconnected", "queued=%zu", queued(c));
        conn_close_resp(c);
        return;
    }
    if (c->out.len == 0) {
        if (c->quit) {
            conn_close_resp(c);
        } else if (c->read_paused) {
            resume_reading(c);
        }
        return;
    }
    /* Swap the buffers: the queued bytes go out, new output queues behind. */
    sbuf_t t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
    uv_buf_t buf = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
    int rc = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (rc == (int)c->wbuf.len) {
        c->wbuf.len = 0;
        flush_conn(c); /* quit / resume handling */
        return;
    }
    size_t done = rc > 0 ? (size_t)rc : 0;
    if (rc < 0 && rc != UV_EAGAIN) {
        conn_close_resp(c);
        return;
    }
    buf = uv_buf_init(c->wbuf.p + done, (unsigned)(c->wbuf.len - done));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        conn_close_resp(c);
        return;
    }
    c->writing = true;
}

void resp_flush_dirty(worker_t *s)
{
    resp_listener_t *l = s->resp;
    if (l == NULL) {
        return;
    }
    while (l->dirty != NULL) {
        resp_conn_t *c = l->dirty;
        l->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->closed) {
            if (c->handle_closed) {
                conn_free_resp(c); /* its close callback ran while it was listed */
            }
            continue;
        }
        flush_conn(c);
    }
}

/* ---- delivery -------------------------------------------------------------------------------- */

/*
 * The subscriber's deliver_cb: queues one "message" push per matching
 * SUBSCRIBE channel and one "pmessage" per matching PSUBSCRIBE pattern
 * (Redis semantics). A RESP subscriber over its bound is closed by its own
 * flush (never FULL: no gap notice exists in RESP).
 *
 * Each push is copied into the subscriber's output buffer (CONVENTIONS.md
 * rule 4 asks for shared buffers). Not shared yet because the RESP output is
 * one contiguous sbuf per connection, not an outq of frame_buf slices: the
 * payload could be a zero-copy slice of the worker's frame_buf (data_off,
 * data_len inside the WebSocket frame) behind a small per-push header, but
 * every reply would then need a frame_buf too. RESP is for a few backend
 * consumers, and the copy is one memcpy per push into a buffer written with
 * one syscall per loop turn; converting is worth it if RESP fan-out grows.
 */
static subscriber_verdict_t deliver_cb(void *user_data, frame_buf_t *fb, xmsg_t *m)
{
    (void)fb; /* RESP has its own framing: the data is taken from the message */
    resp_conn_t *c = user_data;
    if (c->closed || c->slow) {
        return SUBSCRIBER_SKIPPED;
    }
    const char *data = (const char *)m->frame + m->data_off;
    int n = 0;
    for (uint32_t i = 0; i < c->nsubs; i++) {
        const char *pat = trie_sub_pattern(c->subs[i].sub);
        size_t plen = strlen(pat);
        if (!c->subs[i].glob) {
            if (plen != m->topic_len || memcmp(pat, m->topic, plen) != 0) {
                continue;
            }
            sbuf_printf(&c->out, "*3\r\n$7\r\nmessage\r\n");
        } else {
            if (!wsb_topic_matches(pat, plen, m->topic, m->topic_len)) {
                continue;
            }
            sbuf_printf(&c->out, "*4\r\n$8\r\npmessage\r\n$%zu\r\n%s\r\n", plen, pat);
        }
        sbuf_printf(&c->out, "$%u\r\n", (unsigned)m->topic_len);
        sbuf_append(&c->out, m->topic, m->topic_len);
        sbuf_printf(&c->out, "\r\n$%u\r\n", (unsigned)m->data_len);
        sbuf_append(&c->out, data, m->data_len);
        sbuf_append(&c->out, "\r\n", 2);
        n++;
    }
    mark_dirty(c);
    if (queued(c) > c->l->s->cfg->max_outbound_bytes) {
        /* Closed by the flush: nothing may leave the trie during a fan-out. */
        c->slow = true;
        return SUBSCRIBER_SKIPPED;
    }
    return n > 0 ? SUBSCRIBER_DELIVERED : SUBSCRIBER_SKIPPED;
}

/* Not reached (deliver_cb never says FULL); a gap cannot be told in RESP. */
static int gap_cb(void *user_data, const xmsg_t *m)
{
    (void)user_data;
    (void)m;
    return -1;
}

/* Marks the subscriber slow: its flush closes it (never during a fan-out). */
static void close_cb(void *user_data, int code, const char *why)
{
    (void)code;
    (void)why;
    resp_conn_t *c = user_data;
    c->slow = true;
    mark_dirty(c);
}

static const subscriber_ops_t subscriber_ops = {
    .deliver_cb = deliver_cb,
    .gap_cb = gap_cb,
    .close_cb = close_cb,
};

/* ---- commands -------------------------------------------------------------------------------- */

typedef void (*cmd_fn)(resp_conn_t *c, wsb_str_t *argv, size_t argc);

typedef struct {
    const char *name;
    cmd_fn fn;
    int arity;          /* Redis convention: N exactly, -N at least N (the name included) */
    bool in_subscribed; /* allowed while subscribed (RESP2 rule) */
    bool needs_auth;
} command_t;

static const command_t *find_command(wsb_str_t name);

static bool arg_is(wsb_str_t a, const char *lit)
{
    return wsb_str_eq_nocase(a, lit);
}

static void cmd_ping(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    if (argc > 2) {
        out_err(c, "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if (c->nsubs > 0) {
        /* In subscribed mode RESP2 answers with a push-style array. */
        out_array(c, 2);
        out_bulkz(c, "pong");
        if (argc == 2) {
            out_bulk(c, argv[1].p, argv[1].len);
        } else {
            out_bulk(c, "", 0);
        }
        return;
    }
    if (argc == 2) {
        out_bulk(c, argv[1].p, argv[1].len);
    } else {
        out_str(c, "+PONG\r\n");
    }
}

static void cmd_echo(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    (void)argc;
    out_bulk(c, argv[1].p, argv[1].len);
}

static void cmd_quit(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    (void)argv;
    (void)argc;
    out_str(c, "+OK\r\n");
    c->quit = true;
}

static bool auth_with(resp_conn_t *c, wsb_str_t password)
{
    switch (auth_check_api_key(c->l->s->cfg, password.p, password.len, &c->key)) {
    case AUTH_KEY_NONE_CONFIGURED:
        out_err(c, "ERR AUTH <password> called without any password configured for the default "
                   "user. Are you sure your configuration is correct?");
        return false;
    case AUTH_KEY_OK:
        c->authed = true;
        return true;
    case AUTH_KEY_BAD:
        break;
    }
    out_err(c, "WRONGPASS invalid username-password pair or user is disabled.");
    return false;
}

static void cmd_auth(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    /* AUTH password, or AUTH username password (the API key is the password;
     * the username is ignored). */
    if (argc > 3) {
        out_err(c, "ERR syntax error");
        return;
    }
    if (auth_with(c, argv[argc - 1])) {
        out_str(c, "+OK\r\n");
    }
}

static void cmd_hello(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    size_t i = 1;
    if (argc >= 2) {
        char ver[8];
        printable(&argv[1], ver, sizeof(ver));
        char *end = NULL;
        long v = strtol(ver, &end, 10);
        if (argv[1].len == 0 || argv[1].len > 6 || *end != '\0') {
            out_err(c, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (v != 2) {
            out_err(c, "NOPROTO sorry, this protocol version is not supported.");
            return;
        }
        i = 2;
    }
    for (; i < argc; i++) {
        if (arg_is(argv[i], "AUTH") && i + 2 < argc) {
            if (!auth_with(c, argv[i + 2])) {
                return;
            }
            i += 2;
        } else if (arg_is(argv[i], "SETNAME") && i + 1 < argc) {
            i += 1;
        } else {
            char opt[130];
            printable(&argv[i], opt, sizeof(opt));
            char msg[200];
            (void)snprintf(msg, sizeof(msg), "ERR Syntax error in HELLO option '%s'", opt);
            out_err(c, msg);
            return;
        }
    }
    out_array(c, 14);
    out_bulkz(c, "server");
    out_bulkz(c, "wsbroker");
    out_bulkz(c, "version");
    out_bulkz(c, WSB_VERSION);
    out_bulkz(c, "proto");
    out_int(c, 2);
    out_bulkz(c, "id");
    out_int(c, (long long)++c->l->next_id);
    out_bulkz(c, "mode");
    out_bulkz(c, "standalone");
    out_bulkz(c, "role");
    out_bulkz(c, "master");
    out_bulkz(c, "modules");
    out_array(c, 0);
}

static void cmd_select(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    (void)argc;
    if (argv[1].len == 1 && argv[1].p[0] == '0') {
        out_str(c, "+OK\r\n");
    } else {
        out_err(c, "ERR DB index is out of range");
    }
}

static void cmd_client(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    (void)argc;
    /* Client libraries announce themselves; accepted and ignored. */
    if (arg_is(argv[1], "SETNAME") || arg_is(argv[1], "SETINFO")) {
        out_str(c, "+OK\r\n");
    } else if (arg_is(argv[1], "ID")) {
        out_int(c, (long long)++c->l->next_id);
    } else {
        out_err(c, "ERR unknown subcommand for 'client': only SETNAME, SETINFO and ID are "
                   "supported");
    }
}

/* ---- clustered history hook (session_cluster.h) ----------------------------------------- */

static void pause_reading(resp_conn_t *c);
static void resume_reading(resp_conn_t *c);

static void cluster_publish_done(hr_op_t *op)
{
    resp_conn_t *c = op->owner;
    c->cluster_op = NULL;
    if (op->status == 0) {
        out_int(c, (long long)op->seq);
    } else {
        out_err(c, "ERR unavailable: the topic keeps clustered history and Redis is unavailable");
    }
    hr_op_free(op);
    resume_reading(c); /* the requests behind it */
}

static void reply_publish(resp_conn_t *c, wsb_str_t topic, wsb_str_t payload)
{
    worker_t *s = c->l->s;
    const char *why = NULL;
    char msg[256];
    if (wsb_topic_check(topic.p, topic.len, WSB_TOPIC_EXACT, &why) != 0) {
        (void)snprintf(msg, sizeof(msg), "ERR invalid topic: %s", why);
        out_err(c, msg);
        return;
    }
    if (wsb_topic_is_reserved(topic.p, topic.len)) {
        out_err(c, "ERR topics starting with '$' are reserved");
        return;
    }
    if (c->key != NULL && !apikey_may_publish(c->key, topic.p, topic.len)) {
        (void)snprintf(msg, sizeof(msg), "NOPERM this API key may not publish to '%.*s'",
                       (int)(topic.len < 200 ? topic.len : 200), topic.p);
        out_err(c, msg);
        return;
    }
    if (payload.len > s->cfg->max_message_size) {
        (void)snprintf(msg, sizeof(msg), "ERR payload of %zu bytes is over max_message_size (%llu)",
                       payload.len, (unsigned long long)s->cfg->max_message_size);
        out_err(c, msg);
        return;
    }
    /* JSON is published as that value; anything else as a JSON string. */
    json_error_t jerr;
    json_t *data = json_loadb(payload.p, payload.len,
                              JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (data == NULL) {
        data = json_stringn(payload.p, payload.len);
    }
    if (data == NULL) {
        out_err(c, "ERR payload is neither JSON nor UTF-8 text");
        return;
    }
    /* The key was checked above, where RESP has always reported NOPERM. */
    pubsub_publish_t req = {
        .topic = topic,
        .data = data,
        .ingress = PUBSUB_RESP,
        .owner = c,
        .done_cb = cluster_publish_done,
    };
    pubsub_published_t out;
    pubsub_status_t st = pubsub_publish(s, &req, &out);
    json_decref(data);
    if (st == PUBSUB_PENDING) {
        /* The seq comes from Redis: the reply, and every request after this
         * one (replies keep request order), wait for it; the connection is
         * not read meanwhile. */
        c->cluster_op = out.op;
        pause_reading(c);
        return;
    }
    if (st != PUBSUB_OK) {
        out_err(c, "ERR unavailable: the topic keeps clustered history and Redis is unavailable");
        return;
    }
    if (out.pause && !c->pub_paused) {
        /* As for a WebSocket publisher (router.h): the pipelined commands
         * behind this one wait, and TCP slows the client, until every
         * worker has caught up (worker.c's pressure timer resumes it). */
        c->pub_paused = true;
        c->l->npub_paused++;
        METRIC_ADD(s->metrics.publisher_pauses, 1);
        worker_watch_pressure(s);
    }
    /* Redis answers with the number of receivers, which no node knows here
     * (other workers and nodes deliver later): the message's seq (>= 1). */
    out_int(c, (long long)out.seq);
}

static void cmd_publish(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    (void)argc;
    reply_publish(c, argv[1], argv[2]);
}

static int find_sub(const resp_conn_t *c, wsb_str_t name, bool glob)
{
    for (uint32_t i = 0; i < c->nsubs; i++) {
        const char *p = trie_sub_pattern(c->subs[i].sub);
        if (c->subs[i].glob == glob && strlen(p) == name.len && memcmp(p, name.p, name.len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void subscribe_one(resp_conn_t *c, wsb_str_t name, bool glob)
{
    worker_t *s = c->l->s;
    const char *why = NULL;
    if (wsb_topic_check(name.p, name.len, glob ? WSB_TOPIC_PATTERN : WSB_TOPIC_EXACT, &why) != 0) {
        char msg[300];
        (void)snprintf(msg, sizeof(msg), "ERR invalid %s: %s", glob ? "pattern" : "channel", why);
        out_err(c, msg);
        return;
    }
    if (find_sub(c, name, glob) < 0) {
        /* One trie entry per (pattern, kind): SUBSCRIBE a.b and PSUBSCRIBE
         * a.b both hold one; the trie still reports the client once. API
         * keys grant publishing only: no permission to check. */
        pubsub_subscribe_t req = {.sub = &c->sub, .pattern = name, .nsubs = c->nsubs};
        pubsub_subscribed_t out;
        pubsub_status_t st = pubsub_subscribe(s, &req, &out);
        if (st == PUBSUB_NO_PATTERNS) {
            out_err(c, "ERR " BRIDGE_NO_PATTERNS_WHY);
            return;
        }
        if (st != PUBSUB_OK) {
            char msg[120];
            (void)snprintf(msg, sizeof(msg), "ERR at most %u subscriptions per connection",
                           s->cfg->max_subscriptions);
            out_err(c, msg);
            return;
        }
        if (c->nsubs == c->subs_cap) {
            c->subs_cap = c->subs_cap ? c->subs_cap * 2 : 4;
            c->subs = xrealloc(c->subs, sizeof(resp_sub_t) * c->subs_cap);
        }
        c->subs[c->nsubs].sub = out.handle;
        c->subs[c->nsubs].glob = glob;
        c->nsubs++;
    }
    out_array(c, 3);
    out_bulkz(c, glob ? "psubscribe" : "subscribe");
    out_bulk(c, name.p, name.len);
    out_int(c, c->nsubs);
}

static void cmd_subscribe(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    bool glob = arg_is(argv[0], "PSUBSCRIBE");
    for (size_t i = 1; i < argc; i++) {
        subscribe_one(c, argv[i], glob);
    }
}

static void unsub_reply(resp_conn_t *c, bool glob, const char *name, size_t len)
{
    out_array(c, 3);
    out_bulkz(c, glob ? "punsubscribe" : "unsubscribe");
    if (name != NULL) {
        out_bulk(c, name, len);
    } else {
        out_str(c, "$-1\r\n");
    }
    out_int(c, c->nsubs);
}

static void unsubscribe_at(resp_conn_t *c, uint32_t i)
{
    char name[WSB_TOPIC_MAX_LEN + 1];
    const char *p = trie_sub_pattern(c->subs[i].sub);
    size_t len = strlen(p);
    memcpy(name, p, len + 1);
    bool glob = c->subs[i].glob;
    pubsub_unsubscribe(c->l->s, c->subs[i].sub);
    c->subs[i] = c->subs[--c->nsubs];
    unsub_reply(c, glob, name, len);
}

static void cmd_unsubscribe(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    bool glob = arg_is(argv[0], "PUNSUBSCRIBE");
    if (argc == 1) {
        /* Every channel (or pattern) of this kind; one reply each. */
        bool any = false;
        for (uint32_t i = c->nsubs; i-- > 0;) {
            if (c->subs[i].glob == glob) {
                unsubscribe_at(c, i);
                any = true;
            }
        }
        if (!any) {
            unsub_reply(c, glob, NULL, 0);
        }
    } else {
        for (size_t k = 1; k < argc; k++) {
            int i = find_sub(c, argv[k], glob);
            if (i >= 0) {
                unsubscribe_at(c, (uint32_t)i);
            } else {
                unsub_reply(c, glob, argv[k].p, argv[k].len);
            }
        }
    }
    worker_update_gauges(c->l->s);
}

static void cmd_reset(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    (void)argv;
    (void)argc;
    remove_subs(c, true, true);
    c->authed = false;
    c->key = NULL;
    out_str(c, "+RESET\r\n");
}

static void cmd_command(resp_conn_t *c, wsb_str_t *argv, size_t argc);

static const command_t commands[] = {
    {"publish", cmd_publish, 3, false, true},
    {"ping", cmd_ping, -1, true, false},
    {"echo", cmd_echo, 2, false, false},
    {"auth", cmd_auth, -2, false, false},
    {"hello", cmd_hello, -1, false, false},
    {"quit", cmd_quit, -1, true, false},
    {"reset", cmd_reset, 1, true, false},
    {"select", cmd_select, 2, false, false},
    {"client", cmd_client, -2, false, false},
    {"command", cmd_command, -1, false, false},
    {"subscribe", cmd_subscribe, -2, true, true},
    {"psubscribe", cmd_subscribe, -2, true, true},
    {"unsubscribe", cmd_unsubscribe, -1, true, true},
    {"punsubscribe", cmd_unsubscribe, -1, true, true},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const command_t *find_command(wsb_str_t name)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (wsb_str_eq_nocase(name, commands[i].name)) {
            return &commands[i];
        }
    }
    return NULL;
}

static void command_entry(resp_conn_t *c, const command_t *cmd)
{
    /* name, arity, flags, first key, last key, step: enough for clients that
     * only list commands. */
    out_array(c, 6);
    out_bulkz(c, cmd->name);
    out_int(c, cmd->arity);
    out_array(c, 0);
    out_int(c, 0);
    out_int(c, 0);
    out_int(c, 0);
}

static void cmd_command(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    if (argc == 1) {
        out_array(c, NCOMMANDS);
        for (size_t i = 0; i < NCOMMANDS; i++) {
            command_entry(c, &commands[i]);
        }
    } else if (arg_is(argv[1], "COUNT")) {
        out_int(c, (long long)NCOMMANDS);
    } else if (arg_is(argv[1], "DOCS")) {
        out_array(c, 0);
    } else if (arg_is(argv[1], "INFO")) {
        out_array(c, argc - 2);
        for (size_t i = 2; i < argc; i++) {
            const command_t *cmd = find_command(argv[i]);
            if (cmd != NULL) {
                command_entry(c, cmd);
            } else {
                out_str(c, "*-1\r\n");
            }
        }
    } else {
        out_err(c, "ERR unknown subcommand for 'command': try COMMAND, COMMAND COUNT, "
                   "COMMAND INFO or COMMAND DOCS");
    }
}

static void dispatch(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    resp_listener_t *l = c->l;
    METRIC_ADD(l->s->metrics.resp_commands, 1);
    const command_t *cmd = find_command(argv[0]);
    char name[130], msg[512];
    printable(&argv[0], name, sizeof(name));
    if (cmd == NULL) {
        int n = snprintf(msg, sizeof(msg),
                         "ERR unknown command '%s', with args beginning with: ", name);
        for (size_t i = 1; i < argc && i < 4 && n > 0 && (size_t)n < sizeof(msg); i++) {
            char a[130];
            printable(&argv[i], a, sizeof(a));
            n += snprintf(msg + n, sizeof(msg) - (size_t)n, "'%s' ", a);
        }
        out_err(c, msg);
        return;
    }
    if ((cmd->arity > 0 && argc != (size_t)cmd->arity) ||
        (cmd->arity < 0 && argc < (size_t)-cmd->arity)) {
        (void)snprintf(msg, sizeof(msg), "ERR wrong number of arguments for '%s' command",
                       cmd->name);
        out_err(c, msg);
        return;
    }
    if (cmd->needs_auth && !c->authed && auth_api_keys_configured(l->s->cfg)) {
        out_err(c, "NOAUTH Authentication required.");
        return;
    }
    if (c->nsubs > 0 && !cmd->in_subscribed) {
        (void)snprintf(msg, sizeof(msg),
                       "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                       "QUIT / RESET are allowed in this context",
                       cmd->name);
        out_err(c, msg);
        return;
    }
    cmd->fn(c, argv, argc);
}

/* ---- reading -----------------------------------------------------------------------------------
 */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    resp_conn_t *c = h->data;
    worker_t *s = c->l->s;
    buf->base = (char *)s->read_buf;
    buf->len = sizeof(s->read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Reads while neither its replies nor the workers' inboxes hold it back. */
static void update_reading(resp_conn_t *c)
{
    bool want = !c->read_paused && !c->pub_paused && !c->quit;
    if (c->closed || want == c->reading) {
        return;
    }
    c->reading = want;
    if (!want) {
        uv_read_stop((uv_stream_t *)&c->tcp);
    } else if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close_resp(c);
    }
}

static void pause_reading(resp_conn_t *c)
{
    c->read_paused = true;
}

/* Handles every complete request in the input, in order; stops early when
 * the replies pile up past max_outbound_bytes (the rest waits). */
static void process(resp_conn_t *c)
{
    resp_listener_t *l = c->l;
    size_t off = 0;
    while (!c->closed && !c->quit && !c->pub_paused && c->cluster_op == NULL && off < c->in_len) {
        if (queued(c) > l->s->cfg->max_outbound_bytes) {
            pause_reading(c);
            break;
        }
        size_t argc = 0, used = 0;
        const char *why = NULL;
        int rc = wsb_resp_parse(c->in + off, c->in_len - off, &l->lim, l->argv, &argc, &used, &why);
        if (rc == WSB_EAGAIN) {
            break;
        }
        if (rc != 0) {
            char msg[200];
            (void)snprintf(msg, sizeof(msg), "ERR Protocol error: %s", why);
            out_err(c, msg);
            c->quit = true;
            off = c->in_len;
            break;
        }
        off += used;
        if (argc > 0) {
            dispatch(c, l->argv, argc);
        }
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    update_reading(c);
}

static void resume_reading(resp_conn_t *c)
{
    if (!c->read_paused || c->closed) {
        return;
    }
    c->read_paused = false;
    process(c);
}

bool resp_publishers_paused(const worker_t *s)
{
    return s->resp != NULL && s->resp->npub_paused > 0;
}

void resp_resume_publishers(worker_t *s)
{
    resp_listener_t *l = s->resp;
    resp_conn_t *next;
    for (resp_conn_t *c = l != NULL ? l->conns : NULL; c != NULL && l->npub_paused > 0; c = next) {
        next = c->next; /* processing may close c (unlinked, freed later), never another */
        if (c->pub_paused) {
            c->pub_paused = false;
            l->npub_paused--;
            process(c); /* the pipelined commands it held back; may pause it again */
        }
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    resp_conn_t *c = stream->data;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        conn_close_resp(c);
        return;
    }
    /* As for WebSocket input: what was published before these bytes were
     * sent is delivered before they are answered. */
    router_drain(c->l->s);
    if (c->quit || c->closed) {
        return; /* after QUIT or a protocol error nothing more is read */
    }
    size_t n = (size_t)nread;
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < c->in_len + n) {
            cap *= 2;
        }
        c->in = xrealloc(c->in, cap);
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, buf->base, n);
    c->in_len += n;
    process(c);
    /* A big request's buffer is not kept for an idle connection. */
    if (c->in_len == 0 && c->in_cap > (size_t)64 * 1024) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

/* ---- listener ----------------------------------------------------------------------------------
 */

static void on_connection(uv_stream_t *server, int status)
{
    resp_listener_t *l = server->data;
    if (status < 0) {
        return;
    }
    resp_conn_t *c = xcalloc(1, sizeof(*c));
    subscriber_init(&c->sub, &subscriber_ops, c);
    c->l = l;
    sbuf_init(&c->out);
    sbuf_init(&c->wbuf);
    uv_tcp_init(&l->s->loop, &c->tcp);
    c->tcp.data = c;
    c->next = l->conns;
    if (l->conns != NULL) {
        l->conns->prev = c;
    }
    l->conns = c;
    l->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close_resp(c);
        return;
    }
    update_reading(c);
    if (c->closed) {
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    METRIC_ADD(l->s->metrics.resp_connections_accepted, 1);
}

int resp_listener_start(worker_t *s)
{
    const config_t *cfg = s->cfg;
    resp_listener_t *l = xcalloc(1, sizeof(*l));
    l->s = s;
    l->lim.max_args = RESP_MAX_ARGS;
    l->lim.max_bulk = cfg->max_message_size;
    l->lim.max_inline = RESP_MAX_INLINE;
    l->lim.max_request = cfg->max_message_size + RESP_REQ_EXTRA;
    s->resp = l;

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(cfg->resp_host, cfg->resp_port, &hints, &res);
    if (rc != 0) {
        log_error("cannot resolve resp.host", "host=%s err=%s", log_quote(cfg->resp_host),
                  log_quote(gai_strerror(rc)));
        return -1;
    }
    uv_tcp_init(&s->loop, &l->tcp);
    l->tcp.data = l;
    l->open = true;
    /* Without SO_REUSEPORT (libuv sets only SO_REUSEADDR): bind or listen
     * fails with EADDRINUSE while any other socket listens on the address. */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, res->ai_addr, res->ai_addrlen < sizeof(ss) ? res->ai_addrlen : sizeof(ss));
    rc = uv_tcp_bind(&l->tcp, res->ai_addr, 0);
    freeaddrinfo(res);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&l->tcp, (int)cfg->backlog, on_connection);
    }
    int len = sizeof(ss);
    char where[96] = "?";
    if (rc == UV_EADDRINUSE) {
        broker_format_addr(&ss, where, sizeof(where));
        broker_log_addr_in_use("resp", where);
        return -1;
    }
    if (rc == 0 && uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) == 0) {
        broker_format_addr(&ss, where, sizeof(where));
    }
    if (rc != 0) {
        log_error("cannot listen (resp)", "host=%s port=%s err=%s", log_quote(cfg->resp_host),
                  cfg->resp_port, log_quote(uv_strerror(rc)));
        return -1;
    }
    unsigned port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    log_info("listening", "proto=resp addr=%s", where);
    if (cfg->resp_port_file[0] != '\0' && broker_write_port_file(cfg->resp_port_file, port) != 0) {
        log_error("cannot write resp port file", "path=%s err=%s", log_quote(cfg->resp_port_file),
                  log_quote(strerror(errno)));
        return -1;
    }
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    (void)h;
}

void resp_listener_shutdown(worker_t *s)
{
    resp_listener_t *l = s->resp;
    if (l == NULL) {
        return;
    }
    if (l->open) {
        l->open = false;
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    }
    for (resp_conn_t *c = l->conns; c != NULL; c = c->next) {
        /* Like a WebSocket getting its close frame: nothing more is pushed
         * or read, what is queued is written, then the connection closes
         * (flush_conn). Commands not yet executed are dropped. */
        remove_subs(c, true, true);
        if (c->pub_paused) {
            c->pub_paused = false;
            l->npub_paused--;
        }
        c->quit = true;
        update_reading(c);
        mark_dirty(c);
    }
}

void resp_listener_close_all(worker_t *s)
{
    resp_listener_t *l = s->resp;
    while (l != NULL && l->conns != NULL) {
        conn_close_resp(l->conns);
    }
}

void resp_listener_free(worker_t *s)
{
    free(s->resp);
    s->resp = NULL;
}

size_t resp_connection_count(const worker_t *s)
{
    return s->resp != NULL ? s->resp->nconns : 0;
}
