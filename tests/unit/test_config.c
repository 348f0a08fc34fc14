/*
 * test_config.c - the configuration contract: defaults, the four sources and
 * their precedence, value syntax, every error path, --help, the example file.
 * It also covers log.c (log_quote, the line format, the level filter), whose
 * level names config.c validates; the unit-test list in tests/CMakeLists.txt
 * builds one executable per broker module that has a config of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four headers above first. */
#include "app/config.h"
#include "core/apikey.h"
#include "shared/log.h"
#include "shared/units.h"

#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIB (1024ULL)
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

/* NULL-terminated string lists for argv (without argv[0]) and the environment. */
#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
static const char *const none[] = {NULL};

static char errbuf[1024];

/* The contract's keys: name, flag, variable, default as --help shows it
 * (NULL: depends on the build). --help must list exactly these settings. */
static const struct {
    const char *name, *flag, *env, *help_default;
} contract_keys[] = {
    {"host", "--host", "WSB_HOST", "(default \"127.0.0.1\")"},
    {"port", "--port", "WSB_PORT", "(default 8080)"},
    {"port_file", "--port-file", "WSB_PORT_FILE", "(default \"\")"},
    {"backlog", "--backlog", "WSB_BACKLOG", "(default 511)"},
    {"workers", "--workers", "WSB_WORKERS", "(default 0)"},
    {"worker_queue_size", "--worker-queue-size", "WSB_WORKER_QUEUE_SIZE", "(default 65536)"},
    {"ws_path", "--ws-path", "WSB_WS_PATH", "(default \"/ws\")"},
    {"echo_path", "--echo-path", "WSB_ECHO_PATH", "(default \"\")"},
    {"web_root", "--web-root", "WSB_WEB_ROOT", NULL},
    {"node_id", "--node-id", "WSB_NODE_ID", "(default \"\")"},
    {"log_level", "--log-level", "WSB_LOG_LEVEL", "(default \"info\")"},
    {"max_connections", "--max-connections", "WSB_MAX_CONNECTIONS", "(default 50000)"},
    {"max_message_size", "--max-message-size", "WSB_MAX_MESSAGE_SIZE", "(default 64KiB)"},
    {"max_subscriptions", "--max-subscriptions", "WSB_MAX_SUBSCRIPTIONS", "(default 1000)"},
    {"max_outbound_bytes", "--max-outbound-bytes", "WSB_MAX_OUTBOUND_BYTES", "(default 1MiB)"},
    {"max_total_outbound", "--max-total-outbound", "WSB_MAX_TOTAL_OUTBOUND", "(default 256MiB)"},
    {"max_http_body", "--max-http-body", "WSB_MAX_HTTP_BODY", "(default 1MiB)"},
    {"max_header_size", "--max-header-size", "WSB_MAX_HEADER_SIZE", "(default 8KiB)"},
    {"header_timeout", "--header-timeout", "WSB_HEADER_TIMEOUT", "(default 10s)"},
    {"ping_interval", "--ping-interval", "WSB_PING_INTERVAL", "(default 25s)"},
    {"idle_timeout", "--idle-timeout", "WSB_IDLE_TIMEOUT", "(default 60s)"},
    {"close_timeout", "--close-timeout", "WSB_CLOSE_TIMEOUT", "(default 3s)"},
    {"shutdown_timeout", "--shutdown-timeout", "WSB_SHUTDOWN_TIMEOUT", "(default 5s)"},
    {"topics", "--topics", "WSB_TOPICS", "(default \"\")"},
    {"history", "--history", "WSB_HISTORY", "(default \"\")"},
    {"history_max_topics", "--history-max-topics", "WSB_HISTORY_MAX_TOPICS", "(default 10000)"},
    {"history_max_bytes", "--history-max-bytes", "WSB_HISTORY_MAX_BYTES", "(default 256MiB)"},
    {"presence.max_members", "--presence-max-members", "WSB_PRESENCE_MAX_MEMBERS",
     "(default 1000)"},
    {"presence.max_topics", "--presence-max-topics", "WSB_PRESENCE_MAX_TOPICS", "(default 10000)"},
    {"presence.node_ttl", "--presence-node-ttl", "WSB_PRESENCE_NODE_TTL", "(default 30s)"},
    {"redis.url", "--redis-url", "WSB_REDIS_URL", "(default \"\")"},
    {"redis.prefix", "--redis-prefix", "WSB_REDIS_PREFIX", "(default \"wsb:\")"},
    {"redis.queue_size", "--redis-queue-size", "WSB_REDIS_QUEUE_SIZE", "(default 65536)"},
    {"redis.reconnect_max", "--redis-reconnect-max", "WSB_REDIS_RECONNECT_MAX", "(default 5s)"},
    {"redis.sharded", "--redis-sharded", "WSB_REDIS_SHARDED", "(default false)"},
    {"redis.sharded_patterns", "--redis-sharded-patterns", "WSB_REDIS_SHARDED_PATTERNS",
     "(default true)"},
    {"resp.host", "--resp-host", "WSB_RESP_HOST", "(default \"127.0.0.1\")"},
    {"resp.port", "--resp-port", "WSB_RESP_PORT", "(default \"\")"},
    {"resp.port_file", "--resp-port-file", "WSB_RESP_PORT_FILE", "(default \"\")"},
    {"tls.cert", "--tls-cert", "WSB_TLS_CERT", "(default \"\")"},
    {"tls.key", "--tls-key", "WSB_TLS_KEY", "(default \"\")"},
    {"tls.ca", "--tls-ca", "WSB_TLS_CA", "(default \"\")"},
    {"tls.port", "--tls-port", "WSB_TLS_PORT", "(default 8443)"},
    {"tls.port_file", "--tls-port-file", "WSB_TLS_PORT_FILE", "(default \"\")"},
    {"auth.required", "--auth-required", "WSB_AUTH_REQUIRED", "(default false)"},
    {"auth.jwt_secret", "--auth-jwt-secret", "WSB_AUTH_JWT_SECRET", "(default \"\")"},
    {"auth.jwt_secret_file", "--auth-jwt-secret-file", "WSB_AUTH_JWT_SECRET_FILE",
     "(default \"\")"},
    {"auth.jwt_public_key", "--auth-jwt-public-key", "WSB_AUTH_JWT_PUBLIC_KEY", "(default \"\")"},
    {"auth.require_exp", "--auth-require-exp", "WSB_AUTH_REQUIRE_EXP", "(default false)"},
    {"auth.leeway", "--auth-leeway", "WSB_AUTH_LEEWAY", "(default 30s)"},
    {"auth.timeout", "--auth-timeout", "WSB_AUTH_TIMEOUT", "(default 10s)"},
    {"auth.anonymous_subscribe", "--auth-anonymous-subscribe", "WSB_AUTH_ANONYMOUS_SUBSCRIBE",
     "(default \">,$sys.node.>\")"},
    {"auth.anonymous_publish", "--auth-anonymous-publish", "WSB_AUTH_ANONYMOUS_PUBLISH",
     "(default \">\")"},
    {"api_keys", "--api-keys", "WSB_API_KEYS", "(default \"\")"},
    {"api_keys_file", "--api-keys-file", "WSB_API_KEYS_FILE", "(default \"\")"},
    {"allowed_origins", "--allowed-origins", "WSB_ALLOWED_ORIGINS", "(default \"\")"},
    {"allow_missing_origin", "--allow-missing-origin", "WSB_ALLOW_MISSING_ORIGIN",
     "(default true)"},
    {"rate.messages", "--rate-messages", "WSB_RATE_MESSAGES", "(default 0)"},
    {"rate.burst", "--rate-burst", "WSB_RATE_BURST", "(default 0)"},
    {"rate.bytes", "--rate-bytes", "WSB_RATE_BYTES", "(default 0)"},
    {"rate.action", "--rate-action", "WSB_RATE_ACTION", "(default \"error\")"},
    {"max_connections_per_ip", "--max-connections-per-ip", "WSB_MAX_CONNECTIONS_PER_IP",
     "(default 0)"},
    {"max_handshakes_per_second", "--max-handshakes-per-second", "WSB_MAX_HANDSHAKES_PER_SECOND",
     "(default 0)"},
    {"trusted_proxies", "--trusted-proxies", "WSB_TRUSTED_PROXIES", "(default \"\")"},
    {"rate.per", "--rate-per", "WSB_RATE_PER", "(default \"connection\")"},
    {"max_connections_per_user", "--max-connections-per-user", "WSB_MAX_CONNECTIONS_PER_USER",
     "(default 0)"},
    {"sys.stats_interval", "--sys-stats-interval", "WSB_SYS_STATS_INTERVAL", "(default 5s)"},
    {"sys.conn_events", "--sys-conn-events", "WSB_SYS_CONN_EVENTS", "(default true)"},
    {"max_history_topics_per_subscribe", "--max-history-topics-per-subscribe",
     "WSB_MAX_HISTORY_TOPICS_PER_SUBSCRIBE", "(default 1000)"},
    {"compression.enabled", "--compression-enabled", "WSB_COMPRESSION_ENABLED", "(default true)"},
    {"compression.min_size", "--compression-min-size", "WSB_COMPRESSION_MIN_SIZE", "(default 128)"},
    {"admin_keys", "--admin-keys", "WSB_ADMIN_KEYS", "(default \"\")"},
    {"admin_keys_file", "--admin-keys-file", "WSB_ADMIN_KEYS_FILE", "(default \"\")"},
    {"redis.cluster", "--redis-cluster", "WSB_REDIS_CLUSTER", "(default \"\")"},
    {"redis.sentinels", "--redis-sentinels", "WSB_REDIS_SENTINELS", "(default \"\")"},
    {"redis.master_name", "--redis-master-name", "WSB_REDIS_MASTER_NAME", "(default \"\")"},
    {"redis.sentinel_password", "--redis-sentinel-password", "WSB_REDIS_SENTINEL_PASSWORD",
     "(default \"\")"},
    {"redis.user", "--redis-user", "WSB_REDIS_USER", "(default \"\")"},
    {"redis.password", "--redis-password", "WSB_REDIS_PASSWORD", "(default \"\")"},
};
#define NCONTRACT_KEYS (sizeof contract_keys / sizeof contract_keys[0])

