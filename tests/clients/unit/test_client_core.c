/*
 * test_client_core.c - the client core's connection: a scripted session fed
 * whole, split at every byte, one byte at a time and in seeded random
 * chunks (each piece at the end of a guard page) must give the same trace;
 * the opening handshake and its failures; options; control frames and the
 * broker's protocol violations. The harness is in client_harness.h.
 */
#include "client_harness.h"
#include "wsb/handshake.h"
#include "wsb/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the scripted session, fed every possible way ---- */

/* Runs one session; the server's bytes after the 101 come from the script. */
static void run_session(int mode, size_t arg, bytes_t *trace, bytes_t *sent)
{
    harness_t *h = h_new();
    assert_int_equal(wsb_client_subscribe(h->c, "a.*", &reply_cb, h), 1);
    assert_int_equal(wsb_client_publish(h->c, "a.b", "{\"x\":1}", 7, &reply_cb, h), 2);
    assert_int_equal(wsb_client_publish(h->c, "a.c", "[true]", 6, NULL, NULL), 0);
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_int_equal(h->connects, 1);
    assert_string_equal(h->host, "127.0.0.1");
    assert_int_equal(h->port, 8080);
    wsb_client_io_connected(h->c);

    bytes_t s = {0};
    srv_accept(h, &s);
    srv_text(&s, WELCOME);
    srv_text(&s, "{\"type\":\"ack\",\"id\":1}");
    /* A message in three fragments with a ping between them. */
    const char *msg = "{\"type\":\"message\",\"topic\":\"a.b\",\"seq\":7,\"data\":{\"x\":1}}";
    srv_frame(&s, false, WSB_WS_OP_TEXT, msg, 10);
    srv_frame(&s, false, WSB_WS_OP_CONT, msg + 10, 20);
    srv_frame(&s, true, WSB_WS_OP_PING, "hi", 2);
    srv_frame(&s, true, WSB_WS_OP_CONT, msg + 30, strlen(msg) - 30);
    srv_text(&s, "{\"type\":\"ack\",\"id\":2,\"seq\":7}");
    srv_text(&s, "{\"type\":\"future\",\"x\":1}"); /* unknown type: ignored */
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"a.\\\"q\",\"seq\":8,\"epoch\":\"e1\","
                 "\"data\":\"s\",\"extra\":[1]}");
    srv_text(&s, "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"m\"}");
    srv_close(&s, 1001, "going away");
    h_feed(h, s.p, s.len, mode, arg);
    free(s.p);
    srv_read(h);
    assert_int_equal(h->closes, 1);
    assert_true(h->close_flush);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_CLOSING);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    bytes_add(trace, h->trace.p, h->trace.len);
    bytes_add(sent, h->sent.p, h->sent.len);
    h_free(h);
}

