/*
 * topic_rules.h - per-pattern options of topics: the `topics` config list.
 *
 *   "topics": [{"pattern":"chat.>", "history":{"size":100,"ttl":"300s"},
 *               "presence":true, "join_leave":true, "publisher":true}, ...]
 *
 * One list, first matching rule wins: a topic gets the options of the first
 * rule whose pattern matches it, and only those. The `history` config list
 * (history.h) is a shorthand: each of its rules is a topics rule with only a
 * `history` option, appended after the `topics` rules. So a `topics` rule
 * without `history` that matches first means "no history" even when a later
 * `history` rule matches too.
 *
 * Options (all optional; a rule with only a pattern turns everything off for
 * what it matches):
 *   history     {"size":N,"ttl":D,"slow_consumer":"close"|"drop"} (history.h)
 *   presence    true: the topic's members can be asked for (presence.h)
 *   join_leave  true: subscribers get join/leave events (presence.h)
 *   publisher   true: messages carry the broker's "from" stamp
 *   conflate    true: a subscriber that falls behind keeps only the newest
 *               unsent message of each topic (xmsg.h `conflate`)
 *   stream      {"size":N,"ttl":D,"max_bytes":B} or true: every topic the
 *               rule matches shares one seq, epoch and log (stream.h);
 *               excludes `history`
 * Any other key is an error naming the rule and the key.
 *
 * The parsed table is immutable and read by every worker without a lock.
 */
#ifndef WSB_BROKER_TOPIC_RULES_H
#define WSB_BROKER_TOPIC_RULES_H

#include "core/history.h"
#include "core/stream.h"
#include "wsb/common.h"
#include "wsb/topic.h"

#include <stdbool.h>
#include <stddef.h>

/* Rules of both lists together at most (the history table's capacity). */
#define TOPIC_RULES_MAX HISTORY_MAX_RULES

typedef struct {
    char pattern[WSB_TOPIC_MAX_LEN + 1];
    size_t pattern_len;
    bool has_history;
    history_rule_t history; /* has_history: size, ttl, slow_consumer */
    bool presence;
    bool join_leave;
    bool publisher;
    bool conflate;
    bool has_stream;
    stream_conf_t stream; /* has_stream: size, ttl, max_bytes */
} topic_rule_t;

typedef struct topic_rules_s {
    topic_rule_t rules[TOPIC_RULES_MAX];
    unsigned n;
} topic_rules_t;

/*
 * Parses the JSON text of the `topics` list and of the `history` list (each
 * may be NULL, "" or "[]") into one table, `topics` first. Returns 0, or -1
 * with a message naming the list, the rule's index and the key in `err`
 * ("topics[1]: unknown option \"stream\" ...").
 */
int topic_rules_parse(const char *topics_json, const char *history_json, topic_rules_t *out,
                      char *err, size_t errlen);

/* The first rule matching the exact `topic`, or NULL. */
const topic_rule_t *topic_rules_match(const topic_rules_t *r, wsb_str_t topic);

/*
 * The history rules of the table for the sequence table (seqtab.h), index
 * for index, so that history's "first match wins" is the table's: a rule
 * without history becomes a size-0 rule when a rule with history follows it
 * (it shadows that one); trailing rules without history are left out, so
 * that out->n is 0 when no rule keeps history.
 */
void topic_rules_history(const topic_rules_t *r, history_rules_t *out);

/* True when the first rule matching `topic` conflates it (r may be NULL). */
bool topic_rules_conflate(const topic_rules_t *r, wsb_str_t topic);

/* The index of the first rule matching the exact `topic`, or -1. */
int topic_rules_index(const topic_rules_t *r, wsb_str_t topic);

/* The streams of the rules (stream.h), index for index: a new array of
 * r->n with a new stream for each rule with `stream` and NULL for the
 * others; NULL when no rule has one. topic_rules_streams_free() frees it. */
stream_t **topic_rules_streams_new(const topic_rules_t *r);
void topic_rules_streams_free(const topic_rules_t *r, stream_t **streams);

/* The stream the exact `topic` belongs to (its first matching rule's), or
 * NULL. `streams` from topic_rules_streams_new (may be NULL). */
stream_t *topic_rules_stream_of(const topic_rules_t *r, stream_t *const *streams, wsb_str_t topic);

/* The stream a subscription to `pattern` (a topic or pattern) is inside:
 * that of the first rule whose pattern covers it (wsb_topic_covers), or
 * NULL (no such rule, or it has no stream). */
stream_t *topic_rules_stream_within(const topic_rules_t *r, stream_t *const *streams,
                                    wsb_str_t pattern);

/* True when some rule enables presence or join_leave. */
bool topic_rules_any_presence(const topic_rules_t *r);

#endif