/* ---- helpers -------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    char *copy = strdup(s);
    assert_non_null(copy);
    return copy;
}

/* Runs config_load with "wsbroker" + args and the environment `env`
 * (NULL passes no environment at all). */
static config_result_t load(config_t *cfg, const char *const *args, const char *const *env)
{
    char *argv[64];
    char *envp[64];
    int argc = 0;
    size_t nenv = 0;
    argv[argc++] = xstrdup("wsbroker");
    for (; *args != NULL; args++) {
        assert_true(argc < 63);
        argv[argc++] = xstrdup(*args);
    }
    argv[argc] = NULL;
    if (env != NULL) {
        for (; *env != NULL; env++) {
            assert_true(nenv < 63);
            envp[nenv++] = xstrdup(*env);
        }
    }
    envp[nenv] = NULL;
    errbuf[0] = '\0';
    config_result_t rc =
        config_load(cfg, argc, argv, env != NULL ? envp : NULL, errbuf, sizeof errbuf);
    for (int i = 0; i < argc; i++) {
        free(argv[i]);
    }
    for (size_t i = 0; i < nenv; i++) {
        free(envp[i]);
    }
    return rc;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL) {
        fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
    }
}

/* Expects CONFIG_ERROR with a message holding every string of `needles`. */
static void expect_error(const char *const *args, const char *const *env,
                         const char *const *needles)
{
    config_t cfg;
    config_result_t rc = load(&cfg, args, env);
    config_free(&cfg);
    if (rc != CONFIG_ERROR) {
        fail_msg("expected CONFIG_ERROR, got %d (args[0] %s)", (int)rc,
                 args[0] != NULL ? args[0] : "-");
    }
    for (; *needles != NULL; needles++) {
        assert_contains(errbuf, *needles);
    }
}

/* Temporary files live under /tmp and are removed by the teardown, so that a
 * failed assertion (which longjmps out of the test) leaves nothing behind. */
#define MAX_TEMPS 16
static char temp_paths[MAX_TEMPS][64];
static int ntemps;

static const char *write_temp(const char *content)
{
    assert_true(ntemps < MAX_TEMPS);
    char *path = temp_paths[ntemps++];
    (void)snprintf(path, sizeof temp_paths[0], "/tmp/wsb_test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_true(write(fd, content, len) == (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

static int remove_temps(void **state)
{
    (void)state;
    for (int i = 0; i < ntemps; i++) {
        (void)unlink(temp_paths[i]);
    }
    ntemps = 0;
    log_set_level(LOG_INFO);
    return 0;
}

/* Reads a temporary stream from its start and closes it (free the result). */
static char *read_all(FILE *f)
{
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size >= 0);
    rewind(f);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    assert_int_equal(fclose(f), 0);
    return text;
}

/* Redirects a file descriptor (stdout or stderr) into a temporary file. */
typedef struct {
    int fd, saved;
    FILE *tmp;
} capture_t;

static void capture_start(capture_t *c, int fd)
{
    (void)fflush(NULL);
    c->fd = fd;
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), fd) >= 0);
}

/* Restores the descriptor and returns what was written (free it). */
static char *capture_end(capture_t *c)
{
    (void)fflush(NULL);
    assert_true(dup2(c->saved, c->fd) >= 0);
    assert_int_equal(close(c->saved), 0);
    return read_all(c->tmp);
}

/* Every field of config_t; a new field must be added here. web_root is left
 * to the caller, since the built-in default depends on the build. */
static void assert_same_config_but_web_root(const config_t *a, const config_t *b)
{
    assert_string_equal(a->host, b->host);
    assert_int_equal(a->port, b->port);
    assert_string_equal(a->port_file, b->port_file);
    assert_int_equal(a->backlog, b->backlog);
    assert_int_equal(a->workers, b->workers);
    assert_int_equal(a->worker_queue_size, b->worker_queue_size);
    assert_string_equal(a->ws_path, b->ws_path);
    assert_string_equal(a->echo_path, b->echo_path);
    assert_string_equal(a->node_id, b->node_id);
    assert_string_equal(a->log_level, b->log_level);
    assert_int_equal(a->max_connections, b->max_connections);
    assert_int_equal(a->max_message_size, b->max_message_size);
    assert_int_equal(a->max_subscriptions, b->max_subscriptions);
    assert_int_equal(a->max_outbound_bytes, b->max_outbound_bytes);
    assert_int_equal(a->max_total_outbound, b->max_total_outbound);
    assert_int_equal(a->max_http_body, b->max_http_body);
    assert_int_equal(a->max_header_size, b->max_header_size);
    assert_int_equal(a->header_timeout_ms, b->header_timeout_ms);
    assert_int_equal(a->ping_interval_ms, b->ping_interval_ms);
    assert_int_equal(a->idle_timeout_ms, b->idle_timeout_ms);
    assert_int_equal(a->close_timeout_ms, b->close_timeout_ms);
    assert_int_equal(a->shutdown_timeout_ms, b->shutdown_timeout_ms);
    assert_string_equal(a->tls_cert, b->tls_cert);
    assert_string_equal(a->tls_key, b->tls_key);
    assert_string_equal(a->tls_ca, b->tls_ca);
    assert_int_equal(a->tls_port, b->tls_port);
    assert_string_equal(a->tls_port_file, b->tls_port_file);
    assert_int_equal(a->auth_required, b->auth_required);
    assert_string_equal(a->auth_jwt_secret, b->auth_jwt_secret);
    assert_string_equal(a->auth_jwt_public_key, b->auth_jwt_public_key);
    assert_int_equal(a->auth_leeway_ms, b->auth_leeway_ms);
    assert_int_equal(a->auth_require_exp, b->auth_require_exp);
    assert_int_equal(a->history_max_bytes, b->history_max_bytes);
    assert_int_equal(a->auth_timeout_ms, b->auth_timeout_ms);
    assert_string_equal(a->auth_anonymous_subscribe, b->auth_anonymous_subscribe);
    assert_string_equal(a->auth_anonymous_publish, b->auth_anonymous_publish);
    assert_string_equal(a->api_keys, b->api_keys);
    assert_int_equal(a->napikeys, b->napikeys);
    assert_string_equal(a->allowed_origins, b->allowed_origins);
    assert_int_equal(a->allow_missing_origin, b->allow_missing_origin);
    assert_int_equal(a->rate_messages, b->rate_messages);
    assert_int_equal(a->rate_burst, b->rate_burst);
    assert_int_equal(a->rate_bytes, b->rate_bytes);
    assert_string_equal(a->rate_action, b->rate_action);
    assert_int_equal(a->max_connections_per_ip, b->max_connections_per_ip);
    assert_int_equal(a->max_handshakes_per_second, b->max_handshakes_per_second);
    assert_string_equal(a->trusted_proxies, b->trusted_proxies);
    assert_int_equal(a->ntrusted, b->ntrusted);
    assert_string_equal(a->rate_per, b->rate_per);
    assert_int_equal(a->max_connections_per_user, b->max_connections_per_user);
    assert_int_equal(a->sys_stats_interval_ms, b->sys_stats_interval_ms);
    assert_int_equal(a->sys_conn_events, b->sys_conn_events);
}

static void assert_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m || strcmp(s + n - m, suffix) != 0) {
        fail_msg("\"%s\" does not end with \"%s\"", s, suffix);
    }
}

