/*
 * test_client_requests.c - the client core's requests and lifetime:
 * validation and the bounded queue, replies matched to requests, the
 * subscription set, reconnecting (resubscription first, then the queue;
 * backoff with jitter), keepalive, the close handshake, and freeing from
 * inside callbacks. The harness is in client_harness.h.
 */
#include "client_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- requests ---- */

static void test_request_validation(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.max_message_size = 100;
    harness_t *h = h_new_opts(&o);
    wsb_client_t *c = h->c;
    assert_int_equal(wsb_client_subscribe(c, "a..b", NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_subscribe(c, "a.>.b", NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_subscribe(c, NULL, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_unsubscribe(c, "", NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a.*", "1", 1, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "{", 1, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "1 2", 3, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "{\"k\":1,\"k\":2}", 13, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "NaN", 3, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", "", 0, NULL, NULL), WSB_EINVAL);
    assert_int_equal(wsb_client_publish(c, "a", NULL, 0, NULL, NULL), WSB_EINVAL);
    /* Reserved topics are the broker's call (forbidden), not the client's. */
    assert_int_equal(wsb_client_publish(c, "$sys.x", "null", 4, NULL, NULL), 0);
    char big[120];
    memset(big, ' ', sizeof(big));
    big[0] = '1';
    assert_int_equal(wsb_client_publish(c, "a", big, sizeof(big), NULL, NULL), WSB_ETOOBIG);
    assert_int_equal(wsb_client_publish(c, "a", " \"\\u0000\" ", 10, &reply_cb, h), 1);
    assert_int_equal(wsb_client_pending(c), 2);
    h_free(h);
}

static void test_queue_is_bounded(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.max_queue_bytes = 300;
    harness_t *h = h_new_opts(&o);
    int ok = 0;
    int64_t rc;
    while ((rc = wsb_client_publish(h->c, "topic.x", "12345", 5, NULL, NULL)) == 0) {
        ok++;
    }
    assert_int_equal(rc, WSB_EQUEUEFULL);
    assert_true(ok >= 3 && ok <= 6);
    assert_true(wsb_client_queued_bytes(h->c) <= 300);
    assert_int_equal(wsb_client_pending(h->c), (size_t)ok);
    /* Once open, the queue drains into the transport and there is room again. */
    h_open(h);
    assert_int_equal(wsb_client_pending(h->c), 0);
    assert_int_equal(wsb_client_queued_bytes(h->c), 0);
    assert_int_equal(wsb_client_publish(h->c, "topic.x", "12345", 5, NULL, NULL), 0);
    h_free(h);
}

static void test_welcome_limit_applies(void **state)
{
    (void)state;
    harness_t *h = h_new();
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_connected(h->c);
    bytes_t s = {0};
    srv_accept(h, &s);
    srv_text(&s, "{\"type\":\"welcome\",\"protocol\":1,\"limits\":{\"max_message_size\":64}}");
    h_feed_bytes(h, &s);
    free(s.p);
    char data[80];
    memset(data, ' ', sizeof(data));
    data[0] = '0';
    assert_int_equal(wsb_client_publish(h->c, "t", data, sizeof(data), NULL, NULL), WSB_ETOOBIG);
    assert_int_equal(wsb_client_publish(h->c, "t", data, 20, NULL, NULL), 0);
    assert_contains(&h->trace, "open   p=1 max=64");
    h_free(h);
}

static void test_unsubscribe_and_subscription_set(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_subscribe(h->c, "a.>", &reply_cb, h), 1);
    assert_int_equal(wsb_client_subscribe(h->c, "b", NULL, NULL), 2);
    h_feed_text(h, "{\"type\":\"ack\",\"id\":1}");
    h_feed_text(h, "{\"type\":\"ack\",\"id\":2}");
    assert_int_equal(wsb_client_subscription_count(h->c), 2);
    assert_int_equal(wsb_client_unsubscribe(h->c, "a.>", &reply_cb, h), 3);
    assert_int_equal(wsb_client_unsubscribe(h->c, "b", &reply_cb, h), 4);
    h_feed_text(h, "{\"type\":\"ack\",\"id\":3}");
    assert_int_equal(wsb_client_subscription_count(h->c), 1);
    h_feed_text(h, "{\"type\":\"error\",\"id\":4,\"code\":\"not_subscribed\",\"message\":\"no\"}");
    assert_int_equal(wsb_client_subscription_count(h->c), 0);
    /* Replies to unknown ids are ignored. */
    h_feed_text(h, "{\"type\":\"ack\",\"id\":99}");
    srv_read(h);
    assert_contains(&h->sent, "TEXT {\"type\":\"unsubscribe\",\"id\":3,\"topic\":\"a.>\"}\n");
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "ack id=1 seq=- rec=-1\n"
                        "ack id=3 seq=- rec=-1\n"
                        "rerr id=4 st=-30102 code=not_subscribed msg=no topic=b\n");
    h_free(h);
}

static void test_error_without_callback_goes_to_on_error(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_subscribe(h->c, "x", NULL, NULL), 1);
    h_feed_text(h, "{\"type\":\"error\",\"id\":1,\"code\":\"forbidden\",\"message\":\"nope\"}");
    /* A per-request struct with no on_error routes there too. */
    wsb_client_reply_cb_t ack_only = {r_ack, NULL};
    assert_int_equal(wsb_client_publish(h->c, "y", "1", 1, &ack_only, h), 2);
    h_feed_text(h, "{\"type\":\"error\",\"id\":2,\"code\":\"rate_limited\",\"message\":\"slow\"}");
    assert_contains(&h->trace, "cerr st=-30102 code=forbidden msg=nope id=yes topic=x\n");
    assert_contains(&h->trace, "cerr st=-30102 code=rate_limited msg=slow id=yes topic=y\n");
    assert_int_equal(wsb_client_subscription_count(h->c), 0);
    h_free(h);
}

/* Records a presence answer as one trace line. */
static void presence_ack(wsb_client_t *c, const wsb_client_ack_t *a, void *ud)
{
    harness_t *h = ud;
    (void)c;
    bytes_printf(&h->trace, "presence id=%llu n=%zu clients=%llu users=%llu",
                 (unsigned long long)a->id, a->nmembers, (unsigned long long)a->clients,
                 (unsigned long long)a->users);
    for (size_t i = 0; i < a->nmembers; i++) {
        bytes_printf(&h->trace, " %s/%s", a->members[i].client,
                     a->members[i].user ? a->members[i].user : "(null)");
    }
    bytes_printf(&h->trace, "\n");
}

static void test_presence_requests_and_answers(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    const wsb_client_reply_cb_t cb = {presence_ack, reply_cb.on_error};
    /* An exact topic only: a pattern is refused before anything is sent. */
    assert_int_equal(wsb_client_presence(h->c, "chat.*", &cb, h), WSB_EINVAL);
    assert_int_equal(wsb_client_presence_stats(h->c, "chat.>", &cb, h), WSB_EINVAL);
    assert_int_equal(wsb_client_presence(h->c, "chat.r1", &cb, h), 1);
    assert_int_equal(wsb_client_presence_stats(h->c, "chat.r1", &cb, h), 2);
    assert_int_equal(wsb_client_presence(h->c, "chat.r2", &cb, h), 3);
    assert_int_equal(wsb_client_presence(h->c, "chat.r3", &cb, h), 4);
    assert_int_equal(wsb_client_presence(h->c, "chat.r4", &cb, h), 5);
    srv_read(h);
    assert_contains(&h->sent, "TEXT {\"type\":\"presence\",\"id\":1,\"topic\":\"chat.r1\"}\n");
    assert_contains(&h->sent,
                    "TEXT {\"type\":\"presence_stats\",\"id\":2,\"topic\":\"chat.r1\"}\n");
    /* Members without a string client are skipped; a null user is NULL. */
    h_feed_text(h, "{\"type\":\"presence\",\"id\":1,\"topic\":\"chat.r1\",\"members\":["
                   "{\"client\":\"c-1\",\"user\":\"alice\"},{\"client\":\"c-2\",\"user\":null},"
                   "{\"user\":\"x\"},7]}");
    h_feed_text(h, "{\"type\":\"presence_stats\",\"id\":2,\"topic\":\"chat.r1\",\"clients\":2,"
                   "\"users\":1}");
    h_feed_text(h, "{\"type\":\"presence\",\"id\":3,\"topic\":\"chat.r2\",\"members\":[]}");
    h_feed_text(h, "{\"type\":\"error\",\"id\":4,\"code\":\"not_available\",\"message\":\"off\"}");
    /* An answer of the wrong type fails the request instead of passing as empty. */
    h_feed_text(h, "{\"type\":\"ack\",\"id\":5}");
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "presence id=1 n=2 clients=0 users=0 c-1/alice c-2/(null)\n"
                        "presence id=2 n=0 clients=2 users=1\n"
                        "presence id=3 n=0 clients=0 users=0\n"
                        "rerr id=4 st=-30102 code=not_available msg=off topic=chat.r3\n"
                        "rerr id=5 st=-30003 code=- msg=the broker answered the request with "
                        "a reply of another type topic=chat.r4\n");
    h_free(h);
}

/* Records a request's reply as one trace line. */
static void request_ack(wsb_client_t *c, const wsb_client_ack_t *a, void *ud)
{
    harness_t *h = ud;
    (void)c;
    assert_non_null(a->value);
    assert_int_equal(a->data.p[a->data.len], '\0');
    char *from = a->from != NULL ? json_dumps(a->from, JSON_COMPACT) : NULL;
    bytes_printf(&h->trace, "reply id=%llu data=%s from=%s\n", (unsigned long long)a->id, a->data.p,
                 from != NULL ? from : "-");
    free(from);
}

static void test_request_sends_and_gets_reply(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    const wsb_client_reply_cb_t cb = {request_ack, reply_cb.on_error};
    /* Checked before anything is sent: an exact topic, one JSON value, a
     * timeout the broker accepts. */
    assert_int_equal(wsb_client_request(h->c, "dev.*", "1", 1, 0, &cb, h), WSB_EINVAL);
    assert_int_equal(wsb_client_request(h->c, "dev.d7", "{", 1, 0, &cb, h), WSB_EINVAL);
    assert_int_equal(wsb_client_request(h->c, "dev.d7", NULL, 0, 0, &cb, h), WSB_EINVAL);
    assert_int_equal(wsb_client_request(h->c, "dev.d7", "1", 1, 60001, &cb, h), WSB_EINVAL);
    assert_int_equal(wsb_client_pending(h->c), 0);
    const char *op = "{\"op\":\"reboot\"}";
    assert_int_equal(wsb_client_request(h->c, "dev.d7.cmd", op, strlen(op), 2000, &cb, h), 1);
    assert_int_equal(wsb_client_request(h->c, "dev.d8.cmd", "null", 4, 0, &cb, h), 2);
    /* A request made without callbacks still carries an id. */
    assert_int_equal(wsb_client_request(h->c, "dev.d9.cmd", "3", 1, 60000, NULL, NULL), 3);
    for (int i = 4; i <= 7; i++) {
        assert_int_equal(wsb_client_request(h->c, "dev.x", "0", 1, 1, &cb, h), i);
    }
    srv_read(h);
    assert_contains(&h->sent, "TEXT {\"type\":\"request\",\"id\":1,\"topic\":\"dev.d7.cmd\","
                              "\"timeout_ms\":2000,\"data\":{\"op\":\"reboot\"}}\n");
    /* 0: the broker's default, so no timeout_ms at all. */
    assert_contains(
        &h->sent, "TEXT {\"type\":\"request\",\"id\":2,\"topic\":\"dev.d8.cmd\",\"data\":null}\n");
    h_feed_text(h, "{\"type\":\"reply\",\"id\":1,\"data\":{\"ok\":true},"
                   "\"from\":{\"client\":\"c-9\",\"user\":null}}");
    /* A reply from an HTTP responder under no publisher rule: from null. */
    h_feed_text(h, "{\"type\":\"reply\",\"id\":2,\"data\":[1,\"a\"],\"from\":null}");
    h_feed_text(h, "{\"type\":\"reply\",\"id\":3,\"data\":1}");
    h_feed_text(h, "{\"type\":\"error\",\"id\":4,\"code\":\"no_responders\","
                   "\"message\":\"nobody\"}");
    h_feed_text(h, "{\"type\":\"error\",\"id\":5,\"code\":\"timeout\",\"message\":\"late\"}");
    /* An ack is not an answer to a request; a reply without data is null. */
    h_feed_text(h, "{\"type\":\"ack\",\"id\":6}");
    h_feed_text(h, "{\"type\":\"reply\",\"id\":7}");
    /* The request ended: a second reply to the same id is ignored. */
    h_feed_text(h, "{\"type\":\"reply\",\"id\":1,\"data\":2}");
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "reply id=1 data={\"ok\":true} from={\"client\":\"c-9\",\"user\":null}\n"
                        "reply id=2 data=[1,\"a\"] from=-\n"
                        "rerr id=4 st=-30102 code=no_responders msg=nobody topic=dev.x\n"
                        "rerr id=5 st=-30102 code=timeout msg=late topic=dev.x\n"
                        "rerr id=6 st=-30003 code=- msg=the broker answered the request with "
                        "a reply of another type topic=dev.x\n"
                        "reply id=7 data=null from=-\n");
    assert_int_equal(wsb_client_pending(h->c), 0);
    h_free(h);
}

static void test_request_is_never_sent_twice(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    /* Queued before the connection opens, sent once it does. */
    assert_int_equal(wsb_client_request(h->c, "dev.d1", "1", 1, 100, &reply_cb, h), 1);
    h_open(h);
    srv_read(h);
    assert_contains(&h->sent, "TEXT {\"type\":\"request\",\"id\":1,");
    /* The connection drops before the reply: a responder may have acted on
     * the request already, so it fails rather than being sent again. */
    wsb_client_io_closed(h->c, -104, "connection reset by peer");
    assert_contains(&h->trace, "rerr id=1 st=-30101 code=- msg=the connection ended before the "
                               "request's reply arrived topic=dev.d1\n");
    assert_int_equal(wsb_client_pending(h->c), 0);
    wsb_client_io_timer(h->c);
    bytes_clear(&h->sent);
    h->wire_off = h->wire.len;
    wsb_client_io_connected(h->c);
    bytes_t s = {0};
    srv_accept(h, &s);
    h_feed_bytes(h, &s);
    free(s.p);
    srv_read(h);
    assert_lacks(&h->sent, "request");
    h_free(h);
}

static void test_message_reply_to_and_answer(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    const char *inbox = "_inbox.0123456789abcdef0123456789abcdef";
    char frame[256];
    (void)snprintf(frame, sizeof(frame),
                   "{\"type\":\"message\",\"topic\":\"dev.d7.cmd\",\"seq\":4,"
                   "\"reply_to\":\"%s\",\"data\":{\"op\":\"reboot\"}}",
                   inbox);
    h_feed_text(h, frame);
    /* A plain message has no reply_to; a non-string one is ignored. */
    h_feed_text(h, "{\"type\":\"message\",\"topic\":\"dev.d7.cmd\",\"seq\":5,\"data\":1}");
    h_feed_text(h, "{\"type\":\"message\",\"topic\":\"dev.d7.cmd\",\"seq\":6,\"reply_to\":7,"
                   "\"data\":2}");
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "msg dev.d7.cmd seq=4 epoch=- data={\"op\":\"reboot\"} "
                        "reply_to=_inbox.0123456789abcdef0123456789abcdef\n"
                        "msg dev.d7.cmd seq=5 epoch=- data=1\n"
                        "msg dev.d7.cmd seq=6 epoch=- data=2\n");
    /* The answer is an ordinary publish to the inbox. */
    assert_int_equal(wsb_client_publish(h->c, inbox, "{\"ok\":true}", 11, &reply_cb, h), 1);
    srv_read(h);
    assert_contains(&h->sent, "TEXT {\"type\":\"publish\",\"id\":1,\"topic\":\"_inbox."
                              "0123456789abcdef0123456789abcdef\",\"data\":{\"ok\":true}}\n");
    h_free(h);
}

static void test_join_and_leave_events(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    h_feed_text(h, "{\"type\":\"join\",\"topic\":\"chat.r1\",\"member\":{\"client\":\"c-2\","
                   "\"user\":\"bob\"}}");
    h_feed_text(h, "{\"type\":\"leave\",\"topic\":\"chat.r1\",\"member\":{\"client\":\"c-3\","
                   "\"user\":null}}");
    /* Malformed ones are ignored, as unknown types are. */
    h_feed_text(h, "{\"type\":\"join\",\"topic\":\"chat.r1\"}");
    h_feed_text(h, "{\"type\":\"leave\",\"member\":{\"client\":\"c-2\"}}");
    h_feed_text(h, "{\"type\":\"join\",\"topic\":\"chat.r1\",\"member\":{\"client\":7}}");
    assert_string_equal((const char *)h->trace.p, "open c1 n1 p=1 max=65536\n"
                                                  "join chat.r1 c-2/bob\n"
                                                  "leave chat.r1 c-3/(null)\n");
    h_free(h);
}

/* ---- reconnecting ---- */

static void test_reconnect_resubscribes_then_flushes_queue(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    h_open(h);
    assert_int_equal(wsb_client_subscribe(h->c, "keep.*", NULL, NULL), 1);
    assert_int_equal(wsb_client_subscribe(h->c, "pending.>", &reply_cb, h), 2);
    assert_int_equal(wsb_client_publish(h->c, "lost", "1", 1, &reply_cb, h), 3);
    h_feed_text(h, "{\"type\":\"ack\",\"id\":1}");
    /* The TCP connection drops: the publish in flight fails, the subscribe
     * in flight will be sent again. */
    wsb_client_io_closed(h->c, -104, "connection reset by peer");
    assert_contains(&h->trace, "rerr id=3 st=-30101 code=- msg=the connection ended before the "
                               "broker acknowledged the publish topic=lost\n");
    assert_contains(&h->trace, "disc st=-104 code=1006 http=0 open=1 retry=yes "
                               "reason=connection reset by peer\n");
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_BACKOFF);
    assert_true(h->reconnect_ms >= 125 && h->reconnect_ms <= 250);
    /* Requests made meanwhile are queued. */
    assert_int_equal(wsb_client_publish(h->c, "later", "2", 1, &reply_cb, h), 4);
    assert_int_equal(wsb_client_pending(h->c), 2);
    wsb_client_io_timer(h->c);
    assert_int_equal(h->connects, 2);
    bytes_clear(&h->sent);
    h->wire_off = h->wire.len;
    wsb_client_io_connected(h->c);
    bytes_t s = {0};
    srv_accept(h, &s);
    h_feed_bytes(h, &s);
    free(s.p);
    srv_read(h);
    assert_string_equal((const char *)h->sent.p,
                        "TEXT {\"type\":\"subscribe\",\"id\":5,\"topic\":\"keep.*\"}\n"
                        "TEXT {\"type\":\"subscribe\",\"id\":2,\"topic\":\"pending.>\"}\n"
                        "TEXT {\"type\":\"publish\",\"id\":4,\"topic\":\"later\",\"data\":2}\n");
    h_feed_text(h, "{\"type\":\"ack\",\"id\":5}");
    h_feed_text(h, "{\"type\":\"ack\",\"id\":2}");
    h_feed_text(h, "{\"type\":\"ack\",\"id\":4,\"seq\":1}");
    assert_int_equal(wsb_client_subscription_count(h->c), 2);
    assert_contains(&h->trace, "ack id=2 seq=- rec=-1\nack id=4 seq=1 rec=-1\n");
    h_free(h);
}

