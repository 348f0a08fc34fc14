/*
 * message.c - wire protocol v1: parsing client requests and building server
 * frames (see message.h for the contract and protocol/PROTOCOL.md for the
 * normative rules).
 *
 * Parsing uses jansson with JSON_REJECT_DUPLICATES: a request such as
 * {"type":"subscribe","topic":"a","topic":"$sys.>"} means different things
 * to parsers that keep the first or the last key, so an intermediary that
 * checks one and a broker that uses the other could disagree about what was
 * authorised. Rejecting duplicates (bad_json) removes the ambiguity.
 * JSON_ALLOW_NUL accepts "\u0000" inside strings, because a publish payload
 * may be any JSON value; topics still reject it as a control character.
 *
 * Building uses no jansson except for wsb_msg_build_json and
 * wsb_msg_dump_value: every other frame is written by a two-pass writer that
 * first counts the exact JSON length and then writes it into a buffer
 * allocated once, right after the WebSocket header.
 */
#include "wsb/message.h"

#include "wsb/topic.h"
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

/* Length of the valid UTF-8 sequence at s[0] (a byte >= 0x80), or 0 when it
 * is not one (stray continuation, overlong, surrogate, > U+10FFFF, cut). */
static size_t utf8_seq_len(const uint8_t *s, size_t avail)
{
    uint8_t b0 = s[0];
    size_t n;
    uint8_t lo = 0x80;
    uint8_t hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        lo = b0 == 0xE0 ? 0xA0 : 0x80;
        hi = b0 == 0xED ? 0x9F : 0xBF;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        lo = b0 == 0xF0 ? 0x90 : 0x80;
        hi = b0 == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return n;
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
            size_t n = utf8_seq_len(s + i, len - i);
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

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* jansson's error text quotes the offending input ("near '…'"), which may be
 * any bytes; keep only printable ASCII so the reply is valid UTF-8 and cannot
 * smuggle control characters into a client's logs. */
static void sanitize_ascii(char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c > 0x7E) {
            *s = '?';
        }
    }
}

/* jansson reports an allocation failure as json_error_out_of_memory only in
 * some places. Elsewhere it returns NULL without setting any error (its
 * json_error_t then keeps the zeroes we put there: empty text), or, inside
 * the lexer, a syntax error we cannot tell apart and answer as bad_json. */
static int json_error(wsb_msg_error_t *err, const json_error_t *jerr)
{
    if (json_error_code(jerr) == json_error_out_of_memory || jerr->text[0] == '\0') {
        set_error(err, WSB_ERR_INTERNAL, "out of memory while parsing the message");
        return WSB_ENOMEM;
    }
    (void)snprintf(err->message, sizeof err->message, "invalid JSON at byte %d: %.100s",
                   jerr->position, jerr->text);
    sanitize_ascii(err->message);
    return fail_with(err, WSB_ERR_BAD_JSON);
}

/* Reads the optional "id". Returns 0 (has_id set when present) or an error. */
static int parse_id(json_t *root, wsb_msg_t *out, wsb_msg_error_t *err)
{
    json_t *id = json_object_get(root, "id");
    if (id == NULL) {
        return 0;
    }
    if (!json_is_integer(id) || json_integer_value(id) < 0 ||
        json_integer_value(id) > MAX_SAFE_ID) {
        return set_error(err, WSB_ERR_BAD_FIELD,
                         "\"id\" must be an integer from 0 to 9007199254740991 (2^53-1)");
    }
    out->has_id = true;
    out->id = (int64_t)json_integer_value(id);
    err->has_id = true;
    err->id = out->id;
    return 0;
}

