/*
 * test_message.c - wire protocol v1: every parse rule mapped to its exact
 * error code (with the request id echoed whenever it was readable), and every
 * frame builder checked byte for byte or parsed back with jansson.
 */
/* guard.h needs MAP_ANONYMOUS, which glibc hides under plain _POSIX_C_SOURCE. */
#define _DEFAULT_SOURCE

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these three first, in this order. */
// clang-format off
#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "guard.h"
#include "wsb/common.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#define N_ELEMS(a)      (sizeof(a) / sizeof((a)[0]))
#define MAX_SAFE_ID     INT64_C(9007199254740991)
#define TEST_HEADROOM   24
#define HEADROOM_FILLER 0xA5

/* ---- parse helpers ------------------------------------------------------- */

/* Parses `len` bytes placed at the end of a guard page. */
static int parse_guarded(const char *json, size_t len, wsb_msg_t *m, wsb_msg_error_t *err)
{
    guard_buf_t g;
    const char *p = (const char *)guard_copy(&g, json, len);
    int rc = wsb_msg_parse(p, len, m, err);
    if (rc == 0) {
        wsb_msg_free(m);
    }
    guard_free(&g);
    /* The parsed slices borrow from the input: the message the test reads
     * comes from a second parse of the caller's buffer, which outlives it. */
    wsb_msg_error_t again;
    assert_int_equal(wsb_msg_parse(json, len, m, &again), rc);
    return rc;
}

static void parse_ok(const char *json, wsb_msg_t *m)
{
    wsb_msg_error_t err;
    int rc = parse_guarded(json, strlen(json), m, &err);
    if (rc != 0) {
        fail_msg("parse(%s) failed: %s: %s", json, err.code, err.message);
    }
}

/* Asserts that `json` is rejected with `code`, echoing `id` when id >= 0. */
static void expect_error_n(const char *json, size_t len, const char *code, int64_t id)
{
    wsb_msg_t m;
    wsb_msg_error_t err;
    int rc = parse_guarded(json, len, &m, &err);
    if (rc == 0) {
        wsb_msg_free(&m);
        fail_msg("parse(%s) succeeded, expected %s", json, code);
    }
    assert_int_equal(rc, WSB_EINVAL);
    if (err.code == NULL || strcmp(err.code, code) != 0) {
        fail_msg("parse(%s): code %s (%s), expected %s", json, err.code, err.message, code);
    }
    assert_true(strlen(err.message) > 0);
    assert_true(strlen(err.message) < sizeof err.message);
    if (id >= 0) {
        if (!err.has_id || err.id != id) {
            fail_msg("parse(%s): id not echoed (has_id %d id %lld)", json, err.has_id,
                     (long long)err.id);
        }
    } else if (err.has_id) {
        fail_msg("parse(%s): unexpected id %lld", json, (long long)err.id);
    }
    /* The message must be printable ASCII (it is sent back as JSON text). */
    for (const char *c = err.message; *c != '\0'; c++) {
        assert_true(*c >= 0x20 && *c <= 0x7E);
    }
    /* *out is left empty: nothing to free. */
    assert_null(m.strings);
    assert_null(m.data.p);
}

static void expect_error(const char *json, const char *code, int64_t id)
{
    expect_error_n(json, strlen(json), code, id);
}

/* Asserts the error message mentions `needle` (names the field or rule). */
static void expect_message_contains(const char *json, const char *needle)
{
    wsb_msg_t m;
    wsb_msg_error_t err;
    assert_int_equal(wsb_msg_parse(json, strlen(json), &m, &err), WSB_EINVAL);
    if (strstr(err.message, needle) == NULL) {
        fail_msg("parse(%s): message '%s' lacks '%s'", json, err.message, needle);
    }
}

/* ---- parse: valid inputs ------------------------------------------------- */

static void test_parse_subscribe(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"subscribe\",\"topic\":\"prices.*.usd\",\"id\":1}", &m);
    assert_int_equal(m.type, WSB_MSG_SUBSCRIBE);
    assert_true(m.has_id);
    assert_int_equal(m.id, 1);
    assert_true(wsb_str_eq(m.topic, "prices.*.usd"));
    assert_false(m.has_since);
    assert_null(m.data.p);
    wsb_msg_free(&m);
    assert_null(m.strings);

    parse_ok("{\"topic\":\"$sys.>\",\"type\":\"subscribe\"}", &m);
    assert_false(m.has_id);
    assert_true(wsb_str_eq(m.topic, "$sys.>"));
    wsb_msg_free(&m);

    parse_ok("{\"type\":\"subscribe\",\"topic\":\"$sys.stats\"}", &m);
    wsb_msg_free(&m);

    parse_ok(" \n{ \"type\" : \"subscribe\" ,\t\"topic\" : \">\" }\r\n", &m);
    assert_true(wsb_str_eq(m.topic, ">"));
    wsb_msg_free(&m);

    /* Escaped characters in the topic are decoded before validation. */
    parse_ok("{\"type\":\"subscribe\",\"topic\":\"\\u00e9t\\u00e9.\\u002a\"}", &m);
    assert_true(wsb_str_eq(m.topic, "\xc3\xa9t\xc3\xa9.*"));
    wsb_msg_free(&m);
}

static void test_parse_subscribe_since(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"subscribe\",\"topic\":\"prices.btc.usd\",\"id\":7,"
             "\"since\":{\"epoch\":\"e1\",\"seq\":41}}",
             &m);
    assert_true(m.has_since);
    assert_true(wsb_str_eq(m.since_epoch, "e1"));
    assert_int_equal(m.since_seq, 41);
    assert_int_equal(m.id, 7);
    wsb_msg_free(&m);

    /* seq 0, a 64-byte epoch and extra fields inside since. */
    char json[256];
    char epoch[65];
    memset(epoch, 'e', 64);
    epoch[64] = '\0';
    (void)snprintf(json, sizeof json,
                   "{\"type\":\"subscribe\",\"topic\":\"a\",\"since\":{\"epoch\":\"%s\",\"seq\":0,"
                   "\"x\":1}}",
                   epoch);
    parse_ok(json, &m);
    assert_true(m.has_since);
    assert_int_equal(m.since_epoch.len, 64);
    assert_int_equal(m.since_seq, 0);
    wsb_msg_free(&m);

    /* Largest seq jansson can represent. */
    parse_ok("{\"type\":\"subscribe\",\"topic\":\"a\","
             "\"since\":{\"epoch\":\"e\",\"seq\":9223372036854775807}}",
             &m);
    assert_true(m.since_seq == UINT64_C(9223372036854775807));
    wsb_msg_free(&m);
}

static void test_parse_unsubscribe(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"unsubscribe\",\"topic\":\"a.>\",\"id\":3}", &m);
    assert_int_equal(m.type, WSB_MSG_UNSUBSCRIBE);
    assert_true(wsb_str_eq(m.topic, "a.>"));
    assert_int_equal(m.id, 3);
    wsb_msg_free(&m);
}

