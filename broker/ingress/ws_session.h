/*
 * ws_session.h - a WebSocket session on an upgraded connection: frame parsing,
 * message assembly, and the wire protocol v1 operations (subscribe,
 * unsubscribe, publish, ping) or, on echo_path, echoing messages back.
 *
 * Ownership: created by session_new() at upgrade and owned by its conn;
 * session_free() removes every subscription from the trie (the close path:
 * never during a fan-out walk) and releases the message buffer.
 */
#ifndef WSB_BROKER_WS_SESSION_H
#define WSB_BROKER_WS_SESSION_H

#include "core/auth.h"
#include "core/chist.h"
#include "core/request.h"
#include "core/subscriber.h"
#include "core/topic_rules.h"
#include "core/topic_trie.h"
#include "shared/frame_buf.h"
#include "wsb/http.h"
#include "wsb/message.h"
#include "wsb/ws_frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct conn_s conn_t;
struct user_entry_s;
struct xmsg_s;

/* What few connections use, behind one pointer (session_extra()): made on
 * first use, freed with the session, so an idle connection does not pay for
 * it (bench/RESULTS.md "Idle connection memory"). */
typedef struct session_extra_s {
    bucket_t *buckets; /* [0] rate.messages, [1] rate.bytes; only with rate limits */
    /* Suspended after a gap notice (slow consumer on a "drop" rule) until
     * the client subscribes to them again: exact topics of history rules,
     * and subscriptions (topics or patterns) inside streams. */
    struct session_gap_s *gaps;
    uint32_t ngaps;
    uint32_t nstream_gaps; /* those of them inside a stream */
    /* This connection's count in the per-user limits (user_limits.h), held
     * while the session has a user and those limits are on; else NULL. */
    struct user_entry_s *uentry;
    request_list_t requests; /* requests waiting for their reply (core/request.h) */
    /* permessage-deflate (ws_deflate.c), when negotiated: the inflater is
     * made by the first compressed message and, with
     * client_no_context_takeover, freed after each message (an idle
     * connection holds none); the window bits the client allows us. */
    struct ws_deflate_s *deflate;
} session_extra_t;

/* An idle subscribed connection is this struct plus its conn_t, trie entry
 * and read state: keep it within a 288-byte malloc chunk (<= 280 bytes). */
struct session_s {
    subscriber_t sub; /* what the trie holds; the core delivers through it;
                       * sub.client_no is its client id's counter and
                       * sub.user the token's sub (heap, owned) or NULL */
    conn_t *conn;
    struct ingress_ctx_s *ctx; /* its worker's (ingress.h) */
    wsb_ws_parser_t parser;
    /* message assembly: a message that arrives in one read is used in place
     * (pending); otherwise it is copied into msg. Lengths are bounded by
     * max_message_size (at most 1 GiB: config_keys.c), so 32 bits hold them. */
    const uint8_t *pending;
    uint8_t *msg;
    uint32_t pending_len;
    uint32_t msg_len;
    uint32_t msg_cap;
    uint8_t msg_opcode;
    bool echo : 1;
    bool authed : 1;    /* a token was accepted (or auth is not required) */
    bool announced : 1; /* $sys.conn.connect was published: disconnect follows at the end */
    /* Publishes of this read wait in the worker's inbox for this worker's
     * subscribers (pubsub.h defer_local): delivered before anything else
     * is queued or closed here, and at the end of the read. */
    bool deferred : 1;
    trie_sub_t **subs; /* &sub0 until a second subscription */
    trie_sub_t *sub0;  /* most connections subscribe once: no array for them */
    uint32_t nsubs;
    uint32_t subs_cap;
    /* credentials: a verified token's claims with the permissions made of
     * them (heap, owned), or none. perms points into creds, at the broker's
     * anonymous permissions (shared), or at an empty set. */
    struct creds_s *creds;
    const perms_t *perms;
    uint64_t auth_deadline_ms; /* loop time: auth timeout or token expiry; 0 = none */
    uint64_t keepalive_due_ms; /* loop time of the next ping / idle check */
    /* Clustered history (chist_session.c): replies held behind operations
     * waiting for Redis, and switch-over floors. NULL until the first one. */
    struct chist_sess_s *cl;
    session_extra_t *extra; /* NULL until first needed (session_extra()) */
};

/* Topics one session may have suspended at once; one more closes it (1013). */
#define SESSION_MAX_GAPS 64

/* Frames of conflated topics may fill this many times max_outbound_bytes
 * (one unsent frame per topic) before the subscriber is a slow consumer. */
#define SESSION_CONFLATE_FACTOR 2

typedef struct session_s session_t;

/* The session's extras, made (zeroed) on first use. */
session_extra_t *session_extra(session_t *s);

/* Creates the session for `c` and queues the welcome frame (unless echo).
 * `claims` (heap, may be NULL) is the token accepted at the handshake; the
 * session owns it from now on. */
