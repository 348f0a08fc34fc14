/*
 * ws_deflate.c - permessage-deflate negotiation and codec (see ws_deflate.h).
 *
 * The offer grammar (RFC 6455 9.1, RFC 7692 7): a comma-separated list of
 * extensions, each a token followed by ";"-separated parameters, each a
 * token with an optional "=" and a token or quoted-string value. A header
 * that does not follow it is skipped whole: its offers cannot be read.
 */
#include "wsb/ws_deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
/* next_in is const: the input is never written. */
#define ZLIB_CONST 1
#include <zlib.h>

#define PMD_TAIL_LEN 4
static const uint8_t pmd_tail[PMD_TAIL_LEN] = {0x00, 0x00, 0xff, 0xff};

/* ---- negotiation --------------------------------------------------------------------------- */

static bool is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

typedef struct {
    const char *p;
    const char *end;
} cursor_t;

static void skip_ows(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) {
        c->p++;
    }
}

static wsb_str_t read_token(cursor_t *c)
{
    const char *start = c->p;
    while (c->p < c->end && is_tchar(*c->p)) {
        c->p++;
    }
    return (wsb_str_t){start, (size_t)(c->p - start)};
}

/* A token or quoted-string value; quoted pairs are not needed for the
 * values this extension knows (digits), so a backslash makes it invalid for
 * us (returned as {NULL,0} but still skipped correctly). Returns false on a
 * syntax error. */
static bool read_value(cursor_t *c, wsb_str_t *value)
{
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        const char *start = c->p;
        bool escaped = false;
        while (c->p < c->end && *c->p != '"') {
            if (*c->p == '\\') {
                escaped = true;
                c->p++;
                if (c->p == c->end) {
                    return false;
                }
            }
            c->p++;
        }
        if (c->p == c->end) {
            return false;
        }
        *value = escaped ? WSB_STR_NULL : (wsb_str_t){start, (size_t)(c->p - start)};
        c->p++;
        return true;
    }
    *value = read_token(c);
    return value->len > 0;
}

/* A window size value: "8".."15" exactly (no sign, no leading zero). */
static int window_bits(wsb_str_t v)
{
    if (v.p == NULL || v.len == 0 || v.len > 2 || v.p[0] == '0') {
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') {
            return -1;
        }
        n = n * 10 + (v.p[i] - '0');
    }
    return n >= 8 && n <= 15 ? n : -1;
}

/* One permessage-deflate offer's parameter; false declines the offer. */
static bool accept_param(wsb_str_t name, bool has_value, wsb_str_t value, unsigned *seen,
                         wsb_pmd_params_t *p)
{
    static const char *const names[] = {"server_no_context_takeover", "client_no_context_takeover",
                                        "server_max_window_bits", "client_max_window_bits"};
    unsigned which = 0;
    while (which < 4 && !wsb_str_eq_nocase(name, names[which])) {
        which++;
    }
    if (which == 4 || (*seen & (1u << which)) != 0) {
        return false; /* unknown or repeated (RFC 7692 7: decline) */
    }
    *seen |= 1u << which;
    switch (which) {
    case 0: /* we answer it whatever the offer says */
    case 1:
        if (has_value) {
            return false;
        }
        if (which == 1) {
            p->client_no_context_takeover = true;
        }
        return true;
    case 2: {
        int bits = has_value ? window_bits(value) : -1;
        if (bits < 0) {
            return false;
        }
        p->server_max_window_bits = (uint8_t)bits;
        p->server_max_window_bits_set = true;
        return true;
    }
    default:
        /* The client limits its own window; we inflate with 15, which reads
         * any, so the response need not mention it. */
        return !has_value || window_bits(value) >= 0;
    }
}

/* Parses one header value; returns 1 with *out on the first acceptable offer,
 * 0 when it has none, -1 on a syntax error. */
