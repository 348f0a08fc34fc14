/*
 * interest.h - a worker's summary of what its subscribers want, readable by
 * every other worker: a counting Bloom filter over the exact topics of its
 * trie and a count of its wildcard patterns. A publisher consults it to keep
 * a message off the inbox (and the wake-up) of a worker that cannot have a
 * subscriber for it (router.h).
 *
 * No false negatives: a worker with an exact subscription to T, or with any
 * pattern, always answers "may want". False positives (two topics sharing
 * both counters) only cost what every message cost before: a push and a
 * trie walk that finds nothing.
 *
 * Threads: the owner worker adds and removes; any thread tests. Counters are
 * atomic; interest_add happens before the subscription is acknowledged (and,
 * for a switch-over, under the topic's shard or stream lock, which the
 * publisher holds while it tests), so a publish ordered after the subscribe
 * sees it (router.h, "Guarantees").
 *
 * A zeroed interest_t (never initialised) is "wants everything": the tests'
 * hand-built workers and any worker without a summary behave as before.
 */
#ifndef WSB_BROKER_INTEREST_H
#define WSB_BROKER_INTEREST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Counters per worker (a power of two): 64 KiB per worker; about 1 % false
 * positives at 1,000 exact topics on a worker, 8 % at 4,000. */
#define INTEREST_SLOTS 16384u

typedef struct {
    _Atomic uint32_t n[INTEREST_SLOTS];
} interest_counts_t;

typedef struct {
    interest_counts_t *counts; /* NULL: no summary, wants everything */
    _Atomic uint32_t patterns; /* wildcard subscriptions: they may match any topic */
} interest_t;

/* Allocates the counters (aborts on OOM); interest_free releases them. */
void interest_init(interest_t *in);
void interest_free(interest_t *in);

/* The hash interest_may_want takes: computed once per publish, tested
 * against every worker. */
uint64_t interest_hash(const char *topic, size_t len);

/* One more (delta +1) or one fewer (-1) subscription to `pattern` (exact or
 * wildcard). Owner thread; a pair of calls per trie_insert/trie_remove. */
void interest_change(interest_t *in, const char *pattern, size_t len, int delta);

/* False only when no subscription of the worker can match the topic of
 * hash `h`. Any thread. */
static inline bool interest_may_want(interest_t *in, uint64_t h)
{
    if (in->counts == NULL || atomic_load_explicit(&in->patterns, memory_order_acquire) != 0) {
        return true;
    }
    uint32_t a = (uint32_t)h & (INTEREST_SLOTS - 1);
    uint32_t b = (uint32_t)(h >> 32) & (INTEREST_SLOTS - 1);
    return atomic_load_explicit(&in->counts->n[a], memory_order_acquire) != 0 &&
           atomic_load_explicit(&in->counts->n[b], memory_order_acquire) != 0;
}

#endif
