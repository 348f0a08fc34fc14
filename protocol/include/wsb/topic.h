/*
 * topic.h - topic names and subscription patterns (NATS-style).
 *
 * Grammar (normative text in protocol/PROTOCOL.md):
 *   topic   = token *("." token)
 *   token   = 1*tchar              ; no empty tokens
 *   tchar   = any UTF-8 code point except C0/C1 controls, DEL, space and other
 *             white space (U+0020, U+00A0, U+2028, U+2029, ...), ".", "*", ">"
 *   pattern = topic in which a token may instead be "*" (exactly one token)
 *             and the last token may be ">" (one or more trailing tokens)
 * Limits: WSB_TOPIC_MAX_LEN bytes, WSB_TOPIC_MAX_TOKENS tokens.
 * Topics whose first token starts with "$" are reserved for the broker
 * ("$sys.…"); clients may subscribe to them but not publish to them.
 */
#ifndef WSB_TOPIC_H
#define WSB_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define WSB_TOPIC_MAX_LEN    256
#define WSB_TOPIC_MAX_TOKENS 32

/* Flags for wsb_topic_check(). */
#define WSB_TOPIC_EXACT   0x0 /* a concrete topic: no wildcards */
#define WSB_TOPIC_PATTERN 0x1 /* wildcards allowed */

/*
 * Validates `s` (`len` bytes, not necessarily NUL-terminated). Returns 0, or
 * WSB_EINVAL with *why (if non-NULL) set to a static sentence naming the rule
 * that failed, e.g. "empty token", "'>' must be the last token",
 * "topic longer than 256 bytes", "invalid UTF-8".
 */
int wsb_topic_check(const char *s, size_t len, int flags, const char **why);

/* True if `s` contains a "*" or ">" token (assumes a valid pattern). */
bool wsb_topic_is_pattern(const char *s, size_t len);

/* True if the first token starts with '$'. */
bool wsb_topic_is_reserved(const char *s, size_t len);

/*
 * True if the valid pattern matches the valid exact topic. The reference
 * semantics for the broker's trie: "*" matches exactly one token, ">" one or
 * more trailing tokens; a wildcard in the first position does not match a
 * reserved ("$…") topic, as in NATS, so ">" never receives "$sys" traffic.
 */
bool wsb_topic_matches(const char *pattern, size_t plen, const char *topic, size_t tlen);

/*
 * True if every topic `pattern` matches is also matched by `allowed`
 * (pattern inclusion, the permission check "may subscribe to P given A"):
 * "chat.>" covers "chat.*", "chat.a.>" and "chat.room1"; "chat.room1" does
 * not cover "chat.*"; "chat.*" covers "chat.room1" and "chat.*" but not
 * "chat.>"; ">" covers every pattern except those naming a reserved "$"
 * first token. Both must be valid patterns (an exact topic is a pattern
 * too); empty input covers nothing.
 */
bool wsb_topic_covers(const char *allowed, size_t alen, const char *pattern, size_t plen);

#endif
