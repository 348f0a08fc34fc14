/*
 * jwt.c - compact JWS verification (HS256, RS256, ES256) and the claims
 * wsbroker reads (see jwt.h for the contract).
 *
 * The order of checks matters: the header is parsed and its "alg" matched to
 * a configured key before any signature work, the signature is verified
 * before any claim is trusted, and only then are exp/nbf and the permission
 * arrays read. Nothing from an unverified payload reaches the caller.
 */
#include "wsb/jwt.h"

#include "wsb/topic.h"

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct wsb_jwt_keys_s {
    uint8_t *secret; /* HS256; NULL = none */
    size_t secret_len;
    EVP_PKEY *pub; /* RS256 or ES256; NULL = none */
    bool pub_is_ec;
    bool require_exp; /* a token without "exp" is refused */
};

wsb_jwt_keys_t *wsb_jwt_keys_new(void)
{
    return calloc(1, sizeof(wsb_jwt_keys_t));
}

void wsb_jwt_keys_free(wsb_jwt_keys_t *k)
{
    if (k == NULL) {
        return;
    }
    if (k->secret != NULL) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    EVP_PKEY_free(k->pub);
    free(k);
}

int wsb_jwt_keys_set_secret(wsb_jwt_keys_t *k, const void *secret, size_t len)
{
    if (len == 0) {
        return WSB_EINVAL;
    }
    uint8_t *copy = malloc(len);
    if (copy == NULL) {
        return WSB_ENOMEM;
    }
    memcpy(copy, secret, len);
    if (k->secret != NULL) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    k->secret = copy;
    k->secret_len = len;
    return 0;
}

void wsb_jwt_keys_require_exp(wsb_jwt_keys_t *k, bool on)
{
    k->require_exp = on;
}

int wsb_jwt_keys_set_public_pem(wsb_jwt_keys_t *k, const char *pem, size_t len, const char **why)
{
    if (len > INT32_MAX) {
        *why = "public key PEM too large";
        return WSB_EINVAL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        return WSB_ENOMEM;
    }
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (pkey == NULL) {
        /* Also take a certificate: operators often have one at hand. */
        (void)BIO_reset(bio);
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x != NULL) {
            pkey = X509_get_pubkey(x);
            X509_free(x);
        }
    }
    BIO_free(bio);
    if (pkey == NULL) {
        *why = "not a PEM public key (\"-----BEGIN PUBLIC KEY-----\") or certificate";
        return WSB_EINVAL;
    }
    int id = EVP_PKEY_get_base_id(pkey);
    bool ok = false;
    if (id == EVP_PKEY_RSA) {
        ok = EVP_PKEY_get_bits(pkey) >= 2048;
        *why = "an RSA key for RS256 must have at least 2048 bits";
    } else if (id == EVP_PKEY_EC) {
        char group[64] = "";
        size_t glen = 0;
        ok = EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) == 1 &&
             (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0);
        *why = "an EC key for ES256 must be on the P-256 curve";
    } else {
        *why = "the public key must be RSA (RS256) or EC P-256 (ES256)";
    }
    if (!ok) {
        EVP_PKEY_free(pkey);
        return WSB_EINVAL;
    }
    EVP_PKEY_free(k->pub);
    k->pub = pkey;
    k->pub_is_ec = id == EVP_PKEY_EC;
    return 0;
}

/* ---- base64url ---------------------------------------------------------------------------- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

long wsb_base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len % 4 == 1) {
        return -1;
    }
    size_t need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (need > cap) {
        return -1;
    }
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        return -1; /* non-canonical: leftover bits must be zero */
    }
    return (long)n;
}

/* ---- verification -------------------------------------------------------------------------- */

typedef enum { ALG_HS256, ALG_RS256, ALG_ES256 } alg_t;

static int fail(const char **why, const char *sentence)
{
    *why = sentence;
    return WSB_EINVAL;
}

static json_t *decode_json_part(const char *p, size_t len, uint8_t *buf, size_t cap)
{
    long n = wsb_base64url_decode(p, len, buf, cap);
    if (n < 0) {
        return NULL;
    }
    json_t *v = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static int header_alg(json_t *header, const wsb_jwt_keys_t *keys, alg_t *alg, const char **why)
{
    json_t *a = json_object_get(header, "alg");
    if (!json_is_string(a)) {
        return fail(why, "token header has no \"alg\"");
    }
    const char *name = json_string_value(a);
    if (strcasecmp(name, "none") == 0) {
        return fail(why, "unsigned tokens (alg \"none\") are refused");
    }
    if (json_object_get(header, "crit") != NULL) {
        return fail(why, "token header has \"crit\" extensions, which are not supported");
    }
    if (strcmp(name, "HS256") == 0) {
        if (keys->secret == NULL) {
            return fail(why, "alg HS256 is not accepted: no shared secret is configured");
        }
        *alg = ALG_HS256;
    } else if (strcmp(name, "RS256") == 0) {
        if (keys->pub == NULL || keys->pub_is_ec) {
            return fail(why, "alg RS256 is not accepted: no RSA public key is configured");
        }
        *alg = ALG_RS256;
    } else if (strcmp(name, "ES256") == 0) {
        if (keys->pub == NULL || !keys->pub_is_ec) {
            return fail(why, "alg ES256 is not accepted: no EC P-256 public key is configured");
        }
        *alg = ALG_ES256;
    } else {
        return fail(why, "unsupported alg: expected HS256, RS256 or ES256");
    }
    return 0;
}

/* ES256 signatures are raw r||s (RFC 7518 section 3.4); EVP wants DER. */
static int es256_to_der(const uint8_t *sig, size_t len, uint8_t **der, int *der_len)
{
    if (len != 64) {
        return -1;
    }
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL);
    BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        ECDSA_SIG_free(es);
        BN_free(r);
        BN_free(s);
        return -1;
    }
    *der = NULL;
    *der_len = i2d_ECDSA_SIG(es, der);
    ECDSA_SIG_free(es);
    return *der_len > 0 ? 0 : -1;
}

