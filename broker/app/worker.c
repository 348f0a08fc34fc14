/* worker.c - one worker's loop: listener, inbox, per-turn flush, shutdown (see worker.h). */
#include "app/worker.h"

#include "app/sys_stats.h"
#include "core/chist.h"
#include "core/router.h"
#include "core/seqtab.h"
#include "core/stream.h"
#include "core/xmsg.h"
#include "ingress/http_api.h"
#include "ingress/resp_session.h"
#include "ingress/sse_session.h"
#include "ingress/static_files.h"
#include "ingress/ws_session.h"
#include "net/conn.h"
#include "net/tls.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/ws_frame.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEARTBEAT_MS 1000

void worker_update_gauges(worker_t *w)
{
    METRIC_SET(w->metrics.connections, w->net.nconns);
    METRIC_SET(w->metrics.ws_connections, w->net.nws);
    METRIC_SET(w->metrics.subscriptions, trie_subscription_count(w->core.trie));
    METRIC_SET(w->metrics.patterns, trie_pattern_count(w->core.trie));
    METRIC_SET(w->metrics.resp_connections, resp_connection_count(&w->ingress));
    METRIC_SET(w->metrics.outbound_bytes, w->net.outbound_bytes);
}

/* The messages published (and clustered history answers come back) since
 * the last call reach this worker's subscribers' queues. */
static void deliver_inbox(worker_t *w)
{
    chist_drain(&w->core);
    router_drain(&w->core);
}

/* Runs once per loop turn, right before the loop would block: first the
 * messages published since the last turn reach this worker's subscribers,
 * then everything queued this turn goes out, in as few writes as possible. */
static void on_flush(uv_prepare_t *p)
{
    worker_t *w = p->data;
    deliver_inbox(w);
    w->net.read_run = NULL; /* a new turn: every connection's read budget is whole */
    while (w->net.dirty != NULL) {
        conn_t *c = w->net.dirty;
        w->net.dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->state == CONN_CLOSED) {
            if (c->handles_open == 0) {
                conn_free(c); /* its close callbacks ran while it was listed */
            }
            continue;
        }
        conn_flush(c);
    }
    METRIC_SET(w->metrics.outbound_bytes, w->net.outbound_bytes);
    /* A chunk collects one turn's frames (xmsg.h): the next turn's start
     * new slices anyway, since this flush wrote the queues out. */
    xmsg_chunker_close(&w->core.chunker);
    /* Publishes made since the check phase (timers, this flush) wake their
     * workers before this loop may block. */
    router_flush_wakes(&w->core);
}

/* Right after this turn's I/O callbacks: the publishes they made wake each
 * worker they pushed to once, however many there were (router.h). */
static void on_wake_check(uv_check_t *chk)
{
    worker_t *w = chk->data;
    router_flush_wakes(&w->core);
}

static void ingress_update_gauges(ingress_ctx_t *ctx)
{
    worker_update_gauges(ctx->owner);
}

static void ingress_watch_pressure(ingress_ctx_t *ctx)
{
    worker_watch_pressure(ctx->owner);
}

static bool ingress_origin_allowed(ingress_ctx_t *ctx, wsb_str_t origin)
{
    const worker_t *w = ctx->owner;
    return auth_origin_allowed(w->cfg, origin);
}

static const ingress_ops_t ingress_ops = {
    .update_gauges_cb = ingress_update_gauges,
    .watch_pressure_cb = ingress_watch_pressure,
    .healthz_cb = worker_healthz,
    .metrics_cb = worker_metrics_text,
    .origin_allowed_cb = ingress_origin_allowed,
    .admin_cb = worker_admin,
};

static void on_inbox(uv_async_t *a)
{
    /* Nothing to do here: waking up is enough, the prepare phase of this
     * turn drains the inbox before flushing. */
    (void)a;
}

static void on_stop(uv_async_t *a)
{
    worker_shutdown(a->data);
}