static void test_parse_publish(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"publish\",\"topic\":\"prices.btc.usd\",\"data\":{\"p\":1}}", &m);
    assert_int_equal(m.type, WSB_MSG_PUBLISH);
    /* data is the value's bytes as sent (forwarded as they are). */
    assert_true(wsb_str_eq(m.data, "{\"p\":1}"));
    wsb_msg_free(&m);

    parse_ok("{\"type\":\"publish\",\"topic\":\"a\",\"data\":null,\"id\":0}", &m);
    assert_true(wsb_str_eq(m.data, "null"));
    assert_true(m.has_id);
    assert_int_equal(m.id, 0);
    wsb_msg_free(&m);

    static const char *datas[] = {
        "1", "-2.5", "\"s\"", "[1,[2]]", "true", "false", "{}", "[]", "\"nul\\u0000inside\""};
    for (size_t i = 0; i < N_ELEMS(datas); i++) {
        char json[128];
        (void)snprintf(json, sizeof json, "{\"type\":\"publish\",\"topic\":\"a.b\",\"data\":%s}",
                       datas[i]);
        parse_ok(json, &m);
        assert_true(wsb_str_eq(m.data, datas[i]));
        wsb_msg_free(&m);
    }
}

static void test_parse_ping(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"ping\"}", &m);
    assert_int_equal(m.type, WSB_MSG_PING);
    assert_false(m.has_id);
    wsb_msg_free(&m);

    parse_ok("{\"type\":\"ping\",\"id\":9007199254740991}", &m);
    assert_true(m.has_id);
    assert_true(m.id == MAX_SAFE_ID);
    wsb_msg_free(&m);

    /* ping ignores everything but type and id, even fields invalid elsewhere. */
    parse_ok("{\"type\":\"ping\",\"topic\":\"a..b\",\"since\":5}", &m);
    assert_null(m.topic.p);
    wsb_msg_free(&m);
}

/* auth carries only a token (1..8192 bytes); every other member is ignored
 * and the token is a slice of the parsed tree, not of the input. */
static void test_parse_auth(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"auth\",\"token\":\"a.b.c\",\"id\":7,\"topic\":\"x..y\",\"since\":1}", &m);
    assert_int_equal(m.type, WSB_MSG_AUTH);
    assert_true(m.has_id && m.id == 7);
    assert_int_equal(m.token.len, 5);
    assert_memory_equal(m.token.p, "a.b.c", 5);
    assert_null(m.topic.p);
    assert_null(m.data.p);
    assert_false(m.has_since);
    wsb_msg_free(&m);

    /* The longest token allowed, and one byte more. */
    enum { MAX_TOKEN = 8192 };
    static char json[MAX_TOKEN + 64];
    static char token[MAX_TOKEN + 2];
    memset(token, 'k', MAX_TOKEN);
    token[MAX_TOKEN] = '\0';
    (void)snprintf(json, sizeof json, "{\"type\":\"auth\",\"token\":\"%s\"}", token);
    parse_ok(json, &m);
    assert_int_equal(m.token.len, MAX_TOKEN);
    wsb_msg_free(&m);
    token[MAX_TOKEN] = 'k';
    token[MAX_TOKEN + 1] = '\0';
    (void)snprintf(json, sizeof json, "{\"type\":\"auth\",\"token\":\"%s\",\"id\":3}", token);
    expect_error(json, WSB_ERR_BAD_FIELD, 3);
    expect_message_contains(json, "8192");

    expect_error("{\"type\":\"auth\",\"id\":1}", WSB_ERR_MISSING_FIELD, 1);
    expect_message_contains("{\"type\":\"auth\"}", "\"token\"");
    expect_error("{\"type\":\"auth\",\"token\":\"\"}", WSB_ERR_BAD_FIELD, -1);
    expect_error("{\"type\":\"auth\",\"token\":5,\"id\":2}", WSB_ERR_BAD_FIELD, 2);
    expect_error("{\"type\":\"auth\",\"token\":null}", WSB_ERR_BAD_FIELD, -1);
    /* The id is checked first, as for every request. */
    expect_error("{\"type\":\"auth\",\"token\":\"t\",\"id\":-1}", WSB_ERR_BAD_FIELD, -1);
}

/* presence and presence_stats take an exact topic ("$" ones too: asking is
 * not publishing); patterns are bad_topic, since/history bad_since. */
static void test_parse_presence(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"presence\",\"topic\":\"chat.room1\",\"id\":3}", &m);
    assert_int_equal(m.type, WSB_MSG_PRESENCE);
    assert_true(m.has_id && m.id == 3);
    assert_int_equal(m.topic.len, 10);
    assert_memory_equal(m.topic.p, "chat.room1", 10);
    wsb_msg_free(&m);
    parse_ok("{\"type\":\"presence_stats\",\"topic\":\"$sys.x\"}", &m);
    assert_int_equal(m.type, WSB_MSG_PRESENCE_STATS);
    assert_false(m.has_id);
    wsb_msg_free(&m);
    expect_error("{\"type\":\"presence\",\"id\":1}", WSB_ERR_MISSING_FIELD, 1);
    expect_error("{\"type\":\"presence\",\"topic\":\"chat.*\",\"id\":2}", WSB_ERR_BAD_TOPIC, 2);
    expect_error("{\"type\":\"presence_stats\",\"topic\":\"chat.>\",\"id\":3}", WSB_ERR_BAD_TOPIC,
                 3);
    expect_error("{\"type\":\"presence\",\"topic\":5,\"id\":4}", WSB_ERR_BAD_FIELD, 4);
    expect_error("{\"type\":\"presence\",\"topic\":\"a\",\"history\":1,\"id\":5}",
                 WSB_ERR_BAD_SINCE, 5);
}

static void test_parse_unknown_fields_ignored(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"publish\",\"topic\":\"a\",\"data\":1,\"ttl\":5,\"meta\":{\"x\":[1]},"
             "\"Type\":\"bogus\"}",
             &m);
    assert_int_equal(m.type, WSB_MSG_PUBLISH);
    wsb_msg_free(&m);
    parse_ok("{\"type\":\"subscribe\",\"topic\":\"a\",\"v\":2,\"data\":\"ignored\"}", &m);
    assert_null(m.data.p);
    wsb_msg_free(&m);
}

/* wsb_msg_free on a zeroed or already freed message is harmless. */
static void test_free_safe(void **state)
{
    (void)state;
    wsb_msg_t m;
    memset(&m, 0, sizeof m);
    wsb_msg_free(&m);
    wsb_msg_free(NULL);
    parse_ok("{\"type\":\"ping\"}", &m);
    wsb_msg_free(&m);
    wsb_msg_free(&m);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(wsb_msg_type_name(WSB_MSG_SUBSCRIBE), "subscribe");
    assert_string_equal(wsb_msg_type_name(WSB_MSG_UNSUBSCRIBE), "unsubscribe");
    assert_string_equal(wsb_msg_type_name(WSB_MSG_PUBLISH), "publish");
    assert_string_equal(wsb_msg_type_name(WSB_MSG_PING), "ping");
    assert_string_equal(wsb_msg_type_name(WSB_MSG_AUTH), "auth");
    assert_string_equal(wsb_msg_type_name(WSB_MSG_PRESENCE), "presence");
    assert_string_equal(wsb_msg_type_name(WSB_MSG_PRESENCE_STATS), "presence_stats");
    assert_string_equal(wsb_msg_type_name(WSB_MSG_REQUEST), "request");
    assert_string_equal(wsb_msg_type_name((wsb_msg_type_t)0), "unknown");
}

/* ---- parse: errors ------------------------------------------------------- */

