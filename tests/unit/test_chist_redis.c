/*
 * test_chist_redis.c - the pure parts of clustered history: the EVALSHA
 * arguments of both scripts, and the parsing of their replies (built here
 * as hiredis would build them).
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

#include "cluster/chist_redis.h"

#include <hiredis/hiredis.h>

static const char SHA[] = "0123456789abcdef0123456789abcdef01234567";

static void check_arg(const chist_args_t *a, int i, const char *want)
{
    assert_true(i < a->argc);
    assert_int_equal(a->argvlen[i], strlen(want));
    assert_memory_equal(a->argv[i], want, strlen(want));
}

static void test_publish_args(void **state)
{
    (void)state;
    chist_op_t *op =
        chist_op_alloc(CHIST_PUBLISH, (wsb_str_t){"chat.\"q\\", 8}, (wsb_str_t){"{\"a\":1}", 7});
    op->size = 100;
    op->ttl_ms = 300000;
    assert_int_equal(strlen(op->epoch_new), CHIST_EPOCH_LEN);
    chist_args_t a;
    chist_build_args(op, SHA, "wsb:", "node-a", "PUBLISH", false, &a);
    assert_int_equal(a.argc, 14);
    check_arg(&a, 0, "EVALSHA");
    check_arg(&a, 1, SHA);
    check_arg(&a, 2, "2");
    check_arg(&a, 3, "wsb:hist:chat.\"q\\");
    check_arg(&a, 4, "wsb:stream:chat.\"q\\");
    check_arg(&a, 5, "wsb:chat.\"q\\");
    /* The topic is escaped inside the envelope head; the script appends the
     * epoch, seq and data. */
    check_arg(&a, 6, "{\"v\":1,\"node\":\"node-a\",\"topic\":\"chat.\\\"q\\\\\",\"epoch\":\"");
    check_arg(&a, 7, "{\"a\":1}");
    check_arg(&a, 8, op->epoch_new);
    check_arg(&a, 9, "100");
    check_arg(&a, 10, "300000");
    check_arg(&a, 11, "PUBLISH");
    /* The topic index the pattern read looks in (chist_pattern_script). */
    check_arg(&a, 12, "wsb:topics");
    check_arg(&a, 13, "chat.\"q\\");
    chist_args_free(&a);
    chist_op_free(op);
}

/* On a Redis Cluster the topic is the hash tag of both keys and the
 * channel, and no topic index is named (another slot). */
static void test_cluster_publish_args(void **state)
{
    (void)state;
    chist_op_t *op = chist_op_alloc(CHIST_PUBLISH, (wsb_str_t){"a.}b", 4}, (wsb_str_t){"1", 1});
    op->size = 10;
    chist_args_t a;
    chist_build_args(op, SHA, "wsb:", "n", "SPUBLISH", true, &a);
    assert_int_equal(a.argc, 14);
    check_arg(&a, 3, "wsb:{a.%7Db}hist");
    check_arg(&a, 4, "wsb:{a.%7Db}stream");
    check_arg(&a, 5, "wsb:{a.%7Db}");
    check_arg(&a, 11, "SPUBLISH");
    check_arg(&a, 12, "");
    check_arg(&a, 13, "a.}b");
    chist_args_free(&a);
    chist_op_free(op);
}

static void test_read_args(void **state)
{
    (void)state;
    chist_op_t *op = chist_op_alloc(CHIST_READ, (wsb_str_t){"chat.a", 6}, WSB_STR_NULL);
    op->size = 10;
    op->mode = CHIST_READ_SINCE;
    op->since_seq = 41;
    strcpy(op->since_epoch, "k3f9");
    chist_args_t a;
    chist_build_args(op, SHA, "p:", "n", "PUBLISH", false, &a);
    assert_int_equal(a.argc, 11);
    check_arg(&a, 3, "p:hist:chat.a");
    check_arg(&a, 4, "p:stream:chat.a");
    check_arg(&a, 5, op->epoch_new);
    check_arg(&a, 6, "10");
    check_arg(&a, 7, "0");
    check_arg(&a, 8, "s");
    check_arg(&a, 9, "k3f9");
    check_arg(&a, 10, "41");
    chist_args_free(&a);
    op->mode = CHIST_READ_LAST;
    op->last_n = 7;
    chist_build_args(op, SHA, "p:", "n", "PUBLISH", false, &a);
    check_arg(&a, 8, "l");
    check_arg(&a, 10, "7");
    chist_args_free(&a);
    op->mode = CHIST_READ_POSITION;
    chist_build_args(op, SHA, "p:", "n", "PUBLISH", false, &a);
    check_arg(&a, 8, "p");
    chist_args_free(&a);
    chist_op_free(op);
}