static void test_failed_resubscription_reported(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    h_open(h);
    assert_int_equal(wsb_client_subscribe(h->c, "secret.>", NULL, NULL), 1);
    h_feed_text(h, "{\"type\":\"ack\",\"id\":1}");
    bytes_t s = {0};
    srv_close(&s, 1008, "token expired");
    h_feed_bytes(h, &s);
    free(s.p);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, "disc st=-30101 code=1008 http=0 open=1 retry=yes");
    wsb_client_io_timer(h->c);
    h->wire_off = h->wire.len;
    wsb_client_io_connected(h->c);
    s = (bytes_t){0};
    srv_accept(h, &s);
    srv_text(&s, "{\"type\":\"error\",\"id\":2,\"code\":\"forbidden\",\"message\":\"no\"}");
    h_feed_bytes(h, &s);
    free(s.p);
    assert_contains(&h->trace, "cerr st=-30102 code=forbidden msg=no id=yes topic=secret.>\n");
    assert_int_equal(wsb_client_subscription_count(h->c), 0);
    h_free(h);
}

static void test_no_reconnect_after_client_bug_codes(void **state)
{
    (void)state;
    static const int codes[] = {1002, 1003, 1007, 1009};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        wsb_client_options_t o = default_opts();
        o.reconnect = true;
        harness_t *h = h_new_opts(&o);
        h_open(h);
        bytes_t s = {0};
        srv_close(&s, codes[i], NULL);
        h_feed_bytes(h, &s);
        free(s.p);
        wsb_client_io_closed(h->c, 0, NULL);
        assert_contains(&h->trace, "retry=no");
        assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
        h_free(h);
    }
}

