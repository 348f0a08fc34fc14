/*
 * json_scan.c - strict one-pass JSON validation with raw spans (see
 * json_scan.h for the rules, and why they are jansson's).
 *
 * The scanner is a loop over an explicit container stack (one bit per level:
 * object or array), not a recursion, so the 2048-level limit costs 256 bytes
 * of stack and no call depth. Member names of the objects still open live in
 * one array (a sentinel entry opens each object and remembers where the
 * enclosing object's names start); an object's names are checked for
 * duplicates when they are added (few names) or when it closes (many).
 */
#include "wsb/json_scan.h"

#include "wsb/utf8.h"

#include <stdlib.h>
#include <string.h>

/* Objects with more names than this are checked by sorting at their close
 * instead of comparing each new name with the earlier ones. */
#define PAIRWISE_NAMES 16

/* 2^1024 - 2^970: the smallest decimal value that strtod rounds to
 * infinity (DBL_MAX is 2^1024 - 2^971; the halfway value rounds to even,
 * which is up). 309 digits. */
static const char overflow_digits[] =
    "17976931348623158079372897140530341507993413271003782693617377898044496829276475094664901797"
    "75872070963302864166928879109465555478519404026306574886715058206819089020007083836762738548"
    "45817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711"
    "559699508093042880177904174497792";
#define OVERFLOW_EXP10 309 /* overflow_digits has 309 digits: value in [10^308, 10^309) */

/* Bytes a string may hold without a closer look: printable ASCII but the
 * quote and the backslash. */
static const uint8_t plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

typedef struct {
    const char *p; /* the name's bytes between its quotes; NULL: an object's sentinel */
    size_t len;    /* the name's length; a sentinel: the enclosing object's first name */
    bool escaped;
} name_t;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    const uint8_t *err_at;
    const char *reason;
    name_t *names;
    size_t nnames;
    size_t cap;
    size_t obj_start; /* index of the innermost open object's first name */
    bool oom;
    name_t inline_names[WSB_JSON_INLINE_KEYS];
} scan_t;

static bool fail(scan_t *st, const uint8_t *at, const char *reason)
{
    st->err_at = at;
    st->reason = reason;
    return false;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static void skip_ws(const uint8_t **pp, const uint8_t *end)
{
    const uint8_t *p = *pp;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
        p++;
    }
    *pp = p;
}

/* The value of 4 hex digits at p (not checked: the caller did), or -1. */
static int32_t hex4(const uint8_t *p, const uint8_t *end)
{
    if (end - p < 4) {
        return -1;
    }
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v |= c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v |= c - 'A' + 10;
        } else {
            return -1;
        }
    }
    return v;
}

/* A string at st->p (its opening quote). On success st->p is past the
 * closing quote; *escaped says whether it holds an escape, *nul whether one
 * of them is \u0000. */
static bool scan_string(scan_t *st, bool *escaped, bool *nul)
{
    const uint8_t *p = st->p + 1;
    const uint8_t *end = st->end;
    for (;;) {
        while (p < end && plain[*p]) {
            p++;
        }
        if (p >= end) {
            return fail(st, p, "unterminated string");
        }
        uint8_t c = *p;
        if (c == '"') {
            st->p = p + 1;
            return true;
        }
        if (c == '\\') {
            *escaped = true;
            if (end - p < 2) {
                return fail(st, end, "unterminated string");
            }
            uint8_t e = p[1];
            if (e != 'u') {
                if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                    e != 'r' && e != 't') {
                    return fail(st, p, "invalid escape");
                }
                p += 2;
                continue;
            }
            int32_t cp = hex4(p + 2, end);
            if (cp < 0) {
                return fail(st, p, "invalid \\u escape");
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(st, p, "lone low surrogate escape");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int32_t lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8, end) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    return fail(st, p, "high surrogate escape without a low one");
                }
                p += 6;
            }
            *nul = *nul || cp == 0;
            p += 6;
            continue;
        }
        if (c < 0x20) {
            return fail(st, p, "control character in a string");
        }
        size_t n = wsb__utf8_seq_len(p, (size_t)(end - p));
        if (n == 0) {
            return fail(st, p, "invalid UTF-8");
        }
        p += n;
    }
}

