/*
 * apikey.h - API keys for publishing without a WebSocket: POST /api/publish
 * (Authorization: Bearer KEY or X-API-Key: KEY) and, once merged, RESP AUTH.
 *
 * Configuration (the api_keys key): comma-separated entries "KEY" or
 * "KEY:WORD WORD ...", each word a pattern the key may publish to (no
 * pattern: any topic) or "name=NAME", the key's name (the `user` of the
 * `from` stamp of its publishes, PROTOCOL.md 4.2; at most one, 1 to
 * APIKEY_NAME_MAX characters without spaces or ','). Keys are 16 to 256
 * printable ASCII characters without ',', ':' or spaces.
 *
 * Lookups compare SHA-256 digests of the presented key and of every
 * configured key with CRYPTO_memcmp and visit every entry, so neither the
 * time taken nor the order of keys tells an attacker how much of a key was
 * right or how long the real keys are.
 *
 * Ownership: config_load() parses the entries into config_t (apikeys,
 * napikeys) and config_free() releases them; lookups return borrowed entries
 * valid as long as the configuration.
 */
#ifndef WSB_BROKER_APIKEY_H
#define WSB_BROKER_APIKEY_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APIKEY_MIN_LEN  16
#define APIKEY_MAX_LEN  256
#define APIKEY_NAME_MAX 128 /* as a JWT sub (WSB_JWT_MAX_SUB) */

typedef struct apikey_s {
    uint8_t digest[32]; /* SHA-256 of the key; the key itself is not kept */
    char **patterns;    /* NUL-terminated valid patterns; npatterns == 0: any topic */
    size_t npatterns;
    char label[9]; /* the key's first 4 characters + "…", for logs */
    char *name;    /* "name=" word, or NULL */
} apikey_t;

/* True if `entry` (`len` bytes) is a valid "KEY[:WORD ...]" entry. */
bool apikey_entry_valid(const char *entry, size_t len);

/* Parses a whole api_keys value (already validated). Returns 0 and an array
 * owned by the caller (apikey_free_all), or -1 on a malformed value. */
int apikey_parse(const char *spec, apikey_t **out, size_t *n);

void apikey_free_all(apikey_t *keys, size_t n);

/* The entry of `keys` (`n` of them, the configuration's) for `key` (`len`
 * bytes), or NULL. Constant time in the key's content (see above). */
const apikey_t *apikey_lookup(const apikey_t *keys, size_t n, const char *key, size_t len);

/* The key's name ("name=" word) as the `user` of a `from` stamp, or
 * {NULL,0} for no key or a key without a name. */
wsb_str_t apikey_name(const apikey_t *k);

/* True if the key may publish to the exact `topic`. */
bool apikey_may_publish(const apikey_t *k, const char *topic, size_t len);

#endif
