/* history_ops.c - clustered history ops on the worker side (see history_ops.h). */
#include "cluster/history_ops.h"

#include "app/broker.h"
#include "app/worker.h"

#include <stdlib.h>

int cluster_rule(const broker_t *b, wsb_str_t topic)
{
    if (b->bridge == NULL || b->history_rules.n == 0) {
        return -1;
    }
    return history_rules_match(&b->history_rules, topic);
}

hr_op_t *cluster_op_new(worker_t *s, int kind, wsb_str_t topic, wsb_str_t data_json, int rule)
{
    hr_op_t *op = hr_op_new(kind, topic, data_json);
    const history_rule_t *r = &s->broker->history_rules.rules[rule];
    op->worker = s;
    op->size = r->size;
    op->ttl_ms = r->ttl_ms;
    return op;
}

void cluster_complete(hr_op_t *op)
{
    worker_t *s = op->worker;
    /* Cannot fail: the queue holds redis.queue_size ops and no more are in
     * flight (hr_submit). */
    while (!xqueue_push(&s->cluster_done, op)) {
        abort();
    }
    uv_async_send(&s->inbox_async);
}

void cluster_drain(worker_t *s)
{
    if (s->cluster_done.cells == NULL) {
        return;
    }
    hr_op_t *op;
    while ((op = xqueue_pop(&s->cluster_done)) != NULL) {
        if (op->owner == NULL) {
            hr_op_free(op); /* its connection is gone */
        } else {
            op->done_cb(op);
        }
    }
}

void cluster_worker_free(worker_t *s)
{
    if (s->cluster_done.cells == NULL) {
        return;
    }
    hr_op_t *op;
    while ((op = xqueue_pop(&s->cluster_done)) != NULL) {
        hr_op_free(op);
    }
    xqueue_destroy(&s->cluster_done);
}
