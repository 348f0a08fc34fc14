/* bridge_redis.c - federation through Redis pub/sub (see bridge_redis.h). */
#include "cluster/bridge_redis.h"

#include "app/broker.h"
#include "app/config.h"
#include "cluster/bridge_sub.h"
#include "cluster/history_redis.h"
#include "core/router.h"
#include "core/xqueue.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BACKOFF_MIN_MS     100
#define CONNECT_TIMEOUT_MS 3000
#define CHAN_BUCKETS       4096
#define LAST_VIA_MAX       64
/* Envelope fields around the data: node id, topic (escaped), seq, keys. */
#define ENVELOPE_OVERHEAD 1024

typedef enum { CHAN_NONE = 0, CHAN_SUBSCRIBING, CHAN_SUBSCRIBED, CHAN_UNSUBSCRIBING } chan_state_t;

/* One Redis channel or glob with the number of (worker, pattern) pairs that
 * want it. Guarded by bridge->lock. */
typedef struct chan_s {
    struct chan_s *next;       /* hash bucket */
    struct chan_s *dirty_next; /* bridge->dirty */
    bool dirty;
    bool glob;
    chan_state_t state;
    long refs;
    size_t len;
    char name[]; /* NUL-terminated */
} chan_t;

/* One of the two Redis connections. Bridge thread only. */
typedef struct {
    bridge_t *br;
    const char *role;      /* "pub" or "sub", for logs */
    redisAsyncContext *ac; /* pub: hiredis async */
    bridge_sub_t *bs;      /* sub: our own reader loop (bridge_sub.h) */
    unsigned handshake;    /* sub: AUTH/PING replies still awaited */
    bool connected;        /* TCP connected */
    bool ready;            /* connected and authenticated */
    bool ever_ready;
    unsigned backoff_ms;
    uv_timer_t timer; /* reconnect wait, or connect timeout while connecting */
} rconn_t;

/* A publish waiting for the bridge thread: channel then envelope. */
typedef struct {
    uint32_t chan_len;
    uint32_t env_len;
    char bytes[];
} pub_item_t;

/* Laid out by purpose, not size: one per process. */
struct bridge_s { // NOLINT(clang-analyzer-optin.performance.Padding)
    broker_t *b;
    const config_t *cfg;
    redis_url_t url;
    size_t prefix_len;
    size_t max_envelope;
    uv_loop_t loop;
    uv_async_t wake;
    uv_async_t stop_async;
    rconn_t pub, sub;
    pthread_t thread;
    bool thread_started;
    bool joined;
    bool stopping; /* bridge thread */
    _Atomic int stop_requested;
    _Atomic int pub_up;  /* workers drop at once while 0 */
    _Atomic int healthy; /* both connections ready */
    xqueue_t outq;
    _Atomic size_t pending; /* queued + sent without reply: bounded by queue_size */

    pthread_mutex_t lock; /* guards the channel table */
    chan_t **buckets;
    chan_t *dirty;
    size_t nchans_active;

    /* The last payload received, to inject a message once however many of
     * our subscriptions matched it (bridge thread only). */
    char *last;
    size_t last_len, last_cap;
    /* The subscriptions it came through: the same payload through one of
     * them again is a new PUBLISH (e.g. seq restarted after eviction). */
    uint32_t last_via[LAST_VIA_MAX];
    unsigned nlast_via;

    _Atomic uint64_t reconnects;
    _Atomic uint64_t dropped;
    _Atomic uint64_t published;
    _Atomic uint64_t received;
    _Atomic uint64_t own_ignored;
    _Atomic uint64_t bad_envelopes;

