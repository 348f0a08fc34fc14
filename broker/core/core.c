/* core.c - the core's context: inbox pressure and gauges (see core.h). */
#include "core/core.h"

#include <stdio.h>

/* A worker more than this many messages behind makes publishers wait: its
 * subscribers' latency, not the inbox's memory, is what it protects (a
 * worker delivers up to CORE_INBOX_BATCH messages per loop turn). */
#define PRESSURE_HIGH 256
#define PRESSURE_LOW  64

static size_t pressure_limit(const core_worker_t *w, size_t level)
{
    size_t half = xqueue_capacity(&w->inbox) / 2;
    return level < half ? level : half;
}

static bool inboxes_below(const core_worker_t *w, size_t limit)
{
    const core_t *c = w->core;
    for (unsigned i = 0; i < c->nworkers; i++) {
        if (xqueue_depth(&c->workers[i]->inbox) > limit) {
            return false;
        }
    }
    return true;
}

bool core_inbox_pressure(const core_worker_t *w)
{
    return !inboxes_below(w, pressure_limit(w, PRESSURE_HIGH));
}

bool core_inbox_relieved(const core_worker_t *w)
{
    return inboxes_below(w, pressure_limit(w, PRESSURE_LOW));
}

void core_update_gauges(core_worker_t *w)
{
    METRIC_SET(w->metrics->subscriptions, trie_subscription_count(w->trie));
    METRIC_SET(w->metrics->patterns, trie_pattern_count(w->trie));
}

const char *core_client_id(const core_worker_t *w, uint64_t counter,
                           char out[CORE_CLIENT_ID_MAX + 1])
{
    const char *node = w->core->node_id != NULL ? w->core->node_id : "";
    (void)snprintf(out, CORE_CLIENT_ID_MAX + 1, "%.16s-%u-%llu", node, w->index,
                   (unsigned long long)counter);
    return out;
}
