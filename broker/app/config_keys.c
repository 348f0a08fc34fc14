/* config_keys.c - the key table and its naming rule (see config_keys.h). */
#include "app/config_keys.h"

#include "app/config.h"
#include "cluster/redis_cluster.h"
#include "cluster/redis_sentinel.h"
#include "core/apikey.h"
#include "net/proxy.h"
#include "shared/log.h"
#include "wsb/topic.h"

#include <string.h>
#include <strings.h>

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

static bool is_sentinel_list(const char *value)
{
    return sentinel_parse_list(value) >= 0;
}

/* Printable, no spaces: a +switch-master message separates its fields
 * with spaces, so a name with one could never be recognised in it. */
static bool is_master_name(const char *value)
{
    size_t len = 0;
    for (const char *p = value; *p; p++, len++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return false;
        }
    }
    return len <= 128;
}

static bool is_redis_prefix(const char *value)
{
    /* Redis glob characters would make the node's PSUBSCRIBE patterns match
     * other channels than its own. */
    return strlen(value) <= 64 && strpbrk(value, "*?[]\\") == NULL;
}

bool config_is_optional_port(const char *value)
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

static bool is_redis_cluster(const char *value)
{
    rc_addr_t seeds[RC_MAX_NODES];
    return value[0] == '\0' || rc_parse_seeds(value, seeds, RC_MAX_NODES) > 0;
}

static bool is_rate_per(const char *value)
{
    return strcmp(value, "connection") == 0 || strcmp(value, "user") == 0;
}

static bool is_rate_action(const char *value)
{
    return strcmp(value, "error") == 0 || strcmp(value, "close") == 0;
}

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

