/* test_pubsub.c - the core's one publish/subscribe/unsubscribe path, driven
 * through a fake subscriber on one worker without sockets: fan-out to exact
 * and pattern subscriptions, exactly-once delivery, the verdicts (gap when
 * the history rule says drop, close 1013 otherwise), permissions and limits,
 * and the history switch-over (replay up to the position, then live). */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "core/auth.h"
#include "core/chist.h"
#include "core/core.h"
#include "core/pubsub.h"
#include "core/router.h"
#include "core/seqtab.h"
#include "core/xmsg.h"
#include "shared/frame_buf.h"
#include "wsb/ws_frame.h"

#include <cmocka.h>
#include <jansson.h>

#define STR(s)   ((wsb_str_t){(s), sizeof(s) - 1})
#define MAX_SEEN 32

typedef struct {
    subscriber_t sub;
    subscriber_verdict_t verdict; /* what deliver_cb answers */
    size_t ndelivered;
    uint64_t seqs[MAX_SEEN];
    char topics[MAX_SEEN][32];
    char epochs[MAX_SEEN][XMSG_EPOCH_MAX + 1];
    bool drop_slow[MAX_SEEN];
    char frames[MAX_SEEN][160]; /* the shared frame's bytes */
    size_t ngaps;
    int gap_result;
    size_t ncloses;
    int close_code;
} fake_t;

static subscriber_verdict_t fake_deliver(void *user_data, frame_buf_t *fb, xmsg_t *m)
{
    fake_t *f = user_data;
    /* The shared frame is the message's own bytes, or the worker's one copy
     * of them in a chunk (xmsg.h), never a copy per subscriber. */
    assert_int_equal(fb->len, m->frame_len);
    assert_memory_equal(fb->bytes, m->frame, m->frame_len);
    assert_true(fb->bytes == m->frame || fb->backing != NULL);
    if (f->verdict == SUBSCRIBER_DELIVERED && f->ndelivered < MAX_SEEN) {
        f->seqs[f->ndelivered] = m->seq;
        (void)snprintf(f->topics[f->ndelivered], sizeof f->topics[0], "%s", m->topic);
        (void)snprintf(f->epochs[f->ndelivered], sizeof f->epochs[0], "%s", m->epoch);
        f->drop_slow[f->ndelivered] = m->drop_slow;
        (void)snprintf(f->frames[f->ndelivered], sizeof f->frames[0], "%.*s", (int)fb->len,
                       (const char *)fb->bytes);
        f->ndelivered++;
    }
    return f->verdict;
}

static int fake_gap(void *user_data, const xmsg_t *m)
{
    (void)m;
    fake_t *f = user_data;
    f->ngaps++;
    return f->gap_result;
}

static void fake_close(void *user_data, int code, const char *why)
{
    (void)why;
    fake_t *f = user_data;
    f->ncloses++;
    f->close_code = code;
}

static const subscriber_ops_t fake_ops = {
    .deliver_cb = fake_deliver, .gap_cb = fake_gap, .close_cb = fake_close};

/* A worker as the core sees it: its core part, a loop for the clock, its
 * metrics. No listener, no connection, no app/ worker. */
typedef struct {
    core_worker_t cw;
    uv_loop_t loop;
    metrics_t metrics;
    unsigned wakes; /* core_t.wake_cb calls */
} fake_worker_t;

/* The process as the core sees it: no bridge unless a test plugs a fake
 * federation into core.fed_ops. */
typedef struct {
    history_rules_t rules;
    core_t core;
    core_worker_t *w; /* workers[0] */
    core_worker_t *workers[3];
    fake_worker_t *fw[3];
} world_t;

/* A federation that records what the core asks of it. */
typedef struct {
    unsigned publishes;
    uint64_t last_seq;
    int interest; /* sum of the deltas */
} fake_fed_t;

static void fed_publish(void *fed, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                        wsb_str_t data_json)
{
    (void)topic;
    (void)from_json;
    (void)data_json;
    fake_fed_t *f = fed;
    f->publishes++;
    f->last_seq = seq;
}

static void fed_interest(void *fed, const char *pattern, size_t len, int delta)
{
    (void)pattern;
    (void)len;
    ((fake_fed_t *)fed)->interest += delta;
}

static int fed_chist_submit(void *fed, chist_op_t *op)
{
    (void)fed;
    (void)op;
    return -1; /* Redis unavailable */
}

static const core_fed_ops_t fake_fed_ops = {
    .publish_cb = fed_publish,
    .interest_cb = fed_interest,
    .chist_submit_cb = fed_chist_submit,
};

static void fake_wake(core_worker_t *w)
{
    ((fake_worker_t *)w->owner)->wakes++;
}

/* `nworkers` workers driven by hand from this thread (no loop runs). */
static world_t *world_new_n(const char *history, unsigned nworkers)
{
    world_t *x = calloc(1, sizeof(*x));
    char err[256];
    assert_int_equal(history_rules_parse(history, &x->rules, err, sizeof err), 0);
    x->core.nworkers = nworkers;
    x->core.workers = x->workers;
    x->core.history_rules = &x->rules;
    x->core.max_subscriptions = 3;
    x->core.max_history_topics_per_subscribe = 1000;
    x->core.wake_cb = fake_wake;
    x->core.seqtab = seqtab_new(&x->rules, 100 * SEQTAB_SHARDS, 1 << 20);
    for (unsigned i = 0; i < nworkers; i++) {
        fake_worker_t *fw = calloc(1, sizeof(*fw));
        assert_int_equal(uv_loop_init(&fw->loop), 0);
        metrics_init(&fw->metrics);
        fw->cw.core = &x->core;
        fw->cw.index = i;
        fw->cw.trie = trie_new();
        fw->cw.loop = &fw->loop;
        fw->cw.metrics = &fw->metrics;
        fw->cw.owner = fw;
        xqueue_init(&fw->cw.inbox, 1024);
        x->fw[i] = fw;
        x->workers[i] = &fw->cw;
    }
    x->w = x->workers[0];
    return x;
}

