/* test_history.c - history rules, the per-topic ring (bounds, ttl, reads,
 * references), the sequence table's recovery decisions and topic bound, and
 * outq_drop_matching (what a gap drops). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "core/history.h"
#include "core/seqtab.h"
#include "core/xmsg.h"
#include "net/outq.h"

#include <cmocka.h>

#define STR(s) ((wsb_str_t){(s), sizeof(s) - 1})

/* A message held by the test (1 reference) for `seq` of topic "t". */
static xmsg_t *msg(uint64_t seq)
{
    xmsg_t *m = xmsg_new(STR("t"), seq, STR("e"), STR("1"), 1);
    xmsg_set_refs(m, 1);
    return m;
}

static uint32_t refs(xmsg_t *m)
{
    return atomic_load(&m->refs);
}

static void test_rules_parse(void **state)
{
    (void)state;
    history_rules_t r;
    char err[256];
    assert_int_equal(history_rules_parse("", &r, err, sizeof err), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(history_rules_parse("[]", &r, err, sizeof err), 0);
    assert_int_equal(history_rules_parse("[{\"pattern\":\"chat.>\",\"size\":5,\"ttl\":\"2s\","
                                         "\"slow_consumer\":\"drop\"},{\"pattern\":\"a.*\"}]",
                                         &r, err, sizeof err),
                     0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.rules[0].size, 5);
    assert_int_equal(r.rules[0].ttl_ms, 2000);
    assert_true(r.rules[0].drop_slow);
    assert_int_equal(r.rules[1].size, 100);
    assert_int_equal(r.rules[1].ttl_ms, 0);
    assert_false(r.rules[1].drop_slow);
    assert_int_equal(history_rules_match(&r, STR("chat.x.y")), 0);
    assert_int_equal(history_rules_match(&r, STR("a.b")), 1);
    assert_int_equal(history_rules_match(&r, STR("a.b.c")), -1);

    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"{}", "expected a list"},
        {"[1]", "history[0]: expected an object"},
        {"[{\"size\":3}]", "\"pattern\" is required"},
        {"[{\"pattern\":\"a..b\"}]", "history[0].pattern"},
        {"[{\"pattern\":\"a\",\"size\":0}]", "history[0].size"},
        {"[{\"pattern\":\"a\",\"ttl\":\"soon\"}]", "history[0].ttl"},
        {"[{\"pattern\":\"a\",\"slow_consumer\":\"maybe\"}]", "history[0].slow_consumer"},
        {"[{\"pattern\":\"a\"},{\"pattern\":\"b\",\"colour\":1}]", "history[1]: unknown field"},
        {"[", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(history_rules_parse(bad[i].json, &r, err, sizeof err), -1);
        if (strstr(err, bad[i].needle) == NULL) {
            fail_msg("%s: got \"%s\", want \"%s\"", bad[i].json, err, bad[i].needle);
        }
        assert_int_equal(r.n, 0);
    }
}

