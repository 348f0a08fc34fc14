/*
 * topic_trie.c - the subscription trie; the contract is in topic_trie.h.
 *
 * trie_match() runs for every publish, so the layout serves it first:
 *
 * - A node's literal children live inline (up to INLINE_KIDS pointers, no
 *   extra allocation: most nodes have zero to two children) and move to an
 *   open-addressing table (linear probing, power-of-two size, load <= 3/4)
 *   when a third arrives. Each child stores its token's hash, so probing
 *   compares one integer before touching the bytes and growing the table
 *   never rehashes a string. Removal uses backward-shift deletion (no
 *   tombstones), and the table shrinks, then returns inline, as children go.
 * - A node's subscriptions are a dense array of {client, sub} pairs: the
 *   per-subscriber loop in match reads the client pointer from contiguous
 *   memory and touches only the client's match stamp. Each trie_sub_t
 *   records its index in that array, so trie_remove() is an O(1) swap-remove.
 *   The array starts inline (n->subs == &n->sub0, capacity 1: most patterns
 *   have one subscriber) and moves to the heap with the second; it returns
 *   inline when the last subscriber goes. match never knows which it is.
 *   Likewise one trie_sub_t lives in the node (hsub0, free while its node
 *   is NULL); other subscribers' handles are allocated. A handle does not
 *   copy the client: trie_sub_client() reads it from the entry.
 * - A node stores its whole path (the pattern that ends there) in its own
 *   allocation, with its token as the path's last tok_len bytes: the pattern
 *   trie_sub_pattern() reports costs no allocation of its own and lives as
 *   long as the node.
 * - Every node knows its parent, so removal prunes empty nodes bottom-up.
 *
 * Match generation: every trie_match() call takes a new generation and stamps
 * it on each client it reports. Generations are unique process-wide, not just
 * per trie: each trie reserves them in blocks of GEN_BLOCK from one atomic
 * counter (one atomic add per million matches, so workers do not contend), so
 * a client that moves between tries, or outlives one trie and joins another,
 * can never carry a stamp that a new match mistakes for its own. Generation 0
 * is never handed out, so a zero-initialised client is never skipped.
 *
 * Topics handed to trie_match() are expected to be valid exact topics (the
 * router checks them with wsb_topic_check). Shapes no valid topic has (empty,
 * an empty token, more than WSB_TOPIC_MAX_TOKENS tokens or WSB_TOPIC_MAX_LEN
 * bytes) match nothing, which also keeps the recursion bounded.
 */
#include "core/topic_trie.h"

#include "shared/util.h"
#include "wsb/topic.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Literal children kept inside the node before a hash table is allocated. */
#define INLINE_KIDS 2
/* Smallest literal-children table (slots); always a power of two. */
#define TABLE_MIN 8
/* Match generations a trie reserves at a time from gen_blocks. */
#define GEN_BLOCK ((uint64_t)1 << 20)

typedef struct {
    trie_client_t *client; /* so match never loads sub */
    trie_sub_t *sub;
} sub_entry_t;

/* The client is node->subs[index].client: a handle is two words. */
struct trie_sub_s {
    trie_node_t *node; /* NULL while it is a node's unused hsub0 */
    uint32_t index;    /* position in node->subs */
};

struct trie_node_s {
    trie_node_t *parent; /* NULL for the root */
    trie_node_t *star;   /* the "*" child */
    trie_node_t *gt;     /* the ">" child; it never has children of its own */
    union {
        trie_node_t *inl[INLINE_KIDS]; /* kcap == 0: nkids packed entries */
        trie_node_t **table;           /* kcap > 0: kcap slots, NULL = empty */
    } kids;
    sub_entry_t *subs; /* &sub0 (subs_cap 1) or a heap array of subs_cap entries */
    sub_entry_t sub0;  /* the inline entry */
    trie_sub_t hsub0;  /* a handle for one subscriber without an allocation of its own */
    uint32_t nkids;
    uint32_t kcap;
    uint32_t nsubs;
    uint32_t subs_cap;
    uint32_t hash;    /* of the token, for the parent's table */
    uint16_t tok_off; /* the token is path[tok_off, tok_off + tok_len) */
    uint16_t tok_len;
    char path[]; /* pattern from the root to this node, NUL-terminated */
};

