/*
 * client_internal.h - private: the core's state, shared by client.c (the
 * connection state machine) and client_req.c (requests, replies, the
 * subscription set). Nothing here is part of the public API.
 *
 * Invariants:
 *  - Every user callback runs inside an adapter entry point (enter()/leave()
 *    bracket it), so a callback may call any API function; wsb_client_free()
 *    from a callback only sets free_pending and leave() frees.
 *  - A request is in exactly one list: queue (not sent yet), inflight (sent
 *    with an id, no reply yet) or done (finished, its callback not run yet).
 *  - out holds framed bytes the adapter has not taken; it belongs to the
 *    current transport and is discarded when that transport ends.
 */
#ifndef WSB_CLIENT_INTERNAL_H
#define WSB_CLIENT_INTERNAL_H

#include "client_http.h"
#include "wsb/client.h"
#include "wsb/handshake.h"
#include "wsb/ws_frame.h"

enum {
    REQ_SUBSCRIBE = 1,
    REQ_UNSUBSCRIBE,
    REQ_PUBLISH,
    REQ_RESUBSCRIBE,
    REQ_PRESENCE,
    REQ_PRESENCE_STATS,
    REQ_REQUEST
};

typedef struct wsb__req_s {
    struct wsb__req_s *next;
    int kind;
    bool has_id;
    uint64_t id;
    char *topic; /* NUL-terminated copy of the topic or pattern */
    char *text;  /* the JSON request */
    size_t len;
    bool has_cb;
    wsb_client_reply_cb_t cb;
    void *user_data;
    /* Set when the request moves to `done`: how it ended. */
    int status;
    const char *message;
} wsb__req_t;

typedef struct {
    wsb__req_t *head;
    wsb__req_t *tail;
    size_t count;
} wsb__req_list_t;

struct wsb_client_s {
    wsb_client_options_t opts; /* url/token/origin/ca_file point to the copies below */
    char *url_copy;
    char *token;
    char *origin;
    char *ca_file;
    wsb__url_t url;
    wsb_client_callbacks_t cb;
    void *user_data;
    wsb_client_io_t io;
    bool attached;

    wsb_client_state_t state;
    bool user_closing;      /* close() called, on_closed not yet delivered */
    bool closed_notice;     /* on_closed due from the 0 ms timer (no transport) */
    bool transport_active;  /* connect hook called, io_closed not yet reported */
    bool transport_closing; /* close hook called for this transport */
    bool open;              /* the 101 was accepted on this transport */
    bool close_sent;
    bool close_received;

    /* Handshake. */
    char accept[WSB_WS_ACCEPT_LEN + 1];
    wsb__resp_t *resp; /* allocated for the handshake only */
    bool rejecting;    /* a non-101 answer: collecting its body */
    char body[512];
    size_t body_len;
    size_t body_need;

    /* WebSocket. */
    wsb_ws_parser_t parser;
    uint8_t *msg;
    size_t msg_len;
    size_t msg_cap;
    int msg_opcode;

    /* Output not yet taken by the adapter. */
    uint8_t *out;
    size_t out_len;
    size_t out_cap;

    /* Requests. */
    uint64_t next_id;
    wsb__req_list_t queue;
    size_t queue_bytes;
    wsb__req_list_t inflight;
    wsb__req_list_t done;

    /* Patterns acknowledged by the broker (resubscribed on reconnect). */
    char **subs;
    size_t nsubs;
    size_t subs_cap;

    uint64_t server_max_message; /* from the welcome; 0 = not known */
    uint32_t attempts;           /* consecutive failed connection attempts */
    bool ping_outstanding;
    bool rx_since_ping;

    /* Why the current transport is ending (first cause wins). */
    struct {
        bool set;
        int status;
        int close_code;
        int http_status;
        bool retry;
        char reason[384];
    } disc;

    int depth; /* nesting of adapter entry points */
    bool free_pending;
    bool freeing;
};

/* client.c */
int wsb__send_frame(wsb_client_t *c, int opcode, const uint8_t *payload, size_t len);
bool wsb__can_send(const wsb_client_t *c);

/* client_req.c */
void wsb__list_push(wsb__req_list_t *l, wsb__req_t *r);
wsb__req_t *wsb__list_pop(wsb__req_list_t *l);
void wsb__req_free(wsb__req_t *r);
/* Sends the request now (open) or queues it; takes ownership. */
void wsb__dispatch(wsb_client_t *c, wsb__req_t *r);
/* After the 101: resubscribe every acknowledged pattern, then the queue. */
void wsb__flush_after_open(wsb_client_t *c);
/* Moves a finished request to `done` with its outcome. */
void wsb__req_finish(wsb_client_t *c, wsb__req_t *r, int status, const char *message);
/* Runs the callbacks of `done` requests, in order. */
void wsb__run_done(wsb_client_t *c);
/* The transport ended: publishes in flight fail with WSB_ECLOSED (to done),
 * subscribe/unsubscribe go back to the front of the queue, resubscriptions
 * are dropped (regenerated from the set). A nonzero `fail_all` status fails
 * every request in flight with it instead. */
void wsb__requests_on_disconnect(wsb_client_t *c, int fail_all);
/* Moves every queued request to done with WSB_ECANCELED. */
void wsb__cancel_queue(wsb_client_t *c);
/* A complete text message from the broker. */
void wsb__handle_text(wsb_client_t *c, const char *text, size_t len);
void wsb__subs_clear(wsb_client_t *c);

#endif
