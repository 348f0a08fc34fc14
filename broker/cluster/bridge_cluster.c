/* bridge_cluster.c - the Redis bridge on a Redis Cluster (see bridge_redis.h):
 * the topology from CLUSTER SLOTS, one pub + sub connection pair per master,
 * each shard channel subscribed and published on its slot's master, MOVED
 * and ASK followed, the topology refreshed on errors and on a timer.
 *
 * Topology queries are asynchronous on the bridge loop (hiredis async, as
 * the bridge's other connections): one node at a time, each with its own
 * connection and a PROBE_TIMEOUT_MS deadline, so a hung node costs the
 * refresh time but never stalls publishes and subscriptions. They happen
 * every CLUSTER_REFRESH_MS while all is well, every CLUSTER_RETRY_MS while a
 * master is unreachable or after a MOVED.
 */
#include "cluster/bridge_internal.h"
#include "cluster/bridge_sub.h"
#include "cluster/redis_cluster.h"
#include "shared/log.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#define CLUSTER_REFRESH_MS 5000 /* a healthy cluster's topology is read again this often */
#define CLUSTER_RETRY_MS   200  /* ... and this often while a master is down or after a MOVED */
#define REDIRECT_HOPS_MAX  3
#define PROBE_TIMEOUT_MS   800 /* one node's connect + CLUSTER SLOTS reply */

struct bcluster_s {
    rc_addr_t seeds[RC_MAX_NODES];
    unsigned nseeds;
    shard_t *shards[RC_MAX_NODES]; /* the masters in use, not retired */
    unsigned nshards;
    shard_t *slot_shard[RC_SLOTS]; /* NULL: no master known for the slot */
    rc_topology_t topo;            /* the last query's answer (scratch) */
    uv_timer_t refresh;
    bool known;    /* a topology was applied */
    bool complete; /* ... and it serves every slot */
    bool soon;     /* a refresh is due within CLUSTER_RETRY_MS */
    /* The refresh in progress: the nodes to ask in turn, and the one asked. */
    bool probing;
    bool again; /* a refresh was asked for meanwhile: one more follows */
    rc_addr_t cand[2 * RC_MAX_NODES];
    unsigned ncand, next;
    int best;                    /* the most slots a node served this round */
    redisAsyncContext *probe_ac; /* the node asked now, or NULL */
    uv_timer_t probe_timer;      /* its deadline */
};

/* ---- shards ------------------------------------------------------------------------------ */

static void on_shard_handle_closed(uv_handle_t *h)
{
    rconn_t *rc = h->data;
    shard_t *s = rc->shard;
    if (--s->open_handles == 0) {
        free(s);
    }
}

static shard_t *shard_new(bridge_t *br, const rc_addr_t *a)
{
    shard_t *s = xcalloc(1, sizeof(*s));
    s->br = br;
    memcpy(s->host, a->host, strlen(a->host) + 1);
    s->port = a->port;
    bridge_rconn_init(br, &s->pub, false, s);
    bridge_rconn_init(br, &s->sub, true, s);
    s->open_handles = 2;
    log_info("redis cluster: master added", "host=%s port=%u", s->host, s->port);
    bridge_rconn_connect(&s->pub);
    bridge_rconn_connect(&s->sub);
    return s;
}

/* Closes a shard's connections for good; freed once its timers closed. */
static void shard_close(shard_t *s)
{
    s->retired = true;
    bridge_rconn_close(&s->pub, on_shard_handle_closed);
    bridge_rconn_close(&s->sub, on_shard_handle_closed);
}

static shard_t *find_shard(const bcluster_t *cl, const char *host, unsigned port)
{
    for (unsigned i = 0; i < cl->nshards; i++) {
        if (cl->shards[i]->port == port && strcmp(cl->shards[i]->host, host) == 0) {
            return cl->shards[i];
        }
    }
    return NULL;
}

/* ---- topology ------------------------------------------------------------------------------ */

static void refresh_start(bridge_t *br);
static void on_refresh_timer(uv_timer_t *t);

/* Makes cl->topo the topology in use: new masters get a connection pair,
 * masters no longer named are closed (their channels are subscribed again
 * on the slot's new master), every channel is reconciled. */