struct trie_s {
    trie_node_t *root;
    uint64_t gen;     /* last generation used */
    uint64_t gen_end; /* end of the reserved block */
    size_t nodes;     /* root excluded */
    size_t subs;
    size_t patterns;
};

/* Next free block of match generations, shared by every trie in the process. */
static _Atomic uint64_t gen_blocks;

static void gen_reserve(trie_t *t)
{
    uint64_t block = atomic_fetch_add_explicit(&gen_blocks, 1, memory_order_relaxed);
    t->gen = block * GEN_BLOCK; /* used from gen + 1: block 0 never yields 0 */
    t->gen_end = t->gen + GEN_BLOCK;
}

/* FNV-1a with a murmur3 finaliser, so the low bits used as a table index are well mixed. */
static inline uint32_t hash_finish(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

#define FNV_OFFSET 2166136261u
#define FNV_PRIME  16777619u

static uint32_t hash_token(const char *s, size_t len)
{
    uint32_t h = FNV_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
    }
    return hash_finish(h);
}

/* A node for the pattern prefix path[0, len) whose last token starts at tok_off. */
static trie_node_t *node_new(trie_node_t *parent, const char *path, size_t len, size_t tok_off,
                             uint32_t hash)
{
    assert(len <= UINT16_MAX && tok_off <= len);
    trie_node_t *n = xmalloc(sizeof(*n) + len + 1);
    memset(n, 0, sizeof(*n));
    n->parent = parent;
    n->subs = &n->sub0;
    n->subs_cap = 1;
    n->hash = hash;
    n->tok_off = (uint16_t)tok_off;
    n->tok_len = (uint16_t)(len - tok_off);
    memcpy(n->path, path, len);
    n->path[len] = '\0';
    return n;
}

static inline int node_is_token(const trie_node_t *n, const char *tok, size_t len, uint32_t hash)
{
    return n->hash == hash && n->tok_len == len && memcmp(n->path + n->tok_off, tok, len) == 0;
}

/* ---- literal children ---------------------------------------------------- */

static trie_node_t *kid_find(const trie_node_t *n, const char *tok, size_t len, uint32_t hash)
{
    if (n->kcap == 0) {
        for (uint32_t i = 0; i < n->nkids; i++) {
            if (node_is_token(n->kids.inl[i], tok, len, hash)) {
                return n->kids.inl[i];
            }
        }
        return NULL;
    }
    uint32_t mask = n->kcap - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        trie_node_t *k = n->kids.table[i];
        if (k == NULL || node_is_token(k, tok, len, hash)) {
            return k;
        }
    }
}

static void table_put(trie_node_t **table, uint32_t cap, trie_node_t *k)
{
    uint32_t mask = cap - 1;
    uint32_t i = k->hash & mask;
    while (table[i] != NULL) {
        i = (i + 1) & mask;
    }
    table[i] = k;
}

/*
 * Moves the literal children into a table of `cap` slots, or back inline when
 * cap is 0 (only when they fit). The old storage is read before the union is
 * overwritten.
 */
static void kids_rehash(trie_node_t *n, uint32_t cap)
{
    trie_node_t *inl[INLINE_KIDS] = {NULL};
    trie_node_t **old = NULL;
    uint32_t old_cap = n->kcap;

    if (old_cap == 0) {
        memcpy(inl, n->kids.inl, sizeof(inl));
    } else {
        old = n->kids.table;
    }
    if (cap == 0) {
        assert(n->nkids <= INLINE_KIDS && old != NULL);
        uint32_t j = 0;
        for (uint32_t i = 0; i < old_cap; i++) {
            if (old[i] != NULL) {
                n->kids.inl[j++] = old[i];
            }
        }
        for (; j < INLINE_KIDS; j++) {
            n->kids.inl[j] = NULL;
        }
    } else {
        trie_node_t **table = xcalloc(cap, sizeof(trie_node_t *));
        if (old_cap == 0) {
            for (uint32_t i = 0; i < n->nkids; i++) {
                table_put(table, cap, inl[i]);
            }
        } else {
            for (uint32_t i = 0; i < old_cap; i++) {
                if (old[i] != NULL) {
                    table_put(table, cap, old[i]);
                }
            }
        }
        n->kids.table = table;
    }
    free(old);
    n->kcap = cap;
}

