/*
 * ws_deflate.h - permessage-deflate (RFC 7692): the negotiation of the
 * Sec-WebSocket-Extensions offer and the raw-deflate codec of one message.
 * No I/O, no globals.
 *
 * Negotiation (server side): wsb_pmd_negotiate() walks the offers in order
 * and accepts the first permessage-deflate offer whose parameters are all
 * known, unique and valid; the server always answers
 * server_no_context_takeover, so every compressed message it sends is
 * independent of the connection (one compressed frame can go to many).
 *
 * Codec: wsb_pmd_deflate() compresses one message with a fresh context
 * (the 0x00 0x00 0xff 0xff tail of the sync flush removed, RFC 7692 7.2.1);
 * wsb_pmd_inflate() decompresses one message (the tail appended) into a
 * buffer that never grows past the caller's bound, which is what stops a
 * zip bomb. Both objects own zlib state: free them with their _free.
 */
#ifndef WSB_WS_DEFLATE_H
#define WSB_WS_DEFLATE_H

#include "wsb/common.h"
#include "wsb/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The accepted parameters of one offer (what the response says). */
typedef struct {
    bool client_no_context_takeover; /* the client resets its compressor per message */
    uint8_t server_max_window_bits;  /* 8..15: the client's inflate window (15 if not offered) */
    bool server_max_window_bits_set; /* offered: echoed in the response */
} wsb_pmd_params_t;

/*
 * Negotiates permessage-deflate from one or more header values (each a
 * Sec-WebSocket-Extensions line, in order; `values` holds `n`). Returns 1
 * and fills *out for the first acceptable offer, 0 when there is none (no
 * offer, other extensions only, or every permessage-deflate offer declined:
 * an unknown or repeated parameter, a bad value, server_max_window_bits
 * without a value in 8..15, a client_max_window_bits value outside 8..15).
 */
int wsb_pmd_negotiate_values(const wsb_str_t *values, size_t n, wsb_pmd_params_t *out);

/* The same over every Sec-WebSocket-Extensions header of a request. */
int wsb_pmd_negotiate(const wsb_http_request_t *r, wsb_pmd_params_t *out);

/* Writes the response header line ("Sec-WebSocket-Extensions: ...\r\n") for
 * `p`; NUL-terminated. Returns its length or WSB_ENOSPC. */
int wsb_pmd_response_header(char *buf, size_t cap, const wsb_pmd_params_t *p);

typedef struct wsb_pmd_deflater_s wsb_pmd_deflater_t;
typedef struct wsb_pmd_inflater_s wsb_pmd_inflater_t;

/* A compressor (zlib level `level`, 1..9, window 15). Owner: the caller,
 * released with wsb_pmd_deflater_free(). NULL on OOM. */
wsb_pmd_deflater_t *wsb_pmd_deflater_new(int level);
void wsb_pmd_deflater_free(wsb_pmd_deflater_t *d);

/* Bytes wsb_pmd_deflate() may need for `len` input bytes. */
size_t wsb_pmd_deflate_bound(size_t len);

/*
 * Compresses the message `in` (no context carried over from, or to, any
 * other message) into `out` and sets *out_len. Returns 0, WSB_ENOSPC when
 * `cap` is below wsb_pmd_deflate_bound(len), or WSB_ENOMEM.
 */
int wsb_pmd_deflate(wsb_pmd_deflater_t *d, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                    size_t *out_len);

/* A decompressor (window 15, which reads any window the client used).
 * Owner: the caller, released with wsb_pmd_inflater_free(). NULL on OOM. */
wsb_pmd_inflater_t *wsb_pmd_inflater_new(void);
void wsb_pmd_inflater_free(wsb_pmd_inflater_t *z);

/*
 * Decompresses one message `in` into a malloc'd buffer (*out, owned by the
 * caller, free()) of *out_len bytes, at most `max_out` (0: unlimited).
 * With `reset` the context is dropped after the message
 * (client_no_context_takeover); else it carries over to the next message.
 * Returns 0; WSB_ETOOBIG as soon as the output would pass max_out (nothing
 * is returned; close 1009); WSB_EUTF8 for data that is not a valid deflate
 * stream (close 1007, as the payload is not what it claims); WSB_ENOMEM.
 * After an error the inflater must not be used again but freed.
 */
int wsb_pmd_inflate(wsb_pmd_inflater_t *z, const uint8_t *in, size_t len, uint64_t max_out,
                    bool reset, uint8_t **out, size_t *out_len);

#endif
