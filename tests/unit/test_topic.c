/*
 * test_topic.c - topic grammar, limits, reserved names and the matching
 * truth table. Every input is also checked at the end of a guard page so an
 * over-read faults at once.
 */
/* guard.h needs MAP_ANONYMOUS, which glibc hides under plain _POSIX_C_SOURCE. */
#define _DEFAULT_SOURCE

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs these three first, in this order. */
// clang-format off
#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "guard.h"
#include "wsb/common.h"
#include "wsb/topic.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Runs wsb_topic_check on a copy of `s` that ends at a PROT_NONE page. */
static int check_guarded(const char *s, size_t len, int flags, const char **why)
{
    guard_buf_t g;
    const char *p = (const char *)guard_copy(&g, s, len);
    int rc = wsb_topic_check(p, len, flags, why);
    guard_free(&g);
    return rc;
}

static bool matches_guarded(const char *pat, const char *topic)
{
    guard_buf_t gp;
    guard_buf_t gt;
    size_t plen = strlen(pat);
    size_t tlen = strlen(topic);
    const char *p = (const char *)guard_copy(&gp, pat, plen);
    const char *t = (const char *)guard_copy(&gt, topic, tlen);
    bool m = wsb_topic_matches(p, plen, t, tlen);
    guard_free(&gp);
    guard_free(&gt);
    return m;
}

typedef struct {
    const char *s;
    size_t len; /* 0: use strlen (for inputs with embedded NULs, set it) */
    int exact_ok;
    int pattern_ok;
    const char *why; /* expected sentence for the first failing flag, NULL if valid */
} check_case_t;

static const char WHY_EMPTY_TOKEN[] = "empty token: a topic may not start or end with '.' "
                                      "or contain '..'";
static const char WHY_EXACT[] = "wildcards '*' and '>' are not allowed in a topic "
                                "(only in subscription patterns)";
static const char WHY_PART[] = "'*' and '>' are only allowed as whole tokens";
static const char WHY_GT[] = "'>' must be the last token";
static const char WHY_UTF8[] = "invalid UTF-8";
static const char WHY_CTL[] = "control characters are not allowed in a topic";
static const char WHY_SPACE[] = "white space is not allowed in a topic";