static void on_heartbeat(uv_timer_t *t)
{
    worker_t *w = t->data;
    for (conn_t *c = w->net.conns; c != NULL; c = c->next) {
        if (!c->writing) {
            outq_trim(&c->outq);
        }
        if (c->tls != NULL) {
            tls_conn_heartbeat(c->tls); /* a quiet one frees its own cipher context */
        }
    }
    METRIC_SET(w->metrics.heartbeat_ms, w->env->uptime_ns(w->env->process) / 1000000);
    worker_update_gauges(w);
    if (w->index == 0) {
        /* Quiet topics' history past its ttl goes even without publishes. */
        seqtab_expire(w->env->seqtab, uv_now(&w->loop));
        /* And streams' logs past theirs (stream.h). */
        const core_t *core = w->core.core;
        for (unsigned i = 0; core->streams != NULL && i < core->topic_rules->n; i++) {
            if (core->streams[i] != NULL) {
                stream_expire(core->streams[i], uv_now(&w->loop));
            }
        }
        sys_stats_env_t env = {
            .node_id = w->env->node_id,
            .interval_ms = w->cfg->sys_stats_interval_ms,
            .uptime_s = (double)w->env->uptime_ns(w->env->process) / 1e9,
        };
        sys_stats_tick(&w->sys_stats, &w->core, &env);
    }
}

/* Polling is cheap here (one relaxed load per worker) and only runs while a
 * publisher is paused; a wake-up from each draining worker would cost more. */
#define PRESSURE_POLL_MS 1

static void on_pressure(uv_timer_t *t)
{
    worker_t *w = t->data;
    if (w->net.paused != NULL && !core_inbox_relieved(&w->core)) {
        return;
    }
    /* A RESP publisher runs the commands it held back at this turn's flush
     * (conn.h), and may be paused again there (which restarts the timer). */
    uv_timer_stop(&w->pressure_timer);
    while (w->net.paused != NULL) {
        conn_resume_publisher(w->net.paused);
    }
}

static void on_tick(uv_timer_t *t)
{
    worker_t *w = t->data;
    uint64_t now = net_now(&w->net);
    conn_t *next;
    /* A deadline callback may close its own connection (which unlinks it but
     * frees it only in a later loop phase), never another one: walking on
     * from the saved successor is safe. */
    for (conn_t *c = w->net.conns; c != NULL; c = next) {
        next = c->next;
        if (c->deadline_ms != 0 && now >= c->deadline_ms) {
            c->deadline_ms = 0;
            conn_on_deadline(c);
        }
    }
}

void worker_watch_pressure(worker_t *w)
{
    if (!uv_is_active((uv_handle_t *)&w->pressure_timer) && !w->net.shutting_down) {
        uv_timer_start(&w->pressure_timer, on_pressure, PRESSURE_POLL_MS, PRESSURE_POLL_MS);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    worker_t *w = listener->data;
    if (status < 0) {
        log_warn("accept failed", "worker=%u err=%s", w->index, uv_err_name(status));
        return;
    }
    conn_accept(&w->net, listener, listener == (uv_stream_t *)&w->tls_listener);
}

static void on_sighup(uv_signal_t *sig, int signum)
{
    (void)signum;
    worker_t *w = sig->data;
    w->env->reload_tls(w->env->process);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    worker_t *w = sig->data;
    const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
    if (w->net.shutting_down) {
        /* Already draining (bounded by shutdown_timeout): not worth a line each. */
        log_debug("signal received while shutting down", "signal=%s", name);
        return;
    }
    log_info("signal received", "signal=%s", name);
    w->env->stop(w->env->process);
}

static void on_worker_handle_closed(uv_handle_t *h)
{
    worker_t *w = h->data;
    w->handles_open--;
}

static void close_handle(worker_t *w, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        h->data = w;
        uv_close(h, on_worker_handle_closed);
    }
}

