/*
 * ingress.h - what the ingresses (the WebSocket session, its clustered
 * history part, the HTTP API, the RESP session) need of the process and of
 * their worker, so that they include nothing of app/ or cluster/: app/ fills
 * one ingress_config_t per process and one ingress_ctx_t per worker (embedded
 * in worker_t), and answers ingress_ctx() for a connection.
 *
 * The pub/sub itself is core/ (pubsub.h on ctx->core); what only the process
 * knows (the health and metrics of every worker and of federation) comes
 * through ctx->ops.
 */
#ifndef WSB_BROKER_INGRESS_H
#define WSB_BROKER_INGRESS_H

#include "core/auth.h"
#include "core/core.h"
#include "net/conn.h"
#include "net/net.h"
#include "shared/metrics.h"
#include "shared/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct conn_s conn_t;
typedef struct ingress_ctx_s ingress_ctx_t;

/* The limits and settings the ingresses apply (app/ copies them from
 * config_t; rate_action is borrowed from it). */
typedef struct ingress_config_s {
    bool auth_required;
    uint64_t auth_timeout_ms;
    uint64_t auth_leeway_ms;
    uint64_t header_timeout_ms; /* RESP: a request begun must be complete within this */
    uint64_t idle_timeout_ms;   /* WebSocket, RESP without subscriptions */
    uint32_t max_subscriptions;
    uint32_t max_history_topics_per_subscribe;
    uint64_t max_message_size;
    uint64_t max_http_body;
    uint64_t max_outbound_bytes;
    uint64_t ping_interval_ms;
    uint32_t rate_messages; /* per second per WebSocket; 0 = off */
    uint32_t rate_burst;
    uint64_t rate_bytes;
    const char *rate_action; /* "error" or "close" */
    uint32_t presence_max_topics;
    uint32_t presence_max_members;
    uint32_t max_connections_per_user; /* 0 = unlimited (auth->users counts) */
    bool sys_conn_events;              /* publish $sys.conn.connect / disconnect */
    bool compression_enabled;          /* negotiate permessage-deflate */
    uint64_t compression_min_size;     /* below: sent uncompressed */
} ingress_config_t;

/* The admin API (admin_api.h): one query, run on every worker. */
typedef enum { ADMIN_TOPICS = 0, ADMIN_CONNECTIONS, ADMIN_DISCONNECT } admin_kind_t;

typedef struct admin_query_s {
    admin_kind_t kind;
    uint32_t limit; /* ADMIN_CONNECTIONS: page size */
    bool has_after; /* ADMIN_CONNECTIONS: the page starts after (node, worker, no) */
    char after_node[65];
    unsigned after_worker;
    uint64_t after_no;
    char client[CORE_CLIENT_ID_MAX + 1]; /* ADMIN_DISCONNECT by client id; "" = by user */
    char user[129];                      /* ADMIN_DISCONNECT by user */
    uint32_t ban_s;                      /* ADMIN_DISCONNECT by user: ban for this long */
} admin_query_t;

struct admin_wait_s;

/* What only app/ can answer. Worker thread of `ctx`. */
typedef struct ingress_ops_s {
    /* Mirrors the worker's gauges (connections, subscriptions...) into its
     * metrics. */
    void (*update_gauges_cb)(ingress_ctx_t *ctx);
    /* Starts watching the inboxes for the publishers paused on this worker. */
    void (*watch_pressure_cb)(ingress_ctx_t *ctx);
    /* GET /healthz: the JSON body (owned by the caller) and *status (200,
     * or 503 when a worker is stuck). */
    json_t *(*healthz_cb)(ingress_ctx_t *ctx, int *status);
    /* GET /metrics: appends the Prometheus text of the process to `out`. */
    void (*metrics_cb)(ingress_ctx_t *ctx, sbuf_t *out);
    /* A WebSocket upgrade's Origin header (origin.p NULL: none) is allowed
     * (allowed_origins, allow_missing_origin). */
    bool (*origin_allowed_cb)(ingress_ctx_t *ctx, wsb_str_t origin);
    /* The admin API: runs admin_api_part(`q`) on every worker, each on its
     * own thread, then admin_api_finish() with their parts on this worker's
     * thread. False when it cannot start (too many in flight, shutting
     * down): nothing was taken over. */
    bool (*admin_cb)(ingress_ctx_t *ctx, const admin_query_t *q, struct admin_wait_s *wait);
} ingress_ops_t;

struct ingress_ctx_s {
    core_worker_t *core; /* this worker's part of the pub/sub core */
    metrics_t *metrics;  /* this worker's */
    const ingress_config_t *cfg;
    auth_t *auth;         /* process-wide: keys, anonymous permissions */
    const char *node_id;  /* this node */
    const char *web_root; /* static files; NULL: off */
    unsigned index;       /* the worker's number */
    uint64_t next_client_seq;
    struct static_cache_s *static_cache; /* static_files.c's, NULL until the first file */
    const ingress_ops_t *ops;
    struct resp_listener_s *resp; /* the RESP ingress: worker 0 only, when resp.port is set */
    void *owner;                  /* the worker, for ops */
};

/* The context of the worker that owns `c` (app/ hangs it on the worker's net_t). */
static inline ingress_ctx_t *ingress_ctx(const conn_t *c)
{
    return (ingress_ctx_t *)c->net->ingress;
}

/* Milliseconds of the worker's loop clock. */
static inline uint64_t ingress_now(const ingress_ctx_t *ctx)
{
    return core_now(ctx->core);
}

#endif
