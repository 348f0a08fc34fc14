/*
 * router.h - fan-out across workers: inboxes and delivery.
 *
 * A publish (core/pubsub.h) runs on the worker that received it: it takes
 * the topic's next seq, serializes the `message` frame once (xmsg.h), and,
 * still holding the topic's shard lock, pushes the message into every
 * worker's inbox (router_push_all), its own included. Each worker delivers
 * from its inbox in its next loop turn (router_drain), matching its own trie
 * and handing each match to its subscriber (core/subscriber.h).
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

#include "wsb/common.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct worker_s worker_t;
typedef struct conn_s conn_t;

typedef struct broker_s broker_t;
typedef struct xmsg_s xmsg_t;

/* Pushes `m` into every worker's inbox, its own included; `m`'s references
 * are counted already (xmsg_set_refs), one per worker: a full inbox's share
 * is dropped here (counted in wsbroker_inbox_dropped_total). A local publish
 * calls it under the topic's shard lock (pubsub.h). */
void router_push_all(broker_t *b, xmsg_t *m);

/* Wakes every worker but `s` to drain its inbox. */
void router_wake_others(worker_t *s);

/* Delivers a message that came from another node through Redis: `seq` is the
 * origin node's (for a clustered history topic, history_redis.h, `epoch` and
 * `seq` are Redis's, the frame carries the epoch, the topic's rule says
 * whether a slow subscriber gets a gap, and it is also delivered on the node
 * that published it), `data_json` its serialized data. Any thread (the
 * bridge's); takes no seq from the local table and is not sent back to
 * Redis. Returns the number of workers whose inbox was full (they miss it). */
unsigned router_inject_epoch(broker_t *b, wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                             wsb_str_t data_json);

/* The same for a message whose envelope carried the publisher's identity
 * (`from_json`, serialized; empty: none), stamped into the frame. */
unsigned router_inject_from(broker_t *b, wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                            wsb_str_t from_json, wsb_str_t data_json);

/* Hands {"type":type,"topic":T,"member":{"client":C,"user":U|null}} (a
 * join or leave, presence.h) to every worker's fan-out as one shared frame
 * for the topic's subscribers, and wakes every worker. Any thread. False
 * when it cannot be encoded (ids that are not UTF-8): nothing was sent. */
bool router_push_member_event(broker_t *b, const char *type, wsb_str_t topic, const char *client,
                              const char *user);

/* Delivers up to WORKER_INBOX_BATCH messages from the worker's inbox to its
 * subscribers; wakes the loop again if more remain. Called each loop turn,
 * right after a publish, and before a connection's input is handled (so a
 * reply never overtakes a message published before the request was sent). */
void router_drain(worker_t *s);

/* Delivers every message pushed into the worker's inbox before the call
 * (whatever the batch size), waiting for a push in progress to complete. A
 * subscribe with recovery calls it with the topic's shard lock held
 * (ws_session.c): after it, every message of that topic with a seq up to the
 * current one has been delivered, and none after it has been pushed yet. */
void router_drain_pushed(worker_t *s);

#endif
