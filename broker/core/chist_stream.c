/* chist_stream.c - ops of clustered streams (see chist_stream.h). */
#include "core/chist_stream.h"

#include <string.h>

bool chist_stream_clustered(const core_t *c, const topic_rule_t *rule)
{
    return rule != NULL && rule->has_stream && core_federated(c);
}

chist_op_t *chist_stream_op_new(core_worker_t *w, int kind, wsb_str_t topic, wsb_str_t data_json,
                                const topic_rule_t *rule)
{
    chist_op_t *op = chist_op_alloc(kind, topic, data_json);
    op->worker = w;
    op->size = rule->stream.size;
    op->ttl_ms = rule->stream.ttl_ms;
    op->max_bytes = rule->stream.max_bytes;
    memcpy(op->stream, rule->pattern, rule->pattern_len);
    op->stream[rule->pattern_len] = '\0';
    return op;
}