/* Does the real whose significant digits are those in [a, a_end) then
 * [b, b_end) reach 2^1024 - 2^970, given that both have 309 digits before
 * the decimal point? (Digit strings compared, the shorter padded with 0.) */
static bool reaches_overflow(const uint8_t *a, const uint8_t *a_end, const uint8_t *b,
                             const uint8_t *b_end)
{
    for (size_t i = 0;; i++) {
        int d = -1;
        if (a < a_end) {
            d = *a++;
        } else if (b < b_end) {
            d = *b++;
        }
        if (d < 0 && i >= OVERFLOW_EXP10) {
            return true; /* equal: the halfway value rounds (to even) up to infinity */
        }
        int t = i < OVERFLOW_EXP10 ? overflow_digits[i] : '0';
        d = d < 0 ? '0' : d;
        if (d != t) {
            return d > t;
        }
    }
}

/* A number at st->p; *kind gets INTEGER or REAL. */
static bool scan_number(scan_t *st, wsb_json_kind_t *kind)
{
    const uint8_t *p = st->p;
    const uint8_t *end = st->end;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    const uint8_t *int_start = p;
    if (p >= end || !is_digit(*p)) {
        return fail(st, p, "invalid number");
    }
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            return fail(st, p, "a number may not start with 0");
        }
    } else {
        while (p < end && is_digit(*p)) {
            p++;
        }
    }
    const uint8_t *int_end = p;
    const uint8_t *frac = NULL;
    const uint8_t *frac_end = NULL;
    bool real = false;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) {
            return fail(st, p, "digit expected after '.'");
        }
        frac = p;
        while (p < end && is_digit(*p)) {
            p++;
        }
        frac_end = p;
        real = true;
    }
    int64_t exp = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p >= end || !is_digit(*p)) {
            return fail(st, p, "digit expected in the exponent");
        }
        /* Saturates far beyond any length a message can have, so the
         * decimal exponent below is exact wherever it matters. */
        while (p < end && is_digit(*p)) {
            if (exp < INT64_C(1000000000000000)) {
                exp = exp * 10 + (*p - '0');
            }
            p++;
        }
        exp = eneg ? -exp : exp;
    }
    if (!real) {
        size_t n = (size_t)(int_end - int_start);
        if (n > 19 ||
            (n == 19 &&
             memcmp(int_start, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0)) {
            return fail(st, st->p, "integer out of the 64-bit range");
        }
        *kind = WSB_JSON_INTEGER;
        st->p = p;
        return true;
    }
    /* The value is 0.S x 10^e10 with S its significant digits; it overflows
     * a double when e10 > 309, never when e10 < 309, and at 309 when S
     * reaches overflow_digits. */
    const uint8_t *sig;
    int64_t e10;
    if (*int_start != '0') {
        sig = int_start;
        e10 = (int64_t)(int_end - int_start) + exp;
    } else {
        const uint8_t *q = frac;
        while (q != NULL && q < frac_end && *q == '0') {
            q++;
        }
        if (q == NULL || q == frac_end) {
            *kind = WSB_JSON_REAL; /* zero */
            st->p = p;
            return true;
        }
        sig = q;
        e10 = exp - (int64_t)(q - frac);
    }
    bool int_digits = sig == int_start; /* S starts in the integer part */
    if (e10 > OVERFLOW_EXP10 ||
        (e10 == OVERFLOW_EXP10 &&
         reaches_overflow(int_digits ? int_start : NULL, int_digits ? int_end : NULL,
                          int_digits ? frac : sig, frac_end))) {
        return fail(st, st->p, "number overflows a double");
    }
    *kind = WSB_JSON_REAL;
    st->p = p;
    return true;
}

/* ---- member names ----------------------------------------------------------------------- */

/* Decodes an already scanned string's interior byte by byte. */
typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    uint8_t buf[4];
    uint8_t n;
    uint8_t i;
} dec_t;

static void dec_init(dec_t *d, const char *p, size_t len)
{
    d->p = (const uint8_t *)p;
    d->end = d->p + len;
    d->n = 0;
    d->i = 0;
}

