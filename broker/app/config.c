/*
 * config.c - one static table of keys drives flags, WSB_* variables, the JSON
 * config file, --help and validation (see config.h for the contract).
 *
 * Every value, defaults included, goes through the same text parsers, so a
 * default in the table is written exactly as a user would write it and --help
 * shows it verbatim. Sources are applied in order of increasing precedence
 * (defaults, file, environment, flags); each one overwrites what came before.
 */
#include "app/config.h"

#include "core/apikey.h"
#include "core/history.h"
#include "net/proxy.h"
#include "shared/log.h"
#include "shared/units.h"
#include "wsb/topic.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#ifndef WSB_VERSION
#define WSB_VERSION "0.0.0-dev"
#endif

/* The build points this at the project's web/ folder so `make run` serves the
 * demo page from any working directory. */
#ifdef WSB_DEFAULT_WEB_ROOT
#define DEFAULT_WEB_ROOT WSB_DEFAULT_WEB_ROOT
#else
#define DEFAULT_WEB_ROOT "web"
#endif

#define KIB       1024ULL
#define MIB       (1024ULL * KIB)
#define GIB       (1024ULL * MIB)
#define TIB       (1024ULL * GIB)
#define SECOND_MS 1000ULL
#define MINUTE_MS (60ULL * SECOND_MS)
#define HOUR_MS   (60ULL * MINUTE_MS)
#define DAY_MS    (24ULL * HOUR_MS)

/* Longest key name, flag or variable name; the table's names are far shorter. */
#define NAME_MAX_LEN 96

typedef enum {
    KEY_STRING,   /* char *, owned by config_t */
    KEY_UINT,     /* uint32_t within [min, max] */
    KEY_SIZE,     /* uint64_t bytes within [min, max] */
    KEY_DURATION, /* uint64_t milliseconds within [min, max] */
    KEY_BOOL,     /* bool */
    KEY_LIST      /* char *, comma-separated; a JSON array of strings in the file */
} key_type_t;

typedef struct {
    /* Lowercase, '_' between words, '.' between nesting levels. Names must stay
     * distinct after mapping '.' and '_' alike to '-' (flags) and '_' (vars). */
    const char *name;
    key_type_t type;
    size_t offset; /* of the field in config_t */
    uint64_t min, max;
    const char *def;     /* default, in flag syntax */
    const char *metavar; /* shown in --help after the flag */
    /* KEY_STRING only: extra validation (NULL = any string) and what it wants. */
    bool (*valid)(const char *value);
    const char *expect;
    const char *help;
} key_def_t;

static bool is_address(const char *value)
{
    return value[0] != '\0';
}

static bool is_url_path(const char *value)
{
    if (value[0] != '/') {
        return false;
    }
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#') {
            return false;
        }
    }
    return true;
}

static bool is_optional_url_path(const char *value)
{
    return value[0] == '\0' || is_url_path(value);
}

static bool is_node_id(const char *value)
{
    size_t len = 0;
    for (const char *p = value; *p; p++, len++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return len <= 64;
}

static bool is_optional_redis_url(const char *value)
{
    redis_url_t u;
    return value[0] == '\0' || config_parse_redis_url(value, &u) == 0;
}

static bool is_redis_prefix(const char *value)
{
    /* Redis glob characters would make the node's PSUBSCRIBE patterns match
     * other channels than its own. */
    return strlen(value) <= 64 && strpbrk(value, "*?[]\\") == NULL;
}

static bool is_optional_port(const char *value)
{
    if (value[0] == '\0') {
        return true;
    }
    unsigned long v = 0;
    for (const char *p = value; *p; p++) {
        if (*p < '0' || *p > '9' || p - value > 5) {
            return false;
        }
        v = v * 10 + (unsigned long)(*p - '0');
    }
    return v <= 65535;
}

static bool is_log_level(const char *value)
{
    log_level_t level;
    return log_parse_level(value, &level) == 0;
}

/* Calls `ok` on each comma-separated entry of `value` ("" is an empty list;
 * an empty entry, as in "a,,b", is invalid). */
static bool each_entry(const char *value, bool (*ok)(const char *entry, size_t len))
{
    if (value[0] == '\0') {
        return true;
    }
    for (const char *p = value;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || !ok(p, len)) {
            return false;
        }
        if (comma == NULL) {
            return true;
        }
        p = comma + 1;
    }
}

static bool pattern_ok(const char *p, size_t len)
{
    return wsb_topic_check(p, len, WSB_TOPIC_PATTERN, NULL) == 0;
}

static bool is_pattern_list(const char *value)
{
    return each_entry(value, pattern_ok);
}

static bool api_key_ok(const char *p, size_t len)
{
    return apikey_entry_valid(p, len);
}

static bool is_api_key_list(const char *value)
{
    return each_entry(value, api_key_ok);
}

static bool origin_ok(const char *p, size_t len)
{
    const char *scheme = memchr(p, ':', len);
    if (scheme == NULL || len - (size_t)(scheme - p) < 4 || memcmp(scheme, "://", 3) != 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)p[i] <= ' ' || (p[i] == '/' && i > (size_t)(scheme - p) + 2)) {
            return false; /* an origin has no path, not even "/" */
        }
    }
    return true;
}

static bool is_origin_list(const char *value)
{
    return each_entry(value, origin_ok);
}

static bool proxy_ok(const char *p, size_t len)
{
    return proxy_entry_valid(p, len);
}

static bool is_proxy_list(const char *value)
{
    return each_entry(value, proxy_ok);
}

static bool is_rate_action(const char *value)
{
    return strcmp(value, "error") == 0 || strcmp(value, "close") == 0;
}

#define OFF(field) offsetof(config_t, field)

/* One constructor per type keeps each key to a few lines. */
#define STRING_KEY(name, field, def, metavar, valid, expect, help)                                 \
    {                                                                                              \
        name, KEY_STRING, OFF(field), 0, 0, def, metavar, valid, expect, help                      \
    }
#define UINT_KEY(name, field, min, max, def, help)                                                 \
    {                                                                                              \
        name, KEY_UINT, OFF(field), min, max, def, "N", NULL, NULL, help                           \
    }
#define SIZE_KEY(name, field, min, max, def, help)                                                 \
    {                                                                                              \
        name, KEY_SIZE, OFF(field), min, max, def, "SIZE", NULL, NULL, help                        \
    }