static void close_worker_handles(worker_t *w)
{
    /* The flush frees connections closed while they sat on the dirty list
     * (conn.c on_handle_closed); it will not run again, so free them here:
     * a peer's reset during the drain otherwise leaked the conn. The others
     * are freed by their close callbacks now that they are off the list. */
    while (w->net.dirty != NULL) {
        conn_t *c = w->net.dirty;
        w->net.dirty = c->dirty_next;
        c->dirty = false;
        c->dirty_next = NULL;
        if (c->state == CONN_CLOSED && c->handles_open == 0) {
            conn_free(c);
        }
    }
    router_flush_wakes(&w->core); /* other workers may still be draining */
    close_handle(w, (uv_handle_t *)&w->flush_prepare);
    close_handle(w, (uv_handle_t *)&w->wake_check);
    close_handle(w, (uv_handle_t *)&w->inbox_async);
    close_handle(w, (uv_handle_t *)&w->stop_async);
    close_handle(w, (uv_handle_t *)&w->shutdown_timer);
    close_handle(w, (uv_handle_t *)&w->heartbeat);
    close_handle(w, (uv_handle_t *)&w->pressure_timer);
    close_handle(w, (uv_handle_t *)&w->tick);
    if (!w->admin_closed) {
        w->admin_async.data = w;
        admin_worker_close(w, on_worker_handle_closed);
    }
    if (w->index == 0) {
        /* Closing the last uv_signal_t for a signal puts back its default
         * action, so a second SIGTERM arriving from here to exit() would kill
         * the process and turn a clean shutdown into "terminated by signal".
         * The drain is already bounded by shutdown_timeout; block the two
         * signals instead (the other threads block everything already). */
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &stop, NULL);
        close_handle(w, (uv_handle_t *)&w->sig_int);
        close_handle(w, (uv_handle_t *)&w->sig_term);
        close_handle(w, (uv_handle_t *)&w->sig_hup);
    }
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    worker_t *w = t->data;
    log_warn("shutdown timeout: closing remaining connections", "worker=%u connections=%zu",
             w->index, w->net.nconns);
    while (w->net.conns != NULL) {
        conn_close(w->net.conns);
    }
}

void worker_shutdown(worker_t *w)
{
    if (!w->net.shutting_down) {
        /* What was published before the stop and still waits in the inbox
         * is queued ahead of the close frames below (as on_flush would at
         * the end of this turn), so a subscriber gets it before its 1001. */
        deliver_inbox(w);
        w->net.shutting_down = true;
        log_debug("worker shutting down", "worker=%u connections=%zu", w->index, w->net.nconns);
        if (w->listening) {
            close_handle(w, (uv_handle_t *)&w->listener);
        }
        resp_listener_shutdown(&w->ingress);
        if (w->tls_listening) {
            close_handle(w, (uv_handle_t *)&w->tls_listener);
        }
        for (conn_t *c = w->net.conns; c != NULL; c = c->next) {
            if (c->state == CONN_WS) {
                conn_ws_close(c, WSB_WS_CLOSE_GOING_AWAY, "server shutting down", false);
            } else if (c->state == CONN_RESP || c->state == CONN_SSE) {
                conn_resp_shutdown(c);
            } else if (c->state == CONN_HTTP && !c->writing && outq_bytes(&c->outq) == 0 &&
                       c->http_pub == NULL) {
                /* Idle keep-alive connection. One whose response waits for
                 * Redis gets it (the bridge, stopped first, fails what is
                 * in flight) with Connection: close, then lingers. */
                conn_linger(c);
            }
        }
        uv_timer_start(&w->shutdown_timer, on_shutdown_timeout, w->cfg->shutdown_timeout_ms, 0);
        while (w->net.paused != NULL) {
            conn_resume_publisher(w->net.paused); /* they must read their peers' close */
        }
        uv_timer_stop(&w->pressure_timer);
    }
    if (w->net.nconns == 0 && !w->drained) {
        w->drained = true;
        uv_timer_stop(&w->shutdown_timer);
        w->env->drained(w->env->process, w);
    }
    /* Other workers may publish into our inbox until they have drained too:
     * the inbox stays open until then (see broker.h). */
    if (w->drained && w->env->all_drained(w->env->process)) {
        close_worker_handles(w);
    }
}

/* An HTTP connection closes with a response owed: Redis's answer or the
 * file read comes back unowned. */
