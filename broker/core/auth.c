/* auth.c - keys, permissions, Origin allowlist and admission limits (see auth.h). */
#include "core/auth.h"

#include "core/admin_ban.h"
#include "shared/util.h"
#include "wsb/topic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct ipcount_s {
    uint8_t ip[16];
    uint32_t count; /* 0: free slot (entries are never tombstoned: see release) */
} ipcount_t;

static wsb_str_t *split_patterns(const char *list, size_t *n)
{
    *n = 0;
    if (list == NULL || list[0] == '\0') {
        return NULL;
    }
    size_t cap = 1;
    for (const char *p = list; *p; p++) {
        cap += *p == ',';
    }
    wsb_str_t *out = xcalloc(cap, sizeof *out);
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        out[(*n)++] = (wsb_str_t){p, len};
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return out;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = xmalloc(65536);
    size_t n = fread(buf, 1, 65535, f);
    (void)fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int auth_init(auth_t *a, const auth_config_t *cfg, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->cfg = *cfg;
    a->ready = true;
    pthread_mutex_init(&a->lock, NULL);
    a->anon_sub = split_patterns(cfg->anonymous_subscribe, &a->nanon_sub);
    a->anon_pub = split_patterns(cfg->anonymous_publish, &a->nanon_pub);
    a->anonymous = (perms_t){a->anon_sub, a->nanon_sub, a->anon_pub, a->nanon_pub};
    a->hs_tokens = cfg->max_handshakes_per_second;
    a->bans = admin_ban_new(ADMIN_BAN_MAX);
    if (cfg->jwt_secret[0] == '\0' && cfg->jwt_public_key[0] == '\0') {
        return 0;
    }
    a->jwt = wsb_jwt_keys_new();
    if (a->jwt == NULL) {
        wsb_oom("JWT keys");
    }
    wsb_jwt_keys_require_exp(a->jwt, cfg->require_exp);
    if (cfg->jwt_secret[0] != '\0' &&
        wsb_jwt_keys_set_secret(a->jwt, cfg->jwt_secret, strlen(cfg->jwt_secret)) != 0) {
        wsb_oom("JWT secret"); /* the secret is not empty: ENOMEM is the only failure */
    }
    if (cfg->jwt_public_key[0] != '\0') {
        size_t len = 0;
        char *pem = read_file(cfg->jwt_public_key, &len);
        if (pem == NULL) {
            (void)snprintf(err, errlen, "auth.jwt_public_key: cannot read \"%s\": %s",
                           cfg->jwt_public_key, strerror(errno));
            return -1;
        }
        const char *why = "";
        int rc = wsb_jwt_keys_set_public_pem(a->jwt, pem, len, &why);
        free(pem);
        if (rc != 0) {
            (void)snprintf(err, errlen, "auth.jwt_public_key: \"%s\": %s", cfg->jwt_public_key,
                           why);
            return -1;
        }
    }
    return 0;
}

void auth_free(auth_t *a)
{
    wsb_jwt_keys_free(a->jwt);
    free(a->anon_sub);
    free(a->anon_pub);
    free(a->ips);
    admin_ban_free(a->bans);
    pthread_mutex_destroy(&a->lock);
    memset(a, 0, sizeof *a);
}

int auth_verify(const auth_t *a, const char *token, size_t len, wsb_jwt_claims_t *out,
                const char **why)
{
    if (a->jwt == NULL) {
        memset(out, 0, sizeof *out);
        *why = "no JWT key is configured (auth.jwt_secret, auth.jwt_public_key)";
        return WSB_EINVAL;
    }
    int64_t leeway = (int64_t)(a->cfg.leeway_ms / 1000);
    return wsb_jwt_verify(a->jwt, token, len, (int64_t)time(NULL), leeway, out, why);
}

/* A wildcard entry (the scheme, "://", then "*." and a domain) allows any
 * host below that domain (a.example.com, a.b.example.com) but not the domain
 * itself, with the same scheme and port, and only DNS label characters where
 * the star stands; exact entries must match exactly;
 * scheme and port must
 * match exactly; comparison ignores ASCII case (origins are lowercased by
 * browsers, but hand-written config may not be). */
static bool origin_matches(const char *allowed, size_t alen, wsb_str_t origin)
{
    const char *star = NULL;
    if (alen >= 3) {
        const char *sep = memchr(allowed, ':', alen);
        if (sep != NULL && (size_t)(sep - allowed) + 4 < alen && sep[3] == '*' && sep[4] == '.') {
            star = sep + 3;
        }
    }
    if (star == NULL) {
        return origin.len == alen && strncasecmp(origin.p, allowed, alen) == 0;
    }
    size_t prefix = (size_t)(star - allowed); /* "https://" */
    size_t suffix = alen - prefix - 1;        /* ".example.com" */
    if (origin.len <= prefix + suffix || strncasecmp(origin.p, allowed, prefix) != 0 ||
        strncasecmp(origin.p + origin.len - suffix, star + 1, suffix) != 0) {
        return false;
    }
    /* The part the star stands for: one or more DNS labels (letters, digits,
     * '-') joined by single dots. Anything else would let the host end
     * earlier than the comparison assumes: "https://evil.com#.example.org",
     * "https://evil.com?.example.org", "https://evil.com\\.example.org" or
     * userinfo with '@' all name the host evil.com to some parser. */
    bool label_start = true;
    for (size_t i = prefix; i < origin.len - suffix; i++) {
        char c = origin.p[i];
        if (c == '.') {
            if (label_start) {
                return false; /* an empty label */
            }
            label_start = true;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-') {
            label_start = false;
        } else {
            return false;
        }
    }
    return !label_start; /* a label before the suffix's dot */
}

bool auth_why_expired(const char *why)
{
    return why != NULL && strcmp(why, "token expired") == 0;
}

bool auth_origin_ok(const auth_config_t *cfg, wsb_str_t origin)
{
    if (origin.p == NULL) {
        return cfg->allow_missing_origin;
    }
    const char *list = cfg->allowed_origins;
    if (list[0] == '\0') {
        return true;
    }
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (origin_matches(p, len, origin)) {
            return true;
        }
        if (comma == NULL) {
            return false;
        }
        p = comma + 1;
    }
}

