/* hist.c - log-linear histogram (see hist.h). The layout is HdrHistogram's:
 * bucket b holds values in [2^(b+10), 2^(b+11)) with a resolution of 2^b,
 * and bucket 0 also holds [0, 1024) at resolution 1, so the first half of
 * every bucket above 0 is never used and is not stored. */
#include "hist.h"

#include <string.h>

void hist_init(hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static uint32_t bucket_of(uint64_t value)
{
    /* Position of the highest set bit, with every value below 2048 in bucket 0. */
    uint64_t v = value | ((UINT64_C(1) << HIST_SUB_BITS) - 1);
    return (uint32_t)(64 - __builtin_clzll(v)) - HIST_SUB_BITS;
}

uint32_t hist_index(uint64_t value)
{
    if (value > HIST_MAX) {
        value = HIST_MAX;
    }
    uint32_t bucket = bucket_of(value);
    uint32_t sub = (uint32_t)(value >> bucket); /* in [HALF, 2*HALF) unless bucket 0 */
    return ((bucket + 1) << (HIST_SUB_BITS - 1)) + sub - HIST_HALF;
}

uint64_t hist_lowest_at(uint32_t index)
{
    uint32_t bucket = index >> (HIST_SUB_BITS - 1);
    uint32_t sub = (index & (HIST_HALF - 1)) + HIST_HALF;
    if (bucket == 0) {
        return index; /* bucket 0's first half: [0, 1024) at resolution 1 */
    }
    bucket -= 1;
    return (uint64_t)sub << bucket;
}

uint64_t hist_highest_at(uint32_t index)
{
    uint32_t bucket = index >> (HIST_SUB_BITS - 1);
    uint32_t shift = bucket > 0 ? bucket - 1 : 0;
    return hist_lowest_at(index) + (UINT64_C(1) << shift) - 1;
}

void hist_record(hist_t *h, uint64_t value)
{
    if (value > HIST_MAX) {
        value = HIST_MAX;
        h->overflow++;
    }
    h->counts[hist_index(value)]++;
    h->total++;
    h->sum += (double)value;
    if (value < h->min) {
        h->min = value;
    }
    if (value > h->max) {
        h->max = value;
    }
}

void hist_merge(hist_t *dst, const hist_t *src)
{
    for (uint32_t i = 0; i < HIST_COUNTS; i++) {
        dst->counts[i] += src->counts[i];
    }
    dst->total += src->total;
    dst->overflow += src->overflow;
    dst->sum += src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

uint64_t hist_percentile(const hist_t *h, double p)
{
    if (h->total == 0) {
        return 0;
    }
    if (p <= 0.0) {
        return h->min;
    }
    if (p >= 100.0) {
        return h->max;
    }
    /* The rank of the sample at p: ceil(p% of total), at least 1. The small
     * epsilon keeps 50% of 1000 at rank 500 despite binary rounding. */
    double exact = p / 100.0 * (double)h->total;
    uint64_t rank = (uint64_t)(exact - 1e-9);
    if ((double)rank < exact - 1e-9) {
        rank++;
    }
    if (rank == 0) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_COUNTS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_highest_at(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

double hist_mean(const hist_t *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}
