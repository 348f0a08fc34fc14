/*
 * seqtab.h - per-topic sequence numbers shared by every worker.
 *
 * A publish on any worker takes the next `seq` of its topic here. The table
 * is split into SEQTAB_SHARDS shards by topic hash, each with its own mutex,
 * so publishers of different topics rarely meet and there is no global lock.
 * The router holds the shard's lock while it assigns the seq AND pushes the
 * message into every worker's inbox: that is what makes each worker receive
 * a topic's messages in seq order, whichever workers published them.
 *
 * Bounded: each shard keeps at most SEQTAB_MAX_TOPICS / SEQTAB_SHARDS topics,
 * evicting the least recently published; an evicted topic starts again at 1.
 */
#ifndef WSB_BROKER_SEQTAB_H
#define WSB_BROKER_SEQTAB_H

#include "wsb/common.h"

#include <stddef.h>
#include <stdint.h>

#define SEQTAB_SHARDS     64
#define SEQTAB_MAX_TOPICS 65536

typedef struct seqtab_s seqtab_t;

seqtab_t *seqtab_new(void);
void seqtab_free(seqtab_t *t);

typedef struct seqtab_shard_s seqtab_shard_t;

/* Locks the shard of `topic` and returns the topic's next seq (>= 1); *shard
 * is the locked shard, to pass to seqtab_unlock() once the message is handed
 * out to every worker. */
uint64_t seqtab_lock_next(seqtab_t *t, wsb_str_t topic, seqtab_shard_t **shard);
void seqtab_unlock(seqtab_shard_t *shard);

/* Topics currently tracked (approximate while publishes run). */
size_t seqtab_count(seqtab_t *t);

#endif
