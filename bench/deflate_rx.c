/* deflate_rx.c - permessage-deflate for wsbench (see deflate_rx.h). */
#include "deflate_rx.h"

#include "wsb/ws_deflate.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_key_t inflater_key;
static pthread_once_t inflater_once = PTHREAD_ONCE_INIT;

static void inflater_destroy(void *z)
{
    wsb_pmd_inflater_free(z);
}

static void inflater_key_make(void)
{
    if (pthread_key_create(&inflater_key, inflater_destroy) != 0) {
        abort();
    }
}

static wsb_pmd_inflater_t *thread_inflater(void)
{
    (void)pthread_once(&inflater_once, inflater_key_make);
    wsb_pmd_inflater_t *z = pthread_getspecific(inflater_key);
    if (z == NULL) {
        z = wsb_pmd_inflater_new();
        if (z != NULL && pthread_setspecific(inflater_key, z) != 0) {
            wsb_pmd_inflater_free(z);
            z = NULL;
        }
    }
    return z;
}

bool deflate_rx_accepted(const char *head)
{
    return strstr(head, "permessage-deflate") != NULL;
}

bool deflate_rx_append(deflate_rx_t *z, const uint8_t *data, size_t len)
{
    if (len > UINT32_MAX - z->len) {
        return false;
    }
    if (z->len + len > z->cap) {
        size_t cap = z->cap ? z->cap : 1024;
        while (cap < z->len + len) {
            cap *= 2;
        }
        uint8_t *nb = realloc(z->buf, cap);
        if (nb == NULL) {
            return false;
        }
        z->buf = nb;
        z->cap = (uint32_t)cap;
    }
    memcpy(z->buf + z->len, data, len);
    z->len += (uint32_t)len;
    return true;
}

bool deflate_rx_finish(deflate_rx_t *z, uint8_t **out, size_t *out_len)
{
    wsb_pmd_inflater_t *inf = thread_inflater();
    bool ok = inf != NULL && wsb_pmd_inflate(inf, z->buf, z->len, 0, true, out, out_len) == 0;
    deflate_rx_free(z);
    return ok;
}

void deflate_rx_free(deflate_rx_t *z)
{
    free(z->buf);
    z->buf = NULL;
    z->len = 0;
    z->cap = 0;
}

void deflate_rx_fill_market(char *json, size_t len, uint64_t seed)
{
    static const char *const syms[] = {"AAPL", "MSFT", "GOOG", "AMZN",
                                       "NVDA", "TSLA", "META", "ORCL"};
    char *start = memchr(json, ';', len); /* the end of "t=<digits>;" */
    char *end = start != NULL ? memchr(start, '"', len - (size_t)(start - json)) : NULL;
    if (end == NULL) {
        return;
    }
    char *w = start + 1;
    uint64_t x = seed * 0x9E3779B97F4A7C15u + 1;
    while (w < end) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        char item[96];
        int n = snprintf(item, sizeof(item), "{sym:%s,bid:%u.%02u,ask:%u.%02u,vol:%u},",
                         syms[x % 8], (unsigned)(100 + (x >> 8) % 400), (unsigned)((x >> 20) % 100),
                         (unsigned)(100 + (x >> 8) % 400), (unsigned)((x >> 28) % 100),
                         (unsigned)((x >> 36) % 100000));
        size_t take = (size_t)n < (size_t)(end - w) ? (size_t)n : (size_t)(end - w);
        memcpy(w, item, take);
        w += take;
    }
}
