/*
 * topic.c - validation and matching of topic names and subscription patterns.
 *
 * Everything here works on (pointer, length) slices, never reads past `len`
 * and allocates nothing. UTF-8 is decoded locally (strict RFC 3629) because
 * the grammar needs the code points themselves, not just validity: C1
 * controls and Unicode white space are multi-byte sequences.
 */
#include "wsb/topic.h"

#include "wsb/common.h"

#include <stdint.h>
#include <string.h>

/* The sentences returned through *why. They name the rule that failed so the
 * broker can pass them to the client unchanged in an error reply. */
static const char WHY_EMPTY[] = "topic is empty";
static const char WHY_TOO_LONG[] = "topic longer than 256 bytes";
static const char WHY_TOO_DEEP[] = "topic has more than 32 tokens";
static const char WHY_EMPTY_TOKEN[] = "empty token: a topic may not start or end with '.' "
                                      "or contain '..'";
static const char WHY_WILDCARD_PART[] = "'*' and '>' are only allowed as whole tokens";
static const char WHY_WILDCARD_EXACT[] = "wildcards '*' and '>' are not allowed in a topic "
                                         "(only in subscription patterns)";
static const char WHY_GT_NOT_LAST[] = "'>' must be the last token";
static const char WHY_UTF8[] = "invalid UTF-8";
static const char WHY_CONTROL[] = "control characters are not allowed in a topic";
static const char WHY_SPACE[] = "white space is not allowed in a topic";

/*
 * Decodes one multi-byte UTF-8 sequence starting at s[0] (a byte >= 0x80).
 * Returns its length (2-4) and sets *cp, or 0 if the sequence is invalid:
 * a stray continuation byte, an overlong form, a surrogate, a code point
 * above U+10FFFF, or a sequence truncated by the end of the input.
 */
static size_t utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp)
{
    unsigned char b0 = s[0];
    size_t n;
    uint32_t c;
    unsigned char lo = 0x80; /* allowed range of the second byte */
    unsigned char hi = 0xBF;

    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
        c = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        c = b0 & 0x0Fu;
        if (b0 == 0xE0) {
            lo = 0xA0; /* overlong */
        } else if (b0 == 0xED) {
            hi = 0x9F; /* surrogates U+D800..U+DFFF */
        }
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        c = b0 & 0x07u;
        if (b0 == 0xF0) {
            lo = 0x90; /* overlong */
        } else if (b0 == 0xF4) {
            hi = 0x8F; /* above U+10FFFF */
        }
    } else {
        return 0; /* continuation byte, C0/C1 lead (overlong) or F5..FF */
    }
    if (avail < n) {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0u) != 0x80u) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    *cp = c;
    return n;
}

/* Unicode White_Space code points outside ASCII, plus U+FEFF (the zero-width
 * no-break space / byte order mark), which is invisible and has no business
 * in a name. U+0085 (NEL) is a C1 control and rejected as such. */
static int is_unicode_space(uint32_t cp)
{
    return cp == 0x00A0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static int fail(const char **why, const char *sentence)
{
    if (why != NULL) {
        *why = sentence;
    }
    return WSB_EINVAL;
}

/* Checks one token s[start, end): non-empty, and '*' / '>' only as a whole
 * token, only in patterns, and '>' only as the last token. */
static const char *check_token(const char *s, size_t start, size_t end, int flags, int last,
                               int has_wild_char)
{
    size_t n = end - start;
    if (n == 0) {
        return WHY_EMPTY_TOKEN;
    }
    if (!has_wild_char) {
        return NULL;
    }
    if (n != 1) {
        return WHY_WILDCARD_PART;
    }
    if (!(flags & WSB_TOPIC_PATTERN)) {
        return WHY_WILDCARD_EXACT;
    }
    if (s[start] == '>' && !last) {
        return WHY_GT_NOT_LAST;
    }
    return NULL;
}

int wsb_topic_check(const char *s, size_t len, int flags, const char **why)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t tokens = 1;
    size_t tok_start = 0;
    int has_wild_char = 0;
    const char *bad;

    if (s == NULL || len == 0) {
        return fail(why, WHY_EMPTY);
    }
    if (len > WSB_TOPIC_MAX_LEN) {
        return fail(why, WHY_TOO_LONG);
    }
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c == '.') {
            bad = check_token(s, tok_start, i, flags, 0, has_wild_char);
            if (bad != NULL) {
                return fail(why, bad);
            }
            if (++tokens > WSB_TOPIC_MAX_TOKENS) {
                return fail(why, WHY_TOO_DEEP);
            }
            tok_start = i + 1;
            has_wild_char = 0;
            i++;
        } else if (c < 0x80) {
            if (c < 0x20 || c == 0x7F) {
                return fail(why, WHY_CONTROL);
            }
            if (c == ' ') {
                return fail(why, WHY_SPACE);
            }
            if (c == '*' || c == '>') {
                has_wild_char = 1;
            }
            i++;
        } else {
            uint32_t cp = 0;
            size_t n = utf8_decode(u + i, len - i, &cp);
            if (n == 0) {
                return fail(why, WHY_UTF8);
            }
            if (cp <= 0x9F) {
                return fail(why, WHY_CONTROL); /* C1 controls U+0080..U+009F */
            }
            if (is_unicode_space(cp)) {
                return fail(why, WHY_SPACE);
            }
            i += n;
        }
    }
    bad = check_token(s, tok_start, len, flags, 1, has_wild_char);
    if (bad != NULL) {
        return fail(why, bad);
    }
    return 0;
}

