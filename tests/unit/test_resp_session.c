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
#include "broker_world.h"
#include "core/router.h"
#include "core/seqtab.h"
#include "ingress/resp_internal.h"
#include "ingress/resp_session.h"
#include "net/conn.h"
#include "net/outq.h"

#include <cmocka.h>

/* One broker with one worker and its RESP listener state, no sockets. */
static world_t *world_new(const char *api_keys)
{
    const char *args[] = {"--api-keys", api_keys, NULL};
    world_t *x = world_new_args(api_keys != NULL ? args : NULL);
    resp_listener_init(&x->w->ingress, &x->w->net);
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

/* A CONN_RESP connection, its session opened. */
static conn_t *conn_new(world_t *x)
{
    conn_t *c = world_conn(x, CONN_RESP);
    conn_hold_input(c, false); /* starts reading, as at accept */
    c->resp = resp_conn_handlers.open(c);
    return c;
}

static void feed(conn_t *c, const char *bytes)
{
    resp_conn_handlers.feed(c->resp, bytes, strlen(bytes));
}

static char *output(conn_t *c)
{
    return world_output(c);
}

/* The worker's flush of `c` without a socket: written, then what follows. */
static void flushed(conn_t *c)
{
    (void)output(c);
    c->read_paused = false;
    resp_conn_handlers.writable(c->resp);
}

static void world_end(world_t *x)
{
    worker_t *w = x->w;
    while (w->net.conns != NULL) {
        world_close(w->net.conns); /* the sessions leave the trie first */
    }
    resp_listener_free(&w->ingress);
    world_free(x);
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
    world_end(x);
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
    world_end(x);
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
    world_end(x);
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
    world_end(x);
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
    world_end(x);
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
    world_end(x);
}

static void test_replies_over_the_bound_wait_for_the_peer(void **state)
{
    (void)state;
    world_t *x = world_new(NULL);
    set_max_outbound(x, 64);
    conn_t *c = conn_new(x);
    /* 20 replies of 12 bytes: the bound lets about 6 through at a time. */
    static const char one[] = "ECHO 123456\r\n";
    char req[20 * (sizeof one - 1) + 1];
    for (size_t i = 0; i < 20; i++) {
        memcpy(req + i * (sizeof one - 1), one, sizeof one);
    }
    feed(c, req);
    size_t got = outq_bytes(&c->outq);
    assert_true(got > 64 && got < 64 + 13);
    assert_true(c->input_held); /* not read meanwhile */
    size_t total = 0;
    for (int turns = 0; turns < 20 && total < (size_t)20 * 12; turns++) {
        total += outq_bytes(&c->outq);
        flushed(c);
    }
    assert_int_equal(total, 20 * 12);
    assert_false(c->input_held);
    world_end(x);
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
    world_end(x);
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
