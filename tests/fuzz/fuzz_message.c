/*
 * fuzz_message.c - wsb_msg_parse on arbitrary bytes, plus round trips
 * through the frame builders.
 *
 * Invariants checked (abort on violation):
 *   - the verdict, the error code and echoed id of a refusal, and the fields
 *     of an accepted message equal those of the jansson-based parser the
 *     scanner replaced (kept below as the reference), on the input without
 *     the NUL bytes jansson skips (json_scan.h);
 *   - a rejected input fills err with a known code and a printable message,
 *     and leaves nothing to free;
 *   - an accepted input has a valid topic for its type (exact and not
 *     reserved for publish, a pattern otherwise), an id within 0..2^53-1,
 *     and since only on a subscribe (an exact topic or a pattern: the
 *     broker, not the parser, decides whether a pattern is inside a stream);
 *     an auth message has a token of
 *     1 to 8192 bytes and nothing else;
 *   - a publish's data bytes (forwarded as sent) are one JSON value, and a
 *     `message` frame built around them, or around their re-serialization
 *     by wsb_msg_dump_value, is one well-formed server text frame whose
 *     JSON parses back to the same topic, seq, epoch and data;
 *   - a subscribe ack with a stream position (seq, the since epoch, the
 *     topic as the stream name, recovered) parses back to the same fields;
 *   - an error reply built from the error parses back with the same code,
 *     message and id.
 */
#include "wsb/common.h"
#include "wsb/json_scan.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADROOM 16

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

/* Validates the server frame header and returns the JSON payload parsed. */
static json_t *parse_frame(const uint8_t *buf, size_t frame_len)
{
    const uint8_t *f = buf + HEADROOM;
    check(frame_len >= 2 && f[0] == 0x81 && (f[1] & 0x80) == 0);
    size_t hdr;
    uint64_t n = f[1];
    if (n < 126) {
        hdr = 2;
    } else if (n == 126) {
        hdr = 4;
        n = ((uint64_t)f[2] << 8) | f[3];
        check(n >= 126);
    } else {
        hdr = 10;
        n = 0;
        for (int i = 0; i < 8; i++) {
            n = (n << 8) | f[2 + i];
        }
        check(n > 0xFFFF);
    }
    check(frame_len == hdr + n);
    json_error_t e;
    json_t *v =
        json_loadb((const char *)f + hdr, (size_t)n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    check(v != NULL && json_is_object(v));
    return v;
}

static bool str_is(const json_t *v, wsb_str_t s)
{
    return json_is_string(v) && json_string_length(v) == s.len &&
           memcmp(json_string_value(v), s.p, s.len) == 0;
}

static void check_error(const wsb_msg_error_t *err)
{
    static const char *codes[] = {WSB_ERR_BAD_JSON,  WSB_ERR_BAD_TYPE,  WSB_ERR_MISSING_FIELD,
                                  WSB_ERR_BAD_FIELD, WSB_ERR_BAD_TOPIC, WSB_ERR_BAD_SINCE,
                                  WSB_ERR_FORBIDDEN, WSB_ERR_INTERNAL};
    bool known = false;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        known = known || (err->code != NULL && strcmp(err->code, codes[i]) == 0);
    }
    check(known);
    size_t mlen = strnlen(err->message, sizeof err->message);
    check(mlen > 0 && mlen < sizeof err->message);
    for (size_t i = 0; i < mlen; i++) {
        check(err->message[i] >= 0x20 && err->message[i] <= 0x7E);
    }
    check(!err->has_id || (err->id >= 0 && err->id <= INT64_C(9007199254740991)));

    size_t flen;
    uint8_t *buf =
        wsb_msg_build_error(err->has_id, err->id, err->code, err->message, HEADROOM, &flen);
    check(buf != NULL);
    json_t *v = parse_frame(buf, flen);
    check(strcmp(json_string_value(json_object_get(v, "code")), err->code) == 0);
    check(strcmp(json_string_value(json_object_get(v, "message")), err->message) == 0);
    json_t *id = json_object_get(v, "id");
    check(err->has_id ? json_integer_value(id) == err->id : id == NULL);
    json_decref(v);
    free(buf);
}

/* Builds a `message` frame around the serialized `dj` (as the broker does:
 * a publish's data bytes as sent) and checks that a client reads back
 * exactly `value`. */
