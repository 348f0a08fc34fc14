/*
 * http_api.h - plain HTTP requests: GET /healthz, GET /metrics,
 * POST /api/publish, and static files from web_root for everything else.
 */
#ifndef WSB_BROKER_HTTP_API_H
#define WSB_BROKER_HTTP_API_H

#include "wsb/http.h"

typedef struct conn_s conn_t;

/* Answers the complete request `req` on `c` (keep-alive honoured). */
void http_api_handle(conn_t *c, const wsb_http_request_t *req);

#endif
