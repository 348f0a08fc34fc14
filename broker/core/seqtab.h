/*
 * seqtab.h - per-topic sequence numbers and history, shared by every worker.
 *
 * A publish on any worker takes the next `seq` of its topic here. The table
 * is split into SEQTAB_SHARDS shards by topic hash, each with its own mutex,
 * so publishers of different topics rarely meet and there is no global lock.
 * The router holds the shard's lock while it assigns the seq, appends the
 * message to the topic's history AND pushes it into every worker's inbox:
 * that is what makes each worker receive a topic's messages in seq order,
 * whichever workers published them, and what makes a recovery (which reads
 * history under the same lock) consistent with the live stream (ws_session.c).
 *
 * History (history.h): a topic matching a history rule gets, when it enters
 * the table, a random `epoch` (12 hex digits) and a ring of its last
 * messages. The epoch names the sequence space: it changes whenever seq and
 * history are lost (restart, eviction), so a client's `since` from before is
 * recognised as unrecoverable.
 *
 * Bounded: each shard keeps at most SEQTAB_MAX_TOPICS / SEQTAB_SHARDS topics,
 * evicting the least recently published; an evicted topic starts again at 1
 * (with a new epoch). Topics with history are bounded separately
 * (history_max_topics, split evenly over the shards): past it, the least
 * recently used topic with history loses its history and epoch but keeps
 * its seq (the topic entry stays, bounded as above), counted in
 * wsbroker_history_evictions_total; touched again, it gets a new epoch and
 * its seq goes on. A ring's entries
 * older than its rule's ttl are dropped when the topic is touched and by
 * seqtab_expire() (worker 0, once a second).
 *
 * Bytes: the frames held in every ring together are bounded by
 * history_max_bytes (one process-wide total, not a per-shard share, so one
 * busy topic may use all of it). Past it, the oldest messages of the least
 * recently published topic holding any are dropped first, then the next
 * topic's, until the total is back under the bound; such topics keep their
 * seq and epoch (a `since` into the dropped part is answered
 * recovered:false). The drop runs in seqtab_unlock() after the append, with
 * no shard lock held, so the total may pass the bound by the messages being
 * appended at that instant (one per publishing thread) until their
 * publishers unlock. Counted in wsbroker_history_evicted_messages_total and
 * wsbroker_history_evicted_topics_total.
 */
#ifndef WSB_BROKER_SEQTAB_H
#define WSB_BROKER_SEQTAB_H

#include "core/history.h"
#include "shared/util.h"
#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEQTAB_SHARDS     64
#define SEQTAB_MAX_TOPICS 65536
#define SEQTAB_EPOCH_LEN  12

typedef struct seqtab_s seqtab_t;
typedef struct xmsg_s xmsg_t;

/* `rules` (may be NULL: no history) is borrowed and must outlive the table;
 * `max_history_topics` bounds the topics with history (>= 1), `max_bytes`
 * the bytes of the messages they hold together. */
seqtab_t *seqtab_new(const history_rules_t *rules, uint32_t max_history_topics, uint64_t max_bytes);
void seqtab_free(seqtab_t *t);

/* 64 random bits for epochs (/dev/urandom, mixed with the clock): the
 * sequence table's and the streams' (stream.h). */
uint64_t seqtab_random_seed(void);

typedef struct seqtab_shard_s seqtab_shard_t;

/* Where a topic stands: its last seq, and its epoch and rule if it keeps
 * history (epoch "" and rule -1 otherwise). */
typedef struct {
    uint64_t seq;
    int rule;
    char epoch[SEQTAB_EPOCH_LEN + 1];
} seqtab_pos_t;

/* Locks the shard of `topic` and returns the topic's next seq (>= 1); *shard
 * is the locked shard, to pass to seqtab_unlock() once the message is handed
 * out to every worker. *pos (may be NULL) gets the topic's epoch and rule. */
uint64_t seqtab_lock_next(seqtab_t *t, wsb_str_t topic, seqtab_shard_t **shard, seqtab_pos_t *pos);

/* With the shard locked by seqtab_lock_next(): appends `m` (its seq is the
 * one just taken) to the topic's history, taking over one reference the
 * caller holds. The topic must keep history (pos->rule >= 0). */
void seqtab_append(seqtab_t *t, seqtab_shard_t *shard, xmsg_t *m, uint64_t now_ms);

/*
 * Locks the shard of `topic` for a subscribe and fills *pos. A topic that
 * matches a history rule is created if absent (so a subscriber learns its
 * epoch before the first publish); others are only looked up (pos->seq 0
 * when unknown). Unlock with seqtab_unlock().
 */
void seqtab_lock_topic(seqtab_t *t, wsb_str_t topic, seqtab_shard_t **shard, seqtab_pos_t *pos,
                       uint64_t now_ms);

/*
 * With the shard locked by seqtab_lock_topic(): the messages a client that
 * has seen up to {epoch, since} missed. Returns true (recovered) when the
 * topic keeps history, the epoch is the current one, since <= the current
 * seq, and every message after `since` is still held; then *out (malloc'd,
 * NULL when *n is 0) holds *n new references, oldest first, to release with
 * xmsg_unref() and free(). Returns false (nothing stored) otherwise.
 */
bool seqtab_since(seqtab_t *t, seqtab_shard_t *shard, wsb_str_t epoch, uint64_t since,
                  xmsg_t ***out, size_t *n);

/* With the shard locked by seqtab_lock_topic(): the last `max` messages held
 * (fewer when the ring holds fewer), as seqtab_since() returns them. */
void seqtab_last(seqtab_t *t, seqtab_shard_t *shard, size_t max, xmsg_t ***out, size_t *n);

/*
 * Last value on wildcards (pubsub.h). seqtab_lock_all() locks every shard in
 * index order: publishers hold one shard lock at a time, so this cannot
 * deadlock, and while it is held no topic gets a seq, an append or a new
 * epoch. Publishes on every worker wait meanwhile: keep the section short
 * (bounded by max_topics below). seqtab_unlock_all() releases them.
 */
void seqtab_lock_all(seqtab_t *t);
void seqtab_unlock_all(seqtab_t *t);

/*
 * With every shard locked: the last `max` messages of every topic that keeps
 * history and matches `pattern` (wsb/topic.h), each topic's oldest first,
 * one topic after another; *out and *n as seqtab_since(). Returns how many
 * topics match; when that is more than `max_topics` it returns
 * max_topics + 1 and stores nothing. Entries past their ttl are dropped
 * first, as a subscribe to the exact topic does.
 */
size_t seqtab_match_last(seqtab_t *t, wsb_str_t pattern, size_t max, size_t max_topics,
                         uint64_t now_ms, xmsg_t ***out, size_t *n);

/* Unlocks, then (no lock held) brings history back under max_bytes when an
 * append took it over (see above). */
void seqtab_unlock(seqtab_shard_t *shard);

/* Drops history entries past their rule's ttl in every shard. Any thread. */
void seqtab_expire(seqtab_t *t, uint64_t now_ms);

/* Topics currently tracked (approximate while publishes run). */
size_t seqtab_count(seqtab_t *t);

/* Appends the history gauges and counters (per rule) to `out`. Any thread. */
void seqtab_render_metrics(seqtab_t *t, sbuf_t *out);

#endif
