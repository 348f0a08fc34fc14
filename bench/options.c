/* options.c - wsbench's command line (see options.h). */
#include "options.h"

#include "payload.h"
#include "wsb/topic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAYLOAD (1024u * 1024u)

static const char *usage_load(void);
static const char *usage_output(void);

void opts_defaults(opts_t *o)
{
    memset(o, 0, sizeof(*o));
    (void)snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 8080;
    (void)snprintf(o->path, sizeof(o->path), "/ws");
    o->subscribers = 100;
    o->publishers = 1;
    o->threads = 1;
    o->topics = 1;
    (void)snprintf(o->pub_topic, sizeof(o->pub_topic), "bench.{n}");
    o->payload = 64;
    o->inflight = 64;
    o->duration = 10.0;
    o->drain = 5.0;
    o->connect_rate = 5000;
    o->connect_parallel = 256;
    o->connect_timeout = 30.0;
    o->progress = -1;
    o->repeat = 20;
}

const char *opts_usage(void)
{
    /* Two literals joined once: one literal this long exceeds what C11
     * compilers must support. */
    static char text[6144];
    if (text[0] == '\0') {
        (void)snprintf(text, sizeof(text), "%s%s", usage_load(), usage_output());
    }
    return text;
}

static const char *usage_load(void)
{
    return "usage: wsbench [options]\n"
           "Opens subscriber and publisher WebSocket connections to a wsbroker, publishes\n"
           "timestamped messages and reports deliveries, loss and end-to-end latency.\n"
           "\n"
           "target and load:\n"
           "  --url URL              ws://HOST:PORT/PATH or wss://..., HOST a literal IP "
           "(ws://127.0.0.1:8080/ws);\n"
           "                         nats://HOST:PORT: the same run against a NATS server\n"
           "                         (nats+tls://: TLS after its INFO line, --cafile applies)\n"
           "                         (PUB + PING per publish, the PONG is its ack)\n"
           "  --pub-url URL          publishers connect here instead (another node of a\n"
           "                         cluster: cross-node latency); same form as --url\n"
           "  --cafile FILE          wss://: trust the CA certificates in FILE (PEM) instead of\n"
           "                         the system store\n"
           "  --insecure             wss://: do not verify the broker's certificate\n"
           "  --subscribers N        subscriber connections (100)\n"
           "  --publishers N         publisher connections (1)\n"
           "  --threads N            event loops, one per thread, connections spread evenly (1)\n"
           "  --topics N             values of {n} in topic templates (1)\n"
           "  --topic TEMPLATE       publish topic; message k goes to n = k %% topics (bench.{n})\n"
           "  --sub PATTERN          subscription template; repeat to mix, subscriber i takes\n"
           "                         pattern i %% count with n = i %% topics (the publish "
           "template)\n"
           "  --payload BYTES        size of each message's data string, >= 16 (64)\n"
           "  --rate MSGS            messages/s over all publishers; 0 = as fast as the window\n"
           "                         allows (0)\n"
           "  --inflight N           unacknowledged publishes per publisher (64)\n"
           "  --max-lag N            pause publishing while subscribers are on average more than\n"
           "                         N messages behind; 0 = never (about 256 KiB of frames)\n"
           "  --duration SECONDS     how long to publish (10); 0 with --messages 0: no publishing\n"
           "  --messages N           stop after N messages in total (0 = no limit)\n"
           "  --hold SECONDS         wait after all connections are up, before publishing (0)\n"
           "  --churn N              subscribers 0..N-1 unsubscribe and resubscribe in a loop\n"
           "                         for --duration (one request in flight each), the others\n"
           "                         listen: join/leave events per second on a join_leave topic;\n"
           "                         needs --publishers 0 (0)\n"
           "  --churn-quiet          the --churn topic has no join_leave: expect no events\n"
           "                         (no lag bound; an event received counts as negative loss)\n"
           "  --drain SECONDS        wait at most this long for deliveries after the last ack (5)\n"
           "  --connect-rate N       new connections per second, all threads together (5000)\n"
           "  --connect-parallel N   handshakes in progress per thread (256)\n"
           "  --connect-timeout S    time allowed for the whole ramp-up (30)\n"
           "  --stall N              subscribers 0..N-1 stop reading while publishing lasts,\n"
           "                         then read what is left (slow readers: conflation) (0)\n"
           "\n"
           "probes (instead of the fan-out run; one connection each side, sequential):\n"
           "  --probe MODE           request: request -> responder -> reply round trips on\n"
           "                         --topic for --duration; http-request: POST /api/request\n"
           "                         against a WebSocket responder; nats-request: the same\n"
           "                         round trip through a NATS server, --url nats://HOST:PORT;\n"
           "                         lastvalue: publish one message to each of --topics\n"
           "                         topics, then time a subscribe to --sub with history:1\n"
           "                         until its ack and every replayed message arrived;\n"
           "                         lastvalue-exact: the same with one history:1 subscribe\n"
           "                         per exact topic, pipelined\n"
           "  --repeat N             lastvalue probes: subscribes measured (20)\n"
           "\n";
}

