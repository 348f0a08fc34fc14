/* admin_api.c - GET /api/topics, GET /api/connections, POST /api/disconnect
 * (see admin_api.h). */
#include "ingress/admin_api.h"

#include "core/admin_ban.h"
#include "core/apikey.h"
#include "core/seqtab.h"
#include "core/topic_rules.h"
#include "ingress/auth_key.h"
#include "ingress/ws_session.h"
#include "net/conn.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/topic.h"
#include "wsb/ws_frame.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct admin_wait_s {
    conn_t *conn; /* NULL once it closed (admin_api_detach) */
    bool keep_alive;
    admin_respond_cb respond_cb;
};

/* `body` (taken over) as the JSON response. */
static void send_json(conn_t *c, int status, json_t *body, bool keep_alive, const char *extra)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        wsb_oom("admin response");
        return; /* not reached (_Noreturn): for cppcheck, which does not know it */
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL */
    conn_http_respond(c, status, "application/json", text, len + 1, keep_alive, extra);
    free(text);
}

bool admin_api_path(wsb_str_t path)
{
    return wsb_str_eq(path, "/admin") || wsb_str_eq(path, "/api/topics") ||
           wsb_str_eq(path, "/api/connections") || wsb_str_eq(path, "/api/disconnect");
}

static void refuse(conn_t *c, int status, const char *code, const char *message, bool keep_alive,
                   const char *extra)
{
    send_json(c, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message),
              keep_alive, extra);
}

/* An admin key, or a JWT with "admin": true: 200. Otherwise 401 (no
 * credential, an unknown key, a token that does not verify) or 403 (an API
 * key, or a token without the admin claim), with *why saying which. */
static int check_credential(conn_t *c, const wsb_http_request_t *req, const char **why)
{
    auth_t *auth = ingress_ctx(c)->auth;
    const auth_config_t *acfg = &auth->cfg;
    wsb_str_t k = auth_request_key(req);
    if (k.p == NULL) {
        *why = "an admin key or a token with \"admin\": true is required (Authorization: Bearer "
               "or X-API-Key)";
        return 401;
    }
    if (apikey_lookup(acfg->adminkeys, acfg->nadminkeys, k.p, k.len) != NULL) {
        return 200;
    }
    if (apikey_lookup(acfg->apikeys, acfg->napikeys, k.p, k.len) != NULL) {
        *why = "this API key is not an admin key";
        return 403;
    }
    if (auth->jwt != NULL && memchr(k.p, '.', k.len) != NULL) {
        wsb_jwt_claims_t claims;
        const char *verr = "";
        if (auth_verify(auth, k.p, k.len, &claims, &verr) != 0) {
            *why = auth_why_expired(verr) ? "token expired" : "invalid token";
            return 401;
        }
        bool admin = claims.admin;
        wsb_jwt_claims_free(&claims);
        *why = "this token has no \"admin\": true claim";
        return admin ? 200 : 403;
    }
    *why = "unknown admin key";
    return 401;
}

bool admin_api_is_admin(conn_t *c, const wsb_http_request_t *req)
{
    const char *why = "";
    return check_credential(c, req, &why) == 200;
}

/* check_credential(), answering 401 or 403 itself: true for an admin. */
static bool authorize(conn_t *c, const wsb_http_request_t *req, bool keep_alive)
{
    const char *why = "";
    int status = check_credential(c, req, &why);
    if (status == 401) {
        refuse(c, 401, "unauthorized", why, keep_alive, "WWW-Authenticate: Bearer\r\n");
    } else if (status == 403) {
        refuse(c, 403, "forbidden", why, keep_alive, NULL);
    }
    return status == 200;
}

/* GET /admin: the dashboard (web_root's admin.html, which asks for the key
 * and sends it with every API call). A browser cannot send a Bearer header
 * when it navigates, so the page itself holds nothing: this answers a short
 * page pointing at it, 200 with an admin credential and 401 without. */
