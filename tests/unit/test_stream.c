/* test_stream.c - a stream's log (core/stream.h): seqs, the option's
 * parsing, recovery decisions, filtering by pattern, the size, bytes and
 * ttl bounds, and the references the log holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "core/stream.h"
#include "core/xmsg.h"

#include <cmocka.h>
#include <jansson.h>

#define STR(s) ((wsb_str_t){(s), sizeof(s) - 1})

static wsb_str_t cstr(const char *s)
{
    return (wsb_str_t){s, strlen(s)};
}

/* Publishes `data` on `topic` into the stream as pubsub.c does; the test
 * keeps one reference (released by drop()), the log takes one. */
static xmsg_t *publish(stream_t *s, const char *topic, const char *data, uint64_t now_ms)
{
    stream_lock(s);
    uint64_t seq = stream_next(s);
    xmsg_t *m = xmsg_new(cstr(topic), seq, cstr(stream_epoch(s)), cstr(data), 1);
    xmsg_set_refs(m, 2);
    stream_append(s, m, now_ms);
    stream_unlock(s);
    return m;
}

static uint32_t refs(xmsg_t *m)
{
    return atomic_load(&m->refs);
}

static void free_msgs(xmsg_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        xmsg_unref(v[i]);
    }
    free(v);
}

static stream_t *new_stream(uint32_t size, uint64_t ttl_ms, uint64_t max_bytes)
{
    stream_conf_t c = {.size = size, .ttl_ms = ttl_ms, .max_bytes = max_bytes};
    return stream_new("auction.>", 9, &c);
}

static void test_conf_parse(void **state)
{
    (void)state;
    stream_conf_t c;
    char err[256];
    json_t *v = json_loads("{\"size\":5,\"ttl\":\"1h\",\"max_bytes\":\"2KiB\"}", 0, NULL);
    assert_int_equal(stream_conf_parse(v, "topics[0].stream", &c, err, sizeof err), 0);
    assert_int_equal(c.size, 5);
    assert_int_equal(c.ttl_ms, 3600000);
    assert_int_equal(c.max_bytes, 2048);
    json_decref(v);
    assert_int_equal(stream_conf_parse(json_true(), "s", &c, err, sizeof err), 0);
    assert_int_equal(c.size, STREAM_DEFAULT_SIZE);
    assert_int_equal(c.max_bytes, STREAM_DEFAULT_MAX_BYTES);
    assert_false(c.drop_slow);
    for (int drop = 0; drop < 2; drop++) {
        json_t *o = json_pack("{ss}", "slow_consumer", drop ? "drop" : "close");
        assert_int_equal(stream_conf_parse(o, "s", &c, err, sizeof err), 0);
        assert_int_equal(c.drop_slow, drop);
        stream_t *st = stream_new("a.>", 3, &c);
        assert_int_equal(stream_drops_slow(st), drop);
        stream_free(st);
        json_decref(o);
    }
    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"size\":0}", "s.size"},
        {"{\"size\":1000001}", "s.size"},
        {"{\"ttl\":-1}", "s.ttl"},
        {"{\"max_bytes\":\"2GiB\"}", "s.max_bytes"},
        {"{\"max_bytes\":1023}", "s.max_bytes"},
        {"{\"colour\":1}", "unknown field \"colour\""},
        {"{\"slow_consumer\":\"later\"}", "s.slow_consumer: expected \"close\" or \"drop\""},
        {"{\"slow_consumer\":true}", "s.slow_consumer"},
        {"3", "s: expected true or an object"},
        {"false", "s: expected true or an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(b);
        err[0] = '\0';
        assert_int_equal(stream_conf_parse(b, "s", &c, err, sizeof err), -1);
        assert_non_null(strstr(err, bad[i].needle));
        json_decref(b);
    }
}