/* A pattern read looks only at the index range of its literal prefix (the
 * tokens before its first wildcard); a wildcard first means all of it. */
static void test_pattern_args(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *min, *max;
    } cases[] = {
        {"prices.*.usd", "[prices.", "(prices/"},
        {"a.b.>", "[a.b.", "(a.b/"},
        {"a.b.*.c.>", "[a.b.", "(a.b/"},
        {"*.usd", "-", "+"},
        {">", "-", "+"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        chist_op_t *op = chist_op_alloc(
            CHIST_READ, (wsb_str_t){cases[i].pattern, strlen(cases[i].pattern)}, WSB_STR_NULL);
        op->mode = CHIST_READ_PATTERN;
        op->last_n = 3;
        op->cap = 10;
        chist_args_t a;
        chist_build_args(op, SHA, "p:", "n", "PUBLISH", false, &a);
        assert_int_equal(a.argc, 11);
        check_arg(&a, 2, "1");
        check_arg(&a, 3, "p:topics");
        check_arg(&a, 4, "p:");
        check_arg(&a, 5, cases[i].min);
        check_arg(&a, 6, cases[i].max);
        check_arg(&a, 7, cases[i].pattern);
        check_arg(&a, 8, "3");
        check_arg(&a, 9, "10");
        check_arg(&a, 10, "160");
        chist_args_free(&a);
        chist_op_free(op);
    }
}

/* ---- replies built as hiredis builds them ---- */

static redisReply *r_int(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *r_str(int type, const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = type;
    r->len = strlen(s);
    r->str = strdup(s);
    return r;
}

static redisReply *r_arr(size_t n, redisReply **el)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof(redisReply *));
    memcpy(r->element, el, n * sizeof(redisReply *));
    return r;
}

static void r_free(redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        r_free(r->element[i]);
    }
    free(r->element);
    free(r->str);
    free(r);
}

static void test_publish_reply(void **state)
{
    (void)state;
    chist_op_t *op = chist_op_alloc(CHIST_PUBLISH, (wsb_str_t){"t", 1}, (wsb_str_t){"1", 1});
    redisReply *ok =
        r_arr(2, (redisReply *[]){r_int(42), r_str(REDIS_REPLY_STRING, "5f0c1a9e3b2d")});
    assert_int_equal(chist_parse_publish_reply(ok, op), 0);
    assert_int_equal(op->seq, 42);
    assert_string_equal(op->epoch, "5f0c1a9e3b2d");
    r_free(ok);
    redisReply *err = r_str(REDIS_REPLY_ERROR, "NOSCRIPT No matching script. Please use EVAL.");
    assert_int_equal(chist_parse_publish_reply(err, op), -1);
    assert_true(chist_reply_is_noscript(err));
    r_free(err);
    redisReply *other = r_str(REDIS_REPLY_ERROR, "ERR something");
    assert_false(chist_reply_is_noscript(other));
    r_free(other);
    redisReply *zero = r_arr(2, (redisReply *[]){r_int(0), r_str(REDIS_REPLY_STRING, "e")});
    assert_int_equal(chist_parse_publish_reply(zero, op), -1);
    r_free(zero);
    assert_int_equal(chist_parse_publish_reply(NULL, op), -1);
    chist_op_free(op);
}

static redisReply *env(const char *topic, const char *epoch, int seq, const char *data)
{
    char buf[512];
    (void)snprintf(
        buf, sizeof buf,
        "{\"v\":1,\"node\":\"A\",\"topic\":\"%s\",\"epoch\":\"%s\",\"seq\":%d,\"data\":%s}", topic,
        epoch, seq, data);
    return r_str(REDIS_REPLY_STRING, buf);
}