static void kid_add(trie_node_t *n, trie_node_t *k)
{
    if (n->kcap == 0) {
        if (n->nkids < INLINE_KIDS) {
            n->kids.inl[n->nkids++] = k;
            return;
        }
        kids_rehash(n, TABLE_MIN);
    } else if ((n->nkids + 1) * 4 > n->kcap * 3) {
        if (n->kcap > UINT32_MAX / 2) {
            abort(); /* cannot happen: 2^31 children would exhaust memory first */
        }
        kids_rehash(n, n->kcap * 2);
    }
    table_put(n->kids.table, n->kcap, k);
    n->nkids++;
}

static void kid_del(trie_node_t *n, const trie_node_t *k)
{
    if (n->kcap == 0) {
        uint32_t i = 0;
        while (n->kids.inl[i] != k) {
            i++;
            assert(i < n->nkids);
        }
        n->nkids--;
        n->kids.inl[i] = n->kids.inl[n->nkids];
        n->kids.inl[n->nkids] = NULL;
        return;
    }

    trie_node_t **table = n->kids.table;
    uint32_t mask = n->kcap - 1;
    uint32_t hole = k->hash & mask;
    while (table[hole] != k) {
        assert(table[hole] != NULL);
        hole = (hole + 1) & mask;
    }
    /*
     * Backward-shift deletion: walk the cluster after the hole and pull back
     * every entry whose home slot is not between the hole and its position,
     * so lookups never stop early at a gap and no tombstones accumulate.
     */
    table[hole] = NULL;
    for (uint32_t j = (hole + 1) & mask; table[j] != NULL; j = (j + 1) & mask) {
        uint32_t home = table[j]->hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            table[hole] = table[j];
            table[j] = NULL;
            hole = j;
        }
    }
    n->nkids--;

    /* Hysteresis: go inline at 1 child (tables start at 3), halve at 1/8 load. */
    if (n->nkids <= INLINE_KIDS / 2) {
        kids_rehash(n, 0);
    } else if (n->kcap > TABLE_MIN && n->nkids * 8 <= n->kcap) {
        kids_rehash(n, n->kcap / 2);
    }
}

/* ---- nodes ---------------------------------------------------------------- */

/* The child of `n` for the token pattern[tok_off, tok_end), created if missing. */
static trie_node_t *child_get(trie_t *t, trie_node_t *n, const char *pattern, size_t tok_off,
                              size_t tok_end)
{
    const char *tok = pattern + tok_off;
    size_t len = tok_end - tok_off;
    if (len == 1 && (tok[0] == '*' || tok[0] == '>')) {
        trie_node_t **slot = tok[0] == '*' ? &n->star : &n->gt;
        if (*slot == NULL) {
            *slot = node_new(n, pattern, tok_end, tok_off, 0);
            t->nodes++;
        }
        return *slot;
    }
    uint32_t hash = hash_token(tok, len);
    trie_node_t *k = kid_find(n, tok, len, hash);
    if (k == NULL) {
        k = node_new(n, pattern, tok_end, tok_off, hash);
        kid_add(n, k);
        t->nodes++;
    }
    return k;
}

static int node_is_empty(const trie_node_t *n)
{
    return n->nsubs == 0 && n->nkids == 0 && n->star == NULL && n->gt == NULL;
}

/* Frees `n` and its empty ancestors, stopping at the root or a node still in use. */
static void prune(trie_t *t, trie_node_t *n)
{
    while (n->parent != NULL && node_is_empty(n)) {
        trie_node_t *parent = n->parent;
        if (parent->star == n) {
            parent->star = NULL;
        } else if (parent->gt == n) {
            parent->gt = NULL;
        } else {
            kid_del(parent, n);
        }
        if (n->kcap > 0) {
            free(n->kids.table);
        }
        free(n);
        t->nodes--;
        n = parent;
    }
}