static world_t *world_new(const char *history)
{
    return world_new_n(history, 1);
}

static void world_free(world_t *x)
{
    for (unsigned i = 0; i < x->core.nworkers; i++) {
        fake_worker_t *fw = x->fw[i];
        router_drain_pushed(&fw->cw); /* releases what is still queued */
        xmsg_chunker_close(&fw->cw.chunker);
        assert_int_equal(uv_loop_close(&fw->loop), 0);
        xqueue_destroy(&fw->cw.inbox);
        chist_worker_free(&fw->cw);
        trie_free(fw->cw.trie);
        interest_free(&fw->cw.interest);
        free(fw);
    }
    seqtab_free(x->core.seqtab);
    free(x);
}

static void fake_init(fake_t *f)
{
    memset(f, 0, sizeof(*f));
    subscriber_init(&f->sub, &fake_ops, f);
}

static trie_sub_t *subscribe(world_t *x, fake_t *f, wsb_str_t pattern, uint32_t nsubs)
{
    pubsub_subscribe_t req = {.sub = &f->sub, .pattern = pattern, .nsubs = nsubs};
    pubsub_subscribed_t out;
    assert_int_equal(pubsub_subscribe(x->w, &req, &out), PUBSUB_OK);
    assert_non_null(out.handle);
    return out.handle;
}

static pubsub_status_t publish(world_t *x, wsb_str_t topic, const perms_t *perms,
                               pubsub_published_t *out)
{
    json_t *data = json_integer(7);
    pubsub_publish_t req = {.topic = topic, .data = data, .perms = perms};
    pubsub_status_t st = pubsub_publish(x->w, &req, out);
    json_decref(data);
    return st;
}

static void test_fanout_exact_and_pattern_once_each(void **state)
{
    (void)state;
    world_t *x = world_new("");
    fake_t a, b;
    fake_init(&a);
    fake_init(&b);
    trie_sub_t *sa = subscribe(x, &a, STR("chat.room1"), 0);
    trie_sub_t *sb1 = subscribe(x, &b, STR("chat.*"), 0);
    trie_sub_t *sb2 = subscribe(x, &b, STR("chat.>"), 1);
    pubsub_published_t out;
    assert_int_equal(publish(x, STR("chat.room1"), NULL, &out), PUBSUB_OK);
    assert_int_equal(out.seq, 1);
    assert_false(out.pause);
    assert_int_equal(publish(x, STR("chat.room2"), NULL, &out), PUBSUB_OK);
    assert_int_equal(out.seq, 1); /* seq is per topic */
    assert_int_equal(publish(x, STR("chat.room1"), NULL, &out), PUBSUB_OK);
    assert_int_equal(out.seq, 2);
    /* Delivered before pubsub_publish returned, in seq order. */
    assert_int_equal(a.ndelivered, 2);
    assert_int_equal(a.seqs[0], 1);
    assert_int_equal(a.seqs[1], 2);
    /* Two matching patterns, each message once. */
    assert_int_equal(b.ndelivered, 3);
    assert_string_equal(b.topics[1], "chat.room2");
    assert_int_equal(x->w->metrics->messages_published, 3);
    assert_int_equal(x->w->metrics->messages_delivered, 5);

    pubsub_unsubscribe(x->w, sa);
    assert_int_equal(publish(x, STR("chat.room1"), NULL, &out), PUBSUB_OK);
    assert_int_equal(a.ndelivered, 2);
    assert_int_equal(b.ndelivered, 4);
    pubsub_unsubscribe(x->w, sb1);
    pubsub_unsubscribe(x->w, sb2);
    world_free(x);
}

static void test_full_subscriber_is_closed_or_gapped(void **state)
{
    (void)state;
    world_t *x = world_new("[{\"pattern\":\"drop.>\",\"size\":4,\"slow_consumer\":\"drop\"},"
                           "{\"pattern\":\"keep.>\",\"size\":4}]");
    fake_t f;
    fake_init(&f);
    f.verdict = SUBSCRIBER_FULL;
    trie_sub_t *s1 = subscribe(x, &f, STR("plain"), 0);
    trie_sub_t *s2 = subscribe(x, &f, STR("drop.t"), 1);
    trie_sub_t *s3 = subscribe(x, &f, STR("keep.t"), 2);
    pubsub_published_t out;

    /* No history rule: close 1013, counted. */
    assert_int_equal(publish(x, STR("plain"), NULL, &out), PUBSUB_OK);
    assert_int_equal(f.ncloses, 1);
    assert_int_equal(f.close_code, WSB_WS_CLOSE_TRY_AGAIN);
    assert_int_equal(f.ngaps, 0);
    assert_int_equal(x->w->metrics->slow_consumer_closes, 1);

    /* History that says "drop": a gap, no close. */
    assert_int_equal(publish(x, STR("drop.t"), NULL, &out), PUBSUB_OK);
    assert_int_equal(f.ngaps, 1);
    assert_int_equal(f.ncloses, 1);
    assert_int_equal(x->w->metrics->history_gaps, 1);

    /* ... unless the subscriber cannot take one more gap: closed. */
    f.gap_result = -1;
    assert_int_equal(publish(x, STR("drop.t"), NULL, &out), PUBSUB_OK);
    assert_int_equal(f.ngaps, 2);
    assert_int_equal(f.ncloses, 2);

    /* History that says "close" (the default). */
    assert_int_equal(publish(x, STR("keep.t"), NULL, &out), PUBSUB_OK);
    assert_int_equal(f.ngaps, 2);
    assert_int_equal(f.ncloses, 3);

    /* A skipped delivery is neither. */
    f.verdict = SUBSCRIBER_SKIPPED;
    assert_int_equal(publish(x, STR("plain"), NULL, &out), PUBSUB_OK);
    assert_int_equal(f.ncloses, 3);
    assert_int_equal(x->w->metrics->messages_delivered, 0);
    pubsub_unsubscribe(x->w, s1);
    pubsub_unsubscribe(x->w, s2);
    pubsub_unsubscribe(x->w, s3);
    world_free(x);
}

