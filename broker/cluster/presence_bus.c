/* presence_bus.c - presence across nodes through one Redis channel (see presence_bus.h). */
#include "cluster/presence_bus.h"

#include "core/presence.h"
#include "core/topic_rules.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/topic.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A node heard on the bus (bridge thread only). */
typedef struct {
    char origin[PRESENCE_ORIGIN_MAX + 1];
    uint64_t last_seen_ms;
    uint32_t gen;         /* its members are confirmed with this generation */
    uint64_t sweep_at_ms; /* 0, or when its unconfirmed members leave */
} pnode_t;

struct pbus_s {
    pbus_config_t cfg;
    char chan[160];
    size_t chan_len;
    char inc[17];
    uv_loop_t *loop;
    uv_timer_t timer;
    bool timer_started;
    /* bridge thread only */
    pnode_t nodes[PBUS_MAX_NODES];
    unsigned nnodes;
    bool need_hello;
    uint64_t last_hb_ms;
};

pbus_t *pbus_new(const pbus_config_t *cfg)
{
    pbus_t *pb = xcalloc(1, sizeof(*pb));
    pb->cfg = *cfg;
    pb->chan_len = (size_t)snprintf(pb->chan, sizeof pb->chan, "%s presence", cfg->prefix);
    uint8_t rnd[8];
    random_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, pb->inc);
    return pb;
}

const char *pbus_channel(const pbus_t *pb, size_t *len)
{
    *len = pb->chan_len;
    return pb->chan;
}

bool pbus_is_channel(const pbus_t *pb, const char *name, size_t len)
{
    return len == pb->chan_len && memcmp(name, pb->chan, len) == 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

static json_t *envelope(const pbus_t *pb, const char *op)
{
    json_t *env = json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "node", pb->cfg.node_id, "inc", pb->inc,
                            "op", op);
    if (env == NULL) {
        abort(); /* ENOMEM (the ids are ASCII) */
    }
    return env;
}

static void send_env(pbus_t *pb, json_t *env)
{
    char *text = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    if (text == NULL) {
        return; /* a member id that is not UTF-8: not sent */
    }
    pb->cfg.send_cb(pb->cfg.user_data, pb->chan, pb->chan_len, text, strlen(text));
    free(text);
}

static json_t *member_json(const char *client, const char *user)
{
    return json_pack("{s:s, s:s?}", "client", client, "user", user);
}

void pbus_local(pbus_t *pb, const char *type, wsb_str_t topic, const char *client, const char *user)
{
    json_t *env = envelope(pb, type);
    json_t *m = member_json(client, user);
    if (m == NULL || json_object_set_new(env, "topic", json_stringn(topic.p, topic.len)) != 0 ||
        json_object_set_new(env, "members", json_pack("[o]", m)) != 0) {
        json_decref(env);
        return;
    }
    send_env(pb, env);
}

/* Under the topic's shard lock (presence_foreach_local): encode and queue. */
static void sync_topic_cb(wsb_str_t topic, const presence_member_t *m, size_t n, void *user_data)
{
    pbus_t *pb = user_data;
    for (size_t at = 0; at < n; at += PBUS_SYNC_CHUNK) {
        json_t *env = envelope(pb, "sync");
        json_t *arr = json_array();
        for (size_t i = at; i < n && i < at + PBUS_SYNC_CHUNK; i++) {
            json_t *one = member_json(m[i].client, m[i].has_user ? m[i].user : NULL);
            if (one != NULL) {
                json_array_append_new(arr, one);
            }
        }
        json_object_set_new(env, "topic", json_stringn(topic.p, topic.len));
        json_object_set_new(env, "members", arr);
        send_env(pb, env);
    }
}

static void send_sync(pbus_t *pb)
{
    presence_foreach_local(pb->cfg.presence, sync_topic_cb, pb);
}

/* ---- nodes -------------------------------------------------------------------------------- */

static pnode_t *node_of(pbus_t *pb, const char *origin, uint64_t now)
{
    for (unsigned i = 0; i < pb->nnodes; i++) {
        if (strcmp(pb->nodes[i].origin, origin) == 0) {
            return &pb->nodes[i];
        }
    }
    if (pb->nnodes == PBUS_MAX_NODES) {
        return NULL;
    }
    pnode_t *n = &pb->nodes[pb->nnodes++];
    memset(n, 0, sizeof *n);
    (void)snprintf(n->origin, sizeof n->origin, "%s", origin);
    n->gen = 1;
    n->last_seen_ms = now;
    return n;
}

static void leave_cb(wsb_str_t topic, const presence_member_t *m, void *user_data)
{
    const pbus_t *pb = user_data;
    pb->cfg.event_cb(pb->cfg.user_data, "leave", topic, m->client, m->has_user ? m->user : NULL);
}

/* Resync with `n`: its members not confirmed by a sync within node_ttl leave. */
static void expect_sync(pbus_t *pb, pnode_t *n, uint64_t now)
{
    n->gen++;
    n->sweep_at_ms = now + pb->cfg.ttl_ms;
}

static void check_nodes(pbus_t *pb, uint64_t now)
{
    for (unsigned i = 0; i < pb->nnodes;) {
        pnode_t *n = &pb->nodes[i];
        /* Heartbeats come every ttl/4: three missed ones and the next tick
         * see it dead, within node_ttl of its last. */
        if (now - n->last_seen_ms > pb->cfg.ttl_ms / 4 * 3) {
            size_t gone =
                presence_drop_remote(pb->cfg.presence, n->origin, UINT32_MAX, leave_cb, pb);
            log_info("presence: node silent for node_ttl, its members left",
                     "origin=%s members=%zu", log_quote(n->origin), gone);
            pb->nodes[i] = pb->nodes[--pb->nnodes];
            continue;
        }
        if (n->sweep_at_ms != 0 && now >= n->sweep_at_ms) {
            n->sweep_at_ms = 0;
            (void)presence_drop_remote(pb->cfg.presence, n->origin, n->gen, leave_cb, pb);
        }
        i++;
    }
}

