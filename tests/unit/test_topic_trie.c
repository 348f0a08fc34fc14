/*
 * test_topic_trie.c - the subscription trie against its contract and, in a
 * seeded randomized differential test, against wsb_topic_matches(), the
 * reference semantics for patterns.
 */
#include "core/topic_trie.h"
#include "wsb/topic.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* cmocka.h needs the headers above first; keep it out of the sorted block. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

typedef struct {
    trie_client_t tc;
    int id;
} client_t;

#define CLIENT_OF(c) ((client_t *)(void *)((char *)(c)-offsetof(client_t, tc)))

static void clients_init(client_t *clients, int n)
{
    for (int i = 0; i < n; i++) {
        memset(&clients[i], 0, sizeof(clients[i]));
        clients[i].id = i;
    }
}

/* ---- small helpers -------------------------------------------------------- */

static trie_sub_t *sub(trie_t *t, const char *pattern, client_t *c)
{
    return trie_insert(t, pattern, strlen(pattern), &c->tc, NULL);
}

static int mask_cb(trie_client_t *c, void *user_data)
{
    uint64_t *mask = user_data;
    uint64_t bit = UINT64_C(1) << CLIENT_OF(c)->id;
    /* Exactly once per client and match call. */
    assert_true((*mask & bit) == 0);
    *mask |= bit;
    return 0;
}

/* The set of client ids (< 64) reported for `topic`; checks the return value too. */
static uint64_t match_mask(trie_t *t, const char *topic)
{
    uint64_t mask = 0;
    size_t n = trie_match(t, topic, strlen(topic), mask_cb, &mask);
    assert_int_equal(n, (size_t)__builtin_popcountll(mask));
    return mask;
}

#define BIT(i) (UINT64_C(1) << (i))

/* ---- PRNG (splitmix64) ---------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

static void shuffle(size_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(i);
        size_t tmp = a[i - 1];
        a[i - 1] = a[j];
        a[j] = tmp;
    }
}

/* ---- basics --------------------------------------------------------------- */

static void test_empty(void **state)
{
    (void)state;
    trie_t *t = trie_new();
    assert_int_equal(match_mask(t, "a"), 0);
    assert_int_equal(match_mask(t, "a.b.c"), 0);
    assert_int_equal(trie_subscription_count(t), 0);
    assert_int_equal(trie_pattern_count(t), 0);
    assert_int_equal(trie_node_count(t), 0);
    trie_free(t);
    trie_free(NULL);
}

static void test_insert_match_remove(void **state)
{
    (void)state;
    client_t c[3];
    clients_init(c, 3);
    trie_t *t = trie_new();

    trie_sub_t *s0 = sub(t, "prices.btc.usd", &c[0]);
    trie_sub_t *s1 = sub(t, "prices.btc.eur", &c[1]);
    trie_sub_t *s2 = sub(t, "prices.btc.usd", &c[2]);
    assert_int_equal(match_mask(t, "prices.btc.usd"), BIT(0) | BIT(2));
    assert_int_equal(match_mask(t, "prices.btc.eur"), BIT(1));
    assert_int_equal(match_mask(t, "prices.btc"), 0);
    assert_int_equal(match_mask(t, "prices.btc.usd.x"), 0);
    assert_int_equal(match_mask(t, "prices.eth.usd"), 0);
    assert_int_equal(match_mask(t, "prices.btc.us"), 0);
    assert_int_equal(match_mask(t, "prices.btc.usdx"), 0);

    assert_ptr_equal(trie_sub_client(s0), &c[0].tc);
    assert_ptr_equal(trie_sub_client(s1), &c[1].tc);
    assert_string_equal(trie_sub_pattern(s0), "prices.btc.usd");
    assert_string_equal(trie_sub_pattern(s1), "prices.btc.eur");
    assert_string_equal(trie_sub_pattern(s2), "prices.btc.usd");

    assert_int_equal(trie_remove(t, s0), 0);
    assert_int_equal(match_mask(t, "prices.btc.usd"), BIT(2));
    assert_string_equal(trie_sub_pattern(s2), "prices.btc.usd");
    assert_int_equal(trie_remove(t, s2), 1);
    assert_int_equal(match_mask(t, "prices.btc.usd"), 0);
    assert_int_equal(match_mask(t, "prices.btc.eur"), BIT(1));
    assert_int_equal(trie_remove(t, s1), 1);
    assert_int_equal(match_mask(t, "prices.btc.eur"), 0);
    assert_int_equal(trie_node_count(t), 0);
    trie_free(t);
}

static void test_pattern_not_nul_terminated(void **state)
{
    (void)state;
    client_t c[1];
    clients_init(c, 1);
    trie_t *t = trie_new();
    const char buf[] = "a.b.cXYZ";
    trie_sub_t *s = trie_insert(t, buf, 5, &c[0].tc, NULL);
    assert_string_equal(trie_sub_pattern(s), "a.b.c");
    assert_int_equal(match_mask(t, "a.b.c"), BIT(0));
    const char topic[] = "a.b.c.d";
    uint64_t mask = 0;
    assert_int_equal(trie_match(t, topic, 5, mask_cb, &mask), 1);
    assert_int_equal(mask, BIT(0));
    trie_remove(t, s);
    trie_free(t);
}

