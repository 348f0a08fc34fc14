/* tls_record.c - TLS 1.3 record protection after the handshake (see tls_record.h). */
#include "net/tls_record.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

tlsr_suite_t tlsr_suite_from_id(unsigned id)
{
    switch (id) {
    case 0x1301:
        return TLSR_AES_128_GCM_SHA256;
    case 0x1302:
        return TLSR_AES_256_GCM_SHA384;
    case 0x1303:
        return TLSR_CHACHA20_POLY1305_SHA256;
    default:
        return TLSR_NONE;
    }
}

size_t tlsr_hash_len(tlsr_suite_t s)
{
    return s == TLSR_AES_256_GCM_SHA384 ? 48 : 32;
}

static size_t key_len(tlsr_suite_t s)
{
    return s == TLSR_AES_128_GCM_SHA256 ? 16 : 32;
}

static const EVP_MD *suite_md(tlsr_suite_t s)
{
    return s == TLSR_AES_256_GCM_SHA384 ? EVP_sha384() : EVP_sha256();
}

static const EVP_CIPHER *suite_cipher(tlsr_suite_t s)
{
    switch (s) {
    case TLSR_AES_128_GCM_SHA256:
        return EVP_aes_128_gcm();
    case TLSR_AES_256_GCM_SHA384:
        return EVP_aes_256_gcm();
    default:
        return EVP_chacha20_poly1305();
    }
}

int tlsr_expand_label(tlsr_suite_t s, const uint8_t *secret, const char *label,
                      const uint8_t *context, size_t context_len, uint8_t *out, size_t out_len)
{
    size_t hlen = tlsr_hash_len(s);
    size_t llen = strlen(label);
    if (out_len > hlen || llen > 249 || context_len > 255) {
        return -1;
    }
    /* HkdfLabel (RFC 8446 section 7.1), then HKDF-Expand's first block:
     * T(1) = HMAC(secret, info || 0x01) covers every length TLS 1.3 asks. */
    uint8_t info[2 + 1 + 255 + 1 + 255 + 1];
    size_t n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + llen);
    static const uint8_t prefix[6] = {'t', 'l', 's', '1', '3', ' '};
    memcpy(info + n, prefix, sizeof prefix);
    n += sizeof prefix;
    for (size_t i = 0; i < llen; i++) {
        info[n++] = (uint8_t)label[i];
    }
    info[n++] = (uint8_t)context_len;
    if (context_len > 0) {
        memcpy(info + n, context, context_len);
        n += context_len;
    }
    info[n++] = 0x01;
    uint8_t block[EVP_MAX_MD_SIZE];
    unsigned int blen = 0;
    if (HMAC(suite_md(s), secret, (int)hlen, info, n, block, &blen) == NULL || blen < out_len) {
        OPENSSL_cleanse(block, sizeof block);
        return -1;
    }
    memcpy(out, block, out_len);
    OPENSSL_cleanse(block, sizeof block);
    return 0;
}

int tlsr_dir_init(tls_dir_t *d, tlsr_suite_t s, const uint8_t *secret)
{
    size_t hlen = tlsr_hash_len(s);
    memmove(d->secret, secret, hlen); /* `secret` may be d->secret itself (a key update) */
    d->seq = 0;
    if (tlsr_expand_label(s, d->secret, "key", NULL, 0, d->key, key_len(s)) != 0 ||
        tlsr_expand_label(s, d->secret, "iv", NULL, 0, d->iv, TLSR_IV) != 0) {
        tlsr_dir_wipe(d);
        return -1;
    }
    return 0;
}

int tlsr_dir_update(tls_dir_t *d, tlsr_suite_t s)
{
    uint8_t next[TLSR_MAX_SECRET];
    size_t hlen = tlsr_hash_len(s);
    if (tlsr_expand_label(s, d->secret, "traffic upd", NULL, 0, next, hlen) != 0) {
        return -1;
    }
    int rc = tlsr_dir_init(d, s, next);
    OPENSSL_cleanse(next, sizeof next);
    return rc;
}

void tlsr_dir_wipe(tls_dir_t *d)
{
    OPENSSL_cleanse(d, sizeof *d);
}

/* One EVP_CIPHER_CTX per suite and direction per thread, initialised with
 * its cipher once and keyed on every use: no connection holds a context
 * (an AES-GCM context is ~1 KB). Freed when the thread exits. */
typedef struct {
    EVP_CIPHER_CTX *ctx[4][2];
} thread_ctxs_t;

static pthread_key_t ctx_key;
static pthread_once_t ctx_key_once = PTHREAD_ONCE_INIT;
static bool ctx_key_ok;