static void test_bad_json(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        " ",
        "{",
        "}",
        "{\"type\":\"ping\"",
        "{\"type\":\"ping\"} x",
        "{\"type\":\"ping\"}{}",
        "{type:\"ping\"}",
        "{'type':'ping'}",
        "{\"type\":\"ping\",}",
        "{\"type\":\"publish\",\"topic\":\"a\",\"data\":NaN}",
        "{\"type\":\"publish\",\"topic\":\"a\",\"data\":Infinity}",
        "{\"type\":\"publish\",\"topic\":\"a\",\"data\":-Infinity}",
        "{\"type\":\"publish\",\"topic\":\"a\",\"data\":1e400}",
        "{\"type\":\"publish\",\"topic\":\"a\",\"data\":01}",
        "{\"type\":\"publish\",\"topic\":\"a\",\"data\":.5}",
        "{\"type\":\"publish\",\"topic\":\"a\",\"data\":\"\\ud800\"}",
        "{\"type\":\"publish\",\"topic\":\"a\",\"data\":\"tab\there\"}",
        "{\"id\":99999999999999999999,\"type\":\"ping\"}",
        /* duplicate keys, at the top level and nested */
        "{\"type\":\"ping\",\"type\":\"ping\"}",
        "{\"type\":\"subscribe\",\"topic\":\"a\",\"topic\":\"$sys.>\"}",
        "{\"type\":\"publish\",\"topic\":\"a\",\"data\":{\"k\":1,\"k\":2}}",
        "nope",
        /* valid JSON, but not an object */
        "[]",
        "[{\"type\":\"ping\"}]",
        "1",
        "\"ping\"",
        "null",
        "true",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        expect_error(bad[i], WSB_ERR_BAD_JSON, -1);
    }
    /* Invalid UTF-8 in a string: jansson rejects it; the reply text stays ASCII. */
    expect_error("{\"type\":\"ping\",\"x\":\"\xff\xfe\"}", WSB_ERR_BAD_JSON, -1);
    expect_error("{\"type\":\"ping\",\"x\":\"\xc0\xae\"}", WSB_ERR_BAD_JSON, -1);
    /* A NUL byte outside a string. */
    expect_error_n("{\"type\":\"ping\"}\0", 16, WSB_ERR_BAD_JSON, -1);
    /* NULL input is empty input. */
    wsb_msg_t m;
    wsb_msg_error_t err;
    assert_int_equal(wsb_msg_parse(NULL, 0, &m, &err), WSB_EINVAL);
    assert_string_equal(err.code, WSB_ERR_BAD_JSON);

    expect_message_contains("[]", "JSON object");
    expect_message_contains("[]", "array");
    expect_message_contains("{", "invalid JSON");
    expect_message_contains("{\"type\":\"ping\",\"type\":\"ping\"}", "duplicate");
}

static void test_bad_id(void **state)
{
    (void)state;
    static const char *bad[] = {
        "{\"type\":\"ping\",\"id\":-1}",
        "{\"type\":\"ping\",\"id\":-9007199254740991}",
        "{\"type\":\"ping\",\"id\":1.0}",
        "{\"type\":\"ping\",\"id\":1.5}",
        "{\"type\":\"ping\",\"id\":1e2}",
        "{\"type\":\"ping\",\"id\":\"1\"}",
        "{\"type\":\"ping\",\"id\":true}",
        "{\"type\":\"ping\",\"id\":null}",
        "{\"type\":\"ping\",\"id\":[1]}",
        "{\"type\":\"ping\",\"id\":{}}",
        "{\"type\":\"ping\",\"id\":9007199254740992}",
        "{\"type\":\"ping\",\"id\":9223372036854775807}",
        /* a bad id is reported before a bad type */
        "{\"type\":\"nope\",\"id\":-1}",
        "{\"id\":\"x\"}",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        expect_error(bad[i], WSB_ERR_BAD_FIELD, -1);
    }
    expect_message_contains("{\"type\":\"ping\",\"id\":-1}", "\"id\"");
    expect_message_contains("{\"type\":\"ping\",\"id\":-1}", "9007199254740991");

    wsb_msg_t m;
    parse_ok("{\"type\":\"ping\",\"id\":0}", &m);
    assert_int_equal(m.id, 0);
    wsb_msg_free(&m);
    parse_ok("{\"type\":\"ping\",\"id\":-0}", &m);
    assert_int_equal(m.id, 0);
    wsb_msg_free(&m);
}

static void test_bad_type(void **state)
{
    (void)state;
    expect_error("{}", WSB_ERR_BAD_TYPE, -1);
    expect_error("{\"id\":4}", WSB_ERR_BAD_TYPE, 4);
    expect_error("{\"type\":5,\"id\":4}", WSB_ERR_BAD_TYPE, 4);
    expect_error("{\"type\":null}", WSB_ERR_BAD_TYPE, -1);
    expect_error("{\"type\":[\"ping\"]}", WSB_ERR_BAD_TYPE, -1);
    expect_error("{\"type\":\"\"}", WSB_ERR_BAD_TYPE, -1);
    expect_error("{\"type\":\"PING\"}", WSB_ERR_BAD_TYPE, -1);
    expect_error("{\"type\":\"pin\"}", WSB_ERR_BAD_TYPE, -1);
    expect_error("{\"type\":\"pingg\"}", WSB_ERR_BAD_TYPE, -1);
    expect_error("{\"type\":\"message\",\"id\":1}", WSB_ERR_BAD_TYPE, 1);
    expect_error("{\"type\":\"ping\\u0000\"}", WSB_ERR_BAD_TYPE, -1);
    expect_message_contains("{}", "\"type\"");
    expect_message_contains("{\"type\":\"x\"}", "subscribe");
    /* The hint names every request type the parser accepts. */
    expect_message_contains("{\"type\":\"x\"}", "auth");
}

