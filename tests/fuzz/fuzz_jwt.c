/*
 * fuzz_jwt.c - the JWT verifier on hostile tokens.
 *
 * Input: the token. It is verified against an HS256 secret and against an
 * EC P-256 key (generated once), each at a fixed time. Invariants: no crash
 * or over-read (the input is an exact-size heap copy), every refusal has a
 * sentence, and an accepted token's pattern slices lie inside valid patterns.
 * Since the fuzzer cannot forge signatures, it mostly exercises the parsing
 * before the signature check (base64url, header JSON, alg selection), which
 * is exactly the part an unauthenticated attacker reaches.
 */
#include "wsb/common.h"
#include "wsb/jwt.h"
#include "wsb/topic.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wsb_jwt_keys_t *hs, *es;

static void init(void)
{
    hs = wsb_jwt_keys_new();
    es = wsb_jwt_keys_new();
    if (hs == NULL || es == NULL || wsb_jwt_keys_set_secret(hs, "fuzz-secret", 11) != 0) {
        abort();
    }
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *bio = BIO_new(BIO_s_mem());
    if (key == NULL || bio == NULL || PEM_write_bio_PUBKEY(bio, key) != 1) {
        abort();
    }
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    const char *why = NULL;
    if (wsb_jwt_keys_set_public_pem(es, pem, (size_t)n, &why) != 0) {
        abort();
    }
    BIO_free(bio);
    EVP_PKEY_free(key);
}

static void check(const wsb_jwt_keys_t *k, const char *tok, size_t len)
{
    wsb_jwt_claims_t c;
    const char *why = NULL;
    int rc = wsb_jwt_verify(k, tok, len, 1700000000, 30, &c, &why);
    if (rc == WSB_EINVAL) {
        if (why == NULL || why[0] == '\0') {
            abort();
        }
        return;
    }
    if (rc != 0) {
        return;
    }
    for (size_t i = 0; i < c.nsubscribe; i++) {
        if (wsb_topic_check(c.subscribe[i].p, c.subscribe[i].len, WSB_TOPIC_PATTERN, NULL) != 0) {
            abort();
        }
    }
    wsb_jwt_claims_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (hs == NULL) {
        init();
    }
    char *tok = malloc(size + (size == 0));
    if (tok == NULL) {
        abort();
    }
    memcpy(tok, data, size);
    check(hs, tok, size);
    check(es, tok, size);
    /* The decoder alone, into an exact-size output. */
    uint8_t *out = malloc(size + 1);
    if (out == NULL) {
        abort();
    }
    (void)wsb_base64url_decode(tok, size, out, size * 3 / 4);
    free(out);
    free(tok);
    return 0;
}
