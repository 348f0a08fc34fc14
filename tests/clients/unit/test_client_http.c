/*
 * test_client_http.c - the client's handshake helpers (client_http.h): URL
 * parsing, the upgrade request (checked with the broker's own request parser
 * and handshake validator), and the response-head parser fed whole, split at
 * every byte and one byte at a time, each piece at the end of a guard page.
 */
#define _DEFAULT_SOURCE 1

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four headers above first. */
#include "client_http.h"
#include "guard.h"
#include "wsb/handshake.h"
#include "wsb/http.h"

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- URLs ---- */

static void url_ok(const char *url, bool tls, const char *host, unsigned port, const char *hh,
                   const char *target)
{
    wsb__url_t u;
    char why[200] = "";
    int rc = wsb__url_parse(url, &u, why, sizeof(why));
    if (rc != 0) {
        fail_msg("%s: %s", url, why);
    }
    assert_int_equal(u.tls, tls);
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    assert_string_equal(u.host_header, hh);
    assert_string_equal(u.target, target);
    wsb__url_free(&u);
}

static void url_bad(const char *url, const char *why_part)
{
    wsb__url_t u;
    char why[200] = "";
    assert_int_equal(wsb__url_parse(url, &u, why, sizeof(why)), WSB_EINVAL);
    if (strstr(why, why_part) == NULL) {
        fail_msg("%s: reason '%s' lacks '%s'", url ? url : "(null)", why, why_part);
    }
    assert_null(u.host);
}

static void test_url_valid(void **state)
{
    (void)state;
    url_ok("ws://127.0.0.1:8080/ws", false, "127.0.0.1", 8080, "127.0.0.1:8080", "/ws");
    url_ok("ws://localhost/ws", false, "localhost", 80, "localhost", "/ws");
    url_ok("WS://Example.COM", false, "Example.COM", 80, "Example.COM", "/");
    url_ok("ws://h?x=1", false, "h", 80, "h", "/?x=1");
    url_ok("ws://h:81/a/b?c=d&e#frag", false, "h", 81, "h:81", "/a/b?c=d&e");
    url_ok("wss://broker.example/ws", true, "broker.example", 443, "broker.example", "/ws");
    url_ok("wss://h:443/", true, "h", 443, "h", "/");
    url_ok("wss://h:80/", true, "h", 80, "h:80", "/");
    url_ok("ws://[::1]:9000/ws", false, "::1", 9000, "[::1]:9000", "/ws");
    url_ok("ws://[fe80::1]/", false, "fe80::1", 80, "[fe80::1]", "/");
    url_ok("ws://h:65535", false, "h", 65535, "h:65535", "/");
}

static void test_url_invalid(void **state)
{
    (void)state;
    url_bad(NULL, "empty");
    url_bad("", "empty");
    url_bad("http://h/ws", "must start with ws:// or wss://");
    url_bad("h:8080/ws", "must start with ws://");
    url_bad("ws:///ws", "no host");
    url_bad("ws://:80/ws", "no host");
    url_bad("ws://h:0/", "port");
    url_bad("ws://h:65536/", "port");
    url_bad("ws://h:8x/", "port");
    url_bad("ws://h:/", "port");
    url_bad("ws://h:123456/", "port");
    url_bad("ws://user@h/", "user information");
    url_bad("ws://h h/", "space");
    url_bad("ws://h\r\nX: y/", "control");
    url_bad("ws://h\xc3\xa9/", "non-ASCII");
    url_bad("ws://h%41/", "invalid character '%'");
    url_bad("ws://[::1/", "[addr]");
    url_bad("ws://[]/", "[addr]");
    url_bad("ws://[::g]/", "IPv6");
    url_bad("ws://[::1]x/", "after ']'");
    char longhost[300];
    memset(longhost, 'a', sizeof(longhost));
    memcpy(longhost, "ws://", 5);
    longhost[5 + 254] = '\0';
    url_bad(longhost, "longer than 253");
}

static void test_header_safe(void **state)
{
    (void)state;
    assert_true(wsb__header_safe("abc.DEF-123_~+/=", false));
    assert_false(wsb__header_safe("", false));
    assert_false(wsb__header_safe(NULL, false));
    assert_false(wsb__header_safe("a b", false));
    assert_true(wsb__header_safe("a b", true));
    assert_false(wsb__header_safe("a\rb", true));
    assert_false(wsb__header_safe("a\x7f", true));
    assert_false(wsb__header_safe("\xc3\xa9", true));
}

/* ---- the upgrade request ---- */