static const char *usage_output(void)
{
    return "output:\n"
           "  --broker-pid PID       report the broker's CPU time and RSS from /proc\n"
           "  --json                 one JSON object on stdout (same as --format json)\n"
           "  --format F             human, json, or row (one Markdown table row)\n"
           "  --table-header         print the header of the row format and exit\n"
           "  --label NAME           name of the run in json and row output (wsbench)\n"
           "  --progress, --no-progress   progress line on stderr (default: when a TTY)\n"
           "  --strict               exit 3 unless every connection succeeded, nothing was lost,\n"
           "                         no connection dropped and no error was received\n"
           "  --deflate              offer permessage-deflate (client_no_context_takeover) on\n"
           "                         every connection and inflate compressed messages\n"
           "  --filler KIND          x (default: one letter repeated) or market (ticker-like\n"
           "                         text: compresses like a real JSON feed)\n"
           "  --help\n"
           "\n"
           "exit status: 0 done, 1 runtime failure, 2 bad option, 3 --strict check failed\n";
}

int opts_expand(const char *tmpl, uint32_t n, char *out, size_t cap)
{
    char num[16];
    int numlen = snprintf(num, sizeof(num), "%u", n);
    size_t w = 0;
    for (const char *p = tmpl; *p != '\0';) {
        if (p[0] == '{' && p[1] == 'n' && p[2] == '}') {
            if (w + (size_t)numlen >= cap) {
                return -1;
            }
            memcpy(out + w, num, (size_t)numlen);
            w += (size_t)numlen;
            p += 3;
        } else {
            if (w + 1 >= cap) {
                return -1;
            }
            out[w++] = *p++;
        }
    }
    if (cap == 0) {
        return -1;
    }
    out[w] = '\0';
    return (int)w;
}

uint32_t opts_effective_lag(const opts_t *o)
{
    if (o->max_lag_set) {
        return o->max_lag;
    }
    /* A message frame is the payload plus about 60 bytes of JSON and header. */
    uint32_t lag = (256u * 1024u) / (o->payload + 64u);
    if (lag < 16) {
        lag = 16;
    }
    if (lag > 4096) {
        lag = 4096;
    }
    return lag;
}

static opts_result_t fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static opts_result_t fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return OPTS_ERROR;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s[0] < '0' || s[0] > '9') {
        return false;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    if (!parse_u64(s, max, &v) || v < min) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* A non-negative decimal number up to `max`; *rest gets what follows it. */
static bool parse_number(const char *s, double max, double *out, const char **rest)
{
    if ((s[0] < '0' || s[0] > '9') && s[0] != '.') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !isfinite(v) || v < 0 || v > max) {
        return false;
    }
    *out = v;
    *rest = end;
    return true;
}

/* Seconds as a decimal number, optionally with "s", or milliseconds with "ms". */
static bool parse_seconds(const char *s, double max, double *out)
{
    const char *rest = NULL;
    double v = 0;
    if (!parse_number(s, 1e12, &v, &rest)) {
        return false;
    }
    if (strcmp(rest, "ms") == 0) {
        v /= 1000.0;
    } else if (strcmp(rest, "s") != 0 && *rest != '\0') {
        return false;
    }
    if (v > max) {
        return false;
    }
    *out = v;
    return true;
}

static bool copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

