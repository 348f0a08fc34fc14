/* seqtab.c - sharded per-topic sequence counters and history (see seqtab.h). */
#include "core/seqtab.h"

#include "core/inbox_name.h"
#include "core/xmsg.h"
#include "shared/util.h"
#include "wsb/topic.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_MAX_TOPICS (SEQTAB_MAX_TOPICS / SEQTAB_SHARDS)

/* A topic's place in one of its shard's three lists (topic_list_t): the
 * topics by last publish (lru), those with history by last use (hist), and
 * those holding messages by last append (held). */
typedef struct {
    struct topic_s *prev, *next;
} topic_link_t;

typedef struct {
    struct topic_s *head, *tail; /* head = most recent */
} topic_list_t;

typedef enum { LIST_LRU, LIST_HIST, LIST_HELD } list_id_t;

/* What a topic with history has on top of its seq. */
typedef struct {
    topic_link_t link; /* the shard's history LRU list */
    /* The shard's list of topics holding at least one message, by last
     * append: where the byte bound evicts from. */
    topic_link_t held_link;
    uint64_t last_append; /* seqtab_t.clock at the last append */
    bool held;            /* in that list */
    history_ring_t ring;
    int rule;
    char epoch[SEQTAB_EPOCH_LEN + 1];
} topic_hist_t;

typedef struct topic_s {
    struct topic_s *hnext;
    topic_link_t lru; /* the shard's list by last publish */
    uint64_t hash;
    uint64_t seq;
    topic_hist_t *hist; /* NULL: no history rule matches, or hist_lost */
    uint16_t len;
    bool hist_lost; /* a rule matches but the history went over history_max_topics */
    char name[];    /* not NUL-terminated */
} topic_t;

struct seqtab_shard_s {
    pthread_mutex_t lock;
    topic_t **buckets;
    size_t nbuckets; /* power of two */
    _Atomic size_t count;
    topic_list_t lru;
    topic_list_t hist;
    size_t hist_count;
    topic_list_t held; /* topics holding messages, by last append */
    /* held.tail's last_append (UINT64_MAX: none), written under the lock and
     * read without it to find the shard holding the oldest history. */
    _Atomic uint64_t oldest_append;
    struct seqtab_s *owner;
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
    int64_t max_bytes;                 /* history_max_bytes */
    _Atomic int64_t bytes;             /* frames held in every ring */
    _Atomic uint64_t clock;            /* counts appends: the order of "least recently published" */
    _Atomic uint64_t evicted_messages; /* dropped over max_bytes */
    _Atomic uint64_t evicted_topics;   /* topics whose every message that dropped */
    _Atomic uint64_t epoch_state;      /* splitmix64 counter for epochs */
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

uint64_t seqtab_random_seed(void)
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

seqtab_t *seqtab_new(const history_rules_t *rules, uint32_t max_history_topics, uint64_t max_bytes)
{
    seqtab_t *t = xcalloc(1, sizeof(*t));
    t->rules = rules;
    t->max_bytes = max_bytes > INT64_MAX ? INT64_MAX : (int64_t)max_bytes;
    atomic_init(&t->bytes, 0);
    atomic_init(&t->clock, 0);
    atomic_init(&t->evicted_messages, 0);
    atomic_init(&t->evicted_topics, 0);
    t->hist_max_per_shard = max_history_topics / SEQTAB_SHARDS;
    if (t->hist_max_per_shard == 0) {
        t->hist_max_per_shard = 1;
    }
    atomic_init(&t->epoch_state, seqtab_random_seed());
    atomic_init(&t->hist_evictions, 0);
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        shard_t *s = &t->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nbuckets = 64;
        s->buckets = xcalloc(s->nbuckets, sizeof(topic_t *));
        atomic_init(&s->count, 0);
        atomic_init(&s->oldest_append, UINT64_MAX);
        s->owner = t;
    }
    return t;
}