/* ---- defaults and single sources -------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    config_t cfg;
    config_defaults(&cfg);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.port_file, "");
    assert_int_equal(cfg.backlog, 511);
    assert_int_equal(cfg.workers, 0);
    assert_int_equal(cfg.worker_queue_size, 65536);
    assert_string_equal(cfg.ws_path, "/ws");
    assert_string_equal(cfg.echo_path, "");
    assert_ends_with(cfg.web_root, "web");
    assert_string_equal(cfg.node_id, "");
    assert_string_equal(cfg.log_level, "info");
    assert_int_equal(cfg.max_connections, 50000);
    assert_int_equal(cfg.max_message_size, 64 * KIB);
    assert_int_equal(cfg.max_subscriptions, 1000);
    assert_int_equal(cfg.max_outbound_bytes, MIB);
    assert_int_equal(cfg.max_total_outbound, 256 * MIB);
    assert_int_equal(cfg.max_http_body, MIB);
    assert_int_equal(cfg.max_header_size, 8 * KIB);
    assert_int_equal(cfg.header_timeout_ms, 10000);
    assert_int_equal(cfg.ping_interval_ms, 25000);
    assert_int_equal(cfg.idle_timeout_ms, 60000);
    assert_int_equal(cfg.close_timeout_ms, 3000);
    assert_int_equal(cfg.shutdown_timeout_ms, 5000);
    assert_int_equal(cfg.history_max_bytes, 256 * MIB);
    assert_false(cfg.auth_require_exp);
    assert_null(cfg.config_file);
    config_free(&cfg);
    assert_null(cfg.host);
    config_free(&cfg); /* idempotent */
}

static void test_no_sources_gives_defaults(void **state)
{
    (void)state;
    config_t def, cfg;
    config_defaults(&def);
    /* No environment at all, and an environment with nothing of ours. */
    assert_int_equal(load(&cfg, none, NULL), CONFIG_OK);
    assert_string_equal(errbuf, "");
    assert_same_config_but_web_root(&cfg, &def);
    assert_string_equal(cfg.web_root, def.web_root);
    assert_null(cfg.config_file);
    config_free(&cfg);
    assert_int_equal(load(&cfg, none, LIST("PATH=/usr/bin", "HOME=/root", "WSBROKER_BIN=/x")),
                     CONFIG_OK);
    assert_same_config_but_web_root(&cfg, &def);
    config_free(&cfg);
    config_free(&def);
}

static void test_flags_alone(void **state)
{
    (void)state;
    config_t cfg;
    assert_int_equal(
        load(&cfg,
             LIST("--host", "0.0.0.0", "--port", "9000", "--port-file", "/tmp/p", "--backlog",
                  "128", "--ws-path", "/socket", "--echo-path", "/echo", "--web-root", "/srv/www",
                  "--node-id", "node-1", "--log-level", "debug", "--max-connections", "10",
                  "--max-message-size", "1MiB", "--max-subscriptions", "5", "--max-outbound-bytes",
                  "2MiB", "--max-total-outbound", "1GiB", "--max-http-body", "4KiB",
                  "--max-header-size", "16KiB", "--header-timeout", "2s", "--ping-interval", "0",
                  "--idle-timeout", "90s", "--close-timeout", "500ms", "--shutdown-timeout", "1m"),
             NULL),
        CONFIG_OK);
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.port, 9000);
    assert_string_equal(cfg.port_file, "/tmp/p");
    assert_int_equal(cfg.backlog, 128);
    assert_string_equal(cfg.ws_path, "/socket");
    assert_string_equal(cfg.echo_path, "/echo");
    assert_string_equal(cfg.web_root, "/srv/www");
    assert_string_equal(cfg.node_id, "node-1");
    assert_string_equal(cfg.log_level, "debug");
    assert_int_equal(cfg.max_connections, 10);
    assert_int_equal(cfg.max_message_size, MIB);
    assert_int_equal(cfg.max_subscriptions, 5);
    assert_int_equal(cfg.max_outbound_bytes, 2 * MIB);
    assert_int_equal(cfg.max_total_outbound, GIB);
    assert_int_equal(cfg.max_http_body, 4 * KIB);
    assert_int_equal(cfg.max_header_size, 16 * KIB);
    assert_int_equal(cfg.header_timeout_ms, 2000);
    assert_int_equal(cfg.ping_interval_ms, 0);
    assert_int_equal(cfg.idle_timeout_ms, 90000);
    assert_int_equal(cfg.close_timeout_ms, 500);
    assert_int_equal(cfg.shutdown_timeout_ms, 60000);
    assert_null(cfg.config_file);
    config_free(&cfg);
}

static void test_env_alone(void **state)
{
    (void)state;
    config_t cfg;
    assert_int_equal(load(&cfg, none,
                          LIST("WSB_HOST=::", "WSB_PORT=0", "WSB_WEB_ROOT=/opt/web",
                               "WSB_MAX_MESSAGE_SIZE=128KiB", "WSB_IDLE_TIMEOUT=120",
                               "WSB_LOG_LEVEL=warn", "WSB_PORT_FILE=")),
                     CONFIG_OK);
    assert_string_equal(cfg.host, "::");
    assert_int_equal(cfg.port, 0);
    assert_string_equal(cfg.web_root, "/opt/web");
    assert_int_equal(cfg.max_message_size, 128 * KIB);
    assert_int_equal(cfg.idle_timeout_ms, 120000);
    assert_string_equal(cfg.log_level, "warn");
    assert_string_equal(cfg.port_file, "");
    assert_int_equal(cfg.backlog, 511);
    config_free(&cfg);
}

static void test_file_alone(void **state)
{
    (void)state;
    const char *path = write_temp("{\n"
                                  "  \"host\": \"10.1.2.3\",\n"
                                  "  \"port\": 7000,\n"
                                  "  \"max_message_size\": 2048,\n"
                                  "  \"max_http_body\": \"3KiB\",\n"
                                  "  \"header_timeout\": 2.5,\n"
                                  "  \"idle_timeout\": \"2m\",\n"
                                  "  \"ping_interval\": 30,\n"
                                  "  \"node_id\": \"a.b_c-1\"\n"
                                  "}\n");
    config_t cfg;
    assert_int_equal(load(&cfg, LIST("--config", path), NULL), CONFIG_OK);
    assert_string_equal(cfg.host, "10.1.2.3");
    assert_int_equal(cfg.port, 7000);
    assert_int_equal(cfg.max_message_size, 2048);
    assert_int_equal(cfg.max_http_body, 3 * KIB);
    assert_int_equal(cfg.header_timeout_ms, 2500);
    assert_int_equal(cfg.idle_timeout_ms, 120000);
    assert_int_equal(cfg.ping_interval_ms, 30000);
    assert_string_equal(cfg.node_id, "a.b_c-1");
    assert_int_equal(cfg.backlog, 511);
    assert_string_equal(cfg.config_file, path);
    config_free(&cfg);

    /* An empty object is a valid file that changes nothing; --config=FILE works too. */
    const char *empty = write_temp("{}");
    char arg[128];
    (void)snprintf(arg, sizeof arg, "--config=%s", empty);
    assert_int_equal(load(&cfg, LIST(arg), NULL), CONFIG_OK);
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.config_file, empty);
    config_free(&cfg);
}

static void test_config_file_from_env(void **state)
{
    (void)state;
    const char *from_env = write_temp("{\"port\": 1001}");
    const char *from_flag = write_temp("{\"port\": 1002}");
    char var[128];
    (void)snprintf(var, sizeof var, "WSB_CONFIG=%s", from_env);
    config_t cfg;

    assert_int_equal(load(&cfg, none, LIST(var)), CONFIG_OK);
    assert_int_equal(cfg.port, 1001);
    assert_string_equal(cfg.config_file, from_env);
    config_free(&cfg);

    /* --config beats WSB_CONFIG: only one file is read. */
    assert_int_equal(load(&cfg, LIST("--config", from_flag), LIST(var)), CONFIG_OK);
    assert_int_equal(cfg.port, 1002);
    assert_string_equal(cfg.config_file, from_flag);
    config_free(&cfg);

    /* An empty WSB_CONFIG means no file. */
    assert_int_equal(load(&cfg, none, LIST("WSB_CONFIG=")), CONFIG_OK);
    assert_null(cfg.config_file);
    config_free(&cfg);
}

/* ---- precedence -------------------------------------------------------------- */

static void test_precedence(void **state)
{
    (void)state;
    const char *path = write_temp("{\"port\": 1111, \"host\": \"10.0.0.1\", "
                                  "\"max_message_size\": \"1KiB\", \"idle_timeout\": 100, "
                                  "\"log_level\": \"warn\", "
                                  "\"close_timeout\": \"7s\"}");
    config_t cfg;
    assert_int_equal(load(&cfg,
                          LIST("--config", path, "--port", "3333", "--max-message-size=3KiB",
                               "--close-timeout", "9s"),
                          LIST("WSB_PORT=2222", "WSB_HOST=10.0.0.2", "WSB_MAX_MESSAGE_SIZE=2KiB",
                               "WSB_LOG_LEVEL=debug", "WSB_BACKLOG=64")),
                     CONFIG_OK);
    assert_int_equal(cfg.port, 3333);                /* flag > env > file */
    assert_int_equal(cfg.max_message_size, 3 * KIB); /* flag > env > file */
    assert_int_equal(cfg.close_timeout_ms, 9000);    /* flag > file */
    assert_string_equal(cfg.host, "10.0.0.2");       /* env > file */
    assert_string_equal(cfg.log_level, "debug");     /* env > file */
    assert_int_equal(cfg.backlog, 64);               /* env > default */
    assert_int_equal(cfg.idle_timeout_ms, 100000);   /* file > default */
    assert_int_equal(cfg.max_connections, 50000);    /* default */
    config_free(&cfg);

    /* A repeated flag: the last one wins. */
    assert_int_equal(load(&cfg, LIST("--port", "1", "--port=2", "--port", "3"), NULL), CONFIG_OK);
    assert_int_equal(cfg.port, 3);
    config_free(&cfg);
}

