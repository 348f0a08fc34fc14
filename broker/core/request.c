/* request.c - request/reply: inboxes, pending requests, no responders (see request.h). */
#include "core/request.h"

#include "core/inbox.h"
#include "core/subscriber.h"
#include "core/xmsg.h"
#include "shared/util.h"

#include <stdlib.h>
#include <string.h>

struct request_s {
    subscriber_t sub; /* of its inbox, in its worker's trie */
    core_worker_t *w;
    trie_sub_t *handle;
    uv_timer_t timer;
    request_list_t *list; /* NULL once it ended */
    request_t *prev;
    request_t *next;
    void *owner;
    void (*done_cb)(void *owner, const request_done_t *d);
    bool has_id;
    int64_t id;
    char inbox[INBOX_LEN + 1];
};

/* ---- lifetime -------------------------------------------------------------------------------- */

static void unlink_request(request_t *r)
{
    request_list_t *l = r->list;
    if (l == NULL) {
        return;
    }
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        l->head = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    l->n--;
    r->list = NULL;
    r->prev = r->next = NULL;
}

static void free_cb(uv_handle_t *h)
{
    free(h->data);
}

/* Its inbox leaves the trie and the request is freed (never in a fan-out). */
static void release(request_t *r)
{
    interest_change(&r->w->interest, r->inbox, INBOX_LEN, -1);
    trie_remove(r->w->trie, r->handle);
    r->handle = NULL;
    uv_close((uv_handle_t *)&r->timer, free_cb);
}

static void timer_cb(uv_timer_t *t)
{
    request_t *r = t->data;
    if (r->list != NULL) {
        unlink_request(r);
        request_done_t d = {.outcome = REQUEST_TIMEOUT, .has_id = r->has_id, .id = r->id};
        r->done_cb(r->owner, &d);
    }
    release(r);
}

/* The request ended (in a fan-out): tell the owner, release it in the
 * next loop turn. */
static void finish(request_t *r, request_outcome_t outcome, json_t *data, json_t *from)
{
    unlink_request(r);
    request_done_t d = {
        .outcome = outcome, .has_id = r->has_id, .id = r->id, .data = data, .from = from};
    r->done_cb(r->owner, &d);
    uv_timer_start(&r->timer, timer_cb, 0, 0);
}

/* ---- delivery to the inbox (subscriber.h) ------------------------------------------------------
 */

/* The JSON text of a broker-built text frame (server frames are unmasked). */
static json_t *frame_json(const xmsg_t *m)
{
    uint8_t b1 = m->frame[1] & 0x7f;
    size_t hl = b1 < 126 ? 2 : b1 == 126 ? 4 : 10;
    if (m->frame_len < hl) {
        return NULL;
    }
    return json_loadb((const char *)m->frame + hl, m->frame_len - hl, 0, NULL);
}

static subscriber_verdict_t deliver_cb(void *user_data, struct frame_buf_s *fb, xmsg_t *m)
{
    (void)fb;
    request_t *r = user_data;
    if (r->list == NULL) {
        return SUBSCRIBER_SKIPPED; /* a second reply: only the first counts */
    }
    if (m->event) {
        /* Only the probe makes events on an inbox (no client subscribes
         * there, so no join/leave either). */
        finish(r, REQUEST_NO_RESPONDERS, NULL, NULL);
        return SUBSCRIBER_DELIVERED;
    }
    json_t *root = frame_json(m);
    if (root == NULL) {
        wsb_oom("reply");
    }
    finish(r, REQUEST_REPLY, json_object_get(root, "data"), json_object_get(root, "from"));
    json_decref(root);
    return SUBSCRIBER_DELIVERED;
}

static int gap_cb(void *user_data, const xmsg_t *m)
{
    (void)user_data;
    (void)m;
    return -1; /* never: an inbox is never full */
}

static void close_cb(void *user_data, int code, const char *why)
{
    (void)user_data;
    (void)code;
    (void)why;
}

static const subscriber_ops_t inbox_ops = {
    .deliver_cb = deliver_cb,
    .gap_cb = gap_cb,
    .close_cb = close_cb,
};

/* ---- start and cancel ---------------------------------------------------------------------- */

static request_t *new_request(core_worker_t *w, const request_args_t *a)
{
    request_t *r = xcalloc(1, sizeof(*r));
    r->w = w;
    r->owner = a->owner;
    r->done_cb = a->done_cb;
    r->has_id = a->pub.has_id;
    r->id = a->pub.id;
    inbox_make(w->core, r->inbox);
    subscriber_init(&r->sub, &inbox_ops, r);
    r->sub.inbox = true;
    interest_change(&w->interest, r->inbox, INBOX_LEN, +1); /* replies from other workers */
    r->handle = trie_insert(w->trie, r->inbox, INBOX_LEN, &r->sub.tc, NULL);
    uv_timer_init(w->loop, &r->timer);
    r->timer.data = r;
    request_list_t *l = a->list;
    r->list = l;
    r->next = l->head;
    if (l->head != NULL) {
        l->head->prev = r;
    }
    l->head = r;
    l->n++;
    return r;
}

pubsub_status_t request_start(core_worker_t *w, const request_args_t *a, bool *pause)
{
    *pause = false;
    if (inbox_is(a->pub.topic.p, a->pub.topic.len)) {
        return PUBSUB_FORBIDDEN;
    }
    if (a->list->n >= REQUEST_MAX_PENDING) {
        return PUBSUB_LIMIT;
    }
    core_t *c = w->core;
    request_t *r = new_request(w, a);
    /* On a federated node the other nodes count too: Redis says how many
     * received the request (request.h). */
    bool remote = core_federated(c) && c->fed_ops->request_cb != NULL;
    request_probe_t *probe = inbox_probe_new(w, r->inbox, remote);
    pubsub_publish_t pub = a->pub;
    pub.reply_to = (wsb_str_t){r->inbox, INBOX_LEN};
    pub.probe = probe;
    pub.owner = NULL;
    pub.done_cb = NULL;
    pubsub_published_t out;
    pubsub_status_t st = pubsub_publish(w, &pub, &out);
    if (st != PUBSUB_OK) {
        inbox_probe_discard(probe); /* not handed to a message */
        unlink_request(r);
        release(r);
        return st;
    }
    *pause = out.pause;
    if (r->list != NULL) {
        /* Not answered at once (no responders on a lone worker). */
        uv_timer_start(&r->timer, timer_cb, a->timeout_ms, 0);
    }
    return PUBSUB_OK;
}

void request_cancel_all(request_list_t *list)
{
    while (list->head != NULL) {
        request_t *r = list->head;
        unlink_request(r);
        if (r->w->in_fanout) {
            uv_timer_start(&r->timer, timer_cb, 0, 0); /* released next turn */
        } else {
            release(r);
        }
    }
}
