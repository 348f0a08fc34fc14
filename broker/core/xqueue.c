/* xqueue.c - bounded MPSC queue (see xqueue.h). */
#include "core/xqueue.h"

#include "shared/util.h"

#include <stdint.h>
#include <stdlib.h>

void xqueue_init(xqueue_t *q, size_t capacity)
{
    size_t cap = 2;
    while (cap < capacity) {
        cap *= 2;
    }
    q->cells = xmalloc(sizeof(xqueue_cell_t) * cap);
    q->mask = cap - 1;
    for (size_t i = 0; i < cap; i++) {
        atomic_init(&q->cells[i].seq, i);
        q->cells[i].data = NULL;
    }
    atomic_init(&q->enqueue_pos, 0);
    atomic_init(&q->dequeue_pos, 0);
}

void xqueue_destroy(xqueue_t *q)
{
    free(q->cells);
    q->cells = NULL;
}

bool xqueue_push(xqueue_t *q, void *item)
{
    size_t pos = atomic_load_explicit(&q->enqueue_pos, memory_order_relaxed);
    xqueue_cell_t *cell;
    for (;;) {
        cell = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            /* The cell is free for this position: claim the position. */
            if (atomic_compare_exchange_weak_explicit(&q->enqueue_pos, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                break;
            }
        } else if (dif < 0) {
            return false; /* the consumer has not freed this cell yet: full */
        } else {
            pos = atomic_load_explicit(&q->enqueue_pos, memory_order_relaxed);
        }
    }
    cell->data = item;
    atomic_store_explicit(&cell->seq, pos + 1, memory_order_release);
    return true;
}

size_t xqueue_depth(xqueue_t *q)
{
    size_t deq = atomic_load_explicit(&q->dequeue_pos, memory_order_relaxed);
    size_t enq = atomic_load_explicit(&q->enqueue_pos, memory_order_relaxed);
    return enq > deq ? enq - deq : 0;
}

void *xqueue_pop(xqueue_t *q)
{
    size_t pos = atomic_load_explicit(&q->dequeue_pos, memory_order_relaxed);
    xqueue_cell_t *cell = &q->cells[pos & q->mask];
    size_t seq = atomic_load_explicit(&cell->seq, memory_order_acquire);
    if (seq != pos + 1) {
        return NULL; /* empty, or a producer has claimed but not yet filled it */
    }
    void *item = cell->data;
    atomic_store_explicit(&q->dequeue_pos, pos + 1, memory_order_relaxed);
    atomic_store_explicit(&cell->seq, pos + q->mask + 1, memory_order_release);
    return item;
}
