/*
 * resp_session.h - the RESP ingress: a listener that speaks RESP2 so that
 * any Redis client can publish into the broker and subscribe to it (off
 * unless resp.port is set).
 *
 * The listener runs on worker 0's loop (one listening socket; RESP is for
 * backend services, not for fan-out to many clients) and accepts into the
 * common connection (net/conn.h, CONN_RESP): admission (max_connections,
 * max_connections_per_ip), reads, corked writes, outbound bounds, publisher
 * pauses and the deadline are the connection's; resp_conn.c is the mode's
 * handlers, resp_session.c the commands. A RESP subscriber is a trie
 * subscriber (subscriber.h) of worker 0 like a WebSocket session, so it
 * receives what is published on any worker or, through the Redis bridge,
 * any node.
 *
 * Commands: PUBLISH, PING, ECHO, AUTH, HELLO [2], QUIT, RESET, SELECT 0,
 * CLIENT (SETNAME/SETINFO accepted), COMMAND (COUNT, DOCS, INFO, the list),
 * SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE. Errors are RESP error
 * lines; a protocol error is answered and the connection closed (the stream
 * cannot be resynchronised), as Redis does.
 *
 * Bounds: a request at most max_message_size + 64 KiB, a bulk string at most
 * max_message_size, 1024 arguments, inline lines 64 KiB; unsent output at
 * most max_outbound_bytes and inside the worker's share of
 * max_total_outbound: a subscriber beyond it is disconnected (slow
 * consumer), a client whose replies pile up stops being read until it reads.
 * Deadlines: a request begun must be complete within header_timeout; a
 * connection without subscriptions is closed after idle_timeout without a
 * request; with API keys, AUTH must succeed within auth.timeout.
 *
 * Ownership: the listener belongs to worker 0 (ingress_ctx_t.resp); a session
 * belongs to its connection and is freed when it closes.
 */
#ifndef WSB_BROKER_RESP_SESSION_H
#define WSB_BROKER_RESP_SESSION_H

#include "core/topic_trie.h"
#include "core/xmsg.h"

#include <stdbool.h>
#include <sys/socket.h>

typedef struct ingress_ctx_s ingress_ctx_t;
typedef struct net_s net_t;
typedef struct resp_listener_s resp_listener_t;

/* Sets up the listener on the worker of `ctx` and `net` (ctx->resp), binds
 * `addr` on its loop and listens. 0 or a UV_E* code (the caller logs it and
 * the address, app/broker.c); on failure resp_listener_shutdown still closes
 * the socket. Main thread, before the loop runs. */
int resp_listener_listen(ingress_ctx_t *ctx, net_t *net, const struct sockaddr *addr, int backlog);

/* The address the listener is bound to. 0 or a UV_E* code. */
int resp_listener_sockname(const ingress_ctx_t *ctx, struct sockaddr_storage *ss);

/* Stops accepting (idempotent). The connections themselves are the
 * worker's (conn_resp_shutdown at its drain). */
void resp_listener_shutdown(ingress_ctx_t *ctx);

/* Frees the listener after its loop ended. */
void resp_listener_free(ingress_ctx_t *ctx);

/* Open RESP connections (a gauge). */
size_t resp_connection_count(const ingress_ctx_t *ctx);

#endif
