/* test_resp_session.c - the RESP session driven without sockets: bytes fed
 * through the connection's RESP handlers (net/conn.h) on a conn_t whose
 * socket is never read (the loop does not run), commands run against the real core on one worker,
 * and the replies and pushes read back from the connection's output queue. Covers parsing
 * (pipelined, inline, split), the core calls (PUBLISH, SUBSCRIBE, PSUBSCRIBE and their pushes), the
 * RESP2 subscribed-mode rule, AUTH and its deadline, the partial-request deadline, protocol errors,
 * replies held back over max_outbound_bytes, and a subscriber over its bound closed. */
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
#include "app/broker.h"
#include "app/config.h"
#include "app/worker.h"
#include "core/router.h"
#include "core/seqtab.h"
#include "ingress/resp_internal.h"
#include "ingress/resp_session.h"
#include "net/conn.h"
#include "net/outq.h"

#include <cmocka.h>

/* One broker with one worker and its RESP listener state, no sockets. */
typedef struct {
    config_t cfg;
    broker_t b;
    worker_t *w;
    worker_t *workers[1];
    core_worker_t *cworkers[1];
} world_t;

/* One worker: nothing to wake (the test drains the inbox itself). */
static void no_wake(core_worker_t *w)
{
    (void)w;
}

static world_t *world_new(const char *api_keys)
{
    world_t *x = calloc(1, sizeof(*x));
    char prog[] = "wsbroker", flag[] = "--api-keys", keys[64];
    (void)snprintf(keys, sizeof keys, "%s", api_keys != NULL ? api_keys : "");
    char *argv[] = {prog, flag, keys, NULL};
    char *envp[] = {NULL};
    char err[256];
    assert_int_equal(config_load(&x->cfg, api_keys != NULL ? 3 : 1, argv, envp, err, sizeof err),
                     CONFIG_OK);
    worker_t *w = calloc(1, sizeof(worker_t));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->cfg = &x->cfg;
    metrics_init(&w->metrics);
    xqueue_init(&w->core.inbox, 1024);
    assert_int_equal(uv_async_init(&w->loop, &w->inbox_async, NULL), 0);
    x->workers[0] = w;
    x->cworkers[0] = &w->core;
    x->w = w;
    x->b.cfg = &x->cfg;
    x->b.nworkers = 1;
    x->b.workers = x->workers;
    x->b.seqtab = seqtab_new(&x->b.history_rules, 100, 1 << 20);
    x->b.core.nworkers = 1;
    x->b.core.workers = x->cworkers;
    x->b.core.seqtab = x->b.seqtab;
    x->b.core.history_rules = &x->b.history_rules;
    x->b.core.max_subscriptions = x->cfg.max_subscriptions;
    x->b.core.wake_cb = no_wake;
    auth_config_t acfg;
    config_auth(&x->cfg, &acfg);
    char aerr[256];
    assert_int_equal(auth_init(&x->b.auth, &acfg, aerr, sizeof aerr), 0);
    broker_ingress_config(&x->cfg, &x->b.ingress_cfg);
    broker_worker_env(&x->b);
    worker_setup_contexts(w, &x->b.worker_env, 0);
    w->net.outbound_limit = x->cfg.max_total_outbound;
    resp_listener_init(&w->ingress, &w->net);
    return x;
}

/* max_outbound_bytes, as the broker copies it into the ingresses' and the
 * connections' limits at start. */
static void set_max_outbound(world_t *x, uint64_t bytes)
{
    x->cfg.max_outbound_bytes = bytes;
    x->b.ingress_cfg.max_outbound_bytes = bytes;
    x->w->net.lim.max_outbound_bytes = bytes;
}

/* The test's ends of the connections' socket pairs. */
static int peers[16];
static int npeers;

/* A CONN_RESP connection, its session opened. */
static conn_t *conn_new(world_t *x)
{
    worker_t *w = x->w;
    conn_t *c = calloc(1, sizeof(*c));
    c->net = &w->net;
    outq_init(&c->outq);
    /* A socket pair nobody writes to: the connection may start and stop
     * reading (the loop never runs while the test drives it). */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(uv_tcp_init(&w->loop, &c->tcp), 0);
    assert_int_equal(uv_tcp_open(&c->tcp, sv[0]), 0);
    peers[npeers++] = sv[1];
    c->tcp.data = c;
    c->handles_open = 1;
    c->last_rx_ms = uv_now(&w->loop);
    c->next = w->net.conns;
    if (w->net.conns != NULL) {
        w->net.conns->prev = c;
    }
    w->net.conns = c;
    w->net.nconns++;
    c->state = CONN_RESP;
    conn_hold_input(c, false); /* starts reading, as at accept */
    c->resp = resp_conn_handlers.open(c);
    return c;
}

static void feed(conn_t *c, const char *bytes)
{
    resp_conn_handlers.feed(c->resp, bytes, strlen(bytes));
}

/* Everything queued on `c` so far, as a string (consumed, like a write). */
static char *output(conn_t *c)
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

