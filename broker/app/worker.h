/*
 * worker.h - one worker: an event loop on its own thread (worker 0 on the
 * main thread) with its own listening socket (SO_REUSEPORT), connections,
 * subscription trie, inbox of published messages, metrics, and the
 * once-per-loop-turn flush of queued output.
 *
 * Nothing here is shared between workers except through broker_t (the
 * sequence table, the inboxes, the metrics read by /metrics): a connection,
 * its session and its subscriptions belong to one worker for their life.
 *
 * Lifetime: worker_init() (on the main thread, before the worker's thread
 * starts) -> worker_run() on the worker's thread -> worker_free() after the
 * thread ended. The worker owns its connections; each connection is freed in
 * its last close callback.
 */
#ifndef WSB_BROKER_WORKER_H
#define WSB_BROKER_WORKER_H

#include "app/config.h"
#include "core/core.h"
#include "ingress/ingress.h"
#include "net/net.h"
#include "shared/metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct conn_s conn_t;
typedef struct seqtab_s seqtab_t;
typedef struct worker_s worker_t;

/* What the process gives its workers (app/broker.c fills one for all of
 * them), so that a worker does not know broker_t: the shared state its
 * contexts point at, and what only the process can do. The hooks run on
 * any worker's thread. */
typedef struct worker_env_s {
    const config_t *cfg;
    core_t *core;                        /* the pub/sub core's process part */
    const ingress_config_t *ingress_cfg; /* the ingresses' view of cfg */
    auth_t *auth;                        /* keys, admission limits */
    tls_server_t *tls;                   /* NULL: no TLS listener */
    _Atomic size_t *connections;         /* every worker's, for max_connections */
    seqtab_t *seqtab;                    /* expired by worker 0's heartbeat */
    const char *node_id;
    const char *web_root;   /* NULL: static files off */
    bool clustered_history; /* history rules with redis.url: ops come back from Redis */
    void *process;          /* the broker, for the hooks (and status.c) */
    /* Nanoseconds since start (the heartbeat gauge). */
    uint64_t (*uptime_ns)(const void *process);
    /* SIGHUP on worker 0: reload the TLS certificate. */
    void (*reload_tls)(void *process);
    /* SIGINT/SIGTERM on worker 0: every worker shuts down. */
    void (*stop)(void *process);
    /* `w` has no connection left during shutdown. */
    void (*drained)(void *process, worker_t *w);
    /* Every worker has drained: inboxes may close. */
    bool (*all_drained)(const void *process);
} worker_env_t;

/* Connection timeouts fire at most this late: one timer per worker walks the
 * connections' deadlines instead of one uv_timer_t per connection (152 bytes
 * each, the largest item of an idle connection's memory). */
#define WORKER_TICK_MS 50

/* Laid out by purpose, not size; the inbox is cache-line aligned on purpose. */
typedef struct worker_s { // NOLINT(clang-analyzer-optin.performance.Padding)
    uv_loop_t loop;
    const worker_env_t *env;
    const config_t *cfg; /* env->cfg */
    unsigned index;      /* worker number, 0 .. workers-1 */
    uv_tcp_t listener;
    uv_tcp_t tls_listener;      /* when TLS is configured (tls_listening) */
    uv_signal_t sig_hup;        /* worker 0 only: reloads the TLS certificate */
    uv_prepare_t flush_prepare; /* delivers the inbox and writes what callbacks queued */
    uv_async_t inbox_async;     /* another worker pushed to our inbox */
    uv_check_t wake_check;      /* wakes the workers this turn's publishes pushed to */
    uv_async_t stop_async;      /* shutdown requested / every worker drained */
    uv_signal_t sig_int;        /* worker 0 only */
    uv_signal_t sig_term;       /* worker 0 only */
    uv_timer_t shutdown_timer;
    uv_timer_t heartbeat;
    uv_timer_t pressure_timer; /* resumes paused publishers once inboxes drained */
    uv_timer_t tick;           /* fires connections' deadlines (WORKER_TICK_MS) */
    int handles_open;          /* worker handles not yet closed */
    /* The pub/sub core's part of this worker: trie, inbox, the clustered
     * history ops coming back, in_fanout (core/core.h). */
    core_worker_t core;
    /* What the ingresses see of this worker (ingress/ingress.h). */
    ingress_ctx_t ingress;

    metrics_t metrics;

    /* The admin API's mailbox (admin.c): queries and their merges to run
     * on this worker's thread, posted by any thread under admin_lock. */
    uv_async_t admin_async;
    pthread_mutex_t admin_lock;
    struct admin_msg_s *admin_head, *admin_tail;
    bool admin_closed; /* admin_async is closing: posts run elsewhere */

    struct sys_stats_s *sys_stats; /* worker 0: $sys.node.<id>.stats state (sys_stats.h) */
    bool drained;                  /* reported to env->drained */
    bool listening;
    bool tls_listening;

    /* Its connections, their buffers and bounds (net/net.h); last, as its
     * buffers are not zeroed at init. */
    net_t net;
} worker_t;

/* Prepares worker `index` of the process `env` with the bound, listening socket `fd` and,
 * unless -1, the TLS one `tls_fd` (owned from now on). Runs on the main
 * thread. 0 or a UV_E* code. */
int worker_init(worker_t *w, const worker_env_t *env, unsigned index, int fd, int tls_fd);

/* Points the worker's core, ingress and net contexts at `env`, its loop and
 * its metrics (a new trie for the core). Part of worker_init; unit tests
 * call it to drive a worker whose loop does not run. */
void worker_setup_contexts(worker_t *w, const worker_env_t *env, unsigned index);

/* Runs the worker's loop until it has shut down. */
void worker_run(worker_t *w);

/* Stops accepting, sends close 1001 to every WebSocket, lets output drain up
 * to shutdown_timeout, then closes what remains. Idempotent; own thread only
 * (other threads use env->stop). */
void worker_shutdown(worker_t *w);

/* Releases what the worker owns, after its loop has ended. */
void worker_free(worker_t *w);

/* Starts watching the workers' inboxes for the publishers paused on `w`;
 * they are resumed when every inbox is back under its low mark. */
void worker_watch_pressure(worker_t *w);

/* Mirrors gauges (connections, subscriptions, ...) into the metrics. */
void worker_update_gauges(worker_t *w);

/* admin.c: the worker's admin mailbox (opened by worker_init, closed with
 * the worker's handles, freed by worker_free), and ingress_ops_t.admin_cb. */
void admin_worker_init(worker_t *w);
void admin_worker_close(worker_t *w, uv_close_cb cb);
void admin_worker_free(worker_t *w);
bool worker_admin(ingress_ctx_t *ctx, const admin_query_t *q, struct admin_wait_s *wait);

/* GET /healthz and GET /metrics of the process (status.c), for the HTTP API
 * through ingress_ops_t. */
json_t *worker_healthz(ingress_ctx_t *ctx, int *status);
void worker_metrics_text(ingress_ctx_t *ctx, sbuf_t *out);

#endif