static void admin_page(conn_t *c, const wsb_http_request_t *req, bool keep_alive)
{
    static const char page[] =
        "<!doctype html><meta charset=\"utf-8\"><title>wsbroker admin</title>"
        "<meta http-equiv=\"refresh\" content=\"0; url=/admin.html\">"
        "<p>The admin dashboard is <a href=\"/admin.html\">/admin.html</a>; it asks for an "
        "admin key (admin_keys) or a token with \"admin\": true.</p>\n";
    const char *why = "";
    int status = check_credential(c, req, &why);
    conn_http_respond(c, status == 200 ? 200 : 401, "text/html; charset=utf-8", page,
                      sizeof page - 1, keep_alive, "Cache-Control: no-store\r\n");
}

/* The cursor of a page: "NODE/W.N", after connection N of worker W of
 * node NODE (node ids have no '/'). */
static bool parse_cursor(const char *s, admin_query_t *q)
{
    const char *slash = strrchr(s, '/');
    if (slash == NULL || slash == s || (size_t)(slash - s) >= sizeof q->after_node) {
        return false;
    }
    char *end = NULL;
    const char *wp = slash + 1;
    unsigned long w = strtoul(wp, &end, 10);
    if (end == wp || *end != '.' || w > 1024 || wp[0] == '-') {
        return false;
    }
    const char *n = end + 1;
    unsigned long long no = strtoull(n, &end, 10);
    if (end == n || *end != '\0' || n[0] == '-') {
        return false;
    }
    memcpy(q->after_node, s, (size_t)(slash - s));
    q->after_node[slash - s] = '\0';
    q->has_after = true;
    q->after_worker = (unsigned)w;
    q->after_no = no;
    return true;
}

static bool connections_query(conn_t *c, const wsb_http_request_t *req, bool keep_alive,
                              admin_query_t *q)
{
    wsb_str_t url = wsb_http_request_url(req);
    char buf[64];
    q->limit = ADMIN_PAGE_DEFAULT;
    int n = wsb_http_query_param(url, "limit", buf, sizeof buf);
    if (n != WSB_EAGAIN) {
        char *end = NULL;
        unsigned long v = n > 0 ? strtoul(buf, &end, 10) : 0;
        if (n <= 0 || *end != '\0' || buf[0] == '-' || v < 1 || v > ADMIN_PAGE_MAX) {
            refuse(c, 400, WSB_ERR_BAD_FIELD, "limit must be an integer from 1 to 1000", keep_alive,
                   NULL);
            return false;
        }
        q->limit = (uint32_t)v;
    }
    n = wsb_http_query_param(url, "after", buf, sizeof buf);
    if (n != WSB_EAGAIN && (n <= 0 || !parse_cursor(buf, q))) {
        refuse(c, 400, WSB_ERR_BAD_FIELD, "after must be the \"next\" of the previous page",
               keep_alive, NULL);
        return false;
    }
    return true;
}

/* POST /api/disconnect's body: {"client":ID} or {"user":U[,"ban_s":N]}. */
static bool disconnect_query(conn_t *c, const wsb_http_request_t *req, bool keep_alive,
                             admin_query_t *q)
{
    wsb_str_t ct = wsb_http_request_header(req, "Content-Type");
    if (ct.p == NULL || ct.len < 16 || strncasecmp(ct.p, "application/json", 16) != 0) {
        refuse(c, 415, "unsupported_media_type", "Content-Type must be application/json",
               keep_alive, NULL);
        return false;
    }
    wsb_str_t body = wsb_http_request_body(req);
    json_t *root = json_loadb(body.p ? body.p : "", body.len, JSON_REJECT_DUPLICATES, NULL);
    json_t *client = json_object_get(root, "client");
    json_t *user = json_object_get(root, "user");
    json_t *ban = json_object_get(root, "ban_s");
    const char *why = NULL;
    if (!json_is_object(root)) {
        why = "the body must be a JSON object";
    } else if ((client == NULL) == (user == NULL)) {
        why = "exactly one of \"client\" and \"user\" is required";
    } else if (client != NULL && (!json_is_string(client) || json_string_length(client) == 0 ||
                                  json_string_length(client) > CORE_CLIENT_ID_MAX)) {
        why = "\"client\" must be a client id (a string of 1 to 48 bytes)";
    } else if (user != NULL && (!json_is_string(user) || json_string_length(user) == 0 ||
                                json_string_length(user) > 128)) {
        why = "\"user\" must be a string of 1 to 128 bytes";
    } else if (ban != NULL &&
               (client != NULL || !json_is_integer(ban) || json_integer_value(ban) < 0 ||
                json_integer_value(ban) > (json_int_t)ADMIN_BAN_MAX_S)) {
        why = "\"ban_s\" goes with \"user\" and must be an integer from 0 to 2592000 (30 days)";
    }
    if (why == NULL) {
        q->kind = ADMIN_DISCONNECT;
        if (client != NULL) {
            memcpy(q->client, json_string_value(client), json_string_length(client) + 1);
        } else {
            memcpy(q->user, json_string_value(user), json_string_length(user) + 1);
            q->ban_s = ban != NULL ? (uint32_t)json_integer_value(ban) : 0;
        }
    }
    json_decref(root);
    if (why != NULL) {
        refuse(c, 400, root == NULL ? WSB_ERR_BAD_JSON : WSB_ERR_BAD_FIELD, why, keep_alive, NULL);
        return false;
    }
    return true;
}

