/*
 * test_handshake.c - the RFC 6455 server handshake: every rule of the request
 * check with the status it must produce, subprotocol selection, and the 101
 * and error responses byte for byte. Requests are parsed by wsb_http from a
 * copy that ends at a guard page.
 */
/* guard.h needs MAP_ANONYMOUS, which glibc hides under plain _POSIX_C_SOURCE. */
#define _DEFAULT_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h, included below, needs these four first. */
#include "guard.h"
#include "wsb/handshake.h"
#include "wsb/http.h"

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* The client handshake of RFC 6455 section 1.2. */
static const char rfc_request[] = "GET /chat HTTP/1.1\r\n"
                                  "Host: server.example.com\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                                  "Origin: http://example.com\r\n"
                                  "Sec-WebSocket-Protocol: chat, superchat\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n";

static wsb_http_request_t *parse(const char *text)
{
    wsb_http_request_t *r = wsb_http_request_new(WSB_HTTP_DEFAULT_MAX_HEAD, 0);
    assert_non_null(r);
    guard_buf_t g;
    size_t len = strlen(text);
    const char *data = (const char *)guard_copy(&g, text, len);
    size_t consumed = 0;
    assert_int_equal(wsb_http_request_feed(r, data, len, &consumed), 0);
    assert_int_equal(consumed, len);
    guard_free(&g);
    return r;
}

/* Builds a request from the RFC one with the line starting `prefix` replaced
 * by `line` (NULL: removed); a prefix not present adds `line`. */
static void variant(char *out, size_t cap, const char *prefix, const char *line)
{
    out[0] = '\0';
    const char *p = rfc_request;
    bool replaced = false;
    while (strncmp(p, "\r\n", 2) != 0) {
        const char *eol = strstr(p, "\r\n");
        size_t n = (size_t)(eol - p) + 2;
        if (!replaced && strncmp(p, prefix, strlen(prefix)) == 0) {
            if (line != NULL) {
                strncat(out, line, cap - strlen(out) - 1);
                strncat(out, "\r\n", cap - strlen(out) - 1);
            }
            replaced = true;
        } else {
            strncat(out, p, n < cap - strlen(out) - 1 ? n : cap - strlen(out) - 1);
        }
        p = eol + 2;
    }
    if (!replaced && line != NULL) {
        strncat(out, line, cap - strlen(out) - 1);
        strncat(out, "\r\n", cap - strlen(out) - 1);
    }
    strncat(out, "\r\n", cap - strlen(out) - 1);
    assert_true(strlen(out) < cap - 1);
}

/* Checks the variant and returns the status (0 on success). */
static int status_of(const char *prefix, const char *line)
{
    char text[1024];
    variant(text, sizeof(text), prefix, line);
    wsb_http_request_t *r = parse(text);
    wsb_handshake_t hs;
    int rc = wsb_handshake_check(r, NULL, &hs);
    if (rc == 0) {
        assert_int_equal(hs.status, 0);
        assert_null(hs.reason);
    } else {
        assert_int_equal(rc, WSB_EHANDSHAKE);
        assert_non_null(hs.reason);
        assert_true(strlen(hs.reason) > 0);
    }
    wsb_http_request_free(r);
    return hs.status;
}

static void test_accept_key_rfc_example(void **state)
{
    (void)state;
    char out[WSB_WS_ACCEPT_LEN + 1];
    wsb_handshake_accept_key(WSB_STR_LIT(RFC_KEY), out);
    assert_string_equal(out, RFC_ACCEPT);
    assert_int_equal(strlen(out), WSB_WS_ACCEPT_LEN);
}

static void test_rfc_request_accepted(void **state)
{
    (void)state;
    wsb_http_request_t *r = parse(rfc_request);
    static const char *const protos[] = {"chat", NULL};
    wsb_handshake_t hs;
    assert_int_equal(wsb_handshake_check(r, protos, &hs), 0);
    assert_int_equal(hs.status, 0);
    assert_true(wsb_str_eq(hs.key, RFC_KEY));
    assert_true(wsb_str_eq(hs.subprotocol, "chat"));
    assert_true(wsb_str_eq(hs.origin, "http://example.com"));

    char buf[512];
    int n = wsb_handshake_response(buf, sizeof(buf), &hs);
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                               "Sec-WebSocket-Protocol: chat\r\n"
                               "\r\n";
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(buf, want, strlen(want));

    /* Every size short of the response plus snprintf's NUL is refused. */
    for (size_t cap = 0; cap <= strlen(want); cap++) {
        assert_int_equal(wsb_handshake_response(buf, cap, &hs), WSB_ENOSPC);
    }
    wsb_http_request_free(r);
}

static void test_response_without_subprotocol(void **state)
{
    (void)state;
    wsb_http_request_t *r = parse(rfc_request);
    wsb_handshake_t hs;
    assert_int_equal(wsb_handshake_check(r, NULL, &hs), 0);
    assert_null(hs.subprotocol.p);
    char buf[512];
    int n = wsb_handshake_response(buf, sizeof(buf), &hs);
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                               "\r\n";
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(buf, want, strlen(want));

    /* A refused check has nothing to answer 101 with. */
    hs.status = 400;
    assert_int_equal(wsb_handshake_response(buf, sizeof(buf), &hs), WSB_EINVAL);
    wsb_http_request_free(r);
}