static void check_message(wsb_str_t topic, uint64_t seq, wsb_str_t epoch, wsb_str_t dj,
                          const json_t *value)
{
    size_t flen;
    uint8_t *buf = wsb_msg_build_message(topic, seq, epoch, dj, HEADROOM, &flen);
    check(buf != NULL);
    json_t *v = parse_frame(buf, flen);
    check(strcmp(json_string_value(json_object_get(v, "type")), "message") == 0);
    check(str_is(json_object_get(v, "topic"), topic));
    if (seq <= INT64_MAX) {
        check(json_integer_value(json_object_get(v, "seq")) == (json_int_t)seq);
    }
    json_t *jepoch = json_object_get(v, "epoch");
    check(epoch.len > 0 ? str_is(jepoch, epoch) : jepoch == NULL);
    check(json_equal(json_object_get(v, "data"), value));
    json_decref(v);
    free(buf);
}

/* The same with a jansson value serialized by wsb_msg_dump_value. */
static void check_dumped_message(wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                                 const json_t *value)
{
    size_t dlen = 0;
    char *d = wsb_msg_dump_value(value, &dlen);
    check(d != NULL && dlen > 0);
    check_message(topic, seq, epoch, (wsb_str_t){d, dlen}, value);
    free(d);
}

/* A subscribe ack inside a stream (PROTOCOL.md 3.1b), with client-chosen
 * bytes as epoch and stream name. */
static void check_stream_ack(int64_t id, uint64_t seq, wsb_str_t epoch, wsb_str_t stream)
{
    wsb_ack_t a = {
        .id = id, .has_seq = true, .seq = seq, .recovered = 1, .epoch = epoch, .stream = stream};
    size_t flen;
    uint8_t *buf = wsb_msg_build_ack(&a, HEADROOM, &flen);
    check(buf != NULL);
    json_t *v = parse_frame(buf, flen);
    check(strcmp(json_string_value(json_object_get(v, "type")), "ack") == 0);
    check(json_integer_value(json_object_get(v, "id")) == id);
    if (seq <= INT64_MAX) {
        check(json_integer_value(json_object_get(v, "seq")) == (json_int_t)seq);
    }
    check(str_is(json_object_get(v, "epoch"), epoch));
    check(str_is(json_object_get(v, "stream"), stream));
    check(json_is_true(json_object_get(v, "recovered")));
    json_decref(v);
    free(buf);
}

/* ---- the reference: the jansson-based parser this one replaced ----------
 * (issue 17 item 2). Same rules, same order, written on a jansson tree as
 * before; the scanner-based wsb_msg_parse must give the same verdict, the
 * same code and id on refusal, and the same fields on acceptance. */

typedef struct {
    const char *code; /* NULL: accepted */
    bool has_id;
    int64_t id;
    wsb_msg_type_t type;
    json_t *root;
    const json_t *topic, *data, *token, *epoch;
    bool has_since, has_history;
    int64_t seq, history, timeout_ms;
} ref_t;