static void test_star(void **state)
{
    (void)state;
    client_t c[4];
    clients_init(c, 4);
    trie_t *t = trie_new();
    sub(t, "a.*", &c[0]);
    sub(t, "*.b", &c[1]);
    sub(t, "a.*.c", &c[2]);
    sub(t, "*", &c[3]);

    assert_int_equal(match_mask(t, "a.b"), BIT(0) | BIT(1));
    assert_int_equal(match_mask(t, "a.x"), BIT(0));
    assert_int_equal(match_mask(t, "x.b"), BIT(1));
    assert_int_equal(match_mask(t, "a"), BIT(3));
    assert_int_equal(match_mask(t, "x"), BIT(3));
    assert_int_equal(match_mask(t, "a.b.c"), BIT(2));
    assert_int_equal(match_mask(t, "a.b.c.d"), 0);
    assert_int_equal(match_mask(t, "a.b.d"), 0);
    assert_int_equal(match_mask(t, "b.a"), 0);
    trie_free(t);
}

static void test_gt_needs_a_token(void **state)
{
    (void)state;
    client_t c[4];
    clients_init(c, 4);
    trie_t *t = trie_new();
    sub(t, "a.>", &c[0]);
    sub(t, ">", &c[1]);
    sub(t, "a.*.>", &c[2]);
    sub(t, "*.>", &c[3]);

    assert_int_equal(match_mask(t, "a"), BIT(1));
    assert_int_equal(match_mask(t, "a.b"), BIT(0) | BIT(1) | BIT(3));
    assert_int_equal(match_mask(t, "a.b.c"), BIT(0) | BIT(1) | BIT(2) | BIT(3));
    assert_int_equal(match_mask(t, "a.b.c.d.e.f"), BIT(0) | BIT(1) | BIT(2) | BIT(3));
    assert_int_equal(match_mask(t, "b"), BIT(1));
    assert_int_equal(match_mask(t, "b.c"), BIT(1) | BIT(3));
    trie_free(t);
}

static void test_exactly_once_overlap(void **state)
{
    (void)state;
    client_t c[2];
    clients_init(c, 2);
    trie_t *t = trie_new();
    const char *pats[] = {"a.b", "a.*", "a.>", ">", "*.b", "*.*", "*.>"};
    trie_sub_t *subs[7];
    for (size_t i = 0; i < 7; i++) {
        subs[i] = sub(t, pats[i], &c[0]);
    }
    sub(t, "a.b", &c[1]);
    sub(t, "a.b", &c[1]); /* duplicate (pattern, client): still reported once */

    for (int round = 0; round < 3; round++) {
        assert_int_equal(match_mask(t, "a.b"), BIT(0) | BIT(1));
    }
    assert_int_equal(match_mask(t, "a.c"), BIT(0));
    assert_int_equal(match_mask(t, "x.b.c"), BIT(0));

    /* Still once while the overlapping patterns go away one by one. */
    for (size_t i = 0; i < 7; i++) {
        uint64_t expect = (i < 6 ? BIT(0) : 0) | BIT(1);
        trie_remove(t, subs[i]);
        assert_int_equal(match_mask(t, "a.b"), expect);
    }
    trie_free(t);
}

static int stop_after_cb(trie_client_t *c, void *user_data)
{
    int *calls = user_data;
    (void)c;
    (*calls)++;
    return *calls >= 3;
}

static int count_cb(trie_client_t *c, void *user_data)
{
    int *calls = user_data;
    (void)c;
    (*calls)++;
    return 0;
}

static void test_callback_stops(void **state)
{
    (void)state;
    client_t c[10];
    clients_init(c, 10);
    trie_t *t = trie_new();
    for (int i = 0; i < 10; i++) {
        sub(t, i % 2 ? "a.b" : "a.>", &c[i]);
    }
    int calls = 0;
    assert_int_equal(trie_match(t, "a.b", 3, stop_after_cb, &calls), 3);
    assert_int_equal(calls, 3);
    /* The next match starts a new generation: all ten are reported again. */
    assert_int_equal(match_mask(t, "a.b"), BIT(10) - 1);
    trie_free(t);
}

