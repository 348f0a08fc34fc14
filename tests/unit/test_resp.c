/*
 * test_resp.c - the RESP2 request parser: multibulk and inline requests,
 * pipelining, every input whole / one byte at a time / in seeded random
 * chunks, the bounds, and malformed input. Inputs end at a guard page.
 */
/* guard.h needs MAP_ANONYMOUS, which glibc hides under plain _POSIX_C_SOURCE. */
#define _DEFAULT_SOURCE

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these three first, in this order. */
// clang-format off
#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "guard.h"
#include "wsb/common.h"
#include "wsb/resp.h"

#define MAX_ARGS 8

static const wsb_resp_limits_t lim = {
    .max_args = MAX_ARGS, .max_bulk = 64, .max_inline = 64, .max_request = 256};

/* Parses `s` (len bytes, at the end of a guard page). */
static int parse(const char *s, size_t len, wsb_str_t *argv, size_t *argc, size_t *used,
                 const char **why)
{
    guard_buf_t g;
    const char *p = (const char *)guard_copy(&g, s, len);
    int rc = wsb_resp_parse(p, len, &lim, argv, argc, used, why);
    /* Views point into the guarded copy: turn them into offsets of `s`. */
    if (rc == 0) {
        for (size_t i = 0; i < *argc; i++) {
            argv[i].p = s + (argv[i].p - p);
        }
    }
    guard_free(&g);
    return rc;
}

static void expect_args(const wsb_str_t *argv, size_t argc, const char *const *want, size_t nwant)
{
    assert_int_equal(argc, nwant);
    for (size_t i = 0; i < nwant; i++) {
        assert_int_equal(argv[i].len, strlen(want[i]));
        assert_memory_equal(argv[i].p, want[i], argv[i].len);
    }
}

static void test_multibulk(void **state)
{
    (void)state;
    static const char req[] = "*3\r\n$7\r\nPUBLISH\r\n$3\r\na.b\r\n$7\r\n{\"x\":1}\r\n";
    wsb_str_t argv[MAX_ARGS];
    size_t argc = 0, used = 0;
    const char *why = NULL;
    assert_int_equal(parse(req, sizeof(req) - 1, argv, &argc, &used, &why), 0);
    assert_int_equal(used, sizeof(req) - 1);
    const char *want[] = {"PUBLISH", "a.b", "{\"x\":1}"};
    expect_args(argv, argc, want, 3);
    /* Every proper prefix is incomplete, not an error. */
    for (size_t n = 0; n < sizeof(req) - 1; n++) {
        assert_int_equal(parse(req, n, argv, &argc, &used, &why), WSB_EAGAIN);
    }
}

static void test_binary_and_empty_bulk(void **state)
{
    (void)state;
    static const char req[] = "*2\r\n$0\r\n\r\n$4\r\na\r\n\0\r\n";
    wsb_str_t argv[MAX_ARGS];
    size_t argc = 0, used = 0;
    const char *why = NULL;
    assert_int_equal(parse(req, sizeof(req) - 1, argv, &argc, &used, &why), 0);
    assert_int_equal(argc, 2);
    assert_int_equal(argv[0].len, 0);
    assert_int_equal(argv[1].len, 4);
    assert_memory_equal(argv[1].p, "a\r\n\0", 4);
}

static void test_inline(void **state)
{
    (void)state;
    wsb_str_t argv[MAX_ARGS];
    size_t argc = 0, used = 0;
    const char *why = NULL;
    static const char req[] = "  PING \t hello\r\n";
    assert_int_equal(parse(req, sizeof(req) - 1, argv, &argc, &used, &why), 0);
    const char *want[] = {"PING", "hello"};
    expect_args(argv, argc, want, 2);
    assert_int_equal(used, sizeof(req) - 1);
    assert_int_equal(parse("PING\n", 5, argv, &argc, &used, &why), 0);
    assert_int_equal(argc, 1);
    assert_int_equal(parse("\r\n", 2, argv, &argc, &used, &why), 0);
    assert_int_equal(argc, 0);
    assert_int_equal(parse("PING", 4, argv, &argc, &used, &why), WSB_EAGAIN);
}

static void test_empty_arrays(void **state)
{
    (void)state;
    wsb_str_t argv[MAX_ARGS];
    size_t argc = 1, used = 0;
    const char *why = NULL;
    assert_int_equal(parse("*0\r\n", 4, argv, &argc, &used, &why), 0);
    assert_int_equal(argc, 0);
    assert_int_equal(used, 4);
    assert_int_equal(parse("*-1\r\n", 5, argv, &argc, &used, &why), 0);
    assert_int_equal(argc, 0);
}