#define BOOL_KEY(name, field, def, help)                                                           \
    {                                                                                              \
        name, KEY_BOOL, OFF(field), 0, 1, def, "BOOL", NULL, NULL, help                            \
    }
#define LIST_KEY(name, field, def, metavar, valid, expect, help)                                   \
    {                                                                                              \
        name, KEY_LIST, OFF(field), 0, 0, def, metavar, valid, expect, help                        \
    }
#define DURATION_KEY(name, field, min, max, def, help)                                             \
    {                                                                                              \
        name, KEY_DURATION, OFF(field), min, max, def, "DURATION", NULL, NULL, help                \
    }

static const key_def_t keys[] = {
    /* listener */
    STRING_KEY("host", host, "127.0.0.1", "ADDR", is_address,
               "an address such as 127.0.0.1, 0.0.0.0 or ::",
               "address to listen on; \"::\" or \"0.0.0.0\" for all interfaces"),
    UINT_KEY("port", port, 0, 65535, "8080",
             "TCP port to listen on; 0 binds a free port (see port_file)"),
    STRING_KEY("port_file", port_file, "", "PATH", NULL, NULL,
               "write the bound port number here (atomically) once accepting; \"\" = off"),
    UINT_KEY("backlog", backlog, 1, 65535, "511", "listen(2) backlog of pending connections"),
    UINT_KEY("workers", workers, 0, 256, "0",
             "worker threads, each with its own event loop and listener; 0 = one per CPU core"),
    UINT_KEY("worker_queue_size", worker_queue_size, 16, 16777216, "65536",
             "published messages a worker's inbox holds; beyond, that worker drops them"),
    STRING_KEY("ws_path", ws_path, "/ws", "PATH", is_url_path, "a URL path starting with \"/\"",
               "URL path of the WebSocket endpoint; an upgrade elsewhere gets 404"),
    STRING_KEY("echo_path", echo_path, "", "PATH", is_optional_url_path,
               "\"\" (off) or a URL path starting with \"/\"",
               "URL path of an echo WebSocket endpoint for conformance suites; \"\" = off"),
    STRING_KEY("web_root", web_root, DEFAULT_WEB_ROOT, "DIR", NULL, NULL,
               "folder of static files served over HTTP (the demo page); \"\" = off"),
    STRING_KEY("node_id", node_id, "", "ID", is_node_id,
               "\"\" (generated) or up to 64 letters, digits, '.', '_' or '-'",
               "this node's id in logs and in a cluster; \"\" = generated at start"),
    STRING_KEY("log_level", log_level, "info", "LEVEL", is_log_level,
               "one of error, warn, info, debug",
               "least severe level logged: error, warn, info or debug"),
    /* limits */
    UINT_KEY("max_connections", max_connections, 1, INT32_MAX, "50000",
             "open connections at most; beyond, HTTP 503"),
    SIZE_KEY("max_message_size", max_message_size, 1, GIB, "64KiB",
             "largest WebSocket message accepted; beyond, close 1009"),
    UINT_KEY("max_subscriptions", max_subscriptions, 1, INT32_MAX, "1000",
             "subscriptions per connection; beyond, error limit_exceeded"),
    SIZE_KEY("max_outbound_bytes", max_outbound_bytes, 1, TIB, "1MiB",
             "unsent bytes queued per connection; beyond, close 1013"),
    SIZE_KEY("max_total_outbound", max_total_outbound, 1, TIB, "256MiB",
             "unsent bytes queued over all connections (each worker: its share)"),
    SIZE_KEY("max_http_body", max_http_body, 1, GIB, "1MiB",
             "largest HTTP request body; beyond, 413"),
    SIZE_KEY("max_header_size", max_header_size, 1, 16 * MIB, "8KiB",
             "largest HTTP request head; beyond, 431"),
    /* timeouts */
    DURATION_KEY("header_timeout", header_timeout_ms, 1, 30 * DAY_MS, "10s",
                 "time allowed for an HTTP request head to arrive"),
    DURATION_KEY("ping_interval", ping_interval_ms, 0, 30 * DAY_MS, "25s",
                 "period of server pings on WebSockets; 0 = off; must be < idle_timeout"),
    DURATION_KEY("idle_timeout", idle_timeout_ms, 1, 30 * DAY_MS, "60s",
                 "close a WebSocket that sent no complete frame (pongs count) for this long"),
    DURATION_KEY("close_timeout", close_timeout_ms, 1, 30 * DAY_MS, "3s",
                 "after our close frame, wait this long for the peer's close and the drain"),
    DURATION_KEY("shutdown_timeout", shutdown_timeout_ms, 1, 30 * DAY_MS, "5s",
                 "on SIGTERM, time allowed to flush pending output before exiting"),
    /* history */
    STRING_KEY("history", history, "", "JSON", NULL, NULL,
               "history rules, a JSON list: [{\"pattern\":\"chat.>\",\"size\":100,"
               "\"ttl\":\"300s\",\"slow_consumer\":\"drop\"}]; \"\" = none"),
    UINT_KEY("history_max_topics", history_max_topics, 64, 16777216, "10000",
             "topics keeping history at most; beyond, the least recently published loses its "
             "history and epoch (its seq goes on under a new epoch)"),
    SIZE_KEY("history_max_bytes", history_max_bytes, 1, TIB, "256MiB",
             "bytes of history messages kept over all topics; beyond, the oldest messages of "
             "the least recently published topic are dropped (its seq and epoch stay)"),
    /* federation */
    STRING_KEY("redis.url", redis_url, "", "URL", is_optional_redis_url,
               "\"\" (off) or redis://[[user]:password@]host[:port][/db]",
               "Redis server that federates nodes; \"\" = off (single node)"),
    STRING_KEY("redis.prefix", redis_prefix, "wsb:", "PREFIX", is_redis_prefix,
               "up to 64 bytes without the Redis glob characters * ? [ ] \\",
               "prepended to every Redis channel (several clusters can share one Redis)"),
    UINT_KEY("redis.queue_size", redis_queue_size, 16, 16777216, "65536",
             "commands waiting to be sent to Redis; beyond (or while Redis is down), "
             "cross-node messages are dropped"),
    DURATION_KEY("redis.reconnect_max", redis_reconnect_max_ms, 10, 10 * MINUTE_MS, "5s",
                 "longest wait between reconnect attempts (exponential backoff with jitter)"),
    BOOL_KEY("redis.sharded", redis_sharded, "false",
             "Redis 7 sharded pub/sub: SPUBLISH/SSUBSCRIBE for exact topics (single server; "
             "no Redis Cluster routing)"),
    BOOL_KEY("redis.sharded_patterns", redis_sharded_patterns, "true",
             "with redis.sharded: also PUBLISH every message on the classic bus for wildcard "
             "subscribers; false = one SPUBLISH each and wildcard subscriptions refused"),
    /* RESP ingress */
    STRING_KEY("resp.host", resp_host, "127.0.0.1", "ADDR", is_address,
               "an address such as 127.0.0.1, 0.0.0.0 or ::", "address of the RESP listener"),
    STRING_KEY("resp.port", resp_port, "", "PORT", is_optional_port,
               "\"\" (off) or a port from 0 to 65535",
               "port of the RESP (Redis protocol) listener; \"\" = off, 0 = a free port"),
    STRING_KEY("resp.port_file", resp_port_file, "", "PATH", NULL, NULL,
               "write the bound RESP port here (atomically) once accepting; \"\" = off"),
    /* TLS (SECURITY.md) */
    STRING_KEY("tls.cert", tls_cert, "", "PATH", NULL, NULL,
               "PEM certificate chain; with tls.key, starts a wss:// listener on tls.port; "
               "\"\" = no TLS"),
    STRING_KEY("tls.key", tls_key, "", "PATH", NULL, NULL, "PEM private key of tls.cert"),
    STRING_KEY("tls.ca", tls_ca, "", "PATH", NULL, NULL,
               "PEM CA bundle: when set, TLS clients must present a certificate it signed"),
    UINT_KEY("tls.port", tls_port, 0, 65535, "8443",
             "TLS port, next to the plain one (port); 0 binds a free port"),
    STRING_KEY("tls.port_file", tls_port_file, "", "PATH", NULL, NULL,
               "write the bound TLS port here (atomically) once accepting; \"\" = off"),
    /* authentication and authorization */
    BOOL_KEY("auth.required", auth_required, "false",
             "WebSocket clients need a valid JWT and /api/publish an API key; false = open "
             "broker (quick start), anonymous clients get the auth.anonymous_* permissions"),
    STRING_KEY("auth.jwt_secret", auth_jwt_secret, "", "SECRET", NULL, NULL,
               "HS256 shared secret for JWTs; \"\" = HS256 off"),
    STRING_KEY("auth.jwt_public_key", auth_jwt_public_key, "", "PATH", NULL, NULL,
               "PEM public key (RSA for RS256, EC P-256 for ES256) for JWTs; \"\" = off"),
    BOOL_KEY("auth.require_exp", auth_require_exp, "false",
             "refuse JWTs without an exp claim; false = such a token never expires"),
    DURATION_KEY("auth.leeway", auth_leeway_ms, 0, HOUR_MS, "30s",
                 "clock skew allowed on a JWT's exp and nbf"),
    DURATION_KEY("auth.timeout", auth_timeout_ms, 1, HOUR_MS, "10s",
                 "with auth.required, a connection without a token must send an auth message "
                 "within this time; else close 1008"),
    LIST_KEY("auth.anonymous_subscribe", auth_anonymous_subscribe, ">,$sys.>", "PATTERNS",
             is_pattern_list, "a comma-separated list of topic patterns",
             "patterns anonymous clients may subscribe to (when auth.required is false); '>' "
             "does not include reserved '$' topics, hence \"$sys.>\""),
    LIST_KEY("auth.anonymous_publish", auth_anonymous_publish, ">", "PATTERNS", is_pattern_list,
             "a comma-separated list of topic patterns",
             "patterns anonymous clients may publish to (when auth.required is false)"),
    LIST_KEY("api_keys", api_keys, "", "KEYS", is_api_key_list,
             "a comma-separated list of KEY or KEY:PATTERN PATTERN... (keys of 16 to 256 "
             "characters without ',', ':' or spaces)",
             "API keys for POST /api/publish (Authorization: Bearer or X-API-Key), each with "
             "the topic patterns it may publish to (none = any); when set, a key is required"),
    LIST_KEY("allowed_origins", allowed_origins, "", "ORIGINS", is_origin_list,
             "a comma-separated list of origins such as https://example.com or "
             "https://*.example.com",
             "Origins allowed to open a WebSocket (exact or https://*.domain); \"\" = any; "
             "others are closed at once with 4003"),
    BOOL_KEY("allow_missing_origin", allow_missing_origin, "true",
             "accept WebSocket upgrades without an Origin header (non-browser clients)"),
    /* rate limits */
    UINT_KEY("rate.messages", rate_messages, 0, INT32_MAX, "0",
             "messages per second each WebSocket may send (token bucket); 0 = unlimited"),
    UINT_KEY("rate.burst", rate_burst, 0, INT32_MAX, "0",
             "messages a WebSocket may send at once above rate.messages; 0 = rate.messages"),
    SIZE_KEY("rate.bytes", rate_bytes, 0, TIB, "0",
             "bytes per second each WebSocket may send (burst: one second's worth or one "
             "max_message_size); 0 = unlimited"),
    STRING_KEY("rate.action", rate_action, "error", "ACTION", is_rate_action, "error or close",
               "over a rate limit: error (reply rate_limited, drop the request) or close (1008)"),
    UINT_KEY("max_connections_per_ip", max_connections_per_ip, 0, INT32_MAX, "0",
             "open connections per client IP address; beyond, HTTP 429; 0 = unlimited"),
    UINT_KEY("max_handshakes_per_second", max_handshakes_per_second, 0, INT32_MAX, "0",
             "WebSocket upgrades accepted per second over the process; beyond, HTTP 429; 0 = "
             "unlimited"),
    LIST_KEY("trusted_proxies", trusted_proxies, "", "ADDRS", is_proxy_list,
             "a comma-separated list of IP addresses or CIDR networks such as 10.0.0.0/8, ::1",
             "reverse proxies whose X-Forwarded-For is believed: a request from one of them "
             "is counted (max_connections_per_ip) and logged under the rightmost untrusted "
             "address of the header; \"\" = none, the header is ignored"),
};