/* Match stamps never collide: across tries, and across a trie's generation blocks. */
static void test_generations(void **state)
{
    (void)state;
    client_t c[2];
    clients_init(c, 2);
    trie_t *t1 = trie_new();
    trie_t *t2 = trie_new();
    trie_sub_t *s1 = sub(t1, "a", &c[0]);
    sub(t2, "a", &c[1]);
    /* c[0] leaves t1 for t2: its t1 stamp must not hide it from t2's matches. */
    assert_int_equal(match_mask(t1, "a"), BIT(0));
    trie_remove(t1, s1);
    trie_free(t1);
    sub(t2, "a", &c[0]);
    assert_int_equal(match_mask(t2, "a"), BIT(0) | BIT(1));
    /* Run well past one reserved block of 2^20 generations. */
    for (long i = 0; i < (1L << 20) + 1000; i++) {
        int calls = 0;
        trie_match(t2, "a", 1, count_cb, &calls);
        if (calls != 2) {
            fail_msg("match %ld reported %d clients", i, calls);
        }
    }
    assert_int_equal(match_mask(t2, "a"), BIT(0) | BIT(1));
    trie_free(t2);
}

static void test_first_and_last_flags(void **state)
{
    (void)state;
    client_t c[3];
    clients_init(c, 3);
    trie_t *t = trie_new();
    int first = -1;

    trie_sub_t *a0 = trie_insert(t, "a.*", 3, &c[0].tc, &first);
    assert_int_equal(first, 1);
    trie_sub_t *a1 = trie_insert(t, "a.*", 3, &c[1].tc, &first);
    assert_int_equal(first, 0);
    trie_sub_t *a2 = trie_insert(t, "a.*", 3, &c[1].tc, &first);
    assert_int_equal(first, 0);
    /* A prefix node that exists only as a path is not a pattern yet. */
    trie_sub_t *p = trie_insert(t, "a", 1, &c[2].tc, &first);
    assert_int_equal(first, 1);
    trie_sub_t *ab = trie_insert(t, "a.b", 3, &c[2].tc, &first);
    assert_int_equal(first, 1);

    assert_int_equal(trie_remove(t, a1), 0);
    assert_int_equal(trie_remove(t, a0), 0);
    assert_int_equal(trie_remove(t, a2), 1);
    a0 = trie_insert(t, "a.*", 3, &c[0].tc, &first);
    assert_int_equal(first, 1);
    assert_int_equal(trie_remove(t, a0), 1);
    assert_int_equal(trie_remove(t, p), 1);
    assert_int_equal(trie_remove(t, ab), 1);
    assert_int_equal(trie_node_count(t), 0);
    trie_free(t);
}

static void test_gauges(void **state)
{
    (void)state;
    client_t c[3];
    clients_init(c, 3);
    trie_t *t = trie_new();

    trie_sub_t *s1 = sub(t, "a.b.c", &c[0]); /* nodes a, a.b, a.b.c */
    assert_int_equal(trie_node_count(t), 3);
    trie_sub_t *s2 = sub(t, "a.b.c", &c[1]);
    trie_sub_t *s3 = sub(t, "a.*.c", &c[2]); /* + a.*, a.*.c */
    trie_sub_t *s4 = sub(t, "a.>", &c[2]);   /* + a.> */
    trie_sub_t *s5 = sub(t, "a", &c[0]);     /* no new node */
    assert_int_equal(trie_subscription_count(t), 5);
    assert_int_equal(trie_pattern_count(t), 4);
    assert_int_equal(trie_node_count(t), 6);

    trie_remove(t, s5); /* "a" still has children */
    assert_int_equal(trie_node_count(t), 6);
    assert_int_equal(trie_pattern_count(t), 3);
    trie_remove(t, s1);
    assert_int_equal(trie_node_count(t), 6);
    assert_int_equal(trie_pattern_count(t), 3);
    trie_remove(t, s2); /* prunes a.b.c and a.b */
    assert_int_equal(trie_node_count(t), 4);
    trie_remove(t, s3); /* prunes a.*.c and a.* */
    assert_int_equal(trie_node_count(t), 2);
    trie_remove(t, s4); /* prunes a.> and a */
    assert_int_equal(trie_node_count(t), 0);
    assert_int_equal(trie_subscription_count(t), 0);
    assert_int_equal(trie_pattern_count(t), 0);
    trie_free(t);
}

static void test_reserved_topics(void **state)
{
    (void)state;
    client_t c[8];
    clients_init(c, 8);
    trie_t *t = trie_new();
    sub(t, ">", &c[0]);
    sub(t, "*", &c[1]);
    sub(t, "*.stats", &c[2]);
    sub(t, "$sys.>", &c[3]);
    sub(t, "$sys.*", &c[4]);
    sub(t, "$sys.stats", &c[5]);
    sub(t, "*.>", &c[6]);
    sub(t, "a.*", &c[7]);

    assert_int_equal(match_mask(t, "$sys.stats"), BIT(3) | BIT(4) | BIT(5));
    assert_int_equal(match_mask(t, "$sys"), 0);
    assert_int_equal(match_mask(t, "$other.stats"), 0);
    assert_int_equal(match_mask(t, "$"), 0);
    /* Only the first token counts. */
    assert_int_equal(match_mask(t, "x.stats"), BIT(0) | BIT(2) | BIT(6));
    assert_int_equal(match_mask(t, "a.$x"), BIT(0) | BIT(6) | BIT(7));
    assert_int_equal(match_mask(t, "x"), BIT(0) | BIT(1));
    trie_free(t);
}