/* The next decoded byte, or -1 at the end. */
static int dec_next(dec_t *d)
{
    if (d->i < d->n) {
        return d->buf[d->i++];
    }
    if (d->p >= d->end) {
        return -1;
    }
    uint8_t c = *d->p;
    if (c != '\\') {
        d->p++;
        return c;
    }
    c = d->p[1];
    d->p += 2;
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return c; /* " \ / */
    }
    uint32_t cp = (uint32_t)hex4(d->p, d->end);
    d->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t lo = (uint32_t)hex4(d->p + 2, d->end);
        d->p += 6;
        cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
    }
    if (cp < 0x80) {
        return (int)cp;
    }
    if (cp < 0x800) {
        d->buf[0] = (uint8_t)(0xC0 | (cp >> 6));
        d->buf[1] = (uint8_t)(0x80 | (cp & 0x3F));
        d->n = 2;
    } else if (cp < 0x10000) {
        d->buf[0] = (uint8_t)(0xE0 | (cp >> 12));
        d->buf[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        d->buf[2] = (uint8_t)(0x80 | (cp & 0x3F));
        d->n = 3;
    } else {
        d->buf[0] = (uint8_t)(0xF0 | (cp >> 18));
        d->buf[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        d->buf[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        d->buf[3] = (uint8_t)(0x80 | (cp & 0x3F));
        d->n = 4;
    }
    d->i = 1;
    return d->buf[0];
}

/* Orders names by their decoded bytes (shorter first on a common prefix). */
static int name_cmp(const name_t *a, const name_t *b)
{
    if (!a->escaped && !b->escaped) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->p, b->p, n);
        if (c != 0 || a->len == b->len) {
            return c;
        }
        return a->len < b->len ? -1 : 1;
    }
    dec_t da;
    dec_t db;
    dec_init(&da, a->p, a->len);
    dec_init(&db, b->p, b->len);
    for (;;) {
        int x = dec_next(&da);
        int y = dec_next(&db);
        if (x != y || x < 0) {
            return x - y;
        }
    }
}

static int name_qsort_cmp(const void *a, const void *b)
{
    return name_cmp(a, b);
}

static bool push_name(scan_t *st, name_t n)
{
    if (st->nnames == st->cap) {
        size_t cap = st->cap * 2;
        name_t *grown = st->names == st->inline_names ? malloc(cap * sizeof(name_t))
                                                      : realloc(st->names, cap * sizeof(name_t));
        if (grown == NULL) {
            st->oom = true;
            return fail(st, st->p, "out of memory");
        }
        if (st->names == st->inline_names) {
            memcpy(grown, st->inline_names, sizeof st->inline_names);
        }
        st->names = grown;
        st->cap = cap;
    }
    st->names[st->nnames++] = n;
    return true;
}

/* A member name of the innermost object: refused when it repeats one. */
static bool add_name(scan_t *st, const uint8_t *at, name_t n)
{
    size_t have = st->nnames - st->obj_start;
    if (have < PAIRWISE_NAMES) {
        for (size_t i = st->obj_start; i < st->nnames; i++) {
            if (name_cmp(&st->names[i], &n) == 0) {
                return fail(st, at, "duplicate member name");
            }
        }
    }
    return push_name(st, n);
}

static bool open_object(scan_t *st)
{
    if (!push_name(st, (name_t){NULL, st->obj_start, false})) {
        return false;
    }
    st->obj_start = st->nnames;
    return true;
}

/* The innermost object ends at st->p: its many names are checked now. */
static bool close_object(scan_t *st)
{
    size_t n = st->nnames - st->obj_start;
    if (n > PAIRWISE_NAMES) {
        name_t *v = st->names + st->obj_start;
        qsort(v, n, sizeof *v, name_qsort_cmp);
        for (size_t i = 1; i < n; i++) {
            if (name_cmp(&v[i - 1], &v[i]) == 0) {
                return fail(st, st->p - 1, "duplicate member name");
            }
        }
    }
    st->nnames = st->obj_start - 1;
    st->obj_start = st->names[st->nnames].len;
    return true;
}

/* ---- the scan ----------------------------------------------------------------------------- */

