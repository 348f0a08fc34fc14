/* seqtab.c - sharded per-topic sequence counters and history (see seqtab.h). */
#include "seqtab.h"

#include "util.h"
#include "xmsg.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_MAX_TOPICS (SEQTAB_MAX_TOPICS / SEQTAB_SHARDS)

/* What a topic with history has on top of its seq. */
typedef struct {
    struct topic_s *prev, *next; /* the shard's history LRU list, head = most recent */
    history_ring_t ring;
    int rule;
    char epoch[SEQTAB_EPOCH_LEN + 1];
} topic_hist_t;

typedef struct topic_s {
    struct topic_s *hnext;
    struct topic_s *lru_prev, *lru_next; /* head = most recently published */
    uint64_t hash;
    uint64_t seq;
    topic_hist_t *hist; /* NULL: no history rule matches */
    uint16_t len;
    char name[]; /* not NUL-terminated */
} topic_t;

struct seqtab_shard_s {
    pthread_mutex_t lock;
    topic_t **buckets;
    size_t nbuckets; /* power of two */
    _Atomic size_t count;
    topic_t *lru_head, *lru_tail;
    topic_t *hist_head, *hist_tail;
    size_t hist_count;
    topic_t *cur; /* the topic of the last lock call, valid while locked */
};

typedef struct seqtab_shard_s shard_t;

typedef struct {
    _Atomic int64_t topics;
    _Atomic int64_t messages;
    _Atomic int64_t bytes;
} rule_stats_t;

struct seqtab_s {
    shard_t shards[SEQTAB_SHARDS];
    const history_rules_t *rules;
    size_t hist_max_per_shard;
    _Atomic uint64_t epoch_state; /* splitmix64 counter for epochs */
    _Atomic uint64_t hist_evictions;
    rule_stats_t stats[HISTORY_MAX_RULES];
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

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f != NULL) {
        if (fread(&seed, sizeof seed, 1, f) != 1) {
            seed = 0;
        }
        (void)fclose(f);
    }
    /* Without /dev/urandom, time and address still differ between runs. */
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return seed ^ ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
           (uint64_t)(uintptr_t)&ts;
}

static void make_epoch(seqtab_t *t, char *out)
{
    uint64_t z =
        atomic_fetch_add_explicit(&t->epoch_state, 0x9e3779b97f4a7c15ULL, memory_order_relaxed) +
        0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SEQTAB_EPOCH_LEN; i++) {
        out[i] = hex[(z >> (4 * i)) & 0xf];
    }
    out[SEQTAB_EPOCH_LEN] = '\0';
}

