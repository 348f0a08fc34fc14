/*
 * xqueue.h - a bounded multi-producer, single-consumer queue of pointers
 * (Dmitry Vyukov's array queue with a sequence number per cell): lock-free,
 * no allocation after init, FIFO per producer.
 *
 * Each worker owns one as its inbox: any thread may push, only the owner
 * pops. A full queue makes push fail at once (the caller counts a drop); it
 * never blocks and never grows.
 */
#ifndef WSB_BROKER_XQUEUE_H
#define WSB_BROKER_XQUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    _Atomic size_t seq;
    void *data;
} xqueue_cell_t;

/* The padding is the point: producers' and the consumer's positions live on
 * separate cache lines. */
typedef struct { // NOLINT(clang-analyzer-optin.performance.Padding)
    xqueue_cell_t *cells;
    size_t mask;
    _Alignas(64) _Atomic size_t enqueue_pos;
    _Alignas(64) _Atomic size_t dequeue_pos;
} xqueue_t;

/* Capacity is rounded up to a power of two (at least 2). Aborts on OOM. */
void xqueue_init(xqueue_t *q, size_t capacity);
void xqueue_destroy(xqueue_t *q);

/* Any thread. Returns false when the queue is full. */
bool xqueue_push(xqueue_t *q, void *item);

/* Owner thread only. Returns NULL when empty. */
void *xqueue_pop(xqueue_t *q);

/* Items queued now (approximate while producers push). Any thread. */
size_t xqueue_depth(xqueue_t *q);

/* Positions: items ever claimed by producers / ever popped. Any thread. */
static inline size_t xqueue_enqueued(xqueue_t *q)
{
    return atomic_load_explicit(&q->enqueue_pos, memory_order_acquire);
}

static inline size_t xqueue_dequeued(xqueue_t *q)
{
    return atomic_load_explicit(&q->dequeue_pos, memory_order_relaxed);
}

static inline size_t xqueue_capacity(const xqueue_t *q)
{
    return q->mask + 1;
}

#endif
