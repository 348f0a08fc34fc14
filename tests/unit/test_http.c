/*
 * test_http.c - the bounded HTTP/1.1 request parser and its helpers.
 *
 * Every request script is fed whole, one byte at a time, split in two at
 * every byte boundary, and in seeded random chunks; each chunk sits at the end
 * of a guard page. A driver that behaves like the broker (feed, handle, reset,
 * feed the rest; stop after an upgrade) turns each run into one transcript,
 * and all the ways of chunking must produce the same transcript.
 */
/* guard.h needs MAP_ANONYMOUS, which glibc hides under plain _POSIX_C_SOURCE. */
#define _DEFAULT_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h, included below, needs these four first. */
#include "guard.h"
#include "wsb/http.h"

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRANSCRIPT_MAX 16384
#define RANDOM_RUNS    64

typedef struct {
    size_t max_head;
    size_t max_body;
} limits_t;

static const limits_t default_limits = {WSB_HTTP_DEFAULT_MAX_HEAD, 65536};

/* Appends the NUL-terminated `s` to the NUL-terminated text in out[cap]. */
static void put(char *out, size_t cap, const char *s)
{
    size_t used = strlen(out);
    size_t n = strlen(s);
    assert_true(used + n < cap);
    memcpy(out + used, s, n + 1);
}

static void put_int(char *out, size_t cap, const char *label, long value)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%s%ld", label, value);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    put(out, cap, buf);
}

/* Appends a slice with bytes outside printable ASCII (and '\\') as \\xNN. */
static void put_str(char *out, size_t cap, wsb_str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        char buf[8];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[0] = (char)c;
            buf[1] = '\0';
        } else {
            int n = snprintf(buf, sizeof(buf), "\\x%02x", c);
            assert_int_equal(n, 4);
        }
        put(out, cap, buf);
    }
}

/* Copies the characters of `src` (without its NUL) to dst. */
static void place(char *dst, const char *src)
{
    for (size_t i = 0; src[i] != '\0'; i++) {
        dst[i] = src[i];
    }
}

/* Asserts that a slice was copied: it never points into the caller's input. */
static void assert_not_in(wsb_str_t s, const char *input, size_t len)
{
    if (s.len > 0) {
        assert_true(s.p + s.len <= input || s.p >= input + len);
    }
}

/* One line per request: everything the accessors report. */
static void describe(const wsb_http_request_t *r, char *out, size_t cap)
{
    put(out, cap, "REQ ");
    put_str(out, cap, wsb_http_request_method(r));
    put(out, cap, " ");
    put_str(out, cap, wsb_http_request_url(r));
    put_int(out, cap, " v", wsb_http_request_version(r));
    put_int(out, cap, " ka=", wsb_http_request_keep_alive(r));
    put_int(out, cap, " up=", wsb_http_request_is_upgrade(r));
    for (size_t i = 0; i < wsb_http_request_header_count(r); i++) {
        const wsb_http_header_t *h = wsb_http_request_header_at(r, i);
        put(out, cap, " [");
        put_str(out, cap, h->name);
        put(out, cap, ":");
        put_str(out, cap, h->value);
        put(out, cap, "]");
    }
    put(out, cap, " body=");
    put_str(out, cap, wsb_http_request_body(r));
    put(out, cap, "\n");
}

/*
 * Feeds `input` split at the offsets in cuts[0..ncuts) like the broker would:
 * each chunk is a fresh read, copied so that it ends at a guard page (one
 * mapping per run, reused); complete requests are described and the parser
 * reset; after an upgrade the unused bytes are recorded and feeding stops; an
 * error records the status.
 */
static void run_script(limits_t lim, const char *input, size_t len, const size_t *cuts,
                       size_t ncuts, char *out, size_t cap)
{
    wsb_http_request_t *r = wsb_http_request_new(lim.max_head, lim.max_body);
    assert_non_null(r);
    out[0] = '\0';
    guard_buf_t g;
    char *region = (char *)guard_copy(&g, input, len);
    size_t begin = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        if (end < begin) {
            continue;
        }
        char *chunk = region + len - (end - begin);
        memmove(chunk, input + begin, end - begin);
        size_t off = 0;
        bool stop = false;
        /* A chunk may hold the end of one request and the start of the next. */
        while (!stop) {
            size_t consumed = 12345;
            int rc = wsb_http_request_feed(r, chunk + off, end - begin - off, &consumed);
            assert_true(consumed <= end - begin - off);
            if (rc == WSB_EAGAIN) {
                assert_int_equal(consumed, end - begin - off);
                break;
            }
            if (rc == WSB_EHTTP) {
                put_int(out, cap, "ERR ", wsb_http_request_status(r));
                put(out, cap, "\n");
                assert_true(strlen(wsb_http_request_error(r)) > 0);
                stop = true;
                break;
            }
            assert_int_equal(rc, 0);
            describe(r, out, cap);
            assert_not_in(wsb_http_request_url(r), region, len);
            assert_not_in(wsb_http_request_body(r), region, len);
            off += consumed;
            if (wsb_http_request_is_upgrade(r)) {
                put(out, cap, "REST ");
                put_str(out, cap, (wsb_str_t){input + begin + off, len - begin - off});
                put(out, cap, "\n");
                stop = true;
                break;
            }
            wsb_http_request_reset(r);
            if (off == end - begin) {
                break;
            }
        }
        if (stop) {
            break;
        }
        begin = end;
    }
    guard_free(&g);
    wsb_http_request_free(r);
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: deterministic across platforms, unlike rand(). */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Runs the script every way and checks each transcript equals `expected`. */
static void check_all_ways_lim(limits_t lim, const char *input, size_t len, const char *expected)
{
    char *got = malloc(TRANSCRIPT_MAX);
    assert_non_null(got);

    run_script(lim, input, len, NULL, 0, got, TRANSCRIPT_MAX);
    assert_string_equal(got, expected);

    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < len; i++) {
        cuts[i] = i + 1;
    }
    run_script(lim, input, len, cuts, len, got, TRANSCRIPT_MAX);
    assert_string_equal(got, expected);

    for (size_t at = 0; at <= len; at++) {
        run_script(lim, input, len, &at, 1, got, TRANSCRIPT_MAX);
        assert_string_equal(got, expected);
    }

    uint64_t seed = 0x5eed0f0f1234ULL + len;
    for (int run = 0; run < RANDOM_RUNS; run++) {
        size_t n = 0;
        size_t pos = 0;
        while (pos < len) {
            pos += 1 + (size_t)(rng_next(&seed) % 17);
            cuts[n++] = pos < len ? pos : len;
        }
        run_script(lim, input, len, cuts, n, got, TRANSCRIPT_MAX);
        assert_string_equal(got, expected);
    }
    free(cuts);
    free(got);
}

