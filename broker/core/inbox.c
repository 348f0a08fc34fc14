/* inbox.c - request inbox names and the no-responders probe (see inbox.h). */
#include "core/inbox.h"

#include "core/core.h"
#include "core/xmsg.h"
#include "shared/util.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

struct request_probe_s {
    _Atomic uint32_t left;    /* workers that have not counted yet */
    _Atomic uint32_t matched; /* workers with at least one match */
    unsigned worker;          /* the requester's */
    char inbox[INBOX_LEN + 1];
};

void inbox_make(char out[INBOX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t rnd[INBOX_RANDOM];
    random_bytes(rnd, sizeof rnd);
    memcpy(out, INBOX_PREFIX, INBOX_PREFIX_LEN);
    for (size_t i = 0; i < INBOX_RANDOM; i++) {
        out[INBOX_PREFIX_LEN + 2 * i] = hex[rnd[i] >> 4];
        out[INBOX_PREFIX_LEN + 2 * i + 1] = hex[rnd[i] & 0xF];
    }
    out[INBOX_LEN] = '\0';
}

request_probe_t *inbox_probe_new(const core_worker_t *w, const char *inbox)
{
    request_probe_t *p = xcalloc(1, sizeof(*p));
    atomic_init(&p->left, w->core->nworkers);
    atomic_init(&p->matched, 0);
    p->worker = w->index;
    memcpy(p->inbox, inbox, INBOX_LEN);
    p->inbox[INBOX_LEN] = '\0';
    return p;
}

void inbox_probe_count(core_t *c, xmsg_t *m, size_t matches)
{
    request_probe_t *p = m->probe;
    if (matches > 0) {
        atomic_fetch_add_explicit(&p->matched, 1, memory_order_relaxed);
    }
    /* acq_rel: the last counter sees every other worker's matched add. */
    if (atomic_fetch_sub_explicit(&p->left, 1, memory_order_acq_rel) != 1 ||
        atomic_load_explicit(&p->matched, memory_order_relaxed) != 0) {
        return;
    }
    /* Every worker counted and none matched: tell the requester's inbox. */
    json_t *ev = json_pack("{s:s}", "type", "no_responders");
    if (ev == NULL) {
        wsb_oom("no_responders");
    }
    xmsg_t *nr = xmsg_new_event((wsb_str_t){p->inbox, INBOX_LEN}, ev, c->nworkers);
    json_decref(ev);
    xmsg_set_refs(nr, 1);
    core_worker_t *w = c->workers[p->worker];
    if (!xqueue_push(&w->inbox, nr)) {
        /* Its inbox is full: the request ends with its timeout. */
        METRIC_ADD_SHARED(w->metrics->inbox_dropped, 1);
        xmsg_unref(nr);
        return;
    }
    c->wake_cb(w);
}
