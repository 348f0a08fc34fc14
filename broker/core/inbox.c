/* inbox.c - request inbox names and the no-responders probe (see inbox.h). */
#include "core/inbox.h"

#include "core/core.h"
#include "core/xmsg.h"
#include "shared/util.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The count of one request: freed by whoever counts last. */
struct inbox_count_s {
    _Atomic uint32_t left;    /* counters (workers, the bridge) still to come */
    _Atomic uint32_t matched; /* counters that saw at least one match */
    unsigned worker;          /* the requester's */
    char inbox[INBOX_LEN + 1];
};

/* What the message carries (and frees): the count outlives it when the
 * bridge counts after every worker. */
struct request_probe_s {
    inbox_count_t *count;
};

static const char hex[] = "0123456789abcdef";

void inbox_node_tag(const char *node_id, char out[INBOX_TAG_LEN + 1])
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */
    for (const char *p = node_id; *p != '\0'; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    }
    for (size_t i = 0; i < INBOX_TAG_LEN; i++) {
        out[i] = hex[(h >> (4 * (INBOX_TAG_LEN - 1 - i))) & 0xF];
    }
    out[INBOX_TAG_LEN] = '\0';
}

size_t inbox_channel_len(const char *topic, size_t len)
{
    if (!inbox_is(topic, len) || len <= INBOX_PREFIX_LEN) {
        return 0;
    }
    const char *dot = memchr(topic + INBOX_PREFIX_LEN, '.', len - INBOX_PREFIX_LEN);
    return dot != NULL ? (size_t)(dot - topic) : len;
}

void inbox_make(const core_t *c, char out[INBOX_LEN + 1])
{
    uint8_t rnd[INBOX_RANDOM];
    random_bytes(rnd, sizeof rnd);
    char *p = out;
    memcpy(p, INBOX_PREFIX, INBOX_PREFIX_LEN);
    p += INBOX_PREFIX_LEN;
    if (c->inbox_tag[0] != '\0') {
        memcpy(p, c->inbox_tag, INBOX_TAG_LEN);
    } else {
        memset(p, '0', INBOX_TAG_LEN);
    }
    p += INBOX_TAG_LEN;
    *p++ = '.';
    for (size_t i = 0; i < INBOX_RANDOM; i++) {
        *p++ = hex[rnd[i] >> 4];
        *p++ = hex[rnd[i] & 0xF];
    }
    *p = '\0';
}

request_probe_t *inbox_probe_new(const core_worker_t *w, const char *inbox, bool remote)
{
    inbox_count_t *n = xcalloc(1, sizeof(*n));
    atomic_init(&n->left, w->core->nworkers + (remote ? 1u : 0u));
    atomic_init(&n->matched, 0);
    n->worker = w->index;
    memcpy(n->inbox, inbox, INBOX_LEN);
    n->inbox[INBOX_LEN] = '\0';
    request_probe_t *p = xcalloc(1, sizeof(*p));
    p->count = n;
    return p;
}

void inbox_probe_discard(request_probe_t *p)
{
    free(p->count);
    free(p);
}

inbox_count_t *inbox_probe_remote(request_probe_t *p)
{
    return p->count;
}

/* One counter's share; the last one decides and frees the count. */
static void count(core_t *c, inbox_count_t *n, bool matched)
{
    if (matched) {
        atomic_fetch_add_explicit(&n->matched, 1, memory_order_relaxed);
    }
    /* acq_rel: the last counter sees every other counter's matched add. */
    if (atomic_fetch_sub_explicit(&n->left, 1, memory_order_acq_rel) != 1) {
        return;
    }
    bool none = atomic_load_explicit(&n->matched, memory_order_relaxed) == 0;
    char inbox[INBOX_LEN];
    memcpy(inbox, n->inbox, INBOX_LEN);
    unsigned worker = n->worker;
    free(n);
    if (!none || c == NULL) {
        return;
    }
    /* Every counter counted and none matched: tell the requester's inbox. */
    json_t *ev = json_pack("{s:s}", "type", "no_responders");
    if (ev == NULL) {
        wsb_oom("no_responders");
    }
    xmsg_t *nr = xmsg_new_event((wsb_str_t){inbox, INBOX_LEN}, ev, c->nworkers);
    json_decref(ev);
    xmsg_set_refs(nr, 1);
    core_worker_t *w = c->workers[worker];
    if (!xqueue_push(&w->inbox, nr)) {
        /* Its inbox is full: the request ends with its timeout. */
        METRIC_ADD_SHARED(w->metrics->inbox_dropped, 1);
        xmsg_unref(nr);
        return;
    }
    c->wake_cb(w);
}

void inbox_probe_count(core_t *c, xmsg_t *m, size_t matches)
{
    count(c, m->probe->count, matches > 0);
}

void inbox_probe_remote_done(core_t *c, inbox_count_t *n, bool matched)
{
    count(c, n, matched);
}