static const check_case_t cases[] = {
    /* valid in both */
    {"a", 0, 1, 1, NULL},
    {"prices.btc.usd", 0, 1, 1, NULL},
    {"a.b.c.d.e", 0, 1, 1, NULL},
    {"$sys.stats", 0, 1, 1, NULL},
    {"$", 0, 1, 1, NULL},
    {"a.$b", 0, 1, 1, NULL},
    {"a-b_c:d/e@f#g!h", 0, 1, 1, NULL},
    {"\xc3\xa9t\xc3\xa9", 0, 1, 1, NULL},        /* "été" */
    {"\xe6\x97\xa5\xe6\x9c\xac", 0, 1, 1, NULL}, /* "日本" */
    {"\xf0\x9f\x98\x80.x", 0, 1, 1, NULL},       /* U+1F600 */
    {"\xc2\xa1", 0, 1, 1, NULL},                 /* U+00A1, first printable after C1 */
    {"\xe2\x80\x8b", 0, 1, 1, NULL},             /* U+200B is not White_Space */
    {"\xf4\x8f\xbf\xbf", 0, 1, 1, NULL},         /* U+10FFFF */
    {"~", 0, 1, 1, NULL},
    /* patterns only */
    {"*", 0, 0, 1, WHY_EXACT},
    {">", 0, 0, 1, WHY_EXACT},
    {"prices.*.usd", 0, 0, 1, WHY_EXACT},
    {"prices.>", 0, 0, 1, WHY_EXACT},
    {"*.*.>", 0, 0, 1, WHY_EXACT},
    {"$sys.>", 0, 0, 1, WHY_EXACT},
    {"*.b", 0, 0, 1, WHY_EXACT},
    /* invalid in both */
    {"a.>.b", 0, 0, 0, WHY_EXACT},
    {">.a", 0, 0, 0, WHY_EXACT},
    {"a*", 0, 0, 0, WHY_PART},
    {"*a", 0, 0, 0, WHY_PART},
    {"a.b>", 0, 0, 0, WHY_PART},
    {"a.>>", 0, 0, 0, WHY_PART},
    {"**", 0, 0, 0, WHY_PART},
    {"a.*x.b", 0, 0, 0, WHY_PART},
    {".", 0, 0, 0, WHY_EMPTY_TOKEN},
    {".a", 0, 0, 0, WHY_EMPTY_TOKEN},
    {"a.", 0, 0, 0, WHY_EMPTY_TOKEN},
    {"a..b", 0, 0, 0, WHY_EMPTY_TOKEN},
    {"a b", 0, 0, 0, WHY_SPACE},
    {" a", 0, 0, 0, WHY_SPACE},
    {"a\tb", 0, 0, 0, WHY_CTL},
    {"a\nb", 0, 0, 0, WHY_CTL},
    {"a\rb", 0, 0, 0, WHY_CTL},
    {"\x01", 0, 0, 0, WHY_CTL},
    {"\x1f", 0, 0, 0, WHY_CTL},
    {"a\x7f", 0, 0, 0, WHY_CTL},
    {"a\0b", 3, 0, 0, WHY_CTL},
    {"\xc2\x80", 0, 0, 0, WHY_CTL}, /* U+0080 */
    {"\xc2\x85", 0, 0, 0, WHY_CTL}, /* U+0085 NEL */
    {"\xc2\x9f", 0, 0, 0, WHY_CTL}, /* U+009F */
    {"a\xc2\xa0"
     "b",
     0, 0, 0, WHY_SPACE},                 /* U+00A0 */
    {"\xe1\x9a\x80", 0, 0, 0, WHY_SPACE}, /* U+1680 */
    {"\xe2\x80\x80", 0, 0, 0, WHY_SPACE}, /* U+2000 */
    {"\xe2\x80\x8a", 0, 0, 0, WHY_SPACE}, /* U+200A */
    {"\xe2\x80\xa8", 0, 0, 0, WHY_SPACE}, /* U+2028 */
    {"\xe2\x80\xa9", 0, 0, 0, WHY_SPACE}, /* U+2029 */
    {"\xe2\x80\xaf", 0, 0, 0, WHY_SPACE}, /* U+202F */
    {"\xe2\x81\x9f", 0, 0, 0, WHY_SPACE}, /* U+205F */
    {"\xe3\x80\x80", 0, 0, 0, WHY_SPACE}, /* U+3000 */
    {"\xef\xbb\xbf"
     "a",
     0, 0, 0, WHY_SPACE},        /* U+FEFF */
    {"\x80", 0, 0, 0, WHY_UTF8}, /* stray continuation */
    {"a\xbf", 0, 0, 0, WHY_UTF8},
    {"\xc0\xae", 0, 0, 0, WHY_UTF8}, /* overlong '.' */
    {"\xc1\xbf", 0, 0, 0, WHY_UTF8},
    {"\xe0\x80\xae", 0, 0, 0, WHY_UTF8},     /* overlong, 3 bytes */
    {"\xe0\x9f\xbf", 0, 0, 0, WHY_UTF8},     /* overlong U+07FF */
    {"\xf0\x80\x80\xae", 0, 0, 0, WHY_UTF8}, /* overlong, 4 bytes */
    {"\xf0\x8f\xbf\xbf", 0, 0, 0, WHY_UTF8}, /* overlong U+FFFF */
    {"\xed\xa0\x80", 0, 0, 0, WHY_UTF8},     /* surrogate U+D800 */
    {"\xed\xbf\xbf", 0, 0, 0, WHY_UTF8},     /* surrogate U+DFFF */
    {"\xf4\x90\x80\x80", 0, 0, 0, WHY_UTF8}, /* U+110000 */
    {"\xf5\x80\x80\x80", 0, 0, 0, WHY_UTF8},
    {"\xff", 0, 0, 0, WHY_UTF8},
    {"\xfe", 0, 0, 0, WHY_UTF8},
    {"\xc3", 0, 0, 0, WHY_UTF8}, /* truncated at end of input */
    {"\xe6\x97", 0, 0, 0, WHY_UTF8},
    {"\xf0\x9f\x98", 0, 0, 0, WHY_UTF8},
    {"\xc3.a", 0, 0, 0, WHY_UTF8}, /* truncated by a '.' */
    {"\xe6\x97"
     "a",
     0, 0, 0, WHY_UTF8},
};