static void test_since_filters_by_pattern_and_decides_recovery(void **state)
{
    (void)state;
    stream_t *s = new_stream(100, 0, STREAM_DEFAULT_MAX_BYTES);
    size_t len = 0;
    assert_string_equal(stream_name(s, &len), "auction.>");
    assert_int_equal(len, 9);
    const char *topics[] = {"auction.a.bid", "auction.b.bid", "auction.a.ask", "auction.a.bid"};
    xmsg_t *mine[4];
    for (int i = 0; i < 4; i++) {
        mine[i] = publish(s, topics[i], "1", 0);
        assert_int_equal(mine[i]->seq, (uint64_t)i + 1);
    }
    stream_lock(s);
    wsb_str_t epoch = cstr(stream_epoch(s));
    assert_int_equal(epoch.len, STREAM_EPOCH_LEN);
    assert_int_equal(stream_seq(s), 4);
    xmsg_t **v = NULL;
    size_t n = 0;
    assert_true(stream_since(s, epoch, 1, STR("auction.*.bid"), 0, &v, &n));
    assert_int_equal(n, 2);
    assert_int_equal(v[0]->seq, 2);
    assert_int_equal(v[1]->seq, 4);
    assert_int_equal(refs(v[0]), 3); /* the test's, the log's, the read's */
    free_msgs(v, n);
    assert_true(stream_since(s, epoch, 0, STR("auction.a.ask"), 0, &v, &n));
    assert_int_equal(n, 1);
    assert_int_equal(v[0]->seq, 3);
    free_msgs(v, n);
    /* At the last seq: recovered, nothing to replay. */
    assert_true(stream_since(s, epoch, 4, STR(">"), 0, &v, &n));
    assert_int_equal(n, 0);
    assert_null(v);
    assert_false(stream_since(s, epoch, 5, STR(">"), 0, &v, &n));
    assert_false(stream_since(s, STR("000000000000"), 1, STR(">"), 0, &v, &n));
    assert_false(stream_since(s, STR("short"), 1, STR(">"), 0, &v, &n));
    /* history N: the last N matching. */
    stream_last(s, STR("auction.a.*"), 2, 0, &v, &n);
    assert_int_equal(n, 2);
    assert_int_equal(v[0]->seq, 3);
    assert_int_equal(v[1]->seq, 4);
    free_msgs(v, n);
    stream_last(s, STR("nothing.here"), 5, 0, &v, &n);
    assert_int_equal(n, 0);
    stream_unlock(s);
    stream_free(s);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(refs(mine[i]), 1); /* the log gave its own back */
        xmsg_unref(mine[i]);
    }
}

static void test_size_bound_trims_oldest_and_keeps_seq(void **state)
{
    (void)state;
    stream_t *s = new_stream(3, 0, STREAM_DEFAULT_MAX_BYTES);
    xmsg_t *first = publish(s, "auction.x", "1", 0);
    for (int i = 0; i < 40; i++) {
        xmsg_unref(publish(s, "auction.x", "1", 0));
    }
    assert_int_equal(refs(first), 1); /* trimmed: the log's reference went */
    xmsg_unref(first);
    stream_lock(s);
    assert_int_equal(stream_count(s), 3);
    assert_int_equal(stream_first_seq(s), 39);
    assert_int_equal(stream_seq(s), 41);
    wsb_str_t epoch = cstr(stream_epoch(s));
    xmsg_t **v = NULL;
    size_t n = 0;
    assert_false(stream_since(s, epoch, 37, STR(">"), 0, &v, &n));
    assert_true(stream_since(s, epoch, 38, STR(">"), 0, &v, &n));
    assert_int_equal(n, 3);
    free_msgs(v, n);
    stream_unlock(s);
    stream_free(s);
}

static void test_bytes_bound_keeps_the_newest(void **state)
{
    (void)state;
    stream_t *s = new_stream(1000, 0, 1024);
    char big[600];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 10; i++) {
        xmsg_unref(publish(s, "auction.x", big, 0));
    }
    stream_lock(s);
    assert_int_equal(stream_count(s), 1); /* two frames are over 1 KiB */
    assert_int_equal(stream_first_seq(s), 10);
    stream_unlock(s);
    char huge[2000];
    memset(huge, '2', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    xmsg_unref(publish(s, "auction.x", huge, 0));
    stream_lock(s);
    assert_int_equal(stream_count(s), 1); /* over the bound alone, still held */
    assert_int_equal(stream_first_seq(s), 11);
    stream_unlock(s);
    stream_free(s);
}

static void test_ttl_expires_oldest(void **state)
{
    (void)state;
    stream_t *s = new_stream(100, 1000, STREAM_DEFAULT_MAX_BYTES);
    xmsg_unref(publish(s, "auction.x", "1", 100));
    xmsg_unref(publish(s, "auction.x", "1", 900));
    stream_expire(s, 1100); /* exactly the ttl: kept */
    stream_lock(s);
    assert_int_equal(stream_count(s), 2);
    stream_unlock(s);
    stream_expire(s, 1101);
    stream_lock(s);
    assert_int_equal(stream_count(s), 1);
    xmsg_t **v = NULL;
    size_t n = 0;
    wsb_str_t epoch = cstr(stream_epoch(s));
    assert_false(stream_since(s, epoch, 0, STR(">"), 1101, &v, &n));
    assert_true(stream_since(s, epoch, 1, STR(">"), 1101, &v, &n));
    free_msgs(v, n);
    /* A read expires too: nothing held, the position stays. */
    assert_true(stream_since(s, epoch, 2, STR(">"), 5000, &v, &n));
    assert_int_equal(stream_count(s), 0);
    assert_int_equal(stream_seq(s), 2);
    assert_false(stream_since(s, epoch, 1, STR(">"), 5000, &v, &n));
    stream_unlock(s);
    stream_free(s);
}

