/*
 * test_envelope.c - the federation envelope's one encoder and decoder: a
 * round trip of both kinds (a local publish, and a clustered one as the
 * publish script assembles it), then hostile input as anyone with access to
 * Redis may publish it: every truncation, wrong types and lengths, bad JSON.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these three first, in this order. */
// clang-format off
#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "cluster/envelope.h"
#include "core/xmsg.h"

#include <stdio.h>

#define STR(s) ((wsb_str_t){(s), sizeof(s) - 1})

static char *encode_req(const char *node, wsb_str_t topic, uint64_t seq, wsb_str_t from,
                        wsb_str_t reply_to, wsb_str_t data)
{
    size_t cap = envelope_encoded_max(strlen(node), topic.len, from.len, reply_to.len, data.len);
    char *out = malloc(cap);
    size_t n = envelope_encode(out, node, topic, seq, from, reply_to, data);
    assert_true(n < cap);
    assert_int_equal(strlen(out), n);
    return out;
}

static char *encode_from(const char *node, wsb_str_t topic, uint64_t seq, wsb_str_t from,
                         wsb_str_t data)
{
    return encode_req(node, topic, seq, from, WSB_STR_NULL, data);
}

static char *encode(const char *node, wsb_str_t topic, uint64_t seq, wsb_str_t data)
{
    return encode_from(node, topic, seq, WSB_STR_NULL, data);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *env = encode("node1", STR("prices.btc"), 42, STR("{\"p\":[1,2.5,\"x\"]}"));
    assert_string_equal(env, "{\"v\":1,\"node\":\"node1\",\"topic\":\"prices.btc\",\"seq\":42,"
                             "\"data\":{\"p\":[1,2.5,\"x\"]}}");
    envelope_t e;
    assert_int_equal(envelope_decode(env, strlen(env), &e), 0);
    assert_int_equal(e.node.len, 5);
    assert_memory_equal(e.node.p, "node1", 5);
    assert_int_equal(e.topic.len, 10);
    assert_memory_equal(e.topic.p, "prices.btc", 10);
    assert_int_equal(e.seq, 42);
    assert_null(e.epoch.p);
    assert_int_equal(e.epoch.len, 0);
    assert_int_equal(e.data_len, strlen("{\"p\":[1,2.5,\"x\"]}"));
    assert_memory_equal(e.data_json, "{\"p\":[1,2.5,\"x\"]}", e.data_len);
    assert_null(e.from_json);
    envelope_clear(&e);
    free(env);
}

/* The publisher's stamp (a "publisher" topic rule) crosses nodes as "from",
 * before "data", and comes out as the same serialized object. */
static void test_from_round_trip(void **state)
{
    (void)state;
    static const char from[] = "{\"client\":\"n1-0-7\",\"user\":\"al\\\"ice\"}";
    char *env = encode_from("node1", STR("chat.a"), 3, STR(from), STR("\"hi\""));
    assert_string_equal(env, "{\"v\":1,\"node\":\"node1\",\"topic\":\"chat.a\",\"from\":{"
                             "\"client\":\"n1-0-7\",\"user\":\"al\\\"ice\"},\"seq\":3,"
                             "\"data\":\"hi\"}");
    envelope_t e;
    assert_int_equal(envelope_decode(env, strlen(env), &e), 0);
    assert_non_null(e.from_json);
    assert_int_equal(e.from_len, sizeof from - 1);
    assert_memory_equal(e.from_json, from, e.from_len);
    assert_int_equal(e.seq, 3);
    assert_memory_equal(e.data_json, "\"hi\"", 4);
    envelope_clear(&e);
    free(env);
}

/* A "from" that is not an object (anyone with Redis access may publish
 * one) is dropped, not handed on to subscribers; the message still goes. */