static void test_topic_errors(void **state)
{
    (void)state;
    /* missing */
    expect_error("{\"type\":\"subscribe\",\"id\":1}", WSB_ERR_MISSING_FIELD, 1);
    expect_error("{\"type\":\"unsubscribe\",\"id\":2}", WSB_ERR_MISSING_FIELD, 2);
    expect_error("{\"type\":\"publish\",\"data\":1,\"id\":3}", WSB_ERR_MISSING_FIELD, 3);
    expect_message_contains("{\"type\":\"unsubscribe\"}", "\"topic\"");
    expect_message_contains("{\"type\":\"unsubscribe\"}", "unsubscribe");

    /* wrong JSON type */
    expect_error("{\"type\":\"subscribe\",\"topic\":null,\"id\":1}", WSB_ERR_BAD_FIELD, 1);
    expect_error("{\"type\":\"subscribe\",\"topic\":5}", WSB_ERR_BAD_FIELD, -1);
    expect_error("{\"type\":\"publish\",\"topic\":[\"a\"],\"data\":1}", WSB_ERR_BAD_FIELD, -1);

    /* grammar */
    static const char *bad_patterns[] = {
        "",     "a..b",    ".a",  "a.",        "a b",     "a*",      "a.>.b",
        "a.b>", "\\u0000", "\\t", "a\\u00a0b", "\\u2028", "\\ufeff", "\\u0085",
    };
    for (size_t i = 0; i < N_ELEMS(bad_patterns); i++) {
        char json[128];
        (void)snprintf(json, sizeof json, "{\"type\":\"subscribe\",\"topic\":\"%s\",\"id\":5}",
                       bad_patterns[i]);
        expect_error(json, WSB_ERR_BAD_TOPIC, 5);
        (void)snprintf(json, sizeof json, "{\"type\":\"unsubscribe\",\"topic\":\"%s\"}",
                       bad_patterns[i]);
        expect_error(json, WSB_ERR_BAD_TOPIC, -1);
        (void)snprintf(json, sizeof json, "{\"type\":\"publish\",\"topic\":\"%s\",\"data\":1}",
                       bad_patterns[i]);
        expect_error(json, WSB_ERR_BAD_TOPIC, -1);
    }
    /* wildcards are fine in subscribe but not in publish */
    expect_error("{\"type\":\"publish\",\"topic\":\"a.*\",\"data\":1,\"id\":6}", WSB_ERR_BAD_TOPIC,
                 6);
    expect_error("{\"type\":\"publish\",\"topic\":\">\",\"data\":1}", WSB_ERR_BAD_TOPIC, -1);
    expect_message_contains("{\"type\":\"publish\",\"topic\":\">\",\"data\":1}", "wildcards");
    expect_message_contains("{\"type\":\"subscribe\",\"topic\":\"a..b\"}", "empty token");
    expect_message_contains("{\"type\":\"subscribe\",\"topic\":\"a..b\"}", "\"topic\"");

    /* limits: exactly at and one past */
    char json[512];
    char topic[WSB_TOPIC_MAX_LEN + 2];
    memset(topic, 'a', WSB_TOPIC_MAX_LEN);
    topic[WSB_TOPIC_MAX_LEN] = '\0';
    (void)snprintf(json, sizeof json, "{\"type\":\"publish\",\"topic\":\"%s\",\"data\":1}", topic);
    wsb_msg_t m;
    parse_ok(json, &m);
    assert_int_equal(m.topic.len, WSB_TOPIC_MAX_LEN);
    wsb_msg_free(&m);
    topic[WSB_TOPIC_MAX_LEN] = 'a';
    topic[WSB_TOPIC_MAX_LEN + 1] = '\0';
    (void)snprintf(json, sizeof json, "{\"type\":\"publish\",\"topic\":\"%s\",\"data\":1,\"id\":8}",
                   topic);
    expect_error(json, WSB_ERR_BAD_TOPIC, 8);
    expect_message_contains(json, "256 bytes");

    /* 33 tokens */
    size_t n = 0;
    for (int i = 0; i < WSB_TOPIC_MAX_TOKENS + 1; i++) {
        topic[n++] = 'a';
        topic[n++] = '.';
    }
    topic[n - 1] = '\0';
    (void)snprintf(json, sizeof json, "{\"type\":\"subscribe\",\"topic\":\"%s\"}", topic);
    expect_error(json, WSB_ERR_BAD_TOPIC, -1);
    expect_message_contains(json, "32 tokens");
    topic[n - 3] = '\0'; /* 32 tokens */
    (void)snprintf(json, sizeof json, "{\"type\":\"subscribe\",\"topic\":\"%s\"}", topic);
    parse_ok(json, &m);
    wsb_msg_free(&m);
}

static void test_publish_errors(void **state)
{
    (void)state;
    expect_error("{\"type\":\"publish\",\"topic\":\"$sys.x\",\"data\":1,\"id\":11}",
                 WSB_ERR_FORBIDDEN, 11);
    expect_error("{\"type\":\"publish\",\"topic\":\"$\",\"data\":1}", WSB_ERR_FORBIDDEN, -1);
    expect_message_contains("{\"type\":\"publish\",\"topic\":\"$sys.x\",\"data\":1}", "reserved");
    expect_error("{\"type\":\"publish\",\"topic\":\"a\",\"id\":12}", WSB_ERR_MISSING_FIELD, 12);
    expect_message_contains("{\"type\":\"publish\",\"topic\":\"a\"}", "\"data\"");
    /* '$' later in the topic is not reserved */
    wsb_msg_t m;
    parse_ok("{\"type\":\"publish\",\"topic\":\"a.$b\",\"data\":1}", &m);
    wsb_msg_free(&m);
    /* the topic is checked before the data */
    expect_error("{\"type\":\"publish\",\"topic\":\"a..b\"}", WSB_ERR_BAD_TOPIC, -1);
    expect_error("{\"type\":\"publish\",\"topic\":\"$sys.x\"}", WSB_ERR_FORBIDDEN, -1);
}

static void test_since_errors(void **state)
{
    (void)state;
    /* on a pattern it is well-formed: the broker decides (bad_since outside
     * a stream rule, PROTOCOL.md 3.1b), not the parser */
    static const char *patterns[] = {"a.*", "a.>", ">"};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        char json[128];
        (void)snprintf(json, sizeof json,
                       "{\"type\":\"subscribe\",\"topic\":\"%s\",\"id\":21,"
                       "\"since\":{\"epoch\":\"e\",\"seq\":1}}",
                       patterns[i]);
        wsb_msg_t m;
        parse_ok(json, &m);
        assert_true(m.has_since);
        assert_int_equal(m.since_seq, 1);
        wsb_msg_free(&m);
    }
    /* a malformed since on a pattern is still bad_since */
    expect_error("{\"type\":\"subscribe\",\"topic\":\"a.*\",\"id\":21,"
                 "\"since\":{\"epoch\":\"\",\"seq\":1}}",
                 WSB_ERR_BAD_SINCE, 21);

    /* malformed */
    static const char *bad_since[] = {
        "null",
        "5",
        "\"e:1\"",
        "[\"e\",1]",
        "{}",
        "{\"seq\":1}",
        "{\"epoch\":\"e\"}",
        "{\"epoch\":1,\"seq\":1}",
        "{\"epoch\":null,\"seq\":1}",
        "{\"epoch\":\"\",\"seq\":1}",
        "{\"epoch\":\"e\",\"seq\":-1}",
        "{\"epoch\":\"e\",\"seq\":1.0}",
        "{\"epoch\":\"e\",\"seq\":\"1\"}",
        "{\"epoch\":\"e\",\"seq\":null}",
        "{\"epoch\":\"e\",\"seq\":true}",
        ("{\"epoch\":\"0123456789012345678901234567890123456789012345678901234567890123X\","
         "\"seq\":1}"),
    };
    for (size_t i = 0; i < N_ELEMS(bad_since); i++) {
        char json[256];
        (void)snprintf(json, sizeof json,
                       "{\"type\":\"subscribe\",\"topic\":\"a\",\"id\":22,\"since\":%s}",
                       bad_since[i]);
        expect_error(json, WSB_ERR_BAD_SINCE, 22);
        /* on a pattern the shape error is reported (the more specific fix) */
        (void)snprintf(json, sizeof json, "{\"type\":\"subscribe\",\"topic\":\"a.*\",\"since\":%s}",
                       bad_since[i]);
        expect_error(json, WSB_ERR_BAD_SINCE, -1);
    }
    expect_message_contains("{\"type\":\"subscribe\",\"topic\":\"a\",\"since\":{\"seq\":1}}",
                            "since.epoch");
    expect_message_contains("{\"type\":\"subscribe\",\"topic\":\"a\",\"since\":{\"epoch\":\"e\"}}",
                            "since.seq");

    /* only on subscribe */
    expect_error("{\"type\":\"unsubscribe\",\"topic\":\"a\",\"id\":23,"
                 "\"since\":{\"epoch\":\"e\",\"seq\":1}}",
                 WSB_ERR_BAD_SINCE, 23);
    expect_error("{\"type\":\"publish\",\"topic\":\"a\",\"data\":1,"
                 "\"since\":{\"epoch\":\"e\",\"seq\":1}}",
                 WSB_ERR_BAD_SINCE, -1);
}