static void test_permissions_and_limits(void **state)
{
    (void)state;
    world_t *x = world_new("");
    static const wsb_str_t allowed[] = {{"own.>", 5}};
    perms_t perms = {.subscribe = allowed, .nsubscribe = 1, .publish = allowed, .npublish = 1};
    fake_t f;
    fake_init(&f);
    pubsub_published_t out;
    assert_int_equal(publish(x, STR("other.t"), &perms, &out), PUBSUB_FORBIDDEN);
    assert_int_equal(x->w->metrics->messages_published, 0);
    assert_int_equal(publish(x, STR("own.t"), &perms, &out), PUBSUB_OK);

    pubsub_subscribe_t req = {.sub = &f.sub, .pattern = STR("other.>"), .perms = &perms};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_FORBIDDEN);
    /* The limit (max_subscriptions 3) counts what the subscriber holds. */
    req.pattern = STR("own.a");
    req.nsubs = 3;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_LIMIT);
    /* Already held: the checks still apply, nothing is inserted. */
    req.nsubs = 1;
    req.already = true;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    assert_null(got.handle);
    assert_int_equal(trie_subscription_count(x->w->trie), 0);
    world_free(x);
}

static void test_history_switch_over(void **state)
{
    (void)state;
    world_t *x = world_new("[{\"pattern\":\"h.>\",\"size\":3}]");
    pubsub_published_t out;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(publish(x, STR("h.t"), NULL, &out), PUBSUB_OK);
    }
    assert_int_equal(out.seq, 5);

    /* The last 2: replayed, position 5 in the ack, nothing delivered live. */
    fake_t f;
    fake_init(&f);
    pubsub_subscribe_t req = {.sub = &f.sub, .pattern = STR("h.t"), .position = true, .history = 2};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    assert_true(got.has_seq);
    assert_int_equal(got.seq, 5);
    assert_true(strlen(got.epoch) > 0);
    assert_int_equal(got.recovered, -1);
    assert_int_equal(got.nmsgs, 2);
    assert_int_equal(got.msgs[0]->seq, 4);
    assert_int_equal(got.msgs[1]->seq, 5);
    for (size_t i = 0; i < got.nmsgs; i++) {
        xmsg_unref(got.msgs[i]);
    }
    free(got.msgs);
    assert_int_equal(f.ndelivered, 0);
    trie_sub_t *h = got.handle;

    /* Recovery since seq 3 of this epoch: 4 and 5, recovered. */
    fake_t g;
    fake_init(&g);
    char epoch[XMSG_EPOCH_MAX + 1];
    memcpy(epoch, got.epoch, sizeof epoch);
    req.sub = &g.sub;
    req.history = 0;
    req.has_since = true;
    req.since_epoch = (wsb_str_t){epoch, strlen(epoch)};
    req.since_seq = 3;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    assert_int_equal(got.recovered, 1);
    assert_int_equal(got.nmsgs, 2);
    for (size_t i = 0; i < got.nmsgs; i++) {
        xmsg_unref(got.msgs[i]);
    }
    free(got.msgs);
    assert_int_equal(x->w->metrics->history_recovered, 1);
    trie_sub_t *h2 = got.handle;

    /* Since seq 1: the ring (3 messages) no longer holds 2: not recovered. */
    fake_t k;
    fake_init(&k);
    req.sub = &k.sub;
    req.since_seq = 1;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    assert_int_equal(got.recovered, 0);
    assert_int_equal(got.nmsgs, 0);
    free(got.msgs);
    trie_sub_t *h3 = got.handle;

    /* After the switch-over every later message arrives live, once. */
    assert_int_equal(publish(x, STR("h.t"), NULL, &out), PUBSUB_OK);
    assert_int_equal(f.ndelivered, 1);
    assert_int_equal(f.seqs[0], 6);
    assert_int_equal(g.ndelivered, 1);
    assert_int_equal(k.ndelivered, 1);
    pubsub_unsubscribe(x->w, h);
    pubsub_unsubscribe(x->w, h2);
    pubsub_unsubscribe(x->w, h3);
    world_free(x);
}

/* A message another worker published is in this worker's inbox, not yet
 * delivered, when a subscribe with history arrives: it is replayed, and it
 * must not arrive live a second time (the switch-over drains the inbox under
 * the topic's lock before the subscription exists). */
static void test_switch_over_no_duplicate_across_workers(void **state)
{
    (void)state;
    world_t *x = world_new_n("[{\"pattern\":\"h.>\",\"size\":8}]", 2);
    json_t *data = json_integer(1);
    pubsub_publish_t preq = {.topic = STR("h.t"), .data = data};
    pubsub_published_t out;
    assert_int_equal(pubsub_publish(x->workers[1], &preq, &out), PUBSUB_OK);
    json_decref(data);
    assert_int_equal(xqueue_depth(&x->w->inbox), 1); /* worker 0 has not drained */

    fake_t f;
    fake_init(&f);
    pubsub_subscribe_t req = {.sub = &f.sub, .pattern = STR("h.t"), .position = true, .history = 8};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    assert_int_equal(got.seq, 1);
    assert_int_equal(got.nmsgs, 1);
    xmsg_unref(got.msgs[0]);
    free(got.msgs);
    router_drain(x->w);
    assert_int_equal(f.ndelivered, 0);
    pubsub_unsubscribe(x->w, got.handle);
    world_free(x);
}

static void test_recovery_without_history_is_not_recovered(void **state)
{
    (void)state;
    world_t *x = world_new("");
    fake_t f;
    fake_init(&f);
    pubsub_subscribe_t req = {
        .sub = &f.sub, .pattern = STR("t"), .position = true, .has_since = true, .since_seq = 1};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    assert_false(got.has_seq);
    assert_int_equal(got.recovered, 0);
    assert_int_equal(x->w->metrics->history_not_recovered, 1);
    pubsub_unsubscribe(x->w, got.handle);
    world_free(x);
}

