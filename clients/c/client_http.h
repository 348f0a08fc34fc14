/*
 * client_http.h - private: the HTTP side of the client's opening handshake.
 *
 * URL parsing (ws:// and wss://), the upgrade request, and a bounded parser
 * of the broker's response head. No I/O, no loop. Internal symbols use the
 * wsb__ prefix; only client.c and the unit tests include this header.
 */
#ifndef WSB_CLIENT_HTTP_H
#define WSB_CLIENT_HTTP_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The response head (status line + headers + blank line) may be at most this
 * long; the broker's 101 is about 130 bytes. */
#define WSB__RESP_MAX_HEAD 8192
#define WSB__WS_KEY_LEN    24 /* base64 of 16 bytes */

typedef struct {
    bool tls;          /* wss:// */
    char *host;        /* for connecting: no brackets around IPv6 */
    uint16_t port;     /* explicit or 80 / 443 */
    char *host_header; /* value of the Host header: host[:port], IPv6 in [] */
    char *target;      /* path and query as given ("/" when absent), no fragment */
} wsb__url_t;

/*
 * Parses `url`: scheme ws or wss (case-insensitive), an authority without
 * user info, host a name, IPv4 or [IPv6], optional port 1-65535, optional
 * path and query; a fragment is dropped. Fills *u (free with
 * wsb__url_free()). Returns 0, WSB_EINVAL with a sentence in `why`, or
 * WSB_ENOMEM.
 */
int wsb__url_parse(const char *url, wsb__url_t *u, char *why, size_t cap);
void wsb__url_free(wsb__url_t *u); /* NULL-safe; zeroes *u */

/* True if `s` is non-empty printable ASCII (0x21-0x7E, plus space when
 * `space` is true): safe in a header value and a query string. */
bool wsb__header_safe(const char *s, bool space);

/*
 * Builds the GET upgrade request for `u` with Sec-WebSocket-Key `key`
 * (24 chars), and when non-NULL `token` (as "Authorization: Bearer" and as
 * the query parameter token=, percent-encoded) and `origin`. Returns a
 * malloc'd NUL-terminated string and its length in *len, or NULL on ENOMEM.
 */
char *wsb__upgrade_request(const wsb__url_t *u, const char *key, const char *token,
                           const char *origin, size_t *len);

/* Incremental response-head parser; a plain struct the caller embeds. */
typedef struct {
    char head[WSB__RESP_MAX_HEAD];
    size_t len;
    bool done;
    /* Filled by wsb__resp_parse() once done. */
    int status;
    bool upgrade_websocket;  /* Upgrade has the token "websocket" */
    bool connection_upgrade; /* Connection has the token "upgrade" */
    int accept_count;        /* number of Sec-WebSocket-Accept fields */
    wsb_str_t accept;        /* the first one, trimmed (points into head) */
    bool has_extensions;     /* Sec-WebSocket-Extensions present */
    bool has_protocol;       /* Sec-WebSocket-Protocol present */
    int64_t content_length;  /* -1 when absent or invalid */
} wsb__resp_t;

void wsb__resp_init(wsb__resp_t *r);

/*
 * Consumes bytes up to and including the blank line that ends the head.
 * Returns WSB_EAGAIN (all `len` bytes used, head incomplete), 0 (head
 * complete and parsed; *consumed bytes used, the rest belongs to the
 * WebSocket stream or the body) or WSB_EHTTP (longer than
 * WSB__RESP_MAX_HEAD, or a malformed status line or header field; `why`
 * says which). `consumed` may be NULL.
 */
int wsb__resp_feed(wsb__resp_t *r, const uint8_t *data, size_t len, size_t *consumed, char *why,
                   size_t cap);

/*
 * Checks a parsed 101 response against RFC 6455 4.1: status 101, Upgrade:
 * websocket, Connection: upgrade, exactly one Sec-WebSocket-Accept equal to
 * `expected_accept`, no extension and no subprotocol (none was offered).
 * Returns 0 or WSB_EHANDSHAKE with `why` naming the first failure.
 */
int wsb__resp_check_upgrade(const wsb__resp_t *r, const char *expected_accept, char *why,
                            size_t cap);

/* Base64 of 16 bytes into out (24 chars + NUL). */
void wsb__base64_16(const uint8_t in[16], char out[WSB__WS_KEY_LEN + 1]);

#endif