/* jansson's allocator is swapped for one that always fails: parsing a
 * publish builds no tree (issue 17: no jansson round trip on the hot path),
 * so it still succeeds and hands back the data's bytes as sent. */
static void *failing_malloc(size_t n)
{
    (void)n;
    return NULL;
}

static void test_parse_without_jansson(void **state)
{
    (void)state;
    const char *json =
        "{\"type\":\"publish\",\"topic\":\"a.b\",\"data\": {\"x\" : [1,2.50,\"s\\u00e9\"]} }";
    json_set_alloc_funcs(failing_malloc, free);
    wsb_msg_t m;
    wsb_msg_error_t err;
    int rc = wsb_msg_parse(json, strlen(json), &m, &err);
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(rc, 0);
    assert_true(wsb_str_eq(m.data, "{\"x\" : [1,2.50,\"s\\u00e9\"]}"));
    assert_true(wsb_str_eq(m.topic, "a.b"));
    wsb_msg_free(&m);

    /* An escaped topic is decoded into the message's own copy. */
    json = "{\"type\":\"publish\",\"topic\":\"a.\\u0062\",\"data\":null}";
    assert_int_equal(wsb_msg_parse(json, strlen(json), &m, &err), 0);
    assert_true(wsb_str_eq(m.topic, "a.b"));
    assert_non_null(m.strings);
    wsb_msg_free(&m);
    assert_null(m.strings);
}

/* ---- frame helpers ------------------------------------------------------- */

/* Checks the server frame header at buf + headroom and returns the payload;
 * *json_len gets its length. */
static const char *frame_payload(const uint8_t *buf, size_t headroom, size_t frame_len,
                                 size_t *json_len)
{
    const uint8_t *f = buf + headroom;
    assert_true(frame_len >= 2);
    assert_int_equal(f[0], 0x81);     /* FIN, RSV 0, text */
    assert_int_equal(f[1] & 0x80, 0); /* unmasked */
    size_t hdr;
    uint64_t n = f[1] & 0x7F;
    if (n < 126) {
        hdr = 2;
    } else if (n == 126) {
        hdr = 4;
        n = ((uint64_t)f[2] << 8) | f[3];
        assert_true(n >= 126); /* minimal encoding */
    } else {
        hdr = 10;
        n = 0;
        for (int i = 0; i < 8; i++) {
            n = (n << 8) | f[2 + i];
        }
        assert_true(n > 0xFFFF);
        assert_int_equal(f[2] & 0x80, 0);
    }
    assert_int_equal(frame_len, hdr + n);
    *json_len = (size_t)n;
    return (const char *)f + hdr;
}

/* Parses a built frame's JSON (strictly, as a client would). */
static json_t *frame_json(const uint8_t *buf, size_t headroom, size_t frame_len)
{
    size_t n;
    const char *p = frame_payload(buf, headroom, frame_len, &n);
    json_error_t e;
    json_t *v = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (v == NULL) {
        fail_msg("built frame is not JSON: %s: %.*s", e.text, (int)n, p);
    }
    return v;
}

/* Asserts the frame's JSON is exactly `expect`. */
static void assert_frame_is(uint8_t *buf, size_t headroom, size_t frame_len, const char *expect)
{
    assert_non_null(buf);
    size_t n;
    const char *p = frame_payload(buf, headroom, frame_len, &n);
    if (n != strlen(expect) || memcmp(p, expect, n) != 0) {
        fail_msg("frame %.*s, expected %s", (int)n, p, expect);
    }
    /* The headroom is the caller's: writing all of it must not disturb the frame. */
    memset(buf, HEADROOM_FILLER, headroom);
    assert_memory_equal(p, expect, n);
    free(buf);
}

static const char *jstr(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* ---- builders ------------------------------------------------------------ */

static void test_build_message_basic(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *buf = wsb_msg_build_message(WSB_STR_LIT("prices.btc.usd"), 42, WSB_STR_NULL,
                                         WSB_STR_LIT("{\"p\":1.5}"), TEST_HEADROOM, &len);
    assert_frame_is(
        buf, TEST_HEADROOM, len,
        "{\"type\":\"message\",\"topic\":\"prices.btc.usd\",\"seq\":42,\"data\":{\"p\":1.5}}");

    buf = wsb_msg_build_message(WSB_STR_LIT("a"), 0, WSB_STR_LIT("ep-1"), WSB_STR_LIT("null"), 0,
                                &len);
    assert_frame_is(buf, 0, len,
                    "{\"type\":\"message\",\"topic\":\"a\",\"seq\":0,\"epoch\":\"ep-1\","
                    "\"data\":null}");

    buf = wsb_msg_build_message(WSB_STR_LIT("a"), UINT64_MAX, WSB_STR_NULL, WSB_STR_LIT("[1]"), 1,
                                &len);
    assert_frame_is(buf, 1, len,
                    "{\"type\":\"message\",\"topic\":\"a\",\"seq\":18446744073709551615,"
                    "\"data\":[1]}");

    /* An empty data slice is written as null; an empty epoch is omitted. */
    wsb_str_t empty_epoch = {"", 0};
    buf = wsb_msg_build_message(WSB_STR_LIT("a"), 1, empty_epoch, WSB_STR_NULL, 0, &len);
    assert_frame_is(buf, 0, len, "{\"type\":\"message\",\"topic\":\"a\",\"seq\":1,\"data\":null}");

    /* The publisher's stamp goes before data (which stays the last field);
     * an empty one is omitted. */
    buf = wsb_msg_build_message_from(WSB_STR_LIT("a"), 2, WSB_STR_LIT("e"),
                                     WSB_STR_LIT("{\"client\":\"n-0-1\",\"user\":null}"),
                                     WSB_STR_LIT("{\"from\":1}"), 3, &len);
    assert_frame_is(buf, 3, len,
                    "{\"type\":\"message\",\"topic\":\"a\",\"seq\":2,\"epoch\":\"e\","
                    "\"from\":{\"client\":\"n-0-1\",\"user\":null},\"data\":{\"from\":1}}");
    buf = wsb_msg_build_message_from(WSB_STR_LIT("a"), 1, WSB_STR_NULL, WSB_STR_NULL,
                                     WSB_STR_LIT("1"), 0, &len);
    assert_frame_is(buf, 0, len, "{\"type\":\"message\",\"topic\":\"a\",\"seq\":1,\"data\":1}");
}

static void test_build_message_escaping(void **state)
{
    (void)state;
    /* Topics reach the builder validated, but escaping must still be right. */
    static const struct {
        const char *raw;
        size_t len;
        const char *decoded; /* what a JSON parser must read back */
        size_t dlen;
    } cases[] = {
        {"q\"uote", 6, "q\"uote", 6},
        {"back\\slash", 10, "back\\slash", 10},
        {"ctl\x01\x1f\n\r\t\b\f", 10, "ctl\x01\x1f\n\r\t\b\f", 10},
        {"nul\0x", 5, "nul\0x", 5},
        {"del\x7f", 4, "del\x7f", 4},
        {"\xc3\xa9t\xc3\xa9", 5, "\xc3\xa9t\xc3\xa9", 5},
        {"\xe2\x80\xa8", 3, "\xe2\x80\xa8", 3},
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80", 4},
        /* invalid UTF-8 becomes U+FFFD, one per bad byte */
        {"a\xff"
         "b",
         3,
         "a\xef\xbf\xbd"
         "b",
         5},
        {"\xc3", 1, "\xef\xbf\xbd", 3},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"\xc0\xae", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"", 0, "", 0},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        size_t len = 0;
        wsb_str_t topic = {cases[i].raw, cases[i].len};
        uint8_t *buf = wsb_msg_build_message(topic, 7, topic, WSB_STR_LIT("1"), 8, &len);
        assert_non_null(buf);
        json_error_t e;
        size_t n;
        const char *p = frame_payload(buf, 8, len, &n);
        json_t *v = json_loadb(p, n, JSON_ALLOW_NUL, &e);
        if (v == NULL) {
            fail_msg("case %zu: %s: %.*s", i, e.text, (int)n, p);
        }
        const json_t *t = json_object_get(v, "topic");
        assert_true(json_is_string(t));
        assert_int_equal(json_string_length(t), cases[i].dlen);
        assert_memory_equal(json_string_value(t), cases[i].decoded, cases[i].dlen);
        if (cases[i].len > 0) {
            const json_t *ep = json_object_get(v, "epoch");
            assert_int_equal(json_string_length(ep), cases[i].dlen);
            assert_memory_equal(json_string_value(ep), cases[i].decoded, cases[i].dlen);
        }
        json_decref(v);
        free(buf);
    }
    /* Short escapes are used where JSON has them. */
    size_t len;
    uint8_t *buf = wsb_msg_build_message(WSB_STR_LIT("\"\\\n\x01"), 1, WSB_STR_NULL,
                                         WSB_STR_LIT("0"), 0, &len);
    assert_frame_is(buf, 0, len,
                    "{\"type\":\"message\",\"topic\":\"\\\"\\\\\\n\\u0001\",\"seq\":1,\"data\":0}");
}

