/*
 * client.h - the wsbroker C client: pub/sub over WebSocket (protocol v1).
 *
 * Structure (hiredis style). A wsb_client_t is a loop-agnostic core: it parses
 * the broker's bytes, produces the bytes to send (the HTTP upgrade request and
 * masked WebSocket frames), validates the 101 response and its
 * Sec-WebSocket-Accept, answers pings, runs the close handshake, keeps the
 * subscriptions for resubscription and matches replies to requests. It does
 * no I/O itself: an adapter moves the bytes and runs one timer through the
 * hooks of wsb_client_io_t. wsb_client_uv_attach() is the libuv adapter; a
 * test (or another event loop) may attach its own hooks instead.
 *
 * Typical use with libuv:
 *
 *     wsb_client_options_t o;
 *     wsb_client_options_init(&o);
 *     o.url = "ws://127.0.0.1:8080/ws";
 *     wsb_client_t *c = wsb_client_new(&o, &callbacks, app);
 *     wsb_client_uv_attach(c, loop);
 *     wsb_client_connect(c);
 *     wsb_client_subscribe(c, "prices.>", &reply_cb, app);
 *     uv_run(loop, UV_RUN_DEFAULT);   // wsb_client_free() from on_closed ends it
 *
 * Threading: a client and its adapter belong to one thread (the loop's).
 *
 * Callbacks. Every callback of this API runs from an adapter event (bytes
 * read, transport connected or closed, timer), never from inside a call the
 * application made, with one exception: wsb_client_free() calls the reply
 * callbacks of unfinished requests (status WSB_ECANCELED) so the application
 * can release their user_data. Inside any callback the application may call
 * every function of this API, wsb_client_free() included (the free is then
 * deferred until the callback returns).
 *
 * Borrowed data. Every pointer handed to a callback (topics, JSON text,
 * messages, the welcome) is valid only until that callback returns.
 *
 * Ownership. wsb_client_new() returns a client owned by the caller and
 * released with wsb_client_free(). Option strings are copied by
 * wsb_client_new(); the callback structs are copied too.
 *
 * Delivery. At most once, as the broker (protocol/PROTOCOL.md section 6).
 * Requests made while the client is not connected are queued (bounded by
 * max_queue_bytes) and sent, in order, once the next connection is open.
 * On every (re)connection the client first re-sends a subscribe for every
 * pattern the broker acknowledged before (resubscription), then the queue.
 * When a connection ends, subscribe and unsubscribe requests that were sent
 * but not answered are sent again on the next connection (both are
 * idempotent); publish requests that were sent but not answered fail with
 * WSB_ECLOSED (the broker may or may not have published them).
 *
 * TLS. wss:// URLs (default port 443) are passed to the adapter with
 * tls = true. The libuv adapter speaks TLS through wsb/tls_client.h: TLS 1.2
 * or later, ALPN http/1.1, SNI = the URL's host, and the broker's
 * certificate verified by default against the system store, or against
 * options.ca_file only when it is set, and against the URL's host (a name
 * or an IP address). options.insecure skips verification (tests and
 * development only). A failed handshake ends the attempt with WSB_ETLS and
 * a reason that names the cause (an untrusted certificate, a name
 * mismatch...); it is not retried. An adapter without TLS makes
 * wsb_client_connect() fail with WSB_ENOTSUP for wss:// URLs.
 *
 * Errors are 0 or a negative code: the WSB_E* codes of wsb/common.h, the
 * client codes below, or (in a disconnect's status) a libuv UV_E* code from
 * the transport. wsb_client_strerror() names the WSB_* ones.
 */
#ifndef WSB_CLIENT_H
#define WSB_CLIENT_H

#include "wsb/common.h"
#include "wsb/tls_client.h" /* WSB_ETLS */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes of the client (the range below wsb/common.h's WSB_E* codes and
 * outside libuv's negated errno values). */
enum {
    WSB_ECLOSED = -30101,    /* the connection ended before the reply arrived */
    WSB_ESERVER = -30102,    /* the broker answered with an error reply (see code) */
    WSB_ETIMEDOUT = -30103,  /* connecting, the handshake or a keepalive timed out */
    WSB_EQUEUEFULL = -30104, /* max_queue_bytes would be exceeded; retry after acks */
    WSB_ECANCELED = -30105,  /* wsb_client_close() or _free() ended the request */
    WSB_ESTATE = -30106,     /* not allowed now (after wsb_client_close(), no adapter) */
    WSB_ENOTSUP = -30107     /* wss:// with an adapter that has no TLS */
    /* WSB_ETLS (-30108, wsb/tls_client.h): the TLS handshake failed (the
     * broker's certificate is not trusted or does not name the host, no
     * common protocol) or a TLS record was bad. */
};