static void test_check_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const check_case_t *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->s);
        const char *why = NULL;
        int rc_exact = check_guarded(c->s, len, WSB_TOPIC_EXACT, &why);
        if ((rc_exact == 0) != (c->exact_ok != 0)) {
            fail_msg("case %zu exact: rc %d", i, rc_exact);
        }
        if (rc_exact != 0) {
            assert_int_equal(rc_exact, WSB_EINVAL);
            assert_non_null(c->why);
            if (strcmp(why, c->why) != 0) {
                fail_msg("case %zu: why '%s', expected '%s'", i, why, c->why);
            }
        }
        why = NULL;
        int rc_pat = check_guarded(c->s, len, WSB_TOPIC_PATTERN, &why);
        if ((rc_pat == 0) != (c->pattern_ok != 0)) {
            fail_msg("case %zu pattern: rc %d", i, rc_pat);
        }
        if (rc_pat == 0) {
            assert_null(why); /* untouched on success */
        } else {
            assert_int_equal(rc_pat, WSB_EINVAL);
            assert_non_null(why);
        }
        /* A NULL `why` is allowed. */
        assert_int_equal(wsb_topic_check(c->s, len, WSB_TOPIC_PATTERN, NULL), rc_pat);
    }
}

static void test_pattern_specific_why(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(wsb_topic_check("a.>.b", 5, WSB_TOPIC_PATTERN, &why), WSB_EINVAL);
    assert_string_equal(why, WHY_GT);
    assert_int_equal(wsb_topic_check(">.>", 3, WSB_TOPIC_PATTERN, &why), WSB_EINVAL);
    assert_string_equal(why, WHY_GT);
    assert_int_equal(wsb_topic_check("a.b*", 4, WSB_TOPIC_PATTERN, &why), WSB_EINVAL);
    assert_string_equal(why, WHY_PART);
}

static void test_empty_and_null(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(wsb_topic_check("", 0, WSB_TOPIC_EXACT, &why), WSB_EINVAL);
    assert_string_equal(why, "topic is empty");
    why = NULL;
    assert_int_equal(wsb_topic_check(NULL, 0, WSB_TOPIC_PATTERN, &why), WSB_EINVAL);
    assert_string_equal(why, "topic is empty");
    assert_false(wsb_topic_matches("", 0, "a", 1));
    assert_false(wsb_topic_matches("a", 1, "", 0));
    assert_false(wsb_topic_matches(">", 1, "", 0));
    assert_false(wsb_topic_is_reserved("", 0));
    assert_false(wsb_topic_is_reserved(NULL, 0));
    assert_false(wsb_topic_is_pattern("", 0));
}

/* Length is only counted up to `len`: bytes after it are never looked at. */
static void test_len_not_nul(void **state)
{
    (void)state;
    assert_int_equal(wsb_topic_check("a.b c", 3, WSB_TOPIC_EXACT, NULL), 0);
    assert_int_equal(wsb_topic_check("a.*", 2, WSB_TOPIC_EXACT, NULL), WSB_EINVAL);
    assert_true(wsb_topic_matches("a.bXX", 3, "a.bYY", 3));
}

/* Builds "aaaa…" of `len` bytes (no dots) into buf. */
static void fill_bytes(char *buf, size_t len, char c)
{
    memset(buf, c, len);
    buf[len] = '\0';
}

static void test_max_len(void **state)
{
    (void)state;
    char buf[WSB_TOPIC_MAX_LEN + 8];
    const char *why = NULL;

    fill_bytes(buf, WSB_TOPIC_MAX_LEN, 'a');
    assert_int_equal(check_guarded(buf, WSB_TOPIC_MAX_LEN, WSB_TOPIC_EXACT, &why), 0);
    fill_bytes(buf, WSB_TOPIC_MAX_LEN + 1, 'a');
    assert_int_equal(check_guarded(buf, WSB_TOPIC_MAX_LEN + 1, WSB_TOPIC_EXACT, &why), WSB_EINVAL);
    assert_string_equal(why, "topic longer than 256 bytes");

    /* Exactly 256 bytes of multi-byte characters (2 bytes each) is valid. */
    for (size_t i = 0; i < WSB_TOPIC_MAX_LEN; i += 2) {
        buf[i] = (char)0xC3;
        buf[i + 1] = (char)0xA9;
    }
    assert_int_equal(check_guarded(buf, WSB_TOPIC_MAX_LEN, WSB_TOPIC_EXACT, NULL), 0);

    /* A 256-byte pattern ending in ">" is valid; 257 is not. */
    fill_bytes(buf, WSB_TOPIC_MAX_LEN, 'b');
    buf[WSB_TOPIC_MAX_LEN - 2] = '.';
    buf[WSB_TOPIC_MAX_LEN - 1] = '>';
    assert_int_equal(check_guarded(buf, WSB_TOPIC_MAX_LEN, WSB_TOPIC_PATTERN, NULL), 0);
    memmove(buf + 1, buf, WSB_TOPIC_MAX_LEN);
    assert_int_equal(check_guarded(buf, WSB_TOPIC_MAX_LEN + 1, WSB_TOPIC_PATTERN, &why),
                     WSB_EINVAL);
    assert_string_equal(why, "topic longer than 256 bytes");
}

