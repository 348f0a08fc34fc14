/*
 * admin_api.h - the admin API (PROTOCOL.md 16): GET /api/topics, GET
 * /api/connections, POST /api/disconnect, for an admin key (admin_keys) or a
 * JWT with "admin": true; 401 without a credential, 403 for one that is not
 * an admin's.
 *
 * Every worker owns its connections, so a query runs on every worker's own
 * thread (admin_api_part, through ctx->ops->admin_cb, which app/ routes
 * through the workers' admin mailboxes) and the worker that took the
 * request merges the parts (admin_api_finish) and answers. The response is
 * deferred meanwhile (conn_http_defer); a connection that closes first
 * detaches its wait (admin_api_detach), which the merge then frees.
 */
#ifndef WSB_BROKER_ADMIN_API_H
#define WSB_BROKER_ADMIN_API_H

#include "ingress/ingress.h"
#include "wsb/http.h"

#include <jansson.h>
#include <stdbool.h>

#define ADMIN_PAGE_DEFAULT 100  /* GET /api/connections without limit */
#define ADMIN_PAGE_MAX     1000 /* the largest limit */
#define ADMIN_TOPICS_MAX   1000 /* GET /api/topics lists at most this many, "truncated" beyond */

typedef struct admin_wait_s admin_wait_t;

/* True for the paths of the admin API. */
bool admin_api_path(wsb_str_t path);

/* True when `req` carries an admin credential (an admin key, or a valid JWT
 * with "admin": true): it may also read GET /api/presence of any topic. */
bool admin_api_is_admin(conn_t *c, const wsb_http_request_t *req);

/* Sends a deferred response (taken over) on `c` and lets it read on. */
typedef void (*admin_respond_cb)(conn_t *c, int status, json_t *body, bool keep_alive);

/* A request for an admin_api_path() path: answered at once (NULL), or its
 * query started on the workers: the caller defers the response and points
 * the connection at the returned wait (detached with admin_api_detach if
 * the connection closes first); `respond_cb` answers later on the
 * connection's worker thread. */
admin_wait_t *admin_api_handle(conn_t *c, const wsb_http_request_t *req, wsb_str_t path,
                               bool keep_alive, admin_respond_cb respond_cb);

/* Worker thread of `ctx`: this worker's part of `q` (owned by the caller),
 * read from (or, for ADMIN_DISCONNECT, acting on) its connections `net`. */
json_t *admin_api_part(ingress_ctx_t *ctx, net_t *net, const admin_query_t *q);

/* One node's answer to `q` (new reference) from its workers' parts (parts[i]
 * from worker i, NULL for a worker that could not answer; not taken over):
 * what admin_api_merge() combines, and what a node sends back through
 * Redis in a cluster. Carries "node"; connections keep their "_w", "_no"
 * for the cursor. Thread of the worker that merges. */
json_t *admin_api_node_body(ingress_ctx_t *ctx, const admin_query_t *q, json_t **parts, unsigned n);

/* The response to `q` from the nodes' bodies (borrowed; the local node's
 * first): topics summed per topic (highest seq), connections paged across
 * nodes in (node, worker, connection) order, disconnects summed; "nodes"
 * lists every node that answered. New reference. Pure: any thread. */
json_t *admin_api_merge(const admin_query_t *q, json_t **bodies, unsigned n);

/* Thread of the worker that took the request: answers admin_api_merge() on
 * the wait's connection unless it closed; frees `wait`. */
void admin_api_finish(admin_wait_t *wait, const admin_query_t *q, json_t **bodies, unsigned n);

/* The connection waiting on `wait` closes: the merge will answer nobody. */
void admin_api_detach(admin_wait_t *wait);

#endif