/* Defaults used by wsb_client_options_init(). */
#define WSB_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define WSB_CLIENT_DEFAULT_PING_INTERVAL_MS   20000u
#define WSB_CLIENT_DEFAULT_CLOSE_TIMEOUT_MS   2000u
#define WSB_CLIENT_DEFAULT_RECONNECT_MIN_MS   250u
#define WSB_CLIENT_DEFAULT_RECONNECT_MAX_MS   30000u
#define WSB_CLIENT_DEFAULT_MAX_MESSAGE_SIZE   65536u
#define WSB_CLIENT_DEFAULT_MAX_INCOMING_SIZE  ((size_t)1024 * 1024)
#define WSB_CLIENT_DEFAULT_MAX_QUEUE_BYTES    ((size_t)1024 * 1024)

typedef struct wsb_client_s wsb_client_t;

typedef struct {
    /* ws://host[:port][/path][?query] or wss://…; REQUIRED. host may be a
     * name, an IPv4 address or a bracketed IPv6 address. Default path "/". */
    const char *url;
    /* Optional credentials: sent as "Authorization: Bearer TOKEN" and as the
     * query parameter token=TOKEN (percent-encoded). Printable ASCII only. */
    const char *token;
    /* Optional Origin header (printable ASCII). */
    const char *origin;
    /* wss:// only. A PEM file of the CA certificates to trust instead of the
     * system store (NULL: the system store). */
    const char *ca_file;
    /* wss:// only: do not verify the broker's certificate or name. For tests
     * and development: anyone on the path can then read and change the
     * traffic. Default false. */
    bool insecure;
    /* Time allowed for name resolution, TCP connect and the 101 response;
     * 0 = no limit. */
    uint32_t connect_timeout_ms;
    /* While open, a WebSocket Ping is sent every ping_interval_ms; when
     * nothing at all was received during a whole interval after a ping, the
     * connection is considered dead (WSB_ETIMEDOUT). 0 = off. */
    uint32_t ping_interval_ms;
    /* After wsb_client_close() sends its close frame, how long to wait for
     * the broker's before closing the TCP connection anyway. */
    uint32_t close_timeout_ms;
    /* Reconnect after a connection ends (not after wsb_client_close(), an
     * HTTP status other than 408, 429 and 5xx, or a close code 1002, 1003,
     * 1007, 1009, which a retry would only repeat). The delay doubles from
     * reconnect_min_ms up to reconnect_max_ms and is then drawn uniformly
     * from [delay/2, delay] (jitter); it starts over after a connection
     * opens. reconnect_max_attempts consecutive failures end the retries
     * (0 = retry forever). */
    bool reconnect;
    uint32_t reconnect_min_ms;
    uint32_t reconnect_max_ms;
    uint32_t reconnect_max_attempts;
    /* Largest message this client sends (the JSON text of a request); the
     * smaller of this and the welcome's limits.max_message_size applies.
     * The broker's limit is known from the first welcome on: requests
     * queued before it are checked against this option only. */
    size_t max_message_size;
    /* Largest message accepted from the broker (reassembled); beyond it the
     * client closes the connection with 1009. */
    size_t max_incoming_size;
    /* Bound on the bytes of requests waiting to be sent: queued while not
     * connected plus framed but not yet handed to the transport. */
    size_t max_queue_bytes;
} wsb_client_options_t;

/* Fills *o with no URL and the WSB_CLIENT_DEFAULT_* values (reconnect off). */
void wsb_client_options_init(wsb_client_options_t *o);

/*
 * Checks options without creating a client. Returns 0, or WSB_EINVAL with a
 * sentence in `why` (NUL-terminated, cut to `cap`; may be NULL) naming the
 * option and the rule: a missing or malformed URL, a scheme other than ws or
 * wss, a bad port, a token or origin with characters outside printable
 * ASCII, a zero size limit, reconnect_min_ms > reconnect_max_ms.
 */
int wsb_client_options_check(const wsb_client_options_t *o, char *why, size_t cap);

