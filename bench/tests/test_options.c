/* test_options.c - wsbench's command line: defaults, every option, both
 * value forms, URL forms, templates, and the errors users can cause. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "options.h"

#include <cmocka.h>

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static opts_t o;
static char err[256];

static opts_result_t parse(int argc, char **argv)
{
    return opts_parse(&o, argc, argv, err, sizeof(err));
}

static void test_defaults(void **state)
{
    (void)state;
    char *argv[] = {"wsbench"};
    assert_int_equal(parse(ARGC(argv), argv), OPTS_OK);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 8080);
    assert_string_equal(o.path, "/ws");
    assert_int_equal(o.subscribers, 100);
    assert_int_equal(o.publishers, 1);
    assert_int_equal(o.threads, 1);
    assert_int_equal(o.topics, 1);
    assert_int_equal(o.payload, 64);
    assert_int_equal(o.inflight, 64);
    assert_true(o.rate == 0);
    assert_true(o.duration == 10.0);
    assert_false(o.duration_set);
    assert_int_equal(o.messages, 0);
    assert_int_equal(o.npatterns, 1); /* subscribers follow the publish template */
    assert_string_equal(o.patterns[0], "bench.{n}");
    assert_int_equal(o.format, OUT_HUMAN);
    assert_int_equal(o.progress, -1);
    assert_false(o.strict);
    assert_string_equal(o.label, "wsbench");
}

static void test_every_option(void **state)
{
    (void)state;
    char *argv[] = {"wsbench",
                    "--url",
                    "ws://127.0.0.1:9001/stream",
                    "--subscribers",
                    "1000",
                    "--publishers=3",
                    "--threads",
                    "2",
                    "--topics",
                    "50",
                    "--topic",
                    "t.{n}.x",
                    "--sub",
                    "t.{n}.x",
                    "--sub=t.*.x",
                    "--sub",
                    "t.>",
                    "--payload",
                    "1024",
                    "--rate",
                    "1500.5",
                    "--inflight",
                    "8",
                    "--max-lag",
                    "0",
                    "--duration",
                    "250ms",
                    "--messages",
                    "200",
                    "--hold",
                    "2s",
                    "--drain",
                    "1.5",
                    "--connect-rate",
                    "300",
                    "--connect-parallel",
                    "16",
                    "--connect-timeout",
                    "9",
                    "--broker-pid",
                    "4242",
                    "--format",
                    "row",
                    "--label",
                    "fanout",
                    "--no-progress",
                    "--strict"};
    assert_int_equal(parse(ARGC(argv), argv), OPTS_OK);
    assert_int_equal(o.port, 9001);
    assert_string_equal(o.path, "/stream");
    assert_int_equal(o.subscribers, 1000);
    assert_int_equal(o.publishers, 3);
    assert_int_equal(o.threads, 2);
    assert_int_equal(o.topics, 50);
    assert_string_equal(o.pub_topic, "t.{n}.x");
    assert_int_equal(o.npatterns, 3);
    assert_string_equal(o.patterns[1], "t.*.x");
    assert_string_equal(o.patterns[2], "t.>");
    assert_int_equal(o.payload, 1024);
    assert_true(o.rate == 1500.5);
    assert_int_equal(o.inflight, 8);
    assert_true(o.max_lag_set);
    assert_int_equal(opts_effective_lag(&o), 0);
    assert_true(o.duration == 0.25);
    assert_true(o.duration_set);
    assert_int_equal(o.messages, 200);
    assert_true(o.hold == 2.0);
    assert_true(o.drain == 1.5);
    assert_int_equal(o.connect_rate, 300);
    assert_int_equal(o.connect_parallel, 16);
    assert_true(o.connect_timeout == 9.0);
    assert_int_equal(o.broker_pid, 4242);
    assert_int_equal(o.format, OUT_ROW);
    assert_string_equal(o.label, "fanout");
    assert_int_equal(o.progress, 0);
    assert_true(o.strict);
}

static void test_flags(void **state)
{
    (void)state;
    char *a[] = {"wsbench", "--json", "--progress", "--table-header"};
    assert_int_equal(parse(ARGC(a), a), OPTS_OK);
    assert_int_equal(o.format, OUT_JSON);
    assert_int_equal(o.progress, 1);
    assert_true(o.table_header);
    char *h[] = {"wsbench", "--subscribers", "5", "--help"};
    assert_int_equal(parse(ARGC(h), h), OPTS_HELP);
    assert_non_null(strstr(opts_usage(), "--broker-pid"));
}

