/* test_topic_rules.c - the `topics` config list: options, errors naming the
 * rule and key, first match wins, and how the `history` shorthand combines
 * with it (the history table seqtab gets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "core/topic_rules.h"

#include <cmocka.h>

#define STR(s) ((wsb_str_t){(s), sizeof(s) - 1})

static topic_rules_t rules; /* ~40 KiB: not on cmocka's stack */

static void test_empty_lists(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(topic_rules_parse("", "", &rules, err, sizeof err), 0);
    assert_int_equal(rules.n, 0);
    assert_int_equal(topic_rules_parse(NULL, "[]", &rules, err, sizeof err), 0);
    assert_int_equal(rules.n, 0);
    assert_null(topic_rules_match(&rules, STR("a")));
    assert_false(topic_rules_any_presence(&rules));
}

static void test_options_parsed(void **state)
{
    (void)state;
    char err[256];
    const char *json = "[{\"pattern\":\"chat.>\",\"history\":{\"size\":7,\"ttl\":\"2s\","
                       "\"slow_consumer\":\"drop\"},\"presence\":true,\"join_leave\":true,"
                       "\"publisher\":true},{\"pattern\":\"room.*\",\"presence\":false,"
                       "\"conflate\":true}]";
    assert_int_equal(topic_rules_parse(json, "", &rules, err, sizeof err), 0);
    assert_int_equal(rules.n, 2);
    const topic_rule_t *r = topic_rules_match(&rules, STR("chat.a.b"));
    assert_non_null(r);
    assert_string_equal(r->pattern, "chat.>");
    assert_true(r->has_history);
    assert_int_equal(r->history.size, 7);
    assert_int_equal(r->history.ttl_ms, 2000);
    assert_true(r->history.drop_slow);
    assert_string_equal(r->history.pattern, "chat.>");
    assert_true(r->presence && r->join_leave && r->publisher);
    assert_false(r->conflate);
    r = topic_rules_match(&rules, STR("room.x"));
    assert_non_null(r);
    assert_false(r->has_history || r->presence || r->join_leave || r->publisher);
    assert_true(r->conflate);
    assert_true(topic_rules_conflate(&rules, STR("room.x")));
    assert_false(topic_rules_conflate(&rules, STR("chat.x")));
    assert_false(topic_rules_conflate(NULL, STR("room.x")));
    assert_null(topic_rules_match(&rules, STR("other")));
    assert_true(topic_rules_any_presence(&rules));
}

static void test_first_match_wins(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(topic_rules_parse("[{\"pattern\":\"chat.vip\"},"
                                       "{\"pattern\":\"chat.*\",\"presence\":true}]",
                                       "", &rules, err, sizeof err),
                     0);
    assert_false(topic_rules_match(&rules, STR("chat.vip"))->presence);
    assert_true(topic_rules_match(&rules, STR("chat.lobby"))->presence);
}

/* The errors name the list, the rule and the key, as config_load reports them. */
static void test_errors_name_rule_and_key(void **state)
{
    (void)state;
    static const struct {
        const char *topics;
        const char *history;
        const char *expect;
    } cases[] = {
        {"[{\"pattern\":\"a\",\"stream\":{\"size\":0}}]", "", "topics[0].stream.size"},
        {"[{\"pattern\":\"a\",\"stream\":{\"size\":1},\"history\":{}}]", "",
         "\"stream\" and \"history\" exclude each other"},
        {"[{\"pattern\":\"a\"},{\"pattern\":\"b\",\"stream2\":true}]", "",
         "topics[1]: unknown option \"stream2\""},
        {"[{\"pattern\":\"a\",\"conflate\":\"yes\"}]", "", "topics[0].conflate"},
        {"[{\"presence\":true}]", "", "topics[0]: \"pattern\" is required"},
        {"[{\"pattern\":\"a..b\"}]", "", "topics[0].pattern"},
        {"[{\"pattern\":7}]", "", "topics[0].pattern"},
        {"[{\"pattern\":\"a\",\"presence\":\"yes\"}]", "", "topics[0].presence"},
        {"[{\"pattern\":\"a\",\"join_leave\":1}]", "", "topics[0].join_leave"},
        {"[{\"pattern\":\"a\",\"publisher\":null}]", "", "topics[0].publisher"},
        {"[{\"pattern\":\"a\",\"history\":{\"size\":0}}]", "", "topics[0].history.size"},
        {"[{\"pattern\":\"a\",\"history\":{\"pattern\":\"b\"}}]", "",
         "topics[0].history: unknown field \"pattern\""},
        {"[{\"pattern\":\"a\",\"history\":5}]", "", "topics[0].history: expected an object"},
        {"[7]", "", "topics[0]: expected an object"},
        {"{}", "", "topics: expected a list"},
        {"[", "", "topics: not valid JSON"},
        {"[{\"pattern\":\"a\",\"pattern\":\"b\"}]", "", "topics: not valid JSON"},
        {"", "[{\"pattern\":\"a\",\"size\":0}]", "history[0].size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        assert_int_equal(
            topic_rules_parse(cases[i].topics, cases[i].history, &rules, err, sizeof err), -1);
        if (strstr(err, cases[i].expect) == NULL) {
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, cases[i].expect);
        }
        assert_int_equal(rules.n, 0);
    }
}

