/*
 * broker_world.h - one broker with one worker for the ingress unit tests
 * (test_http_api.c, test_resp_session.c): the configuration the flags give,
 * the real core, auth and ingress/net contexts built the way broker.c and
 * worker.c build them, and connections on socket pairs nobody writes to
 * (the loop never runs while a test drives a connection; closing and
 * lingering need a real handle). What a connection queued is read back from
 * its outq. Everything here is static inline so a
 * test that uses part of it compiles without unused-function warnings.
 */
#ifndef WSB_TEST_BROKER_WORLD_H
#define WSB_TEST_BROKER_WORLD_H

#include "app/broker.h"
#include "app/config.h"
#include "app/worker.h"
#include "core/router.h"
#include "core/seqtab.h"
#include "net/conn.h"
#include "net/outq.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* cmocka.h needs the headers above first. */
#include <cmocka.h>

#define WORLD_MAX_PEERS 16

typedef struct {
    config_t cfg;
    broker_t b;
    worker_t *w;
    worker_t *workers[1];
    core_worker_t *cworkers[1];
    int peers[WORLD_MAX_PEERS]; /* the test's ends of the connections' socket pairs */
    int npeers;
} world_t;

/* One worker: nothing to wake (the test drains the inbox itself). */
static inline void world_no_wake(core_worker_t *w)
{
    (void)w;
}

/* The world of `wsbroker ARGS...` (`args` NULL-terminated, may be empty). */
static inline world_t *world_new_args(const char *const *args)
{
    world_t *x = calloc(1, sizeof(*x));
    static char words[8][256];
    char *argv[8] = {words[0]};
    (void)snprintf(words[0], sizeof words[0], "wsbroker");
    int argc = 1;
    for (; args != NULL && args[argc - 1] != NULL; argc++) {
        assert_true(argc < 7 && strlen(args[argc - 1]) < sizeof words[argc]);
        (void)snprintf(words[argc], sizeof words[argc], "%s", args[argc - 1]);
        argv[argc] = words[argc];
    }
    char *envp[] = {NULL};
    char err[256];
    assert_int_equal(config_load(&x->cfg, argc, argv, envp, err, sizeof err), CONFIG_OK);
    worker_t *w = calloc(1, sizeof(worker_t));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->cfg = &x->cfg;
    metrics_init(&w->metrics);
    xqueue_init(&w->core.inbox, 1024);
    x->workers[0] = w;
    x->cworkers[0] = &w->core;
    x->w = w;
    x->b.cfg = &x->cfg;
    x->b.nworkers = 1;
    x->b.workers = x->workers;
    x->b.started_ns = uv_hrtime();
    (void)snprintf(x->b.node_id, sizeof x->b.node_id, "unit-node");
    x->b.seqtab = seqtab_new(&x->b.history_rules, 100, 1 << 20);
    x->b.core.nworkers = 1;
    x->b.core.workers = x->cworkers;
    x->b.core.seqtab = x->b.seqtab;
    x->b.core.history_rules = &x->b.history_rules;
    x->b.core.max_subscriptions = x->cfg.max_subscriptions;
    x->b.core.wake_cb = world_no_wake;
    auth_config_t acfg;
    config_auth(&x->cfg, &acfg);
    char aerr[256];
    assert_int_equal(auth_init(&x->b.auth, &acfg, aerr, sizeof aerr), 0);
    broker_ingress_config(&x->cfg, &x->b.ingress_cfg);
    broker_worker_env(&x->b);
    worker_setup_contexts(w, &x->b.worker_env, 0);
    w->env = &x->b.worker_env;
    w->net.outbound_limit = x->cfg.max_total_outbound;
    return x;
}

/* A connection in `state` as accept leaves it, linked into the worker. */
static inline conn_t *world_conn(world_t *x, conn_state_t state)
{
    worker_t *w = x->w;
    conn_t *c = calloc(1, sizeof(*c));
    c->net = &w->net;
    outq_init(&c->outq);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(uv_tcp_init(&w->loop, &c->tcp), 0);
    assert_int_equal(uv_tcp_open(&c->tcp, sv[0]), 0);
    assert_true(x->npeers < WORLD_MAX_PEERS);
    x->peers[x->npeers++] = sv[1];
    c->tcp.data = c;
    c->handles_open = 1;
    c->last_rx_ms = uv_now(&w->loop);
    c->next = w->net.conns;
    if (w->net.conns != NULL) {
        w->net.conns->prev = c;
    }
    w->net.conns = c;
    w->net.nconns++;
    c->state = state;
    return c;
}

/* Everything queued on `c` so far, as a string (consumed, like a write). */
static inline char *world_output(conn_t *c)
{
    static char out[1 << 16];
    size_t n = 0;
    while (outq_pending_bytes(&c->outq) > 0) {
        uv_buf_t bufs[16];
        size_t total = 0;
        unsigned k = outq_iov(&c->outq, bufs, 16, &total);
        for (unsigned i = 0; i < k; i++) {
            assert_true(n + bufs[i].len < sizeof out);
            memcpy(out + n, bufs[i].base, bufs[i].len);
            n += bufs[i].len;
        }
        outq_consume(&c->outq, total);
        c->net->outbound_bytes -= total;
    }
    out[n] = '\0';
    return out;
}

/* Closes `c`; first every connection leaves the dirty list (the worker's
 * flush, which never runs here, would free them). */
static inline void world_close(conn_t *c)
{
    net_t *net = c->net;
    net->dirty = NULL;
    for (conn_t *d = net->conns; d != NULL; d = d->next) {
        d->dirty = false;
        d->dirty_next = NULL;
    }
    conn_close(c);
}

/* Closes what is left and frees the world (the loop runs once more to let
 * the handles close). */
static inline void world_free(world_t *x)
{
    worker_t *w = x->w;
    while (w->net.conns != NULL) {
        world_close(w->net.conns);
    }
    router_drain_pushed(&w->core);
    xmsg_chunker_close(&w->core.chunker); /* the worker's flush would */
    assert_int_equal(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    xqueue_destroy(&w->core.inbox);
    trie_free(w->core.trie);
    free(w);
    while (x->npeers > 0) {
        close(x->peers[--x->npeers]);
    }
    seqtab_free(x->b.seqtab);
    auth_free(&x->b.auth);
    config_free(&x->cfg);
    free(x);
}

#endif