static void test_method_and_version(void **state)
{
    (void)state;
    assert_int_equal(status_of("GET ", "POST /chat HTTP/1.1"), 405);
    assert_int_equal(status_of("GET ", "HEAD /chat HTTP/1.1"), 405);
    assert_int_equal(status_of("GET ", "OPTIONS /chat HTTP/1.1"), 405);
    assert_int_equal(status_of("GET ", "GET /chat HTTP/1.0"), 400);
}

static void test_host(void **state)
{
    (void)state;
    assert_int_equal(status_of("Host:", NULL), 400);
    assert_int_equal(status_of("Host:", "HOST: x"), 0);
}

static void test_upgrade_header(void **state)
{
    (void)state;
    assert_int_equal(status_of("Upgrade:", NULL), 400);
    assert_int_equal(status_of("Upgrade:", "Upgrade: h2c"), 400);
    assert_int_equal(status_of("Upgrade:", "Upgrade: websockets"), 400);
    assert_int_equal(status_of("Upgrade:", "Upgrade: WebSocket"), 0);
    assert_int_equal(status_of("Upgrade:", "upgrade: foo/1, websocket"), 0);
}

static void test_connection_header(void **state)
{
    (void)state;
    assert_int_equal(status_of("Connection:", NULL), 400);
    assert_int_equal(status_of("Connection:", "Connection: keep-alive"), 400);
    assert_int_equal(status_of("Connection:", "Connection: upgraded"), 400);
    assert_int_equal(status_of("Connection:", "Connection: keep-alive, Upgrade"), 0);
    assert_int_equal(status_of("Connection:", "connection: UPGRADE"), 0);
}

static void test_version_header(void **state)
{
    (void)state;
    assert_int_equal(status_of("Sec-WebSocket-Version:", "Sec-WebSocket-Version: 8"), 426);
    assert_int_equal(status_of("Sec-WebSocket-Version:", "Sec-WebSocket-Version: 13, 8"), 426);
    assert_int_equal(status_of("Sec-WebSocket-Version:", "Sec-WebSocket-Version: 130"), 426);
    assert_int_equal(status_of("Sec-WebSocket-Version:", NULL), 426);
    assert_int_equal(status_of("Sec-WebSocket-Version:", "Sec-WebSocket-Version: 13 "), 0);

    /* The 426 names the version the server speaks. */
    char buf[512];
    int n = wsb_handshake_error_response(buf, sizeof(buf), 426, "Sec-WebSocket-Version must be 13");
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\r\nSec-WebSocket-Version: 13\r\n"));
}

