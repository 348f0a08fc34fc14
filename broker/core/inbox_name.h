/*
 * inbox_name.h - what names a request inbox (request.h): topics whose first
 * token is "_inbox". Only the broker subscribes to them, the fan-out and a
 * pattern's history replay give them to nobody else. Depends on nothing, so
 * that the history table (seqtab.c) can ask too.
 */
#ifndef WSB_BROKER_CORE_INBOX_NAME_H
#define WSB_BROKER_CORE_INBOX_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define INBOX_PREFIX     "_inbox."
#define INBOX_PREFIX_LEN (sizeof(INBOX_PREFIX) - 1)

/* True when the first token of the topic or pattern is "_inbox": "_inbox"
 * alone or "_inbox." followed by anything. */
static inline bool inbox_is(const char *topic, size_t len)
{
    size_t n = INBOX_PREFIX_LEN - 1;
    return len >= n && memcmp(topic, INBOX_PREFIX, n) == 0 && (len == n || topic[n] == '.');
}

#endif
