/*
 * config_load.c - the loading engine: one static table of keys (config_keys.h) drives flags, WSB_*
 * variables, the JSON config file, --help and validation (see config.h for the contract).
 *
 * Every value, defaults included, goes through the same text parsers, so a
 * default in the table is written exactly as a user would write it and --help
 * shows it verbatim. Sources are applied in order of increasing precedence
 * (defaults, file, environment, flags); each one overwrites what came before.
 */
#include "app/config.h"
#include "app/config_keys.h"
#include "core/apikey.h"
#include "core/history.h"
#include "core/topic_rules.h"
#include "net/proxy.h"
#include "shared/log.h"
#include "shared/units.h"
#include "shared/util.h"
#include "wsb/topic.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

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
    return xstrdup(s);
}

/* ---- value parsers ------------------------------------------------------- */

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
        rc = units_parse_uint(value, &number);
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
        char *shown = xmalloc(shown_len);
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
    char *joined = xcalloc(1, total);
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
    if ((k->offset == OFF(history) || k->offset == OFF(topics)) && json_is_array(value)) {
        /* The rules are a JSON list in the file; flags and variables take
         * the same list as JSON text. */
        char *text = json_dumps(value, JSON_COMPACT);
        if (text == NULL) {
            wsb_oom("config history rules");
        }
        int rc = apply_text(cfg, k, text, source, err, errlen);
        free(text);
        return rc;
    }
    if (k->valid == config_is_optional_port && json_is_integer(value) &&
        json_integer_value(value) >= 0) {
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
            k = config_find_key(full);
            nested = k == NULL && config_key_has_children(full);
        }
        if (k != NULL) {
            if (apply_json(cfg, k, value, source, err, errlen) != 0) {
                return -1;
            }
            cfg->key_source[k - config_keys] = CONFIG_SRC_FILE;
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

/* Keeps `msg` (copied) for the log; beyond CONFIG_MAX_WARNINGS it is dropped. */
static void add_warning(config_t *cfg, const char *msg)
{
    if (cfg->nwarnings >= CONFIG_MAX_WARNINGS) {
        return;
    }
    if (cfg->warnings == NULL) {
        cfg->warnings = xcalloc(CONFIG_MAX_WARNINGS, sizeof cfg->warnings[0]);
    }
    cfg->warnings[cfg->nwarnings++] = dup_or_die(msg);
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
    size_t d = config_nearest_env(var, len, near, sizeof near);
    /* A suggestion only when it is plausibly a typo of it: at most two edits,
     * or a third of the name after WSB_ (WSB_BIN is not a misspelt WSB_HOST). */
    size_t compared = (len < NAME_MAX_LEN - 1 ? len : NAME_MAX_LEN - 1) - 4;
    bool plausible = d <= 2 || 3 * d <= compared;
    char msg[2 * NAME_MAX_LEN + 96];
    (void)snprintf(msg, sizeof msg, "unknown environment variable %.*s ignored; %s%s%s",
                   (int)(len < NAME_MAX_LEN ? len : NAME_MAX_LEN), var,
                   plausible ? "did you mean " : "it is no config key (see --help)",
                   plausible ? near : "", plausible ? "?" : "");
    add_warning(cfg, msg);
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
        if (!config_looks_like_key_var(entry, len)) {
            continue;
        }
        if (len == strlen("WSB_CONFIG") && memcmp(entry, "WSB_CONFIG", len) == 0) {
            *config_path = eq + 1;
            continue;
        }
        const key_def_t *k = config_find_env(entry, len);
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
            cfg->key_source[k - config_keys] = CONFIG_SRC_ENV;
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
        if (strcmp(arg, "--check-config") == 0) {
            cfg->check_only = true;
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
        const key_def_t *k = is_config ? NULL : config_find_flag(arg, name_len);
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
            cfg->key_source[k - config_keys] = CONFIG_SRC_FLAG;
        }
    }
    return CONFIG_OK;
}