static void http_cancel(conn_t *c)
{
    if (c->http_pub != NULL) {
        http_api_cancel(c);
    }
    static_cancel(c);
}

/* Before a connection's input: what was published earlier is delivered first. */
static void before_input(net_t *net)
{
    worker_t *w = net->owner;
    router_drain(&w->core);
}

/* ---- what net/ asks of the worker (net/net.h) ---- */

static void net_update_gauges(net_t *net)
{
    worker_update_gauges(net->owner);
}

static void net_watch_pressure(net_t *net)
{
    worker_watch_pressure(net->owner);
}

static void net_drained(net_t *net)
{
    worker_shutdown(net->owner);
}

static const net_hooks_t net_hooks = {
    .update_gauges = net_update_gauges,
    .watch_pressure = net_watch_pressure,
    .drained = net_drained,
};

static bool admit_ip_acquire(void *ctx, const uint8_t ip[16])
{
    return auth_ip_acquire(ctx, ip);
}

static void admit_ip_release(void *ctx, const uint8_t ip[16])
{
    auth_ip_release(ctx, ip);
}

static bool admit_handshake(void *ctx, uint64_t now_ns)
{
    return auth_handshake_allowed(ctx, now_ns);
}

/* What net/ reads of the configuration and of the process (net/net.h). */
static void net_setup(worker_t *w, const worker_env_t *env)
{
    const config_t *cfg = env->cfg;
    net_t *net = &w->net;
    net->loop = &w->loop;
    net->owner = w;
    net->lim = (net_limits_t){
        .header_timeout_ms = cfg->header_timeout_ms,
        .close_timeout_ms = cfg->close_timeout_ms,
        .max_outbound_bytes = cfg->max_outbound_bytes,
        .max_connections = cfg->max_connections,
        .max_header_size = cfg->max_header_size,
        .max_http_body = cfg->max_http_body,
        .ws_path = cfg->ws_path,
        .echo_path = cfg->echo_path,
        .trusted = cfg->trusted,
        .ntrusted = cfg->ntrusted,
    };
    net->admit = (net_admission_t){
        .connections = env->connections,
        .ip_acquire = admit_ip_acquire,
        .ip_release = admit_ip_release,
        .handshake_allowed = admit_handshake,
        .ctx = env->auth,
    };
    net->hooks = &net_hooks;
    net->metrics = &w->metrics;
    net->tls = env->tls;
    net->in_fanout = &w->core.in_fanout;
}

/* What net/ calls for the HTTP and WebSocket modes (conn.h). */
static const conn_handlers_t conn_handlers = {
    .before_input = before_input,
    .ws_feed = session_feed,
    .ws_deadline = session_on_deadline,
    .ws_free = session_free,
    .http_cancel = http_cancel,
    .ws_upgrade = ws_upgrade,
    .http_request = http_api_handle,
    .http_body_too_large = http_api_body_too_large,
};

void worker_setup_contexts(worker_t *w, const worker_env_t *env, unsigned index)
{
    net_setup(w, env);
    w->core.core = env->core;
    w->core.index = index;
    w->core.trie = trie_new();
    w->core.loop = &w->loop;
    w->core.metrics = &w->metrics;
    w->core.owner = w;
    w->ingress = (ingress_ctx_t){
        .core = &w->core,
        .metrics = &w->metrics,
        .cfg = env->ingress_cfg,
        .auth = env->auth,
        .node_id = env->node_id,
        .web_root = env->web_root,
        .index = index,
        .ops = &ingress_ops,
        .owner = w,
    };
    w->net.ingress = &w->ingress;
}

