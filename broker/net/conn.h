/*
 * conn.h - one TCP connection: its state machine, its reads, its bounded
 * outbound queue and its single deadline.
 *
 * States (explicit, one direction only):
 *   HTTP        reading requests (keep-alive, pipelined); a valid upgrade on
 *               ws_path/echo_path becomes WS
 *   WS          WebSocket session open
 *   WS_CLOSING  our close frame is queued; input is read and discarded until
 *               the peer's close frame arrives or close_timeout passes
 *   RESP        accepted on the RESP listener: input goes to the RESP session
 *               through the handlers registered with conn_set_resp_handlers
 *               (net/ does not know the session); replies and pushes use
 *               the same outq, bounds and flush as WebSocket frames
 *   SSE         a GET /sse answered with 200 text/event-stream: the SSE
 *               session (ingress/sse_session.c, handlers registered with
 *               conn_set_sse_handlers, the RESP table's shape) pushes
 *               events through the same outq, bounds and flush; input is
 *               read (to notice EOF) and discarded
 *   LINGER      finished: queued output is flushed, then the write side is
 *               shut down (FIN) and input is drained until EOF or
 *               close_timeout. Closing a socket with unread input makes the
 *               kernel send RST, which destroys the response or close frame
 *               in flight; lingering is how the peer gets to read it.
 *   CLOSED      uv_close() was called; the conn is freed in the last close
 *               callback (of its tcp handle).
 *
 * Rules: conn_close() is idempotent and safe in any callback except while the
 * trie is being walked (fan-out never closes; a slow consumer only gets its
 * close frame queued and leaves the trie later on the close path).
 */
#ifndef WSB_BROKER_CONN_H
#define WSB_BROKER_CONN_H

#include "net/outq.h"
#include "shared/frame_buf.h"
#include "wsb/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct net_s net_t;
typedef struct session_s session_t;
typedef struct conn_s conn_t;

/* What a mode's deadline handler reports, for the metrics. */
typedef enum { CONN_TIMEOUT_NONE = 0, CONN_TIMEOUT_HEADER, CONN_TIMEOUT_IDLE } conn_timeout_t;

typedef enum {
    CONN_HTTP = 0,
    CONN_WS,
    CONN_WS_CLOSING,
    CONN_RESP,
    CONN_SSE,
    CONN_LINGER,
    CONN_CLOSED
} conn_state_t;

struct conn_s {
    uv_tcp_t tcp;
    net_t *net;          /* its worker's network context (net/net.h) */
    conn_t *prev, *next; /* net->conns */
    conn_t *dirty_next;  /* net->dirty */
    conn_state_t state;
    bool dirty;
    bool writing; /* a uv_write is in flight */
    bool shutdown_started;
    bool got_peer_close;  /* WebSocket close frame received */
    bool read_paused;     /* replies over max_outbound_bytes: not reading */
    bool counted;         /* included in net->admit.connections */
    bool reading;         /* uv_read_start is in effect */
    bool pub_paused;      /* a worker inbox is filling: not reading (net->paused) */
    bool head_request;    /* the request being answered is HEAD: no body */
    bool input_held;      /* the mode's session takes no input now (conn_hold_input) */
    bool read_yielded;    /* read its NET_READ_TURN_BUDGET this turn: reads after the flush */
    uint8_t handles_open; /* closed handles pending before free */
    bool ip_counted;      /* counted in max_connections_per_ip under `ip` */
    bool hs_counted;      /* took its max_handshakes_per_second token (TLS: at accept) */
    uint8_t ip[16];       /* the peer's address (IPv4 as ::ffff:a.b.c.d) */
    conn_t *pause_prev, *pause_next;
    uint64_t last_rx_ms;  /* loop time of the last complete WebSocket frame (or the upgrade) */
    uint64_t deadline_ms; /* loop time the state's timeout fires; 0 = none */
    outq_t outq;
    wsb_http_request_t *http; /* HTTP mode only; freed at upgrade */
    /* HTTP mode: a response that waits for Redis (http_api.c, owned there;
     * NULL otherwise), and the bytes of later requests read meanwhile. */
    struct http_pub_s *http_pub;
    struct static_load_s *static_load; /* a file read on the threadpool (static_files.c) */
    /* Dispatch paused: the replies queued so far are over max_outbound_bytes
     * or the worker's share of max_total_outbound (see conn_http_defer). */
    bool http_blocked;
    char *http_held;
    uint32_t http_held_len, http_held_cap;
    session_t *session;     /* WebSocket mode only */
    void *resp;             /* RESP or SSE mode only: the session (conn_resp_handlers_t) */
    bool sse;               /* resp is an SSE session (conn_become_sse) */
    struct tls_conn_s *tls; /* accepted on the TLS listener; NULL for plain TCP */
};

/* What the HTTP and WebSocket modes call into outside net/ (app/ registers
 * them once at start-up with conn_set_handlers), so that net/ includes no
 * ingress or core header. Every callback runs on the connection's worker. */
