/* resp.c - bounded RESP2 request parser (see wsb/resp.h). */
#include "wsb/resp.h"

#include <string.h>

/* Parses a decimal integer (optional '-') at buf[0..len) terminated by
 * "\r\n". Returns 1 and *end (index past the "\r\n"), 0 when the line is
 * incomplete, -1 when it is malformed. At most 19 digits, so no overflow. */
static int parse_line_int(const char *buf, size_t len, long long *out, size_t *end)
{
    size_t i = 0;
    int neg = 0;
    long long v = 0;
    size_t digits = 0;
    if (i < len && buf[i] == '-') {
        neg = 1;
        i++;
    }
    for (; i < len && buf[i] >= '0' && buf[i] <= '9'; i++) {
        if (++digits > 18) {
            return -1;
        }
        v = v * 10 + (buf[i] - '0');
    }
    if (i >= len) {
        return 0;
    }
    if (digits == 0 || buf[i] != '\r') {
        return -1;
    }
    if (i + 1 >= len) {
        return 0;
    }
    if (buf[i + 1] != '\n') {
        return -1;
    }
    *out = neg ? -v : v;
    *end = i + 2;
    return 1;
}

static int parse_inline(const char *buf, size_t len, const wsb_resp_limits_t *lim, wsb_str_t *argv,
                        size_t *argc, size_t *used, const char **why)
{
    const char *nl = memchr(buf, '\n', len);
    if (nl == NULL) {
        if (len > lim->max_inline) {
            *why = "too big inline request";
            return WSB_ETOOBIG;
        }
        return WSB_EAGAIN;
    }
    size_t line_len = (size_t)(nl - buf);
    if (line_len > lim->max_inline) {
        *why = "too big inline request";
        return WSB_ETOOBIG;
    }
    size_t end = line_len;
    if (end > 0 && buf[end - 1] == '\r') {
        end--;
    }
    size_t n = 0;
    size_t i = 0;
    while (i < end) {
        while (i < end && (buf[i] == ' ' || buf[i] == '\t')) {
            i++;
        }
        if (i == end) {
            break;
        }
        size_t start = i;
        while (i < end && buf[i] != ' ' && buf[i] != '\t') {
            i++;
        }
        if (n == lim->max_args) {
            *why = "too many arguments";
            return WSB_ETOOBIG;
        }
        argv[n].p = buf + start;
        argv[n].len = i - start;
        n++;
    }
    *argc = n;
    *used = line_len + 1;
    return 0;
}

int wsb_resp_parse(const char *buf, size_t len, const wsb_resp_limits_t *lim, wsb_str_t *argv,
                   size_t *argc, size_t *used, const char **why)
{
    *why = NULL;
    if (len == 0) {
        return WSB_EAGAIN;
    }
    if (buf[0] != '*') {
        return parse_inline(buf, len, lim, argv, argc, used, why);
    }
    long long count = 0;
    size_t pos = 0;
    int rc = parse_line_int(buf + 1, len - 1, &count, &pos);
    if (rc < 0) {
        *why = "invalid multibulk length";
        return WSB_EPROTO;
    }
    if (rc == 0) {
        if (len > 32) {
            *why = "invalid multibulk length";
            return WSB_EPROTO;
        }
        return WSB_EAGAIN;
    }
    pos += 1;
    if (count <= 0) {
        /* "*0" and "*-1" (a null array) are empty requests, skipped. */
        *argc = 0;
        *used = pos;
        return 0;
    }
    if ((unsigned long long)count > lim->max_args) {
        *why = "too many arguments";
        return WSB_ETOOBIG;
    }
    for (size_t n = 0; n < (size_t)count; n++) {
        if (pos > lim->max_request) {
            *why = "too big request";
            return WSB_ETOOBIG;
        }
        if (pos >= len) {
            return WSB_EAGAIN;
        }
        if (buf[pos] != '$') {
            *why = "expected '$' (a bulk string)";
            return WSB_EPROTO;
        }
        long long blen = 0;
        size_t hl = 0;
        rc = parse_line_int(buf + pos + 1, len - pos - 1, &blen, &hl);
        if (rc < 0 || (rc == 1 && blen < 0)) {
            *why = "invalid bulk length";
            return WSB_EPROTO;
        }
        if (rc == 0) {
            if (len - pos > 32) {
                *why = "invalid bulk length";
                return WSB_EPROTO;
            }
            return WSB_EAGAIN;
        }
        if ((unsigned long long)blen > lim->max_bulk) {
            *why = "too big bulk string";
            return WSB_ETOOBIG;
        }
        size_t start = pos + 1 + hl;
        size_t ub = (size_t)blen;
        if (start + ub > lim->max_request) {
            *why = "too big request";
            return WSB_ETOOBIG;
        }
        if (len - start < ub + 2) {
            return WSB_EAGAIN;
        }
        if (buf[start + ub] != '\r' || buf[start + ub + 1] != '\n') {
            *why = "bulk string not followed by CRLF";
            return WSB_EPROTO;
        }
        argv[n].p = buf + start;
        argv[n].len = ub;
        pos = start + ub + 2;
    }
    *argc = (size_t)count;
    *used = pos;
    return 0;
}
