/* apikey.c - API key entries: parsing, constant-time lookup, permissions (see apikey.h). */
#include "core/apikey.h"

#include "shared/util.h"
#include "wsb/topic.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static bool key_char_ok(char c)
{
    return c > ' ' && c < 0x7f && c != ',' && c != ':';
}

/* The next space-separated word of [*p, end) (its length in *len), with *p
 * moved past it; NULL when only spaces are left. */
static const char *next_word(const char **p, const char *end, size_t *len)
{
    const char *w = *p;
    while (w < end && *w == ' ') {
        w++;
    }
    const char *q = w;
    while (q < end && *q != ' ') {
        q++;
    }
    *p = q;
    *len = (size_t)(q - w);
    return q > w ? w : NULL;
}

#define NAME_PREFIX     "name="
#define NAME_PREFIX_LEN 5

/* A "name=NAME" word names the key; every other word is a pattern. */
static bool is_name_word(const char *w, size_t len)
{
    return len >= NAME_PREFIX_LEN && memcmp(w, NAME_PREFIX, NAME_PREFIX_LEN) == 0;
}

bool apikey_entry_valid(const char *entry, size_t len)
{
    const char *colon = memchr(entry, ':', len);
    size_t klen = colon != NULL ? (size_t)(colon - entry) : len;
    if (klen < APIKEY_MIN_LEN || klen > APIKEY_MAX_LEN) {
        return false;
    }
    for (size_t i = 0; i < klen; i++) {
        if (!key_char_ok(entry[i])) {
            return false;
        }
    }
    if (colon == NULL) {
        return true;
    }
    /* Space-separated patterns; at least one after a ':'. */
    const char *p = colon + 1;
    size_t count = 0;
    size_t wlen = 0;
    size_t names = 0;
    for (const char *w; (w = next_word(&p, entry + len, &wlen)) != NULL; count++) {
        if (is_name_word(w, wlen)) {
            if (++names > 1 || wlen == NAME_PREFIX_LEN ||
                wlen - NAME_PREFIX_LEN > APIKEY_NAME_MAX) {
                return false;
            }
        } else if (wsb_topic_check(w, wlen, WSB_TOPIC_PATTERN, NULL) != 0) {
            return false;
        }
    }
    return count > 0;
}

static void digest_of(const char *key, size_t len, uint8_t out[32])
{
    unsigned n = 0;
    if (EVP_Digest(key, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        abort(); /* SHA-256 is always available; failing here is not recoverable */
    }
}

static char *dup_range(const char *p, size_t len)
{
    char *s = xmalloc(len + 1);
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static int parse_entry(const char *entry, size_t len, apikey_t *k)
{
    memset(k, 0, sizeof *k);
    if (!apikey_entry_valid(entry, len)) {
        return -1;
    }
    const char *colon = memchr(entry, ':', len);
    size_t klen = colon != NULL ? (size_t)(colon - entry) : len;
    digest_of(entry, klen, k->digest);
    memcpy(k->label, entry, 4);
    memcpy(k->label + 4, "...", 4);
    if (colon == NULL) {
        return 0;
    }
    const char *p = colon + 1;
    size_t wlen = 0;
    for (const char *w; (w = next_word(&p, entry + len, &wlen)) != NULL;) {
        if (is_name_word(w, wlen)) {
            k->name = dup_range(w + NAME_PREFIX_LEN, wlen - NAME_PREFIX_LEN);
            continue;
        }
        char **grown = xrealloc(k->patterns, (k->npatterns + 1) * sizeof(char *));
        k->patterns = grown;
        k->patterns[k->npatterns++] = dup_range(w, wlen);
    }
    return 0;
}

int apikey_parse(const char *spec, apikey_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (spec == NULL || spec[0] == '\0') {
        return 0;
    }
    size_t count = 1;
    for (const char *p = spec; *p; p++) {
        count += *p == ',';
    }
    apikey_t *keys = xcalloc(count, sizeof(apikey_t));
    size_t i = 0;
    for (const char *p = spec;; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (parse_entry(p, len, &keys[i]) != 0) {
            apikey_free_all(keys, i);
            return -1;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    *out = keys;
    *n = count;
    return 0;
}

void apikey_free_all(apikey_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < keys[i].npatterns; j++) {
            free(keys[i].patterns[j]);
        }
        free(keys[i].patterns);
        free(keys[i].name);
    }
    free(keys);
}

const apikey_t *apikey_lookup(const apikey_t *keys, size_t n, const char *key, size_t len)
{
    if (key == NULL || len == 0 || len > APIKEY_MAX_LEN) {
        return NULL;
    }
    uint8_t d[32];
    digest_of(key, len, d);
    const apikey_t *found = NULL;
    for (size_t i = 0; i < n; i++) {
        /* No early exit: every entry is compared whatever matched before. */
        bool eq = CRYPTO_memcmp(d, keys[i].digest, sizeof d) == 0;
        if (eq && found == NULL) {
            found = &keys[i];
        }
    }
    return found;
}

bool apikey_may_publish(const apikey_t *k, const char *topic, size_t len)
{
    if (k->npatterns == 0) {
        return true;
    }
    for (size_t i = 0; i < k->npatterns; i++) {
        if (wsb_topic_matches(k->patterns[i], strlen(k->patterns[i]), topic, len)) {
            return true;
        }
    }
    return false;
}

wsb_str_t apikey_name(const apikey_t *k)
{
    if (k == NULL || k->name == NULL) {
        return WSB_STR_NULL;
    }
    return (wsb_str_t){k->name, strlen(k->name)};
}