typedef struct conn_handlers_s {
    /* Before bytes read from any connection are handled: what was published
     * earlier is delivered first, so a reply never overtakes it. */
    void (*before_input)(net_t *net);
    /* WebSocket: bytes read (writable: unmasked in place). */
    void (*ws_feed)(session_t *ss, uint8_t *data, size_t len);
    /* WebSocket: c->deadline_ms passed (keepalive, idle or auth deadline). */
    void (*ws_deadline)(conn_t *c);
    /* WebSocket: the connection closes: release the session. */
    void (*ws_free)(session_t *ss);
    /* HTTP: the connection closes while a response waits for Redis or a
     * file read (c->http_pub, c->static_load): the wait ends unowned. */
    void (*http_cancel)(conn_t *c);
    /* HTTP: a request for ws_path (echo false) or echo_path: check the
     * handshake and upgrade (CONN_WS, c->session set) or refuse. */
    void (*ws_upgrade)(conn_t *c, const wsb_http_request_t *req, bool echo);
    /* HTTP: a complete request that is not a WebSocket upgrade: answer it
     * (conn_http_respond*) or defer (conn_http_defer). */
    void (*http_request)(conn_t *c, const wsb_http_request_t *req);
    /* HTTP: the request's body is over max_http_body: true when the
     * handler answered it itself (else 413). */
    bool (*http_body_too_large)(conn_t *c, const wsb_http_request_t *req);
} conn_handlers_t;

/* Registers the HTTP and WebSocket modes' handlers (process-wide). */
void conn_set_handlers(const conn_handlers_t *h);

/* What the RESP mode calls into (ingress/resp_conn.c registers them once,
 * before any RESP connection is accepted), so that net/ never includes the
 * RESP session. `sess` is c->resp. Every callback but open runs with the
 * connection in CONN_RESP. */
typedef struct conn_resp_handlers_s {
    /* Admitted connection: returns its session (never NULL). */
    void *(*open)(conn_t *c);
    /* Bytes read (the worker's buffer: copy what is kept). */
    void (*feed)(void *sess, const char *data, size_t len);
    /* The connection was flushed and may take more replies (its queue under
     * half of max_outbound_bytes, the worker under its share) and is not
     * paused as a publisher: requests held back may go on. */
    void (*writable)(void *sess);
    /* c->deadline_ms passed (reset to 0 before the call). Returns what
     * fired, for the metrics. */
    conn_timeout_t (*deadline)(void *sess);
    /* Graceful shutdown: stop pushing and reading, write what is queued,
     * then linger (the worker's drain). */
    void (*shutdown)(void *sess);
    /* The connection is closing (conn_close): release the session. Never
     * inside a fan-out. */
    void (*close)(void *sess);
} conn_resp_handlers_t;

/* Registers the RESP mode's handlers (process-wide, once). */
void conn_set_resp_handlers(const conn_resp_handlers_t *h);

/* Registers the SSE mode's handlers (process-wide, once; `open` unused:
 * the session is made by the HTTP route and handed to conn_become_sse). */
void conn_set_sse_handlers(const conn_resp_handlers_t *h);

/* An HTTP-mode connection whose GET /sse was answered with the stream's
 * head: becomes CONN_SSE with `sess` as its session. */
void conn_become_sse(conn_t *c, void *sess);

/* Accepts a pending connection of the RESP listener `listener` on `net`
 * into CONN_RESP. Admission as for HTTP: it counts in max_connections
 * and max_connections_per_ip (refused with a RESP error line, then closed). */
void conn_accept_resp(net_t *net, uv_stream_t *listener);

/* WebSocket: runs the session's deadline handler (conn_on_deadline). */
void conn_ws_deadline(conn_t *c);

/* RESP: runs the session's deadline handler (conn_on_deadline). */
conn_timeout_t conn_resp_deadline(conn_t *c);

/* RESP or SSE: starts the graceful close (the handlers' shutdown). */
void conn_resp_shutdown(conn_t *c);

/* Stops (true) or restarts reading for the mode's session. */
void conn_hold_input(conn_t *c, bool hold);

/* True when `extra` more bytes of replies leave no room: queued output over
 * `limit`, or non-empty while the worker is over its share of
 * max_total_outbound. */
bool conn_output_full(const conn_t *c, size_t limit, size_t extra);

/* A subscriber over its bounds: drops the output not yet handed to the
 * kernel and lingers (FIN after what is in flight). Safe inside a fan-out. */
void conn_abort_output(conn_t *c);

/* The peer's "ip:port" for logs, in a thread-local buffer ("" once closed). */
const char *conn_peer(conn_t *c);

/* The connection's deadline passed (header, keepalive, close or linger
 * timeout, by state); called by the worker's tick with deadline_ms reset. */
void conn_on_deadline(conn_t *c);

/* Accepts a pending connection from the worker's plain or TLS (`tls`)
 * listener `listener`. */
void conn_accept(net_t *net, uv_stream_t *listener, bool tls);

