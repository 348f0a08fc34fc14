/*
 * proxy.c - trusted proxies and X-Forwarded-For (see proxy.h).
 */
#include "net/proxy.h"

#include "shared/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest textual address inet_pton accepts (an IPv6 with an embedded IPv4). */
#define ADDR_TEXT_MAX 45

int proxy_parse_addr(const char *p, size_t len, uint8_t out[16])
{
    char text[ADDR_TEXT_MAX + 1];
    if (len == 0 || len > ADDR_TEXT_MAX) {
        return -1;
    }
    memcpy(text, p, len);
    text[len] = '\0';
    struct in_addr v4;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        memset(out, 0, 10);
        out[10] = 0xff;
        out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
        return 0;
    }
    struct in6_addr v6;
    if (inet_pton(AF_INET6, text, &v6) == 1) {
        memcpy(out, &v6, 16);
        return 0;
    }
    return -1;
}

static bool is_mapped_v4(const uint8_t ip[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, prefix, sizeof(prefix)) == 0;
}

/* One entry: "ADDR" or "ADDR/BITS". Returns 0, or -1. */
static int parse_net(const char *p, size_t len, proxy_net_t *out)
{
    const char *slash = memchr(p, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - p) : len;
    if (proxy_parse_addr(p, alen, out->addr) != 0) {
        return -1;
    }
    bool v4 = memchr(p, ':', alen) == NULL;
    unsigned max = v4 ? 32 : 128;
    unsigned bits = max;
    if (slash != NULL) {
        const char *d = slash + 1;
        size_t dlen = len - alen - 1;
        if (dlen == 0 || dlen > 3) {
            return -1;
        }
        bits = 0;
        for (size_t i = 0; i < dlen; i++) {
            if (d[i] < '0' || d[i] > '9') {
                return -1;
            }
            bits = bits * 10 + (unsigned)(d[i] - '0');
        }
        if (bits > max) {
            return -1;
        }
    }
    out->prefix = (uint8_t)(v4 ? 96 + bits : bits);
    /* Clear the host bits so matching is a plain masked compare. */
    for (unsigned i = out->prefix; i < 128; i++) {
        out->addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    }
    return 0;
}

bool proxy_entry_valid(const char *p, size_t len)
{
    proxy_net_t net;
    return parse_net(p, len, &net) == 0;
}

int proxy_parse_list(const char *spec, proxy_net_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (spec == NULL || spec[0] == '\0') {
        return 0;
    }
    size_t count = 1;
    for (const char *c = spec; *c != '\0'; c++) {
        count += *c == ',';
    }
    proxy_net_t *nets = xcalloc(count, sizeof(*nets));
    size_t i = 0;
    for (const char *p = spec;; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (parse_net(p, len, &nets[i]) != 0) {
            free(nets);
            return -1;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    *out = nets;
    *n = i + 1;
    return 0;
}

bool proxy_is_trusted(const proxy_net_t *nets, size_t n, const uint8_t ip[16])
{
    for (size_t k = 0; k < n; k++) {
        unsigned full = nets[k].prefix / 8;
        unsigned rest = nets[k].prefix % 8;
        if (memcmp(nets[k].addr, ip, full) != 0) {
            continue;
        }
        if (rest != 0) {
            uint8_t mask = (uint8_t)(0xffu << (8 - rest));
            if ((ip[full] & mask) != nets[k].addr[full]) {
                continue;
            }
        }
        return true;
    }
    return false;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

bool proxy_client_addr(const proxy_net_t *nets, size_t n, const uint8_t peer[16],
                       const wsb_str_t *xff, size_t nxff, uint8_t out[16])
{
    memcpy(out, peer, 16);
    if (n == 0 || !proxy_is_trusted(nets, n, peer)) {
        return false;
    }
    /* Right to left over the headers, then over each header's entries: the
     * hop nearest to us comes last. `out` always holds the last hop understood. */
    for (size_t h = nxff; h-- > 0;) {
        const char *start = xff[h].p;
        const char *end = start + xff[h].len;
        while (end > start) {
            const char *comma = end;
            while (comma > start && comma[-1] != ',') {
                comma--;
            }
            const char *a = comma;
            const char *b = end;
            while (a < b && is_space(*a)) {
                a++;
            }
            while (b > a && is_space(b[-1])) {
                b--;
            }
            end = comma > start ? comma - 1 : start;
            if (a == b) {
                continue; /* "a, , b" or a trailing comma: no hop */
            }
            uint8_t hop[16];
            if (proxy_parse_addr(a, (size_t)(b - a), hop) != 0) {
                return memcmp(out, peer, 16) != 0;
            }
            memcpy(out, hop, 16);
            if (!proxy_is_trusted(nets, n, hop)) {
                return memcmp(out, peer, 16) != 0;
            }
        }
    }
    return memcmp(out, peer, 16) != 0;
}

void proxy_format_addr(const uint8_t ip[16], char *buf, size_t cap)
{
    char text[INET6_ADDRSTRLEN];
    const char *s = is_mapped_v4(ip) ? inet_ntop(AF_INET, ip + 12, text, sizeof(text))
                                     : inet_ntop(AF_INET6, ip, text, sizeof(text));
    (void)snprintf(buf, cap, "%s", s != NULL ? s : "?");
}