static void test_ring_bound_and_read(void **state)
{
    (void)state;
    history_ring_t r;
    history_ring_init(&r, 4);
    assert_int_equal(history_ring_first_seq(&r), 0);
    xmsg_t *kept[10];
    for (uint64_t s = 1; s <= 10; s++) {
        xmsg_t *m = msg(s);
        kept[s - 1] = m;
        xmsg_ref(m); /* the test keeps one to look at refcounts */
        history_ring_append(&r, m, s);
    }
    assert_int_equal(r.count, 4);
    assert_int_equal(history_ring_first_seq(&r), 7);
    assert_int_equal(r.bytes, (size_t)kept[6]->frame_len + kept[7]->frame_len + kept[8]->frame_len +
                                  kept[9]->frame_len);
    /* Dropped ones gave their reference back; held ones have two. */
    assert_int_equal(refs(kept[5]), 1);
    assert_int_equal(refs(kept[6]), 2);

    xmsg_t *out[8];
    size_t n = history_ring_read(&r, 8, 8, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0]->seq, 9);
    assert_int_equal(out[1]->seq, 10);
    assert_int_equal(refs(kept[8]), 3);
    xmsg_unref(out[0]);
    xmsg_unref(out[1]);
    /* Everything, and the newest `max` when limited. */
    assert_int_equal(history_ring_read(&r, 0, 8, out), 4);
    assert_int_equal(out[0]->seq, 7);
    for (int i = 0; i < 4; i++) {
        xmsg_unref(out[i]);
    }
    assert_int_equal(history_ring_read(&r, 0, 3, out), 3);
    assert_int_equal(out[0]->seq, 8);
    for (int i = 0; i < 3; i++) {
        xmsg_unref(out[i]);
    }
    assert_int_equal(history_ring_read(&r, 10, 8, out), 0);
    assert_int_equal(history_ring_read(&r, 99, 8, out), 0);

    /* ttl: appended at times 7..10; at 12 with ttl 3, 7 and 8 are too old. */
    assert_int_equal(history_ring_expire(&r, 3, 12), 2);
    assert_int_equal(history_ring_first_seq(&r), 9);
    assert_int_equal(history_ring_expire(&r, 0, 1000), 0); /* 0: no age limit */
    assert_int_equal(history_ring_expire(&r, 3, 1000), 2);
    assert_int_equal(r.count, 0);
    assert_null(r.entries); /* an empty ring gives its storage back */
    history_ring_clear(&r);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(refs(kept[i]), 1);
        xmsg_unref(kept[i]);
    }
}

static void publish(seqtab_t *t, const char *topic, uint64_t now)
{
    seqtab_shard_t *sh;
    seqtab_pos_t pos;
    wsb_str_t name = {topic, strlen(topic)};
    uint64_t seq = seqtab_lock_next(t, name, &sh, &pos);
    if (pos.rule >= 0) {
        xmsg_t *m = xmsg_new(name, seq, (wsb_str_t){pos.epoch, strlen(pos.epoch)}, STR("0"), 1);
        xmsg_set_refs(m, 1);
        seqtab_append(t, sh, m, now);
    }
    seqtab_unlock(sh);
}

static void free_msgs(xmsg_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        xmsg_unref(v[i]);
    }
    free(v);
}

static void test_seqtab_recovery_decisions(void **state)
{
    (void)state;
    history_rules_t rules;
    assert_int_equal(history_rules_parse("[{\"pattern\":\"h.>\",\"size\":5}]", &rules, NULL, 0), 0);
    seqtab_t *t = seqtab_new(&rules, 1000, UINT64_MAX);
    seqtab_shard_t *sh;
    seqtab_pos_t pos;

    /* Subscribing creates a history topic (epoch known at seq 0), not others. */
    seqtab_lock_topic(t, STR("h.a"), &sh, &pos, 0);
    assert_int_equal(pos.rule, 0);
    assert_int_equal(pos.seq, 0);
    assert_int_equal(strlen(pos.epoch), SEQTAB_EPOCH_LEN);
    char epoch[SEQTAB_EPOCH_LEN + 1];
    memcpy(epoch, pos.epoch, sizeof epoch);
    seqtab_unlock(sh);
    seqtab_lock_topic(t, STR("plain"), &sh, &pos, 0);
    assert_int_equal(pos.rule, -1);
    assert_string_equal(pos.epoch, "");
    seqtab_unlock(sh);
    assert_int_equal(seqtab_count(t), 1);

    for (int i = 0; i < 8; i++) {
        publish(t, "h.a", 0); /* seqs 1..8; the ring keeps 4..8 */
    }
    wsb_str_t e = {epoch, SEQTAB_EPOCH_LEN};
    xmsg_t **v;
    size_t n;
    seqtab_lock_topic(t, STR("h.a"), &sh, &pos, 0);
    assert_int_equal(pos.seq, 8);
    assert_true(seqtab_since(t, sh, e, 3, &v, &n));
    assert_int_equal(n, 5);
    assert_int_equal(v[0]->seq, 4);
    assert_int_equal(v[4]->seq, 8);
    assert_string_equal(v[0]->epoch, epoch);
    free_msgs(v, n);
    assert_false(seqtab_since(t, sh, e, 2, &v, &n)); /* 3 is gone */
    assert_true(seqtab_since(t, sh, e, 8, &v, &n));  /* up to date */
    assert_int_equal(n, 0);
    assert_false(seqtab_since(t, sh, e, 9, &v, &n)); /* from the future */
    assert_false(seqtab_since(t, sh, STR("000000000000"), 8, &v, &n));
    seqtab_last(t, sh, 2, &v, &n);
    assert_int_equal(n, 2);
    assert_int_equal(v[0]->seq, 7);
    free_msgs(v, n);
    seqtab_unlock(sh);
    seqtab_free(t);
}