/* The broker's first message on a connection (PROTOCOL.md 4.1). */
typedef struct {
    int protocol;          /* 1 */
    const char *client_id; /* "" when absent */
    const char *node_id;   /* "" when absent */
    const char *version;   /* "" when absent */
    uint64_t max_message_size;
    uint32_t max_subscriptions;
    uint32_t ping_interval_ms;
} wsb_client_welcome_t;

/* A delivered message. Slices are NUL-terminated (p[len] == '\0'). */
typedef struct {
    wsb_str_t topic; /* the exact topic */
    uint64_t seq;
    wsb_str_t epoch;     /* {NULL,0} when the topic keeps no history */
    wsb_str_t data;      /* compact JSON text of the value (see PROTOCOL.md 4.2) */
    const json_t *value; /* the same value as a jansson tree (borrowed) */
    /* The publisher's identity {"client":…,"user":…} the broker stamps on
     * topics whose rule has "publisher": true (borrowed); NULL when absent. */
    const json_t *from;
    /* A request's message (PROTOCOL.md 3.7): the inbox "_inbox.<hex>" to
     * answer to, {NULL,0} for a plain publish. A responder answers with
     * wsb_client_publish(c, msg->reply_to.p, data, len, cb, ud) (copy the
     * name to answer later: it is borrowed like the rest of the message).
     * The requester gets the first answer only; later ones are dropped. */
    wsb_str_t reply_to;
} wsb_client_message_t;

/* A connection as presence names it (PROTOCOL.md, presence): `client` is
 * unique per connection (its welcome's client_id), `user` its token's `sub`
 * or NULL. Borrowed: valid until the callback returns. */
typedef struct {
    const char *client;
    const char *user;
} wsb_client_member_t;

/* A successful reply. */
typedef struct {
    uint64_t id;  /* the request's id (chosen by the client) */
    bool has_seq; /* publish: the seq the broker assigned */
    uint64_t seq;
    int recovered; /* subscribe with since: 0 or 1; -1 when absent */
    /* wsb_client_presence(): the topic's members (PROTOCOL.md 3.6; borrowed,
     * valid until the callback returns; members whose `client` is not a
     * string are skipped). NULL and 0 for other requests. */
    const wsb_client_member_t *members;
    size_t nmembers;
    /* wsb_client_presence_stats(): connections and distinct users. */
    uint64_t clients;
    uint64_t users;
    /* wsb_client_request(): the first reply's data as compact JSON text
     * (NUL-terminated) and as a jansson tree, and `from`, the responder the
     * broker stamped ({"client":…,"user":…}; NULL when absent or null).
     * All borrowed until the callback returns; {NULL,0} and NULL for other
     * requests. */
    wsb_str_t data;
    const json_t *value;
    const json_t *from;
} wsb_client_ack_t;

/* A failed request, or an error not tied to a request callback. */
typedef struct {
    /* WSB_ESERVER: the broker's error reply, `code` and `message` are its
     * fields. Otherwise a local failure: WSB_ECLOSED, WSB_ECANCELED,
     * WSB_ETOOBIG (the welcome announced a smaller max_message_size than the
     * request), WSB_EPROTO (an undecodable message from the broker, on
     * on_error only; or a reply whose type does not answer the request, e.g.
     * an ack to a presence request), with code NULL and a message naming the
     * cause. */
    int status;
    const char *code;
    const char *message;
    bool has_id;
    uint64_t id;
    /* The topic or pattern of the request this error answers, NULL when it
     * is not known (an error reply without id). */
    const char *topic;
} wsb_client_error_t;

/* How a connection (or a connection attempt) ended. */
typedef struct {
    /* 0: wsb_client_close() ended it cleanly. WSB_ECLOSED: the broker closed
     * it with a close frame (close_code, reason). WSB_EHANDSHAKE: the broker
     * refused the upgrade (http_status) or its 101 response was invalid.
     * WSB_ETIMEDOUT: connect, handshake or keepalive timeout. WSB_EPROTO,
     * WSB_EUTF8, WSB_ETOOBIG: the broker broke the protocol (the client sent
     * close_code). WSB_ENOMEM. Otherwise a transport error (libuv UV_E*). */
    int status;
    int close_code;       /* the close code received or sent; 1006 when none */
    int http_status;      /* the status of a refused upgrade, else 0 */
    const char *reason;   /* human-readable, never NULL */
    bool was_open;        /* the handshake had completed */
    int64_t reconnect_ms; /* delay before the next attempt; -1: no reconnect */
} wsb_client_disconnect_t;