/* ws[s]://HOST[:PORT][/PATH]; HOST an IPv4 literal or a bracketed IPv6 literal. */
static opts_result_t parse_url(const char *flag, bool *tls_out, bool *nats_out, char *host_out,
                               size_t host_cap, uint16_t *port_out, char *path_out, size_t path_cap,
                               const char *url, char *err, size_t errlen)
{
    size_t scheme_len = 0;
    if (strncmp(url, "ws://", 5) == 0) {
        scheme_len = 5;
        *tls_out = false;
    } else if (strncmp(url, "nats://", 7) == 0 && nats_out != NULL) {
        scheme_len = 7;
        *tls_out = false;
        *nats_out = true;
    } else if (strncmp(url, "nats+tls://", 11) == 0 && nats_out != NULL) {
        scheme_len = 11; /* TLS after the server's plaintext INFO, as NATS does */
        *tls_out = true;
        *nats_out = true;
    } else if (strncmp(url, "wss://", 6) == 0) {
        scheme_len = 6;
        *tls_out = true;
    } else {
        return fail(err, errlen, "%s: '%s' must start with ws:// or wss://%s", flag, url,
                    nats_out != NULL ? " (or nats:// for a NATS server)" : "");
    }
    const char *h = url + scheme_len;
    const char *host_end = NULL;
    const char *after = NULL;
    bool v6 = h[0] == '[';
    if (v6) {
        host_end = strchr(h, ']');
        if (host_end == NULL) {
            return fail(err, errlen, "%s: '%s' has no closing ']'", flag, url);
        }
        after = host_end + 1;
        h++;
    } else {
        host_end = h + strcspn(h, ":/");
        after = host_end;
    }
    size_t hlen = (size_t)(host_end - h);
    if (hlen == 0 || hlen >= host_cap) {
        return fail(err, errlen, "%s: '%s' has no host or a host longer than %zu bytes", flag, url,
                    host_cap - 1);
    }
    memcpy(host_out, h, hlen);
    host_out[hlen] = '\0';
    unsigned char addr[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host_out, addr) != 1) {
        return fail(err, errlen, "%s: host '%s' is not a literal IP%s address", flag, host_out,
                    v6 ? "v6" : "v4");
    }
    *port_out = nats_out != NULL && *nats_out ? 4222 : *tls_out ? 443 : 80;
    if (after[0] == ':') {
        char portbuf[8];
        size_t plen = strcspn(after + 1, "/");
        uint32_t port = 0;
        if (plen == 0 || plen >= sizeof(portbuf)) {
            return fail(err, errlen, "%s: '%s' has an empty or overlong port", flag, url);
        }
        memcpy(portbuf, after + 1, plen);
        portbuf[plen] = '\0';
        if (!parse_u32(portbuf, 1, 65535, &port)) {
            return fail(err, errlen, "%s: port '%s' is not a number from 1 to 65535", flag,
                        portbuf);
        }
        *port_out = (uint16_t)port;
        after += 1 + plen;
    } else if (after[0] != '/' && after[0] != '\0') {
        return fail(err, errlen, "%s: unexpected '%c' after the host in '%s'", flag, after[0], url);
    }
    const char *path = after[0] == '/' ? after : "/";
    if (!copy_str(path_out, path_cap, path)) {
        return fail(err, errlen, "%s: path longer than %zu bytes", flag, path_cap - 1);
    }
    for (const char *p = path_out; *p != '\0'; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            return fail(err, errlen, "%s: the path may not contain spaces or control bytes", flag);
        }
    }
    return OPTS_OK;
}

/* Checks a template for every value of {n} that will be used: the first and
 * the last give the shortest and longest expansions; the grammar does not
 * depend on the digits. Quotes and backslashes are refused so the topic can
 * go into JSON unescaped. */
static opts_result_t check_template(const opts_t *o, const char *name, const char *tmpl, int flags,
                                    char *err, size_t errlen)
{
    if (strpbrk(tmpl, "\"\\") != NULL) {
        return fail(err, errlen, "%s: '%s' may not contain '\"' or '\\'", name, tmpl);
    }
    uint32_t samples[2] = {0, o->topics - 1};
    for (int i = 0; i < 2; i++) {
        char topic[WSB_TOPIC_MAX_LEN + 16];
        int n = opts_expand(tmpl, samples[i], topic, sizeof(topic));
        const char *why = NULL;
        if (n < 0 || n > WSB_TOPIC_MAX_LEN) {
            return fail(err, errlen, "%s: '%s' expands to more than %d bytes", name, tmpl,
                        WSB_TOPIC_MAX_LEN);
        }
        if (wsb_topic_check(topic, (size_t)n, flags, &why) != 0) {
            return fail(err, errlen, "%s: '%s' is not a valid %s: %s", name, topic,
                        flags == WSB_TOPIC_EXACT ? "topic" : "pattern", why ? why : "invalid");
        }
        if (flags == WSB_TOPIC_EXACT && wsb_topic_is_reserved(topic, (size_t)n)) {
            return fail(err, errlen, "%s: '%s' is reserved for the broker ('$' topics)", name,
                        topic);
        }
    }
    return OPTS_OK;
}