admin_wait_t *admin_api_handle(conn_t *c, const wsb_http_request_t *req, wsb_str_t path,
                               bool keep_alive, admin_respond_cb respond_cb)
{
    ingress_ctx_t *ctx = ingress_ctx(c);
    bool post = wsb_str_eq(wsb_http_request_method(req), "POST");
    bool get = wsb_str_eq(wsb_http_request_method(req), "GET");
    bool disconnect = wsb_str_eq(path, "/api/disconnect");
    if (wsb_str_eq(path, "/admin")) {
        if (!get && !wsb_str_eq(wsb_http_request_method(req), "HEAD")) {
            refuse(c, 405, "method_not_allowed", "use GET", keep_alive, "Allow: GET, HEAD\r\n");
        } else {
            admin_page(c, req, keep_alive);
        }
        return NULL;
    }
    if (disconnect ? !post : !get) {
        refuse(c, 405, "method_not_allowed", disconnect ? "use POST" : "use GET", keep_alive,
               disconnect ? "Allow: POST\r\n" : "Allow: GET\r\n");
        return NULL;
    }
    if (!authorize(c, req, keep_alive)) {
        return NULL;
    }
    admin_query_t q;
    memset(&q, 0, sizeof q);
    if (disconnect) {
        if (!disconnect_query(c, req, keep_alive, &q)) {
            return NULL;
        }
        /* The ban first: a reconnect racing the disconnect is refused. */
        if (q.ban_s > 0 &&
            !admin_ban_add(ctx->auth->bans, (wsb_str_t){q.user, strlen(q.user)},
                           ingress_now(ctx) + (uint64_t)q.ban_s * 1000, ingress_now(ctx))) {
            refuse(c, 503, WSB_ERR_UNAVAILABLE, "too many bans in force (1024)", keep_alive, NULL);
            return NULL;
        }
        if (q.ban_s > 0) {
            log_info("user banned", "user=%s ban_s=%u", log_quote(q.user), (unsigned)q.ban_s);
        }
    } else if (wsb_str_eq(path, "/api/connections")) {
        q.kind = ADMIN_CONNECTIONS;
        if (!connections_query(c, req, keep_alive, &q)) {
            return NULL;
        }
    } else {
        q.kind = ADMIN_TOPICS;
    }
    admin_wait_t *wait = xcalloc(1, sizeof *wait);
    wait->conn = c;
    wait->keep_alive = keep_alive;
    wait->respond_cb = respond_cb;
    if (!ctx->ops->admin_cb(ctx, &q, wait)) {
        free(wait);
        refuse(c, 503, WSB_ERR_UNAVAILABLE, "too many admin requests in progress, or shutting down",
               keep_alive, "Retry-After: 1\r\n");
        return NULL;
    }
    return wait;
}

void admin_api_detach(admin_wait_t *wait)
{
    wait->conn = NULL;
}

/* ---- one worker's part ------------------------------------------------------------------- */