/* Builds a message frame whose JSON is exactly `target` bytes long. */
static void check_length_encoding(size_t target, const uint8_t *expect_hdr, size_t hdr_len)
{
    size_t base = 0;
    uint8_t *buf =
        wsb_msg_build_message(WSB_STR_LIT("t"), 1, WSB_STR_NULL, WSB_STR_LIT("\"\""), 0, &base);
    assert_non_null(buf);
    free(buf);
    base -= 2; /* JSON length with an empty string: header is 2 bytes */
    assert_true(target >= base);
    size_t k = target - base;
    char *data = malloc(k + 2);
    assert_non_null(data);
    data[0] = '"';
    memset(data + 1, 'x', k);
    data[k + 1] = '"';
    wsb_str_t d = {data, k + 2};
    size_t len = 0;
    buf = wsb_msg_build_message(WSB_STR_LIT("t"), 1, WSB_STR_NULL, d, TEST_HEADROOM, &len);
    assert_non_null(buf);
    assert_int_equal(len, hdr_len + target);
    assert_memory_equal(buf + TEST_HEADROOM, expect_hdr, hdr_len);
    memset(buf, HEADROOM_FILLER, TEST_HEADROOM);
    json_t *v = frame_json(buf, TEST_HEADROOM, len);
    assert_int_equal(json_string_length(json_object_get(v, "data")), k);
    json_decref(v);
    free(buf);
    free(data);
}

static void test_build_length_encodings(void **state)
{
    (void)state;
    static const uint8_t h125[] = {0x81, 125};
    static const uint8_t h126[] = {0x81, 126, 0x00, 126};
    static const uint8_t h65535[] = {0x81, 126, 0xFF, 0xFF};
    static const uint8_t h65536[] = {0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    static const uint8_t h70000[] = {0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70};
    check_length_encoding(125, h125, sizeof h125);
    check_length_encoding(126, h126, sizeof h126);
    check_length_encoding(65535, h65535, sizeof h65535);
    check_length_encoding(65536, h65536, sizeof h65536);
    check_length_encoding(70000, h70000, sizeof h70000);
}

static void test_build_ack(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf;
    wsb_ack_t a = {.id = 1, .has_seq = false, .seq = 0, .recovered = -1};
    buf = wsb_msg_build_ack(&a, 16, &len);
    assert_frame_is(buf, 16, len, "{\"type\":\"ack\",\"id\":1}");
    a = (wsb_ack_t){.id = 9007199254740991, .has_seq = true, .seq = 42, .recovered = -1};
    buf = wsb_msg_build_ack(&a, 0, &len);
    assert_frame_is(buf, 0, len, "{\"type\":\"ack\",\"id\":9007199254740991,\"seq\":42}");
    a = (wsb_ack_t){.id = 0, .has_seq = false, .seq = 0, .recovered = 0};
    buf = wsb_msg_build_ack(&a, 0, &len);
    assert_frame_is(buf, 0, len, "{\"type\":\"ack\",\"id\":0,\"recovered\":false}");
    a = (wsb_ack_t){.id = 5, .has_seq = false, .seq = 0, .recovered = 1};
    buf = wsb_msg_build_ack(&a, 0, &len);
    assert_frame_is(buf, 0, len, "{\"type\":\"ack\",\"id\":5,\"recovered\":true}");
    a = (wsb_ack_t){.id = 5, .has_seq = true, .seq = UINT64_MAX, .recovered = 1};
    buf = wsb_msg_build_ack(&a, 0, &len);
    assert_frame_is(buf, 0, len,
                    "{\"type\":\"ack\",\"id\":5,\"seq\":18446744073709551615,\"recovered\":true}");
    /* A subscribe ack on a topic with history: position and epoch. */
    a = (wsb_ack_t){.id = 2, .has_seq = true, .seq = 55, .recovered = 1, .epoch = {"k3\"f", 4}};
    buf = wsb_msg_build_ack(&a, 0, &len);
    assert_frame_is(
        buf, 0, len,
        "{\"type\":\"ack\",\"id\":2,\"seq\":55,\"epoch\":\"k3\\\"f\",\"recovered\":true}");
}

static void test_build_gap(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = wsb_msg_build_gap((wsb_str_t){"chat.r", 6}, (wsb_str_t){"e1", 2}, 41, 8, &len);
    assert_frame_is(buf, 8, len,
                    "{\"type\":\"gap\",\"topic\":\"chat.r\",\"epoch\":\"e1\",\"seq\":41}");
}

static void test_build_stream_gap(void **state)
{
    (void)state;
    size_t len;
    wsb_gap_t g = {.topic = {"auction.*.bid", 13},
                   .stream = {"auction.>", 9},
                   .epoch = {"e1", 2},
                   .seq = 7,
                   .has_to = true,
                   .to = 12};
    uint8_t *buf = wsb_msg_build_gap_ex(&g, 0, &len);
    assert_frame_is(buf, 0, len,
                    "{\"type\":\"gap\",\"topic\":\"auction.*.bid\",\"stream\":\"auction.>\","
                    "\"epoch\":\"e1\",\"seq\":7,\"to\":12}");
    g.has_to = false; /* a slow consumer's gap */
    buf = wsb_msg_build_gap_ex(&g, 0, &len);
    assert_frame_is(buf, 0, len,
                    "{\"type\":\"gap\",\"topic\":\"auction.*.bid\",\"stream\":\"auction.>\","
                    "\"epoch\":\"e1\",\"seq\":7}");
}

static void test_parse_history(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"subscribe\",\"topic\":\"a.b\",\"history\":10}", &m);
    assert_true(m.has_history);
    assert_int_equal(m.history, 10);
    assert_false(m.has_since);
    wsb_msg_free(&m);
    parse_ok("{\"type\":\"subscribe\",\"topic\":\"a.b\",\"history\":0}", &m);
    assert_true(m.has_history);
    wsb_msg_free(&m);
    parse_ok("{\"type\":\"ping\",\"history\":\"x\"}", &m); /* ping ignores it */
    wsb_msg_free(&m);
    expect_error("{\"type\":\"subscribe\",\"topic\":\"a\",\"id\":3,\"history\":-1}",
                 WSB_ERR_BAD_FIELD, 3);
    expect_error("{\"type\":\"subscribe\",\"topic\":\"a\",\"history\":1.5}", WSB_ERR_BAD_FIELD, -1);
    expect_error("{\"type\":\"subscribe\",\"topic\":\"a\",\"history\":1000001}", WSB_ERR_BAD_FIELD,
                 -1);
    /* Last value on wildcards: history on a pattern is accepted. */
    parse_ok("{\"type\":\"subscribe\",\"topic\":\"a.*\",\"history\":1}", &m);
    assert_true(m.has_history);
    assert_int_equal(m.history, 1);
    wsb_msg_free(&m);
    expect_error("{\"type\":\"subscribe\",\"topic\":\"a.>\",\"history\":1,"
                 "\"since\":{\"epoch\":\"e\",\"seq\":0}}",
                 WSB_ERR_BAD_SINCE, -1);
    expect_error("{\"type\":\"subscribe\",\"topic\":\"a\",\"history\":1,"
                 "\"since\":{\"epoch\":\"e\",\"seq\":1}}",
                 WSB_ERR_BAD_SINCE, -1);
    expect_error("{\"type\":\"unsubscribe\",\"topic\":\"a\",\"history\":1}", WSB_ERR_BAD_SINCE, -1);
    expect_error("{\"type\":\"publish\",\"topic\":\"a\",\"data\":1,\"history\":1}",
                 WSB_ERR_BAD_SINCE, -1);
}

