/*
 * test_utf8.c - streaming UTF-8 validator: Markus Kuhn's decoder stress cases,
 * the exact fail-fast position of every rejection, splits at every position,
 * exhaustive short sequences and random texts checked against a reference
 * decoder written from the Unicode standard's table of well-formed sequences.
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
#include "wsb/utf8.h"

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

/* A stress case: `fail_at` is the index of the first byte that cannot be part
 * of any valid text (-1 if none); `complete` says whether the whole input is
 * valid, which for fail_at == -1 only fails on a truncated last sequence. */
typedef struct {
    const char *name;
    const char *bytes;
    size_t len;
    int fail_at;
    bool complete;
} utf8_case_t;

#define CASE(name, lit, fail_at, complete)                                                         \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, fail_at, complete                                              \
    }
#define OK(name, lit)      CASE(name, lit, -1, true)
#define BAD(name, lit, at) CASE(name, lit, at, false)
#define PARTIAL(name, lit) CASE(name, lit, -1, false)

static const utf8_case_t kuhn_cases[] = {
    /* 1: some correct UTF-8 text */
    OK("1 kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
    OK("empty", ""),
    /* 2.1: first possible sequence of a certain length */
    OK("2.1.1 U+0000", "\x00"),
    OK("2.1.2 U+0080", "\xc2\x80"),
    OK("2.1.3 U+0800", "\xe0\xa0\x80"),
    OK("2.1.4 U+10000", "\xf0\x90\x80\x80"),
    BAD("2.1.5 5-byte U+200000", "\xf8\x88\x80\x80\x80", 0),
    BAD("2.1.6 6-byte U+4000000", "\xfc\x84\x80\x80\x80\x80", 0),
    /* 2.2: last possible sequence of a certain length */
    OK("2.2.1 U+007F", "\x7f"),
    OK("2.2.2 U+07FF", "\xdf\xbf"),
    OK("2.2.3 U+FFFF", "\xef\xbf\xbf"),
    BAD("2.2.4 U+1FFFFF", "\xf7\xbf\xbf\xbf", 0),
    BAD("2.2.5 U+3FFFFFF", "\xfb\xbf\xbf\xbf\xbf", 0),
    BAD("2.2.6 U+7FFFFFFF", "\xfd\xbf\xbf\xbf\xbf\xbf", 0),
    /* 2.3: other boundary conditions */
    OK("2.3.1 U+D7FF", "\xed\x9f\xbf"),
    OK("2.3.2 U+E000", "\xee\x80\x80"),
    OK("2.3.3 U+FFFD", "\xef\xbf\xbd"),
    OK("2.3.4 U+10FFFF", "\xf4\x8f\xbf\xbf"),
    BAD("2.3.5 U+110000", "\xf4\x90\x80\x80", 1),
    /* 3.1: unexpected continuation bytes */
    BAD("3.1.1 first continuation byte", "\x80", 0),
    BAD("3.1.2 last continuation byte", "\xbf", 0),
    BAD("3.1.3 2 continuation bytes", "\x80\xbf", 0),
    BAD("3.1.6 after a valid char", "a\xc3\xa9\x80", 3),
    /* 3.2: lonely start characters (each followed by a space) */
    BAD("3.2.1 lonely C0", "\xc0 ", 0),
    BAD("3.2.1 lonely C2", "\xc2 ", 1),
    BAD("3.2.2 lonely E1", "\xe1 ", 1),
    BAD("3.2.3 lonely F1", "\xf1 ", 1),
    BAD("3.2.4 lonely F8", "\xf8 ", 0),
    BAD("3.2.5 lonely FC", "\xfc ", 0),
    /* 3.3: sequences with the last continuation byte missing */
    BAD("3.3.1 C0 alone", "\xc0", 0),
    BAD("3.3.2 E0 80", "\xe0\x80", 1),
    BAD("3.3.3 F0 80 80", "\xf0\x80\x80", 1),
    BAD("3.3.6 DF then space", "\xdf ", 1),
    BAD("3.3.8 F7 BF BF", "\xf7\xbf\xbf", 0),
    PARTIAL("3.3 truncated C2", "\xc2"),
    PARTIAL("3.3 truncated DF", "\xdf"),
    PARTIAL("3.3 truncated E0 A0", "\xe0\xa0"),
    PARTIAL("3.3 truncated EF BF", "\xef\xbf"),
    PARTIAL("3.3 truncated F0 90 80", "\xf0\x90\x80"),
    PARTIAL("3.3 truncated F4 8F BF", "\xf4\x8f\xbf"),
    PARTIAL("3.3 truncated after text", "abc\xe2\x82"),
    /* 3.4: concatenation of incomplete sequences */
    BAD("3.4 C2 then E0 A0", "\xc2\xe0\xa0", 1),
    BAD("3.4 E1 80 then F1", "\xe1\x80\xf1\x80\x80", 2),
    /* 3.5: impossible bytes */
    BAD("3.5.1 FE", "\xfe", 0),
    BAD("3.5.2 FF", "\xff", 0),
    BAD("3.5.3 FE FE FF FF", "\xfe\xfe\xff\xff", 0),
    BAD("3.5 F5", "\xf5\x80\x80\x80", 0),
    /* 4.1: overlong ASCII slash */
    BAD("4.1.1 C0 AF", "\xc0\xaf", 0),
    BAD("4.1.2 E0 80 AF", "\xe0\x80\xaf", 1),
    BAD("4.1.3 F0 80 80 AF", "\xf0\x80\x80\xaf", 1),
    BAD("4.1.4 F8 80 80 80 AF", "\xf8\x80\x80\x80\xaf", 0),
    BAD("4.1.5 FC 80 80 80 80 AF", "\xfc\x80\x80\x80\x80\xaf", 0),
    /* 4.2: maximum overlong sequences */
    BAD("4.2.1 C1 BF", "\xc1\xbf", 0),
    BAD("4.2.2 E0 9F BF", "\xe0\x9f\xbf", 1),
    BAD("4.2.3 F0 8F BF BF", "\xf0\x8f\xbf\xbf", 1),
    /* 4.3: overlong NUL */
    BAD("4.3.1 C0 80", "\xc0\x80", 0),
    BAD("4.3.2 E0 80 80", "\xe0\x80\x80", 1),
    BAD("4.3.3 F0 80 80 80", "\xf0\x80\x80\x80", 1),
    /* 5.1: single UTF-16 surrogates */
    BAD("5.1.1 U+D800", "\xed\xa0\x80", 1),
    BAD("5.1.2 U+DB7F", "\xed\xad\xbf", 1),
    BAD("5.1.3 U+DB80", "\xed\xae\x80", 1),
    BAD("5.1.4 U+DBFF", "\xed\xaf\xbf", 1),
    BAD("5.1.5 U+DC00", "\xed\xb0\x80", 1),
    BAD("5.1.6 U+DF80", "\xed\xbe\x80", 1),
    BAD("5.1.7 U+DFFF", "\xed\xbf\xbf", 1),
    /* 5.2: paired UTF-16 surrogates */
    BAD("5.2.1 U+D800 U+DC00", "\xed\xa0\x80\xed\xb0\x80", 1),
    BAD("5.2.8 U+DBFF U+DFFF", "\xed\xaf\xbf\xed\xbf\xbf", 1),
    /* 5.3: noncharacters are valid UTF-8 (RFC 3629 does not exclude them) */
    OK("5.3.1 U+FFFE", "\xef\xbf\xbe"),
    OK("5.3.2 U+FFFF", "\xef\xbf\xbf"),
    OK("5.3.3 U+FDD0", "\xef\xb7\x90"),
    OK("5.3.4 U+10FFFE", "\xf4\x8f\xbf\xbe"),
    /* The failure position is exact behind the 16- and 8-byte ASCII path. */
    BAD("ascii run then FF", "0123456789abcdef0123456789abcdefXYZ\xff", 35),
    BAD("ascii run then surrogate", "0123456789abcdef0123456\xed\xa0\x80", 24),
    OK("ascii run then 4-byte", "0123456789abcdef0123456\xf0\x9f\x98\x80tail"),
};

#define N_CASES (sizeof(kuhn_cases) / sizeof(kuhn_cases[0]))

static const uint8_t *bytes_of(const utf8_case_t *c)
{
    return (const uint8_t *)c->bytes;
}

/* ---- reference implementation (Unicode 15, table 3-7) ---- */

/* Returns the index of the first byte that cannot continue a well-formed
 * text, or -1; *complete says whether the text ends on a boundary. */
static long ref_fail_at(const uint8_t *s, size_t n, bool *complete)
{
    size_t i = 0;
    *complete = true;
    while (i < n) {
        uint8_t b = s[i];
        uint8_t lo = 0x80, hi = 0xBF;
        size_t need;
        if (b <= 0x7F) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
        } else if (b == 0xE0) {
            need = 2, lo = 0xA0;
        } else if (b == 0xED) {
            need = 2, hi = 0x9F;
        } else if (b >= 0xE1 && b <= 0xEF) {
            need = 2;
        } else if (b == 0xF0) {
            need = 3, lo = 0x90;
        } else if (b == 0xF4) {
            need = 3, hi = 0x8F;
        } else if (b >= 0xF1 && b <= 0xF3) {
            need = 3;
        } else {
            return (long)i;
        }
        for (size_t j = 1; j <= need; j++) {
            if (i + j == n) {
                *complete = false;
                return -1;
            }
            uint8_t c = s[i + j];
            uint8_t clo = j == 1 ? lo : 0x80, chi = j == 1 ? hi : 0xBF;
            if (c < clo || c > chi) {
                return (long)(i + j);
            }
        }
        i += need + 1;
    }
    return -1;
}

