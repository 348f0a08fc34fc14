/* worker.c - one worker's loop: listener, inbox, per-turn flush, shutdown (see worker.h). */
#include "app/worker.h"

#include "app/broker.h"
#include "app/sys_stats.h"
#include "core/chist.h"
#include "core/router.h"
#include "core/seqtab.h"
#include "core/xmsg.h"
#include "ingress/http_api.h"
#include "ingress/resp_session.h"
#include "ingress/static_files.h"
#include "ingress/ws_session.h"
#include "net/conn.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/ws_frame.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEARTBEAT_MS 1000

uint64_t worker_now(const worker_t *s)
{
    return uv_now(&s->loop);
}

void worker_mark_dirty(worker_t *s, conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = s->dirty;
        s->dirty = c;
    }
}

void worker_update_gauges(worker_t *s)
{
    METRIC_SET(s->metrics.connections, s->nconns);
    METRIC_SET(s->metrics.ws_connections, s->nws);
    METRIC_SET(s->metrics.subscriptions, trie_subscription_count(s->core.trie));
    METRIC_SET(s->metrics.patterns, trie_pattern_count(s->core.trie));
    METRIC_SET(s->metrics.resp_connections, resp_connection_count(s));
    METRIC_SET(s->metrics.outbound_bytes, s->outbound_bytes);
}

/* Runs once per loop turn, right before the loop would block: first the
 * messages published since the last turn reach this worker's subscribers,
 * then everything queued this turn goes out, in as few writes as possible. */
static void on_flush(uv_prepare_t *p)
{
    worker_t *s = p->data;
    chist_drain(&s->core);
    router_drain(&s->core);
    while (s->dirty != NULL) {
        conn_t *c = s->dirty;
        s->dirty = c->dirty_next;
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
    METRIC_SET(s->metrics.outbound_bytes, s->outbound_bytes);
}

static void ingress_update_gauges(ingress_ctx_t *ctx)
{
    worker_update_gauges(ctx->owner);
}

static void ingress_watch_pressure(ingress_ctx_t *ctx)
{
    worker_watch_pressure(ctx->owner);
}

static const ingress_ops_t ingress_ops = {
    .update_gauges_cb = ingress_update_gauges,
    .watch_pressure_cb = ingress_watch_pressure,
    .healthz_cb = worker_healthz,
    .metrics_cb = worker_metrics_text,
};

ingress_ctx_t *ingress_ctx(const conn_t *c)
{
    return &c->server->ingress;
}

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
    worker_t *s = t->data;
    for (conn_t *c = s->conns; c != NULL; c = c->next) {
        if (!c->writing) {
            outq_trim(&c->outq);
        }
    }
    METRIC_SET(s->metrics.heartbeat_ms, broker_uptime_ns(s->broker) / 1000000);
    worker_update_gauges(s);
    if (s->index == 0) {
        /* Quiet topics' history past its ttl goes even without publishes. */
        seqtab_expire(s->broker->seqtab, uv_now(&s->loop));
        sys_stats_env_t env = {
            .node_id = s->broker->node_id,
            .interval_ms = s->cfg->sys_stats_interval_ms,
            .uptime_s = (double)broker_uptime_ns(s->broker) / 1e9,
        };
        sys_stats_tick(&s->sys_stats, &s->core, &env);
    }
}

/* Polling is cheap here (one relaxed load per worker) and only runs while a
 * publisher is paused; a wake-up from each draining worker would cost more. */
#define PRESSURE_POLL_MS 1

static void on_pressure(uv_timer_t *t)
{
    worker_t *s = t->data;
    if (s->paused != NULL && !core_inbox_relieved(&s->core)) {
        return;
    }
    /* A RESP publisher runs the commands it held back at this turn's flush
     * (conn.h), and may be paused again there (which restarts the timer). */
    uv_timer_stop(&s->pressure_timer);
    while (s->paused != NULL) {
        conn_resume_publisher(s->paused);
    }
}

static void on_tick(uv_timer_t *t)
{
    worker_t *s = t->data;
    uint64_t now = worker_now(s);
    conn_t *next;
    /* A deadline callback may close its own connection (which unlinks it but
     * frees it only in a later loop phase), never another one: walking on
     * from the saved successor is safe. */
    for (conn_t *c = s->conns; c != NULL; c = next) {
        next = c->next;
        if (c->deadline_ms != 0 && now >= c->deadline_ms) {
            c->deadline_ms = 0;
            conn_on_deadline(c);
        }
    }
}