/* Parses a pipelined stream fed in chunks of at most `chunk` bytes (0 =
 * random sizes from `seed`), the way the broker does: unconsumed bytes are
 * kept and the next chunk appended. Returns the commands' first arguments
 * joined by ','. */
static void parse_stream(const char *stream, size_t len, size_t chunk, unsigned seed, char *out,
                         size_t outcap)
{
    char buf[1024];
    size_t have = 0, fed = 0;
    out[0] = '\0';
    srand(seed);
    while (fed < len || have > 0) {
        size_t n = chunk ? chunk : (size_t)(rand() % 7) + 1;
        if (n > len - fed) {
            n = len - fed;
        }
        memcpy(buf + have, stream + fed, n);
        have += n;
        fed += n;
        for (;;) {
            wsb_str_t argv[MAX_ARGS];
            size_t argc = 0, used = 0;
            const char *why = NULL;
            int rc = parse(buf, have, argv, &argc, &used, &why);
            if (rc == WSB_EAGAIN) {
                break;
            }
            assert_int_equal(rc, 0);
            if (argc > 0) {
                size_t ol = strlen(out);
                (void)snprintf(out + ol, outcap - ol, "%s%.*s", ol ? "," : "", (int)argv[0].len,
                               argv[0].p);
            }
            memmove(buf, buf + used, have - used);
            have -= used;
        }
        if (fed == len) {
            assert_int_equal(have, 0);
            break;
        }
    }
}

static void test_pipelined_chunks(void **state)
{
    (void)state;
    static const char stream[] = "*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\n"
                                 "a\r\n\r\n*0\r\n*1\r\n$4\r\nQUIT\r\n";
    char out[256];
    for (size_t chunk = 1; chunk <= sizeof(stream); chunk++) {
        parse_stream(stream, sizeof(stream) - 1, chunk, 0, out, sizeof(out));
        assert_string_equal(out, "PING,ECHO,SUBSCRIBE,QUIT");
    }
    for (unsigned seed = 1; seed <= 200; seed++) {
        parse_stream(stream, sizeof(stream) - 1, 0, seed, out, sizeof(out));
        assert_string_equal(out, "PING,ECHO,SUBSCRIBE,QUIT");
    }
}

typedef struct {
    const char *in;
    int rc;
    const char *why;
} bad_case_t;

static void test_malformed_and_bounds(void **state)
{
    (void)state;
    static const bad_case_t cases[] = {
        {"*x\r\n", WSB_EPROTO, "invalid multibulk length"},
        {"*1\n", WSB_EPROTO, "invalid multibulk length"},
        {"*1\r\n+OK\r\n", WSB_EPROTO, "expected '$' (a bulk string)"},
        {"*1\r\n$-1\r\n", WSB_EPROTO, "invalid bulk length"},
        {"*1\r\n$x\r\n", WSB_EPROTO, "invalid bulk length"},
        {"*1\r\n$2\r\nabcd", WSB_EPROTO, "bulk string not followed by CRLF"},
        {"*1\r\n$99999999999999999999\r\n", WSB_EPROTO, "invalid bulk length"},
        {"*9\r\n", WSB_ETOOBIG, "too many arguments"},
        {"*1\r\n$65\r\n", WSB_ETOOBIG, "too big bulk string"},
        {"a b c d e f g h i\r\n", WSB_ETOOBIG, "too many arguments"},
        {"*5\r\n$64\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n$64\r\n"
         "0123456789012345678901234567890123456789012345678901234567890123\r\n$64\r\n"
         "0123456789012345678901234567890123456789012345678901234567890123\r\n$64\r\n",
         WSB_ETOOBIG, "too big request"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wsb_str_t argv[MAX_ARGS];
        size_t argc = 0, used = 0;
        const char *why = NULL;
        int rc = parse(cases[i].in, strlen(cases[i].in), argv, &argc, &used, &why);
        if (rc != cases[i].rc || why == NULL || strcmp(why, cases[i].why) != 0) {
            fail_msg("case %zu (%s): rc %d why %s", i, cases[i].in, rc, why ? why : "(null)");
        }
    }
    /* An inline line longer than max_inline, complete or not. */
    char line[100];
    memset(line, 'x', sizeof(line));
    wsb_str_t argv[MAX_ARGS];
    size_t argc = 0, used = 0;
    const char *why = NULL;
    assert_int_equal(parse(line, sizeof(line), argv, &argc, &used, &why), WSB_ETOOBIG);
    line[sizeof(line) - 1] = '\n';
    assert_int_equal(parse(line, sizeof(line), argv, &argc, &used, &why), WSB_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multibulk),        cmocka_unit_test(test_binary_and_empty_bulk),
        cmocka_unit_test(test_inline),           cmocka_unit_test(test_empty_arrays),
        cmocka_unit_test(test_pipelined_chunks), cmocka_unit_test(test_malformed_and_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