static void test_parse_request(void **state)
{
    (void)state;
    wsb_msg_t m;
    parse_ok("{\"type\":\"request\",\"topic\":\"dev.d7\",\"data\":{\"op\":1},\"id\":7,"
             "\"timeout_ms\":2000}",
             &m);
    assert_int_equal(m.type, WSB_MSG_REQUEST);
    assert_int_equal(m.timeout_ms, 2000);
    assert_true(wsb_str_eq(m.data, "{\"op\":1}"));
    wsb_msg_free(&m);
    parse_ok("{\"type\":\"request\",\"topic\":\"a\",\"data\":null}", &m);
    assert_int_equal(m.timeout_ms, WSB_REQUEST_TIMEOUT_DEFAULT_MS);
    wsb_msg_free(&m);
    parse_ok("{\"type\":\"request\",\"topic\":\"a\",\"data\":1,\"timeout_ms\":60000}", &m);
    assert_int_equal(m.timeout_ms, WSB_REQUEST_TIMEOUT_MAX_MS);
    wsb_msg_free(&m);
    expect_error("{\"type\":\"request\",\"topic\":\"a\",\"id\":4}", WSB_ERR_MISSING_FIELD, 4);
    expect_error("{\"type\":\"request\",\"topic\":\"a.*\",\"data\":1}", WSB_ERR_BAD_TOPIC, -1);
    expect_error("{\"type\":\"request\",\"topic\":\"$sys.x\",\"data\":1}", WSB_ERR_FORBIDDEN, -1);
    expect_error("{\"type\":\"request\",\"topic\":\"a\",\"data\":1,\"timeout_ms\":0}",
                 WSB_ERR_BAD_FIELD, -1);
    expect_error("{\"type\":\"request\",\"topic\":\"a\",\"data\":1,\"timeout_ms\":60001}",
                 WSB_ERR_BAD_FIELD, -1);
    expect_error("{\"type\":\"request\",\"topic\":\"a\",\"data\":1,\"timeout_ms\":\"5\"}",
                 WSB_ERR_BAD_FIELD, -1);
    expect_error("{\"type\":\"request\",\"topic\":\"a\",\"data\":1,\"history\":1}",
                 WSB_ERR_BAD_SINCE, -1);

    /* The request message: reply_to after from, before data. */
    size_t len = 0;
    uint8_t *buf = wsb_msg_build_request_message(
        WSB_STR_LIT("a"), 2, WSB_STR_NULL, WSB_STR_LIT("{\"client\":\"c\",\"user\":null}"),
        WSB_STR_LIT("_inbox.ab"), WSB_STR_LIT("1"), 0, &len);
    assert_frame_is(buf, 0, len,
                    "{\"type\":\"message\",\"topic\":\"a\",\"seq\":2,"
                    "\"from\":{\"client\":\"c\",\"user\":null},\"reply_to\":\"_inbox.ab\","
                    "\"data\":1}");
}

static void test_build_error(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf;
    buf = wsb_msg_build_error(true, 1, WSB_ERR_FORBIDDEN, "no", 32, &len);
    assert_frame_is(buf, 32, len,
                    "{\"type\":\"error\",\"id\":1,\"code\":\"forbidden\",\"message\":\"no\"}");
    buf = wsb_msg_build_error(false, 99, WSB_ERR_BAD_JSON, "x \"y\" \\z", 0, &len);
    assert_frame_is(buf, 0, len,
                    "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"x \\\"y\\\" \\\\z\"}");
    buf = wsb_msg_build_error(false, 0, NULL, NULL, 0, &len);
    assert_frame_is(buf, 0, len, "{\"type\":\"error\",\"code\":\"internal\",\"message\":\"\"}");
    buf = wsb_msg_build_error(true, INT64_MIN, "c", "m", 0, &len);
    assert_frame_is(buf, 0, len,
                    "{\"type\":\"error\",\"id\":-9223372036854775808,\"code\":\"c\","
                    "\"message\":\"m\"}");

    /* A parse error turned into a reply round-trips. */
    wsb_msg_t m;
    wsb_msg_error_t err;
    const char *req = "{\"type\":\"publish\",\"topic\":\"$sys.x\",\"data\":1,\"id\":77}";
    assert_int_equal(wsb_msg_parse(req, strlen(req), &m, &err), WSB_EINVAL);
    buf = wsb_msg_build_error(err.has_id, err.id, err.code, err.message, 0, &len);
    assert_non_null(buf);
    json_t *v = frame_json(buf, 0, len);
    assert_string_equal(jstr(v, "type"), "error");
    assert_string_equal(jstr(v, "code"), "forbidden");
    assert_string_equal(jstr(v, "message"), err.message);
    assert_int_equal(json_integer_value(json_object_get(v, "id")), 77);
    json_decref(v);
    free(buf);
}

