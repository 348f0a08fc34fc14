/* sys_stats.c - the periodic $sys.node.<id>.stats message (see sys_stats.h). */
#include "app/sys_stats.h"

#include "app/broker.h"
#include "app/worker.h"
#include "core/seqtab.h"
#include "core/sys_events.h"
#include "shared/util.h"
#include "wsb/topic.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    uint64_t in;  /* messages_published at the last publish */
    uint64_t out; /* messages_delivered */
} sys_counts_t;

struct sys_stats_s {
    uint64_t last_ms; /* loop time of the baseline */
    uint64_t due_ms;
    unsigned nworkers;
    sys_counts_t last[]; /* one per worker */
};

/* Two decimals are plenty for a dashboard (and keep the frame short). */
static double two_decimals(double x)
{
    return (double)(uint64_t)(x * 100.0 + 0.5) / 100.0;
}

static double per_second(uint64_t now, uint64_t before, double seconds)
{
    return now >= before ? two_decimals((double)(now - before) / seconds) : 0.0;
}

static sys_stats_t *baseline(worker_t *w, uint64_t now)
{
    broker_t *b = w->broker;
    sys_stats_t *st = xcalloc(1, sizeof(*st) + b->nworkers * sizeof(sys_counts_t));
    st->nworkers = b->nworkers;
    st->last_ms = now;
    st->due_ms = now + w->cfg->sys_stats_interval_ms;
    for (unsigned i = 0; i < b->nworkers; i++) {
        st->last[i].in = METRIC_GET(b->workers[i]->metrics.messages_published);
        st->last[i].out = METRIC_GET(b->workers[i]->metrics.messages_delivered);
    }
    return st;
}

static json_t *stats_json(worker_t *w, sys_stats_t *st, uint64_t now)
{
    broker_t *b = w->broker;
    double seconds = (double)(now - st->last_ms) / 1000.0;
    if (seconds <= 0.0) {
        seconds = 1e-3;
    }
    uint64_t conns = 0, subs = 0, slow = 0;
    double in_rate = 0.0, out_rate = 0.0;
    json_t *workers = json_array();
    for (unsigned i = 0; i < st->nworkers; i++) {
        const metrics_t *m = &b->workers[i]->metrics;
        uint64_t wc = METRIC_GET(m->connections);
        uint64_t ws = METRIC_GET(m->subscriptions);
        uint64_t wi = METRIC_GET(m->messages_published);
        uint64_t wo = METRIC_GET(m->messages_delivered);
        uint64_t wslow = METRIC_GET(m->slow_consumer_closes);
        double ir = per_second(wi, st->last[i].in, seconds);
        double or = per_second(wo, st->last[i].out, seconds);
        json_array_append_new(workers, json_pack("{sI sI sI sf sf sI sI}", "worker", (json_int_t)i,
                                                 "connections", (json_int_t)wc, "subscriptions",
                                                 (json_int_t)ws, "messages_in_per_s", ir,
                                                 "messages_out_per_s", or, "slow_consumer_closes",
                                                 (json_int_t)wslow, "inbox_depth",
                                                 (json_int_t)METRIC_GET(m->inbox_depth)));
        conns += wc;
        subs += ws;
        slow += wslow;
        in_rate += ir;
        out_rate += or ;
        st->last[i].in = wi;
        st->last[i].out = wo;
    }
    return json_pack("{ss sf sI sI sI sf sf sI so}", "node", b->node_id, "uptime_s",
                     (double)broker_uptime_ns(b) / 1e9, "connections", (json_int_t)conns,
                     "subscriptions", (json_int_t)subs, "topics",
                     (json_int_t)seqtab_count(b->seqtab), "messages_in_per_s",
                     two_decimals(in_rate), "messages_out_per_s", two_decimals(out_rate),
                     "slow_consumer_closes", (json_int_t)slow, "workers", workers);
}

void sys_stats_tick(worker_t *w)
{
    uint64_t interval = w->cfg->sys_stats_interval_ms;
    if (interval == 0) {
        return;
    }
    uint64_t now = worker_now(w);
    if (w->sys_stats == NULL) {
        w->sys_stats = baseline(w, now);
        return;
    }
    sys_stats_t *st = w->sys_stats;
    if (now < st->due_ms) {
        return;
    }
    json_t *data = stats_json(w, st, now);
    char topic[WSB_TOPIC_MAX_LEN + 1];
    (void)snprintf(topic, sizeof(topic), "$sys.node.%s.stats", w->broker->node_id);
    (void)sys_publish(w, topic, data);
    json_decref(data);
    st->last_ms = now;
    /* Catch up on one late heartbeat, but never publish twice in a row. */
    st->due_ms += interval;
    if (st->due_ms <= now) {
        st->due_ms = now + interval;
    }
}

void sys_stats_free(sys_stats_t *st)
{
    free(st);
}
