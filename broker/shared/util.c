/* util.c - aborting allocators and small helpers. */
#include "shared/util.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wsb_oom(const char *what)
{
    (void)fprintf(stderr, "level=error msg=\"out of memory\" what=\"%s\"\n", what);
    abort();
}

static _Noreturn void oom(size_t n)
{
    char what[40];
    (void)snprintf(what, sizeof what, "%zu bytes", n);
    wsb_oom(what);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        oom(n);
    }
    return q;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

void random_bytes(void *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1) {
        /* Not memory: no entropy source; nothing random can be made safely. */
        (void)fprintf(stderr, "level=error msg=\"RAND_bytes failed\"\n");
        abort();
    }
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

void sbuf_init(sbuf_t *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

void sbuf_free(sbuf_t *b)
{
    free(b->p);
    sbuf_init(b);
}

static void sbuf_reserve(sbuf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) {
        return;
    }
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra + 1) {
        ncap *= 2;
    }
    b->p = xrealloc(b->p, ncap);
    b->cap = ncap;
}

void sbuf_append(sbuf_t *b, const void *data, size_t n)
{
    sbuf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sbuf_printf(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    sbuf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    (void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t topic_json_escape(char *out, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            out[n++] = '\\';
        }
        out[n++] = s[i];
    }
    return n;
}

int err_printf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
