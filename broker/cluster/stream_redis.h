/*
 * stream_redis.h - clustered streams in Redis: with redis.url set, a stream
 * (core/stream.h, a topics rule with `stream`) is one Redis stream shared by
 * every node, so every node agrees on the stream's seq and epoch and any
 * node serves a recovery of any subscription inside it.
 *
 * Keys, per stream rule R (P = redis.prefix; the braces are a hash tag, so
 * both keys are in one slot; a topic has no "{", so they never meet a
 * topic's clustered-history keys):
 *   P hist:{R}    a hash {e: epoch, s: last seq}; never expires
 *   P stream:{R}  a stream, entry id "<seq>-0", fields t (Redis time, ms),
 *                 k (the message's topic) and e (the envelope, with "epoch")
 *
 * Two Lua scripts, loaded with clustered history's (chist_redis.h) and run
 * the same way (EVALSHA on the publishing connection, NOSCRIPT resends):
 *   publish  creates the epoch once (the node's random candidate, only if
 *            the hash is absent), HINCRBY s, XADD "<seq>-0" MAXLEN ~ size,
 *            trims entries older than ttl (XTRIM MINID, age from Redis's
 *            TIME), then PUBLISHes the envelope on the topic's channel.
 *            Returns {seq, epoch}, as clustered history's.
 *   read     the stream's position {epoch, seq} (creating the epoch when
 *            absent) and, by mode, the envelopes after `since` whose topic
 *            k matches the subscription's pattern (XRANGE in batches), or
 *            the last N matching (XREVRANGE, at most `size` entries
 *            scanned): {epoch, seq, recovered (-1, 0, 1), gap seq, gap to
 *            (both -1: no gap), envelope...}. A `since` not recovered
 *            (trimmed, expired, another epoch) has a gap: the seqs after
 *            gap seq (the since seq, 0 in another epoch) up to gap to (the
 *            seq before the oldest entry held) are lost, and the envelopes
 *            are the matching ones after gap to. A replay is bounded by the
 *            rule's max_bytes: beyond, its oldest are left out and the gap
 *            grows to the last one left out (the newest is always kept).
 *
 * What goes through which script is decided by op->stream (core/chist.h);
 * chist_redis.c calls the builders and parsers below for such ops.
 */
#ifndef WSB_BROKER_STREAM_REDIS_H
#define WSB_BROKER_STREAM_REDIS_H

#include "core/chist.h"

#include <stdbool.h>
#include <stddef.h>

struct redisReply;

extern const char stream_redis_publish_script[];
extern const char stream_redis_read_script[];

/* The number of arguments of a stream's EVALSHA (both scripts). */
#define STREAM_REDIS_ARGS 13

/*
 * Builds `EVALSHA sha 2 <P>hist:{R} <P>stream:{R} ...` for the stream op
 * into argv/argvlen (STREAM_REDIS_ARGS entries each; they point into `op`,
 * `sha`, `publish_cmd` and *scratch, a heap area to free()):
 *   publish: channel, envelope head, data, epoch candidate, size, ttl_ms,
 *            publish command, topic
 *   read:    epoch candidate, size, ttl_ms, mode (p, s, l), since epoch,
 *            since seq / N, pattern, max_bytes
 * With `cluster` (a Redis Cluster) the keys are <P>{R}rule.hist and
 * <P>{R}rule.stream and the channel <P>{R}T (redis_cluster.h's
 * rc_tag_name): one slot for the stream and all its topics' channels.
 * Returns the number of arguments, STREAM_REDIS_ARGS. (The array shape is
 * chist_redis.h's chist_args_t, which this module does not include: the
 * include rules forbid the cycle.)
 */
int stream_redis_build_args(const chist_op_t *op, const char *sha, const char *prefix,
                            const char *node_id, const char *publish_cmd, bool cluster,
                            const char **argv, size_t *argvlen, char **scratch);

/* Reads the read script's reply into op->seq, op->epoch, op->recovered,
 * op->gap/gap_seq/gap_to and op->msgs/op->nmsgs. A gap must be a `since`
 * read's that is not recovered, from the since seq (0 in another epoch) up
 * to at most the position. Every envelope must be of the position's epoch, of a
 * topic matching op->topic, in increasing seq order up to the position and,
 * for a `since`, after it (after the gap's end when there is one): anything else makes the whole
 * reply invalid (a recovery is exact or refused). 0 or -1. */
int stream_redis_parse_read_reply(const struct redisReply *r, chist_op_t *op);

#endif