/* The WebSocket sessions of a worker (echo sessions are not clients). */
static session_t *client_session(conn_t *c)
{
    if (c->state != CONN_WS || c->session == NULL || c->session->echo) {
        return NULL;
    }
    return c->session;
}

static json_t *topics_part(net_t *net)
{
    json_t *counts = json_object();
    bool truncated = false;
    for (conn_t *c = net->conns; c != NULL; c = c->next) {
        session_t *s = client_session(c);
        for (uint32_t i = 0; s != NULL && i < s->nsubs; i++) {
            const char *pattern = trie_sub_pattern(s->subs[i]);
            json_t *n = json_object_get(counts, pattern);
            if (n != NULL) {
                json_integer_set(n, json_integer_value(n) + 1);
            } else if (json_object_size(counts) < ADMIN_TOPICS_MAX) {
                json_object_set_new(counts, pattern, json_integer(1));
            } else {
                truncated = true;
            }
        }
    }
    return json_pack("{s:o,s:b}", "counts", counts, "truncated", truncated);
}

static int by_client_no(const void *a, const void *b)
{
    uint64_t x = (*(session_t *const *)a)->sub.client_no;
    uint64_t y = (*(session_t *const *)b)->sub.client_no;
    return x < y ? -1 : x > y;
}

static json_t *connections_part(ingress_ctx_t *ctx, net_t *net, const admin_query_t *q)
{
    json_t *list = json_array();
    int node_cmp = q->has_after ? strcmp(ctx->node_id, q->after_node) : 1;
    if (node_cmp < 0 || (node_cmp == 0 && ctx->index < q->after_worker)) {
        return list; /* this worker's connections were on earlier pages */
    }
    uint64_t floor = node_cmp == 0 && ctx->index == q->after_worker ? q->after_no : 0;
    session_t **all = xcalloc(net->nconns + 1, sizeof(session_t *));
    size_t n = 0;
    for (conn_t *c = net->conns; c != NULL && n < net->nconns; c = c->next) {
        session_t *s = client_session(c);
        if (s != NULL && s->sub.client_no > floor) {
            all[n++] = s;
        }
    }
    qsort(all, n, sizeof(session_t *), by_client_no);
    uint64_t now_s = ingress_now(ctx) / 1000;
    for (size_t i = 0; i < n && i <= q->limit; i++) { /* one more: is there a next page? */
        session_t *s = all[i];
        char id[CORE_CLIENT_ID_MAX + 1];
        json_t *e = json_pack(
            "{s:s,s:s?,s:s,s:I,s:I,s:I,s:s,s:I,s:I}", "client",
            core_client_id(ctx->core, s->sub.client_no, id), "user", s->sub.user, "addr",
            conn_peer(s->conn), "subscriptions", (json_int_t)s->nsubs, "queued_bytes",
            (json_int_t)s->conn->outq.bytes, "age_s",
            (json_int_t)(now_s >= s->sub.connected_s ? now_s - s->sub.connected_s : 0), "node",
            ctx->node_id, "_w", (json_int_t)ctx->index, "_no", (json_int_t)s->sub.client_no);
        json_array_append_new(list, e);
    }
    free(all);
    return list;
}

static json_t *disconnect_part(ingress_ctx_t *ctx, net_t *net, const admin_query_t *q)
{
    size_t closed = 0;
    conn_t *next = NULL;
    for (conn_t *c = net->conns; c != NULL; c = next) {
        next = c->next;
        session_t *s = client_session(c);
        if (s == NULL) {
            continue;
        }
        bool hit;
        if (q->client[0] != '\0') {
            char id[CORE_CLIENT_ID_MAX + 1];
            hit = strcmp(core_client_id(ctx->core, s->sub.client_no, id), q->client) == 0;
        } else {
            hit = s->sub.user != NULL && strcmp(s->sub.user, q->user) == 0;
        }
        if (hit) {
            conn_ws_close(c, WSB_WS_CLOSE_DISCONNECTED, "disconnected by admin", true);
            closed++;
        }
    }
    return json_integer((json_int_t)closed);
}

json_t *admin_api_part(ingress_ctx_t *ctx, net_t *net, const admin_query_t *q)
{
    switch (q->kind) {
    case ADMIN_TOPICS:
        return topics_part(net);
    case ADMIN_CONNECTIONS:
        return connections_part(ctx, net, q);
    default:
        return disconnect_part(ctx, net, q);
    }
}

