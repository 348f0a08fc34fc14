/*
 * hist.h - a log-linear latency histogram in the style of HdrHistogram, with
 * fixed memory and constant-time recording.
 *
 * Values (nanoseconds in wsbench, but any unit works) from 0 to HIST_MAX are
 * recorded with 3 significant decimal digits: values below 2048 exactly, and
 * every larger value in a bucket whose width is at most 1/1024 of the value.
 * Values above HIST_MAX are counted in the last bucket and in `overflow`, so
 * a sample is never lost, only clamped. The exact minimum, maximum and sum are
 * kept beside the buckets.
 *
 * Ownership: a hist_t is a plain struct (about 250 KiB, so give it a heap or
 * static home, not a thread's stack); it holds no pointers and needs no free.
 * One writer at a time: wsbench keeps one per thread and merges them at the end.
 */
#ifndef WSB_BENCH_HIST_H
#define WSB_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 11 /* 2048 sub-buckets: 3 significant digits */
#define HIST_MAX_BITS 40 /* largest tracked value is 2^40 - 1 (18 minutes in ns) */
#define HIST_MAX      ((UINT64_C(1) << HIST_MAX_BITS) - 1)
#define HIST_HALF     (1u << (HIST_SUB_BITS - 1))
#define HIST_BUCKETS  (HIST_MAX_BITS - HIST_SUB_BITS + 1)
#define HIST_COUNTS   ((HIST_BUCKETS + 1) * HIST_HALF)

typedef struct {
    uint64_t total;    /* samples recorded */
    uint64_t overflow; /* of which above HIST_MAX (recorded as HIST_MAX) */
    uint64_t min;      /* exact; UINT64_MAX while empty */
    uint64_t max;      /* exact (clamped to HIST_MAX); 0 while empty */
    double sum;        /* exact up to double precision, for the mean */
    uint64_t counts[HIST_COUNTS];
} hist_t;

/* Empties `h`. */
void hist_init(hist_t *h);

/* Records one value. */
void hist_record(hist_t *h, uint64_t value);

/* Adds every sample of `src` to `dst`. */
void hist_merge(hist_t *dst, const hist_t *src);

/*
 * The value at percentile `p` (0 to 100): the smallest recorded value v such
 * that at least p% of the samples are <= v, reported as the highest value of
 * v's bucket (so never below the true percentile, and at most 1/1024 above
 * it) but never above the exact maximum. p <= 0 gives the exact minimum;
 * p >= 100 the exact maximum. 0 for an empty histogram.
 */
uint64_t hist_percentile(const hist_t *h, double p);

/* The mean of the samples (0 when empty). */
double hist_mean(const hist_t *h);

/* The bucket index of a value and the lowest and highest value that share
 * it; exposed for the unit test. */
uint32_t hist_index(uint64_t value);
uint64_t hist_lowest_at(uint32_t index);
uint64_t hist_highest_at(uint32_t index);

#endif