static bool ref_int(const json_t *v, int64_t lo, int64_t hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static const char *ref_check(ref_t *r)
{
    static const char *const names[] = {NULL,   "subscribe", "unsubscribe",    "publish", "ping",
                                        "auth", "presence",  "presence_stats", "request"};
    const json_t *root = r->root;
    if (!json_is_object(root)) {
        return WSB_ERR_BAD_JSON;
    }
    const json_t *id = json_object_get(root, "id");
    if (id != NULL) {
        if (!ref_int(id, 0, INT64_C(9007199254740991))) {
            return WSB_ERR_BAD_FIELD;
        }
        r->has_id = true;
        r->id = json_integer_value(id);
    }
    const json_t *type = json_object_get(root, "type");
    if (!json_is_string(type)) {
        return WSB_ERR_BAD_TYPE;
    }
    r->type = 0;
    for (size_t i = 1; i < sizeof names / sizeof names[0]; i++) {
        if (json_string_length(type) == strlen(names[i]) &&
            strcmp(json_string_value(type), names[i]) == 0) {
            r->type = (wsb_msg_type_t)i;
        }
    }
    if (r->type == 0) {
        return WSB_ERR_BAD_TYPE;
    }
    if (r->type == WSB_MSG_PING) {
        return NULL;
    }
    if (r->type == WSB_MSG_AUTH) {
        r->token = json_object_get(root, "token");
        if (r->token == NULL) {
            return WSB_ERR_MISSING_FIELD;
        }
        size_t n = json_string_length(r->token);
        return json_is_string(r->token) && n >= 1 && n <= 8192 ? NULL : WSB_ERR_BAD_FIELD;
    }
    r->topic = json_object_get(root, "topic");
    if (r->topic == NULL) {
        return WSB_ERR_MISSING_FIELD;
    }
    if (!json_is_string(r->topic)) {
        return WSB_ERR_BAD_FIELD;
    }
    bool sends = r->type == WSB_MSG_PUBLISH || r->type == WSB_MSG_REQUEST;
    bool exact = sends || r->type == WSB_MSG_PRESENCE || r->type == WSB_MSG_PRESENCE_STATS;
    const char *t = json_string_value(r->topic);
    size_t tlen = json_string_length(r->topic);
    if (wsb_topic_check(t, tlen, exact ? WSB_TOPIC_EXACT : WSB_TOPIC_PATTERN, NULL) != 0) {
        return WSB_ERR_BAD_TOPIC;
    }
    if (sends && wsb_topic_is_reserved(t, tlen)) {
        return WSB_ERR_FORBIDDEN;
    }
    if (sends) {
        r->data = json_object_get(root, "data");
        if (r->data == NULL) {
            return WSB_ERR_MISSING_FIELD;
        }
    }
    r->timeout_ms = WSB_REQUEST_TIMEOUT_DEFAULT_MS;
    const json_t *to = json_object_get(root, "timeout_ms");
    if (r->type == WSB_MSG_REQUEST && to != NULL) {
        if (!ref_int(to, 1, WSB_REQUEST_TIMEOUT_MAX_MS)) {
            return WSB_ERR_BAD_FIELD;
        }
        r->timeout_ms = json_integer_value(to);
    }
    const json_t *since = json_object_get(root, "since");
    if (since != NULL) {
        if (r->type != WSB_MSG_SUBSCRIBE || !json_is_object(since)) {
            return WSB_ERR_BAD_SINCE;
        }
        r->epoch = json_object_get(since, "epoch");
        size_t n = json_string_length(r->epoch);
        const json_t *seq = json_object_get(since, "seq");
        if (!json_is_string(r->epoch) || n == 0 || n > 64 || !ref_int(seq, 0, INT64_MAX)) {
            return WSB_ERR_BAD_SINCE;
        }
        r->has_since = true;
        r->seq = json_integer_value(seq);
    }
    const json_t *history = json_object_get(root, "history");
    if (history != NULL) {
        if (r->type != WSB_MSG_SUBSCRIBE) {
            return WSB_ERR_BAD_SINCE;
        }
        if (!ref_int(history, 0, WSB_MAX_HISTORY)) {
            return WSB_ERR_BAD_FIELD;
        }
        if (r->has_since) {
            return WSB_ERR_BAD_SINCE;
        }
        r->has_history = true;
        r->history = json_integer_value(history);
    }
    return NULL;
}

static bool same_str(const json_t *j, wsb_str_t s)
{
    return j == NULL ? s.p == NULL : str_is(j, s);
}

/* The input with the NUL bytes jansson skips (one right after a number or
 * literal: json_scan.h) removed, so that both parsers judge the same text.
 * Returns the new length; `in` is edited in place. */
static size_t without_skipped_nuls(char *in, size_t n)
{
    json_t *j = json_loadb(in, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (j == NULL) {
        return n;
    }
    json_decref(j);
    size_t last = 0;
    wsb_json_error_t err;
    while (wsb_json_scan(in, n, WSB_JSON_ANY, NULL, 0, NULL, NULL, &err) == WSB_EINVAL &&
           err.offset > last && err.offset < n && in[err.offset] == '\0' &&
           isalnum((unsigned char)in[err.offset - 1])) {
        memmove(in + err.offset, in + err.offset + 1, n - err.offset - 1);
        n--;
        last = err.offset;
    }
    return n;
}

static void against_reference(const char *in, size_t size, int rc, const wsb_msg_t *m,
                              const wsb_msg_error_t *err)
{
    ref_t r;
    memset(&r, 0, sizeof r);
    r.root = json_loadb(in, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    const char *code = r.root == NULL ? WSB_ERR_BAD_JSON : ref_check(&r);
    if (rc != 0) {
        check(code != NULL && strcmp(code, err->code) == 0);
        check(err->has_id == r.has_id && (!r.has_id || err->id == r.id));
        json_decref(r.root);
        return;
    }
    check(code == NULL);
    check(m->type == r.type && m->has_id == r.has_id && (!r.has_id || m->id == r.id));
    check(same_str(r.topic, m->topic) && same_str(r.token, m->token));
    check(m->has_since == r.has_since && m->has_history == r.has_history);
    if (r.has_since) {
        check(str_is(r.epoch, m->since_epoch) && m->since_seq == (uint64_t)r.seq);
    }
    check(!r.has_history || m->history == (uint32_t)r.history);
    check(m->type != WSB_MSG_REQUEST || m->timeout_ms == (uint32_t)r.timeout_ms);
    if (r.data != NULL) {
        json_t *d = json_loadb(m->data.p, m->data.len,
                               JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        check(d != NULL && json_equal(d, r.data));
        json_decref(d);
    } else {
        check(m->data.p == NULL);
    }
    json_decref(r.root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy so ASan sees any read past the end. */
    char *in = malloc(size + (size == 0));
    check(in != NULL);
    if (size > 0) {
        memcpy(in, data, size);
    }
    size_t n = without_skipped_nuls(in, size);
    if (n != size) {
        char *exact = malloc(n + (n == 0));
        check(exact != NULL);
        memcpy(exact, in, n);
        free(in);
        in = exact;
        size = n;
    }
    wsb_msg_t m;
    wsb_msg_error_t err;
    int rc = wsb_msg_parse(in, size, &m, &err);
    against_reference(in, size, rc, &m, &err);
    if (rc != 0) {
        free(in);
        check(rc == WSB_EINVAL || rc == WSB_ENOMEM);
        check(m.strings == NULL && m.data.p == NULL);
        check_error(&err);
        return 0;
    }
    check(!m.has_id || (m.id >= 0 && m.id <= INT64_C(9007199254740991)));
    switch (m.type) {
    case WSB_MSG_PING:
        check(m.topic.p == NULL && m.data.p == NULL && !m.has_since);
        break;
    case WSB_MSG_PUBLISH: {
        check(wsb_topic_check(m.topic.p, m.topic.len, WSB_TOPIC_EXACT, NULL) == 0);
        check(!wsb_topic_is_reserved(m.topic.p, m.topic.len));
        check(m.data.p != NULL && m.data.len > 0 && !m.has_since);
        /* The data bytes are forwarded as sent: they must be one JSON value
         * on their own, and a frame built around them must parse back. */
        json_t *value = json_loadb(m.data.p, m.data.len,
                                   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        check(value != NULL);
        check_message(m.topic, (uint64_t)size * 2654435761u, WSB_STR_NULL, m.data, value);
        check_dumped_message(m.topic, (uint64_t)size * 2654435761u, WSB_STR_NULL, value);
        json_decref(value);
        break;
    }
    case WSB_MSG_SUBSCRIBE:
    case WSB_MSG_UNSUBSCRIBE:
        check(wsb_topic_check(m.topic.p, m.topic.len, WSB_TOPIC_PATTERN, NULL) == 0);
        check(m.data.p == NULL);
        if (m.has_since) {
            check(m.type == WSB_MSG_SUBSCRIBE);
            check(m.since_epoch.len >= 1 && m.since_epoch.len <= 64);
            check(m.since_seq <= INT64_MAX);
            /* Exercise epoch escaping with client-chosen bytes. */
            json_t *null = json_null();
            check_dumped_message(m.topic, m.since_seq, m.since_epoch, null);
            json_decref(null);
            check_stream_ack(m.has_id ? m.id : 0, m.since_seq, m.since_epoch, m.topic);
        }
        break;
    case WSB_MSG_AUTH:
        /* The auth message carries only a token, bounded before the JWT
         * verifier ever sees it. */
        check(m.token.p != NULL && m.token.len >= 1 && m.token.len <= 8192);
        check(m.topic.p == NULL && m.data.p == NULL && !m.has_since);
        break;
    case WSB_MSG_REQUEST:
        /* Checked as a publish, plus its bounded timeout. */
        check(wsb_topic_check(m.topic.p, m.topic.len, WSB_TOPIC_EXACT, NULL) == 0);
        check(!wsb_topic_is_reserved(m.topic.p, m.topic.len));
        check(m.data.p != NULL && !m.has_since);
        check(m.timeout_ms >= 1 && m.timeout_ms <= WSB_REQUEST_TIMEOUT_MAX_MS);
        break;
    case WSB_MSG_PRESENCE:
    case WSB_MSG_PRESENCE_STATS:
        check(wsb_topic_check(m.topic.p, m.topic.len, WSB_TOPIC_EXACT, NULL) == 0);
        check(m.data.p == NULL && !m.has_since && !m.has_history);
        break;
    default:
        abort();
    }
    wsb_msg_free(&m);
    free(in); /* the parsed message borrows from the input until here */
    return 0;
}