/* ---- the merge ---------------------------------------------------------------------------- */

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The node's topics: {"topics":[{topic,subscribers,rule,seq}…],"truncated"}. */
static json_t *node_topics(ingress_ctx_t *ctx, json_t **parts, unsigned n)
{
    json_t *sum = json_object();
    bool truncated = false;
    for (unsigned w = 0; w < n; w++) {
        truncated = truncated || json_is_true(json_object_get(parts[w], "truncated"));
        const char *topic;
        json_t *v;
        json_object_foreach(json_object_get(parts[w], "counts"), topic, v)
        {
            json_t *have = json_object_get(sum, topic);
            if (have != NULL) {
                json_integer_set(have, json_integer_value(have) + json_integer_value(v));
            } else {
                json_object_set_new(sum, topic, json_integer(json_integer_value(v)));
            }
        }
    }
    core_t *core = ctx->core->core;
    json_t *list = json_array();
    const char *topic;
    json_t *v;
    json_object_foreach(sum, topic, v)
    {
        wsb_str_t t = {topic, strlen(topic)};
        const topic_rule_t *rule =
            core->topic_rules != NULL ? topic_rules_match(core->topic_rules, t) : NULL;
        json_t *seq = json_null();
        if (!wsb_topic_is_pattern(t.p, t.len)) {
            seqtab_shard_t *shard = NULL;
            seqtab_pos_t pos;
            seqtab_lock_topic(core->seqtab, t, &shard, &pos, ingress_now(ctx));
            seqtab_unlock(shard);
            seq = json_integer((json_int_t)pos.seq);
        }
        json_array_append_new(list,
                              json_pack("{s:s,s:O,s:s?,s:o}", "topic", topic, "subscribers", v,
                                        "rule", rule != NULL ? rule->pattern : NULL, "seq", seq));
    }
    json_decref(sum);
    return json_pack("{s:o,s:b}", "topics", list, "truncated", truncated);
}

/* The node's connections after the cursor, in (worker, no) order, each with
 * its "_w" and "_no": {"connections":[…]}. */
static json_t *node_connections(json_t **parts, unsigned n)
{
    json_t *list = json_array();
    for (unsigned w = 0; w < n; w++) {
        size_t i;
        json_t *e;
        json_array_foreach(parts[w], i, e)
        {
            json_array_append(list, e);
        }
    }
    return json_pack("{s:o}", "connections", list);
}

json_t *admin_api_node_body(ingress_ctx_t *ctx, const admin_query_t *q, json_t **parts, unsigned n)
{
    json_t *body;
    if (q->kind == ADMIN_TOPICS) {
        body = node_topics(ctx, parts, n);
    } else if (q->kind == ADMIN_CONNECTIONS) {
        body = node_connections(parts, n);
    } else {
        json_int_t total = 0;
        for (unsigned w = 0; w < n; w++) {
            total += json_integer_value(parts[w]);
        }
        log_info("admin disconnect", "%s=%s ban_s=%u disconnected=%lld",
                 q->client[0] != '\0' ? "client" : "user",
                 log_quote(q->client[0] != '\0' ? q->client : q->user), (unsigned)q->ban_s,
                 (long long)total);
        body = json_pack("{s:I}", "disconnected", total);
    }
    json_object_set_new(body, "node", json_string(ctx->node_id));
    return body;
}