static bool verify_signature(const wsb_jwt_keys_t *keys, alg_t alg, const char *input,
                             size_t input_len, const uint8_t *sig, size_t sig_len)
{
    if (alg == ALG_HS256) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        if (keys->secret_len > INT32_MAX ||
            HMAC(EVP_sha256(), keys->secret, (int)keys->secret_len, (const uint8_t *)input,
                 input_len, mac, &mac_len) == NULL) {
            return false;
        }
        return sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
    }
    uint8_t *der = NULL;
    int der_len = 0;
    if (alg == ALG_ES256) {
        if (es256_to_der(sig, sig_len, &der, &der_len) != 0) {
            return false;
        }
        sig = der;
        sig_len = (size_t)der_len;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, keys->pub) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, (const uint8_t *)input, input_len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

/* Reads the NumericDate claim `name` (RFC 7519 section 2: seconds since the
 * epoch, possibly non-integer). Accepted: a JSON number from 0 to
 * WSB_JWT_MAX_TIME; a fraction is rounded toward the safe side (down for
 * "exp", up for "nbf": `round_up`), so a token is never valid longer than it
 * says. Anything else (a string, a negative or huge number) is malformed:
 * the comparisons that follow then never leave the int64 range. 0, or -1. */
static int read_time(json_t *claims, const char *name, bool round_up, bool *has, int64_t *out)
{
    json_t *v = json_object_get(claims, name);
    *has = v != NULL;
    if (v == NULL) {
        return 0;
    }
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > WSB_JWT_MAX_TIME) {
            return -1;
        }
        *out = (int64_t)i;
        return 0;
    }
    /* jansson never yields NaN or an infinity; the range test comes before
     * the conversion, which is undefined for values an int64 cannot hold. */
    if (json_is_real(v) && json_real_value(v) >= 0.0 &&
        json_real_value(v) <= (double)WSB_JWT_MAX_TIME) {
        double d = json_real_value(v);
        int64_t whole = (int64_t)d; /* toward zero, which is down here */
        *out = round_up && (double)whole < d ? whole + 1 : whole;
        return 0;
    }
    return -1;
}

/* Checks a pattern array claim; counts its patterns into *n and the bytes
 * their copies need (with NULs) into *bytes. 0, or -1 when it is malformed. */
static int check_patterns(json_t *claims, const char *name, size_t *n, size_t *bytes)
{
    *n = 0;
    json_t *arr = json_object_get(claims, name);
    if (arr == NULL) {
        return 0;
    }
    if (!json_is_array(arr) || json_array_size(arr) > WSB_JWT_MAX_PATTERNS) {
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) || wsb_topic_check(json_string_value(v), json_string_length(v),
                                                  WSB_TOPIC_PATTERN, NULL) != 0) {
            return -1;
        }
        *bytes += json_string_length(v) + 1;
    }
    *n = json_array_size(arr);
    return 0;
}

/* Copies `len` bytes and a NUL to *at, advancing it; returns the slice. */
static wsb_str_t copy_str(char **at, const char *p, size_t len)
{
    char *dst = *at;
    memcpy(dst, p, len);
    dst[len] = '\0';
    *at += len + 1;
    return (wsb_str_t){dst, len};
}

static void copy_patterns(json_t *claims, const char *name, wsb_str_t *out, char **at)
{
    json_t *arr = json_object_get(claims, name);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        out[i] = copy_str(at, json_string_value(v), json_string_length(v));
    }
}

