/* router.c - publish across workers and deliver from the inbox (see router.h). */
#include "core/router.h"

#include "core/inbox.h"
#include "core/interest.h"
#include "core/subscriber.h"
#include "core/topic_rules.h"
#include "core/topic_trie.h"
#include "core/xmsg.h"
#include "shared/frame_buf.h"
#include "shared/util.h"
#include "wsb/message.h"
#include "wsb/ws_frame.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* Pushes `m` into the inbox of `to`; false when it was full (the share of
 * `to` is dropped, counted for the worker that misses the message). */
static bool push_one(core_t *c, core_worker_t *to, xmsg_t *m)
{
    if (xqueue_push(&to->inbox, m)) {
        return true;
    }
    METRIC_ADD_SHARED(to->metrics->inbox_dropped, 1);
    if (m->probe != NULL) {
        inbox_probe_count(c, m, 0);
    }
    xmsg_unref(m);
    return false;
}

void router_push_all(core_t *c, xmsg_t *m)
{
    for (unsigned i = 0; i < c->nworkers; i++) {
        push_one(c, c->workers[i], m);
    }
}

static bool target_has(const router_targets_t *t, unsigned i)
{
    return (t->mask[i / 64] >> (i % 64)) & 1u;
}

void router_targets(core_t *c, xmsg_t *m, router_targets_t *t)
{
    memset(t, 0, sizeof(*t));
    uint64_t h = interest_hash(m->topic, m->topic_len);
    for (unsigned i = 0; i < c->nworkers; i++) {
        if (interest_may_want(&c->workers[i]->interest, h)) {
            t->mask[i / 64] |= (uint64_t)1 << (i % 64);
            t->n++;
        } else if (m->probe != NULL) {
            /* A worker without a possible subscriber counts as one that
             * matched nothing: no-responders still comes (request.h). */
            inbox_probe_count(c, m, 0);
        }
    }
}

void router_push_targets(core_worker_t *w, xmsg_t *m, const router_targets_t *t)
{
    core_t *c = w->core;
    if (t->n == 0) {
        return; /* `m` had no reference to give: it may be freed already */
    }
    for (unsigned i = 0; i < c->nworkers; i++) {
        if (!target_has(t, i)) {
            continue;
        }
        if (push_one(c, c->workers[i], m) && i != w->index) {
            w->wake_pending[i / 64] |= (uint64_t)1 << (i % 64);
        }
    }
    /* A read callback may publish hundreds of messages (net.h's read
     * budget): the others start on a batch long before the turn ends, and
     * never sit idle while the inbox pressure builds. */
    if (++w->pushes_unwoken >= ROUTER_WAKE_BATCH) {
        router_flush_wakes(w);
    }
}

void router_flush_wakes(core_worker_t *w)
{
    core_t *c = w->core;
    w->pushes_unwoken = 0;
    for (unsigned k = 0; k < CORE_MAX_WORKERS / 64; k++) {
        uint64_t bits = w->wake_pending[k];
        w->wake_pending[k] = 0;
        while (bits != 0) {
            unsigned b = (unsigned)__builtin_ctzll(bits);
            bits &= bits - 1;
            c->wake_cb(c->workers[k * 64 + b]);
        }
    }
}

unsigned core_inject_remote(core_t *c, wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                            wsb_str_t from_json, wsb_str_t data_json)
{
    return core_inject_request(c, topic, seq, epoch, from_json, WSB_STR_NULL, data_json);
}

unsigned core_inject_request(core_t *c, wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                             wsb_str_t from_json, wsb_str_t reply_to, wsb_str_t data_json)
{
    xmsg_t *m = xmsg_new_request(topic, seq, epoch, from_json, reply_to, data_json, c->nworkers);
    m->conflate = topic_rules_conflate(c->topic_rules, topic);
    /* A stream's message (clustered streams) takes its rule's
     * slow_consumer as a local one does (pubsub.c's publish_stream);
     * another topic's with an epoch, its history rule's. */
    const topic_rule_t *trule =
        epoch.len > 0 && c->topic_rules != NULL ? topic_rules_match(c->topic_rules, topic) : NULL;
    if (trule != NULL && trule->has_stream) {
        m->drop_slow = trule->stream.drop_slow;
    } else if (epoch.len > 0 && c->history_rules != NULL) {
        int rule = history_rules_match(c->history_rules, topic);
        m->drop_slow = rule >= 0 && c->history_rules->rules[rule].drop_slow;
    }
    xmsg_set_refs(m, c->nworkers);
    unsigned dropped = 0;
    /* One producer (the bridge thread) pushes in the order Redis delivered:
     * every worker sees remote messages in that order. */
    for (unsigned i = 0; i < c->nworkers; i++) {
        if (!xqueue_push(&c->workers[i]->inbox, m)) {
            METRIC_ADD_SHARED(c->workers[i]->metrics->inbox_dropped, 1);
            dropped++;
            xmsg_unref(m);
        }
    }
    for (unsigned i = 0; i < c->nworkers; i++) {
        c->wake_cb(c->workers[i]);
    }
    return dropped;
}

