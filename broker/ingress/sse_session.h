/*
 * sse_session.h - Server-Sent Events ingress (PROTOCOL.md "Server-Sent
 * Events"): GET /sse?topic=A&topic=B.* answered with 200 text/event-stream,
 * then each delivered message as an `event: message` with `id:
 * <epoch>:<seq>` and the WebSocket message frame's JSON as `data:`.
 *
 * The connection becomes CONN_SSE (net/conn.h) with the session as c->resp;
 * the session is a core subscriber (core/subscriber.h) like the WebSocket
 * one: same permission checks, max_subscriptions, max_connections_per_user,
 * slow-consumer close, token expiry. Worker thread of the connection.
 */
#ifndef WSB_BROKER_SSE_SESSION_H
#define WSB_BROKER_SSE_SESSION_H

#include "net/conn.h"
#include "wsb/http.h"

/* Registers the SSE mode's handlers with net/ (once, at start-up). */
void sse_register(void);

/* Answers GET /sse: refuses with a JSON error (400, 401, 403, 429) and
 * keeps the connection in HTTP mode, or starts the stream (CONN_SSE). */
void sse_open(conn_t *c, const wsb_http_request_t *req);

#endif