static void test_backoff_doubles_with_jitter_and_stops(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 1000;
    o.reconnect_max_attempts = 6;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    static const int64_t ceil_ms[] = {100, 200, 400, 800, 1000, 1000};
    for (size_t i = 0; i < 6; i++) {
        wsb_client_io_closed(h->c, -111, "connection refused");
        assert_true(h->reconnect_ms >= ceil_ms[i] / 2 && h->reconnect_ms <= ceil_ms[i]);
        assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_BACKOFF);
        wsb_client_io_timer(h->c);
        assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_CONNECTING);
    }
    wsb_client_io_closed(h->c, -111, "connection refused");
    assert_int_equal(h->reconnect_ms, -1);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    assert_int_equal(h->connects, 7);
    /* A manual connect starts over. */
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_closed(h->c, -111, "connection refused");
    assert_true(h->reconnect_ms >= 50 && h->reconnect_ms <= 100);
    h_free(h);
}

static void test_reconnect_start_failure_backs_off_again(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    harness_t *h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_closed(h->c, -111, "refused");
    h->connect_rc = -24; /* EMFILE */
    wsb_client_io_timer(h->c);
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_BACKOFF);
    assert_contains(&h->trace, "disc st=-24 code=1006 http=0 open=0 retry=yes reason=cannot start "
                               "connecting");
    h_free(h);
}