/* ---- receiving ---------------------------------------------------------------------------- */

static const char *str_of(json_t *o, const char *key, size_t max)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return NULL;
    }
    return json_string_value(v);
}

/* One member of a join, leave or sync from `n`. */
static void apply_member(pbus_t *pb, pnode_t *n, const char *op, wsb_str_t topic, json_t *m)
{
    const char *client = str_of(m, "client", PRESENCE_CLIENT_MAX);
    json_t *u = json_object_get(m, "user");
    const char *user = str_of(m, "user", PRESENCE_USER_MAX);
    if (client == NULL || (u != NULL && !json_is_null(u) && user == NULL)) {
        return;
    }
    if (strcmp(op, "leave") == 0) {
        presence_member_t out;
        if (presence_remove_remote(pb->cfg.presence, topic, client, n->origin, &out)) {
            pb->cfg.event_cb(pb->cfg.user_data, "leave", topic, out.client,
                             out.has_user ? out.user : NULL);
        }
        return;
    }
    bool added = false;
    if (presence_add_remote(pb->cfg.presence, topic, client, user, n->origin, n->gen, &added) !=
        PRESENCE_OK) {
        log_debug("presence: remote member over a bound, not kept", "topic=%.*s", (int)topic.len,
                  topic.p);
        return;
    }
    if (added) {
        pb->cfg.event_cb(pb->cfg.user_data, "join", topic, client, user);
    }
}

static void apply_members(pbus_t *pb, pnode_t *n, const char *op, json_t *env)
{
    json_t *t = json_object_get(env, "topic");
    json_t *members = json_object_get(env, "members");
    if (!json_is_string(t) || !json_is_array(members) ||
        wsb_topic_check(json_string_value(t), json_string_length(t), WSB_TOPIC_EXACT, NULL) != 0) {
        return;
    }
    wsb_str_t topic = {json_string_value(t), json_string_length(t)};
    const topic_rule_t *rule = topic_rules_match(pb->cfg.rules, topic);
    if (rule == NULL || !(rule->presence || rule->join_leave)) {
        return; /* another configuration: this node keeps no presence there */
    }
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        apply_member(pb, n, op, topic, m);
    }
}

void pbus_receive(pbus_t *pb, const char *payload, size_t len)
{
    json_t *env = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    const char *node = str_of(env, "node", 72);
    const char *inc = str_of(env, "inc", 16);
    const char *op = str_of(env, "op", 8);
    if (node == NULL || inc == NULL || op == NULL) {
        json_decref(env);
        return;
    }
    if (strcmp(node, pb->cfg.node_id) == 0 && strcmp(inc, pb->inc) == 0) {
        json_decref(env); /* ours */
        return;
    }
    char origin[PRESENCE_ORIGIN_MAX + 1];
    (void)snprintf(origin, sizeof origin, "%s/%s", node, inc);
    uint64_t now = uv_now(pb->loop);
    pnode_t *n = node_of(pb, origin, now);
    if (n == NULL) {
        json_decref(env); /* PBUS_MAX_NODES nodes known already */
        return;
    }
    n->last_seen_ms = now;
    if (strcmp(op, "hello") == 0) {
        /* It (re)subscribed: it wants our members, and sends its own. */
        expect_sync(pb, n, now);
        send_sync(pb);
    } else if (strcmp(op, "join") == 0 || strcmp(op, "leave") == 0 || strcmp(op, "sync") == 0) {
        apply_members(pb, n, op, env);
    }
    json_decref(env);
}

/* ---- liveness ----------------------------------------------------------------------------- */

static void hello(pbus_t *pb)
{
    if (!pb->cfg.ready_cb(pb->cfg.user_data)) {
        pb->need_hello = true; /* the next tick */
        return;
    }
    pb->need_hello = false;
    send_env(pb, envelope(pb, "hello"));
    send_sync(pb);
}

void pbus_subscribed(pbus_t *pb)
{
    uint64_t now = uv_now(pb->loop);
    for (unsigned i = 0; i < pb->nnodes; i++) {
        expect_sync(pb, &pb->nodes[i], now);
    }
    hello(pb);
}

static void on_tick(uv_timer_t *t)
{
    pbus_t *pb = t->data;
    uint64_t now = uv_now(pb->loop);
    if (pb->need_hello) {
        hello(pb);
    }
    if (pb->cfg.ready_cb(pb->cfg.user_data) && now - pb->last_hb_ms >= pb->cfg.ttl_ms / 4) {
        pb->last_hb_ms = now;
        send_env(pb, envelope(pb, "hb"));
    }
    check_nodes(pb, now);
}

void pbus_start(pbus_t *pb, uv_loop_t *loop)
{
    pb->loop = loop;
    uint64_t tick = pb->cfg.ttl_ms / 8;
    if (tick > 500) {
        tick = 500;
    }
    if (tick < 10) {
        tick = 10;
    }
    uv_timer_init(loop, &pb->timer);
    pb->timer.data = pb;
    uv_timer_start(&pb->timer, on_tick, tick, tick);
    pb->timer_started = true;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
}

void pbus_stop(pbus_t *pb)
{
    if (pb->timer_started) {
        uv_close((uv_handle_t *)&pb->timer, on_timer_closed);
        pb->timer_started = false;
    }
}

void pbus_free(pbus_t *pb)
{
    free(pb); /* NULL-safe */
}