static size_t held(seqtab_t *t, const char *topic, uint64_t since, bool *recovers, uint64_t *seq);

static void test_seqtab_bounds_topics_with_history(void **state)
{
    (void)state;
    history_rules_t rules;
    assert_int_equal(history_rules_parse("[{\"pattern\":\">\",\"size\":3}]", &rules, NULL, 0), 0);
    /* 64 topics with history: one per shard. */
    seqtab_t *t = seqtab_new(&rules, SEQTAB_SHARDS, UINT64_MAX);
    seqtab_shard_t *sh;
    seqtab_pos_t pos;
    seqtab_lock_topic(t, STR("t0"), &sh, &pos, 0);
    char epoch0[SEQTAB_EPOCH_LEN + 1];
    memcpy(epoch0, pos.epoch, sizeof epoch0);
    seqtab_unlock(sh);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        (void)snprintf(name, sizeof name, "t%d", i);
        publish(t, name, 0);
        publish(t, name, 0);
    }
    /* Every topic keeps its seq; at most one per shard keeps history. */
    assert_int_equal(seqtab_count(t), 5000);
    size_t with_history = 0;
    for (int i = 0; i < 5000; i++) {
        bool rec;
        uint64_t seq;
        (void)snprintf(name, sizeof name, "t%d", i);
        with_history += held(t, name, 0, &rec, &seq) > 0;
        assert_int_equal(seq, 2);
    }
    /* held() re-attached history (empty, new epoch) to every topic it
     * looked at; the last 64 it looked at hold nothing, the others lost
     * theirs again. None of them holds messages: all were evicted. */
    assert_int_equal(with_history, 0);
    sbuf_t out;
    sbuf_init(&out);
    seqtab_render_metrics(t, &out);
    char line[128];
    (void)snprintf(line, sizeof line, "wsbroker_history_topics{rule=\"0\",pattern=\">\"} %d\n",
                   SEQTAB_SHARDS);
    assert_non_null(strstr(out.p, line));
    sbuf_free(&out);
    /* t0 lost its history and epoch, not its seq: a subscriber sees seq 2
     * under a new epoch, and the old position is not recoverable. */
    seqtab_lock_topic(t, STR("t0"), &sh, &pos, 0);
    assert_int_equal(pos.rule, 0);
    assert_int_equal(pos.seq, 2);
    assert_string_not_equal(pos.epoch, epoch0);
    xmsg_t **v;
    size_t n;
    assert_false(seqtab_since(t, sh, (wsb_str_t){epoch0, SEQTAB_EPOCH_LEN}, 2, &v, &n));
    seqtab_unlock(sh);
    publish(t, "t0", 0);
    seqtab_lock_topic(t, STR("t0"), &sh, &pos, 0);
    assert_int_equal(pos.seq, 3);
    seqtab_unlock(sh);
    seqtab_free(t); /* ASan: every ring and message released */
}

/* The metrics of a fresh burst: evictions counted, messages held by the
 * topics that keep history. */