static void test_pruning_random_orders(void **state)
{
    (void)state;
    enum { NPAT = 24, NCLIENT = 5, NSUB = NPAT * NCLIENT };
    const char *pats[NPAT] = {
        "a",     "a.b",   "a.b.c", "a.b.c.d", "a.*",   "a.*.c", "a.>",  "a.b.>",
        "*",     "*.b",   "*.*.*", "*.>",     ">",     "b",     "b.a",  "b.a.b",
        "b.*.>", "x.y.z", "x.y",   "x",       "x.*.z", "x.>",   "$s.>", "$s.a",
    };
    client_t c[NCLIENT];
    clients_init(c, NCLIENT);
    trie_sub_t *subs[NSUB];
    size_t order[NSUB];

    rng_state = 42;
    for (int round = 0; round < 50; round++) {
        trie_t *t = trie_new();
        for (size_t i = 0; i < NSUB; i++) {
            subs[i] = sub(t, pats[i % NPAT], &c[i / NPAT]);
            order[i] = i;
        }
        size_t full = trie_node_count(t);
        assert_int_equal(full, 28); /* distinct token prefixes of pats[] */
        assert_int_equal(trie_pattern_count(t), NPAT);
        shuffle(order, NSUB);
        for (size_t k = 0; k < NSUB; k++) {
            size_t nodes_before = trie_node_count(t);
            trie_remove(t, subs[order[k]]);
            assert_true(trie_node_count(t) <= nodes_before);
            assert_int_equal(trie_subscription_count(t), NSUB - k - 1);
        }
        assert_int_equal(trie_node_count(t), 0);
        assert_int_equal(trie_pattern_count(t), 0);
        assert_int_equal(match_mask(t, "a.b.c"), 0);
        /* The emptied trie is fully usable again. */
        trie_sub_t *again = sub(t, "a.b", &c[0]);
        assert_int_equal(match_mask(t, "a.b"), BIT(0));
        assert_int_equal(trie_node_count(t), 2);
        trie_remove(t, again);
        assert_int_equal(trie_node_count(t), 0);
        trie_free(t);
    }
}

/* One node with many literal children: the hash table grows, shrinks and goes inline again. */
static void test_wide_node(void **state)
{
    (void)state;
    enum { N = 3000 };
    client_t c[2];
    clients_init(c, 2);
    trie_t *t = trie_new();
    trie_sub_t **subs = calloc(N, sizeof(trie_sub_t *));
    size_t *order = calloc(N, sizeof(*order));
    char *live = calloc(N, 1);
    assert_non_null(subs);
    assert_non_null(order);
    assert_non_null(live);
    char buf[32];

    for (size_t i = 0; i < N; i++) {
        (void)snprintf(buf, sizeof(buf), "w.k%zu", i);
        subs[i] = sub(t, buf, &c[i % 2]);
        live[i] = 1;
        order[i] = i;
    }
    assert_int_equal(trie_node_count(t), N + 1);
    rng_state = 7;
    shuffle(order, N);
    for (size_t k = 0; k < N; k++) {
        size_t victim = order[k];
        trie_remove(t, subs[victim]);
        live[victim] = 0;
        /* Check every child after each removal while the table is small, then a sample. */
        size_t probes = N - k < 64 ? N : 8;
        for (size_t p = 0; p < probes; p++) {
            size_t i = probes == N ? p : rng_below(N);
            (void)snprintf(buf, sizeof(buf), "w.k%zu", i);
            assert_int_equal(match_mask(t, buf), live[i] ? BIT(i % 2) : 0);
        }
    }
    assert_int_equal(trie_node_count(t), 0);
    free(live);
    free(order);
    free(subs);
    trie_free(t);
}

static void test_many_subscribers_one_topic(void **state)
{
    (void)state;
    enum { N = 5000 };
    client_t *c = calloc(N, sizeof(*c));
    trie_sub_t **subs = calloc(N, sizeof(trie_sub_t *));
    assert_non_null(c);
    assert_non_null(subs);
    clients_init(c, N);
    trie_t *t = trie_new();
    for (int i = 0; i < N; i++) {
        subs[i] = sub(t, i % 3 == 0 ? "t.x" : (i % 3 == 1 ? "t.*" : "t.>"), &c[i]);
    }
    int calls = 0;
    assert_int_equal(trie_match(t, "t.x", 3, count_cb, &calls), N);
    assert_int_equal(calls, N);
    /* Remove every other subscriber (swap-remove keeps the handles valid). */
    for (int i = 0; i < N; i += 2) {
        trie_remove(t, subs[i]);
    }
    calls = 0;
    assert_int_equal(trie_match(t, "t.x", 3, count_cb, &calls), N / 2);
    assert_int_equal(calls, N / 2);
    for (int i = 1; i < N; i += 2) {
        assert_ptr_equal(trie_sub_client(subs[i]), &c[i].tc);
        trie_remove(t, subs[i]);
    }
    assert_int_equal(trie_node_count(t), 0);
    free(subs);
    free(c);
    trie_free(t);
}