const key_def_t config_keys[] = {
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
             "open connections (RESP included) at most; beyond, HTTP 503"),
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
                 "time allowed for an HTTP request head, or the rest of a RESP request, to arrive"),
    DURATION_KEY("ping_interval", ping_interval_ms, 0, 30 * DAY_MS, "25s",
                 "period of server pings on WebSockets; 0 = off; must be < idle_timeout"),
    DURATION_KEY("idle_timeout", idle_timeout_ms, 1, 30 * DAY_MS, "60s",
                 "close a WebSocket that sent no complete frame (pongs count), or a RESP "
                 "connection without subscriptions that sent no request, for this long"),
    DURATION_KEY("close_timeout", close_timeout_ms, 1, 30 * DAY_MS, "3s",
                 "after our close frame, wait this long for the peer's close and the drain"),
    DURATION_KEY("shutdown_timeout", shutdown_timeout_ms, 1, 30 * DAY_MS, "5s",
                 "on SIGTERM, time allowed to flush pending output before exiting"),
    /* topic rules and history */
    STRING_KEY("topics", topics, "", "JSON", NULL, NULL,
               "topic rules, a JSON list, first match wins: [{\"pattern\":\"chat.>\","
               "\"history\":{\"size\":100},\"presence\":true,\"join_leave\":true,"
               "\"publisher\":true},{\"pattern\":\"prices.>\",\"conflate\":true},"
               "{\"pattern\":\"auction.>\",\"stream\":{\"size\":10000,\"ttl\":\"1h\","
               "\"slow_consumer\":\"drop\"}}]; the history rules follow them; \"\" = none"),
    STRING_KEY("history", history, "", "JSON", NULL, NULL,
               "history rules, a JSON list: [{\"pattern\":\"chat.>\",\"size\":100,"
               "\"ttl\":\"300s\",\"slow_consumer\":\"drop\"}], shorthand for topics rules "
               "with only history, after them; \"\" = none"),
    UINT_KEY("history_max_topics", history_max_topics, 64, 16777216, "10000",
             "topics keeping history at most; beyond, the least recently published loses its "
             "history and epoch (its seq goes on under a new epoch)"),
    SIZE_KEY("history_max_bytes", history_max_bytes, 1, TIB, "256MiB",
             "bytes of history messages kept over all topics; beyond, the oldest messages of "
             "the least recently published topic are dropped (its seq and epoch stay)"),
    /* presence */
    UINT_KEY("presence.max_members", presence_max_members, 1, 1000000, "1000",
             "members per presence topic on a node (connections subscribed to it); beyond, a "
             "subscribe to it answers limit_exceeded"),
    UINT_KEY("presence.max_topics", presence_max_topics, 1, 16777216, "10000",
             "presence topics with members on a node; beyond, a subscribe to a new one answers "
             "limit_exceeded"),
    DURATION_KEY("presence.node_ttl", presence_node_ttl_ms, 100, DAY_MS, "30s",
                 "federation: a node not heard from for this long is dead and its presence "
                 "members leave (heartbeats every node_ttl / 4)"),
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
    LIST_KEY("redis.sentinels", redis_sentinels, "", "ADDRS", is_sentinel_list,
             "\"\" (off) or up to 16 host:port entries ([v6]:port), comma-separated",
             "Redis Sentinel: ask these sentinels for the master named redis.master_name and "
             "follow its failovers; instead of redis.url"),
    STRING_KEY("redis.master_name", redis_master_name, "", "NAME", is_master_name,
               "up to 128 printable bytes without spaces",
               "with redis.sentinels: the master's name in the sentinels' configuration"),
    STRING_KEY("redis.sentinel_password", redis_sentinel_password, "", "PASSWORD", NULL, NULL,
               "with redis.sentinels: AUTH to the sentinels (their requirepass); \"\" = none"),
    STRING_KEY("redis.user", redis_user, "", "USER", NULL, NULL,
               "with redis.sentinels: the master's ACL user (needs redis.password); "
               "with redis.url it goes in the URL"),
    STRING_KEY("redis.password", redis_password, "", "PASSWORD", NULL, NULL,
               "with redis.sentinels: the master's (and its replicas') password; "
               "with redis.url it goes in the URL"),
    LIST_KEY("redis.cluster", redis_cluster, "", "HOST:PORT,...", is_redis_cluster,
             "\"\" (off) or a comma-separated list of up to 64 host:port seed nodes",
             "Redis Cluster seed nodes (instead of redis.url): the topology comes from CLUSTER "
             "SLOTS; each topic's channel <prefix>{topic} goes to its slot's master with "
             "SSUBSCRIBE/SPUBLISH, its history and stream keys in the same slot; wildcard "
             "subscriptions are refused"),
    /* RESP ingress */
    STRING_KEY("resp.host", resp_host, "127.0.0.1", "ADDR", is_address,
               "an address such as 127.0.0.1, 0.0.0.0 or ::", "address of the RESP listener"),
    STRING_KEY("resp.port", resp_port, "", "PORT", config_is_optional_port,
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
    STRING_KEY("auth.jwt_secret_file", auth_jwt_secret_file, "", "PATH", NULL, NULL,
               "file holding auth.jwt_secret (a trailing newline is stripped; keeps the secret "
               "out of ps; a warning when group or others may read it); \"\" = off"),
    STRING_KEY("auth.jwt_public_key", auth_jwt_public_key, "", "PATH", NULL, NULL,
               "PEM public key (RSA for RS256, EC P-256 for ES256) for JWTs; \"\" = off"),
    BOOL_KEY("auth.require_exp", auth_require_exp, "false",
             "refuse JWTs without an exp claim; false = such a token never expires"),
    DURATION_KEY("auth.leeway", auth_leeway_ms, 0, HOUR_MS, "30s",
                 "clock skew allowed on a JWT's exp and nbf"),
    DURATION_KEY("auth.timeout", auth_timeout_ms, 1, HOUR_MS, "10s",
                 "with auth.required, a connection without a token must send an auth message "
                 "within this time; else close 1008. With api_keys, a RESP client must AUTH "
                 "within this time"),
    LIST_KEY("auth.anonymous_subscribe", auth_anonymous_subscribe, ">,$sys.node.>", "PATTERNS",
             is_pattern_list, "a comma-separated list of topic patterns",
             "patterns anonymous clients may subscribe to (when auth.required is false); '>' "
             "does not include reserved '$' topics, hence \"$sys.node.>\" (node stats; "
             "not $sys.conn.>, whose events name users)"),
    LIST_KEY("auth.anonymous_publish", auth_anonymous_publish, ">", "PATTERNS", is_pattern_list,
             "a comma-separated list of topic patterns",
             "patterns anonymous clients may publish to (when auth.required is false)"),
    LIST_KEY("api_keys", api_keys, "", "KEYS", is_api_key_list,
             "a comma-separated list of KEY or KEY:PATTERN PATTERN... [name=NAME] (keys of 16 "
             "to 256 characters without ',', ':' or spaces; at most one name of 1 to 128 "
             "characters)",
             "API keys for POST /api/publish (Authorization: Bearer or X-API-Key), each with "
             "the topic patterns it may publish to (none = any) and an optional name (the user "
             "of its publishes' from stamp); when set, a key is required"),
    STRING_KEY("api_keys_file", api_keys_file, "", "PATH", NULL, NULL,
               "file holding api_keys, in the same syntax (commas or one key per line; keeps the "
               "keys out of ps; a warning when group or others may read it); \"\" = off"),
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
             "open connections (RESP included) per client IP address; beyond, HTTP 429; "
             "0 = unlimited"),
    UINT_KEY("max_handshakes_per_second", max_handshakes_per_second, 0, INT32_MAX, "0",
             "WebSocket upgrades accepted per second over the process; beyond, HTTP 429; 0 = "
             "unlimited"),
    LIST_KEY("trusted_proxies", trusted_proxies, "", "ADDRS", is_proxy_list,
             "a comma-separated list of IP addresses or CIDR networks such as 10.0.0.0/8, ::1",
             "reverse proxies whose X-Forwarded-For is believed: a request from one of them "
             "is counted (max_connections_per_ip) and logged under the rightmost untrusted "
             "address of the header; \"\" = none, the header is ignored"),
    /* per-user limits */
    STRING_KEY("rate.per", rate_per, "connection", "WHO", is_rate_per, "connection or user",
               "who shares one rate bucket: each WebSocket (connection), or every WebSocket of "
               "one JWT sub on this node (user; connections without a sub keep their own)"),
    UINT_KEY("max_connections_per_user", max_connections_per_user, 0, INT32_MAX, "0",
             "open WebSockets per JWT sub on this node; beyond, close 4100 (browsers) or HTTP 429; "
             "0 = unlimited"),
    /* $sys topics */
    DURATION_KEY("sys.stats_interval", sys_stats_interval_ms, 0, DAY_MS, "5s",
                 "period of $sys.node.<id>.stats (resolution 1s); 0 = off"),
    BOOL_KEY("sys.conn_events", sys_conn_events, "true",
             "publish $sys.conn.connect and $sys.conn.disconnect for every WebSocket"),
    /* last value on wildcards */
    UINT_KEY("max_history_topics_per_subscribe", max_history_topics_per_subscribe, 1, INT32_MAX,
             "1000",
             "topics a subscribe with history on a pattern may replay; beyond, error "
             "limit_exceeded"),
    /* compression */
    BOOL_KEY("compression.enabled", compression_enabled, "true",
             "permessage-deflate (RFC 7692) with clients that offer it: each published message "
             "is compressed once and the frame shared by every such subscriber"),
    SIZE_KEY("compression.min_size", compression_min_size, 0, GIB, "128",
             "messages whose payload is smaller go out uncompressed"),
    /* the admin API */
    LIST_KEY("admin_keys", admin_keys, "", "KEYS", is_api_key_list,
             "a comma-separated list of keys of 16 to 256 characters without ',', ':' or spaces",
             "keys of the admin API (GET /api/topics, GET /api/connections, POST "
             "/api/disconnect, /admin; Authorization: Bearer or X-API-Key); a JWT with "
             "\"admin\": true works too; \"\" and no JWT key = admin API off (401)"),
    STRING_KEY("admin_keys_file", admin_keys_file, "", "PATH", NULL, NULL,
               "file holding admin_keys, in the same syntax (commas or one key per line; keeps "
               "the keys out of ps; a warning when group or others may read it); \"\" = off"),
};