session_t *session_new(conn_t *c, bool echo, wsb_jwt_claims_t *claims);

/* Feeds WebSocket bytes (modified in place: unmasking). */
void session_feed(session_t *s, uint8_t *data, size_t len);

void session_free(session_t *s);

/* max_connections_per_user for a token that came with an upgrade: the
 * entry counting the connection under the token's `sub` (hand it to the
 * session: session_extra(session)->uentry), or NULL when there is nothing to count (no
 * limits, no token, no sub) or, with *refused set, when the user is at the
 * limit. Runs on the connection's worker thread before session_new(). */
struct user_entry_s *session_user_acquire(auth_t *auth, const wsb_jwt_claims_t *claims,
                                          bool *refused);

/* ws_upgrade.c: the token of a request (WebSocket upgrade or GET /sse):
 * the `token` query parameter or "Authorization: Bearer". Returns its
 * length, 0 when there is none, -1 when it is malformed or too long. */
int ws_request_token(const wsb_http_request_t *req, char *out, size_t cap);

/* The session's user: its token's sub, or {NULL,0} without one. */
wsb_str_t session_user(const session_t *s);

/* chist_session.c: the session's side of clustered history (publishes
 * whose seq Redis assigns, subscribes whose replay Redis reads, and the
 * order of the replies around them; see that file). */

/* A publish to a clustered topic, submitted by the core (pubsub_publish,
 * with chist_session_op_done as its done_cb): the ack, and every reply
 * queued after it, wait for Redis's seq. */
void chist_session_hold_op(session_t *s, chist_op_t *op);

/* The done_cb of a session's ops: emits what waited behind it, in order. */
void chist_session_op_done(chist_op_t *op);

/* Subscribe of `m` to a clustered topic, or with `history` to a pattern
 * (last value of every matching topic Redis knows), with the subscription
 * already in the trie (`new_sub`: added by this subscribe): answered
 * (position, recovered, replay) when Redis replied. */
void chist_session_subscribe(session_t *s, const wsb_msg_t *m, int rule, bool new_sub);

/* ws_session.c: removes the session's subscription to `pattern`, if any
 * (a refused pattern read: nothing stays subscribed). */
void session_remove_pattern(session_t *s, wsb_str_t pattern);
/* The same for a subscription inside a stream kept in Redis (clustered
 * streams, core/chist_stream.h): the ack carries the stream's position and
 * name, the replay the stream's messages that match the subscription. */
void chist_session_subscribe_stream(session_t *s, const wsb_msg_t *m, const topic_rule_t *rule);

/* reply(): true when the frame was held behind an op in flight (taken). */
bool chist_session_hold(session_t *s, frame_buf_t *fb);

/* Fan-out: true when the live message `m` must not be sent now (held for a
 * pending read, or a duplicate below the floor). */
bool chist_session_filter(session_t *s, struct xmsg_s *m);

/* Session close: detaches its ops (they are freed when they come back). */
void chist_session_free(session_t *s);

/* ws_deflate.c: permessage-deflate on a session */

/* The handshake accepted permessage-deflate: compressed frames out (above
 * compression.min_size, within `window_bits`), RSV1 messages in; with
 * `client_reset` (client_no_context_takeover) no inflate context is kept
 * between messages. */
void session_enable_deflate(session_t *s, bool client_reset, unsigned window_bits);

/* The frame to queue for `fb` (a published message's frame for this worker):
 * the shared compressed one when the session negotiated deflate and the
 * message qualifies, else `fb`. Borrowed (conn_send takes its reference). */
frame_buf_t *session_deflate_frame(session_t *s, frame_buf_t *fb);

/* A complete compressed message (`data`, `len`) arrived: inflates it within
 * max_message_size and validates a text message's UTF-8. Returns 0 with
 * *out (malloc'd, the caller frees) and *out_len, or closes the connection
 * (1009 past the bound, 1007 for bad data or text) and returns -1. */
int session_inflate(session_t *s, int opcode, const uint8_t *data, size_t len, uint8_t **out,
                    size_t *out_len);

/* Frees the session's deflate state. */
void session_deflate_free(session_t *s);

/* ws_upgrade.c */

/* Checks a request for ws_path or echo_path (`echo`) and
 * upgrades the connection to a session, or refuses it
 * (conn_handlers_t.ws_upgrade). */
void ws_upgrade(conn_t *c, const wsb_http_request_t *req, bool echo);

/* Re-arms a WebSocket's deadline: the earlier of its next keepalive and
 * its session's auth deadline (auth timeout or token expiry). */
void conn_ws_rearm(conn_t *c);

/* The connection's deadline passed in WebSocket mode: the auth deadline
 * (timeout or token expiry) closes it, the keepalive pings or closes an idle
 * peer, else the deadline is re-armed (conn_handlers_t.ws_deadline). */
void session_on_deadline(conn_t *c);

#endif
