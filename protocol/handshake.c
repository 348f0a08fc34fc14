/*
 * handshake.c - RFC 6455 section 4.2 server handshake: validating the client's
 * opening request, choosing a subprotocol, and writing the 101 or the refusal.
 */
#include "wsb/handshake.h"

#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static wsb_str_t trim(wsb_str_t s)
{
    while (s.len > 0 && is_ows(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && is_ows(s.p[s.len - 1])) {
        s.len--;
    }
    return s;
}

/* Counts the header fields named `name`: some fields must appear once. */
static size_t header_occurrences(const wsb_http_request_t *r, const char *name)
{
    size_t count = 0;
    size_t n = wsb_http_request_header_count(r);
    for (size_t i = 0; i < n; i++) {
        if (wsb_str_eq_nocase(wsb_http_request_header_at(r, i)->name, name)) {
            count++;
        }
    }
    return count;
}

static bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Sixteen bytes encode to 22 base64 characters and "==" (RFC 4648 4); any
 * other length, alphabet or padding decodes to something else or nothing. */
static bool key_is_16_bytes(wsb_str_t key)
{
    if (key.len != 24 || key.p[22] != '=' || key.p[23] != '=') {
        return false;
    }
    for (size_t i = 0; i < 22; i++) {
        if (!is_base64_char(key.p[i])) {
            return false;
        }
    }
    return true;
}

static int refuse(wsb_handshake_t *hs, int status, const char *reason)
{
    hs->status = status;
    hs->reason = reason;
    return WSB_EHANDSHAKE;
}

/* Finds `want` in the client's Sec-WebSocket-Protocol lists (every
 * occurrence of the header); returns the client's token or {NULL,0}.
 * Subprotocol names are compared exactly (RFC 6455 11.3.4 registers them as
 * case-sensitive tokens). */
static wsb_str_t offered_subprotocol(const wsb_http_request_t *r, const char *want)
{
    size_t n = wsb_http_request_header_count(r);
    for (size_t i = 0; i < n; i++) {
        const wsb_http_header_t *h = wsb_http_request_header_at(r, i);
        if (!wsb_str_eq_nocase(h->name, "Sec-WebSocket-Protocol")) {
            continue;
        }
        const char *p = h->value.p;
        const char *end = p + h->value.len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma != NULL ? comma : end;
            wsb_str_t token = trim((wsb_str_t){p, (size_t)(stop - p)});
            if (token.len > 0 && wsb_str_eq(token, want)) {
                return token;
            }
            p = comma != NULL ? comma + 1 : end;
        }
    }
    return WSB_STR_NULL;
}

int wsb_handshake_check(const wsb_http_request_t *r, const char *const *subprotocols,
                        wsb_handshake_t *hs)
{
    hs->status = 0;
    hs->reason = NULL;
    hs->key = WSB_STR_NULL;
    hs->subprotocol = WSB_STR_NULL;
    hs->origin = wsb_http_request_header(r, "Origin");

    if (!wsb_str_eq(wsb_http_request_method(r), "GET")) {
        return refuse(hs, 405, "a WebSocket upgrade must use GET");
    }
    if (wsb_http_request_version(r) < 11) {
        return refuse(hs, 400, "a WebSocket upgrade needs HTTP/1.1");
    }
    if (wsb_http_request_header(r, "Host").p == NULL) {
        return refuse(hs, 400, "missing Host header");
    }
    if (!wsb_http_request_header_has_token(r, "Upgrade", "websocket")) {
        return refuse(hs, 400, "Upgrade header must contain \"websocket\"");
    }
    if (!wsb_http_request_header_has_token(r, "Connection", "upgrade")) {
        return refuse(hs, 400, "Connection header must contain \"Upgrade\"");
    }
    /* The one version this server speaks is announced in the 426 response
     * (RFC 6455 4.2.2), so a client can retry with it. */
    if (header_occurrences(r, "Sec-WebSocket-Version") != 1 ||
        !wsb_str_eq(trim(wsb_http_request_header(r, "Sec-WebSocket-Version")), "13")) {
        return refuse(hs, 426, "Sec-WebSocket-Version must be 13");
    }
    wsb_str_t key = trim(wsb_http_request_header(r, "Sec-WebSocket-Key"));
    if (header_occurrences(r, "Sec-WebSocket-Key") != 1 || !key_is_16_bytes(key)) {
        return refuse(hs, 400, "Sec-WebSocket-Key must be the base64 encoding of 16 bytes");
    }
    hs->key = key;

    for (size_t i = 0; subprotocols != NULL && subprotocols[i] != NULL; i++) {
        wsb_str_t offered = offered_subprotocol(r, subprotocols[i]);
        if (offered.p != NULL) {
            hs->subprotocol = offered;
            break;
        }
    }
    return 0;
}

void wsb_handshake_accept_key(wsb_str_t key, char out[WSB_WS_ACCEPT_LEN + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    out[0] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return;
    }
    bool ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
              (key.len == 0 || EVP_DigestUpdate(ctx, key.p, key.len) == 1) &&
              EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) == 1 &&
              EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1 && digest_len == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return;
    }
    /* 20 bytes encode to exactly 28 characters; EVP_EncodeBlock adds the NUL. */
    EVP_EncodeBlock((unsigned char *)out, digest, 20);
}

static int finish(int n, size_t cap)
{
    if (n < 0 || (size_t)n >= cap) {
        return WSB_ENOSPC;
    }
    return n;
}

int wsb_handshake_response(char *buf, size_t cap, const wsb_handshake_t *hs)
{
    if (hs->status != 0 || hs->key.p == NULL) {
        return WSB_EINVAL;
    }
    char accept[WSB_WS_ACCEPT_LEN + 1];
    wsb_handshake_accept_key(hs->key, accept);
    if (accept[0] == '\0') {
        return WSB_ENOMEM;
    }
    if (hs->subprotocol.len > INT_MAX) {
        return WSB_ENOSPC;
    }
    int n;
    if (hs->subprotocol.len > 0) {
        n = snprintf(buf, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %.*s\r\n\r\n",
                     accept, (int)hs->subprotocol.len, hs->subprotocol.p);
    } else {
        n = snprintf(buf, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    }
    return finish(n, cap);
}

int wsb_handshake_error_response(char *buf, size_t cap, int status, const char *message)
{
    if (message == NULL) {
        message = wsb_http_status_text(status);
    }
    const char *extra = NULL;
    switch (status) {
    case 426:
        extra = "Sec-WebSocket-Version: 13\r\n";
        break;
    case 405:
        extra = "Allow: GET\r\n";
        break;
    case 429:
    case 503:
        extra = "Retry-After: 1\r\n";
        break;
    default:
        break;
    }
    size_t body_len = strlen(message) + 1; /* the message and a newline */
    int head =
        wsb_http_write_head(buf, cap, status, "text/plain; charset=utf-8", body_len, false, extra);
    if (head < 0) {
        return head;
    }
    int n = snprintf(buf + head, cap - (size_t)head, "%s\n", message);
    if (n < 0 || (size_t)n >= cap - (size_t)head || (size_t)head + (size_t)n > INT_MAX) {
        return WSB_ENOSPC;
    }
    return head + n;
}
