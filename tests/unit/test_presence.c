/* test_presence.c - the node's presence table: members in and out, the
 * stats' distinct users, both bounds, and adds and removes from several
 * threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "core/presence.h"
#include "wsb/topic.h"

#include <cmocka.h>
#include <pthread.h>

#define STR(s) ((wsb_str_t){(s), sizeof(s) - 1})

static bool has_member(presence_member_t *m, size_t n, const char *client, const char *user)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].client, client) == 0) {
            return user == NULL ? !m[i].has_user : m[i].has_user && strcmp(m[i].user, user) == 0;
        }
    }
    return false;
}

static void test_members_in_and_out(void **state)
{
    (void)state;
    presence_t *p = presence_new(10, 10);
    assert_int_equal(presence_add(p, STR("chat.a"), "c1", "alice"), PRESENCE_OK);
    assert_int_equal(presence_add(p, STR("chat.a"), "c2", NULL), PRESENCE_OK);
    assert_int_equal(presence_add(p, STR("chat.a"), "c3", "alice"), PRESENCE_OK);
    assert_int_equal(presence_add(p, STR("chat.a"), "c1", "alice"), PRESENCE_OK); /* again */
    assert_int_equal(presence_add(p, STR("chat.b"), "c1", "alice"), PRESENCE_OK);
    size_t n = 0;
    presence_member_t *m = presence_members(p, STR("chat.a"), &n);
    assert_int_equal(n, 3);
    assert_true(has_member(m, n, "c1", "alice"));
    assert_true(has_member(m, n, "c2", NULL));
    assert_true(has_member(m, n, "c3", "alice"));
    free(m);
    uint32_t clients = 0;
    uint32_t users = 0;
    presence_stats(p, STR("chat.a"), &clients, &users);
    assert_int_equal(clients, 3);
    assert_int_equal(users, 1);
    uint64_t topics = 0;
    uint64_t members = 0;
    presence_totals(p, &topics, &members);
    assert_int_equal(topics, 2);
    assert_int_equal(members, 4);

    presence_member_t out;
    assert_true(presence_remove(p, STR("chat.a"), "c1", &out));
    assert_string_equal(out.client, "c1");
    assert_true(out.has_user);
    assert_string_equal(out.user, "alice");
    assert_false(presence_remove(p, STR("chat.a"), "c1", &out));
    assert_false(presence_remove(p, STR("nope"), "c1", NULL));
    assert_true(presence_remove(p, STR("chat.a"), "c2", &out));
    assert_false(out.has_user);
    presence_stats(p, STR("chat.a"), &clients, &users);
    assert_int_equal(clients, 1);
    assert_int_equal(users, 1);
    assert_true(presence_remove(p, STR("chat.a"), "c3", NULL));
    /* An emptied topic leaves the table. */
    m = presence_members(p, STR("chat.a"), &n);
    assert_null(m);
    assert_int_equal(n, 0);
    presence_totals(p, &topics, &members);
    assert_int_equal(topics, 1);
    assert_int_equal(members, 1);
    presence_free(p); /* with chat.b's member left: no leak under ASan */
}

static void test_bounds(void **state)
{
    (void)state;
    presence_t *p = presence_new(2, 3);
    for (int i = 0; i < 3; i++) {
        char c[8];
        (void)snprintf(c, sizeof c, "c%d", i);
        assert_int_equal(presence_add(p, STR("t1"), c, NULL), PRESENCE_OK);
    }
    assert_int_equal(presence_add(p, STR("t1"), "c9", NULL), PRESENCE_MEMBERS_FULL);
    assert_int_equal(presence_add(p, STR("t1"), "c0", NULL), PRESENCE_OK); /* a member already */
    assert_int_equal(presence_add(p, STR("t2"), "c0", NULL), PRESENCE_OK);
    assert_int_equal(presence_add(p, STR("t3"), "c0", NULL), PRESENCE_TOPICS_FULL);
    assert_true(presence_remove(p, STR("t2"), "c0", NULL));
    assert_int_equal(presence_add(p, STR("t3"), "c0", NULL), PRESENCE_OK);
    uint32_t clients = 0;
    uint32_t users = 0;
    presence_stats(p, STR("t1"), &clients, &users);
    assert_int_equal(clients, 3);
    presence_free(p);
}

static void test_long_ids_are_cut(void **state)
{
    (void)state;
    presence_t *p = presence_new(4, 4);
    char client[PRESENCE_CLIENT_MAX + 40];
    char user[PRESENCE_USER_MAX + 40];
    memset(client, 'c', sizeof client - 1);
    client[sizeof client - 1] = '\0';
    memset(user, 'u', sizeof user - 1);
    user[sizeof user - 1] = '\0';
    assert_int_equal(presence_add(p, STR("t"), client, user), PRESENCE_OK);
    size_t n = 0;
    presence_member_t *m = presence_members(p, STR("t"), &n);
    assert_int_equal(n, 1);
    assert_int_equal(strlen(m[0].client), PRESENCE_CLIENT_MAX);
    assert_int_equal(strlen(m[0].user), PRESENCE_USER_MAX);
    free(m);
    assert_true(presence_remove(p, STR("t"), client, NULL));
    presence_free(p);
}