static int is_wild_token(const char *s, size_t start, size_t end)
{
    return end - start == 1 && (s[start] == '*' || s[start] == '>');
}

bool wsb_topic_is_pattern(const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (is_wild_token(s, start, i)) {
                return true;
            }
            start = i + 1;
        }
    }
    return false;
}

bool wsb_topic_is_reserved(const char *s, size_t len)
{
    return s != NULL && len > 0 && s[0] == '$';
}

/* End (exclusive) of the token that starts at `start`. */
static size_t token_end(const char *s, size_t len, size_t start)
{
    const char *dot = start < len ? memchr(s + start, '.', len - start) : NULL;
    return dot != NULL ? (size_t)(dot - s) : len;
}

bool wsb_topic_matches(const char *pattern, size_t plen, const char *topic, size_t tlen)
{
    size_t pi = 0;
    size_t ti = 0;

    if (pattern == NULL || topic == NULL || plen == 0 || tlen == 0) {
        return false;
    }
    /* A wildcard in the first position never matches a reserved topic: a
     * client subscribed to ">" or "*.stats" must not receive "$sys" traffic
     * unless it names the "$" token explicitly. */
    int topic_reserved = topic[0] == '$';
    for (int first = 1;; first = 0) {
        size_t pe = token_end(pattern, plen, pi);
        size_t te = token_end(topic, tlen, ti);
        size_t pn = pe - pi;

        if (pn == 1 && pattern[pi] == '>') {
            /* ">" matches the current topic token and everything after it;
             * the topic has at least this one token, so it matches. */
            return !(first && topic_reserved);
        }
        if (pn == 1 && pattern[pi] == '*') {
            if (first && topic_reserved) {
                return false;
            }
        } else if (pn != te - ti || memcmp(pattern + pi, topic + ti, pn) != 0) {
            return false;
        }
        int p_last = pe == plen;
        int t_last = te == tlen;
        if (p_last || t_last) {
            return p_last && t_last;
        }
        pi = pe + 1;
        ti = te + 1;
    }
}

static bool token_is(const char *s, size_t start, size_t end, char c)
{
    return end - start == 1 && s[start] == c;
}

/*
 * Token by token: a literal allowed token covers only the identical literal;
 * "*" covers a literal or "*" (one token either way) but not ">" (one or
 * more); ">" covers whatever remains, as long as one token remains. The
 * reserved-topic rule carries over: a wildcard in the first allowed position
 * never covers a literal "$…" first token, because it would not match the
 * topics that token names.
 */
bool wsb_topic_covers(const char *allowed, size_t alen, const char *pattern, size_t plen)
{
    if (allowed == NULL || pattern == NULL || alen == 0 || plen == 0) {
        return false;
    }
    size_t ai = 0;
    size_t pi = 0;
    for (int first = 1;; first = 0) {
        size_t ae = token_end(allowed, alen, ai);
        size_t pe = token_end(pattern, plen, pi);
        bool p_wild = is_wild_token(pattern, pi, pe) != 0;
        bool reserved = first && !p_wild && pattern[pi] == '$';
        if (token_is(allowed, ai, ae, '>')) {
            return !reserved;
        }
        if (token_is(allowed, ai, ae, '*')) {
            if (reserved || token_is(pattern, pi, pe, '>')) {
                return false;
            }
        } else if (ae - ai != pe - pi || memcmp(allowed + ai, pattern + pi, ae - ai) != 0) {
            return false; /* a literal covers only itself (a wildcard is not a literal) */
        }
        bool a_last = ae == alen;
        bool p_last = pe == plen;
        if (a_last || p_last) {
            return a_last && p_last;
        }
        ai = ae + 1;
        pi = pe + 1;
    }
}