static void check_all_ways(const char *input, const char *expected)
{
    check_all_ways_lim(default_limits, input, strlen(input), expected);
}

/* Parses one complete request fed whole; the caller frees the parser. */
static wsb_http_request_t *parse_one(const char *input, size_t *consumed)
{
    wsb_http_request_t *r = wsb_http_request_new(default_limits.max_head, default_limits.max_body);
    assert_non_null(r);
    guard_buf_t g;
    size_t len = strlen(input);
    const char *data = (const char *)guard_copy(&g, input, len);
    size_t used = 0;
    assert_int_equal(wsb_http_request_feed(r, data, len, &used), 0);
    guard_free(&g);
    if (consumed != NULL) {
        *consumed = used;
    }
    return r;
}

static int feed_status(limits_t lim, const char *input, size_t len)
{
    wsb_http_request_t *r = wsb_http_request_new(lim.max_head, lim.max_body);
    assert_non_null(r);
    size_t used = 0;
    int rc = wsb_http_request_feed(r, input, len, &used);
    int status = rc == WSB_EHTTP ? wsb_http_request_status(r) : rc;
    wsb_http_request_free(r);
    return status;
}

/* ---- requests fed every way ---------------------------------------------- */

static void test_simple_get(void **state)
{
    (void)state;
    check_all_ways("GET /ws?token=abc HTTP/1.1\r\nHost: example.com\r\n"
                   "User-Agent: t  \t\r\nAccept: */*\r\n\r\n",
                   "REQ GET /ws?token=abc v11 ka=1 up=0 [Host:example.com] [User-Agent:t] "
                   "[Accept:*/*] body=\n");
}

static void test_header_accessors(void **state)
{
    (void)state;
    size_t consumed = 0;
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nx-dup: 1\r\nX-Dup: 2\r\n\r\n";
    wsb_http_request_t *r = parse_one(req, &consumed);
    assert_int_equal(consumed, strlen(req));
    assert_true(wsb_str_eq(wsb_http_request_method(r), "GET"));
    assert_int_equal(wsb_http_request_version(r), 11);
    assert_int_equal(wsb_http_request_header_count(r), 4);
    assert_null(wsb_http_request_header_at(r, 4));
    assert_true(wsb_str_eq(wsb_http_request_header(r, "HOST"), "a"));
    assert_true(wsb_str_eq(wsb_http_request_header(r, "X-DUP"), "1"));
    wsb_str_t empty = wsb_http_request_header(r, "x-empty");
    assert_non_null(empty.p);
    assert_int_equal(empty.len, 0);
    wsb_str_t absent = wsb_http_request_header(r, "X-Absent");
    assert_null(absent.p);
    assert_int_equal(absent.len, 0);
    assert_int_equal(wsb_http_request_body(r).len, 0);
    wsb_http_request_free(r);
}

static void test_post_content_length(void **state)
{
    (void)state;
    check_all_ways("POST /api/publish HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
                   "hello world",
                   "REQ POST /api/publish v11 ka=1 up=0 [Host:h] [Content-Length:11] "
                   "body=hello world\n");
}