/* A second, independent reference: decode code points and reject overlongs,
 * surrogates and values above U+10FFFF by value. */
static bool ref_decode_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        uint32_t cp, min;
        size_t need;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            need = 1, cp = b & 0x1Fu, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            need = 2, cp = b & 0x0Fu, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            need = 3, cp = b & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < need) {
            return false;
        }
        for (size_t j = 1; j <= need; j++) {
            uint8_t c = s[i + j];
            if ((c & 0xC0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (c & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += need + 1;
    }
    return true;
}

/* Brute force "can `s` still become valid": try every completion by up to
 * three continuation bytes, one from each class the lead bytes distinguish. */
static bool ref_is_prefix(const uint8_t *s, size_t n)
{
    static const uint8_t reps[3] = {0x80, 0x90, 0xA0};
    uint8_t buf[16];
    assert_true(n + 3 <= sizeof(buf));
    memcpy(buf, s, n);
    if (ref_decode_valid(buf, n)) {
        return true;
    }
    for (size_t extra = 1; extra <= 3; extra++) {
        size_t combos = extra == 1 ? 3 : extra == 2 ? 9 : 27;
        for (size_t c = 0; c < combos; c++) {
            size_t k = c;
            for (size_t j = 0; j < extra; j++) {
                buf[n + j] = reps[k % 3];
                k /= 3;
            }
            if (ref_decode_valid(buf, n + extra)) {
                return true;
            }
        }
    }
    return false;
}

/* ---- helpers ---- */

/* Feeds `s` in pieces at the given cut points; returns the index of the
 * piece whose feed failed first (or -1) and checks that later feeds fail too. */
static int feed_pieces(wsb_utf8_t *v, const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts)
{
    int failed_piece = -1;
    size_t start = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        int rc = wsb_utf8_feed(v, s + start, end - start);
        if (failed_piece >= 0) {
            assert_int_equal(rc, WSB_EUTF8);
        } else if (rc != 0) {
            assert_int_equal(rc, WSB_EUTF8);
            failed_piece = (int)i;
        }
        start = end;
    }
    return failed_piece;
}

static uint64_t rng_state;

static uint32_t rng(void)
{
    /* xorshift64*: deterministic across platforms, seeded per test. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* ---- tests ---- */

static void test_initial_state(void **state)
{
    (void)state;
    wsb_utf8_t v;
    wsb_utf8_init(&v);
    assert_true(wsb_utf8_complete(&v));
    assert_int_equal(wsb_utf8_feed(&v, NULL, 0), 0);
    assert_true(wsb_utf8_complete(&v));
    assert_true(wsb_utf8_valid(NULL, 0));
}

static void test_kuhn_one_shot(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const utf8_case_t *c = &kuhn_cases[i];
        bool ok = wsb_utf8_valid(bytes_of(c), c->len);
        if (ok != c->complete) {
            fail_msg("case %s: valid=%d, expected %d", c->name, ok, c->complete);
        }
        wsb_utf8_t v;
        wsb_utf8_init(&v);
        int rc = wsb_utf8_feed(&v, bytes_of(c), c->len);
        assert_int_equal(rc, c->fail_at >= 0 ? WSB_EUTF8 : 0);
        assert_int_equal(wsb_utf8_complete(&v), c->complete);

        /* The cases agree with both references. */
        bool complete;
        assert_int_equal(ref_fail_at(bytes_of(c), c->len, &complete), c->fail_at);
        assert_int_equal(ref_decode_valid(bytes_of(c), c->len), c->complete);
    }
}

/* Fail fast: every byte before fail_at is accepted one at a time, the byte at
 * fail_at is refused, and the validator then stays failed. */
static void test_kuhn_fail_fast_byte_at_a_time(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const utf8_case_t *c = &kuhn_cases[i];
        wsb_utf8_t v;
        wsb_utf8_init(&v);
        for (size_t k = 0; k < c->len; k++) {
            int rc = wsb_utf8_feed(&v, bytes_of(c) + k, 1);
            int expect = (c->fail_at >= 0 && k >= (size_t)c->fail_at) ? WSB_EUTF8 : 0;
            if (rc != expect) {
                fail_msg("case %s byte %zu: rc=%d expected %d", c->name, k, rc, expect);
            }
        }
        if (c->fail_at >= 0) {
            uint8_t ascii = 'a';
            assert_int_equal(wsb_utf8_feed(&v, &ascii, 1), WSB_EUTF8);
            assert_int_equal(wsb_utf8_feed(&v, NULL, 0), WSB_EUTF8);
            assert_false(wsb_utf8_complete(&v));
            wsb_utf8_init(&v);
            assert_int_equal(wsb_utf8_feed(&v, &ascii, 1), 0);
            assert_true(wsb_utf8_complete(&v));
        } else {
            assert_int_equal(wsb_utf8_complete(&v), c->complete);
        }
    }
}

