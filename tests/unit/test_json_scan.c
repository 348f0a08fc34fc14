/*
 * test_json_scan.c - the strict JSON scanner: the tricky cases one by one
 * (surrogates, overlong UTF-8, nesting at and past the limit, duplicate
 * names in small and large objects and after unescaping, numbers at the
 * int64 and double limits, NUL in strings and names, trailing bytes, BOM),
 * each also checked against jansson with the broker's flags, every input
 * placed at the end of a guard page; then spans, decoding and the walker.
 */
/* guard.h needs MAP_ANONYMOUS, which strict _POSIX_C_SOURCE hides on glibc. */
#define _DEFAULT_SOURCE 1

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h, included below, needs the four headers above first. */
#include "guard.h"
#include "wsb/common.h"
#include "wsb/json_scan.h"

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Scans `len` bytes placed right before a guard page; also asks jansson
 * (with the broker's flags) and fails when the verdicts differ. */
static int scan_n(const char *json, size_t len, unsigned flags)
{
    guard_buf_t g;
    const char *p = (const char *)guard_copy(&g, json, len);
    wsb_json_value_t root;
    wsb_json_error_t err;
    int rc = wsb_json_scan(p, len, flags, NULL, 0, NULL, &root, &err);
    size_t jflags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;
    if (flags & WSB_JSON_ANY) {
        jflags |= JSON_DECODE_ANY;
    }
    json_t *j = json_loadb(p, len, jflags, NULL);
    if ((rc == 0) != (j != NULL)) {
        fail_msg("scan(%.*s): scanner %s, jansson %s", (int)len, json,
                 rc == 0 ? "accepts" : "refuses", j != NULL ? "accepts" : "refuses");
    }
    if (rc != 0) {
        assert_int_equal(rc, WSB_EINVAL);
        assert_true(err.offset <= len);
        assert_non_null(err.reason);
    } else {
        /* The root span is the value without the white space around it. */
        assert_true(root.raw.p >= p && root.raw.p + root.raw.len <= p + len && root.raw.len > 0);
        assert_true(strchr(" \t\r\n", root.raw.p[0]) == NULL);
        assert_true(strchr(" \t\r\n", root.raw.p[root.raw.len - 1]) == NULL);
    }
    json_decref(j);
    guard_free(&g);
    return rc;
}

static void accepted(const char *json)
{
    if (scan_n(json, strlen(json), WSB_JSON_ANY) != 0) {
        fail_msg("refused: %s", json);
    }
}

static void refused(const char *json)
{
    if (scan_n(json, strlen(json), WSB_JSON_ANY) != WSB_EINVAL) {
        fail_msg("accepted: %s", json);
    }
}

static void test_grammar(void **state)
{
    (void)state;
    static const char *ok[] = {"{}",
                               "[]",
                               " \t\r\n{ \"a\" : [ 1 , true , false , null ] } \n",
                               "0",
                               "-0",
                               "\"\"",
                               "true",
                               "[[],{}]",
                               "{\"\":0}",
                               "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""};
    for (size_t i = 0; i < N_ELEMS(ok); i++) {
        accepted(ok[i]);
    }
    static const char *bad[] = {
        "",         " ",        "{",        "[1,]",       "{\"a\":1,}", "[1 2]",       "{\"a\" 1}",
        "{a:1}",    "'a'",      "tru",      "nul",        "truex",      "NaN",         "Infinity",
        "-",        "01",       "1.",       ".5",         "1e",         "1e+",         "+1",
        "[1]]",     "{}{}",     "1 2",      "[\"a\\x\"]", "\"\\u12\"",  "\"\\u12g4\"", "/**/1",
        "\"a\tb\"", "\"a\nb\"", "\"\x01\"", "\x7f"};
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        refused(bad[i]);
    }
    /* Without WSB_JSON_ANY only an object or an array (an HTTP body). */
    assert_int_equal(scan_n("1", 1, 0), WSB_EINVAL);
    assert_int_equal(scan_n("\"s\"", 3, 0), WSB_EINVAL);
    assert_int_equal(scan_n(" [1] ", 5, 0), 0);
    assert_int_equal(scan_n("{}", 2, 0), 0);
}

/* Trailing bytes, a BOM, NUL bytes outside strings. */
static void test_trailing_bom_nul(void **state)
{
    (void)state;
    refused("{} x");
    refused("{}]");
    refused("\xef\xbb\xbf{}"); /* no BOM, as jansson */
    assert_int_equal(scan_n("{}\0", 3, WSB_JSON_ANY), WSB_EINVAL);
    assert_int_equal(scan_n("\0{}", 3, WSB_JSON_ANY), WSB_EINVAL);
    assert_int_equal(scan_n("[\0]", 3, WSB_JSON_ANY), WSB_EINVAL);
    /* The one deliberate difference: jansson skips one NUL right after a
     * number or literal; the scanner refuses it (RFC 8259). */
    wsb_json_error_t err;
    assert_int_equal(wsb_json_scan("[1\0]", 4, WSB_JSON_ANY, NULL, 0, NULL, NULL, &err),
                     WSB_EINVAL);
    assert_int_equal(err.offset, 2);
    assert_int_equal(wsb_json_scan("true\0", 5, WSB_JSON_ANY, NULL, 0, NULL, NULL, &err),
                     WSB_EINVAL);
    /* NULL input is empty input. */
    assert_int_equal(wsb_json_scan(NULL, 0, WSB_JSON_ANY, NULL, 0, NULL, NULL, &err), WSB_EINVAL);
}

static void test_strings_utf8(void **state)
{
    (void)state;
    accepted("\"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\"");
    accepted("\"\x7f\"");            /* DEL is not a control character in JSON */
    refused("\"\xc0\xaf\"");         /* overlong '/' */
    refused("\"\xe0\x80\xaf\"");     /* overlong, 3 bytes */
    refused("\"\xf0\x80\x80\xaf\""); /* overlong, 4 bytes */
    refused("\"\xed\xa0\x80\"");     /* a surrogate in UTF-8 */
    refused("\"\xf4\x90\x80\x80\""); /* above U+10FFFF */
    refused("\"\xf5\x80\x80\x80\"");
    refused("\"\x80\""); /* stray continuation */
    refused("\"\xc3\""); /* cut */
    refused("\"\xe6\x97\"");
    refused("\xc3\xa9"); /* non-ASCII outside a string */
    /* \u escapes: pairs, lone halves, case, NUL. */
    accepted("\"\\ud83d\\ude00\"");
    accepted("\"\\uD83D\\uDE00\"");
    accepted("\"\\u0000\"");
    accepted("\"a\\u0000b\"");
    accepted("\"\\uffff\\ufffe\"");
    refused("\"\\ud83d\"");
    refused("\"\\ud83dx\"");
    refused("\"\\ud83d\\u0041\"");
    refused("\"\\ud83d\\ud83d\"");
    refused("\"\\ude00\"");
    refused("\"\\ude00\\ud83d\"");
    refused("\"\\ud83d\\n\"");
    /* \u0000 is refused in a member name (jansson cannot hold it), not in
     * a value. */
    refused("{\"a\\u0000\":1}");
    accepted("{\"a\":\"\\u0000\"}");
}

static void test_numbers(void **state)
{
    (void)state;
    accepted("9223372036854775807");
    accepted("-9223372036854775808");
    refused("9223372036854775808");
    refused("-9223372036854775809");
    refused("100000000000000000000");
    accepted("100000000000000000000.0"); /* a real: fine */
    accepted("1e308");
    accepted("1.7976931348623157e308"); /* DBL_MAX */
    refused("1e309");
    refused("1.7976931348623159e308");
    refused("-1e400");
    accepted("1e-400"); /* underflow is not an error */
    accepted("0.0000000000000000000000000000000001e-999999999999999999999");
    accepted("0e999999999999999999999");
    refused("1e999999999999999999999");
    accepted("1E+2");
    accepted("-0.0e-0");
    /* Right at the rounding edge: 2^1024 - 2^970 rounds up to infinity,
     * one unit less rounds down to DBL_MAX. */
    static const char edge[] = "1797693134862315807937289714053034150799341327100378269361737789804"
                               "4496829276475094664901797"
                               "7587207096330286416692887910946555547851940402630657488671505820681"
                               "9089020007083836762738548"
                               "4581771153176447573027006985557136695962284291481986083493647529271"
                               "9074168444365510704342711"
                               "559699508093042880177904174497792";
    char buf[400];
    (void)snprintf(buf, sizeof buf, "%s.0", edge);
    refused(buf);
    (void)snprintf(buf, sizeof buf, "%.308s1.9", edge);
    accepted(buf);
    (void)snprintf(buf, sizeof buf, "0.%se309", edge);
    refused(buf);
    (void)snprintf(buf, sizeof buf, "0.000%.300se312", edge);
    accepted(buf); /* the digits cut: below the edge */
}

static void test_duplicates(void **state)
{
    (void)state;
    refused("{\"a\":1,\"a\":2}");
    refused("{\"a\":1,\"\\u0061\":2}"); /* equal once unescaped */
    refused("{\"\\u00e9\":1,\"\xc3\xa9\":2}");
    refused("{\"x\":{\"a\":1,\"b\":2,\"a\":3}}");
    refused("[{\"a\":1},{\"b\":1,\"b\":1}]");
    accepted("{\"a\":1,\"b\":{\"a\":1},\"c\":[{\"a\":1}]}"); /* per object */
    accepted("{\"a\":1,\"A\":2,\"a \":3,\"\":4}");
    /* Large objects are checked by sorting at their close: the duplicate
     * at either end, and one only equal after unescaping. */
    char big[4096];
    for (int dup = 0; dup < 4; dup++) {
        size_t n = (size_t)snprintf(big, sizeof big, "{");
        for (int i = 0; i < 200; i++) {
            n += (size_t)snprintf(big + n, sizeof big - n, "%s\"k%d\":%d", i ? "," : "", i, i);
        }
        static const char *extra[] = {"", ",\"k0\":1", ",\"k\\u0031\\u00399\":1", ",\"k200\":1"};
        n += (size_t)snprintf(big + n, sizeof big - n, "%s}", extra[dup]);
        assert_int_equal(scan_n(big, n, WSB_JSON_ANY), dup == 0 || dup == 3 ? 0 : WSB_EINVAL);
    }
    /* More open names than fit inline: the heap array takes over. */
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(big + n, sizeof big - n, "{\"a%d\":1,\"b\":", i);
    }
    n += (size_t)snprintf(big + n, sizeof big - n, "0");
    for (int i = 0; i < 100; i++) {
        big[n++] = '}';
    }
    assert_int_equal(scan_n(big, n, WSB_JSON_ANY), 0);
    big[n - 1] = ',';
    assert_int_equal(scan_n(big, n, WSB_JSON_ANY), WSB_EINVAL);
}