static void test_build_pong_welcome(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf;
    buf = wsb_msg_build_pong(false, 0, 0, &len);
    assert_frame_is(buf, 0, len, "{\"type\":\"pong\"}");
    buf = wsb_msg_build_pong(true, 12, 8, &len);
    assert_frame_is(buf, 8, len, "{\"type\":\"pong\",\"id\":12}");

    wsb_welcome_t w = {
        .client_id = "c-1",
        .user = {"al\"ice", 6},
        .node_id = "node\"a",
        .version = "0.1.0",
        .max_message_size = 65536,
        .max_subscriptions = 1000,
        .ping_interval_ms = 25000,
    };
    buf = wsb_msg_build_welcome(&w, 16, &len);
    assert_frame_is(
        buf, 16, len,
        "{\"type\":\"welcome\",\"protocol\":1,\"client_id\":\"c-1\","
        "\"user\":\"al\\\"ice\",\"node_id\":\"node\\\"a\",\"version\":\"0.1.0\",\"limits\":{"
        "\"max_message_size\":65536,\"max_subscriptions\":1000,"
        "\"ping_interval_ms\":25000}}");
    w = (wsb_welcome_t){0};
    buf = wsb_msg_build_welcome(&w, 0, &len);
    assert_frame_is(buf, 0, len,
                    "{\"type\":\"welcome\",\"protocol\":1,\"client_id\":\"\",\"user\":null,"
                    "\"node_id\":\"\","
                    "\"version\":\"\",\"limits\":{\"max_message_size\":0,"
                    "\"max_subscriptions\":0,\"ping_interval_ms\":0}}");
}

static void test_build_json(void **state)
{
    (void)state;
    size_t len;
    json_t *obj = json_pack("{s:s, s:[i, i]}", "type", "custom", "xs", 1, 2);
    assert_non_null(obj);
    uint8_t *buf = wsb_msg_build_json(obj, 16, &len);
    json_t *back = frame_json(buf, 16, len);
    assert_true(json_equal(obj, back));
    json_decref(back);
    free(buf);
    json_decref(obj);

    json_t *scalar = json_integer(3);
    buf = wsb_msg_build_json(scalar, 0, &len);
    assert_frame_is(buf, 0, len, "3");
    json_decref(scalar);
    assert_null(wsb_msg_build_json(NULL, 0, &len));

    /* A big object takes the 10-byte header. */
    json_t *big = json_object();
    char *blob = malloc(70000);
    assert_non_null(blob);
    memset(blob, 'b', 69999);
    blob[69999] = '\0';
    json_object_set_new(big, "blob", json_string(blob));
    buf = wsb_msg_build_json(big, 0, &len);
    back = frame_json(buf, 0, len);
    assert_true(json_equal(big, back));
    json_decref(back);
    free(buf);
    json_decref(big);
    free(blob);
}

static void test_dump_value(void **state)
{
    (void)state;
    static const char *values[] = {"null",
                                   "true",
                                   "false",
                                   "0",
                                   "-12",
                                   "1.5",
                                   "\"\"",
                                   "\"a\\\"b\\u0000c\"",
                                   "[]",
                                   "{}",
                                   "{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}"};
    for (size_t i = 0; i < N_ELEMS(values); i++) {
        json_error_t e;
        json_t *v = json_loads(values[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        assert_non_null(v);
        size_t n = 0;
        char *s = wsb_msg_dump_value(v, &n);
        assert_non_null(s);
        assert_true(n > 0);
        /* Compact: identical to the compact input. */
        if (n != strlen(values[i]) && strstr(values[i], "\\u00e9") == NULL) {
            fail_msg("dump(%s) = %.*s", values[i], (int)n, s);
        }
        json_t *back = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        assert_non_null(back);
        assert_true(json_equal(v, back));
        json_decref(back);

        /* dump -> message frame -> parse back gives the same data. */
        size_t flen;
        wsb_str_t d = {s, n};
        uint8_t *buf = wsb_msg_build_message(WSB_STR_LIT("x.y"), 3, WSB_STR_LIT("e"), d, 4, &flen);
        json_t *frame = frame_json(buf, 4, flen);
        assert_string_equal(jstr(frame, "type"), "message");
        assert_string_equal(jstr(frame, "topic"), "x.y");
        assert_string_equal(jstr(frame, "epoch"), "e");
        assert_int_equal(json_integer_value(json_object_get(frame, "seq")), 3);
        assert_true(json_equal(json_object_get(frame, "data"), v));
        json_decref(frame);
        free(buf);
        free(s);
        json_decref(v);
    }
    assert_null(wsb_msg_dump_value(NULL, NULL));
}

/* Sizes that overflow size_t fail cleanly instead of wrapping around. */
static void test_build_overflow(void **state)
{
    (void)state;
    size_t len = 0;
    assert_null(wsb_msg_build_pong(false, 0, SIZE_MAX, &len));
    assert_null(wsb_msg_build_pong(false, 0, SIZE_MAX - 16, &len));
    wsb_str_t huge = {"x", SIZE_MAX - 8};
    /* The count pass only adds lengths; nothing is read before the check. */
    assert_null(wsb_msg_build_message(WSB_STR_LIT("a"), 1, WSB_STR_NULL, huge, 0, &len));
    assert_null(wsb_msg_build_message(WSB_STR_LIT("a"), 1, WSB_STR_NULL, WSB_STR_LIT("1"),
                                      SIZE_MAX - 20, &len));
}

/* publish -> parse -> dump data -> build message -> client parses: same data. */
static void test_publish_round_trip(void **state)
{
    (void)state;
    const char *req = "{\"type\":\"publish\",\"topic\":\"\\u65e5.b\",\"id\":5,"
                      "\"data\":{\"text\":\"line\\nbreak \\\"q\\\"\",\"n\":[1,2.25,null]}}";
    wsb_msg_t m;
    parse_ok(req, &m);
    size_t flen;
    uint8_t *buf = wsb_msg_build_message(m.topic, 1000, WSB_STR_NULL, m.data, TEST_HEADROOM, &flen);
    json_t *frame = frame_json(buf, TEST_HEADROOM, flen);
    assert_string_equal(jstr(frame, "topic"), "\xe6\x97\xa5.b");
    json_t *sent = json_loadb(m.data.p, m.data.len, 0, NULL);
    assert_true(json_equal(json_object_get(frame, "data"), sent));
    json_decref(sent);
    assert_null(json_object_get(frame, "epoch"));
    assert_null(json_object_get(frame, "id"));
    json_decref(frame);
    free(buf);
    wsb_msg_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_subscribe),
        cmocka_unit_test(test_parse_subscribe_since),
        cmocka_unit_test(test_parse_unsubscribe),
        cmocka_unit_test(test_parse_publish),
        cmocka_unit_test(test_parse_ping),
        cmocka_unit_test(test_parse_auth),
        cmocka_unit_test(test_parse_presence),
        cmocka_unit_test(test_parse_unknown_fields_ignored),
        cmocka_unit_test(test_free_safe),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_bad_id),
        cmocka_unit_test(test_bad_type),
        cmocka_unit_test(test_topic_errors),
        cmocka_unit_test(test_publish_errors),
        cmocka_unit_test(test_since_errors),
        cmocka_unit_test(test_parse_without_jansson),
        cmocka_unit_test(test_build_message_basic),
        cmocka_unit_test(test_build_message_escaping),
        cmocka_unit_test(test_build_length_encodings),
        cmocka_unit_test(test_build_ack),
        cmocka_unit_test(test_build_gap),
        cmocka_unit_test(test_build_stream_gap),
        cmocka_unit_test(test_parse_history),
        cmocka_unit_test(test_parse_request),
        cmocka_unit_test(test_build_error),
        cmocka_unit_test(test_build_pong_welcome),
        cmocka_unit_test(test_build_json),
        cmocka_unit_test(test_dump_value),
        cmocka_unit_test(test_build_overflow),
        cmocka_unit_test(test_publish_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
