/*
 * client_req.c - the client core's requests and replies: building the JSON
 * requests, the outgoing queue, matching acks and errors to requests by id,
 * the set of acknowledged subscriptions, and the broker's messages.
 */
#include "client_internal.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lists ----------------------------------------------------------- */

void wsb__list_push(wsb__req_list_t *l, wsb__req_t *r)
{
    r->next = NULL;
    if (l->tail != NULL) {
        l->tail->next = r;
    } else {
        l->head = r;
    }
    l->tail = r;
    l->count++;
}

wsb__req_t *wsb__list_pop(wsb__req_list_t *l)
{
    wsb__req_t *r = l->head;
    if (r != NULL) {
        l->head = r->next;
        if (l->head == NULL) {
            l->tail = NULL;
        }
        l->count--;
        r->next = NULL;
    }
    return r;
}

/* Removes and returns the request with `id`. Replies arrive in request
 * order, so the match is nearly always the head. */
static wsb__req_t *list_take_id(wsb__req_list_t *l, uint64_t id)
{
    wsb__req_t *prev = NULL;
    for (wsb__req_t *r = l->head; r != NULL; prev = r, r = r->next) {
        if (!r->has_id || r->id != id) {
            continue;
        }
        if (prev != NULL) {
            prev->next = r->next;
        } else {
            l->head = r->next;
        }
        if (l->tail == r) {
            l->tail = prev;
        }
        l->count--;
        r->next = NULL;
        return r;
    }
    return NULL;
}

void wsb__req_free(wsb__req_t *r)
{
    if (r != NULL) {
        free(r->topic);
        free(r->text);
        free(r);
    }
}

/* ---- subscription set ------------------------------------------------ */