/*
 * A node's first subscription entry lives inside the node; the second moves
 * the entries to the heap, and the last one leaving brings them back inline.
 * One handle also lives in the node, free again when its subscriber goes.
 * Removing any subscriber, the first included, must keep the others reported
 * and their handles valid.
 */
static void test_inline_entry_transitions(void **state)
{
    (void)state;
    client_t c[4];
    clients_init(c, 4);
    trie_t *t = trie_new();

    trie_sub_t *s0 = sub(t, "a.b", &c[0]); /* inline */
    assert_int_equal(match_mask(t, "a.b"), BIT(0));
    trie_sub_t *s1 = sub(t, "a.b", &c[1]); /* inline -> heap */
    trie_sub_t *s2 = sub(t, "a.b", &c[2]);
    assert_int_equal(match_mask(t, "a.b"), BIT(0) | BIT(1) | BIT(2));

    /* The first subscriber goes while others remain. */
    assert_int_equal(trie_remove(t, s0), 0);
    assert_int_equal(match_mask(t, "a.b"), BIT(1) | BIT(2));
    assert_string_equal(trie_sub_pattern(s1), "a.b");
    assert_ptr_equal(trie_sub_client(s2), &c[2].tc);
    /* The first handle (the node's own) is free again: a new subscriber takes it. */
    s0 = sub(t, "a.b", &c[3]);
    assert_int_equal(match_mask(t, "a.b"), BIT(1) | BIT(2) | BIT(3));
    assert_ptr_equal(trie_sub_client(s0), &c[3].tc);
    assert_ptr_equal(trie_sub_client(s1), &c[1].tc);
    assert_int_equal(trie_remove(t, s2), 0);
    assert_int_equal(trie_remove(t, s0), 0);
    assert_ptr_equal(trie_sub_client(s1), &c[1].tc);
    assert_int_equal(match_mask(t, "a.b"), BIT(1));
    assert_int_equal(trie_remove(t, s1), 1); /* heap -> inline, node pruned */
    assert_int_equal(trie_node_count(t), 0);
    assert_int_equal(match_mask(t, "a.b"), 0);

    /* A node that stays (it has a child) goes back inline and is reused. */
    trie_sub_t *deep = sub(t, "a.b.c", &c[3]);
    s0 = sub(t, "a.b", &c[0]);
    s1 = sub(t, "a.b", &c[1]);
    assert_int_equal(trie_remove(t, s1), 0);
    assert_int_equal(trie_remove(t, s0), 1);
    assert_int_equal(trie_node_count(t), 3);
    assert_int_equal(match_mask(t, "a.b"), 0);
    for (int round = 0; round < 3; round++) {
        int first = 0;
        s0 = trie_insert(t, "a.b", 3, &c[0].tc, &first);
        assert_int_equal(first, 1);
        assert_string_equal(trie_sub_pattern(s0), "a.b");
        assert_int_equal(match_mask(t, "a.b"), BIT(0));
        s1 = sub(t, "a.b", &c[1]);
        s2 = sub(t, "a.b", &c[2]);
        assert_int_equal(match_mask(t, "a.b"), BIT(0) | BIT(1) | BIT(2));
        assert_ptr_equal(trie_sub_client(s2), &c[2].tc);
        /* Remove in a different order each round. */
        trie_sub_t *order[3][3] = {{s0, s1, s2}, {s2, s0, s1}, {s1, s2, s0}};
        uint64_t left = BIT(0) | BIT(1) | BIT(2);
        for (int k = 0; k < 3; k++) {
            left &= ~BIT(CLIENT_OF(trie_sub_client(order[round][k]))->id);
            assert_int_equal(trie_remove(t, order[round][k]), k == 2);
            assert_int_equal(match_mask(t, "a.b"), left);
        }
    }
    assert_int_equal(match_mask(t, "a.b.c"), BIT(3));
    trie_remove(t, deep);
    assert_int_equal(trie_node_count(t), 0);

    /* trie_free() releases inline and heap entries and handles. */
    sub(t, "x", &c[0]);
    sub(t, "y", &c[0]);
    sub(t, "y", &c[1]);
    trie_free(t);
}

/*
 * The reported pattern is the node's path: exact for every node, including
 * one created as an inner node of a longer pattern and subscribed later, and
 * wildcard nodes.
 */