static int wanted(const name_t *n, const char *const *keys, size_t nkeys)
{
    for (size_t i = 0; i < nkeys; i++) {
        /* The first byte rules most keys out (an unescaped name of length 0
         * is followed by its closing quote, so p[0] is readable). */
        if (!n->escaped && (uint8_t)keys[i][0] != (n->len > 0 ? (uint8_t)n->p[0] : 0)) {
            continue;
        }
        wsb_json_value_t v = {WSB_JSON_STRING, n->escaped, {n->p - 1, n->len + 2}};
        if (wsb_json_string_is(v, keys[i])) {
            return (int)i;
        }
    }
    return -1;
}

static bool scan_literal(scan_t *st, const char *lit, size_t n)
{
    if ((size_t)(st->end - st->p) < n || memcmp(st->p, lit, n) != 0) {
        return fail(st, st->p, "invalid literal");
    }
    st->p += n;
    return true;
}

/* A scalar at st->p, or false. */
static bool scan_scalar(scan_t *st, wsb_json_kind_t *kind, bool *escaped)
{
    bool nul = false;
    switch (*st->p) {
    case '"':
        *kind = WSB_JSON_STRING;
        return scan_string(st, escaped, &nul);
    case 't':
        *kind = WSB_JSON_TRUE;
        return scan_literal(st, "true", 4);
    case 'f':
        *kind = WSB_JSON_FALSE;
        return scan_literal(st, "false", 5);
    case 'n':
        *kind = WSB_JSON_NULL;
        return scan_literal(st, "null", 4);
    default:
        if (*st->p == '-' || is_digit(*st->p)) {
            return scan_number(st, kind);
        }
        return fail(st, st->p, "a value expected");
    }
}

static bool scan(scan_t *st, unsigned flags, const char *const *keys, size_t nkeys,
                 wsb_json_value_t *members, wsb_json_value_t *root)
{
    uint8_t is_obj[WSB_JSON_MAX_DEPTH / 8] = {0};
    unsigned open = 0;
    int want = -1;
    const uint8_t *member_start = NULL;
    const uint8_t *root_start;
    wsb_json_kind_t kind;
    bool escaped;

    skip_ws(&st->p, st->end);
    root_start = st->p;
    if (!(flags & WSB_JSON_ANY) && (st->p >= st->end || (*st->p != '{' && *st->p != '['))) {
        return fail(st, st->p, "'{' or '[' expected");
    }

value:
    skip_ws(&st->p, st->end);
    if (st->p >= st->end) {
        return fail(st, st->p, "a value expected");
    }
    if (open >= WSB_JSON_MAX_DEPTH) {
        return fail(st, st->p, "nested deeper than 2048 levels");
    }
    if (open == 1) {
        member_start = st->p;
    }
    escaped = false;
    if (*st->p == '{' || *st->p == '[') {
        bool obj = *st->p == '{';
        uint8_t bit = (uint8_t)(1u << (open & 7));
        is_obj[open / 8] = obj ? is_obj[open / 8] | bit : is_obj[open / 8] & (uint8_t)~bit;
        open++;
        st->p++;
        if (obj && !open_object(st)) {
            return false;
        }
        skip_ws(&st->p, st->end);
        if (st->p < st->end && *st->p == (obj ? '}' : ']')) {
            st->p++;
            if (obj && !close_object(st)) {
                return false;
            }
            open--;
            kind = obj ? WSB_JSON_OBJECT : WSB_JSON_ARRAY;
            goto done;
        }
        if (obj) {
            goto name;
        }
        goto value;
    }
    if (!scan_scalar(st, &kind, &escaped)) {
        return false;
    }

done:
    if (open == 1 && want >= 0) {
        members[want] = (wsb_json_value_t){
            kind, escaped, {(const char *)member_start, (size_t)(st->p - member_start)}};
        want = -1;
    }
    if (open == 0) {
        if (root != NULL) {
            *root = (wsb_json_value_t){
                kind, escaped, {(const char *)root_start, (size_t)(st->p - root_start)}};
        }
        skip_ws(&st->p, st->end);
        return st->p == st->end ? true : fail(st, st->p, "trailing bytes after the value");
    }
    skip_ws(&st->p, st->end);
    if (st->p >= st->end) {
        return fail(st, st->p, "unexpected end of input");
    }
    if (is_obj[(open - 1) / 8] & (1u << ((open - 1) & 7))) {
        if (*st->p == ',') {
            st->p++;
            skip_ws(&st->p, st->end);
            goto name;
        }
        if (*st->p != '}') {
            return fail(st, st->p, "',' or '}' expected");
        }
        st->p++;
        if (!close_object(st)) {
            return false;
        }
        open--;
        kind = WSB_JSON_OBJECT;
        escaped = false;
        goto done;
    }
    if (*st->p == ',') {
        st->p++;
        goto value;
    }
    if (*st->p != ']') {
        return fail(st, st->p, "',' or ']' expected");
    }
    st->p++;
    open--;
    kind = WSB_JSON_ARRAY;
    escaped = false;
    goto done;

name:
    if (st->p >= st->end || *st->p != '"') {
        return fail(st, st->p, "a member name expected");
    }
    {
        const uint8_t *at = st->p;
        bool nul = false;
        bool esc = false;
        if (!scan_string(st, &esc, &nul)) {
            return false;
        }
        if (nul) {
            return fail(st, at, "NUL byte (\\u0000) in a member name");
        }
        name_t n = {(const char *)at + 1, (size_t)(st->p - at) - 2, esc};
        if (!add_name(st, at, n)) {
            return false;
        }
        if (open == 1) {
            want = wanted(&n, keys, nkeys);
        }
    }
    skip_ws(&st->p, st->end);
    if (st->p >= st->end || *st->p != ':') {
        return fail(st, st->p, "':' expected");
    }
    st->p++;
    goto value;
}