static json_t *merge_topics(json_t **bodies, unsigned n)
{
    json_t *all = json_object(); /* topic -> its entry, subscribers summed */
    bool truncated = false;
    for (unsigned b = 0; b < n; b++) {
        truncated = truncated || json_is_true(json_object_get(bodies[b], "truncated"));
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(bodies[b], "topics"), i, t)
        {
            const char *name = json_string_value(json_object_get(t, "topic"));
            if (name == NULL) {
                continue;
            }
            json_t *have = json_object_get(all, name);
            if (have == NULL) {
                json_object_set_new(all, name, json_deep_copy(t));
                continue;
            }
            json_t *subs = json_object_get(have, "subscribers");
            json_integer_set(subs, json_integer_value(subs) +
                                       json_integer_value(json_object_get(t, "subscribers")));
            json_t *seq = json_object_get(t, "seq"); /* the highest a node knows */
            if (json_is_integer(seq) &&
                json_integer_value(seq) > json_integer_value(json_object_get(have, "seq"))) {
                json_object_set(have, "seq", seq);
            }
        }
    }
    size_t count = json_object_size(all);
    const char **keys = xcalloc(count + 1, sizeof *keys);
    size_t k = 0;
    const char *name;
    json_t *v;
    json_object_foreach(all, name, v)
    {
        keys[k++] = name;
    }
    qsort(keys, k, sizeof *keys, by_string);
    if (k > ADMIN_TOPICS_MAX) {
        k = ADMIN_TOPICS_MAX;
        truncated = true;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < k; i++) {
        json_array_append(list, json_object_get(all, keys[i]));
    }
    free(keys);
    json_decref(all);
    return json_pack("{s:o,s:b}", "topics", list, "truncated", truncated);
}

static int by_node(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "node"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "node"));
    return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

/* The cursor after connection `e` ("NODE/W.N"). */
static json_t *cursor_of(json_t *e)
{
    const char *node = json_string_value(json_object_get(e, "node"));
    char cursor[128];
    (void)snprintf(cursor, sizeof cursor, "%s/%" PRIu64 ".%" PRIu64, node != NULL ? node : "",
                   (uint64_t)json_integer_value(json_object_get(e, "_w")),
                   (uint64_t)json_integer_value(json_object_get(e, "_no")));
    return json_string(cursor);
}

static json_t *merge_connections(const admin_query_t *q, json_t **bodies, unsigned n)
{
    json_t **sorted = xcalloc(n + 1, sizeof(json_t *));
    memcpy(sorted, bodies, n * sizeof(json_t *));
    qsort(sorted, n, sizeof(json_t *), by_node);
    json_t *list = json_array();
    json_t *next = json_null();
    for (unsigned b = 0; b < n && json_is_null(next); b++) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(sorted[b], "connections"), i, e)
        {
            if (json_array_size(list) == q->limit) {
                /* One more exists: the page ends after the last one listed. */
                json_decref(next);
                next = cursor_of(json_array_get(list, q->limit - 1));
                break;
            }
            json_array_append_new(list, json_deep_copy(e));
        }
        /* A node whose answer was cut to fit Redis: the page ends with it. */
        if (json_is_null(next) && json_is_true(json_object_get(sorted[b], "_more")) &&
            json_array_size(list) > 0) {
            json_decref(next);
            next = cursor_of(json_array_get(list, json_array_size(list) - 1));
        }
    }
    free(sorted);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        json_object_del(e, "_w");
        json_object_del(e, "_no");
    }
    return json_pack("{s:o,s:o}", "connections", list, "next", next);
}

json_t *admin_api_merge(const admin_query_t *q, json_t **bodies, unsigned n)
{
    json_t *out;
    if (q->kind == ADMIN_TOPICS) {
        out = merge_topics(bodies, n);
    } else if (q->kind == ADMIN_CONNECTIONS) {
        out = merge_connections(q, bodies, n);
    } else {
        json_int_t total = 0;
        for (unsigned b = 0; b < n; b++) {
            total += json_integer_value(json_object_get(bodies[b], "disconnected"));
        }
        out = json_pack("{s:I}", "disconnected", total);
    }
    json_t *nodes = json_array();
    for (unsigned b = 0; b < n; b++) {
        json_array_append(nodes, json_object_get(bodies[b], "node"));
    }
    json_object_set_new(out, "nodes", nodes);
    return out;
}

void admin_api_finish(admin_wait_t *wait, const admin_query_t *q, json_t **bodies, unsigned n)
{
    conn_t *c = wait->conn;
    bool keep_alive = wait->keep_alive;
    admin_respond_cb respond_cb = wait->respond_cb;
    free(wait);
    if (c != NULL) {
        respond_cb(c, 200, admin_api_merge(q, bodies, n), keep_alive);
    }
}
