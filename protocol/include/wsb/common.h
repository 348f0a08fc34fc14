/*
 * common.h - types and error codes shared by every wsbroker library.
 *
 * Error convention: functions return 0 on success or a negative WSB_E* code.
 * The WSB_E* range (-30000 and below) does not overlap libuv's UV_E* codes
 * (which are negated errno values), so the broker can pass both through one
 * `int status` without ambiguity. Constructors return NULL instead.
 *
 * wsb_str_t is a borrowed slice: it never owns its bytes and is valid only as
 * long as the buffer it points into, which each API documents.
 */
#ifndef WSB_COMMON_H
#define WSB_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *p;
    size_t len;
} wsb_str_t;

#define WSB_STR_NULL   ((wsb_str_t){NULL, 0})
#define WSB_STR_LIT(s) ((wsb_str_t){(s), sizeof(s) - 1})

enum {
    WSB_EAGAIN = -30001,    /* incomplete input: feed more bytes (not an error) */
    WSB_ENOMEM = -30002,    /* allocation failed */
    WSB_EPROTO = -30003,    /* protocol violation (WebSocket close 1002) */
    WSB_ETOOBIG = -30004,   /* a size limit was exceeded (close 1009, HTTP 413/431) */
    WSB_EUTF8 = -30005,     /* invalid UTF-8 (close 1007) */
    WSB_EINVAL = -30006,    /* invalid argument or value */
    WSB_ENOSPC = -30007,    /* caller's output buffer is too small */
    WSB_EHTTP = -30008,     /* malformed HTTP request; the parser holds the status */
    WSB_EHANDSHAKE = -30009 /* not an acceptable WebSocket upgrade; see its status */
};

/* Returns a static, human-readable description of a WSB_E* code (or "unknown error"). */
const char *wsb_strerror(int err);

/* Returns 1 when `s` equals the NUL-terminated `lit` byte for byte. */
int wsb_str_eq(wsb_str_t s, const char *lit);

/* Returns 1 when `s` equals `lit` ignoring ASCII case (HTTP tokens). */
int wsb_str_eq_nocase(wsb_str_t s, const char *lit);

#endif