static opts_result_t validate(opts_t *o, char *err, size_t errlen)
{
    if (o->npatterns == 0) {
        (void)snprintf(o->patterns[0], sizeof(o->patterns[0]), "%s", o->pub_topic);
        o->npatterns = 1;
    }
    if (o->pub_port != 0 && o->pub_tls != o->tls) {
        return fail(err, errlen, "--pub-url must use the same scheme (ws:// or wss://) as --url");
    }
    if ((uint64_t)o->subscribers + o->publishers == 0) {
        return fail(err, errlen, "--subscribers and --publishers are both 0: nothing to do");
    }
    if ((uint64_t)o->subscribers + o->publishers > OPTS_MAX_CONNS) {
        return fail(err, errlen, "--subscribers plus --publishers exceeds %u connections",
                    OPTS_MAX_CONNS);
    }
    if (o->churn > o->subscribers) {
        return fail(err, errlen, "--churn %u exceeds --subscribers %u", o->churn, o->subscribers);
    }
    if (o->churn > 0 && o->publishers > 0) {
        return fail(err, errlen,
                    "--churn needs --publishers 0 (deliveries would have no exact count)");
    }
    if (o->stall > o->subscribers) {
        return fail(err, errlen, "--stall %u exceeds --subscribers %u", o->stall, o->subscribers);
    }
    if (o->nats ? o->probe != PROBE_NONE && o->probe != PROBE_NATS_REQUEST
                : o->probe == PROBE_NATS_REQUEST) {
        return fail(err, errlen,
                    "--probe nats-request needs --url nats://, which takes no other --probe");
    }
    if (o->nats && (o->pub_port != 0 || o->deflate || o->churn > 0)) {
        return fail(err, errlen, "--url nats:// takes no --pub-url, --deflate or --churn");
    }
    if (o->probe != PROBE_NONE && (o->tls || o->pub_port != 0)) { /* nats+tls:// too */
        return fail(err, errlen, "--probe works over ws:// (or nats://) only, without --pub-url");
    }
    opts_result_t r = check_template(o, "--topic", o->pub_topic, WSB_TOPIC_EXACT, err, errlen);
    for (uint32_t i = 0; r == OPTS_OK && i < o->npatterns; i++) {
        r = check_template(o, "--sub", o->patterns[i], WSB_TOPIC_PATTERN, err, errlen);
    }
    return r;
}

typedef enum {
    O_URL,
    O_PUB_URL,
    O_CAFILE,
    O_INSECURE,
    O_SUBS,
    O_PUBS,
    O_THREADS,
    O_TOPICS,
    O_TOPIC,
    O_SUB,
    O_PAYLOAD,
    O_RATE,
    O_INFLIGHT,
    O_MAX_LAG,
    O_DURATION,
    O_MESSAGES,
    O_HOLD,
    O_CHURN,
    O_CHURN_QUIET,
    O_DRAIN,
    O_CONNECT_RATE,
    O_CONNECT_PARALLEL,
    O_CONNECT_TIMEOUT,
    O_STALL,
    O_PROBE,
    O_REPEAT,
    O_BROKER_PID,
    O_JSON,
    O_FORMAT,
    O_TABLE_HEADER,
    O_LABEL,
    O_PROGRESS,
    O_NO_PROGRESS,
    O_STRICT,
    O_DEFLATE,
    O_FILLER,
    O_HELP
} opt_id_t;

typedef struct {
    const char *name;
    opt_id_t id;
    bool has_value;
} opt_def_t;

