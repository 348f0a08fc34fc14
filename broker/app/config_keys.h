/*
 * config_keys.h - the configuration's key table (inside app/ only): every
 * key's name, type, bounds, default, validation and help, and the one rule
 * that maps a key name to its flag (--resp-port) and variable
 * (WSB_RESP_PORT). The loading engine (config.c) and the table are apart so
 * that a new setting is one row here. Read-only, no state.
 */
#ifndef WSB_BROKER_CONFIG_KEYS_H
#define WSB_BROKER_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Where a key's value lives in config_t. */
#define OFF(field) offsetof(config_t, field)

/* The validator of keys that take a port or "" (a JSON number is accepted
 * for them in the file). */
bool config_is_optional_port(const char *value);

/* The table, in --help order. */
extern const key_def_t config_keys[];
extern const size_t config_nkeys;

/* "resp.port" -> "--resp-port" / "WSB_RESP_PORT" (NUL-terminated, cut at len). */
void config_key_flag(const key_def_t *k, char *buf, size_t len);
void config_key_env(const key_def_t *k, char *buf, size_t len);

/* The key of a name, flag or variable (`len` bytes), or NULL. */
const key_def_t *config_find_key(const char *name);
const key_def_t *config_find_flag(const char *flag, size_t len);
const key_def_t *config_find_env(const char *var, size_t len);

/* True when `prefix` names a nesting level: some key starts with "prefix.". */
bool config_key_has_children(const char *prefix);

/* True when `name` (`len` bytes) has the shape of a key's variable
 * (WSB_ then upper-case words): an unknown one is then worth a warning. */
bool config_looks_like_key_var(const char *name, size_t len);

/* Writes into `buf` the variable of the key nearest to `var` by edit
 * distance and returns that distance (what a "did you mean" needs). */
size_t config_nearest_env(const char *var, size_t len, char *buf, size_t buflen);

/* Reads the secret file `path` (named by key `key` in messages): at most
 * 64 KiB, trailing newlines stripped, not empty; with `lines_are_list`, the
 * lines become comma-separated entries (blank lines skipped). Returns the
 * text (free it) or NULL with `err` set. `warn` gets a warning ("" when
 * none) when group or others may read the file. */
char *config_read_secret_file(const char *key, const char *path, bool lines_are_list, char *warn,
                              size_t warnlen, char *err, size_t errlen);

/* Writes the value of `k` in `cfg` as --check-config shows it (strings
 * quoted, sizes and durations with their unit). */
struct config_s;
void config_format_value(const struct config_s *cfg, const key_def_t *k, char *buf, size_t len);

#endif
