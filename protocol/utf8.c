/*
 * utf8.c - streaming UTF-8 validation (RFC 3629).
 *
 * The validator is a deterministic automaton over bytes. Its nine states
 * describe what the next byte must be: "anything that starts a code point"
 * (ACCEPT), "a continuation byte, N more to go" (CONT1..CONT3), or one of the
 * four constrained second bytes that rule out overlongs, surrogates and values
 * above U+10FFFF (after E0, ED, F0 and F4). REJECT is absorbing, which is what
 * makes the validator fail fast and stay failed.
 *
 * Encoding ("shift DFA"): every state is a multiple of 6 and is used as a bit
 * offset. For each byte value the table holds one 64-bit row in which the 6
 * bits at offset `s` are the state that follows state `s` on that byte, so one
 * step is a single load, a shift and a mask, with no byte-class indirection.
 * Nine states need 54 bits.
 *
 * ASCII is by far the most common input (JSON), so while the automaton sits
 * between code points it skips 16 and then 8 bytes at a time as long as no
 * byte has its high bit set.
 */
#include "wsb/utf8.h"

#include "wsb/common.h"

#include <string.h>

enum {
    ST_ACCEPT = 0,
    ST_REJECT = 6,
    ST_CONT1 = 12, /* one more continuation byte, 80..BF */
    ST_CONT2 = 18, /* two more */
    ST_CONT3 = 24, /* three more */
    ST_E0 = 30,    /* after E0: A0..BF, else the sequence is overlong */
    ST_ED = 36,    /* after ED: 80..9F, else a surrogate (U+D800..U+DFFF) */
    ST_F0 = 42,    /* after F0: 90..BF, else overlong */
    ST_F4 = 48     /* after F4: 80..8F, else above U+10FFFF */
};

/* One table row: the successor of each state on one byte value. REJECT maps
 * to itself in every row. */
#define T(from, to) ((uint64_t)(to) << (from))
#define ROW(acc, c1, c2, c3, e0, ed, f0, f4)                                                       \
    (T(ST_ACCEPT, acc) | T(ST_REJECT, ST_REJECT) | T(ST_CONT1, c1) | T(ST_CONT2, c2) |             \
     T(ST_CONT3, c3) | T(ST_E0, e0) | T(ST_ED, ed) | T(ST_F0, f0) | T(ST_F4, f4))

#define R ST_REJECT
/* 00..7F */
#define ROW_ASCII ROW(ST_ACCEPT, R, R, R, R, R, R, R)
/* Continuation bytes, split where the constrained second bytes differ. */
#define ROW_80_8F ROW(R, ST_ACCEPT, ST_CONT1, ST_CONT2, R, ST_CONT1, R, ST_CONT2)
#define ROW_90_9F ROW(R, ST_ACCEPT, ST_CONT1, ST_CONT2, R, ST_CONT1, ST_CONT2, R)
#define ROW_A0_BF ROW(R, ST_ACCEPT, ST_CONT1, ST_CONT2, ST_CONT1, R, ST_CONT2, R)
/* C0, C1 (always overlong) and F5..FF (above U+10FFFF or not UTF-8 at all). */
#define ROW_BAD ROW(R, R, R, R, R, R, R, R)
/* Lead bytes. */
#define ROW_C2_DF ROW(ST_CONT1, R, R, R, R, R, R, R)
#define ROW_E0    ROW(ST_E0, R, R, R, R, R, R, R)
#define ROW_E1_EF ROW(ST_CONT2, R, R, R, R, R, R, R) /* except ED */
#define ROW_ED    ROW(ST_ED, R, R, R, R, R, R, R)
#define ROW_F0    ROW(ST_F0, R, R, R, R, R, R, R)
#define ROW_F1_F3 ROW(ST_CONT3, R, R, R, R, R, R, R)
#define ROW_F4    ROW(ST_F4, R, R, R, R, R, R, R)

#define X1(r)  r
#define X2(r)  r, r
#define X3(r)  r, r, r
#define X4(r)  X2(r), X2(r)
#define X8(r)  X4(r), X4(r)
#define X16(r) X8(r), X8(r)

