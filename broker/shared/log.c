/*
 * log.c - logfmt lines on stderr (see log.h for the contract).
 *
 * Each line is formatted into one buffer (on the stack, or on the heap when
 * it is long) and handed to a single write(2), so lines from several threads
 * never interleave within a line and no lock is needed. The level is an
 * atomic int read with relaxed ordering: a level change may take a moment to
 * reach other threads, which is fine for a filter.
 */
#include "shared/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int current_level = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_parse_level(const char *name, log_level_t *out)
{
    if (name == NULL) {
        return -1;
    }
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void log_set_level(log_level_t level)
{
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

bool log_enabled(log_level_t level)
{
    return (int)level <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

/* ---- log_quote ------------------------------------------------------------ */

/* A few buffers so that several quoted values fit in one log call; a value
 * longer than a buffer is cut and marked with "...". */
#define QUOTE_BUFS 4
#define QUOTE_CAP  1024

static _Thread_local char quote_bufs[QUOTE_BUFS][QUOTE_CAP];
static _Thread_local unsigned quote_next;

static bool needs_quote(const char *s)
{
    if (*s == '\0') {
        return true;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == 0x7f) {
            return true;
        }
    }
    return false;
}

/* Writes the escaped form of `c` (at most 6 bytes, no NUL) and returns its length. */
static size_t escape_byte(unsigned char c, char *out)
{
    static const char hex[] = "0123456789abcdef";
    char letter = 0;
    switch (c) {
    case '"':
    case '\\':
        letter = (char)c;
        break;
    case '\n':
        letter = 'n';
        break;
    case '\r':
        letter = 'r';
        break;
    case '\t':
        letter = 't';
        break;
    default:
        break;
    }
    if (letter != 0) {
        out[0] = '\\';
        out[1] = letter;
        return 2;
    }
    if (c < 0x20 || c == 0x7f) {
        out[0] = '\\';
        out[1] = 'u';
        out[2] = '0';
        out[3] = '0';
        out[4] = hex[c >> 4];
        out[5] = hex[c & 0xf];
        return 6;
    }
    out[0] = (char)c;
    return 1;
}

const char *log_quote(const char *s)
{
    if (s == NULL) {
        s = "";
    }
    if (!needs_quote(s)) {
        return s;
    }
    char *out = quote_bufs[quote_next++ % QUOTE_BUFS];
    /* Past `limit` there is still room for one escape (6), "..." (3), the
     * closing quote and the NUL. */
    const size_t limit = QUOTE_CAP - 11;
    size_t n = 0;
    out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (n > limit) {
            out[n++] = '.';
            out[n++] = '.';
            out[n++] = '.';
            break;
        }
        n += escape_byte(*p, out + n);
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

/* ---- log_write ------------------------------------------------------------ */

/* Formats the whole line, newline included, into buf (cut to cap - 1 bytes
 * plus NUL, like snprintf) and returns the full length it needs. */
static size_t format_line(char *buf, size_t cap, const char *head, const char *msg,
                          const char *fields_fmt, va_list ap) WSB_PRINTF(5, 0);

static size_t format_line(char *buf, size_t cap, const char *head, const char *msg,
                          const char *fields_fmt, va_list ap)
{
    int n = snprintf(buf, cap, "%s msg=%s", head, log_quote(msg));
    size_t len = n > 0 ? (size_t)n : 0;
    if (fields_fmt != NULL && fields_fmt[0] != '\0') {
        if (len + 1 < cap) {
            buf[len] = ' ';
            buf[len + 1] = '\0';
        }
        len++;
        int m = vsnprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, fields_fmt, ap);
        len += m > 0 ? (size_t)m : 0;
    }
    if (len + 1 < cap) {
        buf[len] = '\n';
        buf[len + 1] = '\0';
    }
    return len + 1;
}

static void write_all(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        p += w;
        len -= (size_t)w;
    }
}

void log_write(log_level_t level, const char *msg, const char *fields_fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    /* Logging from an error path must not change the errno being reported. */
    int saved_errno = errno;

    struct timespec now;
    struct tm tm;
    (void)clock_gettime(CLOCK_REALTIME, &now);
    (void)gmtime_r(&now.tv_sec, &tm);
    char head[96];
    (void)snprintf(head, sizeof head, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (int)(now.tv_nsec / 1000000), level_names[level]);

    char stack_buf[1024];
    va_list ap;
    va_start(ap, fields_fmt);
    size_t need = format_line(stack_buf, sizeof stack_buf, head, msg, fields_fmt, ap);
    va_end(ap);

    if (need < sizeof stack_buf) {
        write_all(stack_buf, need);
    } else {
        char *heap_buf = malloc(need + 1);
        if (heap_buf != NULL) {
            va_start(ap, fields_fmt);
            (void)format_line(heap_buf, need + 1, head, msg, fields_fmt, ap);
            va_end(ap);
            write_all(heap_buf, need);
            free(heap_buf);
        } else {
            /* Out of memory: the cut line still says what happened. */
            stack_buf[sizeof stack_buf - 2] = '\n';
            write_all(stack_buf, sizeof stack_buf - 1);
        }
    }
    errno = saved_errno;
}
