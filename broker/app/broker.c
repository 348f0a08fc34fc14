/* broker.c - workers, their listening sockets and their shutdown (see broker.h). */
#define _DEFAULT_SOURCE 1 /* SO_REUSEPORT is not POSIX */
#include "app/broker.h"

#include "app/worker.h"
#include "cluster/bridge_redis.h"
#include "cluster/redis_cluster.h"
#include "core/inbox.h"
#include "core/user_limits.h"
#include "ingress/resp_session.h"
#include "shared/log.h"
#include "shared/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

uint64_t broker_uptime_ns(const broker_t *b)
{
    return uv_hrtime() - b->started_ns;
}

static int resolve(const char *host, unsigned port, struct sockaddr_storage *out, socklen_t *outlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    (void)snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        log_error("cannot resolve host", "host=%s err=%s", log_quote(host),
                  log_quote(gai_strerror(rc)));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

void broker_log_addr_in_use(const char *proto, const char *where)
{
    char msg[128];
    (void)snprintf(msg, sizeof(msg), "address already in use: %s", where);
    log_error(msg, "proto=%s addr=%s why=%s", proto, where,
              log_quote("another process (another wsbroker?) listens on this address"));
}

static unsigned addr_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    } else {
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    }
}

/*
 * One listening socket per worker on the same address: with SO_REUSEPORT the
 * kernel spreads new connections over the workers' accept queues, so no
 * thread hands sockets to another. (libuv 1.44 cannot set SO_REUSEPORT, hence
 * the socket is made here and given to libuv with uv_tcp_open.) SO_REUSEADDR
 * lets a restart bind while old connections sit in TIME_WAIT.
 *
 * SO_REUSEPORT lets any socket of the same user join the port, another
 * wsbroker included, and the kernel would then split connections between two
 * processes that know nothing of each other. So the first socket (`first`)
 * binds and listens WITHOUT SO_REUSEPORT: that fails with EADDRINUSE while
 * any other socket listens on the address, with or without SO_REUSEPORT, and
 * from the moment it listens no socket without SO_REUSEPORT, and no socket
 * that waits to be listening before it sets it (another wsbroker), can bind
 * or listen there. Two brokers starting at once cannot both win either: the
 * kernel checks the port again at listen(), and the second listen() fails.
 * Only then is SO_REUSEPORT set on it (it still joins the group the kernel
 * forms at the next listen) so that this process's other workers can join
 * (`share`; false with one worker: then nothing else may ever join).
 *
 * Returns the fd, or -1 after logging why; a taken address is logged as
 * "address already in use: <addr>".
 */
static int open_listener(const struct sockaddr_storage *addr, socklen_t len, int backlog,
                         const char *where, const char *proto, bool first, bool share)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("cannot create socket", "addr=%s err=%s", where, log_quote(strerror(errno)));
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if ((!first && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, (const struct sockaddr *)addr, len) != 0 || listen(fd, backlog) != 0 ||
        (first && share && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)) {
        int err = errno;
        if (err == EADDRINUSE) {
            broker_log_addr_in_use(proto, where);
        } else {
            log_error("cannot listen", "addr=%s err=%s", where, log_quote(strerror(err)));
        }
        (void)close(fd);
        return -1;
    }
    return fd;
}

int broker_write_port_file(const char *path, unsigned port)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    int ok = fprintf(f, "%u\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        (void)unlink(tmp);
        return -1;
    }
    return 0;
}

static void make_node_id(broker_t *b)
{
    if (b->cfg->node_id != NULL && b->cfg->node_id[0] != '\0') {
        (void)snprintf(b->node_id, sizeof(b->node_id), "%s", b->cfg->node_id);
        return;
    }
    uint8_t rnd[6];
    random_bytes(rnd, sizeof(rnd));
    hex_encode(rnd, sizeof(rnd), b->node_id);
}

/* A worker's share of max_total_outbound: each worker counts only its own
 * connections' queued output (no shared counter on the delivery path), so
 * the broker-wide bound holds when each enforces bound / workers. */
static size_t outbound_share(uint64_t total, unsigned workers)
{
    uint64_t share = total / workers;
    if (share == 0) {
        return 1;
    }
    return share > SIZE_MAX ? SIZE_MAX : (size_t)share;
}