bool router_push_member_event(core_t *c, const char *type, wsb_str_t topic, const char *client,
                              const char *user)
{
    json_t *ev = json_pack("{s:s, s:s%, s:{s:s, s:s?}}", "type", type, "topic", topic.p, topic.len,
                           "member", "client", client, "user", user);
    if (ev == NULL) {
        return false;
    }
    xmsg_t *m = xmsg_new_event(topic, ev, c->nworkers);
    json_decref(ev);
    xmsg_set_refs(m, c->nworkers);
    router_push_all(c, m);
    for (unsigned i = 0; i < c->nworkers; i++) {
        c->wake_cb(c->workers[i]);
    }
    return true;
}

bool core_inject_presence(core_t *c, const char *type, wsb_str_t topic, const char *client,
                          const char *user)
{
    const topic_rule_t *rule =
        c->topic_rules != NULL ? topic_rules_match(c->topic_rules, topic) : NULL;
    if (rule == NULL || !rule->join_leave) {
        return false;
    }
    return router_push_member_event(c, type, topic, client, user);
}

typedef struct {
    frame_buf_t *fb;
    xmsg_t *msg;
    core_worker_t *worker;
    size_t undelivered; /* matched but not queued: closing or just dropped */
    bool inbox;         /* an "_inbox." topic: for request inboxes only (request.h) */
} fanout_t;

static int deliver_cb(trie_client_t *client, void *user_data)
{
    fanout_t *f = user_data;
    subscriber_t *sub = subscriber_of(client);
    if (f->inbox && !sub->inbox) {
        f->undelivered++; /* a ">" or "*.x" pattern: inbox traffic is not for it */
        return 0;
    }
    switch (sub->ops->deliver_cb(sub->user_data, f->fb, f->msg)) {
    case SUBSCRIBER_DELIVERED:
        return 0;
    case SUBSCRIBER_SKIPPED:
    case SUBSCRIBER_PER_FRAME: /* deliver_run_cb's alone: never returned here */
        f->undelivered++;      /* held, suspended, closing, or not its framing's */
        return 0;
    case SUBSCRIBER_FULL:
        break;
    }
    f->undelivered++;
    if (f->msg->drop_slow && sub->ops->gap_cb(sub->user_data, f->msg) == 0) {
        /* Its rule keeps history and says "drop": the subscriber was told of
         * the gap and recovers from history. */
        METRIC_ADD(f->worker->metrics->history_gaps, 1);
    } else {
        /* Over its outbound bound: this subscriber cannot keep up. Its queued
         * frames are dropped and it is told why; everyone else goes on. */
        METRIC_ADD(f->worker->metrics->slow_consumer_closes, 1);
        sub->ops->close_cb(sub->user_data, WSB_WS_CLOSE_TRY_AGAIN, "slow consumer");
    }
    return 0;
}

/* One message, one trie walk: what every message that cannot join a run
 * gets, and a run of one. Drops the worker's own reference on its frame. */
static void deliver_single(core_worker_t *s, xmsg_t *m)
{
    frame_buf_t *fb = xmsg_worker_buf(m, s->index);
    fanout_t f = {.fb = fb,
                  .msg = m,
                  .worker = s,
                  .undelivered = 0,
                  .inbox = inbox_is(m->topic, m->topic_len)};
    s->in_fanout = true;
    size_t n = trie_match(s->trie, m->topic, m->topic_len, deliver_cb, &f);
    s->in_fanout = false;
    if (m->probe != NULL) {
        inbox_probe_count(s->core, m, n);
    }
    METRIC_ADD(s->metrics->messages_delivered, n - f.undelivered);
    frame_buf_unref(fb); /* the worker's own reference; writes hold theirs */
}

/*
 * Runs. Messages of one topic that follow each other in the inbox (one
 * publisher's burst, the common fan-out case) are collected, their frames
 * lying in a few contiguous ranges of the topic's chunks (xmsg.h), and the
 * trie is walked once for the whole run: a subscriber that takes runs
 * (deliver_run_cb) queues one slice per range, not one call chain, one
 * reference and one bound check per frame. A subscriber that needs each
 * frame on its own gets them one by one, in order. Any other message closes
 * the run first, so every subscriber sees the worker's messages in inbox
 * order exactly as before.
 *
 * Not in runs: events, conflated and drop_slow topics (their queued frames
 * are replaced or dropped one by one), requests (their no-responders count
 * is per message) and "_inbox." traffic.
 */
typedef struct {
    core_worker_t *worker;
    const subscriber_run_t *run;
    size_t delivered; /* frames queued, over every subscriber */
} run_fanout_t;

static bool runnable(const xmsg_t *m)
{
    return !m->event && !m->conflate && !m->drop_slow && m->probe == NULL &&
           !inbox_is(m->topic, m->topic_len);
}

