/* presence.c - the node's members of presence topics (see presence.h). */
#include "core/presence.h"

#include "shared/util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* A member: its client id, user and origin in one allocation
 * ("client\0user\0origin\0"; origin "" for this node's own members). */
typedef struct {
    uint32_t hash; /* of the client id: most comparisons stop here */
    uint32_t gen;  /* remote members: the resync generation that last saw it */
    bool has_user;
    char *ids;
} member_t;

static const char *m_user(const member_t *m)
{
    return m->ids + strlen(m->ids) + 1;
}

static const char *m_origin(const member_t *m)
{
    const char *user = m_user(m);
    return user + strlen(user) + 1;
}

typedef struct ptopic_s {
    struct ptopic_s *next;
    uint64_t hash;
    member_t *members;
    uint32_t n;
    uint32_t cap;
    size_t len;
    char name[]; /* NUL-terminated */
} ptopic_t;

typedef struct {
    pthread_mutex_t lock;
    ptopic_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t ntopics;
} shard_t;

struct presence_s {
    shard_t shards[PRESENCE_SHARDS];
    uint32_t max_topics;
    uint32_t max_members;
    _Atomic uint64_t topics; /* over all shards, for max_topics */
    _Atomic uint64_t members;
};

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    }
    return h;
}

presence_t *presence_new(uint32_t max_topics, uint32_t max_members)
{
    presence_t *p = xcalloc(1, sizeof(*p));
    p->max_topics = max_topics;
    p->max_members = max_members;
    atomic_init(&p->topics, 0);
    atomic_init(&p->members, 0);
    for (int i = 0; i < PRESENCE_SHARDS; i++) {
        shard_t *s = &p->shards[i];
        if (pthread_mutex_init(&s->lock, NULL) != 0) {
            abort();
        }
        s->nbuckets = 16;
        s->buckets = xcalloc(s->nbuckets, sizeof(ptopic_t *));
    }
    return p;
}

static void topic_free(ptopic_t *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        free(t->members[i].ids);
    }
    free(t->members);
    free(t);
}

void presence_free(presence_t *p)
{
    if (p == NULL) {
        return;
    }
    for (int i = 0; i < PRESENCE_SHARDS; i++) {
        shard_t *s = &p->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++) {
            ptopic_t *t = s->buckets[b];
            while (t != NULL) {
                ptopic_t *next = t->next;
                topic_free(t);
                t = next;
            }
        }
        free(s->buckets);
        (void)pthread_mutex_destroy(&s->lock);
    }
    free(p);
}

/* The topic's shard, locked; the caller unlocks it. */
static shard_t *lock_shard(presence_t *p, uint64_t h)
{
    shard_t *s = &p->shards[h % PRESENCE_SHARDS];
    (void)pthread_mutex_lock(&s->lock);
    return s;
}

