/*
 * client.c - the client core's connection state machine: options, the
 * opening handshake, WebSocket framing, keepalive, the close handshake,
 * disconnects and reconnect backoff. No I/O and no event loop: an adapter
 * drives it through wsb_client_io_* (see wsb/client.h). Requests, replies
 * and the subscription set live in client_req.c.
 *
 *   IDLE --connect--> CONNECTING --101--> OPEN --close frame--> CLOSING
 *     ^                    |                |                      |
 *     |                    +---transport ended (any state)---------+
 *     |                                      |
 *     +---- no reconnect ------------------ -+--- reconnect ---> BACKOFF --timer--> CONNECTING
 */
#include "client_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_reason(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_reason(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* ---- construction -------------------------------------------------- */

static char *dup_opt(const char *s, bool *failed)
{
    if (s == NULL) {
        return NULL;
    }
    char *d = strdup(s);
    if (d == NULL) {
        *failed = true;
    }
    return d;
}

wsb_client_t *wsb_client_new(const wsb_client_options_t *o, const wsb_client_callbacks_t *cb,
                             void *user_data)
{
    if (wsb_client_options_check(o, NULL, 0) != 0) {
        return NULL;
    }
    wsb_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    bool failed = false;
    c->opts = *o;
    c->url_copy = dup_opt(o->url, &failed);
    c->token = dup_opt(o->token, &failed);
    c->origin = dup_opt(o->origin, &failed);
    c->ca_file = dup_opt(o->ca_file, &failed);
    c->opts.url = c->url_copy;
    c->opts.token = c->token;
    c->opts.origin = c->origin;
    c->opts.ca_file = c->ca_file;
    if (failed || wsb__url_parse(c->url_copy, &c->url, NULL, 0) != 0) {
        free(c->url_copy);
        free(c->token);
        free(c->origin);
        free(c->ca_file);
        free(c);
        return NULL;
    }
    if (cb != NULL) {
        c->cb = *cb;
    }
    c->user_data = user_data;
    c->next_id = 1;
    c->state = WSB_CLIENT_IDLE;
    return c;
}

static void destroy(wsb_client_t *c)
{
    c->freeing = true;
    wsb__requests_on_disconnect(c, WSB_ECANCELED);
    wsb__cancel_queue(c);
    wsb__run_done(c);
    if (c->attached) {
        c->attached = false;
        c->io.cleanup(c->io.data);
    }
    wsb__subs_clear(c);
    wsb_ws_parser_release(&c->parser);
    free(c->subs);
    free(c->resp);
    free(c->msg);
    free(c->out);
    wsb__url_free(&c->url);
    free(c->url_copy);
    free(c->token);
    free(c->origin);
    free(c->ca_file);
    free(c);
}

const wsb_client_options_t *wsb_client_get_options(const wsb_client_t *c)
{
    return &c->opts;
}

void wsb_client_free(wsb_client_t *c)
{
    if (c == NULL || c->freeing) {
        return;
    }
    if (c->depth > 0) {
        c->free_pending = true;
        return;
    }
    destroy(c);
}

int wsb_client_attach(wsb_client_t *c, const wsb_client_io_t *io)
{
    if (c->attached) {
        return WSB_ESTATE;
    }
    if (io == NULL || io->connect == NULL || io->want_write == NULL || io->close == NULL ||
        io->timer_start == NULL || io->timer_stop == NULL || io->cleanup == NULL) {
        return WSB_EINVAL;
    }
    c->io = *io;
    c->attached = true;
    return 0;
}

wsb_client_state_t wsb_client_state(const wsb_client_t *c)
{
    return c->state;
}

size_t wsb_client_pending(const wsb_client_t *c)
{
    return c->queue.count + c->inflight.count;
}

size_t wsb_client_queued_bytes(const wsb_client_t *c)
{
    return c->queue_bytes + c->out_len;
}

size_t wsb_client_subscription_count(const wsb_client_t *c)
{
    return c->nsubs;
}

/* ---- entry points: deferred free ------------------------------------ */

static void enter(wsb_client_t *c)
{
    c->depth++;
}

/* Returns true when the client was freed (the caller must not touch it). */
static bool leave(wsb_client_t *c)
{
    if (--c->depth > 0) {
        return false;
    }
    if (!c->free_pending) {
        c->depth++;
        wsb__run_done(c);
        c->depth--;
    }
    if (c->free_pending) {
        c->free_pending = false;
        destroy(c);
        return true;
    }
    return false;
}

