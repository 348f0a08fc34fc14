/*
 * handshake.h - the server side of the RFC 6455 opening handshake.
 *
 * wsb_handshake_check() validates a parsed upgrade request; the caller (the
 * broker) has already chosen the endpoint by path. On success it produces
 * what the 101 response needs; on failure an HTTP status and a reason.
 * Slices in wsb_handshake_t borrow from the request and are valid as long as
 * it is (until its reset/free).
 */
#ifndef WSB_HANDSHAKE_H
#define WSB_HANDSHAKE_H

#include "wsb/common.h"
#include "wsb/http.h"

#include <stdbool.h>
#include <stddef.h>

#define WSB_WS_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 */

typedef struct {
    int status;            /* 0 on success; else 400, 405 or 426 */
    const char *reason;    /* static text for the error body; NULL on success */
    wsb_str_t key;         /* Sec-WebSocket-Key as sent (24 base64 chars) */
    wsb_str_t subprotocol; /* the selected subprotocol, or {NULL,0} */
    wsb_str_t origin;      /* Origin header, or {NULL,0} */
} wsb_handshake_t;

/*
 * Validates the upgrade request `r`, in this order:
 *   method GET (else 405), HTTP/1.1 or later (else 400), Host present (400),
 *   Upgrade contains token "websocket" case-insensitively (400),
 *   Connection token list contains "upgrade" (400),
 *   exactly one Sec-WebSocket-Version, equal to 13 (else 426, missing
 *   included; the response must carry "Sec-WebSocket-Version: 13"),
 *   exactly one Sec-WebSocket-Key, base64 of 16 bytes: 22 base64 characters
 *   and "==" (else 400). hs->origin is set whatever the outcome.
 * `subprotocols` is a NULL-terminated list the server speaks, in preference
 * order (NULL: none); the first one the client offered is selected, and a
 * client offering only others gets no subprotocol (not an error, RFC 6455 4.2.2).
 * Returns 0 or WSB_EHANDSHAKE (hs->status and hs->reason set).
 */
int wsb_handshake_check(const wsb_http_request_t *r, const char *const *subprotocols,
                        wsb_handshake_t *hs);

/* Computes Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)).
 * Writes WSB_WS_ACCEPT_LEN chars and a NUL into out; should OpenSSL fail
 * (out of memory), writes the empty string. */
void wsb_handshake_accept_key(wsb_str_t key, char out[WSB_WS_ACCEPT_LEN + 1]);

/* Writes the 101 Switching Protocols response for a successful check:
 * Upgrade, Connection, Sec-WebSocket-Accept and, when one was selected,
 * Sec-WebSocket-Protocol; NUL-terminated. Returns its length, WSB_ENOSPC,
 * WSB_EINVAL when `hs` is not a successful check, or WSB_ENOMEM. */
int wsb_handshake_response(char *buf, size_t cap, const wsb_handshake_t *hs);

/*
 * Writes a complete error response (400, 403, 404, 405, 426, 429, 431, 503,
 * ...) with a short text/plain body, `message` and a newline (the status's
 * reason phrase when NULL), and "Connection: close"; a 426 also carries
 * "Sec-WebSocket-Version: 13", a 405 "Allow: GET", and a 503 or 429
 * "Retry-After: 1". Returns its length, WSB_ENOSPC, or WSB_EINVAL for a
 * status outside 100..999.
 */
int wsb_handshake_error_response(char *buf, size_t cap, int status, const char *message);

#endif
