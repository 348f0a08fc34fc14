/*
 * message.c - wire protocol v1: parsing client requests and building server
 * frames (see message.h for the contract and protocol/PROTOCOL.md for the
 * normative rules).
 *
 * Parsing uses the strict scanner (json_scan.h), which accepts what jansson
 * does with JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL: a request such as
 * {"type":"subscribe","topic":"a","topic":"$sys.>"} means different things
 * to parsers that keep the first or the last key, so an intermediary that
 * checks one and a broker that uses the other could disagree about what was
 * authorised. Rejecting duplicates (bad_json) removes the ambiguity.
 * "\u0000" is accepted inside strings, because a publish payload may be any
 * JSON value; topics still reject it as a control character. No tree is
 * built: `data` stays the bytes the client sent, which the broker forwards.
 *
 * Building uses no jansson except for wsb_msg_build_json and
 * wsb_msg_dump_value: every other frame is written by a two-pass writer that
 * first counts the exact JSON length and then writes it into a buffer
 * allocated once, right after the WebSocket header.
 */
#include "wsb/message.h"

#include "wsb/json_scan.h"
#include "wsb/topic.h"
#include "wsb/utf8.h"
#include "wsb/ws_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest integer a JavaScript client can hold exactly (2^53 - 1). */
#define MAX_SAFE_ID   INT64_C(9007199254740991)
#define MAX_EPOCH_LEN 64

/*
 * Allocates headroom + header + `json_len` bytes, writes the frame header and
 * returns the buffer; *json points where the JSON goes. NULL on ENOMEM or if
 * the sizes overflow size_t.
 */
static uint8_t *frame_alloc(size_t headroom, size_t json_len, size_t *frame_len, uint8_t **json)
{
    size_t hdr = wsb_ws_header_len(json_len, false);
    if (json_len > SIZE_MAX - hdr || headroom > SIZE_MAX - hdr - json_len) {
        return NULL;
    }
    uint8_t *buf = malloc(headroom + hdr + json_len);
    if (buf == NULL) {
        return NULL;
    }
    (void)wsb_ws_write_header(buf + headroom, true, WSB_WS_OP_TEXT, json_len, NULL);
    *json = buf + headroom + hdr;
    if (frame_len != NULL) {
        *frame_len = hdr + json_len;
    }
    return buf;
}

/* ---- two-pass JSON writer ------------------------------------------------
 * With p == NULL it only counts; otherwise it writes at p + n. Running the
 * same emit function twice gives the exact size, then the bytes. */

typedef struct {
    uint8_t *p;
    size_t n;
} writer_t;

static void w_bytes(writer_t *w, const void *s, size_t n)
{
    if (w->p != NULL && n > 0) {
        memcpy(w->p + w->n, s, n);
    }
    /* The counting pass saturates instead of wrapping, so an absurd input
     * size makes frame_alloc() fail rather than under-allocate. */
    w->n = n > SIZE_MAX - w->n ? SIZE_MAX : w->n + n;
}

#define W_LIT(w, lit) w_bytes((w), (lit), sizeof(lit) - 1)

static void w_u64(writer_t *w, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v != 0);
    w_bytes(w, tmp + i, sizeof tmp - i);
}

static void w_i64(writer_t *w, int64_t v)
{
    if (v < 0) {
        W_LIT(w, "-");
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        w_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        w_u64(w, (uint64_t)v);
    }
}

/*
 * Writes `s` as a quoted JSON string. '"', '\\' and C0 controls are escaped;
 * everything else valid is copied as is. A byte that does not start a valid
 * UTF-8 sequence becomes U+FFFD, so the frame is always valid UTF-8 text (a
 * browser closes the connection on anything else) whatever the caller passed.
 */