static void test_session_every_split(void **state)
{
    (void)state;
    bytes_t ref_trace = {0};
    bytes_t ref_sent = {0};
    run_session(FEED_WHOLE, 0, &ref_trace, &ref_sent);
    const char *expect_trace =
        "open c1 n1 p=1 max=65536\n"
        "ack id=1 seq=- rec=-1\n"
        "msg a.b seq=7 epoch=- data={\"x\":1}\n"
        "ack id=2 seq=7 rec=-1\n"
        "msg a.\"q seq=8 epoch=e1 data=\"s\"\n"
        "cerr st=-30102 code=bad_json msg=m id=no topic=-\n"
        "disc st=-30101 code=1001 http=0 open=1 retry=no reason=the broker closed the connection "
        "(1001: going away)\n";
    assert_string_equal((const char *)ref_trace.p, expect_trace);
    const char *expect_sent = "TEXT {\"type\":\"subscribe\",\"id\":1,\"topic\":\"a.*\"}\n"
                              "TEXT {\"type\":\"publish\",\"id\":2,\"topic\":\"a.b\",\"data\":{"
                              "\"x\":1}}\n"
                              "TEXT {\"type\":\"publish\",\"topic\":\"a.c\",\"data\":[true]}\n"
                              "PONG hi\n"
                              "CLOSE 1001 \n";
    assert_string_equal((const char *)ref_sent.p, expect_sent);

    /* The script's length after the 101 is what matters; splitting the
     * whole transcript at every byte covers both the head and the frames. */
    harness_t *probe = h_new();
    assert_int_equal(wsb_client_connect(probe->c), 0);
    wsb_client_io_connected(probe->c);
    bytes_t s = {0};
    srv_accept(probe, &s);
    size_t total = s.len + 400;
    free(s.p);
    h_free(probe);

    for (size_t split = 1; split < total; split++) {
        bytes_t t = {0};
        bytes_t o = {0};
        run_session(FEED_SPLIT, split, &t, &o);
        assert_string_equal((const char *)t.p, expect_trace);
        assert_string_equal((const char *)o.p, expect_sent);
        free(t.p);
        free(o.p);
    }
    for (unsigned seed = 1; seed <= 50; seed++) {
        bytes_t t = {0};
        bytes_t o = {0};
        run_session(FEED_RANDOM, seed, &t, &o);
        assert_string_equal((const char *)t.p, expect_trace);
        assert_string_equal((const char *)o.p, expect_sent);
        free(t.p);
        free(o.p);
    }
    bytes_t t = {0};
    bytes_t o = {0};
    run_session(FEED_BYTES, 0, &t, &o);
    assert_string_equal((const char *)t.p, expect_trace);
    assert_string_equal((const char *)o.p, expect_sent);
    free(t.p);
    free(o.p);
    free(ref_trace.p);
    free(ref_sent.p);
}

/* Strings may hold U+0000 (PROTOCOL.md section 2); such a message is
 * delivered, its data re-serialized with the escape. Regression: the client
 * once parsed server messages without JSON_ALLOW_NUL and dropped them. */
static void test_message_with_nul_in_data(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    h_feed_text(h, "{\"type\":\"message\",\"topic\":\"t\",\"seq\":3,\"data\":\"a\\u0000b\"}");
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\nmsg t seq=3 epoch=- data=\"a\\u0000b\"\n");
    h_free(h);
}

/* The 101 and the first frames usually arrive in one read. */
static void test_handshake_and_welcome_in_one_read(void **state)
{
    (void)state;
    harness_t *h = h_new();
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_true(h->timer_armed);
    assert_int_equal(h->timer_ms, WSB_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS);
    wsb_client_io_connected(h->c);
    bytes_t s = {0};
    srv_accept(h, &s);
    srv_text(&s, WELCOME);
    h_feed_bytes(h, &s);
    free(s.p);
    assert_string_equal((const char *)h->trace.p, "open c1 n1 p=1 max=65536\n");
    /* The keepalive replaced the connect timeout. */
    assert_true(h->timer_armed);
    assert_int_equal(h->timer_ms, WSB_CLIENT_DEFAULT_PING_INTERVAL_MS);
    h_free(h);
}

/* ---- the handshake's failures ---- */

static void test_bad_accept_is_refused(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_connected(h->c);
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                       "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    h_feed(h, (const uint8_t *)resp, strlen(resp), FEED_BYTES, 0);
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, "disc st=-30009 code=1006 http=0 open=0 retry=no");
    assert_contains(&h->trace, "does not match the key");
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    h_free(h);
}

static void run_reject(int mode, size_t arg, bytes_t *trace)
{
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_connected(h->c);
    const char *resp = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 22\r\nConnection: close\r\n\r\n"
                       "no WebSocket at /wsx\r\n";
    h_feed(h, (const uint8_t *)resp, strlen(resp), mode, arg);
    assert_int_equal(h->closes, 1);
    wsb_client_io_closed(h->c, 0, NULL);
    bytes_add(trace, h->trace.p, h->trace.len);
    h_free(h);
}

static void test_http_error_with_body_every_split(void **state)
{
    (void)state;
    const char *expect = "disc st=-30009 code=1006 http=404 open=0 retry=no reason=the broker "
                         "refused the upgrade: HTTP 404: no WebSocket at /wsx\n";
    for (size_t split = 0; split < 110; split++) {
        bytes_t t = {0};
        run_reject(FEED_SPLIT, split, &t);
        assert_string_equal((const char *)t.p, expect);
        free(t.p);
    }
    bytes_t t = {0};
    run_reject(FEED_BYTES, 0, &t);
    assert_string_equal((const char *)t.p, expect);
    free(t.p);
}

