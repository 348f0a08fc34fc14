/*
 * config.h - the broker's configuration: one table of keys, four sources.
 *
 * Precedence: command-line flag > WSB_* environment variable > JSON config
 * file (--config FILE or WSB_CONFIG) > built-in default. A nested key maps to
 * a flag and a variable by one rule: "resp.port" -> --resp-port, WSB_RESP_PORT;
 * "max_message_size" -> --max-message-size, WSB_MAX_MESSAGE_SIZE.
 *
 * Value syntax: sizes take a number of bytes or a string with a unit
 * ("64KiB", "1MiB", "1MB" = 10^6); durations take a number of seconds or a
 * string with a unit ("500ms", "10s", "5m", "1h"). Booleans: true/false (also
 * 1/0, yes/no, on/off from flags and the environment).
 *
 * Unknown keys (in the file, as flags, or as WSB_* variables that look like
 * keys) and bad values are errors naming the key; the broker then exits 2.
 * Strings in config_t are owned by it: free with config_free().
 */
#ifndef WSB_BROKER_CONFIG_H
#define WSB_BROKER_CONFIG_H

#include "core/auth.h"
#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One per process, read-only after loading: its members are grouped by what
 * they configure, in the order of the README's table, not packed by size. */
typedef struct config_s { // NOLINT(clang-analyzer-optin.performance.Padding): see above
    /* listener */
    char *host;                 /* "127.0.0.1"; "::" or "0.0.0.0" for all interfaces */
    uint32_t port;              /* 8080; 0 binds a free port */
    char *port_file;            /* write the bound port here once accepting; "" = off */
    uint32_t backlog;           /* 511 */
    uint32_t workers;           /* 0 = one worker thread (event loop) per CPU core */
    uint32_t worker_queue_size; /* 65536 messages per worker inbox */
    char *ws_path;              /* "/ws" */
    char *echo_path;            /* "" = off; e.g. "/echo" for conformance suites */
    char *web_root;             /* static files; "" = off; default: the demo page folder */
    char *node_id;              /* "" = generated at start */
    char *log_level;            /* error|warn|info|debug */
    /* limits */
    uint32_t max_connections;    /* 50000; beyond: HTTP 503 */
    uint64_t max_message_size;   /* 64 KiB; beyond: close 1009 */
    uint32_t max_subscriptions;  /* 1000 per connection; beyond: error limit_exceeded */
    uint64_t max_outbound_bytes; /* 1 MiB per connection; beyond: close 1013 */
    uint64_t max_total_outbound; /* 256 MiB over all connections */
    uint64_t max_http_body;      /* 1 MiB; beyond: 413 */
    uint64_t max_header_size;    /* 8 KiB; beyond: 431 */
    /* timeouts, in milliseconds */
    uint64_t header_timeout_ms;   /* 10 s: a request head must arrive in this time */
    uint64_t ping_interval_ms;    /* 25 s: server ping period; 0 = off */
    uint64_t idle_timeout_ms;     /* 60 s: close a WebSocket silent this long */
    uint64_t close_timeout_ms;    /* 3 s: wait for the peer's close / drain after ours */
    uint64_t shutdown_timeout_ms; /* 5 s: flush pending output on SIGTERM */
    /* topic rules (topic_rules.h), history and recovery (history.h) */
    char *topics;                /* JSON list of rules; "" = none */
    char *history;               /* JSON list of rules; "" = no history */
    uint32_t history_max_topics; /* 10000 topics with history at most (LRU eviction) */
    uint64_t history_max_bytes;  /* 256 MiB of history messages over all topics */
    /* presence (presence.h) */
    uint32_t presence_max_members; /* 1000 members per topic on a node */
    uint32_t presence_max_topics;  /* 10000 topics with members on a node */
    uint64_t presence_node_ttl_ms; /* 30 s: a silent node's members leave (federation) */
    /* federation through Redis (bridge_redis.h) */
    char *redis_url;                 /* "" = off; redis://[[user]:password@]host[:port][/db] */
    char *redis_prefix;              /* "wsb:" prepended to every Redis channel */
    uint32_t redis_queue_size;       /* 65536 commands waiting for Redis; beyond: dropped */
    uint64_t redis_reconnect_max_ms; /* 5 s: cap of the reconnect backoff */
    bool redis_sharded;              /* SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub) */
    bool redis_sharded_patterns;     /* sharded: also PUBLISH for wildcard subscribers */
    char *redis_sentinels;   /* "" = off; "host:port,…": find the master (redis_sentinel.h) */
    char *redis_master_name; /* the master's name at the sentinels */
    char *redis_sentinel_password; /* "" = no AUTH to the sentinels */
    char *redis_user;              /* the master's ACL user with sentinels; "" = none */
    char *redis_password;          /* the master's password with sentinels; "" = no AUTH */
    char *redis_cluster;           /* "" = off; "host:port,...": Redis Cluster seed nodes */
    /* RESP ingress (resp_session.h) */
    char *resp_host;      /* "127.0.0.1" */
    char *resp_port;      /* "" = off; "0" binds a free port */
    char *resp_port_file; /* write the bound RESP port here; "" = off */
    /* TLS: a second listener on tls_port when tls_cert and tls_key are set */
    char *tls_cert;      /* PEM chain; "" = no TLS */
    char *tls_key;       /* PEM private key */
    char *tls_ca;        /* "" or a CA bundle: then client certificates are required */
    char *tls_port_file; /* "" = off */
    uint32_t tls_port;   /* 8443; 0 binds a free port */
    /* Flags of the next groups, here to share tls_port's 8 bytes. */
    bool auth_required;        /* false: anonymous clients allowed (quick start) */
    bool allow_missing_origin; /* true: requests without Origin pass the allowlist */
    bool auth_require_exp;     /* false: a JWT without exp never expires */
    /* authentication (SECURITY.md) */
    char *auth_jwt_secret;          /* HS256 secret; "" = off */
    char *auth_jwt_secret_file;     /* read into auth_jwt_secret at load; "" = off */
    char *auth_jwt_public_key;      /* PEM path for RS256/ES256; "" = off */
    uint64_t auth_leeway_ms;        /* 30 s of clock skew on exp/nbf */
    uint64_t auth_timeout_ms;       /* 10 s for the first auth message */
    char *auth_anonymous_subscribe; /* comma-separated patterns; ">,$sys.node.>" */
    char *auth_anonymous_publish;   /* comma-separated patterns; ">" */
    char *api_keys;                 /* "KEY[:PATTERN PATTERN...],..." */
    char *api_keys_file;            /* read into api_keys at load; "" = off */
    char *allowed_origins;          /* comma-separated; "" = any */
    /* rate limits; 0 = off */
    uint32_t rate_messages;             /* per second per WebSocket */
    uint32_t rate_burst;                /* 0 = rate_messages */
    uint64_t rate_bytes;                /* per second per WebSocket */
    char *rate_action;                  /* "error" or "close" */
    uint32_t max_connections_per_ip;    /* beyond: 429 */
    uint32_t max_handshakes_per_second; /* beyond: 429 */
    char *trusted_proxies;              /* comma-separated addresses/CIDRs; "" = none */
    /* per-user limits (user_limits.h) */
    char *rate_per;                    /* "connection" or "user": who shares one rate bucket */
    uint32_t max_connections_per_user; /* WebSockets per JWT sub on this node; 0 = unlimited */
    /* $sys topics (sys_events.h) */
    uint64_t sys_stats_interval_ms; /* 5 s: $sys.node.<id>.stats period; 0 = off */
    bool sys_conn_events;           /* true: $sys.conn.connect / disconnect */
    /* last value on wildcards (pubsub.h) */
    uint32_t max_history_topics_per_subscribe; /* 1000; beyond: error limit_exceeded */
    /* permessage-deflate (ws_deflate.h) */
    bool compression_enabled;      /* negotiate it with clients that offer it */
    uint64_t compression_min_size; /* smaller payloads go out uncompressed */
    /* the admin API (ingress/admin_api.h) */
    char *admin_keys;      /* "KEY,...": the same syntax as api_keys; "" = none */
    char *admin_keys_file; /* read into admin_keys at load; "" = off */
    /* parsed from api_keys by config_load (apikey.h); owned */
    struct apikey_s *apikeys;
    size_t napikeys;
    /* parsed from admin_keys by config_load (apikey.h); owned */
    struct apikey_s *adminkeys;
    size_t nadminkeys;
    /* parsed from trusted_proxies by config_load (proxy.h); owned, NULL = none */
    struct proxy_net_s *trusted;
    size_t ntrusted;
    /* where values came from, for logging: path of the file read, or NULL */
    char *config_file;
    /* warnings for the log once its level is set (unknown WSB_* variables,
     * at most CONFIG_MAX_WARNINGS); owned, NULL when there are none */
    char **warnings;
    size_t nwarnings;
    /* where each key's value came from, indexed like config_keys[]
     * (config_source_t); owned */
    unsigned char *key_source;
    unsigned char config_file_source; /* config_file's: CONFIG_SRC_FLAG or _ENV */
    bool check_only;                  /* --check-config: validate and print, do not start */
} config_t;

