/*
 * admin_ban.h - users banned through POST /api/disconnect {"user":…,"ban_s":N}
 * (PROTOCOL.md 16): until the ban ends, the user's new WebSocket upgrades and
 * `auth` messages are refused with close 4008 (HTTP 403 without Origin).
 *
 * A small table of (user, end) pairs behind a mutex: any worker thread may
 * add or look up. Bounded: at most `max` live bans; an expired entry is
 * reused. Times are milliseconds of one monotonic clock chosen by the caller
 * (the loops' clock, uv_now).
 */
#ifndef WSB_BROKER_ADMIN_BAN_H
#define WSB_BROKER_ADMIN_BAN_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Live bans at most (beyond: admin_ban_add fails). */
#define ADMIN_BAN_MAX 1024
/* The longest ban: 30 days. */
#define ADMIN_BAN_MAX_S (30u * 24u * 3600u)

typedef struct admin_ban_s admin_ban_t;

/* Owner: the caller; free with admin_ban_free(). Aborts on OOM. */
admin_ban_t *admin_ban_new(size_t max);
void admin_ban_free(admin_ban_t *b);

/* Bans `user` (1 to 128 bytes) until `until_ms` (an existing ban is
 * extended or shortened to it). False when `max` bans are live. */
bool admin_ban_add(admin_ban_t *b, wsb_str_t user, uint64_t until_ms, uint64_t now_ms);

/* Milliseconds left of `user`'s ban at `now_ms`; 0: not banned. A NULL
 * table or an empty user is never banned. */
uint64_t admin_ban_left_ms(admin_ban_t *b, wsb_str_t user, uint64_t now_ms);

/* Live bans at `now_ms`. */
size_t admin_ban_count(admin_ban_t *b, uint64_t now_ms);

#endif