static void test_chunked_body(void **state)
{
    (void)state;
    /* Extensions and trailers are consumed but not kept. */
    check_all_ways("POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                   "REQ POST /p v11 ka=1 up=0 [Transfer-Encoding:chunked] body=hello world\n");
}

static void test_pipelined(void **state)
{
    (void)state;
    check_all_ways("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                   "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
                   "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                   "REQ GET /a v11 ka=1 up=0 [Host:h] body=\n"
                   "REQ POST /b v11 ka=1 up=0 [Host:h] [Content-Length:3] body=xyz\n"
                   "REQ GET /c v11 ka=0 up=0 [Host:h] [Connection:close] body=\n");
}

static void test_pipelined_consumed(void **state)
{
    (void)state;
    const char *first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    const char *second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    char both[128] = "";
    put(both, sizeof(both), first);
    put(both, sizeof(both), second);
    size_t len = strlen(both);

    wsb_http_request_t *r = wsb_http_request_new(0, 1024);
    assert_non_null(r);
    size_t consumed = 0;
    assert_int_equal(wsb_http_request_feed(r, both, len, &consumed), 0);
    assert_int_equal(consumed, strlen(first));
    assert_true(wsb_str_eq(wsb_http_request_url(r), "/a"));

    /* Without reset() the finished request stays and nothing is used. */
    size_t again = 99;
    assert_int_equal(wsb_http_request_feed(r, both + consumed, len - consumed, &again), 0);
    assert_int_equal(again, 0);
    assert_true(wsb_str_eq(wsb_http_request_url(r), "/a"));

    wsb_http_request_reset(r);
    size_t rest = 0;
    assert_int_equal(wsb_http_request_feed(r, both + consumed, len - consumed, &rest), 0);
    assert_int_equal(rest, strlen(second));
    assert_true(wsb_str_eq(wsb_http_request_url(r), "/b"));
    wsb_http_request_free(r);
}

static void test_upgrade_trailing_bytes(void **state)
{
    (void)state;
    /* A client may send its first frame right behind the handshake. */
    check_all_ways("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "\r\n\x81\x85\x01\x02\x03\x04"
                   "abcde",
                   "REQ GET /ws v11 ka=1 up=1 [Host:h] [Upgrade:websocket] [Connection:Upgrade] "
                   "[Sec-WebSocket-Key:dGhlIHNhbXBsZSBub25jZQ==] [Sec-WebSocket-Version:13] body=\n"
                   "REST \\x81\\x85\\x01\\x02\\x03\\x04abcde\n");
}

static void test_upgrade_consumed(void **state)
{
    (void)state;
    const char *head = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                       "Connection: keep-alive, Upgrade\r\n\r\n";
    char buf[256];
    size_t head_len = strlen(head);
    place(buf, head);
    place(buf + head_len, "\x88\x80GET / HTTP/1.1\r\n\r\n");
    size_t consumed = 0;
    wsb_http_request_t *r = wsb_http_request_new(0, 0);
    assert_non_null(r);
    assert_int_equal(wsb_http_request_feed(r, buf, head_len + 20, &consumed), 0);
    assert_int_equal(consumed, head_len);
    assert_true(wsb_http_request_is_upgrade(r));
    wsb_http_request_free(r);
}

static void test_upgrade_needs_connection_upgrade(void **state)
{
    (void)state;
    /* Without "Connection: upgrade" the request is plain HTTP to llhttp. */
    check_all_ways("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
                   "REQ GET /ws v11 ka=1 up=0 [Host:h] [Upgrade:websocket] body=\n");
}

static void test_keep_alive(void **state)
{
    (void)state;
    check_all_ways("GET / HTTP/1.0\r\n\r\n", "REQ GET / v10 ka=0 up=0 body=\n");
    check_all_ways("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                   "REQ GET / v10 ka=1 up=0 [Connection:keep-alive] body=\n");
    check_all_ways("GET / HTTP/1.1\r\n\r\n", "REQ GET / v11 ka=1 up=0 body=\n");
    check_all_ways("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n",
                   "REQ GET / v11 ka=0 up=0 [Connection:Close] body=\n");
}

static void test_obs_fold_and_leading_crlf(void **state)
{
    (void)state;
    /* A folded line is joined (RFC 9112 5.2); an empty line before the request
     * line is ignored (RFC 9112 2.2). */
    check_all_ways("\r\nGET / HTTP/1.1\r\nX-Long: a\r\n  b\r\n\r\n",
                   "REQ GET / v11 ka=1 up=0 [X-Long:a  b] body=\n");
}

/* ---- bounds ---------------------------------------------------------------- */

static char *make_request_with_header(size_t value_len, size_t *out_len)
{
    const char *pre = "GET / HTTP/1.1\r\nX-Big: ";
    const char *post = "\r\n\r\n";
    size_t len = strlen(pre) + value_len + strlen(post);
    char *s = malloc(len + 1);
    assert_non_null(s);
    place(s, pre);
    memset(s + strlen(pre), 'v', value_len);
    memcpy(s + strlen(pre) + value_len, post, strlen(post) + 1);
    *out_len = len;
    return s;
}

static void test_head_limit_exact(void **state)
{
    (void)state;
    limits_t lim = {200, 0};
    size_t len = 0;
    char *req = make_request_with_header(200 - 27, &len);
    assert_int_equal(len, 200);
    char *expected = malloc(512);
    assert_non_null(expected);
    int n = snprintf(expected, 512, "REQ GET / v11 ka=1 up=0 [X-Big:%.*s] body=\n", 173, req + 23);
    assert_true(n > 0 && n < 512);
    check_all_ways_lim(lim, req, len, expected);
    free(req);

    req = make_request_with_header(200 - 26, &len);
    assert_int_equal(len, 201);
    check_all_ways_lim(lim, req, len, "ERR 431\n");
    free(req);
    free(expected);
}

/* A parser made with max_header_bytes 0 takes the documented default: a head
 * of exactly 8 KiB (8192 bytes, PROTOCOL.md section 9) is read, one byte more
 * is 431, however the bytes arrive. */
static void test_default_head_limit_8k(void **state)
{
    (void)state;
    const limits_t lim = {0, 0};
    size_t len = 0;
    char *req = make_request_with_header(8192 - 27, &len);
    assert_int_equal(len, 8192);
    char *expected = malloc(TRANSCRIPT_MAX);
    assert_non_null(expected);
    int n = snprintf(expected, TRANSCRIPT_MAX, "REQ GET / v11 ka=1 up=0 [X-Big:%.*s] body=\n",
                     8192 - 27, req + 23);
    assert_true(n > 0 && n < TRANSCRIPT_MAX);
    check_all_ways_lim(lim, req, len, expected);
    free(req);
    free(expected);

    req = make_request_with_header(8192 - 26, &len);
    assert_int_equal(len, 8193);
    check_all_ways_lim(lim, req, len, "ERR 431\n");
    free(req);
}

/* The head buffer starts small and grows: every header collected before a
 * growth must still read right after it (they move with the buffer), at
 * every split of the input. 24 headers of ~100 bytes cross several doublings. */
static void test_head_buffer_growth_keeps_headers(void **state)
{
    (void)state;
    size_t cap = 4096;
    char *req = malloc(cap);
    char *expected = malloc(TRANSCRIPT_MAX);
    assert_non_null(req);
    assert_non_null(expected);
    size_t len = (size_t)snprintf(req, cap, "GET /grow HTTP/1.1\r\n");
    size_t elen = (size_t)snprintf(expected, TRANSCRIPT_MAX, "REQ GET /grow v11 ka=1 up=0");
    for (int i = 0; i < 24; i++) {
        char value[96];
        memset(value, 'a' + i % 26, sizeof(value) - 1);
        value[sizeof(value) - 1] = '\0';
        len += (size_t)snprintf(req + len, cap - len, "X-H%02d: %s\r\n", i, value);
        elen += (size_t)snprintf(expected + elen, TRANSCRIPT_MAX - elen, " [X-H%02d:%s]", i, value);
    }
    len += (size_t)snprintf(req + len, cap - len, "\r\n");
    (void)snprintf(expected + elen, TRANSCRIPT_MAX - elen, " body=\n");
    assert_true(len > 2048 && len < cap);
    check_all_ways_lim(default_limits, req, len, expected);
    free(req);
    free(expected);
}

static void test_head_too_large_tiny_chunks(void **state)
{
    (void)state;
    /* 20 KiB of header arriving byte by byte is refused at 8 KiB. */
    size_t len = 0;
    char *req = make_request_with_header(20000, &len);
    wsb_http_request_t *r = wsb_http_request_new(WSB_HTTP_DEFAULT_MAX_HEAD, 0);
    assert_non_null(r);
    int rc = WSB_EAGAIN;
    size_t fed = 0;
    while (rc == WSB_EAGAIN && fed < len) {
        size_t consumed = 0;
        rc = wsb_http_request_feed(r, req + fed, 1, &consumed);
        fed++;
    }
    assert_int_equal(rc, WSB_EHTTP);
    assert_int_equal(wsb_http_request_status(r), 431);
    assert_true(fed <= WSB_HTTP_DEFAULT_MAX_HEAD + 1);
    /* Further input is refused the same way until reset(). */
    size_t consumed = 7;
    assert_int_equal(wsb_http_request_feed(r, "x", 1, &consumed), WSB_EHTTP);
    assert_int_equal(consumed, 0);
    wsb_http_request_free(r);

    /* The same input in one piece, and a long URL instead of a header. */
    assert_int_equal(feed_status(default_limits, req, len), 431);
    free(req);
    char url[10000];
    memset(url, 'a', sizeof(url));
    place(url, "GET /");
    assert_int_equal(feed_status(default_limits, url, sizeof(url)), 431);

    /* Endless blank lines before a request line are head bytes too. */
    char crlf[9000];
    for (size_t i = 0; i < sizeof(crlf); i += 2) {
        crlf[i] = '\r';
        crlf[i + 1] = '\n';
    }
    assert_int_equal(feed_status(default_limits, crlf, sizeof(crlf)), 431);
}

static char *make_request_with_headers(size_t count)
{
    size_t cap = 64 + count * 16;
    char *s = malloc(cap);
    assert_non_null(s);
    s[0] = '\0';
    put(s, cap, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < count; i++) {
        put_int(s, cap, "X-H", (long)i);
        put_int(s, cap, ": ", (long)i);
        put(s, cap, "\r\n");
    }
    put(s, cap, "\r\n");
    return s;
}

static void test_too_many_headers(void **state)
{
    (void)state;
    char *ok = make_request_with_headers(WSB_HTTP_MAX_HEADERS);
    size_t consumed = 0;
    wsb_http_request_t *r = parse_one(ok, &consumed);
    assert_int_equal(wsb_http_request_header_count(r), WSB_HTTP_MAX_HEADERS);
    assert_true(wsb_str_eq(wsb_http_request_header(r, "x-h63"), "63"));
    wsb_http_request_free(r);
    free(ok);

    char *bad = make_request_with_headers(WSB_HTTP_MAX_HEADERS + 1);
    check_all_ways_lim(default_limits, bad, strlen(bad), "ERR 431\n");
    free(bad);
}

static void test_body_too_large_content_length(void **state)
{
    (void)state;
    limits_t lim = {1024, 10};
    const char *ok = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
    check_all_ways_lim(lim, ok, strlen(ok),
                       "REQ POST / v11 ka=1 up=0 [Content-Length:10] body=0123456789\n");

    /* Refused as soon as the head is complete: no body byte is needed. */
    const char *head = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
    assert_int_equal(feed_status(lim, head, strlen(head)), 413);
    check_all_ways_lim(lim, head, strlen(head), "ERR 413\n");
    const char *huge = "POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n";
    assert_int_equal(feed_status(lim, huge, strlen(huge)), 413);
}

static void test_body_too_large_chunked(void **state)
{
    (void)state;
    limits_t lim = {1024, 10};
    const char *ok = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n";
    check_all_ways_lim(lim, ok, strlen(ok),
                       "REQ POST / v11 ka=1 up=0 [Transfer-Encoding:chunked] body=0123456789\n");
    const char *bad = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4\r\n0123\r\n7\r\n456789a\r\n0\r\n\r\n";
    check_all_ways_lim(lim, bad, strlen(bad), "ERR 413\n");
}

static void test_chunk_framing_bounded(void **state)
{
    (void)state;
    /* Chunk extensions store nothing, yet an endless stream of them is cut. */
    limits_t lim = {256, 256};
    size_t len = 0;
    char *req = malloc(4096);
    assert_non_null(req);
    req[0] = '\0';
    put(req, 4096, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;");
    len = strlen(req);
    memset(req + len, 'e', 1000 - len);
    len = 1000;
    assert_int_equal(feed_status(lim, req, len), 413);
    check_all_ways_lim(lim, req, len, "ERR 413\n");
    free(req);

    /* After the head, a chunked request may use max_body_bytes for its body
     * plus max_header_bytes + max_body_bytes for framing: 64 + 128 = 192 raw
     * bytes here. "1;<ext>\r\nx\r\n0\r\n\r\n" is 12 + ext bytes. */
    limits_t small = {64, 64};
    char *exact = malloc(512);
    assert_non_null(exact);
    for (size_t ext = 180; ext <= 181; ext++) {
        exact[0] = '\0';
        put(exact, 512, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;");
        len = strlen(exact);
        memset(exact + len, 'e', ext);
        len += ext;
        place(exact + len, "\r\nx\r\n0\r\n\r\n");
        len += 10;
        check_all_ways_lim(small, exact, len,
                           ext == 180
                               ? "REQ POST / v11 ka=1 up=0 [Transfer-Encoding:chunked] body=x\n"
                               : "ERR 413\n");
    }
    free(exact);
}

static void test_max_body_zero(void **state)
{
    (void)state;
    limits_t lim = {1024, 0};
    const char *empty = "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    check_all_ways_lim(lim, empty, strlen(empty),
                       "REQ POST / v11 ka=1 up=0 [Content-Length:0] body=\n");
    const char *one = "POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
    check_all_ways_lim(lim, one, strlen(one), "ERR 413\n");
}

/* ---- malformed input and versions ----------------------------------------- */

static void test_garbage_400(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  /* a TLS ClientHello */
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",              /* no colon */
        "GET / HTTP/1.1\r\nX y: 1\r\n\r\n",              /* space in a field name */
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",            /* space before the colon */
        "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", /* not a number */
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET / HTTP/1.1\r\nX: \x01\r\n\r\n", /* control char in a value */
        "GET / HTTP/1.x\r\n\r\n",            /* malformed version */
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTX/1.1\r\n\r\n",
        "G@T / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check_all_ways(bad[i], "ERR 400\n");
    }
}

static void test_versions_505(void **state)
{
    (void)state;
    check_all_ways("GET / HTTP/2.0\r\nHost: h\r\n\r\n", "ERR 505\n");
    check_all_ways("GET / HTTP/3.0\r\nHost: h\r\n\r\n", "ERR 505\n");
    check_all_ways("GET / HTTP/1.2\r\n\r\n", "ERR 505\n");
    check_all_ways("GET / HTTP/0.9\r\n\r\n", "ERR 505\n");
    check_all_ways("GET /\r\n\r\n", "ERR 505\n");
    check_all_ways("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "ERR 505\n");
}

/* RFC 9112 6.1: an HTTP/1.0 request with Transfer-Encoding is faulty framing
 * (it was parsed as chunked on a kept-alive connection: a smuggling vector). */
static void test_http10_transfer_encoding_400(void **state)
{
    (void)state;
    check_all_ways("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
                   "\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.0\r\n\r\n",
                   "ERR 400\n");
    check_all_ways("POST / HTTP/1.0\r\ntransfer-encoding: identity\r\nContent-Length: 1\r\n\r\nx",
                   "ERR 400\n");
    /* HTTP/1.1 chunked is still fine. */
    check_all_ways("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabc\r\n0\r\n\r\n",
                   "REQ POST / v11 ka=1 up=0 [Host:h] [Transfer-Encoding:chunked] body=abc\n");
}

static void test_two_origins_400(void **state)
{
    (void)state;
    check_all_ways("GET /ws HTTP/1.1\r\nHost: h\r\nOrigin: https://good.example\r\n"
                   "origin: https://evil.example\r\n\r\n",
                   "ERR 400\n");
}

static void test_expect(void **state)
{
    (void)state;
    check_all_ways("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue-please\r\n"
                   "Content-Length: 1\r\n\r\nx",
                   "ERR 417\n");
    check_all_ways(
        "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-CONTINUE\r\nContent-Length: 1\r\n"
        "\r\nx",
        "REQ POST / v11 ka=1 up=0 [Host:h] [Expect:100-CONTINUE] [Content-Length:1] body=x\n");
    /* RFC 9110 10.1.1: an HTTP/1.0 request's expectation is ignored. */
    check_all_ways("POST / HTTP/1.0\r\nExpect: whatever\r\nContent-Length: 1\r\n\r\nx",
                   "REQ POST / v10 ka=0 up=0 [Expect:whatever] [Content-Length:1] body=x\n");
}

/* take_continue() is true exactly once: after the head, while the body is
 * still to come, whatever the split of the head. */
static void test_take_continue(void **state)
{
    (void)state;
    const char *head = "POST /api/publish HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                       "Content-Length: 5\r\n\r\n";
    size_t hl = strlen(head);
    for (size_t cut = 0; cut <= hl; cut++) {
        wsb_http_request_t *r = wsb_http_request_new(0, 64);
        assert_non_null(r);
        size_t used = 0;
        if (cut > 0) {
            assert_int_equal(wsb_http_request_feed(r, head, cut, &used), WSB_EAGAIN);
            assert_int_equal(wsb_http_request_take_continue(r), cut == hl);
        }
        if (cut < hl) {
            assert_int_equal(wsb_http_request_feed(r, head + cut, hl - cut, &used), WSB_EAGAIN);
            assert_true(wsb_http_request_take_continue(r));
        }
        assert_false(wsb_http_request_take_continue(r)); /* once */
        assert_int_equal(wsb_http_request_feed(r, "hello", 5, &used), 0);
        assert_false(wsb_http_request_take_continue(r));
        wsb_http_request_free(r);
    }
    /* Head and body in one read: the final response is the only answer. */
    wsb_http_request_t *r = wsb_http_request_new(0, 64);
    assert_non_null(r);
    char whole[256];
    (void)snprintf(whole, sizeof(whole), "%shello", head);
    size_t used = 0;
    assert_int_equal(wsb_http_request_feed(r, whole, strlen(whole), &used), 0);
    assert_false(wsb_http_request_take_continue(r));
    /* No expectation, or HTTP/1.0: never. */
    wsb_http_request_reset(r);
    const char *plain = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    assert_int_equal(wsb_http_request_feed(r, plain, strlen(plain), &used), WSB_EAGAIN);
    assert_false(wsb_http_request_take_continue(r));
    wsb_http_request_reset(r);
    const char *old = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    assert_int_equal(wsb_http_request_feed(r, old, strlen(old), &used), WSB_EAGAIN);
    assert_false(wsb_http_request_take_continue(r));
    wsb_http_request_free(r);
}

static void test_host_error(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        bool bad;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost:\r\n\r\n", false}, /* empty is allowed (RFC 9112 3.2) */
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.1\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nX-Host: h\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wsb_http_request_t *r = wsb_http_request_new(0, 0);
        assert_non_null(r);
        size_t used = 0;
        assert_int_equal(wsb_http_request_feed(r, cases[i].req, strlen(cases[i].req), &used), 0);
        const char *why = wsb_http_request_host_error(r);
        assert_int_equal(why != NULL, cases[i].bad);
        wsb_http_request_free(r);
    }
}

static void test_reset_after_error(void **state)
{
    (void)state;
    wsb_http_request_t *r = wsb_http_request_new(0, 16);
    assert_non_null(r);
    size_t consumed = 0;
    const char *bad = "BAD\x01\r\n\r\n";
    assert_int_equal(wsb_http_request_feed(r, bad, strlen(bad), &consumed), WSB_EHTTP);
    assert_int_equal(wsb_http_request_status(r), 400);
    wsb_http_request_reset(r);
    assert_int_equal(wsb_http_request_status(r), 0);
    const char *good = "GET /ok HTTP/1.1\r\n\r\n";
    assert_int_equal(wsb_http_request_feed(r, good, strlen(good), &consumed), 0);
    assert_true(wsb_str_eq(wsb_http_request_url(r), "/ok"));
    wsb_http_request_free(r);
}

static void test_large_then_small_body(void **state)
{
    (void)state;
    /* The body buffer is released between requests; the next body is intact. */
    wsb_http_request_t *r = wsb_http_request_new(0, 100000);
    assert_non_null(r);
    const char *head = "POST / HTTP/1.1\r\nContent-Length: 50000\r\n\r\n";
    char *req = malloc(strlen(head) + 50000);
    assert_non_null(req);
    place(req, head);
    memset(req + strlen(head), 'b', 50000);
    size_t consumed = 0;
    assert_int_equal(wsb_http_request_feed(r, req, strlen(head) + 50000, &consumed), 0);
    assert_int_equal(wsb_http_request_body(r).len, 50000);
    assert_int_equal(wsb_http_request_body(r).p[49999], 'b');
    free(req);
    wsb_http_request_reset(r);
    const char *small = "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok";
    assert_int_equal(wsb_http_request_feed(r, small, strlen(small), &consumed), 0);
    assert_true(wsb_str_eq(wsb_http_request_body(r), "ok"));
    wsb_http_request_free(r);
}

static void test_feed_empty(void **state)
{
    (void)state;
    wsb_http_request_t *r = wsb_http_request_new(0, 0);
    assert_non_null(r);
    size_t consumed = 5;
    assert_int_equal(wsb_http_request_feed(r, NULL, 0, &consumed), WSB_EAGAIN);
    assert_int_equal(consumed, 0);
    assert_int_equal(wsb_http_request_feed(r, "GET / HTTP/1.1\r\n", 16, &consumed), WSB_EAGAIN);
    assert_int_equal(consumed, 16);
    assert_int_equal(wsb_http_request_feed(r, "", 0, &consumed), WSB_EAGAIN);
    assert_int_equal(wsb_http_request_feed(r, "\r\n", 2, &consumed), 0);
    assert_int_equal(consumed, 2);
    wsb_http_request_free(r);
    wsb_http_request_free(NULL);
}

/* ---- helpers ------------------------------------------------------------------ */

static void test_header_has_token(void **state)
{
    (void)state;
    wsb_http_request_t *r = parse_one("GET / HTTP/1.1\r\nConnection: keep-alive,  UPGRADE \t\r\n"
                                      "X-List: a,,b\r\nX-List: \tc , d\r\nX-Sub: upgrades\r\n\r\n",
                                      NULL);
    assert_true(wsb_http_request_header_has_token(r, "connection", "upgrade"));
    assert_true(wsb_http_request_header_has_token(r, "Connection", "Keep-Alive"));
    assert_false(wsb_http_request_header_has_token(r, "Connection", "close"));
    assert_true(wsb_http_request_header_has_token(r, "X-List", "b"));
    assert_true(wsb_http_request_header_has_token(r, "x-list", "c"));
    assert_true(wsb_http_request_header_has_token(r, "X-List", "D"));
    assert_false(wsb_http_request_header_has_token(r, "X-List", "a,b"));
    assert_false(wsb_http_request_header_has_token(r, "X-Sub", "upgrade"));
    assert_false(wsb_http_request_header_has_token(r, "X-Absent", "a"));
    wsb_http_request_free(r);
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(wsb_http_status_text(200), "OK");
    assert_string_equal(wsb_http_status_text(404), "Not Found");
    assert_string_equal(wsb_http_status_text(413), "Content Too Large");
    assert_string_equal(wsb_http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(wsb_http_status_text(505), "HTTP Version Not Supported");
    assert_string_equal(wsb_http_status_text(299), "Unknown");
}

static void test_write_head(void **state)
{
    (void)state;
    char buf[256];
    int n = wsb_http_write_head(buf, sizeof(buf), 200, "application/json", 17, true, NULL);
    const char *want = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Content-Length: 17\r\nConnection: keep-alive\r\n\r\n";
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(buf, want, strlen(want));

    n = wsb_http_write_head(buf, sizeof(buf), 404, NULL, 0, false, "X-A: 1\r\nX-B: 2\r\n");
    want = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n"
           "X-A: 1\r\nX-B: 2\r\n\r\n";
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(buf, want, strlen(want));

    /* The exact size needs one more byte for snprintf's NUL. */
    assert_int_equal(
        wsb_http_write_head(buf, strlen(want), 404, NULL, 0, false, "X-A: 1\r\nX-B: 2\r\n"),
        WSB_ENOSPC);
    assert_int_equal(wsb_http_write_head(buf, 0, 200, NULL, 0, true, NULL), WSB_ENOSPC);
    assert_int_equal(wsb_http_write_head(buf, sizeof(buf), 42, NULL, 0, true, NULL), WSB_EINVAL);
}

static int decode(const char *url, char *out, size_t cap)
{
    guard_buf_t g;
    size_t len = strlen(url);
    const char *p = (const char *)guard_copy(&g, url, len);
    int rc = wsb_http_decode_path((wsb_str_t){p, len}, out, cap);
    guard_free(&g);
    return rc;
}

static void test_decode_path(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(decode("/ws", out, sizeof(out)), 3);
    assert_string_equal(out, "/ws");
    assert_int_equal(decode("/a%20b/%41+c?x=%zz", out, sizeof(out)), 8);
    assert_string_equal(out, "/a b/A+c");
    assert_int_equal(decode("/static/%2e%2e/secret", out, sizeof(out)), 17);
    assert_string_equal(out, "/static/../secret");
    assert_int_equal(decode("/%2E%2e", out, sizeof(out)), 3);
    assert_string_equal(out, "/..");
    assert_int_equal(decode("/ws#frag", out, sizeof(out)), 3);
    assert_string_equal(out, "/ws");
    assert_int_equal(decode("/%e2%82%ac", out, sizeof(out)), 4);
    assert_string_equal(out, "/\xe2\x82\xac");
    assert_int_equal(decode("http://example.com:8080/ws?x", out, sizeof(out)), 3);
    assert_string_equal(out, "/ws");
    assert_int_equal(decode("HTTPS://example.com", out, sizeof(out)), 1);
    assert_string_equal(out, "/");

    assert_int_equal(decode("/a%00b", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(decode("/a%2Fb", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(decode("/a%2fb", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(decode("/a%", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(decode("/a%4", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(decode("/a%4?", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(decode("/a%g1", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(decode("*", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(decode("example.com:443", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(wsb_http_decode_path(WSB_STR_NULL, out, sizeof(out)), WSB_EINVAL);

    assert_int_equal(decode("/abc", out, 5), 4);
    assert_int_equal(decode("/abc", out, 4), WSB_ENOSPC);
    assert_int_equal(decode("/", out, 1), WSB_ENOSPC);
    assert_int_equal(decode("http://h", out, 1), WSB_ENOSPC);
}

static int query(const char *url, const char *name, char *out, size_t cap)
{
    guard_buf_t g;
    size_t len = strlen(url);
    const char *p = (const char *)guard_copy(&g, url, len);
    int rc = wsb_http_query_param((wsb_str_t){p, len}, name, out, cap);
    guard_free(&g);
    return rc;
}

static void test_query_param(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(query("/ws?token=abc.def&x=1", "token", out, sizeof(out)), 7);
    assert_string_equal(out, "abc.def");
    assert_int_equal(query("/ws?token=abc&x=1", "x", out, sizeof(out)), 1);
    assert_string_equal(out, "1");
    assert_int_equal(query("/ws?a=hello%20world+2", "a", out, sizeof(out)), 13);
    assert_string_equal(out, "hello world 2");
    assert_int_equal(query("/ws?a=%2F%2f", "a", out, sizeof(out)), 2);
    assert_string_equal(out, "//");
    assert_int_equal(query("/ws?flag&b=2", "flag", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(query("/ws?a=&b=2", "a", out, sizeof(out)), 0);
    assert_int_equal(query("/ws?a=1&a=2", "a", out, sizeof(out)), 1);
    assert_string_equal(out, "1");
    assert_int_equal(query("/ws?%74oken=t", "token", out, sizeof(out)), 1);
    assert_string_equal(out, "t");
    assert_int_equal(query("/ws?a=1#b=2", "b", out, sizeof(out)), WSB_EAGAIN);
    assert_int_equal(query("/ws?a=1#b=2", "a", out, sizeof(out)), 1);
    assert_int_equal(query("/ws?&&=x&a=9", "a", out, sizeof(out)), 1);
    assert_string_equal(out, "9");

    assert_int_equal(query("/ws?tok=1", "token", out, sizeof(out)), WSB_EAGAIN);
    assert_int_equal(query("/ws?tokens=1", "token", out, sizeof(out)), WSB_EAGAIN);
    assert_int_equal(query("/ws", "token", out, sizeof(out)), WSB_EAGAIN);
    assert_int_equal(query("/ws?", "token", out, sizeof(out)), WSB_EAGAIN);
    assert_int_equal(wsb_http_query_param(WSB_STR_NULL, "a", out, sizeof(out)), WSB_EAGAIN);

    assert_int_equal(query("/ws?a=%zz", "a", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(query("/ws?a=1%", "a", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(query("/ws?a=1%00", "a", out, sizeof(out)), WSB_EINVAL);
    assert_int_equal(query("/ws?a=1234", "a", out, 4), WSB_ENOSPC);
    assert_int_equal(query("/ws?a=123", "a", out, 4), 3);
    assert_int_equal(query("/ws?a=", "a", out, 0), WSB_ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_header_accessors),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_pipelined_consumed),
        cmocka_unit_test(test_upgrade_trailing_bytes),
        cmocka_unit_test(test_upgrade_consumed),
        cmocka_unit_test(test_upgrade_needs_connection_upgrade),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_obs_fold_and_leading_crlf),
        cmocka_unit_test(test_head_limit_exact),
        cmocka_unit_test(test_default_head_limit_8k),
        cmocka_unit_test(test_head_buffer_growth_keeps_headers),
        cmocka_unit_test(test_head_too_large_tiny_chunks),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_body_too_large_content_length),
        cmocka_unit_test(test_body_too_large_chunked),
        cmocka_unit_test(test_chunk_framing_bounded),
        cmocka_unit_test(test_max_body_zero),
        cmocka_unit_test(test_garbage_400),
        cmocka_unit_test(test_versions_505),
        cmocka_unit_test(test_http10_transfer_encoding_400),
        cmocka_unit_test(test_two_origins_400),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_take_continue),
        cmocka_unit_test(test_host_error),
        cmocka_unit_test(test_reset_after_error),
        cmocka_unit_test(test_large_then_small_body),
        cmocka_unit_test(test_feed_empty),
        cmocka_unit_test(test_header_has_token),
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_write_head),
        cmocka_unit_test(test_decode_path),
        cmocka_unit_test(test_query_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