/* A message from another node (federation's one way in) reaches a local
 * subscriber on every worker with the origin's seq and Redis's epoch, keeps
 * its history rule's slow-consumer policy, takes no local seq and is not
 * sent back to federation. */
static void test_remote_inject_reaches_subscribers(void **state)
{
    (void)state;
    world_t *x = world_new_n("[{\"pattern\":\"h.>\",\"size\":8,\"slow_consumer\":\"drop\"}]", 2);
    fake_fed_t fed = {0};
    x->core.fed_ops = &fake_fed_ops;
    x->core.fed = &fed;
    fake_t a, b;
    fake_init(&a);
    fake_init(&b);
    pubsub_subscribe_t req = {.sub = &a.sub, .pattern = STR("h.t")};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->workers[0], &req, &got), PUBSUB_OK);
    trie_sub_t *ha = got.handle;
    req.sub = &b.sub;
    req.pattern = STR("h.*");
    assert_int_equal(pubsub_subscribe(x->workers[1], &req, &got), PUBSUB_OK);
    trie_sub_t *hb = got.handle;
    assert_int_equal(fed.interest, 2); /* each worker's first subscriber of a pattern */

    unsigned wakes0 = x->fw[0]->wakes, wakes1 = x->fw[1]->wakes;
    assert_int_equal(core_inject_remote(&x->core, STR("h.t"), 17, STR("abcdef012345"), WSB_STR_NULL,
                                        STR("{\"a\":1}")),
                     0);
    assert_int_equal(x->fw[0]->wakes, wakes0 + 1); /* every worker is woken */
    assert_int_equal(x->fw[1]->wakes, wakes1 + 1);
    assert_int_equal(a.ndelivered, 0); /* delivered on each worker's turn */
    router_drain(x->workers[0]);
    router_drain(x->workers[1]);
    fake_t *both[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        fake_t *f = both[i];
        assert_int_equal(f->ndelivered, 1);
        assert_int_equal(f->seqs[0], 17);
        assert_string_equal(f->topics[0], "h.t");
        assert_string_equal(f->epochs[0], "abcdef012345");
        assert_true(f->drop_slow[0]);
        assert_string_equal(f->frames[0], "\x81" /* FIN, text */ "\x4f" /* 79 bytes */
                                          "{\"type\":\"message\",\"topic\":\"h.t\",\"seq\":17,"
                                          "\"epoch\":\"abcdef012345\",\"data\":{\"a\":1}}");
    }
    assert_int_equal(fed.publishes, 0); /* not sent back */

    /* Without an epoch: the origin's seq, no history rule applies. */
    req.sub = &a.sub;
    req.pattern = STR("u.v");
    req.nsubs = 1;
    assert_int_equal(pubsub_subscribe(x->workers[0], &req, &got), PUBSUB_OK);
    trie_sub_t *ha2 = got.handle;
    assert_int_equal(
        core_inject_remote(&x->core, STR("u.v"), 5, WSB_STR_NULL, WSB_STR_NULL, STR("2")), 0);
    router_drain(x->workers[0]);
    assert_int_equal(a.ndelivered, 2);
    assert_int_equal(a.seqs[1], 5);
    assert_string_equal(a.epochs[1], "");
    assert_false(a.drop_slow[1]);

    /* The remote seq took nothing from the local table. */
    pubsub_published_t out;
    assert_int_equal(publish(x, STR("u.v"), NULL, &out), PUBSUB_OK);
    assert_int_equal(out.seq, 1);
    assert_int_equal(fed.publishes, 1); /* a local publish goes out */
    assert_int_equal(fed.last_seq, 1);
    assert_int_equal(a.ndelivered, 3);
    /* h.t is clustered (a history rule, federation on): its publish goes
     * through the hook, which says Redis is unavailable here. */
    assert_int_equal(publish(x, STR("h.t"), NULL, &out), PUBSUB_UNAVAILABLE);
    assert_int_equal(fed.publishes, 1);
    assert_int_equal(x->w->metrics->inbox_dropped, 0);
    router_drain(x->workers[1]);
    pubsub_unsubscribe(x->workers[0], ha2);

    pubsub_unsubscribe(x->workers[0], ha);
    pubsub_unsubscribe(x->workers[1], hb);
    assert_int_equal(fed.interest, 0);
    world_free(x);
}

/* A full inbox misses the remote message: counted for that worker and in
 * the return value (the bridge adds it to wsbroker_redis_dropped_total). */
static void test_remote_inject_full_inbox(void **state)
{
    (void)state;
    world_t *x = world_new_n("", 2);
    xqueue_destroy(&x->workers[1]->inbox);
    xqueue_init(&x->workers[1]->inbox, 2);
    size_t cap = xqueue_capacity(&x->workers[1]->inbox);
    for (size_t i = 0; i < cap; i++) {
        assert_int_equal(
            core_inject_remote(&x->core, STR("t"), i + 1, WSB_STR_NULL, WSB_STR_NULL, STR("1")), 0);
    }
    assert_int_equal(
        core_inject_remote(&x->core, STR("t"), 99, WSB_STR_NULL, WSB_STR_NULL, STR("1")), 1);
    assert_int_equal(x->fw[1]->metrics.inbox_dropped, 1);
    assert_int_equal(x->fw[0]->metrics.inbox_dropped, 0);
    world_free(x); /* releases what is queued */
}

/* Workers with an interest summary (interest.h), as worker_init gives them. */
static world_t *world_with_interest(const char *history, unsigned nworkers)
{
    world_t *x = world_new_n(history, nworkers);
    for (unsigned i = 0; i < nworkers; i++) {
        interest_init(&x->workers[i]->interest);
    }
    return x;
}

/* Issue 17 item 3: a publish skips the inbox of a worker that has no
 * subscriber for its topic (exact or pattern), and reaches it again as soon
 * as it subscribes; removing the subscription removes the interest. */
