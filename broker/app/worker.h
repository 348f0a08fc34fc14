/*
 * worker.h - one worker: an event loop on its own thread (worker 0 on the
 * main thread) with its own listening socket (SO_REUSEPORT), connections,
 * subscription trie, inbox of published messages, metrics, and the
 * once-per-loop-turn flush of queued output.
 *
 * Nothing here is shared between workers except through broker_t (the
 * sequence table, the inboxes, the metrics read by /metrics): a connection,
 * its session and its subscriptions belong to one worker for their life.
 *
 * Lifetime: worker_init() (on the main thread, before the worker's thread
 * starts) -> worker_run() on the worker's thread -> worker_free() after the
 * thread ended. The worker owns its connections; each connection is freed in
 * its last close callback.
 */
#ifndef WSB_BROKER_WORKER_H
#define WSB_BROKER_WORKER_H

#include "app/config.h"
#include "core/topic_trie.h"
#include "core/xqueue.h"
#include "shared/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct conn_s conn_t;
typedef struct broker_s broker_t;
typedef struct resp_listener_s resp_listener_t;

#define WORKER_READ_BUF_SIZE  (64 * 1024)
#define WORKER_PLAIN_BUF_SIZE (16 * 1024) /* one TLS record */

/* Connection timeouts fire at most this late: one timer per worker walks the
 * connections' deadlines instead of one uv_timer_t per connection (152 bytes
 * each, the largest item of an idle connection's memory). */
#define WORKER_TICK_MS 50

/* Published messages a worker delivers per loop turn before it yields to
 * I/O (the rest wait for the next turn, in order). */
#define WORKER_INBOX_BATCH 4096

/* Laid out by purpose, not size; the inbox is cache-line aligned on purpose. */
typedef struct worker_s { // NOLINT(clang-analyzer-optin.performance.Padding)
    uv_loop_t loop;
    broker_t *broker;
    const config_t *cfg;
    unsigned index; /* worker number, 0 .. workers-1 */
    uv_tcp_t listener;
    uv_tcp_t tls_listener;      /* when TLS is configured (tls_listening) */
    uv_signal_t sig_hup;        /* worker 0 only: reloads the TLS certificate */
    uv_prepare_t flush_prepare; /* delivers the inbox and writes what callbacks queued */
    uv_async_t inbox_async;     /* another worker pushed to our inbox */
    uv_async_t stop_async;      /* shutdown requested / every worker drained */
    uv_signal_t sig_int;        /* worker 0 only */
    uv_signal_t sig_term;       /* worker 0 only */
    uv_timer_t shutdown_timer;
    uv_timer_t heartbeat;
    uv_timer_t pressure_timer; /* resumes paused publishers once inboxes drained */
    uv_timer_t tick;           /* fires connections' deadlines (WORKER_TICK_MS) */
    int handles_open;          /* worker handles not yet closed */
    xqueue_t inbox;            /* xmsg_t* published by any worker, for our subscribers */
    xqueue_t cluster_done;     /* hr_op_t* back from Redis (clustered history only) */

    conn_t *conns; /* every live connection (doubly linked) */
    size_t nconns;
    size_t nws;     /* of which WebSocket sessions */
    conn_t *dirty;  /* connections with output to flush this turn (singly linked) */
    conn_t *paused; /* publishers paused for inbox pressure (doubly linked) */

    trie_t *trie;
    resp_listener_t *resp; /* the RESP ingress: worker 0 only, when resp.port is set */
    metrics_t metrics;
    size_t outbound_bytes; /* sum of every connection's queued output */
    bool in_fanout;        /* true while the trie is walked: nothing may leave it */
    /* This worker's share of max_total_outbound (the bound divided by the
     * number of workers, set by broker.c), so the sum over all workers stays
     * under the broker-wide bound without a shared counter on the delivery
     * path. */
    size_t outbound_limit;
    /* Static files read so far (static_files.c), NULL until the first. */
    struct static_cache_s *static_cache;

    uint64_t next_client_seq;
    struct sys_stats_s *sys_stats; /* worker 0: $sys.node.<id>.stats state (sys_stats.h) */
    bool shutting_down;
    bool drained; /* counted in broker->drained */
    bool listening;
    bool tls_listening;

    /* One read buffer shared by every connection of this worker: data is
     * consumed inside the read callback (partial frames and requests are
     * copied by their parsers), so no connection needs a buffer of its own
     * while idle. */
    uint8_t read_buf[WORKER_READ_BUF_SIZE];
    /* Decrypted bytes of TLS connections, consumed like read_buf. */
    uint8_t plain_buf[WORKER_PLAIN_BUF_SIZE];
    /* Queued frames gathered for one SSL_write (one TLS record). */
    uint8_t tls_stage[WORKER_PLAIN_BUF_SIZE];
} worker_t;

/* Prepares worker `index` of `b` with the bound, listening socket `fd` and,
 * unless -1, the TLS one `tls_fd` (owned from now on). Runs on the main
 * thread. 0 or a UV_E* code. */
int worker_init(worker_t *s, broker_t *b, unsigned index, int fd, int tls_fd);

/* Runs the worker's loop until it has shut down. */
void worker_run(worker_t *s);

/* Stops accepting, sends close 1001 to every WebSocket, lets output drain up
 * to shutdown_timeout, then closes what remains. Idempotent; own thread only
 * (other threads use broker_stop()). */
void worker_shutdown(worker_t *s);

/* Releases what the worker owns, after its loop has ended. */
void worker_free(worker_t *s);

/* Schedules `c` for the flush at the end of this loop turn. */
void worker_mark_dirty(worker_t *s, conn_t *c);

/* Milliseconds of the loop clock. */
uint64_t worker_now(const worker_t *s);

/* Starts watching the workers' inboxes for the publishers paused on `s`;
 * they are resumed when every inbox is back under its low mark. */
void worker_watch_pressure(worker_t *s);

/* True when some worker's inbox is over its high mark (256 messages, or
 * half its capacity if that is less). */
bool worker_inbox_pressure(const worker_t *s);

/* Mirrors gauges (connections, subscriptions, ...) into the metrics. */
void worker_update_gauges(worker_t *s);

#endif