/* Many topics: the shards' buckets grow, every topic stays findable. */
static void test_many_topics(void **state)
{
    (void)state;
    presence_t *p = presence_new(5000, 2);
    char topic[32];
    for (int i = 0; i < 5000; i++) {
        int len = snprintf(topic, sizeof topic, "room.%d", i);
        assert_int_equal(presence_add(p, (wsb_str_t){topic, (size_t)len}, "c", NULL), PRESENCE_OK);
    }
    for (int i = 0; i < 5000; i++) {
        int len = snprintf(topic, sizeof topic, "room.%d", i);
        assert_true(presence_remove(p, (wsb_str_t){topic, (size_t)len}, "c", NULL));
    }
    uint64_t topics = 1;
    uint64_t members = 1;
    presence_totals(p, &topics, &members);
    assert_int_equal(topics, 0);
    assert_int_equal(members, 0);
    presence_free(p);
}

typedef struct {
    char names[8][WSB_TOPIC_MAX_LEN + PRESENCE_CLIENT_MAX + 4];
    size_t n;
} seen_t;

static void drop_cb(wsb_str_t topic, const presence_member_t *m, void *user_data)
{
    seen_t *s = user_data;
    (void)snprintf(s->names[s->n++], sizeof s->names[0], "%.*s/%s", (int)topic.len, topic.p,
                   m->client);
}

static void local_cb(wsb_str_t topic, const presence_member_t *m, size_t n, void *user_data)
{
    seen_t *s = user_data;
    for (size_t i = 0; i < n; i++) {
        (void)snprintf(s->names[s->n++], sizeof s->names[0], "%.*s/%s", (int)topic.len, topic.p,
                       m[i].client);
    }
}

/* Members of other nodes sit next to ours, keyed by (client, origin): a
 * node restarted with the same ids is another origin; a dead origin's
 * members go at once, unconfirmed ones by generation; a dump lists ours. */
static void test_remote_members(void **state)
{
    (void)state;
    presence_t *p = presence_new(10, 10);
    bool added = false;
    assert_int_equal(presence_add(p, STR("t"), "A-0-1", NULL), PRESENCE_OK);
    assert_int_equal(presence_add_remote(p, STR("t"), "B-0-1", "bob", "B/1", 1, &added),
                     PRESENCE_OK);
    assert_true(added);
    assert_int_equal(presence_add_remote(p, STR("t"), "B-0-1", "bob", "B/1", 2, &added),
                     PRESENCE_OK);
    assert_false(added); /* again: only its generation moves */
    assert_int_equal(presence_add_remote(p, STR("t"), "B-0-1", NULL, "B/2", 1, &added),
                     PRESENCE_OK);
    assert_true(added); /* the same id from a restarted node is another member */
    assert_int_equal(presence_add_remote(p, STR("u"), "C-0-1", NULL, "C/1", 1, &added),
                     PRESENCE_OK);
    uint32_t clients = 0;
    uint32_t users = 0;
    presence_stats(p, STR("t"), &clients, &users);
    assert_int_equal(clients, 3);
    assert_int_equal(users, 1);
    /* A local remove does not touch a remote member of the same id, nor back. */
    assert_false(presence_remove(p, STR("t"), "B-0-1", NULL));
    assert_false(presence_remove_remote(p, STR("t"), "A-0-1", "B/1", NULL));

    seen_t seen = {0};
    presence_foreach_local(p, local_cb, &seen);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.names[0], "t/A-0-1");

    /* B/1's member was confirmed with gen 2: a sweep below 2 keeps it, one
     * below 3 drops it; the dead B/2 goes whole. */
    memset(&seen, 0, sizeof seen);
    assert_int_equal(presence_drop_remote(p, "B/1", 2, drop_cb, &seen), 0);
    assert_int_equal(presence_drop_remote(p, "B/1", 3, drop_cb, &seen), 1);
    assert_int_equal(presence_drop_remote(p, "B/2", UINT32_MAX, drop_cb, &seen), 1);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.names[0], "t/B-0-1");
    /* Every other node at once: C's member and its topic go, ours stays. */
    assert_int_equal(presence_drop_remote(p, NULL, UINT32_MAX, NULL, NULL), 1);
    uint64_t topics = 0;
    uint64_t members = 0;
    presence_totals(p, &topics, &members);
    assert_int_equal(topics, 1);
    assert_int_equal(members, 1);
    presence_free(p);
}

typedef struct {
    presence_t *p;
    int id;
} worker_arg_t;

static void *churn(void *arg)
{
    worker_arg_t *a = arg;
    char client[16];
    char topic[16];
    (void)snprintf(client, sizeof client, "w%d", a->id);
    for (int round = 0; round < 2000; round++) {
        int len = snprintf(topic, sizeof topic, "t.%d", round % 7);
        wsb_str_t t = {topic, (size_t)len};
        if (presence_add(a->p, t, client, "u") != PRESENCE_OK ||
            !presence_remove(a->p, t, client, NULL)) {
            return (void *)1;
        }
    }
    return NULL;
}

/* Workers add and remove members of the same topics at once: each sees its
 * own member, and the table ends empty. */
static void test_threads(void **state)
{
    (void)state;
    presence_t *p = presence_new(100, 100);
    pthread_t th[4];
    worker_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg_t){p, i};
        assert_int_equal(pthread_create(&th[i], NULL, churn, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rc = (void *)1;
        assert_int_equal(pthread_join(th[i], &rc), 0);
        assert_null(rc);
    }
    uint64_t topics = 1;
    uint64_t members = 1;
    presence_totals(p, &topics, &members);
    assert_int_equal(topics, 0);
    assert_int_equal(members, 0);
    presence_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_in_and_out),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_long_ids_are_cut),
        cmocka_unit_test(test_many_topics),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_remote_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