const size_t config_nkeys = sizeof config_keys / sizeof config_keys[0];

/* ---- names: one rule from key to flag and variable ---------------------- */

/* "resp.port" -> "--resp-port" */
void config_key_flag(const key_def_t *k, char *buf, size_t len)
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
void config_key_env(const key_def_t *k, char *buf, size_t len)
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

const key_def_t *config_find_key(const char *name)
{
    for (size_t i = 0; i < config_nkeys; i++) {
        if (strcmp(config_keys[i].name, name) == 0) {
            return &config_keys[i];
        }
    }
    return NULL;
}

/* True when `prefix` names a nesting level: some key starts with "prefix.". */
bool config_key_has_children(const char *prefix)
{
    size_t len = strlen(prefix);
    for (size_t i = 0; i < config_nkeys; i++) {
        if (strncmp(config_keys[i].name, prefix, len) == 0 && config_keys[i].name[len] == '.') {
            return true;
        }
    }
    return false;
}

const key_def_t *config_find_flag(const char *flag, size_t len)
{
    char buf[NAME_MAX_LEN];
    for (size_t i = 0; i < config_nkeys; i++) {
        config_key_flag(&config_keys[i], buf, sizeof buf);
        if (strlen(buf) == len && memcmp(buf, flag, len) == 0) {
            return &config_keys[i];
        }
    }
    return NULL;
}

const key_def_t *config_find_env(const char *var, size_t len)
{
    char buf[NAME_MAX_LEN];
    for (size_t i = 0; i < config_nkeys; i++) {
        config_key_env(&config_keys[i], buf, sizeof buf);
        if (strlen(buf) == len && memcmp(buf, var, len) == 0) {
            return &config_keys[i];
        }
    }
    return NULL;
}

/* ---- telling a mistyped variable's key ---------------------------------- */

/* The variables scanned as config: WSB_ then uppercase letters, digits, '_'. */
bool config_looks_like_key_var(const char *name, size_t len)
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
size_t config_nearest_env(const char *var, size_t len, char *buf, size_t buflen)
{
    (void)snprintf(buf, buflen, "%s", "WSB_CONFIG");
    size_t best = edit_distance(var, len, buf);
    for (size_t i = 0; i < config_nkeys; i++) {
        char name[NAME_MAX_LEN];
        config_key_env(&config_keys[i], name, sizeof name);
        size_t d = edit_distance(var, len, name);
        if (d < best) {
            best = d;
            (void)snprintf(buf, buflen, "%s", name);
        }
    }
    return best;
}
