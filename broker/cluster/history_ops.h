/*
 * history_ops.h - clustered history ops on the worker side, for every
 * ingress: which topics are clustered, a new op with its rule's bounds, and
 * the queue that brings a finished op back from the bridge thread to its
 * worker (cluster_complete -> cluster_drain -> the op's done_cb). What a
 * WebSocket session does with its ops (reply order, switch-over floors) is
 * ingress/session_cluster.h.
 */
#ifndef WSB_BROKER_HISTORY_OPS_H
#define WSB_BROKER_HISTORY_OPS_H

#include "cluster/history_redis.h"
#include "wsb/common.h"

typedef struct worker_s worker_t;
typedef struct broker_s broker_t;

/* The rule index when `topic` (exact) is clustered on this broker, else -1. */
int cluster_rule(const broker_t *b, wsb_str_t topic);

/* A new op (HR_PUBLISH with `data_json`, or HR_READ) for worker `s` and the
 * exact `topic`, with the size and ttl of history rule `rule` (an index
 * cluster_rule() returned). Owner: the caller until it is submitted
 * (bridge_history_submit), then whoever its done_cb hands it to; freed with
 * hr_op_free(). The caller sets owner and done_cb. Aborts on OOM. */
hr_op_t *cluster_op_new(worker_t *s, int kind, wsb_str_t topic, wsb_str_t data_json, int rule);

/* Hands a finished op back to its worker. Any thread (the bridge's). */
void cluster_complete(hr_op_t *op);

/* Runs the callbacks of the ops handed back to `s` (frees orphans). */
void cluster_drain(worker_t *s);

/* Frees what is left in the worker's queue (after the bridge thread ended). */
void cluster_worker_free(worker_t *s);

#endif
