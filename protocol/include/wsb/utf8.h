/*
 * utf8.h - streaming UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF).
 *
 * The validator keeps its state between calls so a text message may be checked
 * fragment by fragment, split anywhere, even inside a code point. It fails as
 * soon as the first byte that cannot start or continue a valid sequence is
 * seen (RFC 6455 section 8.1 "fail fast"), not at the end of the message.
 */
#ifndef WSB_UTF8_H
#define WSB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state; /* private: 0 means "between code points" */
} wsb_utf8_t;

/* Resets the validator to the start of a new text. */
void wsb_utf8_init(wsb_utf8_t *v);

/* Validates the next `len` bytes. Returns 0 if they can still be part of a
 * valid text, WSB_EUTF8 at the first impossible byte (the validator then stays
 * failed until re-initialised). */
int wsb_utf8_feed(wsb_utf8_t *v, const uint8_t *p, size_t len);

/* True when the bytes fed so far end on a code point boundary. A text that is
 * valid so far but not complete (a truncated sequence) is invalid at its end. */
bool wsb_utf8_complete(const wsb_utf8_t *v);

/* One-shot check of a whole buffer. */
bool wsb_utf8_valid(const uint8_t *p, size_t len);

/* Internal (message.c, json_scan.c): the length of the valid UTF-8
 * sequence at s[0] (a byte >= 0x80, `avail` > 0 bytes readable), or 0 when
 * it is not one (stray continuation, overlong, surrogate, > U+10FFFF, cut). */
size_t wsb__utf8_seq_len(const uint8_t *s, size_t avail);

#endif
