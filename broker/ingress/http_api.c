/* http_api.c - /healthz, /metrics, /api/publish and static files (see http_api.h). */
#include "ingress/http_api.h"

#include "app/broker.h"
#include "app/worker.h"
#include "cluster/bridge_redis.h"
#include "cluster/history_redis.h"
#include "core/apikey.h"
#include "core/presence.h"
#include "core/pubsub.h"
#include "ingress/static_files.h"
#include "net/conn.h"
#include "shared/metrics.h"
#include "shared/util.h"
#include "wsb/http.h"
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

/* A worker is alive when its loop ran its heartbeat timer recently: a stuck
 * loop (a busy-looping bug, a blocking call) stops beating. */
#define HEARTBEAT_STALE_MS 5000

static void healthz(conn_t *c, bool keep_alive)
{
    broker_t *b = c->server->broker;
    uint64_t now_ms = broker_uptime_ns(b) / 1000000;
    json_t *workers = json_array();
    uint64_t conns = 0, ws = 0;
    bool all_alive = true;
    for (unsigned i = 0; i < b->nworkers; i++) {
        metrics_t *m = &b->workers[i]->metrics;
        uint64_t beat = METRIC_GET(m->heartbeat_ms);
        bool alive = now_ms < beat + HEARTBEAT_STALE_MS;
        all_alive = all_alive && alive;
        conns += METRIC_GET(m->connections);
        ws += METRIC_GET(m->ws_connections);
        json_array_append_new(workers,
                              json_pack("{s:I,s:b,s:I}", "id", (json_int_t)i, "alive", alive,
                                        "connections", (json_int_t)METRIC_GET(m->connections)));
    }
    /* A Redis outage degrades the node (no cross-node delivery) but local
     * service goes on: still 200. A stuck worker is 503. */
    bool redis_ok = b->bridge == NULL || bridge_healthy(b->bridge);
    json_t *body = json_pack(
        "{s:s,s:s,s:s,s:f,s:I,s:I,s:o,s:s}", "status", all_alive && redis_ok ? "ok" : "degraded",
        "node_id", b->node_id, "version", WSB_VERSION, "uptime_s", (double)now_ms / 1000.0,
        "connections", (json_int_t)conns, "websocket_connections", (json_int_t)ws, "workers",
        workers, "redis", b->bridge == NULL ? "off" : (redis_ok ? "ok" : "degraded"));
    respond_json(c, all_alive ? 200 : 503, body, keep_alive, "Cache-Control: no-store\r\n");
}

static void metrics(conn_t *c, bool keep_alive)
{
    worker_t *s = c->server;
    broker_t *b = s->broker;
    worker_update_gauges(s); /* our own gauges, current to this turn */
    metrics_gauges_t g = {
        .topics = seqtab_count(b->seqtab),
        .uptime_seconds = (double)broker_uptime_ns(b) / 1e9,
        .workers = b->nworkers,
    };
    metrics_t **all = xcalloc(b->nworkers, sizeof(metrics_t *));
    for (unsigned i = 0; i < b->nworkers; i++) {
        all[i] = &b->workers[i]->metrics;
    }
    sbuf_t out;
    sbuf_init(&out);
    metrics_render(all, b->nworkers, &g, &out);
    seqtab_render_metrics(b->seqtab, &out);
    if (b->presence != NULL) {
        presence_render_metrics(b->presence, &out);
    }
    if (b->bridge != NULL) {
        bridge_render_metrics(b->bridge, &out);
    }
    free(all);
    conn_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", out.p, out.len,
                      keep_alive, NULL);
    sbuf_free(&out);
}

/* A POST /api/publish with elements on clustered-history topics
 * (session_cluster.h): their seqs come from Redis, so the response waits
 * (conn_http_defer) until every op submitted for it came back. Each op's
 * `id` is its element's index in `results` (HTTP requests have no id of
 * their own). Owner: the connection (c->http_pub), freed by finish() or,
 * when the connection closes first, by http_api_cancel(), which leaves the
 * ops still out ownerless (cluster_drain frees them). */