static const opt_def_t defs[] = {
    {"url", O_URL, true},
    {"pub-url", O_PUB_URL, true},
    {"cafile", O_CAFILE, true},
    {"insecure", O_INSECURE, false},
    {"subscribers", O_SUBS, true},
    {"publishers", O_PUBS, true},
    {"threads", O_THREADS, true},
    {"topics", O_TOPICS, true},
    {"topic", O_TOPIC, true},
    {"sub", O_SUB, true},
    {"payload", O_PAYLOAD, true},
    {"rate", O_RATE, true},
    {"inflight", O_INFLIGHT, true},
    {"max-lag", O_MAX_LAG, true},
    {"duration", O_DURATION, true},
    {"messages", O_MESSAGES, true},
    {"hold", O_HOLD, true},
    {"churn", O_CHURN, true},
    {"churn-quiet", O_CHURN_QUIET, false},
    {"drain", O_DRAIN, true},
    {"connect-rate", O_CONNECT_RATE, true},
    {"connect-parallel", O_CONNECT_PARALLEL, true},
    {"connect-timeout", O_CONNECT_TIMEOUT, true},
    {"stall", O_STALL, true},
    {"probe", O_PROBE, true},
    {"repeat", O_REPEAT, true},
    {"broker-pid", O_BROKER_PID, true},
    {"json", O_JSON, false},
    {"format", O_FORMAT, true},
    {"table-header", O_TABLE_HEADER, false},
    {"label", O_LABEL, true},
    {"progress", O_PROGRESS, false},
    {"no-progress", O_NO_PROGRESS, false},
    {"strict", O_STRICT, false},
    {"deflate", O_DEFLATE, false},
    {"filler", O_FILLER, true},
    {"help", O_HELP, false},
};

#define DAY_S 86400.0

/* The target options: --url, --cafile, --insecure. */
static opts_result_t apply_target(opts_t *o, opt_id_t id, const char *v, char *err, size_t errlen)
{
    if (id == O_CAFILE) {
        if (!copy_str(o->cafile, sizeof(o->cafile), v) || v[0] == '\0') {
            return fail(err, errlen, "--cafile: the path must be 1 to %zu bytes",
                        sizeof(o->cafile) - 1);
        }
        return OPTS_OK;
    }
    o->insecure = true;
    return OPTS_OK;
}

static opts_result_t apply_probe(opts_t *o, const char *v, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        probe_t probe;
    } modes[] = {
        {"request", PROBE_REQUEST},
        {"http-request", PROBE_HTTP_REQUEST},
        {"nats-request", PROBE_NATS_REQUEST},
        {"lastvalue", PROBE_LASTVALUE},
        {"lastvalue-exact", PROBE_LASTVALUE_EXACT},
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(v, modes[i].name) == 0) {
            o->probe = modes[i].probe;
            return OPTS_OK;
        }
    }
    return fail(err, errlen,
                "--probe: '%s' is not one of request, http-request, nats-request, lastvalue, "
                "lastvalue-exact",
                v);
}

static opts_result_t apply_format(opts_t *o, const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "human") == 0) {
        o->format = OUT_HUMAN;
    } else if (strcmp(v, "json") == 0) {
        o->format = OUT_JSON;
    } else if (strcmp(v, "row") == 0) {
        o->format = OUT_ROW;
    } else {
        return fail(err, errlen, "--format: '%s' is not one of human, json, row", v);
    }
    return OPTS_OK;
}

/* Applies one option; `v` is its value ("" for flags). */
/* --url, or --pub-url (the publishers' target). */
static opts_result_t apply_url(opts_t *o, bool pub, const char *v, char *err, size_t errlen)
{
    if (pub) {
        return parse_url("--pub-url", &o->pub_tls, NULL, o->pub_host, sizeof(o->pub_host),
                         &o->pub_port, o->pub_path, sizeof(o->pub_path), v, err, errlen);
    }
    o->nats = false;
    return parse_url("--url", &o->tls, &o->nats, o->host, sizeof(o->host), &o->port, o->path,
                     sizeof(o->path), v, err, errlen);
}

/* The options of time and connection pacing (a part of apply()). */
static opts_result_t apply_timing(opts_t *o, const opt_def_t *d, const char *v, char *err,
                                  size_t errlen)
{
    switch (d->id) {
    case O_HOLD:
        if (!parse_seconds(v, DAY_S, &o->hold)) {
            return fail(err, errlen, "--hold: '%s' is not a number of seconds from 0 to %g", v,
                        DAY_S);
        }
        break;
    case O_DRAIN:
        if (!parse_seconds(v, 3600, &o->drain)) {
            return fail(err, errlen, "--drain: '%s' is not a number of seconds from 0 to 3600", v);
        }
        break;
    case O_CONNECT_RATE:
        if (!parse_u32(v, 1, 10000000, &o->connect_rate)) {
            return fail(err, errlen, "--connect-rate: '%s' is not a number from 1 to 10000000", v);
        }
        break;
    case O_CONNECT_PARALLEL:
        if (!parse_u32(v, 1, 65536, &o->connect_parallel)) {
            return fail(err, errlen, "--connect-parallel: '%s' is not a number from 1 to 65536", v);
        }
        break;
    case O_CONNECT_TIMEOUT:
        if (!parse_seconds(v, 3600, &o->connect_timeout) || o->connect_timeout <= 0) {
            return fail(err, errlen,
                        "--connect-timeout: '%s' is not a number of seconds above 0, at most 3600",
                        v);
        }
        break;
    default:
        break;
    }
    return OPTS_OK;
}

