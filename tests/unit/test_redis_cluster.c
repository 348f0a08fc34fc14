/*
 * test_redis_cluster.c - the pure parts of Redis Cluster routing: hash slots
 * against Redis's own vectors, CLUSTER SLOTS replies (parsed from RESP bytes
 * by hiredis's reader, whole and one byte at a time), MOVED/ASK
 * redirections and the seed list.
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

#include "cluster/redis_cluster.h"

#include <hiredis/hiredis.h>

static void test_keyslot_known_vectors(void **state)
{
    (void)state;
    /* Redis Cluster specification and `CLUSTER KEYSLOT` on Redis 7. */
    assert_int_equal(rc_keyslot("123456789", 9), 12739);
    assert_int_equal(rc_keyslot("foo", 3), 12182);
    assert_int_equal(rc_keyslot("bar", 3), 5061);
    assert_int_equal(rc_keyslot("", 0), 0);
    /* Hash tags: only what is between the first { and the next } counts. */
    assert_int_equal(rc_keyslot("{user1000}.following", 20), rc_keyslot("user1000", 8));
    assert_int_equal(rc_keyslot("{user1000}.followers", 20), rc_keyslot("user1000", 8));
    assert_int_equal(rc_keyslot("{user1000}.following", 20), 3443);
    assert_int_equal(rc_keyslot("foo{}{bar}", 10), rc_keyslot("foo{}{bar}", 10));
    /* An empty tag does not count: the whole key is hashed. */
    assert_int_not_equal(rc_keyslot("foo{}{bar}", 10), rc_keyslot("bar", 3));
    assert_int_equal(rc_keyslot("foo{{bar}}zap", 13), rc_keyslot("{bar", 4));
    assert_int_equal(rc_keyslot("foo{}{bar}", 10), 8363);    /* CLUSTER KEYSLOT, Redis 7.0 */
    assert_int_equal(rc_keyslot("foo{{bar}}zap", 13), 4015); /* CLUSTER KEYSLOT, Redis 7.0 */
    assert_int_equal(rc_keyslot("foo{bar}{zap}", 13), rc_keyslot("bar", 3));
    /* No closing brace: the whole key. */
    assert_int_equal(rc_keyslot("foo{bar", 7), rc_keyslot("foo{bar", 7));
    for (unsigned i = 0; i < 1000; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "k%u", i);
        assert_true(rc_keyslot(k, (size_t)n) < RC_SLOTS);
    }
}

/* Parses RESP bytes with hiredis's reader, whole or `step` bytes at a time. */
static redisReply *read_reply(const char *resp, size_t step)
{
    redisReader *r = redisReaderCreate();
    size_t len = strlen(resp);
    void *out = NULL;
    for (size_t off = 0; off < len && out == NULL; off += step) {
        size_t n = len - off < step ? len - off : step;
        assert_int_equal(redisReaderFeed(r, resp + off, n), REDIS_OK);
        assert_int_equal(redisReaderGetReply(r, &out), REDIS_OK);
    }
    redisReaderFree(r);
    assert_non_null(out);
    return out;
}

#define NODE(host, port, id) "*3\r\n$" host "\r\n:" port "\r\n$2\r\n" id "\r\n"

static const char SLOTS3[] =
    "*3\r\n"
    "*4\r\n:0\r\n:5460\r\n" NODE("9\r\n127.0.0.1", "7000", "a1")
        NODE("9\r\n127.0.0.1", "7003", "a2") "*3\r\n:5461\r\n:10922\r\n" NODE(
            "9\r\n127.0.0.1", "7001", "b1") "*4\r\n:10923\r\n:16383\r\n" NODE("0\r\n", "7002", "c1")
            NODE("9\r\n127.0.0.1", "7005", "c2");

/* A topic's names on a cluster share one slot: the topic inside braces,
 * '%' and '}' escaped so that the tag is all of it and only it. */
static void test_tag_name(void **state)
{
    (void)state;
    char out[RC_TAG_NAME_MAX(8, 16, 16) + 1];
    size_t n = rc_tag_name(out, "wsb:", "chat.room1", 10, "hist", 4);
    assert_string_equal(out, "wsb:{chat.room1}hist");
    assert_int_equal(n, strlen(out));
    assert_int_equal(rc_keyslot(out, n), rc_keyslot("chat.room1", 10));
    n = rc_tag_name(out, "wsb:", "a}b%c{", 6, "", 0);
    assert_string_equal(out, "wsb:{a%7Db%25c{}");
    assert_int_equal(rc_keyslot(out, n), rc_keyslot("a%7Db%25c{", 10));
    /* Two topics never share a tag: "a}" and "a%7D" differ once escaped. */
    char other[RC_TAG_NAME_MAX(8, 16, 16) + 1];
    rc_tag_name(out, "p", "a}", 2, "", 0);
    rc_tag_name(other, "p", "a%7D", 4, "", 0);
    assert_string_not_equal(out, other);
    /* A prefix with braces of its own: every name of one tag still hashes alike. */
    size_t a = rc_tag_name(out, "x{", "t", 1, "hist", 4);
    size_t b = rc_tag_name(other, "x{", "t", 1, "", 0);
    assert_int_equal(rc_keyslot(out, a), rc_keyslot(other, b));
}