static void test_seqtab_history_eviction_metrics(void **state)
{
    (void)state;
    history_rules_t rules;
    assert_int_equal(history_rules_parse("[{\"pattern\":\">\",\"size\":3}]", &rules, NULL, 0), 0);
    seqtab_t *t = seqtab_new(&rules, SEQTAB_SHARDS, UINT64_MAX);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        (void)snprintf(name, sizeof name, "t%d", i);
        publish(t, name, 0);
        publish(t, name, 0);
    }
    sbuf_t out;
    sbuf_init(&out);
    seqtab_render_metrics(t, &out);
    char line[128];
    (void)snprintf(line, sizeof line, "wsbroker_history_evictions_total %d\n",
                   5000 - SEQTAB_SHARDS);
    assert_non_null(strstr(out.p, line));
    (void)snprintf(line, sizeof line, "wsbroker_history_messages{rule=\"0\",pattern=\">\"} %d\n",
                   2 * SEQTAB_SHARDS);
    assert_non_null(strstr(out.p, line));
    sbuf_free(&out);
    seqtab_free(t);
}

/* How many messages `topic` holds, and whether a client that saw up to
 * `since` in the topic's epoch recovers; *seq gets the topic's seq. */
static size_t held(seqtab_t *t, const char *topic, uint64_t since, bool *recovers, uint64_t *seq)
{
    seqtab_shard_t *sh;
    seqtab_pos_t pos;
    xmsg_t **v;
    size_t n;
    seqtab_lock_topic(t, (wsb_str_t){topic, strlen(topic)}, &sh, &pos, 0);
    seqtab_last(t, sh, SIZE_MAX, &v, &n);
    free_msgs(v, n);
    size_t count = n;
    *recovers = seqtab_since(t, sh, (wsb_str_t){pos.epoch, strlen(pos.epoch)}, since, &v, &n);
    free_msgs(v, n);
    *seq = pos.seq;
    seqtab_unlock(sh);
    return count;
}

static bool metric_is(seqtab_t *t, const char *line)
{
    sbuf_t out;
    sbuf_init(&out);
    seqtab_render_metrics(t, &out);
    bool found = strstr(out.p, line) != NULL;
    if (!found) {
        print_error("no \"%s\" in:\n%s\n", line, out.p);
    }
    sbuf_free(&out);
    return found;
}

/* history_max_bytes: the oldest messages of the least recently published
 * topic go first, then that topic's others, then the next topic's; the
 * topics keep seq and epoch, and recovery answers honestly. Every frame has
 * the same length (3-byte topics, seqs below 10), so the bound is 10 frames. */