static unsigned worker_count(const config_t *cfg)
{
    if (cfg->workers > 0) {
        return cfg->workers;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* The core's wake hook: the worker's loop drains its inbox (any thread). */
static void wake_worker(core_worker_t *cw)
{
    worker_t *w = cw->owner;
    uv_async_send(&w->inbox_async);
}

/* Federation: the bridge gets its own configuration and the core, and
 * plugs itself into the core's federation hooks. */
static void start_bridge(broker_t *b)
{
    const config_t *cfg = b->cfg;
    bool sentinels = cfg->redis_sentinels[0] != '\0';
    bool cluster = cfg->redis_cluster[0] != '\0';
    if (cluster) {
        /* Redis Cluster: the first seed stands for it in logs. */
        rc_addr_t seed;
        const char *comma = strchr(cfg->redis_cluster, ',');
        size_t len =
            comma != NULL ? (size_t)(comma - cfg->redis_cluster) : strlen(cfg->redis_cluster);
        if (rc_parse_addr(cfg->redis_cluster, len, &seed) != 0) {
            abort(); /* validated at load (config_keys.c) */
        }
        memset(&b->redis_url, 0, sizeof b->redis_url);
        (void)snprintf(b->redis_url.buf, sizeof b->redis_url.buf, "%s", seed.host);
        b->redis_url.host = b->redis_url.buf;
        b->redis_url.port = seed.port;
    } else if (config_parse_redis_url(sentinels ? "redis://" : cfg->redis_url, &b->redis_url) !=
               0) {
        abort(); /* validated at load (config_keys.c) */
    }
    if (sentinels) {
        /* The master's credentials, which redis.url would carry. */
        b->redis_url.user = cfg->redis_user[0] != '\0' ? cfg->redis_user : NULL;
        b->redis_url.password = cfg->redis_password[0] != '\0' ? cfg->redis_password : NULL;
    }
    bridge_config_t bc = {
        .host = b->redis_url.host,
        .port = b->redis_url.port,
        .user = b->redis_url.user,
        .password = b->redis_url.password,
        .prefix = cfg->redis_prefix,
        .node_id = b->node_id,
        .sharded = cfg->redis_sharded || cluster, /* a cluster has sharded pub/sub only */
        .sharded_patterns = cfg->redis_sharded_patterns && !cluster,
        .clustered_history = b->history_rules.n > 0 || b->streams != NULL, /* + clustered streams */
        .queue_size = cfg->redis_queue_size,
        .max_data =
            cfg->max_http_body > cfg->max_message_size ? cfg->max_http_body : cfg->max_message_size,
        .reconnect_max_ms = cfg->redis_reconnect_max_ms,
        .presence_node_ttl_ms = cfg->presence_node_ttl_ms,
        .sentinels = sentinels ? cfg->redis_sentinels : NULL,
        .master_name = cfg->redis_master_name,
        .sentinel_password =
            cfg->redis_sentinel_password[0] != '\0' ? cfg->redis_sentinel_password : NULL,
        .cluster = cluster ? cfg->redis_cluster : NULL,
    };
    b->bridge = bridge_new(&bc, &b->core);
    admin_cluster_init(b);
    bridge_plug(b->bridge, &b->core);
}

/* Binds resp.host:resp.port on worker 0's loop (the RESP ingress), logs
 * "msg=listening proto=resp addr=..." and writes resp.port_file. Returns 0,
 * or -1 after logging why. */
static int start_resp(broker_t *b)
{
    const config_t *cfg = b->cfg;
    worker_t *w = b->workers[0];
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(cfg->resp_host, cfg->resp_port, &hints, &res);
    if (rc != 0) {
        log_error("cannot resolve resp.host", "host=%s err=%s", log_quote(cfg->resp_host),
                  log_quote(gai_strerror(rc)));
        return -1;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, res->ai_addr, res->ai_addrlen < sizeof(ss) ? res->ai_addrlen : sizeof(ss));
    rc = resp_listener_listen(&w->ingress, &w->net, res->ai_addr, (int)cfg->backlog);
    freeaddrinfo(res);
    char where[96] = "?";
    if (rc == UV_EADDRINUSE) {
        net_format_addr(&ss, where, sizeof(where));
        broker_log_addr_in_use("resp", where);
        return -1;
    }
    if (rc == 0 && resp_listener_sockname(&w->ingress, &ss) == 0) {
        net_format_addr(&ss, where, sizeof(where));
    }
    if (rc != 0) {
        log_error("cannot listen (resp)", "host=%s port=%s err=%s", log_quote(cfg->resp_host),
                  cfg->resp_port, log_quote(uv_strerror(rc)));
        return -1;
    }
    log_info("listening", "proto=resp addr=%s", where);
    if (cfg->resp_port_file[0] != '\0' &&
        broker_write_port_file(cfg->resp_port_file, addr_port(&ss)) != 0) {
        log_error("cannot write resp port file", "path=%s err=%s", log_quote(cfg->resp_port_file),
                  log_quote(strerror(errno)));
        return -1;
    }
    return 0;
}

void broker_ingress_config(const config_t *cfg, ingress_config_t *out)
{
    *out = (ingress_config_t){
        .auth_required = cfg->auth_required,
        .auth_timeout_ms = cfg->auth_timeout_ms,
        .auth_leeway_ms = cfg->auth_leeway_ms,
        .header_timeout_ms = cfg->header_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_subscriptions = cfg->max_subscriptions,
        .max_history_topics_per_subscribe = cfg->max_history_topics_per_subscribe,
        .max_message_size = cfg->max_message_size,
        .max_http_body = cfg->max_http_body,
        .max_outbound_bytes = cfg->max_outbound_bytes,
        .ping_interval_ms = cfg->ping_interval_ms,
        .rate_messages = cfg->rate_messages,
        .rate_burst = cfg->rate_burst,
        .rate_bytes = cfg->rate_bytes,
        .rate_action = cfg->rate_action,
        .presence_max_topics = cfg->presence_max_topics,
        .presence_max_members = cfg->presence_max_members,
        .max_connections_per_user = cfg->max_connections_per_user,
        .sys_conn_events = cfg->sys_conn_events,
        .compression_enabled = cfg->compression_enabled,
        .compression_min_size = cfg->compression_min_size,
    };
}

static uint64_t env_uptime_ns(const void *process)
{
    return broker_uptime_ns(process);
}

static void env_reload_tls(void *process)
{
    broker_reload_tls(process);
}

static void env_stop(void *process)
{
    broker_stop(process);
}

static void env_drained(void *process, worker_t *w)
{
    broker_worker_drained(process, w);
}

static bool env_all_drained(const void *process)
{
    const broker_t *b = process;
    return atomic_load_explicit(&b->drained, memory_order_acquire) == b->nworkers;
}

void broker_worker_env(broker_t *b)
{
    const config_t *cfg = b->cfg;
    b->worker_env = (worker_env_t){
        .cfg = cfg,
        .core = &b->core,
        .ingress_cfg = &b->ingress_cfg,
        .auth = &b->auth,
        .tls = b->tls,
        .connections = &b->connections,
        .seqtab = b->seqtab,
        .node_id = b->node_id,
        .web_root = b->web_root,
        .clustered_history = (b->history_rules.n > 0 || b->streams != NULL) && config_redis_on(cfg),
        .process = b,
        .uptime_ns = env_uptime_ns,
        .reload_tls = env_reload_tls,
        .stop = env_stop,
        .drained = env_drained,
        .all_drained = env_all_drained,
    };
}

int broker_init(broker_t *b, const config_t *cfg)
{
    memset(b, 0, sizeof(*b));
    b->cfg = cfg;
    b->started_ns = uv_hrtime();
    atomic_init(&b->drained, 0);
    atomic_init(&b->stopping, 0);
    atomic_init(&b->connections, 0);
    make_node_id(b);
    char herr[256];
    if (topic_rules_parse(cfg->topics, cfg->history, &b->topic_rules, herr, sizeof herr) != 0) {
        /* config_load() validated it already; this is a programming error. */
        log_error("bad topic rules", "err=%s", log_quote(herr));
        return -1;
    }
    topic_rules_history(&b->topic_rules, &b->history_rules);
    b->seqtab = seqtab_new(&b->history_rules, cfg->history_max_topics, cfg->history_max_bytes);
    if (topic_rules_any_presence(&b->topic_rules)) {
        b->presence = presence_new(cfg->presence_max_topics, cfg->presence_max_members);
    }
    b->streams = topic_rules_streams_new(&b->topic_rules);
    b->core.streams = b->streams;
    b->core.seqtab = b->seqtab;
    b->core.history_rules = &b->history_rules;
    b->core.topic_rules = &b->topic_rules;
    b->core.presence = b->presence;
    b->core.max_subscriptions = cfg->max_subscriptions;
    b->core.max_history_topics_per_subscribe = cfg->max_history_topics_per_subscribe;
    b->core.wake_cb = wake_worker;
    inbox_node_tag(b->node_id, b->core.inbox_tag); /* replies find this node (inbox.h) */
    b->core.node_id = b->node_id;
    broker_ingress_config(cfg, &b->ingress_cfg);
    if (cfg->web_root != NULL && cfg->web_root[0] != '\0') {
        char resolved[PATH_MAX];
        if (realpath(cfg->web_root, resolved) == NULL) {
            log_warn("web root unavailable: static files off", "web_root=%s err=%s",
                     log_quote(cfg->web_root), log_quote(strerror(errno)));
        } else {
            b->web_root = xstrdup(resolved);
        }
    }

    char err[512];
    auth_config_t acfg;
    config_auth(cfg, &acfg);
    if (auth_init(&b->auth, &acfg, err, sizeof err) != 0) {
        log_error("cannot load authentication keys", "why=%s", log_quote(err));
        return -1;
    }
    bool per_user_rate = strcmp(cfg->rate_per, "user") == 0;
    if (cfg->max_connections_per_user > 0 || per_user_rate) {
        b->auth.users = user_limits_new(cfg->max_connections_per_user, per_user_rate);
    }
    if (cfg->tls_cert[0] != '\0') {
        tls_files_t files = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca};
        b->tls = tls_server_new(&files, err, sizeof err);
        if (b->tls == NULL) {
            log_error("cannot load TLS certificate", "why=%s", log_quote(err));
            return -1;
        }
    }

    /* Zeroed: tls_addr is filled only when TLS is on, and the analyzer
     * cannot see that every later use is under the same condition. */
    struct sockaddr_storage addr;
    struct sockaddr_storage tls_addr;
    memset(&addr, 0, sizeof(addr));
    memset(&tls_addr, 0, sizeof(tls_addr));
    socklen_t addrlen = 0, tls_addrlen = 0;
    if (resolve(cfg->host, cfg->port, &addr, &addrlen) != 0 ||
        (b->tls != NULL && resolve(cfg->host, cfg->tls_port, &tls_addr, &tls_addrlen) != 0)) {
        return -1;
    }
    char tls_where[96] = "";
    if (b->tls != NULL) {
        net_format_addr(&tls_addr, tls_where, sizeof(tls_where));
    }
    unsigned n = worker_count(cfg);
    broker_worker_env(b);
    b->workers = xcalloc(n, sizeof(worker_t *));
    b->core.workers = xcalloc(n, sizeof(core_worker_t *));
    char where[96];
    net_format_addr(&addr, where, sizeof(where));
    for (unsigned i = 0; i < n; i++) {
        int fd = open_listener(&addr, addrlen, (int)cfg->backlog, where, "ws", i == 0, n > 1);
        if (fd < 0) {
            return -1;
        }
        if (i == 0 && addr_port(&addr) == 0) {
            /* --port 0: the other workers join the port the kernel picked. */
            socklen_t len = sizeof(addr);
            (void)getsockname(fd, (struct sockaddr *)&addr, &len);
            net_format_addr(&addr, where, sizeof(where));
        }
        int tls_fd = -1;
        if (b->tls != NULL) {
            tls_fd = open_listener(&tls_addr, tls_addrlen, (int)cfg->backlog, tls_where, "tls",
                                   i == 0, n > 1);
            if (tls_fd < 0) {
                (void)close(fd);
                return -1;
            }
            if (i == 0 && addr_port(&tls_addr) == 0) {
                socklen_t len = sizeof(tls_addr);
                (void)getsockname(tls_fd, (struct sockaddr *)&tls_addr, &len);
                net_format_addr(&tls_addr, tls_where, sizeof(tls_where));
            }
        }
        b->workers[i] = xmalloc(sizeof(worker_t));
        int rc = worker_init(b->workers[i], &b->worker_env, i, fd, tls_fd);
        b->nworkers = i + 1;
        b->core.workers[i] = &b->workers[i]->core;
        b->core.nworkers = b->nworkers;
        if (rc != 0) {
            log_error("cannot start worker", "worker=%u err=%s", i, log_quote(uv_strerror(rc)));
            return -1;
        }
        b->workers[i]->net.outbound_limit = outbound_share(cfg->max_total_outbound, n);
    }
    if (cfg->resp_port[0] != '\0' && start_resp(b) != 0) {
        return -1;
    }
    if (config_redis_on(cfg)) {
        start_bridge(b);
    }
    set_port(&addr, addr_port(&addr));
    log_info("listening", "addr=%s ws_path=%s node_id=%s workers=%u", where,
             log_quote(cfg->ws_path), b->node_id, n);
    if (b->tls != NULL) {
        log_info("listening (TLS)", "addr=%s cert=%s client_ca=%s", tls_where,
                 log_quote(cfg->tls_cert), log_quote(cfg->tls_ca));
        if (cfg->tls_port_file[0] != '\0' &&
            broker_write_port_file(cfg->tls_port_file, addr_port(&tls_addr)) != 0) {
            log_error("cannot write port file", "path=%s err=%s", log_quote(cfg->tls_port_file),
                      log_quote(strerror(errno)));
            return -1;
        }
    }
    if (!cfg->auth_required) {
        log_warn("authentication is off: anyone who can connect may subscribe and publish "
                 "within auth.anonymous_* (see SECURITY.md)",
                 "anonymous_subscribe=%s anonymous_publish=%s",
                 log_quote(cfg->auth_anonymous_subscribe), log_quote(cfg->auth_anonymous_publish));
    }
    if (cfg->port_file != NULL && cfg->port_file[0] != '\0' &&
        broker_write_port_file(cfg->port_file, addr_port(&addr)) != 0) {
        log_error("cannot write port file", "path=%s err=%s", log_quote(cfg->port_file),
                  log_quote(strerror(errno)));
        return -1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    worker_run(arg);
    return NULL;
}

void broker_run(broker_t *b)
{
    pthread_t *threads = xcalloc(b->nworkers, sizeof(pthread_t));
    /* The bridge and the other workers must not take the process signals:
     * worker 0 (this thread) handles them through libuv. Threads inherit
     * the mask they are created under. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (b->bridge != NULL && bridge_start(b->bridge) != 0) {
        broker_stop(b);
    }
    unsigned started = 1;
    for (unsigned i = 1; i < b->nworkers; i++) {
        if (pthread_create(&threads[i], NULL, worker_main, b->workers[i]) != 0) {
            log_error("cannot start worker thread", "worker=%u", i);
            broker_stop(b);
            break;
        }
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    worker_run(b->workers[0]);
    for (unsigned i = 1; i < started; i++) {
        pthread_join(threads[i], NULL);
    }
    if (started < b->nworkers) {
        /* Workers that never ran: run their loops here so they shut down too. */
        for (unsigned i = started; i < b->nworkers; i++) {
            worker_run(b->workers[i]);
        }
    }
    free(threads);
}

void broker_stop(broker_t *b)
{
    if (atomic_exchange(&b->stopping, 1) != 0) {
        return;
    }
    log_info("shutting down", "workers=%u", b->nworkers);
    if (b->bridge != NULL) {
        /* First the bridge: once its thread has ended nothing is injected
         * into an inbox, so the workers may close theirs when drained. */
        bridge_stop(b->bridge);
        bridge_join(b->bridge);
    }
    for (unsigned i = 0; i < b->nworkers; i++) {
        uv_async_send(&b->workers[i]->stop_async);
    }
}

void broker_worker_drained(broker_t *b, worker_t *w)
{
    (void)w;
    unsigned n = atomic_fetch_add_explicit(&b->drained, 1, memory_order_acq_rel) + 1;
    if (n == b->nworkers) {
        /* Everyone is drained: no connection is left to publish, so every
         * worker may now close its inbox and stop. */
        for (unsigned i = 0; i < b->nworkers; i++) {
            uv_async_send(&b->workers[i]->stop_async);
        }
    }
}

void broker_reload_tls(broker_t *b)
{
    if (b->tls == NULL) {
        log_info("SIGHUP: no TLS configured, nothing to reload", NULL);
        return;
    }
    char err[512];
    tls_files_t files = {b->cfg->tls_cert, b->cfg->tls_key, b->cfg->tls_ca};
    if (tls_server_reload(b->tls, &files, err, sizeof err) != 0) {
        log_error("TLS reload failed: keeping the previous certificate", "why=%s", log_quote(err));
        return;
    }
    log_info("TLS certificate reloaded", "cert=%s", log_quote(b->cfg->tls_cert));
}

void broker_free(broker_t *b)
{
    for (unsigned i = 0; i < b->nworkers; i++) {
        worker_free(b->workers[i]);
        free(b->workers[i]);
    }
    free(b->workers);
    free(b->core.workers);
    if (b->bridge != NULL) {
        bridge_free(b->bridge);
        b->bridge = NULL;
    }
    presence_free(b->presence);
    b->presence = NULL;
    if (b->seqtab != NULL) {
        seqtab_free(b->seqtab);
    }
    topic_rules_streams_free(&b->topic_rules, b->streams);
    b->streams = NULL;
    free(b->web_root);
    tls_server_free(b->tls);
    user_limits_free(b->auth.users); /* after the connections that held entries */
    b->auth.users = NULL;
    if (b->auth.ready) {
        auth_free(&b->auth);
    }
}
