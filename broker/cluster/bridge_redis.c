/* bridge_redis.c - federation through Redis pub/sub (see bridge_redis.h). */
#include "cluster/bridge_redis.h"

#include "cluster/bridge_internal.h"
#include "cluster/envelope.h"
#include "cluster/presence_bus.h"
#include "cluster/redis_cluster.h"
#include "cluster/redis_sentinel.h"
#include "core/inbox.h"
#include "core/router.h"
#include "shared/log.h"
#include "wsb/topic.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- names ------------------------------------------------------------------------------ */

size_t bridge_redis_name(const char *prefix, const char *pattern, size_t len, char *out,
                         bool *is_glob)
{
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    *is_glob = wsb_topic_is_pattern(pattern, len);
    size_t tok_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && pattern[i] != '.') {
            continue;
        }
        size_t tl = i - tok_start;
        const char *tok = pattern + tok_start;
        if (*is_glob && tl == 1 && (tok[0] == '*' || tok[0] == '>')) {
            out[n++] = '*'; /* looser than '*' (one token) and '>' (the rest): filtered locally */
        } else {
            for (size_t k = 0; k < tl; k++) {
                char c = tok[k];
                if (*is_glob && (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')) {
                    out[n++] = '\\';
                }
                out[n++] = c;
            }
        }
        if (i < len) {
            out[n++] = '.';
        }
        tok_start = i + 1;
    }
    out[n] = '\0';
    return n;
}

/* The Redis name of a topic or pattern on this bridge: bridge_redis_name()
 * with one server. On a Redis Cluster a topic's channel carries a hash tag
 * (rc_tag_name): <prefix>{T}, or <prefix>{R}T for a topic of stream rule R,
 * so that it is in the slot of the keys its history or stream script
 * touches (a script's SPUBLISH must be). The node's own buses, " admin" and
 * " presence" (a space: never in a topic), keep their names. Any thread:
 * the rules do not change after start. */
static size_t chan_name(const bridge_t *br, const char *pattern, size_t len, char *out,
                        bool *is_glob)
{
    if (br->cfg.cluster == NULL || memchr(pattern, ' ', len) != NULL ||
        wsb_topic_is_pattern(pattern, len)) {
        return bridge_redis_name(br->cfg.prefix, pattern, len, out, is_glob);
    }
    *is_glob = false;
    const topic_rules_t *rules = br->core->topic_rules;
    const topic_rule_t *r =
        rules != NULL ? topic_rules_match(rules, (wsb_str_t){pattern, len}) : NULL;
    if (r != NULL && r->has_stream) {
        return rc_tag_name(out, br->cfg.prefix, r->pattern, r->pattern_len, pattern, len);
    }
    return rc_tag_name(out, br->cfg.prefix, pattern, len, "", 0);
}

/* chist_redis's name callback (chist_name_fn). */
static size_t chist_chan_name(void *user_data, const char *pattern, size_t len, char *out,
                              bool *is_glob)
{
    return chan_name(user_data, pattern, len, out, is_glob);
}

/* ---- channel table ------------------------------------------------------------------------ */

static uint32_t hash_name(const char *s, size_t len, bool glob)
{
    uint32_t h = glob ? 2166136261u ^ 0x5bu : 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    }
    return h;
}

static chan_t **chan_slot(bridge_t *br, const char *name, size_t len, bool glob)
{
    chan_t **slot = &br->buckets[hash_name(name, len, glob) % CHAN_BUCKETS];
    while (*slot != NULL && !((*slot)->glob == glob && (*slot)->len == len &&
                              memcmp((*slot)->name, name, len) == 0)) {
        slot = &(*slot)->next;
    }
    return slot;
}

static void mark_dirty(bridge_t *br, chan_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = br->dirty;
        br->dirty = c;
    }
}

