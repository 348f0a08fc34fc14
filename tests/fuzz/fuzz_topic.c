/*
 * fuzz_topic.c - differential fuzzer for topic.c.
 *
 * Input: "pattern\ntopic" (split at the first '\n'; without one, the whole
 * input is both). An independent reference written here - a naive tokenizer
 * with its own UTF-8 decoder and a recursive matcher over token arrays - must
 * agree with wsb_topic_check (both ways: neither accepts what the other
 * rejects), wsb_topic_is_pattern, wsb_topic_is_reserved and, for a valid
 * pattern and a valid topic, wsb_topic_matches. Invalid input is still fed
 * to wsb_topic_matches so the sanitizers catch any over-read.
 */
#include "wsb/common.h"
#include "wsb/topic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *p;
    size_t len;
} tok_t;

#define REF_MAX_TOKENS 1024

/* Decodes one code point the textbook way: take the payload bits the lead
 * byte announces, then reject overlongs by minimum value. Returns the length
 * or 0 when invalid. */
static size_t ref_decode(const uint8_t *s, size_t avail, uint32_t *cp)
{
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n;
    uint32_t c;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        c = s[0] & 0x1Fu;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        c = s[0] & 0x0Fu;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        c = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (avail < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if (c < min_for_len[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        return 0;
    }
    *cp = c;
    return n;
}

static bool ref_char_ok(uint32_t c)
{
    static const uint32_t spaces[] = {0x20,   0xA0,   0x1680, 0x2028, 0x2029,
                                      0x202F, 0x205F, 0x3000, 0xFEFF};
    if (c < 0x20 || (c >= 0x7F && c <= 0x9F)) {
        return false;
    }
    if (c >= 0x2000 && c <= 0x200A) {
        return false;
    }
    for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++) {
        if (c == spaces[i]) {
            return false;
        }
    }
    return true;
}

/* Splits s at every '.', with no validation. Returns the token count. */
static size_t ref_split(const uint8_t *s, size_t len, tok_t *toks)
{
    size_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (n < REF_MAX_TOKENS) {
                toks[n].p = s + start;
                toks[n].len = i - start;
            }
            n++;
            start = i + 1;
        }
    }
    return n;
}

static bool is_tok(const tok_t *t, char c)
{
    return t->len == 1 && t->p[0] == (uint8_t)c;
}

static bool ref_valid(const uint8_t *s, size_t len, bool pattern)
{
    static tok_t toks[REF_MAX_TOKENS];
    if (len == 0 || len > 256) {
        return false;
    }
    size_t i = 0;
    while (i < len) {
        uint32_t c;
        size_t n = ref_decode(s + i, len - i, &c);
        if (n == 0 || !ref_char_ok(c)) {
            return false;
        }
        i += n;
    }
    size_t nt = ref_split(s, len, toks);
    if (nt > 32) {
        return false;
    }
    for (size_t t = 0; t < nt; t++) {
        if (toks[t].len == 0) {
            return false;
        }
        bool wild = is_tok(&toks[t], '*') || is_tok(&toks[t], '>');
        if (wild) {
            if (!pattern || (is_tok(&toks[t], '>') && t + 1 != nt)) {
                return false;
            }
        } else if (memchr(toks[t].p, '*', toks[t].len) != NULL ||
                   memchr(toks[t].p, '>', toks[t].len) != NULL) {
            return false;
        }
    }
    return true;
}

static bool ref_match_rec(const tok_t *p, size_t np, const tok_t *t, size_t nt)
{
    if (np == 0) {
        return nt == 0;
    }
    if (is_tok(&p[0], '>')) {
        return nt >= 1;
    }
    if (nt == 0) {
        return false;
    }
    if (!is_tok(&p[0], '*') && (p[0].len != t[0].len || memcmp(p[0].p, t[0].p, p[0].len) != 0)) {
        return false;
    }
    return ref_match_rec(p + 1, np - 1, t + 1, nt - 1);
}

static bool ref_matches(const uint8_t *pat, size_t plen, const uint8_t *top, size_t tlen)
{
    static tok_t pt[REF_MAX_TOKENS];
    static tok_t tt[REF_MAX_TOKENS];
    if (plen == 0 || tlen == 0) {
        return false;
    }
    size_t np = ref_split(pat, plen, pt);
    size_t nt = ref_split(top, tlen, tt);
    if (top[0] == '$' && (is_tok(&pt[0], '*') || is_tok(&pt[0], '>'))) {
        return false;
    }
    return ref_match_rec(pt, np, tt, nt);
}

static void check_one(const uint8_t *s, size_t len)
{
    for (int pattern = 0; pattern <= 1; pattern++) {
        const char *why = NULL;
        int rc = wsb_topic_check((const char *)s, len,
                                 pattern ? WSB_TOPIC_PATTERN : WSB_TOPIC_EXACT, &why);
        bool ref = ref_valid(s, len, pattern != 0);
        if ((rc == 0) != ref) {
            abort(); /* check and the reference disagree */
        }
        if (rc != 0 && (rc != WSB_EINVAL || why == NULL || why[0] == '\0')) {
            abort();
        }
    }
    if (ref_valid(s, len, true)) {
        static tok_t toks[REF_MAX_TOKENS];
        size_t nt = ref_split(s, len, toks);
        bool wild = false;
        for (size_t i = 0; i < nt; i++) {
            wild = wild || is_tok(&toks[i], '*') || is_tok(&toks[i], '>');
        }
        if (wsb_topic_is_pattern((const char *)s, len) != wild) {
            abort();
        }
        if (wsb_topic_is_reserved((const char *)s, len) != (len > 0 && s[0] == '$')) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    const uint8_t *pat = data;
    size_t plen = nl != NULL ? (size_t)(nl - data) : size;
    const uint8_t *top = nl != NULL ? nl + 1 : data;
    size_t tlen = nl != NULL ? size - plen - 1 : size;

    /* Exact-size heap copies so ASan sees any read past the end. */
    uint8_t *p = malloc(plen + (plen == 0));
    uint8_t *t = malloc(tlen + (tlen == 0));
    if (p == NULL || t == NULL) {
        abort();
    }
    memcpy(p, pat, plen);
    memcpy(t, top, tlen);

    check_one(p, plen);
    check_one(t, tlen);

    bool m = wsb_topic_matches((const char *)p, plen, (const char *)t, tlen);
    if (ref_valid(p, plen, true) && ref_valid(t, tlen, false)) {
        if (m != ref_matches(p, plen, t, tlen)) {
            abort(); /* the matcher and the reference disagree */
        }
        /* An exact topic always matches itself. */
        if (!wsb_topic_matches((const char *)t, tlen, (const char *)t, tlen)) {
            abort();
        }
    }
    free(p);
    free(t);
    return 0;
}