static void test_from_not_object(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"node\":\"n\",\"topic\":\"t\",\"from\":\"mallory\",\"seq\":1,\"data\":1}",
        "{\"node\":\"n\",\"topic\":\"t\",\"from\":[1],\"seq\":1,\"data\":1}",
        "{\"node\":\"n\",\"topic\":\"t\",\"from\":null,\"seq\":1,\"data\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        envelope_t e;
        assert_int_equal(envelope_decode(bad[i], strlen(bad[i]), &e), 0);
        assert_null(e.from_json);
        assert_int_equal(e.from_len, 0);
        envelope_clear(&e);
    }
}

/* Characters JSON must escape, in the node id and the topic, at the bound
 * envelope_encoded_max() gives. */
static void test_escapes_within_bound(void **state)
{
    (void)state;
    char *env = encode("n\"\\", STR("a.\"\".\\\\"), UINT64_MAX >> 1, STR("null"));
    envelope_t e;
    assert_int_equal(envelope_decode(env, strlen(env), &e), 0);
    assert_int_equal(e.node.len, 3);
    assert_memory_equal(e.node.p, "n\"\\", 3);
    assert_int_equal(e.topic.len, 7);
    assert_memory_equal(e.topic.p, "a.\"\".\\\\", 7);
    assert_int_equal(e.seq, UINT64_MAX >> 1);
    assert_int_equal(e.data_len, 4);
    envelope_clear(&e);
    free(env);
}

/* The publish script appends epoch, seq and data to the head. */
static void test_clustered_head_round_trip(void **state)
{
    (void)state;
    char head[256];
    size_t hl = envelope_head_clustered(head, "n2", STR("chat.a"), WSB_STR_NULL);
    assert_true(hl < envelope_head_max(2, 6, 0));
    assert_string_equal(head, "{\"v\":1,\"node\":\"n2\",\"topic\":\"chat.a\",\"epoch\":\"");
    char env[512];
    int n = snprintf(env, sizeof env, "%sabcdef012345\",\"seq\":7,\"data\":\"hi\"}", head);
    envelope_t e;
    assert_int_equal(envelope_decode(env, (size_t)n, &e), 0);
    assert_int_equal(e.epoch.len, 12);
    assert_memory_equal(e.epoch.p, "abcdef012345", 12);
    assert_int_equal(e.seq, 7);
    assert_int_equal(e.data_len, 4);
    assert_memory_equal(e.data_json, "\"hi\"", 4);
    assert_null(e.from_json);
    envelope_clear(&e);
}

/* The stamp rides in the clustered head too: every node's frame and every
 * replay from the stream carry it. */
static void test_clustered_head_from(void **state)
{
    (void)state;
    static const char from[] = "{\"client\":null,\"user\":\"helpdesk\"}";
    char head[256];
    size_t hl = envelope_head_clustered(head, "n2", STR("chat.a"), STR(from));
    assert_true(hl < envelope_head_max(2, 6, sizeof from - 1));
    assert_string_equal(head, "{\"v\":1,\"node\":\"n2\",\"topic\":\"chat.a\",\"from\":{\"client\":"
                              "null,\"user\":\"helpdesk\"},\"epoch\":\"");
    char env[512];
    int n = snprintf(env, sizeof env, "%sabcdef012345\",\"seq\":7,\"data\":\"hi\"}", head);
    envelope_t e;
    assert_int_equal(envelope_decode(env, (size_t)n, &e), 0);
    assert_int_equal(e.epoch.len, 12);
    assert_int_equal(e.from_len, sizeof from - 1);
    assert_memory_equal(e.from_json, from, e.from_len);
    envelope_clear(&e);
}

/* Every proper prefix of a valid envelope is refused (and leaks nothing:
 * the sanitizer build checks). */
/* A request crosses nodes with its inbox as "reply_to", after "from" and
 * before "seq", and comes out as the same topic. */