static void send_sub_command(bridge_t *br, chan_t *c, bool subscribe)
{
    /* Sharded mode: exact topics are shard channels; patterns stay on the
     * classic bus, which Redis has no sharded counterpart of (bridge_redis.h). */
    const char *cmd = c->glob           ? (subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE")
                      : br->cfg.sharded ? (subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE")
                                        : (subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
    const char *argv[2] = {cmd, c->name};
    size_t lens[2] = {strlen(cmd), c->len};
    rconn_t *sub = &br->sub;
    if (br->cl != NULL) {
        /* Redis Cluster: a shard channel lives on its slot's master. */
        if (subscribe) {
            c->shard = bridge_cluster_shard(br, c->slot);
        }
        sub = &c->shard->sub;
    }
    bridge_sub_command(sub->bs, 2, argv, lens);
    c->state = subscribe ? CHAN_SUBSCRIBING : CHAN_UNSUBSCRIBING;
    br->sub_inflight++; /* own receivers uncertain until confirmed (own_receivers) */
    br->sub_epoch++;
}

static void chan_free(bridge_t *br, chan_t *c)
{
    chan_t **slot = chan_slot(br, c->name, c->len, c->glob);
    *slot = c->next;
    free(c);
}

/* Brings one channel's Redis state towards what its count asks for; a
 * command in flight is left to finish (its reply calls this again). Called
 * with the lock held, on the bridge thread. Returns true if `c` was freed. */
static bool reconcile_one(bridge_t *br, chan_t *c)
{
    /* One server: its one subscriber connection does both. */
    bool can_unsub = br->sub.ready;
    bool can_sub = can_unsub;
    bool moved = false;
    if (br->cl != NULL) {
        /* Redis Cluster: subscribe on the slot's master; a channel whose
         * slot moved to another master leaves the old one first. */
        const shard_t *target = bridge_cluster_shard(br, c->slot);
        can_sub = target != NULL && target->sub.ready;
        can_unsub = c->shard != NULL && c->shard->sub.ready;
        moved = c->state == CHAN_SUBSCRIBED && c->shard != target;
    }
    if (c->refs > 0 && c->state == CHAN_NONE && can_sub) {
        send_sub_command(br, c, true);
    } else if ((c->refs <= 0 || moved) && c->state == CHAN_SUBSCRIBED && can_unsub) {
        send_sub_command(br, c, false);
    } else if (c->refs <= 0 && c->state == CHAN_NONE) {
        chan_free(br, c);
        return true;
    }
    return false;
}

static void reconcile_dirty(bridge_t *br)
{
    pthread_mutex_lock(&br->lock);
    while (br->dirty != NULL) {
        chan_t *c = br->dirty;
        br->dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        (void)reconcile_one(br, c);
    }
    pthread_mutex_unlock(&br->lock);
}

/* Every channel: after a sub connection came up (subscribe them all) or
 * went down (nothing on it is subscribed any more). */
void bridge_mark_shard(bridge_t *br, shard_t *s, bool lost)
{
    pthread_mutex_lock(&br->lock);
    if (lost) {
        br->sub_inflight = 0;
        br->sub_epoch++;
    }
    for (size_t i = 0; i < CHAN_BUCKETS; i++) {
        for (chan_t *c = br->buckets[i]; c != NULL; c = c->next) {
            if (lost && (s == NULL || c->shard == s)) {
                c->state = CHAN_NONE;
                c->shard = NULL;
            }
            mark_dirty(br, c);
        }
    }
    pthread_mutex_unlock(&br->lock);
    reconcile_dirty(br);
}

/* `counted`: a client's interest, in wsbroker_redis_subscriptions; the
 * node's own channels (its inbox, the admin bus) are not. */
static void chan_interest(bridge_t *br, const char *pattern, size_t len, int delta, bool counted)
{
    if (atomic_load_explicit(&br->stop_requested, memory_order_acquire)) {
        return;
    }
    char name[CHIST_NAME_MAX];
    bool glob = false;
    size_t n = chan_name(br, pattern, len, name, &glob);
    pthread_mutex_lock(&br->lock);
    chan_t **slot = chan_slot(br, name, n, glob);
    chan_t *c = *slot;
    if (c == NULL) {
        c = xcalloc(1, sizeof(*c) + n + 1);
        memcpy(c->name, name, n + 1);
        c->len = n;
        c->glob = glob;
        c->slot = rc_keyslot(name, n);
        *slot = c;
    }
    long before = c->refs;
    c->refs += delta;
    if (counted && before <= 0 && c->refs > 0) {
        br->nchans_active++;
    } else if (counted && before > 0 && c->refs <= 0) {
        br->nchans_active--;
    }
    mark_dirty(br, c);
    pthread_mutex_unlock(&br->lock);
    uv_async_send(&br->wake);
}

void bridge_interest(bridge_t *br, const char *pattern, size_t len, int delta)
{
    chan_interest(br, pattern, len, delta, true);
}

/* ---- messages from Redis ------------------------------------------------------------------ */

static bool same_as_last(bridge_t *br, const char *p, size_t len, uint32_t via)
{
    if (br->last != NULL && br->last_len == len && memcmp(br->last, p, len) == 0) {
        bool seen = false;
        for (unsigned i = 0; i < br->nlast_via && !seen; i++) {
            seen = br->last_via[i] == via;
        }
        if (!seen) {
            if (br->nlast_via < LAST_VIA_MAX) {
                br->last_via[br->nlast_via++] = via;
            }
            return true;
        }
    }
    br->last_via[0] = via;
    br->nlast_via = 1;
    if (br->last == NULL || len > br->last_cap) {
        br->last_cap = len > 0 ? len : 1;
        br->last = xrealloc(br->last, br->last_cap);
    }
    if (len > 0) {
        memcpy(br->last, p, len);
    }
    br->last_len = len;
    return false;
}

/* False for a reply to an inbox of another node (core/inbox.h): only the
 * node whose tag the inbox carries has its requester. */
static bool inbox_for_us(const bridge_t *br, wsb_str_t topic)
{
    if (!inbox_is(topic.p, topic.len)) {
        return true;
    }
    size_t n = inbox_channel_len(topic.p, topic.len);
    return n == INBOX_PREFIX_LEN + INBOX_TAG_LEN &&
           memcmp(topic.p + INBOX_PREFIX_LEN, br->inbox_tag, INBOX_TAG_LEN) == 0;
}

static void deliver_envelope(bridge_t *br, const redisReply *via, bool glob, const char *p,
                             size_t len)
{
    if (len > br->max_envelope) {
        bridge_count(&br->bad_envelopes);
        return;
    }
    if (same_as_last(br, p, len, hash_name(via->str, via->len, glob))) {
        return; /* the same PUBLISH through another of our subscriptions */
    }
    envelope_t env;
    if (envelope_decode(p, len, &env) != 0) {
        bridge_count(&br->bad_envelopes);
        log_debug("redis: bad envelope ignored", "len=%zu", len);
        return;
    }
    /* ---- clustered history hook: an envelope with an epoch was sequenced
     * by Redis and is delivered on every node, its origin included ---- */
    bool clustered = env.epoch.len > 0;
    if (!clustered && env.node.len == strlen(br->cfg.node_id) &&
        memcmp(env.node.p, br->cfg.node_id, env.node.len) == 0) {
        bridge_count(&br->own_ignored); /* ours: already delivered locally */
        envelope_clear(&env);
        return;
    }
    if (!inbox_for_us(br, env.topic)) {
        envelope_clear(&env); /* another node's reply, seen through a glob such as "wsb:*" */
        return;
    }
    wsb_str_t from = {env.from_json, env.from_len};
    wsb_str_t data = {env.data_json, env.data_len};
    unsigned full =
        env.reply_to.len > 0
            ? core_inject_request(br->core, env.topic, env.seq, env.epoch, from, env.reply_to, data)
            : core_inject_remote(br->core, env.topic, env.seq, env.epoch, from, data);
    bridge_count(&br->received);
    if (full > 0) {
        atomic_fetch_add_explicit(&br->dropped, full, memory_order_relaxed);
    }
    envelope_clear(&env);
}

static bool elem_is(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STRING && strlen(s) == r->len && memcmp(r->str, s, r->len) == 0;
}

/* A subscribe/unsubscribe confirmation: the channel's state moves on, and
 * whatever its count asked for meanwhile is sent now. */
static void confirm(bridge_t *br, const rconn_t *rc, const redisReply *name, bool glob,
                    bool subscribed)
{
    pthread_mutex_lock(&br->lock);
    chan_t *c = *chan_slot(br, name->str, name->len, glob);
    /* Redis Cluster: a master drops a shard channel on its own when the
     * channel's slot moved to another master (resharding). */
    bool slot_moved = br->cl != NULL && c != NULL && !subscribed && c->state == CHAN_SUBSCRIBED &&
                      c->shard == rc->shard;
    /* Redis Cluster: only the master the channel is on speaks for it. */
    if (c != NULL && (br->cl == NULL || c->shard == rc->shard)) {
        c->state = subscribed ? CHAN_SUBSCRIBED : CHAN_NONE;
        if (!subscribed) {
            c->shard = NULL;
        }
        mark_dirty(br, c);
    }
    if (br->sub_inflight > 0) {
        br->sub_inflight--;
    }
    br->sub_epoch++; /* an unsolicited one changes what Redis counts too */
    pthread_mutex_unlock(&br->lock);
    if (slot_moved) {
        bridge_cluster_refresh_now(br); /* so that it is subscribed again on the new master */
    }
    if (br->hr != NULL && subscribed) {
        /* clustered history hook (a glob: a pattern's last-value read) */
        chist_redis_subscribed(br->hr, name->str, name->len);
    }
    if (br->pbus != NULL && subscribed && pbus_is_channel(br->pbus, name->str, name->len)) {
        pbus_subscribed(br->pbus); /* presence hook: resync after every (re)subscribe */
    }
    reconcile_dirty(br);
}

/* Every reply on the subscriber connection, in order: first the handshake's
 * (AUTH, PING), then pushes and (un)subscribe confirmations, which name
 * themselves. Classic and sharded (s-prefixed) kinds are handled alike: in
 * sharded mode exact topics are only ever shard channels. */
void bridge_on_sub_reply(bridge_sub_t *bs, const redisReply *reply, void *user_data)
{
    (void)bs;
    rconn_t *rc = user_data;
    bridge_t *br = rc->br;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* AUTH refused, or a (S|P)SUBSCRIBE refused (SSUBSCRIBE on Redis < 7,
         * a MOVED from a cluster): no use going on with this connection;
         * retried with backoff while /healthz says degraded. */
        log_error(rc->handshake > 0 ? "redis: AUTH refused" : "redis: subscription refused",
                  "conn=sub err=%s", log_quote(reply->str));
        if (br->cl != NULL) {
            bridge_cluster_refresh_soon(br); /* a MOVED: the slot has another master */
        }
        bridge_sub_lost(rc, NULL);
        return;
    }
    if (rc->handshake > 0) {
        if (--rc->handshake == 0 && !br->stopping) {
            bridge_handshake_done(rc, reply);
        }
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        return;
    }
    redisReply **e = reply->element;
    if ((elem_is(e[0], "message") || elem_is(e[0], "smessage")) &&
        e[2]->type == REDIS_REPLY_STRING) {
        if (br->pbus != NULL && pbus_is_channel(br->pbus, e[1]->str, e[1]->len)) {
            pbus_receive(br->pbus, e[2]->str, e[2]->len); /* presence hook */
            return;
        }
        if (e[1]->len == br->admin_chan_len &&
            memcmp(e[1]->str, br->admin_chan, br->admin_chan_len) == 0) {
            if (br->admin_cb != NULL) {
                br->admin_cb(br->admin_user_data, e[2]->str, e[2]->len); /* admin hook */
            }
            return;
        }
        deliver_envelope(br, e[1], false, e[2]->str, e[2]->len);
    } else if (elem_is(e[0], "pmessage") && reply->elements >= 4 &&
               e[3]->type == REDIS_REPLY_STRING) {
        if (e[2]->type == REDIS_REPLY_STRING && memchr(e[2]->str, ' ', e[2]->len) != NULL) {
            return; /* the presence bus (no topic has a space) seen through a glob */
        }
        deliver_envelope(br, e[1], true, e[3]->str, e[3]->len);
    } else if (elem_is(e[0], "subscribe") || elem_is(e[0], "ssubscribe")) {
        confirm(br, rc, e[1], false, true);
    } else if (elem_is(e[0], "psubscribe")) {
        confirm(br, rc, e[1], true, true);
    } else if (elem_is(e[0], "unsubscribe") || elem_is(e[0], "sunsubscribe")) {
        /* Also unsolicited: a Redis Cluster drops shard subscriptions whose
         * slot moved; the channel is then subscribed again (and refused). */
        confirm(br, rc, e[1], false, false);
    } else if (elem_is(e[0], "punsubscribe")) {
        confirm(br, rc, e[1], true, false);
    }
}

/* ---- publishes to Redis -------------------------------------------------------------------- */

/* An item that will not reach Redis: counted, and a request's count is
 * told "cannot tell" (it ends with its timeout, never a wrong
 * no_responders). `c` NULL: the broker is going away. */
static void drop_item(bridge_t *br, core_t *c, pub_item_t *it)
{
    bridge_count(&br->dropped);
    if (it->count != NULL) {
        inbox_probe_remote_done(c, it->count, true);
    }
    free(it);
}

/* Hands a filled item to the bridge thread (counted in `pending`), or drops
 * and counts it when the queue is full. */
static void enqueue(bridge_t *br, pub_item_t *it)
{
    atomic_fetch_add_explicit(&br->pending, 1, memory_order_relaxed);
    if (!xqueue_push(&br->outq, it)) {
        atomic_fetch_sub_explicit(&br->pending, 1, memory_order_relaxed);
        drop_item(br, br->core, it);
        return;
    }
    uv_async_send(&br->wake);
}

/* The envelope of a local publish or request, on its Redis channel: the
 * topic's, or for a reply its requester's node's inbox channel. */
static void queue_message(bridge_t *br, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                          wsb_str_t reply_to, wsb_str_t data_json, inbox_count_t *count)
{
    /* Reserved topics travel too: only the broker publishes them ($sys
     * stats and connection events, sys_events.h), and every node's
     * subscribers see every node's. */
    pub_item_t head = {.kind = count != NULL ? PUB_REQUEST : PUB_PLAIN, .count = count};
    size_t chan_len = topic.len;
    if (inbox_is(topic.p, topic.len)) {
        head.kind = PUB_INBOX;
        chan_len = inbox_channel_len(topic.p, topic.len);
    }
    size_t env_cap = envelope_encoded_max(strlen(br->cfg.node_id), topic.len, from_json.len,
                                          reply_to.len, data_json.len);
    if (!atomic_load_explicit(&br->pub_up, memory_order_acquire) || chan_len == 0 ||
        env_cap > br->max_envelope ||
        atomic_load_explicit(&br->pending, memory_order_relaxed) >= br->cfg.queue_size) {
        bridge_count(&br->dropped); /* Redis down: at-most-once across nodes */
        if (count != NULL) {
            inbox_probe_remote_done(br->core, count, true);
        }
        return;
    }
    pub_item_t *it;
    if (br->cfg.cluster != NULL) {
        char name[CHIST_NAME_MAX];
        bool glob = false;
        size_t n = chan_name(br, topic.p, chan_len, name, &glob);
        it = xmalloc(sizeof(*it) + n + env_cap);
        *it = head;
        memcpy(it->bytes, name, n);
        it->chan_len = (uint32_t)n;
    } else {
        it = xmalloc(sizeof(*it) + br->prefix_len + chan_len + env_cap);
        *it = head;
        memcpy(it->bytes, br->cfg.prefix, br->prefix_len);
        memcpy(it->bytes + br->prefix_len, topic.p, chan_len);
        it->chan_len = (uint32_t)(br->prefix_len + chan_len);
    }
    size_t len = envelope_encode(it->bytes + it->chan_len, br->cfg.node_id, topic, seq, from_json,
                                 reply_to, data_json);
    it->env_len = (uint32_t)len;
    enqueue(br, it);
}

void bridge_publish(bridge_t *br, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                    wsb_str_t data_json)
{
    queue_message(br, topic, seq, from_json, WSB_STR_NULL, data_json, NULL);
}

void bridge_request(bridge_t *br, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                    wsb_str_t reply_to, wsb_str_t data_json, inbox_count_t *count)
{
    queue_message(br, topic, seq, from_json, reply_to, data_json, count);
}

void bridge_admin_hook(bridge_t *br, void (*cb)(void *user_data, const char *env, size_t len),
                       void *user_data)
{
    br->admin_cb = cb;
    br->admin_user_data = user_data;
}

size_t bridge_admin_max(const bridge_t *br)
{
    return br->max_envelope;
}

bool bridge_admin_send(bridge_t *br, const char *env, size_t len)
{
    if (!atomic_load_explicit(&br->pub_up, memory_order_acquire) || len > br->max_envelope) {
        return false;
    }
    bridge_send_raw(br, br->admin_chan, br->admin_chan_len, env, len);
    return true;
}

void bridge_send_raw(bridge_t *br, const char *chan, size_t chan_len, const char *env,
                     size_t env_len)
{
    if (!atomic_load_explicit(&br->pub_up, memory_order_acquire) || env_len > br->max_envelope ||
        atomic_load_explicit(&br->pending, memory_order_relaxed) >= br->cfg.queue_size) {
        bridge_count(&br->dropped);
        return;
    }
    pub_item_t *it = xcalloc(1, sizeof(*it) + chan_len + env_len);
    memcpy(it->bytes, chan, chan_len);
    memcpy(it->bytes + chan_len, env, env_len);
    it->chan_len = (uint32_t)chan_len;
    it->env_len = (uint32_t)env_len;
    enqueue(br, it);
}

void bridge_presence(bridge_t *br, const char *type, wsb_str_t topic, const char *client,
                     const char *user)
{
    if (br->pbus != NULL) {
        pbus_local(br->pbus, type, topic, client, user);
    }
}

/* The reply of a (S)PUBLISH or of the EXEC of SPUBLISH + PUBLISH: the error
 * in it, or NULL. */
static const redisReply *publish_error(const redisReply *reply)
{
    if (reply == NULL || reply->type == REDIS_REPLY_NIL || reply->type == REDIS_REPLY_ERROR) {
        return reply;
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            if (reply->element[i]->type == REDIS_REPLY_ERROR) {
                return reply->element[i];
            }
        }
    }
    return NULL;
}

/* Counts the outcome of one publish; false when it failed. */
static bool published(bridge_t *br, const redisReply *reply)
{
    atomic_fetch_sub_explicit(&br->pending, 1, memory_order_relaxed);
    const redisReply *err = publish_error(reply);
    if (reply == NULL || reply->type == REDIS_REPLY_NIL || err != NULL) {
        bridge_count(&br->dropped); /* lost with the connection, or refused */
        if (err != NULL && err->type == REDIS_REPLY_ERROR) {
            log_warn("redis: PUBLISH failed", "err=%s", log_quote(err->str));
        }
        return false;
    }
    bridge_count(&br->published);
    return true;
}

static void on_published(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    (void)published(privdata, r);
}

/* ---- request receivers: does another node subscribe? ----------------------------------------- */

/* Redis's glob match for the globs this node makes (bridge_redis_name):
 * '*' is any run of bytes, '\x' the byte x, anything else itself. */
bool bridge_glob_match(const char *p, size_t pl, const char *s, size_t sl)
{
    size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
    while (si < sl) {
        if (pi < pl && p[pi] == '*') {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < pl) {
            size_t adv = p[pi] == '\\' && pi + 1 < pl ? 2 : 1;
            if (p[pi + adv - 1] == s[si]) {
                pi += adv;
                si++;
                continue;
            }
        }
        if (star_p == SIZE_MAX) {
            return false;
        }
        pi = star_p; /* the last '*' takes one more byte */
        si = ++star_s;
    }
    while (pi < pl && p[pi] == '*') {
        pi++;
    }
    return pi == pl;
}

/* What a request's publish waits for: Redis's receiver count, less this
 * node's own subscriptions that Redis counted. */
typedef struct {
    bridge_t *br;
    inbox_count_t *count;
    long own;       /* own subscriptions matching the channel; -1: cannot tell */
    uint64_t epoch; /* br->sub_epoch when sent */
} req_wait_t;

/* How many of this node's own subscriptions Redis counts for a publish on
 * `chan` (the exact channel and every glob that matches it), or -1 when it
 * cannot be told: a (P)(S)SUBSCRIBE or an unsubscribe is in flight. With
 * none in flight every state here is the one Redis has, and stays so until
 * the next command, which changes sub_epoch (on_request_published). */
static long own_receivers(bridge_t *br, const char *chan, size_t len)
{
    long own = 0;
    pthread_mutex_lock(&br->lock);
    if (br->sub_inflight > 0) {
        own = -1;
    }
    for (size_t i = 0; i < CHAN_BUCKETS && own >= 0; i++) {
        for (const chan_t *c = br->buckets[i]; c != NULL; c = c->next) {
            if (c->state != CHAN_SUBSCRIBED) {
                continue;
            }
            bool hit = c->glob ? bridge_glob_match(c->name, c->len, chan, len)
                               : c->len == len && memcmp(c->name, chan, len) == 0;
            own += hit ? 1 : 0;
        }
    }
    pthread_mutex_unlock(&br->lock);
    return own;
}

/* Receivers Redis counted: a PUBLISH's integer, or the sum over an EXEC. */
static long long receivers(const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_INTEGER) {
        return reply->integer;
    }
    long long n = 0;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_INTEGER) {
            n += reply->element[i]->integer;
        }
    }
    return n;
}