/* The range lookup behind a `gap` (stream_recover): what is lost, what is
 * left to replay, for each position a client may hold. */
static void test_recover_names_the_lost_range_and_replays_the_rest(void **state)
{
    (void)state;
    stream_t *s = new_stream(3, 0, STREAM_DEFAULT_MAX_BYTES);
    const char *topics[] = {"auction.a.bid", "auction.b.bid", "auction.a.ask",
                            "auction.a.bid", "auction.b.bid", "auction.a.ask"};
    for (int i = 0; i < 6; i++) {
        xmsg_unref(publish(s, topics[i], "1", 0));
    }
    stream_lock(s); /* the log holds 4..6 */
    assert_int_equal(stream_first_seq(s), 4);
    wsb_str_t epoch = cstr(stream_epoch(s));
    xmsg_t **v = NULL;
    size_t n = 0;
    stream_recovery_t r;
    static const struct {
        const char *epoch; /* NULL: the stream's */
        uint64_t since;
        bool recovered, gap;
        uint64_t gap_seq, gap_to;
        size_t n;
        uint64_t first; /* seq of the first replayed, when n > 0 */
    } cases[] = {
        {NULL, 6, true, false, 0, 0, 0, 0},           /* up to date */
        {NULL, 3, true, false, 0, 0, 2, 4},           /* exactly what is held: 4, 5 */
        {NULL, 4, true, false, 0, 0, 1, 5},           /* 5 */
        {NULL, 2, false, true, 2, 3, 2, 4},           /* 3 lost, then 4, 5 */
        {NULL, 0, false, true, 0, 3, 2, 4},           /* 1..3 lost */
        {NULL, 7, false, false, 0, 0, 0, 0},          /* ahead: nothing known lost */
        {"000000000000", 5, false, true, 0, 3, 2, 4}, /* another epoch */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wsb_str_t e = cases[i].epoch != NULL ? cstr(cases[i].epoch) : epoch;
        stream_recover(s, e, cases[i].since, STR("auction.*.bid"), 0, &r, &v, &n);
        assert_int_equal(r.recovered, cases[i].recovered);
        assert_int_equal(r.gap, cases[i].gap);
        assert_int_equal(r.gap_seq, cases[i].gap_seq);
        assert_int_equal(r.gap_to, cases[i].gap_to);
        assert_int_equal(n, cases[i].n);
        if (n > 0) {
            assert_int_equal(v[0]->seq, cases[i].first);
            assert_int_equal(v[n - 1]->seq, 5);
        }
        free_msgs(v, n);
    }
    /* The old API: the same decision, nothing handed out when not recovered. */
    assert_false(stream_since(s, epoch, 2, STR(">"), 0, &v, &n));
    assert_null(v);
    assert_int_equal(n, 0);
    stream_unlock(s);
    stream_free(s);

    /* An empty log (ttl): everything after `since` up to the last seq is
     * lost, nothing to replay; a stream that never had a message loses
     * nothing. */
    s = new_stream(10, 1000, STREAM_DEFAULT_MAX_BYTES);
    stream_lock(s);
    epoch = cstr(stream_epoch(s));
    stream_recover(s, cstr("000000000000"), 9, STR(">"), 0, &r, &v, &n);
    assert_true(r.gap && r.gap_seq == 0 && r.gap_to == 0 && n == 0 && !r.recovered);
    stream_recover(s, epoch, 0, STR(">"), 0, &r, &v, &n);
    assert_true(r.recovered && !r.gap && n == 0);
    stream_unlock(s);
    xmsg_unref(publish(s, "auction.a", "1", 0));
    xmsg_unref(publish(s, "auction.a", "1", 0));
    stream_lock(s);
    stream_recover(s, epoch, 1, STR(">"), 5000, &r, &v, &n);
    assert_int_equal(stream_count(s), 0);
    assert_true(!r.recovered && r.gap && r.gap_seq == 1 && r.gap_to == 2 && n == 0);
    assert_null(v);
    stream_unlock(s);
    stream_free(s);
}

static void test_epochs_differ(void **state)
{
    (void)state;
    stream_t *a = new_stream(1, 0, STREAM_DEFAULT_MAX_BYTES);
    stream_t *b = new_stream(1, 0, STREAM_DEFAULT_MAX_BYTES);
    assert_string_not_equal(stream_epoch(a), stream_epoch(b));
    stream_free(a);
    stream_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_parse),
        cmocka_unit_test(test_since_filters_by_pattern_and_decides_recovery),
        cmocka_unit_test(test_size_bound_trims_oldest_and_keeps_seq),
        cmocka_unit_test(test_bytes_bound_keeps_the_newest),
        cmocka_unit_test(test_ttl_expires_oldest),
        cmocka_unit_test(test_recover_names_the_lost_range_and_replays_the_rest),
        cmocka_unit_test(test_epochs_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
