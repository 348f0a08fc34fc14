/*
 * chist_session.h - the WebSocket session's side of clustered history
 * (core/chist.h, cluster/chist_redis.h):
 * publishes whose seq Redis assigns, subscribes whose position and replay
 * Redis reads, and the order of the replies around them.
 *
 * A topic is "clustered" when redis.url is set and a history rule matches
 * it. Its seq comes from the publish script's reply, so a publish is
 * answered asynchronously: the request becomes an chist_op_t that the bridge
 * thread sends (EVALSHA) and hands back through the worker's queue
 * (chist_complete -> chist_drain). The connection goes on being read and
 * served meanwhile.
 *
 * Reply order (PROTOCOL.md 2.1): while a session has an op in flight, every
 * later reply (ack, error, pong, gap) is held behind it, in a FIFO; when the
 * op at the head completes, the FIFO is sent up to the next op still in
 * flight. Per-publisher order: one worker pushes a connection's ops in
 * request order into one queue; the bridge sends them in that order on one
 * Redis connection; Redis runs the scripts (seq, XADD, PUBLISH) in that
 * order; every node receives the PUBLISHes in that order on its subscribed
 * connection and hands them to its workers in that order.
 *
 * Delivery: a clustered message reaches every subscriber, on every node
 * including the one it was published on, through Redis pub/sub (bridge ->
 * core_inject_remote), so all subscribers of a node see one order, seq's.
 *
 * Switch-over of a subscribe: the subscription is in the trie before the
 * read is sent, and the bridge sends the read only once Redis has confirmed
 * the channel's SUBSCRIBE, so every message published after the read ran
 * arrives live. Live messages of the topic that arrive while the read is
 * pending are held in the op; when it completes the session sends the ack,
 * the replay (seq <= position), then the held live messages with seq >
 * position. Because a message published before the read may still be on
 * its way through the subscribed connection afterwards, the session keeps
 * the position as a floor: a live message of that epoch with seq <= floor
 * is dropped (a duplicate); the first one above it ends the floor.
 */
#ifndef WSB_BROKER_CHIST_SESSION_H
#define WSB_BROKER_CHIST_SESSION_H

#include "core/chist.h"
#include "wsb/common.h"
#include "wsb/message.h"

#include <stdbool.h>

typedef struct session_s session_t;
typedef struct worker_s worker_t;
typedef struct broker_s broker_t;
typedef struct frame_buf_s frame_buf_t;

/* Live messages one pending read may hold; beyond, the session is closed
 * as a slow consumer (1013) when the read completes. */
#define CLUSTER_MAX_HELD_LIVE 4096

/* A publish to a clustered topic, submitted by the core (pubsub_publish,
 * with chist_session_op_done as its done_cb): the ack, and every reply
 * queued after it, wait for Redis's seq. */
void chist_session_hold_op(session_t *s, chist_op_t *op);

/* The done_cb of a session's ops: emits what waited behind it, in order. */
void chist_session_op_done(chist_op_t *op);

/* Subscribe of `m` to a clustered topic, with the subscription already in
 * the trie: answered (position, recovered, replay) when Redis replied. */
void chist_session_subscribe(session_t *s, const wsb_msg_t *m, int rule);

/* reply(): true when the frame was held behind an op in flight (taken). */
bool chist_session_hold(session_t *s, frame_buf_t *fb);

/* Fan-out: true when the live message `m` must not be sent now (held for a
 * pending read, or a duplicate below the floor). */
bool chist_session_filter(session_t *s, struct xmsg_s *m);

/* Session close: detaches its ops (they are freed when they come back). */
void chist_session_free(session_t *s);

#endif