static void test_http_503_is_retried_and_eof_ends_the_body(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 1000;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_connected(h->c);
    /* No Content-Length: the body ends when the connection does. */
    const char *resp = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\nbusy";
    h_feed(h, (const uint8_t *)resp, strlen(resp), FEED_WHOLE, 0);
    assert_int_equal(h->closes, 0);
    wsb_client_io_closed(h->c, -4095, "end of file");
    assert_contains(&h->trace, "disc st=-30009 code=1006 http=503 open=0 retry=yes reason=the "
                               "broker refused the upgrade: HTTP 503: busy\n");
    assert_true(h->reconnect_ms >= 50 && h->reconnect_ms <= 100);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_BACKOFF);
    assert_true(h->timer_armed);
    assert_int_equal((int64_t)h->timer_ms, h->reconnect_ms);
    wsb_client_io_timer(h->c);
    assert_int_equal(h->connects, 2);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_CONNECTING);
    h_free(h);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.connect_timeout_ms = 1500;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_int_equal(h->timer_ms, 1500);
    wsb_client_io_timer(h->c);
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_string_equal((const char *)h->trace.p,
                        "disc st=-30103 code=1006 http=0 open=0 retry=no reason=connecting to "
                        "127.0.0.1:8080 timed out after 1500 ms\n");
    h_free(h);
}

static void test_connect_hook_failure_and_state_errors(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h->connect_rc = -111;
    assert_int_equal(wsb_client_connect(h->c), -111);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    assert_false(h->timer_armed);
    h->connect_rc = 0;
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_int_equal(wsb_client_connect(h->c), WSB_ESTATE);
    assert_string_equal((const char *)h->trace.p, "");
    h_free(h);

    /* No adapter: nothing can start. */
    wsb_client_options_t o = default_opts();
    wsb_client_t *c = wsb_client_new(&o, NULL, NULL);
    assert_non_null(c);
    assert_int_equal(wsb_client_connect(c), WSB_ESTATE);
    assert_int_equal(wsb_client_close(c), WSB_ESTATE);
    wsb_client_io_t io = harness_io(NULL);
    io.timer_stop = NULL;
    assert_int_equal(wsb_client_attach(c, &io), WSB_EINVAL);
    wsb_client_free(c);

    /* wss:// needs an adapter with TLS. */
    o.url = "wss://127.0.0.1/ws";
    h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), WSB_ENOTSUP);
    assert_int_equal(h->connects, 0);
    h_free(h);
}

/* ---- options ---- */

static void test_options_check(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    char why[200];
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), 0);
    o.url = "http://x";
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    assert_non_null(strstr(why, "ws://"));
    assert_null(wsb_client_new(&o, NULL, NULL));
    o = default_opts();
    o.token = "a b";
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    assert_non_null(strstr(why, "token"));
    o.token = "abc\r\nX-Injected: 1";
    assert_int_equal(wsb_client_options_check(&o, NULL, 0), WSB_EINVAL);
    o = default_opts();
    o.origin = "http://a\nb";
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    o = default_opts();
    o.max_queue_bytes = 0;
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    o = default_opts();
    o.reconnect = true;
    o.reconnect_min_ms = 5000;
    o.reconnect_max_ms = 100;
    assert_int_equal(wsb_client_options_check(&o, why, sizeof(why)), WSB_EINVAL);
    assert_non_null(strstr(why, "reconnect_min_ms"));
    assert_int_equal(wsb_client_options_check(NULL, why, sizeof(why)), WSB_EINVAL);
    assert_string_equal(wsb_client_strerror(WSB_EQUEUEFULL), "the outgoing queue is full");
    assert_string_equal(wsb_client_strerror(WSB_EINVAL), wsb_strerror(WSB_EINVAL));
}

/* ---- control frames and the protocol's failures ---- */