int worker_init(worker_t *w, const worker_env_t *env, unsigned index, int fd, int tls_fd)
{
    conn_set_handlers(&conn_handlers);
    sse_register();
    memset(w, 0, offsetof(worker_t, net) + offsetof(net_t, read_buf));
    w->env = env;
    w->cfg = env->cfg;
    w->index = index;
    metrics_init(&w->metrics);
    int rc = uv_loop_init(&w->loop);
    if (rc != 0) {
        return rc;
    }
    worker_setup_contexts(w, env, index);
    xqueue_init(&w->core.inbox, w->cfg->worker_queue_size);
    if (env->clustered_history) {
        /* Ops in flight are bounded by redis.queue_size (chist_redis.h). */
        xqueue_init(&w->core.chist_done, w->cfg->redis_queue_size);
    }
    uv_prepare_init(&w->loop, &w->flush_prepare);
    w->flush_prepare.data = w;
    uv_prepare_start(&w->flush_prepare, on_flush);
    uv_check_init(&w->loop, &w->wake_check);
    w->wake_check.data = w;
    uv_check_start(&w->wake_check, on_wake_check);
    interest_init(&w->core.interest);
    uv_async_init(&w->loop, &w->inbox_async, on_inbox);
    uv_async_init(&w->loop, &w->stop_async, on_stop);
    w->inbox_async.data = w;
    w->stop_async.data = w;
    uv_timer_init(&w->loop, &w->shutdown_timer);
    w->shutdown_timer.data = w;
    uv_timer_init(&w->loop, &w->heartbeat);
    w->heartbeat.data = w;
    uv_timer_start(&w->heartbeat, on_heartbeat, 0, HEARTBEAT_MS);
    uv_timer_init(&w->loop, &w->pressure_timer);
    w->pressure_timer.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, WORKER_TICK_MS, WORKER_TICK_MS);
    admin_worker_init(w);
    w->handles_open = 9;
    if (index == 0) {
        uv_signal_init(&w->loop, &w->sig_int);
        uv_signal_init(&w->loop, &w->sig_term);
        uv_signal_init(&w->loop, &w->sig_hup);
        w->sig_int.data = w;
        w->sig_term.data = w;
        w->sig_hup.data = w;
        w->handles_open += 3;
        uv_signal_start(&w->sig_int, on_signal, SIGINT);
        uv_signal_start(&w->sig_term, on_signal, SIGTERM);
        uv_signal_start(&w->sig_hup, on_sighup, SIGHUP);
    }
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    w->handles_open++;
    w->listening = true;
    rc = uv_tcp_open(&w->listener, fd);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&w->listener, (int)w->cfg->backlog, on_connection);
    }
    if (tls_fd >= 0) {
        uv_tcp_init(&w->loop, &w->tls_listener);
        w->tls_listener.data = w;
        w->handles_open++;
        w->tls_listening = true;
        int trc = uv_tcp_open(&w->tls_listener, tls_fd);
        if (trc == 0) {
            trc = uv_listen((uv_stream_t *)&w->tls_listener, (int)w->cfg->backlog, on_connection);
        }
        rc = rc != 0 ? rc : trc;
    }
    return rc;
}

void worker_run(worker_t *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

void worker_free(worker_t *w)
{
    if (w->handles_open > 0) {
        /* Start-up failed before the loop ran: close what init opened. */
        close_worker_handles(w);
        close_handle(w, (uv_handle_t *)&w->listener);
        if (w->tls_listening) {
            close_handle(w, (uv_handle_t *)&w->tls_listener);
        }
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
    if (w->ingress.resp != NULL) {
        resp_listener_shutdown(&w->ingress);
        uv_run(&w->loop, UV_RUN_DEFAULT); /* its close callback */
        resp_listener_free(&w->ingress);
    }
    /* Messages still in the inbox were never delivered: release them. */
    xmsg_t *m;
    while ((m = xqueue_pop(&w->core.inbox)) != NULL) {
        frame_buf_unref(xmsg_worker_buf(m, w->index));
    }
    xqueue_destroy(&w->core.inbox);
    xmsg_chunker_close(&w->core.chunker);
    interest_free(&w->core.interest);
    admin_worker_free(w);
    chist_worker_free(&w->core);
    trie_free(w->core.trie);
    sys_stats_free(w->sys_stats);
    static_cache_free(w->ingress.static_cache);
    w->ingress.static_cache = NULL;
    if (uv_loop_close(&w->loop) != 0) {
        log_warn("event loop closed with handles open", "worker=%u", w->index);
    }
}