#define NKEYS (sizeof keys / sizeof keys[0])

static void set_err(char *err, size_t errlen, const char *fmt, ...) WSB_PRINTF(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *dup_or_die(const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL) {
        (void)fputs("wsbroker: out of memory\n", stderr);
        abort();
    }
    return copy;
}

/* ---- names: one rule from key to flag and variable ---------------------- */

/* "resp.port" -> "--resp-port" */
static void key_flag(const key_def_t *k, char *buf, size_t len)
{
    size_t n = 0;
    buf[n++] = '-';
    buf[n++] = '-';
    for (const char *p = k->name; *p && n + 1 < len; p++) {
        char c = *p;
        if (c == '.' || c == '_') {
            c = '-';
        }
        buf[n++] = c;
    }
    buf[n] = '\0';
}

/* "resp.port" -> "WSB_RESP_PORT" */
static void key_env(const key_def_t *k, char *buf, size_t len)
{
    size_t n = 0;
    memcpy(buf, "WSB_", 4);
    n = 4;
    for (const char *p = k->name; *p && n + 1 < len; p++) {
        char c = *p;
        if (c == '.') {
            c = '_';
        } else if (c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        buf[n++] = c;
    }
    buf[n] = '\0';
}

static const key_def_t *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

/* True when `prefix` names a nesting level: some key starts with "prefix.". */
static bool key_has_children(const char *prefix)
{
    size_t len = strlen(prefix);
    for (size_t i = 0; i < NKEYS; i++) {
        if (strncmp(keys[i].name, prefix, len) == 0 && keys[i].name[len] == '.') {
            return true;
        }
    }
    return false;
}

static const key_def_t *find_flag(const char *flag, size_t len)
{
    char buf[NAME_MAX_LEN];
    for (size_t i = 0; i < NKEYS; i++) {
        key_flag(&keys[i], buf, sizeof buf);
        if (strlen(buf) == len && memcmp(buf, flag, len) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static const key_def_t *find_env(const char *var, size_t len)
{
    char buf[NAME_MAX_LEN];
    for (size_t i = 0; i < NKEYS; i++) {
        key_env(&keys[i], buf, sizeof buf);
        if (strlen(buf) == len && memcmp(buf, var, len) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

/* ---- value parsers ------------------------------------------------------- */

static int parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0') {
        return -1;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        uint64_t digit = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - digit) / 10) {
            return -1;
        }
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

/* ---- formatting for messages and --help --------------------------------- */

static void format_size(uint64_t bytes, char *buf, size_t len)
{
    if (bytes >= GIB && bytes % GIB == 0) {
        (void)snprintf(buf, len, "%lluGiB", (unsigned long long)(bytes / GIB));
    } else if (bytes >= MIB && bytes % MIB == 0) {
        (void)snprintf(buf, len, "%lluMiB", (unsigned long long)(bytes / MIB));
    } else if (bytes >= KIB && bytes % KIB == 0) {
        (void)snprintf(buf, len, "%lluKiB", (unsigned long long)(bytes / KIB));
    } else {
        (void)snprintf(buf, len, "%lluB", (unsigned long long)bytes);
    }
}

static void format_duration(uint64_t ms, char *buf, size_t len)
{
    if (ms == 0) {
        (void)snprintf(buf, len, "0");
    } else if (ms % HOUR_MS == 0) {
        (void)snprintf(buf, len, "%lluh", (unsigned long long)(ms / HOUR_MS));
    } else if (ms % MINUTE_MS == 0) {
        (void)snprintf(buf, len, "%llum", (unsigned long long)(ms / MINUTE_MS));
    } else if (ms % SECOND_MS == 0) {
        (void)snprintf(buf, len, "%llus", (unsigned long long)(ms / SECOND_MS));
    } else {
        (void)snprintf(buf, len, "%llums", (unsigned long long)ms);
    }
}

/* What a key accepts, as the "expected ..." part of an error message. */
static void describe_expected(const key_def_t *k, char *buf, size_t len)
{
    char lo[32], hi[32];
    uint64_t def = 0;
    switch (k->type) {
    case KEY_STRING:
    case KEY_LIST:
        (void)snprintf(buf, len, "%s", k->expect != NULL ? k->expect : "a string");
        break;
    case KEY_UINT:
        (void)snprintf(buf, len, "an integer from %llu to %llu", (unsigned long long)k->min,
                       (unsigned long long)k->max);
        break;
    case KEY_SIZE:
        format_size(k->min, lo, sizeof lo);
        format_size(k->max, hi, sizeof hi);
        (void)units_parse_size(k->def, &def);
        (void)snprintf(buf, len, "a size from %s to %s such as %llu or \"%s\"", lo, hi,
                       (unsigned long long)def, k->def);
        break;
    case KEY_DURATION:
        format_duration(k->min, lo, sizeof lo);
        format_duration(k->max, hi, sizeof hi);
        (void)snprintf(buf, len,
                       "a duration from %s to %s: seconds such as 10 or 0.5, or a string such "
                       "as \"500ms\", \"10s\", \"5m\", \"1h\"",
                       lo, hi);
        break;
    case KEY_BOOL:
        (void)snprintf(buf, len, "true or false");
        break;
    }
}

/* ---- storing values ------------------------------------------------------ */

static void *field_of(config_t *cfg, const key_def_t *k)
{
    return (char *)cfg + k->offset;
}

static void store_string(config_t *cfg, const key_def_t *k, const char *value)
{
    char **slot = field_of(cfg, k);
    char *copy = dup_or_die(value);
    free(*slot);
    *slot = copy;
}

/* Stores a number already range-checked for `k`. */
static void store_number(config_t *cfg, const key_def_t *k, uint64_t value)
{
    void *slot = field_of(cfg, k);
    if (k->type == KEY_UINT) {
        uint32_t v32 = (uint32_t)value;
        memcpy(slot, &v32, sizeof v32);
    } else if (k->type == KEY_BOOL) {
        bool b = value != 0;
        memcpy(slot, &b, sizeof b);
    } else {
        memcpy(slot, &value, sizeof value);
    }
}

static void value_error(const key_def_t *k, const char *shown, const char *source, char *err,
                        size_t errlen)
{
    char expected[256];
    describe_expected(k, expected, sizeof expected);
    set_err(err, errlen, "%s: expected %s, got %s (%s)", k->name, expected, shown, source);
}

/* Parses `value` (from a flag, a variable or a JSON string) and stores it.
 * `source` says where it came from, for the message. */
static int apply_text(config_t *cfg, const key_def_t *k, const char *value, const char *source,
                      char *err, size_t errlen)
{
    uint64_t number = 0;
    bool flag = false;
    int rc = 0;
    switch (k->type) {
    case KEY_STRING:
    case KEY_LIST:
        if (k->valid != NULL && !k->valid(value)) {
            rc = -1;
            break;
        }
        store_string(cfg, k, value);
        return 0;
    case KEY_UINT:
        rc = parse_uint(value, &number);
        break;
    case KEY_SIZE:
        rc = units_parse_size(value, &number);
        break;
    case KEY_DURATION:
        rc = units_parse_duration(value, &number);
        break;
    case KEY_BOOL:
        rc = units_parse_bool(value, &flag);
        number = flag ? 1 : 0;
        break;
    }
    if (rc == 0 && k->type != KEY_BOOL && (number < k->min || number > k->max)) {
        rc = -1;
    }
    if (rc != 0) {
        size_t shown_len = strlen(value) + 3;
        char *shown = malloc(shown_len);
        if (shown == NULL) {
            (void)fputs("wsbroker: out of memory\n", stderr);
            abort();
        }
        (void)snprintf(shown, shown_len, "\"%s\"", value);
        value_error(k, shown, source, err, errlen);
        free(shown);
        return -1;
    }
    store_number(cfg, k, number);
    return 0;
}

/* JSON numbers in seconds (a duration) may be fractional; they must come to
 * whole milliseconds. Returns 0 and the milliseconds, or -1. */
static int seconds_to_ms(double seconds, uint64_t max_ms, uint64_t *out)
{
    if (!(seconds >= 0) || seconds * 1000.0 > (double)max_ms) {
        return -1;
    }
    double ms = seconds * 1000.0;
    uint64_t rounded = (uint64_t)(ms + 0.5);
    double diff = ms - (double)rounded;
    if (diff > 1e-6 || diff < -1e-6) {
        return -1;
    }
    *out = rounded;
    return 0;
}

/* A JSON array of strings for a list key: joined with ',' (an entry holding
 * a ',' would split, so it is refused). */
static int apply_json_list(config_t *cfg, const key_def_t *k, json_t *arr, const char *source,
                           char *err, size_t errlen)
{
    size_t total = 1, i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || strchr(json_string_value(v), ',') != NULL) {
            char *shown = json_dumps(arr, JSON_COMPACT);
            value_error(k, shown != NULL ? shown : "?", source, err, errlen);
            free(shown);
            return -1;
        }
        total += json_string_length(v) + 1;
    }
    char *joined = calloc(1, total);
    if (joined == NULL) {
        (void)fputs("wsbroker: out of memory\n", stderr);
        abort();
    }
    /* `total` counts every string plus one byte each for a comma or the NUL. */
    size_t at = 0;
    json_array_foreach(arr, i, v)
    {
        if (i > 0) {
            joined[at++] = ',';
        }
        size_t n = json_string_length(v);
        memcpy(joined + at, json_string_value(v), n);
        at += n;
    }
    joined[at] = '\0';
    int rc = apply_text(cfg, k, joined, source, err, errlen);
    free(joined);
    return rc;
}

static int apply_json(config_t *cfg, const key_def_t *k, json_t *value, const char *source,
                      char *err, size_t errlen)
{
    if (json_is_string(value)) {
        return apply_text(cfg, k, json_string_value(value), source, err, errlen);
    }
    if (k->offset == OFF(history) && (json_is_array(value))) {
        /* The rules are a JSON list in the file; flags and variables take
         * the same list as JSON text. */
        char *text = json_dumps(value, JSON_COMPACT);
        if (text == NULL) {
            (void)fputs("wsbroker: out of memory\n", stderr);
            abort();
        }
        int rc = apply_text(cfg, k, text, source, err, errlen);
        free(text);
        return rc;
    }
    if (k->valid == is_optional_port && json_is_integer(value) && json_integer_value(value) >= 0) {
        /* {"resp": {"port": 6380}}: a number where a string key takes digits. */
        char digits[24];
        (void)snprintf(digits, sizeof digits, "%lld", (long long)json_integer_value(value));
        return apply_text(cfg, k, digits, source, err, errlen);
    }
    if (json_is_array(value) && k->type == KEY_LIST) {
        return apply_json_list(cfg, k, value, source, err, errlen);
    }
    uint64_t number = 0;
    int rc = -1;
    if (json_is_integer(value) && json_integer_value(value) >= 0) {
        number = (uint64_t)json_integer_value(value);
        if (k->type == KEY_UINT || k->type == KEY_SIZE) {
            rc = 0;
        } else if (k->type == KEY_DURATION && number <= UINT64_MAX / SECOND_MS) {
            number *= SECOND_MS;
            rc = 0;
        }
    } else if (json_is_real(value) && k->type == KEY_DURATION) {
        rc = seconds_to_ms(json_real_value(value), k->max, &number);
    } else if (json_is_boolean(value) && k->type == KEY_BOOL) {
        number = json_is_true(value) ? 1 : 0;
        rc = 0;
    }
    if (rc == 0 && k->type != KEY_BOOL && (number < k->min || number > k->max)) {
        rc = -1;
    }
    if (rc != 0) {
        char *shown = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        value_error(k, shown != NULL ? shown : "?", source, err, errlen);
        free(shown);
        return -1;
    }
    store_number(cfg, k, number);
    return 0;
}

/* ---- sources -------------------------------------------------------------- */

/* Applies a JSON object whose keys sit under `prefix` ("" at the top). */
static int apply_object(config_t *cfg, json_t *obj, const char *prefix, const char *path, char *err,
                        size_t errlen)
{
    const char *name;
    json_t *value;
    char source[512];
    (void)snprintf(source, sizeof source, "in config file \"%s\"", path);
    json_object_foreach(obj, name, value)
    {
        char full[NAME_MAX_LEN];
        int n = snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "", name);
        const key_def_t *k = NULL;
        bool nested = false;
        if (n >= 0 && (size_t)n < sizeof full) {
            k = find_key(full);
            nested = k == NULL && key_has_children(full);
        }
        if (k != NULL) {
            if (apply_json(cfg, k, value, source, err, errlen) != 0) {
                return -1;
            }
        } else if (nested) {
            if (!json_is_object(value)) {
                set_err(err, errlen, "%s: expected an object of keys under \"%s.\", got a %s (%s)",
                        full, full, json_is_array(value) ? "list" : "single value", source);
                return -1;
            }
            if (apply_object(cfg, value, full, path, err, errlen) != 0) {
                return -1;
            }
        } else if (json_is_object(value) && json_object_size(value) > 0 && n >= 0 &&
                   (size_t)n < sizeof full) {
            /* Name the first unknown leaf ("resp.port"), as a flag or variable would. */
            return apply_object(cfg, value, full, path, err, errlen);
        } else {
            set_err(err, errlen, "%s%s%s: unknown key %s (see --help for the keys)", prefix,
                    *prefix ? "." : "", name, source);
            return -1;
        }
    }
    return 0;
}

static config_result_t load_file(config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_err(err, errlen, "config: cannot read config file \"%s\": %s", path, strerror(errno));
        return CONFIG_ERROR;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        (void)fclose(f);
        set_err(err, errlen, "config: cannot read config file \"%s\": it is a directory", path);
        return CONFIG_ERROR;
    }
    json_error_t jerr;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    (void)fclose(f);
    if (root == NULL) {
        set_err(err, errlen, "config: config file \"%s\" is not valid JSON: line %d, column %d: %s",
                path, jerr.line, jerr.column, jerr.text);
        return CONFIG_ERROR;
    }
    if (!json_is_object(root)) {
        set_err(err, errlen,
                "config: config file \"%s\" must hold a JSON object such as {\"port\": 8080}, "
                "got a list",
                path);
        json_decref(root);
        return CONFIG_ERROR;
    }
    int rc = apply_object(cfg, root, "", path, err, errlen);
    json_decref(root);
    if (rc != 0) {
        return CONFIG_ERROR;
    }
    free(cfg->config_file);
    cfg->config_file = dup_or_die(path);
    return CONFIG_OK;
}

/* The variables scanned as config: WSB_ then uppercase letters, digits, '_'. */
static bool looks_like_key_var(const char *name, size_t len)
{
    if (len <= 4 || strncmp(name, "WSB_", 4) != 0) {
        return false;
    }
    for (size_t i = 4; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

/* Levenshtein distance between a[0..alen) and b, for "did you mean". Names
 * longer than NAME_MAX_LEN - 1 are compared by their first NAME_MAX_LEN - 1
 * characters: the result only picks a suggestion. */
static size_t edit_distance(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    alen = alen < NAME_MAX_LEN - 1 ? alen : NAME_MAX_LEN - 1;
    blen = blen < NAME_MAX_LEN - 1 ? blen : NAME_MAX_LEN - 1;
    size_t prev[NAME_MAX_LEN], cur[NAME_MAX_LEN];
    for (size_t j = 0; j <= blen; j++) {
        prev[j] = j;
    }
    for (size_t i = 1; i <= alen; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= blen; j++) {
            size_t best = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (prev[j] + 1 < best) {
                best = prev[j] + 1;
            }
            if (cur[j - 1] + 1 < best) {
                best = cur[j - 1] + 1;
            }
            cur[j] = best;
        }
        memcpy(prev, cur, (blen + 1) * sizeof prev[0]);
    }
    return prev[blen];
}

/* The known variable nearest to var[0..len) (WSB_CONFIG included) into buf;
 * returns its distance. */
static size_t nearest_env(const char *var, size_t len, char *buf, size_t buflen)
{
    (void)snprintf(buf, buflen, "%s", "WSB_CONFIG");
    size_t best = edit_distance(var, len, buf);
    for (size_t i = 0; i < NKEYS; i++) {
        char name[NAME_MAX_LEN];
        key_env(&keys[i], name, sizeof name);
        size_t d = edit_distance(var, len, name);
        if (d < best) {
            best = d;
            (void)snprintf(buf, buflen, "%s", name);
        }
    }
    return best;
}

/* An unknown WSB_* variable is not ours to refuse: a wrapper's own variable
 * (WSB_BIN) must not stop the broker. It becomes a warning that names the
 * nearest key, so that a typo (WSB_PROT) is still seen. */
static void warn_unknown_env(config_t *cfg, const char *var, size_t len)
{
    if (cfg->nwarnings >= CONFIG_MAX_WARNINGS) {
        return;
    }
    char near[NAME_MAX_LEN];
    size_t d = nearest_env(var, len, near, sizeof near);
    /* A suggestion only when it is plausibly a typo of it: at most two edits,
     * or a third of the name after WSB_ (WSB_BIN is not a misspelt WSB_HOST). */
    size_t compared = (len < NAME_MAX_LEN - 1 ? len : NAME_MAX_LEN - 1) - 4;
    bool plausible = d <= 2 || 3 * d <= compared;
    char msg[2 * NAME_MAX_LEN + 96];
    (void)snprintf(msg, sizeof msg, "unknown environment variable %.*s ignored; %s%s%s",
                   (int)(len < NAME_MAX_LEN ? len : NAME_MAX_LEN), var,
                   plausible ? "did you mean " : "it is no config key (see --help)",
                   plausible ? near : "", plausible ? "?" : "");
    if (cfg->warnings == NULL) {
        cfg->warnings = calloc(CONFIG_MAX_WARNINGS, sizeof cfg->warnings[0]);
        if (cfg->warnings == NULL) {
            (void)fputs("wsbroker: out of memory\n", stderr);
            abort();
        }
    }
    cfg->warnings[cfg->nwarnings++] = dup_or_die(msg);
}

/* With apply == false only finds WSB_CONFIG; with apply == true stores each
 * known variable's value and a warning for each unknown one. */
static config_result_t walk_env(config_t *cfg, char **envp, bool apply, const char **config_path,
                                char *err, size_t errlen)
{
    if (envp == NULL) {
        return CONFIG_OK;
    }
    for (char **e = envp; *e != NULL; e++) {
        const char *entry = *e;
        const char *eq = strchr(entry, '=');
        if (eq == NULL) {
            continue;
        }
        size_t len = (size_t)(eq - entry);
        if (!looks_like_key_var(entry, len)) {
            continue;
        }
        if (len == strlen("WSB_CONFIG") && memcmp(entry, "WSB_CONFIG", len) == 0) {
            *config_path = eq + 1;
            continue;
        }
        const key_def_t *k = find_env(entry, len);
        if (k == NULL) {
            if (apply) {
                warn_unknown_env(cfg, entry, len);
            }
            continue;
        }
        if (apply) {
            char source[NAME_MAX_LEN + 8];
            (void)snprintf(source, sizeof source, "from %.*s", (int)len, entry);
            if (apply_text(cfg, k, eq + 1, source, err, errlen) != 0) {
                return CONFIG_ERROR;
            }
        }
    }
    return CONFIG_OK;
}

static bool is_option(const char *arg)
{
    return arg[0] == '-' && arg[1] == '-' && arg[2] != '\0';
}

/* With apply == false: checks the syntax of argv, finds --config, and handles
 * --help and --version. With apply == true: stores every flag's value. */
static config_result_t walk_args(config_t *cfg, int argc, char **argv, bool apply,
                                 const char **config_path, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            if (i + 1 < argc) {
                set_err(err, errlen, "unexpected argument \"%s\": wsbroker takes only options",
                        argv[i + 1]);
                return CONFIG_ERROR;
            }
            break;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            if (!apply) {
                config_print_help(stdout);
                return CONFIG_EXIT;
            }
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            if (!apply) {
                (void)printf("wsbroker %s\n", WSB_VERSION);
                return CONFIG_EXIT;
            }
            continue;
        }
        if (!is_option(arg)) {
            set_err(err, errlen,
                    "unexpected argument \"%s\": wsbroker takes only options such as --port 8080 "
                    "(see --help)",
                    arg);
            return CONFIG_ERROR;
        }
        const char *eq = strchr(arg, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const char *value = eq != NULL ? eq + 1 : NULL;
        bool is_config = name_len == strlen("--config") && memcmp(arg, "--config", name_len) == 0;
        const key_def_t *k = is_config ? NULL : find_flag(arg, name_len);
        if (!is_config && k == NULL) {
            set_err(err, errlen, "%.*s: unknown option (see --help)", (int)name_len, arg);
            return CONFIG_ERROR;
        }
        if (value == NULL) {
            /* "--port-file --port 0" is a forgotten value, not a file named "--port". */
            if (i + 1 >= argc || is_option(argv[i + 1])) {
                char expected[256];
                if (is_config) {
                    (void)snprintf(expected, sizeof expected, "a file path");
                } else {
                    describe_expected(k, expected, sizeof expected);
                }
                const char *key = is_config ? "config" : k->name;
                if (i + 1 >= argc) {
                    set_err(err, errlen, "%s: %s needs a value: %s", key, arg, expected);
                } else {
                    set_err(err, errlen,
                            "%s: %s needs a value: %s, got the option \"%s\" (write %s=%s if "
                            "that is the value)",
                            key, arg, expected, argv[i + 1], arg, argv[i + 1]);
                }
                return CONFIG_ERROR;
            }
            value = argv[++i];
        }
        if (is_config) {
            if (value[0] == '\0') {
                set_err(err, errlen, "config: --config needs a file path, got \"\"");
                return CONFIG_ERROR;
            }
            *config_path = value;
            continue;
        }
        if (apply) {
            char source[NAME_MAX_LEN + 8];
            (void)snprintf(source, sizeof source, "from %.*s", (int)name_len, arg);
            if (apply_text(cfg, k, value, source, err, errlen) != 0) {
                return CONFIG_ERROR;
            }
        }
    }
    return CONFIG_OK;
}

/* Rules between keys, checked once every source is applied. */
static config_result_t check_relations(const config_t *cfg, char *err, size_t errlen)
{
    if (cfg->ping_interval_ms != 0 && cfg->ping_interval_ms >= cfg->idle_timeout_ms) {
        char ping[32], idle[32];
        format_duration(cfg->ping_interval_ms, ping, sizeof ping);
        format_duration(cfg->idle_timeout_ms, idle, sizeof idle);
        set_err(err, errlen,
                "ping_interval: expected 0 (off) or less than idle_timeout (%s) so that quiet "
                "clients are pinged before they count as idle, got %s",
                idle, ping);
        return CONFIG_ERROR;
    }
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
        set_err(err, errlen,
                "tls.cert, tls.key: expected both (TLS on) or neither (TLS off), "
                "got only %s",
                cfg->tls_cert[0] != '\0' ? "tls.cert" : "tls.key");
        return CONFIG_ERROR;
    }
    if (cfg->tls_ca[0] != '\0' && cfg->tls_cert[0] == '\0') {
        set_err(err, errlen, "tls.ca: client certificates need TLS: set tls.cert and tls.key");
        return CONFIG_ERROR;
    }
    history_rules_t rules;
    if (history_rules_parse(cfg->history, &rules, err, errlen) != 0) {
        return CONFIG_ERROR;
    }
    /* With redis.url, history lives in Redis (history_redis.h). */
    if (cfg->echo_path[0] != '\0' && strcmp(cfg->echo_path, cfg->ws_path) == 0) {
        set_err(err, errlen, "echo_path: expected a path other than ws_path, got \"%s\"",
                cfg->echo_path);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

/* ---- redis:// URLs --------------------------------------------------------- */

static int parse_small_uint(const char *s, unsigned max, unsigned *out)
{
    uint64_t v = 0;
    if (parse_uint(s, &v) != 0 || v > max) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int config_parse_redis_url(const char *url, redis_url_t *out)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(url, scheme, sizeof scheme - 1) != 0 ||
        strlen(url) - (sizeof scheme - 1) >= sizeof out->buf) {
        return -1;
    }
    char *p = out->buf;
    size_t n = strlen(url) - (sizeof scheme - 1);
    memcpy(p, url + sizeof scheme - 1, n + 1); /* length checked above */
    char *slash = strchr(p, '/');
    if (slash != NULL) {
        *slash = '\0';
        if (slash[1] != '\0' && parse_small_uint(slash + 1, 1000000, &out->db) != 0) {
            return -1;
        }
    }
    char *at = strrchr(p, '@');
    if (at != NULL) {
        *at = '\0';
        char *colon = strchr(p, ':');
        if (colon == NULL) {
            return -1; /* "user@host" without a password: ambiguous, refused */
        }
        *colon = '\0';
        out->user = p[0] != '\0' ? p : NULL;
        out->password = colon + 1;
        p = at + 1;
    }
    char *port = NULL;
    if (p[0] == '[') {
        char *close = strchr(p, ']');
        if (close == NULL) {
            return -1;
        }
        *close = '\0';
        p++;
        if (close[1] == ':') {
            port = close + 2;
        } else if (close[1] != '\0') {
            return -1;
        }
    } else {
        char *colon = strchr(p, ':');
        if (colon != NULL) {
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (port != NULL && (parse_small_uint(port, 65535, &out->port) != 0 || out->port == 0)) {
        return -1;
    }
    out->host = p[0] != '\0' ? p : "127.0.0.1";
    return 0;
}

/* ---- public API ----------------------------------------------------------- */

void config_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        char err[512];
        if (apply_text(cfg, &keys[i], keys[i].def, "built-in default", err, sizeof err) != 0) {
            /* A broken table is a programming error; the unit tests catch it. */
            (void)fprintf(stderr, "wsbroker: bad built-in default: %s\n", err);
            abort();
        }
    }
}

config_result_t config_load(config_t *cfg, int argc, char **argv, char **envp, char *err,
                            size_t errlen)
{
    const char *flag_path = NULL;
    const char *env_path = NULL;
    config_result_t rc;

    config_defaults(cfg);
    set_err(err, errlen, "%s", "");

    /* Syntax first, so --help works whatever the environment holds. */
    rc = walk_args(cfg, argc, argv, false, &flag_path, err, errlen);
    if (rc != CONFIG_OK) {
        return rc;
    }
    rc = walk_env(cfg, envp, false, &env_path, err, errlen);
    if (rc != CONFIG_OK) {
        return rc;
    }
    /* An empty WSB_CONFIG means "no file", so a compose file can blank it. */
    const char *path = flag_path != NULL ? flag_path : env_path;
    if (path != NULL && path[0] != '\0') {
        rc = load_file(cfg, path, err, errlen);
        if (rc != CONFIG_OK) {
            return rc;
        }
    }
    rc = walk_env(cfg, envp, true, &env_path, err, errlen);
    if (rc != CONFIG_OK) {
        return rc;
    }
    rc = walk_args(cfg, argc, argv, true, &flag_path, err, errlen);
    if (rc != CONFIG_OK) {
        return rc;
    }
    rc = check_relations(cfg, err, errlen);
    if (rc != CONFIG_OK) {
        return rc;
    }
    if (apikey_parse(cfg->api_keys, &cfg->apikeys, &cfg->napikeys) != 0) {
        set_err(err, errlen, "api_keys: malformed entry");
        return CONFIG_ERROR;
    }
    if (proxy_parse_list(cfg->trusted_proxies, &cfg->trusted, &cfg->ntrusted) != 0) {
        set_err(err, errlen, "trusted_proxies: malformed entry");
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

void config_print_help(FILE *out)
{
    static const char *const intro =
        "Usage: wsbroker [--config FILE] [OPTIONS]\n"
        "\n"
        "wsbroker is a pub/sub WebSocket broker. Every setting below is a flag, a WSB_*\n"
        "environment variable and a key of the JSON config file; precedence: flag >\n"
        "environment > file > default. A nested key such as \"resp.port\" is\n"
        "{\"resp\": {\"port\": ...}} in the file, --resp-port and WSB_RESP_PORT.\n"
        "Flags take --key VALUE or --key=VALUE. An unknown flag or file key is an\n"
        "error; an unknown WSB_* variable is ignored with a warning.\n"
        "  SIZE      bytes, or a string with a unit: B, KiB, MiB, GiB (also K, M, G),\n"
        "            KB, MB, GB (powers of 10): 65536, \"64KiB\", \"1.5MiB\", \"1MB\"\n"
        "  DURATION  seconds (may be fractional), or a string with a unit: ms, s, m, h:\n"
        "            10, 0.5, \"500ms\", \"10s\", \"5m\", \"1h\"\n"
        "Exit status: 0 after a clean shutdown, 2 for bad configuration, 1 for a\n"
        "runtime failure.\n"
        "\n"
        "Options:\n";
    (void)fputs(intro, out);
    (void)fprintf(out, "  %-30s %-24s %s\n      %s\n", "--config FILE", "WSB_CONFIG",
                  "(default: none)", "JSON config file to read");
    (void)fputs("  -h, --help\n      print this help and exit\n", out);
    (void)fputs("  --version\n      print the version and exit\n", out);
    (void)fputs("\nSettings:\n", out);
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def_t *k = &keys[i];
        char flag[NAME_MAX_LEN], env[NAME_MAX_LEN], usage[2 * NAME_MAX_LEN], def[NAME_MAX_LEN + 16];
        key_flag(k, flag, sizeof flag);
        key_env(k, env, sizeof env);
        (void)snprintf(usage, sizeof usage, "%s %s", flag, k->metavar);
        if (k->type == KEY_STRING || k->type == KEY_LIST) {
            (void)snprintf(def, sizeof def, "(default \"%s\")", k->def);
        } else {
            (void)snprintf(def, sizeof def, "(default %s)", k->def);
        }
        (void)fprintf(out, "  %-30s %-24s %s\n      %s\n", usage, env, def, k->help);
    }
}

void config_free(config_t *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == KEY_STRING || keys[i].type == KEY_LIST) {
            char **slot = field_of(cfg, &keys[i]);
            free(*slot);
            *slot = NULL;
        }
    }
    free(cfg->config_file);
    cfg->config_file = NULL;
    for (size_t i = 0; i < cfg->nwarnings; i++) {
        free(cfg->warnings[i]);
    }
    free(cfg->warnings);
    cfg->warnings = NULL;
    cfg->nwarnings = 0;
    apikey_free_all(cfg->apikeys, cfg->napikeys);
    cfg->apikeys = NULL;
    cfg->napikeys = 0;
    free(cfg->trusted);
    cfg->trusted = NULL;
    cfg->ntrusted = 0;
}
