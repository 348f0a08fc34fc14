/* interest.c - a worker's subscription summary for publishers (see interest.h). */
#include "core/interest.h"

#include "shared/util.h"
#include "wsb/topic.h"

#include <stdlib.h>

void interest_init(interest_t *in)
{
    in->counts = xcalloc(1, sizeof(*in->counts));
    atomic_init(&in->patterns, 0);
}

void interest_free(interest_t *in)
{
    free(in->counts); /* the workers are gone: nobody reads it any more */
    in->counts = NULL;
}

uint64_t interest_hash(const char *topic, size_t len)
{
    /* FNV-1a, then a final mix so both halves (the two counters) depend on
     * every byte. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)topic[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void interest_change(interest_t *in, const char *pattern, size_t len, int delta)
{
    if (in->counts == NULL) {
        return;
    }
    if (wsb_topic_is_pattern(pattern, len)) {
        if (delta > 0) {
            atomic_fetch_add_explicit(&in->patterns, 1, memory_order_seq_cst);
        } else {
            atomic_fetch_sub_explicit(&in->patterns, 1, memory_order_seq_cst);
        }
        return;
    }
    uint64_t h = interest_hash(pattern, len);
    uint32_t a = (uint32_t)h & (INTEREST_SLOTS - 1);
    uint32_t b = (uint32_t)(h >> 32) & (INTEREST_SLOTS - 1);
    if (delta > 0) {
        atomic_fetch_add_explicit(&in->counts->n[a], 1, memory_order_seq_cst);
        atomic_fetch_add_explicit(&in->counts->n[b], 1, memory_order_seq_cst);
    } else {
        atomic_fetch_sub_explicit(&in->counts->n[a], 1, memory_order_seq_cst);
        atomic_fetch_sub_explicit(&in->counts->n[b], 1, memory_order_seq_cst);
    }
}
