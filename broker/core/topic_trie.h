/*
 * topic_trie.h - subscriptions keyed by pattern, token by token.
 *
 * Each node stands for one token; a node has children for literal tokens (a
 * hash table), at most one "*" child and at most one ">" child, and the list
 * of subscriptions whose pattern ends there. Matching a topic walks the
 * literal child plus the "*" child at each level and collects the ">" child's
 * subscriptions on the way: O(depth x wildcard branching), independent of
 * the number of subscriptions. A first-token wildcard does not match a "$"
 * topic (same rule as wsb_topic_matches()).
 *
 * Exactly-once delivery per client: each client embeds a trie_client_t; a
 * match stamps every client it reports with the trie's match generation, so a
 * client with several matching patterns is reported once, without allocation.
 *
 * Ownership: the trie owns its nodes and trie_sub_t entries. Clients are
 * borrowed: a client must remove all its subscriptions before it is freed.
 * Removing a subscription prunes nodes left empty, so memory returns.
 * Not thread-safe: one trie per loop (per worker).
 */
#ifndef WSB_BROKER_TOPIC_TRIE_H
#define WSB_BROKER_TOPIC_TRIE_H

#include <stddef.h>
#include <stdint.h>

typedef struct trie_s trie_t;
typedef struct trie_node_s trie_node_t;

/* Embedded in whatever subscribes (subscriber.h). Zero-initialise it. */
typedef struct trie_client_s {
    uint64_t match_gen; /* private */
} trie_client_t;

/* One (pattern, client) pair; the handle to unsubscribe with. */
typedef struct trie_sub_s trie_sub_t;

/* Called once per matching client. Return 0 to go on, nonzero to stop. */
typedef int (*trie_match_cb)(trie_client_t *client, void *user_data);

/* Creates an empty trie. Owner: the caller, released with trie_free(). Aborts on OOM. */
trie_t *trie_new(void);

/* Frees the trie, its nodes and every remaining trie_sub_t (clients untouched). */
void trie_free(trie_t *t);

/*
 * Adds `client` under the valid `pattern` (`len` bytes; validated by the
 * caller with wsb_topic_check). Does not check for duplicates: the caller
 * keeps one trie_sub_t per (pattern, client). Returns the subscription handle.
 * *first (if non-NULL) is set to 1 when the pattern had no subscriber before
 * (the Redis bridge subscribes upstream then). Aborts on OOM.
 */
trie_sub_t *trie_insert(trie_t *t, const char *pattern, size_t len, trie_client_t *client,
                        int *first);

/*
 * Removes the subscription and prunes the nodes it leaves empty. Returns 1
 * when this was the pattern's last subscriber, else 0. `sub` is freed.
 */
int trie_remove(trie_t *t, trie_sub_t *sub);

/*
 * Reports every client with at least one pattern matching the exact `topic`,
 * once each, in no particular order. Returns the number of clients reported.
 * The callback must not insert into or remove from the trie.
 */
size_t trie_match(trie_t *t, const char *topic, size_t len, trie_match_cb cb, void *user_data);

/* The client of a subscription, and its pattern (NUL-terminated, owned by the trie). */
trie_client_t *trie_sub_client(const trie_sub_t *sub);
const char *trie_sub_pattern(const trie_sub_t *sub);

/* Gauges for /metrics. */
size_t trie_subscription_count(const trie_t *t); /* (pattern, client) pairs */
size_t trie_pattern_count(const trie_t *t);      /* distinct patterns with >= 1 subscriber */
size_t trie_node_count(const trie_t *t);         /* nodes, root excluded */

#endif
