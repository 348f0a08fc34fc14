/*
 * stream.h - streams: one log, one seq and one epoch for every topic under a
 * topics rule's pattern (topic_rules.h, option `stream`).
 *
 *   {"pattern":"auction.>","stream":{"size":10000,"ttl":"1h"},"publisher":true}
 *
 * A publish on a topic whose (first matching) rule has `stream` takes the
 * stream's next seq, not a per-topic one, and is appended to the stream's
 * log: the shared, immutable xmsg_t of the publish (one reference, no copy),
 * so the log keeps the frame byte for byte, `from` included. The stream's
 * lock is held while the seq is taken, the message appended AND pushed into
 * every worker's inbox (pubsub.c), exactly as the sequence table's shard lock
 * is for a topic with history (seqtab.h): every worker receives the stream's
 * messages in seq order, and a subscribe that reads the log under the same
 * lock switches from replay to live with no gap and no duplicate.
 *
 * Entries in a log have consecutive seqs. The log is bounded by `size`
 * messages (1..STREAM_MAX_SIZE, default 10000), `max_bytes` bytes of frames
 * (1 KiB..STREAM_MAX_BYTES, default 64 MiB) and `ttl` (age; 0: none): the
 * oldest entries go first. Trimming keeps seq and epoch (a `since` before
 * the first entry held is then not recoverable). The epoch (12 hex digits,
 * random) is chosen when the broker starts.
 *
 * Thread safety: every function takes the stream's lock itself except those
 * documented "locked", which need stream_lock() held.
 */
#ifndef WSB_BROKER_STREAM_H
#define WSB_BROKER_STREAM_H

#include "shared/util.h"
#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STREAM_MAX_SIZE          1000000
#define STREAM_DEFAULT_SIZE      10000
#define STREAM_MAX_BYTES         ((uint64_t)1 << 30) /* 1 GiB */
#define STREAM_MIN_BYTES         1024
#define STREAM_DEFAULT_MAX_BYTES ((uint64_t)64 << 20) /* 64 MiB */
#define STREAM_EPOCH_LEN         12

typedef struct xmsg_s xmsg_t;
typedef struct stream_s stream_t;
struct json_t;

typedef struct {
    uint32_t size;      /* messages kept at most */
    uint64_t ttl_ms;    /* 0: no age limit */
    uint64_t max_bytes; /* frame bytes kept at most */
    bool drop_slow;     /* "slow_consumer":"drop": a slow subscriber gets a gap, not close 1013 */
} stream_conf_t;

/* Parses the `stream` option's object at `where` ("topics[2].stream") into
 * *out (defaults for absent fields). Unknown fields are errors. 0 or -1 with
 * a message naming the field in `err`. */
int stream_conf_parse(struct json_t *obj, const char *where, stream_conf_t *out, char *err,
                      size_t errlen);

/* A new, empty stream named by its rule's pattern (copied). */
stream_t *stream_new(const char *pattern, size_t len, const stream_conf_t *conf);
void stream_free(stream_t *s);

/* The rule's pattern (NUL-terminated) and its length. */
const char *stream_name(const stream_t *s, size_t *len);

void stream_lock(stream_t *s);
void stream_unlock(stream_t *s);

/* Locked: the stream's epoch (NUL-terminated) and last seq (0: none yet). */
const char *stream_epoch(const stream_t *s);
uint64_t stream_seq(const stream_t *s);

/* Locked: takes the next seq (>= 1). */
uint64_t stream_next(stream_t *s);

/* Locked: appends `m` (its seq is the one just taken by stream_next),
 * taking over one reference the caller holds, then trims the log to its
 * bounds at `now_ms`. */
void stream_append(stream_t *s, xmsg_t *m, uint64_t now_ms);

/*
 * Locked: the messages a subscriber of `pattern` (a topic or a pattern
 * inside the stream) that has seen up to {epoch, since} missed. Entries past
 * the ttl are dropped first. Returns true (recovered) when the epoch is the
 * stream's, since <= its last seq and every message after `since` is still
 * in the log; then *out (malloc'd, NULL when *n is 0) holds *n new
 * references to the messages after `since` whose topic matches `pattern`,
 * oldest first, to release with xmsg_unref() and free(). Returns false
 * (nothing stored) otherwise.
 */
bool stream_since(stream_t *s, wsb_str_t epoch, uint64_t since, wsb_str_t pattern, uint64_t now_ms,
                  xmsg_t ***out, size_t *n);

/* What stream_recover() found for a `since`. */
typedef struct {
    bool recovered; /* every message after `since` is held: all matching ones replayed */
    /* Not recovered but announced: the stream's messages after gap_seq up to
     * gap_to (inclusive) are lost (trimmed, or of the current epoch before
     * what the log holds), and the replay is the log's matching messages
     * after gap_to. gap_seq is `since` in the stream's epoch, 0 for another
     * epoch; gap_to >= gap_seq. */
    bool gap;
    uint64_t gap_seq;
    uint64_t gap_to;
} stream_recovery_t;

/*
 * Locked: stream_since() that also recovers what is left after a loss, so
 * the loss is announced (PROTOCOL.md 3.1b) rather than replaying nothing:
 *  - recovered: as stream_since() returning true;
 *  - `since` in the stream's epoch, not greater than its last seq, with
 *    messages after it trimmed: gap {since, first held - 1} (up to the last
 *    seq when nothing is held), and *out holds the matching messages held;
 *  - another epoch (the broker restarted; the old log is gone): gap
 *    {0, first held - 1} in the stream's epoch, and *out holds every
 *    matching message held;
 *  - a `since` greater than the stream's last seq in its epoch: neither
 *    recovered nor gap, nothing stored (the client is ahead: nothing is
 *    known to be lost).
 * *out and *n as stream_since() stores them.
 */
void stream_recover(stream_t *s, wsb_str_t epoch, uint64_t since, wsb_str_t pattern,
                    uint64_t now_ms, stream_recovery_t *r, xmsg_t ***out, size_t *n);

/* Does the stream's rule say "slow_consumer":"drop"? Any thread (the
 * configuration does not change). */
bool stream_drops_slow(const stream_t *s);

/* Locked: the last `max` messages of the log whose topic matches `pattern`
 * (fewer when fewer are held), oldest first, as stream_since() stores them. */
void stream_last(stream_t *s, wsb_str_t pattern, size_t max, uint64_t now_ms, xmsg_t ***out,
                 size_t *n);

/* Messages held and the seq of the oldest one (0 when empty). Locked. */
uint32_t stream_count(const stream_t *s);
uint64_t stream_first_seq(const stream_t *s);

/* Drops entries past the ttl at `now_ms`. Takes the lock. */
void stream_expire(stream_t *s, uint64_t now_ms);

/* Appends wsbroker_stream_messages|bytes|seq{stream} and
 * wsbroker_stream_trimmed_total{stream} for the n entries of `streams`
 * (NULL ones skipped; `streams` may be NULL). Any thread. */
void stream_render_metrics(stream_t *const *streams, unsigned n, sbuf_t *o);

#endif