/* ---- keepalive ---- */

static void test_keepalive_pings_and_detects_silence(void **state)
{
    (void)state;
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    o.ping_interval_ms = 5000;
    harness_t *h = h_new_opts(&o);
    h_open(h);
    bytes_clear(&h->sent);
    assert_int_equal(h->timer_ms, 5000);
    wsb_client_io_timer(h->c); /* ping 1 */
    bytes_t s = {0};
    srv_frame(&s, true, WSB_WS_OP_PONG, NULL, 0);
    h_feed_bytes(h, &s);
    free(s.p);
    wsb_client_io_timer(h->c); /* the pong arrived: ping 2 */
    wsb_client_io_timer(h->c); /* silence for a whole interval: dead */
    srv_read(h);
    assert_string_equal((const char *)h->sent.p, "PING \nPING \n");
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, "disc st=-30103 code=1006 http=0 open=1 retry=yes reason=nothing "
                               "received from the broker for 5000 ms after a ping\n");
    h_free(h);

    o.ping_interval_ms = 0;
    h = h_new_opts(&o);
    h_open(h);
    assert_false(h->timer_armed);
    h_free(h);
}

/* ---- closing and freeing ---- */

static void test_close_handshake(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, &reply_cb, h), 1);
    srv_read(h);
    bytes_clear(&h->sent);
    assert_int_equal(wsb_client_close(h->c), 0);
    assert_int_equal(wsb_client_close(h->c), 0); /* idempotent */
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_CLOSING);
    assert_int_equal(h->timer_ms, WSB_CLIENT_DEFAULT_CLOSE_TIMEOUT_MS);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, NULL, NULL), WSB_ESTATE);
    srv_read(h);
    assert_string_equal((const char *)h->sent.p, "CLOSE 1000 \n");
    assert_int_equal(h->closes, 0);
    /* The ack still arrives before the broker's close; messages are dropped. */
    bytes_t s = {0};
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"t\",\"seq\":1,\"data\":1}");
    srv_text(&s, "{\"type\":\"ack\",\"id\":1,\"seq\":1}");
    srv_close(&s, 1000, NULL);
    h_feed_bytes(h, &s);
    free(s.p);
    assert_int_equal(h->closes, 1);
    assert_true(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "ack id=1 seq=1 rec=-1\n"
                        "disc st=0 code=1000 http=0 open=1 retry=no reason=closed by the "
                        "application\n"
                        "closed\n");
    /* After on_closed the client may connect again. */
    assert_int_equal(wsb_client_connect(h->c), 0);
    h_free(h);
}

