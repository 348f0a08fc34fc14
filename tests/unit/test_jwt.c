/* test_jwt.c - JWT verification: the RFC 7515 HS256 example, tokens signed
 * here with keys generated here (HS256, RS256, ES256), and every refusal. */
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs these first, in this order. */
// clang-format off
#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "wsb/common.h"
#include "wsb/jwt.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000

static const char *const SECRET = "test-secret-0123456789";

static void b64url(const uint8_t *in, size_t len, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = tbl[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        out[o++] = tbl[(acc << (6 - bits)) & 63];
    }
    out[o] = '\0';
}

/* Builds header.payload and signs it: "HS256" with SECRET, "RS256"/"ES256"
 * with `key`, anything else with no signature. */
static char *make_token(const char *header, const char *payload, const char *alg, EVP_PKEY *key)
{
    char *tok = malloc(8192);
    char h[2048], p[4096];
    b64url((const uint8_t *)header, strlen(header), h);
    b64url((const uint8_t *)payload, strlen(payload), p);
    (void)snprintf(tok, 8192, "%s.%s", h, p);
    uint8_t sig[1024];
    size_t sig_len = 0;
    if (strcmp(alg, "HS256") == 0) {
        unsigned n = 0;
        HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const uint8_t *)tok, strlen(tok), sig, &n);
        sig_len = n;
    } else if (key != NULL) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t der[1024];
        size_t der_len = sizeof der;
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(ctx, der, &der_len, (const uint8_t *)tok, strlen(tok)), 1);
        EVP_MD_CTX_free(ctx);
        if (strcmp(alg, "ES256") == 0) {
            const uint8_t *q = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)der_len);
            assert_non_null(es);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            sig_len = 64;
        } else {
            memcpy(sig, der, der_len);
            sig_len = der_len;
        }
    }
    char s[2048];
    b64url(sig, sig_len, s);
    size_t used = strlen(tok);
    (void)snprintf(tok + used, 8192 - used, ".%s", s);
    return tok;
}

static char *pub_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *copy = calloc(1, (size_t)n + 1);
    memcpy(copy, data, (size_t)n);
    BIO_free(bio);
    return copy;
}

static EVP_PKEY *rsa_key, *ec_key;
static wsb_jwt_keys_t *hs_keys, *rs_keys, *es_keys;

static int setup(void **state)
{
    (void)state;
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    hs_keys = wsb_jwt_keys_new();
    rs_keys = wsb_jwt_keys_new();
    es_keys = wsb_jwt_keys_new();
    const char *why = NULL;
    if (wsb_jwt_keys_set_secret(hs_keys, SECRET, strlen(SECRET)) != 0) {
        return -1;
    }
    char *pem = pub_pem(rsa_key);
    int rc = wsb_jwt_keys_set_public_pem(rs_keys, pem, strlen(pem), &why);
    free(pem);
    pem = pub_pem(ec_key);
    rc |= wsb_jwt_keys_set_public_pem(es_keys, pem, strlen(pem), &why);
    free(pem);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    wsb_jwt_keys_free(hs_keys);
    wsb_jwt_keys_free(rs_keys);
    wsb_jwt_keys_free(es_keys);
    return 0;
}

static int verify(const wsb_jwt_keys_t *k, const char *tok, wsb_jwt_claims_t *c, const char **why)
{
    /* An exact-size heap copy: ASan sees any read past the token. */
    size_t len = strlen(tok);
    char *copy = malloc(len);
    assert_non_null(copy);
    /* No NUL on purpose: the verifier must stay within `len`. */
    memcpy(copy, tok, len); // NOLINT(bugprone-not-null-terminated-result)
    int rc = wsb_jwt_verify(k, copy, len, NOW, 30, c, why);
    free(copy);
    return rc;
}

static void expect_refused(const wsb_jwt_keys_t *k, const char *tok, const char *why_part)
{
    wsb_jwt_claims_t c;
    const char *why = NULL;
    int rc = verify(k, tok, &c, &why);
    if (rc != WSB_EINVAL || why == NULL || strstr(why, why_part) == NULL) {
        fail_msg("token %.60s...: rc=%d why=%s, expected \"%s\"", tok, rc, why ? why : "-",
                 why_part);
    }
}

