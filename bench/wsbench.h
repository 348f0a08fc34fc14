/*
 * wsbench.h - the load generator's shared state.
 *
 * Threads: the main thread parses options, starts one worker per --threads,
 * each with its own libuv loop and its own slice of the connections, and then
 * only coordinates: it moves the run through its phases (RAMP -> RUN -> STOP),
 * samples /proc and prints progress. Workers never touch each other's
 * connections. What crosses threads is:
 *   - bench_t, written by the main thread before a phase change and read-only
 *     for workers afterwards (the phase is stored with release and loaded with
 *     acquire, which publishes those writes);
 *   - each worker's counters (stat_t), written by the owning worker only and
 *     read by anyone with relaxed loads (a single writer needs no atomic
 *     read-modify-write: STAT_ADD is a plain load and store);
 *   - each worker's histogram and per-topic match counts, read by the main
 *     thread only after the worker signalled (release) that it is done with them.
 */
#ifndef WSB_BENCH_WSBENCH_H
#define WSB_BENCH_WSBENCH_H

#include "hist.h"
#include "options.h"
#include "wsb/tls_client.h"
#include "wsb/ws_frame.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define READ_BUF_SIZE (64 * 1024)

typedef enum { PHASE_RAMP = 0, PHASE_RUN, PHASE_STOP } phase_t;

typedef _Atomic uint64_t counter_t;

#define STAT_GET(x)    atomic_load_explicit(&(x), memory_order_relaxed)
#define STAT_ADD(x, n) atomic_store_explicit(&(x), STAT_GET(x) + (n), memory_order_relaxed)

/* One worker's counters. */
typedef struct {
    counter_t subs_ready;      /* subscribed (ack received) */
    counter_t pubs_ready;      /* upgraded publishers */
    counter_t fail_connect;    /* TCP connect failed */
    counter_t fail_handshake;  /* no 101, a bad accept key, or closed during the upgrade */
    counter_t fail_subscribe;  /* error reply to the subscribe, or closed before the ack */
    counter_t fail_timeout;    /* not ready when the ramp-up timed out */
    counter_t disconnects;     /* ready connections the broker closed before the end */
    counter_t errors;          /* error replies after the ramp, and protocol violations */
    counter_t bad_payload;     /* deliveries without a readable timestamp */
    counter_t published;       /* publish frames written */
    counter_t acked;           /* publish acks received */
    counter_t expected;        /* deliveries the acked publishes should produce */
    counter_t expected_sent;   /* deliveries the written publishes should produce */
    counter_t received;        /* deliveries received */
    counter_t bytes_in;        /* bytes read after the upgrade */
    counter_t pubs_done;       /* publishers that finished and got every ack */
    counter_t last_rx_ns;      /* time of the last delivery (run clock) */
    counter_t churn_ops;       /* --churn: unsubscribes and resubscribes acked */
    counter_t events;          /* join and leave frames received */
    counter_t listener_events; /* ... by subscribers that do not churn */
    counter_t listeners_ready; /* subscribed subscribers that do not churn */
    _Atomic int ramp_done;     /* every connection is ready or failed; match_local is final */
} stat_t;

typedef struct bconn_s bconn_t;
typedef struct pub_s pub_t;
typedef struct bench_s bench_t;

typedef struct bthread_s {
    bench_t *b;
    uint32_t id;
    uv_loop_t loop;
    bool loop_ready; /* initialised: client_thread_free closes it */
    uv_thread_t tid;
    uv_timer_t tick;
    bconn_t *conns; /* subscribers first, then publishers */
    pub_t *pubs;    /* the publishers' state, one per publisher connection */
    uint32_t nconns;
    uint32_t nsubs;
    uint32_t next_connect; /* conns[next_connect..] have not been started */
    uint32_t in_progress;  /* started, neither ready nor failed */
    uint64_t ramp_start_ns;
    uint64_t rx_now; /* run-clock time of the read being processed */
    bool stopping;
    uint32_t *match_local; /* per topic: this worker's ready subscribers that match it */
    stat_t st;
    hist_t hist; /* end-to-end latency, ns */
    uint8_t read_buf[READ_BUF_SIZE];
} bthread_t;

struct bench_s {
    opts_t o;
    struct sockaddr_storage addr;
    struct sockaddr_storage pub_addr; /* publishers' (--pub-url), else a copy of addr */
    char request[512];                /* the upgrade request, the same for every connection */
    size_t request_len;
    char accept[32];        /* the Sec-WebSocket-Accept it must get back */
    wsb_tls_ctx_t *tls_ctx; /* wss://: shared by every worker's sessions; NULL for ws:// */
    uint64_t t0;            /* uv_hrtime() at start: the run clock's zero */

    /* topics[k] is the publish template with n = k */
    char *topic_buf;
    uint32_t *topic_off;
    uint16_t *topic_len;
    uint32_t *topic_hash; /* open addressing: k + 1, 0 = empty; topic_hash_mask + 1 slots */
    uint32_t topic_hash_mask;

    /* Set by the main thread before PHASE_RUN, read-only afterwards. */
    uint32_t *match;          /* per topic: ready subscribers that match it */
    uint64_t lag_limit;       /* outstanding deliveries allowed; 0 = unbounded */
    uint64_t churn_listeners; /* --churn: each request owes this many join/leave frames */
    uint64_t ramp_events;     /* listener_events before the run: the ramp's own joins */
    uint64_t run_start_ns;    /* run clock */
    uint64_t run_deadline_ns; /* publishing stops here */
    uint32_t nthreads;
    bthread_t *threads[OPTS_MAX_THREADS];

    _Atomic int phase;
};

/* The run clock: nanoseconds since bench_t.t0. */
static inline uint64_t bench_now(const bench_t *b)
{
    return uv_hrtime() - b->t0;
}

/* wsbench.c: the index of an exact topic among the publish topics, or -1. */
int64_t bench_topic_find(const bench_t *b, const char *topic, size_t len);

/* client.c: prepares worker `id` of b->nthreads (its loop, its share of the
 * connections) on the main thread, before the worker starts. 0 or -1 (ENOMEM
 * or a loop that cannot be created). Subscriber i belongs to worker
 * i % nthreads, publisher p to worker (subscribers + p) % nthreads. */
int client_thread_init(bthread_t *t, bench_t *b, uint32_t id);

/* client.c: the worker's thread body: runs its loop until PHASE_STOP has
 * closed every connection. `arg` is its bthread_t. */
void client_thread_main(void *arg);

/* client.c: releases what client_thread_init allocated, after the worker
 * thread has been joined. */
void client_thread_free(bthread_t *t);

#endif