static void test_close_timeout_and_inflight_fail(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, &reply_cb, h), 1);
    assert_int_equal(wsb_client_close(h->c), 0);
    wsb_client_io_timer(h->c); /* the broker never answers the close */
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_contains(&h->trace, "rerr id=1 st=-30101 code=- msg=the connection ended before the "
                               "reply arrived topic=t\n");
    assert_contains(&h->trace, "disc st=0 code=1000");
    assert_contains(&h->trace, "closed\n");
    h_free(h);
}

static void test_close_when_idle_or_connecting(void **state)
{
    (void)state;
    /* Idle with queued requests: they are canceled, on_closed follows from
     * a 0 ms timer, never inside wsb_client_close(). */
    harness_t *h = h_new();
    assert_int_equal(wsb_client_subscribe(h->c, "a", &reply_cb, h), 1);
    assert_int_equal(wsb_client_close(h->c), 0);
    assert_string_equal((const char *)h->trace.p, "");
    assert_true(h->timer_armed);
    assert_int_equal(h->timer_ms, 0);
    wsb_client_io_timer(h->c);
    assert_string_equal((const char *)h->trace.p,
                        "rerr id=1 st=-30105 code=- msg=canceled: the client was closed before "
                        "the request was sent topic=a\n"
                        "closed\n");
    h_free(h);

    /* Connecting: the attempt is aborted. */
    h = h_new();
    assert_int_equal(wsb_client_connect(h->c), 0);
    assert_int_equal(wsb_client_close(h->c), 0);
    assert_int_equal(h->closes, 1);
    assert_false(h->close_flush);
    wsb_client_io_closed(h->c, 0, NULL);
    assert_string_equal((const char *)h->trace.p,
                        "disc st=0 code=1006 http=0 open=0 retry=no reason=closed by the "
                        "application while connecting\n"
                        "closed\n");
    h_free(h);

    /* Backing off: the retry is canceled. */
    wsb_client_options_t o = default_opts();
    o.reconnect = true;
    h = h_new_opts(&o);
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_io_closed(h->c, -111, "refused");
    assert_int_equal(wsb_client_close(h->c), 0);
    wsb_client_io_timer(h->c);
    assert_int_equal(h->connects, 1);
    assert_contains(&h->trace, "closed\n");
    assert_int_equal(wsb_client_state(h->c), WSB_CLIENT_IDLE);
    h_free(h);
}