static void test_pattern_reply(void **state)
{
    (void)state;
    chist_op_t *op = chist_op_alloc(CHIST_READ, (wsb_str_t){"p.*", 3}, WSB_STR_NULL);
    op->mode = CHIST_READ_PATTERN;
    op->last_n = 2;
    op->cap = 5;
    redisReply *r =
        r_arr(11, (redisReply *[]){r_int(2), r_str(REDIS_REPLY_STRING, "p.a"),
                                   r_str(REDIS_REPLY_STRING, "e1"), r_int(7), r_int(2),
                                   env("p.a", "e1", 6, "1"), env("p.a", "e1", 7, "2"),
                                   r_str(REDIS_REPLY_STRING, "p.b"),
                                   r_str(REDIS_REPLY_STRING, "e2"), r_int(3), r_int(0)});
    assert_int_equal(chist_parse_pattern_reply(r, op), 0);
    assert_false(op->over_limit);
    assert_int_equal(op->npos, 2);
    assert_string_equal(op->pos[0].topic, "p.a");
    assert_string_equal(op->pos[0].epoch, "e1");
    assert_int_equal(op->pos[0].seq, 7);
    assert_string_equal(op->pos[1].topic, "p.b");
    assert_int_equal(op->pos[1].seq, 3);
    assert_int_equal(op->nmsgs, 2);
    assert_int_equal(op->msgs[0]->seq, 6);
    assert_int_equal(op->msgs[1]->seq, 7);
    r_free(r);
    chist_op_free(op);

    /* Too many topics. */
    op = chist_op_alloc(CHIST_READ, (wsb_str_t){"p.*", 3}, WSB_STR_NULL);
    op->mode = CHIST_READ_PATTERN;
    op->last_n = 2;
    op->cap = 5;
    r = r_arr(1, (redisReply *[]){r_int(-1)});
    assert_int_equal(chist_parse_pattern_reply(r, op), 0);
    assert_true(op->over_limit);
    r_free(r);
    chist_op_free(op);

    /* Refused whole: a topic the pattern does not match, an envelope of
     * another topic or epoch, out of order, above the position, more
     * envelopes than asked, a count that lies, more topics than cap. */
    redisReply *bad[] = {
        r_arr(5, (redisReply *[]){r_int(1), r_str(REDIS_REPLY_STRING, "q.a"),
                                  r_str(REDIS_REPLY_STRING, "e"), r_int(1), r_int(0)}),
        r_arr(6, (redisReply *[]){r_int(1), r_str(REDIS_REPLY_STRING, "p.a"),
                                  r_str(REDIS_REPLY_STRING, "e"), r_int(1), r_int(1),
                                  env("p.b", "e", 1, "1")}),
        r_arr(6, (redisReply *[]){r_int(1), r_str(REDIS_REPLY_STRING, "p.a"),
                                  r_str(REDIS_REPLY_STRING, "e"), r_int(1), r_int(1),
                                  env("p.a", "x", 1, "1")}),
        r_arr(7, (redisReply *[]){r_int(1), r_str(REDIS_REPLY_STRING, "p.a"),
                                  r_str(REDIS_REPLY_STRING, "e"), r_int(2), r_int(2),
                                  env("p.a", "e", 2, "1"), env("p.a", "e", 1, "1")}),
        r_arr(6, (redisReply *[]){r_int(1), r_str(REDIS_REPLY_STRING, "p.a"),
                                  r_str(REDIS_REPLY_STRING, "e"), r_int(1), r_int(1),
                                  env("p.a", "e", 2, "1")}),
        r_arr(8, (redisReply *[]){r_int(1), r_str(REDIS_REPLY_STRING, "p.a"),
                                  r_str(REDIS_REPLY_STRING, "e"), r_int(3), r_int(3),
                                  env("p.a", "e", 1, "1"), env("p.a", "e", 2, "1"),
                                  env("p.a", "e", 3, "1")}),
        r_arr(5, (redisReply *[]){r_int(2), r_str(REDIS_REPLY_STRING, "p.a"),
                                  r_str(REDIS_REPLY_STRING, "e"), r_int(1), r_int(0)}),
        r_arr(5, (redisReply *[]){r_int(1), r_str(REDIS_REPLY_STRING, "p.a"),
                                  r_str(REDIS_REPLY_STRING, "e"), r_int(1), r_int(5)}),
        r_arr(1, (redisReply *[]){r_int(6)}),
        r_str(REDIS_REPLY_ERROR, "ERR x"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        op = chist_op_alloc(CHIST_READ, (wsb_str_t){"p.*", 3}, WSB_STR_NULL);
        op->mode = CHIST_READ_PATTERN;
        op->last_n = 2;
        op->cap = 5;
        assert_int_equal(chist_parse_pattern_reply(bad[i], op), -1);
        assert_int_equal(op->nmsgs, 0);
        assert_int_equal(op->npos, 0);
        r_free(bad[i]);
        chist_op_free(op);
    }
}

static void test_read_reply_since(void **state)
{
    (void)state;
    chist_op_t *op = chist_op_alloc(CHIST_READ, (wsb_str_t){"chat.a", 6}, WSB_STR_NULL);
    op->mode = CHIST_READ_SINCE;
    op->since_seq = 3;
    redisReply *r = r_arr(5, (redisReply *[]){r_str(REDIS_REPLY_STRING, "ep"), r_int(5), r_int(1),
                                              env("chat.a", "ep", 4, "{\"x\":0.1}"),
                                              env("chat.a", "ep", 5, "null")});
    assert_int_equal(chist_parse_read_reply(r, op), 0);
    assert_int_equal(op->recovered, 1);
    assert_int_equal(op->seq, 5);
    assert_int_equal(op->nmsgs, 2);
    assert_int_equal(op->msgs[0]->seq, 4);
    assert_int_equal(op->msgs[1]->seq, 5);
    /* The frame a live subscriber gets: epoch included, data re-serialized. */
    const char *want = "{\"type\":\"message\",\"topic\":\"chat.a\",\"seq\":4,\"epoch\":\"ep\","
                       "\"data\":{\"x\":0.10000000000000001}}";
    assert_true(op->msgs[0]->frame_len > strlen(want));
    assert_memory_equal(op->msgs[0]->frame + op->msgs[0]->frame_len - strlen(want), want,
                        strlen(want));
    r_free(r);
    chist_op_free(op);

    /* A hole, another topic, or another epoch: the whole reply is refused. */
    const struct {
        const char *topic, *epoch;
        int seq;
    } bad[] = {{"chat.a", "ep", 5}, {"chat.b", "ep", 4}, {"chat.a", "xx", 4}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        op = chist_op_alloc(CHIST_READ, (wsb_str_t){"chat.a", 6}, WSB_STR_NULL);
        op->mode = CHIST_READ_SINCE;
        op->since_seq = 3;
        r = r_arr(4, (redisReply *[]){r_str(REDIS_REPLY_STRING, "ep"), r_int(5), r_int(1),
                                      env(bad[i].topic, bad[i].epoch, bad[i].seq, "1")});
        assert_int_equal(chist_parse_read_reply(r, op), -1);
        assert_int_equal(op->nmsgs, 0);
        r_free(r);
        chist_op_free(op);
    }
}

static void test_read_reply_position_and_not_recovered(void **state)
{
    (void)state;
    chist_op_t *op = chist_op_alloc(CHIST_READ, (wsb_str_t){"chat.a", 6}, WSB_STR_NULL);
    op->mode = CHIST_READ_POSITION;
    redisReply *r =
        r_arr(3, (redisReply *[]){r_str(REDIS_REPLY_STRING, "abc"), r_int(0), r_int(-1)});
    assert_int_equal(chist_parse_read_reply(r, op), 0);
    assert_int_equal(op->recovered, -1);
    assert_int_equal(op->seq, 0);
    assert_string_equal(op->epoch, "abc");
    r_free(r);
    op->mode = CHIST_READ_SINCE;
    r = r_arr(3, (redisReply *[]){r_str(REDIS_REPLY_STRING, "abc"), r_int(9), r_int(0)});
    assert_int_equal(chist_parse_read_reply(r, op), 0);
    assert_int_equal(op->recovered, 0);
    r_free(r);
    r = r_arr(2, (redisReply *[]){r_str(REDIS_REPLY_STRING, "abc"), r_int(9)});
    assert_int_equal(chist_parse_read_reply(r, op), -1);
    r_free(r);
    chist_op_free(op);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_args),
        cmocka_unit_test(test_cluster_publish_args),
        cmocka_unit_test(test_read_args),
        cmocka_unit_test(test_pattern_args),
        cmocka_unit_test(test_pattern_reply),
        cmocka_unit_test(test_publish_reply),
        cmocka_unit_test(test_read_reply_since),
        cmocka_unit_test(test_read_reply_position_and_not_recovered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