static void w_str(writer_t *w, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)str;
    size_t run = 0; /* start of the pending run of bytes copied verbatim */

    W_LIT(w, "\"");
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = wsb__utf8_seq_len(s + i, len - i);
            if (n > 0) {
                i += n;
                continue;
            }
        }
        w_bytes(w, s + run, i - run);
        switch (c) {
        case '"':
            W_LIT(w, "\\\"");
            break;
        case '\\':
            W_LIT(w, "\\\\");
            break;
        case '\n':
            W_LIT(w, "\\n");
            break;
        case '\r':
            W_LIT(w, "\\r");
            break;
        case '\t':
            W_LIT(w, "\\t");
            break;
        case '\b':
            W_LIT(w, "\\b");
            break;
        case '\f':
            W_LIT(w, "\\f");
            break;
        default:
            if (c < 0x20) {
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
                w_bytes(w, u, sizeof u);
            } else {
                W_LIT(w, "\xEF\xBF\xBD"); /* U+FFFD for an invalid byte */
            }
            break;
        }
        i++;
        run = i;
    }
    w_bytes(w, s + run, len - run);
    W_LIT(w, "\"");
}

static void w_cstr(writer_t *w, const char *s)
{
    w_str(w, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

typedef void (*emit_fn)(writer_t *w, const void *arg);

/* Counts, allocates once, writes. */
static uint8_t *build(emit_fn emit, const void *arg, size_t headroom, size_t *frame_len)
{
    writer_t count = {NULL, 0};
    emit(&count, arg);
    uint8_t *json;
    uint8_t *buf = frame_alloc(headroom, count.n, frame_len, &json);
    if (buf == NULL) {
        return NULL;
    }
    writer_t out = {json, 0};
    emit(&out, arg);
    return buf;
}

/* ---- message (the hot path) --------------------------------------------- */

typedef struct {
    wsb_str_t topic;
    uint64_t seq;
    wsb_str_t epoch;
    wsb_str_t data;
    wsb_str_t from;     /* serialized JSON, or empty: no "from" */
    wsb_str_t reply_to; /* a request's inbox, or empty */
} message_args_t;

static void emit_message(writer_t *w, const void *arg)
{
    const message_args_t *m = arg;
    W_LIT(w, "{\"type\":\"message\",\"topic\":");
    w_str(w, m->topic.p, m->topic.len);
    W_LIT(w, ",\"seq\":");
    w_u64(w, m->seq);
    if (m->epoch.p != NULL && m->epoch.len > 0) {
        W_LIT(w, ",\"epoch\":");
        w_str(w, m->epoch.p, m->epoch.len);
    }
    if (m->from.p != NULL && m->from.len > 0) {
        W_LIT(w, ",\"from\":");
        w_bytes(w, m->from.p, m->from.len);
    }
    if (m->reply_to.p != NULL && m->reply_to.len > 0) {
        W_LIT(w, ",\"reply_to\":");
        w_str(w, m->reply_to.p, m->reply_to.len);
    }
    W_LIT(w, ",\"data\":");
    if (m->data.p != NULL && m->data.len > 0) {
        w_bytes(w, m->data.p, m->data.len);
    } else {
        W_LIT(w, "null");
    }
    W_LIT(w, "}");
}

uint8_t *wsb_msg_build_message(wsb_str_t topic, uint64_t seq, wsb_str_t epoch, wsb_str_t data_json,
                               size_t headroom, size_t *frame_len)
{
    return wsb_msg_build_message_from(topic, seq, epoch, WSB_STR_NULL, data_json, headroom,
                                      frame_len);
}

uint8_t *wsb_msg_build_message_from(wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                                    wsb_str_t from_json, wsb_str_t data_json, size_t headroom,
                                    size_t *frame_len)
{
    message_args_t m = {topic, seq, epoch, data_json, from_json, WSB_STR_NULL};
    return build(emit_message, &m, headroom, frame_len);
}

uint8_t *wsb_msg_build_request_message(wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                                       wsb_str_t from_json, wsb_str_t reply_to, wsb_str_t data_json,
                                       size_t headroom, size_t *frame_len)
{
    message_args_t m = {topic, seq, epoch, data_json, from_json, reply_to};
    return build(emit_message, &m, headroom, frame_len);
}

/* ---- small replies ------------------------------------------------------- */

static void emit_ack(writer_t *w, const void *arg)
{
    const wsb_ack_t *a = arg;
    W_LIT(w, "{\"type\":\"ack\",\"id\":");
    w_i64(w, a->id);
    if (a->has_seq) {
        W_LIT(w, ",\"seq\":");
        w_u64(w, a->seq);
    }
    if (a->epoch.p != NULL && a->epoch.len > 0) {
        W_LIT(w, ",\"epoch\":");
        w_str(w, a->epoch.p, a->epoch.len);
    }
    if (a->stream.p != NULL && a->stream.len > 0) {
        W_LIT(w, ",\"stream\":");
        w_str(w, a->stream.p, a->stream.len);
    }
    if (a->recovered == 0) {
        W_LIT(w, ",\"recovered\":false");
    } else if (a->recovered > 0) {
        W_LIT(w, ",\"recovered\":true");
    }
    W_LIT(w, "}");
}

uint8_t *wsb_msg_build_ack(const wsb_ack_t *ack, size_t headroom, size_t *frame_len)
{
    return build(emit_ack, ack, headroom, frame_len);
}

static void emit_gap(writer_t *w, const void *arg)
{
    const wsb_gap_t *g = arg;
    W_LIT(w, "{\"type\":\"gap\",\"topic\":");
    w_str(w, g->topic.p, g->topic.len);
    if (g->stream.p != NULL && g->stream.len > 0) {
        W_LIT(w, ",\"stream\":");
        w_str(w, g->stream.p, g->stream.len);
    }
    W_LIT(w, ",\"epoch\":");
    w_str(w, g->epoch.p, g->epoch.len);
    W_LIT(w, ",\"seq\":");
    w_u64(w, g->seq);
    if (g->has_to) {
        W_LIT(w, ",\"to\":");
        w_u64(w, g->to);
    }
    W_LIT(w, "}");
}

uint8_t *wsb_msg_build_gap_ex(const wsb_gap_t *gap, size_t headroom, size_t *frame_len)
{
    return build(emit_gap, gap, headroom, frame_len);
}

uint8_t *wsb_msg_build_gap(wsb_str_t topic, wsb_str_t epoch, uint64_t seq, size_t headroom,
                           size_t *frame_len)
{
    wsb_gap_t g = {.topic = topic, .stream = WSB_STR_NULL, .epoch = epoch, .seq = seq};
    return build(emit_gap, &g, headroom, frame_len);
}

typedef struct {
    bool has_id;
    int64_t id;
    const char *code;
    const char *message;
} error_args_t;

static void emit_error(writer_t *w, const void *arg)
{
    const error_args_t *e = arg;
    W_LIT(w, "{\"type\":\"error\"");
    if (e->has_id) {
        W_LIT(w, ",\"id\":");
        w_i64(w, e->id);
    }
    W_LIT(w, ",\"code\":");
    w_cstr(w, e->code != NULL ? e->code : WSB_ERR_INTERNAL);
    W_LIT(w, ",\"message\":");
    w_cstr(w, e->message);
    W_LIT(w, "}");
}

uint8_t *wsb_msg_build_error(bool has_id, int64_t id, const char *code, const char *message,
                             size_t headroom, size_t *frame_len)
{
    error_args_t e = {has_id, id, code, message};
    return build(emit_error, &e, headroom, frame_len);
}

typedef struct {
    bool has_id;
    int64_t id;
} pong_args_t;

static void emit_pong(writer_t *w, const void *arg)
{
    const pong_args_t *p = arg;
    W_LIT(w, "{\"type\":\"pong\"");
    if (p->has_id) {
        W_LIT(w, ",\"id\":");
        w_i64(w, p->id);
    }
    W_LIT(w, "}");
}

uint8_t *wsb_msg_build_pong(bool has_id, int64_t id, size_t headroom, size_t *frame_len)
{
    pong_args_t p = {has_id, id};
    return build(emit_pong, &p, headroom, frame_len);
}

static void emit_welcome(writer_t *w, const void *arg)
{
    const wsb_welcome_t *wl = arg;
    W_LIT(w, "{\"type\":\"welcome\",\"protocol\":");
    w_u64(w, WSB_PROTOCOL_VERSION);
    W_LIT(w, ",\"client_id\":");
    w_cstr(w, wl->client_id);
    W_LIT(w, ",\"user\":");
    if (wl->user.p != NULL) {
        w_str(w, wl->user.p, wl->user.len);
    } else {
        W_LIT(w, "null");
    }
    W_LIT(w, ",\"node_id\":");
    w_cstr(w, wl->node_id);
    W_LIT(w, ",\"version\":");
    w_cstr(w, wl->version);
    W_LIT(w, ",\"limits\":{\"max_message_size\":");
    w_u64(w, wl->max_message_size);
    W_LIT(w, ",\"max_subscriptions\":");
    w_u64(w, wl->max_subscriptions);
    W_LIT(w, ",\"ping_interval_ms\":");
    w_u64(w, wl->ping_interval_ms);
    W_LIT(w, "}}");
}

uint8_t *wsb_msg_build_welcome(const wsb_welcome_t *w, size_t headroom, size_t *frame_len)
{
    return build(emit_welcome, w, headroom, frame_len);
}

#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

uint8_t *wsb_msg_build_json(const json_t *obj, size_t headroom, size_t *frame_len)
{
    if (obj == NULL) {
        return NULL;
    }
    size_t n = json_dumpb(obj, NULL, 0, DUMP_FLAGS);
    if (n == 0) {
        return NULL;
    }
    uint8_t *json;
    uint8_t *buf = frame_alloc(headroom, n, frame_len, &json);
    if (buf == NULL) {
        return NULL;
    }
    if (json_dumpb(obj, (char *)json, n, DUMP_FLAGS) != n) {
        free(buf);
        return NULL;
    }
    return buf;
}

char *wsb_msg_dump_value(const json_t *v, size_t *len)
{
    if (v == NULL) {
        return NULL;
    }
    size_t n = json_dumpb(v, NULL, 0, DUMP_FLAGS);
    if (n == 0) {
        return NULL;
    }
    char *out = malloc(n);
    if (out == NULL) {
        return NULL;
    }
    if (json_dumpb(v, out, n, DUMP_FLAGS) != n) {
        free(out);
        return NULL;
    }
    if (len != NULL) {
        *len = n;
    }
    return out;
}

/* ---- parsing ------------------------------------------------------------- */

#define TYPES_HINT                                                                                 \
    "subscribe, unsubscribe, publish, request, ping, auth, presence or presence_stats"

const char *wsb_msg_type_name(wsb_msg_type_t t)
{
    switch (t) {
    case WSB_MSG_SUBSCRIBE:
        return "subscribe";
    case WSB_MSG_UNSUBSCRIBE:
        return "unsubscribe";
    case WSB_MSG_PUBLISH:
        return "publish";
    case WSB_MSG_PING:
        return "ping";
    case WSB_MSG_AUTH:
        return "auth";
    case WSB_MSG_PRESENCE:
        return "presence";
    case WSB_MSG_PRESENCE_STATS:
        return "presence_stats";
    case WSB_MSG_REQUEST:
        return "request";
    }
    return "unknown";
}

/* Sets the code of an error whose text is already in err->message (our texts
 * are ASCII, so a cut at the buffer's end cannot split a UTF-8 sequence). */
static int fail_with(wsb_msg_error_t *err, const char *code)
{
    err->code = code;
    return WSB_EINVAL;
}

static int set_error(wsb_msg_error_t *err, const char *code, const char *message)
{
    (void)snprintf(err->message, sizeof err->message, "%s", message);
    return fail_with(err, code);
}

static const char *json_kind(wsb_json_kind_t k)
{
    switch (k) {
    case WSB_JSON_OBJECT:
        return "an object";
    case WSB_JSON_ARRAY:
        return "an array";
    case WSB_JSON_STRING:
        return "a string";
    case WSB_JSON_INTEGER:
    case WSB_JSON_REAL:
        return "a number";
    case WSB_JSON_TRUE:
    case WSB_JSON_FALSE:
        return "a boolean";
    case WSB_JSON_NULL:
        return "null";
    case WSB_JSON_NONE:
        break;
    }
    return "unknown";
}

/* The top-level members a request may carry (index = the K_ constant). */
enum { K_TYPE, K_TOPIC, K_ID, K_DATA, K_TOKEN, K_SINCE, K_HISTORY, K_TIMEOUT, K_COUNT };
static const char *const member_names[K_COUNT] = {"type",  "topic", "id",      "data",
                                                  "token", "since", "history", "timeout_ms"};

typedef struct {
    wsb_json_value_t v[K_COUNT];
    size_t input_len; /* bounds every decoded string together */
} members_t;

/* The decoded bytes of string `v`: a view into the input, or (escaped) a
 * copy in out->strings, allocated once with room for every string of the
 * input. WSB_ENOMEM when that allocation fails. */
static int string_of(wsb_msg_t *out, const members_t *mb, wsb_json_value_t v, wsb_str_t *s,
                     wsb_msg_error_t *err)
{
    if (v.escaped && out->strings == NULL) {
        out->strings = malloc(mb->input_len);
        if (out->strings == NULL) {
            set_error(err, WSB_ERR_INTERNAL, "out of memory while parsing the message");
            return WSB_ENOMEM;
        }
    }
    *s = wsb_json_string(v, v.escaped ? out->strings + out->strings_used : NULL);
    if (v.escaped) {
        out->strings_used += s->len;
    }
    return 0;
}

static bool int_in(wsb_json_value_t v, int64_t lo, int64_t hi)
{
    if (v.kind != WSB_JSON_INTEGER) {
        return false;
    }
    int64_t i = wsb_json_integer(v);
    return i >= lo && i <= hi;
}

/* Reads the optional "id". Returns 0 (has_id set when present) or an error. */
static int parse_id(const members_t *mb, wsb_msg_t *out, wsb_msg_error_t *err)
{
    wsb_json_value_t id = mb->v[K_ID];
    if (id.kind == WSB_JSON_NONE) {
        return 0;
    }
    if (!int_in(id, 0, MAX_SAFE_ID)) {
        return set_error(err, WSB_ERR_BAD_FIELD,
                         "\"id\" must be an integer from 0 to 9007199254740991 (2^53-1)");
    }
    out->has_id = true;
    out->id = wsb_json_integer(id);
    err->has_id = true;
    err->id = out->id;
    return 0;
}

static int parse_type(const members_t *mb, wsb_msg_t *out, wsb_msg_error_t *err)
{
    static const struct {
        const char *name;
        wsb_msg_type_t type;
    } types[] = {
        {"publish", WSB_MSG_PUBLISH},
        {"subscribe", WSB_MSG_SUBSCRIBE},
        {"unsubscribe", WSB_MSG_UNSUBSCRIBE},
        {"ping", WSB_MSG_PING},
        {"auth", WSB_MSG_AUTH},
        {"presence", WSB_MSG_PRESENCE},
        {"presence_stats", WSB_MSG_PRESENCE_STATS},
        {"request", WSB_MSG_REQUEST},
    };
    wsb_json_value_t type = mb->v[K_TYPE];
    if (type.kind == WSB_JSON_NONE) {
        return set_error(err, WSB_ERR_BAD_TYPE, "\"type\" is required: one of " TYPES_HINT);
    }
    if (type.kind != WSB_JSON_STRING) {
        return set_error(err, WSB_ERR_BAD_TYPE, "\"type\" must be a string: one of " TYPES_HINT);
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (wsb_json_string_is(type, types[i].name)) {
            out->type = types[i].type;
            return 0;
        }
    }
    return set_error(err, WSB_ERR_BAD_TYPE, "unknown \"type\": expected " TYPES_HINT);
}

static int parse_topic(const members_t *mb, wsb_msg_t *out, wsb_msg_error_t *err)
{
    const char *op = wsb_msg_type_name(out->type);
    wsb_json_value_t topic = mb->v[K_TOPIC];
    if (topic.kind == WSB_JSON_NONE) {
        (void)snprintf(err->message, sizeof err->message, "\"topic\" is required for %s", op);
        return fail_with(err, WSB_ERR_MISSING_FIELD);
    }
    if (topic.kind != WSB_JSON_STRING) {
        return set_error(err, WSB_ERR_BAD_FIELD, "\"topic\" must be a string");
    }
    int rc = string_of(out, mb, topic, &out->topic, err);
    if (rc != 0) {
        return rc;
    }
    bool sends = out->type == WSB_MSG_PUBLISH || out->type == WSB_MSG_REQUEST;
    int exact = sends || out->type == WSB_MSG_PRESENCE || out->type == WSB_MSG_PRESENCE_STATS;
    const char *why = NULL;
    if (wsb_topic_check(out->topic.p, out->topic.len, exact ? WSB_TOPIC_EXACT : WSB_TOPIC_PATTERN,
                        &why) != 0) {
        (void)snprintf(err->message, sizeof err->message, "\"topic\" is not a valid %s: %s",
                       exact ? "topic" : "pattern", why);
        return fail_with(err, WSB_ERR_BAD_TOPIC);
    }
    if (sends && wsb_topic_is_reserved(out->topic.p, out->topic.len)) {
        return set_error(err, WSB_ERR_FORBIDDEN,
                         "\"topic\": topics starting with '$' are reserved for the broker; "
                         "clients may subscribe to them but not publish");
    }
    return 0;
}

static int parse_since(const members_t *mb, wsb_msg_t *out, wsb_msg_error_t *err)
{
    static const char *const names[] = {"epoch", "seq"};
    if (out->type != WSB_MSG_SUBSCRIBE) {
        return set_error(err, WSB_ERR_BAD_SINCE, "\"since\" is only allowed on subscribe");
    }
    wsb_json_value_t since = mb->v[K_SINCE];
    if (since.kind != WSB_JSON_OBJECT) {
        return set_error(err, WSB_ERR_BAD_SINCE,
                         "\"since\" must be an object {\"epoch\":string,\"seq\":integer}");
    }
    wsb_json_value_t f[2];
    wsb_json_members(since, names, 2, f);
    wsb_str_t epoch = WSB_STR_NULL;
    if (f[0].kind == WSB_JSON_STRING) {
        int rc = string_of(out, mb, f[0], &epoch, err);
        if (rc != 0) {
            return rc;
        }
    }
    if (epoch.len == 0 || epoch.len > MAX_EPOCH_LEN) {
        return set_error(err, WSB_ERR_BAD_SINCE,
                         "\"since.epoch\" must be a non-empty string of at most 64 bytes");
    }
    if (!int_in(f[1], 0, INT64_MAX)) {
        return set_error(err, WSB_ERR_BAD_SINCE, "\"since.seq\" must be an integer >= 0");
    }
    /* On a pattern "since" is well-formed here: the broker accepts it
     * inside a stream rule and answers bad_since elsewhere (it knows the
     * rules; the parser does not). */
    out->has_since = true;
    out->since_epoch = epoch;
    out->since_seq = (uint64_t)wsb_json_integer(f[1]);
    return 0;
}

static int parse_history(const members_t *mb, wsb_msg_t *out, wsb_msg_error_t *err)
{
    if (out->type != WSB_MSG_SUBSCRIBE) {
        return set_error(err, WSB_ERR_BAD_SINCE, "\"history\" is only allowed on subscribe");
    }
    if (!int_in(mb->v[K_HISTORY], 0, WSB_MAX_HISTORY)) {
        return set_error(err, WSB_ERR_BAD_FIELD,
                         "\"history\" must be an integer from 0 to 1000000");
    }
    if (out->has_since) {
        return set_error(err, WSB_ERR_BAD_SINCE,
                         "\"history\" and \"since\" cannot be used together");
    }
    out->has_history = true;
    out->history = (uint32_t)wsb_json_integer(mb->v[K_HISTORY]);
    return 0;
}

static int parse_timeout(const members_t *mb, wsb_msg_t *out, wsb_msg_error_t *err)
{
    wsb_json_value_t t = mb->v[K_TIMEOUT];
    out->timeout_ms = WSB_REQUEST_TIMEOUT_DEFAULT_MS;
    if (t.kind == WSB_JSON_NONE) {
        return 0;
    }
    if (!int_in(t, 1, WSB_REQUEST_TIMEOUT_MAX_MS)) {
        return set_error(err, WSB_ERR_BAD_FIELD,
                         "\"timeout_ms\" must be an integer from 1 to 60000");
    }
    out->timeout_ms = (uint32_t)wsb_json_integer(t);
    return 0;
}

static int parse_auth(const members_t *mb, wsb_msg_t *out, wsb_msg_error_t *err)
{
    wsb_json_value_t token = mb->v[K_TOKEN];
    if (token.kind == WSB_JSON_NONE) {
        return set_error(err, WSB_ERR_MISSING_FIELD, "\"token\" is required for auth");
    }
    wsb_str_t t = WSB_STR_NULL;
    if (token.kind == WSB_JSON_STRING) {
        int rc = string_of(out, mb, token, &t, err);
        if (rc != 0) {
            return rc;
        }
    }
    if (t.len == 0 || t.len > 8192) {
        return set_error(err, WSB_ERR_BAD_FIELD,
                         "\"token\" must be a non-empty string of at most 8192 bytes");
    }
    out->token = t;
    return 0;
}

/*
 * Validation order (the first failing rule is reported): JSON syntax, object,
 * "id", "type", "topic", "data", "since", "history". "id" comes before everything else
 * so that every later error can echo it.
 */
static int parse_members(const members_t *mb, wsb_msg_t *out, wsb_msg_error_t *err)
{
    int rc = parse_id(mb, out, err);
    if (rc == 0) {
        rc = parse_type(mb, out, err);
    }
    if (rc != 0 || out->type == WSB_MSG_PING) {
        return rc;
    }
    if (out->type == WSB_MSG_AUTH) {
        return parse_auth(mb, out, err);
    }
    rc = parse_topic(mb, out, err);
    if (rc != 0) {
        return rc;
    }
    if (out->type == WSB_MSG_PUBLISH || out->type == WSB_MSG_REQUEST) {
        if (mb->v[K_DATA].kind == WSB_JSON_NONE) {
            (void)snprintf(err->message, sizeof err->message,
                           "\"data\" is required for %s (use null for no payload)",
                           wsb_msg_type_name(out->type));
            return fail_with(err, WSB_ERR_MISSING_FIELD);
        }
        out->data = mb->v[K_DATA].raw;
    }
    if (out->type == WSB_MSG_REQUEST) {
        rc = parse_timeout(mb, out, err);
        if (rc != 0) {
            return rc;
        }
    }
    if (mb->v[K_SINCE].kind != WSB_JSON_NONE) {
        rc = parse_since(mb, out, err);
        if (rc != 0) {
            return rc;
        }
    }
    if (mb->v[K_HISTORY].kind != WSB_JSON_NONE) {
        return parse_history(mb, out, err);
    }
    return 0;
}

int wsb_msg_parse(const char *json, size_t len, wsb_msg_t *out, wsb_msg_error_t *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);

    members_t mb;
    mb.input_len = json != NULL ? len : 0;
    wsb_json_value_t root;
    wsb_json_error_t jerr;
    int rc =
        wsb_json_scan(json, mb.input_len, WSB_JSON_ANY, member_names, K_COUNT, mb.v, &root, &jerr);
    if (rc == WSB_ENOMEM) {
        set_error(err, WSB_ERR_INTERNAL, "out of memory while parsing the message");
        return WSB_ENOMEM;
    }
    if (rc != 0) {
        (void)snprintf(err->message, sizeof err->message, "invalid JSON at byte %zu: %s",
                       jerr.offset, jerr.reason);
        return fail_with(err, WSB_ERR_BAD_JSON);
    }
    if (root.kind != WSB_JSON_OBJECT) {
        (void)snprintf(err->message, sizeof err->message, "a message must be a JSON object, not %s",
                       json_kind(root.kind));
        return fail_with(err, WSB_ERR_BAD_JSON);
    }
    rc = parse_members(&mb, out, err);
    if (rc != 0) {
        wsb_msg_free(out);
    }
    return rc;
}

void wsb_msg_free(wsb_msg_t *m)
{
    if (m == NULL) {
        return;
    }
    free(m->strings);
    memset(m, 0, sizeof *m);
}
