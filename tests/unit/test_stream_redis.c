/*
 * test_stream_redis.c - the pure parts of clustered streams: the EVALSHA
 * arguments of both stream scripts (keys hash-tagged by the rule), and the
 * parsing of a read's reply (a filtered view: seq jumps are fine, anything
 * that is not the subscription's, in order, refuses the whole reply).
 */
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

#include "cluster/stream_redis.h"

#include <hiredis/hiredis.h>

static const char SHA[] = "0123456789abcdef0123456789abcdef01234567";

typedef struct {
    int argc;
    const char *argv[STREAM_REDIS_ARGS];
    size_t argvlen[STREAM_REDIS_ARGS];
    char *scratch;
} args_t;

static void build(const chist_op_t *op, const char *prefix, args_t *a)
{
    a->argc = stream_redis_build_args(op, SHA, prefix, "A", "PUBLISH", false, a->argv, a->argvlen,
                                      &a->scratch);
}

static void check_arg(const args_t *a, int i, const char *want)
{
    assert_true(i < a->argc);
    assert_int_equal(a->argvlen[i], strlen(want));
    assert_memory_equal(a->argv[i], want, strlen(want));
}

static chist_op_t *stream_op(int kind, const char *topic, const char *data)
{
    chist_op_t *op = chist_op_alloc(kind, (wsb_str_t){topic, strlen(topic)},
                                    (wsb_str_t){data, data != NULL ? strlen(data) : 0});
    strcpy(op->stream, "auction.>");
    op->size = 100;
    op->ttl_ms = 3600000;
    op->max_bytes = 65536;
    return op;
}

/* On a Redis Cluster the rule is the hash tag of both keys and of the
 * topic's channel: one slot for the stream and all its topics. */
static void test_cluster_publish_args(void **state)
{
    (void)state;
    chist_op_t *op = stream_op(CHIST_PUBLISH, "auction.7", "1");
    args_t a;
    a.argc = stream_redis_build_args(op, SHA, "wsb:", "A", "SPUBLISH", true, a.argv, a.argvlen,
                                     &a.scratch);
    assert_int_equal(a.argc, STREAM_REDIS_ARGS);
    check_arg(&a, 3, "wsb:{auction.>}rule.hist");
    check_arg(&a, 4, "wsb:{auction.>}rule.stream");
    check_arg(&a, 5, "wsb:{auction.>}auction.7");
    free(a.scratch);
    chist_op_free(op);
}

static void test_publish_args(void **state)
{
    (void)state;
    chist_op_t *op = stream_op(CHIST_PUBLISH, "auction.a1.bid", "{\"p\":5}");
    args_t a;
    build(op, "wsb:", &a);
    assert_int_equal(a.argc, 13);
    check_arg(&a, 0, "EVALSHA");
    check_arg(&a, 1, SHA);
    check_arg(&a, 2, "2");
    check_arg(&a, 3, "wsb:hist:{auction.>}");
    check_arg(&a, 4, "wsb:stream:{auction.>}");
    check_arg(&a, 5, "wsb:auction.a1.bid"); /* the topic's channel, as any publish */
    check_arg(&a, 6, "{\"v\":1,\"node\":\"A\",\"topic\":\"auction.a1.bid\",\"epoch\":\"");
    check_arg(&a, 7, "{\"p\":5}");
    check_arg(&a, 8, op->epoch_new);
    check_arg(&a, 9, "100");
    check_arg(&a, 10, "3600000");
    check_arg(&a, 11, "PUBLISH");
    check_arg(&a, 12, "auction.a1.bid");
    free(a.scratch);
    chist_op_free(op);
}

static void test_read_args(void **state)
{
    (void)state;
    chist_op_t *op = stream_op(CHIST_READ, "auction.*.bid", NULL);
    op->mode = CHIST_READ_SINCE;
    op->since_seq = 41;
    strcpy(op->since_epoch, "5f0c");
    args_t a;
    build(op, "p:", &a);
    assert_int_equal(a.argc, 13);
    check_arg(&a, 3, "p:hist:{auction.>}");
    check_arg(&a, 4, "p:stream:{auction.>}");
    check_arg(&a, 6, "100");
    check_arg(&a, 7, "3600000");
    check_arg(&a, 8, "s");
    check_arg(&a, 9, "5f0c");
    check_arg(&a, 10, "41");
    check_arg(&a, 11, "auction.*.bid");
    check_arg(&a, 12, "65536");
    free(a.scratch);
    op->mode = CHIST_READ_LAST;
    op->last_n = 7;
    build(op, "p:", &a);
    check_arg(&a, 8, "l");
    check_arg(&a, 10, "7");
    free(a.scratch);
    chist_op_free(op);
}