static void on_request_published(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    req_wait_t *rw = privdata;
    bridge_t *br = rw->br;
    /* Anything unsure counts as "another node may subscribe": the request
     * then ends with its reply or timeout, never a wrong no_responders. */
    bool maybe = true;
    const redisReply *reply = r;
    if (published(br, reply) && reply != NULL && rw->own >= 0 && rw->epoch == br->sub_epoch &&
        !br->stopping) {
        maybe = receivers(reply) - rw->own > 0;
    }
    inbox_probe_remote_done(br->stopping ? NULL : br->core, rw->count, maybe);
    free(rw);
}

/* Sends one envelope. Sharded with patterns: SPUBLISH for the exact
 * subscribers and PUBLISH for the wildcard ones, in one MULTI/EXEC so that a
 * node that gets both copies (it has an exact and a matching pattern
 * subscription) gets them back to back and keeps one (same_as_last). A
 * reply goes to one node's inbox channel, which it subscribes to as an
 * exact channel: no pattern copy. */
static void send_publish(bridge_t *br, pub_item_t *it)
{
    redisAsyncContext *ac = br->pub.ac;
    const char *chan = it->bytes;
    size_t chan_len = it->chan_len;
    const char *env = it->bytes + it->chan_len;
    size_t env_len = it->env_len;
    redisCallbackFn *cb = on_published;
    void *priv = br;
    if (it->kind == PUB_REQUEST) {
        req_wait_t *rw = xmalloc(sizeof(*rw));
        rw->br = br;
        rw->count = it->count;
        rw->own = own_receivers(br, chan, chan_len);
        rw->epoch = br->sub_epoch;
        it->count = NULL; /* the reply's now */
        cb = on_request_published;
        priv = rw;
    }
    if (br->cl != NULL) {
        bridge_cluster_publish(br, it, cb, priv); /* to the slot's master; frees it */
        return;
    }
    int rc;
    if (!br->cfg.sharded) {
        rc = redisAsyncCommand(ac, cb, priv, "PUBLISH %b %b", chan, chan_len, env, env_len);
    } else if (!br->cfg.sharded_patterns || it->kind == PUB_INBOX) {
        rc = redisAsyncCommand(ac, cb, priv, "SPUBLISH %b %b", chan, chan_len, env, env_len);
    } else {
        redisAsyncCommand(ac, NULL, NULL, "MULTI");
        redisAsyncCommand(ac, NULL, NULL, "SPUBLISH %b %b", chan, chan_len, env, env_len);
        redisAsyncCommand(ac, NULL, NULL, "PUBLISH %b %b", chan, chan_len, env, env_len);
        rc = redisAsyncCommand(ac, cb, priv, "EXEC");
    }
    if (rc != REDIS_OK) {
        /* The context is going away and takes no command: its callback
         * will not come, so the outcome is settled here (a request's count
         * says "maybe", never a wrong no_responders). */
        cb(ac, NULL, priv);
    }
    free(it);
}