typedef struct http_pub_s {
    conn_t *conn;
    json_t *results; /* one result per element; JSON null while its op is out */
    bool array;      /* the body was an array: {"results":[…]}; else results[0] alone */
    bool keep_alive;
    size_t pending; /* ops not back yet */
    size_t nops;
    hr_op_t *ops[]; /* by element index; NULL when back or not clustered */
} http_pub_t;

static void http_pub_done(hr_op_t *op);

#define UNAVAILABLE_MESSAGE                                                                        \
    "the topic keeps clustered history and Redis is unavailable: not published"

/* Publishes element `index` (of `n`), a {"topic":…,"data":…} object;
 * returns the result object: {"seq":N} or {"error":{…}}, or NULL when its
 * seq comes from Redis later (clustered history: *pub then holds its op).
 * How many subscribers it reached is not known here: other workers deliver
 * it in their own time. */
static json_t *publish_one(conn_t *c, json_t *item, const apikey_t *key, http_pub_t **pub,
                           size_t index, size_t n)
{
    if (!json_is_object(item)) {
        return error_object(WSB_ERR_BAD_JSON, "each message must be a JSON object");
    }
    json_t *topic = json_object_get(item, "topic");
    json_t *data = json_object_get(item, "data");
    if (topic == NULL) {
        return error_object(WSB_ERR_MISSING_FIELD, "\"topic\" is required");
    }
    if (!json_is_string(topic)) {
        return error_object(WSB_ERR_BAD_FIELD, "\"topic\" must be a string");
    }
    if (data == NULL) {
        return error_object(WSB_ERR_MISSING_FIELD, "\"data\" is required (null is allowed)");
    }
    const char *name = json_string_value(topic);
    size_t len = json_string_length(topic);
    const char *why = NULL;
    if (wsb_topic_check(name, len, WSB_TOPIC_EXACT, &why) != 0) {
        char msg[160];
        (void)snprintf(msg, sizeof(msg), "invalid topic: %s", why);
        return error_object(WSB_ERR_BAD_TOPIC, msg);
    }
    if (wsb_topic_is_reserved(name, len)) {
        return error_object(WSB_ERR_FORBIDDEN, "topics starting with '$' are reserved");
    }
    pubsub_publish_t preq = {
        .topic = {name, len},
        .data = data,
        .ingress = PUBSUB_HTTP,
        .key = key,
        .from_user = apikey_name(key),
        .owner = c, /* the op's result goes to c->http_pub (http_pub_done) */
        .done_cb = http_pub_done,
        .id = (int64_t)index,
    };
    pubsub_published_t out;
    switch (pubsub_publish(c->server, &preq, &out)) {
    case PUBSUB_OK:
        if (out.pause) {
            conn_pause_publisher(c);
        }
        return json_pack("{s:I}", "seq", (json_int_t)out.seq);
    case PUBSUB_PENDING:
        if (*pub == NULL) {
            *pub = xcalloc(1, sizeof(http_pub_t) + n * sizeof(hr_op_t *));
            (*pub)->conn = c;
            (*pub)->nops = n;
        }
        (*pub)->ops[index] = out.op;
        (*pub)->pending++;
        return NULL;
    case PUBSUB_FORBIDDEN:
        return error_object(WSB_ERR_FORBIDDEN, "this API key may not publish to this topic");
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

/* The API key of a request: "Authorization: Bearer KEY" or "X-API-Key: KEY". */
static wsb_str_t request_api_key(const wsb_http_request_t *req)
{
    wsb_str_t h = wsb_http_request_header(req, "X-API-Key");
    if (h.p != NULL) {
        return h;
    }
    h = wsb_http_request_header(req, "Authorization");
    if (h.p != NULL && h.len > 7 && strncasecmp(h.p, "Bearer ", 7) == 0) {
        return (wsb_str_t){h.p + 7, h.len - 7};
    }
    return WSB_STR_NULL;
}

/* The API key a request must carry when keys are configured (or auth is
 * required): *key gets its entry (NULL when none is needed). False after
 * answering 401. */
static bool request_key(conn_t *c, const wsb_http_request_t *req, bool keep_alive,
                        const apikey_t **key)
{
    const config_t *cfg = c->server->cfg;
    *key = NULL;
    if (cfg->napikeys == 0 && !cfg->auth_required) {
        return true;
    }
    wsb_str_t presented = request_api_key(req);
    *key = apikey_lookup(cfg->apikeys, cfg->napikeys, presented.p, presented.len);
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
static void http_pub_done(hr_op_t *op)
{
    conn_t *c = op->owner;
    http_pub_t *p = c->http_pub;
    size_t i = (size_t)op->id;
    p->ops[i] = NULL;
    json_t *result = op->status == 0 ? json_pack("{s:I}", "seq", (json_int_t)op->seq)
                                     : error_object(WSB_ERR_UNAVAILABLE, UNAVAILABLE_MESSAGE);
    json_array_set_new(p->results, i, result);
    hr_op_free(op);
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
    for (size_t i = 0; i < p->nops; i++) {
        if (p->ops[i] != NULL) {
            p->ops[i]->owner = NULL; /* freed when it comes back (cluster_drain) */
        }
    }
    json_decref(p->results);
    free(p);
}

static void publish(conn_t *c, const wsb_http_request_t *req, bool keep_alive)
{
    const apikey_t *key = NULL;
    if (!request_key(c, req, keep_alive, &key)) {
        return;
    }
    if (!publish_content_type_ok(req)) {
        respond_error(c, 415, "unsupported_media_type", "Content-Type must be application/json",
                      keep_alive, NULL);
        return;
    }
    wsb_str_t body = wsb_http_request_body(req);
    json_error_t jerr;
    /* The same parser flags as the WebSocket path (protocol/message.c), so a
     * payload means the same thing whichever way it is published. */
    json_t *root =
        json_loadb(body.p ? body.p : "", body.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        char msg[200];
        (void)snprintf(msg, sizeof(msg), "invalid JSON at line %d column %d: %s", jerr.line,
                       jerr.column, jerr.text);
        respond_error(c, 400, WSB_ERR_BAD_JSON, msg, keep_alive, NULL);
        return;
    }
    /* A single object is handled as an array of one, answered without the
     * array around it. */
    bool array = json_is_array(root);
    size_t n = array ? json_array_size(root) : 1;
    json_t *results = json_array();
    http_pub_t *pub = NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *result = publish_one(c, array ? json_array_get(root, i) : root, key, &pub, i, n);
        json_array_append_new(results, result != NULL ? result : json_null());
    }
    json_decref(root);
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

/* GET /api/presence?topic=T: the members of T on this node and their counts. */
static void presence(conn_t *c, const wsb_http_request_t *req, bool keep_alive)
{
    const apikey_t *key = NULL;
    if (!request_key(c, req, keep_alive, &key)) {
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
    switch (pubsub_presence_check(c->server, t, NULL, key)) {
    case PUBSUB_OK:
        respond_json(c, 200,
                     presence_json(c->server->broker->presence, NULL, false, 0, t, true, true),
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
    if (path.p == NULL || !wsb_str_eq(path, "/api/publish")) {
        return false;
    }
    char msg[128];
    (void)snprintf(msg, sizeof(msg), "request body larger than max_http_body (%llu bytes)",
                   (unsigned long long)c->server->cfg->max_http_body);
    /* Not kept alive: the rest of the body is still on its way. */
    respond_error(c, 413, WSB_ERR_TOO_LARGE, msg, false, NULL);
    return true;
}

void http_api_handle(conn_t *c, const wsb_http_request_t *req)
{
    worker_t *s = c->server;
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
    if (s->broker->web_root == NULL) {
        conn_http_respond(c, 404, "text/plain", "not found\n", 10, keep_alive, NULL);
        return;
    }
    static_serve(c, s->broker->web_root, url, head, keep_alive);
}
