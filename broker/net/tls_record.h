/*
 * tls_record.h - the TLS 1.3 record protection the broker does itself once
 * OpenSSL has finished a handshake (RFC 8446 sections 5.2-5.4 and 7.1-7.3):
 * HKDF-Expand-Label, traffic key and iv derivation, KeyUpdate's next secret,
 * and sealing/opening one application-data-protected record.
 *
 * Why: OpenSSL 3.0 keeps ~14 KB per established SSL object even with
 * SSL_MODE_RELEASE_BUFFERS; a tls_dir_t is ~100 bytes per direction, so an
 * idle wss:// connection costs about what a ws:// one does. The AEAD
 * contexts are per thread (keyed on each use: ~450 ns of key schedule and
 * GHASH setup per record), except for a connection that writes often:
 * net/tls.c gives it its own keyed write context (tlsr_aead_t, ~1 KB) while
 * it stays hot, so its seals only set the nonce.
 *
 * Suites: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
 * TLS_CHACHA20_POLY1305_SHA256 (every TLS 1.3 suite OpenSSL enables by
 * default). Anything else stays on OpenSSL's record layer (net/tls.c).
 *
 * Nonces: per-record nonce = iv XOR the 64-bit sequence number, which only
 * counts up; tlsr_seal/tlsr_open refuse to run once it would wrap, so a
 * nonce never repeats under one key. Secrets and keys are wiped by
 * tlsr_dir_wipe (OPENSSL_cleanse).
 *
 * Only tls.c and this file's unit test use it.
 */
#ifndef WSB_BROKER_TLS_RECORD_H
#define WSB_BROKER_TLS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLSR_HEADER     5
#define TLSR_TAG        16
#define TLSR_MAX_PLAIN  16384                /* 2^14: content bytes per record */
#define TLSR_MAX_INNER  (TLSR_MAX_PLAIN + 1) /* + the inner content type */
#define TLSR_MAX_CIPHER (TLSR_MAX_PLAIN + 256)
#define TLSR_MAX_SECRET 48
#define TLSR_IV         12

/* Record content types (RFC 8446 section 5.1). */
#define TLSR_CT_ALERT     21
#define TLSR_CT_HANDSHAKE 22
#define TLSR_CT_APP       23

/* Alert descriptions the record layer sends. */
#define TLSR_ALERT_CLOSE_NOTIFY       0
#define TLSR_ALERT_UNEXPECTED_MESSAGE 10
#define TLSR_ALERT_BAD_RECORD_MAC     20
#define TLSR_ALERT_RECORD_OVERFLOW    22
#define TLSR_ALERT_ILLEGAL_PARAMETER  47
#define TLSR_ALERT_DECODE_ERROR       50
#define TLSR_ALERT_INTERNAL_ERROR     80

typedef enum {
    TLSR_NONE = 0,
    TLSR_AES_128_GCM_SHA256,
    TLSR_AES_256_GCM_SHA384,
    TLSR_CHACHA20_POLY1305_SHA256,
} tlsr_suite_t;

/* One direction's traffic state. */
typedef struct {
    uint8_t secret[TLSR_MAX_SECRET]; /* application_traffic_secret_N */
    uint8_t key[32];
    uint8_t iv[TLSR_IV];
    uint64_t seq;
} tls_dir_t;

/* The suite for an IANA cipher suite number (0x1301...), or TLSR_NONE. */
tlsr_suite_t tlsr_suite_from_id(unsigned id);

/* The suite's hash length (32 or 48): the length of its traffic secrets. */
size_t tlsr_hash_len(tlsr_suite_t s);

/* HKDF-Expand-Label(secret, label, context, out_len) with the suite's hash
 * (out_len <= hash length, all that TLS 1.3 needs). 0 or -1. */
int tlsr_expand_label(tlsr_suite_t s, const uint8_t *secret, const char *label,
                      const uint8_t *context, size_t context_len, uint8_t *out, size_t out_len);

/* Takes `secret` (hash-length bytes) as the direction's traffic secret,
 * derives key and iv, resets the sequence number. 0 or -1. */
int tlsr_dir_init(tls_dir_t *d, tlsr_suite_t s, const uint8_t *secret);

/* KeyUpdate: secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "",
 * Hash.length), then as tlsr_dir_init. 0 or -1. */
int tlsr_dir_update(tls_dir_t *d, tlsr_suite_t s);

void tlsr_dir_wipe(tls_dir_t *d);

/* Re-keys this thread's AEAD contexts with a zero key, so the key schedule
 * of the last record sealed or opened does not outlive its connection
 * (called when a record-mode connection ends). */
void tlsr_thread_scrub(void);

/* A piece of plaintext to seal. */
typedef struct {
    const uint8_t *base;
    size_t len;
} tlsr_piece_t;

/* Seals the concatenation of `pieces` (total <= TLSR_MAX_PLAIN bytes) with
 * inner content type `type` as one record at `out`, which must have room for
 * TLSR_HEADER + total + 1 + TLSR_TAG bytes. Returns the record's length, or
 * 0 on failure (sequence number exhausted, cipher error: the connection must
 * close). */
size_t tlsr_seal(tlsr_suite_t s, tls_dir_t *d, uint8_t type, const tlsr_piece_t *pieces,
                 size_t npieces, uint8_t *out);

/* A direction's own AEAD context, keyed once with its current key (an
 * OpenSSL EVP_CIPHER_CTX; the name stays opaque here). */
typedef struct evp_cipher_ctx_st tlsr_aead_t;

/* A sealing context keyed with d's key, or NULL (OOM, cipher error). */
tlsr_aead_t *tlsr_aead_new(tlsr_suite_t s, const tls_dir_t *d);

/* Re-keys it with d's (new) key after tlsr_dir_update. 0 or -1. */
int tlsr_aead_rekey(tlsr_aead_t *a, const tls_dir_t *d);

/* Frees it; the key schedule is wiped. NULL is fine. */
void tlsr_aead_free(tlsr_aead_t *a);

/* As tlsr_seal, with `a` (keyed with d's current key) instead of the
 * thread's context: the same record, byte for byte, without the key
 * schedule. */
size_t tlsr_seal_own(tlsr_aead_t *a, tls_dir_t *d, uint8_t type, const tlsr_piece_t *pieces,
                     size_t npieces, uint8_t *out);

/* Opens one complete record `rec` (TLSR_HEADER + its length field bytes,
 * checked by the caller with tlsr_record_check) in place: on success the
 * content is rec[TLSR_HEADER .. TLSR_HEADER + *content_len), *type is the
 * inner content type and 0 is returned. On failure returns the alert to send
 * (bad_record_mac, unexpected_message...) and wipes the decrypted bytes: a
 * failed open never yields plaintext. */
int tlsr_open(tlsr_suite_t s, tls_dir_t *d, uint8_t *rec, size_t *content_len, uint8_t *type);

/* Checks a record header (5 bytes): 0 and *body_len when it may be a
 * protected record, or the alert to send (an outer type other than
 * application_data after the handshake, a length over 2^14 + 256 or one
 * that cannot hold a tag and a content type). */
int tlsr_record_check(const uint8_t *hdr, size_t *body_len);

#endif
