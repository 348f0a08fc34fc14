/* test_nats_wire.c - NATS PUB building and the server-line reader, fed whole,
 * one byte at a time and cut at every position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "nats_wire.h"

#include <cmocka.h>

typedef struct {
    int msgs, timed, pings, pongs, errs, infos;
    uint64_t last_t;
    int stop_after_msgs; /* 0: never */
} counts_t;

static int on_msg(void *ud, bool has_time, uint64_t t_ns)
{
    counts_t *c = ud;
    c->msgs++;
    if (has_time) {
        c->timed++;
        c->last_t = t_ns;
    }
    return c->stop_after_msgs > 0 && c->msgs >= c->stop_after_msgs;
}

static int on_ping(void *ud)
{
    ((counts_t *)ud)->pings++;
    return 0;
}

static int on_pong(void *ud)
{
    ((counts_t *)ud)->pongs++;
    return 0;
}

static int on_err(void *ud)
{
    ((counts_t *)ud)->errs++;
    return 0;
}

static int on_info(void *ud)
{
    ((counts_t *)ud)->infos++;
    return 0;
}

static const nats_rx_cb_t cb = {on_msg, on_ping, on_pong, on_err, on_info};

static void test_pub(void **state)
{
    (void)state;
    char out[256];
    size_t n = nats_pub(out, sizeof(out), "a.b", 3, 20, 42, true);
    const char want[] = "PUB a.b 20\r\nt=0000000000042;xxxx\r\nPING\r\n";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
    assert_true(n <= nats_pub_max(3, 20));
    n = nats_pub(out, sizeof(out), "a.b", 3, 16, 7, false);
    assert_int_equal(n, strlen("PUB a.b 16\r\nt=0000000000007;\r\n"));
    assert_int_equal(nats_pub(out, 10, "a.b", 3, 16, 7, false), 0); /* too small */
    assert_int_equal(nats_pub(out, sizeof(out), "a.b", 3, 15, 7, false), 0);
}

/* A server stream: a long INFO line, +OK, two MSGs (one with a reply
 * subject), PING, PONG, -ERR, and a MSG without a timestamp. */
static const char stream[] =
    "INFO "
    "{\"server_id\":\"NAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"max_payload\":1048576}\r\n"
    "+OK\r\n"
    "MSG bench.t.1 1 20\r\nt=0000000001234;xxxx\r\n"
    "MSG bench.t.2 7 _INBOX.x 16\r\nt=0000000005678;\r\n"
    "PING\r\nPONG\r\n-ERR 'Unknown Protocol Operation'\r\n"
    "MSG x 1 3\r\nabc\r\n";

static void check(const counts_t *c)
{
    assert_int_equal(c->msgs, 3);
    assert_int_equal(c->timed, 2);
    assert_int_equal(c->last_t, 5678);
    assert_int_equal(c->pings, 1);
    assert_int_equal(c->pongs, 1);
    assert_int_equal(c->errs, 1);
    assert_int_equal(c->infos, 1); /* the long INFO line, recognized by its start */
}

static void test_stream_whole_and_every_cut(void **state)
{
    (void)state;
    size_t len = sizeof(stream) - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        nats_rx_t rx;
        counts_t c = {0};
        nats_rx_init(&rx);
        assert_int_equal(nats_rx_feed(&rx, (const uint8_t *)stream, cut, &cb, &c), 0);
        assert_int_equal(nats_rx_feed(&rx, (const uint8_t *)stream + cut, len - cut, &cb, &c), 0);
        check(&c);
    }
}

static void test_stream_byte_at_a_time(void **state)
{
    (void)state;
    nats_rx_t rx;
    counts_t c = {0};
    nats_rx_init(&rx);
    for (size_t i = 0; i < sizeof(stream) - 1; i++) {
        assert_int_equal(nats_rx_feed(&rx, (const uint8_t *)stream + i, 1, &cb, &c), 0);
    }
    check(&c);
}

static void test_stop_and_malformed(void **state)
{
    (void)state;
    nats_rx_t rx;
    counts_t c = {.stop_after_msgs = 1};
    nats_rx_init(&rx);
    const char two[] = "MSG a 1 16\r\nt=0000000000001;\r\nMSG a 1 16\r\nt=0000000000002;\r\n";
    assert_int_equal(nats_rx_feed(&rx, (const uint8_t *)two, sizeof(two) - 1, &cb, &c), 1);
    assert_int_equal(c.msgs, 1);
    const char *bad[] = {"MSG a 1 x\r\n", "MSG a 1\r\n", "MSG 12\r\n", "MSG a 1 9999999999\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        counts_t d = {0};
        nats_rx_init(&rx);
        assert_int_equal(nats_rx_feed(&rx, (const uint8_t *)bad[i], strlen(bad[i]), &cb, &d), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pub),
        cmocka_unit_test(test_stream_whole_and_every_cut),
        cmocka_unit_test(test_stream_byte_at_a_time),
        cmocka_unit_test(test_stop_and_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