static void test_kuhn_every_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const utf8_case_t *c = &kuhn_cases[i];
        for (size_t cut = 0; cut <= c->len; cut++) {
            wsb_utf8_t v;
            wsb_utf8_init(&v);
            int piece = feed_pieces(&v, bytes_of(c), c->len, &cut, 1);
            int expect = c->fail_at < 0 ? -1 : (size_t)c->fail_at < cut ? 0 : 1;
            if (piece != expect) {
                fail_msg("case %s cut %zu: failed piece %d, expected %d", c->name, cut, piece,
                         expect);
            }
            assert_int_equal(wsb_utf8_complete(&v), c->complete);
        }
    }
}

/* Every continuation byte alone and every lead byte followed by a space. */
static void test_lonely_bytes(void **state)
{
    (void)state;
    for (unsigned b = 0x80; b <= 0xFF; b++) {
        uint8_t s[2] = {(uint8_t)b, ' '};
        wsb_utf8_t v;
        wsb_utf8_init(&v);
        int rc0 = wsb_utf8_feed(&v, s, 1);
        int rc1 = wsb_utf8_feed(&v, s + 1, 1);
        bool lead_ok = (b >= 0xC2 && b <= 0xF4);
        assert_int_equal(rc0, lead_ok ? 0 : WSB_EUTF8);
        assert_int_equal(rc1, WSB_EUTF8);
        assert_false(wsb_utf8_valid(s, 2));
    }
}