static void test_rule_count_bound_over_both_lists(void **state)
{
    (void)state;
    char topics[TOPIC_RULES_MAX * 24 + 8];
    char history[64];
    size_t at = 0;
    topics[at++] = '[';
    for (int i = 0; i < TOPIC_RULES_MAX; i++) {
        at += (size_t)snprintf(topics + at, sizeof topics - at, "%s{\"pattern\":\"t%d\"}",
                               i > 0 ? "," : "", i);
    }
    topics[at++] = ']';
    topics[at] = '\0';
    char err[256];
    assert_int_equal(topic_rules_parse(topics, "", &rules, err, sizeof err), 0);
    assert_int_equal(rules.n, TOPIC_RULES_MAX);
    (void)snprintf(history, sizeof history, "[{\"pattern\":\"h\"}]");
    assert_int_equal(topic_rules_parse(topics, history, &rules, err, sizeof err), -1);
    assert_non_null(strstr(err, "at most"));
}

/* The history shorthand comes after the topics list: a topics rule without
 * history that matches first means no history (a size-0 shadow rule in the
 * history table); history rules keep their options. */
static void test_history_shorthand_after_topics(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(
        topic_rules_parse("[{\"pattern\":\"chat.quiet\",\"presence\":true},"
                          "{\"pattern\":\"chat.*\",\"history\":{\"size\":5}},"
                          "{\"pattern\":\"tail.>\",\"presence\":true}]",
                          "[{\"pattern\":\">\",\"size\":9,\"slow_consumer\":\"drop\"}]", &rules,
                          err, sizeof err),
        0);
    assert_int_equal(rules.n, 4);
    history_rules_t h;
    topic_rules_history(&rules, &h);
    assert_int_equal(h.n, 4);
    assert_int_equal(history_rules_match(&h, STR("chat.quiet")), -1);
    assert_int_equal(history_rules_match(&h, STR("chat.loud")), 1);
    assert_int_equal(h.rules[1].size, 5);
    assert_int_equal(history_rules_match(&h, STR("tail.x")), -1);
    assert_int_equal(history_rules_match(&h, STR("other")), 3);
    assert_int_equal(h.rules[3].size, 9);
    assert_true(h.rules[3].drop_slow);
    assert_true(topic_rules_match(&rules, STR("other"))->has_history);
    assert_false(topic_rules_match(&rules, STR("other"))->presence);

    /* Trailing rules without history are not in the history table: without
     * any history rule it is empty (history off). */
    assert_int_equal(topic_rules_parse("[{\"pattern\":\"chat.*\",\"history\":{\"size\":5}},"
                                       "{\"pattern\":\"x\",\"presence\":true}]",
                                       "", &rules, err, sizeof err),
                     0);
    topic_rules_history(&rules, &h);
    assert_int_equal(h.n, 1);
    assert_int_equal(
        topic_rules_parse("[{\"pattern\":\"x\",\"presence\":true}]", "", &rules, err, sizeof err),
        0);
    topic_rules_history(&rules, &h);
    assert_int_equal(h.n, 0);
}

static void test_streams_of_rules(void **state)
{
    (void)state;
    static topic_rules_t sr;
    char err[256];
    assert_int_equal(
        topic_rules_parse("[{\"pattern\":\"auction.closed.>\"},"
                          "{\"pattern\":\"auction.>\",\"stream\":{\"size\":5,"
                          "\"ttl\":\"1h\"}},{\"pattern\":\"votes.>\",\"stream\":true}]",
                          NULL, &sr, err, sizeof err),
        0);
    assert_true(sr.rules[1].has_stream);
    assert_int_equal(sr.rules[1].stream.size, 5);
    assert_int_equal(sr.rules[1].stream.ttl_ms, 3600000);
    assert_int_equal(sr.rules[2].stream.size, STREAM_DEFAULT_SIZE);
    stream_t **v = topic_rules_streams_new(&sr);
    assert_non_null(v);
    assert_null(v[0]);
    assert_ptr_equal(topic_rules_stream_of(&sr, v, STR("auction.a.bid")), v[1]);
    assert_null(topic_rules_stream_of(&sr, v, STR("auction.closed.a")));
    assert_ptr_equal(topic_rules_stream_of(&sr, v, STR("votes.x")), v[2]);
    /* A subscription is inside the first rule that covers it. */
    assert_ptr_equal(topic_rules_stream_within(&sr, v, STR("auction.*.bid")), v[1]);
    assert_ptr_equal(topic_rules_stream_within(&sr, v, STR("auction.>")), v[1]);
    assert_null(topic_rules_stream_within(&sr, v, STR("auction.closed.*")));
    assert_null(topic_rules_stream_within(&sr, v, STR(">")));
    assert_null(topic_rules_stream_within(&sr, v, STR("*.x")));
    assert_null(topic_rules_stream_within(&sr, NULL, STR("votes.x")));
    topic_rules_streams_free(&sr, v);
    /* No stream rule: no array. */
    assert_int_equal(topic_rules_parse("[{\"pattern\":\"a\"}]", NULL, &sr, err, sizeof err), 0);
    assert_null(topic_rules_streams_new(&sr));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_lists),
        cmocka_unit_test(test_options_parsed),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_errors_name_rule_and_key),
        cmocka_unit_test(test_rule_count_bound_over_both_lists),
        cmocka_unit_test(test_history_shorthand_after_topics),
        cmocka_unit_test(test_streams_of_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