static int source_of(const config_t *cfg, const char *name)
{
    int src = config_key_source(cfg, name);
    assert_true(src >= 0);
    return src;
}

/* --check-config's sources: each key remembers the last source that set it. */
static void test_key_sources(void **state)
{
    (void)state;
    const char *path =
        write_temp("{\"port\": 1111, \"backlog\": 7, \"resp\": {\"host\": \"::1\"}}");
    config_t cfg;
    assert_int_equal(load(&cfg, LIST("--config", path, "--port", "3333"),
                          LIST("WSB_PORT=2222", "WSB_IDLE_TIMEOUT=2m")),
                     CONFIG_OK);
    assert_int_equal(source_of(&cfg, "port"), CONFIG_SRC_FLAG);
    assert_int_equal(source_of(&cfg, "idle_timeout"), CONFIG_SRC_ENV);
    assert_int_equal(source_of(&cfg, "backlog"), CONFIG_SRC_FILE);
    assert_int_equal(source_of(&cfg, "resp.host"), CONFIG_SRC_FILE);
    assert_int_equal(source_of(&cfg, "host"), CONFIG_SRC_DEFAULT);
    FILE *f = tmpfile();
    assert_non_null(f);
    config_print_effective(&cfg, f);
    char *text = read_all(f);
    assert_contains(text, "\nport = 3333 (flag)\n");
    assert_contains(text, "\nidle_timeout = 2m (env)\n");
    assert_contains(text, "\nresp.host = \"::1\" (file)\n");
    assert_contains(text, "\nhost = \"127.0.0.1\" (default)\n");
    free(text);
    config_free(&cfg);
}

/* auth.jwt_secret_file / api_keys_file: trailing newlines go, lines become
 * list entries, a file others may read is a warning, the value is redacted. */
static void test_secret_files(void **state)
{
    (void)state;
    const char *secret = write_temp("s3cret-value\r\n\n");
    const char *keys = write_temp("key-aaaaaaaaaaaaaaaa:chat.>\n\nkey-bbbbbbbbbbbbbbbb\n");
    config_t cfg;
    assert_int_equal(
        load(&cfg, LIST("--auth-jwt-secret-file", secret), LIST("WSB_API_KEYS_FILE=", "X=1")),
        CONFIG_OK);
    assert_string_equal(cfg.auth_jwt_secret, "s3cret-value");
    assert_int_equal(source_of(&cfg, "auth.jwt_secret"), CONFIG_SRC_FLAG);
    assert_int_equal(cfg.nwarnings, 0);
    FILE *f = tmpfile();
    assert_non_null(f);
    config_print_effective(&cfg, f);
    char *text = read_all(f);
    assert_contains(text, "\nauth.jwt_secret = <redacted> (flag)\n");
    assert_null(strstr(text, "s3cret"));
    free(text);
    config_free(&cfg);

    assert_int_equal(load(&cfg, LIST(NULL), LIST("WSB_API_KEYS_FILE=/dev/null")), CONFIG_ERROR);
    config_free(&cfg);
    char env[128];
    (void)snprintf(env, sizeof env, "WSB_API_KEYS_FILE=%s", keys);
    assert_int_equal(load(&cfg, LIST(NULL), LIST(env)), CONFIG_OK);
    assert_string_equal(cfg.api_keys, "key-aaaaaaaaaaaaaaaa:chat.>,key-bbbbbbbbbbbbbbbb");
    assert_int_equal(cfg.napikeys, 2);
    assert_int_equal(source_of(&cfg, "api_keys"), CONFIG_SRC_ENV);
    config_free(&cfg);

    assert_int_equal(chmod(secret, 0640), 0);
    assert_int_equal(load(&cfg, LIST("--auth-jwt-secret-file", secret), NULL), CONFIG_OK);
    assert_int_equal(cfg.nwarnings, 1);
    assert_contains(cfg.warnings[0], "readable by group or others (mode 0640)");
    config_free(&cfg);

    expect_error(LIST("--auth-jwt-secret-file", secret, "--auth-jwt-secret", "x"), NULL,
                 LIST("auth.jwt_secret, auth.jwt_secret_file"));
}

static void test_flag_forms(void **state)
{
    (void)state;
    config_t cfg;
    assert_int_equal(
        load(&cfg, LIST("--port=9001", "--host", "::1", "--port-file=", "--node-id=n=1", "--"),
             NULL),
        CONFIG_ERROR);
    /* '=' is not allowed in a node id; the first '=' splits name and value. */
    assert_contains(errbuf, "node_id");
    assert_contains(errbuf, "\"n=1\"");
    config_free(&cfg);

    assert_int_equal(load(&cfg,
                          LIST("--port=9001", "--host", "::1", "--port-file=", "--web-root", "",
                               "--echo-path=/e", "--"),
                          NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.port, 9001);
    assert_string_equal(cfg.host, "::1");
    assert_string_equal(cfg.port_file, "");
    assert_string_equal(cfg.web_root, "");
    assert_string_equal(cfg.echo_path, "/e");
    config_free(&cfg);

    /* A value that starts with "--" needs the = form. */
    assert_int_equal(load(&cfg, LIST("--port-file=--odd"), NULL), CONFIG_OK);
    assert_string_equal(cfg.port_file, "--odd");
    config_free(&cfg);
    /* A lone "-" is an ordinary value (e.g. a path). */
    assert_int_equal(load(&cfg, LIST("--port-file", "-"), NULL), CONFIG_OK);
    assert_string_equal(cfg.port_file, "-");
    config_free(&cfg);
}

/* ---- value syntax ------------------------------------------------------------ */

static void test_size_values(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"1", 1},
        {"65536", 65536},
        {"64KiB", 64 * KIB},
        {"64kib", 64 * KIB},
        {"64 KiB", 64 * KIB},
        {"64K", 64 * KIB},
        {"100B", 100},
        {"1KB", 1000},
        {"1MB", 1000000},
        {"1GB", 1000000000},
        {"1.5MiB", 3 * MIB / 2},
        {"0.5KB", 500},
        {"0.25 M", 256 * KIB},
        {"1.000000000000KiB", KIB},
        {"2G", 2 * GIB},
        {"1024GiB", TIB}, /* the upper bound of max_outbound_bytes */
    };
    static const char *const bad[] = {
        "",
        "lots",
        "-1",
        "+1",
        "1.5",
        "0",
        "0KiB",
        "1XB",
        "1 ",
        " 1",
        "1KiB ",
        "1.",
        ".5K",
        "0x10",
        "1e3",
        "1TiB",
        "64 K iB",
        "1.0000000001GiB",
        "1025GiB",
        "99999999999999999999",
        "18446744073709551615GiB",
    };
    config_t cfg;
    char arg[128];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        (void)snprintf(arg, sizeof arg, "--max-outbound-bytes=%s", good[i].text);
        if (load(&cfg, LIST(arg), NULL) != CONFIG_OK) {
            fail_msg("%s rejected: %s", arg, errbuf);
        }
        assert_int_equal(cfg.max_outbound_bytes, good[i].bytes);
        config_free(&cfg);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        (void)snprintf(arg, sizeof arg, "--max-outbound-bytes=%s", bad[i]);
        char quoted[128];
        (void)snprintf(quoted, sizeof quoted, "got \"%s\"", bad[i]);
        expect_error(LIST(arg), NULL,
                     LIST("max_outbound_bytes:", "expected a size from 1B to 1024GiB", quoted,
                          "from --max-outbound-bytes"));
    }
    /* The header's example message, word for word where it matters. */
    expect_error(
        LIST("--max-message-size", "lots"), NULL,
        LIST("max_message_size: expected a size", "such as 65536 or \"64KiB\"", "got \"lots\""));
    /* Each key has its own range. */
    expect_error(LIST("--max-message-size", "2GiB"), NULL, LIST("max_message_size", "to 1GiB"));
    expect_error(none, LIST("WSB_MAX_HEADER_SIZE=17MiB"),
                 LIST("max_header_size", "to 16MiB", "from WSB_MAX_HEADER_SIZE"));
}

