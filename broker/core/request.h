/*
 * request.h - request/reply (PROTOCOL.md "Request/reply"): a request is a
 * publish whose `message` frame carries "reply_to", an inbox topic that
 * only the broker subscribes to; the first message published to that inbox
 * is the reply.
 *
 * Inbox: "_inbox." + the node's tag + "." + 32 hex digits, unguessable
 * (inbox.h). No client may
 * subscribe to a pattern whose first token is "_inbox" (pubsub.c:
 * forbidden), and the fan-out (router.c) hands "_inbox." messages to
 * request inboxes only, so ">" and "*.x" subscribers never see them.
 * Anyone who knows an inbox may publish to it.
 *
 * Pending: each request is a subscriber of its inbox in the requesting
 * worker's trie, plus a libuv timer for its deadline, linked in its owner's
 * request_list_t (at most REQUEST_MAX_PENDING per owner). It ends exactly
 * once: reply, no responders or timeout (the owner's done_cb), or the owner
 * goes away (request_cancel_all, no callback). Its inbox leaves the trie
 * outside the fan-out.
 *
 * No responders: the request message carries a probe (inbox.h) that every
 * worker updates once it matched the topic against its own trie; on a
 * federated node the request also goes to the other nodes (its envelope
 * carries "reply_to") and the bridge counts once Redis said how many other
 * nodes received it (bridge_request). When no counter matched, the
 * requester's inbox gets a `no_responders` event. A reply published on
 * another node travels to this node's inbox channel (inbox.h).
 *
 * Everything but the probe runs on the requesting worker's thread.
 */
#ifndef WSB_BROKER_CORE_REQUEST_H
#define WSB_BROKER_CORE_REQUEST_H

#include "core/core.h"
#include "core/pubsub.h"
#include "wsb/common.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Requests one connection (or HTTP request) may have waiting at once. */
#define REQUEST_MAX_PENDING 100

typedef struct request_s request_t;

/* The requests one owner is waiting for. Zero-initialise it. */
typedef struct request_list_s {
    request_t *head;
    uint32_t n;
} request_list_t;

typedef enum {
    REQUEST_REPLY = 0,
    REQUEST_NO_RESPONDERS = 1,
    REQUEST_TIMEOUT = 2,
} request_outcome_t;

typedef struct request_done_s {
    request_outcome_t outcome;
    bool has_id;
    int64_t id;
    json_t *data; /* REPLY: the reply's data (borrowed, for the callback only) */
    json_t *from; /* REPLY: the responder's identity {client,user}; borrowed */
} request_done_t;

typedef struct request_args_s {
    /* topic, data, ingress, perms / key, from_client_no / from_user, has_id /
     * id as for a publish; owner, done_cb, reply_to and probe are set here. */
    pubsub_publish_t pub;
    uint32_t timeout_ms; /* > 0 */
    request_list_t *list;
    void *owner;
    void (*done_cb)(void *owner, const request_done_t *d);
} request_args_t;

/*
 * Starts a request on worker `w`. PUBSUB_OK: published; done_cb comes once,
 * possibly before this returns (no responders on this worker alone),
 * *pause as for a publish. PUBSUB_FORBIDDEN (not allowed to publish to the
 * topic, or the topic is an inbox), PUBSUB_LIMIT (REQUEST_MAX_PENDING
 * waiting), PUBSUB_UNAVAILABLE (the topic keeps clustered history: not
 * supported): nothing was published and done_cb never comes.
 */
pubsub_status_t request_start(core_worker_t *w, const request_args_t *a, bool *pause);

/* The owner goes away: its requests end without a callback. */
void request_cancel_all(request_list_t *list);

#endif