static redisReply *r_int(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *r_str(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
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

static redisReply *env(const char *topic, const char *epoch, int seq)
{
    char buf[512];
    (void)snprintf(buf, sizeof buf,
                   "{\"v\":1,\"node\":\"B\",\"topic\":\"%s\",\"from\":{\"client\":\"c-1\","
                   "\"user\":null},\"epoch\":\"%s\",\"seq\":%d,\"data\":%d}",
                   topic, epoch, seq, seq);
    return r_str(buf);
}

static void test_read_reply_filtered_since(void **state)
{
    (void)state;
    chist_op_t *op = stream_op(CHIST_READ, "auction.*.bid", NULL);
    op->mode = CHIST_READ_SINCE;
    op->since_seq = 3;
    /* seq jumps (4 -> 7 -> 9): the other topics' messages, not loss. */
    redisReply *r =
        r_arr(8, (redisReply *[]){r_str("ep"), r_int(10), r_int(1), r_int(-1), r_int(-1),
                                  env("auction.a1.bid", "ep", 4), env("auction.a2.bid", "ep", 7),
                                  env("auction.a1.bid", "ep", 9)});
    assert_int_equal(stream_redis_parse_read_reply(r, op), 0);
    assert_int_equal(op->recovered, 1);
    assert_int_equal(op->seq, 10);
    assert_string_equal(op->epoch, "ep");
    assert_int_equal(op->nmsgs, 3);
    assert_int_equal(op->msgs[1]->seq, 7);
    /* The replayed frame carries the stamp, as the live one. */
    char frame[512];
    size_t fl = op->msgs[0]->frame_len < sizeof frame - 1 ? op->msgs[0]->frame_len : 0;
    memcpy(frame, op->msgs[0]->frame, fl);
    frame[fl] = '\0';
    assert_non_null(strstr(frame, "\"from\":{\"client\":\"c-1\""));
    r_free(r);
    chist_op_free(op);

    /* Not the subscription's topic, another epoch, at or before since,
     * after the position, out of order, not an envelope: all refused. */
    const struct {
        const char *topic, *epoch;
        int seq1, seq2;
    } bad[] = {
        {"auction.a1.ask", "ep", 4, 5}, {"auction.a1.bid", "xx", 4, 5},
        {"auction.a1.bid", "ep", 3, 5}, {"auction.a1.bid", "ep", 4, 11},
        {"auction.a1.bid", "ep", 6, 5}, {"auction.a1.bid", "ep", 5, 5},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        op = stream_op(CHIST_READ, "auction.*.bid", NULL);
        op->mode = CHIST_READ_SINCE;
        op->since_seq = 3;
        r = r_arr(7, (redisReply *[]){r_str("ep"), r_int(10), r_int(1), r_int(-1), r_int(-1),
                                      env(bad[i].topic, bad[i].epoch, bad[i].seq1),
                                      env("auction.a9.bid", "ep", bad[i].seq2)});
        if (i == 0) {
            /* a matching first one, then the bad one */
            r_free(r->element[5]);
            r->element[5] = env("auction.a9.bid", "ep", 4);
            r_free(r->element[6]);
            r->element[6] = env(bad[i].topic, bad[i].epoch, 5);
        }
        assert_int_equal(stream_redis_parse_read_reply(r, op), -1);
        assert_int_equal(op->nmsgs, 0);
        assert_null(op->msgs);
        r_free(r);
        chist_op_free(op);
    }
    op = stream_op(CHIST_READ, "auction.>", NULL);
    op->mode = CHIST_READ_LAST;
    r = r_arr(6, (redisReply *[]){r_str("ep"), r_int(2), r_int(-1), r_int(-1), r_int(-1),
                                  r_str("{not json")});
    assert_int_equal(stream_redis_parse_read_reply(r, op), -1);
    r_free(r);
    r = r_arr(4, (redisReply *[]){r_str("ep"), r_int(2), r_int(-1), r_int(-1)});
    assert_int_equal(stream_redis_parse_read_reply(r, op), -1);
    r_free(r);
    assert_int_equal(stream_redis_parse_read_reply(NULL, op), -1);
    chist_op_free(op);
}

/* A `since` read's reply with a gap: {epoch, seq, 0, gap seq, gap to,
 * what is left after gap to...}. */
static chist_op_t *since_op(const char *epoch, uint64_t since)
{
    chist_op_t *op = stream_op(CHIST_READ, "auction.*.bid", NULL);
    op->mode = CHIST_READ_SINCE;
    op->since_seq = since;
    (void)snprintf(op->since_epoch, sizeof(op->since_epoch), "%s", epoch);
    return op;
}

static void test_read_reply_gap(void **state)
{
    (void)state;
    /* Trimmed in the stream's epoch: lost 4..6, then what is held after 6. */
    chist_op_t *op = since_op("ep", 3);
    redisReply *r =
        r_arr(7, (redisReply *[]){r_str("ep"), r_int(10), r_int(0), r_int(3), r_int(6),
                                  env("auction.a1.bid", "ep", 7), env("auction.a2.bid", "ep", 10)});
    assert_int_equal(stream_redis_parse_read_reply(r, op), 0);
    assert_int_equal(op->recovered, 0);
    assert_true(op->gap);
    assert_int_equal(op->gap_seq, 3);
    assert_int_equal(op->gap_to, 6);
    assert_int_equal(op->nmsgs, 2);
    assert_int_equal(op->msgs[0]->seq, 7);
    r_free(r);
    chist_op_free(op);

    /* Another epoch: from seq 0 (to 0: the log holds the epoch from 1). */
    op = since_op("old", 41);
    r = r_arr(6, (redisReply *[]){r_str("ep"), r_int(2), r_int(0), r_int(0), r_int(0),
                                  env("auction.a1.bid", "ep", 1)});
    assert_int_equal(stream_redis_parse_read_reply(r, op), 0);
    assert_true(op->gap);
    assert_int_equal(op->gap_seq, 0);
    assert_int_equal(op->gap_to, 0);
    assert_int_equal(op->nmsgs, 1);
    r_free(r);
    chist_op_free(op);

    /* No gap: not recovered (ahead), nothing else. */
    op = since_op("ep", 12);
    r = r_arr(5, (redisReply *[]){r_str("ep"), r_int(10), r_int(0), r_int(-1), r_int(-1)});
    assert_int_equal(stream_redis_parse_read_reply(r, op), 0);
    assert_false(op->gap);
    assert_int_equal(op->recovered, 0);
    r_free(r);
    chist_op_free(op);

    /* Inconsistent gaps refuse the reply: its seq not the since (nor 0 in
     * another epoch), `to` before its seq or after the position, a gap on a
     * recovered read, half a gap, an entry at or before `to`. */
    const struct {
        const char *epoch;
        int since, rec, gs, gt, entry;
    } bad[] = {
        {"ep", 3, 0, 2, 6, 7},  {"old", 3, 0, 3, 6, 7}, {"ep", 3, 0, 3, 2, 7},
        {"ep", 3, 0, 3, 11, 0}, {"ep", 3, 1, 3, 6, 7},  {"ep", 3, 0, -1, 6, 7},
        {"ep", 3, 0, 3, -1, 7}, {"ep", 3, 0, 3, 6, 6},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        op = since_op(bad[i].epoch, (uint64_t)bad[i].since);
        r = r_arr(bad[i].entry > 0 ? 6 : 5,
                  (redisReply *[]){
                      r_str("ep"), r_int(10), r_int(bad[i].rec), r_int(bad[i].gs), r_int(bad[i].gt),
                      bad[i].entry > 0 ? env("auction.a1.bid", "ep", bad[i].entry) : NULL});
        assert_int_equal(stream_redis_parse_read_reply(r, op), -1);
        assert_int_equal(op->nmsgs, 0);
        r_free(r);
        chist_op_free(op);
    }
    /* A gap is a `since` read's only. */
    op = stream_op(CHIST_READ, "auction.>", NULL);
    op->mode = CHIST_READ_LAST;
    op->last_n = 3;
    r = r_arr(5, (redisReply *[]){r_str("ep"), r_int(10), r_int(-1), r_int(0), r_int(4)});
    assert_int_equal(stream_redis_parse_read_reply(r, op), -1);
    r_free(r);
    chist_op_free(op);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_args),   cmocka_unit_test(test_cluster_publish_args),
        cmocka_unit_test(test_read_args),      cmocka_unit_test(test_read_reply_filtered_since),
        cmocka_unit_test(test_read_reply_gap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
