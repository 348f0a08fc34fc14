/*
 * http_api.h - plain HTTP requests: GET /healthz, GET /metrics,
 * POST /api/publish, and static files from web_root for everything else.
 */
#ifndef WSB_BROKER_HTTP_API_H
#define WSB_BROKER_HTTP_API_H

#include "wsb/http.h"

#include <jansson.h>
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

/* The JSON response `body` (taken over) with `status`; `extra_headers`
 * (may be NULL) are whole header lines. */
void http_api_respond_json(conn_t *c, int status, json_t *body, bool keep_alive,
                           const char *extra_headers);

/* The admin API (admin_api.h): the response waits for the workers' parts;
 * a close meanwhile detaches `wait` (http_api_cancel). */
struct admin_wait_s;
void http_api_defer_admin(conn_t *c, struct admin_wait_s *wait);

/* The deferred admin response: sends it and reads on (conn_http_resume). */
void http_api_admin_respond(conn_t *c, int status, json_t *body, bool keep_alive);

#endif