/* Recursion depth is the pattern depth, bounded by WSB_TOPIC_MAX_TOKENS. */
static void node_free_all(trie_node_t *n)
{
    if (n->star != NULL) {
        node_free_all(n->star);
    }
    if (n->gt != NULL) {
        node_free_all(n->gt);
    }
    if (n->kcap == 0) {
        for (uint32_t i = 0; i < n->nkids; i++) {
            node_free_all(n->kids.inl[i]);
        }
    } else {
        for (uint32_t i = 0; i < n->kcap; i++) {
            if (n->kids.table[i] != NULL) {
                node_free_all(n->kids.table[i]);
            }
        }
        free(n->kids.table);
    }
    for (uint32_t i = 0; i < n->nsubs; i++) {
        if (n->subs[i].sub != &n->hsub0) {
            free(n->subs[i].sub);
        }
    }
    if (n->subs != &n->sub0) {
        free(n->subs);
    }
    free(n);
}

/* ---- public API ----------------------------------------------------------- */

trie_t *trie_new(void)
{
    trie_t *t = xcalloc(1, sizeof(*t));
    t->root = node_new(NULL, "", 0, 0, 0);
    gen_reserve(t);
    return t;
}

void trie_free(trie_t *t)
{
    if (t == NULL) {
        return;
    }
    node_free_all(t->root);
    free(t);
}

trie_sub_t *trie_insert(trie_t *t, const char *pattern, size_t len, trie_client_t *client,
                        int *first)
{
    assert(pattern != NULL && len > 0 && client != NULL);

    trie_node_t *n = t->root;
    const char *p = pattern;
    const char *end = pattern + len;
    size_t depth = 0;
    for (;;) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *tok_end = dot != NULL ? dot : end;
        /* A valid pattern has no empty token and ">" only last (the caller checked). */
        assert(tok_end > p);
        assert(n->parent == NULL || n->parent->gt != n);
        n = child_get(t, n, pattern, (size_t)(p - pattern), (size_t)(tok_end - pattern));
        depth++;
        if (dot == NULL) {
            break;
        }
        p = dot + 1;
    }
    assert(depth <= WSB_TOPIC_MAX_TOKENS);
    (void)depth;

    if (first != NULL) {
        *first = n->nsubs == 0;
    }
    if (n->nsubs == 0) {
        t->patterns++;
    }
    if (n->nsubs == n->subs_cap) {
        if (n->subs_cap > UINT32_MAX / 2) {
            abort(); /* cannot happen: max_connections bounds the subscribers of a node */
        }
        /* A heap array has room for two at least (subs_cap is 1 while inline). */
        uint32_t cap = n->subs_cap < 2 ? 2 : n->subs_cap * 2;
        if (n->subs == &n->sub0) {
            n->subs = xmalloc(cap * sizeof(*n->subs));
            n->subs[0] = n->sub0;
        } else {
            n->subs = xrealloc(n->subs, cap * sizeof(*n->subs));
        }
        n->subs_cap = cap;
    }

    trie_sub_t *sub = n->hsub0.node == NULL ? &n->hsub0 : xmalloc(sizeof(*sub));
    sub->node = n;
    sub->index = n->nsubs;
    n->subs[n->nsubs].client = client;
    n->subs[n->nsubs].sub = sub;
    n->nsubs++;
    t->subs++;
    return sub;
}

int trie_remove(trie_t *t, trie_sub_t *sub)
{
    trie_node_t *n = sub->node;
    uint32_t i = sub->index;
    assert(i < n->nsubs && n->subs[i].sub == sub);

    n->nsubs--;
    if (i != n->nsubs) {
        n->subs[i] = n->subs[n->nsubs];
        n->subs[i].sub->index = i;
    }
    if (sub == &n->hsub0) {
        sub->node = NULL;
    } else {
        free(sub);
    }
    t->subs--;

    if (n->nsubs > 0) {
        /* Give memory back after a burst of unsubscribes; 1/4 load keeps churn cheap. */
        if (n->subs_cap >= 8 && n->nsubs * 4 <= n->subs_cap) {
            n->subs_cap /= 2;
            n->subs = xrealloc(n->subs, n->subs_cap * sizeof(*n->subs));
        }
        return 0;
    }
    if (n->subs != &n->sub0) {
        free(n->subs);
        n->subs = &n->sub0;
        n->subs_cap = 1;
    }
    t->patterns--;
    prune(t, n);
    return 1;
}

trie_client_t *trie_sub_client(const trie_sub_t *sub)
{
    return sub->node->subs[sub->index].client;
}