/* The worker's flush of `c` without a socket: written, then what follows. */
static void flushed(conn_t *c)
{
    (void)output(c);
    c->read_paused = false;
    resp_conn_handlers.writable(c->resp);
}

static void conn_done(conn_t *c)
{
    net_t *net = c->net;
    /* Off the dirty list first: the worker's flush would free it. */
    net->dirty = NULL;
    for (conn_t *d = net->conns; d != NULL; d = d->next) {
        d->dirty = false;
        d->dirty_next = NULL;
    }
    conn_close(c);
}

static void world_free(world_t *x)
{
    worker_t *w = x->w;
    while (w->net.conns != NULL) {
        conn_done(w->net.conns);
    }
    router_drain_pushed(&w->core);
    uv_close((uv_handle_t *)&w->inbox_async, NULL);
    assert_int_equal(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    xqueue_destroy(&w->core.inbox);
    trie_free(w->core.trie);
    resp_listener_free(&w->ingress);
    free(w);
    while (npeers > 0) {
        close(peers[--npeers]);
    }
    seqtab_free(x->b.seqtab);
    auth_free(&x->b.auth);
    config_free(&x->cfg);
    free(x);
}

static void test_pipelined_inline_and_split_requests(void **state)
{
    (void)state;
    world_t *x = world_new(NULL);
    conn_t *c = conn_new(x);
    feed(c, "*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$4\r\nECHO\r\n$3\r\nab");
    assert_string_equal(output(c), "+PONG\r\n$2\r\nhi\r\n");
    /* The unfinished request keeps the partial-request deadline. */
    uint64_t now = uv_now(&x->w->loop);
    assert_int_equal(c->deadline_ms, now + x->cfg.header_timeout_ms);
    feed(c, "c\r\n");
    assert_string_equal(output(c), "$3\r\nabc\r\n");
    /* Complete again: only the idle timeout is left. */
    assert_int_equal(c->deadline_ms, c->last_rx_ms + x->cfg.idle_timeout_ms);
    feed(c, "NOSUCH a b\r\n");
    assert_string_equal(output(c),
                        "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n");
    world_free(x);
}

static void test_publish_reaches_channel_and_pattern_subscribers(void **state)
{
    (void)state;
    world_t *x = world_new(NULL);
    conn_t *sub = conn_new(x);
    conn_t *pub = conn_new(x);
    feed(sub, "SUBSCRIBE a.b\r\nPSUBSCRIBE a.*\r\n");
    assert_string_equal(output(sub), "*3\r\n$9\r\nsubscribe\r\n$3\r\na.b\r\n:1\r\n"
                                     "*3\r\n$10\r\npsubscribe\r\n$3\r\na.*\r\n:2\r\n");
    /* A subscriber waiting for messages is not idle: no deadline. */
    assert_int_equal(sub->deadline_ms, 0);
    feed(pub, "PUBLISH a.b {\"k\":1}\r\nPUBLISH a.c hello\r\n");
    assert_string_equal(output(pub), ":1\r\n:1\r\n");
    router_drain(&x->w->core);
    assert_string_equal(output(sub), "*3\r\n$7\r\nmessage\r\n$3\r\na.b\r\n$7\r\n{\"k\":1}\r\n"
                                     "*4\r\n$8\r\npmessage\r\n$3\r\na.*\r\n$3\r\na.b\r\n"
                                     "$7\r\n{\"k\":1}\r\n"
                                     "*4\r\n$8\r\npmessage\r\n$3\r\na.*\r\n$3\r\na.c\r\n"
                                     "$7\r\n\"hello\"\r\n");
    /* RESP2: only subscription commands, PING, QUIT and RESET meanwhile. */
    feed(sub, "PUBLISH a.b 1\r\nUNSUBSCRIBE a.b\r\n");
    assert_string_equal(output(sub),
                        "-ERR Can't execute 'publish': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                        "PING / QUIT / RESET are allowed in this context\r\n"
                        "*3\r\n$11\r\nunsubscribe\r\n$3\r\na.b\r\n:1\r\n");
    feed(pub, "PUBLISH a.b 2\r\n");
    assert_string_equal(output(pub), ":2\r\n");
    router_drain(&x->w->core);
    assert_string_equal(output(sub), "*4\r\n$8\r\npmessage\r\n$3\r\na.*\r\n$3\r\na.b\r\n"
                                     "$1\r\n2\r\n");
    world_free(x);
}

static void test_auth_required_and_its_deadline(void **state)
{
    (void)state;
    world_t *x = world_new("resp-unit-key-000001");
    conn_t *c = conn_new(x);
    resp_conn_t *rc = c->resp;
    uint64_t now = uv_now(&x->w->loop);
    assert_int_equal(c->deadline_ms, now + x->cfg.auth_timeout_ms);
    feed(c, "PUBLISH a.b 1\r\nAUTH nope-nope-nope-nope\r\nAUTH resp-unit-key-000001\r\n"
            "PUBLISH a.b 1\r\n");
    assert_string_equal(output(c), "-NOAUTH Authentication required.\r\n"
                                   "-WRONGPASS invalid username-password pair or user is "
                                   "disabled.\r\n+OK\r\n:1\r\n");
    assert_int_equal(rc->auth_due_ms, 0);
    /* Another connection that never authenticates: its deadline closes it
     * with the documented error. */
    conn_t *lazy = conn_new(x);
    resp_conn_t *lr = lazy->resp;
    lr->auth_due_ms = 1; /* passed */
    lazy->deadline_ms = 0;
    assert_int_equal(resp_conn_handlers.deadline(lr), CONN_TIMEOUT_NONE);
    assert_string_equal(output(lazy), "-NOAUTH Authentication timeout.\r\n");
    assert_int_equal(lazy->state, CONN_LINGER);
    world_free(x);
}

static void test_partial_request_deadline_closes(void **state)
{
    (void)state;
    world_t *x = world_new(NULL);
    conn_t *c = conn_new(x);
    feed(c, "*2\r\n$4\r\nPING");
    resp_conn_t *rc = c->resp;
    assert_int_not_equal(rc->partial_since_ms, 0);
    rc->partial_since_ms = 1; /* begun long ago */
    assert_int_equal(resp_conn_handlers.deadline(rc), CONN_TIMEOUT_HEADER);
    assert_string_equal(output(c), "-ERR Protocol error: request timeout\r\n");
    assert_int_equal(c->state, CONN_LINGER);
    world_free(x);
}

/* A pipelining client whose reads end inside a request, read after read, is
 * not timed out as long as requests complete: each new request has its own
 * clock. */
static void test_partial_clock_restarts_with_each_request(void **state)
{
    (void)state;
    world_t *x = world_new(NULL);
    conn_t *c = conn_new(x);
    resp_conn_t *rc = c->resp;
    feed(c, "PING\r\nPI");
    rc->partial_since_ms = 1; /* as if begun long ago */
    feed(c, "NG\r\nPI");      /* completes it, begins another */
    assert_string_equal(output(c), "+PONG\r\n+PONG\r\n");
    assert_int_equal(rc->partial_since_ms, uv_now(&x->w->loop));
    rc->partial_since_ms = 1;
    feed(c, "N"); /* bytes alone do not restart it */
    assert_int_equal(rc->partial_since_ms, 1);
    world_free(x);
}

static void test_protocol_error_answers_then_closes(void **state)
{
    (void)state;
    world_t *x = world_new(NULL);
    conn_t *c = conn_new(x);
    feed(c, "PING\r\n*1\r\n$x\r\nPING\r\n");
    char *out = output(c);
    assert_non_null(strstr(out, "+PONG\r\n-ERR Protocol error: "));
    assert_int_equal(c->state, CONN_LINGER);
    world_free(x);
}

static void test_replies_over_the_bound_wait_for_the_peer(void **state)
{
    (void)state;
    world_t *x = world_new(NULL);
    set_max_outbound(x, 64);
    conn_t *c = conn_new(x);
    /* 20 replies of 12 bytes: the bound lets about 6 through at a time. */
    char req[20 * 16 + 1] = "";
    for (int i = 0; i < 20; i++) {
        strcat(req, "ECHO 123456\r\n");
    }
    feed(c, req);
    size_t got = outq_bytes(&c->outq);
    assert_true(got > 64 && got < 64 + 13);
    assert_true(c->input_held); /* not read meanwhile */
    size_t total = 0;
    for (int turns = 0; turns < 20 && total < 20 * 12; turns++) {
        total += outq_bytes(&c->outq);
        flushed(c);
    }
    assert_int_equal(total, 20 * 12);
    assert_false(c->input_held);
    world_free(x);
}

static void test_subscriber_over_its_bound_is_closed(void **state)
{
    (void)state;
    world_t *x = world_new(NULL);
    set_max_outbound(x, 100);
    conn_t *sub = conn_new(x);
    conn_t *pub = conn_new(x);
    feed(sub, "SUBSCRIBE t\r\n");
    (void)output(sub);
    feed(pub, "PUBLISH t 1\r\n");
    router_drain(&x->w->core);
    assert_int_equal(sub->state, CONN_RESP); /* within its bound: queued */
    feed(pub, "PUBLISH t "
              "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxx\"\r\n");
    router_drain(&x->w->core);
    assert_int_equal(sub->state, CONN_LINGER); /* pending output dropped, closing */
    assert_int_equal(outq_pending_bytes(&sub->outq), 0);
    assert_int_equal(METRIC_GET(x->w->metrics.slow_consumer_closes), 1);
    world_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_inline_and_split_requests),
        cmocka_unit_test(test_publish_reaches_channel_and_pattern_subscribers),
        cmocka_unit_test(test_auth_required_and_its_deadline),
        cmocka_unit_test(test_partial_request_deadline_closes),
        cmocka_unit_test(test_partial_clock_restarts_with_each_request),
        cmocka_unit_test(test_protocol_error_answers_then_closes),
        cmocka_unit_test(test_replies_over_the_bound_wait_for_the_peer),
        cmocka_unit_test(test_subscriber_over_its_bound_is_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
