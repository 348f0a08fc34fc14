/* redis_cluster.c - Redis Cluster slots, topology and redirections (see redis_cluster.h). */
#include "cluster/redis_cluster.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis's
 * crc16.c; computed bitwise, the keys here are a few dozen bytes. */
static uint16_t crc16(const char *p, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc = (uint16_t)(crc ^ ((unsigned)(uint8_t)p[i] << 8));
        for (int b = 0; b < 8; b++) {
            crc = (uint16_t)((crc & 0x8000u) != 0 ? (crc << 1) ^ 0x1021u : (unsigned)crc << 1);
        }
    }
    return crc;
}

unsigned rc_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t start = (size_t)(open - key) + 1;
        const char *close = memchr(key + start, '}', len - start);
        if (close != NULL && close > key + start) {
            return crc16(key + start, (size_t)(close - (key + start))) & (RC_SLOTS - 1);
        }
    }
    return crc16(key, len) & (RC_SLOTS - 1);
}

size_t rc_tag_name(char *out, const char *prefix, const char *tag, size_t tag_len, const char *rest,
                   size_t rest_len)
{
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    out[n++] = '{';
    for (size_t i = 0; i < tag_len; i++) {
        if (tag[i] == '%' || tag[i] == '}') {
            out[n++] = '%';
            out[n++] = tag[i] == '%' ? '2' : '7';
            out[n++] = tag[i] == '%' ? '5' : 'D';
        } else {
            out[n++] = tag[i];
        }
    }
    out[n++] = '}';
    if (rest_len > 0) {
        memcpy(out + n, rest, rest_len);
    }
    n += rest_len;
    out[n] = '\0';
    return n;
}

int rc_parse_addr(const char *s, size_t len, rc_addr_t *out)
{
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--) {
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    }
    if (colon == NULL) {
        return -1;
    }
    const char *host = s;
    size_t host_len = (size_t)(colon - s);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    const char *port = colon + 1;
    size_t plen = (size_t)(s + len - port);
    if (host_len == 0 || host_len >= RC_HOST_MAX || plen == 0 || plen > 5) {
        return -1;
    }
    unsigned v = 0;
    for (size_t i = 0; i < plen; i++) {
        if (port[i] < '0' || port[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned)(port[i] - '0');
    }
    if (v == 0 || v > 65535 || memchr(host, ',', host_len) != NULL ||
        memchr(host, ' ', host_len) != NULL) {
        return -1;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = v;
    return 0;
}

int rc_parse_seeds(const char *list, rc_addr_t *out, unsigned cap)
{
    unsigned n = 0;
    const char *p = list;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ') {
            len--;
        }
        if (n == cap || rc_parse_addr(p, len, &out[n]) != 0) {
            return -1;
        }
        n++;
        if (end == NULL) {
            break;
        }
        p = end + 1;
        if (*p == '\0') {
            return -1; /* a trailing comma: an empty seed */
        }
    }
    return n > 0 ? (int)n : -1;
}

/* The index of `host:port` among the masters, added when new; -1 when full. */
static int master_index(rc_topology_t *t, const char *host, size_t host_len, unsigned port)
{
    for (unsigned i = 0; i < t->nmasters; i++) {
        if (t->masters[i].port == port && strlen(t->masters[i].host) == host_len &&
            memcmp(t->masters[i].host, host, host_len) == 0) {
            return (int)i;
        }
    }
    if (t->nmasters == RC_MAX_NODES) {
        return -1;
    }
    rc_addr_t *m = &t->masters[t->nmasters];
    memcpy(m->host, host, host_len);
    m->host[host_len] = '\0';
    m->port = port;
    return (int)t->nmasters++;
}

int rc_parse_slots(const redisReply *r, const char *reached_host, rc_topology_t *t)
{
    t->nmasters = 0;
    memset(t->slot_master, RC_NO_MASTER, sizeof t->slot_master);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return -1;
    }
    int served = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        /* [start, end, [host, port, id, ...], replicas...] */
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
            return -1;
        }
        long long start = e->element[0]->integer, end = e->element[1]->integer;
        const redisReply *host = e->element[2]->element[0];
        long long port = e->element[2]->element[1]->integer;
        if (start < 0 || end >= RC_SLOTS || start > end || port <= 0 || port > 65535 ||
            host->len >= RC_HOST_MAX) {
            return -1;
        }
        const char *h = host->str;
        size_t hl = host->len;
        if (hl == 0 || (hl == 1 && h[0] == '?')) {
            h = reached_host;
            hl = strlen(reached_host);
        }
        int m = master_index(t, h, hl, (unsigned)port);
        if (m < 0) {
            return -1;
        }
        for (long long s = start; s <= end; s++) {
            served += t->slot_master[s] == RC_NO_MASTER ? 1 : 0;
            t->slot_master[s] = (uint8_t)m;
        }
    }
    return served;
}

int rc_parse_redirect(const char *err, size_t len, const char *reached_host, bool *ask,
                      unsigned *slot, rc_addr_t *to)
{
    size_t skip;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        *ask = false;
        skip = 6;
    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        *ask = true;
        skip = 4;
    } else {
        return -1;
    }
    unsigned s = 0;
    size_t i = skip;
    while (i < len && err[i] >= '0' && err[i] <= '9' && s < RC_SLOTS) {
        s = s * 10 + (unsigned)(err[i++] - '0');
    }
    if (i == skip || i >= len || err[i] != ' ' || s >= RC_SLOTS) {
        return -1;
    }
    i++;
    if (len - i > 1 && err[i] == ':') {
        /* "MOVED 3999 :6381": the host we reached. */
        size_t rl = strlen(reached_host);
        if (rl >= RC_HOST_MAX) {
            return -1;
        }
        char buf[RC_HOST_MAX + 8];
        int n = snprintf(buf, sizeof buf, "%s%.*s", reached_host, (int)(len - i), err + i);
        if (n < 0 || (size_t)n >= sizeof buf) {
            return -1;
        }
        if (rc_parse_addr(buf, (size_t)n, to) != 0) {
            return -1;
        }
    } else if (rc_parse_addr(err + i, len - i, to) != 0) {
        return -1;
    }
    *slot = s;
    return 0;
}