/* Where a key's value came from (config_print_effective). */
typedef enum {
    CONFIG_SRC_DEFAULT = 0,
    CONFIG_SRC_FILE,
    CONFIG_SRC_ENV,
    CONFIG_SRC_FLAG
} config_source_t;

#define CONFIG_MAX_WARNINGS 16

/* Fills `cfg` (which need not be initialized) with the built-in defaults.
 * Cannot fail (aborts on OOM). Release with config_free(). */
void config_defaults(config_t *cfg);

typedef enum {
    CONFIG_OK = 0,   /* run the broker */
    CONFIG_EXIT = 1, /* --help or --version was printed to stdout: exit 0 */
    CONFIG_ERROR = 2 /* `err` names the key and the problem: print it, exit 2 */
} config_result_t;

/*
 * Builds the configuration from defaults, the config file, the environment
 * `envp` (NULL-terminated "NAME=value" strings, usually `environ`) and argv, in
 * that order of increasing precedence. On CONFIG_ERROR a message like
 * "max_message_size: expected a size such as 65536 or \"64KiB\", got \"lots\""
 * is written to `err`. `cfg` need not be initialized; whatever the result it
 * holds a complete configuration (defaults at least) to release with
 * config_free(). --help and --version are printed to stdout. An unknown flag
 * or file key is CONFIG_ERROR; an unknown WSB_* variable is not: it is
 * ignored and described in cfg->warnings (the caller logs them).
 */
