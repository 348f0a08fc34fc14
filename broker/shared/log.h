/*
 * log.h - structured logging, one logfmt line per event on stderr:
 *   ts=2026-11-28T20:06:26.123Z level=info msg=listening addr=127.0.0.1:8080
 *
 * Callers pass the message and then key/value pairs already formatted as
 * logfmt fields: log_info("listening", "addr=%s", addr). Values containing
 * spaces, quotes or '=' must be quoted by the caller with log_quote() (it
 * returns a pointer to one of a few rotating thread-local buffers, so several
 * may be used in one call). The msg itself is quoted automatically if needed.
 * Never log per message at info level: the hot path logs only at debug, and
 * debug is checked with log_enabled() before formatting anything.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef WSB_BROKER_LOG_H
#define WSB_BROKER_LOG_H

#include <stdbool.h>

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level_t;

/* Parses "error", "warn", "info", "debug". Returns 0 or -1 when unknown. */
int log_parse_level(const char *name, log_level_t *out);
void log_set_level(log_level_t level);
bool log_enabled(log_level_t level);

#if defined(__GNUC__)
#define WSB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define WSB_PRINTF(a, b)
#endif

/* Writes one line if `level` is enabled; `fields_fmt` may be NULL or "". */
void log_write(log_level_t level, const char *msg, const char *fields_fmt, ...) WSB_PRINTF(3, 4);

#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...)                                                                        \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_write(LOG_DEBUG, msg, __VA_ARGS__);                                                \
    } while (0)

/* Returns `s` quoted for logfmt when it needs quoting ("a b" -> "\"a b\""),
 * else `s` itself. The result lives in a rotating thread-local buffer. */
const char *log_quote(const char *s);

#endif