/* All strings of 1 and 2 bytes: fail-fast semantics against brute force;
 * all strings of 3 bytes: validity against the decoding reference. */
static void test_exhaustive_short(void **state)
{
    (void)state;
    for (unsigned a = 0; a < 256; a++) {
        uint8_t s1[1] = {(uint8_t)a};
        wsb_utf8_t v;
        wsb_utf8_init(&v);
        assert_int_equal(wsb_utf8_feed(&v, s1, 1) == 0, ref_is_prefix(s1, 1));
        assert_int_equal(wsb_utf8_valid(s1, 1), ref_decode_valid(s1, 1));
        for (unsigned b = 0; b < 256; b++) {
            uint8_t s2[2] = {(uint8_t)a, (uint8_t)b};
            wsb_utf8_init(&v);
            bool dfa_prefix = wsb_utf8_feed(&v, s2, 2) == 0;
            if (dfa_prefix != ref_is_prefix(s2, 2)) {
                fail_msg("%02x %02x: prefix %d", a, b, dfa_prefix);
            }
            assert_int_equal(dfa_prefix && wsb_utf8_complete(&v), ref_decode_valid(s2, 2));
        }
    }
    unsigned mismatches = 0;
    for (uint32_t x = 0; x < (1u << 24); x++) {
        uint8_t s3[3] = {(uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};
        mismatches += wsb_utf8_valid(s3, 3) != ref_decode_valid(s3, 3);
    }
    assert_int_equal(mismatches, 0);
}

/* All 4-byte sequences that start with a 4-byte lead and a valid-looking
 * second byte, plus a sample of the rest. */
static void test_four_byte_sequences(void **state)
{
    (void)state;
    unsigned mismatches = 0;
    for (unsigned lead = 0xF0; lead <= 0xF7; lead++) {
        for (unsigned b = 0x70; b <= 0xCF; b++) {
            for (unsigned c = 0x70; c <= 0xCF; c += 3) {
                for (unsigned d = 0x70; d <= 0xCF; d += 5) {
                    uint8_t s[4] = {(uint8_t)lead, (uint8_t)b, (uint8_t)c, (uint8_t)d};
                    mismatches += wsb_utf8_valid(s, 4) != ref_decode_valid(s, 4);
                }
            }
        }
    }
    assert_int_equal(mismatches, 0);
}

/* Appends one random token: an ASCII run, a valid code point of any length,
 * or (rarely) an arbitrary byte. */
static size_t random_token(uint8_t *out)
{
    uint32_t kind = rng() % 100;
    if (kind < 40) {
        size_t n = rng() % 24;
        for (size_t i = 0; i < n; i++) {
            out[i] = (uint8_t)(0x20 + rng() % 0x5F);
        }
        return n;
    }
    if (kind < 97) {
        static const uint32_t edges[] = {0x80,   0x7FF,   0x800,   0xD7FF,  0xE000,
                                         0xFFFF, 0x10000, 0xFFFFD, 0x10FFFF};
        uint32_t cp = (rng() % 4 == 0) ? edges[rng() % 9] : 0x80 + rng() % 0x10FF80;
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        if (cp < 0x800) {
            out[0] = (uint8_t)(0xC0 | cp >> 6);
            out[1] = (uint8_t)(0x80 | (cp & 0x3F));
            return 2;
        }
        if (cp < 0x10000) {
            out[0] = (uint8_t)(0xE0 | cp >> 12);
            out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
            out[2] = (uint8_t)(0x80 | (cp & 0x3F));
            return 3;
        }
        out[0] = (uint8_t)(0xF0 | cp >> 18);
        out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[3] = (uint8_t)(0x80 | (cp & 0x3F));
        return 4;
    }
    out[0] = (uint8_t)rng();
    return 1;
}

/* Random mixed texts fed in random pieces: the piece that fails is the one
 * holding the reference's first impossible byte, and validity matches. */
static void test_random_texts_against_reference(void **state)
{
    (void)state;
    rng_state = 0x9E3779B97F4A7C15ull;
    uint8_t text[600];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        size_t tokens = 1 + rng() % 24;
        for (size_t t = 0; t < tokens && n + 24 <= sizeof(text); t++) {
            n += random_token(text + n);
        }
        if (rng() % 8 == 0 && n > 0) {
            n -= 1 + rng() % (n < 3 ? n : 3); /* truncate inside a code point */
        }
        bool complete;
        long fail_at = ref_fail_at(text, n, &complete);
        assert_int_equal(wsb_utf8_valid(text, n), fail_at < 0 && complete);
        assert_int_equal(ref_decode_valid(text, n), fail_at < 0 && complete);

        size_t cuts[6];
        size_t ncuts = rng() % 6;
        for (size_t i = 0; i < ncuts; i++) {
            cuts[i] = n == 0 ? 0 : rng() % (n + 1);
        }
        for (size_t i = 1; i < ncuts; i++) { /* insertion sort */
            for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t tmp = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = tmp;
            }
        }
        int expect_piece = -1;
        if (fail_at >= 0) {
            expect_piece = 0;
            while ((size_t)expect_piece < ncuts && cuts[expect_piece] <= (size_t)fail_at) {
                expect_piece++;
            }
        }
        wsb_utf8_t v;
        wsb_utf8_init(&v);
        assert_int_equal(feed_pieces(&v, text, n, cuts, ncuts), expect_piece);
        assert_int_equal(wsb_utf8_complete(&v), fail_at < 0 && complete);
    }
}

