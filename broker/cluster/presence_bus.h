/*
 * presence_bus.h - presence across federated nodes: every node keeps the
 * members of the other nodes next to its own (presence.h), fed through one
 * Redis pub/sub channel, "<prefix> presence" (the space keeps it apart from
 * every topic's channel).
 *
 * Envelopes, JSON: {"v":1,"node":N,"inc":I,"op":OP[,"topic":T,"members":[{"client","user"}…]]}
 *   join / leave  a member of this node came or went (sent by the worker)
 *   sync          this node's members of one topic (answers a hello; at most
 *                 PBUS_SYNC_CHUNK members per envelope)
 *   hello         this node (re)subscribed: everyone answers with sync
 *   hb            heartbeat, every node_ttl / 4
 * `inc` is a random incarnation made at start: a node restarted with the
 * same node_id is another origin ("<node>/<inc>"), so its old members are
 * no longer refreshed and go like a dead node's: no ghosts.
 *
 * Liveness: a node not heard from for presence.node_ttl is dead: its
 * members leave (join_leave topics get leave events on every node). A node
 * that (re)subscribes sends hello and its own sync; the others answer with
 * theirs; members of a node that are not confirmed by its sync within
 * node_ttl leave too (they left while Redis was away).
 *
 * Threads: pbus_local() runs on workers (encode, queue); everything else on
 * the bridge thread.
 */
#ifndef WSB_BROKER_PRESENCE_BUS_H
#define WSB_BROKER_PRESENCE_BUS_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define PBUS_MAX_NODES  256
#define PBUS_SYNC_CHUNK 200

typedef struct pbus_s pbus_t;
typedef struct presence_s presence_t;

/* What the bus works with, borrowed for its lifetime: the bridge gives it
 * its table, rules and identity, and three callbacks (bridge thread). */
typedef struct {
    presence_t *presence;
    const struct topic_rules_s *rules;
    const char *node_id;
    const char *prefix; /* redis.prefix */
    uint64_t ttl_ms;    /* presence.node_ttl */
    /* PUBLISH `env` on `chan` (queued; any thread). */
    void (*send_cb)(void *user_data, const char *chan, size_t chan_len, const char *env,
                    size_t env_len);
    /* True when the publishing connection is up. */
    bool (*ready_cb)(void *user_data);
    /* A remote member joined or left: this node's subscribers are told. */
    void (*event_cb)(void *user_data, const char *type, wsb_str_t topic, const char *client,
                     const char *user);
    void *user_data;
} pbus_config_t;

/* Creates a bus (`cfg` is copied). Owner: the bridge; pbus_free(). Aborts
 * on OOM. */
pbus_t *pbus_new(const pbus_config_t *cfg);

/* The channel's name (for the bridge's interest). */
const char *pbus_channel(const pbus_t *pb, size_t *len);

/* Bridge thread: starts / stops the heartbeat timer on `loop`. */
void pbus_start(pbus_t *pb, uv_loop_t *loop);
void pbus_stop(pbus_t *pb);

void pbus_free(pbus_t *pb);

/* A local member joined or left (`type` "join" / "leave"). Any worker. */
void pbus_local(pbus_t *pb, const char *type, wsb_str_t topic, const char *client,
                const char *user);

/* Bridge thread: is `name` the bus's channel? */
bool pbus_is_channel(const pbus_t *pb, const char *name, size_t len);

/* Bridge thread: Redis confirmed the subscription (after every reconnect). */
void pbus_subscribed(pbus_t *pb);

/* Bridge thread: an envelope arrived on the channel. */
void pbus_receive(pbus_t *pb, const char *payload, size_t len);

#endif