static void apply_topology(bridge_t *br, bool complete)
{
    bcluster_t *cl = br->cl;
    const rc_topology_t *t = &cl->topo;
    shard_t *by_master[RC_MAX_NODES] = {NULL};
    shard_t *keep[RC_MAX_NODES];
    unsigned nkeep = 0;
    for (unsigned m = 0; m < t->nmasters; m++) {
        shard_t *s = find_shard(cl, t->masters[m].host, t->masters[m].port);
        by_master[m] = s != NULL ? s : shard_new(br, &t->masters[m]);
        keep[nkeep++] = by_master[m];
    }
    bool changed = !cl->known || complete != cl->complete;
    for (unsigned s = 0; s < RC_SLOTS; s++) {
        shard_t *sh = t->slot_master[s] == RC_NO_MASTER ? NULL : by_master[t->slot_master[s]];
        changed = changed || cl->slot_shard[s] != sh;
        cl->slot_shard[s] = sh;
    }
    for (unsigned i = 0; i < cl->nshards; i++) {
        shard_t *s = cl->shards[i];
        bool kept = false;
        for (unsigned k = 0; k < nkeep && !kept; k++) {
            kept = keep[k] == s;
        }
        if (!kept) {
            log_info("redis cluster: master removed", "host=%s port=%u", s->host, s->port);
            bridge_mark_shard(br, s, true); /* subscribed nowhere now */
            shard_close(s);
            changed = true;
        }
    }
    for (unsigned k = 0; k < nkeep; k++) {
        cl->shards[k] = keep[k];
    }
    cl->nshards = nkeep;
    cl->known = true;
    cl->complete = complete;
    if (changed) {
        log_info("redis cluster: topology", "masters=%u complete=%s", nkeep,
                 complete ? "true" : "false");
        bridge_mark_shard(br, NULL, false); /* channels whose slot moved follow it */
    }
    bridge_update_health(br);
}

static void probe_next(bridge_t *br);

/* The round ended: the next refresh is scheduled by how it went. */
static void probe_finish(bridge_t *br)
{
    bcluster_t *cl = br->cl;
    cl->probing = false;
    if (br->stopping) {
        return;
    }
    if (cl->best <= 0) {
        log_warn("redis cluster: no node answered CLUSTER SLOTS", "seeds=%u", cl->nseeds);
    }
    if (cl->again) {
        cl->again = false;
        refresh_start(br);
        return;
    }
    if (!cl->soon) {
        bool healthy = atomic_load_explicit(&br->healthy, memory_order_acquire) != 0;
        uv_timer_start(&cl->refresh, on_refresh_timer,
                       healthy ? CLUSTER_REFRESH_MS : CLUSTER_RETRY_MS, 0);
    }
}

/* The asked node's CLUSTER SLOTS reply (NULL: it could not be reached, or
 * its deadline passed). */
static void on_probe_slots(redisAsyncContext *ac, void *r, void *privdata)
{
    bridge_t *br = privdata;
    bcluster_t *cl = br->cl;
    if (cl == NULL || cl->probe_ac != ac) {
        return; /* a node given up on (deadline, stop): freed by whoever did */
    }
    uv_timer_stop(&cl->probe_timer);
    cl->probe_ac = NULL;
    const rc_addr_t *a = &cl->cand[cl->next - 1];
    redisReply *reply = r;
    int served = rc_parse_slots(reply, a->host, &cl->topo);
    if (served < 0 && reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_warn("redis cluster: CLUSTER SLOTS refused", "host=%s port=%u err=%s", a->host, a->port,
                 log_quote(reply->str));
    }
    if (reply != NULL) {
        redisAsyncDisconnect(ac); /* once this callback returned */
    }
    if (served > cl->best && !br->stopping) {
        cl->best = served;
        if (served > 0) {
            apply_topology(br, served == RC_SLOTS);
        }
    }
    probe_next(br);
}

static void on_probe_timeout(uv_timer_t *t)
{
    bridge_t *br = t->data;
    bcluster_t *cl = br->cl;
    redisAsyncContext *ac = cl->probe_ac;
    if (ac == NULL) {
        return;
    }
    const rc_addr_t *a = &cl->cand[cl->next - 1];
    log_debug("redis cluster: CLUSTER SLOTS timed out", "host=%s port=%u", a->host, a->port);
    cl->probe_ac = NULL;
    redisAsyncFree(ac); /* its callback sees a node given up on */
    probe_next(br);
}

