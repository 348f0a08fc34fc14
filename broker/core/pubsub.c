/* pubsub.c - the one publish/subscribe/unsubscribe path (see pubsub.h). */
#include "core/pubsub.h"

#include "core/apikey.h"
#include "core/auth.h"
#include "core/chist.h"
#include "core/router.h"
#include "core/seqtab.h"
#include "shared/util.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#include <stdlib.h>
#include <string.h>

/* ---- publish -------------------------------------------------------------------------------- */

static void count_published(core_worker_t *w, pubsub_ingress_t ingress)
{
    METRIC_ADD(w->metrics->messages_published, 1);
    if (ingress == PUBSUB_HTTP) {
        METRIC_ADD(w->metrics->messages_published_http, 1);
    } else if (ingress == PUBSUB_RESP) {
        METRIC_ADD(w->metrics->messages_published_resp, 1);
    }
}

/* The seq comes from Redis (chist_redis.h): the op goes to the bridge and
 * comes back to req->done_cb on this worker. */
static pubsub_status_t publish_clustered(core_worker_t *w, const pubsub_publish_t *req,
                                         wsb_str_t json, int rule, pubsub_published_t *out)
{
    chist_op_t *op = chist_op_new(w, CHIST_PUBLISH, req->topic, json, rule);
    op->owner = req->owner;
    op->done_cb = req->done_cb;
    op->has_id = req->has_id;
    op->id = req->id;
    if (chist_submit(w, op) != 0) {
        chist_op_free(op);
        return PUBSUB_UNAVAILABLE;
    }
    count_published(w, req->ingress);
    out->op = op;
    return PUBSUB_PENDING;
}

/*
 * Takes the topic's next seq, appends to its history and pushes the message
 * into every worker's inbox, all under the topic's shard lock (see
 * pubsub.h), then delivers to this worker's subscribers.
 */
static uint64_t publish_local(core_worker_t *w, wsb_str_t topic, wsb_str_t json)
{
    core_t *c = w->core;
    seqtab_shard_t *shard = NULL;
    seqtab_pos_t pos;
    uint64_t seq = seqtab_lock_next(c->seqtab, topic, &shard, &pos);
    bool keep = pos.rule >= 0;
    wsb_str_t epoch = keep ? (wsb_str_t){pos.epoch, strlen(pos.epoch)} : WSB_STR_NULL;
    xmsg_t *m = xmsg_new(topic, seq, epoch, json, c->nworkers);
    /* Every reference is counted before the first push: a worker may deliver
     * and release its share before the pushes end. History holds one more. */
    xmsg_set_refs(m, c->nworkers + (keep ? 1u : 0u));
    if (keep) {
        m->drop_slow = c->history_rules->rules[pos.rule].drop_slow;
        seqtab_append(c->seqtab, shard, m, core_now(w));
    }
    router_push_all(c, m);
    /* Still under the shard lock: federation sends a topic's messages to
     * the other nodes in seq order. */
    if (core_federated(c)) {
        c->fed_ops->publish_cb(c->fed, topic, seq, json);
    }
    seqtab_unlock(shard);
    router_wake_others(w);
    /* Our own subscribers get the message now, before the publisher's ack
     * is queued, as with a single worker. */
    router_drain(w);
    return seq;
}

static bool may_publish(const pubsub_publish_t *req)
{
    if (req->perms != NULL && !perms_may_publish(req->perms, req->topic)) {
        return false;
    }
    return req->key == NULL || apikey_may_publish(req->key, req->topic.p, req->topic.len);
}

pubsub_status_t pubsub_publish(core_worker_t *w, const pubsub_publish_t *req,
                               pubsub_published_t *out)
{
    out->seq = 0;
    out->pause = false;
    out->op = NULL;
    if (!may_publish(req)) {
        return PUBSUB_FORBIDDEN;
    }
    size_t len = 0;
    char *json = wsb_msg_dump_value(req->data, &len);
    if (json == NULL) {
        wsb_oom("publish data");
    }
    pubsub_status_t st = PUBSUB_OK;
    int rule = chist_rule(w->core, req->topic);
    if (rule >= 0) {
        st = publish_clustered(w, req, (wsb_str_t){json, len}, rule, out);
    } else {
        count_published(w, req->ingress);
        out->seq = publish_local(w, req->topic, (wsb_str_t){json, len});
        out->pause = core_inbox_pressure(w);
    }
    free(json);
    return st;
}

/* ---- subscribe ------------------------------------------------------------------------------ */