seqtab_t *seqtab_new(const history_rules_t *rules, uint32_t max_history_topics)
{
    seqtab_t *t = xcalloc(1, sizeof(*t));
    t->rules = rules;
    t->hist_max_per_shard = max_history_topics / SEQTAB_SHARDS;
    if (t->hist_max_per_shard == 0) {
        t->hist_max_per_shard = 1;
    }
    atomic_init(&t->epoch_state, random_seed());
    atomic_init(&t->hist_evictions, 0);
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
            if (tp->hist != NULL) {
                history_ring_clear(&tp->hist->ring);
                free(tp->hist);
            }
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

/* Adds the change of a ring's size since (count0, bytes0) to its rule's gauges. */
static void account(seqtab_t *t, const topic_hist_t *h, uint32_t count0, size_t bytes0)
{
    rule_stats_t *st = &t->stats[h->rule];
    atomic_fetch_add_explicit(&st->messages, (int64_t)h->ring.count - (int64_t)count0,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&st->bytes, (int64_t)h->ring.bytes - (int64_t)bytes0,
                              memory_order_relaxed);
}

static void hist_unlink(shard_t *s, topic_t *tp)
{
    topic_hist_t *h = tp->hist;
    if (h->prev) {
        h->prev->hist->next = h->next;
    } else {
        s->hist_head = h->next;
    }
    if (h->next) {
        h->next->hist->prev = h->prev;
    } else {
        s->hist_tail = h->prev;
    }
}

static void hist_push_front(shard_t *s, topic_t *tp)
{
    topic_hist_t *h = tp->hist;
    h->prev = NULL;
    h->next = s->hist_head;
    if (s->hist_head) {
        s->hist_head->hist->prev = tp;
    } else {
        s->hist_tail = tp;
    }
    s->hist_head = tp;
}

static void topic_free(seqtab_t *t, shard_t *s, topic_t *tp)
{
    topic_hist_t *h = tp->hist;
    if (h != NULL) {
        uint32_t count0 = h->ring.count;
        size_t bytes0 = h->ring.bytes;
        history_ring_clear(&h->ring);
        account(t, h, count0, bytes0);
        atomic_fetch_sub_explicit(&t->stats[h->rule].topics, 1, memory_order_relaxed);
        hist_unlink(s, tp);
        s->hist_count--;
        free(h);
    }
    free(tp);
}

static void evict(seqtab_t *t, shard_t *s, topic_t *tp)
{
    lru_unlink(s, tp);
    topic_t **pp = &s->buckets[tp->hash & (s->nbuckets - 1)];
    while (*pp != tp) {
        pp = &(*pp)->hnext;
    }
    *pp = tp->hnext;
    atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
    topic_free(t, s, tp);
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

/* Finds `name`, or creates it when `create` is true or a history rule
 * matches it (rule: history_rules_match, computed by the caller when it may
 * create). NULL when absent and not created. */
static topic_t *topic_get(seqtab_t *t, shard_t *s, wsb_str_t name, uint64_t h, bool create)
{
    for (topic_t *tp = s->buckets[h & (s->nbuckets - 1)]; tp != NULL; tp = tp->hnext) {
        if (tp->hash == h && tp->len == name.len && memcmp(tp->name, name.p, name.len) == 0) {
            if (s->lru_head != tp) {
                lru_unlink(s, tp);
                lru_push_front(s, tp);
            }
            if (tp->hist != NULL && s->hist_head != tp) {
                hist_unlink(s, tp);
                hist_push_front(s, tp);
            }
            return tp;
        }
    }
    int rule = t->rules != NULL ? history_rules_match(t->rules, name) : -1;
    if (!create && rule < 0) {
        return NULL;
    }
    size_t count = atomic_load_explicit(&s->count, memory_order_relaxed);
    if (count >= SHARD_MAX_TOPICS) {
        evict(t, s, s->lru_tail);
        count--;
    }
    if (rule >= 0 && s->hist_count >= t->hist_max_per_shard) {
        evict(t, s, s->hist_tail);
        atomic_fetch_add_explicit(&t->hist_evictions, 1, memory_order_relaxed);
        count--;
    }
    if (count >= s->nbuckets) {
        grow(s);
    }
    topic_t *tp = xmalloc(sizeof(*tp) + name.len);
    tp->hash = h;
    tp->seq = 0;
    tp->hist = NULL;
    tp->len = (uint16_t)name.len;
    memcpy(tp->name, name.p, name.len);
    tp->hnext = s->buckets[h & (s->nbuckets - 1)];
    s->buckets[h & (s->nbuckets - 1)] = tp;
    lru_push_front(s, tp);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    if (rule >= 0) {
        topic_hist_t *hs = xcalloc(1, sizeof(*hs));
        hs->rule = rule;
        make_epoch(t, hs->epoch);
        history_ring_init(&hs->ring, t->rules->rules[rule].size);
        tp->hist = hs;
        hist_push_front(s, tp);
        s->hist_count++;
        atomic_fetch_add_explicit(&t->stats[rule].topics, 1, memory_order_relaxed);
    }
    return tp;
}

static shard_t *shard_of(seqtab_t *t, uint64_t h)
{
    return &t->shards[h % SEQTAB_SHARDS];
}

static void fill_pos(const topic_t *tp, seqtab_pos_t *pos)
{
    if (pos == NULL) {
        return;
    }
    pos->seq = tp != NULL ? tp->seq : 0;
    if (tp != NULL && tp->hist != NULL) {
        pos->rule = tp->hist->rule;
        memcpy(pos->epoch, tp->hist->epoch, sizeof pos->epoch);
    } else {
        pos->rule = -1;
        pos->epoch[0] = '\0';
    }
}

/* Drops what the topic's rule says is too old. */
static void expire_topic(seqtab_t *t, topic_t *tp, uint64_t now_ms)
{
    topic_hist_t *h = tp->hist;
    uint64_t ttl = t->rules->rules[h->rule].ttl_ms;
    if (ttl == 0) {
        return;
    }
    uint32_t count0 = h->ring.count;
    size_t bytes0 = h->ring.bytes;
    if (history_ring_expire(&h->ring, ttl, now_ms) > 0) {
        account(t, h, count0, bytes0);
    }
}

uint64_t seqtab_lock_next(seqtab_t *t, wsb_str_t topic, seqtab_shard_t **shard, seqtab_pos_t *pos)
{
    uint64_t h = hash_bytes(topic.p, topic.len);
    shard_t *s = shard_of(t, h);
    pthread_mutex_lock(&s->lock);
    *shard = s;
    topic_t *tp = topic_get(t, s, topic, h, true);
    s->cur = tp;
    tp->seq++;
    fill_pos(tp, pos);
    return tp->seq;
}

void seqtab_append(seqtab_t *t, seqtab_shard_t *shard, xmsg_t *m, uint64_t now_ms)
{
    topic_t *tp = shard->cur;
    topic_hist_t *h = tp->hist;
    uint32_t count0 = h->ring.count;
    size_t bytes0 = h->ring.bytes;
    history_ring_append(&h->ring, m, now_ms);
    account(t, h, count0, bytes0);
    expire_topic(t, tp, now_ms);
}

void seqtab_lock_topic(seqtab_t *t, wsb_str_t topic, seqtab_shard_t **shard, seqtab_pos_t *pos,
                       uint64_t now_ms)
{
    uint64_t h = hash_bytes(topic.p, topic.len);
    shard_t *s = shard_of(t, h);
    pthread_mutex_lock(&s->lock);
    *shard = s;
    topic_t *tp = topic_get(t, s, topic, h, false);
    s->cur = tp;
    if (tp != NULL && tp->hist != NULL) {
        expire_topic(t, tp, now_ms);
    }
    fill_pos(tp, pos);
}

static void read_ring(const topic_hist_t *h, uint64_t after, size_t max, xmsg_t ***out, size_t *n)
{
    size_t avail = h->ring.count < max ? h->ring.count : max;
    *out = NULL;
    *n = 0;
    if (avail == 0) {
        return;
    }
    *out = xmalloc(sizeof(xmsg_t *) * avail);
    *n = history_ring_read(&h->ring, after, max, *out);
    if (*n == 0) {
        free(*out);
        *out = NULL;
    }
}

bool seqtab_since(seqtab_t *t, seqtab_shard_t *shard, wsb_str_t epoch, uint64_t since,
                  xmsg_t ***out, size_t *n)
{
    (void)t;
    topic_t *tp = shard->cur;
    *out = NULL;
    *n = 0;
    if (tp == NULL || tp->hist == NULL) {
        return false;
    }
    const topic_hist_t *h = tp->hist;
    if (epoch.len != SEQTAB_EPOCH_LEN || memcmp(epoch.p, h->epoch, SEQTAB_EPOCH_LEN) != 0 ||
        since > tp->seq) {
        return false;
    }
    if (since == tp->seq) {
        return true; /* nothing missed */
    }
    /* Seqs in the ring are consecutive and end at tp->seq: every message
     * after `since` is held iff the oldest held is at most since + 1. */
    if (h->ring.count == 0 || history_ring_first_seq(&h->ring) > since + 1) {
        return false;
    }
    read_ring(h, since, SIZE_MAX, out, n);
    return true;
}

void seqtab_last(seqtab_t *t, seqtab_shard_t *shard, size_t max, xmsg_t ***out, size_t *n)
{
    (void)t;
    topic_t *tp = shard->cur;
    *out = NULL;
    *n = 0;
    if (tp != NULL && tp->hist != NULL) {
        read_ring(tp->hist, 0, max, out, n);
    }
}

void seqtab_expire(seqtab_t *t, uint64_t now_ms)
{
    if (t->rules == NULL || t->rules->n == 0) {
        return;
    }
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        shard_t *s = &t->shards[i];
        pthread_mutex_lock(&s->lock);
        for (topic_t *tp = s->hist_head; tp != NULL; tp = tp->hist->next) {
            expire_topic(t, tp, now_ms);
        }
        pthread_mutex_unlock(&s->lock);
    }
}

/* A pattern as a Prometheus label value: '\\' and '"' are legal in topics. */
static void label_escape(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in != '\0' && n + 3 < cap; in++) {
        if (*in == '\\' || *in == '"') {
            out[n++] = '\\';
        }
        out[n++] = *in;
    }
    out[n] = '\0';
}

