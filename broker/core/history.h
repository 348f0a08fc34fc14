/*
 * history.h - per-topic message history: the configured rules and the
 * bounded ring each matching topic keeps.
 *
 * Rules: the config key `history` is a JSON list of
 *   {"pattern":"chat.>", "size":100, "ttl":"300s", "slow_consumer":"drop"}
 * A topic keeps history when a rule's pattern matches it (the first rule that
 * matches wins); `size` (1..HISTORY_MAX_SIZE, default 100) bounds the number
 * of messages kept, `ttl` (a duration, default 0 = none) their age, and
 * `slow_consumer` ("close", the default, or "drop") what happens to a
 * subscriber that falls behind on such a topic (router.h).
 *
 * Ring: a topic's last messages as references to the shared, immutable
 * xmsg_t of the publish (xmsg.h): the ring holds one reference per message,
 * so history costs no copy of a frame. The ring is not thread-safe by
 * itself: the sequence table (seqtab.h) keeps each ring next to the topic's
 * seq and touches it only under the topic's shard lock, which is what makes
 * "assign seq" and "append to history" one atomic step. Messages in a ring
 * have consecutive seqs (every publish of the topic is appended).
 */
#ifndef WSB_BROKER_HISTORY_H
#define WSB_BROKER_HISTORY_H

#include "wsb/common.h"
#include "wsb/topic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HISTORY_MAX_RULES 64
#define HISTORY_MAX_SIZE  100000

typedef struct xmsg_s xmsg_t;
struct json_t;

typedef struct {
    char pattern[WSB_TOPIC_MAX_LEN + 1];
    size_t pattern_len;
    uint32_t size;   /* messages kept at most; 0: none (a topics rule without
                      * history, which shadows the rules after it) */
    uint64_t ttl_ms; /* 0: no age limit */
    bool drop_slow;  /* slow_consumer "drop": gap notice instead of close 1013 */
} history_rule_t;

typedef struct {
    history_rule_t rules[HISTORY_MAX_RULES];
    unsigned n;
} history_rules_t;

/*
 * Parses the JSON text of the `history` config value (a list; "" and "[]"
 * mean no history) into *out. Returns 0, or -1 with a message naming the
 * rule and the field in `err`. Unknown fields in a rule are errors.
 */
int history_rules_parse(const char *json, history_rules_t *out, char *err, size_t errlen);

/*
 * Loads the JSON text of a rules list named `name` ("history", "topics"):
 * *out gets the array (the caller json_decref()s it), or NULL for "" and
 * NULL. Returns 0, or -1 with a message naming `name` (not JSON, not a list,
 * see `example`, more than HISTORY_MAX_RULES rules).
 */
int history_rules_list(const char *json, const char *name, const char *example, struct json_t **out,
                       char *err, size_t errlen);

/*
 * Parses one rule's fields from the JSON object `obj` into *r (zeroed first,
 * size defaults to 100). With `with_pattern` (the `history` list) "pattern"
 * is required; without (the `history` option of a `topics` rule, whose
 * pattern is the rule's) it is an unknown field. Errors are prefixed with
 * `where` ("history[2]", "topics[0].history"). Returns 0 or -1.
 */
int history_rule_parse(struct json_t *obj, const char *where, bool with_pattern, history_rule_t *r,
                       char *err, size_t errlen);

/* The `pattern` member `v` of the rule at `where` (also the topic rules'):
 * a valid topic pattern copied NUL-terminated into `out`
 * (WSB_TOPIC_MAX_LEN + 1 bytes) with its length in *len. Returns 0 or -1. */
int history_parse_pattern(struct json_t *v, const char *where, char *out, size_t *len, char *err,
                          size_t errlen);

/* A `ttl` value `v`: seconds (an integer, at most 30 days) or a duration
 * string ("300s", "1h"); *out_ms in milliseconds. 0 or -1. */
int history_parse_ttl(struct json_t *v, uint64_t *out_ms);

/* The index of the first rule matching the exact `topic`, or -1 (also when
 * that rule has size 0). */
int history_rules_match(const history_rules_t *r, wsb_str_t topic);

typedef struct {
    xmsg_t *msg;
    uint64_t time_ms; /* when it was appended (the caller's clock) */
} history_entry_t;

typedef struct {
    history_entry_t *entries; /* cap entries, allocated on the first append */
    uint32_t cap;
    uint32_t head;  /* index of the oldest entry */
    uint32_t count; /* entries held */
    size_t bytes;   /* sum of the frames' lengths */
} history_ring_t;

/* An empty ring for at most `cap` messages (no allocation yet). */
void history_ring_init(history_ring_t *r, uint32_t cap);

/* Drops every entry (releasing its reference) and the storage. */
void history_ring_clear(history_ring_t *r);

/* Appends `m`, taking over one reference the caller holds; drops the oldest
 * entry when full. `m->seq` must follow the newest entry's. */
void history_ring_append(history_ring_t *r, xmsg_t *m, uint64_t now_ms);

/* Drops the oldest entry (the ring must not be empty); an emptied ring
 * gives its storage back, as history_ring_expire does. */
void history_ring_drop_oldest(history_ring_t *r);

/* Drops entries older than `ttl_ms` (0: none) at `now_ms`. Returns how many. */
uint32_t history_ring_expire(history_ring_t *r, uint64_t ttl_ms, uint64_t now_ms);

/* The seq of the oldest entry held, or 0 when empty. */
uint64_t history_ring_first_seq(const history_ring_t *r);

/*
 * The messages with seq > `after`, oldest first, at most `max` of them (the
 * newest ones when there are more): stores new references (xmsg_ref) in
 * out[0..n) and returns n. The caller releases each with xmsg_unref().
 */
size_t history_ring_read(const history_ring_t *r, uint64_t after, size_t max, xmsg_t **out);

#endif