static void test_pattern_of_every_node(void **state)
{
    (void)state;
    client_t c[1];
    clients_init(c, 1);
    trie_t *t = trie_new();
    const char *patterns[] = {"alpha.beta.gamma.delta",
                              "alpha.beta",
                              "alpha",
                              "alpha.*.gamma",
                              "alpha.*",
                              "alpha.>",
                              ">",
                              "*.x.>",
                              "$sys.clients",
                              "é.ü",
                              "alpha.beta.gamma"};
    enum { NP = sizeof(patterns) / sizeof(patterns[0]) };
    trie_sub_t *subs[NP];
    for (size_t i = 0; i < NP; i++) {
        /* Pass a longer buffer: only len bytes are the pattern. */
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "%s.tail", patterns[i]);
        assert_true(n > 0 && (size_t)n < sizeof(buf));
        subs[i] = trie_insert(t, buf, strlen(patterns[i]), &c[0].tc, NULL);
    }
    for (size_t i = 0; i < NP; i++) {
        assert_string_equal(trie_sub_pattern(subs[i]), patterns[i]);
    }
    for (size_t i = 0; i < NP; i++) {
        trie_remove(t, subs[i]);
        for (size_t j = i + 1; j < NP; j++) {
            assert_string_equal(trie_sub_pattern(subs[j]), patterns[j]);
        }
    }
    assert_int_equal(trie_node_count(t), 0);
    trie_free(t);
}

static void test_limits_and_odd_topics(void **state)
{
    (void)state;
    client_t c[3];
    clients_init(c, 3);
    trie_t *t = trie_new();
    char deep[2 * WSB_TOPIC_MAX_TOKENS + 8];
    size_t len = 0;
    for (int i = 0; i < WSB_TOPIC_MAX_TOKENS; i++) {
        deep[len++] = i == 0 ? 'd' : '*';
        deep[len++] = '.';
    }
    deep[--len] = '\0'; /* 32 tokens: "d.*.*...*" */
    trie_sub_t *sd = sub(t, deep, &c[0]);
    trie_sub_t *sg = sub(t, ">", &c[1]);

    char topic[2 * WSB_TOPIC_MAX_TOKENS + 8];
    len = 0;
    for (int i = 0; i < WSB_TOPIC_MAX_TOKENS; i++) {
        topic[len++] = i == 0 ? 'd' : 'q';
        topic[len++] = '.';
    }
    topic[--len] = '\0';
    assert_int_equal(match_mask(t, topic), BIT(0) | BIT(1));
    /* Shapes no valid topic has match nothing (the router never passes them). */
    memcpy(topic + len, ".q", 3);
    assert_int_equal(match_mask(t, topic), 0); /* 33 tokens */
    assert_int_equal(match_mask(t, ""), 0);
    assert_int_equal(match_mask(t, "a..b"), 0);
    assert_int_equal(match_mask(t, ".a"), 0);
    assert_int_equal(match_mask(t, "a."), 0);

    /* The longest topic: one 256-byte token. */
    char big[WSB_TOPIC_MAX_LEN + 1];
    memset(big, 'z', WSB_TOPIC_MAX_LEN);
    big[WSB_TOPIC_MAX_LEN] = '\0';
    trie_sub_t *sb = sub(t, big, &c[2]);
    assert_string_equal(trie_sub_pattern(sb), big);
    assert_int_equal(match_mask(t, big), BIT(1) | BIT(2));
    trie_remove(t, sb);
    trie_remove(t, sd);
    trie_remove(t, sg);
    assert_int_equal(trie_node_count(t), 0);
    trie_free(t);
}

/* Tokens that are not ASCII are bytes like any other. */
static void test_utf8_tokens(void **state)
{
    (void)state;
    client_t c[2];
    clients_init(c, 2);
    trie_t *t = trie_new();
    sub(t, "pri\xc3\xa7o.*", &c[0]);
    sub(t, "\xe2\x82\xac.>", &c[1]);
    assert_int_equal(match_mask(t, "pri\xc3\xa7o.x"), BIT(0));
    assert_int_equal(match_mask(t, "pri\xc3\xa7.x"), 0);
    assert_int_equal(match_mask(t, "\xe2\x82\xac.a.b"), BIT(1));
    trie_free(t); /* frees the remaining subscriptions too (checked by ASan/valgrind) */
}

/* ---- randomized differential test ---------------------------------------- */

enum {
    DIFF_CLIENTS = 1000,
    DIFF_SUBS = 4000,
    DIFF_TOPICS = 1500,
    DIFF_ROUNDS = 4,
    DIFF_SLOTS = 2 * DIFF_SUBS,
    PAT_MAX = 64,
};

typedef struct {
    trie_sub_t *handle; /* NULL when removed */
    int client;
    size_t len;
    char pat[PAT_MAX];
} diff_sub_t;

typedef struct {
    client_t *clients;
    diff_sub_t *subs;
    size_t nsubs; /* slots used, live or not */
    size_t live;
    int *expected; /* per client, for the current topic */
    int *reported;
    trie_t *t;
    size_t checks;
    size_t matched_pairs;
} diff_t;

