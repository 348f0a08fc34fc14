/*
 * test_xqueue.c - the workers' inbox (broker/xqueue.h): a bounded
 * multi-producer, single-consumer queue. Bounded (a full queue refuses the
 * push at once, it never blocks or grows), FIFO per producer, and correct
 * with several producer threads racing one consumer (run it under the TSan
 * build as well).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above first. */
#include "core/xqueue.h"

#include <cmocka.h>

#define PRODUCERS    4
#define PER_PRODUCER 50000

/* Item v is the address of pool[v]: distinct, never NULL (what pop returns
 * on an empty queue), and its number comes back from the address. */
static char pool[PRODUCERS * PER_PRODUCER];

static void *item(uintptr_t v)
{
    assert_true(v < sizeof(pool));
    return &pool[v];
}

static uintptr_t value(void *p)
{
    return (uintptr_t)((char *)p - pool);
}

static void capacity_is_rounded_up_to_a_power_of_two(void **state)
{
    (void)state;
    const size_t asked[] = {0, 1, 2, 3, 5, 16, 17, 1000};
    const size_t got[] = {2, 2, 2, 4, 8, 16, 32, 1024};
    for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
        xqueue_t q;
        xqueue_init(&q, asked[i]);
        assert_int_equal(xqueue_capacity(&q), got[i]);
        assert_int_equal(xqueue_depth(&q), 0);
        xqueue_destroy(&q);
    }
}

static void empty_queue_pops_null(void **state)
{
    (void)state;
    xqueue_t q;
    xqueue_init(&q, 4);
    assert_null(xqueue_pop(&q));
    assert_true(xqueue_push(&q, item(7)));
    assert_int_equal(value(xqueue_pop(&q)), 7);
    assert_null(xqueue_pop(&q));
    assert_int_equal(xqueue_enqueued(&q), 1);
    assert_int_equal(xqueue_dequeued(&q), 1);
    xqueue_destroy(&q);
}

/* The bound: the push past capacity fails at once and changes nothing;
 * one pop makes room for exactly one more. */
static void full_queue_refuses_the_push(void **state)
{
    (void)state;
    xqueue_t q;
    xqueue_init(&q, 8);
    for (uintptr_t i = 0; i < 8; i++) {
        assert_true(xqueue_push(&q, item(i)));
    }
    assert_int_equal(xqueue_depth(&q), 8);
    assert_false(xqueue_push(&q, item(100)));
    assert_false(xqueue_push(&q, item(101)));
    assert_int_equal(xqueue_depth(&q), 8);
    assert_int_equal(xqueue_enqueued(&q), 8);

    assert_int_equal(value(xqueue_pop(&q)), 0);
    assert_true(xqueue_push(&q, item(8)));
    assert_false(xqueue_push(&q, item(102)));
    for (uintptr_t i = 1; i <= 8; i++) {
        assert_int_equal(value(xqueue_pop(&q)), i);
    }
    assert_null(xqueue_pop(&q));
    xqueue_destroy(&q);
}

/* Positions wrap around the cell array many times; order survives. */
static void fifo_across_many_wraparounds(void **state)
{
    (void)state;
    xqueue_t q;
    xqueue_init(&q, 4);
    uintptr_t next_in = 0, next_out = 0;
    for (int round = 0; round < 1000; round++) {
        /* A varying fill level: 1..4 items in, then all but one out. */
        int n = 1 + round % 4;
        for (int i = 0; i < n && xqueue_push(&q, item(next_in)); i++) {
            next_in++;
        }
        while (xqueue_depth(&q) > 1) {
            assert_int_equal(value(xqueue_pop(&q)), next_out++);
        }
    }
    void *p;
    while ((p = xqueue_pop(&q)) != NULL) {
        assert_int_equal(value(p), next_out++);
    }
    assert_int_equal(next_out, next_in);
    assert_true(next_in > 1000);
    xqueue_destroy(&q);
}

typedef struct {
    xqueue_t *q;
    uintptr_t id;
    size_t refused; /* pushes that found the queue full (then retried) */
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    for (uintptr_t i = 0; i < PER_PRODUCER; i++) {
        /* The broker counts a refused push as a drop; here the producer
         * retries so that the consumer can check every item. */
        while (!xqueue_push(p->q, item(p->id * PER_PRODUCER + i))) {
            p->refused++;
            sched_yield();
        }
    }
    return NULL;
}

/* Several threads push into a small queue while this thread pops: every item
 * arrives exactly once, each producer's items in the order it pushed them. */
static void producers_race_one_consumer(void **state)
{
    (void)state;
    xqueue_t q;
    xqueue_init(&q, 64);
    producer_t prod[PRODUCERS];
    pthread_t threads[PRODUCERS];
    for (uintptr_t i = 0; i < PRODUCERS; i++) {
        prod[i] = (producer_t){.q = &q, .id = i, .refused = 0};
        assert_int_equal(pthread_create(&threads[i], NULL, produce, &prod[i]), 0);
    }
    uintptr_t next[PRODUCERS] = {0};
    size_t received = 0;
    while (received < (size_t)PRODUCERS * PER_PRODUCER) {
        void *p = xqueue_pop(&q);
        if (p == NULL) {
            sched_yield();
            continue;
        }
        uintptr_t v = value(p);
        uintptr_t id = v / PER_PRODUCER;
        assert_true(id < PRODUCERS);
        assert_int_equal(v % PER_PRODUCER, next[id]);
        next[id]++;
        received++;
        assert_true(xqueue_depth(&q) <= xqueue_capacity(&q));
    }
    for (int i = 0; i < PRODUCERS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(next[i], PER_PRODUCER);
    }
    assert_null(xqueue_pop(&q));
    assert_int_equal(xqueue_enqueued(&q), (size_t)PRODUCERS * PER_PRODUCER);
    assert_int_equal(xqueue_dequeued(&q), (size_t)PRODUCERS * PER_PRODUCER);
    xqueue_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(capacity_is_rounded_up_to_a_power_of_two),
        cmocka_unit_test(empty_queue_pops_null),
        cmocka_unit_test(full_queue_refuses_the_push),
        cmocka_unit_test(fifo_across_many_wraparounds),
        cmocka_unit_test(producers_race_one_consumer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