static int read_claims(json_t *claims, int64_t now, int64_t leeway, bool require_exp,
                       wsb_jwt_claims_t *out, const char **why)
{
    bool has_nbf = false;
    int64_t nbf = 0;
    if (read_time(claims, "exp", false, &out->has_exp, &out->exp) != 0 ||
        read_time(claims, "nbf", true, &has_nbf, &nbf) != 0) {
        return fail(why, "\"exp\" and \"nbf\" must be numbers of seconds since the epoch from 0 "
                         "to 253402300799 (year 9999)");
    }
    if (!out->has_exp && require_exp) {
        return fail(why, "token has no \"exp\" and this broker requires one");
    }
    /* exp and nbf are within 0..WSB_JWT_MAX_TIME and the leeway is clamped
     * to that range too: no sum or difference below can overflow, whatever
     * `now` is. */
    if (leeway < 0) {
        leeway = 0;
    } else if (leeway > WSB_JWT_MAX_TIME) {
        leeway = WSB_JWT_MAX_TIME;
    }
    if (out->has_exp && now > out->exp + leeway) {
        return fail(why, "token expired");
    }
    if (has_nbf && nbf - leeway > now) {
        return fail(why, "token not valid yet (nbf)");
    }
    json_t *admin = json_object_get(claims, "admin");
    if (admin != NULL && !json_is_boolean(admin)) {
        return fail(why, "\"admin\" must be true or false");
    }
    out->admin = json_is_true(admin);
    json_t *sub = json_object_get(claims, "sub");
    size_t bytes = 0;
    if (sub != NULL) {
        if (!json_is_string(sub) || json_string_length(sub) == 0 ||
            json_string_length(sub) > WSB_JWT_MAX_SUB) {
            return fail(why, "\"sub\" must be a string of 1 to 128 bytes");
        }
        bytes += json_string_length(sub) + 1;
    }
    if (check_patterns(claims, "subscribe", &out->nsubscribe, &bytes) != 0 ||
        check_patterns(claims, "publish", &out->npublish, &bytes) != 0) {
        return fail(why, "\"subscribe\" and \"publish\" must be arrays of at most 64 valid "
                         "topic patterns");
    }
    /* One block: both slice arrays, then the strings they point to. */
    size_t nslices = out->nsubscribe + out->npublish;
    if (nslices == 0 && bytes == 0) {
        return 0;
    }
    wsb_str_t *slices = malloc(nslices * sizeof(wsb_str_t) + bytes);
    if (slices == NULL) {
        *why = "out of memory";
        return WSB_ENOMEM;
    }
    char *at = (char *)(slices + nslices);
    if (sub != NULL) {
        out->sub = copy_str(&at, json_string_value(sub), json_string_length(sub));
    }
    copy_patterns(claims, "subscribe", slices, &at);
    copy_patterns(claims, "publish", slices + out->nsubscribe, &at);
    out->subscribe = out->nsubscribe > 0 ? slices : NULL;
    out->publish = out->npublish > 0 ? slices + out->nsubscribe : NULL;
    out->mem = slices;
    return 0;
}

int wsb_jwt_verify(const wsb_jwt_keys_t *keys, const char *token, size_t len, int64_t now,
                   int64_t leeway, wsb_jwt_claims_t *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (token == NULL || len == 0) {
        return fail(why, "empty token");
    }
    if (len > WSB_JWT_MAX_LEN) {
        return fail(why, "token longer than 8192 bytes");
    }
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        return fail(why, "malformed token: expected three base64url parts separated by '.'");
    }
    size_t hlen = (size_t)(dot1 - token);
    size_t plen = (size_t)(dot2 - dot1 - 1);
    size_t slen = len - (size_t)(dot2 + 1 - token);
    uint8_t *buf = malloc(len); /* decoded parts are shorter than the token */
    if (buf == NULL) {
        *why = "out of memory";
        return WSB_ENOMEM;
    }
    json_t *header = decode_json_part(token, hlen, buf, len);
    json_t *claims = NULL;
    alg_t alg = ALG_HS256;
    int rc;
    if (header == NULL) {
        rc = fail(why, "malformed token: the header is not base64url-encoded JSON object");
        goto done;
    }
    rc = header_alg(header, keys, &alg, why);
    if (rc != 0) {
        goto done;
    }
    long sig_len = wsb_base64url_decode(dot2 + 1, slen, buf, len);
    if (sig_len < 0) {
        rc = fail(why, "malformed token: the signature is not base64url");
        goto done;
    }
    if (!verify_signature(keys, alg, token, (size_t)(dot2 - token), buf, (size_t)sig_len)) {
        rc = fail(why, "bad token signature");
        goto done;
    }
    claims = decode_json_part(dot1 + 1, plen, buf, len);
    if (claims == NULL) {
        rc = fail(why, "malformed token: the payload is not base64url-encoded JSON object");
        goto done;
    }
    rc = read_claims(claims, now, leeway, keys->require_exp, out, why);
    if (rc != 0) {
        memset(out, 0, sizeof *out); /* read_claims allocates nothing when it fails */
    }
done:
    json_decref(header);
    json_decref(claims);
    free(buf);
    return rc;
}

void wsb_jwt_claims_free(wsb_jwt_claims_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->mem);
    memset(c, 0, sizeof *c);
}

bool wsb_jwt_patterns_cover(const wsb_str_t *allowed, size_t n, wsb_str_t pattern)
{
    for (size_t i = 0; i < n; i++) {
        if (wsb_topic_covers(allowed[i].p, allowed[i].len, pattern.p, pattern.len)) {
            return true;
        }
    }
    return false;
}
