/*
 * server.h - one broker instance on one libuv loop: the listener, every
 * connection, the subscription trie, the per-topic sequence table, metrics,
 * and the once-per-loop-turn flush of queued output.
 *
 * Lifetime: server_init() -> server_listen() -> uv_run() -> (SIGINT/SIGTERM:
 * server_shutdown(), the loop ends when every connection has closed) ->
 * server_free(). The server owns its connections; each connection is freed
 * in its last close callback.
 */
#ifndef WSB_BROKER_SERVER_H
#define WSB_BROKER_SERVER_H

#include "config.h"
#include "metrics.h"
#include "topic_trie.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct conn_s conn_t;
typedef struct router_s router_t;

#define SERVER_READ_BUF_SIZE (64 * 1024)

typedef struct server_s {
    uv_loop_t *loop;
    const config_t *cfg;
    uv_tcp_t listener;
    uv_prepare_t flush_prepare; /* writes what callbacks queued, before the loop blocks */
    uv_signal_t sig_int;
    uv_signal_t sig_term;
    uv_timer_t shutdown_timer;
    int handles_open; /* server handles not yet closed */

    conn_t *conns; /* every live connection (doubly linked) */
    size_t nconns;
    size_t nws;    /* of which WebSocket sessions */
    conn_t *dirty; /* connections with output to flush this turn (singly linked) */

    trie_t *trie;
    router_t *router;
    metrics_t metrics;
    size_t outbound_bytes; /* sum of every connection's queued output */
    bool in_fanout;        /* true while the trie is walked: nothing may leave it */

    char node_id[40];
    char *web_root; /* realpath of cfg->web_root, NULL when static files are off */
    uint64_t started_ms;
    uint64_t next_client_seq;
    bool shutting_down;
    bool listening;
    int exit_status;

    /* One read buffer shared by every connection: data is consumed inside the
     * read callback (partial frames and requests are copied by their parsers),
     * so no connection needs a buffer of its own while idle. */
    uint8_t read_buf[SERVER_READ_BUF_SIZE];
} server_t;

/* Prepares the server on `loop` with `cfg` (borrowed; must outlive it). */
int server_init(server_t *s, uv_loop_t *loop, const config_t *cfg);

/* Binds and listens, writes the port file, logs `listening`. 0 or a UV_E* code. */
int server_listen(server_t *s);

/* Stops accepting, sends close 1001 to every WebSocket, lets output drain up to
 * shutdown_timeout, then closes what remains. Idempotent. */
void server_shutdown(server_t *s);

/* Releases what the server owns. Call after uv_run() returned. */
void server_free(server_t *s);

/* Schedules `c` for the flush at the end of this loop turn. */
void server_mark_dirty(server_t *s, conn_t *c);

/* Milliseconds of the loop clock. */
uint64_t server_now(const server_t *s);

#endif