static void test_publish_skips_workers_without_interest(void **state)
{
    (void)state;
    world_t *x = world_with_interest("", 2);
    core_worker_t *w0 = x->workers[0], *w1 = x->workers[1];
    json_t *data = json_integer(1);
    pubsub_publish_t preq = {.topic = STR("room.1"), .data = data};
    pubsub_published_t out;
    assert_int_equal(pubsub_publish(w1, &preq, &out), PUBSUB_OK);
    assert_int_equal(xqueue_depth(&w0->inbox), 0); /* nobody on worker 0 wants room.1 */

    fake_t f;
    fake_init(&f);
    pubsub_subscribe_t req = {.sub = &f.sub, .pattern = STR("room.1")};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(w0, &req, &got), PUBSUB_OK);
    trie_sub_t *hf = got.handle;
    assert_int_equal(pubsub_publish(w1, &preq, &out), PUBSUB_OK);
    assert_int_equal(xqueue_depth(&w0->inbox), 1);
    router_drain(w0);
    assert_int_equal(f.ndelivered, 1);
    assert_int_equal(f.seqs[0], 2);
    preq.topic = STR("room.2"); /* another topic still skips worker 0 */
    assert_int_equal(pubsub_publish(w1, &preq, &out), PUBSUB_OK);
    assert_int_equal(xqueue_depth(&w0->inbox), 0);

    /* A pattern may match anything: the worker gets every message. */
    fake_t g;
    fake_init(&g);
    req.sub = &g.sub;
    req.pattern = STR("other.>");
    assert_int_equal(pubsub_subscribe(w0, &req, &got), PUBSUB_OK);
    trie_sub_t *hg = got.handle;
    assert_int_equal(pubsub_publish(w1, &preq, &out), PUBSUB_OK);
    assert_int_equal(xqueue_depth(&w0->inbox), 1);
    router_drain(w0);
    assert_int_equal(g.ndelivered, 0);
    pubsub_unsubscribe(w0, hg);
    assert_int_equal(pubsub_publish(w1, &preq, &out), PUBSUB_OK);
    assert_int_equal(xqueue_depth(&w0->inbox), 0);

    /* Unsubscribed: room.1 skips worker 0 again. */
    pubsub_unsubscribe(w0, hf);
    preq.topic = STR("room.1");
    assert_int_equal(pubsub_publish(w1, &preq, &out), PUBSUB_OK);
    assert_int_equal(xqueue_depth(&w0->inbox), 0);
    json_decref(data);
    world_free(x);
}

/* Issue 17 item 3: the publishes of one loop turn wake each other worker
 * once, when the worker flushes its wake-ups (check and prepare phases), not
 * once per message; a worker nothing was pushed to is not woken. */
static void test_wakes_are_batched_per_turn(void **state)
{
    (void)state;
    world_t *x = world_with_interest("", 3);
    core_worker_t *w0 = x->workers[0], *w2 = x->workers[2];
    fake_t f;
    fake_init(&f);
    pubsub_subscribe_t req = {.sub = &f.sub, .pattern = STR("a")};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->workers[1], &req, &got), PUBSUB_OK);
    json_t *data = json_integer(1);
    pubsub_publish_t preq = {.topic = STR("a"), .data = data};
    pubsub_published_t out;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pubsub_publish(w0, &preq, &out), PUBSUB_OK);
    }
    json_decref(data);
    assert_int_equal(x->fw[1]->wakes, 0); /* not yet: the turn goes on */
    assert_int_equal(xqueue_depth(&x->workers[1]->inbox), 5);
    router_flush_wakes(w0);
    assert_int_equal(x->fw[1]->wakes, 1);
    assert_int_equal(x->fw[2]->wakes, 0); /* nothing for worker 2 */
    assert_int_equal(xqueue_depth(&w2->inbox), 0);
    assert_int_equal(x->fw[0]->wakes, 0); /* the publisher drained its own */
    router_flush_wakes(w0);
    assert_int_equal(x->fw[1]->wakes, 1); /* flushed: nothing pending */
    router_drain(x->workers[1]);
    assert_int_equal(f.ndelivered, 5);
    pubsub_unsubscribe(x->workers[1], got.handle);
    world_free(x);
}

/* A subscriber that takes runs (subscriber.h): the frames of each run it
 * was handed, as one byte string, and where each run started. Per-frame
 * deliveries (its verdict PER_FRAME, or a message that is not in a run) land
 * in `f` as for any fake. */
typedef struct {
    fake_t f; /* first: deliver_cb and deliver_run_cb share the pointer */
    subscriber_verdict_t run_verdict;
    size_t nruns;
    size_t run_frames[MAX_SEEN];
    char bytes[8192];
    size_t nbytes;
} run_fake_t;

static subscriber_verdict_t fake_deliver_run(void *user_data, const subscriber_run_t *run)
{
    run_fake_t *r = user_data;
    assert_true(run->nframes >= 2); /* a run of one goes the per-frame way */
    assert_true(run->nsegs >= 1 && run->nsegs <= SUBSCRIBER_RUN_SEGS);
    if (r->run_verdict == SUBSCRIBER_PER_FRAME) {
        return SUBSCRIBER_PER_FRAME;
    }
    /* The segments, in order, are the run's frames, in order, byte for byte. */
    size_t start = r->nbytes, sum = 0;
    for (unsigned i = 0; i < run->nsegs; i++) {
        assert_true(run->len[i] > 0);
        assert_true(r->nbytes + run->len[i] <= sizeof r->bytes);
        memcpy(r->bytes + r->nbytes, run->fb[i]->bytes, run->len[i]);
        r->nbytes += run->len[i];
        sum += run->len[i];
    }
    assert_int_equal(sum, run->bytes);
    size_t off = start;
    for (unsigned i = 0; i < run->nframes; i++) {
        const xmsg_t *m = run->msgs[i];
        assert_memory_equal(r->bytes + off, m->frame, m->frame_len);
        off += m->frame_len;
        if (r->run_verdict == SUBSCRIBER_DELIVERED && r->f.ndelivered < MAX_SEEN) {
            r->f.seqs[r->f.ndelivered] = m->seq;
            (void)snprintf(r->f.topics[r->f.ndelivered], sizeof r->f.topics[0], "%s", m->topic);
            r->f.ndelivered++;
        }
    }
    assert_int_equal(off, r->nbytes);
    if (r->nruns < MAX_SEEN) {
        r->run_frames[r->nruns] = run->nframes;
    }
    r->nruns++;
    return r->run_verdict;
}

