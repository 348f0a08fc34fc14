/*
 * user_limits.h - limits keyed by the user (a JWT's `sub`) over all of that
 * user's WebSocket connections on this node, whichever worker holds them:
 * max_connections_per_user, and with rate.per = "user" one pair of token
 * buckets (rate.messages, rate.bytes) that every connection of the user
 * draws from (issue 18 item 6; a user's 4 connections get one budget, not 4).
 *
 * A table of entries, one per user with at least one connection, split into
 * USER_LIMITS_SHARDS shards by a hash of the name, each under its own mutex:
 * workers only contend when two of them touch users of one shard at the
 * same instant, and a rate check is a lock, two bucket updates and an
 * unlock. An entry lives while connections hold it (acquire / release), so
 * the table's memory is bounded by the connections: at most one entry per
 * connection, never one per name ever seen.
 *
 * Any thread. The table is created by auth_init() when either limit is on
 * (auth_t.users), else it is NULL and the session keeps per-connection
 * buckets as before.
 */
#ifndef WSB_BROKER_CORE_USER_LIMITS_H
#define WSB_BROKER_CORE_USER_LIMITS_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USER_LIMITS_SHARDS 64

typedef struct user_limits_s user_limits_t;
typedef struct user_entry_s user_entry_t;

/* A table for `max_conns` connections per user (0: unlimited) whose rate
 * buckets are shared per user when `per_user_rate`. Owner: the caller;
 * user_limits_free(). Aborts on OOM. */
user_limits_t *user_limits_new(uint32_t max_conns, bool per_user_rate);

/* Frees the table; every entry must have been released (the broker frees it
 * after its connections). NULL-safe. */
void user_limits_free(user_limits_t *t);

/* Counts one more connection of `user` (1 to 128 bytes, any content).
 * Returns the user's entry, held until user_limits_release(), or NULL when
 * the user holds max_conns connections already (nothing counted). */
user_entry_t *user_limits_acquire(user_limits_t *t, wsb_str_t user);

/* Counts one connection of the entry's user less; the last frees it. */
void user_limits_release(user_limits_t *t, user_entry_t *e);

/* True when the table shares rate buckets per user (rate.per = "user"). */
bool user_limits_per_user_rate(const user_limits_t *t);

/* Open connections of `user` right now (tests, metrics). */
uint32_t user_limits_count(user_limits_t *t, wsb_str_t user);

/*
 * The user's share of the message and byte rates: takes 1 message and `len`
 * bytes from the user's two token buckets (see bucket_take, auth.h) at
 * `now_ms` (a loop clock: every worker's is uv_hrtime based, a slightly
 * older reading than the bucket's last one refills nothing), under the
 * entry's shard lock. Returns false when either bucket is short (the
 * message bucket is charged first, as for one connection's buckets).
 */
bool user_limits_take(user_limits_t *t, user_entry_t *e, double msg_rate, double msg_burst,
                      double byte_rate, double byte_burst, size_t len, uint64_t now_ms);

#endif