void seqtab_free(seqtab_t *t)
{
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        shard_t *s = &t->shards[i];
        topic_t *tp = s->lru.head;
        while (tp != NULL) {
            topic_t *next = tp->lru.next;
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

/* The links of `tp` in list `id` (a topic in hist or held has a hist part). */
static inline topic_link_t *links(topic_t *tp, list_id_t id)
{
    switch (id) {
    case LIST_LRU:
        return &tp->lru;
    case LIST_HIST:
        return &tp->hist->link;
    default:
        return &tp->hist->held_link;
    }
}

static void list_unlink(topic_list_t *l, list_id_t id, topic_t *tp)
{
    topic_link_t *k = links(tp, id);
    if (k->prev) {
        links(k->prev, id)->next = k->next;
    } else {
        l->head = k->next;
    }
    if (k->next) {
        links(k->next, id)->prev = k->prev;
    } else {
        l->tail = k->prev;
    }
}

static void list_push_front(topic_list_t *l, list_id_t id, topic_t *tp)
{
    topic_link_t *k = links(tp, id);
    k->prev = NULL;
    k->next = l->head;
    if (l->head) {
        links(l->head, id)->prev = tp;
    } else {
        l->tail = tp;
    }
    l->head = tp;
}

/* Keeps the shard's list of topics holding messages in step with `tp`'s
 * ring: `appended` moves it to the front; an empty ring leaves the list.
 * Then republishes the shard's oldest append. Under the shard's lock. */
static void held_update(shard_t *s, topic_t *tp, bool appended)
{
    topic_hist_t *h = tp->hist;
    if (h->held && (appended || h->ring.count == 0)) {
        list_unlink(&s->held, LIST_HELD, tp);
        h->held = false;
    }
    if (appended && h->ring.count > 0) {
        list_push_front(&s->held, LIST_HELD, tp);
        h->held = true;
    }
    atomic_store_explicit(&s->oldest_append,
                          s->held.tail ? s->held.tail->hist->last_append : UINT64_MAX,
                          memory_order_relaxed);
}

/* Adds the change of a ring's size since (count0, bytes0) to its rule's
 * gauges and to the process total the byte bound watches. */
static void account(seqtab_t *t, const topic_hist_t *h, uint32_t count0, size_t bytes0)
{
    rule_stats_t *st = &t->stats[h->rule];
    int64_t dbytes = (int64_t)h->ring.bytes - (int64_t)bytes0;
    atomic_fetch_add_explicit(&st->messages, (int64_t)h->ring.count - (int64_t)count0,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&st->bytes, dbytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->bytes, dbytes, memory_order_relaxed);
}

/* Drops the topic's history part (messages and epoch); its seq stays. */
static void drop_hist(seqtab_t *t, shard_t *s, topic_t *tp)
{
    topic_hist_t *h = tp->hist;
    uint32_t count0 = h->ring.count;
    size_t bytes0 = h->ring.bytes;
    history_ring_clear(&h->ring);
    account(t, h, count0, bytes0);
    held_update(s, tp, false);
    atomic_fetch_sub_explicit(&t->stats[h->rule].topics, 1, memory_order_relaxed);
    list_unlink(&s->hist, LIST_HIST, tp);
    s->hist_count--;
    free(h);
    tp->hist = NULL;
}

/* Gives `tp` a history part for `rule`, with a new epoch. Over
 * history_max_topics (the shard's share), the least recently used topic
 * with history loses its history and epoch first, but keeps its seq: its
 * next subscriber sees the sequence go on, under a new epoch, instead of
 * starting again at 0. */
static void attach_hist(seqtab_t *t, shard_t *s, topic_t *tp, int rule)
{
    if (s->hist_count >= t->hist_max_per_shard) {
        topic_t *victim = s->hist.tail;
        drop_hist(t, s, victim);
        victim->hist_lost = true;
        atomic_fetch_add_explicit(&t->hist_evictions, 1, memory_order_relaxed);
    }
    topic_hist_t *hs = xcalloc(1, sizeof(*hs));
    hs->rule = rule;
    make_epoch(t, hs->epoch);
    history_ring_init(&hs->ring, t->rules->rules[rule].size);
    tp->hist = hs;
    tp->hist_lost = false;
    list_push_front(&s->hist, LIST_HIST, tp);
    s->hist_count++;
    atomic_fetch_add_explicit(&t->stats[rule].topics, 1, memory_order_relaxed);
}

static void topic_free(seqtab_t *t, shard_t *s, topic_t *tp)
{
    if (tp->hist != NULL) {
        drop_hist(t, s, tp);
    }
    free(tp);
}

static void evict(seqtab_t *t, shard_t *s, topic_t *tp)
{
    list_unlink(&s->lru, LIST_LRU, tp);
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
            if (s->lru.head != tp) {
                list_unlink(&s->lru, LIST_LRU, tp);
                list_push_front(&s->lru, LIST_LRU, tp);
            }
            if (tp->hist != NULL && s->hist.head != tp) {
                list_unlink(&s->hist, LIST_HIST, tp);
                list_push_front(&s->hist, LIST_HIST, tp);
            } else if (tp->hist_lost) {
                attach_hist(t, s, tp, history_rules_match(t->rules, name));
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
        evict(t, s, s->lru.tail);
        count--;
    }
    if (count >= s->nbuckets) {
        grow(s);
    }
    topic_t *tp = xmalloc(sizeof(*tp) + name.len);
    tp->hash = h;
    tp->seq = 0;
    tp->hist = NULL;
    tp->hist_lost = false;
    tp->len = (uint16_t)name.len;
    memcpy(tp->name, name.p, name.len);
    tp->hnext = s->buckets[h & (s->nbuckets - 1)];
    s->buckets[h & (s->nbuckets - 1)] = tp;
    list_push_front(&s->lru, LIST_LRU, tp);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    if (rule >= 0) {
        attach_hist(t, s, tp, rule);
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
static void expire_topic(seqtab_t *t, shard_t *s, topic_t *tp, uint64_t now_ms)
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
        held_update(s, tp, false);
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
    h->last_append = atomic_fetch_add_explicit(&t->clock, 1, memory_order_relaxed) + 1;
    held_update(shard, tp, true);
    expire_topic(t, shard, tp, now_ms);
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
        expire_topic(t, s, tp, now_ms);
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

void seqtab_lock_all(seqtab_t *t)
{
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        pthread_mutex_lock(&t->shards[i].lock);
    }
}

void seqtab_unlock_all(seqtab_t *t)
{
    /* Nothing was appended: no byte bound to bring back (seqtab_unlock). */
    for (size_t i = SEQTAB_SHARDS; i-- > 0;) {
        pthread_mutex_unlock(&t->shards[i].lock);
    }
}

/* The next topic of a shard's history list (the topics that keep history
 * now; hist_lost ones are not in it), or NULL. */
static topic_t *hist_next(const topic_t *tp)
{
    return tp->hist->link.next;
}

/* A topic a pattern's replay includes: it matches, and it is no request
 * inbox (replies kept by a history rule such as ">" are the requester's
 * alone, as in the live fan-out: request.h). */
static bool replayable(wsb_str_t pattern, const topic_t *tp)
{
    return wsb_topic_matches(pattern.p, pattern.len, tp->name, tp->len) &&
           !inbox_is(tp->name, tp->len);
}

size_t seqtab_match_last(seqtab_t *t, wsb_str_t pattern, size_t max, size_t max_topics,
                         uint64_t now_ms, xmsg_t ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    /* First pass: count the topics (over the bound: nothing read) and
     * their messages, dropping what their ttl says is too old. */
    size_t ntopics = 0;
    size_t total = 0;
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        shard_t *s = &t->shards[i];
        for (topic_t *tp = s->hist.head; tp != NULL; tp = hist_next(tp)) {
            if (!replayable(pattern, tp)) {
                continue;
            }
            if (++ntopics > max_topics) {
                return ntopics;
            }
            expire_topic(t, s, tp, now_ms);
            total += tp->hist->ring.count < max ? tp->hist->ring.count : max;
        }
    }
    if (total == 0) {
        return ntopics;
    }
    *out = xmalloc(sizeof(xmsg_t *) * total);
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        for (topic_t *tp = t->shards[i].hist.head; tp != NULL; tp = hist_next(tp)) {
            if (replayable(pattern, tp)) {
                *n += history_ring_read(&tp->hist->ring, 0, max, *out + *n);
            }
        }
    }
    return ntopics;
}

void seqtab_expire(seqtab_t *t, uint64_t now_ms)
{
    if (t->rules == NULL || t->rules->n == 0) {
        return;
    }
    for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
        shard_t *s = &t->shards[i];
        pthread_mutex_lock(&s->lock);
        for (topic_t *tp = s->hist.head; tp != NULL; tp = tp->hist->link.next) {
            expire_topic(t, s, tp, now_ms);
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
            if (t->rules->rules[r].size == 0) {
                continue; /* a topics rule without history (topic_rules.h) */
            }
            _Atomic int64_t *v = (_Atomic int64_t *)(void *)((char *)&t->stats[r] + series[k].off);
            char label[2 * WSB_TOPIC_MAX_LEN + 1];
            label_escape(t->rules->rules[r].pattern, label, sizeof label);
            sbuf_printf(o, "%s{rule=\"%u\",pattern=\"%s\"} %" PRId64 "\n", series[k].name, r, label,
                        atomic_load_explicit(v, memory_order_relaxed));
        }
    }
    sbuf_printf(
        o,
        "# HELP wsbroker_history_evictions_total Topics that lost their history and "
        "epoch (not their seq) over history_max_topics.\n# TYPE wsbroker_history_evictions_total "
        "counter\nwsbroker_history_evictions_total %" PRIu64 "\n",
        atomic_load_explicit(&t->hist_evictions, memory_order_relaxed));
    sbuf_printf(o,
                "# HELP wsbroker_history_evicted_messages_total History messages dropped over "
                "history_max_bytes (least recently published topic first).\n"
                "# TYPE wsbroker_history_evicted_messages_total counter\n"
                "wsbroker_history_evicted_messages_total %" PRIu64 "\n",
                atomic_load_explicit(&t->evicted_messages, memory_order_relaxed));
    sbuf_printf(o,
                "# HELP wsbroker_history_evicted_topics_total Times a topic's whole history was "
                "dropped over history_max_bytes (its seq and epoch stay).\n"
                "# TYPE wsbroker_history_evicted_topics_total counter\n"
                "wsbroker_history_evicted_topics_total %" PRIu64 "\n",
                atomic_load_explicit(&t->evicted_topics, memory_order_relaxed));
}