static int negotiate_value(wsb_str_t header, wsb_pmd_params_t *out)
{
    cursor_t c = {header.p, header.p + header.len};
    for (;;) {
        skip_ows(&c);
        if (c.p == c.end) {
            return 0;
        }
        if (*c.p == ',') { /* empty list element (RFC 7230 7) */
            c.p++;
            continue;
        }
        wsb_str_t name = read_token(&c);
        if (name.len == 0) {
            return -1;
        }
        bool ours = wsb_str_eq_nocase(name, "permessage-deflate");
        bool ok = ours;
        unsigned seen = 0;
        wsb_pmd_params_t p = {.server_max_window_bits = 15};
        skip_ows(&c);
        while (c.p < c.end && *c.p == ';') {
            c.p++;
            skip_ows(&c);
            wsb_str_t pname = read_token(&c);
            if (pname.len == 0) {
                return -1;
            }
            skip_ows(&c);
            bool has_value = false;
            wsb_str_t value = WSB_STR_NULL;
            if (c.p < c.end && *c.p == '=') {
                c.p++;
                skip_ows(&c);
                if (!read_value(&c, &value)) {
                    return -1;
                }
                has_value = true;
                skip_ows(&c);
            }
            if (ok) {
                ok = accept_param(pname, has_value, value, &seen, &p);
            }
        }
        if (c.p < c.end && *c.p != ',') {
            return -1;
        }
        if (ok) {
            *out = p;
            return 1;
        }
    }
}

int wsb_pmd_negotiate_values(const wsb_str_t *values, size_t n, wsb_pmd_params_t *out)
{
    for (size_t i = 0; i < n; i++) {
        if (negotiate_value(values[i], out) == 1) {
            return 1;
        }
    }
    return 0;
}

int wsb_pmd_negotiate(const wsb_http_request_t *r, wsb_pmd_params_t *out)
{
    size_t n = wsb_http_request_header_count(r);
    for (size_t i = 0; i < n; i++) {
        const wsb_http_header_t *h = wsb_http_request_header_at(r, i);
        if (wsb_str_eq_nocase(h->name, "Sec-WebSocket-Extensions") &&
            negotiate_value(h->value, out) == 1) {
            return 1;
        }
    }
    return 0;
}

int wsb_pmd_response_header(char *buf, size_t cap, const wsb_pmd_params_t *p)
{
    char bits[40] = "";
    if (p->server_max_window_bits_set) {
        (void)snprintf(bits, sizeof(bits), "; server_max_window_bits=%u",
                       (unsigned)p->server_max_window_bits);
    }
    int n =
        snprintf(buf, cap,
                 "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover%s%s\r\n",
                 p->client_no_context_takeover ? "; client_no_context_takeover" : "", bits);
    if (n < 0 || (size_t)n >= cap) {
        return WSB_ENOSPC;
    }
    return n;
}

/* ---- codec --------------------------------------------------------------------------------- */

struct wsb_pmd_deflater_s {
    z_stream zs;
};

struct wsb_pmd_inflater_s {
    z_stream zs;
};

