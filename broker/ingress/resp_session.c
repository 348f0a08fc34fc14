/* resp_session.c - the RESP2 ingress on worker 0 (see resp_session.h). */
#include "ingress/resp_session.h"

#include "core/chist.h"
#include "core/pubsub.h"
#include "ingress/auth_key.h"
#include "ingress/ingress.h"
#include "ingress/resp_internal.h"
#include "net/conn.h"
#include "shared/log.h"
#include "wsb/json_scan.h"
#include "wsb/topic.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- output -------------------------------------------------------------------------------- */

/* Replies are built in c->out and queued on the connection as one buffer
 * per batch of requests (and before any push, so that order is kept). */
void resp_commit(resp_conn_t *c)
{
    if (c->out.len == 0) {
        return;
    }
    conn_t *conn = c->conn;
    if (conn->state == CONN_RESP || (conn->state == CONN_LINGER && !conn->shutdown_started)) {
        conn_send_always(conn, frame_buf_copy(c->out.p, c->out.len));
    }
    c->out.len = 0;
    if (c->out.cap > (size_t)64 * 1024) {
        sbuf_free(&c->out); /* a big reply's buffer is not kept for an idle connection */
        sbuf_init(&c->out);
    }
}

static void out_raw(resp_conn_t *c, const char *s, size_t n)
{
    sbuf_append(&c->out, s, n);
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
}

static void out_bulkz(resp_conn_t *c, const char *s)
{
    out_bulk(c, s, strlen(s));
}

static void out_int(resp_conn_t *c, long long v)
{
    sbuf_printf(&c->out, ":%lld\r\n", v);
}

static void out_array(resp_conn_t *c, size_t n)
{
    sbuf_printf(&c->out, "*%zu\r\n", n);
}