/* Small alphabet, so patterns overlap a lot; "$s" makes some topics reserved. */
static const char *const alphabet[] = {"a", "b", "c", "d", "$s"};

static const char *rand_token(void)
{
    size_t r = rng_below(20);
    return r < 2 ? alphabet[4] : alphabet[r % 4];
}

static size_t rand_pattern(char *out)
{
    size_t depth = 1 + rng_below(6);
    size_t len = 0;
    for (size_t i = 0; i < depth; i++) {
        size_t r = rng_below(100);
        const char *tok = rand_token();
        if (r < 25) {
            tok = "*";
        } else if (i == depth - 1 && r < 45) {
            tok = ">";
        }
        size_t n = strlen(tok);
        if (i > 0) {
            out[len++] = '.';
        }
        memcpy(out + len, tok, n);
        len += n;
    }
    out[len] = '\0';
    return len;
}

static size_t rand_topic(char *out)
{
    size_t depth = 1 + rng_below(7);
    size_t len = 0;
    for (size_t i = 0; i < depth; i++) {
        const char *tok = rand_token();
        size_t n = strlen(tok);
        if (i > 0) {
            out[len++] = '.';
        }
        memcpy(out + len, tok, n);
        len += n;
    }
    out[len] = '\0';
    return len;
}

static size_t live_with_pattern(const diff_t *d, const char *pat, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nsubs; i++) {
        const diff_sub_t *s = &d->subs[i];
        if (s->handle != NULL && s->len == len && memcmp(s->pat, pat, len) == 0) {
            n++;
        }
    }
    return n;
}

static void diff_insert(diff_t *d)
{
    assert_true(d->nsubs < DIFF_SLOTS);
    diff_sub_t *s = &d->subs[d->nsubs++];
    s->len = rand_pattern(s->pat);
    assert_int_equal(wsb_topic_check(s->pat, s->len, WSB_TOPIC_PATTERN, NULL), 0);
    s->client = (int)rng_below(DIFF_CLIENTS);
    size_t others = live_with_pattern(d, s->pat, s->len);
    int first = -1;
    s->handle = trie_insert(d->t, s->pat, s->len, &d->clients[s->client].tc, &first);
    assert_int_equal(first, others == 0);
    assert_ptr_equal(trie_sub_client(s->handle), &d->clients[s->client].tc);
    assert_string_equal(trie_sub_pattern(s->handle), s->pat);
    d->live++;
}

static void diff_remove(diff_t *d, size_t i)
{
    diff_sub_t *s = &d->subs[i];
    assert_non_null(s->handle);
    assert_string_equal(trie_sub_pattern(s->handle), s->pat);
    trie_sub_t *h = s->handle;
    s->handle = NULL;
    size_t others = live_with_pattern(d, s->pat, s->len);
    assert_int_equal(trie_remove(d->t, h), others == 0);
    d->live--;
}