static void test_base64_rfc_key(void **state)
{
    (void)state;
    char out[WSB__WS_KEY_LEN + 1];
    wsb__base64_16((const uint8_t *)"the sample nonce", out);
    assert_string_equal(out, "dGhlIHNhbXBsZSBub25jZQ==");
    uint8_t ff[16];
    memset(ff, 0xff, sizeof(ff));
    wsb__base64_16(ff, out);
    assert_string_equal(out, "/////////////////////w==");
}

/* The request must pass the broker's own parser and handshake check. */
static void test_upgrade_request_passes_server_check(void **state)
{
    (void)state;
    wsb__url_t u;
    assert_int_equal(wsb__url_parse("ws://127.0.0.1:8080/ws?room=1", &u, NULL, 0), 0);
    size_t len = 0;
    char *req =
        wsb__upgrade_request(&u, "dGhlIHNhbXBsZSBub25jZQ==", "a b&c", "http://o.example", &len);
    assert_non_null(req);
    assert_int_equal(strlen(req), len);
    wsb_http_request_t *r = wsb_http_request_new(0, 0);
    assert_non_null(r);
    size_t used = 0;
    assert_int_equal(wsb_http_request_feed(r, req, len, &used), 0);
    assert_int_equal(used, len);
    assert_true(wsb_http_request_is_upgrade(r));
    wsb_handshake_t hs;
    assert_int_equal(wsb_handshake_check(r, NULL, &hs), 0);
    assert_true(wsb_str_eq(wsb_http_request_url(r), "/ws?room=1&token=a%20b%26c"));
    assert_true(wsb_str_eq(wsb_http_request_header(r, "Host"), "127.0.0.1:8080"));
    assert_true(wsb_str_eq(wsb_http_request_header(r, "Authorization"), "Bearer a b&c"));
    assert_true(wsb_str_eq(wsb_http_request_header(r, "Origin"), "http://o.example"));
    char token[32];
    assert_int_equal(wsb_http_query_param(wsb_http_request_url(r), "token", token, sizeof(token)),
                     5);
    assert_string_equal(token, "a b&c");
    wsb_http_request_free(r);
    free(req);

    /* No token, no origin: neither header, no query parameter added. */
    req = wsb__upgrade_request(&u, "dGhlIHNhbXBsZSBub25jZQ==", NULL, NULL, &len);
    assert_non_null(req);
    assert_null(strstr(req, "Authorization"));
    assert_null(strstr(req, "Origin"));
    assert_null(strstr(req, "token="));
    assert_non_null(strstr(req, "GET /ws?room=1 HTTP/1.1\r\n"));
    free(req);
    wsb__url_free(&u);

    assert_int_equal(wsb__url_parse("ws://h", &u, NULL, 0), 0);
    req = wsb__upgrade_request(&u, "dGhlIHNhbXBsZSBub25jZQ==", "t", NULL, &len);
    assert_non_null(strstr(req, "GET /?token=t HTTP/1.1\r\n"));
    free(req);
    wsb__url_free(&u);
}

/* ---- the response head ---- */

#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* for the RFC's sample key */

static const char resp_101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " ACCEPT "\r\n"
                               "\r\n";

/* Feeds `head` + `tail` split at `split` (SIZE_MAX: one byte at a time);
 * returns feed's result and the bytes left for the WebSocket stream. */
static int feed_resp(wsb__resp_t *r, const char *text, size_t split, size_t *rest, char *why)
{
    size_t len = strlen(text);
    wsb__resp_init(r);
    size_t pos = 0;
    int rc = WSB_EAGAIN;
    while (pos < len && rc == WSB_EAGAIN) {
        size_t n = split == SIZE_MAX ? 1 : (pos < split ? split - pos : len - pos);
        if (n == 0) {
            n = len - pos;
        }
        guard_buf_t g;
        unsigned char *p = guard_copy(&g, text + pos, n);
        size_t used = 0;
        rc = wsb__resp_feed(r, p, n, &used, why, 200);
        guard_free(&g);
        assert_true(used <= n);
        pos += used;
        if (rc == WSB_EAGAIN) {
            assert_int_equal(used, n);
        }
    }
    *rest = len - pos;
    return rc;
}

static void test_resp_101_every_split(void **state)
{
    (void)state;
    char text[512];
    (void)snprintf(text, sizeof(text), "%sWSDATA", resp_101);
    size_t len = strlen(text);
    wsb__resp_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    for (size_t split = 0; split <= len; split++) {
        size_t rest = 0;
        char why[200] = "";
        assert_int_equal(feed_resp(r, text, split, &rest, why), 0);
        assert_int_equal(rest, 6); /* "WSDATA" belongs to the WebSocket stream */
        assert_int_equal(r->status, 101);
        assert_int_equal(wsb__resp_check_upgrade(r, ACCEPT, why, sizeof(why)), 0);
    }
    size_t rest = 0;
    char why[200] = "";
    assert_int_equal(feed_resp(r, text, SIZE_MAX, &rest, why), 0);
    assert_int_equal(rest, 6);
    assert_int_equal(wsb__resp_check_upgrade(r, ACCEPT, why, sizeof(why)), 0);
    free(r);
}