void worker_watch_pressure(worker_t *s)
{
    if (!uv_is_active((uv_handle_t *)&s->pressure_timer) && !s->shutting_down) {
        uv_timer_start(&s->pressure_timer, on_pressure, PRESSURE_POLL_MS, PRESSURE_POLL_MS);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    worker_t *s = listener->data;
    if (status < 0) {
        log_warn("accept failed", "worker=%u err=%s", s->index, uv_err_name(status));
        return;
    }
    conn_accept(s, listener == (uv_stream_t *)&s->tls_listener);
}

static void on_sighup(uv_signal_t *sig, int signum)
{
    (void)signum;
    worker_t *s = sig->data;
    broker_reload_tls(s->broker);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    worker_t *s = sig->data;
    const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
    if (s->shutting_down) {
        /* Already draining (bounded by shutdown_timeout): not worth a line each. */
        log_debug("signal received while shutting down", "signal=%s", name);
        return;
    }
    log_info("signal received", "signal=%s", name);
    broker_stop(s->broker);
}

static void on_server_handle_closed(uv_handle_t *h)
{
    worker_t *s = h->data;
    s->handles_open--;
}

static void close_handle(worker_t *s, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        h->data = s;
        uv_close(h, on_server_handle_closed);
    }
}

static void close_server_handles(worker_t *s)
{
    close_handle(s, (uv_handle_t *)&s->flush_prepare);
    close_handle(s, (uv_handle_t *)&s->inbox_async);
    close_handle(s, (uv_handle_t *)&s->stop_async);
    close_handle(s, (uv_handle_t *)&s->shutdown_timer);
    close_handle(s, (uv_handle_t *)&s->heartbeat);
    close_handle(s, (uv_handle_t *)&s->pressure_timer);
    close_handle(s, (uv_handle_t *)&s->tick);
    if (s->index == 0) {
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
        close_handle(s, (uv_handle_t *)&s->sig_int);
        close_handle(s, (uv_handle_t *)&s->sig_term);
        close_handle(s, (uv_handle_t *)&s->sig_hup);
    }
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    worker_t *s = t->data;
    log_warn("shutdown timeout: closing remaining connections", "worker=%u connections=%zu",
             s->index, s->nconns);
    while (s->conns != NULL) {
        conn_close(s->conns);
    }
}