/* How the clients behave: churn, stalled readers, probe repeats. */
static opts_result_t apply_behaviour(opts_t *o, opt_id_t id, const char *v, char *err,
                                     size_t errlen)
{
    switch (id) {
    case O_CHURN:
        if (!parse_u32(v, 0, OPTS_MAX_CONNS, &o->churn)) {
            return fail(err, errlen, "--churn: '%s' is not a number from 0 to %u", v,
                        OPTS_MAX_CONNS);
        }
        break;
    case O_CHURN_QUIET:
        o->churn_quiet = true;
        break;
    case O_STALL:
        if (!parse_u32(v, 0, OPTS_MAX_CONNS, &o->stall)) {
            return fail(err, errlen, "--stall: '%s' is not a number from 0 to %u", v,
                        OPTS_MAX_CONNS);
        }
        break;
    case O_REPEAT:
        if (!parse_u32(v, 1, 1000000, &o->repeat)) {
            return fail(err, errlen, "--repeat: '%s' is not a number from 1 to 1000000", v);
        }
        break;
    default:
        break;
    }
    return OPTS_OK;
}

static opts_result_t apply(opts_t *o, const opt_def_t *d, const char *v, char *err, size_t errlen)
{
    uint64_t u64 = 0;
    const char *rest = NULL;
    switch (d->id) {
    case O_URL:
    case O_PUB_URL:
        return apply_url(o, d->id == O_PUB_URL, v, err, errlen);
    case O_CAFILE:
    case O_INSECURE:
        return apply_target(o, d->id, v, err, errlen);
    case O_SUBS:
        if (!parse_u32(v, 0, OPTS_MAX_CONNS, &o->subscribers)) {
            return fail(err, errlen, "--subscribers: '%s' is not a number from 0 to %u", v,
                        OPTS_MAX_CONNS);
        }
        break;
    case O_PUBS:
        if (!parse_u32(v, 0, OPTS_MAX_CONNS, &o->publishers)) {
            return fail(err, errlen, "--publishers: '%s' is not a number from 0 to %u", v,
                        OPTS_MAX_CONNS);
        }
        break;
    case O_THREADS:
        if (!parse_u32(v, 1, OPTS_MAX_THREADS, &o->threads)) {
            return fail(err, errlen, "--threads: '%s' is not a number from 1 to %d", v,
                        OPTS_MAX_THREADS);
        }
        break;
    case O_TOPICS:
        if (!parse_u32(v, 1, OPTS_MAX_CONNS, &o->topics)) {
            return fail(err, errlen, "--topics: '%s' is not a number from 1 to %u", v,
                        OPTS_MAX_CONNS);
        }
        break;
    case O_TOPIC:
        if (!copy_str(o->pub_topic, sizeof(o->pub_topic), v)) {
            return fail(err, errlen, "--topic: longer than %d bytes", OPTS_TEMPLATE_MAX - 1);
        }
        break;
    case O_SUB:
        if (o->npatterns == OPTS_MAX_PATTERNS) {
            return fail(err, errlen, "--sub: at most %d patterns", OPTS_MAX_PATTERNS);
        }
        if (!copy_str(o->patterns[o->npatterns], sizeof(o->patterns[0]), v)) {
            return fail(err, errlen, "--sub: longer than %d bytes", OPTS_TEMPLATE_MAX - 1);
        }
        o->npatterns++;
        break;
    case O_PAYLOAD:
        if (!parse_u32(v, PAYLOAD_MIN, MAX_PAYLOAD, &o->payload)) {
            return fail(err, errlen, "--payload: '%s' is not a number from %d to %u", v,
                        PAYLOAD_MIN, MAX_PAYLOAD);
        }
        break;
    case O_RATE:
        if (!parse_number(v, 1e9, &o->rate, &rest) || *rest != '\0') {
            return fail(err, errlen, "--rate: '%s' is not a number of messages/s from 0 to 1e9", v);
        }
        break;
    case O_INFLIGHT:
        if (!parse_u32(v, 1, 65536, &o->inflight)) {
            return fail(err, errlen, "--inflight: '%s' is not a number from 1 to 65536", v);
        }
        break;
    case O_MAX_LAG:
        if (!parse_u32(v, 0, 1u << 30, &o->max_lag)) {
            return fail(err, errlen, "--max-lag: '%s' is not a number from 0 to %u", v, 1u << 30);
        }
        o->max_lag_set = true;
        break;
    case O_DURATION:
        if (!parse_seconds(v, DAY_S, &o->duration)) {
            return fail(err, errlen, "--duration: '%s' is not a number of seconds from 0 to %g", v,
                        DAY_S);
        }
        o->duration_set = true;
        break;
    case O_MESSAGES:
        if (!parse_u64(v, UINT64_C(1) << 48, &o->messages)) {
            return fail(err, errlen, "--messages: '%s' is not a number from 0 to 2^48", v);
        }
        break;
    case O_CHURN:
    case O_CHURN_QUIET:
    case O_STALL:
    case O_REPEAT:
        return apply_behaviour(o, d->id, v, err, errlen);
    case O_PROBE:
        return apply_probe(o, v, err, errlen);
    case O_HOLD:
    case O_DRAIN:
    case O_CONNECT_RATE:
    case O_CONNECT_PARALLEL:
    case O_CONNECT_TIMEOUT:
        return apply_timing(o, d, v, err, errlen);
    case O_BROKER_PID:
        if (!parse_u64(v, INT32_MAX, &u64) || u64 == 0) {
            return fail(err, errlen, "--broker-pid: '%s' is not a process id", v);
        }
        o->broker_pid = (int)u64;
        break;
    case O_JSON:
        o->format = OUT_JSON;
        break;
    case O_FORMAT:
        return apply_format(o, v, err, errlen);
    case O_TABLE_HEADER:
        o->table_header = true;
        break;
    case O_LABEL:
        if (!copy_str(o->label, sizeof(o->label), v) || strpbrk(v, "\"\\|") != NULL) {
            return fail(err, errlen, "--label: at most %zu bytes, without '\"', '\\' or '|'",
                        sizeof(o->label) - 1);
        }
        break;
    case O_PROGRESS:
        o->progress = 1;
        break;
    case O_NO_PROGRESS:
        o->progress = 0;
        break;
    case O_STRICT:
        o->strict = true;
        break;
    case O_DEFLATE:
        o->deflate = true;
        break;
    case O_FILLER:
        if (strcmp(v, "x") != 0 && strcmp(v, "market") != 0) {
            return fail(err, errlen, "--filler: x or market, got %s", v);
        }
        o->filler_market = strcmp(v, "market") == 0;
        break;
    case O_HELP:
        return OPTS_HELP;
    }
    return OPTS_OK;
}