wsb_pmd_deflater_t *wsb_pmd_deflater_new(int level)
{
    wsb_pmd_deflater_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    /* Negative window bits: raw deflate, no zlib header (RFC 7692 7.2.1). */
    if (deflateInit2(&d->zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(d);
        return NULL;
    }
    return d;
}

void wsb_pmd_deflater_free(wsb_pmd_deflater_t *d)
{
    if (d != NULL) {
        deflateEnd(&d->zs);
        free(d);
    }
}

size_t wsb_pmd_deflate_bound(size_t len)
{
    /* deflateBound for raw deflate plus the empty stored block of the sync
     * flush (5 bytes, of which the 4-byte tail is removed). */
    return len + (len >> 12) + (len >> 14) + (len >> 25) + 13 + 8;
}

int wsb_pmd_deflate(wsb_pmd_deflater_t *d, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                    size_t *out_len)
{
    if (cap < wsb_pmd_deflate_bound(len) || len > UINT32_MAX || cap > UINT32_MAX) {
        return WSB_ENOSPC;
    }
    z_stream *zs = &d->zs;
    zs->next_in = in;
    zs->avail_in = (uInt)len;
    zs->next_out = out;
    zs->avail_out = (uInt)cap;
    int rc = deflate(zs, Z_SYNC_FLUSH);
    size_t produced = cap - zs->avail_out;
    bool done = rc == Z_OK && zs->avail_in == 0 && zs->avail_out > 0;
    /* No context takeover: the next message starts from an empty window. */
    deflateReset(zs);
    if (!done || produced < PMD_TAIL_LEN ||
        memcmp(out + produced - PMD_TAIL_LEN, pmd_tail, PMD_TAIL_LEN) != 0) {
        return rc == Z_MEM_ERROR ? WSB_ENOMEM : WSB_ENOSPC;
    }
    *out_len = produced - PMD_TAIL_LEN;
    return 0;
}

wsb_pmd_inflater_t *wsb_pmd_inflater_new(void)
{
    wsb_pmd_inflater_t *z = calloc(1, sizeof(*z));
    if (z == NULL) {
        return NULL;
    }
    if (inflateInit2(&z->zs, -15) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void wsb_pmd_inflater_free(wsb_pmd_inflater_t *z)
{
    if (z != NULL) {
        inflateEnd(&z->zs);
        free(z);
    }
}

/* Inflates `len` bytes of `in` into *buf (grown by doubling up to limit + 1
 * bytes, so that passing the limit is seen without producing more). */
static int inflate_some(z_stream *zs, const uint8_t *in, size_t len, uint64_t limit, uint8_t **buf,
                        size_t *cap, size_t *have)
{
    zs->next_in = in;
    zs->avail_in = (uInt)len;
    for (;;) {
        if (*have == *cap) {
            if (*have > limit) {
                return WSB_ETOOBIG;
            }
            size_t ncap = *cap < 1024 ? 1024 : *cap * 2;
            if (ncap > limit + 1) {
                ncap = (size_t)limit + 1;
            }
            uint8_t *nb = realloc(*buf, ncap);
            if (nb == NULL) {
                return WSB_ENOMEM;
            }
            *buf = nb;
            *cap = ncap;
        }
        size_t room = *cap - *have;
        if (room > UINT32_MAX) {
            room = UINT32_MAX;
        }
        zs->next_out = *buf + *have;
        zs->avail_out = (uInt)room;
        int rc = inflate(zs, Z_SYNC_FLUSH);
        *have += room - zs->avail_out;
        if (*have > limit) {
            return WSB_ETOOBIG;
        }
        if (rc == Z_STREAM_END) {
            /* A final block (BFINAL) ends this deflate stream; what follows
             * (the tail) starts a new one. */
            inflateReset(zs);
            if (zs->avail_in == 0) {
                return 0;
            }
            continue;
        }
        if (rc == Z_BUF_ERROR || (rc == Z_OK && zs->avail_in == 0 && zs->avail_out > 0)) {
            return 0; /* all input used and nothing more pending */
        }
        if (rc != Z_OK) {
            return rc == Z_MEM_ERROR ? WSB_ENOMEM : WSB_EUTF8;
        }
    }
}

int wsb_pmd_inflate(wsb_pmd_inflater_t *z, const uint8_t *in, size_t len, uint64_t max_out,
                    bool reset, uint8_t **out, size_t *out_len)
{
    uint64_t limit = max_out != 0 ? max_out : SIZE_MAX - 1;
    uint8_t *buf = NULL;
    size_t cap = 0;
    size_t have = 0;
    int rc = 0;
    /* Input is fed in pieces zlib's 32-bit counters can take. */
    while (rc == 0 && len > 0) {
        size_t n = len > UINT32_MAX ? UINT32_MAX : len;
        rc = inflate_some(&z->zs, in, n, limit, &buf, &cap, &have);
        in += n;
        len -= n;
    }
    if (rc == 0) {
        rc = inflate_some(&z->zs, pmd_tail, PMD_TAIL_LEN, limit, &buf, &cap, &have);
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    if (reset) {
        inflateReset(&z->zs);
    }
    if (buf == NULL) {
        buf = malloc(1);
        if (buf == NULL) {
            return WSB_ENOMEM;
        }
    }
    *out = buf;
    *out_len = have;
    return 0;
}
