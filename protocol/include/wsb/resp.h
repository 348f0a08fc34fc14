/*
 * resp.h - a bounded RESP2 request parser (the Redis protocol, client side
 * of the conversation), for the broker's RESP ingress.
 *
 * A request is either a multibulk array of bulk strings
 *   *<argc>\r\n $<len>\r\n<bytes>\r\n ...
 * (what every Redis client library and redis-cli send), or an inline command:
 * one line of words separated by spaces or tabs, ended by "\n" (an optional
 * "\r" before it is dropped), as typed into telnet or nc. Inline commands
 * have no quoting: a word cannot contain a space (Redis's inline quoting is
 * not supported). An empty line, "*0" and "*-1" are requests with no
 * arguments, which the caller ignores (as Redis does).
 *
 * The parser is stateless: each call looks at the start of the unread input
 * and either returns one complete command, WSB_EAGAIN (keep the bytes, feed
 * more), or an error. The arguments are views into the caller's buffer
 * (zero copy), valid while that buffer is. Pipelined requests are parsed
 * one call after another.
 *
 * Bounds (wsb_resp_limits_t): at most max_args arguments, each bulk at most
 * max_bulk bytes, an inline line at most max_inline bytes, and one whole
 * request at most max_request bytes; an incomplete request that already
 * exceeds a bound is rejected without waiting for the rest.
 */
#ifndef WSB_RESP_H
#define WSB_RESP_H

#include "wsb/common.h"

#include <stddef.h>

typedef struct {
    size_t max_args;    /* arguments per command (argv capacity), >= 1 */
    size_t max_bulk;    /* bytes per bulk string */
    size_t max_inline;  /* bytes of one inline command line */
    size_t max_request; /* bytes of one whole request */
} wsb_resp_limits_t;

/*
 * Parses one request at the start of `buf` (`len` bytes). `argv` has room
 * for lim->max_args views.
 * Returns:
 *   0            one request: *argc arguments (possibly 0) in argv, *used
 *                bytes consumed
 *   WSB_EAGAIN   the request is not complete yet (nothing consumed)
 *   WSB_EPROTO   malformed request; *why is a static sentence for a
 *                "-ERR Protocol error: ..." reply (the connection should close:
 *                the stream cannot be resynchronised)
 *   WSB_ETOOBIG  a bound was exceeded; *why names it (close as well)
 */
int wsb_resp_parse(const char *buf, size_t len, const wsb_resp_limits_t *lim, wsb_str_t *argv,
                   size_t *argc, size_t *used, const char **why);

#endif