static const subscriber_ops_t run_fake_ops = {.deliver_cb = fake_deliver,
                                              .deliver_run_cb = fake_deliver_run,
                                              .gap_cb = fake_gap,
                                              .close_cb = fake_close};

static void run_fake_init(run_fake_t *r, subscriber_verdict_t run_verdict)
{
    memset(r, 0, sizeof(*r));
    subscriber_init(&r->f.sub, &run_fake_ops, r);
    r->run_verdict = run_verdict;
}

static trie_sub_t *subscribe_on(core_worker_t *w, subscriber_t *sub, wsb_str_t pattern)
{
    pubsub_subscribe_t req = {.sub = sub, .pattern = pattern};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(w, &req, &got), PUBSUB_OK);
    return got.handle;
}

static void publish_n(core_worker_t *w, wsb_str_t topic, int n)
{
    json_t *data = json_string("a payload of some length");
    pubsub_publish_t req = {.topic = topic, .data = data};
    pubsub_published_t out;
    for (int i = 0; i < n; i++) {
        assert_int_equal(pubsub_publish(w, &req, &out), PUBSUB_OK);
    }
    json_decref(data);
}

/* Issue 17 item 1: the messages of one topic that follow each other in a
 * worker's inbox are fanned out as one run: a subscriber that takes runs
 * gets all of them in one call, as a few contiguous byte ranges that are
 * the frames in order; one that does not gets them one by one, in the same
 * order; a message of another topic ends the run, so each subscriber still
 * sees the inbox's order; a run of one goes the per-frame way. */
static void test_runs_keep_order_and_bytes(void **state)
{
    (void)state;
    world_t *x = world_with_interest("", 2);
    core_worker_t *w0 = x->workers[0], *w1 = x->workers[1];
    run_fake_t r, pf;
    fake_t plain;
    run_fake_init(&r, SUBSCRIBER_DELIVERED);
    run_fake_init(&pf, SUBSCRIBER_PER_FRAME);
    fake_init(&plain);
    trie_sub_t *h[4];
    h[0] = subscribe_on(w1, &r.f.sub, STR("a"));
    h[1] = subscribe_on(w1, &r.f.sub, STR("b"));
    h[2] = subscribe_on(w1, &pf.f.sub, STR(">"));
    h[3] = subscribe_on(w1, &plain.sub, STR("a"));

    /* 40 of "a" (frames past the first go into chunks of 1, 2, 4 KiB: more
     * than one segment), one "b", 3 more "a". */
    publish_n(w0, STR("a"), 40);
    publish_n(w0, STR("b"), 1);
    publish_n(w0, STR("a"), 3);
    assert_int_equal(xqueue_depth(&w1->inbox), 44);
    router_drain(w1);
    assert_int_equal(xqueue_depth(&w1->inbox), 0);

    assert_int_equal(r.nruns, 2);
    assert_int_equal(r.run_frames[0], 40);
    assert_int_equal(r.run_frames[1], 3);
    assert_int_equal(r.f.ndelivered, 32); /* MAX_SEEN: the first 32 recorded */
    for (unsigned i = 0; i < 32; i++) {
        assert_int_equal(r.f.seqs[i], i + 1);
        assert_string_equal(r.f.topics[i], "a");
    }
    /* Per frame, in inbox order: a1..a40 b1 a41..a43 (first 32 recorded). */
    assert_int_equal(pf.f.ndelivered, 32);
    assert_int_equal(pf.nruns, 0);
    for (unsigned i = 0; i < 32; i++) {
        assert_int_equal(pf.f.seqs[i], i + 1);
    }
    assert_int_equal(plain.ndelivered, 32);
    /* "b" alone went per frame to r as well. */
    assert_int_equal(x->fw[1]->metrics.messages_delivered, 43 + 1 + 44 + 43);

    /* The order across a run's end: a, b, a as three steps per subscriber. */
    run_fake_t o;
    run_fake_init(&o, SUBSCRIBER_PER_FRAME);
    trie_sub_t *ho = subscribe_on(w1, &o.f.sub, STR(">"));
    publish_n(w0, STR("a"), 2);
    publish_n(w0, STR("b"), 2);
    publish_n(w0, STR("a"), 2);
    router_drain(w1);
    assert_int_equal(o.f.ndelivered, 6);
    const char *want[] = {"a", "a", "b", "b", "a", "a"};
    const uint64_t seqs[] = {44, 45, 2, 3, 46, 47};
    for (unsigned i = 0; i < 6; i++) {
        assert_string_equal(o.f.topics[i], want[i]);
        assert_int_equal(o.f.seqs[i], seqs[i]);
    }
    pubsub_unsubscribe(w1, ho);
    for (unsigned i = 0; i < 4; i++) {
        pubsub_unsubscribe(w1, h[i]);
    }
    world_free(x);
}

/* A subscriber over its bound for a run is closed as a slow consumer once
 * (none of the run was queued); one that is closing skips it; the others
 * still get it. */
