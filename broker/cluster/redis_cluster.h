/*
 * redis_cluster.h - the pure parts of Redis Cluster routing: a key's (or
 * shard channel's) hash slot, the topology CLUSTER SLOTS describes, the
 * MOVED/ASK redirections, and the seed list of redis.cluster. No I/O: the
 * bridge (bridge_cluster.c) owns the connections and uses these.
 *
 * A hash slot is CRC16 (XMODEM) of the key modulo 16384, or of its hash tag:
 * the bytes between the first '{' and the first '}' after it, when that is
 * not empty. Sharded pub/sub routes a channel name exactly like a key.
 */
#ifndef WSB_BROKER_REDIS_CLUSTER_H
#define WSB_BROKER_REDIS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisReply;

#define RC_SLOTS     16384
#define RC_MAX_NODES 64  /* masters a topology may name; more is refused */
#define RC_HOST_MAX  256 /* a host name or address, NUL included */
#define RC_NO_MASTER 0xffu

typedef struct {
    char host[RC_HOST_MAX];
    unsigned port;
} rc_addr_t;

/* What CLUSTER SLOTS said: the masters, and for each slot the index of its
 * master in `masters` (RC_NO_MASTER: no node serves it). Replicas are not
 * kept: pub/sub and scripts go to masters only. About 32 KiB: heap. */
typedef struct {
    unsigned nmasters;
    rc_addr_t masters[RC_MAX_NODES];
    uint8_t slot_master[RC_SLOTS];
} rc_topology_t;

/* The hash slot of `key` (hash tags honoured). */
unsigned rc_keyslot(const char *key, size_t len);

/* The longest rc_tag_name() output for a prefix, tag and rest of these
 * lengths (NUL not included). */
#define RC_TAG_NAME_MAX(prefix_len, tag_len, rest_len)                                             \
    ((prefix_len) + 3 * (tag_len) + 2 + (rest_len))

/*
 * Writes prefix "{" tag "}" rest into `out` (RC_TAG_NAME_MAX(...) + 1 bytes)
 * and returns its length: on a Redis Cluster every key and channel of one
 * topic (or stream rule) is named this way with the same tag, so all of
 * them hash to one slot. The tag is the topic with '%' written "%25" and '}'
 * written "%7D" (nothing else changes): a topic containing '}' would end the
 * hash tag early, and the escape keeps two topics from sharing a tag.
 * Whatever `prefix` holds, every name made with one tag has the same bytes
 * up to the tag's closing brace, so Redis hashes them alike.
 */
size_t rc_tag_name(char *out, const char *prefix, const char *tag, size_t tag_len, const char *rest,
                   size_t rest_len);

/* Reads a CLUSTER SLOTS reply into `t`. A master with an empty host (Redis
 * answers "" for "the address you reached me on", or "?" when unknown) takes
 * `reached_host`. Returns the number of slots served (16384 for a healthy
 * cluster), or -1 for a reply of the wrong shape or more than RC_MAX_NODES
 * masters. */
int rc_parse_slots(const struct redisReply *r, const char *reached_host, rc_topology_t *t);

/* Reads "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (an
 * error reply's text). Returns 0 with *ask, *slot and *to set, or -1 when
 * the text is not a redirection. An empty host takes `reached_host`. */
int rc_parse_redirect(const char *err, size_t len, const char *reached_host, bool *ask,
                      unsigned *slot, rc_addr_t *to);

/* Reads "host:port" (an IPv6 address as "[::1]:7000"). 0 or -1. */
int rc_parse_addr(const char *s, size_t len, rc_addr_t *out);

/* Reads the comma-separated seeds of redis.cluster into `out` (at most
 * `cap`). Returns how many, or -1 when one is malformed, none is given or
 * there are more than `cap`. */
int rc_parse_seeds(const char *list, rc_addr_t *out, unsigned cap);

#endif