static void test_urls(void **state)
{
    (void)state;
    char *a[] = {"wsbench", "--url", "ws://127.0.0.1"};
    assert_int_equal(parse(ARGC(a), a), OPTS_OK);
    assert_int_equal(o.port, 80);
    assert_string_equal(o.path, "/");
    char *b[] = {"wsbench", "--url", "ws://[::1]:8081/ws?x=1"};
    assert_int_equal(parse(ARGC(b), b), OPTS_OK);
    assert_string_equal(o.host, "::1");
    assert_int_equal(o.port, 8081);
    assert_string_equal(o.path, "/ws?x=1");
    assert_false(o.tls);
    char *c[] = {"wsbench", "--url", "wss://127.0.0.1/ws", "--cafile", "/tmp/ca.pem", "--insecure"};
    assert_int_equal(parse(ARGC(c), c), OPTS_OK);
    assert_true(o.tls);
    assert_int_equal(o.port, 443);
    assert_string_equal(o.cafile, "/tmp/ca.pem");
    assert_true(o.insecure);
    const char *bad[] = {"wss:/127.0.0.1:1/ws",   "http://127.0.0.1/", "ws://localhost:80/ws",
                         "ws://127.0.0.1:0/ws",   "ws://127.0.0.1:x/", "ws://127.0.0.1:70000/",
                         "ws://[::1/ws",          "ws://:80/ws",       "ws://127.0.0.1:/ws",
                         "ws://127.0.0.1:80/a b", "ws://127.0.0.1?x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char url[64];
        (void)snprintf(url, sizeof(url), "%s", bad[i]);
        char *argv[] = {"wsbench", "--url", url};
        assert_int_equal(parse(ARGC(argv), argv), OPTS_ERROR);
        assert_non_null(strstr(err, "--url"));
    }
}

/* Each bad command line fails with a message naming the option. */
static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *args[4];
        const char *names;
    } cases[] = {
        {{"--nope"}, "--nope"},
        {{"subscribers"}, "subscribers"},
        {{"--subscribers"}, "--subscribers"},
        {{"--subscribers", "-1"}, "--subscribers"},
        {{"--subscribers", "12x"}, "--subscribers"},
        {{"--subscribers", "0", "--publishers", "0"}, "nothing to do"},
        {{"--threads", "0"}, "--threads"},
        {{"--threads", "65"}, "--threads"},
        {{"--topics", "0"}, "--topics"},
        {{"--payload", "15"}, "--payload"},
        {{"--rate", "-5"}, "--rate"},
        {{"--rate", "10ms"}, "--rate"},
        {{"--inflight", "0"}, "--inflight"},
        {{"--duration", "1h"}, "--duration"},
        {{"--duration", "nan"}, "--duration"},
        {{"--messages", "1e3"}, "--messages"},
        {{"--connect-timeout", "0"}, "--connect-timeout"},
        {{"--broker-pid", "0"}, "--broker-pid"},
        {{"--format", "xml"}, "--format"},
        {{"--json=yes"}, "--json"},
        {{"--label", "a|b"}, "--label"},
        {{"--topic", "a.*"}, "--topic"},
        {{"--topic", "$sys.x"}, "reserved"},
        {{"--topic", "a..b"}, "--topic"},
        {{"--topic", "a\"b"}, "--topic"},
        {{"--sub", "a.>.b"}, "--sub"},
        {{"--sub", "a.b*"}, "--sub"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char args[4][64];
        char *argv[5] = {"wsbench"};
        int argc = 1;
        for (int k = 0; k < 4 && cases[i].args[k] != NULL; k++) {
            (void)snprintf(args[k], sizeof(args[k]), "%s", cases[i].args[k]);
            argv[argc++] = args[k];
        }
        assert_int_equal(parse(argc, argv), OPTS_ERROR);
        if (strstr(err, cases[i].names) == NULL) {
            fail_msg("case %zu: '%s' does not name '%s'", i, err, cases[i].names);
        }
    }
}