/* Connection-level callbacks; any may be NULL. Copied by wsb_client_new(). */
typedef struct {
    /* A connection is ready: the broker's welcome arrived. */
    void (*on_open)(wsb_client_t *c, const wsb_client_welcome_t *welcome, void *user_data);
    /* A message matching a subscription (not called after wsb_client_close()). */
    void (*on_message)(wsb_client_t *c, const wsb_client_message_t *msg, void *user_data);
    /* An error with no request callback to receive it: an error reply
     * without id (e.g. a publish sent without callbacks), a failed
     * resubscription (the pattern is then dropped), a reply to a request
     * made without callbacks, a request that could not be sent (too big
     * for the broker's announced limit), or a text message from the broker
     * that is not a JSON object (status WSB_EPROTO, code NULL; the message
     * is ignored and the connection stays open). */
    void (*on_error)(wsb_client_t *c, const wsb_client_error_t *err, void *user_data);
    /* A connection or a connection attempt ended. When d->reconnect_ms is -1
     * the client is idle until wsb_client_connect() or wsb_client_close(). */
    void (*on_disconnect)(wsb_client_t *c, const wsb_client_disconnect_t *d, void *user_data);
    /* Called exactly once after each wsb_client_close(), when the transport
     * is closed, no timer is armed and every request callback has run. */
    void (*on_closed)(wsb_client_t *c, void *user_data);
    /* join / leave (PROTOCOL.md 4.8), on topics whose broker rule has
     * "join_leave": true: `member` subscribed to, or left, the exact `topic`
     * this connection is subscribed to (never for this connection's own
     * subscribe). Both borrowed until the callback returns. Not called after
     * wsb_client_close(). Frames without a topic or a string client are
     * ignored. */
    void (*on_join)(wsb_client_t *c, const char *topic, const wsb_client_member_t *member,
                    void *user_data);
    void (*on_leave)(wsb_client_t *c, const char *topic, const wsb_client_member_t *member,
                     void *user_data);
} wsb_client_callbacks_t;

/* Per-request callbacks; either may be NULL. Exactly one of them runs once
 * for a request made with a non-NULL struct (the struct is copied). */
typedef struct {
    void (*on_ack)(wsb_client_t *c, const wsb_client_ack_t *ack, void *user_data);
    void (*on_error)(wsb_client_t *c, const wsb_client_error_t *err, void *user_data);
} wsb_client_reply_cb_t;

/*
 * Creates an idle client. Owner: the caller, wsb_client_free(). `cb` may be
 * NULL. Returns NULL when the options fail wsb_client_options_check() (call
 * it for the reason) or memory runs out.
 */
wsb_client_t *wsb_client_new(const wsb_client_options_t *o, const wsb_client_callbacks_t *cb,
                             void *user_data);

/*
 * Frees the client at once, or when the current callback returns if called
 * from one. Calls the reply callbacks of unfinished requests with
 * WSB_ECANCELED, then the adapter's cleanup hook (no other callback). Does
 * not send a close frame: call wsb_client_close() first and free from
 * on_closed for a clean close. NULL is a no-op.
 */
void wsb_client_free(wsb_client_t *c);

/*
 * Starts connecting (asynchronously). Allowed when idle: never connected,
 * after a disconnect with no reconnect, or after on_closed. Returns 0,
 * WSB_ESTATE (no adapter attached, already connecting or connected, or
 * closing), WSB_ENOTSUP (wss:// and the adapter has no TLS), WSB_ENOMEM, or
 * the adapter's connect error.
 */
int wsb_client_connect(wsb_client_t *c);

/*
 * Closes cleanly: queued requests fail with WSB_ECANCELED, a connection in
 * the handshake is aborted, an open one gets a close frame (1000) after
 * what was already written, and the client waits close_timeout_ms at most
 * for the broker's close frame. Replies that arrive before it are still
 * delivered, messages are not. Always ends with one on_closed (also when
 * idle). A second call before on_closed does nothing. Returns 0.
 */
int wsb_client_close(wsb_client_t *c);