config_result_t config_load(config_t *cfg, int argc, char **argv, char **envp, char *err,
                            size_t errlen);

/* Prints --help: every key with its flag, variable, default and meaning. */
void config_print_help(FILE *out);

/* --check-config: does what a start does with `cfg` short of binding ports
 * and starting workers (loads the JWT public key and the TLS files), then
 * prints the effective configuration to `out`, one `key = value (source)`
 * line per key, secrets redacted. 0, or -1 with `err` set (exit 2). */
int config_check(const config_t *cfg, FILE *out, char *err, size_t errlen);

/* Where the value of key `name` ("resp.port") came from: a config_source_t,
 * or -1 for an unknown key. */
int config_key_source(const config_t *cfg, const char *name);

/* Prints the effective configuration (see config_check). */
void config_print_effective(const config_t *cfg, FILE *out);

/* Releases the strings owned by `cfg` and sets them to NULL (idempotent). */
void config_free(config_t *cfg);

/* The part of `cfg` auth needs (core/auth.h), borrowing its strings. */
void config_auth(const config_t *cfg, auth_config_t *out);

/* True if `origin` may open a WebSocket under `cfg` (auth_origin_ok). */
bool auth_origin_allowed(const config_t *cfg, wsb_str_t origin);

/* A redis:// URL taken apart. Strings point into `buf` (NUL-terminated). */
typedef struct {
    char buf[512];
    const char *host;     /* "127.0.0.1" when the URL has none */
    const char *user;     /* NULL: none */
    const char *password; /* NULL: none */
    unsigned port;        /* 6379 by default */
    unsigned db;          /* ignored by pub/sub, accepted for compatibility */
} redis_url_t;

/* Parses "redis://[[user]:password@]host[:port][/db]" (an IPv6 host in
 * brackets). Returns 0, or -1 when the URL is malformed or too long. */
int config_parse_redis_url(const char *url, redis_url_t *out);

/* True when federation is on: redis.url or redis.sentinels is set. */
bool config_redis_on(const config_t *cfg);

#endif