/* jansson counts every value: 2048 nested empty arrays pass, a scalar (or
 * one more level) inside them does not. */
static void test_depth(void **state)
{
    (void)state;
    enum { D = WSB_JSON_MAX_DEPTH };
    static char buf[6 * (D + 2) + 8];
    size_t n = 0;
    for (int i = 0; i < D; i++) {
        buf[n++] = '[';
    }
    for (int i = 0; i < D; i++) {
        buf[n++] = ']';
    }
    assert_int_equal(scan_n(buf, n, WSB_JSON_ANY), 0);
    n = 0;
    for (int i = 0; i < D; i++) {
        buf[n++] = '[';
    }
    buf[n++] = '1';
    for (int i = 0; i < D; i++) {
        buf[n++] = ']';
    }
    assert_int_equal(scan_n(buf, n, WSB_JSON_ANY), WSB_EINVAL);
    n = 0;
    for (int i = 0; i < D - 1; i++) {
        n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"a\":");
    }
    buf[n++] = '1';
    for (int i = 0; i < D - 1; i++) {
        buf[n++] = '}';
    }
    assert_int_equal(scan_n(buf, n, WSB_JSON_ANY), 0);
    /* Unbalanced deep input is refused, not overrun. */
    memset(buf, '[', sizeof buf);
    assert_int_equal(scan_n(buf, sizeof buf, WSB_JSON_ANY), WSB_EINVAL);
}

