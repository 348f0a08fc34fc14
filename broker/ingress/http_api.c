/* http_api.c - /healthz, /metrics, /api/publish and static files (see http_api.h). */
#include "ingress/http_api.h"

#include "core/apikey.h"
#include "core/chist.h"
#include "core/presence.h"
#include "core/pubsub.h"
#include "core/request.h"
#include "ingress/admin_api.h"
#include "ingress/auth_key.h"
#include "ingress/ingress.h"
#include "ingress/sse_session.h"
#include "ingress/static_files.h"
#include "net/conn.h"
#include "shared/metrics.h"
#include "shared/util.h"
#include "wsb/http.h"
#include "wsb/json_scan.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JSON_TYPE "application/json"

static void respond_json(conn_t *c, int status, json_t *body, bool keep_alive,
                         const char *extra_headers)
{
    /* 15 significant digits, not jansson's round-trip 17: a value rounded to
     * milliseconds (uptime_s) prints as 46.568, not 46.567999999999998. */
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(body);
    if (text == NULL) {
        conn_http_respond(c, 500, "text/plain", "internal error\n", 15, false, NULL);
        return;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: curl users see a clean prompt */
    conn_http_respond(c, status, JSON_TYPE, text, len + 1, keep_alive, extra_headers);
    free(text);
}

static json_t *error_object(const char *code, const char *message)
{
    return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

static void respond_error(conn_t *c, int status, const char *code, const char *message,
                          bool keep_alive, const char *extra_headers)
{
    respond_json(c, status, error_object(code, message), keep_alive, extra_headers);
}

static void healthz(conn_t *c, bool keep_alive)
{
    ingress_ctx_t *ctx = ingress_ctx(c);
    int status = 200;
    json_t *body = ctx->ops->healthz_cb(ctx, &status);
    respond_json(c, status, body, keep_alive, "Cache-Control: no-store\r\n");
}

static void metrics(conn_t *c, bool keep_alive)
{
    ingress_ctx_t *ctx = ingress_ctx(c);
    sbuf_t out;
    sbuf_init(&out);
    ctx->ops->metrics_cb(ctx, &out);
    conn_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", out.p, out.len,
                      keep_alive, NULL);
    sbuf_free(&out);
}

/* A POST /api/publish with elements on clustered-history topics
 * (chist_session.h): their seqs come from Redis, so the response waits
 * (conn_http_defer) until every op submitted for it came back. Each op's
 * `id` is its element's index in `results` (HTTP requests have no id of
 * their own). Owner: the connection (c->http_pub), freed by finish() or,
 * when the connection closes first, by http_api_cancel(), which leaves the
 * ops still out ownerless (chist_drain frees them). */
typedef struct http_pub_s {
    conn_t *conn;
    json_t *results; /* one result per element; JSON null while its op is out */
    bool array;      /* the body was an array: {"results":[…]}; else results[0] alone */
    bool keep_alive;
    size_t pending; /* ops not back yet */
    /* POST /api/request (request.h): its one request, and its answer when
     * that came before the response was deferred. */
    bool request;
    bool deferred;
    request_list_t requests;
    int status;
    json_t *answer;
    /* An admin API query running on the workers (admin_api.h). */
    struct admin_wait_s *admin;
    size_t nops;
    chist_op_t *ops[]; /* by element index; NULL when back or not clustered */
} http_pub_t;

static void http_pub_done(chist_op_t *op);

#define UNAVAILABLE_MESSAGE                                                                        \
    "the topic is numbered in Redis (clustered history or stream) and Redis is unavailable: not "  \
    "published"

/* The members of a publish or request item (index = the HI_ constant). */
enum { HI_TOPIC, HI_DATA, HI_TIMEOUT, HI_COUNT };
static const char *const item_names[HI_COUNT] = {"topic", "data", "timeout_ms"};

/* Checks a {"topic":…,"data":…} object (scanned: protocol/json_scan.h):
 * NULL with *topic_out set (decoded into *topic_buf, which the caller frees,
 * when it has escapes), or the error object. */
static json_t *check_item(wsb_json_value_t item, const wsb_json_value_t *m, wsb_str_t *topic_out,
                          char **topic_buf)
{
    if (item.kind != WSB_JSON_OBJECT) {
        return error_object(WSB_ERR_BAD_JSON, "each message must be a JSON object");
    }
    if (m[HI_TOPIC].kind == WSB_JSON_NONE) {
        return error_object(WSB_ERR_MISSING_FIELD, "\"topic\" is required");
    }
    if (m[HI_TOPIC].kind != WSB_JSON_STRING) {
        return error_object(WSB_ERR_BAD_FIELD, "\"topic\" must be a string");
    }
    if (m[HI_DATA].kind == WSB_JSON_NONE) {
        return error_object(WSB_ERR_MISSING_FIELD, "\"data\" is required (null is allowed)");
    }
    *topic_buf = m[HI_TOPIC].escaped ? xmalloc(m[HI_TOPIC].raw.len) : NULL;
    wsb_str_t topic = wsb_json_string(m[HI_TOPIC], *topic_buf);
    const char *why = NULL;
    if (wsb_topic_check(topic.p, topic.len, WSB_TOPIC_EXACT, &why) != 0) {
        char msg[160];
        (void)snprintf(msg, sizeof(msg), "invalid topic: %s", why);
        return error_object(WSB_ERR_BAD_TOPIC, msg);
    }
    if (wsb_topic_is_reserved(topic.p, topic.len)) {
        return error_object(WSB_ERR_FORBIDDEN, "topics starting with '$' are reserved");
    }
    *topic_out = topic;
    return NULL;
}

/* A publish authorized by a JWT (the SSE fallback's publishing path): the
 * token's publish grants, and its sub as the publisher's user. */
typedef struct {
    wsb_jwt_claims_t claims;
    perms_t perms;
} jwt_pub_t;

/* Publishes element `index` (of `n`), a {"topic":…,"data":…} object
 * (scanned); returns the result object: {"seq":N} or {"error":{…}}, or NULL
 * when its seq comes from Redis later (clustered history: *pub then holds
 * its op). How many subscribers it reached is not known here: other workers
 * deliver it in their own time. `data` goes out as the bytes it came in. */
static json_t *publish_one(conn_t *c, wsb_json_value_t item, const apikey_t *key,
                           const jwt_pub_t *jwt, http_pub_t **pub, size_t index, size_t n)
{
    wsb_json_value_t m[HI_COUNT];
    wsb_json_members(item, item_names, HI_COUNT, m);
    wsb_str_t topic;
    char *topic_buf = NULL;
    json_t *bad = check_item(item, m, &topic, &topic_buf);
    if (bad != NULL) {
        free(topic_buf);
        return bad;
    }
    pubsub_publish_t preq = {
        .topic = topic,
        .data_json = m[HI_DATA].raw,
        .ingress = PUBSUB_HTTP,
        .key = key,
        .perms = jwt != NULL ? &jwt->perms : NULL,
        .from_user = jwt != NULL ? jwt->claims.sub : apikey_name(key),
        .owner = c, /* the op's result goes to c->http_pub (http_pub_done) */
        .done_cb = http_pub_done,
        .id = (int64_t)index,
    };
    pubsub_published_t out;
    pubsub_status_t st = pubsub_publish(ingress_ctx(c)->core, &preq, &out);
    free(topic_buf); /* pubsub_publish copied what it keeps */
    switch (st) {
    case PUBSUB_OK:
        if (out.pause) {
            conn_pause_publisher(c);
        }
        return json_pack("{s:I}", "seq", (json_int_t)out.seq);
    case PUBSUB_PENDING:
        if (*pub == NULL) {
            *pub = xcalloc(1, sizeof(http_pub_t) + n * sizeof(chist_op_t *));
            (*pub)->conn = c;
            (*pub)->nops = n;
        }
        (*pub)->ops[index] = out.op;
        (*pub)->pending++;
        return NULL;
    case PUBSUB_FORBIDDEN:
        return error_object(WSB_ERR_FORBIDDEN, jwt != NULL
                                                   ? "this token may not publish to this topic"
                                                   : "this API key may not publish to this topic");
    default:
        return error_object(WSB_ERR_UNAVAILABLE, UNAVAILABLE_MESSAGE);
    }
}

/* True when the media type of Content-Type `ct` is `want` (any case),
 * parameters such as "; charset=utf-8" allowed. */
static bool content_type_is(wsb_str_t ct, const char *want)
{
    size_t n = strlen(want);
    if (ct.p == NULL || ct.len < n || strncasecmp(ct.p, want, n) != 0) {
        return false;
    }
    return ct.len == n || ct.p[n] == ';' || ct.p[n] == ' ';
}

/* The publish body is JSON whatever the type says, but only these types
 * are accepted. application/json always. application/x-www-form-urlencoded
 * is what `curl -d` sends unless told otherwise, so it is accepted from a
 * client that is not a browser (no Origin header): the one-line curl of the
 * README works. A browser sends Origin with every POST, and that type is one
 * a page of another site may send without a CORS preflight, so from a
 * browser it stays 415, as text/plain and multipart/form-data do. */
static bool publish_content_type_ok(const wsb_http_request_t *req)
{
    wsb_str_t ct = wsb_http_request_header(req, "Content-Type");
    if (content_type_is(ct, "application/json")) {
        return true;
    }
    return content_type_is(ct, "application/x-www-form-urlencoded") &&
           wsb_http_request_header(req, "Origin").p == NULL;
}

/* The API key a request must carry when keys are configured (or auth is
 * required): *key gets its entry (NULL when none is needed). False after
 * answering 401. */
static bool request_key(conn_t *c, const wsb_http_request_t *req, bool keep_alive,
                        const apikey_t **key)
{
    ingress_ctx_t *ctx = ingress_ctx(c);
    const auth_config_t *acfg = &ctx->auth->cfg;
    *key = NULL;
    if (acfg->napikeys == 0 && !ctx->cfg->auth_required) {
        return true;
    }
    wsb_str_t presented = auth_request_key(req);
    *key = apikey_lookup(acfg->apikeys, acfg->napikeys, presented.p, presented.len);
    if (*key == NULL) {
        respond_error(c, 401, "unauthorized",
                      presented.p == NULL
                          ? "an API key is required (Authorization: Bearer KEY or X-API-Key)"
                          : "unknown API key",
                      keep_alive, "WWW-Authenticate: Bearer\r\n");
        return false;
    }
    return true;
}

/* Sends the response of a publish: {"results":[…]} for an array body, else
 * the one result with its status (400, 403 forbidden, 503 unavailable). */
static void respond_results(conn_t *c, json_t *results, bool array, bool keep_alive)
{
    if (array) {
        respond_json(c, 200, json_pack("{s:o}", "results", results), keep_alive, NULL);
        return;
    }
    json_t *result = json_incref(json_array_get(results, 0));
    json_decref(results);
    int status = 200;
    json_t *error = json_object_get(result, "error");
    if (error != NULL) {
        const char *code = json_string_value(json_object_get(error, "code"));
        status = 400;
        if (strcmp(code, WSB_ERR_FORBIDDEN) == 0) {
            status = 403;
        } else if (strcmp(code, WSB_ERR_UNAVAILABLE) == 0) {
            status = 503;
        }
    }
    respond_json(c, status, result, keep_alive, NULL);
}

/* Every op of `p` is back: the response goes out, then the requests held
 * behind it are read (conn_http_resume). */
static void finish(http_pub_t *p)
{
    conn_t *c = p->conn;
    c->http_pub = NULL;
    json_t *results = p->results;
    bool array = p->array;
    bool keep_alive = p->keep_alive;
    free(p);
    respond_results(c, results, array, keep_alive);
    conn_http_resume(c);
}

/* Worker thread: an op of a deferred publish came back (its connection is
 * still there, see http_api_cancel). */
static void http_pub_done(chist_op_t *op)
{
    conn_t *c = op->owner;
    http_pub_t *p = c->http_pub;
    size_t i = (size_t)op->id;
    p->ops[i] = NULL;
    json_t *result = op->status == 0 ? json_pack("{s:I}", "seq", (json_int_t)op->seq)
                                     : error_object(WSB_ERR_UNAVAILABLE, UNAVAILABLE_MESSAGE);
    json_array_set_new(p->results, i, result);
    chist_op_free(op);
    if (--p->pending == 0) {
        finish(p);
    }
}

void http_api_cancel(conn_t *c)
{
    http_pub_t *p = c->http_pub;
    if (p == NULL) {
        return;
    }
    c->http_pub = NULL;
    if (p->admin != NULL) {
        admin_api_detach(p->admin); /* admin_api_finish frees it */
    }
    if (p->request) {
        request_cancel_all(&p->requests);
    }
    for (size_t i = 0; i < p->nops; i++) {
        if (p->ops[i] != NULL) {
            p->ops[i]->owner = NULL; /* freed when it comes back (chist_drain) */
        }
    }
    json_decref(p->results);
    free(p);
}

/* The JSON body of a POST /api/publish or /api/request after its key and
 * media type were checked and the body scanned (an object or an array:
 * *root, borrowing from the request), or false after answering. */
static bool post_body(conn_t *c, const wsb_http_request_t *req, bool keep_alive,
                      const apikey_t **key, bool authorized, wsb_json_value_t *root)
{
    if (!authorized && !request_key(c, req, keep_alive, key)) {
        return false;
    }
    if (!publish_content_type_ok(req)) {
        respond_error(c, 415, "unsupported_media_type", "Content-Type must be application/json",
                      keep_alive, NULL);
        return false;
    }
    wsb_str_t body = wsb_http_request_body(req);
    wsb_json_error_t jerr;
    /* The same rules as the WebSocket path (protocol/message.c), so a
     * payload means the same thing whichever way it is published. */
    int rc = wsb_json_scan(body.p, body.len, 0, NULL, 0, NULL, root, &jerr);
    if (rc == WSB_ENOMEM) {
        wsb_oom("publish body");
    }
    if (rc != 0) {
        char msg[200];
        (void)snprintf(msg, sizeof(msg), "invalid JSON at byte %zu: %s", jerr.offset, jerr.reason);
        respond_error(c, 400, WSB_ERR_BAD_JSON, msg, keep_alive, NULL);
        return false;
    }
    return true;
}

/* "Authorization: Bearer" with a JWT instead of an API key (auth.jwt_* set,
 * and the value is no API key): 1 with *out filled (the caller frees its
 * claims), 0 when the request carries none (API keys apply), -1 after
 * answering 401 for a token that does not verify. */
static int bearer_jwt(conn_t *c, const wsb_http_request_t *req, bool keep_alive, jwt_pub_t *out)
{
    ingress_ctx_t *ctx = ingress_ctx(c);
    const auth_config_t *acfg = &ctx->auth->cfg;
    wsb_str_t h = wsb_http_request_header(req, "Authorization");
    if (ctx->auth->jwt == NULL || h.p == NULL || h.len <= 7 ||
        strncasecmp(h.p, "Bearer ", 7) != 0 ||
        apikey_lookup(acfg->apikeys, acfg->napikeys, h.p + 7, h.len - 7) != NULL ||
        memchr(h.p + 7, '.', h.len - 7) == NULL) {
        return 0; /* not a JWT (they have dots; API keys are looked up as before) */
    }
    const char *why = "";
    if (auth_verify(ctx->auth, h.p + 7, h.len - 7, &out->claims, &why) != 0) {
        respond_error(c, 401, "unauthorized",
                      auth_why_expired(why) ? "token expired" : "invalid token", keep_alive,
                      "WWW-Authenticate: Bearer\r\n");
        return -1;
    }
    wsb_jwt_claims_t *cl = &out->claims;
    out->perms = (perms_t){cl->subscribe, cl->nsubscribe, cl->publish, cl->npublish};
    return 1;
}

static void publish(conn_t *c, const wsb_http_request_t *req, bool keep_alive)
{
    const apikey_t *key = NULL;
    jwt_pub_t jwt;
    int j = bearer_jwt(c, req, keep_alive, &jwt);
    if (j < 0) {
        return;
    }
    wsb_json_value_t root;
    if (!post_body(c, req, keep_alive, &key, j == 1, &root)) {
        if (j == 1) {
            wsb_jwt_claims_free(&jwt.claims);
        }
        return;
    }
    /* A single object is handled as an array of one, answered without the
     * array around it. */
    bool array = root.kind == WSB_JSON_ARRAY;
    size_t n = 1;
    if (array) {
        wsb_json_iter_t it;
        wsb_json_value_t item;
        wsb_json_iter_init(&it, root);
        for (n = 0; wsb_json_iter_next(&it, NULL, &item); n++) {
        }
    }
    json_t *results = json_array();
    http_pub_t *pub = NULL;
    wsb_json_iter_t it;
    wsb_json_iter_init(&it, root);
    for (size_t i = 0; i < n; i++) {
        wsb_json_value_t item = root;
        if (array) {
            (void)wsb_json_iter_next(&it, NULL, &item);
        }
        json_t *result = publish_one(c, item, key, j == 1 ? &jwt : NULL, &pub, i, n);
        json_array_append_new(results, result != NULL ? result : json_null());
    }
    if (j == 1) {
        wsb_jwt_claims_free(&jwt.claims); /* pubsub_publish copied what it keeps */
    }
    if (pub == NULL) {
        respond_results(c, results, array, keep_alive);
        return;
    }
    pub->results = results;
    pub->array = array;
    pub->keep_alive = keep_alive;
    c->http_pub = pub;
    conn_http_defer(c);
}

/* The admin API's response waits for the workers (admin_api.h). */
static void defer_admin(conn_t *c, struct admin_wait_s *wait)
{
    http_pub_t *p = xcalloc(1, sizeof(*p));
    p->conn = c;
    p->admin = wait;
    c->http_pub = p;
    conn_http_defer(c);
}

/* The deferred admin response: sent, then the connection reads on. */
static void admin_respond(conn_t *c, int status, json_t *body, bool keep_alive)
{
    free(c->http_pub);
    c->http_pub = NULL;
    respond_json(c, status, body, keep_alive, "Cache-Control: no-store\r\n");
    conn_http_resume(c);
}

/* ---- POST /api/request (request/reply) ------------------------------------------------------ */

/* The request ended: 200 {"data","from"}, 404 no_responders or 504 timeout. */
static void http_request_done(void *owner, const request_done_t *d)
{
    http_pub_t *p = owner;
    if (d->outcome == REQUEST_REPLY) {
        p->status = 200;
        p->answer = json_pack("{s:O,s:O}", "data", d->data != NULL ? d->data : json_null(), "from",
                              d->from != NULL ? d->from : json_null());
    } else if (d->outcome == REQUEST_NO_RESPONDERS) {
        p->status = 404;
        p->answer = error_object(WSB_ERR_NO_RESPONDERS, "no subscriber of the topic exists");
    } else {
        p->status = 504;
        p->answer = error_object(WSB_ERR_TIMEOUT, "no reply within timeout_ms");
    }
    if (p->answer == NULL) {
        wsb_oom("request answer");
    }
    if (!p->deferred) {
        return; /* answered at once: http_request() responds */
    }
    conn_t *c = p->conn;
    c->http_pub = NULL;
    respond_json(c, p->status, p->answer, p->keep_alive, NULL);
    free(p);
    conn_http_resume(c);
}

/* The error of a request that did not start, as (status, body). */
static json_t *request_refused(pubsub_status_t st, int *status)
{
    if (st == PUBSUB_FORBIDDEN) {
        *status = 403;
        return error_object(WSB_ERR_FORBIDDEN,
                            "this API key may not publish to this topic, or it is an inbox");
    }
    *status = 503;
    return error_object(WSB_ERR_UNAVAILABLE,
                        "requests are not supported on topics that keep clustered history");
}

static void http_request(conn_t *c, const wsb_http_request_t *req, bool keep_alive)
{
    const apikey_t *key = NULL;
    wsb_json_value_t root;
    if (!post_body(c, req, keep_alive, &key, false, &root)) {
        return;
    }
    wsb_json_value_t m[HI_COUNT];
    wsb_json_members(root, item_names, HI_COUNT, m);
    wsb_str_t topic;
    char *topic_buf = NULL;
    json_t *bad = check_item(root, m, &topic, &topic_buf);
    wsb_json_value_t t = m[HI_TIMEOUT];
    if (bad == NULL && t.kind != WSB_JSON_NONE &&
        (t.kind != WSB_JSON_INTEGER || wsb_json_integer(t) < 1 ||
         wsb_json_integer(t) > WSB_REQUEST_TIMEOUT_MAX_MS)) {
        bad = error_object(WSB_ERR_BAD_FIELD, "\"timeout_ms\" must be an integer from 1 to 60000");
    }
    if (bad != NULL) {
        free(topic_buf);
        respond_json(c, 400, bad, keep_alive, NULL);
        return;
    }
    http_pub_t *p = xcalloc(1, sizeof(*p));
    p->conn = c;
    p->keep_alive = keep_alive;
    p->request = true;
    request_args_t a = {
        .pub = {.topic = topic,
                .data_json = m[HI_DATA].raw,
                .ingress = PUBSUB_HTTP,
                .key = key,
                .from_user = apikey_name(key)},
        .timeout_ms = t.kind != WSB_JSON_NONE ? (uint32_t)wsb_json_integer(t)
                                              : WSB_REQUEST_TIMEOUT_DEFAULT_MS,
        .list = &p->requests,
        .owner = p,
        .done_cb = http_request_done,
    };
    bool pause = false;
    pubsub_status_t st = request_start(ingress_ctx(c)->core, &a, &pause);
    free(topic_buf); /* request_start copied what it keeps */
    if (pause) {
        conn_pause_publisher(c);
    }
    if (st != PUBSUB_OK || p->answer != NULL) {
        int status = p->status;
        json_t *answer = st != PUBSUB_OK ? request_refused(st, &status) : p->answer;
        free(p);
        respond_json(c, status, answer, keep_alive, NULL);
        return;
    }
    p->deferred = true;
    c->http_pub = p;
    conn_http_defer(c);
}

/* GET /api/presence?topic=T: the members of T and their counts. An API key
 * reads the topics it may publish to; an admin credential reads any. */
static void presence(conn_t *c, const wsb_http_request_t *req, bool keep_alive)
{
    const apikey_t *key = NULL;
    if (!admin_api_is_admin(c, req) && !request_key(c, req, keep_alive, &key)) {
        return;
    }
    char topic[WSB_TOPIC_MAX_LEN + 1];
    int len = wsb_http_query_param(wsb_http_request_url(req), "topic", topic, sizeof topic);
    const char *why = "the query parameter topic is required";
    if (len >= 0 && wsb_topic_check(topic, (size_t)len, WSB_TOPIC_EXACT, &why) != 0) {
        len = -1;
    } else if (len == WSB_EINVAL || len == WSB_ENOSPC) {
        why = "topic: a malformed escape, or longer than 256 bytes";
    }
    if (len < 0) {
        respond_error(c, 400, WSB_ERR_BAD_TOPIC, why, keep_alive, NULL);
        return;
    }
    wsb_str_t t = {topic, (size_t)len};
    core_worker_t *core = ingress_ctx(c)->core;
    switch (pubsub_presence_check(core, t, NULL, key)) {
    case PUBSUB_OK:
        respond_json(c, 200, presence_json(core->core->presence, NULL, false, 0, t, true, true),
                     keep_alive, NULL);
        return;
    case PUBSUB_FORBIDDEN:
        respond_error(c, 403, WSB_ERR_FORBIDDEN, "this API key does not cover the topic",
                      keep_alive, NULL);
        return;
    default:
        respond_error(c, 404, WSB_ERR_NOT_AVAILABLE,
                      "presence is off for this topic: no topics rule with \"presence\":true "
                      "matches it",
                      keep_alive, NULL);
        return;
    }
}

static bool method_is(wsb_str_t m, const char *name)
{
    return wsb_str_eq(m, name);
}

/* The request target without its query string. */
static wsb_str_t request_path(const wsb_http_request_t *req)
{
    wsb_str_t url = wsb_http_request_url(req);
    const char *q = url.p != NULL ? memchr(url.p, '?', url.len) : NULL;
    return (wsb_str_t){url.p, q ? (size_t)(q - url.p) : url.len};
}

bool http_api_body_too_large(conn_t *c, const wsb_http_request_t *req)
{
    wsb_str_t path = request_path(req);
    if (path.p == NULL ||
        (!wsb_str_eq(path, "/api/publish") && !wsb_str_eq(path, "/api/request"))) {
        return false;
    }
    char msg[128];
    (void)snprintf(msg, sizeof(msg), "request body larger than max_http_body (%llu bytes)",
                   (unsigned long long)ingress_ctx(c)->cfg->max_http_body);
    /* Not kept alive: the rest of the body is still on its way. */
    respond_error(c, 413, WSB_ERR_TOO_LARGE, msg, false, NULL);
    return true;
}

void http_api_handle(conn_t *c, const wsb_http_request_t *req)
{
    ingress_ctx_t *ctx = ingress_ctx(c);
    bool keep_alive = wsb_http_request_keep_alive(req);
    wsb_str_t method = wsb_http_request_method(req);
    wsb_str_t url = wsb_http_request_url(req);
    wsb_str_t path = request_path(req);
    bool get = method_is(method, "GET");
    bool head = method_is(method, "HEAD");

    if (wsb_str_eq(path, "/healthz") || wsb_str_eq(path, "/metrics")) {
        if (!get && !head) {
            respond_error(c, 405, "method_not_allowed", "use GET", keep_alive,
                          "Allow: GET, HEAD\r\n");
        } else if (wsb_str_eq(path, "/healthz")) {
            healthz(c, keep_alive);
        } else {
            metrics(c, keep_alive);
        }
        return;
    }
    if (wsb_str_eq(path, "/api/publish")) {
        if (!method_is(method, "POST")) {
            respond_error(c, 405, "method_not_allowed", "use POST", keep_alive, "Allow: POST\r\n");
        } else {
            publish(c, req, keep_alive);
        }
        return;
    }
    if (wsb_str_eq(path, "/api/request")) {
        if (!method_is(method, "POST")) {
            respond_error(c, 405, "method_not_allowed", "use POST", keep_alive, "Allow: POST\r\n");
        } else {
            http_request(c, req, keep_alive);
        }
        return;
    }
    if (wsb_str_eq(path, "/sse")) {
        if (!get) {
            respond_error(c, 405, "method_not_allowed", "use GET", keep_alive, "Allow: GET\r\n");
        } else {
            sse_open(c, req);
        }
        return;
    }
    if (admin_api_path(path)) {
        struct admin_wait_s *wait = admin_api_handle(c, req, path, keep_alive, admin_respond);
        if (wait != NULL) {
            defer_admin(c, wait);
        }
        return;
    }
    if (wsb_str_eq(path, "/api/presence")) {
        if (!get) {
            respond_error(c, 405, "method_not_allowed", "use GET", keep_alive, "Allow: GET\r\n");
        } else {
            presence(c, req, keep_alive);
        }
        return;
    }
    if (!get && !head) {
        respond_error(c, 405, "method_not_allowed", "only GET and HEAD serve files", keep_alive,
                      "Allow: GET, HEAD\r\n");
        return;
    }
    if (ctx->web_root == NULL) {
        conn_http_respond(c, 404, "text/plain", "not found\n", 10, keep_alive, NULL);
        return;
    }
    static_serve(c, ctx->web_root, url, head, keep_alive);
}