/*
 * Requests. Each builds the JSON request now and returns at once: it is sent
 * if the connection is open, queued otherwise. `cb` may be NULL: the request
 * then has no reply callback; a subscribe or unsubscribe still carries an
 * id (the client tracks its subscriptions), a publish without callbacks is
 * sent without id (fire and forget; a failure reaches on_error with no id).
 * Returns the request's id (> 0), 0 for a publish sent without id, or:
 *   WSB_EINVAL      the topic/pattern breaks the grammar of PROTOCOL.md 5.1
 *                   (subscribe: a pattern; publish: an exact topic), or
 *                   data_json is not exactly one JSON value;
 *   WSB_ETOOBIG     the request is longer than max_message_size (or the
 *                   broker's announced limit);
 *   WSB_EQUEUEFULL  max_queue_bytes would be exceeded;
 *   WSB_ESTATE      wsb_client_close() was called (until on_closed);
 *   WSB_ENOMEM.
 * On error no callback will run for the request.
 */
int64_t wsb_client_subscribe(wsb_client_t *c, const char *pattern, const wsb_client_reply_cb_t *cb,
                             void *user_data);
int64_t wsb_client_unsubscribe(wsb_client_t *c, const char *pattern,
                               const wsb_client_reply_cb_t *cb, void *user_data);
/* `data_json` is `len` bytes of JSON text (any value, null included); it is
 * validated, then sent verbatim. A reserved topic ("$sys.x") is not refused
 * here: the broker answers forbidden. */
int64_t wsb_client_publish(wsb_client_t *c, const char *topic, const char *data_json, size_t len,
                           const wsb_client_reply_cb_t *cb, void *user_data);

/*
 * Presence of an exact topic whose broker rule enables it (needs the right to
 * subscribe to it): wsb_client_presence() answers on_ack with ack->members,
 * wsb_client_presence_stats() with ack->clients and ack->users. Queued while
 * not open, like every request, and sent again after a reconnect if the
 * connection ended before the answer. Broker errors (forbidden, bad_topic,
 * …) reach on_error with WSB_ESERVER. Returns the request's id, or the
 * errors of the requests above (WSB_EINVAL for a pattern or a bad topic).
 */
int64_t wsb_client_presence(wsb_client_t *c, const char *topic, const wsb_client_reply_cb_t *cb,
                            void *user_data);
int64_t wsb_client_presence_stats(wsb_client_t *c, const char *topic,
                                  const wsb_client_reply_cb_t *cb, void *user_data);

/*
 * Request/reply (PROTOCOL.md 3.7): publishes `data_json` (`len` bytes of one
 * JSON value, as wsb_client_publish()) to the subscribers of the exact
 * `topic` with a reply inbox, and waits for the first answer. `timeout_ms`
 * is the broker's wait for it, 1..60000, or 0 for the broker's default
 * (5000). Exactly one callback runs:
 *   on_ack    the first reply: ack->data / ack->value / ack->from;
 *   on_error  WSB_ESERVER with code "no_responders" (no subscriber of the
 *             topic, answered at once), "timeout" (no reply within
 *             timeout_ms), or another broker error ("forbidden",
 *             "limit_exceeded", "unavailable", …); WSB_ECLOSED when the
 *             connection ended before the end of the request (a request is
 *             never sent twice: a responder may have acted on it);
 *             WSB_ECANCELED, WSB_ETOOBIG as for every request.
 * Queued while not open, like a publish. Returns the request's id (> 0;
 * a request always carries one), or the errors of wsb_client_publish()
 * (WSB_EINVAL also for timeout_ms > 60000).
 */
int64_t wsb_client_request(wsb_client_t *c, const char *topic, const char *data_json, size_t len,
                           uint32_t timeout_ms, const wsb_client_reply_cb_t *cb, void *user_data);

/* The largest timeout_ms of wsb_client_request() (the broker's limit). */
#define WSB_CLIENT_MAX_REQUEST_TIMEOUT_MS 60000u

typedef enum {
    WSB_CLIENT_IDLE = 0,   /* not connected and not trying to */
    WSB_CLIENT_CONNECTING, /* resolving, TCP connect or waiting for the 101 */
    WSB_CLIENT_OPEN,       /* handshake done: requests are sent at once */
    WSB_CLIENT_CLOSING,    /* close frame sent or received, transport closing */
    WSB_CLIENT_BACKOFF     /* waiting before the next reconnect attempt */
} wsb_client_state_t;

wsb_client_state_t wsb_client_state(const wsb_client_t *c);