static void test_reply_to_round_trip(void **state)
{
    (void)state;
    static const char inbox[] = "_inbox.0123456789abcdef.00112233445566778899aabbccddeeff";
    char *env = encode_req("n1", STR("dev.d7"), 9, STR("{\"client\":\"c\",\"user\":null}"),
                           STR(inbox), STR("{\"op\":1}"));
    assert_string_equal(env, "{\"v\":1,\"node\":\"n1\",\"topic\":\"dev.d7\",\"from\":{"
                             "\"client\":\"c\",\"user\":null},\"reply_to\":\"_inbox."
                             "0123456789abcdef.00112233445566778899aabbccddeeff\",\"seq\":9,"
                             "\"data\":{\"op\":1}}");
    envelope_t e;
    assert_int_equal(envelope_decode(env, strlen(env), &e), 0);
    assert_int_equal(e.reply_to.len, sizeof inbox - 1);
    assert_memory_equal(e.reply_to.p, inbox, e.reply_to.len);
    assert_int_equal(e.seq, 9);
    assert_memory_equal(e.data_json, "{\"op\":1}", e.data_len);
    envelope_clear(&e);
    free(env);
    /* Without "from" too; a plain publish has none. */
    env = encode_req("n1", STR("t"), 1, WSB_STR_NULL, STR("_inbox.a.b"), STR("1"));
    assert_string_equal(
        env, "{\"v\":1,\"node\":\"n1\",\"topic\":\"t\",\"reply_to\":\"_inbox.a.b\",\"seq\":1,"
             "\"data\":1}");
    assert_int_equal(envelope_decode(env, strlen(env), &e), 0);
    assert_int_equal(e.reply_to.len, 10);
    envelope_clear(&e);
    free(env);
    env = encode("n1", STR("t"), 1, STR("1"));
    assert_int_equal(envelope_decode(env, strlen(env), &e), 0);
    assert_null(e.reply_to.p);
    assert_int_equal(e.reply_to.len, 0);
    envelope_clear(&e);
    free(env);
}

/* A "reply_to" that is not an inbox topic is dropped (the message is a
 * plain publish): a responder must never be told to answer on a topic of
 * someone's choosing. The envelope itself stays valid. */
static void test_reply_to_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\"reply_to\":\"chat.room1\",", /* not an inbox */
        "\"reply_to\":\"_inbox\",",     /* "_inbox" alone: the name space, not an inbox */
        "\"reply_to\":\"_inbox.*\",",   /* a pattern */
        "\"reply_to\":\"_inbox..x\",",  /* empty token */
        "\"reply_to\":\"_inboxx.a\",",  /* another first token */
        "\"reply_to\":\"\",",
        "\"reply_to\":7,",
        "\"reply_to\":null,",
        "\"reply_to\":[\"_inbox.a\"],",
        "\"reply_to\":{\"t\":\"_inbox.a\"},",
        "\"reply_to\":\"_inbox.a\\u0000b\",", /* NUL inside */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char env[256];
        (void)snprintf(env, sizeof env,
                       "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",%s\"seq\":1,\"data\":2}", bad[i]);
        envelope_t e;
        assert_int_equal(envelope_decode(env, strlen(env), &e), 0);
        assert_null(e.reply_to.p);
        assert_int_equal(e.reply_to.len, 0);
        envelope_clear(&e);
    }
    /* Twice: duplicate keys refuse the whole envelope, as for any member. */
    static const char dup[] = "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",\"reply_to\":\"_inbox.a\","
                              "\"reply_to\":\"_inbox.b\",\"seq\":1,\"data\":2}";
    envelope_t e;
    assert_int_equal(envelope_decode(dup, sizeof dup - 1, &e), -1);
}

static void test_truncated(void **state)
{
    (void)state;
    char *env = encode("n", STR("t.x"), 1, STR("[1,{\"a\":\"b\"}]"));
    size_t len = strlen(env);
    for (size_t i = 0; i < len; i++) {
        envelope_t e;
        char *copy = malloc(i + 1); /* exactly i bytes readable: no read past them */
        memcpy(copy, env, i);
        assert_int_equal(envelope_decode(copy, i, &e), -1);
        free(copy);
    }
    free(env);
}