static void thread_ctxs_free(void *p)
{
    thread_ctxs_t *t = p;
    for (int s = 0; s < 4; s++) {
        for (int e = 0; e < 2; e++) {
            EVP_CIPHER_CTX_free(t->ctx[s][e]); /* cleanses the key schedule */
        }
    }
    free(t);
}

static void ctx_key_init(void)
{
    ctx_key_ok = pthread_key_create(&ctx_key, thread_ctxs_free) == 0;
}

/* The thread's context for (suite, enc), keyed with `key` and `nonce`. */
static EVP_CIPHER_CTX *keyed_ctx(tlsr_suite_t s, int enc, const uint8_t *key, const uint8_t *nonce)
{
    (void)pthread_once(&ctx_key_once, ctx_key_init);
    if (!ctx_key_ok) {
        return NULL;
    }
    thread_ctxs_t *t = pthread_getspecific(ctx_key);
    if (t == NULL) {
        t = calloc(1, sizeof *t);
        if (t == NULL || pthread_setspecific(ctx_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    EVP_CIPHER_CTX **slot = &t->ctx[s][enc];
    if (*slot == NULL) {
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        if (c == NULL || EVP_CipherInit_ex(c, suite_cipher(s), NULL, NULL, NULL, enc) != 1) {
            EVP_CIPHER_CTX_free(c);
            return NULL;
        }
        *slot = c;
    }
    /* No cipher argument: the context keeps its provider state and only
     * takes the new key and nonce (the default 12-byte IV length). */
    if (EVP_CipherInit_ex(*slot, NULL, NULL, key, nonce, enc) != 1) {
        return NULL;
    }
    return *slot;
}

void tlsr_thread_scrub(void)
{
    (void)pthread_once(&ctx_key_once, ctx_key_init);
    if (!ctx_key_ok) {
        return;
    }
    thread_ctxs_t *t = pthread_getspecific(ctx_key);
    if (t == NULL) {
        return;
    }
    static const uint8_t zero[32];
    static const uint8_t zero_iv[TLSR_IV];
    for (int s = 0; s < 4; s++) {
        for (int e = 0; e < 2; e++) {
            if (t->ctx[s][e] != NULL) {
                (void)EVP_CipherInit_ex(t->ctx[s][e], NULL, NULL, zero, zero_iv, e);
            }
        }
    }
}

/* nonce = iv XOR the sequence number, left-padded to 12 bytes. */
static void make_nonce(const tls_dir_t *d, uint8_t nonce[TLSR_IV])
{
    memcpy(nonce, d->iv, TLSR_IV);
    for (int i = 0; i < 8; i++) {
        nonce[TLSR_IV - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
    }
}

/* Writes the header, then encrypts and tags into `out` with `c`, already
 * set up with the key and this record's nonce. */
static size_t seal_body(EVP_CIPHER_CTX *c, tls_dir_t *d, uint8_t type, const tlsr_piece_t *pieces,
                        size_t npieces, size_t total, uint8_t *out)
{
    int outl = 0;
    size_t pos = TLSR_HEADER;
    if (EVP_EncryptUpdate(c, NULL, &outl, out, TLSR_HEADER) != 1) {
        return 0;
    }
    for (size_t i = 0; i < npieces; i++) {
        if (pieces[i].len == 0) {
            continue;
        }
        if (EVP_EncryptUpdate(c, out + pos, &outl, pieces[i].base, (int)pieces[i].len) != 1) {
            return 0;
        }
        pos += (size_t)outl;
    }
    if (EVP_EncryptUpdate(c, out + pos, &outl, &type, 1) != 1) {
        return 0;
    }
    pos += (size_t)outl;
    if (EVP_EncryptFinal_ex(c, out + pos, &outl) != 1) {
        return 0;
    }
    pos += (size_t)outl;
    if (pos != TLSR_HEADER + total + 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TLSR_TAG, out + pos) != 1) {
        return 0;
    }
    d->seq++; /* this nonce is spent */
    return pos + TLSR_TAG;
}

/* The plaintext's length (0 and *total untouched when it cannot be sealed:
 * over 2^14, or the sequence number exhausted), header written, nonce made. */
static bool seal_prepare(tls_dir_t *d, const tlsr_piece_t *pieces, size_t npieces, size_t *total,
                         uint8_t nonce[TLSR_IV], uint8_t *out)
{
    size_t t = 0;
    for (size_t i = 0; i < npieces; i++) {
        t += pieces[i].len;
    }
    if (t > TLSR_MAX_PLAIN || d->seq == UINT64_MAX) {
        return false;
    }
    size_t body = t + 1 + TLSR_TAG;
    out[0] = TLSR_CT_APP;
    out[1] = 0x03;
    out[2] = 0x03;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    make_nonce(d, nonce);
    *total = t;
    return true;
}

size_t tlsr_seal(tlsr_suite_t s, tls_dir_t *d, uint8_t type, const tlsr_piece_t *pieces,
                 size_t npieces, uint8_t *out)
{
    uint8_t nonce[TLSR_IV];
    size_t total = 0;
    if (!seal_prepare(d, pieces, npieces, &total, nonce, out)) {
        return 0;
    }
    EVP_CIPHER_CTX *c = keyed_ctx(s, 1, d->key, nonce);
    if (c == NULL) {
        return 0;
    }
    return seal_body(c, d, type, pieces, npieces, total, out);
}

tlsr_aead_t *tlsr_aead_new(tlsr_suite_t s, const tls_dir_t *d)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL || EVP_EncryptInit_ex(c, suite_cipher(s), NULL, d->key, NULL) != 1) {
        EVP_CIPHER_CTX_free(c);
        return NULL;
    }
    return c;
}

int tlsr_aead_rekey(tlsr_aead_t *a, const tls_dir_t *d)
{
    return EVP_EncryptInit_ex(a, NULL, NULL, d->key, NULL) == 1 ? 0 : -1;
}

void tlsr_aead_free(tlsr_aead_t *a)
{
    EVP_CIPHER_CTX_free(a); /* the provider cleanses its key schedule */
}

size_t tlsr_seal_own(tlsr_aead_t *a, tls_dir_t *d, uint8_t type, const tlsr_piece_t *pieces,
                     size_t npieces, uint8_t *out)
{
    uint8_t nonce[TLSR_IV];
    size_t total = 0;
    if (!seal_prepare(d, pieces, npieces, &total, nonce, out)) {
        return 0;
    }
    /* The nonce only: the key schedule and GHASH key stay as keyed. */
    if (EVP_EncryptInit_ex(a, NULL, NULL, NULL, nonce) != 1) {
        return 0;
    }
    return seal_body(a, d, type, pieces, npieces, total, out);
}

int tlsr_record_check(const uint8_t *hdr, size_t *body_len)
{
    /* After the handshake every record is application_data on the outside
     * (change_cipher_spec is allowed only during it); legacy_record_version
     * is ignored (RFC 8446 section 5.1). */
    if (hdr[0] != TLSR_CT_APP) {
        return TLSR_ALERT_UNEXPECTED_MESSAGE;
    }
    size_t len = ((size_t)hdr[3] << 8) | hdr[4];
    if (len > TLSR_MAX_CIPHER || len > TLSR_MAX_INNER + TLSR_TAG) {
        /* Over 2^14 + 256, or an inner plaintext over 2^14 + 1 with the
         * only expansion our suites have (a 16-byte tag). */
        return TLSR_ALERT_RECORD_OVERFLOW;
    }
    if (len < 1 + TLSR_TAG) {
        return TLSR_ALERT_BAD_RECORD_MAC; /* cannot authenticate */
    }
    *body_len = len;
    return 0;
}

int tlsr_open(tlsr_suite_t s, tls_dir_t *d, uint8_t *rec, size_t *content_len, uint8_t *type)
{
    size_t body = 0;
    int alert = tlsr_record_check(rec, &body);
    if (alert != 0) {
        return alert;
    }
    if (d->seq == UINT64_MAX) {
        return TLSR_ALERT_INTERNAL_ERROR; /* never reached: 2^64 records */
    }
    size_t clen = body - TLSR_TAG;
    uint8_t *p = rec + TLSR_HEADER;
    uint8_t nonce[TLSR_IV];
    make_nonce(d, nonce);
    EVP_CIPHER_CTX *c = keyed_ctx(s, 0, d->key, nonce);
    if (c == NULL) {
        return TLSR_ALERT_INTERNAL_ERROR;
    }
    int outl = 0;
    bool ok = EVP_DecryptUpdate(c, NULL, &outl, rec, TLSR_HEADER) == 1 &&
              EVP_DecryptUpdate(c, p, &outl, p, (int)clen) == 1 && (size_t)outl == clen &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TLSR_TAG, p + clen) == 1 &&
              EVP_DecryptFinal_ex(c, p + clen, &outl) == 1 && outl == 0;
    if (!ok) {
        OPENSSL_cleanse(p, clen); /* whatever was decrypted is not plaintext */
        return TLSR_ALERT_BAD_RECORD_MAC;
    }
    d->seq++;
    /* The content type is the last non-zero byte; zeros after it are padding. */
    size_t n = clen;
    while (n > 0 && p[n - 1] == 0) {
        n--;
    }
    if (n == 0) {
        return TLSR_ALERT_UNEXPECTED_MESSAGE;
    }
    *type = p[n - 1];
    *content_len = n - 1;
    return 0;
}
