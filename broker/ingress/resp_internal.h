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
typedef struct worker_s worker_t;
typedef struct chist_op_s chist_op_t;

#define RESP_MAX_ARGS   1024
#define RESP_MAX_INLINE ((size_t)64 * 1024)
#define RESP_REQ_EXTRA  ((size_t)64 * 1024)

typedef struct resp_conn_s resp_conn_t;

typedef struct {
    trie_sub_t *sub;
    bool glob; /* PSUBSCRIBE (else SUBSCRIBE) */
} resp_sub_t;

struct resp_conn_s {
    subscriber_t sub; /* what the trie holds; the core delivers through it */
    uv_tcp_t tcp;
    resp_listener_t *l;
    resp_conn_t *prev, *next;
    resp_conn_t *dirty_next;
    bool dirty;
    bool closed;
    bool quit;        /* close once the output is written */
    bool slow;        /* over its output bound as a subscriber: close */
    bool read_paused; /* its replies are over max_outbound_bytes */
    bool pub_paused;  /* a worker inbox is filling (core_inbox_pressure) */
    bool reading;     /* uv_read_start in effect */
    bool writing;
    bool authed;
    const apikey_t *key; /* after AUTH with API keys configured: what it may publish */
    bool handle_closed;  /* the close callback ran */
    char *in;            /* unparsed input */
    size_t in_len, in_cap;
    sbuf_t out;  /* queued output */
    sbuf_t wbuf; /* output in flight */
    uv_write_t wreq;
    resp_sub_t *subs;
    uint32_t nsubs, subs_cap;
    chist_op_t *cluster_op; /* clustered history: a PUBLISH waiting for Redis's seq */
};

struct resp_listener_s {
    worker_t *s;
    uv_tcp_t tcp;
    bool open;
    resp_conn_t *conns;
    size_t nconns;
    resp_conn_t *dirty;
    size_t npub_paused; /* connections with pub_paused */
    wsb_resp_limits_t lim;
    wsb_str_t argv[RESP_MAX_ARGS];
    uint64_t next_id;
};

/* resp_session.c: commands, replies, delivery */

/* Runs one parsed command (`argv` borrowed for the call). */
void resp_dispatch(resp_conn_t *c, wsb_str_t *argv, size_t argc);

/* Queues the connection for this loop turn's flush (resp_flush_dirty). */
void resp_mark_dirty(resp_conn_t *c);

/* Bytes queued and in flight. */
size_t resp_queued(const resp_conn_t *c);

/* Queues an error line ("-msg\r\n"). */
void resp_out_err(resp_conn_t *c, const char *msg);

/* How the core delivers to a RESP subscriber (subscriber.h). */
extern const subscriber_ops_t resp_subscriber_ops;

/* resp_conn.c: the connection */

/* Removes the connection's subscriptions: every one, only PSUBSCRIBE
 * patterns, or only SUBSCRIBE channels. */
void resp_remove_subs(resp_conn_t *c, bool glob_only, bool channels_only);

/* Stops / restarts reading (a clustered PUBLISH waits for Redis; the
 * requests behind it run once it is answered). */
void resp_pause_reading(resp_conn_t *c);
void resp_resume_reading(resp_conn_t *c);

#endif