static void test_rfc7515_hs256(void **state)
{
    (void)state;
    static const char tok[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    static const char k64[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    uint8_t key[64];
    long n = wsb_base64url_decode(k64, strlen(k64), key, sizeof key);
    assert_int_equal(n, 64);
    wsb_jwt_keys_t *k = wsb_jwt_keys_new();
    assert_int_equal(wsb_jwt_keys_set_secret(k, key, (size_t)n), 0);
    wsb_jwt_claims_t c;
    const char *why = NULL;
    assert_int_equal(wsb_jwt_verify(k, tok, strlen(tok), 1300819000, 0, &c, &why), 0);
    assert_true(c.has_exp);
    assert_int_equal(c.exp, 1300819380);
    wsb_jwt_claims_free(&c);
    /* The same token after exp. */
    assert_int_equal(wsb_jwt_verify(k, tok, strlen(tok), 1300819381, 0, &c, &why), WSB_EINVAL);
    assert_string_equal(why, "token expired");
    wsb_jwt_keys_free(k);
}

static const char CLAIMS[] = "{\"sub\":\"alice\",\"exp\":1700000600,"
                             "\"subscribe\":[\"chat.room1\",\"news.>\"],\"publish\":[\"chat.*\"]}";

static void check_claims(const wsb_jwt_claims_t *c)
{
    assert_int_equal(c->sub.len, 5);
    assert_memory_equal(c->sub.p, "alice", 5);
    assert_int_equal(c->nsubscribe, 2);
    assert_int_equal(c->npublish, 1);
    assert_true(wsb_jwt_patterns_cover(c->subscribe, c->nsubscribe, WSB_STR_LIT("chat.room1")));
    assert_false(wsb_jwt_patterns_cover(c->subscribe, c->nsubscribe, WSB_STR_LIT("chat.*")));
    assert_true(wsb_jwt_patterns_cover(c->subscribe, c->nsubscribe, WSB_STR_LIT("news.a.*")));
    assert_true(wsb_jwt_patterns_cover(c->publish, c->npublish, WSB_STR_LIT("chat.x")));
}

static void test_algorithms_accept(void **state)
{
    (void)state;
    struct {
        const char *alg;
        EVP_PKEY *key;
        wsb_jwt_keys_t **keys;
    } cases[] = {
        {"HS256", NULL, &hs_keys}, {"RS256", rsa_key, &rs_keys}, {"ES256", ec_key, &es_keys}};
    for (size_t i = 0; i < 3; i++) {
        char header[64];
        (void)snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", cases[i].alg);
        char *tok = make_token(header, CLAIMS, cases[i].alg, cases[i].key);
        wsb_jwt_claims_t c;
        const char *why = NULL;
        if (verify(*cases[i].keys, tok, &c, &why) != 0) {
            fail_msg("%s refused: %s", cases[i].alg, why);
        }
        check_claims(&c);
        wsb_jwt_claims_free(&c);
        free(tok);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    char *tok;
    /* bad signature: signed with another key / tampered payload */
    tok = make_token("{\"alg\":\"HS256\"}", CLAIMS, "HS256", NULL);
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    expect_refused(hs_keys, tok, "signature");
    free(tok);
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    tok = make_token("{\"alg\":\"ES256\"}", CLAIMS, "ES256", other);
    expect_refused(es_keys, tok, "bad token signature");
    free(tok);
    EVP_PKEY_free(other);
    /* expired, beyond the 30 s leeway; inside it is fine */
    tok = make_token("{\"alg\":\"HS256\"}", "{\"exp\":1699999960}", "HS256", NULL);
    expect_refused(hs_keys, tok, "expired");
    free(tok);
    tok = make_token("{\"alg\":\"HS256\"}", "{\"exp\":1699999980}", "HS256", NULL);
    wsb_jwt_claims_t c;
    const char *why = NULL;
    assert_int_equal(verify(hs_keys, tok, &c, &why), 0);
    wsb_jwt_claims_free(&c);
    free(tok);
    tok = make_token("{\"alg\":\"HS256\"}", "{\"nbf\":1700000100}", "HS256", NULL);
    expect_refused(hs_keys, tok, "nbf");
    free(tok);
    /* alg none, in any spelling, with or without a signature */
    tok = make_token("{\"alg\":\"none\"}", CLAIMS, "none", NULL);
    expect_refused(hs_keys, tok, "none");
    free(tok);
    tok = make_token("{\"alg\":\"NoNe\"}", CLAIMS, "none", NULL);
    expect_refused(hs_keys, tok, "none");
    free(tok);
    /* wrong / unknown alg */
    tok = make_token("{\"alg\":\"HS512\"}", CLAIMS, "HS256", NULL);
    expect_refused(hs_keys, tok, "unsupported alg");
    free(tok);
    tok = make_token("{}", CLAIMS, "HS256", NULL);
    expect_refused(hs_keys, tok, "no \"alg\"");
    free(tok);
    /* algorithm confusion: HS256 signed with the RSA public key's PEM as the
     * secret must not verify against a broker holding that public key */
    char *pem = pub_pem(rsa_key);
    char *h = make_token("{\"alg\":\"HS256\"}", CLAIMS, "none", NULL);
    *strrchr(h, '.') = '\0';
    uint8_t mac[32];
    unsigned mlen = 0;
    HMAC(EVP_sha256(), pem, (int)strlen(pem), (const uint8_t *)h, strlen(h), mac, &mlen);
    char s[64];
    char conf[8192];
    b64url(mac, mlen, s);
    (void)snprintf(conf, sizeof conf, "%s.%s", h, s);
    expect_refused(rs_keys, conf, "no shared secret");
    free(h);
    free(pem);
    /* RS256 token presented to an ES256-only broker and vice versa */
    tok = make_token("{\"alg\":\"RS256\"}", CLAIMS, "RS256", rsa_key);
    expect_refused(es_keys, tok, "no RSA public key");
    free(tok);
    tok = make_token("{\"alg\":\"ES256\"}", CLAIMS, "ES256", ec_key);
    expect_refused(rs_keys, tok, "no EC P-256");
    free(tok);
    /* crit */
    tok = make_token("{\"alg\":\"HS256\",\"crit\":[\"x\"]}", CLAIMS, "HS256", NULL);
    expect_refused(hs_keys, tok, "crit");
    free(tok);
    /* claims of the wrong shape */
    tok = make_token("{\"alg\":\"HS256\"}", "{\"subscribe\":\"chat.>\"}", "HS256", NULL);
    expect_refused(hs_keys, tok, "arrays");
    free(tok);
    tok = make_token("{\"alg\":\"HS256\"}", "{\"publish\":[\"a..b\"]}", "HS256", NULL);
    expect_refused(hs_keys, tok, "arrays");
    free(tok);
    tok = make_token("{\"alg\":\"HS256\"}", "{\"sub\":42}", "HS256", NULL);
    expect_refused(hs_keys, tok, "\"sub\"");
    free(tok);
    tok = make_token("{\"alg\":\"HS256\"}", "{\"exp\":\"soon\"}", "HS256", NULL);
    expect_refused(hs_keys, tok, "numbers of seconds");
    free(tok);
    tok = make_token("{\"alg\":\"HS256\"}", "[1]", "HS256", NULL);
    expect_refused(hs_keys, tok, "payload");
    free(tok);
    tok = make_token("{\"alg\":\"HS256\",\"alg\":\"none\"}", CLAIMS, "HS256", NULL);
    expect_refused(hs_keys, tok, "header");
    free(tok);
}

/* exp / nbf: only numbers from 0 to year 9999, compared without overflow
 * (a validly signed "exp": INT64_MIN used to make `now - exp` wrap and the
 * token never expire); fractions rounded so the token is valid the shorter
 * time. */
static void test_time_claims(void **state)
{
    (void)state;
    static const char *const malformed[] = {
        "{\"exp\":-9223372036854775808}",
        "{\"exp\":9223372036854775807}",
        "{\"exp\":-1}",
        "{\"exp\":253402300800}",
        "{\"exp\":1e300}",
        "{\"exp\":-1e300}",
        "{\"exp\":9.3e18}",
        "{\"exp\":-0.5}",
        "{\"exp\":253402300799.5}",
        "{\"exp\":\"1700000600\"}",
        "{\"exp\":true}",
        "{\"exp\":null}",
        "{\"exp\":[1700000600]}",
        "{\"nbf\":-9223372036854775808}",
        "{\"nbf\":9223372036854775807}",
        "{\"nbf\":-1e300}",
        "{\"nbf\":\"0\"}",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        char *tok = make_token("{\"alg\":\"HS256\"}", malformed[i], "HS256", NULL);
        expect_refused(hs_keys, tok, "year 9999");
        free(tok);
    }
    struct {
        const char *claims;
        int64_t exp; /* expected; -1: no exp */
    } accepted[] = {
        {"{\"exp\":253402300799}", 253402300799},
        {"{\"exp\":253402300799.0}", 253402300799},
        {"{\"exp\":1700000600.9}", 1700000600},
        {"{\"exp\":1699999970}", 1699999970},
        {"{\"nbf\":0,\"exp\":1700000600}", 1700000600},
        {"{\"nbf\":1700000030}", -1},
        {"{\"nbf\":1700000029.5}", -1},
        {"{\"nbf\":-0.0}", -1},
    };
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        char *tok = make_token("{\"alg\":\"HS256\"}", accepted[i].claims, "HS256", NULL);
        wsb_jwt_claims_t c;
        const char *why = NULL;
        if (verify(hs_keys, tok, &c, &why) != 0) {
            fail_msg("%s refused: %s", accepted[i].claims, why);
        }
        assert_int_equal(c.has_exp, accepted[i].exp >= 0);
        if (accepted[i].exp >= 0) {
            assert_int_equal(c.exp, accepted[i].exp);
        }
        wsb_jwt_claims_free(&c);
        free(tok);
    }
    /* NOW is 1700000000 and the leeway 30 s: a fractional exp is rounded
     * down and a fractional nbf up, never in the token's favour. */
    char *tok = make_token("{\"alg\":\"HS256\"}", "{\"exp\":1699999969.9}", "HS256", NULL);
    expect_refused(hs_keys, tok, "expired");
    free(tok);
    tok = make_token("{\"alg\":\"HS256\"}", "{\"nbf\":1700000030.1}", "HS256", NULL);
    expect_refused(hs_keys, tok, "nbf");
    free(tok);
    /* Extreme clocks and leeways do not overflow either. */
    tok = make_token("{\"alg\":\"HS256\"}", "{\"exp\":253402300799}", "HS256", NULL);
    wsb_jwt_claims_t c;
    const char *why = NULL;
    assert_int_equal(wsb_jwt_verify(hs_keys, tok, strlen(tok), INT64_MIN, INT64_MAX, &c, &why), 0);
    wsb_jwt_claims_free(&c);
    assert_int_equal(wsb_jwt_verify(hs_keys, tok, strlen(tok), INT64_MIN, INT64_MIN, &c, &why), 0);
    wsb_jwt_claims_free(&c);
    const int64_t leeways[] = {INT64_MIN, -1, 0, INT64_MAX};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(wsb_jwt_verify(hs_keys, tok, strlen(tok), INT64_MAX, leeways[i], &c, &why),
                         WSB_EINVAL);
        assert_string_equal(why, "token expired");
    }
    free(tok);
    tok = make_token("{\"alg\":\"HS256\"}", "{\"nbf\":253402300799}", "HS256", NULL);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(wsb_jwt_verify(hs_keys, tok, strlen(tok), INT64_MIN, leeways[i], &c, &why),
                         WSB_EINVAL);
        assert_string_equal(why, "token not valid yet (nbf)");
    }
    assert_int_equal(wsb_jwt_verify(hs_keys, tok, strlen(tok), INT64_MAX, 0, &c, &why), 0);
    wsb_jwt_claims_free(&c);
    free(tok);
}

