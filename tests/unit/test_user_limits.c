/*
 * test_user_limits.c - per-user limits (broker/core/user_limits.h): a
 * connection count per user with max_connections_per_user, entries freed
 * with their last connection, many users (the shards grow), one pair of
 * token buckets shared by all of a user's connections, loop clocks that
 * differ between workers, and several threads counting one user at once
 * (run it under the TSan build as well).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "core/user_limits.h"

#include <cmocka.h>

#define U(s) ((wsb_str_t){(s), sizeof(s) - 1})

static void test_count_and_limit(void **state)
{
    (void)state;
    user_limits_t *t = user_limits_new(2, false);
    user_entry_t *a1 = user_limits_acquire(t, U("alice"));
    user_entry_t *a2 = user_limits_acquire(t, U("alice"));
    assert_non_null(a1);
    assert_ptr_equal(a1, a2);                              /* one entry per user */
    assert_null(user_limits_acquire(t, U("alice")));       /* the third is refused ... */
    assert_int_equal(user_limits_count(t, U("alice")), 2); /* ... and not counted */
    user_entry_t *b = user_limits_acquire(t, U("bob"));    /* others are not affected */
    assert_non_null(b);
    assert_int_equal(user_limits_count(t, U("alicE")), 0); /* names are exact */
    user_limits_release(t, a1);
    assert_int_equal(user_limits_count(t, U("alice")), 1);
    a1 = user_limits_acquire(t, U("alice")); /* a closed connection frees its place */
    assert_non_null(a1);
    user_limits_release(t, a1);
    user_limits_release(t, a2);
    assert_int_equal(user_limits_count(t, U("alice")), 0);
    user_limits_release(t, b);
    user_limits_free(t);
}

static void test_unlimited_and_many_users(void **state)
{
    (void)state;
    user_limits_t *t = user_limits_new(0, true);
    assert_true(user_limits_per_user_rate(t));
    enum { N = 5000 };
    static user_entry_t *e[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "user-%d", i);
        e[i] = user_limits_acquire(t, (wsb_str_t){name, (size_t)n});
        assert_non_null(e[i]);
    }
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "user-%d", i);
        assert_int_equal(user_limits_count(t, (wsb_str_t){name, (size_t)n}), 1);
    }
    for (int i = 0; i < N; i += 2) {
        user_limits_release(t, e[i]);
    }
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "user-%d", i);
        assert_int_equal(user_limits_count(t, (wsb_str_t){name, (size_t)n}), i % 2);
    }
    for (int i = 1; i < N; i += 2) {
        user_limits_release(t, e[i]);
    }
    user_limits_free(t); /* ASan: nothing left behind */
}

static void test_connections_of_a_user_share_one_bucket(void **state)
{
    (void)state;
    user_limits_t *t = user_limits_new(0, true);
    user_entry_t *c1 = user_limits_acquire(t, U("alice"));
    user_entry_t *c2 = user_limits_acquire(t, U("alice"));
    user_entry_t *bob = user_limits_acquire(t, U("bob"));
    /* 1 message/s, burst 3: three messages over both connections, then none. */
    uint64_t now = 1000;
    assert_true(user_limits_take(t, c1, 1, 3, 0, 0, 10, now));
    assert_true(user_limits_take(t, c2, 1, 3, 0, 0, 10, now));
    assert_true(user_limits_take(t, c1, 1, 3, 0, 0, 10, now));
    assert_false(user_limits_take(t, c2, 1, 3, 0, 0, 10, now));
    assert_false(user_limits_take(t, c1, 1, 3, 0, 0, 10, now));
    assert_true(user_limits_take(t, bob, 1, 3, 0, 0, 10, now)); /* bob has his own */
    /* Another worker's clock a little behind refills nothing ... */
    assert_false(user_limits_take(t, c2, 1, 3, 0, 0, 10, now - 40));
    /* ... and one second later there is one message more. */
    assert_true(user_limits_take(t, c1, 1, 3, 0, 0, 10, now + 1000));
    assert_false(user_limits_take(t, c2, 1, 3, 0, 0, 10, now + 1000));
    /* Bytes: 100/s, burst 100. */
    user_entry_t *d = user_limits_acquire(t, U("dave"));
    assert_true(user_limits_take(t, d, 0, 0, 100, 100, 60, now));
    assert_false(user_limits_take(t, d, 0, 0, 100, 100, 60, now));
    assert_true(user_limits_take(t, d, 0, 0, 100, 100, 40, now));
    user_limits_release(t, d);
    user_limits_release(t, c1);
    user_limits_release(t, c2);
    user_limits_release(t, bob);
    user_limits_free(t);
}

/* Workers on several threads open and close connections of one user: the
 * count never passes the limit and ends at 0. */
enum { THREADS = 4, ROUNDS = 20000, LIMIT = 3 };

typedef struct {
    user_limits_t *t;
    int granted;
} worker_arg_t;

static void *churn(void *p)
{
    worker_arg_t *a = p;
    for (int i = 0; i < ROUNDS; i++) {
        user_entry_t *e = user_limits_acquire(a->t, U("shared"));
        if (e != NULL) {
            a->granted++;
            uint32_t n = user_limits_count(a->t, U("shared"));
            if (n > LIMIT) {
                return NULL; /* checked below: granted stays short */
            }
            (void)user_limits_take(a->t, e, 1000, 1000, 0, 0, 1, (uint64_t)i + 1);
            user_limits_release(a->t, e);
        }
    }
    return p;
}

static void test_threads_never_pass_the_limit(void **state)
{
    (void)state;
    user_limits_t *t = user_limits_new(LIMIT, true);
    pthread_t th[THREADS];
    worker_arg_t args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg_t){t, 0};
        assert_int_equal(pthread_create(&th[i], NULL, churn, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret = NULL;
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_ptr_equal(ret, &args[i]); /* never saw more than LIMIT */
        assert_true(args[i].granted > 0);
    }
    assert_int_equal(user_limits_count(t, U("shared")), 0);
    user_limits_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_and_limit),
        cmocka_unit_test(test_unlimited_and_many_users),
        cmocka_unit_test(test_connections_of_a_user_share_one_bucket),
        cmocka_unit_test(test_threads_never_pass_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
