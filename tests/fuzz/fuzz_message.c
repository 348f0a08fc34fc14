/*
 * fuzz_message.c - wsb_msg_parse on arbitrary bytes, plus round trips
 * through the frame builders.
 *
 * Invariants checked (abort on violation):
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
#include "wsb/message.h"
#include "wsb/topic.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy so ASan sees any read past the end. */
    char *in = malloc(size + (size == 0));
    check(in != NULL);
    if (size > 0) {
        memcpy(in, data, size);
    }
    wsb_msg_t m;
    wsb_msg_error_t err;
    int rc = wsb_msg_parse(in, size, &m, &err);
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