static int deliver_run_cb(trie_client_t *client, void *user_data)
{
    run_fanout_t *f = user_data;
    const subscriber_run_t *run = f->run;
    subscriber_t *sub = subscriber_of(client);
    subscriber_verdict_t v = sub->ops->deliver_run_cb != NULL
                                 ? sub->ops->deliver_run_cb(sub->user_data, run)
                                 : SUBSCRIBER_PER_FRAME;
    switch (v) {
    case SUBSCRIBER_DELIVERED:
        f->delivered += run->nframes;
        return 0;
    case SUBSCRIBER_SKIPPED:
        return 0;
    case SUBSCRIBER_FULL:
        /* None of the run was queued; no run holds a drop_slow topic. */
        METRIC_ADD(f->worker->metrics->slow_consumer_closes, 1);
        sub->ops->close_cb(sub->user_data, WSB_WS_CLOSE_TRY_AGAIN, "slow consumer");
        return 0;
    case SUBSCRIBER_PER_FRAME:
        break;
    }
    for (unsigned i = 0; i < run->nframes; i++) {
        xmsg_t *m = run->msgs[i];
        fanout_t one = {.fb = xmsg_worker_buf(m, f->worker->index),
                        .msg = m,
                        .worker = f->worker,
                        .undelivered = 0,
                        .inbox = false};
        deliver_cb(client, &one);
        f->delivered += 1 - one.undelivered;
    }
    return 0;
}

/* Fans the collected run out and empties it. */
static void run_close(core_worker_t *s)
{
    subscriber_run_t *run = &s->run;
    if (run->nframes == 0) {
        return;
    }
    if (run->nframes == 1) {
        deliver_single(s, run->msgs[0]);
    } else {
        const xmsg_t *m0 = run->msgs[0];
        run_fanout_t f = {.worker = s, .run = run, .delivered = 0};
        s->in_fanout = true;
        (void)trie_match(s->trie, m0->topic, m0->topic_len, deliver_run_cb, &f);
        s->in_fanout = false;
        METRIC_ADD(s->metrics->messages_delivered, f.delivered);
        for (unsigned i = 0; i < run->nframes; i++) {
            frame_buf_unref(xmsg_worker_buf(run->msgs[i], s->index));
        }
    }
    run->nframes = 0;
    run->nsegs = 0;
    run->bytes = 0;
}

/* True when `m` may join the open run (of its topic, with room left). */
static bool run_takes(const subscriber_run_t *run, const xmsg_t *m)
{
    if (run->nframes == 0) {
        return true;
    }
    const xmsg_t *m0 = run->msgs[0];
    return run->nframes < SUBSCRIBER_RUN_MAX && run->nsegs < SUBSCRIBER_RUN_SEGS &&
           m0->topic_len == m->topic_len && memcmp(m0->topic, m->topic, m->topic_len) == 0;
}

static void run_add(subscriber_run_t *run, xmsg_t *m, frame_buf_t *fb)
{
    run->msgs[run->nframes++] = m;
    run->bytes += fb->len;
    if (run->nsegs > 0) {
        unsigned t = run->nsegs - 1;
        const frame_buf_t *last = run->fb[t];
        if (fb->backing != NULL && last->backing == fb->backing &&
            last->bytes + run->len[t] == fb->bytes) {
            run->len[t] += fb->len; /* the next bytes of the same chunk */
            return;
        }
    }
    run->fb[run->nsegs] = fb;
    run->len[run->nsegs] = fb->len;
    run->nsegs++;
}

static void deliver_one(core_worker_t *s, xmsg_t *m)
{
    xmsg_chunk_place(&s->chunker, m, s->index);
    if (!runnable(m)) {
        run_close(s);
        deliver_single(s, m);
        return;
    }
    if (!run_takes(&s->run, m)) {
        run_close(s);
    }
    run_add(&s->run, m, xmsg_worker_buf(m, s->index));
}

void router_drain_pushed(core_worker_t *s)
{
    /* Every push counted in enqueue_pos has claimed its cell; a producer may
     * still be between claiming and filling one (a publish of another shard,
     * or the bridge), for a few instructions: wait for it, since a message
     * behind it may be one of ours. */
    size_t target = xqueue_enqueued(&s->inbox);
    while (xqueue_dequeued(&s->inbox) < target) {
        xmsg_t *m = xqueue_pop(&s->inbox);
        if (m == NULL) {
            sched_yield();
            continue;
        }
        deliver_one(s, m);
    }
    run_close(s);
    METRIC_SET(s->metrics->inbox_depth, xqueue_depth(&s->inbox));
}

void router_drain(core_worker_t *s)
{
    unsigned budget = CORE_INBOX_BATCH;
    xmsg_t *m;
    while (budget > 0 && (m = xqueue_pop(&s->inbox)) != NULL) {
        budget--;
        deliver_one(s, m);
    }
    run_close(s);
    if (budget == 0) {
        /* More than a batch is waiting: let I/O run, then continue. */
        s->core->wake_cb(s);
    }
    METRIC_SET(s->metrics->inbox_depth, xqueue_depth(&s->inbox));
}
