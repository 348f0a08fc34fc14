/* client_options.c - the client's options (defaults and checks) and its
 * error texts. */
#include "client_http.h"
#include "wsb/client.h"

#include <stdarg.h>
#include <stdio.h>
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

void wsb_client_options_init(wsb_client_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = WSB_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS;
    o->ping_interval_ms = WSB_CLIENT_DEFAULT_PING_INTERVAL_MS;
    o->close_timeout_ms = WSB_CLIENT_DEFAULT_CLOSE_TIMEOUT_MS;
    o->reconnect_min_ms = WSB_CLIENT_DEFAULT_RECONNECT_MIN_MS;
    o->reconnect_max_ms = WSB_CLIENT_DEFAULT_RECONNECT_MAX_MS;
    o->max_message_size = WSB_CLIENT_DEFAULT_MAX_MESSAGE_SIZE;
    o->max_incoming_size = WSB_CLIENT_DEFAULT_MAX_INCOMING_SIZE;
    o->max_queue_bytes = WSB_CLIENT_DEFAULT_MAX_QUEUE_BYTES;
}

int wsb_client_options_check(const wsb_client_options_t *o, char *why, size_t cap)
{
    char tmp[1];
    if (why == NULL) {
        why = tmp;
        cap = sizeof(tmp);
    }
    if (o == NULL) {
        set_reason(why, cap, "no options given");
        return WSB_EINVAL;
    }
    wsb__url_t u;
    int rc = wsb__url_parse(o->url, &u, why, cap);
    if (rc != 0) {
        return rc == WSB_ENOMEM ? rc : WSB_EINVAL;
    }
    wsb__url_free(&u);
    if (o->token != NULL && !wsb__header_safe(o->token, false)) {
        set_reason(why, cap, "token: must be non-empty printable ASCII without spaces");
        return WSB_EINVAL;
    }
    if (o->origin != NULL && !wsb__header_safe(o->origin, true)) {
        set_reason(why, cap, "origin: must be non-empty printable ASCII");
        return WSB_EINVAL;
    }
    if (o->max_message_size == 0 || o->max_incoming_size == 0 || o->max_queue_bytes == 0) {
        set_reason(why, cap, "max_message_size, max_incoming_size and max_queue_bytes must be > 0");
        return WSB_EINVAL;
    }
    if (o->reconnect && (o->reconnect_min_ms == 0 || o->reconnect_min_ms > o->reconnect_max_ms)) {
        set_reason(why, cap, "reconnect_min_ms (%u) must be > 0 and <= reconnect_max_ms (%u)",
                   o->reconnect_min_ms, o->reconnect_max_ms);
        return WSB_EINVAL;
    }
    return 0;
}

const char *wsb_client_strerror(int err)
{
    switch (err) {
    case WSB_ECLOSED:
        return "the connection ended before the reply arrived";
    case WSB_ESERVER:
        return "the broker answered with an error";
    case WSB_ETIMEDOUT:
        return "timed out";
    case WSB_EQUEUEFULL:
        return "the outgoing queue is full";
    case WSB_ECANCELED:
        return "canceled by the application";
    case WSB_ESTATE:
        return "not allowed in the client's current state";
    case WSB_ENOTSUP:
        return "wss:// needs an adapter with TLS";
    case WSB_ETLS:
        return "TLS failure (handshake, certificate or record)";
    default:
        return wsb_strerror(err);
    }
}