static const uint64_t utf8_dfa[] = {
    /* 00..7F */ X16(ROW_ASCII),
    X16(ROW_ASCII),
    X16(ROW_ASCII),
    X16(ROW_ASCII),
    X16(ROW_ASCII),
    X16(ROW_ASCII),
    X16(ROW_ASCII),
    X16(ROW_ASCII),
    /* 80..8F */ X16(ROW_80_8F),
    /* 90..9F */ X16(ROW_90_9F),
    /* A0..BF */ X16(ROW_A0_BF),
    X16(ROW_A0_BF),
    /* C0..C1 */ X2(ROW_BAD),
    /* C2..DF */ X16(ROW_C2_DF),
    X8(ROW_C2_DF),
    X4(ROW_C2_DF),
    X2(ROW_C2_DF),
    /* E0     */ X1(ROW_E0),
    /* E1..EC */ X8(ROW_E1_EF),
    X4(ROW_E1_EF),
    /* ED     */ X1(ROW_ED),
    /* EE..EF */ X2(ROW_E1_EF),
    /* F0     */ X1(ROW_F0),
    /* F1..F3 */ X3(ROW_F1_F3),
    /* F4     */ X1(ROW_F4),
    /* F5..FF */ X8(ROW_BAD),
    X3(ROW_BAD)};

_Static_assert(sizeof(utf8_dfa) / sizeof(utf8_dfa[0]) == 256, "one DFA row per byte value");
_Static_assert(ST_F4 + 6 <= 64, "every state fits in a 64-bit row");

#define HIGH_BITS 0x8080808080808080ull

static inline uint32_t step(uint32_t s, uint8_t byte)
{
    return (uint32_t)(utf8_dfa[byte] >> s) & 63u;
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

/* Runs the automaton from state `s` over `len` bytes and returns the final
 * state. It returns early once REJECT is reached (at most 7 bytes past the
 * offending one: REJECT is absorbing, so the bytes in between cannot matter). */
static uint32_t run(uint32_t s, const uint8_t *p, size_t len)
{
    if (len == 0) {
        return s; /* p may be NULL, and NULL + 0 is undefined */
    }
    const uint8_t *end = p + len;

    while (p < end) {
        if (s == ST_ACCEPT) {
            while (end - p >= 16 && ((load64(p) | load64(p + 8)) & HIGH_BITS) == 0) {
                p += 16;
            }
            while (end - p >= 8 && (load64(p) & HIGH_BITS) == 0) {
                p += 8;
            }
            /* A tail shorter than a word: the input's last 8 bytes cover
             * it (plus bytes already checked), so if none of them has the
             * high bit set the tail is ASCII; otherwise use the automaton. */
            if (end - p < 8 && len >= 8 && (load64(end - 8) & HIGH_BITS) == 0) {
                p = end;
            }
            if (p == end) {
                break;
            }
        }
        /* Up to 8 bytes through the automaton without a branch per byte;
         * ASCII bytes simply keep it in ACCEPT. */
        size_t n = (size_t)(end - p) < 8 ? (size_t)(end - p) : 8;
        for (size_t i = 0; i < n; i++) {
            s = step(s, p[i]);
        }
        p += n;
        if (s == ST_REJECT) {
            break;
        }
    }
    return s;
}

void wsb_utf8_init(wsb_utf8_t *v)
{
    v->state = ST_ACCEPT;
}

int wsb_utf8_feed(wsb_utf8_t *v, const uint8_t *p, size_t len)
{
    if (v->state == ST_REJECT) {
        return WSB_EUTF8;
    }
    v->state = run(v->state, p, len);
    return v->state == ST_REJECT ? WSB_EUTF8 : 0;
}

bool wsb_utf8_complete(const wsb_utf8_t *v)
{
    return v->state == ST_ACCEPT;
}

bool wsb_utf8_valid(const uint8_t *p, size_t len)
{
    return run(ST_ACCEPT, p, len) == ST_ACCEPT;
}

/* Length of the valid UTF-8 sequence at s[0] (a byte >= 0x80), or 0 when it
 * is not one (stray continuation, overlong, surrogate, > U+10FFFF, cut). */
size_t wsb__utf8_seq_len(const uint8_t *s, size_t avail)
{
    uint8_t b0 = s[0];
    size_t n;
    uint8_t lo = 0x80;
    uint8_t hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        lo = b0 == 0xE0 ? 0xA0 : 0x80;
        hi = b0 == 0xED ? 0x9F : 0xBF;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        lo = b0 == 0xF0 ? 0x90 : 0x80;
        hi = b0 == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return n;
}