/* Without "exp" a token never expires unless the verifier requires one. */
static void test_require_exp(void **state)
{
    (void)state;
    char *no_exp = make_token("{\"alg\":\"HS256\"}", "{\"sub\":\"alice\"}", "HS256", NULL);
    char *with_exp = make_token("{\"alg\":\"HS256\"}", CLAIMS, "HS256", NULL);
    wsb_jwt_claims_t c;
    const char *why = NULL;
    assert_int_equal(verify(hs_keys, no_exp, &c, &why), 0);
    assert_false(c.has_exp);
    wsb_jwt_claims_free(&c);
    wsb_jwt_keys_require_exp(hs_keys, true);
    expect_refused(hs_keys, no_exp, "token has no \"exp\"");
    assert_int_equal(verify(hs_keys, with_exp, &c, &why), 0);
    assert_true(c.has_exp);
    wsb_jwt_claims_free(&c);
    wsb_jwt_keys_require_exp(hs_keys, false);
    assert_int_equal(verify(hs_keys, no_exp, &c, &why), 0);
    wsb_jwt_claims_free(&c);
    free(no_exp);
    free(with_exp);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "...",
        "eyJhbGciOiJIUzI1NiJ9..",
        "!!!.e30.",
        "eyJhbGciOiJIUzI1NiJ9.e30.a",
        "eyJhbGciOiJIUzI1NiJ9=.e30.",
        "e30.e30.",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wsb_jwt_claims_t c;
        const char *why = NULL;
        int rc = wsb_jwt_verify(hs_keys, bad[i], strlen(bad[i]), NOW, 30, &c, &why);
        if (rc != WSB_EINVAL || why == NULL) {
            fail_msg("\"%s\" not refused (rc=%d)", bad[i], rc);
        }
    }
    char big[WSB_JWT_MAX_LEN + 2];
    memset(big, 'a', sizeof big);
    wsb_jwt_claims_t c;
    const char *why = NULL;
    assert_int_equal(wsb_jwt_verify(hs_keys, big, sizeof big, NOW, 30, &c, &why), WSB_EINVAL);
    /* An empty key set verifies nothing. */
    wsb_jwt_keys_t *none = wsb_jwt_keys_new();
    char *tok = make_token("{\"alg\":\"HS256\"}", CLAIMS, "HS256", NULL);
    expect_refused(none, tok, "no shared secret");
    free(tok);
    wsb_jwt_keys_free(none);
    /* Key loading refuses junk and small RSA keys. */
    wsb_jwt_keys_t *k = wsb_jwt_keys_new();
    assert_int_equal(wsb_jwt_keys_set_public_pem(k, "junk", 4, &why), WSB_EINVAL);
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    char *pem = pub_pem(small);
    assert_int_equal(wsb_jwt_keys_set_public_pem(k, pem, strlen(pem), &why), WSB_EINVAL);
    free(pem);
    EVP_PKEY_free(small);
    wsb_jwt_keys_free(k);
}

static void test_base64url(void **state)
{
    (void)state;
    uint8_t out[16];
    assert_int_equal(wsb_base64url_decode("", 0, out, sizeof out), 0);
    assert_int_equal(wsb_base64url_decode("YQ", 2, out, sizeof out), 1);
    assert_int_equal(out[0], 'a');
    assert_int_equal(wsb_base64url_decode("YR", 2, out, sizeof out), -1); /* trailing bits */
    assert_int_equal(wsb_base64url_decode("YQ==", 4, out, sizeof out), -1);
    assert_int_equal(wsb_base64url_decode("Y", 1, out, sizeof out), -1);
    assert_int_equal(wsb_base64url_decode("-_-_", 4, out, sizeof out), 3);
    assert_int_equal(wsb_base64url_decode("+/+/", 4, out, sizeof out), -1);
    assert_int_equal(wsb_base64url_decode("YWJj", 4, out, 2), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_hs256), cmocka_unit_test(test_algorithms_accept),
        cmocka_unit_test(test_refusals),      cmocka_unit_test(test_time_claims),
        cmocka_unit_test(test_require_exp),   cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_base64url),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