static void test_run_full_and_skipped(void **state)
{
    (void)state;
    world_t *x = world_with_interest("", 2);
    core_worker_t *w0 = x->workers[0], *w1 = x->workers[1];
    run_fake_t full, skip, ok;
    run_fake_init(&full, SUBSCRIBER_FULL);
    run_fake_init(&skip, SUBSCRIBER_SKIPPED);
    run_fake_init(&ok, SUBSCRIBER_DELIVERED);
    trie_sub_t *h[3];
    h[0] = subscribe_on(w1, &full.f.sub, STR("t"));
    h[1] = subscribe_on(w1, &skip.f.sub, STR("t"));
    h[2] = subscribe_on(w1, &ok.f.sub, STR("t"));
    publish_n(w0, STR("t"), 5);
    router_drain(w1);
    assert_int_equal(full.f.ncloses, 1);
    assert_int_equal(full.f.close_code, WSB_WS_CLOSE_TRY_AGAIN);
    assert_int_equal(x->fw[1]->metrics.slow_consumer_closes, 1);
    assert_int_equal(skip.f.ncloses, 0);
    assert_int_equal(ok.f.ndelivered, 5);
    assert_int_equal(x->fw[1]->metrics.messages_delivered, 5);
    for (unsigned i = 0; i < 3; i++) {
        pubsub_unsubscribe(w1, h[i]);
    }
    world_free(x);
}

static void release(pubsub_subscribed_t *got)
{
    for (size_t i = 0; i < got->nmsgs; i++) {
        xmsg_unref(got->msgs[i]);
    }
    free(got->msgs);
}

static void publish_on(core_worker_t *w, wsb_str_t topic)
{
    json_t *data = json_integer(1);
    pubsub_publish_t req = {.topic = topic, .data = data};
    pubsub_published_t out;
    assert_int_equal(pubsub_publish(w, &req, &out), PUBSUB_OK);
    json_decref(data);
}

/* Last value on wildcards: history N on a pattern replays the last N of
 * every matching topic that keeps history, each topic in seq order; a
 * message another worker published and this worker has not drained yet is
 * replayed and does not arrive live again; later messages (a new topic's
 * too) arrive live, once. */
static void test_pattern_history_replays_each_topic(void **state)
{
    (void)state;
    world_t *x = world_new_n("[{\"pattern\":\"h.>\",\"size\":8}]", 2);
    for (int i = 0; i < 3; i++) {
        publish_on(x->w, STR("h.a"));
    }
    publish_on(x->w, STR("h.b"));
    publish_on(x->w, STR("h.a.deep")); /* not matched by h.* */
    publish_on(x->w, STR("n.x"));      /* no history */
    publish_on(x->workers[1], STR("h.b"));
    assert_int_equal(xqueue_depth(&x->w->inbox), 1); /* worker 0 has not drained */

    fake_t f;
    fake_init(&f);
    pubsub_subscribe_t req = {.sub = &f.sub, .pattern = STR("h.*"), .position = true, .history = 2};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    assert_non_null(got.handle);
    assert_false(got.has_seq); /* no one position: each frame has its own */
    assert_int_equal(got.recovered, -1);
    assert_int_equal(got.nmsgs, 4);
    /* Topics one after another, each in seq order. */
    for (size_t i = 0; i < 4; i += 2) {
        assert_string_equal(got.msgs[i]->topic, got.msgs[i + 1]->topic);
        assert_int_equal(got.msgs[i]->seq + 1, got.msgs[i + 1]->seq);
        assert_true(strlen(got.msgs[i]->epoch) > 0);
        bool a = strcmp(got.msgs[i]->topic, "h.a") == 0;
        assert_true(a || strcmp(got.msgs[i]->topic, "h.b") == 0);
        assert_int_equal(got.msgs[i + 1]->seq, a ? 3 : 2);
    }
    release(&got);
    router_drain(x->w);
    assert_int_equal(f.ndelivered, 0); /* h.b 2 was replayed, not live */

    publish_on(x->workers[1], STR("h.a"));
    publish_on(x->w, STR("h.c"));
    router_drain(x->w);
    assert_int_equal(f.ndelivered, 2);
    assert_string_equal(f.topics[0], "h.a");
    assert_int_equal(f.seqs[0], 4);
    assert_string_equal(f.topics[1], "h.c");
    assert_int_equal(f.seqs[1], 1);
    pubsub_unsubscribe(x->w, got.handle);
    world_free(x);
}

/* More matching topics with history than max_history_topics_per_subscribe:
 * refused, nothing subscribed; at the bound: accepted. Topics without
 * history do not count. */
static void test_pattern_history_limit(void **state)
{
    (void)state;
    world_t *x = world_new("[{\"pattern\":\"h.>\",\"size\":8}]");
    x->core.max_history_topics_per_subscribe = 2;
    publish_on(x->w, STR("h.a"));
    publish_on(x->w, STR("h.b"));
    publish_on(x->w, STR("n.a"));
    publish_on(x->w, STR("n.b"));
    publish_on(x->w, STR("n.c"));
    fake_t f;
    fake_init(&f);
    pubsub_subscribe_t req = {.sub = &f.sub, .pattern = STR(">"), .position = true, .history = 1};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    assert_int_equal(got.nmsgs, 2);
    release(&got);
    pubsub_unsubscribe(x->w, got.handle);

    publish_on(x->w, STR("h.c"));
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_HISTORY_LIMIT);
    assert_null(got.handle);
    assert_int_equal(got.nmsgs, 0);
    assert_int_equal(trie_subscription_count(x->w->trie), 0);
    /* Without history the pattern subscribes as before. */
    req.history = 0;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    pubsub_unsubscribe(x->w, got.handle);
    world_free(x);
}

/* With clustered history (federation on) the history is in Redis: history
 * on a pattern subscribes here (the glob's interest goes to federation) and
 * leaves the read to the caller (chist_rule), with nothing replayed here. */
static void test_pattern_history_clustered_is_read_in_redis(void **state)
{
    (void)state;
    world_t *x = world_new("[{\"pattern\":\"h.>\",\"size\":8}]");
    fake_fed_t fed = {0};
    x->core.fed_ops = &fake_fed_ops;
    x->core.fed = &fed;
    fake_t f;
    fake_init(&f);
    pubsub_subscribe_t req = {.sub = &f.sub, .pattern = STR("h.*"), .position = true, .history = 1};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    assert_true(got.chist_rule >= 0);
    assert_non_null(got.handle);
    assert_int_equal(got.nmsgs, 0);
    assert_int_equal(trie_subscription_count(x->w->trie), 1);
    assert_int_equal(fed.interest, 1);
    pubsub_unsubscribe(x->w, got.handle);
    world_free(x);
}

