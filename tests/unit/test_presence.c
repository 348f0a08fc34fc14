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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