opts_result_t opts_parse(opts_t *o, int argc, char **argv, char *err, size_t errlen)
{
    opts_defaults(o);
    if (errlen > 0) {
        err[0] = '\0';
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            return fail(err, errlen, "unexpected argument '%s' (options start with --)", arg);
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_def_t *d = NULL;
        for (size_t k = 0; k < sizeof(defs) / sizeof(defs[0]); k++) {
            if (strlen(defs[k].name) == nlen && strncmp(defs[k].name, name, nlen) == 0) {
                d = &defs[k];
                break;
            }
        }
        if (d == NULL) {
            return fail(err, errlen, "unknown option '%.*s' (see --help)", (int)(nlen + 2), arg);
        }
        const char *v = "";
        if (d->has_value) {
            if (eq != NULL) {
                v = eq + 1;
            } else if (i + 1 < argc) {
                v = argv[++i];
            } else {
                return fail(err, errlen, "--%s needs a value", d->name);
            }
        } else if (eq != NULL) {
            return fail(err, errlen, "--%s takes no value", d->name);
        }
        opts_result_t r = apply(o, d, v, err, errlen);
        if (r != OPTS_OK) {
            return r;
        }
    }
    if (o->label[0] == '\0') {
        (void)snprintf(o->label, sizeof(o->label), "wsbench");
    }
    return validate(o, err, errlen);
}