/* "a.a.a…" with `tokens` tokens; returns its length. */
static size_t make_tokens(char *buf, size_t tokens, char last)
{
    size_t n = 0;
    for (size_t i = 0; i < tokens; i++) {
        if (i > 0) {
            buf[n++] = '.';
        }
        buf[n++] = 'a';
        if (i + 1 == tokens) {
            buf[n - 1] = last;
        }
    }
    buf[n] = '\0';
    return n;
}

static void test_max_tokens(void **state)
{
    (void)state;
    char buf[2 * WSB_TOPIC_MAX_TOKENS + 8];
    const char *why = NULL;
    size_t n;

    n = make_tokens(buf, WSB_TOPIC_MAX_TOKENS, 'z');
    assert_int_equal(check_guarded(buf, n, WSB_TOPIC_EXACT, NULL), 0);
    n = make_tokens(buf, WSB_TOPIC_MAX_TOKENS + 1, 'z');
    assert_int_equal(check_guarded(buf, n, WSB_TOPIC_EXACT, &why), WSB_EINVAL);
    assert_string_equal(why, "topic has more than 32 tokens");

    n = make_tokens(buf, WSB_TOPIC_MAX_TOKENS, '>');
    assert_int_equal(check_guarded(buf, n, WSB_TOPIC_PATTERN, NULL), 0);
    n = make_tokens(buf, WSB_TOPIC_MAX_TOKENS + 1, '>');
    assert_int_equal(check_guarded(buf, n, WSB_TOPIC_PATTERN, &why), WSB_EINVAL);
    assert_string_equal(why, "topic has more than 32 tokens");
}

static void test_is_pattern_reserved(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool pattern;
        bool reserved;
    } t[] = {
        {"a.b", false, false},   {"*", true, false},     {">", true, false},
        {"a.*", true, false},    {"a.>", true, false},   {"*.a", true, false},
        {"$sys.x", false, true}, {"$sys.>", true, true}, {"$", false, true},
        {"a.$b", false, false},  {"a$.b", false, false}, {"a.b*", false, false},
        {"x.*.y", true, false},  {"$x.*.y", true, true},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++) {
        size_t len = strlen(t[i].s);
        if (wsb_topic_is_pattern(t[i].s, len) != t[i].pattern) {
            fail_msg("is_pattern(%s)", t[i].s);
        }
        if (wsb_topic_is_reserved(t[i].s, len) != t[i].reserved) {
            fail_msg("is_reserved(%s)", t[i].s);
        }
    }
}

typedef struct {
    const char *pattern;
    const char *topic;
    bool match;
} match_case_t;

