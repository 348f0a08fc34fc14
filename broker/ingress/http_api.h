/*
 * http_api.h - plain HTTP requests: GET /healthz, GET /metrics,
 * POST /api/publish, and static files from web_root for everything else.
 */
#ifndef WSB_BROKER_HTTP_API_H
#define WSB_BROKER_HTTP_API_H

#include "wsb/http.h"

#include <stdbool.h>

typedef struct conn_s conn_t;

/* Answers the complete request `req` on `c` (keep-alive honoured), or, for
 * a publish of clustered-history topics, submits it to Redis and defers the
 * response (c->http_pub set, conn_http_defer): it is queued when Redis
 * answered, then conn_http_resume() is called. */
void http_api_handle(conn_t *c, const wsb_http_request_t *req);

/* `req` failed to parse with 413, its body being over max_http_body. For
 * POST /api/publish this answers with the publish API's JSON error (code
 * too_large, naming the limit; the connection is then closed) and returns
 * true; for any other target it returns false and sends nothing. */
bool http_api_body_too_large(conn_t *c, const wsb_http_request_t *req);

/* The connection closes with a deferred response pending: drops it; its
 * ops still with Redis are freed when they come back (chist_drain). */
void http_api_cancel(conn_t *c);

#endif