/* The client's copy of its options (strings point into the client), valid
 * until wsb_client_free(). Adapters read ca_file and insecure from here. */
const wsb_client_options_t *wsb_client_get_options(const wsb_client_t *c);

/* Requests not yet answered: queued plus sent. */
size_t wsb_client_pending(const wsb_client_t *c);

/* Bytes counted against max_queue_bytes now. */
size_t wsb_client_queued_bytes(const wsb_client_t *c);

/* Patterns the broker has acknowledged and that will be resubscribed. */
size_t wsb_client_subscription_count(const wsb_client_t *c);

/* A static description of a WSB_* code (wsb/common.h or the client's). */
const char *wsb_client_strerror(int err);

/* ---------------------------------------------------------------------
 * Adapter interface. The core calls these hooks; they must not call back
 * into the core synchronously, except wsb_client_io_take_output(). The
 * adapter reports events with the wsb_client_io_* functions below.
 * ------------------------------------------------------------------- */
typedef struct {
    void *data; /* passed to every hook */
    /* The adapter speaks TLS (wss:// is refused with WSB_ENOTSUP otherwise). */
    bool tls;
    /* Start a connection to host:port. Success is reported with
     * wsb_client_io_connected(), failure with wsb_client_io_closed(). Returns
     * 0 or a negative error (reported by the core as the attempt's end). */
    int (*connect)(void *data, const char *host, uint16_t port, bool tls);
    /* Output is pending: take it with wsb_client_io_take_output(). */
    void (*want_write)(void *data);
    /* Close the transport; with `flush`, after writing all pending output.
     * Report the end with wsb_client_io_closed(). */
    void (*close)(void *data, bool flush);
    /* Arm the single timer to fire once after `ms` milliseconds (replacing
     * an armed one); report with wsb_client_io_timer(). */
    void (*timer_start)(void *data, uint64_t ms);
    void (*timer_stop)(void *data);
    /* The client is being freed: release the adapter; no hook runs after. */
    void (*cleanup)(void *data);
} wsb_client_io_t;

/* Attaches hooks (copied). Returns 0, or WSB_ESTATE if an adapter is
 * already attached, WSB_EINVAL if a hook is NULL. */
int wsb_client_attach(wsb_client_t *c, const wsb_client_io_t *io);

/* The transport is connected: the core queues the upgrade request. */
void wsb_client_io_connected(wsb_client_t *c);

/* Bytes received (the buffer may be modified in place). */
void wsb_client_io_read(wsb_client_t *c, uint8_t *data, size_t len);

/* The transport ended (after a close hook or by itself). status: 0 for a
 * requested close or EOF, else the transport's error; reason may be NULL. */
void wsb_client_io_closed(wsb_client_t *c, int status, const char *reason);

/* The timer armed by timer_start fired. */
void wsb_client_io_timer(wsb_client_t *c);

/* Takes the pending output: returns a malloc'd buffer (the caller frees it)
 * and its length in *len, or NULL and 0 when there is none. */
uint8_t *wsb_client_io_take_output(wsb_client_t *c, size_t *len);

/* ---------------------------------------------------------------------
 * The libuv adapter (client_uv.c). The application includes <uv.h> itself.
 * ------------------------------------------------------------------- */
struct uv_loop_s;

/*
 * Attaches the libuv adapter: resolves the host with uv_getaddrinfo, tries
 * each address in turn, uses one uv_tcp_t per connection and one uv_timer_t.
 * For wss:// it runs TLS over memory BIOs between the socket and the core
 * (the core sees plaintext only; the connection counts as connected once
 * the TLS handshake has completed, within connect_timeout_ms). The TLS
 * context is created at the first wss:// connection from ca_file/insecure;
 * a CA file that cannot be loaded ends that attempt with WSB_ETLS.
 * After wsb_client_free() the adapter closes its handles and frees itself in
 * their close callbacks, so run the loop until uv_run() returns before
 * uv_loop_close(). A name lookup that was running is orphaned rather than
 * waited for (a timeout fires on time even when the resolver hangs); it frees
 * itself when it ends and keeps uv_run() from returning until then.
 * Returns 0, WSB_ESTATE (an adapter is attached) or WSB_ENOMEM / a libuv
 * error.
 */
int wsb_client_uv_attach(wsb_client_t *c, struct uv_loop_s *loop);

#ifdef __cplusplus
}
#endif

#endif