static void drain_publishes(bridge_t *br)
{
    pub_item_t *it;
    while ((it = xqueue_pop(&br->outq)) != NULL) {
        if ((br->pub.ready || br->cl != NULL) && !br->stopping) {
            send_publish(br, it); /* frees it */
        } else {
            atomic_fetch_sub_explicit(&br->pending, 1, memory_order_relaxed);
            drop_item(br, br->stopping ? NULL : br->core, it);
        }
    }
}

static void on_wake(uv_async_t *a)
{
    bridge_t *br = a->data;
    drain_publishes(br);
    reconcile_dirty(br);
    if (br->hr != NULL) {
        chist_redis_drain(br->hr); /* clustered history hook: after SUBSCRIBEs went out */
    }
}

/* ---- thread and lifetime -------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_stop(uv_async_t *a)
{
    bridge_t *br = a->data;
    br->stopping = true;
    bridge_rconn_close(&br->pub, on_handle_closed);
    bridge_rconn_close(&br->sub, on_handle_closed);
    if (br->cl != NULL) {
        bridge_cluster_stop(br);
    }
    if (br->pbus != NULL) {
        pbus_stop(br->pbus);
    }
    if (br->sent != NULL) {
        sentinel_stop(br->sent);
    }
    drain_publishes(br); /* drops what was still queued */
    if (br->hr != NULL) {
        chist_redis_stop(br->hr); /* clustered history hook: fails what was queued */
    }
    uv_close((uv_handle_t *)&br->wake, on_handle_closed);
    uv_close((uv_handle_t *)&br->stop_async, on_handle_closed);
}