static int parse_type(json_t *root, wsb_msg_t *out, wsb_msg_error_t *err)
{
    static const struct {
        const char *name;
        wsb_msg_type_t type;
    } types[] = {
        {"subscribe", WSB_MSG_SUBSCRIBE},
        {"unsubscribe", WSB_MSG_UNSUBSCRIBE},
        {"publish", WSB_MSG_PUBLISH},
        {"ping", WSB_MSG_PING},
        {"auth", WSB_MSG_AUTH},
        {"presence", WSB_MSG_PRESENCE},
        {"presence_stats", WSB_MSG_PRESENCE_STATS},
        {"request", WSB_MSG_REQUEST},
    };
    json_t *type = json_object_get(root, "type");
    if (type == NULL) {
        return set_error(err, WSB_ERR_BAD_TYPE, "\"type\" is required: one of " TYPES_HINT);
    }
    if (!json_is_string(type)) {
        return set_error(err, WSB_ERR_BAD_TYPE, "\"type\" must be a string: one of " TYPES_HINT);
    }
    wsb_str_t name = {json_string_value(type), json_string_length(type)};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (wsb_str_eq(name, types[i].name)) {
            out->type = types[i].type;
            return 0;
        }
    }
    return set_error(err, WSB_ERR_BAD_TYPE, "unknown \"type\": expected " TYPES_HINT);
}

