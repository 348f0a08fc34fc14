/*
 * json_scan.h - a strict JSON validator that hands back raw spans.
 *
 * wsb_json_scan() checks a whole JSON text in one pass and, on the way,
 * reports the members of the top-level object that the caller asked for,
 * as spans of the input (`raw`). Nothing is decoded or copied: a publish can
 * forward its `data` member's bytes into the outgoing frame as they are, and
 * the scanner's acceptance guarantees that those bytes are one valid JSON
 * value in valid UTF-8.
 *
 * What it accepts is exactly what jansson's json_loadb() accepts with
 * JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL (| JSON_DECODE_ANY with
 * WSB_JSON_ANY), the flags the broker has always parsed client messages
 * with, so the switch changes no verdict (tests/fuzz/fuzz_json_scan.c
 * checks this against jansson on arbitrary input):
 *   - RFC 8259 grammar; white space is space, tab, CR and LF only; no BOM;
 *   - strings: valid UTF-8 (no overlongs, surrogates or code points above
 *     U+10FFFF), no raw control characters, escapes \" \\ \/ \b \f \n \r \t
 *     and \uXXXX, where a high surrogate must be followed by a \u low
 *     surrogate and a lone low surrogate is refused; "\u0000" is allowed in
 *     values but not in member names;
 *   - numbers: an integer (no fraction, no exponent) must fit int64; any
 *     other number must not overflow a double (1e400 is refused, 1e-400 is
 *     not), decided from the digits without strtod;
 *   - no duplicate member names in any object at any depth (compared after
 *     unescaping, so "a" and "\u0061" are the same name);
 *   - at most WSB_JSON_MAX_DEPTH nested values (jansson counts every value:
 *     2048 nested empty arrays pass, a scalar inside them does not).
 * One deliberate difference: jansson silently skips one NUL byte right after
 * a number or true/false/null (its stream loses an ungot NUL); the scanner
 * refuses every NUL outside strings, as RFC 8259 does.
 *
 * Memory: no allocation unless more than WSB_JSON_INLINE_KEYS member names
 * are open at once (the names of every object still open, kept for the
 * duplicate check); then a heap array that grows with them, bounded by the
 * input length and freed before returning. Objects with more than 16 members
 * are checked by sorting their names (O(n log n)), smaller ones pairwise.
 *
 * The walker (wsb_json_iter_*) steps through a container that the scanner
 * has already accepted; it trusts its input and must not be given anything
 * else.
 */
#ifndef WSB_JSON_SCAN_H
#define WSB_JSON_SCAN_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSB_JSON_MAX_DEPTH   2048
#define WSB_JSON_INLINE_KEYS 64

/* Scan flag: the top-level value may be any value (JSON_DECODE_ANY);
 * without it only an object or an array is accepted. */
#define WSB_JSON_ANY 1u

typedef enum {
    WSB_JSON_NONE = 0, /* absent member */
    WSB_JSON_OBJECT,
    WSB_JSON_ARRAY,
    WSB_JSON_STRING,
    WSB_JSON_INTEGER, /* no fraction and no exponent: fits int64 */
    WSB_JSON_REAL,
    WSB_JSON_TRUE,
    WSB_JSON_FALSE,
    WSB_JSON_NULL
} wsb_json_kind_t;

typedef struct {
    wsb_json_kind_t kind;
    bool escaped;  /* a string (or name) with at least one backslash escape */
    wsb_str_t raw; /* the value's bytes in the input; a string with its quotes */
} wsb_json_value_t;

typedef struct {
    size_t offset;      /* byte of the input where the text stops being valid */
    const char *reason; /* static, printable ASCII */
} wsb_json_error_t;

/*
 * Validates `len` bytes of `json` (see the header comment for the rules).
 * `keys` lists `nkeys` member names (NUL-terminated, unescaped) wanted from
 * the top-level object; members[i] gets the value of keys[i], or kind
 * WSB_JSON_NONE when the top level is not an object or has no such member.
 * `root`, when not NULL, gets the top-level value. All spans borrow from
 * `json`. Returns 0, WSB_EINVAL (err filled; members and root undefined) or
 * WSB_ENOMEM (only past WSB_JSON_INLINE_KEYS open names).
 */
int wsb_json_scan(const char *json, size_t len, unsigned flags, const char *const *keys,
                  size_t nkeys, wsb_json_value_t *members, wsb_json_value_t *root,
                  wsb_json_error_t *err);

/*
 * The decoded bytes of a scanned string value (which may contain NUL). An
 * unescaped string is returned as a view of its raw bytes (`buf` unused);
 * an escaped one is decoded into `buf`, which must hold v.raw.len bytes (a
 * decoded string is never longer than its source).
 */
wsb_str_t wsb_json_string(wsb_json_value_t v, char *buf);

/* True when scanned string `v` decodes to exactly the NUL-terminated `s`. */
bool wsb_json_string_is(wsb_json_value_t v, const char *s);

/* The value of a scanned WSB_JSON_INTEGER. */
int64_t wsb_json_integer(wsb_json_value_t v);

/* Walks the members of a scanned object or the elements of a scanned
 * array, in order. */
typedef struct {
    const char *p;
    const char *end;
    bool object;
} wsb_json_iter_t;

void wsb_json_iter_init(wsb_json_iter_t *it, wsb_json_value_t container);

/* The next member (`name` gets its name, when not NULL) or element. False
 * at the end. */
bool wsb_json_iter_next(wsb_json_iter_t *it, wsb_json_value_t *name, wsb_json_value_t *value);

/* members[i] = the member keys[i] of scanned object `obj` (kind NONE when
 * absent, or when `obj` is not an object). */
void wsb_json_members(wsb_json_value_t obj, const char *const *keys, size_t nkeys,
                      wsb_json_value_t *members);

#endif