static void check_fails(const char *text, const char *why_part)
{
    wsb__resp_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    size_t rest = 0;
    char why[200] = "";
    int rc = feed_resp(r, text, 0, &rest, why);
    if (rc == 0) {
        rc = wsb__resp_check_upgrade(r, ACCEPT, why, sizeof(why));
        assert_int_equal(rc, WSB_EHANDSHAKE);
    } else {
        assert_int_equal(rc, WSB_EHTTP);
    }
    if (strstr(why, why_part) == NULL) {
        fail_msg("reason '%s' lacks '%s' for:\n%s", why, why_part, text);
    }
    free(r);
}

static void test_resp_invalid(void **state)
{
    (void)state;
    check_fails("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n", "HTTP 404 instead of 101");
    check_fails("HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT
                "\r\n\r\n",
                "Upgrade: websocket");
    check_fails("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
                "Connection: Upgrade");
    check_fails("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                "0 Sec-WebSocket-Accept");
    check_fails("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
                "2 Sec-WebSocket-Accept");
    check_fails("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: AAAAPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                "does not match");
    check_fails("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Extensions: x\r\n\r\n",
                "extension");
    check_fails("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Protocol: p\r\n\r\n",
                "subprotocol");
    check_fails("SSH-2.0-OpenSSH\r\n\r\n", "status line");
    check_fails("HTTP/1.1 1O1 OK\r\n\r\n", "3-digit");
    check_fails("HTTP/1.1 1011 OK\r\n\r\n", "3-digit");
    check_fails("HTTP/1.1 101 OK\r\nNo colon here\r\n\r\n", "malformed header line");
    check_fails("HTTP/1.1 101 OK\r\nBad Name: x\r\n\r\n", "malformed header name");
    check_fails("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n folded\r\n\r\n", "folding");
    check_fails("\n\n", "no status line");
}

static void test_resp_tolerant_forms(void **state)
{
    (void)state;
    /* Bare LFs, token lists, case-insensitive names and values, OWS. */
    const char *text = "HTTP/1.1 101 Switching\n"
                       "upgrade:   WebSocket  \n"
                       "CONNECTION: keep-alive, upgrade\n"
                       "sec-websocket-accept:\t" ACCEPT "\n"
                       "\n";
    wsb__resp_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    size_t rest = 0;
    char why[200] = "";
    assert_int_equal(feed_resp(r, text, 7, &rest, why), 0);
    assert_int_equal(rest, 0);
    assert_int_equal(wsb__resp_check_upgrade(r, ACCEPT, why, sizeof(why)), 0);

    assert_int_equal(
        feed_resp(r, "HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\n\r\n", 0, &rest, why), 0);
    assert_int_equal(r->status, 403);
    assert_int_equal(r->content_length, 12);
    assert_int_equal(feed_resp(r, "HTTP/1.0 503\r\nContent-Length: x1\r\n\r\n", 0, &rest, why), 0);
    assert_int_equal(r->status, 503);
    assert_int_equal(r->content_length, -1);
    free(r);
}

static void test_resp_head_too_long(void **state)
{
    (void)state;
    size_t len = WSB__RESP_MAX_HEAD + 100;
    char *text = malloc(len + 1);
    assert_non_null(text);
    memset(text, 'a', len);
    memcpy(text, "HTTP/1.1 101 OK\r\nX: ", 20);
    text[len] = '\0';
    wsb__resp_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    size_t rest = 0;
    char why[200] = "";
    assert_int_equal(feed_resp(r, text, 0, &rest, why), WSB_EHTTP);
    assert_non_null(strstr(why, "longer than 8192"));
    /* Exactly at the limit is still accepted. */
    memset(text, 'a', WSB__RESP_MAX_HEAD);
    memcpy(text, "HTTP/1.1 101 OK\r\nX: ", 20);
    memcpy(text + WSB__RESP_MAX_HEAD - 4, "\r\n\r\n", 4);
    text[WSB__RESP_MAX_HEAD] = '\0';
    assert_int_equal(feed_resp(r, text, 0, &rest, why), 0);
    free(r);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_valid),
        cmocka_unit_test(test_url_invalid),
        cmocka_unit_test(test_header_safe),
        cmocka_unit_test(test_base64_rfc_key),
        cmocka_unit_test(test_upgrade_request_passes_server_check),
        cmocka_unit_test(test_resp_101_every_split),
        cmocka_unit_test(test_resp_invalid),
        cmocka_unit_test(test_resp_tolerant_forms),
        cmocka_unit_test(test_resp_head_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