static size_t subs_find(const wsb_client_t *c, const char *p)
{
    for (size_t i = 0; i < c->nsubs; i++) {
        if (strcmp(c->subs[i], p) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

static void subs_add(wsb_client_t *c, const char *p)
{
    if (subs_find(c, p) != SIZE_MAX) {
        return;
    }
    if (c->nsubs == c->subs_cap) {
        size_t cap = c->subs_cap ? c->subs_cap * 2 : 8;
        char **n = realloc(c->subs, cap * sizeof(*n));
        if (n == NULL) {
            return; /* not resubscribed after a reconnect; nothing else breaks */
        }
        c->subs = n;
        c->subs_cap = cap;
    }
    char *d = strdup(p);
    if (d != NULL) {
        c->subs[c->nsubs++] = d;
    }
}

static void subs_remove(wsb_client_t *c, const char *p)
{
    size_t i = subs_find(c, p);
    if (i != SIZE_MAX) {
        free(c->subs[i]);
        c->subs[i] = c->subs[--c->nsubs];
    }
}

void wsb__subs_clear(wsb_client_t *c)
{
    for (size_t i = 0; i < c->nsubs; i++) {
        free(c->subs[i]);
    }
    c->nsubs = 0;
}

/* ---- building requests ----------------------------------------------- */

static const char *kind_name(int kind)
{
    switch (kind) {
    case REQ_UNSUBSCRIBE:
        return "unsubscribe";
    case REQ_PUBLISH:
        return "publish";
    case REQ_PRESENCE:
        return "presence";
    case REQ_PRESENCE_STATS:
        return "presence_stats";
    case REQ_REQUEST:
        return "request";
    default:
        return "subscribe";
    }
}

/* Writes `s` as a JSON string body. A valid topic has no control
 * characters, so only '"' and '\\' need escaping. */
static size_t put_escaped(char *out, const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            out[n++] = '\\';
        }
        out[n++] = *s;
    }
    return n;
}

/* `data` is sent for a publish or a request; `timeout_ms` (0: none) for a
 * request only. */
static wsb__req_t *req_new(wsb_client_t *c, int kind, const char *topic, const char *data,
                           size_t dlen, uint32_t timeout_ms, bool has_id)
{
    wsb__req_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    size_t tlen = strlen(topic);
    size_t cap = 128 + 2 * tlen + dlen; /* the fixed members, id and timeout_ms fit in 128 */
    r->kind = kind;
    r->topic = strdup(topic);
    r->text = malloc(cap);
    if (r->topic == NULL || r->text == NULL) {
        wsb__req_free(r);
        return NULL;
    }
    r->has_id = has_id;
    if (has_id) {
        r->id = c->next_id++;
    }
    size_t n = (size_t)snprintf(r->text, cap, "{\"type\":\"%s\",", kind_name(kind));
    if (has_id) {
        n += (size_t)snprintf(r->text + n, cap - n, "\"id\":%llu,", (unsigned long long)r->id);
    }
    n += (size_t)snprintf(r->text + n, cap - n, "\"topic\":\"");
    n += put_escaped(r->text + n, topic);
    r->text[n++] = '"';
    if (kind == REQ_REQUEST && timeout_ms != 0) {
        n += (size_t)snprintf(r->text + n, cap - n, ",\"timeout_ms\":%lu",
                              (unsigned long)timeout_ms);
    }
    if (kind == REQ_PUBLISH || kind == REQ_REQUEST) {
        n += (size_t)snprintf(r->text + n, cap - n, ",\"data\":");
        memcpy(r->text + n, data, dlen);
        n += dlen;
    }
    r->text[n++] = '}';
    r->len = n;
    return r;
}

/* The largest request the client may send now. */
static uint64_t send_limit(const wsb_client_t *c)
{
    uint64_t lim = c->opts.max_message_size;
    if (c->server_max_message != 0 && c->server_max_message < lim) {
        lim = c->server_max_message;
    }
    return lim;
}

void wsb__req_finish(wsb_client_t *c, wsb__req_t *r, int status, const char *message)
{
    r->status = status;
    r->message = message;
    wsb__list_push(&c->done, r);
}

void wsb__dispatch(wsb_client_t *c, wsb__req_t *r)
{
    if (!wsb__can_send(c)) {
        wsb__list_push(&c->queue, r);
        c->queue_bytes += r->len;
        return;
    }
    if (r->len > send_limit(c)) {
        wsb__req_finish(c, r, WSB_ETOOBIG,
                        "the request is larger than the broker's announced max_message_size");
        return;
    }
    if (wsb__send_frame(c, WSB_WS_OP_TEXT, (const uint8_t *)r->text, r->len) != 0) {
        wsb__req_finish(c, r, WSB_ENOMEM, "out of memory");
        return;
    }
    if (!r->has_id) {
        wsb__req_free(r);
        return;
    }
    if (r->kind == REQ_PUBLISH || r->kind == REQ_REQUEST) {
        /* A publish or request is never re-sent: its text is no longer needed. */
        free(r->text);
        r->text = NULL;
    }
    wsb__list_push(&c->inflight, r);
}

void wsb__flush_after_open(wsb_client_t *c)
{
    for (size_t i = 0; i < c->nsubs; i++) {
        wsb__req_t *r = req_new(c, REQ_RESUBSCRIBE, c->subs[i], NULL, 0, 0, true);
        if (r != NULL) {
            wsb__dispatch(c, r);
        }
    }
    wsb__req_list_t q = c->queue;
    memset(&c->queue, 0, sizeof(c->queue));
    c->queue_bytes = 0;
    wsb__req_t *r;
    while ((r = wsb__list_pop(&q)) != NULL) {
        wsb__dispatch(c, r);
    }
}

static int64_t request(wsb_client_t *c, int kind, const char *topic, const char *data, size_t dlen,
                       uint32_t timeout_ms, const wsb_client_reply_cb_t *cb, void *user_data)
{
    if (c->freeing || c->free_pending || c->user_closing) {
        return WSB_ESTATE;
    }
    bool carries_data = kind == REQ_PUBLISH || kind == REQ_REQUEST;
    bool exact = carries_data || kind == REQ_PRESENCE || kind == REQ_PRESENCE_STATS;
    if (topic == NULL || wsb_topic_check(topic, strlen(topic),
                                         exact ? WSB_TOPIC_EXACT : WSB_TOPIC_PATTERN, NULL) != 0) {
        return WSB_EINVAL;
    }
    if (timeout_ms > WSB_CLIENT_MAX_REQUEST_TIMEOUT_MS) {
        return WSB_EINVAL;
    }
    if (carries_data) {
        if (data == NULL) {
            return WSB_EINVAL;
        }
        json_error_t jerr;
        json_t *v = json_loadb(data, dlen,
                               JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (v == NULL) {
            return WSB_EINVAL;
        }
        json_decref(v);
    }
    bool has_id = kind != REQ_PUBLISH || cb != NULL;
    wsb__req_t *r = req_new(c, kind, topic, data, dlen, timeout_ms, has_id);
    if (r == NULL) {
        return WSB_ENOMEM;
    }
    if (r->len > send_limit(c)) {
        wsb__req_free(r);
        return WSB_ETOOBIG;
    }
    if (c->queue_bytes + c->out_len + r->len + WSB_WS_MAX_HEADER_LEN > c->opts.max_queue_bytes) {
        wsb__req_free(r);
        return WSB_EQUEUEFULL;
    }
    if (cb != NULL) {
        r->has_cb = true;
        r->cb = *cb;
        r->user_data = user_data;
    }
    int64_t id = has_id ? (int64_t)r->id : 0;
    wsb__dispatch(c, r);
    return id;
}

int64_t wsb_client_subscribe(wsb_client_t *c, const char *pattern, const wsb_client_reply_cb_t *cb,
                             void *user_data)
{
    return request(c, REQ_SUBSCRIBE, pattern, NULL, 0, 0, cb, user_data);
}

int64_t wsb_client_unsubscribe(wsb_client_t *c, const char *pattern,
                               const wsb_client_reply_cb_t *cb, void *user_data)
{
    return request(c, REQ_UNSUBSCRIBE, pattern, NULL, 0, 0, cb, user_data);
}

int64_t wsb_client_publish(wsb_client_t *c, const char *topic, const char *data_json, size_t len,
                           const wsb_client_reply_cb_t *cb, void *user_data)
{
    return request(c, REQ_PUBLISH, topic, data_json, len, 0, cb, user_data);
}

int64_t wsb_client_presence(wsb_client_t *c, const char *topic, const wsb_client_reply_cb_t *cb,
                            void *user_data)
{
    return request(c, REQ_PRESENCE, topic, NULL, 0, 0, cb, user_data);
}

int64_t wsb_client_presence_stats(wsb_client_t *c, const char *topic,
                                  const wsb_client_reply_cb_t *cb, void *user_data)
{
    return request(c, REQ_PRESENCE_STATS, topic, NULL, 0, 0, cb, user_data);
}

int64_t wsb_client_request(wsb_client_t *c, const char *topic, const char *data_json, size_t len,
                           uint32_t timeout_ms, const wsb_client_reply_cb_t *cb, void *user_data)
{
    return request(c, REQ_REQUEST, topic, data_json, len, timeout_ms, cb, user_data);
}

/* ---- finishing requests ---------------------------------------------- */

static void deliver_error(wsb_client_t *c, wsb__req_t *r, const wsb_client_error_t *e)
{
    if (r != NULL && r->has_cb && r->cb.on_error != NULL) {
        r->cb.on_error(c, e, r->user_data);
    } else if (c->cb.on_error != NULL && !c->freeing) {
        c->cb.on_error(c, e, c->user_data);
    }
}

void wsb__run_done(wsb_client_t *c)
{
    wsb__req_t *r;
    while ((r = wsb__list_pop(&c->done)) != NULL) {
        wsb_client_error_t e = {
            .status = r->status,
            .code = NULL,
            .message = r->message,
            .has_id = r->has_id,
            .id = r->id,
            .topic = r->topic,
        };
        /* Local failures go to the request's own callback; only a request
         * that could never be sent (too big) is worth the client's on_error. */
        if ((r->has_cb && r->cb.on_error != NULL) || r->status == WSB_ETOOBIG) {
            deliver_error(c, r, &e);
        }
        wsb__req_free(r);
    }
}

void wsb__requests_on_disconnect(wsb_client_t *c, int fail_all)
{
    wsb__req_list_t keep = {NULL, NULL, 0};
    size_t keep_bytes = 0;
    wsb__req_t *r;
    while ((r = wsb__list_pop(&c->inflight)) != NULL) {
        if (r->kind == REQ_RESUBSCRIBE) {
            wsb__req_free(r);
        } else if (fail_all != 0) {
            wsb__req_finish(c, r, fail_all,
                            fail_all == WSB_ECANCELED
                                ? "canceled: the client was freed before the reply arrived"
                                : "the connection ended before the reply arrived");
        } else if (r->kind == REQ_PUBLISH) {
            wsb__req_finish(c, r, WSB_ECLOSED,
                            "the connection ended before the broker acknowledged the publish");
        } else if (r->kind == REQ_REQUEST) {
            /* Not sent again: a responder may already have acted on it. */
            wsb__req_finish(c, r, WSB_ECLOSED,
                            "the connection ended before the request's reply arrived");
        } else {
            wsb__list_push(&keep, r);
            keep_bytes += r->len;
        }
    }
    if (keep.head != NULL) {
        keep.tail->next = c->queue.head;
        if (c->queue.head == NULL) {
            c->queue.tail = keep.tail;
        }
        c->queue.head = keep.head;
        c->queue.count += keep.count;
        c->queue_bytes += keep_bytes;
    }
}

void wsb__cancel_queue(wsb_client_t *c)
{
    wsb__req_t *r;
    while ((r = wsb__list_pop(&c->queue)) != NULL) {
        wsb__req_finish(c, r, WSB_ECANCELED,
                        c->freeing ? "canceled: the client was freed before the request was sent"
                                   : "canceled: the client was closed before the request was sent");
    }
    c->queue_bytes = 0;
}

/* ---- the broker's messages ------------------------------------------- */

static bool get_u64(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static const char *get_str(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : dflt;
}

/* The `data` member of a message or reply as compact JSON text (malloc'd,
 * the caller frees it; NULL when memory ran out) and its value (json null
 * when absent). */
static char *dump_data(const json_t *root, const json_t **value)
{
    const json_t *data = json_object_get(root, "data");
    *value = data != NULL ? data : json_null();
    return json_dumps(*value, JSON_COMPACT | JSON_ENCODE_ANY);
}

static wsb_str_t get_slice(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        return (wsb_str_t){NULL, 0};
    }
    return (wsb_str_t){json_string_value(v), json_string_length(v)};
}

static void handle_message(wsb_client_t *c, const json_t *root)
{
    const json_t *topic = json_object_get(root, "topic");
    if (c->user_closing || c->cb.on_message == NULL || !json_is_string(topic)) {
        return;
    }
    wsb_client_message_t m;
    memset(&m, 0, sizeof(m));
    m.topic = (wsb_str_t){json_string_value(topic), json_string_length(topic)};
    (void)get_u64(root, "seq", &m.seq);
    m.epoch = get_slice(root, "epoch");
    m.reply_to = get_slice(root, "reply_to");
    char *text = dump_data(root, &m.value);
    if (text == NULL) {
        return;
    }
    m.data = (wsb_str_t){text, strlen(text)};
    const json_t *from = json_object_get(root, "from");
    m.from = json_is_object(from) ? from : NULL;
    c->cb.on_message(c, &m, c->user_data);
    free(text);
}

/* The members of a presence answer as an array the callback borrows;
 * *out is NULL when there are none (or memory ran out: reported empty
 * rather than dropped, the frame is already bounded by max_message_size). */
static size_t presence_members(const json_t *root, wsb_client_member_t **out)
{
    const json_t *arr = json_object_get(root, "members");
    size_t n = json_array_size(arr);
    *out = NULL;
    if (n == 0 || (*out = calloc(n, sizeof(**out))) == NULL) {
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(arr, i);
        const char *client = json_string_value(json_object_get(m, "client"));
        if (client != NULL) {
            (*out)[k].client = client;
            (*out)[k].user = json_string_value(json_object_get(m, "user"));
            k++;
        }
    }
    return k;
}

/* The reply `type` answers a request of `kind` (an ack, or a presence
 * frame for a presence request). */
static bool reply_fits(int kind, const char *type)
{
    if (kind == REQ_PRESENCE) {
        return strcmp(type, "presence") == 0;
    }
    if (kind == REQ_PRESENCE_STATS) {
        return strcmp(type, "presence_stats") == 0;
    }
    if (kind == REQ_REQUEST) {
        return strcmp(type, "reply") == 0;
    }
    return strcmp(type, "ack") == 0;
}

static void handle_ack(wsb_client_t *c, const json_t *root, const char *type)
{
    uint64_t id;
    if (!get_u64(root, "id", &id)) {
        return;
    }
    wsb__req_t *r = list_take_id(&c->inflight, id);
    if (r == NULL) {
        return;
    }
    if (!reply_fits(r->kind, type)) {
        wsb_client_error_t e;
        memset(&e, 0, sizeof(e));
        e.status = WSB_EPROTO;
        e.message = "the broker answered the request with a reply of another type";
        e.has_id = true;
        e.id = id;
        e.topic = r->topic;
        deliver_error(c, r, &e);
        wsb__req_free(r);
        return;
    }
    if (r->kind == REQ_SUBSCRIBE || r->kind == REQ_RESUBSCRIBE) {
        subs_add(c, r->topic);
    } else if (r->kind == REQ_UNSUBSCRIBE) {
        subs_remove(c, r->topic);
    }
    wsb_client_ack_t a;
    memset(&a, 0, sizeof(a));
    a.id = id;
    a.has_seq = get_u64(root, "seq", &a.seq);
    const json_t *rec = json_object_get(root, "recovered");
    a.recovered = json_is_boolean(rec) ? (json_is_true(rec) ? 1 : 0) : -1;
    wsb_client_member_t *members = NULL;
    char *data = NULL;
    if (r->kind == REQ_REQUEST) {
        data = dump_data(root, &a.value);
        if (data == NULL) {
            wsb_client_error_t e = {.status = WSB_ENOMEM,
                                    .message = "out of memory reading the reply",
                                    .has_id = true,
                                    .id = id,
                                    .topic = r->topic};
            deliver_error(c, r, &e);
            wsb__req_free(r);
            return;
        }
        a.data = (wsb_str_t){data, strlen(data)};
        const json_t *from = json_object_get(root, "from");
        a.from = json_is_object(from) ? from : NULL;
    } else if (r->kind == REQ_PRESENCE) {
        a.nmembers = presence_members(root, &members);
        a.members = members;
    } else if (r->kind == REQ_PRESENCE_STATS) {
        (void)get_u64(root, "clients", &a.clients);
        (void)get_u64(root, "users", &a.users);
    }
    if (r->has_cb && r->cb.on_ack != NULL) {
        r->cb.on_ack(c, &a, r->user_data);
    }
    free(members);
    free(data);
    wsb__req_free(r);
}

static void handle_membership(wsb_client_t *c, const json_t *root, bool join)
{
    void (*cb)(wsb_client_t *, const char *, const wsb_client_member_t *, void *) =
        join ? c->cb.on_join : c->cb.on_leave;
    const char *topic = json_string_value(json_object_get(root, "topic"));
    const json_t *m = json_object_get(root, "member");
    wsb_client_member_t member = {
        .client = json_string_value(json_object_get(m, "client")),
        .user = json_string_value(json_object_get(m, "user")),
    };
    if (c->user_closing || cb == NULL || topic == NULL || member.client == NULL) {
        return;
    }
    cb(c, topic, &member, c->user_data);
}

static void handle_error(wsb_client_t *c, const json_t *root)
{
    wsb_client_error_t e;
    memset(&e, 0, sizeof(e));
    e.status = WSB_ESERVER;
    e.code = get_str(root, "code", WSB_ERR_INTERNAL);
    e.message = get_str(root, "message", "");
    e.has_id = get_u64(root, "id", &e.id);
    wsb__req_t *r = e.has_id ? list_take_id(&c->inflight, e.id) : NULL;
    if (r != NULL) {
        e.topic = r->topic;
        if (r->kind == REQ_RESUBSCRIBE ||
            (r->kind == REQ_UNSUBSCRIBE && strcmp(e.code, WSB_ERR_NOT_SUBSCRIBED) == 0)) {
            /* The broker does not (or will not) hold this subscription. */
            subs_remove(c, r->topic);
        }
    }
    deliver_error(c, r, &e);
    wsb__req_free(r);
}

static void handle_welcome(wsb_client_t *c, const json_t *root)
{
    wsb_client_welcome_t w;
    memset(&w, 0, sizeof(w));
    uint64_t v = 0;
    w.protocol = get_u64(root, "protocol", &v) && v < 1000 ? (int)v : 0;
    w.client_id = get_str(root, "client_id", "");
    w.node_id = get_str(root, "node_id", "");
    w.version = get_str(root, "version", "");
    const json_t *lim = json_object_get(root, "limits");
    if (get_u64(lim, "max_message_size", &v)) {
        w.max_message_size = v;
        c->server_max_message = v;
    }
    if (get_u64(lim, "max_subscriptions", &v)) {
        w.max_subscriptions = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    }
    if (get_u64(lim, "ping_interval_ms", &v)) {
        w.ping_interval_ms = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    }
    if (c->cb.on_open != NULL) {
        c->cb.on_open(c, &w, c->user_data);
    }
}

void wsb__handle_text(wsb_client_t *c, const char *text, size_t len)
{
    json_error_t jerr;
    /* Strings may hold U+0000 (PROTOCOL 2): jansson refuses them unless told. */
    json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    if (root == NULL || !json_is_object(root)) {
        /* Nothing to match it to; reported rather than dropped unseen. */
        char why[256]; /* jansson's text is at most 160 bytes */
        (void)snprintf(why, sizeof(why),
                       "the broker sent a text message that is not a JSON object (%s); ignored",
                       root == NULL ? jerr.text : "another JSON value");
        json_decref(root);
        wsb_client_error_t e;
        memset(&e, 0, sizeof(e));
        e.status = WSB_EPROTO;
        e.message = why;
        deliver_error(c, NULL, &e);
        return;
    }
    const char *type = json_string_value(json_object_get(root, "type"));
    if (type == NULL) {
        /* No type: ignored, like unknown types (PROTOCOL 12). */
    } else if (strcmp(type, "message") == 0) {
        handle_message(c, root);
    } else if (strcmp(type, "ack") == 0 || strcmp(type, "presence") == 0 ||
               strcmp(type, "presence_stats") == 0 || strcmp(type, "reply") == 0) {
        handle_ack(c, root, type);
    } else if (strcmp(type, "error") == 0) {
        handle_error(c, root);
    } else if (strcmp(type, "welcome") == 0) {
        handle_welcome(c, root);
    } else if (strcmp(type, "join") == 0 || strcmp(type, "leave") == 0) {
        handle_membership(c, root, type[0] == 'j');
    }
    json_decref(root);
}