static void test_key_header(void **state)
{
    (void)state;
    const char *k = "Sec-WebSocket-Key:";
    assert_int_equal(status_of(k, NULL), 400);
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"), 400);     /* 15 */
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA="), 400); /* 17 */
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 400);
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"), 400);
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!=="), 400);
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j-Q=="), 400);
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=A"), 400);
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: =GhlIHNhbXBsZSBub25jZQ=="), 400);
    assert_int_equal(status_of(k, "Sec-WebSocket-Key:  " RFC_KEY "  "), 0);
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA+/==\r\n"
                                  "Sec-WebSocket-Key: " RFC_KEY),
                     400);
    assert_int_equal(status_of(k, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA+/=="), 0);
}

static int select_proto(const char *offer, const char *const *protos, wsb_str_t *chosen)
{
    char text[1024];
    variant(text, sizeof(text), "Sec-WebSocket-Protocol:", offer);
    wsb_http_request_t *r = parse(text);
    wsb_handshake_t hs;
    int rc = wsb_handshake_check(r, protos, &hs);
    static char copy[64];
    copy[0] = '\0';
    if (hs.subprotocol.p != NULL) {
        assert_true(hs.subprotocol.len < sizeof(copy));
        memcpy(copy, hs.subprotocol.p, hs.subprotocol.len);
        copy[hs.subprotocol.len] = '\0';
        *chosen = (wsb_str_t){copy, hs.subprotocol.len};
    } else {
        *chosen = WSB_STR_NULL;
    }
    wsb_http_request_free(r);
    return rc;
}

static void test_subprotocol_selection(void **state)
{
    (void)state;
    static const char *const server[] = {"wsb.v1", "chat", NULL};
    wsb_str_t chosen;

    /* The server's preference wins over the client's order. */
    assert_int_equal(select_proto("Sec-WebSocket-Protocol: chat, wsb.v1", server, &chosen), 0);
    assert_true(wsb_str_eq(chosen, "wsb.v1"));
    assert_int_equal(select_proto("Sec-WebSocket-Protocol: chat,superchat", server, &chosen), 0);
    assert_true(wsb_str_eq(chosen, "chat"));
    /* Repeated headers form one list. */
    assert_int_equal(select_proto("Sec-WebSocket-Protocol: a\r\nSec-WebSocket-Protocol: b ,\t"
                                  "wsb.v1 ",
                                  server, &chosen),
                     0);
    assert_true(wsb_str_eq(chosen, "wsb.v1"));
    /* Offering only others, or nothing, is not an error: no subprotocol. */
    assert_int_equal(select_proto("Sec-WebSocket-Protocol: mqtt", server, &chosen), 0);
    assert_null(chosen.p);
    assert_int_equal(select_proto(NULL, server, &chosen), 0);
    assert_null(chosen.p);
    assert_int_equal(select_proto("Sec-WebSocket-Protocol: CHAT", server, &chosen), 0);
    assert_null(chosen.p);
    assert_int_equal(select_proto("Sec-WebSocket-Protocol: chatty, ,", server, &chosen), 0);
    assert_null(chosen.p);
    assert_int_equal(select_proto("Sec-WebSocket-Protocol: chat", NULL, &chosen), 0);
    assert_null(chosen.p);
}

static void test_origin(void **state)
{
    (void)state;
    char text[1024];
    variant(text, sizeof(text), "Origin:", NULL);
    wsb_http_request_t *r = parse(text);
    wsb_handshake_t hs;
    assert_int_equal(wsb_handshake_check(r, NULL, &hs), 0);
    assert_null(hs.origin.p);
    wsb_http_request_free(r);
}

static void check_error_response(int status, const char *message, const char *want)
{
    char buf[512];
    int n = wsb_handshake_error_response(buf, sizeof(buf), status, message);
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(buf, want, strlen(want));
    for (size_t cap = 0; cap <= strlen(want); cap++) {
        assert_int_equal(wsb_handshake_error_response(buf, cap, status, message), WSB_ENOSPC);
    }
}

static void test_error_responses(void **state)
{
    (void)state;
    check_error_response(400, "missing Host header",
                         "HTTP/1.1 400 Bad Request\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 20\r\n"
                         "Connection: close\r\n"
                         "\r\n"
                         "missing Host header\n");
    check_error_response(426, "Sec-WebSocket-Version must be 13",
                         "HTTP/1.1 426 Upgrade Required\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 33\r\n"
                         "Connection: close\r\n"
                         "Sec-WebSocket-Version: 13\r\n"
                         "\r\n"
                         "Sec-WebSocket-Version must be 13\n");
    check_error_response(405, "use GET",
                         "HTTP/1.1 405 Method Not Allowed\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 8\r\n"
                         "Connection: close\r\n"
                         "Allow: GET\r\n"
                         "\r\n"
                         "use GET\n");
    check_error_response(503, "shutting down",
                         "HTTP/1.1 503 Service Unavailable\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 14\r\n"
                         "Connection: close\r\n"
                         "Retry-After: 1\r\n"
                         "\r\n"
                         "shutting down\n");
    check_error_response(429, "too many connections",
                         "HTTP/1.1 429 Too Many Requests\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 21\r\n"
                         "Connection: close\r\n"
                         "Retry-After: 1\r\n"
                         "\r\n"
                         "too many connections\n");
    check_error_response(404, NULL,
                         "HTTP/1.1 404 Not Found\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 10\r\n"
                         "Connection: close\r\n"
                         "\r\n"
                         "Not Found\n");
    check_error_response(403, "origin not allowed",
                         "HTTP/1.1 403 Forbidden\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 19\r\n"
                         "Connection: close\r\n"
                         "\r\n"
                         "origin not allowed\n");
    check_error_response(431, "request head exceeds max_header_bytes",
                         "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: 38\r\n"
                         "Connection: close\r\n"
                         "\r\n"
                         "request head exceeds max_header_bytes\n");
    char buf[64];
    assert_int_equal(wsb_handshake_error_response(buf, sizeof(buf), 7, "x"), WSB_EINVAL);
}

/* A refused check's status and reason make a complete, parseable response. */
static void test_refusal_round_trip(void **state)
{
    (void)state;
    char text[1024];
    variant(text, sizeof(text), "GET ", "PUT /chat HTTP/1.1");
    wsb_http_request_t *r = parse(text);
    wsb_handshake_t hs;
    assert_int_equal(wsb_handshake_check(r, NULL, &hs), WSB_EHANDSHAKE);
    assert_int_equal(hs.status, 405);
    char buf[512];
    int n = wsb_handshake_error_response(buf, sizeof(buf), hs.status, hs.reason);
    assert_true(n > 0);
    buf[n] = '\0';
    static const char status_line[] = "HTTP/1.1 405 Method Not Allowed\r\n";
    assert_memory_equal(buf, status_line, strlen(status_line));
    assert_non_null(strstr(buf, "\r\nAllow: GET\r\n"));
    assert_non_null(strstr(buf, hs.reason));
    wsb_http_request_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key_rfc_example),
        cmocka_unit_test(test_rfc_request_accepted),
        cmocka_unit_test(test_response_without_subprotocol),
        cmocka_unit_test(test_method_and_version),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_upgrade_header),
        cmocka_unit_test(test_connection_header),
        cmocka_unit_test(test_version_header),
        cmocka_unit_test(test_key_header),
        cmocka_unit_test(test_subprotocol_selection),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_error_responses),
        cmocka_unit_test(test_refusal_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