/* True when processing must stop: the client is being freed or the
 * transport is already being torn down. */
static bool stopping(const wsb_client_t *c)
{
    return c->free_pending || c->freeing || c->transport_closing || !c->transport_active;
}

/* ---- output ---------------------------------------------------------- */

static int out_reserve(wsb_client_t *c, size_t more)
{
    if (more > SIZE_MAX - c->out_len) {
        return WSB_ENOMEM;
    }
    size_t need = c->out_len + more;
    if (need <= c->out_cap) {
        return 0;
    }
    size_t cap = c->out_cap ? c->out_cap : 256;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    uint8_t *p = realloc(c->out, cap);
    if (p == NULL) {
        return WSB_ENOMEM;
    }
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static void notify_write(wsb_client_t *c)
{
    if (c->attached && c->out_len > 0) {
        c->io.want_write(c->io.data);
    }
}

bool wsb__can_send(const wsb_client_t *c)
{
    return c->open && c->transport_active && !c->transport_closing && !c->close_sent;
}

int wsb__send_frame(wsb_client_t *c, int opcode, const uint8_t *payload, size_t len)
{
    uint8_t key[4];
    if (wsb_ws_random_mask(key) != 0) {
        return WSB_ENOMEM;
    }
    if (out_reserve(c, WSB_WS_MAX_HEADER_LEN + len) != 0) {
        return WSB_ENOMEM;
    }
    uint8_t *p = c->out + c->out_len;
    size_t h = wsb_ws_write_header(p, true, opcode, len, key);
    if (len > 0) {
        memcpy(p + h, payload, len);
        wsb_ws_mask(p + h, len, key, 0);
    }
    c->out_len += h + len;
    notify_write(c);
    return 0;
}

uint8_t *wsb_client_io_take_output(wsb_client_t *c, size_t *len)
{
    uint8_t *p = c->out;
    *len = c->out_len;
    if (c->out_len == 0) {
        *len = 0;
        return NULL;
    }
    c->out = NULL;
    c->out_len = 0;
    c->out_cap = 0;
    return p;
}

/* ---- transport teardown ---------------------------------------------- */

/* Records why the transport ends; the first cause wins. */
static void set_disc(wsb_client_t *c, int status, int close_code, bool retry, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void set_disc(wsb_client_t *c, int status, int close_code, bool retry, const char *fmt, ...)
{
    if (c->disc.set) {
        return;
    }
    c->disc.set = true;
    c->disc.status = status;
    c->disc.close_code = close_code;
    c->disc.retry = retry;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(c->disc.reason, sizeof(c->disc.reason), fmt, ap);
    va_end(ap);
}

static void close_transport(wsb_client_t *c, bool flush)
{
    if (!c->transport_active || (c->transport_closing && flush)) {
        return;
    }
    c->transport_closing = true;
    c->io.close(c->io.data, flush);
}

/* Ends the transport at once (no close frame) for a local reason. */
static void abort_transport(wsb_client_t *c, int status, bool retry, const char *reason)
{
    set_disc(c, status, WSB_WS_CLOSE_ABNORMAL, retry, "%s", reason);
    if (c->state != WSB_CLIENT_IDLE && c->state != WSB_CLIENT_BACKOFF) {
        c->state = WSB_CLIENT_CLOSING;
    }
    close_transport(c, false);
}

static int send_close(wsb_client_t *c, int code, const char *reason)
{
    uint8_t payload[WSB_WS_MAX_CONTROL_PAYLOAD];
    size_t n = wsb_ws_close_payload(payload, code, reason);
    int rc = wsb__send_frame(c, WSB_WS_OP_CLOSE, payload, n);
    c->close_sent = true;
    return rc;
}

/* The broker broke the protocol: close with `close_code`, then the TCP. */
static void protocol_fail(wsb_client_t *c, int status, int close_code, const char *why)
{
    set_disc(c, status, close_code, true, "the broker broke the protocol: %s", why);
    if (c->open && !c->close_sent) {
        (void)send_close(c, close_code, why);
    }
    c->state = WSB_CLIENT_CLOSING;
    if (c->opts.close_timeout_ms > 0) {
        c->io.timer_start(c->io.data, c->opts.close_timeout_ms);
    }
    close_transport(c, true);
}

static uint32_t random_u32(void)
{
    uint8_t b[4] = {0, 0, 0, 0};
    (void)wsb_ws_random_mask(b);
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* Exponential backoff with "equal jitter": uniform in [d/2, d]. */
static uint64_t backoff_ms(const wsb_client_t *c, uint32_t attempt)
{
    uint64_t d = c->opts.reconnect_min_ms;
    for (uint32_t i = 0; i < attempt && d < c->opts.reconnect_max_ms; i++) {
        d *= 2;
    }
    if (d > c->opts.reconnect_max_ms) {
        d = c->opts.reconnect_max_ms;
    }
    uint64_t half = d / 2;
    return half + random_u32() % (d - half + 1);
}

static void reset_connection_state(wsb_client_t *c)
{
    free(c->resp);
    c->resp = NULL;
    c->rejecting = false;
    c->body_len = 0;
    c->body_need = 0;
    c->msg_len = 0;
    c->msg_opcode = 0;
    free(c->out);
    c->out = NULL;
    c->out_len = 0;
    c->out_cap = 0;
    c->open = false;
    c->close_sent = false;
    c->close_received = false;
    c->ping_outstanding = false;
    c->rx_since_ping = false;
}

static void set_reject(wsb_client_t *c); /* with the handshake code below */

/* The transport is gone: settle requests, decide on reconnecting, report. */
static void transport_ended(wsb_client_t *c, int status, const char *reason)
{
    bool was_open = c->open;
    bool user = c->user_closing;
    c->transport_active = false;
    c->transport_closing = false;
    c->io.timer_stop(c->io.data);

    if (c->rejecting) {
        /* A refusal without Content-Length: its body ended with the connection. */
        set_reject(c);
    }
    wsb_client_disconnect_t d;
    memset(&d, 0, sizeof(d));
    if (c->disc.set) {
        d.status = c->disc.status;
        d.close_code = c->disc.close_code;
        d.http_status = c->disc.http_status;
        d.reason = c->disc.reason;
    } else if (user) {
        d.status = 0;
        d.close_code = WSB_WS_CLOSE_ABNORMAL;
        d.reason = "closed by the application";
        c->disc.retry = false;
    } else {
        d.status = status != 0 ? status : WSB_ECLOSED;
        d.close_code = WSB_WS_CLOSE_ABNORMAL;
        set_reason(c->disc.reason, sizeof(c->disc.reason), "%s",
                   reason != NULL ? reason : "the connection ended");
        d.reason = c->disc.reason;
        /* An untrusted certificate stays untrusted: a retry would only repeat. */
        c->disc.retry = status != WSB_ETLS;
    }
    d.was_open = was_open;
    d.reconnect_ms = -1;
    bool retry =
        c->disc.retry && !user && c->opts.reconnect &&
        (c->opts.reconnect_max_attempts == 0 || c->attempts < c->opts.reconnect_max_attempts);
    wsb__requests_on_disconnect(c, user ? WSB_ECLOSED : 0);
    reset_connection_state(c);
    c->disc.set = false;
    if (retry) {
        uint64_t ms = backoff_ms(c, c->attempts);
        c->attempts++;
        c->state = WSB_CLIENT_BACKOFF;
        c->io.timer_start(c->io.data, ms);
        d.reconnect_ms = (int64_t)ms;
    } else {
        c->state = WSB_CLIENT_IDLE;
    }
    wsb__run_done(c);
    if (c->cb.on_disconnect != NULL && !c->free_pending) {
        c->cb.on_disconnect(c, &d, c->user_data);
    }
    if (user && c->user_closing && !c->free_pending) {
        c->user_closing = false;
        if (c->cb.on_closed != NULL) {
            c->cb.on_closed(c, c->user_data);
        }
    }
}

/* ---- connect / close ------------------------------------------------- */

static const wsb_ws_parser_callbacks_t parser_cb; /* defined with its callbacks below */

static int start_attempt(wsb_client_t *c)
{
    uint8_t raw[16];
    for (size_t i = 0; i < 4; i++) {
        if (wsb_ws_random_mask(raw + 4 * i) != 0) {
            return WSB_ENOMEM;
        }
    }
    char key[WSB__WS_KEY_LEN + 1];
    wsb__base64_16(raw, key);
    wsb_handshake_accept_key((wsb_str_t){key, WSB__WS_KEY_LEN}, c->accept);
    if (c->accept[0] == '\0') {
        return WSB_ENOMEM;
    }
    reset_connection_state(c);
    c->resp = malloc(sizeof(*c->resp));
    if (c->resp == NULL) {
        return WSB_ENOMEM;
    }
    wsb__resp_init(c->resp);
    size_t req_len = 0;
    char *req = wsb__upgrade_request(&c->url, key, c->token, c->origin, &req_len);
    if (req == NULL) {
        return WSB_ENOMEM;
    }
    /* The request waits in `out` until the adapter reports the connection. */
    free(c->out);
    c->out = (uint8_t *)req;
    c->out_len = req_len;
    c->out_cap = req_len + 1;
    wsb_ws_parser_release(&c->parser); /* a frame split by the last connection's end */
    wsb_ws_parser_init(&c->parser, WSB_WS_ROLE_CLIENT, c->opts.max_incoming_size, &parser_cb, c);
    c->disc.set = false;
    c->disc.http_status = 0;
    c->state = WSB_CLIENT_CONNECTING;
    c->transport_active = true;
    c->transport_closing = false;
    if (c->opts.connect_timeout_ms > 0) {
        c->io.timer_start(c->io.data, c->opts.connect_timeout_ms);
    }
    int rc = c->io.connect(c->io.data, c->url.host, c->url.port, c->url.tls);
    if (rc != 0) {
        c->transport_active = false;
        c->io.timer_stop(c->io.data);
        reset_connection_state(c);
        c->state = WSB_CLIENT_IDLE;
        return rc;
    }
    return 0;
}

int wsb_client_connect(wsb_client_t *c)
{
    if (!c->attached || c->freeing || c->user_closing || c->state != WSB_CLIENT_IDLE) {
        return WSB_ESTATE;
    }
    if (c->url.tls && !c->io.tls) {
        return WSB_ENOTSUP;
    }
    c->attempts = 0;
    return start_attempt(c);
}

int wsb_client_close(wsb_client_t *c)
{
    if (c->user_closing || c->freeing) {
        return 0;
    }
    if (!c->attached) {
        return WSB_ESTATE;
    }
    c->user_closing = true;
    wsb__cancel_queue(c);
    switch (c->state) {
    case WSB_CLIENT_IDLE:
    case WSB_CLIENT_BACKOFF:
        /* Nothing to tear down: on_closed comes from a 0 ms timer so that it
         * never runs inside this call. */
        c->state = WSB_CLIENT_IDLE;
        c->closed_notice = true;
        c->io.timer_start(c->io.data, 0);
        break;
    case WSB_CLIENT_CONNECTING:
        set_disc(c, 0, WSB_WS_CLOSE_ABNORMAL, false, "closed by the application while connecting");
        c->state = WSB_CLIENT_CLOSING;
        close_transport(c, false);
        break;
    case WSB_CLIENT_OPEN:
        set_disc(c, 0, WSB_WS_CLOSE_NORMAL, false, "closed by the application");
        c->state = WSB_CLIENT_CLOSING;
        if (send_close(c, WSB_WS_CLOSE_NORMAL, NULL) != 0) {
            close_transport(c, false);
            break;
        }
        if (c->opts.close_timeout_ms > 0) {
            c->io.timer_start(c->io.data, c->opts.close_timeout_ms);
        }
        break;
    case WSB_CLIENT_CLOSING:
        /* Already ending; transport_ended() delivers on_closed. */
        break;
    }
    return 0;
}

/* ---- WebSocket parser callbacks -------------------------------------- */

static int on_msg_begin(void *ud, int opcode)
{
    wsb_client_t *c = ud;
    c->msg_opcode = opcode;
    c->msg_len = 0;
    return 0;
}

static int on_msg_data(void *ud, const uint8_t *data, size_t len)
{
    wsb_client_t *c = ud;
    if (c->msg_opcode != WSB_WS_OP_TEXT) {
        return 0; /* binary messages are not part of the protocol: ignored */
    }
    if (c->msg_len + len > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 1024;
        while (cap < c->msg_len + len) {
            cap *= 2;
        }
        uint8_t *p = realloc(c->msg, cap);
        if (p == NULL) {
            protocol_fail(c, WSB_ENOMEM, WSB_WS_CLOSE_INTERNAL, "out of memory");
            return 1;
        }
        c->msg = p;
        c->msg_cap = cap;
    }
    memcpy(c->msg + c->msg_len, data, len);
    c->msg_len += len;
    return 0;
}

static int on_msg_end(void *ud)
{
    wsb_client_t *c = ud;
    if (c->msg_opcode == WSB_WS_OP_TEXT) {
        wsb__handle_text(c, (const char *)c->msg, c->msg_len);
    }
    c->msg_len = 0;
    /* A large message's buffer is not kept for the life of the connection. */
    if (c->msg_cap > (size_t)64 * 1024) {
        free(c->msg);
        c->msg = NULL;
        c->msg_cap = 0;
    }
    return stopping(c) ? 1 : 0;
}

static int on_ping(void *ud, const uint8_t *payload, size_t len)
{
    wsb_client_t *c = ud;
    if (wsb__can_send(c) && wsb__send_frame(c, WSB_WS_OP_PONG, payload, len) != 0) {
        protocol_fail(c, WSB_ENOMEM, WSB_WS_CLOSE_INTERNAL, "out of memory");
        return 1;
    }
    return 0;
}

static int on_close_frame(void *ud, int code, const uint8_t *reason, size_t len)
{
    wsb_client_t *c = ud;
    c->close_received = true;
    if (!c->close_sent) {
        /* The broker closes: echo its code (RFC 6455 5.5.1), then end. */
        bool retry = code != WSB_WS_CLOSE_PROTOCOL && code != WSB_WS_CLOSE_UNSUPPORTED &&
                     code != WSB_WS_CLOSE_BAD_DATA && code != WSB_WS_CLOSE_TOO_BIG;
        int wire = code == WSB_WS_CLOSE_NO_STATUS ? 0 : code;
        set_disc(c, WSB_ECLOSED, code, retry, "the broker closed the connection (%d%s%.*s)", code,
                 len > 0 ? ": " : "", (int)len, (const char *)reason);
        uint8_t payload[WSB_WS_MAX_CONTROL_PAYLOAD];
        size_t n = wire != 0 ? wsb_ws_close_payload(payload, wire, NULL) : 0;
        (void)wsb__send_frame(c, WSB_WS_OP_CLOSE, payload, n);
        c->close_sent = true;
        if (c->opts.close_timeout_ms > 0) {
            c->io.timer_start(c->io.data, c->opts.close_timeout_ms);
        }
    }
    c->state = WSB_CLIENT_CLOSING;
    close_transport(c, true);
    return 1;
}

static const wsb_ws_parser_callbacks_t parser_cb = {
    .on_message_begin = on_msg_begin,
    .on_message_data = on_msg_data,
    .on_message_end = on_msg_end,
    .on_ping = on_ping,
    .on_pong = NULL,
    .on_close = on_close_frame,
};

/* ---- handshake -------------------------------------------------------- */

static bool http_retriable(int status)
{
    return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

/* Records the refusal of the upgrade (status and the start of the body). */
static void set_reject(wsb_client_t *c)
{
    int st = c->resp->status;
    size_t n = c->body_len;
    while (n > 0 && (c->body[n - 1] == '\n' || c->body[n - 1] == '\r')) {
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)c->body[i] < 0x20) {
            c->body[i] = ' ';
        }
    }
    set_disc(c, WSB_EHANDSHAKE, WSB_WS_CLOSE_ABNORMAL, http_retriable(st),
             "the broker refused the upgrade: HTTP %d%s%.*s", st, n > 0 ? ": " : "", (int)n,
             c->body);
    c->disc.http_status = st;
}

static void finish_reject(wsb_client_t *c)
{
    set_reject(c);
    c->state = WSB_CLIENT_CLOSING;
    close_transport(c, false);
}

static void collect_body(wsb_client_t *c, const uint8_t *data, size_t len)
{
    size_t room = c->body_need - c->body_len;
    size_t n = len < room ? len : room;
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    if (c->body_len == c->body_need) {
        finish_reject(c);
    }
}

static void handshake_done(wsb_client_t *c)
{
    free(c->resp);
    c->resp = NULL;
    c->open = true;
    c->state = WSB_CLIENT_OPEN;
    c->attempts = 0;
    c->io.timer_stop(c->io.data);
    if (c->opts.ping_interval_ms > 0) {
        c->io.timer_start(c->io.data, c->opts.ping_interval_ms);
    }
    wsb__flush_after_open(c);
}

/* Feeds handshake bytes; returns how many were used (the rest is WebSocket
 * data), or SIZE_MAX when the transport is ending. */
static size_t feed_handshake(wsb_client_t *c, const uint8_t *data, size_t len)
{
    if (c->rejecting) {
        collect_body(c, data, len);
        return SIZE_MAX;
    }
    char why[200];
    size_t used = 0;
    int rc = wsb__resp_feed(c->resp, data, len, &used, why, sizeof(why));
    if (rc == WSB_EAGAIN) {
        return SIZE_MAX;
    }
    if (rc != 0) {
        char msg[240];
        set_reason(msg, sizeof(msg), "invalid HTTP response: %s", why);
        abort_transport(c, WSB_EHANDSHAKE, false, msg);
        return SIZE_MAX;
    }
    if (c->resp->status != 101) {
        c->rejecting = true;
        int64_t cl = c->resp->content_length;
        c->body_need = (cl < 0 || (uint64_t)cl > sizeof(c->body)) ? sizeof(c->body) : (size_t)cl;
        if (c->body_need == 0) {
            finish_reject(c);
        } else {
            collect_body(c, data + used, len - used);
        }
        return SIZE_MAX;
    }
    if (wsb__resp_check_upgrade(c->resp, c->accept, why, sizeof(why)) != 0) {
        abort_transport(c, WSB_EHANDSHAKE, false, why);
        return SIZE_MAX;
    }
    handshake_done(c);
    return used;
}

/* ---- adapter entry points -------------------------------------------- */

void wsb_client_io_connected(wsb_client_t *c)
{
    if (c->state != WSB_CLIENT_CONNECTING || stopping(c)) {
        return;
    }
    /* The upgrade request has been waiting in `out` since start_attempt(). */
    notify_write(c);
}

void wsb_client_io_read(wsb_client_t *c, uint8_t *data, size_t len)
{
    if (stopping(c) || len == 0) {
        return;
    }
    enter(c);
    c->rx_since_ping = true;
    if (!c->open) {
        size_t used = feed_handshake(c, data, len);
        if (used == SIZE_MAX || stopping(c)) {
            (void)leave(c);
            return;
        }
        data += used;
        len -= used;
    }
    int rc = wsb_ws_parser_feed(&c->parser, data, len, NULL);
    if (rc < 0 && !stopping(c)) {
        int status = rc == WSB_ENOMEM ? WSB_ENOMEM : rc;
        protocol_fail(c, status, c->parser.close_code ? c->parser.close_code : 1002,
                      c->parser.error ? c->parser.error : wsb_strerror(rc));
    }
    (void)leave(c);
}

void wsb_client_io_closed(wsb_client_t *c, int status, const char *reason)
{
    if (!c->transport_active) {
        return;
    }
    enter(c);
    transport_ended(c, status, reason);
    (void)leave(c);
}

static void keepalive_tick(wsb_client_t *c)
{
    if (c->ping_outstanding && !c->rx_since_ping) {
        char why[120];
        set_reason(why, sizeof(why), "nothing received from the broker for %u ms after a ping",
                   c->opts.ping_interval_ms);
        abort_transport(c, WSB_ETIMEDOUT, true, why);
        return;
    }
    if (wsb__send_frame(c, WSB_WS_OP_PING, NULL, 0) != 0) {
        abort_transport(c, WSB_ENOMEM, true, "out of memory");
        return;
    }
    c->ping_outstanding = true;
    c->rx_since_ping = false;
    c->io.timer_start(c->io.data, c->opts.ping_interval_ms);
}

void wsb_client_io_timer(wsb_client_t *c)
{
    enter(c);
    switch (c->state) {
    case WSB_CLIENT_CONNECTING: {
        char why[360];
        set_reason(why, sizeof(why), "connecting to %s timed out after %u ms", c->url.host_header,
                   c->opts.connect_timeout_ms);
        abort_transport(c, WSB_ETIMEDOUT, true, why);
        break;
    }
    case WSB_CLIENT_OPEN:
        if (wsb__can_send(c)) {
            keepalive_tick(c);
        }
        break;
    case WSB_CLIENT_CLOSING:
        /* The broker did not finish the close handshake in time. */
        if (c->transport_active) {
            c->transport_closing = true;
            c->io.close(c->io.data, false);
        }
        break;
    case WSB_CLIENT_BACKOFF: {
        int rc = start_attempt(c);
        if (rc != 0) {
            c->transport_active = true;
            set_disc(c, rc, WSB_WS_CLOSE_ABNORMAL, true, "cannot start connecting: %s",
                     wsb_client_strerror(rc));
            transport_ended(c, rc, NULL);
        }
        break;
    }
    case WSB_CLIENT_IDLE:
        if (c->closed_notice) {
            c->closed_notice = false;
            c->user_closing = false;
            wsb__run_done(c);
            if (c->cb.on_closed != NULL && !c->free_pending) {
                c->cb.on_closed(c, c->user_data);
            }
        }
        break;
    }
    (void)leave(c);
}