static void test_free_inside_callbacks(void **state)
{
    (void)state;
    /* From on_message, with more frames after it in the same read. */
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, &reply_cb, h), 1);
    h->free_on_message = true;
    bytes_t s = {0};
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"t\",\"seq\":1,\"data\":1}");
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"t\",\"seq\":2,\"data\":2}");
    srv_text(&s, "{\"type\":\"ack\",\"id\":1,\"seq\":1}");
    h_feed_bytes(h, &s);
    free(s.p);
    assert_null(h->c);
    assert_int_equal(h->cleanups, 1);
    assert_string_equal((const char *)h->trace.p,
                        "open c1 n1 p=1 max=65536\n"
                        "msg t seq=1 epoch=- data=1\n"
                        "rerr id=1 st=-30105 code=- msg=canceled: the client was freed before the "
                        "reply arrived topic=t\n");
    h_free(h);

    /* From on_disconnect. */
    h = h_new();
    h->free_on_disconnect = true;
    assert_int_equal(wsb_client_connect(h->c), 0);
    wsb_client_t *c = h->c;
    wsb_client_io_closed(c, -111, "refused");
    assert_null(h->c);
    assert_int_equal(h->cleanups, 1);
    h_free(h);
}

static void test_callbacks_may_call_the_api(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    h->publish_on_ack = true;
    assert_int_equal(wsb_client_subscribe(h->c, "a", &reply_cb, h), 1);
    h->close_on_message = true;
    bytes_clear(&h->sent);
    bytes_t s = {0};
    srv_text(&s, "{\"type\":\"ack\",\"id\":1}");
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"a\",\"seq\":1,\"data\":1}");
    srv_text(&s, "{\"type\":\"message\",\"topic\":\"a\",\"seq\":2,\"data\":2}");
    h_feed_bytes(h, &s);
    free(s.p);
    srv_read(h);
    assert_contains(&h->sent, "TEXT {\"type\":\"publish\",\"topic\":\"from.ack\",\"data\":true}\n"
                              "CLOSE 1000 \n");
    /* The message after close() is not delivered. */
    assert_lacks(&h->trace, "seq=2");
    h_free(h);
}