/* redis.sentinels and the keys that go with it (redis_sentinel.h). */
static config_result_t check_sentinel_keys(const config_t *cfg, char *err, size_t errlen)
{
    bool sentinels = cfg->redis_sentinels[0] != '\0';
    if (sentinels && cfg->redis_url[0] != '\0') {
        set_err(err, errlen,
                "redis.sentinels: expected either redis.url (one server) or redis.sentinels "
                "(the master they name), got both");
        return CONFIG_ERROR;
    }
    if (sentinels && cfg->redis_cluster[0] != '\0') {
        set_err(err, errlen,
                "redis.sentinels, redis.cluster: expected one of them (the master Sentinel names "
                "or a Redis Cluster), got both");
        return CONFIG_ERROR;
    }
    if (sentinels && cfg->redis_master_name[0] == '\0') {
        set_err(err, errlen, "redis.master_name: required with redis.sentinels");
        return CONFIG_ERROR;
    }
    const char *needs = NULL;
    if (!sentinels) {
        needs = cfg->redis_master_name[0] != '\0'         ? "redis.master_name"
                : cfg->redis_sentinel_password[0] != '\0' ? "redis.sentinel_password"
                : cfg->redis_user[0] != '\0'              ? "redis.user"
                : cfg->redis_password[0] != '\0'          ? "redis.password"
                                                          : NULL;
    }
    if (needs != NULL) {
        set_err(err, errlen,
                "%s: only with redis.sentinels (with redis.url, the user and password go in "
                "the URL: redis://user:password@host:port)",
                needs);
        return CONFIG_ERROR;
    }
    if (cfg->redis_user[0] != '\0' && cfg->redis_password[0] == '\0') {
        set_err(err, errlen, "redis.user: needs redis.password");
        return CONFIG_ERROR;
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
    topic_rules_t *rules = malloc(sizeof *rules); /* ~40 KiB: not on the stack */
    if (rules == NULL) {
        (void)fputs("wsbroker: out of memory\n", stderr);
        abort();
    }
    int rules_rc = topic_rules_parse(cfg->topics, cfg->history, rules, err, errlen);
    free(rules);
    if (rules_rc != 0) {
        return CONFIG_ERROR;
    }
    if (check_sentinel_keys(cfg, err, errlen) != CONFIG_OK) {
        return CONFIG_ERROR;
    }
    if (cfg->redis_cluster[0] != '\0' && cfg->redis_url[0] != '\0') {
        set_err(err, errlen,
                "redis.cluster, redis.url: expected one of them (a Redis Cluster or one Redis "
                "server), got both");
        return CONFIG_ERROR;
    }
    /* On a Redis Cluster, history and streams work too: every key and the
     * channel of one topic (or stream rule) carry one hash tag (PROTOCOL 13.4). */
    /* With redis.url, history lives in Redis (chist_redis.h). */
    if (cfg->echo_path[0] != '\0' && strcmp(cfg->echo_path, cfg->ws_path) == 0) {
        set_err(err, errlen, "echo_path: expected a path other than ws_path, got \"%s\"",
                cfg->echo_path);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

/* ---- secrets in files ----------------------------------------------------- */

/* `secret` takes the content of the file named by `file_key` when that is
 * set (both set is an error: which one would win is not obvious). The
 * secret's source becomes the file key's. */
static config_result_t load_secret_file(config_t *cfg, const char *secret, const char *file_key,
                                        char *err, size_t errlen)
{
    const key_def_t *k = config_find_key(secret);
    const key_def_t *fk = config_find_key(file_key);
    const char *path = *(char **)field_of(cfg, fk);
    if (path[0] == '\0') {
        return CONFIG_OK;
    }
    if ((*(char **)field_of(cfg, k))[0] != '\0') {
        set_err(err, errlen, "%s, %s: expected one of them, got both", secret, file_key);
        return CONFIG_ERROR;
    }
    char warn[512] = "";
    char *text = config_read_secret_file(fk->name, path, k->type == KEY_LIST, warn, sizeof warn,
                                         err, errlen);
    if (text == NULL) {
        return CONFIG_ERROR;
    }
    if (warn[0] != '\0') {
        add_warning(cfg, warn);
    }
    char source[NAME_MAX_LEN + 16];
    (void)snprintf(source, sizeof source, "from %s", file_key);
    char shown_err[512];
    int rc = apply_text(cfg, k, text, source, shown_err, sizeof shown_err);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (rc != 0) {
        /* The message would quote the secret: name the file instead. */
        char expected[256];
        describe_expected(k, expected, sizeof expected);
        set_err(err, errlen, "%s: expected %s in \"%s\"", file_key, expected, path);
        return CONFIG_ERROR;
    }
    cfg->key_source[k - config_keys] = cfg->key_source[fk - config_keys];
    return CONFIG_OK;
}

static config_result_t load_secret_files(config_t *cfg, char *err, size_t errlen)
{
    if (load_secret_file(cfg, "auth.jwt_secret", "auth.jwt_secret_file", err, errlen) != 0 ||
        load_secret_file(cfg, "api_keys", "api_keys_file", err, errlen) != 0 ||
        load_secret_file(cfg, "admin_keys", "admin_keys_file", err, errlen) != 0) {
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

/* ---- the effective configuration ----------------------------------------- */

void config_format_value(const config_t *cfg, const key_def_t *k, char *buf, size_t len)
{
    const void *slot = (const char *)cfg + k->offset;
    uint32_t v32 = 0;
    uint64_t v64 = 0;
    bool b = false;
    switch (k->type) {
    case KEY_STRING:
    case KEY_LIST:
        (void)snprintf(buf, len, "\"%s\"", *(char *const *)slot);
        break;
    case KEY_UINT:
        memcpy(&v32, slot, sizeof v32);
        (void)snprintf(buf, len, "%u", (unsigned)v32);
        break;
    case KEY_SIZE:
        memcpy(&v64, slot, sizeof v64);
        format_size(v64, buf, len);
        break;
    case KEY_DURATION:
        memcpy(&v64, slot, sizeof v64);
        format_duration(v64, buf, len);
        break;
    case KEY_BOOL:
        memcpy(&b, slot, sizeof b);
        (void)snprintf(buf, len, "%s", b ? "true" : "false");
        break;
    }
}

/* ---- public API ----------------------------------------------------------- */

void config_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->key_source = xcalloc(config_nkeys, 1); /* CONFIG_SRC_DEFAULT */
    for (size_t i = 0; i < config_nkeys; i++) {
        char err[512];
        if (apply_text(cfg, &config_keys[i], config_keys[i].def, "built-in default", err,
                       sizeof err) != 0) {
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
        cfg->config_file_source = flag_path != NULL ? CONFIG_SRC_FLAG : CONFIG_SRC_ENV;
    }
    rc = walk_env(cfg, envp, true, &env_path, err, errlen);
    if (rc != CONFIG_OK) {
        return rc;
    }
    rc = walk_args(cfg, argc, argv, true, &flag_path, err, errlen);
    if (rc != CONFIG_OK) {
        return rc;
    }
    rc = load_secret_files(cfg, err, errlen);
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
    if (apikey_parse(cfg->admin_keys, &cfg->adminkeys, &cfg->nadminkeys) != 0) {
        set_err(err, errlen, "admin_keys: malformed entry");
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
    (void)fputs("  --check-config\n      validate the configuration as a start would (keys, "
                "files, JWT and\n      TLS keys), print each key as `key = value (source)`, "
                "source one of\n      flag, env, file, default (secrets redacted); exit 0 "
                "when valid, 2 when\n      not; binds nothing\n",
                out);
    (void)fputs("\nSettings:\n", out);
    for (size_t i = 0; i < config_nkeys; i++) {
        const key_def_t *k = &config_keys[i];
        char flag[NAME_MAX_LEN], env[NAME_MAX_LEN], usage[2 * NAME_MAX_LEN], def[NAME_MAX_LEN + 16];
        config_key_flag(k, flag, sizeof flag);
        config_key_env(k, env, sizeof env);
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
    for (size_t i = 0; i < config_nkeys; i++) {
        if (config_keys[i].type == KEY_STRING || config_keys[i].type == KEY_LIST) {
            char **slot = field_of(cfg, &config_keys[i]);
            free(*slot);
            *slot = NULL;
        }
    }
    free(cfg->config_file);
    cfg->config_file = NULL;
    free(cfg->key_source);
    cfg->key_source = NULL;
    for (size_t i = 0; i < cfg->nwarnings; i++) {
        free(cfg->warnings[i]);
    }
    free(cfg->warnings);
    cfg->warnings = NULL;
    cfg->nwarnings = 0;
    apikey_free_all(cfg->apikeys, cfg->napikeys);
    cfg->apikeys = NULL;
    cfg->napikeys = 0;
    apikey_free_all(cfg->adminkeys, cfg->nadminkeys);
    cfg->adminkeys = NULL;
    cfg->nadminkeys = 0;
    free(cfg->trusted);
    cfg->trusted = NULL;
    cfg->ntrusted = 0;
}