/* ---- the pattern switch-over under concurrent publishes ---------------------------------------
 */

#define RACE_TOPICS 4
#define RACE_AFTER  3000 /* messages published after the subscribe, at least */

typedef struct {
    subscriber_t sub;
    uint64_t last[RACE_TOPICS]; /* last seq seen per topic, 0: none */
    unsigned errors;            /* a gap, a duplicate or a reordering */
    size_t live;
} race_sub_t;

static const char *const race_topics[RACE_TOPICS] = {"r.t0", "r.t1", "r.t2", "r.t3"};

static int race_index(const char *topic)
{
    return topic[3] - '0';
}

static void race_see(race_sub_t *r, const xmsg_t *m)
{
    int i = race_index(m->topic);
    if (r->last[i] != 0 && m->seq != r->last[i] + 1) {
        r->errors++;
    }
    r->last[i] = m->seq;
}

static subscriber_verdict_t race_deliver(void *user_data, frame_buf_t *fb, xmsg_t *m)
{
    (void)fb;
    race_sub_t *r = user_data;
    race_see(r, m);
    r->live++;
    return SUBSCRIBER_DELIVERED;
}

static int race_gap(void *user_data, const xmsg_t *m)
{
    (void)m;
    ((race_sub_t *)user_data)->errors++;
    return 0;
}

static void race_close(void *user_data, int code, const char *why)
{
    (void)code;
    (void)why;
    ((race_sub_t *)user_data)->errors++;
}

static const subscriber_ops_t race_ops = {
    .deliver_cb = race_deliver, .gap_cb = race_gap, .close_cb = race_close};

typedef struct {
    world_t *x;
    atomic_bool subscribed;
    atomic_size_t published;
    atomic_size_t after; /* published once `subscribed` was seen */
} race_t;

/* Worker 1's thread: publishes round-robin on the topics until RACE_AFTER
 * messages followed the subscribe. Keeps worker 0's inbox from filling (a
 * full inbox drops, which is not what this test is about). */
static void *race_publisher(void *arg)
{
    race_t *r = arg;
    for (size_t n = 0; atomic_load(&r->after) < RACE_AFTER; n++) {
        while (xqueue_depth(&r->x->w->inbox) > xqueue_capacity(&r->x->w->inbox) / 2) {
            sched_yield();
        }
        bool sub = atomic_load(&r->subscribed);
        const char *topic = race_topics[n % RACE_TOPICS];
        publish_on(r->x->workers[1], (wsb_str_t){topic, strlen(topic)});
        atomic_fetch_add(&r->published, 1);
        if (sub) {
            atomic_fetch_add(&r->after, 1);
        }
    }
    return NULL;
}

/* Worker 1 publishes on four topics while worker 0 subscribes to r.* with
 * history: per topic, the replay then the live messages are consecutive
 * seqs, no gap, no duplicate, and the last one is the topic's last seq. */
static void test_pattern_history_switch_over_under_publishes(void **state)
{
    (void)state;
    world_t *x = world_new_n("[{\"pattern\":\"r.>\",\"size\":16}]", 2);
    race_t r = {.x = x};
    atomic_init(&r.subscribed, false);
    atomic_init(&r.published, 0);
    atomic_init(&r.after, 0);
    race_sub_t rs = {0};
    subscriber_init(&rs.sub, &race_ops, &rs);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_publisher, &r), 0);
    /* Some history first (and every topic known), draining as we wait. */
    while (atomic_load(&r.published) < 64) {
        router_drain(x->w);
        sched_yield();
    }
    pubsub_subscribe_t req = {
        .sub = &rs.sub, .pattern = STR("r.*"), .position = true, .history = 5};
    pubsub_subscribed_t got;
    assert_int_equal(pubsub_subscribe(x->w, &req, &got), PUBSUB_OK);
    atomic_store(&r.subscribed, true);
    assert_int_equal(got.nmsgs, RACE_TOPICS * 5);
    for (size_t i = 0; i < got.nmsgs; i++) {
        race_see(&rs, got.msgs[i]);
    }
    release(&got);
    assert_int_equal(rs.errors, 0);
    while (atomic_load(&r.after) < RACE_AFTER) {
        router_drain(x->w);
        sched_yield();
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    router_drain(x->w);
    assert_int_equal(rs.errors, 0);
    assert_true(rs.live >= RACE_AFTER - RACE_TOPICS);
    assert_int_equal(x->fw[0]->metrics.inbox_dropped, 0);
    /* Every topic's last seq reached the subscriber. */
    size_t total = atomic_load(&r.published);
    for (int i = 0; i < RACE_TOPICS; i++) {
        assert_int_equal(rs.last[i], total / RACE_TOPICS + ((size_t)i < total % RACE_TOPICS));
    }
    pubsub_unsubscribe(x->w, got.handle);
    world_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fanout_exact_and_pattern_once_each),
        cmocka_unit_test(test_full_subscriber_is_closed_or_gapped),
        cmocka_unit_test(test_permissions_and_limits),
        cmocka_unit_test(test_history_switch_over),
        cmocka_unit_test(test_switch_over_no_duplicate_across_workers),
        cmocka_unit_test(test_recovery_without_history_is_not_recovered),
        cmocka_unit_test(test_remote_inject_reaches_subscribers),
        cmocka_unit_test(test_remote_inject_full_inbox),
        cmocka_unit_test(test_publish_skips_workers_without_interest),
        cmocka_unit_test(test_wakes_are_batched_per_turn),
        cmocka_unit_test(test_runs_keep_order_and_bytes),
        cmocka_unit_test(test_run_full_and_skipped),
        cmocka_unit_test(test_pattern_history_replays_each_topic),
        cmocka_unit_test(test_pattern_history_limit),
        cmocka_unit_test(test_pattern_history_clustered_is_read_in_redis),
        cmocka_unit_test(test_pattern_history_switch_over_under_publishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
