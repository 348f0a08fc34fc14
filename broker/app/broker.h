/*
 * broker.h - the process: configuration, the workers (one event loop per
 * thread, each with its own SO_REUSEPORT listening socket), the per-topic
 * sequence table they share, and their coordinated shutdown.
 *
 * Worker 0 runs on the calling thread and handles SIGINT/SIGTERM, so a
 * broker with workers=1 is a plain single-threaded program (the easiest to
 * debug). On a signal every worker drains its connections; each worker
 * closes its last handles only once every worker has drained, because until
 * then another worker may still push into its inbox.
 */
#ifndef WSB_BROKER_BROKER_H
#define WSB_BROKER_BROKER_H

#include "app/config.h"
#include "app/worker.h"
#include "core/auth.h"
#include "core/core.h"
#include "core/history.h"
#include "core/presence.h"
#include "core/seqtab.h"
#include "core/topic_rules.h"
#include "ingress/ingress.h"
#include "net/tls.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct bridge_s bridge_t;

typedef struct broker_s {
    const config_t *cfg;
    unsigned nworkers;
    worker_t **workers;
    seqtab_t *seqtab;
    topic_rules_t topic_rules;     /* parsed from cfg->topics and cfg->history */
    history_rules_t history_rules; /* topic_rules' history part; seqtab borrows it */
    stream_t **streams;            /* [topic_rules.n] (core.h); NULL: no stream rule */
    presence_t *presence;          /* members of presence topics; NULL when no rule has them */
    bridge_t *bridge;              /* federation through Redis; NULL when redis.url is "" */
    redis_url_t redis_url;         /* parsed redis.url: the bridge borrows its strings */
    core_t core;                   /* the pub/sub core's view of the process (core/core.h) */
    ingress_config_t ingress_cfg;  /* the ingresses' view of cfg (ingress/ingress.h) */
    char node_id[72];
    char *web_root; /* realpath of cfg->web_root, NULL when static files are off */
    uint64_t started_ns;
    _Atomic unsigned drained; /* workers with no connection left after shutdown began */
    _Atomic int stopping;
    _Atomic size_t connections; /* over all workers, for max_connections */
    auth_t auth;                /* keys, anonymous permissions, admission limits */
    tls_server_t *tls;          /* NULL: no TLS listener */
    worker_env_t worker_env;    /* what every worker gets of the above (worker.h) */
} broker_t;

/* Reloads the TLS certificate and key (SIGHUP): new handshakes use the new
 * pair, established connections are untouched; a failure is logged and the
 * old pair stays. */
void broker_reload_tls(broker_t *b);

/*
 * Resolves the address, binds and listens with one socket per worker, writes
 * the port file, and prepares the workers. Returns 0, or -1 after logging
 * why (the caller exits 1); broker_free() is needed either way.
 */
int broker_init(broker_t *b, const config_t *cfg);

/* Runs every worker until shutdown; returns when all threads have ended. */
void broker_run(broker_t *b);

/* Asks every worker to shut down (any thread). */
void broker_stop(broker_t *b);

/* Called by a worker whose connections are all gone during shutdown. */
void broker_worker_drained(broker_t *b, worker_t *w);

void broker_free(broker_t *b);

/* Fills b->worker_env from `b` (broker_init does, before the workers). */
void broker_worker_env(broker_t *b);

/* The ingresses' view of `cfg` (rate_action borrowed from it). */
void broker_ingress_config(const config_t *cfg, ingress_config_t *out);

/* Logs that a listening address (`where`, as net_format_addr writes it) is
 * taken by another process: "address already in use: <where>", at error
 * level. `proto` names the listener ("ws", "tls", "resp"). */
void broker_log_addr_in_use(const char *proto, const char *where);

/* Atomically (temporary file + rename) writes a bound port for scripts that
 * started us with port 0 (--port-file, tls.port_file, resp.port_file).
 * Returns 0 or -1. */
int broker_write_port_file(const char *path, unsigned port);

/* Nanoseconds since start (monotonic). */
uint64_t broker_uptime_ns(const broker_t *b);

/* admin.c: the admin API's side of federation (the admin bus), after the
 * bridge was made and before it starts. */
void admin_cluster_init(broker_t *b);

#endif