int wsb_json_scan(const char *json, size_t len, unsigned flags, const char *const *keys,
                  size_t nkeys, wsb_json_value_t *members, wsb_json_value_t *root,
                  wsb_json_error_t *err)
{
    scan_t st;
    st.p = (const uint8_t *)(json != NULL ? json : "");
    st.end = st.p + (json != NULL ? len : 0);
    st.err_at = NULL;
    st.reason = NULL;
    st.names = st.inline_names;
    st.nnames = 0;
    st.cap = WSB_JSON_INLINE_KEYS;
    st.obj_start = 0;
    st.oom = false;
    for (size_t i = 0; i < nkeys; i++) {
        members[i] = (wsb_json_value_t){WSB_JSON_NONE, false, WSB_STR_NULL};
    }
    const uint8_t *start = st.p;
    bool ok = scan(&st, flags, keys, nkeys, members, root);
    if (st.names != st.inline_names) {
        free(st.names);
    }
    if (ok) {
        return 0;
    }
    if (err != NULL) {
        err->offset = (size_t)(st.err_at - start);
        err->reason = st.reason;
    }
    return st.oom ? WSB_ENOMEM : WSB_EINVAL;
}

/* ---- reading scanned values -------------------------------------------------------------- */

wsb_str_t wsb_json_string(wsb_json_value_t v, char *buf)
{
    const char *in = v.raw.p + 1;
    size_t n = v.raw.len - 2;
    if (!v.escaped) {
        return (wsb_str_t){in, n};
    }
    dec_t d;
    dec_init(&d, in, n);
    size_t out = 0;
    for (int c = dec_next(&d); c >= 0; c = dec_next(&d)) {
        buf[out++] = (char)c;
    }
    return (wsb_str_t){buf, out};
}

bool wsb_json_string_is(wsb_json_value_t v, const char *s)
{
    if (v.kind != WSB_JSON_STRING) {
        return false;
    }
    size_t slen = strlen(s);
    if (!v.escaped) {
        return v.raw.len - 2 == slen && memcmp(v.raw.p + 1, s, slen) == 0;
    }
    dec_t d;
    dec_init(&d, v.raw.p + 1, v.raw.len - 2);
    size_t i = 0;
    for (int c = dec_next(&d); c >= 0; c = dec_next(&d)) {
        if (i >= slen || (uint8_t)s[i] != c) {
            return false;
        }
        i++;
    }
    return i == slen;
}

