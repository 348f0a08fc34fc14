/* router.c - the publish path and the per-topic sequence table (see router.h). */
#include "router.h"

#include "conn.h"
#include "frame_buf.h"
#include "server.h"
#include "session.h"
#include "topic_trie.h"
#include "util.h"
#include "wsb/message.h"

#include <stdlib.h>
#include <string.h>

/* A topic's sequence counter, in a chained hash table and an LRU list. */
typedef struct topic_s {
    struct topic_s *hnext;
    struct topic_s *lru_prev, *lru_next; /* head = most recently published */
    uint64_t hash;
    uint64_t seq;
    uint16_t len;
    char name[]; /* not NUL-terminated */
} topic_t;

struct router_s {
    server_t *server;
    topic_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    topic_t *lru_head, *lru_tail;
};

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

router_t *router_new(server_t *s)
{
    router_t *r = xcalloc(1, sizeof(*r));
    r->server = s;
    r->nbuckets = 1024;
    r->buckets = xcalloc(r->nbuckets, sizeof(topic_t *));
    return r;
}

void router_free(router_t *r)
{
    topic_t *t = r->lru_head;
    while (t != NULL) {
        topic_t *next = t->lru_next;
        free(t);
        t = next;
    }
    free(r->buckets);
    free(r);
}

size_t router_topic_count(const router_t *r)
{
    return r->count;
}

static void lru_unlink(router_t *r, topic_t *t)
{
    if (t->lru_prev) {
        t->lru_prev->lru_next = t->lru_next;
    } else {
        r->lru_head = t->lru_next;
    }
    if (t->lru_next) {
        t->lru_next->lru_prev = t->lru_prev;
    } else {
        r->lru_tail = t->lru_prev;
    }
}

static void lru_push_front(router_t *r, topic_t *t)
{
    t->lru_prev = NULL;
    t->lru_next = r->lru_head;
    if (r->lru_head) {
        r->lru_head->lru_prev = t;
    } else {
        r->lru_tail = t;
    }
    r->lru_head = t;
}

static void evict_oldest(router_t *r)
{
    topic_t *t = r->lru_tail;
    lru_unlink(r, t);
    topic_t **pp = &r->buckets[t->hash & (r->nbuckets - 1)];
    while (*pp != t) {
        pp = &(*pp)->hnext;
    }
    *pp = t->hnext;
    r->count--;
    free(t);
}

static void grow(router_t *r)
{
    size_t n = r->nbuckets * 2;
    topic_t **b = xcalloc(n, sizeof(topic_t *));
    for (size_t i = 0; i < r->nbuckets; i++) {
        topic_t *t = r->buckets[i];
        while (t != NULL) {
            topic_t *next = t->hnext;
            t->hnext = b[t->hash & (n - 1)];
            b[t->hash & (n - 1)] = t;
            t = next;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

static topic_t *topic_get(router_t *r, wsb_str_t name)
{
    uint64_t h = hash_bytes(name.p, name.len);
    for (topic_t *t = r->buckets[h & (r->nbuckets - 1)]; t != NULL; t = t->hnext) {
        if (t->hash == h && t->len == name.len && memcmp(t->name, name.p, name.len) == 0) {
            if (r->lru_head != t) {
                lru_unlink(r, t);
                lru_push_front(r, t);
            }
            return t;
        }
    }
    if (r->count >= ROUTER_MAX_TOPICS) {
        evict_oldest(r);
    }
    if (r->count >= r->nbuckets) {
        grow(r);
    }
    topic_t *t = xmalloc(sizeof(*t) + name.len);
    t->hash = h;
    t->seq = 0;
    t->len = (uint16_t)name.len;
    memcpy(t->name, name.p, name.len);
    t->hnext = r->buckets[h & (r->nbuckets - 1)];
    r->buckets[h & (r->nbuckets - 1)] = t;
    lru_push_front(r, t);
    r->count++;
    return t;
}

typedef struct {
    frame_buf_t *fb;
    server_t *server;
    size_t undelivered; /* matched but not queued: closing or just dropped */
} fanout_t;

static int deliver_cb(trie_client_t *client, void *user_data)
{
    fanout_t *f = user_data;
    session_t *s = (session_t *)(void *)client;
    if (session_deliver(s, f->fb) == 0) {
        return 0;
    }
    f->undelivered++;
    if (s->conn->state == CONN_WS) {
        /* Over its outbound bound: this subscriber cannot keep up. Its queued
         * frames are dropped and it is told why; everyone else goes on. */
        f->server->metrics.slow_consumer_closes++;
        conn_ws_close(s->conn, WSB_WS_CLOSE_TRY_AGAIN, "slow consumer", true);
    }
    return 0;
}

size_t router_publish(router_t *r, wsb_str_t topic, const json_t *data, uint64_t *seq)
{
    server_t *s = r->server;
    topic_t *t = topic_get(r, topic);
    *seq = ++t->seq;
    s->metrics.messages_published++;

    size_t data_len = 0;
    char *data_json = wsb_msg_dump_value(data, &data_len);
    if (data_json == NULL) {
        abort(); /* ENOMEM: the broker's allocation policy */
    }
    size_t frame_len = 0;
    uint8_t *raw =
        wsb_msg_build_message(topic, *seq, WSB_STR_NULL, (wsb_str_t){data_json, data_len},
                              FRAME_BUF_HEADROOM, &frame_len);
    free(data_json);
    frame_buf_t *fb = frame_buf_adopt(raw, frame_len);

    fanout_t f = {.fb = fb, .server = s, .undelivered = 0};
    s->in_fanout = true;
    size_t n = trie_match(s->trie, topic.p, topic.len, deliver_cb, &f);
    s->in_fanout = false;
    s->metrics.messages_delivered += n - f.undelivered;
    frame_buf_unref(fb);
    return n - f.undelivered;
}