/* Asks the next candidate, until one served every slot or none is left. */
static void probe_next(bridge_t *br)
{
    bcluster_t *cl = br->cl;
    while (!br->stopping && cl->next < cl->ncand && cl->best < RC_SLOTS) {
        const rc_addr_t *a = &cl->cand[cl->next++];
        redisAsyncContext *ac = redisAsyncConnect(a->host, (int)a->port);
        if (ac == NULL || ac->err || bridge_sub_attach_async(ac, &br->loop) != 0) {
            if (ac != NULL) {
                redisAsyncFree(ac);
            }
            continue;
        }
        if (br->cfg.password != NULL) {
            /* A refused AUTH makes CLUSTER SLOTS fail (NOAUTH): no callback needed. */
            if (br->cfg.user != NULL) {
                (void)redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", br->cfg.user,
                                        br->cfg.password);
            } else {
                (void)redisAsyncCommand(ac, NULL, NULL, "AUTH %s", br->cfg.password);
            }
        }
        cl->probe_ac = ac;
        if (redisAsyncCommand(ac, on_probe_slots, br, "CLUSTER SLOTS") != REDIS_OK) {
            cl->probe_ac = NULL;
            redisAsyncFree(ac);
            continue;
        }
        uv_timer_start(&cl->probe_timer, on_probe_timeout, PROBE_TIMEOUT_MS, 0);
        return; /* on_probe_slots or on_probe_timeout goes on */
    }
    probe_finish(br);
}

/* Starts a round: the masters in use (a master that is up answers best),
 * then the seeds, asked in turn until one serves every slot. A round in
 * progress is followed by another instead. */
static void refresh_start(bridge_t *br)
{
    bcluster_t *cl = br->cl;
    if (br->stopping) {
        return;
    }
    if (cl->probing) {
        cl->again = true;
        return;
    }
    cl->probing = true;
    cl->ncand = 0;
    cl->next = 0;
    cl->best = -1;
    for (unsigned i = 0; i < cl->nshards; i++) {
        if (cl->shards[i]->pub.ready) {
            rc_addr_t *c = &cl->cand[cl->ncand++];
            memcpy(c->host, cl->shards[i]->host, strlen(cl->shards[i]->host) + 1);
            c->port = cl->shards[i]->port;
        }
    }
    memcpy(cl->cand + cl->ncand, cl->seeds, cl->nseeds * sizeof(rc_addr_t));
    cl->ncand += cl->nseeds;
    probe_next(br);
}

static void on_refresh_timer(uv_timer_t *t)
{
    bridge_t *br = t->data;
    if (br->stopping) {
        return;
    }
    br->cl->soon = false;
    refresh_start(br);
}

void bridge_cluster_refresh_now(bridge_t *br)
{
    refresh_start(br);
}

void bridge_cluster_refresh_soon(bridge_t *br)
{
    bcluster_t *cl = br->cl;
    if (cl == NULL || br->stopping || cl->soon) {
        return;
    }
    cl->soon = true;
    uv_timer_start(&cl->refresh, on_refresh_timer, CLUSTER_RETRY_MS, 0);
}

shard_t *bridge_cluster_shard(bridge_t *br, unsigned slot)
{
    return br->cl->slot_shard[slot & (RC_SLOTS - 1)];
}

void bridge_cluster_health(bridge_t *br, bool *healthy, bool *pub_up)
{
    const bcluster_t *cl = br->cl;
    bool all = cl->known && cl->complete && cl->nshards > 0, any = false;
    for (unsigned i = 0; i < cl->nshards; i++) {
        const shard_t *s = cl->shards[i];
        all = all && s->pub.ready && s->sub.ready;
        any = any || s->pub.ready;
    }
    *healthy = all;
    *pub_up = any;
}

redisAsyncContext *bridge_cluster_redirect(bridge_t *br, const redisAsyncContext *from,
                                           const char *err, size_t len, bool *ask)
{
    const rconn_t *rc = from->data;
    rc_addr_t to;
    unsigned slot = 0;
    if (br->stopping || rc == NULL || rc->shard == NULL) {
        return NULL;
    }
    if (rc_parse_redirect(err, len, rc->shard->host, ask, &slot, &to) != 0) {
        if (len >= 11 && strncmp(err, "CLUSTERDOWN", 11) == 0) {
            bridge_cluster_refresh_soon(br);
        }
        return NULL;
    }
    if (!*ask) {
        bridge_cluster_refresh_soon(br); /* the slot moved for good */
    }
    const shard_t *s = find_shard(br->cl, to.host, to.port);
    return s != NULL && s->pub.ready ? s->pub.ac : NULL;
}

/* ---- publishes ------------------------------------------------------------------------------- */

/* A publish on its way: kept until its outcome, for MOVED/ASK. */
typedef struct {
    bridge_t *br;
    pub_item_t *it;
    redisCallbackFn *cb;
    void *priv;
    unsigned hops;
} cpub_t;

static void on_cpub_reply(redisAsyncContext *ac, void *r, void *privdata);

static void finish(cpub_t *cp, redisAsyncContext *ac, redisReply *reply)
{
    cp->cb(ac, reply, cp->priv);
    free(cp->it);
    free(cp);
}