static int parse_topic(json_t *root, wsb_msg_t *out, wsb_msg_error_t *err)
{
    const char *op = wsb_msg_type_name(out->type);
    json_t *topic = json_object_get(root, "topic");
    if (topic == NULL) {
        (void)snprintf(err->message, sizeof err->message, "\"topic\" is required for %s", op);
        return fail_with(err, WSB_ERR_MISSING_FIELD);
    }
    if (!json_is_string(topic)) {
        return set_error(err, WSB_ERR_BAD_FIELD, "\"topic\" must be a string");
    }
    out->topic.p = json_string_value(topic);
    out->topic.len = json_string_length(topic);

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

static int parse_since(json_t *since, wsb_msg_t *out, wsb_msg_error_t *err)
{
    if (out->type != WSB_MSG_SUBSCRIBE) {
        return set_error(err, WSB_ERR_BAD_SINCE, "\"since\" is only allowed on subscribe");
    }
    if (!json_is_object(since)) {
        return set_error(err, WSB_ERR_BAD_SINCE,
                         "\"since\" must be an object {\"epoch\":string,\"seq\":integer}");
    }
    json_t *epoch = json_object_get(since, "epoch");
    if (epoch == NULL || !json_is_string(epoch) || json_string_length(epoch) == 0 ||
        json_string_length(epoch) > MAX_EPOCH_LEN) {
        return set_error(err, WSB_ERR_BAD_SINCE,
                         "\"since.epoch\" must be a non-empty string of at most 64 bytes");
    }
    json_t *seq = json_object_get(since, "seq");
    if (seq == NULL || !json_is_integer(seq) || json_integer_value(seq) < 0) {
        return set_error(err, WSB_ERR_BAD_SINCE, "\"since.seq\" must be an integer >= 0");
    }
    /* On a pattern "since" is well-formed here: the broker accepts it
     * inside a stream rule and answers bad_since elsewhere (it knows the
     * rules; the parser does not). */
    out->has_since = true;
    out->since_epoch.p = json_string_value(epoch);
    out->since_epoch.len = json_string_length(epoch);
    out->since_seq = (uint64_t)json_integer_value(seq);
    return 0;
}

static int parse_history(json_t *history, wsb_msg_t *out, wsb_msg_error_t *err)
{
    if (out->type != WSB_MSG_SUBSCRIBE) {
        return set_error(err, WSB_ERR_BAD_SINCE, "\"history\" is only allowed on subscribe");
    }
    if (!json_is_integer(history) || json_integer_value(history) < 0 ||
        json_integer_value(history) > WSB_MAX_HISTORY) {
        return set_error(err, WSB_ERR_BAD_FIELD,
                         "\"history\" must be an integer from 0 to 1000000");
    }
    if (out->has_since) {
        return set_error(err, WSB_ERR_BAD_SINCE,
                         "\"history\" and \"since\" cannot be used together");
    }
    out->has_history = true;
    out->history = (uint32_t)json_integer_value(history);
    return 0;
}

static int parse_timeout(json_t *root, wsb_msg_t *out, wsb_msg_error_t *err)
{
    json_t *t = json_object_get(root, "timeout_ms");
    out->timeout_ms = WSB_REQUEST_TIMEOUT_DEFAULT_MS;
    if (t == NULL) {
        return 0;
    }
    if (!json_is_integer(t) || json_integer_value(t) < 1 ||
        json_integer_value(t) > WSB_REQUEST_TIMEOUT_MAX_MS) {
        return set_error(err, WSB_ERR_BAD_FIELD,
                         "\"timeout_ms\" must be an integer from 1 to 60000");
    }
    out->timeout_ms = (uint32_t)json_integer_value(t);
    return 0;
}

/*
 * Validation order (the first failing rule is reported): JSON syntax, object,
 * "id", "type", "topic", "data", "since", "history". "id" comes before everything else
 * so that every later error can echo it.
 */
static int parse_root(json_t *root, wsb_msg_t *out, wsb_msg_error_t *err)
{
    if (!json_is_object(root)) {
        (void)snprintf(err->message, sizeof err->message, "a message must be a JSON object, not %s",
                       json_kind(root));
        return fail_with(err, WSB_ERR_BAD_JSON);
    }
    int rc = parse_id(root, out, err);
    if (rc == 0) {
        rc = parse_type(root, out, err);
    }
    if (rc != 0 || out->type == WSB_MSG_PING) {
        return rc;
    }
    if (out->type == WSB_MSG_AUTH) {
        json_t *token = json_object_get(root, "token");
        if (token == NULL) {
            return set_error(err, WSB_ERR_MISSING_FIELD, "\"token\" is required for auth");
        }
        if (!json_is_string(token) || json_string_length(token) == 0 ||
            json_string_length(token) > 8192) {
            return set_error(err, WSB_ERR_BAD_FIELD,
                             "\"token\" must be a non-empty string of at most 8192 bytes");
        }
        out->token.p = json_string_value(token);
        out->token.len = json_string_length(token);
        return 0;
    }
    rc = parse_topic(root, out, err);
    if (rc != 0) {
        return rc;
    }
    if (out->type == WSB_MSG_PUBLISH || out->type == WSB_MSG_REQUEST) {
        out->data = json_object_get(root, "data");
        if (out->data == NULL) {
            (void)snprintf(err->message, sizeof err->message,
                           "\"data\" is required for %s (use null for no payload)",
                           wsb_msg_type_name(out->type));
            return fail_with(err, WSB_ERR_MISSING_FIELD);
        }
    }
    if (out->type == WSB_MSG_REQUEST) {
        rc = parse_timeout(root, out, err);
        if (rc != 0) {
            return rc;
        }
    }
    json_t *since = json_object_get(root, "since");
    if (since != NULL) {
        rc = parse_since(since, out, err);
        if (rc != 0) {
            return rc;
        }
    }
    json_t *history = json_object_get(root, "history");
    if (history != NULL) {
        return parse_history(history, out, err);
    }
    return 0;
}

int wsb_msg_parse(const char *json, size_t len, wsb_msg_t *out, wsb_msg_error_t *err)
{
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);

    /* Zeroed because jansson leaves it untouched on some failures (the code
     * byte included), which json_error() relies on. */
    json_error_t jerr;
    memset(&jerr, 0, sizeof jerr);
    json_t *root = json_loadb(json != NULL ? json : "", json != NULL ? len : 0,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        return json_error(err, &jerr);
    }
    int rc = parse_root(root, out, err);
    if (rc != 0) {
        json_decref(root);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->root = root;
    return 0;
}

void wsb_msg_free(wsb_msg_t *m)
{
    if (m == NULL) {
        return;
    }
    json_decref(m->root);
    memset(m, 0, sizeof *m);
}