void seqtab_render_metrics(seqtab_t *t, sbuf_t *o)
{
    unsigned n = t->rules != NULL ? t->rules->n : 0;
    static const struct {
        const char *name, *help;
        size_t off;
    } series[] = {
        {"wsbroker_history_topics", "Topics keeping history, by rule.",
         offsetof(rule_stats_t, topics)},
        {"wsbroker_history_messages", "Messages held in history, by rule.",
         offsetof(rule_stats_t, messages)},
        {"wsbroker_history_bytes", "Bytes of frames held in history, by rule.",
         offsetof(rule_stats_t, bytes)},
    };
    for (size_t k = 0; k < sizeof series / sizeof series[0]; k++) {
        sbuf_printf(o, "# HELP %s %s\n# TYPE %s gauge\n", series[k].name, series[k].help,
                    series[k].name);
        for (unsigned r = 0; r < n; r++) {
            _Atomic int64_t *v = (_Atomic int64_t *)(void *)((char *)&t->stats[r] + series[k].off);
            char label[2 * WSB_TOPIC_MAX_LEN + 1];
            label_escape(t->rules->rules[r].pattern, label, sizeof label);
            sbuf_printf(o, "%s{rule=\"%u\",pattern=\"%s\"} %" PRId64 "\n", series[k].name, r, label,
                        atomic_load_explicit(v, memory_order_relaxed));
        }
    }
    sbuf_printf(o,
                "# HELP wsbroker_history_evictions_total Topics evicted (seq, epoch and history "
                "lost) over history_max_topics.\n# TYPE wsbroker_history_evictions_total "
                "counter\nwsbroker_history_evictions_total %" PRIu64 "\n",
                atomic_load_explicit(&t->hist_evictions, memory_order_relaxed));
}

void seqtab_unlock(seqtab_shard_t *shard)
{
    pthread_mutex_unlock(&shard->lock);
}