    /* ---- clustered history (history_redis.h): NULL without history rules ---- */
    hr_t *hr;
};

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

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
    const char *cmd = c->glob                  ? (subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE")
                      : br->cfg->redis_sharded ? (subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE")
                                               : (subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
    const char *argv[2] = {cmd, c->name};
    size_t lens[2] = {strlen(cmd), c->len};
    bridge_sub_command(br->sub.bs, 2, argv, lens);
    c->state = subscribe ? CHAN_SUBSCRIBING : CHAN_UNSUBSCRIBING;
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
    if (c->refs > 0 && c->state == CHAN_NONE && br->sub.ready) {
        send_sub_command(br, c, true);
    } else if (c->refs <= 0 && c->state == CHAN_SUBSCRIBED && br->sub.ready) {
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

/* Every channel: after the sub connection came up (subscribe them all) or
 * went down (nothing is subscribed any more). */
static void mark_all(bridge_t *br, bool lost)
{
    pthread_mutex_lock(&br->lock);
    for (size_t i = 0; i < CHAN_BUCKETS; i++) {
        for (chan_t *c = br->buckets[i]; c != NULL; c = c->next) {
            if (lost) {
                c->state = CHAN_NONE;
            }
            mark_dirty(br, c);
        }
    }
    pthread_mutex_unlock(&br->lock);
    reconcile_dirty(br);
}

void bridge_interest(bridge_t *br, const char *pattern, size_t len, int delta)
{
    if (atomic_load_explicit(&br->stop_requested, memory_order_acquire)) {
        return;
    }
    char name[2 * WSB_TOPIC_MAX_LEN + 80];
    bool glob = false;
    size_t n = bridge_redis_name(br->cfg->redis_prefix, pattern, len, name, &glob);
    pthread_mutex_lock(&br->lock);
    chan_t **slot = chan_slot(br, name, n, glob);
    chan_t *c = *slot;
    if (c == NULL) {
        c = xcalloc(1, sizeof(*c) + n + 1);
        memcpy(c->name, name, n + 1);
        c->len = n;
        c->glob = glob;
        *slot = c;
    }
    long before = c->refs;
    c->refs += delta;
    if (before <= 0 && c->refs > 0) {
        br->nchans_active++;
    } else if (before > 0 && c->refs <= 0) {
        br->nchans_active--;
    }
    mark_dirty(br, c);
    pthread_mutex_unlock(&br->lock);
    uv_async_send(&br->wake);
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

static void deliver_envelope(bridge_t *br, const redisReply *via, bool glob, const char *p,
                             size_t len)
{
    if (len > br->max_envelope) {
        count(&br->bad_envelopes);
        return;
    }
    if (same_as_last(br, p, len, hash_name(via->str, via->len, glob))) {
        return; /* the same PUBLISH through another of our subscriptions */
    }
    json_error_t jerr;
    json_t *env = json_loadb(p, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    json_t *node = json_object_get(env, "node");
    json_t *topic = json_object_get(env, "topic");
    json_t *seq = json_object_get(env, "seq");
    json_t *data = json_object_get(env, "data");
    const char *why = NULL;
    if (!json_is_string(node) || !json_is_string(topic) || !json_is_integer(seq) ||
        json_integer_value(seq) < 0 || data == NULL ||
        wsb_topic_check(json_string_value(topic), json_string_length(topic), WSB_TOPIC_EXACT,
                        &why) != 0) {
        count(&br->bad_envelopes);
        log_debug("redis: bad envelope ignored", "len=%zu", len);
        json_decref(env);
        return;
    }
    /* ---- clustered history hook: an envelope with an epoch was sequenced
     * by Redis and is delivered on every node, its origin included ---- */
    json_t *epoch = json_object_get(env, "epoch");
    bool clustered = json_is_string(epoch) && json_string_length(epoch) > 0 &&
                     json_string_length(epoch) <= XMSG_EPOCH_MAX;
    if (!clustered && strcmp(json_string_value(node), br->b->node_id) == 0) {
        count(&br->own_ignored); /* ours: already delivered locally */
        json_decref(env);
        return;
    }
    size_t data_len = 0;
    char *data_json = wsb_msg_dump_value(data, &data_len);
    if (data_json == NULL) {
        abort(); /* ENOMEM: the broker's allocation policy */
    }
    wsb_str_t t = {json_string_value(topic), json_string_length(topic)};
    wsb_str_t e =
        clustered ? (wsb_str_t){json_string_value(epoch), json_string_length(epoch)} : WSB_STR_NULL;
    unsigned full = router_inject_epoch(br->b, t, (uint64_t)json_integer_value(seq), e,
                                        (wsb_str_t){data_json, data_len});
    count(&br->received);
    if (full > 0) {
        atomic_fetch_add_explicit(&br->dropped, full, memory_order_relaxed);
    }
    free(data_json);
    json_decref(env);
}

static bool elem_is(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STRING && strlen(s) == r->len && memcmp(r->str, s, r->len) == 0;
}

/* A subscribe/unsubscribe confirmation: the channel's state moves on, and
 * whatever its count asked for meanwhile is sent now. */
static void confirm(bridge_t *br, const redisReply *name, bool glob, bool subscribed)
{
    pthread_mutex_lock(&br->lock);
    chan_t *c = *chan_slot(br, name->str, name->len, glob);
    if (c != NULL) {
        c->state = subscribed ? CHAN_SUBSCRIBED : CHAN_NONE;
        mark_dirty(br, c);
    }
    pthread_mutex_unlock(&br->lock);
    if (br->hr != NULL && subscribed && !glob) {
        hr_subscribed(br->hr, name->str, name->len); /* clustered history hook */
    }
    reconcile_dirty(br);
}

static void sub_lost(rconn_t *rc, const char *why);
static void set_ready(rconn_t *rc);

/* Every reply on the subscriber connection, in order: first the handshake's
 * (AUTH, PING), then pushes and (un)subscribe confirmations, which name
 * themselves. Classic and sharded (s-prefixed) kinds are handled alike: in
 * sharded mode exact topics are only ever shard channels. */
static void on_sub_reply(bridge_sub_t *bs, const redisReply *reply, void *user_data)
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
        sub_lost(rc, NULL);
        return;
    }
    if (rc->handshake > 0) {
        if (--rc->handshake == 0 && !br->stopping) {
            set_ready(rc);
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
        deliver_envelope(br, e[1], false, e[2]->str, e[2]->len);
    } else if (elem_is(e[0], "pmessage") && reply->elements >= 4 &&
               e[3]->type == REDIS_REPLY_STRING) {
        deliver_envelope(br, e[1], true, e[3]->str, e[3]->len);
    } else if (elem_is(e[0], "subscribe") || elem_is(e[0], "ssubscribe")) {
        confirm(br, e[1], false, true);
    } else if (elem_is(e[0], "psubscribe")) {
        confirm(br, e[1], true, true);
    } else if (elem_is(e[0], "unsubscribe") || elem_is(e[0], "sunsubscribe")) {
        /* Also unsolicited: a Redis Cluster drops shard subscriptions whose
         * slot moved; the channel is then subscribed again (and refused). */
        confirm(br, e[1], false, false);
    } else if (elem_is(e[0], "punsubscribe")) {
        confirm(br, e[1], true, false);
    }
}

/* ---- publishes to Redis -------------------------------------------------------------------- */

void bridge_publish(bridge_t *br, wsb_str_t topic, uint64_t seq, wsb_str_t data_json)
{
    if (!atomic_load_explicit(&br->pub_up, memory_order_acquire) ||
        wsb_topic_is_reserved(topic.p, topic.len)) {
        if (!wsb_topic_is_reserved(topic.p, topic.len)) {
            count(&br->dropped); /* Redis is down: at-most-once across nodes */
        }
        return;
    }
    size_t env_cap = 2 * topic.len + data_json.len + 160;
    if (env_cap > br->max_envelope ||
        atomic_load_explicit(&br->pending, memory_order_relaxed) >= br->cfg->redis_queue_size) {
        count(&br->dropped);
        return;
    }
    pub_item_t *it = xmalloc(sizeof(*it) + br->prefix_len + topic.len + env_cap);
    memcpy(it->bytes, br->cfg->redis_prefix, br->prefix_len);
    memcpy(it->bytes + br->prefix_len, topic.p, topic.len);
    it->chan_len = (uint32_t)(br->prefix_len + topic.len);
    char *env = it->bytes + it->chan_len;
    int n = snprintf(env, env_cap, "{\"v\":1,\"node\":\"%s\",\"topic\":\"", br->b->node_id);
    size_t len = (size_t)n;
    len += topic_json_escape(env + len, topic.p, topic.len);
    len += (size_t)snprintf(env + len, env_cap - len,
                            "\",\"seq\":%llu,\"data\":", (unsigned long long)seq);
    memcpy(env + len, data_json.p, data_json.len);
    len += data_json.len;
    env[len++] = '}';
    it->env_len = (uint32_t)len;
    atomic_fetch_add_explicit(&br->pending, 1, memory_order_relaxed);
    if (!xqueue_push(&br->outq, it)) {
        atomic_fetch_sub_explicit(&br->pending, 1, memory_order_relaxed);
        count(&br->dropped);
        free(it);
        return;
    }
    uv_async_send(&br->wake);
}

static void on_published(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    rconn_t *rc = ac->data;
    bridge_t *br = rc->br;
    redisReply *reply = r;
    atomic_fetch_sub_explicit(&br->pending, 1, memory_order_relaxed);
    /* The EXEC of SPUBLISH + PUBLISH answers with both replies (an error in
     * either is reported); a plain (S)PUBLISH with its receiver count. */
    const redisReply *err = reply;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
        err = NULL;
        for (size_t i = 0; i < reply->elements && err == NULL; i++) {
            if (reply->element[i]->type == REDIS_REPLY_ERROR) {
                err = reply->element[i];
            }
        }
    }
    if (reply == NULL || reply->type == REDIS_REPLY_NIL ||
        (err != NULL && err->type == REDIS_REPLY_ERROR)) {
        count(&br->dropped); /* lost with the connection, or refused */
        if (err != NULL && err->type == REDIS_REPLY_ERROR) {
            log_warn("redis: PUBLISH failed", "err=%s", log_quote(err->str));
        }
        return;
    }
    count(&br->published);
}

/* Sends one envelope. Sharded with patterns: SPUBLISH for the exact
 * subscribers and PUBLISH for the wildcard ones, in one MULTI/EXEC so that a
 * node that gets both copies (it has an exact and a matching pattern
 * subscription) gets them back to back and keeps one (same_as_last). */
static void send_publish(bridge_t *br, const pub_item_t *it)
{
    redisAsyncContext *ac = br->pub.ac;
    const char *chan = it->bytes;
    size_t chan_len = it->chan_len;
    const char *env = it->bytes + it->chan_len;
    size_t env_len = it->env_len;
    if (!br->cfg->redis_sharded) {
        redisAsyncCommand(ac, on_published, NULL, "PUBLISH %b %b", chan, chan_len, env, env_len);
    } else if (!br->cfg->redis_sharded_patterns) {
        redisAsyncCommand(ac, on_published, NULL, "SPUBLISH %b %b", chan, chan_len, env, env_len);
    } else {
        redisAsyncCommand(ac, NULL, NULL, "MULTI");
        redisAsyncCommand(ac, NULL, NULL, "SPUBLISH %b %b", chan, chan_len, env, env_len);
        redisAsyncCommand(ac, NULL, NULL, "PUBLISH %b %b", chan, chan_len, env, env_len);
        redisAsyncCommand(ac, on_published, NULL, "EXEC");
    }
}

static void drain_publishes(bridge_t *br)
{
    pub_item_t *it;
    while ((it = xqueue_pop(&br->outq)) != NULL) {
        if (br->pub.ready && !br->stopping) {
            send_publish(br, it);
        } else {
            atomic_fetch_sub_explicit(&br->pending, 1, memory_order_relaxed);
            count(&br->dropped);
        }
        free(it);
    }
}

static void on_wake(uv_async_t *a)
{
    bridge_t *br = a->data;
    drain_publishes(br);
    reconcile_dirty(br);
    if (br->hr != NULL) {
        hr_drain(br->hr); /* clustered history hook: after SUBSCRIBEs went out */
    }
}

/* ---- connections ---------------------------------------------------------------------------- */

static void rconn_connect(rconn_t *rc);

static void update_health(bridge_t *br)
{
    bool up = br->pub.ready && br->sub.ready;
    int was = atomic_exchange_explicit(&br->healthy, up ? 1 : 0, memory_order_acq_rel);
    atomic_store_explicit(&br->pub_up, br->pub.ready ? 1 : 0, memory_order_release);
    if (was != (up ? 1 : 0) && !br->stopping) {
        if (up) {
            log_info("redis: connected", "host=%s port=%u", br->url.host, br->url.port);
        } else {
            log_warn("redis: unavailable, serving local traffic only (degraded)", "host=%s port=%u",
                     br->url.host, br->url.port);
        }
    }
}

static void on_retry_timer(uv_timer_t *t)
{
    rconn_t *rc = t->data;
    if (rc->br->stopping) {
        return;
    }
    if (rc == &rc->br->sub) {
        if (rc->bs != NULL && !rc->connected) {
            log_warn("redis: connect timed out", "conn=%s", rc->role);
            bridge_sub_close(rc->bs);
            rc->bs = NULL;
        }
        if (rc->bs == NULL) {
            count(&rc->br->reconnects);
            rconn_connect(rc);
        }
        return;
    }
    if (rc->ac != NULL && !rc->connected) {
        /* Connect timeout: hiredis 0.14 has none of its own. */
        log_warn("redis: connect timed out", "conn=%s", rc->role);
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        redisAsyncFree(ac);
    }
    if (rc->ac == NULL) {
        count(&rc->br->reconnects);
        rconn_connect(rc);
    }
}

static void schedule_retry(rconn_t *rc)
{
    bridge_t *br = rc->br;
    if (br->stopping) {
        return;
    }
    /* Exponential backoff with +-25% jitter, so nodes that lost Redis at the
     * same moment do not come back in lockstep. */
    uint32_t rnd = 0;
    random_bytes(&rnd, sizeof(rnd));
    uint64_t base = rc->backoff_ms;
    uint64_t wait = base * 3 / 4 + (base > 0 ? rnd % (base / 2 + 1) : 0);
    uint64_t max = br->cfg->redis_reconnect_max_ms;
    rc->backoff_ms = (unsigned)(base * 2 > max ? max : base * 2);
    uv_timer_start(&rc->timer, on_retry_timer, wait, 0);
}

static void set_ready(rconn_t *rc)
{
    bridge_t *br = rc->br;
    rc->ready = true;
    rc->ever_ready = true;
    rc->backoff_ms = BACKOFF_MIN_MS;
    if (rc == &br->sub) {
        mark_all(br, false); /* (re)subscribe everything wanted */
    } else if (br->hr != NULL) {
        hr_set_pub(br->hr, rc->ac); /* clustered history hook: load the scripts */
    }
    update_health(br);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    rconn_t *rc = ac->data;
    redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_error("redis: AUTH refused", "conn=%s err=%s", rc->role, log_quote(reply->str));
        redisAsyncDisconnect(ac); /* retried with backoff: the password may be fixed */
    }
}

/* The PING queued behind AUTH: its answer means the connection is usable. */
static void on_ready_ping(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    rconn_t *rc = ac->data;
    redisReply *reply = r;
    if (reply != NULL && reply->type != REDIS_REPLY_ERROR && !rc->br->stopping) {
        set_ready(rc);
    }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    rconn_t *rc = cac->data;
    uv_timer_stop(&rc->timer);
    if (status != REDIS_OK) {
        log_debug("redis: connect failed", "conn=%s err=%s", rc->role, log_quote(cac->errstr));
        rc->ac = NULL; /* hiredis frees the context after this callback */
        schedule_retry(rc);
        return;
    }
    rc->connected = true; /* usable once the PING queued at connect time answers */
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    rconn_t *rc = cac->data;
    bridge_t *br = rc->br;
    if (!br->stopping) {
        log_warn("redis: connection lost", "conn=%s err=%s", rc->role,
                 log_quote(status == REDIS_OK ? "closed" : cac->errstr));
    }
    rc->ac = NULL;
    rc->connected = false;
    rc->ready = false;
    if (br->hr != NULL) {
        hr_set_pub(br->hr, NULL); /* clustered history hook: what waited on it fails */
    }
    update_health(br);
    schedule_retry(rc);
}

/* The subscriber connection broke (`why`), was refused (NULL: logged by the
 * caller) or could not connect: nothing is subscribed any more. */
static void sub_lost(rconn_t *rc, const char *why)
{
    bridge_t *br = rc->br;
    if (why != NULL && !br->stopping) {
        if (rc->connected) {
            log_warn("redis: connection lost", "conn=%s err=%s", rc->role, log_quote(why));
        } else {
            log_debug("redis: connect failed", "conn=%s err=%s", rc->role, log_quote(why));
        }
    }
    if (rc->bs != NULL) {
        bridge_sub_close(rc->bs);
        rc->bs = NULL;
    }
    uv_timer_stop(&rc->timer);
    rc->connected = false;
    rc->ready = false;
    rc->handshake = 0;
    mark_all(br, true);
    if (br->hr != NULL) {
        hr_sub_lost(br->hr); /* clustered history hook: reads waiting on a SUBSCRIBE fail */
    }
    update_health(br);
    schedule_retry(rc);
}

static void on_sub_connected(bridge_sub_t *bs, void *user_data)
{
    (void)bs;
    rconn_t *rc = user_data;
    uv_timer_stop(&rc->timer);
    rc->connected = true; /* usable once the PING queued at connect time answers */
}

static void on_sub_closed(bridge_sub_t *bs, const char *why, void *user_data)
{
    (void)bs;
    sub_lost(user_data, why);
}

static void sub_connect(rconn_t *rc)
{
    static const bridge_sub_cb_t callbacks = {on_sub_connected, on_sub_reply, on_sub_closed};
    bridge_t *br = rc->br;
    char err[160];
    rc->bs =
        bridge_sub_connect(&br->loop, br->url.host, br->url.port, &callbacks, rc, err, sizeof(err));
    if (rc->bs == NULL) {
        log_debug("redis: connect failed", "conn=%s err=%s", rc->role, log_quote(err));
        schedule_retry(rc);
        return;
    }
    rc->connected = false;
    rc->handshake = 0;
    if (br->url.password != NULL) {
        const char *argv[3] = {"AUTH", br->url.user, br->url.password};
        size_t lens[3] = {4, br->url.user != NULL ? strlen(br->url.user) : 0,
                          strlen(br->url.password)};
        if (br->url.user == NULL) {
            argv[1] = argv[2];
            lens[1] = lens[2];
        }
        bridge_sub_command(rc->bs, br->url.user != NULL ? 3 : 2, argv, lens);
        rc->handshake++;
    }
    const char *ping = "PING";
    size_t ping_len = 4;
    bridge_sub_command(rc->bs, 1, &ping, &ping_len);
    rc->handshake++;
    uv_timer_start(&rc->timer, on_retry_timer, CONNECT_TIMEOUT_MS, 0);
}

static void rconn_connect(rconn_t *rc)
{
    bridge_t *br = rc->br;
    if (rc == &br->sub) {
        sub_connect(rc);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(br->url.host, (int)br->url.port);
    if (ac == NULL || ac->err) {
        log_debug("redis: connect failed", "conn=%s err=%s", rc->role,
                  log_quote(ac != NULL ? ac->errstr : "out of memory"));
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        schedule_retry(rc);
        return;
    }
    ac->data = rc;
    rc->ac = ac;
    rc->connected = false;
    if (bridge_sub_attach_async(ac, &br->loop) != 0) {
        log_debug("redis: connect failed", "conn=%s err=%s", rc->role,
                  log_quote("cannot poll the socket"));
        rc->ac = NULL;
        redisAsyncFree(ac);
        schedule_retry(rc);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (br->url.password != NULL) {
        if (br->url.user != NULL) {
            redisAsyncCommand(ac, on_auth, NULL, "AUTH %s %s", br->url.user, br->url.password);
        } else {
            redisAsyncCommand(ac, on_auth, NULL, "AUTH %s", br->url.password);
        }
    }
    /* hiredis 0.14 completes a non-blocking connect only when it has
     * something to write: the PING is also what makes it connect. */
    redisAsyncCommand(ac, on_ready_ping, NULL, "PING");
    uv_timer_start(&rc->timer, on_retry_timer, CONNECT_TIMEOUT_MS, 0);
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
    rconn_t *conns[2] = {&br->pub, &br->sub};
    for (int i = 0; i < 2; i++) {
        uv_timer_stop(&conns[i]->timer);
        if (conns[i]->ac != NULL) {
            redisAsyncContext *ac = conns[i]->ac;
            conns[i]->ac = NULL;
            redisAsyncFree(ac); /* calls on_disconnect when it was connected */
        }
        if (conns[i]->bs != NULL) {
            bridge_sub_close(conns[i]->bs); /* freed as the loop winds down */
            conns[i]->bs = NULL;
        }
        uv_close((uv_handle_t *)&conns[i]->timer, on_handle_closed);
    }
    drain_publishes(br); /* drops what was still queued */
    if (br->hr != NULL) {
        hr_stop(br->hr); /* clustered history hook: fails what was queued */
    }
    uv_close((uv_handle_t *)&br->wake, on_handle_closed);
    uv_close((uv_handle_t *)&br->stop_async, on_handle_closed);
}

static void *bridge_main(void *arg)
{
    bridge_t *br = arg;
    rconn_connect(&br->pub);
    rconn_connect(&br->sub);
    uv_run(&br->loop, UV_RUN_DEFAULT);
    return NULL;
}

bridge_t *bridge_new(broker_t *b)
{
    bridge_t *br = xcalloc(1, sizeof(*br));
    br->b = b;
    br->cfg = b->cfg;
    if (config_parse_redis_url(b->cfg->redis_url, &br->url) != 0) {
        abort(); /* validated at load (config_keys.c) */
    }
    br->prefix_len = strlen(b->cfg->redis_prefix);
    br->max_envelope = b->cfg->max_message_size + ENVELOPE_OVERHEAD;
    if (b->cfg->max_http_body > b->cfg->max_message_size) {
        br->max_envelope = b->cfg->max_http_body + ENVELOPE_OVERHEAD;
    }
    xqueue_init(&br->outq, b->cfg->redis_queue_size);
    pthread_mutex_init(&br->lock, NULL);
    br->buckets = xcalloc(CHAN_BUCKETS, sizeof(chan_t *));
    if (uv_loop_init(&br->loop) != 0) {
        abort();
    }
    uv_async_init(&br->loop, &br->wake, on_wake);
    br->wake.data = br;
    uv_async_init(&br->loop, &br->stop_async, on_stop);
    br->stop_async.data = br;
    if (b->history_rules.n > 0) {
        /* The script publishes the way send_publish does in this mode. */
        const char *cmd = !b->cfg->redis_sharded           ? "PUBLISH"
                          : b->cfg->redis_sharded_patterns ? "SPUBLISH+PUBLISH"
                                                           : "SPUBLISH";
        br->hr =
            hr_new(br, b->cfg->redis_prefix, b->node_id, cmd, b->cfg->redis_queue_size, &br->wake);
    }
    rconn_t *conns[2] = {&br->pub, &br->sub};
    const char *roles[2] = {"pub", "sub"};
    for (int i = 0; i < 2; i++) {
        conns[i]->br = br;
        conns[i]->role = roles[i];
        conns[i]->backoff_ms = BACKOFF_MIN_MS;
        uv_timer_init(&br->loop, &conns[i]->timer);
        conns[i]->timer.data = conns[i];
    }
    return br;
}

int bridge_start(bridge_t *br)
{
    if (pthread_create(&br->thread, NULL, bridge_main, br) != 0) {
        log_error("cannot start the redis bridge thread", NULL);
        return -1;
    }
    br->thread_started = true;
    log_info("redis bridge started", "host=%s port=%u prefix=%s", br->url.host, br->url.port,
             log_quote(br->cfg->redis_prefix));
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
        free(it);
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
        hr_free(br->hr);
    }
    free(br);
}

/* ---- clustered history (history_redis.h) ------------------------------------------------ */

int bridge_history_submit(bridge_t *br, hr_op_t *op)
{
    if (br->hr == NULL || atomic_load_explicit(&br->stop_requested, memory_order_acquire)) {
        return -1;
    }
    return hr_submit(br->hr, op);
}

int bridge_channel_state(bridge_t *br, const char *name, size_t len)
{
    if (!br->sub.ready) {
        return -1;
    }
    pthread_mutex_lock(&br->lock);
    chan_t *c = *chan_slot(br, name, len, false);
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
    return br != NULL && br->cfg->redis_sharded && !br->cfg->redis_sharded_patterns;
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

void bridge_render_metrics(bridge_t *br, sbuf_t *o)
{
    bridge_t *m = br;
    sbuf_printf(o,
                "# HELP wsbroker_redis_up 1 while both Redis connections are up.\n"
                "# TYPE wsbroker_redis_up gauge\nwsbroker_redis_up %d\n",
                bridge_healthy(br) ? 1 : 0);
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