static int diff_cb(trie_client_t *c, void *user_data)
{
    diff_t *d = user_data;
    int id = CLIENT_OF(c)->id;
    assert_true(id >= 0 && id < DIFF_CLIENTS);
    d->reported[id]++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Distinct live patterns, and distinct token prefixes (= nodes a pruned trie must have). */
static void expected_gauges(const diff_t *d, size_t *patterns, size_t *nodes)
{
    size_t cap = d->live * 6 + 1;
    char **pref = calloc(cap, sizeof(*pref));
    const char **pats = calloc(d->live + 1, sizeof(*pats));
    assert_non_null(pref);
    assert_non_null(pats);
    size_t np = 0;
    size_t nq = 0;
    for (size_t i = 0; i < d->nsubs; i++) {
        const diff_sub_t *s = &d->subs[i];
        if (s->handle == NULL) {
            continue;
        }
        pats[nq++] = s->pat;
        for (size_t k = 0; k <= s->len; k++) {
            if (k == s->len || s->pat[k] == '.') {
                pref[np] = malloc(k + 1);
                assert_non_null(pref[np]);
                memcpy(pref[np], s->pat, k);
                pref[np][k] = '\0';
                np++;
            }
        }
    }
    qsort(pref, np, sizeof(*pref), cmp_str);
    qsort(pats, nq, sizeof(*pats), cmp_str);
    *nodes = 0;
    for (size_t i = 0; i < np; i++) {
        *nodes += i == 0 || strcmp(pref[i], pref[i - 1]) != 0;
    }
    *patterns = 0;
    for (size_t i = 0; i < nq; i++) {
        *patterns += i == 0 || strcmp(pats[i], pats[i - 1]) != 0;
    }
    for (size_t i = 0; i < np; i++) {
        free(pref[i]);
    }
    free(pref);
    free(pats);
}

static void diff_check(diff_t *d, size_t ntopics)
{
    char topic[PAT_MAX];
    for (size_t k = 0; k < ntopics; k++) {
        size_t tlen = rand_topic(topic);
        assert_int_equal(wsb_topic_check(topic, tlen, WSB_TOPIC_EXACT, NULL), 0);
        memset(d->expected, 0, DIFF_CLIENTS * sizeof(*d->expected));
        memset(d->reported, 0, DIFF_CLIENTS * sizeof(*d->reported));
        for (size_t i = 0; i < d->nsubs; i++) {
            const diff_sub_t *s = &d->subs[i];
            if (s->handle != NULL && !d->expected[s->client] &&
                wsb_topic_matches(s->pat, s->len, topic, tlen)) {
                d->expected[s->client] = 1;
            }
        }
        size_t n = trie_match(d->t, topic, tlen, diff_cb, d);
        size_t want = 0;
        for (int c = 0; c < DIFF_CLIENTS; c++) {
            if (d->reported[c] != d->expected[c]) {
                fail_msg("topic '%s' client %d: reported %d times, expected %d", topic, c,
                         d->reported[c], d->expected[c]);
            }
            want += (size_t)d->expected[c];
        }
        assert_int_equal(n, want);
        d->checks++;
        d->matched_pairs += want;
    }
    size_t patterns = 0;
    size_t nodes = 0;
    expected_gauges(d, &patterns, &nodes);
    assert_int_equal(trie_subscription_count(d->t), d->live);
    assert_int_equal(trie_pattern_count(d->t), patterns);
    assert_int_equal(trie_node_count(d->t), nodes);
}

static void differential_run(uint64_t seed)
{
    diff_t d;
    memset(&d, 0, sizeof(d));
    rng_state = seed;
    d.clients = calloc(DIFF_CLIENTS, sizeof(*d.clients));
    d.subs = calloc(DIFF_SLOTS, sizeof(*d.subs));
    d.expected = calloc(DIFF_CLIENTS, sizeof(*d.expected));
    d.reported = calloc(DIFF_CLIENTS, sizeof(*d.reported));
    assert_non_null(d.clients);
    assert_non_null(d.subs);
    assert_non_null(d.expected);
    assert_non_null(d.reported);
    clients_init(d.clients, DIFF_CLIENTS);
    d.t = trie_new();

    for (size_t i = 0; i < DIFF_SUBS; i++) {
        diff_insert(&d);
    }
    diff_check(&d, DIFF_TOPICS);

    /* Churn: remove about a quarter at random, add a few new ones, re-check. */
    for (int round = 0; round < DIFF_ROUNDS; round++) {
        for (size_t i = 0; i < d.nsubs; i++) {
            if (d.subs[i].handle != NULL && rng_below(4) == 0) {
                diff_remove(&d, i);
            }
        }
        for (size_t i = 0; i < DIFF_SUBS / 10 && d.nsubs < DIFF_SLOTS; i++) {
            diff_insert(&d);
        }
        diff_check(&d, DIFF_TOPICS / 2);
    }

    /* Remove everything in random order, checking along the way. */
    size_t *order = calloc(d.nsubs, sizeof(*order));
    assert_non_null(order);
    size_t n = 0;
    for (size_t i = 0; i < d.nsubs; i++) {
        if (d.subs[i].handle != NULL) {
            order[n++] = i;
        }
    }
    shuffle(order, n);
    for (size_t k = 0; k < n; k++) {
        diff_remove(&d, order[k]);
        if (k % 700 == 699) {
            diff_check(&d, 100);
        }
    }
    diff_check(&d, 100);
    assert_int_equal(trie_node_count(d.t), 0);
    assert_int_equal(trie_subscription_count(d.t), 0);
    assert_int_equal(trie_pattern_count(d.t), 0);
    print_message("seed %llu: %zu topics checked, %zu (client, topic) matches, %zu subscriptions\n",
                  (unsigned long long)seed, d.checks, d.matched_pairs, d.nsubs);

    free(order);
    trie_free(d.t);
    free(d.reported);
    free(d.expected);
    free(d.subs);
    free(d.clients);
}

static void test_differential(void **state)
{
    (void)state;
    static const uint64_t seeds[] = {1, 0x5eed, 20261128};
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        differential_run(seeds[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_insert_match_remove),
        cmocka_unit_test(test_pattern_not_nul_terminated),
        cmocka_unit_test(test_star),
        cmocka_unit_test(test_gt_needs_a_token),
        cmocka_unit_test(test_exactly_once_overlap),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_generations),
        cmocka_unit_test(test_first_and_last_flags),
        cmocka_unit_test(test_gauges),
        cmocka_unit_test(test_reserved_topics),
        cmocka_unit_test(test_pruning_random_orders),
        cmocka_unit_test(test_wide_node),
        cmocka_unit_test(test_many_subscribers_one_topic),
        cmocka_unit_test(test_inline_entry_transitions),
        cmocka_unit_test(test_pattern_of_every_node),
        cmocka_unit_test(test_limits_and_odd_topics),
        cmocka_unit_test(test_utf8_tokens),
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