bool perms_may_subscribe(const perms_t *p, wsb_str_t pattern)
{
    return wsb_jwt_patterns_cover(p->subscribe, p->nsubscribe, pattern);
}

bool perms_may_publish(const perms_t *p, wsb_str_t topic)
{
    return wsb_jwt_patterns_cover(p->publish, p->npublish, topic);
}

/* ---- admission ------------------------------------------------------------------------------ */

static size_t ip_hash(const uint8_t ip[16])
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 16; i++) {
        h = (h ^ ip[i]) * 1099511628211ULL;
    }
    return (size_t)h;
}

static ipcount_t *ip_slot(ipcount_t *tab, size_t cap, const uint8_t ip[16], bool *found)
{
    size_t i = ip_hash(ip) & (cap - 1);
    ipcount_t *free_slot = NULL;
    for (size_t n = 0; n < cap; n++, i = (i + 1) & (cap - 1)) {
        if (tab[i].count == 0) {
            free_slot = &tab[i];
            break;
        }
        if (memcmp(tab[i].ip, ip, 16) == 0) {
            *found = true;
            return &tab[i];
        }
    }
    *found = false;
    return free_slot;
}

/* Rebuilds the table without released entries, doubling when more than half full. */
static void ip_rehash(auth_t *a)
{
    size_t live = 0;
    for (size_t i = 0; i < a->ips_cap; i++) {
        live += a->ips[i].count != 0;
    }
    size_t cap = a->ips_cap ? a->ips_cap : 64;
    while (live * 2 >= cap) {
        cap *= 2;
    }
    ipcount_t *tab = xcalloc(cap, sizeof *tab);
    for (size_t i = 0; i < a->ips_cap; i++) {
        if (a->ips[i].count != 0) {
            bool found;
            ipcount_t *slot = ip_slot(tab, cap, a->ips[i].ip, &found);
            if (slot == NULL) {
                abort(); /* cannot happen: the new table is less than half full */
            }
            *slot = a->ips[i];
        }
    }
    free(a->ips);
    a->ips = tab;
    a->ips_cap = cap;
    a->ips_used = live;
}

bool auth_ip_acquire(auth_t *a, const uint8_t ip[16])
{
    uint32_t limit = a->cfg.max_connections_per_ip;
    if (limit == 0) {
        return true;
    }
    bool ok = true;
    pthread_mutex_lock(&a->lock);
    if (a->ips_cap == 0 || (a->ips_used + 1) * 2 > a->ips_cap) {
        ip_rehash(a);
    }
    bool found;
    ipcount_t *e = ip_slot(a->ips, a->ips_cap, ip, &found);
    if (e == NULL) {
        abort(); /* cannot happen: the rehash above keeps the table at most half full */
    }
    if (found) {
        ok = e->count < limit;
        e->count += ok;
    } else {
        memcpy(e->ip, ip, 16);
        e->count = 1;
        a->ips_used++;
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

void auth_ip_release(auth_t *a, const uint8_t ip[16])
{
    if (a->cfg.max_connections_per_ip == 0) {
        return;
    }
    pthread_mutex_lock(&a->lock);
    bool found = false;
    ipcount_t *e = a->ips_cap ? ip_slot(a->ips, a->ips_cap, ip, &found) : NULL;
    if (found && --e->count == 0) {
        /* A zero count would break the probe chains of later entries:
         * rebuild (rare: the last connection of an address closed). */
        e->count = 0;
        ip_rehash(a);
    }
    pthread_mutex_unlock(&a->lock);
}

bool auth_handshake_allowed(auth_t *a, uint64_t now_ns)
{
    uint32_t rate = a->cfg.max_handshakes_per_second;
    if (rate == 0) {
        return true;
    }
    pthread_mutex_lock(&a->lock);
    double elapsed = a->hs_last_ns ? (double)(now_ns - a->hs_last_ns) / 1e9 : 0.0;
    a->hs_last_ns = now_ns;
    a->hs_tokens += elapsed * rate;
    if (a->hs_tokens > rate) {
        a->hs_tokens = rate;
    }
    bool ok = a->hs_tokens >= 1.0;
    if (ok) {
        a->hs_tokens -= 1.0;
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

bool bucket_take(bucket_t *b, double rate, double burst, double cost, uint64_t now_ms)
{
    if (rate <= 0) {
        return true;
    }
    if (b->last_ms == 0) {
        b->tokens = burst;
    } else {
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
        if (b->tokens > burst) {
            b->tokens = burst;
        }
    }
    b->last_ms = now_ms;
    if (b->tokens < cost) {
        return false;
    }
    b->tokens -= cost;
    return true;
}