static const match_case_t matches[] = {
    /* exact */
    {"a", "a", true},
    {"a", "b", false},
    {"a", "ab", false},
    {"ab", "a", false},
    {"a.b", "a.b", true},
    {"a.b", "a.bc", false},
    {"a.b", "a.b.c", false},
    {"a.b.c", "a.b", false},
    {"a.b", "a", false},
    /* '*' is exactly one token */
    {"*", "a", true},
    {"*", "a.b", false},
    {"a.*", "a.b", true},
    {"a.*", "a", false},
    {"a.*", "a.b.c", false},
    {"*.b", "a.b", true},
    {"*.b", "x.b", true},
    {"*.b", "a.c", false},
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.b.d", false},
    {"a.*.c", "a.c", false},
    {"*.*", "a.b", true},
    {"*.*", "a", false},
    {"*.*", "a.b.c", false},
    {"prices.*.usd", "prices.btc.usd", true},
    {"prices.*.usd", "prices.btc.eur", false},
    /* '>' is one or more trailing tokens */
    {">", "a", true},
    {">", "a.b.c", true},
    {"a.>", "a", false},
    {"a.>", "a.b", true},
    {"a.>", "a.b.c.d", true},
    {"a.>", "b.c", false},
    {"a.b.>", "a.b", false},
    {"a.b.>", "a.b.c", true},
    {"*.>", "a", false},
    {"*.>", "a.b", true},
    {"*.>", "a.b.c", true},
    {"a.*.>", "a.b.c", true},
    {"a.*.>", "a.b", false},
    /* reserved '$' topics: no wildcard in the first position matches them */
    {">", "$sys", false},
    {">", "$sys.stats", false},
    {"*", "$sys", false},
    {"*.stats", "$sys.stats", false},
    {"*.>", "$sys.stats", false},
    {"$sys.>", "$sys.stats", true},
    {"$sys.>", "$sys.stats.conns", true},
    {"$sys.>", "$sys", false},
    {"$sys.*", "$sys.stats", true},
    {"$sys.stats", "$sys.stats", true},
    {"$sys", "$sys", true},
    {"$sys.>", "sys.stats", false},
    /* '$' later in a topic is an ordinary character */
    {"a.*", "a.$b", true},
    {"a.>", "a.$b.c", true},
    {"*.$b", "a.$b", true},
    /* exact tokens are byte-compared, including UTF-8 */
    {"\xc3\xa9.*", "\xc3\xa9.x", true},
    {"\xc3\xa9.*", "e.x", false},
};

static void test_matches_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(matches); i++) {
        const match_case_t *c = &matches[i];
        assert_int_equal(wsb_topic_check(c->pattern, strlen(c->pattern), WSB_TOPIC_PATTERN, NULL),
                         0);
        assert_int_equal(wsb_topic_check(c->topic, strlen(c->topic), WSB_TOPIC_EXACT, NULL), 0);
        if (matches_guarded(c->pattern, c->topic) != c->match) {
            fail_msg("matches(%s, %s) != %d", c->pattern, c->topic, c->match);
        }
    }
}

/* An exact pattern matches exactly itself, for topics at the limits too. */
static void test_matches_limits(void **state)
{
    (void)state;
    char a[2 * WSB_TOPIC_MAX_TOKENS + 8];
    char p[2 * WSB_TOPIC_MAX_TOKENS + 8];
    size_t an = make_tokens(a, WSB_TOPIC_MAX_TOKENS, 'z');
    size_t pn = make_tokens(p, WSB_TOPIC_MAX_TOKENS, '*');
    assert_true(wsb_topic_matches(a, an, a, an));
    assert_true(wsb_topic_matches(p, pn, a, an));
    pn = make_tokens(p, 2, '>');
    assert_true(wsb_topic_matches(p, pn, a, an));
    pn = make_tokens(p, WSB_TOPIC_MAX_TOKENS, '>');
    assert_true(wsb_topic_matches(p, pn, a, an));
    pn = make_tokens(p, WSB_TOPIC_MAX_TOKENS - 1, '*');
    assert_false(wsb_topic_matches(p, pn, a, an));

    char big[WSB_TOPIC_MAX_LEN + 1];
    fill_bytes(big, WSB_TOPIC_MAX_LEN, 'q');
    assert_true(wsb_topic_matches(big, WSB_TOPIC_MAX_LEN, big, WSB_TOPIC_MAX_LEN));
    assert_true(wsb_topic_matches("*", 1, big, WSB_TOPIC_MAX_LEN));
    assert_false(wsb_topic_matches(big, WSB_TOPIC_MAX_LEN - 1, big, WSB_TOPIC_MAX_LEN));
}

/* Malformed input must not crash or over-read even though the contract only
 * covers valid input. */
static void test_matches_invalid_input_safe(void **state)
{
    (void)state;
    static const char *junk[] = {".", "..", "a.", ".a", "a..b", ">.>", "*.", "$", "$.", ".$"};
    for (size_t i = 0; i < N_ELEMS(junk); i++) {
        for (size_t j = 0; j < N_ELEMS(junk); j++) {
            (void)matches_guarded(junk[i], junk[j]);
        }
    }
}

/* ---- pattern inclusion (permissions) ---------------------------------------------------- */

typedef struct {
    const char *allowed;
    const char *pattern;
    bool covers;
} covers_case_t;