static void test_free_cancels_everything(void **state)
{
    (void)state;
    harness_t *h = h_new();
    h_open(h);
    assert_int_equal(wsb_client_publish(h->c, "t", "1", 1, &reply_cb, h), 1);
    assert_int_equal(wsb_client_subscribe(h->c, "s", &reply_cb, h), 2);
    wsb_client_free(h->c);
    h->c = NULL;
    assert_int_equal(h->cleanups, 1);
    assert_contains(&h->trace, "rerr id=1 st=-30105");
    assert_contains(&h->trace, "rerr id=2 st=-30105");
    h_free(h);
    wsb_client_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_validation),
        cmocka_unit_test(test_queue_is_bounded),
        cmocka_unit_test(test_welcome_limit_applies),
        cmocka_unit_test(test_unsubscribe_and_subscription_set),
        cmocka_unit_test(test_error_without_callback_goes_to_on_error),
        cmocka_unit_test(test_presence_requests_and_answers),
        cmocka_unit_test(test_request_sends_and_gets_reply),
        cmocka_unit_test(test_request_is_never_sent_twice),
        cmocka_unit_test(test_message_reply_to_and_answer),
        cmocka_unit_test(test_join_and_leave_events),
        cmocka_unit_test(test_reconnect_resubscribes_then_flushes_queue),
        cmocka_unit_test(test_failed_resubscription_reported),
        cmocka_unit_test(test_no_reconnect_after_client_bug_codes),
        cmocka_unit_test(test_backoff_doubles_with_jitter_and_stops),
        cmocka_unit_test(test_reconnect_start_failure_backs_off_again),
        cmocka_unit_test(test_keepalive_pings_and_detects_silence),
        cmocka_unit_test(test_close_handshake),
        cmocka_unit_test(test_close_timeout_and_inflight_fail),
        cmocka_unit_test(test_close_when_idle_or_connecting),
        cmocka_unit_test(test_free_inside_callbacks),
        cmocka_unit_test(test_callbacks_may_call_the_api),
        cmocka_unit_test(test_free_cancels_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