/* Queues a reference to `len` bytes of `fb` at `off` (takes its own ref).
 * Returns 0, or -1 when the connection is not accepting output (neither WS
 * nor RESP) or the per-connection / global bound would be exceeded (the
 * caller decides: the fan-out path closes a slow consumer with 1013, a RESP
 * subscriber without a word). */
int conn_send(conn_t *c, frame_buf_t *fb, uint32_t off, uint32_t len);

/* conn_send with the per-connection bound multiplied by `factor` (>= 1):
 * the extra room a conflated topic's frames may use, whose backlog is
 * bounded by the caller (one unsent frame per topic) rather than by bytes. */
int conn_send_scaled(conn_t *c, frame_buf_t *fb, uint32_t off, uint32_t len, unsigned factor);

/* Queues `n` byte ranges, all or none, in order: range i is the first
 * len[i] bytes from fb[i]->bytes (takes its own ref on each), `total` bytes
 * in all, checked against the bounds once as conn_send checks one. The
 * fan-out's runs (core/subscriber.h): a burst of one topic's frames in one
 * call, usually one slice. Returns 0 or -1 as conn_send. */
int conn_send_ranges(conn_t *c, frame_buf_t *const *fb, const uint32_t *len, unsigned n,
                     size_t total);

/* Queues `fb` bypassing the bounds (small replies and control frames). */
void conn_send_always(conn_t *c, frame_buf_t *fb);

/* Writes what is queued now (uv_try_write first, then one uv_write). */
void conn_flush(conn_t *c);

/* Starts the WebSocket close handshake with `code` and `reason` (no-op unless
 * the session is open). With drop_pending, queued frames not yet handed to
 * the kernel are discarded first (slow consumer). */
void conn_ws_close(conn_t *c, int code, const char *reason, bool drop_pending);

/* Sends an HTTP response (head + body copied) on an HTTP-mode connection;
 * keep_alive false lingers and closes after it. */
void conn_http_respond(conn_t *c, int status, const char *content_type, const void *body,
                       size_t len, bool keep_alive, const char *extra_headers);

/* Answers `status` with `message` (a handshake error response) and closes
 * after it. */
void conn_http_error(conn_t *c, int status, const char *message);

/* Queues an already-built response (`fb` ref taken over) then lingers unless keep_alive. */
void conn_http_respond_buf(conn_t *c, frame_buf_t *fb, bool keep_alive);

/* Queues a response in two parts, `head` then `body` (NULL: none), both refs
 * taken over: a shared body (a cached file) is queued without a copy. */
void conn_http_respond_shared(conn_t *c, frame_buf_t *head, frame_buf_t *body, bool keep_alive);

/*
 * Deferred HTTP responses (a publish whose seq Redis assigns, http_api.c).
 * The handler sets c->http_pub and returns without answering; from then on
 * the request's response is owed, and the requests pipelined behind it wait
 * so that responses keep request order:
 *  - bytes read meanwhile are not parsed but kept in c->http_held (a heap
 *    copy: the worker's read buffer is reused by the next read). Reading
 *    goes on, so a peer that disconnects is noticed and conn_close() cancels
 *    the wait (http_api_cancel), but stops once http_held holds
 *    NET_READ_BUF_SIZE bytes (64 KiB): one more read at most is held;
 *  - the header/keep-alive deadline is off: the wait ends when Redis
 *    answers or fails (the bridge fails every op when it stops, so a
 *    shutdown ends it too).
 * conn_http_resume() is called once the response is queued (c->http_pub
 * NULL again): it parses the held bytes as if just read, which may defer
 * again, and reads again. Without HTTP mode any more (a response with
 * keep_alive false lingers) the held bytes are dropped.
 *
 * A static file read on the threadpool (c->static_load) defers the same way.
 *
 * Output bounds: before each pipelined request is parsed, the connection's
 * queued replies are checked. Over max_outbound_bytes, or with a non-empty
 * queue while the worker's queued output is over its share of
 * max_total_outbound, dispatch pauses (http_blocked): the rest of the input
 * is held as above and reading stops, until the queue drains to half of
 * max_outbound_bytes (and the worker under its share); then the held bytes
 * are parsed. So a connection's queued replies exceed max_outbound_bytes by
 * at most one response, and a peer that never reads costs a bounded amount
 * of memory however many requests it pipelines.
 */
void conn_http_defer(conn_t *c);
void conn_http_resume(conn_t *c);

/* Stops reading from a publisher while the workers' inboxes are filling up;
 * the worker resumes it when they have drained (net_hooks_t.watch_pressure). */
void conn_pause_publisher(conn_t *c);
void conn_resume_publisher(conn_t *c);

/* Flushes, shuts the write side down and drains input (see LINGER). */
void conn_linger(conn_t *c);

/* Closes now: idempotent, frees in the last close callback. */
void conn_close(conn_t *c);

/* Frees a CLOSED connection whose handles are closed and which is off the
 * dirty list (the worker's flush calls it for connections it finds so). */
void conn_free(conn_t *c);

#endif