static int channel_state(void *user_data, const char *name, size_t len);

/* Redis Cluster: chist_redis's routes (chist_redis.h). */
static redisAsyncContext *chist_route(void *user_data, unsigned slot)
{
    bridge_t *br = user_data;
    const shard_t *s = br->stopping ? NULL : bridge_cluster_shard(br, slot);
    return s != NULL && s->pub.ready ? s->pub.ac : NULL;
}

static redisAsyncContext *chist_redirect(void *user_data, redisAsyncContext *from, const char *err,
                                         size_t len, bool *ask)
{
    return bridge_cluster_redirect(user_data, from, err, len, ask);
}

static void *bridge_main(void *arg)
{
    bridge_t *br = arg;
    if (br->pbus != NULL) {
        pbus_start(br->pbus, &br->loop);
    }
    if (br->sent != NULL) {
        sentinel_start(br->sent, &br->loop); /* the connections wait for its master */
    }
    if (br->cl != NULL) {
        bridge_cluster_start(br); /* the topology, then a pair per master */
    } else {
        bridge_rconn_connect(&br->pub);
        bridge_rconn_connect(&br->sub);
    }
    uv_run(&br->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* The presence bus's callbacks (presence_bus.h). */
static void pbus_send_cb(void *user_data, const char *chan, size_t chan_len, const char *env,
                         size_t env_len)
{
    bridge_send_raw(user_data, chan, chan_len, env, env_len);
}

static bool pbus_ready_cb(void *user_data)
{
    const bridge_t *br = user_data;
    return br->pub.ready && !br->stopping;
}

/* A remote member came or went: the core tells this node's subscribers
 * when the topic's rule has join_leave. */
static void pbus_event_cb(void *user_data, const char *type, wsb_str_t topic, const char *client,
                          const char *user)
{
    const bridge_t *br = user_data;
    (void)core_inject_presence(br->core, type, topic, client, user);
}

bridge_t *bridge_new(const bridge_config_t *cfg, core_t *core)
{
    bridge_t *br = xcalloc(1, sizeof(*br));
    br->core = core;
    br->cfg = *cfg;
    br->prefix_len = strlen(cfg->prefix);
    br->max_envelope = cfg->max_data + ENVELOPE_OVERHEAD;
    xqueue_init(&br->outq, cfg->queue_size);
    pthread_mutex_init(&br->lock, NULL);
    br->buckets = xcalloc(CHAN_BUCKETS, sizeof(chan_t *));
    if (uv_loop_init(&br->loop) != 0) {
        abort(); /* start-up, not memory: no epoll or eventfd left for the bridge's thread */
    }
    uv_async_init(&br->loop, &br->wake, on_wake);
    br->wake.data = br;
    uv_async_init(&br->loop, &br->stop_async, on_stop);
    br->stop_async.data = br;
    if (cfg->clustered_history) {
        /* The script publishes the way send_publish does in this mode. */
        const char *cmd = cfg->cluster != NULL || (cfg->sharded && !cfg->sharded_patterns)
                              ? "SPUBLISH"
                          : cfg->sharded ? "SPUBLISH+PUBLISH"
                                         : "PUBLISH";
        br->hr = chist_redis_new(cfg->prefix, cfg->node_id, cmd, cfg->queue_size, &br->wake,
                                 channel_state, chist_chan_name, br);
        if (cfg->cluster != NULL) {
            chist_redis_set_cluster(br->hr, chist_route, chist_redirect);
        }
    }
    /* Replies to this node's requests come on one channel of its own (an
     * exact channel: SUBSCRIBE, or SSUBSCRIBE when sharded), whatever its
     * clients subscribe to (core/inbox.h). */
    inbox_node_tag(cfg->node_id, br->inbox_tag);
    char inbox_chan[INBOX_PREFIX_LEN + INBOX_TAG_LEN + 1];
    memcpy(inbox_chan, INBOX_PREFIX, INBOX_PREFIX_LEN);
    memcpy(inbox_chan + INBOX_PREFIX_LEN, br->inbox_tag, INBOX_TAG_LEN + 1);
    chan_interest(br, inbox_chan, INBOX_PREFIX_LEN + INBOX_TAG_LEN, +1, false);
    /* The admin bus: every node listens (a space keeps it apart from topics). */
    br->admin_chan_len =
        (size_t)snprintf(br->admin_chan, sizeof br->admin_chan, "%s admin", cfg->prefix);
    chan_interest(br, br->admin_chan + br->prefix_len, br->admin_chan_len - br->prefix_len, +1,
                  false);
    if (core->presence != NULL) {
        pbus_config_t pc = {
            .presence = core->presence,
            .rules = core->topic_rules,
            .node_id = cfg->node_id,
            .prefix = cfg->prefix,
            .ttl_ms = cfg->presence_node_ttl_ms,
            .send_cb = pbus_send_cb,
            .ready_cb = pbus_ready_cb,
            .event_cb = pbus_event_cb,
            .user_data = br,
        };
        br->pbus = pbus_new(&pc);
        size_t len = 0;
        const char *chan = pbus_channel(br->pbus, &len);
        /* Without the prefix: bridge_interest puts it in front. */
        bridge_interest(br, chan + br->prefix_len, len - br->prefix_len, +1);
    }
    bridge_rconn_init(br, &br->pub, false, NULL);
    bridge_rconn_init(br, &br->sub, true, NULL);
    if (cfg->cluster != NULL) {
        br->cl = bridge_cluster_new(br);
    }
    bridge_sentinel_init(br);
    return br;
}

int bridge_start(bridge_t *br)
{
    if (pthread_create(&br->thread, NULL, bridge_main, br) != 0) {
        log_error("cannot start the redis bridge thread", NULL);
        return -1;
    }
    br->thread_started = true;
    if (br->sent != NULL) {
        log_info("redis bridge started", "sentinels=%s master_name=%s prefix=%s",
                 log_quote(br->cfg.sentinels), log_quote(br->cfg.master_name),
                 log_quote(br->cfg.prefix));
    } else {
        log_info("redis bridge started", "host=%s port=%u prefix=%s", br->cfg.host, br->cfg.port,
                 log_quote(br->cfg.prefix));
    }
    return 0;
}

void bridge_stop(bridge_t *br)
{
    if (atomic_exchange(&br->stop_requested, 1) != 0) {
        return;
    }
    atomic_store(&br->pub_up, 0);
    uv_async_send(&br->stop_async);
}

void bridge_free(bridge_t *br)
{
    bridge_stop(br);
    if (br->thread_started && !br->joined) {
        pthread_join(br->thread, NULL);
        br->joined = true;
    } else if (!br->thread_started) {
        uv_run(&br->loop, UV_RUN_DEFAULT); /* runs on_stop and the closes */
    }
    (void)uv_loop_close(&br->loop);
    pub_item_t *it;
    while ((it = xqueue_pop(&br->outq)) != NULL) {
        drop_item(br, NULL, it);
    }
    xqueue_destroy(&br->outq);
    for (size_t i = 0; i < CHAN_BUCKETS; i++) {
        chan_t *c = br->buckets[i];
        while (c != NULL) {
            chan_t *next = c->next;
            free(c);
            c = next;
        }
    }
    free(br->buckets);
    pthread_mutex_destroy(&br->lock);
    free(br->last);
    if (br->hr != NULL) {
        chist_redis_free(br->hr);
    }
    pbus_free(br->pbus);
    sentinel_free(br->sent);
    if (br->cl != NULL) {
        bridge_cluster_free(br);
    }
    free(br);
}

/* ---- clustered history (chist_redis.h) ------------------------------------------------ */

static void publish_hook(void *fed, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                         wsb_str_t data_json)
{
    bridge_publish(fed, topic, seq, from_json, data_json);
}

static void interest_hook(void *fed, const char *pattern, size_t len, int delta)
{
    bridge_interest(fed, pattern, len, delta);
}

static int chist_submit_hook(void *fed, chist_op_t *op)
{
    bridge_t *br = fed;
    if (br->hr == NULL || atomic_load_explicit(&br->stop_requested, memory_order_acquire)) {
        return -1;
    }
    return chist_redis_submit(br->hr, op);
}

static void request_hook(void *fed, wsb_str_t topic, uint64_t seq, wsb_str_t from_json,
                         wsb_str_t reply_to, wsb_str_t data_json, inbox_count_t *count)
{
    bridge_request(fed, topic, seq, from_json, reply_to, data_json, count);
}

static void presence_hook(void *fed, const char *type, wsb_str_t topic, const char *client,
                          const char *user)
{
    bridge_presence(fed, type, topic, client, user);
}

static const core_fed_ops_t fed_ops = {
    .publish_cb = publish_hook,
    .interest_cb = interest_hook,
    .chist_submit_cb = chist_submit_hook,
    .presence_cb = presence_hook,
    .request_cb = request_hook,
};

void bridge_plug(bridge_t *br, core_t *core)
{
    core->fed_ops = &fed_ops;
    core->fed = br;
    core->refuse_patterns = bridge_refuses_patterns(br);
}

static int channel_state(void *user_data, const char *name, size_t len)
{
    bridge_t *br = user_data;
    if (br->cl != NULL) {
        /* Redis Cluster: the channel's master's subscriber connection. */
        const shard_t *s = bridge_cluster_shard(br, rc_keyslot(name, len));
        if (s == NULL || !s->sub.ready) {
            return -1;
        }
    } else if (!br->sub.ready) {
        return -1;
    }
    pthread_mutex_lock(&br->lock);
    chan_t *c = *chan_slot(br, name, len, false);
    if (c == NULL) {
        c = *chan_slot(br, name, len, true); /* a pattern read waits for its glob */
    }
    int st = c != NULL && c->state == CHAN_SUBSCRIBED ? 1 : 0;
    pthread_mutex_unlock(&br->lock);
    return st;
}

void bridge_join(bridge_t *br)
{
    if (br->thread_started && !br->joined) {
        pthread_join(br->thread, NULL);
        br->joined = true;
    }
}

bool bridge_refuses_patterns(const bridge_t *br)
{
    /* Redis Cluster: a PSUBSCRIBE would reach one master only. */
    return br != NULL && ((br->cfg.sharded && !br->cfg.sharded_patterns) || br->cl != NULL);
}

bool bridge_healthy(const bridge_t *br)
{
    return atomic_load_explicit(&br->healthy, memory_order_acquire) != 0;
}

static void counter_line(sbuf_t *o, const char *name, const char *help, uint64_t v)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                (unsigned long long)v);
}