int64_t wsb_json_integer(wsb_json_value_t v)
{
    const char *p = v.raw.p;
    const char *end = p + v.raw.len;
    bool neg = p < end && *p == '-';
    uint64_t u = 0;
    for (p += neg; p < end; p++) {
        u = u * 10 + (uint64_t)(*p - '0');
    }
    if (!neg) {
        return (int64_t)u;
    }
    return u > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)u;
}

/* ---- walking a scanned container --------------------------------------------------------- */

/* The end of the scanned string at p (its opening quote). */
static const char *skip_string(const char *p, bool *escaped)
{
    for (p++;; p++) {
        if (*p == '\\') {
            *escaped = true;
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
}

/* The scanned value at *pp: its kind and span; *pp moves past it. */
static wsb_json_value_t skip_value(const char **pp)
{
    const char *p = *pp;
    wsb_json_value_t v = {WSB_JSON_NONE, false, {p, 0}};
    switch (*p) {
    case '"':
        v.kind = WSB_JSON_STRING;
        p = skip_string(p, &v.escaped);
        break;
    case '{':
    case '[': {
        v.kind = *p == '{' ? WSB_JSON_OBJECT : WSB_JSON_ARRAY;
        size_t depth = 0;
        bool ignored = false;
        do {
            if (*p == '"') {
                p = skip_string(p, &ignored);
                continue;
            }
            if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                depth--;
            }
            p++;
        } while (depth > 0);
        break;
    }
    case 't':
        v.kind = WSB_JSON_TRUE;
        p += 4;
        break;
    case 'f':
        v.kind = WSB_JSON_FALSE;
        p += 5;
        break;
    case 'n':
        v.kind = WSB_JSON_NULL;
        p += 4;
        break;
    default:
        v.kind = WSB_JSON_INTEGER;
        for (; (*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
               *p == 'E';
             p++) {
            if (*p == '.' || *p == 'e' || *p == 'E') {
                v.kind = WSB_JSON_REAL;
            }
        }
        break;
    }
    v.raw.len = (size_t)(p - v.raw.p);
    *pp = p;
    return v;
}

static const char *skip_ws_sep(const char *p, const char *end, char sep)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == sep)) {
        p++;
    }
    return p;
}

void wsb_json_iter_init(wsb_json_iter_t *it, wsb_json_value_t container)
{
    it->object = container.kind == WSB_JSON_OBJECT;
    if (container.kind != WSB_JSON_OBJECT && container.kind != WSB_JSON_ARRAY) {
        it->p = NULL;
        it->end = NULL;
        return;
    }
    /* Between the brackets: a walk never reads the closing one. */
    it->p = container.raw.p + 1;
    it->end = container.raw.p + container.raw.len - 1;
}

bool wsb_json_iter_next(wsb_json_iter_t *it, wsb_json_value_t *name, wsb_json_value_t *value)
{
    const char *p = skip_ws_sep(it->p, it->end, ',');
    if (p >= it->end) {
        it->p = it->end;
        return false;
    }
    wsb_json_value_t n = {WSB_JSON_NONE, false, WSB_STR_NULL};
    if (it->object) {
        n = skip_value(&p);
        p = skip_ws_sep(p, it->end, ':');
    }
    if (name != NULL) {
        *name = n;
    }
    *value = skip_value(&p);
    it->p = p;
    return true;
}

void wsb_json_members(wsb_json_value_t obj, const char *const *keys, size_t nkeys,
                      wsb_json_value_t *members)
{
    for (size_t i = 0; i < nkeys; i++) {
        members[i] = (wsb_json_value_t){WSB_JSON_NONE, false, WSB_STR_NULL};
    }
    if (obj.kind != WSB_JSON_OBJECT) {
        return;
    }
    wsb_json_iter_t it;
    wsb_json_iter_init(&it, obj);
    wsb_json_value_t name;
    wsb_json_value_t value;
    while (wsb_json_iter_next(&it, &name, &value)) {
        for (size_t i = 0; i < nkeys; i++) {
            if (wsb_json_string_is(name, keys[i])) {
                members[i] = value;
                break;
            }
        }
    }
}
