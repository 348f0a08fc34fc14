/*
 * presence.h - who is subscribed to a topic, for the node: the members of
 * topics whose rule says `presence` or `join_leave` (topic_rules.h).
 *
 * A member is one connection subscribed to the exact topic (a pattern
 * subscription makes no member), known by its client id (unique per
 * connection, the welcome's client_id) and its user (the token's sub at the
 * time it subscribed, or none). The core adds a member when the
 * subscription is made and removes it when it goes (unsubscribe, revoked
 * credentials, closed connection): pubsub.c.
 *
 * One table per node, shared by every worker: members of one topic can sit
 * on every worker, and a query must see them all. The table is split in
 * PRESENCE_SHARDS shards by the topic's hash, each under its own mutex, held
 * only for the few operations below (never during a delivery); nothing on
 * the publish path touches it.
 *
 * Bounds: at most `max_topics` topics with members on the node and at most
 * `max_members` members per topic; an add beyond either is refused (the
 * subscribe then answers limit_exceeded). Memory per member: one small
 * allocation holding the client id and the user, plus 16 bytes in its
 * topic's array.
 */
#ifndef WSB_BROKER_PRESENCE_H
#define WSB_BROKER_PRESENCE_H

#include "wsb/common.h"
#include "wsb/jwt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRESENCE_SHARDS 16

/* Longest client id and user kept (longer ones are cut: the ids the broker
 * makes are shorter, and a token's sub is at most WSB_JWT_MAX_SUB bytes). */
#define PRESENCE_CLIENT_MAX 64
#define PRESENCE_USER_MAX   WSB_JWT_MAX_SUB
/* A remote member's origin: "<node_id>/<incarnation>". */
#define PRESENCE_ORIGIN_MAX 96

typedef struct presence_s presence_t;

typedef enum {
    PRESENCE_OK = 0,
    PRESENCE_TOPICS_FULL = 1,  /* max_topics topics have members already */
    PRESENCE_MEMBERS_FULL = 2, /* the topic has max_members members */
} presence_status_t;

/* One member as a query returns it: NUL-terminated copies. */
typedef struct {
    char client[PRESENCE_CLIENT_MAX + 1];
    char user[PRESENCE_USER_MAX + 1];
    bool has_user;
} presence_member_t;

/* An empty table. Owned by the caller: presence_free(). Aborts on OOM. */
presence_t *presence_new(uint32_t max_topics, uint32_t max_members);

/* Frees the table and every member left (NULL-safe). */
void presence_free(presence_t *p);

/*
 * Adds `client` (with `user`, NULL for none) as a member of the exact
 * `topic`. Adding a client that is a member already changes nothing and is
 * PRESENCE_OK. Returns PRESENCE_OK, or PRESENCE_TOPICS_FULL /
 * PRESENCE_MEMBERS_FULL with nothing changed. Any thread.
 */
presence_status_t presence_add(presence_t *p, wsb_str_t topic, const char *client,
                               const char *user);

/*
 * Federation (cluster/presence_bus.h): members of other nodes, known by
 * their `origin` (the node's id and incarnation, never ""), kept next to
 * this node's own so that queries answer with both. A remote member is
 * keyed by (client, origin); `gen` records the resync generation that last
 * reported it. *added tells whether it is new (a join to announce).
 */
presence_status_t presence_add_remote(presence_t *p, wsb_str_t topic, const char *client,
                                      const char *user, const char *origin, uint32_t gen,
                                      bool *added);

/* Removes the remote member (client, origin) of `topic`, as presence_remove. */
bool presence_remove_remote(presence_t *p, wsb_str_t topic, const char *client, const char *origin,
                            presence_member_t *out);

/* Called for each member presence_drop_remote removes, with its shard
 * locked: must not call back into the table. */
typedef void (*presence_drop_cb)(wsb_str_t topic, const presence_member_t *m, void *user_data);

/* Removes the remote members of `origin` (NULL: of every other node) whose
 * gen is below `gen_below` (UINT32_MAX: all), calling `cb` (may be NULL)
 * for each. Returns how many. Any thread. */
size_t presence_drop_remote(presence_t *p, const char *origin, uint32_t gen_below,
                            presence_drop_cb cb, void *user_data);

/* Calls `cb` once per topic with this node's own members of it (`m`, `n`
 * valid during the call; the topic's shard is locked: no call back into
 * the table). */
typedef void (*presence_local_cb)(wsb_str_t topic, const presence_member_t *m, size_t n,
                                  void *user_data);
void presence_foreach_local(presence_t *p, presence_local_cb cb, void *user_data);

/*
 * Removes `client` from `topic`'s members; a topic left without members
 * leaves the table. Returns true when it was a member, and then fills *out
 * (when not NULL) with the member as it was added (for the leave event).
 * Any thread.
 */
bool presence_remove(presence_t *p, wsb_str_t topic, const char *client, presence_member_t *out);

/*
 * The members of `topic`, in no particular order: a malloc'd array of *n
 * entries (the caller free()s it; NULL when there are none). Any thread.
 */
presence_member_t *presence_members(presence_t *p, wsb_str_t topic, size_t *n);

/* The number of members of `topic` and of distinct users among them
 * (members without a user count in clients only). Any thread. */
void presence_stats(presence_t *p, wsb_str_t topic, uint32_t *clients, uint32_t *users);

/*
 * The answer to a presence query, a new JSON object: `type` first (when not
 * NULL), `id` (with has_id), "topic", then "members":[{"client","user"}…]
 * (with `members`) and "clients", "users" (with `stats`). Aborts on OOM.
 */
struct json_t *presence_json(presence_t *p, const char *type, bool has_id, int64_t id,
                             wsb_str_t topic, bool members, bool stats);

/* Appends wsbroker_presence_topics and wsbroker_presence_members (gauges)
 * to a Prometheus text exposition. */
struct sbuf_s;
void presence_render_metrics(presence_t *p, struct sbuf_s *out);

/* Topics with members and members over all topics, for /metrics. */
void presence_totals(presence_t *p, uint64_t *topics, uint64_t *members);

#endif