const char *trie_sub_pattern(const trie_sub_t *sub)
{
    return sub->node->path;
}

size_t trie_subscription_count(const trie_t *t)
{
    return t->subs;
}

size_t trie_pattern_count(const trie_t *t)
{
    return t->patterns;
}

size_t trie_node_count(const trie_t *t)
{
    return t->nodes;
}

/* ---- matching ------------------------------------------------------------- */

typedef struct {
    const char *tok[WSB_TOPIC_MAX_TOKENS];
    uint32_t tok_len[WSB_TOPIC_MAX_TOKENS];
    uint32_t tok_hash[WSB_TOPIC_MAX_TOKENS];
    uint32_t ntok;
    int reserved; /* the first token starts with '$': no first-level wildcards */
    int stop;
    uint64_t gen;
    size_t reported;
    trie_match_cb cb;
    void *user_data;
} match_t;

/*
 * Splits `topic` into tokens and hashes them in one pass. Returns 0 when the
 * topic has a shape no valid exact topic has (see the file comment).
 */
static int match_split(match_t *m, const char *topic, size_t len)
{
    if (len == 0 || len > WSB_TOPIC_MAX_LEN) {
        return 0;
    }
    const char *start = topic;
    uint32_t h = FNV_OFFSET;
    m->ntok = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || topic[i] == '.') {
            const char *tok_end = topic + i;
            if (tok_end == start || m->ntok == WSB_TOPIC_MAX_TOKENS) {
                return 0;
            }
            m->tok[m->ntok] = start;
            m->tok_len[m->ntok] = (uint32_t)(tok_end - start);
            m->tok_hash[m->ntok] = hash_finish(h);
            m->ntok++;
            start = tok_end + 1;
            h = FNV_OFFSET;
        } else {
            h = (h ^ (unsigned char)topic[i]) * FNV_PRIME;
        }
    }
    m->reserved = topic[0] == '$';
    return 1;
}

/* The per-subscriber loop: one load of the client and its stamp per entry. */
static void report(match_t *m, const trie_node_t *n)
{
    const sub_entry_t *e = n->subs;
    const sub_entry_t *end = e + n->nsubs;
    const uint64_t gen = m->gen;
    for (; e < end; e++) {
        trie_client_t *c = e->client;
        if (c->match_gen == gen) {
            continue;
        }
        c->match_gen = gen;
        m->reported++;
        if (m->cb(c, m->user_data) != 0) {
            m->stop = 1;
            return;
        }
    }
}

static void walk(match_t *m, const trie_node_t *n, uint32_t i);

/* `child` consumed token next - 1: report it at the topic's end, else go deeper. */
static inline void descend(match_t *m, const trie_node_t *child, uint32_t next)
{
    if (next == m->ntok) {
        if (child->nsubs > 0) {
            report(m, child);
        }
    } else {
        walk(m, child, next);
    }
}

/* `n` has consumed tokens [0, i) and i < ntok. Recursion depth <= ntok. */
static void walk(match_t *m, const trie_node_t *n, uint32_t i)
{
    const int wild = i > 0 || !m->reserved;

    /* ">" takes one or more tokens, and at least token i remains. */
    if (wild && n->gt != NULL && n->gt->nsubs > 0) {
        report(m, n->gt);
        if (m->stop) {
            return;
        }
    }
    if (n->nkids > 0) {
        const trie_node_t *lit = kid_find(n, m->tok[i], m->tok_len[i], m->tok_hash[i]);
        if (lit != NULL) {
            descend(m, lit, i + 1);
            if (m->stop) {
                return;
            }
        }
    }
    if (wild && n->star != NULL) {
        descend(m, n->star, i + 1);
    }
}

size_t trie_match(trie_t *t, const char *topic, size_t len, trie_match_cb cb, void *user_data)
{
    match_t m;
    if (t->subs == 0 || !match_split(&m, topic, len)) {
        return 0;
    }
    m.stop = 0;
    if (t->gen + 1 == t->gen_end) {
        gen_reserve(t);
    }
    m.gen = ++t->gen;
    m.reported = 0;
    m.cb = cb;
    m.user_data = user_data;
    walk(&m, t->root, 0);
    return m.reported;
}