/* Members: spans exactly the value's bytes (white space around excluded),
 * kinds, decoded strings, integers; the walker agrees. */
static void test_members_and_walker(void **state)
{
    (void)state;
    static const char *const keys[] = {"type", "topic", "id", "data", "missing"};
    const char *json = " { \"id\" : -42 , \"t\\u0079pe\":\"pub\\nlish\", \"data\" : { \"x\" : [1, "
                       "2.50e1 ] } ,\"topic\":\"a.b\", \"nested\":{\"type\":1}} ";
    wsb_json_value_t m[N_ELEMS(keys)];
    wsb_json_value_t root;
    wsb_json_error_t err;
    assert_int_equal(
        wsb_json_scan(json, strlen(json), WSB_JSON_ANY, keys, N_ELEMS(keys), m, &root, &err), 0);
    assert_int_equal(root.kind, WSB_JSON_OBJECT);
    assert_int_equal(root.raw.p[0], '{');
    assert_int_equal(root.raw.p[root.raw.len - 1], '}');
    assert_int_equal(m[0].kind, WSB_JSON_STRING);
    assert_true(m[0].escaped);
    char buf[64];
    wsb_str_t s = wsb_json_string(m[0], buf);
    assert_int_equal(s.len, 8);
    assert_memory_equal(s.p, "pub\nlish", 8);
    assert_true(wsb_json_string_is(m[0], "pub\nlish"));
    assert_false(wsb_json_string_is(m[0], "pub\nlis"));
    assert_true(wsb_json_string_is(m[1], "a.b"));
    assert_false(m[1].escaped);
    assert_int_equal(m[2].kind, WSB_JSON_INTEGER);
    assert_int_equal(wsb_json_integer(m[2]), -42);
    assert_int_equal(m[3].kind, WSB_JSON_OBJECT);
    assert_true(wsb_str_eq(m[3].raw, "{ \"x\" : [1, 2.50e1 ] }"));
    assert_int_equal(m[4].kind, WSB_JSON_NONE);

    wsb_json_value_t w[N_ELEMS(keys)];
    wsb_json_members(root, keys, N_ELEMS(keys), w);
    for (size_t i = 0; i < N_ELEMS(keys); i++) {
        assert_int_equal(w[i].kind, m[i].kind);
        assert_ptr_equal(w[i].raw.p, m[i].raw.p);
        assert_int_equal(w[i].raw.len, m[i].raw.len);
    }
    /* The walker through the array inside data. */
    wsb_json_value_t x[1];
    static const char *const xk[] = {"x"};
    wsb_json_members(m[3], xk, 1, x);
    assert_int_equal(x[0].kind, WSB_JSON_ARRAY);
    wsb_json_iter_t it;
    wsb_json_iter_init(&it, x[0]);
    wsb_json_value_t e;
    assert_true(wsb_json_iter_next(&it, NULL, &e));
    assert_int_equal(e.kind, WSB_JSON_INTEGER);
    assert_true(wsb_json_iter_next(&it, NULL, &e));
    assert_int_equal(e.kind, WSB_JSON_REAL);
    assert_true(wsb_str_eq(e.raw, "2.50e1"));
    assert_false(wsb_json_iter_next(&it, NULL, &e));

    /* A top level that is no object has no members. */
    assert_int_equal(
        wsb_json_scan("[{\"id\":1}]", 10, WSB_JSON_ANY, keys, N_ELEMS(keys), m, &root, &err), 0);
    assert_int_equal(m[2].kind, WSB_JSON_NONE);
    assert_int_equal(root.kind, WSB_JSON_ARRAY);
    /* Integers at both ends of int64. */
    assert_int_equal(wsb_json_scan("{\"id\":-9223372036854775808}", 27, WSB_JSON_ANY, keys,
                                   N_ELEMS(keys), m, &root, &err),
                     0);
    assert_true(wsb_json_integer(m[2]) == INT64_MIN);
}

/* A surrogate pair and other escapes decode to UTF-8. */
static void test_decode(void **state)
{
    (void)state;
    const char *json = "\"\\ud83d\\ude00 \\u00e9\\u65e5\\/\\\"\\u0000\"";
    wsb_json_value_t root;
    assert_int_equal(wsb_json_scan(json, strlen(json), WSB_JSON_ANY, NULL, 0, NULL, &root, NULL),
                     0);
    char buf[64];
    wsb_str_t s = wsb_json_string(root, buf);
    const char want[] = "\xf0\x9f\x98\x80 \xc3\xa9\xe6\x97\xa5/\"";
    assert_int_equal(s.len, sizeof want); /* with the decoded NUL */
    assert_memory_equal(s.p, want, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grammar),
        cmocka_unit_test(test_trailing_bom_nul),
        cmocka_unit_test(test_strings_utf8),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_members_and_walker),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