void worker_shutdown(worker_t *s)
{
    if (!s->shutting_down) {
        s->shutting_down = true;
        log_debug("worker shutting down", "worker=%u connections=%zu", s->index, s->nconns);
        if (s->listening) {
            close_handle(s, (uv_handle_t *)&s->listener);
        }
        resp_listener_shutdown(s);
        if (s->tls_listening) {
            close_handle(s, (uv_handle_t *)&s->tls_listener);
        }
        for (conn_t *c = s->conns; c != NULL; c = c->next) {
            if (c->state == CONN_WS) {
                conn_ws_close(c, WSB_WS_CLOSE_GOING_AWAY, "server shutting down", false);
            } else if (c->state == CONN_RESP) {
                conn_resp_shutdown(c);
            } else if (c->state == CONN_HTTP && !c->writing && outq_bytes(&c->outq) == 0 &&
                       c->http_pub == NULL) {
                /* Idle keep-alive connection. One whose response waits for
                 * Redis gets it (the bridge, stopped first, fails what is
                 * in flight) with Connection: close, then lingers. */
                conn_linger(c);
            }
        }
        uv_timer_start(&s->shutdown_timer, on_shutdown_timeout, s->cfg->shutdown_timeout_ms, 0);
        while (s->paused != NULL) {
            conn_resume_publisher(s->paused); /* they must read their peers' close */
        }
        uv_timer_stop(&s->pressure_timer);
    }
    if (s->nconns == 0 && !s->drained) {
        s->drained = true;
        uv_timer_stop(&s->shutdown_timer);
        broker_worker_drained(s->broker, s);
    }
    /* Other workers may publish into our inbox until they have drained too:
     * the inbox stays open until then (see broker.h). */
    if (s->drained &&
        atomic_load_explicit(&s->broker->drained, memory_order_acquire) == s->broker->nworkers) {
        close_server_handles(s);
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
static void before_input(worker_t *s)
{
    router_drain(&s->core);
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

int worker_init(worker_t *s, broker_t *b, unsigned index, int fd, int tls_fd)
{
    conn_set_handlers(&conn_handlers);
    memset(s, 0, offsetof(worker_t, read_buf));
    s->broker = b;
    s->cfg = b->cfg;
    s->index = index;
    metrics_init(&s->metrics);
    int rc = uv_loop_init(&s->loop);
    if (rc != 0) {
        return rc;
    }
    s->core.core = &b->core;
    s->core.index = index;
    s->core.trie = trie_new();
    s->core.loop = &s->loop;
    s->core.metrics = &s->metrics;
    s->core.owner = s;
    s->ingress = (ingress_ctx_t){
        .core = &s->core,
        .metrics = &s->metrics,
        .cfg = &b->ingress_cfg,
        .auth = &b->auth,
        .node_id = b->node_id,
        .web_root = b->web_root,
        .index = index,
        .ops = &ingress_ops,
        .owner = s,
    };
    xqueue_init(&s->core.inbox, s->cfg->worker_queue_size);
    if (b->history_rules.n > 0 && s->cfg->redis_url[0] != '\0') {
        /* Ops in flight are bounded by redis.queue_size (chist_redis.h). */
        xqueue_init(&s->core.chist_done, s->cfg->redis_queue_size);
    }
    uv_prepare_init(&s->loop, &s->flush_prepare);
    s->flush_prepare.data = s;
    uv_prepare_start(&s->flush_prepare, on_flush);
    uv_async_init(&s->loop, &s->inbox_async, on_inbox);
    uv_async_init(&s->loop, &s->stop_async, on_stop);
    s->inbox_async.data = s;
    s->stop_async.data = s;
    uv_timer_init(&s->loop, &s->shutdown_timer);
    s->shutdown_timer.data = s;
    uv_timer_init(&s->loop, &s->heartbeat);
    s->heartbeat.data = s;
    uv_timer_start(&s->heartbeat, on_heartbeat, 0, HEARTBEAT_MS);
    uv_timer_init(&s->loop, &s->pressure_timer);
    s->pressure_timer.data = s;
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, WORKER_TICK_MS, WORKER_TICK_MS);
    s->handles_open = 7;
    if (index == 0) {
        uv_signal_init(&s->loop, &s->sig_int);
        uv_signal_init(&s->loop, &s->sig_term);
        uv_signal_init(&s->loop, &s->sig_hup);
        s->sig_int.data = s;
        s->sig_term.data = s;
        s->sig_hup.data = s;
        s->handles_open += 3;
        uv_signal_start(&s->sig_int, on_signal, SIGINT);
        uv_signal_start(&s->sig_term, on_signal, SIGTERM);
        uv_signal_start(&s->sig_hup, on_sighup, SIGHUP);
    }
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    s->handles_open++;
    s->listening = true;
    rc = uv_tcp_open(&s->listener, fd);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&s->listener, (int)s->cfg->backlog, on_connection);
    }
    if (tls_fd >= 0) {
        uv_tcp_init(&s->loop, &s->tls_listener);
        s->tls_listener.data = s;
        s->handles_open++;
        s->tls_listening = true;
        int trc = uv_tcp_open(&s->tls_listener, tls_fd);
        if (trc == 0) {
            trc = uv_listen((uv_stream_t *)&s->tls_listener, (int)s->cfg->backlog, on_connection);
        }
        rc = rc != 0 ? rc : trc;
    }
    return rc;
}

void worker_run(worker_t *s)
{
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

void worker_free(worker_t *s)
{
    if (s->handles_open > 0) {
        /* Start-up failed before the loop ran: close what init opened. */
        close_server_handles(s);
        close_handle(s, (uv_handle_t *)&s->listener);
        if (s->tls_listening) {
            close_handle(s, (uv_handle_t *)&s->tls_listener);
        }
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    if (s->resp != NULL) {
        resp_listener_shutdown(s);
        uv_run(&s->loop, UV_RUN_DEFAULT); /* its close callback */
        resp_listener_free(s);
    }
    /* Messages still in the inbox were never delivered: release them. */
    xmsg_t *m;
    while ((m = xqueue_pop(&s->core.inbox)) != NULL) {
        frame_buf_unref(xmsg_worker_buf(m, s->index));
    }
    xqueue_destroy(&s->core.inbox);
    chist_worker_free(&s->core);
    trie_free(s->core.trie);
    sys_stats_free(s->sys_stats);
    static_cache_free(s->ingress.static_cache);
    s->ingress.static_cache = NULL;
    if (uv_loop_close(&s->loop) != 0) {
        log_warn("event loop closed with handles open", "worker=%u", s->index);
    }
}