/* wsbroker_redis_server_info{mode,addr} 1: which server is in use. */
static void render_server_info(bridge_t *br, sbuf_t *o)
{
    char addr[300], esc[600];
    const char *mode = bridge_server(br, addr, sizeof addr);
    size_t n = 0;
    for (const char *p = addr; *p != '\0' && n + 2 < sizeof esc; p++) {
        char c = *p;
        if (c == '"' || c == '\\') {
            esc[n++] = '\\';
        } else if (c == '\n') {
            c = ' ';
        }
        esc[n++] = c;
    }
    esc[n] = '\0';
    sbuf_printf(o,
                "# HELP wsbroker_redis_server_info The Redis server in use (mode: single, "
                "sentinel).\n# TYPE wsbroker_redis_server_info gauge\n"
                "wsbroker_redis_server_info{mode=\"%s\",addr=\"%s\"} 1\n",
                mode, esc);
}

void bridge_render_metrics(bridge_t *br, sbuf_t *o)
{
    bridge_t *m = br;
    sbuf_printf(o,
                "# HELP wsbroker_redis_up 1 while both Redis connections are up.\n"
                "# TYPE wsbroker_redis_up gauge\nwsbroker_redis_up %d\n",
                bridge_healthy(br) ? 1 : 0);
    render_server_info(br, o);
    pthread_mutex_lock(&m->lock);
    size_t active = m->nchans_active;
    pthread_mutex_unlock(&m->lock);
    sbuf_printf(o,
                "# HELP wsbroker_redis_subscriptions Redis channels and globs this node wants.\n"
                "# TYPE wsbroker_redis_subscriptions gauge\nwsbroker_redis_subscriptions %zu\n",
                active);
    counter_line(o, "wsbroker_redis_reconnects_total", "Reconnect attempts to Redis.",
                 atomic_load(&m->reconnects));
    counter_line(o, "wsbroker_redis_dropped_total",
                 "Cross-node messages lost: Redis down, queue full, too big, or an inbox full.",
                 atomic_load(&m->dropped));
    counter_line(o, "wsbroker_redis_published_total", "Local messages published to Redis.",
                 atomic_load(&m->published));
    counter_line(o, "wsbroker_redis_received_total", "Messages from other nodes delivered here.",
                 atomic_load(&m->received));
    counter_line(o, "wsbroker_redis_own_ignored_total",
                 "Own messages received back from Redis and ignored.",
                 atomic_load(&m->own_ignored));
    counter_line(o, "wsbroker_redis_bad_envelopes_total",
                 "Messages from Redis ignored: not an envelope, or too big.",
                 atomic_load(&m->bad_envelopes));
}
