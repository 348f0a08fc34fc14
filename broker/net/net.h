/*
 * net.h - a worker's network context: its connections and the lists the
 * flush and the pressure watch walk, its queued output against its share of
 * max_total_outbound, the buffers every connection of the worker reads and
 * encrypts through, and what net/ needs from outside (the limits app/ copies
 * from config_t, admission through the process-wide counters, the metrics,
 * the TLS server and a few hooks), so that net/ includes nothing of app/.
 *
 * One net_t per worker (embedded in worker_t as w->net); every field is used
 * on that worker's thread only, except what the admission pointers reach
 * (process-wide, thread-safe by their owners). conn_t points at its net_t.
 *
 * Lifetime: app/ fills it before the worker's loop runs (the loop, limits,
 * admission, hooks, metrics, tls, outbound_limit); net/ keeps the rest.
 */
#ifndef WSB_BROKER_NET_H
#define WSB_BROKER_NET_H

#include "shared/metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct conn_s conn_t;
typedef struct net_s net_t;
typedef struct tls_server_s tls_server_t;

#define NET_READ_BUF_SIZE  (64 * 1024)
#define NET_PLAIN_BUF_SIZE (16 * 1024) /* one TLS record */
/* Bytes one connection may have read in a row before it yields to the
 * others until the end of the loop turn (conn.c, on_read): libuv reads up
 * to 32 buffers per callback, so a pipelining publisher could otherwise
 * hold its worker for 2 MiB of requests per turn while every other
 * connection's requests wait. */
#define NET_READ_TURN_BUDGET ((size_t)128 * 1024) /* twice NET_READ_BUF_SIZE */

/* What net/ reads of the configuration (app/ copies it from config_t;
 * strings and the trusted proxies are borrowed from it). */
typedef struct net_limits_s {
    uint64_t header_timeout_ms;  /* a request head (and a TLS handshake) within this */
    uint64_t close_timeout_ms;   /* close handshake and linger */
    uint64_t max_outbound_bytes; /* per connection */
    uint64_t max_connections;    /* process-wide, against admit.connections */
    uint64_t max_header_size;
    uint64_t max_http_body;
    const char *ws_path;               /* upgrades here are WebSocket sessions */
    const char *echo_path;             /* "" = off */
    const struct proxy_net_s *trusted; /* proxies whose X-Forwarded-For counts */
    size_t ntrusted;
} net_limits_t;

/* Admission: the process-wide bounds, owned outside net/ (thread-safe). */
typedef struct net_admission_s {
    _Atomic size_t *connections; /* live connections of every worker */
    /* max_connections_per_ip: takes / gives back a slot for `ip`. */
    bool (*ip_acquire)(void *ctx, const uint8_t ip[16]);
    void (*ip_release)(void *ctx, const uint8_t ip[16]);
    /* max_handshakes_per_second: a token at `now_ns` (uv_hrtime), or false. */
    bool (*handshake_allowed)(void *ctx, uint64_t now_ns);
    void *ctx;
} net_admission_t;

/* What only the worker knows. Called on its thread. */
typedef struct net_hooks_s {
    /* The connection counts changed: mirror the gauges into the metrics. */
    void (*update_gauges)(net_t *net);
    /* A publisher was paused (net->paused): watch the inboxes to resume it. */
    void (*watch_pressure)(net_t *net);
    /* While shutting down, the last connection was freed. */
    void (*drained)(net_t *net);
} net_hooks_t;

/* Laid out by purpose; the buffers come last (not zeroed at init). */
struct net_s {       // NOLINT(clang-analyzer-optin.performance.Padding)
    uv_loop_t *loop; /* the worker's */
    void *owner;     /* the worker, for the hooks */
    void *ingress;   /* what the ingresses keep per worker (ingress_ctx()), set by app/ */
    net_limits_t lim;
    net_admission_t admit;
    const net_hooks_t *hooks;
    metrics_t *metrics; /* the worker's */
    tls_server_t *tls;  /* NULL: no TLS listener */
    /* True while the core walks the trie (core/core.h): nothing may close
     * then (checked by assertion). */
    const bool *in_fanout;

    conn_t *conns; /* every live connection (doubly linked) */
    size_t nconns;
    size_t nws;     /* of which WebSocket sessions */
    conn_t *dirty;  /* connections with output to flush this turn (singly linked) */
    conn_t *paused; /* publishers paused for inbox pressure (doubly linked) */
    /* The connection read last in this turn and the bytes it read in a row
     * (NET_READ_TURN_BUDGET); reset at every flush. Never dereferenced. */
    const conn_t *read_run;
    size_t read_run_bytes;

    size_t outbound_bytes; /* sum of every connection's queued output */
    /* This worker's share of max_total_outbound (the bound divided by the
     * number of workers, set by app/), so the sum over all workers stays
     * under the broker-wide bound without a shared counter on the delivery
     * path. */
    size_t outbound_limit;
    bool shutting_down; /* new upgrades refused, keep-alive off */

    /* One read buffer shared by every connection of this worker: data is
     * consumed inside the read callback (partial frames and requests are
     * copied by their parsers), so no connection needs a buffer of its own
     * while idle. */
    uint8_t read_buf[NET_READ_BUF_SIZE];
    /* Decrypted bytes of TLS connections, consumed like read_buf. */
    uint8_t plain_buf[NET_PLAIN_BUF_SIZE];
};

/* Schedules `c` for the flush at the end of this loop turn. */
void net_mark_dirty(net_t *net, conn_t *c);

/* Formats a socket address as "ip:port" or "[ip6]:port" into `out`. */
struct sockaddr_storage;
void net_format_addr(const struct sockaddr_storage *ss, char *out, size_t cap);

/* Milliseconds of the loop clock. */
static inline uint64_t net_now(const net_t *net)
{
    return uv_now(net->loop);
}

#endif
