/* chist.c - clustered history ops on the worker side (see chist.h). */
#include "core/chist.h"

#include "core/inbox_name.h"
#include "shared/util.h"

#include <stdlib.h>
#include <string.h>

chist_op_t *chist_op_alloc(int kind, wsb_str_t topic, wsb_str_t data_json)
{
    chist_op_t *op = xcalloc(1, sizeof(*op) + topic.len + 1 + data_json.len + 1);
    char *p = (char *)(op + 1);
    op->kind = (uint8_t)kind;
    op->recovered = -1;
    op->topic = p;
    op->topic_len = (uint16_t)topic.len;
    memcpy(p, topic.p, topic.len);
    p[topic.len] = '\0';
    op->data = p + topic.len + 1;
    op->data_len = (uint32_t)data_json.len;
    if (data_json.len > 0) {
        memcpy(op->data, data_json.p, data_json.len);
    }
    op->data[data_json.len] = '\0';
    uint8_t rnd[CHIST_EPOCH_LEN / 2];
    random_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, op->epoch_new);
    op->epoch_new[CHIST_EPOCH_LEN] = '\0';
    return op;
}

void chist_op_set_from(chist_op_t *op, wsb_str_t from_json)
{
    free(op->from);
    op->from = NULL;
    op->from_len = 0;
    if (from_json.len > 0) {
        op->from = xmalloc(from_json.len);
        memcpy(op->from, from_json.p, from_json.len);
        op->from_len = (uint32_t)from_json.len;
    }
}

void chist_op_drop_replay(chist_op_t *op)
{
    for (size_t i = 0; i < op->nmsgs; i++) {
        xmsg_unref(op->msgs[i]);
    }
    free(op->msgs);
    op->msgs = NULL;
    op->nmsgs = 0;
}

void chist_op_free(chist_op_t *op)
{
    if (op == NULL) {
        return;
    }
    free(op->from);
    chist_op_drop_replay(op);
    for (size_t i = 0; i < op->nlive; i++) {
        xmsg_unref(op->live[i]);
    }
    free(op->live);
    for (size_t i = 0; i < op->npos; i++) {
        free(op->pos[i].topic);
    }
    free(op->pos);
    free(op);
}

int chist_rule(const core_t *c, wsb_str_t topic)
{
    if (!core_federated(c) || c->history_rules == NULL || c->history_rules->n == 0) {
        return -1;
    }
    if (inbox_is(topic.p, topic.len)) {
        return -1; /* a reply is routed to its requester's node, never kept (inbox.h) */
    }
    return history_rules_match(c->history_rules, topic);
}

chist_op_t *chist_op_new(core_worker_t *w, int kind, wsb_str_t topic, wsb_str_t data_json, int rule)
{
    chist_op_t *op = chist_op_alloc(kind, topic, data_json);
    const history_rule_t *r = &w->core->history_rules->rules[rule];
    op->worker = w;
    op->size = r->size;
    op->ttl_ms = r->ttl_ms;
    return op;
}

int chist_submit(core_worker_t *w, chist_op_t *op)
{
    const core_t *c = w->core;
    if (!core_federated(c)) {
        return -1;
    }
    return c->fed_ops->chist_submit_cb(c->fed, op);
}

void chist_complete(chist_op_t *op)
{
    core_worker_t *w = op->worker;
    /* Cannot fail: the queue holds redis.queue_size ops and no more are in
     * flight (chist_redis_submit). */
    while (!xqueue_push(&w->chist_done, op)) {
        abort(); /* cannot happen: see above */
    }
    w->core->wake_cb(w);
}

void chist_drain(core_worker_t *w)
{
    if (w->chist_done.cells == NULL) {
        return;
    }
    chist_op_t *op;
    while ((op = xqueue_pop(&w->chist_done)) != NULL) {
        if (op->owner == NULL) {
            chist_op_free(op); /* its connection is gone */
        } else {
            op->done_cb(op);
        }
    }
}

void chist_worker_free(core_worker_t *w)
{
    if (w->chist_done.cells == NULL) {
        return;
    }
    chist_op_t *op;
    while ((op = xqueue_pop(&w->chist_done)) != NULL) {
        chist_op_free(op);
    }
    xqueue_destroy(&w->chist_done);
}
