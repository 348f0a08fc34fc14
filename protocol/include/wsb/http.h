/*
 * http.h - incremental HTTP/1.1 request parsing on top of llhttp, with bounds.
 *
 * A wsb_http_request_t parses one request at a time from bytes that may arrive
 * in any number of chunks. Method, URL and headers are copied into one buffer
 * of max_header_bytes (allocated once by _new), so their wsb_str_t slices stay
 * valid until the next wsb_http_request_reset() or _free(). The body is
 * collected into a buffer that grows up to max_body_bytes.
 *
 * Keep-alive and pipelining: feed() stops right after a complete request and
 * reports how many bytes it used; the caller handles the request, calls
 * reset(), and feeds the remaining bytes. For an Upgrade request the bytes
 * after the request belong to the new protocol; feed() stops there too.
 *
 * Bounds and their HTTP statuses (set in r->status when feed fails):
 *   request line + headers > max_header_bytes        -> 431
 *   more than WSB_HTTP_MAX_HEADERS header fields      -> 431
 *   body (Content-Length or chunked) > max_body_bytes -> 413
 *   anything llhttp rejects                           -> 400
 *   HTTP version other than 1.0/1.1                   -> 505
 */
#ifndef WSB_HTTP_H
#define WSB_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "wsb/common.h"

#define WSB_HTTP_MAX_HEADERS      64
#define WSB_HTTP_DEFAULT_MAX_HEAD 8192

typedef struct {
    wsb_str_t name;
    wsb_str_t value;
} wsb_http_header_t;

typedef struct wsb_http_request_s wsb_http_request_t;

/* Creates a parser. Owner: the caller, released with wsb_http_request_free().
 * Returns NULL on allocation failure. */
wsb_http_request_t *wsb_http_request_new(size_t max_header_bytes, size_t max_body_bytes);
void wsb_http_request_free(wsb_http_request_t *r);

/* Forgets the current request (keeps the buffers) so the next one can be fed. */
void wsb_http_request_reset(wsb_http_request_t *r);

/*
 * Feeds bytes. Returns:
 *   0            a complete request is available; *consumed bytes were used
 *                (the rest belongs to the next request or, after an upgrade,
 *                to the new protocol);
 *   WSB_EAGAIN   all bytes used, request not complete yet;
 *   WSB_EHTTP    malformed or over a bound: wsb_http_request_status() gives
 *                the HTTP status to answer with, _error() a short reason.
 * After 0 or WSB_EHTTP, call reset() before feeding again.
 */
int wsb_http_request_feed(wsb_http_request_t *r, const char *data, size_t len, size_t *consumed);

/* Accessors; valid after feed() returned 0. */
wsb_str_t wsb_http_request_method(const wsb_http_request_t *r); /* "GET", "POST", ... */
wsb_str_t wsb_http_request_url(const wsb_http_request_t *r);    /* raw request target */
int wsb_http_request_version(const wsb_http_request_t *r);      /* 10 or 11 */
bool wsb_http_request_keep_alive(const wsb_http_request_t *r);
bool wsb_http_request_is_upgrade(const wsb_http_request_t *r);
wsb_str_t wsb_http_request_body(const wsb_http_request_t *r);
size_t wsb_http_request_header_count(const wsb_http_request_t *r);
const wsb_http_header_t *wsb_http_request_header_at(const wsb_http_request_t *r, size_t i);

/* First header named `name` (ASCII case-insensitive); {NULL,0} if absent. */
wsb_str_t wsb_http_request_header(const wsb_http_request_t *r, const char *name);

/* True if the comma-separated token list in header `name` (all occurrences)
 * contains `token`, compared case-insensitively ("Connection: keep-alive, Upgrade"). */
bool wsb_http_request_header_has_token(const wsb_http_request_t *r, const char *name,
                                       const char *token);

/* Status to answer after WSB_EHTTP (400, 413, 431, 505), and a static reason. */
int wsb_http_request_status(const wsb_http_request_t *r);
const char *wsb_http_request_error(const wsb_http_request_t *r);

/* Reason phrase for a status code ("Not Found"); "Unknown" for others. */
const char *wsb_http_status_text(int status);

/*
 * Writes a response head into `buf`: status line, Content-Type (omitted when
 * NULL), Content-Length, Connection: keep-alive|close, `extra_headers` (each
 * line ending in CRLF, may be NULL) and the blank line. Returns its length or
 * WSB_ENOSPC.
 */
int wsb_http_write_head(char *buf, size_t cap, int status, const char *content_type,
                        size_t content_length, bool keep_alive, const char *extra_headers);

/*
 * Percent-decodes a URL path (the part before '?') into `out` (cap bytes).
 * Rejects encoded NUL and '/' (%2F) and malformed escapes. Returns the decoded
 * length or WSB_EINVAL / WSB_ENOSPC.
 */
int wsb_http_decode_path(wsb_str_t url, char *out, size_t cap);

/*
 * Finds query parameter `name` in the URL and percent-decodes its value into
 * `out` (NUL-terminated). Returns the value's length, WSB_EAGAIN if absent,
 * WSB_EINVAL if malformed, WSB_ENOSPC if it does not fit.
 */
int wsb_http_query_param(wsb_str_t url, const char *name, char *out, size_t cap);

#endif
