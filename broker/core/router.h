/*
 * router.h - fan-out across workers: inboxes and delivery.
 *
 * A publish (core/pubsub.h) runs on the worker that received it: it takes
 * the topic's next seq, serializes the `message` frame once (xmsg.h), and,
 * still holding the topic's shard lock, pushes the message into the inbox
 * of every worker that may have a subscriber for it (router_targets: the
 * workers' interest summaries, interest.h), its own included. Each worker
 * delivers from its inbox in its next loop turn (router_drain), matching its
 * own trie and handing each match to its subscriber (core/subscriber.h).
 * The other workers are woken once per loop turn of the publishing worker
 * (or per ROUTER_WAKE_BATCH publishes), not once per message
 * (router_flush_wakes).
 *
 * Guarantees: seq is unique and increasing per topic across all workers;
 * every worker receives a topic's messages in seq order (pushes happen under
 * the shard lock), so every subscriber sees one publisher's messages in
 * publish order, and all subscribers see a topic's messages in the same
 * order.
 *
 * Backpressure: the loop is never blocked. When a publish leaves some
 * worker more than 256 messages behind (or its inbox half full), the
 * publishing connection stops being read (the publish's verdict, which the
 * ingress applies) until every worker is back under
 * 64 (TCP then slows the publisher). A worker whose inbox is full all the same (many publishers at
 * once) does not get the message: counted in wsbroker_inbox_dropped_total.
 */
#ifndef WSB_BROKER_ROUTER_H
#define WSB_BROKER_ROUTER_H

#include "core/core.h"
#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct xmsg_s xmsg_t;

/* Pushes `m` into every worker's inbox, its own included; `m`'s references
 * are counted already (xmsg_set_refs), one per worker: a full inbox's share
 * is dropped here (counted in wsbroker_inbox_dropped_total). A local publish
 * calls it under the topic's shard lock (pubsub.h). */
void router_push_all(core_t *c, xmsg_t *m);

/* Publishes between two wake-ups of the other workers at most: a turn that
 * publishes more wakes them every this many messages (well under the inbox
 * pressure mark of core.h, 256). */
#define ROUTER_WAKE_BATCH 64

/* The workers a local publish goes to: those whose interest summary
 * (interest.h) says they may have a subscriber for the topic. */
typedef struct {
    uint64_t mask[CORE_MAX_WORKERS / 64];
    unsigned n; /* bits set in mask */
} router_targets_t;

/* Fills *t for `m`. A request's no-responders probe (request.h) is counted
 * here, as "no match", for each worker left out. Call it before
 * xmsg_set_refs: the message needs t->n references for its pushes. Under
 * the topic's shard (or stream) lock, like the pushes that follow: a
 * subscribe that switches over under that lock is either seen here or
 * gets the message from history. */
void router_targets(core_t *c, xmsg_t *m, router_targets_t *t);

/* Pushes `m` into the inbox of every worker in `t` (one reference each,
 * counted already; a full inbox's is dropped and counted in
 * wsbroker_inbox_dropped_total) and notes the workers other than `w` to
 * wake. The wake-ups wait for router_flush_wakes: one per worker and loop
 * turn, or one per ROUTER_WAKE_BATCH publishes if the turn has more. */
void router_push_targets(core_worker_t *w, xmsg_t *m, const router_targets_t *t);

/* Wakes the workers the publishes of `w` pushed to since the last call.
 * The worker calls it after its I/O callbacks (check phase) and at the end
 * of its flush (prepare phase), so a message never waits in an inbox past
 * the publishing worker's loop turn. Owner thread. */
void router_flush_wakes(core_worker_t *w);

/* THE way in for a message from another node (federation, through Redis):
 * `seq` is the origin node's (for a clustered history topic, core/chist.h,
 * `epoch` and `seq` are Redis's, the frame carries the epoch, the topic's
 * rule says whether a slow subscriber gets a gap, and it is also delivered
 * on the node that published it), `from_json` the publisher's identity
 * the origin stamped (serialized; empty: none), `data_json` its serialized
 * data. Any thread (the bridge's); takes no seq from the local table and is
 * not sent back to federation. Returns the number of workers whose inbox
 * was full (they miss it). */
unsigned core_inject_remote(core_t *c, wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                            wsb_str_t from_json, wsb_str_t data_json);

/* The same for a request of another node (request.h): its `message`
 * frames carry "reply_to" (an inbox of the requester's node). */
unsigned core_inject_request(core_t *c, wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                             wsb_str_t from_json, wsb_str_t reply_to, wsb_str_t data_json);

/* Hands {"type":type,"topic":T,"member":{"client":C,"user":U|null}} (a
 * join or leave, presence.h) to every worker's fan-out as one shared frame
 * for the topic's subscribers, and wakes every worker. Any thread. False
 * when it cannot be encoded (ids that are not UTF-8): nothing was sent. */
bool router_push_member_event(core_t *c, const char *type, wsb_str_t topic, const char *client,
                              const char *user);

/* Federation's way in for presence (cluster/presence_bus.h): a member of
 * another node joined or left `topic` (the bus keeps the remote members in
 * core_t.presence itself). When the topic's rule has join_leave, this
 * node's subscribers get the event (router_push_member_event); returns
 * whether it was sent. Any thread (the bridge's). */
bool core_inject_presence(core_t *c, const char *type, wsb_str_t topic, const char *client,
                          const char *user);

/* Delivers up to CORE_INBOX_BATCH messages from the worker's inbox to its
 * subscribers; wakes the loop again if more remain. Called each loop turn,
 * right after a publish, and before a connection's input is handled (so a
 * reply never overtakes a message published before the request was sent). */
void router_drain(core_worker_t *w);

/* Delivers every message pushed into the worker's inbox before the call
 * (whatever the batch size), waiting for a push in progress to complete. A
 * subscribe with recovery calls it with the topic's shard lock held
 * (pubsub.c): after it, every message of that topic with a seq up to the
 * current one has been delivered, and none after it has been pushed yet. */
void router_drain_pushed(core_worker_t *w);

#endif