static void test_size_parser(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(units_parse_size("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(units_parse_size("17179869183GiB", &v), 0);
    assert_true(v == UINT64_MAX - GIB + 1);
    v = 7;
    assert_int_equal(units_parse_size("18446744073709551616", &v), -1);
    assert_int_equal(units_parse_size("17179869184GiB", &v), -1);
    assert_int_equal(units_parse_size("17179869184.5GiB", &v), -1);
    assert_int_equal(units_parse_size("17179869183.999999999GiB", &v), -1); /* not whole bytes */
    assert_int_equal(units_parse_size("17179869183.5GiB", &v), 0);
    assert_true(v == UINT64_MAX - GIB / 2 + 1);
    assert_int_equal(units_parse_size("0.000000001GB", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(units_parse_size("0.1B", &v), -1);
    assert_int_equal(units_parse_size(NULL, &v), -1);
    assert_int_equal(units_parse_size("0", &v), 0); /* the range is the key's business */
    assert_int_equal(v, 0);
}

static void test_duration_values(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {
        {"10", 10000},   {"0.5", 500},         {"0.001", 1},    {"1.5s", 1500},
        {"250ms", 250},  {"5m", 300000},       {"1h", 3600000}, {"1.25h", 4500000},
        {"90 s", 90000}, {"720h", 2592000000}, /* the upper bound */
    };
    static const char *const bad[] = {
        "",
        "soon",
        "-1",
        "0",
        "0ms",
        "0.0001",
        "1.5ms",
        "10x",
        "10S",
        "1d",
        "721h",
        "1e3",
        "99999999999999999999",
        "9999999999999999h",
        "1.2.3",
    };
    config_t cfg;
    char arg[128];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        (void)snprintf(arg, sizeof arg, "--idle-timeout=%s", good[i].text);
        if (load(&cfg, LIST(arg, "--ping-interval=0"), NULL) != CONFIG_OK) {
            fail_msg("%s rejected: %s", arg, errbuf);
        }
        assert_int_equal(cfg.idle_timeout_ms, good[i].ms);
        config_free(&cfg);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        (void)snprintf(arg, sizeof arg, "--idle-timeout=%s", bad[i]);
        char quoted[128];
        (void)snprintf(quoted, sizeof quoted, "got \"%s\"", bad[i]);
        expect_error(LIST(arg, "--ping-interval=0"), NULL,
                     LIST("idle_timeout:", "expected a duration from 1ms to 720h", quoted));
    }
    /* 0 turns the ping off, but is no valid header timeout. */
    assert_int_equal(load(&cfg, LIST("--ping-interval", "0"), NULL), CONFIG_OK);
    assert_int_equal(cfg.ping_interval_ms, 0);
    config_free(&cfg);
    expect_error(none, LIST("WSB_HEADER_TIMEOUT=0"),
                 LIST("header_timeout", "from 1ms", "got \"0\"", "from WSB_HEADER_TIMEOUT"));
}

static void test_duration_parser(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(units_parse_duration("18446744073709551615ms", &v), 0);
    assert_true(v == UINT64_MAX);
    v = 7;
    assert_int_equal(units_parse_duration("18446744073709551616ms", &v), -1);
    assert_int_equal(units_parse_duration("18446744073709552s", &v), -1);
    assert_int_equal(v, 7);
    assert_int_equal(units_parse_duration("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(units_parse_duration("0.123456789h", &v), -1); /* not whole ms */
    assert_int_equal(units_parse_duration("0.000001h", &v), -1);
    assert_int_equal(units_parse_duration("0.00001h", &v), 0);
    assert_int_equal(v, 36);
    assert_int_equal(units_parse_duration(NULL, &v), -1);
}

static void test_bool_parser(void **state)
{
    (void)state;
    static const char *const yes[] = {"true", "TRUE", "1", "yes", "Yes", "on"};
    static const char *const no[] = {"false", "False", "0", "no", "off", "OFF"};
    static const char *const bad[] = {"", "2", "y", "n", "enabled", "true ", NULL};
    bool b;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        b = false;
        assert_int_equal(units_parse_bool(yes[i], &b), 0);
        assert_true(b);
        assert_int_equal(units_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = true;
        assert_int_equal(units_parse_bool(bad[i], &b), -1);
        assert_true(b);
    }
}

static void test_uint_values(void **state)
{
    (void)state;
    config_t cfg;
    assert_int_equal(load(&cfg, LIST("--port", "0", "--backlog", "65535"), NULL), CONFIG_OK);
    assert_int_equal(cfg.port, 0);
    assert_int_equal(cfg.backlog, 65535);
    config_free(&cfg);
    assert_int_equal(load(&cfg, LIST("--workers", "4"), LIST("WSB_WORKER_QUEUE_SIZE=1024")),
                     CONFIG_OK);
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.worker_queue_size, 1024);
    config_free(&cfg);
    assert_int_equal(load(&cfg, LIST("--port", "65535", "--max-connections", "2147483647"), NULL),
                     CONFIG_OK);
    assert_int_equal(cfg.port, 65535);
    assert_int_equal(cfg.max_connections, 2147483647);
    config_free(&cfg);

    static const char *const bad_ports[] = {"65536", "-1",  "abc",  "",    "8080x",
                                            "1e3",   " 80", "80.0", "+80", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++) {
        char quoted[64];
        (void)snprintf(quoted, sizeof quoted, "got \"%s\"", bad_ports[i]);
        expect_error(LIST("--port", bad_ports[i]), NULL,
                     LIST("port: expected an integer from 0 to 65535", quoted, "from --port"));
    }
    expect_error(LIST("--backlog=0"), NULL, LIST("backlog", "from 1 to 65535"));
    expect_error(LIST("--workers=257"), NULL, LIST("workers", "from 0 to 256"));
    expect_error(LIST("--worker-queue-size=8"), NULL, LIST("worker_queue_size"));
    expect_error(LIST("--max-connections=0"), NULL, LIST("max_connections"));
    expect_error(LIST("--max-subscriptions=2147483648"), NULL, LIST("max_subscriptions"));
}

static void test_string_values(void **state)
{
    (void)state;
    config_t cfg;
    static const char *const levels[] = {"error", "warn", "info", "debug", "DEBUG"};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        assert_int_equal(load(&cfg, LIST("--log-level", levels[i]), NULL), CONFIG_OK);
        assert_string_equal(cfg.log_level, levels[i]);
        config_free(&cfg);
    }
    expect_error(LIST("--log-level", "loud"), NULL,
                 LIST("log_level: expected one of error, warn, info, debug", "got \"loud\""));
    expect_error(none, LIST("WSB_LOG_LEVEL=warning"), LIST("log_level", "\"warning\""));
    expect_error(LIST("--ws-path", "ws"), NULL, LIST("ws_path", "starting with \"/\"", "\"ws\""));
    expect_error(LIST("--ws-path", ""), NULL, LIST("ws_path"));
    expect_error(LIST("--ws-path", "/a b"), NULL, LIST("ws_path"));
    expect_error(LIST("--ws-path", "/ws?x=1"), NULL, LIST("ws_path"));
    expect_error(LIST("--echo-path", "echo"), NULL, LIST("echo_path", "\"echo\""));
    expect_error(LIST("--host="), NULL, LIST("host", "an address"));
    expect_error(LIST("--node-id", "a b"), NULL, LIST("node_id", "\"a b\""));
    expect_error(
        LIST("--node-id", "x12345678901234567890123456789012345678901234567890123456789012345"),
        NULL, LIST("node_id", "up to 64"));
}

static void test_relations(void **state)
{
    (void)state;
    config_t cfg;
    expect_error(LIST("--ping-interval", "60s"), NULL,
                 LIST("ping_interval", "idle_timeout (1m)", "got 1m"));
    expect_error(LIST("--idle-timeout", "20s"), NULL,
                 LIST("ping_interval", "idle_timeout (20s)", "got 25s"));
    assert_int_equal(load(&cfg, LIST("--idle-timeout", "20s", "--ping-interval", "19.5"), NULL),
                     CONFIG_OK);
    config_free(&cfg);
    assert_int_equal(load(&cfg, LIST("--idle-timeout", "1s", "--ping-interval", "0"), NULL),
                     CONFIG_OK);
    config_free(&cfg);
    expect_error(LIST("--echo-path", "/ws"), NULL, LIST("echo_path", "ws_path", "\"/ws\""));
}

/* ---- errors from flags and the environment ---------------------------------- */

static void test_flag_errors(void **state)
{
    (void)state;
    expect_error(LIST("--bogus"), NULL, LIST("--bogus: unknown option", "--help"));
    expect_error(LIST("--bogus=1"), NULL, LIST("--bogus: unknown option"));
    expect_error(LIST("--max_message_size", "1"), NULL, LIST("--max_message_size"));
    expect_error(LIST("--quic-port", "6380"), NULL, LIST("--quic-port: unknown option"));
    expect_error(LIST("--resp-port", "65536"), NULL, LIST("resp.port", "a port from 0 to 65535"));
    expect_error(LIST("--redis-url", "http://x"), NULL, LIST("redis.url", "redis://"));
    expect_error(LIST("--redis-prefix", "a*"), NULL, LIST("redis.prefix", "glob"));
    expect_error(LIST("--port"), NULL,
                 LIST("port: --port needs a value", "an integer from 0 to 65535"));
    expect_error(LIST("--port-file", "--port", "0"), NULL,
                 LIST("port_file: --port-file needs a value", "got the option \"--port\"",
                      "--port-file=--port"));
    expect_error(LIST("--config"), NULL, LIST("config: --config needs a value"));
    expect_error(LIST("--config="), NULL, LIST("config", "file path"));
    expect_error(LIST("serve"), NULL, LIST("unexpected argument \"serve\""));
    expect_error(LIST("--port", "1", "extra"), NULL, LIST("unexpected argument \"extra\""));
    expect_error(LIST("-p", "1"), NULL, LIST("unexpected argument \"-p\""));
    expect_error(LIST("--", "x"), NULL, LIST("unexpected argument \"x\""));
}

static void test_env_errors(void **state)
{
    (void)state;
    config_t cfg;
    expect_error(none, LIST("WSB_PORT=http"), LIST("port", "\"http\"", "from WSB_PORT"));
    /* A Kubernetes service link for a Service named "wsb" is a known key with
     * a bad value: still an error (deploy/ sets enableServiceLinks: false). */
    expect_error(none, LIST("WSB_PORT=tcp://10.0.0.1:8080"),
                 LIST("port", "tcp://10.0.0.1:8080", "from WSB_PORT"));
    /* Not shaped like a key: not ours. */
    assert_int_equal(load(&cfg, none,
                          LIST("WSB_lower=1", "WSBROKER_BIN=/x", "WSB_=1", "WSB_X-Y=1", "WSB_PORT",
                               "XWSB_PORT=1")),
                     CONFIG_OK);
    assert_int_equal(cfg.port, 8080);
    config_free(&cfg);
}

/* An unknown WSB_* variable (a wrapper's own, a typo) is a warning naming the
 * nearest key when it is plausibly a typo, never an error; the rest applies. */
static void test_env_unknown_is_a_warning(void **state)
{
    (void)state;
    config_t cfg;
    assert_int_equal(load(&cfg, none,
                          LIST("PATH=/bin", "WSB_PROT=9000", "WSB_BIN=/x", "WSB_PORT=9001",
                               "WSB_MAX_MESAGE_SIZE=1", "WSB_PORT2=1")),
                     CONFIG_OK);
    assert_int_equal(cfg.port, 9001);
    assert_int_equal(cfg.nwarnings, 4);
    assert_string_equal(cfg.warnings[0],
                        "unknown environment variable WSB_PROT ignored; did you mean WSB_PORT?");
    assert_string_equal(cfg.warnings[1],
                        "unknown environment variable WSB_BIN ignored; it is no config key (see "
                        "--help)");
    assert_string_equal(cfg.warnings[2], "unknown environment variable WSB_MAX_MESAGE_SIZE "
                                         "ignored; did you mean WSB_MAX_MESSAGE_SIZE?");
    assert_string_equal(cfg.warnings[3],
                        "unknown environment variable WSB_PORT2 ignored; did you mean WSB_PORT?");
    config_free(&cfg);
    assert_null(cfg.warnings);

    /* Bounded: a hostile environment cannot grow the list. */
    const char *many[CONFIG_MAX_WARNINGS + 4];
    char names[CONFIG_MAX_WARNINGS + 3][32];
    for (size_t i = 0; i < CONFIG_MAX_WARNINGS + 3; i++) {
        (void)snprintf(names[i], sizeof names[i], "WSB_UNKNOWN_%zu=1", i);
        many[i] = names[i];
    }
    many[CONFIG_MAX_WARNINGS + 3] = NULL;
    assert_int_equal(load(&cfg, none, many), CONFIG_OK);
    assert_int_equal(cfg.nwarnings, CONFIG_MAX_WARNINGS);
    config_free(&cfg);

    /* A long unknown name is cut, not overrun. */
    char longvar[400];
    memset(longvar, 'X', sizeof longvar - 1);
    memcpy(longvar, "WSB_", 4);
    longvar[sizeof longvar - 3] = '=';
    longvar[sizeof longvar - 2] = '1';
    longvar[sizeof longvar - 1] = '\0';
    assert_int_equal(load(&cfg, none, LIST(longvar)), CONFIG_OK);
    assert_int_equal(cfg.nwarnings, 1);
    assert_true(strstr(cfg.warnings[0], "it is no config key") != NULL);
    config_free(&cfg);
}

/* ---- errors from the file ---------------------------------------------------- */

static void test_file_errors(void **state)
{
    (void)state;
    const char *missing = "/tmp/wsb_test_config_no_such_file.json";
    (void)unlink(missing);
    expect_error(LIST("--config", missing), NULL,
                 LIST("config: cannot read config file", missing, "No such file"));
    expect_error(none, LIST("WSB_CONFIG=/tmp/wsb_test_config_no_such_file.json"),
                 LIST("config", missing));
    expect_error(LIST("--config", "/tmp"), NULL, LIST("config", "\"/tmp\"", "directory"));

    const char *malformed = write_temp("{\n  \"port\": 80,\n  oops\n}\n");
    expect_error(LIST("--config", malformed), NULL,
                 LIST("config: config file", malformed, "not valid JSON", "line 3, column"));
    const char *empty = write_temp("");
    expect_error(LIST("--config", empty), NULL, LIST("config", empty, "line 1"));
    const char *list = write_temp("[{\"port\": 80}]");
    expect_error(LIST("--config", list), NULL, LIST("config", list, "JSON object"));
    const char *dup = write_temp("{\"port\": 80,\n\"port\": 81}");
    expect_error(LIST("--config", dup), NULL, LIST("config", dup, "duplicate", "port"));

    const char *unknown = write_temp("{\"port\": 80, \"bogus\": 1}");
    expect_error(LIST("--config", unknown), NULL,
                 LIST("bogus: unknown key in config file", unknown));
    const char *nested = write_temp("{\"resp\": {\"portz\": 6380}}");
    expect_error(LIST("--config", nested), NULL, LIST("resp.portz: unknown key", nested));
    const char *deeper = write_temp("{\"port\": 80, \"quic\": {\"cert\": {\"file\": \"x\"}}}");
    expect_error(LIST("--config", deeper), NULL, LIST("quic.cert.file: unknown key", deeper));
    const char *empty_obj = write_temp("{\"quic\": {}}");
    expect_error(LIST("--config", empty_obj), NULL, LIST("quic: unknown key"));
    const char *leaf_obj = write_temp("{\"tls\": {\"cert\": {\"file\": \"x\"}}}");
    expect_error(LIST("--config", leaf_obj), NULL, LIST("tls.cert: expected", leaf_obj));
    const char *self = write_temp("{\"config\": \"/etc/other.json\"}");
    expect_error(LIST("--config", self), NULL, LIST("config: unknown key"));

    /* Bad values and wrong JSON types name the key, the value and the file. */
    static const struct {
        const char *json, *needle_key, *needle_got;
    } bad[] = {
        {"{\"port\": \"http\"}", "port: expected an integer", "got \"http\""},
        {"{\"port\": 65536}", "port: expected an integer", "got 65536"},
        {"{\"port\": -1}", "port:", "got -1"},
        {"{\"port\": 80.5}", "port:", "got 80.5"},
        {"{\"port\": true}", "port:", "got true"},
        {"{\"port\": null}", "port:", "got null"},
        {"{\"host\": 5}", "host: expected an address", "got 5"},
        {"{\"host\": [\"a\"]}", "host:", "got [\"a\"]"},
        {"{\"log_level\": \"loud\"}", "log_level:", "got \"loud\""},
        {"{\"max_message_size\": 1.5}", "max_message_size: expected a size", "got 1.5"},
        {"{\"max_message_size\": 0}", "max_message_size:", "got 0"},
        {"{\"max_message_size\": 2147483648}", "max_message_size:", "got 2147483648"},
        {"{\"max_message_size\": {\"a\": 1}}", "max_message_size:", "got {\"a\":1}"},
        {"{\"idle_timeout\": true}", "idle_timeout: expected a duration", "got true"},
        {"{\"idle_timeout\": -1}", "idle_timeout:", "got -1"},
        {"{\"idle_timeout\": 0.0001}", "idle_timeout:", "got 0.0001"},
        {"{\"idle_timeout\": 1e12}", "idle_timeout:", "got 1"},
        {"{\"idle_timeout\": 9223372036854775807}", "idle_timeout:", "got 9223372036854775807"},
        {"{\"idle_timeout\": \"1d\"}", "idle_timeout:", "got \"1d\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *path = write_temp(bad[i].json);
        expect_error(LIST("--config", path), NULL,
                     LIST(bad[i].needle_key, bad[i].needle_got, "in config file", path));
        (void)unlink(path);
        ntemps--;
    }
}

static void test_file_json_numbers(void **state)
{
    (void)state;
    const char *path = write_temp("{\"idle_timeout\": 0.25, \"ping_interval\": 0, "
                                  "\"header_timeout\": 0.001, \"close_timeout\": 2592000, "
                                  "\"max_message_size\": 1073741824, \"port\": \"8081\", "
                                  "\"shutdown_timeout\": 1.5}");
    config_t cfg;
    assert_int_equal(load(&cfg, LIST("--config", path), NULL), CONFIG_OK);
    assert_int_equal(cfg.idle_timeout_ms, 250);
    assert_int_equal(cfg.ping_interval_ms, 0);
    assert_int_equal(cfg.header_timeout_ms, 1);
    assert_int_equal(cfg.close_timeout_ms, 2592000000ULL);
    assert_int_equal(cfg.max_message_size, GIB);
    assert_int_equal(cfg.port, 8081);
    assert_int_equal(cfg.shutdown_timeout_ms, 1500);
    config_free(&cfg);

    /* A port for a string key (resp.port: "" means off) may be a JSON number. */
    const char *nested = write_temp("{\"resp\": {\"port\": 6380}, \"redis\": {\"url\": "
                                    "\"redis://:pw@127.0.0.1:6390/0\", \"queue_size\": 100}}");
    assert_int_equal(load(&cfg, LIST("--config", nested), NULL), CONFIG_OK);
    assert_string_equal(cfg.resp_port, "6380");
    assert_string_equal(cfg.redis_url, "redis://:pw@127.0.0.1:6390/0");
    assert_int_equal(cfg.redis_queue_size, 100);
    config_free(&cfg);
}

/* ---- --help, --version, the example file ------------------------------------- */

static void test_help_text(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    config_print_help(f);
    char *text = read_all(f);
    assert_contains(text, "Usage: wsbroker");
    assert_contains(text, "--config FILE");
    assert_contains(text, "WSB_CONFIG");
    assert_contains(text, "--help");
    assert_contains(text, "--version");
    assert_contains(text, "flag >\nenvironment > file > default");
    assert_null(strstr(text, " \n")); /* no trailing blanks */
    for (size_t i = 0; i < NCONTRACT_KEYS; i++) {
        char flag[64];
        (void)snprintf(flag, sizeof flag, "\n  %s ", contract_keys[i].flag);
        assert_contains(text, flag);
        const char *line = strstr(text, flag);
        const char *eol = strchr(line + 1, '\n');
        char buf[256];
        (void)snprintf(buf, sizeof buf, "%.*s", (int)(eol - line), line);
        assert_contains(buf, contract_keys[i].env);
        assert_contains(buf, contract_keys[i].help_default != NULL ? contract_keys[i].help_default
                                                                   : "(default \"");
        /* The line after names what the key does. */
        assert_true(strncmp(eol, "\n      ", 7) == 0 && eol[7] != ' ');
    }
    /* Exactly the contract's settings: one "  --" line per key, plus
     * --config, --version and --check-config. */
    size_t settings = 0;
    for (const char *p = text; (p = strstr(p, "\n  --")) != NULL; p++) {
        settings++;
    }
    assert_int_equal(settings, NCONTRACT_KEYS + 3);
    free(text);
}

static void test_help_and_version_flags(void **state)
{
    (void)state;
    config_t cfg;
    capture_t cap;

    capture_start(&cap, STDOUT_FILENO);
    config_result_t rc = load(&cfg, LIST("--help"), NULL);
    char *out = capture_end(&cap);
    config_free(&cfg);
    assert_int_equal(rc, CONFIG_EXIT);
    assert_contains(out, "--max-message-size SIZE");
    assert_contains(out, "WSB_MAX_MESSAGE_SIZE");
    free(out);

    /* --help works whatever the environment and later arguments hold. */
    capture_start(&cap, STDOUT_FILENO);
    rc = load(&cfg, LIST("--port", "nonsense", "-h", "--bogus"), LIST("WSB_BOGUS=1"));
    out = capture_end(&cap);
    config_free(&cfg);
    assert_int_equal(rc, CONFIG_EXIT);
    assert_contains(out, "Usage: wsbroker");
    free(out);

    capture_start(&cap, STDOUT_FILENO);
    rc = load(&cfg, LIST("--version"), NULL);
    out = capture_end(&cap);
    config_free(&cfg);
    assert_int_equal(rc, CONFIG_EXIT);
    assert_true(strncmp(out, "wsbroker ", 9) == 0);
    assert_ends_with(out, "\n");
    free(out);

    /* An error before --help wins: arguments are read left to right. */
    expect_error(LIST("--bogus", "--help"), NULL, LIST("--bogus"));
}

/* The example sits at the repository root; __FILE__ is this file's path. */
static void example_path(char *buf, size_t len)
{
    const char *file = __FILE__;
    const char *suffix = "tests/unit/test_config.c";
    size_t flen = strlen(file), slen = strlen(suffix);
    assert_true(flen >= slen && strcmp(file + flen - slen, suffix) == 0);
    (void)snprintf(buf, len, "%.*swsbroker.example.json", (int)(flen - slen), file);
}

static void test_example_file(void **state)
{
    (void)state;
    char path[4096];
    example_path(path, sizeof path);
    if (access(path, R_OK) != 0) {
        fail_msg("cannot read %s (run from the repository root or build with an absolute "
                 "__FILE__)",
                 path);
    }

    /* It holds exactly the contract's keys ("tls.cert" as {"tls": {"cert": ...}}). */
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        fail_msg("%s: line %d: %s", path, jerr.line, jerr.text);
    }
    size_t leaves = 0;
    const char *top;
    json_t *tv;
    json_object_foreach(root, top, tv)
    {
        leaves += json_is_object(tv) ? json_object_size(tv) : 1;
    }
    assert_int_equal(leaves, NCONTRACT_KEYS);
    for (size_t i = 0; i < NCONTRACT_KEYS; i++) {
        const char *name = contract_keys[i].name;
        const char *dot = strchr(name, '.');
        json_t *v = root;
        if (dot != NULL) {
            char first[32];
            (void)snprintf(first, sizeof first, "%.*s", (int)(dot - name), name);
            v = json_object_get(root, first);
            name = dot + 1;
        }
        if (v == NULL || json_object_get(v, name) == NULL) {
            fail_msg("%s lacks \"%s\"", path, contract_keys[i].name);
        }
    }
    json_decref(root);

    /* Loaded, it equals the defaults. */
    config_t def, cfg;
    config_defaults(&def);
    assert_int_equal(load(&cfg, LIST("--config", path), NULL), CONFIG_OK);
    assert_same_config_but_web_root(&cfg, &def);
    /* The example's relative "web" is the built-in default when run from the
     * repository root; a build may compile in the absolute path instead. */
    assert_string_equal(cfg.web_root, "web");
    assert_ends_with(def.web_root, "web");
    assert_string_equal(cfg.config_file, path);
    config_free(&cfg);
    config_free(&def);
}

/* ---- list keys and API keys ------------------------------------------------------ */

static void test_list_keys_and_api_keys(void **state)
{
    (void)state;
    config_t cfg;
    const char *file = write_temp("{\"allowed_origins\": [\"https://a.example\", "
                                  "\"https://*.b.example\"], \"api_keys\": "
                                  "[\"0123456789abcdef\", \"fedcba9876543210:chat.> news.*\"]}");
    assert_int_equal(load(&cfg, LIST("--config", file), NULL), CONFIG_OK);
    assert_string_equal(cfg.allowed_origins, "https://a.example,https://*.b.example");
    assert_int_equal(cfg.napikeys, 2);
    const apikey_t *k = apikey_lookup(cfg.apikeys, cfg.napikeys, "fedcba9876543210", 16);
    assert_non_null(k);
    assert_int_equal(k->npatterns, 2);
    assert_true(apikey_may_publish(k, "chat.x", 6));
    assert_true(apikey_may_publish(k, "news.y", 6));
    assert_false(apikey_may_publish(k, "other", 5));
    const apikey_t *any = apikey_lookup(cfg.apikeys, cfg.napikeys, "0123456789abcdef", 16);
    assert_non_null(any);
    assert_true(apikey_may_publish(any, "other", 5));
    assert_null(apikey_lookup(cfg.apikeys, cfg.napikeys, "0123456789abcdeX", 16));
    assert_null(apikey_lookup(cfg.apikeys, cfg.napikeys, "0123456789abcde", 15));
    assert_null(apikey_lookup(cfg.apikeys, cfg.napikeys, "", 0));
    config_free(&cfg);

    /* A "name=" word names the key (the `from` of its publishes); it is no pattern. */
    assert_int_equal(
        load(&cfg, LIST("--api-keys", "0123456789abcdef:chat.> name=helpdesk,fedcba9876543210"),
             NULL),
        CONFIG_OK);
    k = apikey_lookup(cfg.apikeys, cfg.napikeys, "0123456789abcdef", 16);
    assert_non_null(k);
    assert_int_equal(k->npatterns, 1);
    assert_string_equal(apikey_name(k).p, "helpdesk");
    assert_false(apikey_may_publish(k, "name=helpdesk", 13));
    k = apikey_lookup(cfg.apikeys, cfg.napikeys, "fedcba9876543210", 16);
    assert_null(apikey_name(k).p);
    assert_null(apikey_name(NULL).p);
    config_free(&cfg);
    /* Only the name: any topic. */
    assert_int_equal(load(&cfg, LIST("--api-keys", "0123456789abcdef:name=svc"), NULL), CONFIG_OK);
    assert_int_equal(cfg.apikeys[0].npatterns, 0);
    assert_true(apikey_may_publish(&cfg.apikeys[0], "any.topic", 9));
    config_free(&cfg);
    expect_error(LIST("--api-keys", "0123456789abcdef:name="), NULL, LIST("api_keys: expected"));
    expect_error(LIST("--api-keys", "0123456789abcdef:name=a name=b"), NULL,
                 LIST("api_keys: expected"));

    /* Bad entries name the key. */
    expect_error(LIST("--api-keys", "short"), NULL, LIST("api_keys: expected"));
    expect_error(LIST("--api-keys", "0123456789abcdef:a..b"), NULL, LIST("api_keys: expected"));
    expect_error(LIST("--api-keys", "0123456789abcdef:"), NULL, LIST("api_keys: expected"));
    expect_error(LIST("--allowed-origins", "example.com"), NULL, LIST("allowed_origins: expected"));
    expect_error(LIST("--allowed-origins", "https://a.example/"), NULL,
                 LIST("allowed_origins: expected"));
    expect_error(LIST("--auth-anonymous-subscribe", "a,,b"), NULL,
                 LIST("auth.anonymous_subscribe: expected"));
    expect_error(LIST("--rate-action", "drop"), NULL, LIST("rate.action: expected"));
    expect_error(LIST("--rate-per", "ip"), NULL, LIST("rate.per: expected"));
    expect_error(LIST("--max-connections-per-user", "-1"), NULL,
                 LIST("max_connections_per_user: expected"));
    expect_error(LIST("--sys-stats-interval", "soon"), NULL, LIST("sys.stats_interval: expected"));
    expect_error(LIST("--tls-cert", "/x.pem"), NULL, LIST("tls.cert, tls.key: expected both"));
    const char *bad_list = write_temp("{\"allowed_origins\": [\"https://a,b\"]}");
    expect_error(LIST("--config", bad_list), NULL, LIST("allowed_origins: expected"));

    /* trusted_proxies: parsed into networks; a bad entry names the key. */
    const char *proxies = write_temp("{\"trusted_proxies\": [\"10.0.0.0/8\", \"::1\"]}");
    assert_int_equal(load(&cfg, LIST("--config", proxies), NULL), CONFIG_OK);
    assert_string_equal(cfg.trusted_proxies, "10.0.0.0/8,::1");
    assert_int_equal(cfg.ntrusted, 2);
    config_free(&cfg);
    assert_null(cfg.trusted);
    assert_int_equal(load(&cfg, none, LIST("WSB_TRUSTED_PROXIES=127.0.0.1")), CONFIG_OK);
    assert_int_equal(cfg.ntrusted, 1);
    config_free(&cfg);
    expect_error(LIST("--trusted-proxies", "proxy.local"), NULL, LIST("trusted_proxies: expected"));
    expect_error(LIST("--trusted-proxies", "10.0.0.0/33"), NULL, LIST("trusted_proxies: expected"));
}

/* ---- log.c ------------------------------------------------------------------ */

static void test_log_levels(void **state)
{
    (void)state;
    log_level_t level = LOG_ERROR;
    assert_int_equal(log_parse_level("debug", &level), 0);
    assert_int_equal(level, LOG_DEBUG);
    assert_int_equal(log_parse_level("WARN", &level), 0);
    assert_int_equal(level, LOG_WARN);
    assert_int_equal(log_parse_level("error", &level), 0);
    assert_int_equal(level, LOG_ERROR);
    assert_int_equal(log_parse_level("info", &level), 0);
    assert_int_equal(level, LOG_INFO);
    assert_int_equal(log_parse_level("verbose", &level), -1);
    assert_int_equal(log_parse_level("", &level), -1);
    assert_int_equal(log_parse_level(NULL, &level), -1);
    assert_int_equal(level, LOG_INFO);

    log_set_level(LOG_WARN);
    assert_true(log_enabled(LOG_ERROR));
    assert_true(log_enabled(LOG_WARN));
    assert_false(log_enabled(LOG_INFO));
    assert_false(log_enabled(LOG_DEBUG));
    log_set_level(LOG_DEBUG);
    assert_true(log_enabled(LOG_DEBUG));
}

static void test_log_quote(void **state)
{
    (void)state;
    const char *plain = "127.0.0.1:8080";
    assert_ptr_equal(log_quote(plain), plain);
    assert_string_equal(log_quote("a\\b"), "a\\b");
    assert_string_equal(log_quote(""), "\"\"");
    assert_string_equal(log_quote(NULL), "\"\"");
    assert_string_equal(log_quote("a b"), "\"a b\"");
    assert_string_equal(log_quote("k=v"), "\"k=v\"");
    assert_string_equal(log_quote("say \"hi\""), "\"say \\\"hi\\\"\"");
    assert_string_equal(log_quote("line\nbreak\r\tx"), "\"line\\nbreak\\r\\tx\"");
    assert_string_equal(log_quote("a b\\c"), "\"a b\\\\c\"");
    assert_string_equal(log_quote("bell\a"), "\"bell\\u0007\"");
    assert_string_equal(log_quote("caf\xc3\xa9 ok"), "\"caf\xc3\xa9 ok\"");

    /* Several results are usable in one call. */
    const char *q1 = log_quote("one 1");
    const char *q2 = log_quote("two 2");
    const char *q3 = log_quote("three 3");
    const char *q4 = log_quote("four 4");
    assert_string_equal(q1, "\"one 1\"");
    assert_string_equal(q2, "\"two 2\"");
    assert_string_equal(q3, "\"three 3\"");
    assert_string_equal(q4, "\"four 4\"");

    /* A long value is cut, marked, and still closed. */
    char big[5000];
    memset(big, '"', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *q = log_quote(big);
    size_t len = strlen(q);
    assert_true(len < 1024 && len > 1000);
    assert_ends_with(q, "...\"");
    assert_true(q[0] == '"');
}

/* Checks "ts=YYYY-MM-DDTHH:MM:SS.mmmZ " and returns what follows it. */
static const char *skip_timestamp(const char *line)
{
    static const char shape[] = "ts=dddd-dd-ddTdd:dd:dd.dddZ ";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd' ? (line[i] < '0' || line[i] > '9') : line[i] != shape[i]) {
            fail_msg("bad timestamp in \"%s\"", line);
        }
    }
    return line + sizeof shape - 1;
}

static void test_log_lines(void **state)
{
    (void)state;
    capture_t cap;
    log_set_level(LOG_INFO);
    capture_start(&cap, STDERR_FILENO);
    errno = 42;
    log_info("listening", "addr=%s", "127.0.0.1:8080");
    assert_int_equal(errno, 42);
    log_debug("hidden", "n=%d", 1);
    log_warn("slow client", NULL);
    log_error("bind failed", "addr=%s err=%s", "0.0.0.0:80", log_quote("permission denied"));
    log_set_level(LOG_DEBUG);
    log_debug("shown", "n=%d", 2);
    char *out = capture_end(&cap);

    const char *line = out;
    const char *expected[] = {
        "level=info msg=listening addr=127.0.0.1:8080\n",
        "level=warn msg=\"slow client\"\n",
        "level=error msg=\"bind failed\" addr=0.0.0.0:80 err=\"permission denied\"\n",
        "level=debug msg=shown n=2\n",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const char *rest = skip_timestamp(line);
        size_t n = strlen(expected[i]);
        if (strncmp(rest, expected[i], n) != 0) {
            fail_msg("line %zu: \"%s\"", i, line);
        }
        line = rest + n;
    }
    assert_string_equal(line, "");
    free(out);

    /* A line longer than the stack buffer is still one whole line. */
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    capture_start(&cap, STDERR_FILENO);
    log_info("big", "v=%s", big);
    out = capture_end(&cap);
    const char *rest = skip_timestamp(out);
    assert_true(strncmp(rest, "level=info msg=big v=xxx", 24) == 0);
    assert_int_equal(strlen(rest), strlen("level=info msg=big v=") + sizeof big - 1 + 1);
    assert_ends_with(rest, "x\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, remove_temps),
        cmocka_unit_test_teardown(test_no_sources_gives_defaults, remove_temps),
        cmocka_unit_test_teardown(test_flags_alone, remove_temps),
        cmocka_unit_test_teardown(test_env_alone, remove_temps),
        cmocka_unit_test_teardown(test_file_alone, remove_temps),
        cmocka_unit_test_teardown(test_config_file_from_env, remove_temps),
        cmocka_unit_test_teardown(test_precedence, remove_temps),
        cmocka_unit_test_teardown(test_flag_forms, remove_temps),
        cmocka_unit_test_teardown(test_size_values, remove_temps),
        cmocka_unit_test_teardown(test_size_parser, remove_temps),
        cmocka_unit_test_teardown(test_duration_values, remove_temps),
        cmocka_unit_test_teardown(test_duration_parser, remove_temps),
        cmocka_unit_test_teardown(test_bool_parser, remove_temps),
        cmocka_unit_test_teardown(test_uint_values, remove_temps),
        cmocka_unit_test_teardown(test_string_values, remove_temps),
        cmocka_unit_test_teardown(test_relations, remove_temps),
        cmocka_unit_test_teardown(test_flag_errors, remove_temps),
        cmocka_unit_test_teardown(test_env_errors, remove_temps),
        cmocka_unit_test(test_env_unknown_is_a_warning),
        cmocka_unit_test_teardown(test_file_errors, remove_temps),
        cmocka_unit_test_teardown(test_file_json_numbers, remove_temps),
        cmocka_unit_test_teardown(test_help_text, remove_temps),
        cmocka_unit_test_teardown(test_help_and_version_flags, remove_temps),
        cmocka_unit_test_teardown(test_example_file, remove_temps),
        cmocka_unit_test_teardown(test_list_keys_and_api_keys, remove_temps),
        cmocka_unit_test_teardown(test_key_sources, remove_temps),
        cmocka_unit_test_teardown(test_secret_files, remove_temps),
        cmocka_unit_test_teardown(test_log_levels, remove_temps),
        cmocka_unit_test_teardown(test_log_quote, remove_temps),
        cmocka_unit_test_teardown(test_log_lines, remove_temps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