static bool over_bytes(seqtab_t *t)
{
    return atomic_load_explicit(&t->bytes, memory_order_relaxed) > t->max_bytes;
}

/*
 * Brings the history back under max_bytes: drops the oldest messages of the
 * least recently published topic holding any, then of the next, and so on.
 * The topics keep their seq and epoch, so a `since` into what was dropped is
 * answered recovered:false, never with a wrong replay. Called with no shard
 * locked (it locks one at a time: no lock order to respect); the shard to
 * evict from is the one whose oldest append is the oldest, read from the
 * shards' published values, then confirmed under its lock. Several threads
 * may trim at once; each drops only while the total is over the bound.
 */
static void trim(seqtab_t *t)
{
    while (over_bytes(t)) {
        shard_t *victim = NULL;
        uint64_t best = UINT64_MAX;
        for (size_t i = 0; i < SEQTAB_SHARDS; i++) {
            uint64_t o = atomic_load_explicit(&t->shards[i].oldest_append, memory_order_relaxed);
            if (o < best) {
                best = o;
                victim = &t->shards[i];
            }
        }
        if (victim == NULL) {
            return; /* nothing held: the total is another thread's append in flight */
        }
        pthread_mutex_lock(&victim->lock);
        topic_t *tp = victim->held.tail;
        if (tp != NULL) {
            topic_hist_t *h = tp->hist;
            uint32_t count0 = h->ring.count;
            size_t bytes0 = h->ring.bytes;
            uint32_t dropped = 0;
            while (h->ring.count > 0 && atomic_load_explicit(&t->bytes, memory_order_relaxed) -
                                                (int64_t)(bytes0 - h->ring.bytes) >
                                            t->max_bytes) {
                history_ring_drop_oldest(&h->ring);
                dropped++;
            }
            account(t, h, count0, bytes0);
            atomic_fetch_add_explicit(&t->evicted_messages, dropped, memory_order_relaxed);
            if (h->ring.count == 0 && dropped > 0) {
                atomic_fetch_add_explicit(&t->evicted_topics, 1, memory_order_relaxed);
            }
            held_update(victim, tp, false);
        }
        pthread_mutex_unlock(&victim->lock);
    }
}

void seqtab_unlock(seqtab_shard_t *shard)
{
    pthread_mutex_unlock(&shard->lock);
    if (over_bytes(shard->owner)) {
        trim(shard->owner);
    }
}