static const covers_case_t covers_cases[] = {
    {"chat.room1", "chat.room1", true},
    {"chat.room1", "chat.*", false}, /* the example: exact does not cover a wildcard */
    {"chat.room1", "chat.>", false},
    {"chat.room1", "chat.room2", false},
    {"chat.room1", "chat.room1.x", false},
    {"chat.room1", "chat", false},
    {"chat.*", "chat.room1", true},
    {"chat.*", "chat.*", true},
    {"chat.*", "chat.>", false},
    {"chat.*", "chat.a.b", false},
    {"chat.>", "chat.*", true},
    {"chat.>", "chat.room1", true},
    {"chat.>", "chat.a.>", true},
    {"chat.>", "chat.>", true},
    {"chat.>", "chat", false},
    {"chat.>", ">", false},
    {"chat.>", "*.room1", false},
    {"*.room1", "chat.room1", true},
    {"*.room1", "*.room1", true},
    {"*.room1", "chat.*", false},
    {">", "a", true},
    {">", "a.*.>", true},
    {">", ">", true},
    {">", "$sys.stats", false}, /* '>' does not match reserved topics */
    {"*", "$sys", false},
    {"*.>", "$sys.x", false},
    {"$sys.>", "$sys.stats", true},
    {"$sys.*", "$sys.stats", true},
    {"", "a", false},
    {"a", "", false},
};

static void test_covers_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(covers_cases); i++) {
        const covers_case_t *c = &covers_cases[i];
        bool got = wsb_topic_covers(c->allowed, strlen(c->allowed), c->pattern, strlen(c->pattern));
        if (got != c->covers) {
            fail_msg("covers(%s, %s) = %d, expected %d", c->allowed, c->pattern, got, c->covers);
        }
    }
}

/* Every pattern of up to 3 tokens over {a, b, $x, *, >} against every other:
 * covers(A, P) must hold exactly when every topic P matches (topics of up to
 * 4 tokens over {a, b, c, $x}) is matched by A too. */
#define COV_MAX 512
static size_t cov_enum(const char *const *toks, size_t ntoks, size_t depth, bool pattern,
                       char (*out)[24])
{
    size_t n = 0;
    for (size_t d = 1; d <= depth; d++) {
        size_t total = 1;
        for (size_t i = 0; i < d; i++) {
            total *= ntoks;
        }
        for (size_t k = 0; k < total && n < COV_MAX; k++) {
            char buf[24] = "";
            size_t v = k;
            bool ok = true;
            for (size_t i = 0; i < d; i++) {
                const char *t = toks[v % ntoks];
                v /= ntoks;
                if (pattern && strcmp(t, ">") == 0 && i + 1 != d) {
                    ok = false;
                }
                size_t used = strlen(buf);
                (void)snprintf(buf + used, sizeof(buf) - used, "%s%s", i > 0 ? "." : "", t);
            }
            if (ok) {
                memcpy(out[n++], buf, sizeof buf);
            }
        }
    }
    return n;
}

static void test_covers_exhaustive(void **state)
{
    (void)state;
    static const char *const ptoks[] = {"a", "b", "$x", "*", ">"};
    static const char *const ttoks[] = {"a", "b", "c", "$x"};
    static char pats[COV_MAX][24], topics[COV_MAX][24];
    size_t np = cov_enum(ptoks, 5, 3, true, pats);
    size_t nt = cov_enum(ttoks, 4, 4, false, topics);
    assert_true(np < COV_MAX && nt < COV_MAX);
    for (size_t i = 0; i < np; i++) {
        for (size_t j = 0; j < np; j++) {
            bool implied = true;
            for (size_t k = 0; k < nt && implied; k++) {
                const char *t = topics[k];
                if (wsb_topic_matches(pats[j], strlen(pats[j]), t, strlen(t)) &&
                    !wsb_topic_matches(pats[i], strlen(pats[i]), t, strlen(t))) {
                    implied = false;
                }
            }
            bool got = wsb_topic_covers(pats[i], strlen(pats[i]), pats[j], strlen(pats[j]));
            if (got != implied) {
                fail_msg("covers(%s, %s) = %d but inclusion over the topics says %d", pats[i],
                         pats[j], got, implied);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_table),
        cmocka_unit_test(test_pattern_specific_why),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_len_not_nul),
        cmocka_unit_test(test_max_len),
        cmocka_unit_test(test_max_tokens),
        cmocka_unit_test(test_is_pattern_reserved),
        cmocka_unit_test(test_matches_table),
        cmocka_unit_test(test_matches_limits),
        cmocka_unit_test(test_matches_invalid_input_safe),
        cmocka_unit_test(test_covers_table),
        cmocka_unit_test(test_covers_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
