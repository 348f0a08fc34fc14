/*
 * chist_stream.h - clustered streams, the core's side: with redis.url set,
 * a stream (stream.h, a topics rule with `stream`) lives in Redis
 * (cluster/stream_redis.h): one Redis stream per rule, its seq and epoch
 * shared by every node. Publishes and subscribes of the stream become
 * chist_op_t ops (core/chist.h) with op->stream set, and travel the way
 * clustered history's ops do (chist_submit, chist_complete, chist_drain).
 */
#ifndef WSB_BROKER_CORE_CHIST_STREAM_H
#define WSB_BROKER_CORE_CHIST_STREAM_H

#include "core/chist.h"
#include "core/topic_rules.h"

#include <stdbool.h>

/* True when `rule` (a rule with `stream`) keeps its stream in Redis: the
 * node federates (redis.url). */
bool chist_stream_clustered(const core_t *c, const topic_rule_t *rule);

/* A new op of the stream of `rule` for worker `w`: CHIST_PUBLISH of the
 * exact `topic` with `data_json`, or CHIST_READ of the subscription `topic`
 * (a topic or a pattern inside the stream). As chist_op_new(). */
chist_op_t *chist_stream_op_new(core_worker_t *w, int kind, wsb_str_t topic, wsb_str_t data_json,
                                const topic_rule_t *rule);

#endif
