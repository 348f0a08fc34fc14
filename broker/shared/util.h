/*
 * util.h - allocation that aborts on OOM (the broker's rule: a broker that
 * cannot allocate a few bytes cannot serve anyone, so it stops loudly rather
 * than limping), and small helpers shared by broker modules.
 */
#ifndef WSB_BROKER_UTIL_H
#define WSB_BROKER_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The one out-of-memory exit: logs one line naming `what` (what could not
 * be allocated) to stderr and aborts. The x-allocators below call it; so does
 * every caller of an allocator that reports ENOMEM by returning NULL
 * (jansson, hiredis, the protocol library's builders). */
_Noreturn void wsb_oom(const char *what);

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);

/* Writes the valid topic `s` (`len` bytes) as the inside of a JSON string
 * and returns the bytes written (at most 2 * len). Topics hold no control
 * characters (topic grammar), so only '"' and '\\' need escaping; other
 * UTF-8 is valid JSON as it is. */
size_t topic_json_escape(char *out, const char *s, size_t len);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Fills `out` with `n` random bytes from OpenSSL's CSPRNG; aborts on failure. */
void random_bytes(void *out, size_t n);

/* Writes 2*n lowercase hex digits of `in` and a NUL into `out`. */
void hex_encode(const uint8_t *in, size_t n, char *out);

/* A growable byte string for building responses (not on the fan-out path). */
typedef struct sbuf_s {
    char *p;
    size_t len;
    size_t cap;
} sbuf_t;

void sbuf_init(sbuf_t *b);
void sbuf_free(sbuf_t *b);
void sbuf_append(sbuf_t *b, const void *data, size_t n);
void sbuf_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Formats an error message into `err` (`errlen` bytes, may be 0) and returns
 * -1, for parsers that report "what and where" to their caller. */
int err_printf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#endif
