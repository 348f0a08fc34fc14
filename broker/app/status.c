/* status.c - what GET /healthz and GET /metrics report of the whole process
 * (every worker, the sequence table, federation): the HTTP API asks through
 * its ingress context (ingress.h), which worker.c fills with these. */
#include "app/broker.h"
#include "app/worker.h"
#include "cluster/bridge_redis.h"
#include "core/stream.h"

#include <stdlib.h>

/* A worker is alive when its loop ran its heartbeat timer recently: a stuck
 * loop (a busy-looping bug, a blocking call) stops beating. */
#define HEARTBEAT_STALE_MS 5000

json_t *worker_healthz(ingress_ctx_t *ctx, int *status)
{
    worker_t *w = ctx->owner;
    broker_t *b = w->env->process;
    uint64_t now_ms = broker_uptime_ns(b) / 1000000;
    json_t *workers = json_array();
    uint64_t conns = 0, ws = 0;
    bool all_alive = true;
    for (unsigned i = 0; i < b->nworkers; i++) {
        metrics_t *m = &b->workers[i]->metrics;
        uint64_t beat = METRIC_GET(m->heartbeat_ms);
        bool alive = now_ms < beat + HEARTBEAT_STALE_MS;
        all_alive = all_alive && alive;
        conns += METRIC_GET(m->connections);
        ws += METRIC_GET(m->ws_connections);
        json_array_append_new(workers,
                              json_pack("{s:I,s:b,s:I}", "id", (json_int_t)i, "alive", alive,
                                        "connections", (json_int_t)METRIC_GET(m->connections)));
    }
    /* A Redis outage degrades the node (no cross-node delivery) but local
     * service goes on: still 200. A stuck worker is 503. */
    bool redis_ok = b->bridge == NULL || bridge_healthy(b->bridge);
    *status = all_alive ? 200 : 503;
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:f,s:I,s:I,s:o,s:s}", "status", all_alive && redis_ok ? "ok" : "degraded",
        "node_id", b->node_id, "version", WSB_VERSION, "uptime_s", (double)now_ms / 1000.0,
        "connections", (json_int_t)conns, "websocket_connections", (json_int_t)ws, "workers",
        workers, "redis", b->bridge == NULL ? "off" : (redis_ok ? "ok" : "degraded"));
    if (b->bridge != NULL) {
        /* Which server is in use: after a Sentinel failover, the new master. */
        char addr[300];
        const char *mode = bridge_server(b->bridge, addr, sizeof addr);
        json_t *server = json_pack("{s:s,s:s}", "mode", mode, "addr", addr);
        if (b->cfg->redis_sentinels[0] != '\0') {
            json_object_set_new(server, "master_name", json_string(b->cfg->redis_master_name));
        }
        json_object_set_new(o, "redis_server", server);
    }
    return o;
}

void worker_metrics_text(ingress_ctx_t *ctx, sbuf_t *out)
{
    worker_t *w = ctx->owner;
    broker_t *b = w->env->process;
    worker_update_gauges(w); /* our own gauges, current to this turn */
    metrics_gauges_t g = {
        .topics = seqtab_count(b->seqtab),
        .uptime_seconds = (double)broker_uptime_ns(b) / 1e9,
        .workers = b->nworkers,
        .max_connections = b->cfg->max_connections,
    };
    metrics_t **all = xcalloc(b->nworkers, sizeof(metrics_t *));
    for (unsigned i = 0; i < b->nworkers; i++) {
        all[i] = &b->workers[i]->metrics;
    }
    metrics_render(all, b->nworkers, &g, out);
    seqtab_render_metrics(b->seqtab, out);
    stream_render_metrics(b->streams, b->topic_rules.n, out);
    if (b->presence != NULL) {
        presence_render_metrics(b->presence, out);
    }
    if (b->bridge != NULL) {
        bridge_render_metrics(b->bridge, out);
    }
    free(all);
}
