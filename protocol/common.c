/* common.c - error strings and small slice helpers shared by the protocol library. */
#include "wsb/common.h"

#include <string.h>

const char *wsb_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case WSB_EAGAIN:
        return "incomplete input";
    case WSB_ENOMEM:
        return "out of memory";
    case WSB_EPROTO:
        return "protocol error";
    case WSB_ETOOBIG:
        return "size limit exceeded";
    case WSB_EUTF8:
        return "invalid UTF-8";
    case WSB_EINVAL:
        return "invalid value";
    case WSB_ENOSPC:
        return "output buffer too small";
    case WSB_EHTTP:
        return "malformed HTTP request";
    case WSB_EHANDSHAKE:
        return "WebSocket handshake refused";
    default:
        return "unknown error";
    }
}

int wsb_str_eq(wsb_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.p != NULL && s.len == n && memcmp(s.p, lit, n) == 0;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

int wsb_str_eq_nocase(wsb_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.p == NULL || s.len != n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)s.p[i]) != lower((unsigned char)lit[i])) {
            return 0;
        }
    }
    return 1;
}
