/* test_hist.c - the latency histogram: bucket layout, percentiles on known
 * data, merging, clamping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* cmocka.h needs the headers above first. */
#include "hist.h"

#include <cmocka.h>

static hist_t *new_hist(void)
{
    hist_t *h = malloc(sizeof(*h));
    assert_non_null(h);
    hist_init(h);
    return h;
}

/* |got - want| <= want / 1024, and never below want. */
static void assert_close(uint64_t got, uint64_t want)
{
    assert_true(got >= want);
    assert_true(got - want <= want / 1024);
}

static void test_empty(void **state)
{
    (void)state;
    hist_t *h = new_hist();
    assert_int_equal(hist_percentile(h, 50), 0);
    assert_int_equal(hist_percentile(h, 100), 0);
    assert_true(hist_mean(h) == 0.0);
    assert_int_equal(h->total, 0);
    free(h);
}

static void test_layout(void **state)
{
    (void)state;
    /* Below 2048 every value has its own bucket. */
    for (uint64_t v = 0; v < 2048; v++) {
        assert_int_equal(hist_lowest_at(hist_index(v)), v);
        assert_int_equal(hist_highest_at(hist_index(v)), v);
    }
    /* Above, each value lies in its bucket, and buckets are at most v/1024 wide. */
    uint64_t samples[] = {2048, 2049, 4095, 4096, 5000, 123456, 999999999, HIST_MAX - 1, HIST_MAX};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        uint64_t v = samples[i];
        uint32_t idx = hist_index(v);
        assert_true(idx < HIST_COUNTS);
        assert_true(hist_lowest_at(idx) <= v);
        assert_true(hist_highest_at(idx) >= v);
        assert_true(hist_highest_at(idx) - hist_lowest_at(idx) <= v / 1024);
    }
    /* Indexes grow with values: adjacent buckets do not overlap. */
    for (uint32_t i = 1; i < HIST_COUNTS; i++) {
        assert_int_equal(hist_lowest_at(i), hist_highest_at(i - 1) + 1);
    }
}

static void test_exact_small_values(void **state)
{
    (void)state;
    hist_t *h = new_hist();
    for (uint64_t v = 1; v <= 1000; v++) {
        hist_record(h, v);
    }
    assert_int_equal(h->total, 1000);
    assert_int_equal(hist_percentile(h, 0), 1);
    assert_int_equal(hist_percentile(h, 50), 500);
    assert_int_equal(hist_percentile(h, 90), 900);
    assert_int_equal(hist_percentile(h, 99), 990);
    assert_int_equal(hist_percentile(h, 99.9), 999);
    assert_int_equal(hist_percentile(h, 100), 1000);
    assert_true(hist_mean(h) == 500.5);
    free(h);
}

static void test_uniform_large_values(void **state)
{
    (void)state;
    hist_t *h = new_hist();
    /* 1..100000 microseconds in nanoseconds: percentiles within 0.1%. */
    for (uint64_t v = 1; v <= 100000; v++) {
        hist_record(h, v * 1000);
    }
    assert_close(hist_percentile(h, 50), 50000 * 1000ULL);
    assert_close(hist_percentile(h, 90), 90000 * 1000ULL);
    assert_close(hist_percentile(h, 99), 99000 * 1000ULL);
    assert_close(hist_percentile(h, 99.9), 99900 * 1000ULL);
    assert_close(hist_percentile(h, 99.99), 99990 * 1000ULL);
    assert_int_equal(hist_percentile(h, 100), 100000 * 1000ULL);
    assert_int_equal(h->min, 1000);
    assert_int_equal(h->max, 100000 * 1000ULL);
    free(h);
}

static void test_skewed(void **state)
{
    (void)state;
    hist_t *h = new_hist();
    /* 990 fast samples and 10 slow ones: p99 is still fast, p99.9 is slow. */
    for (int i = 0; i < 990; i++) {
        hist_record(h, 100000);
    }
    for (int i = 0; i < 10; i++) {
        hist_record(h, 50000000);
    }
    assert_close(hist_percentile(h, 50), 100000);
    assert_close(hist_percentile(h, 99), 100000);
    assert_close(hist_percentile(h, 99.1), 50000000);
    assert_close(hist_percentile(h, 99.9), 50000000);
    assert_int_equal(hist_percentile(h, 100), 50000000);
    free(h);
}

static void test_percentile_never_above_max(void **state)
{
    (void)state;
    hist_t *h = new_hist();
    hist_record(h, 5000); /* bucket [5000, 5003] */
    assert_int_equal(hist_percentile(h, 50), 5000);
    assert_int_equal(hist_percentile(h, 99.9), 5000);
    free(h);
}

static void test_merge(void **state)
{
    (void)state;
    hist_t *a = new_hist();
    hist_t *b = new_hist();
    hist_t *all = new_hist();
    for (uint64_t v = 1; v <= 2000; v++) {
        hist_record(v % 2 ? a : b, v);
        hist_record(all, v);
    }
    hist_merge(a, b);
    assert_int_equal(a->total, all->total);
    assert_int_equal(a->min, 1);
    assert_int_equal(a->max, 2000);
    assert_true(hist_mean(a) == hist_mean(all));
    for (int i = 0; i < 14; i++) {
        double p = 1 + 7.5 * i;
        assert_int_equal(hist_percentile(a, p), hist_percentile(all, p));
    }
    free(a);
    free(b);
    free(all);
}

static void test_overflow_clamps(void **state)
{
    (void)state;
    hist_t *h = new_hist();
    hist_record(h, 10);
    hist_record(h, UINT64_MAX);
    assert_int_equal(h->total, 2);
    assert_int_equal(h->overflow, 1);
    assert_int_equal(h->max, HIST_MAX);
    assert_int_equal(hist_percentile(h, 100), HIST_MAX);
    assert_int_equal(hist_percentile(h, 50), 10);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_exact_small_values),
        cmocka_unit_test(test_uniform_large_values),
        cmocka_unit_test(test_skewed),
        cmocka_unit_test(test_percentile_never_above_max),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_overflow_clamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
