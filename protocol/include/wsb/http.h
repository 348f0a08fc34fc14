/*
 * http.h - incremental HTTP/1.1 request parsing on top of llhttp, with bounds.
 *
 * A wsb_http_request_t parses one request at a time from bytes that may arrive
 * in any number of chunks. Method, URL and headers are copied into one buffer
 * of max_header_bytes (allocated once by _new), so their wsb_str_t slices stay
 * valid until the next wsb_http_request_reset() or _free(); they never point
 * into the caller's input. The body is collected into a buffer that grows up
 * to max_body_bytes (valid until the same calls). Trailer fields of a chunked
 * body are parsed and bounded but not kept.
 *
 * Keep-alive and pipelining: feed() stops right after a complete request and
 * reports how many bytes it used; the caller handles the request, calls
 * reset(), and feeds the remaining bytes. For an Upgrade request the bytes
 * after the request belong to the new protocol; feed() stops there too.
 *
 * Bounds and their HTTP statuses (wsb_http_request_status() after WSB_EHTTP):
 *   request line + headers > max_header_bytes raw bytes  -> 431
 *     (counted as received, CRLFs and blank lines before the request included)
 *   more than WSB_HTTP_MAX_HEADERS header fields         -> 431
 *   Content-Length > max_body_bytes (as soon as the head is complete) -> 413
 *   chunked body growing past max_body_bytes             -> 413
 *   bytes after the head (body plus chunk size lines, extensions and
 *     trailers) > max_header_bytes + 2 * max_body_bytes  -> 413
 *   anything llhttp rejects, a header name that is not a token -> 400
 *   two Origin headers, Transfer-Encoding in an HTTP/1.0 request
 *     (RFC 9112 6.1)                                      -> 400
 *   Expect other than 100-continue (HTTP/1.1)            -> 417
 *   HTTP version other than 1.0/1.1 (2.0, 0.9, 1.2, ...) -> 505
 * Every bound is decided by byte position alone, so the outcome does not
 * depend on how the input was split into chunks.
 */
#ifndef WSB_HTTP_H
#define WSB_HTTP_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>

#define WSB_HTTP_MAX_HEADERS      64
#define WSB_HTTP_DEFAULT_MAX_HEAD 8192

typedef struct {
    wsb_str_t name;
    wsb_str_t value;
} wsb_http_header_t;

typedef struct wsb_http_request_s wsb_http_request_t;

/* Creates a parser. Owner: the caller, released with wsb_http_request_free().
 * max_header_bytes 0 means WSB_HTTP_DEFAULT_MAX_HEAD; max_body_bytes 0 admits
 * only requests without a body. The head buffer is allocated here, the body
 * buffer on demand. Returns NULL on allocation failure. */
wsb_http_request_t *wsb_http_request_new(size_t max_header_bytes, size_t max_body_bytes);

/* Frees the parser and its buffers; NULL is a no-op. */
void wsb_http_request_free(wsb_http_request_t *r);

/* Forgets the current request so the next one can be fed, after a complete
 * request or an error. Keeps the head buffer, and the body buffer when it is
 * small (4 KiB or less), so an idle keep-alive connection does not hold on
 * to the largest body it ever received. */
void wsb_http_request_reset(wsb_http_request_t *r);

/*
 * Feeds bytes (data may be NULL when len is 0). Returns:
 *   0            a complete request is available; *consumed bytes were used
 *                (the rest belongs to the next request or, after an upgrade,
 *                to the new protocol);
 *   WSB_EAGAIN   all bytes used (*consumed == len), request not complete yet;
 *   WSB_EHTTP    malformed or over a bound: wsb_http_request_status() gives
 *                the HTTP status to answer with, _error() a short reason;
 *                *consumed is how far parsing got (informational only);
 *   WSB_ENOMEM   the body buffer could not be allocated (status 500).
 * After 0 or an error, call reset() before feeding again; until then feed()
 * uses no bytes (*consumed == 0) and returns the same result again.
 */
int wsb_http_request_feed(wsb_http_request_t *r, const char *data, size_t len, size_t *consumed);

/* After feed() returned 0: why the request must be answered 400 for its Host
 * header(s) (RFC 9112 3.2: missing in HTTP/1.1, or more than one), or NULL
 * when they are fine. Kept out of feed() so that a caller parsing requests
 * that are not routed by Host can do without. */
const char *wsb_http_request_host_error(const wsb_http_request_t *r);

/* True once, after feed() returned WSB_EAGAIN with the head of an HTTP/1.1
 * "Expect: 100-continue" request complete and its body still to come: the
 * caller sends "100 Continue" now (RFC 9110 10.1.1), so a client waiting for
 * it sends the body. False otherwise (no expectation, already answered, the
 * request complete or failed). */
bool wsb_http_request_take_continue(wsb_http_request_t *r);

/* Accessors; valid after feed() returned 0. is_upgrade() is llhttp's verdict:
 * Upgrade and "Connection: upgrade" both present (or a CONNECT request), i.e.
 * the bytes after the request are not HTTP. The body is {"",0} when empty. */
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

/* Status to answer after WSB_EHTTP (400, 413, 431, 505; 500 after WSB_ENOMEM)
 * and a static reason naming the input and the limit ("" when none); 0 and ""
 * while no error occurred. */
int wsb_http_request_status(const wsb_http_request_t *r);
const char *wsb_http_request_error(const wsb_http_request_t *r);

/* Reason phrase for a status code ("Not Found"); "Unknown" for others. */
const char *wsb_http_status_text(int status);

/*
 * Writes a response head into `buf`: status line, Content-Type (omitted when
 * NULL), Content-Length, Connection: keep-alive|close, `extra_headers` (each
 * line ending in CRLF, may be NULL) and the blank line, NUL-terminated.
 * Returns its length (without the NUL), WSB_ENOSPC when it does not fit, or
 * WSB_EINVAL for a status outside 100..999.
 */
int wsb_http_write_head(char *buf, size_t cap, int status, const char *content_type,
                        size_t content_length, bool keep_alive, const char *extra_headers);

/*
 * Percent-decodes a URL path (the part before '?' or '#') into `out` (cap
 * bytes, NUL-terminated). Rejects encoded NUL and '/' (%2F) and malformed
 * escapes; '+' stays '+'. It does not normalize: "%2e%2e" decodes to "..",
 * and refusing traversal is the caller's job. An absolute-form target
 * ("http://host/ws") yields its path ("/" when it has none); a target that is
 * neither ("*", "host:443") is WSB_EINVAL. Returns the decoded length or
 * WSB_EINVAL / WSB_ENOSPC.
 */
int wsb_http_decode_path(wsb_str_t url, char *out, size_t cap);

/*
 * Finds the first query parameter `name` in the URL (pairs separated by '&',
 * up to any '#'; keys compared after percent-decoding) and percent-decodes
 * its value into `out` (NUL-terminated, '+' read as a space). A key without
 * '=' has the empty value. Returns the value's length, WSB_EAGAIN if absent,
 * WSB_EINVAL if the value has a malformed escape or an encoded NUL,
 * WSB_ENOSPC if it does not fit.
 */
int wsb_http_query_param(wsb_str_t url, const char *name, char *out, size_t cap);

#endif
