/*
 * test_admin_api.c - the admin API's merge of the nodes' answers
 * (broker/ingress/admin_api.h, admin_api_merge): topics summed per topic
 * with the highest seq and capped at ADMIN_TOPICS_MAX ("truncated"),
 * connection pages in (node, worker, connection) order with a cursor that
 * names the node, a node whose answer was cut ("_more") ending the page,
 * disconnects summed, and "nodes" listing who answered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "ingress/admin_api.h"

#include <cmocka.h>

static json_t *J(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (j == NULL) {
        fail_msg("bad test JSON: %s", err.text);
    }
    return j;
}

static void assert_json(json_t *got, const char *want_text)
{
    json_t *want = J(want_text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        print_error("got  %s\nwant %s\n", g, w);
        free(g);
        free(w);
        fail();
    }
    json_decref(want);
}

static void test_topics_sum_over_nodes(void **state)
{
    (void)state;
    admin_query_t q = {.kind = ADMIN_TOPICS};
    json_t *b[2] = {
        J("{\"node\":\"B\",\"truncated\":false,\"topics\":["
          "{\"topic\":\"chat.1\",\"subscribers\":2,\"rule\":\"chat.>\",\"seq\":5},"
          "{\"topic\":\"a.*\",\"subscribers\":1,\"rule\":null,\"seq\":null}]}"),
        J("{\"node\":\"A\",\"truncated\":false,\"topics\":["
          "{\"topic\":\"chat.1\",\"subscribers\":3,\"rule\":\"chat.>\",\"seq\":9}]}"),
    };
    json_t *out = admin_api_merge(&q, b, 2);
    assert_json(out,
                "{\"topics\":[{\"topic\":\"a.*\",\"subscribers\":1,\"rule\":null,\"seq\":null},"
                "{\"topic\":\"chat.1\",\"subscribers\":5,\"rule\":\"chat.>\",\"seq\":9}],"
                "\"truncated\":false,\"nodes\":[\"B\",\"A\"]}");
    json_decref(out);
    /* A node's own truncation shows; and the listing stops at the cap. */
    json_t *many = json_array();
    for (int i = 0; i < ADMIN_TOPICS_MAX + 5; i++) {
        char name[32];
        (void)snprintf(name, sizeof name, "t.%05d", i);
        json_array_append_new(many, json_pack("{s:s,s:i,s:n,s:i}", "topic", name, "subscribers", 1,
                                              "rule", "seq", 0));
    }
    json_decref(b[1]);
    b[1] = json_pack("{s:s,s:b,s:o}", "node", "A", "truncated", 0, "topics", many);
    out = admin_api_merge(&q, b, 2);
    assert_int_equal(json_array_size(json_object_get(out, "topics")), ADMIN_TOPICS_MAX);
    assert_true(json_is_true(json_object_get(out, "truncated")));
    json_decref(out);
    json_object_set_new(b[0], "truncated", json_true());
    out = admin_api_merge(&q, b, 1);
    assert_true(json_is_true(json_object_get(out, "truncated")));
    json_decref(out);
    json_decref(b[0]);
    json_decref(b[1]);
}

#define CONN(node, w, no)                                                                          \
    "{\"client\":\"" node "-" #w "-" #no "\",\"user\":null,\"addr\":\"x\",\"subscriptions\":0,"    \
    "\"queued_bytes\":0,\"age_s\":0,\"node\":\"" node "\",\"_w\":" #w ",\"_no\":" #no "}"

static void test_connections_page_over_nodes(void **state)
{
    (void)state;
    admin_query_t q = {.kind = ADMIN_CONNECTIONS, .limit = 2};
    /* The local node (B) first, as the origin lists it; pages go by node id. */
    json_t *b[2] = {
        J("{\"node\":\"B\",\"connections\":[" CONN("B", 0, 1) "," CONN("B", 1, 4) "," CONN("B", 1,
                                                                                           7) "]}"),
        J("{\"node\":\"A\",\"connections\":[" CONN("A", 0, 3) "]}"),
    };
    json_t *out = admin_api_merge(&q, b, 2);
    json_t *list = json_object_get(out, "connections");
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "client")),
                        "A-0-3");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "client")),
                        "B-0-1");
    assert_null(json_object_get(json_array_get(list, 0), "_w")); /* internal keys go */
    assert_null(json_object_get(json_array_get(list, 0), "_no"));
    assert_string_equal(json_string_value(json_object_get(out, "next")), "B/0.1");
    assert_json(json_object_get(out, "nodes"), "[\"B\",\"A\"]");
    json_decref(out);
    /* Everything fits: no next. */
    q.limit = 4;
    out = admin_api_merge(&q, b, 2);
    assert_int_equal(json_array_size(json_object_get(out, "connections")), 4);
    assert_true(json_is_null(json_object_get(out, "next")));
    json_decref(out);
    /* A's answer was cut to fit Redis: the page ends after its last one,
     * before B's, though there is room. */
    json_object_set_new(b[1], "_more", json_true());
    out = admin_api_merge(&q, b, 2);
    assert_int_equal(json_array_size(json_object_get(out, "connections")), 1);
    assert_string_equal(json_string_value(json_object_get(out, "next")), "A/0.3");
    json_decref(out);
    json_decref(b[0]);
    json_decref(b[1]);
}

static void test_disconnects_sum(void **state)
{
    (void)state;
    admin_query_t q = {.kind = ADMIN_DISCONNECT};
    json_t *b[3] = {J("{\"node\":\"C\",\"disconnected\":2}"),
                    J("{\"node\":\"A\",\"disconnected\":0}"),
                    J("{\"node\":\"B\",\"disconnected\":1}")};
    json_t *out = admin_api_merge(&q, b, 3);
    assert_json(out, "{\"disconnected\":3,\"nodes\":[\"C\",\"A\",\"B\"]}");
    json_decref(out);
    for (int i = 0; i < 3; i++) {
        json_decref(b[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_sum_over_nodes),
        cmocka_unit_test(test_connections_page_over_nodes),
        cmocka_unit_test(test_disconnects_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