static void cpub_send(cpub_t *cp, shard_t *s, bool asking)
{
    redisAsyncContext *ac = s->pub.ac;
    const pub_item_t *it = cp->it;
    if (asking) {
        (void)redisAsyncCommand(ac, NULL, NULL, "ASKING");
    }
    if (redisAsyncCommand(ac, on_cpub_reply, cp, "SPUBLISH %b %b", it->bytes, (size_t)it->chan_len,
                          it->bytes + it->chan_len, (size_t)it->env_len) != REDIS_OK) {
        finish(cp, ac, NULL);
        return;
    }
    s->pub_inflight++;
}

static void on_cpub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    cpub_t *cp = privdata;
    bridge_t *br = cp->br;
    redisReply *reply = r;
    shard_t *from = ((const rconn_t *)ac->data)->shard; /* a cluster pub connection's */
    if (from->pub_inflight > 0) {
        from->pub_inflight--;
    }
    if (reply == NULL) {
        bridge_cluster_refresh_soon(br); /* lost with its master */
    } else if (reply->type == REDIS_REPLY_ERROR && !br->stopping) {
        const rconn_t *rc = ac->data;
        rc_addr_t to;
        bool ask = false;
        unsigned slot = 0;
        if (rc_parse_redirect(reply->str, reply->len, rc->shard->host, &ask, &slot, &to) == 0) {
            shard_t *s = find_shard(br->cl, to.host, to.port);
            if (!ask) {
                bridge_cluster_refresh_soon(br); /* the slot moved for good */
                /* Publishes still in flight on the old master come back
                 * MOVED in order and are sent again in order: the map
                 * follows with the last of them, so that a new publish
                 * cannot overtake them on the new master. */
                if (s != NULL && from->pub_inflight == 0) {
                    br->cl->slot_shard[slot] = s;
                }
            }
            if (s != NULL && s->pub.ready && cp->hops++ < REDIRECT_HOPS_MAX) {
                cpub_send(cp, s, ask);
                return;
            }
        } else if (strncmp(reply->str, "CLUSTERDOWN", 11) == 0) {
            bridge_cluster_refresh_soon(br);
        }
    }
    finish(cp, ac, reply);
}

void bridge_cluster_publish(bridge_t *br, pub_item_t *it, redisCallbackFn *cb, void *priv)
{
    shard_t *s = bridge_cluster_shard(br, rc_keyslot(it->bytes, it->chan_len));
    cpub_t *cp = xmalloc(sizeof(*cp));
    *cp = (cpub_t){.br = br, .it = it, .cb = cb, .priv = priv};
    if (s == NULL || !s->pub.ready) {
        finish(cp, NULL, NULL); /* its master is down: at-most-once across nodes */
        return;
    }
    cpub_send(cp, s, false);
}

/* ---- lifetime ----------------------------------------------------------------------------------
 */

bcluster_t *bridge_cluster_new(bridge_t *br)
{
    bcluster_t *cl = xcalloc(1, sizeof(*cl));
    int n = rc_parse_seeds(br->cfg.cluster, cl->seeds, RC_MAX_NODES);
    if (n <= 0) {
        abort(); /* validated at load (config_keys.c) */
    }
    cl->nseeds = (unsigned)n;
    uv_timer_init(&br->loop, &cl->refresh);
    cl->refresh.data = br;
    uv_timer_init(&br->loop, &cl->probe_timer);
    cl->probe_timer.data = br;
    return cl;
}

void bridge_cluster_start(bridge_t *br)
{
    refresh_start(br); /* schedules the next one when it ends */
}

static void on_refresh_closed(uv_handle_t *h)
{
    (void)h;
}

void bridge_cluster_stop(bridge_t *br)
{
    bcluster_t *cl = br->cl;
    uv_timer_stop(&cl->refresh);
    uv_close((uv_handle_t *)&cl->refresh, on_refresh_closed);
    uv_timer_stop(&cl->probe_timer);
    uv_close((uv_handle_t *)&cl->probe_timer, on_refresh_closed);
    if (cl->probe_ac != NULL) {
        redisAsyncContext *ac = cl->probe_ac;
        cl->probe_ac = NULL;
        redisAsyncFree(ac); /* its callback sees a node given up on */
    }
    for (unsigned i = 0; i < cl->nshards; i++) {
        shard_close(cl->shards[i]);
    }
    cl->nshards = 0;
    memset(cl->slot_shard, 0, sizeof cl->slot_shard);
}

void bridge_cluster_free(bridge_t *br)
{
    free(br->cl); /* the shards went with their handles (bridge_cluster_stop) */
    br->cl = NULL;
}
