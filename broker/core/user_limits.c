/* user_limits.c - per-user connection counts and shared rate buckets (see user_limits.h). */
#include "core/user_limits.h"

#include "core/auth.h"
#include "shared/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct user_entry_s {
    user_entry_t *next; /* in its shard's bucket chain */
    uint32_t hash;
    uint32_t conns;
    bucket_t msgs;
    bucket_t bytes;
    size_t len;
    char name[]; /* not NUL-terminated */
};

typedef struct {
    pthread_mutex_t lock;
    user_entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t used;
} user_shard_t;

struct user_limits_s {
    uint32_t max_conns;
    bool per_user_rate;
    user_shard_t shards[USER_LIMITS_SHARDS];
};

static uint32_t hash_name(wsb_str_t s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < s.len; i++) {
        h = (h ^ (uint8_t)s.p[i]) * 16777619u;
    }
    return h;
}

static user_shard_t *shard_of(user_limits_t *t, uint32_t hash)
{
    /* The low bits pick the bucket inside a shard: the shard takes high ones. */
    return &t->shards[(hash >> 26) % USER_LIMITS_SHARDS];
}

user_limits_t *user_limits_new(uint32_t max_conns, bool per_user_rate)
{
    user_limits_t *t = xcalloc(1, sizeof(*t));
    t->max_conns = max_conns;
    t->per_user_rate = per_user_rate;
    for (size_t i = 0; i < USER_LIMITS_SHARDS; i++) {
        pthread_mutex_init(&t->shards[i].lock, NULL);
        t->shards[i].nbuckets = 16;
        t->shards[i].buckets = xcalloc(16, sizeof(user_entry_t *));
    }
    return t;
}

void user_limits_free(user_limits_t *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < USER_LIMITS_SHARDS; i++) {
        user_shard_t *sh = &t->shards[i];
        for (size_t b = 0; b < sh->nbuckets; b++) {
            while (sh->buckets[b] != NULL) {
                user_entry_t *e = sh->buckets[b];
                sh->buckets[b] = e->next;
                free(e);
            }
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->lock);
    }
    free(t);
}

static user_entry_t **slot_of(user_shard_t *sh, wsb_str_t user, uint32_t hash)
{
    user_entry_t **p = &sh->buckets[hash & (sh->nbuckets - 1)];
    while (*p != NULL && !((*p)->hash == hash && (*p)->len == user.len &&
                           memcmp((*p)->name, user.p, user.len) == 0)) {
        p = &(*p)->next;
    }
    return p;
}

/* Doubles a shard's bucket array once it holds as many entries as buckets. */
static void grow(user_shard_t *sh)
{
    size_t n = sh->nbuckets * 2;
    user_entry_t **nb = xcalloc(n, sizeof(user_entry_t *));
    for (size_t b = 0; b < sh->nbuckets; b++) {
        while (sh->buckets[b] != NULL) {
            user_entry_t *e = sh->buckets[b];
            sh->buckets[b] = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    }
    free(sh->buckets);
    sh->buckets = nb;
    sh->nbuckets = n;
}

user_entry_t *user_limits_acquire(user_limits_t *t, wsb_str_t user)
{
    uint32_t hash = hash_name(user);
    user_shard_t *sh = shard_of(t, hash);
    pthread_mutex_lock(&sh->lock);
    user_entry_t **p = slot_of(sh, user, hash);
    user_entry_t *e = *p;
    if (e == NULL) {
        if (sh->used >= sh->nbuckets) {
            grow(sh);
            p = slot_of(sh, user, hash);
        }
        e = xcalloc(1, sizeof(*e) + user.len);
        e->hash = hash;
        e->len = user.len;
        memcpy(e->name, user.p, user.len);
        *p = e;
        sh->used++;
    } else if (t->max_conns != 0 && e->conns >= t->max_conns) {
        pthread_mutex_unlock(&sh->lock);
        return NULL;
    }
    e->conns++;
    pthread_mutex_unlock(&sh->lock);
    return e;
}

void user_limits_release(user_limits_t *t, user_entry_t *e)
{
    user_shard_t *sh = shard_of(t, e->hash);
    pthread_mutex_lock(&sh->lock);
    if (--e->conns == 0) {
        user_entry_t **p = slot_of(sh, (wsb_str_t){e->name, e->len}, e->hash);
        *p = e->next;
        sh->used--;
        free(e);
    }
    pthread_mutex_unlock(&sh->lock);
}

bool user_limits_per_user_rate(const user_limits_t *t)
{
    return t->per_user_rate;
}

uint32_t user_limits_count(user_limits_t *t, wsb_str_t user)
{
    uint32_t hash = hash_name(user);
    user_shard_t *sh = shard_of(t, hash);
    pthread_mutex_lock(&sh->lock);
    user_entry_t *e = *slot_of(sh, user, hash);
    uint32_t n = e != NULL ? e->conns : 0;
    pthread_mutex_unlock(&sh->lock);
    return n;
}

bool user_limits_take(user_limits_t *t, user_entry_t *e, double msg_rate, double msg_burst,
                      double byte_rate, double byte_burst, size_t len, uint64_t now_ms)
{
    user_shard_t *sh = shard_of(t, e->hash);
    pthread_mutex_lock(&sh->lock);
    /* Workers' loop clocks differ by up to a loop turn: never move a
     * bucket's clock backwards (that would refill it twice). */
    uint64_t now = now_ms > e->msgs.last_ms ? now_ms : e->msgs.last_ms;
    uint64_t bnow = now_ms > e->bytes.last_ms ? now_ms : e->bytes.last_ms;
    bool ok = bucket_take(&e->msgs, msg_rate, msg_burst, 1.0, now) &&
              bucket_take(&e->bytes, byte_rate, byte_burst, (double)len, bnow);
    pthread_mutex_unlock(&sh->lock);
    return ok;
}