static void test_seqtab_bounds_history_bytes(void **state)
{
    (void)state;
    history_rules_t rules;
    assert_int_equal(history_rules_parse("[{\"pattern\":\">\",\"size\":100}]", &rules, NULL, 0), 0);
    xmsg_t *probe = xmsg_new(STR("vic"), 1, STR("000000000000"), STR("0"), 1);
    size_t f = probe->frame_len;
    xmsg_set_refs(probe, 1);
    xmsg_unref(probe);
    seqtab_t *t = seqtab_new(&rules, 1000, 10 * f);
    char line[160];
    bool rec;
    uint64_t seq;
    publish(t, "vic", 0);
    publish(t, "vic", 0);
    publish(t, "vic", 0);
    char name[8];
    for (int i = 0; i < 7; i++) {
        (void)snprintf(name, sizeof name, "t0%d", i);
        publish(t, name, 0);
    }
    /* At the bound, not over it: nothing dropped. */
    assert_int_equal(held(t, "vic", 0, &rec, &seq), 3);
    assert_true(rec);
    (void)snprintf(line, sizeof line, "wsbroker_history_bytes{rule=\"0\",pattern=\">\"} %zu\n",
                   10 * f);
    assert_true(metric_is(t, line));
    /* One more: vic, the least recently published, loses its oldest. */
    publish(t, "t07", 0);
    assert_int_equal(held(t, "vic", 0, &rec, &seq), 2);
    assert_false(rec); /* seq 1 is gone: no wrong replay */
    assert_int_equal(held(t, "vic", 1, &rec, &seq), 2);
    assert_true(rec);
    assert_true(metric_is(t, "wsbroker_history_evicted_messages_total 1\n"));
    assert_true(metric_is(t, "wsbroker_history_evicted_topics_total 0\n"));
    /* Two more: vic holds nothing, but its seq (and epoch) stay. */
    publish(t, "t08", 0);
    publish(t, "t09", 0);
    assert_int_equal(held(t, "vic", 2, &rec, &seq), 0);
    assert_false(rec);
    assert_int_equal(seq, 3);
    assert_int_equal(held(t, "vic", 3, &rec, &seq), 0);
    assert_true(rec); /* nothing missed */
    assert_true(metric_is(t, "wsbroker_history_evicted_messages_total 3\n"));
    assert_true(metric_is(t, "wsbroker_history_evicted_topics_total 1\n"));
    /* Next: t00, published before the others. Publishing to t01 again makes
     * t02 the least recently published. */
    publish(t, "t10", 0);
    assert_int_equal(held(t, "t00", 0, &rec, &seq), 0);
    assert_int_equal(held(t, "t01", 0, &rec, &seq), 1);
    publish(t, "t01", 0);
    assert_int_equal(held(t, "t01", 0, &rec, &seq), 2);
    assert_int_equal(held(t, "t02", 0, &rec, &seq), 0);
    assert_int_equal(held(t, "t03", 0, &rec, &seq), 1);
    assert_true(metric_is(t, line)); /* still exactly at the bound */
    /* A publish to vic starts its history again, seq 4 in the same epoch. */
    publish(t, "vic", 0);
    assert_int_equal(held(t, "vic", 3, &rec, &seq), 1);
    assert_true(rec);
    assert_int_equal(seq, 4);
    seqtab_free(t);

    /* A message larger than the whole bound is not kept, its seq is. */
    t = seqtab_new(&rules, 1000, f / 2);
    publish(t, "big", 0);
    assert_int_equal(held(t, "big", 0, &rec, &seq), 0);
    assert_int_equal(seq, 1);
    assert_true(metric_is(t, "wsbroker_history_bytes{rule=\"0\",pattern=\">\"} 0\n"));
    seqtab_free(t);
}

static bool is_topic_t(const frame_buf_t *fb, void *ud)
{
    (void)ud;
    return fb->shared != NULL;
}

static void test_outq_drop_matching_keeps_others_in_order(void **state)
{
    (void)state;
    outq_t q;
    outq_init(&q);
    xmsg_t *m = msg(1);
    /* ack, message, ack, message (replay header), ack */
    outq_push(&q, frame_buf_copy("A", 1), 0, 1);
    frame_buf_t *slot = xmsg_worker_buf(m, 0); /* refcnt 1, the xmsg's only reference */
    outq_push(&q, slot, 0, slot->len);
    outq_push(&q, frame_buf_copy("B", 1), 0, 1);
    outq_push(&q, xmsg_replay_buf(m), 0, m->frame_len);
    outq_push(&q, frame_buf_copy("C", 1), 0, 1);
    size_t before = outq_bytes(&q);
    size_t frame_len = m->frame_len;
    size_t dropped = outq_drop_matching(&q, is_topic_t, NULL);
    assert_int_equal(dropped, 2 * frame_len); /* and m is freed (ASan would see a leak) */
    assert_int_equal(outq_bytes(&q), before - dropped);
    uv_buf_t bufs[8];
    size_t total;
    assert_int_equal(outq_iov(&q, bufs, 8, &total), 3);
    assert_memory_equal(bufs[0].base, "A", 1);
    assert_memory_equal(bufs[1].base, "B", 1);
    assert_memory_equal(bufs[2].base, "C", 1);
    outq_clear(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_parse),
        cmocka_unit_test(test_ring_bound_and_read),
        cmocka_unit_test(test_seqtab_recovery_decisions),
        cmocka_unit_test(test_seqtab_bounds_topics_with_history),
        cmocka_unit_test(test_seqtab_history_eviction_metrics),
        cmocka_unit_test(test_seqtab_bounds_history_bytes),
        cmocka_unit_test(test_outq_drop_matching_keeps_others_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