/* The checks of a subscribe, then the trie insert (unless `already`). */
static pubsub_status_t add(core_worker_t *w, const pubsub_subscribe_t *req,
                           pubsub_subscribed_t *out)
{
    core_t *c = w->core;
    if (c->refuse_patterns && wsb_topic_is_pattern(req->pattern.p, req->pattern.len)) {
        return PUBSUB_NO_PATTERNS;
    }
    if (req->perms != NULL && !perms_may_subscribe(req->perms, req->pattern)) {
        return PUBSUB_FORBIDDEN;
    }
    /* Subscribing twice to one pattern is idempotent. */
    if (req->already) {
        return PUBSUB_OK;
    }
    if (req->nsubs >= c->max_subscriptions) {
        return PUBSUB_LIMIT;
    }
    int first = 0;
    out->handle = trie_insert(w->trie, req->pattern.p, req->pattern.len, &req->sub->tc, &first);
    if (first && core_federated(c)) {
        c->fed_ops->interest_cb(c->fed, req->pattern.p, req->pattern.len, +1);
    }
    core_update_gauges(w);
    return PUBSUB_OK;
}

/* The switch-over of pubsub.h: called with the topic's shard locked. */
static pubsub_status_t add_with_history(core_worker_t *w, const pubsub_subscribe_t *req,
                                        seqtab_shard_t *shard, const seqtab_pos_t *pos,
                                        pubsub_subscribed_t *out)
{
    seqtab_t *t = w->core->seqtab;
    router_drain_pushed(w);
    pubsub_status_t st = add(w, req, out);
    if (st != PUBSUB_OK) {
        seqtab_unlock(shard);
        return st;
    }
    if (req->has_since) {
        out->recovered =
            seqtab_since(t, shard, req->since_epoch, req->since_seq, &out->msgs, &out->nmsgs) ? 1
                                                                                              : 0;
    } else if (req->history > 0) {
        seqtab_last(t, shard, req->history, &out->msgs, &out->nmsgs);
    }
    seqtab_unlock(shard);
    out->has_seq = true;
    out->seq = pos->seq;
    memcpy(out->epoch, pos->epoch,
           sizeof(out->epoch) < sizeof(pos->epoch) ? sizeof(out->epoch) : sizeof(pos->epoch));
    out->epoch[sizeof(out->epoch) - 1] = '\0';
    return PUBSUB_OK;
}

static void count_recovery(core_worker_t *w, int recovered)
{
    if (recovered == 1) {
        METRIC_ADD(w->metrics->history_recovered, 1);
    } else if (recovered == 0) {
        METRIC_ADD(w->metrics->history_not_recovered, 1);
    }
}

pubsub_status_t pubsub_subscribe(core_worker_t *w, const pubsub_subscribe_t *req,
                                 pubsub_subscribed_t *out)
{
    memset(out, 0, sizeof(*out));
    out->chist_rule = -1;
    out->recovered = -1;
    core_t *c = w->core;
    bool exact = !wsb_topic_is_pattern(req->pattern.p, req->pattern.len);
    if (req->position && exact) {
        int crule = chist_rule(c, req->pattern);
        if (crule >= 0) {
            /* Clustered history: position and replay come from Redis. */
            pubsub_status_t st = add(w, req, out);
            if (st == PUBSUB_OK) {
                out->chist_rule = crule;
            }
            return st;
        }
    }
    if (req->position && exact && c->history_rules != NULL && c->history_rules->n > 0) {
        seqtab_shard_t *shard = NULL;
        seqtab_pos_t pos;
        seqtab_lock_topic(c->seqtab, req->pattern, &shard, &pos, core_now(w));
        if (pos.rule >= 0) {
            pubsub_status_t st = add_with_history(w, req, shard, &pos, out);
            if (st == PUBSUB_OK) {
                count_recovery(w, out->recovered);
            }
            return st;
        }
        seqtab_unlock(shard);
    }
    pubsub_status_t st = add(w, req, out);
    if (st == PUBSUB_OK && req->has_since) {
        /* Without history a recovery request cannot succeed: say so, deliver live. */
        out->recovered = 0;
        count_recovery(w, 0);
    }
    return st;
}

void pubsub_unsubscribe(core_worker_t *w, trie_sub_t *sub)
{
    const core_t *c = w->core;
    if (!core_federated(c)) {
        trie_remove(w->trie, sub);
        return;
    }
    /* The pattern is owned by the entry trie_remove frees: copy it first. */
    char pattern[WSB_TOPIC_MAX_LEN + 1];
    size_t len = strlen(trie_sub_pattern(sub));
    memcpy(pattern, trie_sub_pattern(sub), len + 1);
    if (trie_remove(w->trie, sub) == 1) {
        c->fed_ops->interest_cb(c->fed, pattern, len, -1);
    }
}