static ptopic_t **find(shard_t *s, uint64_t h, wsb_str_t topic)
{
    ptopic_t **pp = &s->buckets[(h / PRESENCE_SHARDS) & (s->nbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        ptopic_t *t = *pp;
        if (t->hash == h && t->len == topic.len && memcmp(t->name, topic.p, topic.len) == 0) {
            break;
        }
    }
    return pp;
}

/* Doubles the buckets when the shard holds more topics than buckets. */
static void grow(shard_t *s)
{
    if (s->ntopics <= s->nbuckets) {
        return;
    }
    size_t n = s->nbuckets * 2;
    ptopic_t **b = xcalloc(n, sizeof(ptopic_t *));
    for (size_t i = 0; i < s->nbuckets; i++) {
        ptopic_t *t = s->buckets[i];
        while (t != NULL) {
            ptopic_t *next = t->next;
            ptopic_t **head = &b[(t->hash / PRESENCE_SHARDS) & (n - 1)];
            t->next = *head;
            *head = t;
            t = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

static int find_member(const ptopic_t *t, const char *client, size_t len, const char *origin)
{
    uint32_t h = (uint32_t)hash_bytes(client, len);
    for (uint32_t i = 0; i < t->n; i++) {
        const member_t *m = &t->members[i];
        if (m->hash == h && strncmp(m->ids, client, len) == 0 && m->ids[len] == '\0' &&
            strcmp(m_origin(m), origin) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static size_t bounded_len(const char *s, size_t max)
{
    const char *nul = memchr(s, '\0', max);
    return nul != NULL ? (size_t)(nul - s) : max;
}

static member_t member_new(const char *client, size_t clen, const char *user, const char *origin,
                           uint32_t gen)
{
    size_t ulen = user != NULL ? bounded_len(user, PRESENCE_USER_MAX) : 0;
    size_t olen = bounded_len(origin, PRESENCE_ORIGIN_MAX);
    member_t m = {.hash = (uint32_t)hash_bytes(client, clen), .gen = gen, .has_user = user != NULL};
    m.ids = xmalloc(clen + 1 + ulen + 1 + olen + 1);
    char *at = m.ids;
    memcpy(at, client, clen);
    at[clen] = '\0';
    at += clen + 1;
    if (ulen > 0) {
        memcpy(at, user, ulen);
    }
    at[ulen] = '\0';
    at += ulen + 1;
    memcpy(at, origin, olen);
    at[olen] = '\0';
    return m;
}

typedef struct {
    const char *client;
    size_t clen;
    const char *user;
    const char *origin;
    uint32_t gen;
} who_t;

static presence_status_t add_locked(presence_t *p, shard_t *s, uint64_t h, wsb_str_t topic,
                                    const who_t *who, bool *added)
{
    ptopic_t **pp = find(s, h, topic);
    ptopic_t *t = *pp;
    if (t == NULL) {
        /* Counted before it exists: two shards cannot both take the last slot. */
        if (atomic_fetch_add(&p->topics, 1) >= p->max_topics) {
            atomic_fetch_sub(&p->topics, 1);
            return PRESENCE_TOPICS_FULL;
        }
        t = xcalloc(1, sizeof(*t) + topic.len + 1);
        t->hash = h;
        t->len = topic.len;
        memcpy(t->name, topic.p, topic.len);
        t->name[topic.len] = '\0';
        t->next = NULL;
        *pp = t;
        s->ntopics++;
        grow(s);
    } else {
        int i = find_member(t, who->client, who->clen, who->origin);
        if (i >= 0) {
            t->members[i].gen = who->gen;
            return PRESENCE_OK;
        }
        if (t->n >= p->max_members) {
            return PRESENCE_MEMBERS_FULL;
        }
    }
    if (t->n == t->cap) {
        t->cap = t->cap < 4 ? 4 : t->cap * 2;
        t->members = xrealloc(t->members, t->cap * sizeof(member_t));
    }
    t->members[t->n++] = member_new(who->client, who->clen, who->user, who->origin, who->gen);
    atomic_fetch_add(&p->members, 1);
    *added = true;
    return PRESENCE_OK;
}

static presence_status_t add(presence_t *p, wsb_str_t topic, const who_t *who, bool *added)
{
    uint64_t h = hash_bytes(topic.p, topic.len);
    *added = false;
    shard_t *s = lock_shard(p, h);
    presence_status_t st = add_locked(p, s, h, topic, who, added);
    (void)pthread_mutex_unlock(&s->lock);
    return st;
}

presence_status_t presence_add(presence_t *p, wsb_str_t topic, const char *client, const char *user)
{
    who_t who = {client, bounded_len(client, PRESENCE_CLIENT_MAX), user, "", 0};
    bool added = false;
    return add(p, topic, &who, &added);
}

presence_status_t presence_add_remote(presence_t *p, wsb_str_t topic, const char *client,
                                      const char *user, const char *origin, uint32_t gen,
                                      bool *added)
{
    who_t who = {client, bounded_len(client, PRESENCE_CLIENT_MAX), user, origin, gen};
    return add(p, topic, &who, added);
}

static void member_out(const member_t *m, presence_member_t *out)
{
    size_t clen = strlen(m->ids);
    memcpy(out->client, m->ids, clen + 1);
    out->has_user = m->has_user;
    const char *user = m_user(m);
    memcpy(out->user, user, strlen(user) + 1);
}

/* Removes member i of topic *pp (shard locked); the topic goes with its last. */
static void remove_at(presence_t *p, shard_t *s, ptopic_t **pp, uint32_t i)
{
    ptopic_t *t = *pp;
    free(t->members[i].ids);
    t->members[i] = t->members[--t->n];
    atomic_fetch_sub(&p->members, 1);
    if (t->n == 0) {
        *pp = t->next;
        s->ntopics--;
        topic_free(t);
        atomic_fetch_sub(&p->topics, 1);
    }
}

static bool remove_from(presence_t *p, wsb_str_t topic, const char *client, const char *origin,
                        presence_member_t *out)
{
    uint64_t h = hash_bytes(topic.p, topic.len);
    size_t clen = bounded_len(client, PRESENCE_CLIENT_MAX);
    shard_t *s = lock_shard(p, h);
    ptopic_t **pp = find(s, h, topic);
    int i = *pp != NULL ? find_member(*pp, client, clen, origin) : -1;
    if (i >= 0) {
        if (out != NULL) {
            member_out(&(*pp)->members[i], out);
        }
        remove_at(p, s, pp, (uint32_t)i);
    }
    (void)pthread_mutex_unlock(&s->lock);
    return i >= 0;
}

bool presence_remove(presence_t *p, wsb_str_t topic, const char *client, presence_member_t *out)
{
    return remove_from(p, topic, client, "", out);
}

bool presence_remove_remote(presence_t *p, wsb_str_t topic, const char *client, const char *origin,
                            presence_member_t *out)
{
    return remove_from(p, topic, client, origin, out);
}

size_t presence_drop_remote(presence_t *p, const char *origin, uint32_t gen_below,
                            presence_drop_cb cb, void *user_data)
{
    size_t dropped = 0;
    for (int k = 0; k < PRESENCE_SHARDS; k++) {
        shard_t *s = &p->shards[k];
        (void)pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nbuckets; b++) {
            ptopic_t **pp = &s->buckets[b];
            while (*pp != NULL) {
                ptopic_t *t = *pp;
                bool gone = false;
                for (uint32_t i = t->n; i-- > 0 && !gone;) {
                    const member_t *m = &t->members[i];
                    const char *o = m_origin(m);
                    if (o[0] == '\0' || (origin != NULL && strcmp(o, origin) != 0) ||
                        m->gen >= gen_below) {
                        continue;
                    }
                    presence_member_t out;
                    member_out(m, &out);
                    if (cb != NULL) {
                        cb((wsb_str_t){t->name, t->len}, &out, user_data);
                    }
                    dropped++;
                    gone = t->n == 1; /* the topic goes with its last member */
                    remove_at(p, s, pp, i);
                }
                if (!gone) {
                    pp = &t->next;
                }
            }
        }
        (void)pthread_mutex_unlock(&s->lock);
    }
    return dropped;
}

void presence_foreach_local(presence_t *p, presence_local_cb cb, void *user_data)
{
    presence_member_t *batch = NULL;
    size_t cap = 0;
    for (int k = 0; k < PRESENCE_SHARDS; k++) {
        shard_t *s = &p->shards[k];
        (void)pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nbuckets; b++) {
            for (ptopic_t *t = s->buckets[b]; t != NULL; t = t->next) {
                size_t n = 0;
                for (uint32_t i = 0; i < t->n; i++) {
                    if (m_origin(&t->members[i])[0] != '\0') {
                        continue;
                    }
                    if (n == cap) {
                        cap = cap < 16 ? 16 : cap * 2;
                        batch = xrealloc(batch, cap * sizeof(*batch));
                    }
                    member_out(&t->members[i], &batch[n++]);
                }
                if (n > 0) {
                    cb((wsb_str_t){t->name, t->len}, batch, n, user_data);
                }
            }
        }
        (void)pthread_mutex_unlock(&s->lock);
    }
    free(batch);
}

presence_member_t *presence_members(presence_t *p, wsb_str_t topic, size_t *n)
{
    uint64_t h = hash_bytes(topic.p, topic.len);
    presence_member_t *out = NULL;
    *n = 0;
    shard_t *s = lock_shard(p, h);
    ptopic_t *t = *find(s, h, topic);
    if (t != NULL && t->n > 0) {
        out = xmalloc(t->n * sizeof(*out));
        for (uint32_t i = 0; i < t->n; i++) {
            member_out(&t->members[i], &out[i]);
        }
        *n = t->n;
    }
    (void)pthread_mutex_unlock(&s->lock);
    return out;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void presence_stats(presence_t *p, wsb_str_t topic, uint32_t *clients, uint32_t *users)
{
    uint64_t h = hash_bytes(topic.p, topic.len);
    *clients = 0;
    *users = 0;
    shard_t *s = lock_shard(p, h);
    ptopic_t *t = *find(s, h, topic);
    if (t != NULL) {
        *clients = t->n;
        /* Distinct users: sort pointers to them and count the changes. */
        const char **u = xmalloc((t->n + 1) * sizeof(*u));
        uint32_t nu = 0;
        for (uint32_t i = 0; i < t->n; i++) {
            if (t->members[i].has_user) {
                u[nu++] = m_user(&t->members[i]);
            }
        }
        qsort(u, nu, sizeof(*u), cmp_str);
        for (uint32_t i = 0; i < nu; i++) {
            if (i == 0 || strcmp(u[i - 1], u[i]) != 0) {
                (*users)++;
            }
        }
        free(u);
    }
    (void)pthread_mutex_unlock(&s->lock);
}

void presence_totals(presence_t *p, uint64_t *topics, uint64_t *members)
{
    *topics = atomic_load(&p->topics);
    *members = atomic_load(&p->members);
}

static void set_new(json_t *obj, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(obj, key, v) != 0) {
        abort(); /* ENOMEM: the broker's allocation policy */
    }
}

/* Distinct users among `n` members (sorts the array). */
static int cmp_member_user(const void *a, const void *b)
{
    const presence_member_t *x = a;
    const presence_member_t *y = b;
    if (x->has_user != y->has_user) {
        return x->has_user ? 1 : -1;
    }
    return strcmp(x->user, y->user);
}

static uint32_t distinct_users(presence_member_t *m, size_t n)
{
    if (n == 0) {
        return 0;
    }
    qsort(m, n, sizeof(*m), cmp_member_user);
    uint32_t users = 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i].has_user &&
            (i == 0 || !m[i - 1].has_user || strcmp(m[i - 1].user, m[i].user) != 0)) {
            users++;
        }
    }
    return users;
}

json_t *presence_json(presence_t *p, const char *type, bool has_id, int64_t id, wsb_str_t topic,
                      bool members, bool stats)
{
    json_t *o = json_object();
    if (o == NULL) {
        abort();
    }
    if (type != NULL) {
        set_new(o, "type", json_string(type));
    }
    if (has_id) {
        set_new(o, "id", json_integer(id));
    }
    set_new(o, "topic", json_stringn(topic.p, topic.len));
    uint32_t clients = 0;
    uint32_t users = 0;
    if (members) {
        /* One copy under the lock: the list and the counts agree. */
        size_t n = 0;
        presence_member_t *m = presence_members(p, topic, &n);
        json_t *arr = json_array();
        if (arr == NULL) {
            abort();
        }
        for (size_t i = 0; i < n; i++) {
            /* A cut id could end inside a UTF-8 sequence: null rather than fail. */
            json_t *user = m[i].has_user ? json_string(m[i].user) : NULL;
            json_t *one = json_pack("{s:s, s:o}", "client", m[i].client, "user",
                                    user != NULL ? user : json_null());
            if (one == NULL || json_array_append_new(arr, one) != 0) {
                abort();
            }
        }
        set_new(o, "members", arr);
        clients = (uint32_t)n;
        users = stats ? distinct_users(m, n) : 0;
        free(m);
    } else if (stats) {
        presence_stats(p, topic, &clients, &users);
    }
    if (stats) {
        set_new(o, "clients", json_integer(clients));
        set_new(o, "users", json_integer(users));
    }
    return o;
}

void presence_render_metrics(presence_t *p, sbuf_t *out)
{
    uint64_t topics = 0;
    uint64_t members = 0;
    presence_totals(p, &topics, &members);
    sbuf_printf(out,
                "# HELP wsbroker_presence_topics Presence topics with members on this node.\n"
                "# TYPE wsbroker_presence_topics gauge\nwsbroker_presence_topics %llu\n"
                "# HELP wsbroker_presence_members Members of presence topics on this node.\n"
                "# TYPE wsbroker_presence_members gauge\nwsbroker_presence_members %llu\n",
                (unsigned long long)topics, (unsigned long long)members);
}
