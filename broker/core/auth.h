/*
 * auth.h - who may connect and what a connection may do: JWT keys, the
 * permissions of anonymous clients, the Origin allowlist, and the process-wide
 * admission limits (connections per IP address, WebSocket handshakes per
 * second). See SECURITY.md for the policy these implement.
 *
 * One auth_t per process, built by broker_init() from the configuration and
 * read by every worker; the admission counters are behind one mutex (taken
 * once per accepted connection and once per handshake, never per message).
 */
#ifndef WSB_BROKER_AUTH_H
#define WSB_BROKER_AUTH_H

#include "core/apikey.h"
#include "wsb/common.h"
#include "wsb/jwt.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a connection may subscribe and publish to: patterns borrowed from the
 * configuration (anonymous) or from a verified token's claims. */
typedef struct perms_s {
    const wsb_str_t *subscribe;
    size_t nsubscribe;
    const wsb_str_t *publish;
    size_t npublish;
} perms_t;

/* What auth needs of the configuration (app/config.h fills it from
 * config_t: config_auth()). Strings are borrowed for the auth_t's life. */
typedef struct auth_config_s {
    const char *jwt_secret;          /* HS256 secret; "" = off */
    const char *jwt_public_key;      /* PEM path for RS256/ES256; "" = off */
    bool require_exp;                /* a JWT without exp is refused */
    uint64_t leeway_ms;              /* clock skew on exp/nbf */
    const char *anonymous_subscribe; /* comma-separated patterns */
    const char *anonymous_publish;
    uint32_t max_connections_per_ip;    /* 0 = off */
    uint32_t max_handshakes_per_second; /* 0 = off */
    const char *allowed_origins;        /* comma-separated; "" = any */
    bool allow_missing_origin;
    const apikey_t *apikeys; /* the API keys (apikey.h); NULL when none */
    size_t napikeys;
    const apikey_t *adminkeys; /* admin_keys (the admin API); NULL when none */
    size_t nadminkeys;
} auth_config_t;

typedef struct auth_s {
    auth_config_t cfg;
    bool ready;          /* auth_init ran: auth_free releases */
    wsb_jwt_keys_t *jwt; /* NULL: no JWT key configured, every token is refused */
    wsb_str_t *anon_sub; /* into cfg strings */
    size_t nanon_sub;
    wsb_str_t *anon_pub;
    size_t nanon_pub;
    perms_t anonymous;

    pthread_mutex_t lock;  /* guards what follows */
    struct ipcount_s *ips; /* open addressing, by IP address */
    size_t ips_cap;
    size_t ips_used;
    double hs_tokens; /* handshake token bucket */
    uint64_t hs_last_ns;
    /* Per-user limits (user_limits.h), NULL unless max_connections_per_user
     * or rate.per = "user" is set; the broker creates and frees it. Locks of
     * its own. */
    struct user_limits_s *users;
    /* Users banned through POST /api/disconnect (admin_ban.h); created by
     * auth_init, locks of its own. */
    struct admin_ban_s *bans;
} auth_t;

/* Loads keys (auth.jwt_public_key is read here). 0, or -1 with `err` set. */
int auth_init(auth_t *a, const auth_config_t *cfg, char *err, size_t errlen);
void auth_free(auth_t *a);

/* Verifies a token now (wall clock) with the configured keys and leeway.
 * Returns 0 and fills *out (release with wsb_jwt_claims_free); WSB_EINVAL
 * with *why (a static sentence; *out zeroed or needing no free) when no JWT
 * key is configured or the token is bad or expired (auth_why_expired); or
 * WSB_ENOMEM (*why "out of memory"). */
int auth_verify(const auth_t *a, const char *token, size_t len, wsb_jwt_claims_t *out,
                const char **why);

/* True when auth_verify()'s `why` says the token expired (not a bad token:
 * the client may fetch a fresh one). */
bool auth_why_expired(const char *why);

/* True if `origin` may open a WebSocket (allowed_origins, allow_missing_origin);
 * a missing header is {NULL, 0}. */
bool auth_origin_ok(const auth_config_t *cfg, wsb_str_t origin);

/* True if the permissions allow subscribing to / publishing on `pattern`. */
bool perms_may_subscribe(const perms_t *p, wsb_str_t pattern);
bool perms_may_publish(const perms_t *p, wsb_str_t topic);

/* Counts a connection from `ip` (16 bytes: IPv6 or IPv4-mapped). Returns
 * false when max_connections_per_ip is reached (nothing is counted then). */
bool auth_ip_acquire(auth_t *a, const uint8_t ip[16]);
void auth_ip_release(auth_t *a, const uint8_t ip[16]);

/* Takes a WebSocket handshake from the process-wide budget
 * (max_handshakes_per_second); false when it is spent. */
bool auth_handshake_allowed(auth_t *a, uint64_t now_ns);

/* A token bucket (per connection, single-threaded). */
typedef struct {
    double tokens;
    uint64_t last_ms;
} bucket_t;

/* Refills at `rate` per second up to `burst`, then takes `cost`; false (and
 * nothing taken) when there is not enough. rate == 0: always true. */
bool bucket_take(bucket_t *b, double rate, double burst, double cost, uint64_t now_ms);

#endif
