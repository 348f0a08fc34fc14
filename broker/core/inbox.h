/*
 * inbox.h - request inboxes (core/request.h) as the fan-out, the publish
 * path and federation see them: the "_inbox." name space, inbox names, and
 * the probe that counts a request's responders across workers and nodes.
 *
 * Inbox names are "_inbox." + the owning node's tag + "." + 32 hex digits
 * from the CSPRNG (128 bits: unguessable). The node tag is 16 hex digits of
 * a hash of the node id (inbox_node_tag): federation routes a reply to the
 * node whose tag its inbox carries (one Redis channel per node,
 * "<prefix>_inbox.<tag>", cluster/bridge_redis.h), never to every node. Two
 * node ids with one tag would only both get the other's replies, which
 * their tries then drop.
 *
 * The probe rides on the request's message (xmsg_t.probe, whose shell the
 * message frees): every worker counts, after matching the topic against its
 * own trie (or after missing the message for a full inbox), and on a
 * federated node so does the bridge once Redis answered the PUBLISH with
 * the number of other nodes that received it (inbox_probe_remote_done).
 * The last counter, when nobody matched, pushes a {"type":"no_responders"}
 * event for the inbox into the requester's worker's inbox, and frees the
 * count.
 */
#ifndef WSB_BROKER_CORE_INBOX_H
#define WSB_BROKER_CORE_INBOX_H

#include "core/inbox_name.h"

#include <stdbool.h>
#include <stddef.h>

#define INBOX_RANDOM  ((size_t)16) /* bytes: 32 hex digits */
#define INBOX_TAG_LEN ((size_t)16) /* hex digits of the owning node's tag */
#define INBOX_LEN     (INBOX_PREFIX_LEN + INBOX_TAG_LEN + 1 + 2 * INBOX_RANDOM)

typedef struct core_s core_t;
typedef struct core_worker_s core_worker_t;
typedef struct xmsg_s xmsg_t;
typedef struct request_probe_s request_probe_t;
typedef struct inbox_count_s inbox_count_t;

/* The tag of node `node_id` in its inbox names: 16 hex digits and a NUL. */
void inbox_node_tag(const char *node_id, char out[INBOX_TAG_LEN + 1]);

/* The length of the node part of inbox topic `topic` ("_inbox.<tag>": the
 * first two tokens), or 0 when it has no second token. */
size_t inbox_channel_len(const char *topic, size_t len);

/* A fresh, unguessable inbox name of this node (c->inbox_tag; zeros when
 * unset), NUL-terminated. */
void inbox_make(const core_t *c, char out[INBOX_LEN + 1]);

/* A probe for a request of worker `w` answered on `inbox` (INBOX_LEN
 * bytes); the message that carries it frees it. `remote`: the other nodes
 * count too (inbox_probe_remote). Aborts on OOM. */
request_probe_t *inbox_probe_new(const core_worker_t *w, const char *inbox, bool remote);

/* A probe no message took (the publish was refused): frees it. */
void inbox_probe_discard(request_probe_t *p);

/* Worker drained (or, full, dropped) the request message `m`, and
 * `matches` of its subscribers matched it. Any thread. */
void inbox_probe_count(core_t *c, xmsg_t *m, size_t matches);

/* The count the other nodes' answer goes to (probe made with `remote`),
 * to hand to federation; it outlives the message. */
inbox_count_t *inbox_probe_remote(request_probe_t *p);

/* Federation's count: `matched` when another node may have a subscriber
 * (Redis counted one, or it cannot tell). Exactly once per remote count.
 * `c` NULL: the broker is going away, nobody is told. Any thread. */
void inbox_probe_remote_done(core_t *c, inbox_count_t *n, bool matched);

#endif