void resp_out_err(resp_conn_t *c, const char *msg)
{
    sbuf_printf(&c->out, "-%s\r\n", msg);
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

/* ---- delivery -------------------------------------------------------------------------------- */

/* Bytes of "$<n>\r\n" for a bulk string of `n` bytes. */
static size_t bulk_head_len(size_t n)
{
    size_t digits = 1;
    while (n >= 10) {
        n /= 10;
        digits++;
    }
    return 3 + digits;
}

/*
 * The subscriber's deliver_cb: queues one "message" push per matching
 * SUBSCRIBE channel and one "pmessage" per matching PSUBSCRIBE pattern
 * (Redis semantics), as one buffer on the connection, inside its
 * max_outbound_bytes and the worker's share of max_total_outbound like a
 * WebSocket frame. Over them the verdict is FULL: the core closes the
 * subscriber (close_cb; no gap notice exists in RESP).
 *
 * Each push is copied into a buffer of its own (CONVENTIONS.md rule 4 asks
 * for shared buffers): RESP has its own framing, so the worker's WebSocket
 * frame cannot be queued as it is. The payload could be a zero-copy slice of
 * that frame_buf (data_off, data_len inside the WebSocket frame) between a
 * small per-push header and trailer, at three queue entries per push
 * instead of one. RESP is for a few backend consumers, and the copy is one
 * allocation and memcpy per push; converting is worth it if RESP fan-out
 * grows.
 */
/* The subscription `i` of `c` matches `m`'s topic: its pattern and length. */
static bool sub_matches(const resp_conn_t *c, uint32_t i, const xmsg_t *m, const char **pat,
                        size_t *plen)
{
    *pat = trie_sub_pattern(c->subs[i].sub);
    *plen = strlen(*pat);
    if (!c->subs[i].glob) {
        return *plen == m->topic_len && memcmp(*pat, m->topic, *plen) == 0;
    }
    return wsb_topic_matches(*pat, *plen, m->topic, m->topic_len);
}

/* Appends "$<n>\r\n<bytes>\r\n" at `p`; returns the end. */
static char *put_bulk(char *p, const char *bytes, size_t n)
{
    p += sprintf(p, "$%zu\r\n", n);
    memcpy(p, bytes, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

static subscriber_verdict_t deliver_cb(void *user_data, frame_buf_t *fb, xmsg_t *m)
{
    (void)fb; /* RESP has its own framing: the data is taken from the message */
    resp_conn_t *c = user_data;
    if (c->slow || c->conn->state != CONN_RESP || m->event) {
        return SUBSCRIBER_SKIPPED; /* RESP has no join/leave events */
    }
    const char *data = (const char *)m->frame + m->data_off;
    /* Sized first, then written once into a buffer of its own. */
    static const char msg_head[] = "*3\r\n$7\r\nmessage\r\n";
    static const char pmsg_head[] = "*4\r\n$8\r\npmessage\r\n";
    size_t tail = bulk_head_len(m->topic_len) + m->topic_len + 2 + bulk_head_len(m->data_len) +
                  m->data_len + 2;
    size_t len = 0;
    const char *pat;
    size_t plen;
    for (uint32_t i = 0; i < c->nsubs; i++) {
        if (sub_matches(c, i, m, &pat, &plen)) {
            len += c->subs[i].glob ? sizeof(pmsg_head) - 1 + bulk_head_len(plen) + plen + 2
                                   : sizeof(msg_head) - 1;
            len += tail;
        }
    }
    if (len == 0) {
        return SUBSCRIBER_SKIPPED;
    }
    resp_commit(c);                             /* replies first: a push never overtakes them */
    frame_buf_t *push = frame_buf_new(len + 1); /* + the last sprintf's NUL */
    char *p = (char *)push->bytes;
    for (uint32_t i = 0; i < c->nsubs; i++) {
        if (!sub_matches(c, i, m, &pat, &plen)) {
            continue;
        }
        if (c->subs[i].glob) {
            memcpy(p, pmsg_head, sizeof(pmsg_head) - 1);
            p = put_bulk(p + sizeof(pmsg_head) - 1, pat, plen);
        } else {
            memcpy(p, msg_head, sizeof(msg_head) - 1);
            p += sizeof(msg_head) - 1;
        }
        p = put_bulk(p, m->topic, m->topic_len);
        p = put_bulk(p, data, m->data_len);
    }
    assert((size_t)(p - (char *)push->bytes) == len);
    int rc = conn_send(c->conn, push, 0, (uint32_t)len);
    frame_buf_unref(push);
    return rc == 0 ? SUBSCRIBER_DELIVERED : SUBSCRIBER_FULL;
}

/* A gap cannot be told in RESP: the core closes the subscriber instead. */
static int gap_cb(void *user_data, const xmsg_t *m)
{
    (void)user_data;
    (void)m;
    return -1;
}

/* A slow subscriber: what is queued and not yet written is dropped and the
 * connection closed after what is in flight (never removed from the trie
 * here: the fan-out is walking it; conn_close does it). */
static void close_cb(void *user_data, int code, const char *why)
{
    (void)code;
    resp_conn_t *c = user_data;
    if (c->slow) {
        return;
    }
    c->slow = true;
    log_debug("resp: slow subscriber disconnected", "peer=%s why=%s", conn_peer(c->conn),
              log_quote(why));
    conn_abort_output(c->conn);
}

const subscriber_ops_t resp_subscriber_ops = {
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
        resp_out_err(c, "ERR wrong number of arguments for 'ping' command");
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
    switch (auth_check_api_key(c->l->ctx->auth, password.p, password.len, &c->key)) {
    case AUTH_KEY_NONE_CONFIGURED:
        resp_out_err(c,
                     "ERR AUTH <password> called without any password configured for the default "
                     "user. Are you sure your configuration is correct?");
        return false;
    case AUTH_KEY_OK:
        c->authed = true;
        return true;
    case AUTH_KEY_BAD:
        break;
    }
    resp_out_err(c, "WRONGPASS invalid username-password pair or user is disabled.");
    return false;
}

static void cmd_auth(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    /* AUTH password, or AUTH username password (the API key is the password;
     * the username is ignored). */
    if (argc > 3) {
        resp_out_err(c, "ERR syntax error");
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
            resp_out_err(c, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (v != 2) {
            resp_out_err(c, "NOPROTO sorry, this protocol version is not supported.");
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
            resp_out_err(c, msg);
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
        resp_out_err(c, "ERR DB index is out of range");
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
        resp_out_err(c, "ERR unknown subcommand for 'client': only SETNAME, SETINFO and ID are "
                        "supported");
    }
}

/* ---- clustered history hook (chist_session.h) ----------------------------------------- */

static void cluster_publish_done(chist_op_t *op)
{
    resp_conn_t *c = op->owner;
    c->cluster_op = NULL;
    if (op->status == 0) {
        out_int(c, (long long)op->seq);
    } else {
        resp_out_err(c, "ERR unavailable: the topic is numbered in Redis (clustered history or "
                        "stream) and Redis is unavailable");
    }
    chist_op_free(op);
    resp_resume_reading(c); /* the requests behind it */
}

static void reply_publish(resp_conn_t *c, wsb_str_t topic, wsb_str_t payload)
{
    ingress_ctx_t *ctx = c->l->ctx;
    const char *why = NULL;
    char msg[256];
    if (wsb_topic_check(topic.p, topic.len, WSB_TOPIC_EXACT, &why) != 0) {
        (void)snprintf(msg, sizeof(msg), "ERR invalid topic: %s", why);
        resp_out_err(c, msg);
        return;
    }
    if (wsb_topic_is_reserved(topic.p, topic.len)) {
        resp_out_err(c, "ERR topics starting with '$' are reserved");
        return;
    }
    if (c->key != NULL && !apikey_may_publish(c->key, topic.p, topic.len)) {
        (void)snprintf(msg, sizeof(msg), "NOPERM this API key may not publish to '%.*s'",
                       (int)(topic.len < 200 ? topic.len : 200), topic.p);
        resp_out_err(c, msg);
        return;
    }
    if (payload.len > ctx->cfg->max_message_size) {
        (void)snprintf(msg, sizeof(msg), "ERR payload of %zu bytes is over max_message_size (%llu)",
                       payload.len, (unsigned long long)ctx->cfg->max_message_size);
        resp_out_err(c, msg);
        return;
    }
    /* JSON is published as that value, its bytes as they came (a scan, no
     * jansson round trip); anything else as a JSON string. */
    wsb_json_value_t value;
    json_t *data = NULL;
    int rc = wsb_json_scan(payload.p, payload.len, WSB_JSON_ANY, NULL, 0, NULL, &value, NULL);
    if (rc == WSB_ENOMEM) {
        wsb_oom("publish payload");
    }
    if (rc != 0) {
        data = json_stringn(payload.p, payload.len);
        if (data == NULL) {
            resp_out_err(c, "ERR payload is neither JSON nor UTF-8 text");
            return;
        }
    }
    /* The key was checked above, where RESP has always reported NOPERM. */
    pubsub_publish_t req = {
        .topic = topic,
        .data = data,
        .data_json = rc == 0 ? value.raw : WSB_STR_NULL,
        .ingress = PUBSUB_RESP,
        .from_user = apikey_name(c->key),
        .owner = c,
        .done_cb = cluster_publish_done,
    };
    pubsub_published_t out;
    pubsub_status_t st = pubsub_publish(ctx->core, &req, &out);
    json_decref(data);
    if (st == PUBSUB_PENDING) {
        /* The seq comes from Redis: the reply, and every request after this
         * one (replies keep request order), wait for it; the connection is
         * not read meanwhile. */
        c->cluster_op = out.op;
        resp_pause_reading(c);
        return;
    }
    if (st != PUBSUB_OK) {
        resp_out_err(c, "ERR unavailable: the topic is numbered in Redis (clustered history or "
                        "stream) and Redis is unavailable");
        return;
    }
    if (out.pause) {
        /* As for a WebSocket publisher (router.h): the pipelined commands
         * behind this one wait, and TCP slows the client, until every
         * worker has caught up (worker.c's pressure timer resumes it). */
        conn_pause_publisher(c->conn);
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
    ingress_ctx_t *ctx = c->l->ctx;
    const char *why = NULL;
    if (wsb_topic_check(name.p, name.len, glob ? WSB_TOPIC_PATTERN : WSB_TOPIC_EXACT, &why) != 0) {
        char msg[300];
        (void)snprintf(msg, sizeof(msg), "ERR invalid %s: %s", glob ? "pattern" : "channel", why);
        resp_out_err(c, msg);
        return;
    }
    if (find_sub(c, name, glob) < 0) {
        /* One trie entry per (pattern, kind): SUBSCRIBE a.b and PSUBSCRIBE
         * a.b both hold one; the trie still reports the client once. API
         * keys grant publishing only: no permission to check. */
        pubsub_subscribe_t req = {.sub = &c->sub, .pattern = name, .nsubs = c->nsubs};
        pubsub_subscribed_t out;
        pubsub_status_t st = pubsub_subscribe(ctx->core, &req, &out);
        if (st == PUBSUB_NO_PATTERNS) {
            resp_out_err(c, "ERR " PUBSUB_NO_PATTERNS_WHY);
            return;
        }
        if (st != PUBSUB_OK) {
            char msg[120];
            (void)snprintf(msg, sizeof(msg), "ERR at most %u subscriptions per connection",
                           ctx->cfg->max_subscriptions);
            resp_out_err(c, msg);
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
    pubsub_unsubscribe(c->l->ctx->core, c->subs[i].sub);
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
    c->l->ctx->ops->update_gauges_cb(c->l->ctx);
}

static void cmd_reset(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    (void)argv;
    (void)argc;
    resp_remove_subs(c, true, true);
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
        resp_out_err(c, "ERR unknown subcommand for 'command': try COMMAND, COMMAND COUNT, "
                        "COMMAND INFO or COMMAND DOCS");
    }
}

void resp_dispatch(resp_conn_t *c, wsb_str_t *argv, size_t argc)
{
    resp_listener_t *l = c->l;
    METRIC_ADD(l->ctx->metrics->resp_commands, 1);
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
        resp_out_err(c, msg);
        return;
    }
    if ((cmd->arity > 0 && argc != (size_t)cmd->arity) ||
        (cmd->arity < 0 && argc < (size_t)-cmd->arity)) {
        (void)snprintf(msg, sizeof(msg), "ERR wrong number of arguments for '%s' command",
                       cmd->name);
        resp_out_err(c, msg);
        return;
    }
    if (cmd->needs_auth && !c->authed && auth_api_keys_configured(l->ctx->auth)) {
        resp_out_err(c, "NOAUTH Authentication required.");
        return;
    }
    if (c->nsubs > 0 && !cmd->in_subscribed) {
        (void)snprintf(msg, sizeof(msg),
                       "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                       "QUIT / RESET are allowed in this context",
                       cmd->name);
        resp_out_err(c, msg);
        return;
    }
    cmd->fn(c, argv, argc);
}
