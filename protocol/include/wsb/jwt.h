/*
 * jwt.h - JSON Web Token (RFC 7519) verification for broker credentials: a
 * compact JWS (RFC 7515) signed with HS256, RS256 or ES256, carrying the
 * claims wsbroker uses.
 *
 * No I/O, no clock: the caller passes the current time. Signatures are
 * checked with OpenSSL's EVP API (HMAC compared in constant time).
 *
 * Refused, each with its own sentence in *why: more or fewer than three
 * parts, bad base64url, a header or payload that is not a JSON object
 * (duplicate member names included), "alg" other than HS256/RS256/ES256
 * ("none" in any case included), an algorithm the configured keys cannot
 * verify (algorithm confusion: HS256 is only ever checked against the shared
 * secret, never against a public key's bytes; RS256 only with an RSA key,
 * ES256 only with a P-256 key), a "crit" header, a bad signature, "exp" in
 * the past or "nbf" in the future (beyond the leeway), an "exp" / "nbf" that
 * is not a number from 0 to WSB_JWT_MAX_TIME (a fraction is allowed, as RFC
 * 7519 says, and rounded so that the token is valid the shorter time), a
 * missing "exp" when wsb_jwt_keys_require_exp() is on, a "sub" that is not a string of 1..128
 * bytes, and "subscribe" / "publish" that are not arrays of valid topic patterns (at most
 * WSB_JWT_MAX_PATTERNS each). The token is at most WSB_JWT_MAX_LEN bytes.
 *
 * Ownership: wsb_jwt_keys_new() -> wsb_jwt_keys_free(); a verified token's
 * claims (wsb_jwt_claims_t) own a jansson tree released by
 * wsb_jwt_claims_free(); the pattern slices borrow from it.
 */
#ifndef WSB_JWT_H
#define WSB_JWT_H

#include "wsb/common.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSB_JWT_MAX_LEN      8192
#define WSB_JWT_MAX_PATTERNS 64
#define WSB_JWT_MAX_SUB      128
/* The latest "exp" / "nbf" accepted: 9999-12-31T23:59:59Z. Later values (or
 * negative ones) are malformed, which also keeps every time comparison far
 * from int64 overflow. */
#define WSB_JWT_MAX_TIME INT64_C(253402300799)

typedef struct wsb_jwt_keys_s wsb_jwt_keys_t;

/* An empty key set (verifies nothing). NULL on OOM. */
wsb_jwt_keys_t *wsb_jwt_keys_new(void);
void wsb_jwt_keys_free(wsb_jwt_keys_t *k); /* NULL-safe */

/* Sets the HS256 shared secret (copied; at least 1 byte). 0 or WSB_EINVAL / WSB_ENOMEM. */
int wsb_jwt_keys_set_secret(wsb_jwt_keys_t *k, const void *secret, size_t len);

/* With `on`, a token without an "exp" claim is refused ("token has no
 * \"exp\""); off (the default), such a token never expires. */
void wsb_jwt_keys_require_exp(wsb_jwt_keys_t *k, bool on);

/* Sets the public key for RS256 (an RSA key of at least 2048 bits) or ES256
 * (an EC P-256 key) from PEM text (SubjectPublicKeyInfo "PUBLIC KEY", or an
 * X.509 certificate). 0, or WSB_EINVAL with *why naming the problem. */
int wsb_jwt_keys_set_public_pem(wsb_jwt_keys_t *k, const char *pem, size_t len, const char **why);

/* The claims wsbroker uses. Everything lives in one heap block sized to the
 * token (the slice arrays, then the strings, NUL-terminated), so a
 * connection holding claims pays for its patterns only, and the decoded
 * JSON payload is released before wsb_jwt_verify() returns. */
typedef struct {
    wsb_str_t sub; /* empty when absent */
    bool has_exp;
    int64_t exp;                /* seconds since the epoch, 0..WSB_JWT_MAX_TIME */
    size_t nsubscribe;          /* patterns the holder may subscribe to */
    const wsb_str_t *subscribe; /* nsubscribe slices (NULL when 0) */
    size_t npublish;            /* patterns the holder may publish to */
    const wsb_str_t *publish;   /* npublish slices (NULL when 0) */
    bool admin;                 /* "admin": true: the admin API (PROTOCOL.md 16) */
    void *mem;                  /* private: the block the above point into */
} wsb_jwt_claims_t;

/*
 * Verifies `token` (`len` bytes, no surrounding white space) with `keys` at
 * time `now` (seconds since the epoch), allowing `leeway` seconds of clock
 * skew on exp and nbf. Returns 0 and fills *out (release with
 * wsb_jwt_claims_free), WSB_EINVAL with *why (a static sentence; *out needs
 * no free), or WSB_ENOMEM (*why "out of memory").
 */
int wsb_jwt_verify(const wsb_jwt_keys_t *keys, const char *token, size_t len, int64_t now,
                   int64_t leeway, wsb_jwt_claims_t *out, const char **why);

void wsb_jwt_claims_free(wsb_jwt_claims_t *c); /* NULL-safe; zeroes *c */

/* True if some pattern of `allowed` covers `pattern` (wsb_topic_covers). */
bool wsb_jwt_patterns_cover(const wsb_str_t *allowed, size_t n, wsb_str_t pattern);

/* Decodes base64url without padding (RFC 4648 section 5; '=' is refused).
 * Returns the decoded length, or -1 for a bad character, an impossible
 * length, non-zero trailing bits, or `cap` too small. Exposed for tests. */
long wsb_base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap);

#endif