/* Inputs that end exactly at an inaccessible page, at every length and
 * alignment the word-at-a-time path can meet. */
static void test_guard_page(void **state)
{
    (void)state;
    uint8_t text[64];
    for (size_t i = 0; i < sizeof(text); i++) {
        text[i] = (uint8_t)('a' + i % 26);
    }
    static const uint8_t euro[3] = {0xe2, 0x82, 0xac};
    memcpy(text + 40, euro, sizeof(euro));
    for (size_t start = 0; start < 48; start++) {
        for (size_t len = 0; start + len <= sizeof(text); len++) {
            guard_buf_t g;
            const uint8_t *p = guard_copy(&g, text + start, len);
            bool complete;
            long fail_at = ref_fail_at(p, len, &complete);
            assert_int_equal(wsb_utf8_valid(p, len), fail_at < 0 && complete);
            wsb_utf8_t v;
            wsb_utf8_init(&v);
            assert_int_equal(wsb_utf8_feed(&v, p, len), fail_at < 0 ? 0 : WSB_EUTF8);
            guard_free(&g);
        }
    }
}

/* A long ASCII text with one bad byte at every position: found by the word
 * path wherever it sits in a 16/8-byte block. */
static void test_ascii_fast_path_positions(void **state)
{
    (void)state;
    uint8_t text[100];
    for (size_t bad = 0; bad < sizeof(text); bad++) {
        memset(text, 'x', sizeof(text));
        text[bad] = 0xFF;
        assert_false(wsb_utf8_valid(text, sizeof(text)));
        wsb_utf8_t v;
        wsb_utf8_init(&v);
        assert_int_equal(wsb_utf8_feed(&v, text, bad), 0);
        assert_int_equal(wsb_utf8_feed(&v, text + bad, sizeof(text) - bad), WSB_EUTF8);

        /* The same position holding a valid 2-byte character. */
        if (bad + 1 < sizeof(text)) {
            text[bad] = 0xC3;
            text[bad + 1] = 0xA9;
            assert_true(wsb_utf8_valid(text, sizeof(text)));
            assert_false(wsb_utf8_valid(text, bad + 1));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initial_state),
        cmocka_unit_test(test_kuhn_one_shot),
        cmocka_unit_test(test_kuhn_fail_fast_byte_at_a_time),
        cmocka_unit_test(test_kuhn_every_split),
        cmocka_unit_test(test_lonely_bytes),
        cmocka_unit_test(test_exhaustive_short),
        cmocka_unit_test(test_four_byte_sequences),
        cmocka_unit_test(test_random_texts_against_reference),
        cmocka_unit_test(test_guard_page),
        cmocka_unit_test(test_ascii_fast_path_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