static void test_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "[1,2,3]",
        "\"a string\"",
        "{}",
        /* a member missing */
        "{\"v\":1,\"topic\":\"t\",\"seq\":1,\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"seq\":1,\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",\"seq\":1}",
        /* wrong types */
        "{\"v\":1,\"node\":5,\"topic\":\"t\",\"seq\":1,\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"topic\":[\"t\"],\"seq\":1,\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",\"seq\":\"1\",\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",\"seq\":1.5,\"data\":1}",
        /* bad values */
        "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",\"seq\":-1,\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",\"seq\":99999999999999999999999,\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"topic\":\"\",\"seq\":1,\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"topic\":\"a.*\",\"seq\":1,\"data\":1}",
        "{\"v\":1,\"node\":\"n\",\"topic\":\"a..b\",\"seq\":1,\"data\":1}",
        /* a duplicate key: which one counts is the attacker's choice */
        "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",\"topic\":\"u\",\"seq\":1,\"data\":1}",
        /* trailing garbage */
        "{\"v\":1,\"node\":\"n\",\"topic\":\"t\",\"seq\":1,\"data\":1}x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        envelope_t e;
        if (envelope_decode(bad[i], strlen(bad[i]), &e) != -1) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
    /* A NUL inside the topic (JSON allows \u0000) is not a valid topic. */
    static const char nul[] = "{\"node\":\"n\",\"topic\":\"a\\u0000b\",\"seq\":1,\"data\":1}";
    envelope_t e;
    assert_int_equal(envelope_decode(nul, sizeof nul - 1, &e), -1);
}

/* An epoch that is empty, too long or not a string is no epoch: the
 * message is not a clustered one. */
static void test_epoch_bounds(void **state)
{
    (void)state;
    char env[512];
    char epoch[XMSG_EPOCH_MAX + 2];
    memset(epoch, 'e', sizeof epoch - 1);
    epoch[sizeof epoch - 1] = '\0';
    envelope_t e;

    int n =
        snprintf(env, sizeof env,
                 "{\"node\":\"n\",\"topic\":\"t\",\"epoch\":\"%s\",\"seq\":1,\"data\":1}", epoch);
    assert_int_equal(envelope_decode(env, (size_t)n, &e), 0);
    assert_null(e.epoch.p); /* XMSG_EPOCH_MAX + 1 bytes */
    envelope_clear(&e);

    epoch[XMSG_EPOCH_MAX] = '\0';
    n = snprintf(env, sizeof env,
                 "{\"node\":\"n\",\"topic\":\"t\",\"epoch\":\"%s\",\"seq\":1,\"data\":1}", epoch);
    assert_int_equal(envelope_decode(env, (size_t)n, &e), 0);
    assert_int_equal(e.epoch.len, XMSG_EPOCH_MAX);
    envelope_clear(&e);

    static const char empty[] =
        "{\"node\":\"n\",\"topic\":\"t\",\"epoch\":\"\",\"seq\":1,\"data\":1}";
    assert_int_equal(envelope_decode(empty, sizeof empty - 1, &e), 0);
    assert_null(e.epoch.p);
    envelope_clear(&e);

    static const char num[] = "{\"node\":\"n\",\"topic\":\"t\",\"epoch\":5,\"seq\":1,\"data\":1}";
    assert_int_equal(envelope_decode(num, sizeof num - 1, &e), 0);
    assert_null(e.epoch.p);
    envelope_clear(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_escapes_within_bound),
        cmocka_unit_test(test_clustered_head_round_trip),
        cmocka_unit_test(test_from_round_trip),
        cmocka_unit_test(test_from_not_object),
        cmocka_unit_test(test_clustered_head_from),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_epoch_bounds),
        cmocka_unit_test(test_reply_to_round_trip),
        cmocka_unit_test(test_reply_to_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