static void test_churn(void **state)
{
    (void)state;
    char *none[] = {"wsbench"};
    assert_int_equal(parse(ARGC(none), none), OPTS_OK);
    assert_int_equal(o.churn, 0);
    char *ok[] = {"wsbench", "--subscribers", "100", "--publishers", "0", "--churn", "100"};
    assert_int_equal(parse(ARGC(ok), ok), OPTS_OK);
    assert_int_equal(o.churn, 100);
    assert_false(o.churn_quiet);
    char *quiet[] = {"wsbench", "--subscribers", "9", "--publishers",
                     "0",       "--churn",       "9", "--churn-quiet"};
    assert_int_equal(parse(ARGC(quiet), quiet), OPTS_OK);
    assert_true(o.churn_quiet);
    char *many[] = {"wsbench", "--subscribers", "100", "--publishers", "0", "--churn", "101"};
    assert_int_equal(parse(ARGC(many), many), OPTS_ERROR);
    assert_non_null(strstr(err, "--churn 101 exceeds --subscribers 100"));
    char *pubs[] = {"wsbench", "--subscribers", "100", "--churn", "10"};
    assert_int_equal(parse(ARGC(pubs), pubs), OPTS_ERROR);
    assert_non_null(strstr(err, "--churn needs --publishers 0"));
    char *bad[] = {"wsbench", "--subscribers", "100", "--publishers", "0", "--churn", "-1"};
    assert_int_equal(parse(ARGC(bad), bad), OPTS_ERROR);
    assert_non_null(strstr(err, "--churn: '-1'"));
}

/* --probe, --repeat, --stall and the nats:// URL that goes with nats-request. */
static void test_probe(void **state)
{
    (void)state;
    char *none[] = {"wsbench"};
    assert_int_equal(parse(ARGC(none), none), OPTS_OK);
    assert_int_equal(o.probe, PROBE_NONE);
    assert_int_equal(o.repeat, 20);
    assert_int_equal(o.stall, 0);

    static struct {
        char name[16];
        probe_t probe;
    } modes[] = {{"request", PROBE_REQUEST},
                 {"http-request", PROBE_HTTP_REQUEST},
                 {"lastvalue", PROBE_LASTVALUE},
                 {"lastvalue-exact", PROBE_LASTVALUE_EXACT}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char *argv[] = {"wsbench", "--probe", modes[i].name, "--repeat=7"};
        assert_int_equal(parse(ARGC(argv), argv), OPTS_OK);
        assert_int_equal(o.probe, modes[i].probe);
        assert_int_equal(o.repeat, 7);
        assert_false(o.nats);
    }

    char *nats[] = {"wsbench", "--probe", "nats-request", "--url", "nats://127.0.0.1:4333"};
    assert_int_equal(parse(ARGC(nats), nats), OPTS_OK);
    assert_int_equal(o.probe, PROBE_NATS_REQUEST);
    assert_true(o.nats);
    assert_int_equal(o.port, 4333);
    char *nats_default[] = {"wsbench", "--url", "nats://127.0.0.1", "--probe", "nats-request"};
    assert_int_equal(parse(ARGC(nats_default), nats_default), OPTS_OK);
    assert_int_equal(o.port, 4222);

    /* nats:// without a probe: the fan-out run against a NATS server. */
    char *nats_run[] = {"wsbench", "--url", "nats://127.0.0.1:4222", "--subscribers", "10"};
    assert_int_equal(parse(ARGC(nats_run), nats_run), OPTS_OK);
    assert_true(o.nats);
    assert_int_equal(o.probe, PROBE_NONE);
    char *nats_tls[] = {"wsbench", "--url", "nats+tls://127.0.0.1:4443", "--cafile", "ca.pem"};
    assert_int_equal(parse(ARGC(nats_tls), nats_tls), OPTS_OK);
    assert_true(o.nats && o.tls);
    assert_int_equal(o.port, 4443);
    char *nats_deflate[] = {"wsbench", "--url", "nats://127.0.0.1:4222", "--deflate"};
    assert_int_equal(parse(ARGC(nats_deflate), nats_deflate), OPTS_ERROR);
    assert_non_null(strstr(err, "--deflate"));

    /* nats:// with a WebSocket probe, nats-request without nats://, a probe
     * over wss:// or with --pub-url, an unknown probe, a zero repeat. */
    char *e1[] = {"wsbench", "--url", "nats://127.0.0.1:4222", "--probe", "request"};
    char *e2[] = {"wsbench", "--probe", "nats-request"};
    char *e3[] = {"wsbench", "--probe", "request", "--url", "wss://127.0.0.1:8443/ws"};
    char *e4[] = {"wsbench", "--probe", "request", "--pub-url", "ws://127.0.0.1:9/ws"};
    char *e5[] = {"wsbench", "--probe", "pingpong"};
    char *e6[] = {"wsbench", "--probe", "lastvalue", "--repeat", "0"};
    char *e7[] = {"wsbench", "--pub-url", "nats://127.0.0.1:4222"};
    assert_int_equal(parse(ARGC(e1), e1), OPTS_ERROR);
    assert_non_null(strstr(err, "nats-request"));
    assert_int_equal(parse(ARGC(e2), e2), OPTS_ERROR);
    assert_int_equal(parse(ARGC(e3), e3), OPTS_ERROR);
    assert_non_null(strstr(err, "--probe"));
    assert_int_equal(parse(ARGC(e4), e4), OPTS_ERROR);
    assert_int_equal(parse(ARGC(e5), e5), OPTS_ERROR);
    assert_non_null(strstr(err, "pingpong"));
    assert_int_equal(parse(ARGC(e6), e6), OPTS_ERROR);
    assert_non_null(strstr(err, "--repeat"));
    assert_int_equal(parse(ARGC(e7), e7), OPTS_ERROR);

    char *stall[] = {"wsbench", "--subscribers", "10", "--stall", "3"};
    assert_int_equal(parse(ARGC(stall), stall), OPTS_OK);
    assert_int_equal(o.stall, 3);
    char *stall_big[] = {"wsbench", "--subscribers", "10", "--stall", "11"};
    assert_int_equal(parse(ARGC(stall_big), stall_big), OPTS_ERROR);
    assert_non_null(strstr(err, "--stall"));
}

