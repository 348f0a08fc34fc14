/*
 * options.h - wsbench's command line: parsing, defaults and validation, and
 * the topic templates that give each connection its topic.
 *
 * No I/O and no globals, so the unit test can parse as many command lines as
 * it likes. Strings in opts_t are copies (fixed arrays); nothing borrows argv.
 *
 * Topic templates: "{n}" in a template is replaced by a number. Subscriber i
 * subscribes to patterns[i % npatterns] with n = i % topics; a publisher's
 * k-th message (counted over all publishers, round robin) goes to the publish
 * template with n = k % topics.
 */
#ifndef WSB_BENCH_OPTIONS_H
#define WSB_BENCH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPTS_MAX_PATTERNS 8
#define OPTS_TEMPLATE_MAX 200 /* leaves room for "{n}" expanding to 10 digits */
#define OPTS_MAX_THREADS  64
#define OPTS_MAX_CONNS    1000000u

typedef enum { OUT_HUMAN = 0, OUT_JSON, OUT_ROW } out_format_t;

/* --probe: one sequential measurement on a few connections instead of the
 * fan-out run (probe.c). */
typedef enum {
    PROBE_NONE = 0,
    PROBE_REQUEST,         /* WebSocket request -> responder -> reply round trips */
    PROBE_HTTP_REQUEST,    /* POST /api/request -> WebSocket responder -> response */
    PROBE_NATS_REQUEST,    /* the same round trip through a NATS server (--url nats://) */
    PROBE_LASTVALUE,       /* subscribe to a pattern with history:1 over --topics topics */
    PROBE_LASTVALUE_EXACT, /* ... to each of the --topics exact topics with history:1 */
} probe_t;

typedef struct {
    /* target: ws:// or wss://HOST:PORT/PATH with HOST a literal IPv4 or [IPv6]
     * address */
    char host[64];
    uint16_t port;
    char path[128];
    /* --pub-url: publishers' target when set (pub_port != 0) */
    char pub_host[64];
    uint16_t pub_port;
    bool pub_tls;
    char pub_path[128];
    bool tls;         /* wss:// */
    bool nats;        /* nats://HOST:PORT (--probe nats-request only) */
    char cafile[256]; /* wss://: trust this PEM file instead of the system store */
    bool insecure;    /* wss://: no certificate verification */

    uint32_t subscribers;
    uint32_t publishers;
    uint32_t threads;
    uint32_t topics; /* values of {n} */
    char pub_topic[OPTS_TEMPLATE_MAX];
    char patterns[OPTS_MAX_PATTERNS][OPTS_TEMPLATE_MAX];
    uint32_t npatterns;

    uint32_t payload;      /* bytes of the "data" string, >= PAYLOAD_MIN */
    double rate;           /* messages/s over all publishers; 0 = as fast as the window allows */
    uint32_t inflight;     /* unacknowledged publishes per publisher */
    uint32_t max_lag;      /* messages a subscriber may be behind on average; 0 = unbounded */
    bool max_lag_set;      /* false: derived from the payload size (see opts_effective_lag) */
    double duration;       /* seconds of publishing */
    bool duration_set;     /* false: with --messages, publishing is bounded by the count */
    uint64_t messages;     /* total to publish; 0 = no count limit */
    double hold;           /* seconds to wait after the ramp, before publishing */
    uint32_t churn;        /* subscribers 0..churn-1 unsubscribe and resubscribe in a loop */
    bool churn_quiet;      /* --churn on a topic without join_leave: expect no events */
    double drain;          /* seconds to wait for deliveries after the last ack */
    uint32_t connect_rate; /* new connections per second, over all threads */
    uint32_t connect_parallel; /* handshakes in progress per thread */
    double connect_timeout;    /* seconds for the whole ramp-up */

    uint32_t stall;  /* subscribers 0..stall-1 stop reading while publishing lasts */
    probe_t probe;   /* PROBE_NONE: the fan-out run */
    uint32_t repeat; /* --probe lastvalue*: subscribes measured */

    int broker_pid; /* 0: no broker statistics */
    out_format_t format;
    char label[64];
    int progress; /* -1 auto (on a TTY), 0 off, 1 on */
    bool strict;  /* exit 3 unless zero loss, no failure, no disconnect, no error */
    bool table_header;
    bool deflate;       /* offer permessage-deflate (deflate_rx.c inflates what comes compressed) */
    bool filler_market; /* --filler market: ticker-like data instead of 'x' (deflate_rx.c) */
} opts_t;

typedef enum { OPTS_OK = 0, OPTS_HELP = 1, OPTS_ERROR = -1 } opts_result_t;

/* Fills `o` with the defaults. */
void opts_defaults(opts_t *o);

/*
 * Parses argv[1..argc-1] into `o` (which opts_parse initialises with the
 * defaults first). Accepts "--name value" and "--name=value". Returns
 * OPTS_OK, OPTS_HELP (--help: print opts_usage) or OPTS_ERROR with a sentence
 * naming the option and the rule in `err`.
 */
opts_result_t opts_parse(opts_t *o, int argc, char **argv, char *err, size_t errlen);

/* The --help text. */
const char *opts_usage(void);

/*
 * Writes `tmpl` with every "{n}" replaced by the decimal `n` into `out`
 * (NUL-terminated). Returns the length, or -1 when it does not fit in `cap`.
 */
int opts_expand(const char *tmpl, uint32_t n, char *out, size_t cap);

/* The lag bound in effect: --max-lag when given, else enough messages for
 * about 256 KiB per subscriber (a quarter of the broker's default 1 MiB
 * outbound limit), between 16 and 4096. */
uint32_t opts_effective_lag(const opts_t *o);

#endif