static void test_parse_slots(void **state)
{
    (void)state;
    rc_topology_t *t = malloc(sizeof(*t));
    assert_non_null(t);
    for (size_t step = 1; step <= sizeof SLOTS3; step += sizeof SLOTS3 - 2) {
        redisReply *r = read_reply(SLOTS3, step);
        assert_int_equal(rc_parse_slots(r, "10.0.0.9", t), RC_SLOTS);
        freeReplyObject(r);
        assert_int_equal(t->nmasters, 3);
        assert_string_equal(t->masters[0].host, "127.0.0.1");
        assert_int_equal(t->masters[0].port, 7000);
        assert_int_equal(t->masters[1].port, 7001);
        /* An empty host is the address we reached the node on. */
        assert_string_equal(t->masters[2].host, "10.0.0.9");
        assert_int_equal(t->masters[2].port, 7002);
        assert_int_equal(t->slot_master[0], 0);
        assert_int_equal(t->slot_master[5460], 0);
        assert_int_equal(t->slot_master[5461], 1);
        assert_int_equal(t->slot_master[12739], 2);
        assert_int_equal(t->slot_master[16383], 2);
    }
    /* A slot range nobody serves stays unrouted. */
    redisReply *r = read_reply("*1\r\n*3\r\n:0\r\n:99\r\n" NODE("9\r\n127.0.0.1", "7000", "a1"), 7);
    assert_int_equal(rc_parse_slots(r, "h", t), 100);
    freeReplyObject(r);
    assert_int_equal(t->slot_master[99], 0);
    assert_int_equal(t->slot_master[100], RC_NO_MASTER);
    /* Wrong shapes. */
    static const char *const bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*3\r\n:0\r\n:16384\r\n" NODE("1\r\nh", "7000", "a1"),
        "*1\r\n*3\r\n:5\r\n:4\r\n" NODE("1\r\nh", "7000", "a1"),
        "*1\r\n*3\r\n:0\r\n:4\r\n" NODE("1\r\nh", "0", "a1"),
        "*1\r\n*3\r\n:0\r\n:4\r\n*1\r\n$1\r\nh\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = read_reply(bad[i], 3);
        assert_int_equal(rc_parse_slots(r, "h", t), -1);
        freeReplyObject(r);
    }
    assert_int_equal(rc_parse_slots(NULL, "h", t), -1);
    free(t);
}

static void test_parse_slots_too_many_masters(void **state)
{
    (void)state;
    /* RC_MAX_NODES + 1 masters of one slot each: refused, not overflowed. */
    size_t cap = 64 + (RC_MAX_NODES + 1) * 80;
    char *resp = malloc(cap);
    assert_non_null(resp);
    int n = snprintf(resp, cap, "*%d\r\n", RC_MAX_NODES + 1);
    for (int i = 0; i <= RC_MAX_NODES; i++) {
        n += snprintf(resp + n, cap - (size_t)n,
                      "*3\r\n:%d\r\n:%d\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n", i, i, 7000 + i);
    }
    redisReply *r = read_reply(resp, (size_t)n);
    rc_topology_t *t = malloc(sizeof(*t));
    assert_non_null(t);
    assert_int_equal(rc_parse_slots(r, "h", t), -1);
    freeReplyObject(r);
    free(t);
    free(resp);
}

static void test_parse_redirect(void **state)
{
    (void)state;
    bool ask = true;
    unsigned slot = 0;
    rc_addr_t to;
    const char *m = "MOVED 3999 127.0.0.1:6381";
    assert_int_equal(rc_parse_redirect(m, strlen(m), "x", &ask, &slot, &to), 0);
    assert_false(ask);
    assert_int_equal(slot, 3999);
    assert_string_equal(to.host, "127.0.0.1");
    assert_int_equal(to.port, 6381);
    m = "ASK 16383 [::1]:7002";
    assert_int_equal(rc_parse_redirect(m, strlen(m), "x", &ask, &slot, &to), 0);
    assert_true(ask);
    assert_int_equal(slot, 16383);
    assert_string_equal(to.host, "::1");
    assert_int_equal(to.port, 7002);
    /* An endpoint Redis does not know is the host we reached. */
    m = "MOVED 1 :7004";
    assert_int_equal(rc_parse_redirect(m, strlen(m), "10.1.2.3", &ask, &slot, &to), 0);
    assert_string_equal(to.host, "10.1.2.3");
    assert_int_equal(to.port, 7004);
    static const char *const bad[] = {
        "MOVED",     "MOVED 16384 h:1", "MOVED x h:1",
        "MOVED 1 h", "ASK 1 h:0",       "MOVED 1 h:1x",
        "ERR wrong", "MOVED 1",         "MOVED 99999999999 h:1",
        "ASK  h:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rc_parse_redirect(bad[i], strlen(bad[i]), "x", &ask, &slot, &to), -1);
    }
}

static void test_parse_seeds(void **state)
{
    (void)state;
    rc_addr_t s[4];
    assert_int_equal(rc_parse_seeds("127.0.0.1:7000, redis-a:7001,[::1]:7002", s, 4), 3);
    assert_string_equal(s[1].host, "redis-a");
    assert_int_equal(s[1].port, 7001);
    assert_string_equal(s[2].host, "::1");
    assert_int_equal(rc_parse_seeds("h:1,h:2,h:3,h:4,h:5", s, 4), -1); /* more than cap */
    static const char *const bad[] = {"",    "h",    "h:",       ":1",   "h:65536",
                                      "h:0", "h:1,", "h:1,,h:2", "h:-1", "a b:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rc_parse_seeds(bad[i], s, 4), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyslot_known_vectors),
        cmocka_unit_test(test_tag_name),
        cmocka_unit_test(test_parse_slots),
        cmocka_unit_test(test_parse_slots_too_many_masters),
        cmocka_unit_test(test_parse_redirect),
        cmocka_unit_test(test_parse_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