static void test_too_many_patterns(void **state)
{
    (void)state;
    char *argv[2 + 2 * (OPTS_MAX_PATTERNS + 1)];
    int argc = 0;
    argv[argc++] = "wsbench";
    for (int i = 0; i <= OPTS_MAX_PATTERNS; i++) {
        argv[argc++] = "--sub";
        argv[argc++] = "a.b";
    }
    assert_int_equal(parse(argc, argv), OPTS_ERROR);
    assert_non_null(strstr(err, "at most"));
}

static void test_template_checked_at_largest_n(void **state)
{
    (void)state;
    /* 60 "{n}": 60 bytes for n = 0, 300 bytes (over the topic limit) for n = 99999. */
    char tmpl[200];
    for (size_t i = 0; i < 60; i++) {
        memcpy(tmpl + 3 * i, "{n}", 3);
    }
    tmpl[180] = '\0';
    char *one[] = {"wsbench", "--topic", tmpl};
    assert_int_equal(parse(ARGC(one), one), OPTS_OK);
    char *many[] = {"wsbench", "--topic", tmpl, "--topics", "100000"};
    assert_int_equal(parse(ARGC(many), many), OPTS_ERROR);
    assert_non_null(strstr(err, "expands to more than 256 bytes"));
    /* A template longer than the option allows. */
    char big[260];
    memset(big, 'a', 255);
    big[255] = '\0';
    char *longer[] = {"wsbench", "--sub", big};
    assert_int_equal(parse(ARGC(longer), longer), OPTS_ERROR);
    assert_non_null(strstr(err, "--sub"));
}

static void test_expand(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(opts_expand("a.{n}.b.{n}", 42, out, sizeof(out)), 9);
    assert_string_equal(out, "a.42.b.42");
    assert_int_equal(opts_expand("plain", 7, out, sizeof(out)), 5);
    assert_string_equal(out, "plain");
    assert_int_equal(opts_expand("{n", 7, out, sizeof(out)), 2);
    assert_string_equal(out, "{n");
    assert_int_equal(opts_expand("abc{n}", 12345, out, 8), -1);
    assert_int_equal(opts_expand("abc{n}", 1234, out, 8), 7);
    assert_int_equal(opts_expand("abcd", 0, out, 4), -1);
}

static void test_effective_lag(void **state)
{
    (void)state;
    opts_defaults(&o);
    assert_int_equal(opts_effective_lag(&o), 2048); /* 256 KiB / 128 */
    o.payload = 16384;
    assert_int_equal(opts_effective_lag(&o), 16);
    o.payload = 16;
    assert_int_equal(opts_effective_lag(&o), 3276);
    o.max_lag_set = true;
    o.max_lag = 7;
    assert_int_equal(opts_effective_lag(&o), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_option),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_too_many_patterns),
        cmocka_unit_test(test_template_checked_at_largest_n),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_effective_lag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
