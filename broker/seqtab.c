/* seqtab.c - sharded per-topic sequence counters (see seqtab.h). */
#include "seqtab.h"

#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_MAX_TOPICS (SEQTAB_MAX_TOPICS / SEQTAB_SHARDS)

typedef struct topic_s {
    struct topic_s *hnext;
    struct topic_s *lru_prev, *lru_next; /* head = most recently published */
    uint64_t hash;
    uint64_t seq;
    uint16_t len;
    char name[]; /* not NUL-terminated */
} topic_t;

struct seqtab_shard_s {
    pthread_mutex_t lock;
    topic_t **buckets;
    size_t nbuckets; /* power of two */
    _Atomic size_t count;
    topic_t *lru_head, *lru_tail;
};

typedef struct seqtab_shard_s shard_t;

struct seqtab_s {
    shard_t shards[SEQTAB_SHARDS];
};

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

seqtab_t *seqtab_new(void)
{
    seqtab_t *t = xcalloc(1, sizeof(*t));
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        shard_t *s = &t->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nbuckets = 64;
        s->buckets = xcalloc(s->nbuckets, sizeof(topic_t *));
        atomic_init(&s->count, 0);
    }
    return t;
}

void seqtab_free(seqtab_t *t)
{
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        shard_t *s = &t->shards[i];
        topic_t *tp = s->lru_head;
        while (tp != NULL) {
            topic_t *next = tp->lru_next;
            free(tp);
            tp = next;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(t);
}

size_t seqtab_count(seqtab_t *t)
{
    size_t n = 0;
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        n += atomic_load_explicit(&t->shards[i].count, memory_order_relaxed);
    }
    return n;
}

static void lru_unlink(shard_t *s, topic_t *tp)
{
    if (tp->lru_prev) {
        tp->lru_prev->lru_next = tp->lru_next;
    } else {
        s->lru_head = tp->lru_next;
    }
    if (tp->lru_next) {
        tp->lru_next->lru_prev = tp->lru_prev;
    } else {
        s->lru_tail = tp->lru_prev;
    }
}

static void lru_push_front(shard_t *s, topic_t *tp)
{
    tp->lru_prev = NULL;
    tp->lru_next = s->lru_head;
    if (s->lru_head) {
        s->lru_head->lru_prev = tp;
    } else {
        s->lru_tail = tp;
    }
    s->lru_head = tp;
}

static void evict_oldest(shard_t *s)
{
    topic_t *tp = s->lru_tail;
    lru_unlink(s, tp);
    topic_t **pp = &s->buckets[tp->hash & (s->nbuckets - 1)];
    while (*pp != tp) {
        pp = &(*pp)->hnext;
    }
    *pp = tp->hnext;
    atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
    free(tp);
}

static void grow(shard_t *s)
{
    size_t n = s->nbuckets * 2;
    topic_t **b = xcalloc(n, sizeof(topic_t *));
    for (size_t i = 0; i < s->nbuckets; i++) {
        topic_t *tp = s->buckets[i];
        while (tp != NULL) {
            topic_t *next = tp->hnext;
            tp->hnext = b[tp->hash & (n - 1)];
            b[tp->hash & (n - 1)] = tp;
            tp = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

static topic_t *topic_get(shard_t *s, wsb_str_t name, uint64_t h)
{
    for (topic_t *tp = s->buckets[h & (s->nbuckets - 1)]; tp != NULL; tp = tp->hnext) {
        if (tp->hash == h && tp->len == name.len && memcmp(tp->name, name.p, name.len) == 0) {
            if (s->lru_head != tp) {
                lru_unlink(s, tp);
                lru_push_front(s, tp);
            }
            return tp;
        }
    }
    size_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
    if (count >= SHARD_MAX_TOPICS) {
        evict_oldest(s);
        count--;
    }
    if (count >= s->nbuckets) {
        grow(s);
    }
    topic_t *tp = xmalloc(sizeof(*tp) + name.len);
    tp->hash = h;
    tp->seq = 0;
    tp->len = (uint16_t)name.len;
    memcpy(tp->name, name.p, name.len);
    tp->hnext = s->buckets[h & (s->nbuckets - 1)];
    s->buckets[h & (s->nbuckets - 1)] = tp;
    lru_push_front(s, tp);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    return tp;
}

static shard_t *shard_of(seqtab_t *t, uint64_t h)
{
    return &t->shards[h % SEQTAB_SHARDS];
}

uint64_t seqtab_lock_next(seqtab_t *t, wsb_str_t topic, seqtab_shard_t **shard)
{
    uint64_t h = hash_bytes(topic.p, topic.len);
    shard_t *s = shard_of(t, h);
    pthread_mutex_lock(&s->lock);
    *shard = s;
    return ++topic_get(s, topic, h)->seq;
}

void seqtab_unlock(seqtab_shard_t *shard)
{
    pthread_mutex_unlock(&shard->lock);
}