static void test_ping_answered_every_split(void **state)
{
    (void)state;
    bytes_t s = {0};
    srv_frame(&s, true, WSB_WS_OP_PING, "payload-125", 11);
    srv_frame(&s, true, WSB_WS_OP_PING, NULL, 0);
    srv_frame(&s, true, WSB_WS_OP_PONG, "x", 1);
    for (size_t split = 0; split <= s.len; split++) {
        harness_t *h = h_new();
        h_open(h);
        bytes_clear(&h->sent);
        h_feed(h, s.p, s.len, FEED_SPLIT, split);
        srv_read(h);
        assert_string_equal((const char *)h->sent.p, "PONG payload-125\nPONG \n");
        h_free(h);
    }
    free(s.p);
}

static void run_violation(const bytes_t *s, size_t max_incoming, const char *sent_close,
                          const char *disc)
{
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    if (max_incoming != 0) {
        o.max_incoming_size = max_incoming;
    }
    harness_t *h = h_new_opts(&o);
    h_open(h);
    bytes_clear(&h->sent);
    h_feed(h, s->p, s->len, FEED_WHOLE, 0);
    srv_read(h);
    assert_contains(&h->sent, sent_close);
    assert_int_equal(h->closes, 1);
    assert_true(h->close_flush);
    /* The flush is bounded by the close timeout. */
    assert_int_equal(h->timer_ms, WSB_CLIENT_DEFAULT_CLOSE_TIMEOUT_MS);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, disc);
    h_free(h);
}

static void test_protocol_violations(void **state)
{
    (void)state;
    bytes_t s = {0};
    /* A masked frame from the server. */
    static const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t frame[32];
    int n = wsb_ws_build_frame(frame, sizeof(frame), true, WSB_WS_OP_TEXT, (const uint8_t *)"{}", 2,
                               key);
    assert_true(n > 0);
    bytes_add(&s, frame, (size_t)n);
    run_violation(&s, 0, "CLOSE 1002", "disc st=-30003 code=1002 http=0 open=1 retry=yes");
    bytes_clear(&s);
    srv_frame(&s, true, WSB_WS_OP_TEXT, "\"\xff\"", 3);
    run_violation(&s, 0, "CLOSE 1007", "disc st=-30005 code=1007");
    bytes_clear(&s);
    char big[400];
    memset(big, 'x', sizeof(big));
    srv_frame(&s, true, WSB_WS_OP_TEXT, big, sizeof(big));
    run_violation(&s, 300, "CLOSE 1009", "disc st=-30004 code=1009");
    bytes_clear(&s);
    uint8_t reserved[2] = {0x83, 0x00}; /* opcode 3 */
    bytes_add(&s, reserved, 2);
    run_violation(&s, 0, "CLOSE 1002", "code=1002");
    free(s.p);
}

static void test_malformed_messages_reported_or_ignored(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    bytes_t s = {0};
    srv_text(&s, "not json");
    srv_text(&s, "[1,2]");
    srv_text(&s, "{\"type\":7}");
    srv_text(&s, "{\"type\":\"message\",\"seq\":1}"); /* no topic */
    srv_text(&s, "{\"type\":\"ack\",\"id\":-1}");
    srv_frame(&s, true, WSB_WS_OP_BINARY, "\x01\x02", 2);
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"t\"}"); /* no seq, no data: 0 and null */
    h_feed_bytes(h, &s);
    free(s.p);
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "cerr st=-30003 code=- msg=the broker sent a text message that is not a "
                        "JSON object ('[' or '{' expected near 'not'); ignored id=no topic=-\n"
                        "cerr st=-30003 code=- msg=the broker sent a text message that is not a "
                        "JSON object (another JSON value); ignored id=no topic=-\n"
                        "msg t seq=0 epoch=- data=null\n");
    assert_int_equal(h->closes, 0);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_every_split),
        cmocka_unit_test(test_message_with_nul_in_data),
        cmocka_unit_test(test_handshake_and_welcome_in_one_read),
        cmocka_unit_test(test_bad_accept_is_refused),
        cmocka_unit_test(test_http_error_with_body_every_split),
        cmocka_unit_test(test_http_503_is_retried_and_eof_ends_the_body),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_connect_hook_failure_and_state_errors),
        cmocka_unit_test(test_options_check),
        cmocka_unit_test(test_ping_answered_every_split),
        cmocka_unit_test(test_protocol_violations),
        cmocka_unit_test(test_malformed_messages_reported_or_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
