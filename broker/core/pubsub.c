/* pubsub.c - the one publish/subscribe/unsubscribe path (see pubsub.h). */
#include "core/pubsub.h"

#include "core/apikey.h"
#include "core/auth.h"
#include "core/chist.h"
#include "core/chist_stream.h"
#include "core/inbox.h"
#include "core/presence.h"
#include "core/router.h"
#include "core/seqtab.h"
#include "core/stream.h"
#include "core/topic_rules.h"
#include "shared/util.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#include <stdlib.h>
#include <string.h>

/* ---- publish -------------------------------------------------------------------------------- */

static void count_published(core_worker_t *w, pubsub_ingress_t ingress)
{
    if (ingress == PUBSUB_SYS) {
        return;
    }
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
                                         wsb_str_t from, wsb_str_t json, int rule,
                                         const topic_rule_t *stream_rule, pubsub_published_t *out)
{
    /* A clustered stream's message (chist_stream.h) takes the stream's seq. */
    chist_op_t *op = stream_rule != NULL
                         ? chist_stream_op_new(w, CHIST_PUBLISH, req->topic, json, stream_rule)
                         : chist_op_new(w, CHIST_PUBLISH, req->topic, json, rule);
    chist_op_set_from(op, from);
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

/* After a publish: this worker's share goes out now, unless the caller
 * collects a burst (defer_local) and fewer than a run's worth wait. */
static void drain_own(core_worker_t *w, const pubsub_publish_t *req)
{
    if (!req->defer_local || xqueue_depth(&w->inbox) >= SUBSCRIBER_RUN_MAX) {
        router_drain(w);
    }
}

void pubsub_deliver_local(core_worker_t *w)
{
    router_drain(w);
}

/*
 * Takes the topic's next seq, appends to its history and pushes the message
 * into every worker's inbox, all under the topic's shard lock (see
 * pubsub.h), then delivers to this worker's subscribers.
 */
static uint64_t publish_local(core_worker_t *w, const pubsub_publish_t *req, wsb_str_t from,
                              wsb_str_t json, bool conflate)
{
    wsb_str_t topic = req->topic;
    core_t *c = w->core;
    seqtab_shard_t *shard = NULL;
    seqtab_pos_t pos;
    uint64_t seq = seqtab_lock_next(c->seqtab, topic, &shard, &pos);
    bool keep = pos.rule >= 0;
    wsb_str_t epoch = keep ? (wsb_str_t){pos.epoch, strlen(pos.epoch)} : WSB_STR_NULL;
    xmsg_t *m = xmsg_new_request(topic, seq, epoch, from, req->reply_to, json, c->nworkers);
    m->probe = req->probe;
    m->conflate = conflate;
    router_targets_t to;
    router_targets(c, m, &to);
    /* A request's count for the other nodes' answers (its own allocation),
     * taken while the message that owns the probe surely lives. */
    inbox_count_t *remote = req->probe != NULL ? inbox_probe_remote(req->probe) : NULL;
    /* Every reference is counted before the first push: a worker may deliver
     * and release its share before the pushes end. History holds one more.
     * None (no worker may want it, no history): it is freed right here. */
    xmsg_set_refs(m, to.n + (keep ? 1u : 0u));
    if (keep) {
        m->drop_slow = c->history_rules->rules[pos.rule].drop_slow;
        seqtab_append(c->seqtab, shard, m, core_now(w));
    }
    router_push_targets(w, m, &to);
    /* Still under the shard lock: federation sends a topic's messages to
     * the other nodes in seq order. */
    if (core_federated(c) && req->reply_to.len == 0) {
        c->fed_ops->publish_cb(c->fed, topic, seq, from, json);
    } else if (core_federated(c) && req->probe != NULL && c->fed_ops->request_cb != NULL) {
        c->fed_ops->request_cb(c->fed, topic, seq, from, req->reply_to, json, remote);
    }
    seqtab_unlock(shard);
    /* Our own subscribers get the message now, before the publisher's ack
     * is queued, as with a single worker (or at the caller's
     * pubsub_deliver_local, pubsub.h). */
    drain_own(w, req);
    return seq;
}

/*
 * publish_local for a topic of a stream (stream.h): the stream's next seq,
 * its log and the pushes into every worker's inbox under the stream's lock,
 * as publish_local does under the topic's shard lock.
 */
static uint64_t publish_stream(core_worker_t *w, const pubsub_publish_t *req, stream_t *st,
                               wsb_str_t from, wsb_str_t json, bool conflate)
{
    core_t *c = w->core;
    stream_lock(st);
    uint64_t seq = stream_next(st);
    const char *epoch = stream_epoch(st);
    xmsg_t *m =
        xmsg_new_from(req->topic, seq, (wsb_str_t){epoch, strlen(epoch)}, from, json, c->nworkers);
    m->conflate = conflate;
    m->drop_slow = stream_drops_slow(st);
    router_targets_t to;
    router_targets(c, m, &to);
    /* One reference per worker it goes to and one for the log. */
    xmsg_set_refs(m, to.n + 1u);
    stream_append(st, m, core_now(w));
    router_push_targets(w, m, &to);
    if (core_federated(c)) {
        c->fed_ops->publish_cb(c->fed, req->topic, seq, from, json);
    }
    stream_unlock(st);
    drain_own(w, req);
    return seq;
}

/* The stream of `rule` (a rule of c->topic_rules with `stream`). */
static stream_t *c_stream_of(const core_t *c, const topic_rule_t *rule)
{
    return c->streams != NULL ? c->streams[rule - c->topic_rules->rules] : NULL;
}

/* The rule of stream `sm` (one of c->streams). */
static const topic_rule_t *rule_of_stream(const core_t *c, const stream_t *sm)
{
    unsigned i = 0;
    while (c->streams[i] != sm) {
        i++;
    }
    return &c->topic_rules->rules[i];
}

static bool may_publish(const pubsub_publish_t *req)
{
    /* A request's inbox name is its capability (inbox.h: 128 random bits,
     * told only to the request's subscribers): a responder may answer
     * whatever its publish rights, as NATS allow_responses. */
    if (inbox_is(req->topic.p, req->topic.len)) {
        return true;
    }
    if (req->perms != NULL && !perms_may_publish(req->perms, req->topic)) {
        return false;
    }
    return req->key == NULL || apikey_may_publish(req->key, req->topic.p, req->topic.len);
}

/* {"client":…,"user":…} when the topic's rule stamps the publisher, else
 * NULL. Serialized once per message: every subscriber shares the frame. */
static char *from_of(const core_worker_t *w, const topic_rule_t *rule, const pubsub_publish_t *req,
                     size_t *len)
{
    /* A reply always says who answered (request.h). */
    bool inbox = inbox_is(req->topic.p, req->topic.len);
    if (!inbox && (rule == NULL || !rule->publisher)) {
        return NULL;
    }
    json_t *from = json_object();
    char id[CORE_CLIENT_ID_MAX + 1];
    json_t *client =
        req->from_client_no != 0 ? json_string(core_client_id(w, req->from_client_no, id)) : NULL;
    json_t *user =
        req->from_user.len > 0 ? json_stringn(req->from_user.p, req->from_user.len) : NULL;
    json_object_set_new(from, "client", client != NULL ? client : json_null());
    json_object_set_new(from, "user", user != NULL ? user : json_null());
    char *s = wsb_msg_dump_value(from, len);
    json_decref(from);
    if (s == NULL) {
        abort(); /* ENOMEM: the broker's allocation policy */
    }
    return s;
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
    /* A scanned payload is forwarded as it came; only a jansson value (the
     * broker's own messages, RESP text) is serialized here. */
    size_t len = req->data_json.len;
    char *dumped = NULL;
    const char *json = req->data_json.p;
    if (json == NULL || len == 0) {
        dumped = wsb_msg_dump_value(req->data, &len);
        if (dumped == NULL) {
            wsb_oom("publish data");
        }
        json = dumped;
    }
    size_t from_len = 0;
    /* One rule lookup per publish serves the stamp and conflation. */
    const topic_rules_t *rules = w->core->topic_rules;
    const topic_rule_t *trule = rules != NULL ? topic_rules_match(rules, req->topic) : NULL;
    char *from = from_of(w, trule, req, &from_len);
    wsb_str_t stamp = {from, from != NULL ? from_len : 0};
    pubsub_status_t st = PUBSUB_OK;
    int rule = chist_rule(w->core, req->topic);
    /* A request is not a stream message: its reply_to and no-responders
     * probe belong to one delivery, not to a log; nor is a reply (an
     * `_inbox.` topic under a ">" rule): a replay would hand it to
     * others (PROTOCOL.md 3.1b). */
    bool in_stream = trule != NULL && trule->has_stream && req->reply_to.len == 0 &&
                     !inbox_is(req->topic.p, req->topic.len);
    /* Clustered streams hook: the broker's own $sys messages have nobody to
     * answer once Redis assigned the seq; they stay out of the stream. */
    const topic_rule_t *cstream =
        in_stream && req->done_cb != NULL && chist_stream_clustered(w->core, trule) ? trule : NULL;
    if (cstream != NULL) {
        st = publish_clustered(w, req, stamp, (wsb_str_t){json, len}, -1, cstream, out);
    } else if (rule >= 0 && (req->done_cb == NULL || req->reply_to.len > 0)) {
        /* The broker's own $sys messages (sys_events.h) have nobody to
         * answer once Redis assigned the seq: not under clustered history. */
        st = PUBSUB_UNAVAILABLE;
    } else if (rule >= 0) {
        st = publish_clustered(w, req, stamp, (wsb_str_t){json, len}, rule, NULL, out);
    } else {
        count_published(w, req->ingress);
        bool conflate = trule != NULL && trule->conflate;
        stream_t *sm = in_stream && !core_federated(w->core) ? c_stream_of(w->core, trule) : NULL;
        out->seq = sm != NULL ? publish_stream(w, req, sm, stamp, (wsb_str_t){json, len}, conflate)
                              : publish_local(w, req, stamp, (wsb_str_t){json, len}, conflate);
        out->pause = core_inbox_pressure(w);
    }
    free(from);
    free(dumped);
    return st;
}

/* ---- subscribe ------------------------------------------------------------------------------ */

/* The checks of a subscribe: PUBSUB_OK when it may go ahead. */
static pubsub_status_t check(core_worker_t *w, const pubsub_subscribe_t *req)
{
    core_t *c = w->core;
    if (inbox_is(req->pattern.p, req->pattern.len)) {
        return PUBSUB_FORBIDDEN; /* only the broker subscribes to request inboxes */
    }
    if (c->refuse_patterns && wsb_topic_is_pattern(req->pattern.p, req->pattern.len)) {
        return PUBSUB_NO_PATTERNS;
    }
    if (req->perms != NULL && !perms_may_subscribe(req->perms, req->pattern)) {
        return PUBSUB_FORBIDDEN;
    }
    /* Subscribing twice to one pattern is idempotent. */
    if (!req->already && req->nsubs >= c->max_subscriptions) {
        return PUBSUB_LIMIT;
    }
    return PUBSUB_OK;
}

/* The checks of a subscribe, then the trie insert (unless `already`). */
static pubsub_status_t add(core_worker_t *w, const pubsub_subscribe_t *req,
                           pubsub_subscribed_t *out)
{
    core_t *c = w->core;
    pubsub_status_t st = check(w, req);
    if (st != PUBSUB_OK || req->already) {
        return st;
    }
    int first = 0;
    /* Before the insert, and (on a switch-over) under the lock the
     * publishers of the topic hold: a publish after this sees it. */
    interest_change(&w->interest, req->pattern.p, req->pattern.len, +1);
    out->handle = trie_insert(w->trie, req->pattern.p, req->pattern.len, &req->sub->tc, &first);
    if (first && core_federated(c)) {
        c->fed_ops->interest_cb(c->fed, req->pattern.p, req->pattern.len, +1);
    }
    core_update_gauges(w);
    return PUBSUB_OK;
}

/* ---- presence and join/leave (presence.h) ---------------------------------------------------- */

/* The rule that makes the subscriber a member of `topic`, or NULL: an exact
 * topic whose rule has presence or join_leave, and a subscriber that has a
 * client id. */
static const topic_rule_t *member_rule(const core_t *c, const subscriber_t *sub, wsb_str_t topic)
{
    if (c->presence == NULL || sub->client_no == 0 || wsb_topic_is_pattern(topic.p, topic.len)) {
        return NULL;
    }
    const topic_rule_t *r = topic_rules_match(c->topic_rules, topic);
    return r != NULL && (r->presence || r->join_leave) ? r : NULL;
}

/* A local member came or went: its own node's subscribers are told (with
 * join_leave), the other nodes through federation's presence hook. */
static void member_changed(core_worker_t *w, const topic_rule_t *rule, const char *type,
                           wsb_str_t topic, const char *client, const char *user)
{
    core_t *c = w->core;
    if (rule->join_leave && router_push_member_event(c, type, topic, client, user)) {
        METRIC_ADD(w->metrics->presence_events, 1);
    }
    if (core_federated(c) && c->fed_ops->presence_cb != NULL) {
        c->fed_ops->presence_cb(c->fed, type, topic, client, user);
    }
}

/*
 * The subscriber becomes a member of req->pattern: checks the subscribe as
 * add() will, takes a place in the presence table (PUBSUB_PRESENCE_LIMIT
 * when there is none) and, with join_leave, hands the join to every
 * worker's fan-out. Our own worker delivers it at once, before the
 * subscription is inserted: the joiner gets no join for itself.
 */
static pubsub_status_t join(core_worker_t *w, const pubsub_subscribe_t *req,
                            const topic_rule_t *rule)
{
    pubsub_status_t st = check(w, req);
    if (st != PUBSUB_OK) {
        return st;
    }
    const subscriber_t *sub = req->sub;
    char client[CORE_CLIENT_ID_MAX + 1];
    core_client_id(w, sub->client_no, client);
    if (presence_add(w->core->presence, req->pattern, client, sub->user) != PRESENCE_OK) {
        return PUBSUB_PRESENCE_LIMIT;
    }
    member_changed(w, rule, "join", req->pattern, client, sub->user);
    if (rule->join_leave) {
        router_drain_pushed(w);
    }
    return PUBSUB_OK;
}

/* The subscriber of `sub` (removed from the trie already) leaves `topic`. */
static void leave(core_worker_t *w, const subscriber_t *sub, wsb_str_t topic)
{
    const topic_rule_t *rule = member_rule(w->core, sub, topic);
    if (rule == NULL) {
        return;
    }
    char client[CORE_CLIENT_ID_MAX + 1];
    presence_member_t m;
    if (!presence_remove(w->core->presence, topic, core_client_id(w, sub->client_no, client), &m)) {
        return;
    }
    /* Our own subscribers get it in the next loop turn: this may be a close
     * path, where no fan-out may run. */
    member_changed(w, rule, "leave", topic, m.client, m.has_user ? m.user : NULL);
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

/*
 * Last value on wildcards (pubsub.h): the switch-over with every shard
 * locked. req->history > 0 on a pattern, local history only.
 */
static pubsub_status_t add_pattern_with_history(core_worker_t *w, const pubsub_subscribe_t *req,
                                                pubsub_subscribed_t *out)
{
    core_t *c = w->core;
    pubsub_status_t st = check(w, req);
    if (st != PUBSUB_OK) {
        return st;
    }
    seqtab_lock_all(c->seqtab);
    router_drain_pushed(w);
    size_t ntopics = seqtab_match_last(c->seqtab, req->pattern, req->history,
                                       c->max_history_topics_per_subscribe, core_now(w), &out->msgs,
                                       &out->nmsgs);
    if (ntopics > c->max_history_topics_per_subscribe) {
        seqtab_unlock_all(c->seqtab);
        return PUBSUB_HISTORY_LIMIT;
    }
    st = add(w, req, out);
    seqtab_unlock_all(c->seqtab);
    if (st != PUBSUB_OK) {
        for (size_t i = 0; i < out->nmsgs; i++) {
            xmsg_unref(out->msgs[i]);
        }
        free(out->msgs);
        out->msgs = NULL;
        out->nmsgs = 0;
    }
    return st;
}

static void count_recovery(core_worker_t *w, int recovered)
{
    if (recovered == 1) {
        METRIC_ADD(w->metrics->history_recovered, 1);
    } else if (recovered == 0) {
        METRIC_ADD(w->metrics->history_not_recovered, 1);
    }
}

/*
 * A subscription inside a stream (pubsub.h): the switch-over of
 * add_with_history under the stream's lock. The replay (`since`, `history`)
 * is the stream log's messages matching req->pattern.
 */
static pubsub_status_t add_in_stream(core_worker_t *w, const pubsub_subscribe_t *req, stream_t *sm,
                                     pubsub_subscribed_t *out)
{
    stream_lock(sm);
    router_drain_pushed(w);
    pubsub_status_t st = add(w, req, out);
    if (st != PUBSUB_OK) {
        stream_unlock(sm);
        return st;
    }
    if (req->has_since) {
        stream_recovery_t r;
        stream_recover(sm, req->since_epoch, req->since_seq, req->pattern, core_now(w), &r,
                       &out->msgs, &out->nmsgs);
        out->recovered = r.recovered ? 1 : 0;
        out->gap = r.gap;
        out->gap_seq = r.gap_seq;
        out->gap_to = r.gap_to;
    } else if (req->history > 0) {
        stream_last(sm, req->pattern, req->history, core_now(w), &out->msgs, &out->nmsgs);
    }
    out->has_seq = true;
    out->seq = stream_seq(sm);
    (void)snprintf(out->epoch, sizeof out->epoch, "%s", stream_epoch(sm));
    stream_unlock(sm);
    out->stream = stream_name(sm, &out->stream_len);
    count_recovery(w, out->recovered);
    return PUBSUB_OK;
}

pubsub_status_t pubsub_subscribe(core_worker_t *w, const pubsub_subscribe_t *req,
                                 pubsub_subscribed_t *out)
{
    memset(out, 0, sizeof(*out));
    out->chist_rule = -1;
    out->recovered = -1;
    core_t *c = w->core;
    bool exact = !wsb_topic_is_pattern(req->pattern.p, req->pattern.len);
    const topic_rule_t *rule = req->already ? NULL : member_rule(c, req->sub, req->pattern);
    if (rule != NULL) {
        pubsub_status_t st = join(w, req, rule);
        if (st != PUBSUB_OK) {
            return st;
        }
    }
    if (req->position) {
        stream_t *sm = topic_rules_stream_within(c->topic_rules, c->streams, req->pattern);
        if (sm != NULL && core_federated(c)) {
            /* Clustered streams hook: position and replay come from Redis. */
            pubsub_status_t st = add(w, req, out);
            if (st == PUBSUB_OK) {
                out->cstream = rule_of_stream(c, sm);
                out->stream = stream_name(sm, &out->stream_len);
            }
            return st;
        }
        if (sm != NULL) {
            return add_in_stream(w, req, sm, out);
        }
        if (!exact && req->has_since) {
            return PUBSUB_SINCE_OUTSIDE_STREAM;
        }
    }
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
    if (req->position && !exact && req->history > 0 && c->history_rules != NULL &&
        c->history_rules->n > 0) {
        if (core_federated(c)) {
            /* Clustered history lives in Redis, not in this node's table:
             * every matching topic Redis knows is read there (chist.h). */
            pubsub_status_t st = add(w, req, out);
            if (st == PUBSUB_OK) {
                out->chist_rule = 0;
            }
            return st;
        }
        return add_pattern_with_history(w, req, out);
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
    const char *p = trie_sub_pattern(sub);
    size_t len = strlen(p);
    interest_change(&w->interest, p, len, -1);
    if (!core_federated(c) && c->presence == NULL) {
        trie_remove(w->trie, sub);
        return;
    }
    /* The pattern is owned by the entry trie_remove frees: copy it first. */
    char pattern[WSB_TOPIC_MAX_LEN + 1];
    memcpy(pattern, p, len + 1);
    const subscriber_t *who = subscriber_of(trie_sub_client(sub));
    if (trie_remove(w->trie, sub) == 1 && core_federated(c)) {
        c->fed_ops->interest_cb(c->fed, pattern, len, -1);
    }
    /* After the removal: the leaver gets no leave for itself. */
    leave(w, who, (wsb_str_t){pattern, len});
}

const char *pubsub_stream_of(core_worker_t *w, wsb_str_t topic, size_t *len)
{
    const core_t *c = w->core;
    stream_t *sm = topic_rules_stream_of(c->topic_rules, c->streams, topic);
    return sm != NULL ? stream_name(sm, len) : NULL;
}

const char *pubsub_stream_within(core_worker_t *w, wsb_str_t pattern)
{
    const core_t *c = w->core;
    stream_t *sm = topic_rules_stream_within(c->topic_rules, c->streams, pattern);
    return sm != NULL ? stream_name(sm, NULL) : NULL;
}

pubsub_status_t pubsub_presence_check(core_worker_t *w, wsb_str_t topic, const perms_t *perms,
                                      const apikey_t *key)
{
    const core_t *c = w->core;
    const topic_rule_t *rule =
        c->presence != NULL ? topic_rules_match(c->topic_rules, topic) : NULL;
    if (rule == NULL || !rule->presence) {
        return PUBSUB_NO_PRESENCE;
    }
    if (perms != NULL && !perms_may_subscribe(perms, topic)) {
        return PUBSUB_FORBIDDEN;
    }
    if (key != NULL && !apikey_may_publish(key, topic.p, topic.len)) {
        return PUBSUB_FORBIDDEN;
    }
    return PUBSUB_OK;
}
