/*
 * resp_internal.h - what the RESP ingress's two files share (resp_conn.c:
 * the connection; resp_session.c: the commands). Not for other modules.
 */
#ifndef WSB_BROKER_RESP_INTERNAL_H
#define WSB_BROKER_RESP_INTERNAL_H

#include "core/apikey.h"
#include "core/subscriber.h"
#include "shared/util.h"
#include "wsb/resp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct resp_listener_s resp_listener_t;
typedef struct ingress_ctx_s ingress_ctx_t;
typedef struct net_s net_t;
typedef struct chist_op_s chist_op_t;
typedef struct conn_s conn_t;

#define RESP_MAX_ARGS   1024
#define RESP_MAX_INLINE ((size_t)64 * 1024)
#define RESP_REQ_EXTRA  ((size_t)64 * 1024)

typedef struct resp_conn_s resp_conn_t;

typedef struct {
    trie_sub_t *sub;
    bool glob; /* PSUBSCRIBE (else SUBSCRIBE) */
} resp_sub_t;

/* A RESP session: the mode data of a conn_t in CONN_RESP (net/conn.h). */
struct resp_conn_s {
    subscriber_t sub; /* what the trie holds; the core delivers through it */
    conn_t *conn;
    resp_listener_t *l;
    bool quit;    /* close once the output is written */
    bool slow;    /* over its output bound as a subscriber: closing */
    bool stalled; /* requests held back (replies over their bound, publisher
                     paused): resumed by the conn's writable handler */
    bool authed;
    const apikey_t *key;       /* after AUTH with API keys configured: what it may publish */
    uint64_t partial_since_ms; /* loop time the unfinished request began; 0 = none */
    uint64_t auth_due_ms;      /* AUTH must have succeeded by then; 0 = no deadline */
    char *in;                  /* unparsed input */
    size_t in_len, in_cap;
    sbuf_t out; /* replies of the requests being run, queued as one buffer (resp_commit) */
    resp_sub_t *subs;
    uint32_t nsubs, subs_cap;
    chist_op_t *cluster_op; /* clustered history: a PUBLISH waiting for Redis's seq */
};

struct resp_listener_s {
    ingress_ctx_t *ctx; /* worker 0's */
    net_t *net;         /* worker 0's connections */
    uv_tcp_t tcp;
    bool open;
    size_t nconns;
    wsb_resp_limits_t lim;
    wsb_str_t argv[RESP_MAX_ARGS];
    uint64_t next_id;
};

/* resp_session.c: commands, replies, delivery */

/* Runs one parsed command (`argv` borrowed for the call). */
void resp_dispatch(resp_conn_t *c, wsb_str_t *argv, size_t argc);

/* Hands the replies built so far to the connection's output queue. */
void resp_commit(resp_conn_t *c);

/* Queues an error line ("-msg\r\n"). */
void resp_out_err(resp_conn_t *c, const char *msg);

/* How the core delivers to a RESP subscriber (subscriber.h). */
extern const subscriber_ops_t resp_subscriber_ops;

/* resp_conn.c: the connection */

/* The RESP listener's state on the worker of `ctx` and `net` without its
 * socket (what resp_listener_listen binds after), with the connection
 * handlers registered: a session can then be driven without sockets (unit
 * tests). */
resp_listener_t *resp_listener_init(ingress_ctx_t *ctx, net_t *net);

/* The handlers CONN_RESP connections call (net/conn.h). */
extern const struct conn_resp_handlers_s resp_conn_handlers;

/* Removes the connection's subscriptions: every one, only PSUBSCRIBE
 * patterns, or only SUBSCRIBE channels. */
void resp_remove_subs(resp_conn_t *c, bool glob_only, bool channels_only);

/* Stops reading (a clustered PUBLISH waits for Redis) / runs the requests
 * held back and reads again once it is answered. */
void resp_pause_reading(resp_conn_t *c);
void resp_resume_reading(resp_conn_t *c);

#endif
