/* test_tls_record.c - the broker's TLS 1.3 record protection
 * (net/tls_record.c) against RFC 8448 section 3 (the simple 1-RTT trace):
 * HKDF-Expand-Label of the application traffic secrets into key and iv, the
 * client's application data record opened, the server's sealed byte for byte;
 * then what must never happen: a changed byte yields no plaintext, a wrapped
 * sequence number seals nothing, lengths over the limits are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "net/tls_record.h"

#include <cmocka.h>

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = hex; *p != '\0';) {
        if (*p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        unsigned v = 0;
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

/* RFC 8448 section 3. */
static const char C_AP_SECRET[] = "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52"
                                  "87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5";
static const char S_AP_SECRET[] = "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32"
                                  "82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43";
static const char C_AP_KEY[] = "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51";
static const char C_AP_IV[] = "5b 78 92 3d ee 08 57 90 33 e5 23 d9";
static const char S_AP_KEY[] = "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56";
static const char S_AP_IV[] = "cf 78 2b 88 dd 83 54 9a ad f1 e9 84";
/* The client's first application data record (sequence 0) and the server's
 * (sequence 1: its NewSessionTicket went first), both carrying 00 01 .. 31. */
static const char C_APP_REC[] = "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55"
                                "cb ef ac ea 42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39"
                                "5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd"
                                "1e 3d ea e6 3a ee bb 21 69 49 15 e4";
static const char S_APP_REC[] = "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad"
                                "36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa 1b 36"
                                "e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8"
                                "fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54"
                                "0d d0 32 e1 67 c2 95 5d";

static void payload(uint8_t out[50])
{
    for (int i = 0; i < 50; i++) {
        out[i] = (uint8_t)i;
    }
}

static void dir_from(tls_dir_t *d, const char *secret_hex)
{
    uint8_t secret[48];
    assert_int_equal(unhex(secret_hex, secret, sizeof secret), 32);
    memset(d, 0, sizeof *d);
    assert_int_equal(tlsr_dir_init(d, TLSR_AES_128_GCM_SHA256, secret), 0);
}

static void test_expand_label_rfc8448(void **state)
{
    (void)state;
    uint8_t want[16];
    tls_dir_t c;
    tls_dir_t s;
    dir_from(&c, C_AP_SECRET);
    dir_from(&s, S_AP_SECRET);
    assert_int_equal(unhex(C_AP_KEY, want, sizeof want), 16);
    assert_memory_equal(c.key, want, 16);
    assert_int_equal(unhex(C_AP_IV, want, sizeof want), 12);
    assert_memory_equal(c.iv, want, 12);
    assert_int_equal(unhex(S_AP_KEY, want, sizeof want), 16);
    assert_memory_equal(s.key, want, 16);
    assert_int_equal(unhex(S_AP_IV, want, sizeof want), 12);
    assert_memory_equal(s.iv, want, 12);
    assert_int_equal(c.seq, 0);
    assert_int_equal(tlsr_suite_from_id(0x1301), TLSR_AES_128_GCM_SHA256);
    assert_int_equal(tlsr_suite_from_id(0x1302), TLSR_AES_256_GCM_SHA384);
    assert_int_equal(tlsr_suite_from_id(0x1303), TLSR_CHACHA20_POLY1305_SHA256);
    assert_int_equal(tlsr_suite_from_id(0x1304), TLSR_NONE);
}

static void test_open_client_record_rfc8448(void **state)
{
    (void)state;
    tls_dir_t c;
    dir_from(&c, C_AP_SECRET);
    uint8_t rec[128];
    size_t n = unhex(C_APP_REC, rec, sizeof rec);
    assert_int_equal(n, 72);
    size_t body = 0;
    assert_int_equal(tlsr_record_check(rec, &body), 0);
    assert_int_equal(body, 67);
    size_t clen = 0;
    uint8_t type = 0;
    assert_int_equal(tlsr_open(TLSR_AES_128_GCM_SHA256, &c, rec, &clen, &type), 0);
    assert_int_equal(type, TLSR_CT_APP);
    assert_int_equal(clen, 50);
    uint8_t want[50];
    payload(want);
    assert_memory_equal(rec + TLSR_HEADER, want, 50);
    assert_int_equal(c.seq, 1);
}

static void test_seal_server_record_rfc8448(void **state)
{
    (void)state;
    tls_dir_t s;
    dir_from(&s, S_AP_SECRET);
    s.seq = 1;
    uint8_t plain[50];
    payload(plain);
    /* In three pieces: the record is the same as from one. */
    tlsr_piece_t pieces[3] = {{plain, 7}, {plain + 7, 0}, {plain + 7, 43}};
    uint8_t out[128];
    uint8_t want[128];
    size_t wlen = unhex(S_APP_REC, want, sizeof want);
    assert_int_equal(tlsr_seal(TLSR_AES_128_GCM_SHA256, &s, TLSR_CT_APP, pieces, 3, out), wlen);
    assert_memory_equal(out, want, wlen);
    assert_int_equal(s.seq, 2);
}

/* Every single-bit change of the record (header included: it is the AAD)
 * fails with bad_record_mac and leaves no plaintext behind. */
static void test_changed_byte_yields_nothing(void **state)
{
    (void)state;
    uint8_t orig[128] = {0};
    size_t n = unhex(C_APP_REC, orig, sizeof orig);
    for (size_t i = 0; i < n; i++) {
        if (i == 1 || i == 2 || i == 3) {
            /* legacy_record_version: below; the length's high byte would
             * claim bytes that are not there (the caller waits for them). */
            continue;
        }
        uint8_t rec[128];
        memcpy(rec, orig, n);
        rec[i] ^= 0x01;
        tls_dir_t c;
        dir_from(&c, C_AP_SECRET);
        size_t clen = 99;
        uint8_t type = 99;
        int alert = tlsr_open(TLSR_AES_128_GCM_SHA256, &c, rec, &clen, &type);
        assert_int_not_equal(alert, 0);
        assert_int_equal(c.seq, 0); /* nothing consumed */
        assert_int_equal(clen, 99);
        if (i >= TLSR_HEADER && i < n - TLSR_TAG) {
            assert_int_equal(alert, TLSR_ALERT_BAD_RECORD_MAC);
            /* The decrypted bytes were wiped, not left as plaintext. */
            for (size_t k = TLSR_HEADER; k < n - TLSR_TAG; k++) {
                assert_int_equal(rec[k], 0);
            }
        }
    }
    /* A changed version byte is still caught by the AEAD. */
    uint8_t rec[128] = {0};
    memcpy(rec, orig, n);
    rec[2] ^= 0x01;
    tls_dir_t c;
    dir_from(&c, C_AP_SECRET);
    size_t clen = 0;
    uint8_t type = 0;
    assert_int_equal(tlsr_open(TLSR_AES_128_GCM_SHA256, &c, rec, &clen, &type),
                     TLSR_ALERT_BAD_RECORD_MAC);
    /* And the right record under the wrong sequence number. */
    memcpy(rec, orig, n);
    dir_from(&c, C_AP_SECRET);
    c.seq = 1;
    assert_int_equal(tlsr_open(TLSR_AES_128_GCM_SHA256, &c, rec, &clen, &type),
                     TLSR_ALERT_BAD_RECORD_MAC);
}

static void test_header_limits(void **state)
{
    (void)state;
    size_t body = 0;
    const uint8_t huge[5] = {23, 3, 3, 0xff, 0xff};
    assert_int_equal(tlsr_record_check(huge, &body), TLSR_ALERT_RECORD_OVERFLOW);
    /* 2^14 + 1 + 16 is the most our suites can carry; one more overflows. */
    const uint8_t max_ok[5] = {23, 3, 3, (TLSR_MAX_INNER + TLSR_TAG) >> 8,
                               (TLSR_MAX_INNER + TLSR_TAG) & 0xff};
    assert_int_equal(tlsr_record_check(max_ok, &body), 0);
    assert_int_equal(body, TLSR_MAX_INNER + TLSR_TAG);
    const uint8_t over[5] = {23, 3, 3, (TLSR_MAX_INNER + TLSR_TAG + 1) >> 8,
                             (TLSR_MAX_INNER + TLSR_TAG + 1) & 0xff};
    assert_int_equal(tlsr_record_check(over, &body), TLSR_ALERT_RECORD_OVERFLOW);
    const uint8_t tiny[5] = {23, 3, 3, 0, 16};
    assert_int_equal(tlsr_record_check(tiny, &body), TLSR_ALERT_BAD_RECORD_MAC);
    const uint8_t ccs[5] = {20, 3, 3, 0, 1};
    assert_int_equal(tlsr_record_check(ccs, &body), TLSR_ALERT_UNEXPECTED_MESSAGE);
    const uint8_t plain_alert[5] = {21, 3, 3, 0, 2};
    assert_int_equal(tlsr_record_check(plain_alert, &body), TLSR_ALERT_UNEXPECTED_MESSAGE);
}

/* Each suite: seal then open across several records and sizes, padding
 * stripped, a KeyUpdate on one side only breaks the stream, on both it
 * continues; the sequence number never wraps. */
static void test_suites_round_trip_key_update_and_wrap(void **state)
{
    (void)state;
    static uint8_t plain[TLSR_MAX_PLAIN];
    static uint8_t rec[TLSR_HEADER + TLSR_MAX_PLAIN + 1 + TLSR_TAG];
    for (size_t i = 0; i < sizeof plain; i++) {
        plain[i] = (uint8_t)(i * 7 + 1);
    }
    const tlsr_suite_t suites[] = {TLSR_AES_128_GCM_SHA256, TLSR_AES_256_GCM_SHA384,
                                   TLSR_CHACHA20_POLY1305_SHA256};
    for (size_t si = 0; si < 3; si++) {
        tlsr_suite_t s = suites[si];
        uint8_t secret[48];
        for (size_t i = 0; i < sizeof secret; i++) {
            secret[i] = (uint8_t)(i + si);
        }
        tls_dir_t w;
        tls_dir_t r;
        assert_int_equal(tlsr_dir_init(&w, s, secret), 0);
        assert_int_equal(tlsr_dir_init(&r, s, secret), 0);
        const size_t sizes[] = {1, 50, 1000, TLSR_MAX_PLAIN};
        for (size_t k = 0; k < 4; k++) {
            tlsr_piece_t p = {plain, sizes[k]};
            size_t len = tlsr_seal(s, &w, TLSR_CT_APP, &p, 1, rec);
            assert_int_equal(len, TLSR_HEADER + sizes[k] + 1 + TLSR_TAG);
            size_t clen = 0;
            uint8_t type = 0;
            assert_int_equal(tlsr_open(s, &r, rec, &clen, &type), 0);
            assert_int_equal(clen, sizes[k]);
            assert_int_equal(type, TLSR_CT_APP);
            assert_memory_equal(rec + TLSR_HEADER, plain, clen);
        }
        /* Over 2^14 plaintext bytes: refused. */
        tlsr_piece_t big[2] = {{plain, TLSR_MAX_PLAIN}, {plain, 1}};
        assert_int_equal(tlsr_seal(s, &w, TLSR_CT_APP, big, 2, rec), 0);
        /* All zeros inside (content type 0): no content type, refused. */
        static const uint8_t zeros[8];
        tlsr_piece_t z = {zeros, sizeof zeros};
        assert_true(tlsr_seal(s, &w, 0, &z, 1, rec) > 0);
        size_t clen = 0;
        uint8_t type = 0;
        assert_int_equal(tlsr_open(s, &r, rec, &clen, &type), TLSR_ALERT_UNEXPECTED_MESSAGE);
        /* KeyUpdate on the writer only: the reader cannot open. */
        uint8_t old_key[32];
        memcpy(old_key, w.key, sizeof old_key);
        assert_int_equal(tlsr_dir_update(&w, s), 0);
        assert_int_equal(w.seq, 0);
        assert_memory_not_equal(w.key, old_key, 16);
        tlsr_piece_t p = {plain, 10};
        assert_true(tlsr_seal(s, &w, TLSR_CT_APP, &p, 1, rec) > 0);
        uint8_t copy[64];
        memcpy(copy, rec, TLSR_HEADER + 10 + 1 + TLSR_TAG);
        assert_int_equal(tlsr_open(s, &r, rec, &clen, &type), TLSR_ALERT_BAD_RECORD_MAC);
        /* ...and on both: it opens again. */
        assert_int_equal(tlsr_dir_update(&r, s), 0);
        memcpy(rec, copy, sizeof copy);
        assert_int_equal(tlsr_open(s, &r, rec, &clen, &type), 0);
        assert_int_equal(clen, 10);
        /* The last sequence number is never used: no nonce repeats. */
        w.seq = UINT64_MAX;
        assert_int_equal(tlsr_seal(s, &w, TLSR_CT_APP, &p, 1, rec), 0);
        assert_int_equal(w.seq, UINT64_MAX);
        r.seq = UINT64_MAX;
        rec[0] = TLSR_CT_APP;
        assert_int_not_equal(tlsr_open(s, &r, copy, &clen, &type), 0);
        tlsr_dir_wipe(&w);
        static const tls_dir_t zero;
        assert_memory_equal(&w, &zero, sizeof zero);
    }
}

/* A direction's own keyed context (tlsr_seal_own) seals exactly the records
 * the thread's shared context does, in every suite, across a KeyUpdate
 * (re-keyed in place), interleaved with shared seals of other keys; and the
 * RFC 8448 server record comes out of it byte for byte. */
static void test_own_context_seals_the_same_records(void **state)
{
    (void)state;
    static uint8_t plain[3000];
    static uint8_t a[TLSR_HEADER + sizeof plain + 1 + TLSR_TAG];
    static uint8_t b[sizeof a];
    for (size_t i = 0; i < sizeof plain; i++) {
        plain[i] = (uint8_t)(i * 13 + 5);
    }
    const tlsr_suite_t suites[] = {TLSR_AES_128_GCM_SHA256, TLSR_AES_256_GCM_SHA384,
                                   TLSR_CHACHA20_POLY1305_SHA256};
    for (size_t si = 0; si < 3; si++) {
        tlsr_suite_t s = suites[si];
        uint8_t secret[48];
        uint8_t other_secret[48];
        for (size_t i = 0; i < sizeof secret; i++) {
            secret[i] = (uint8_t)(3 * i + si);
            other_secret[i] = (uint8_t)(5 * i + si);
        }
        tls_dir_t shared;
        tls_dir_t own;
        tls_dir_t other;
        assert_int_equal(tlsr_dir_init(&shared, s, secret), 0);
        assert_int_equal(tlsr_dir_init(&own, s, secret), 0);
        assert_int_equal(tlsr_dir_init(&other, s, other_secret), 0);
        tlsr_aead_t *ctx = tlsr_aead_new(s, &own);
        assert_non_null(ctx);
        for (int round = 0; round < 3; round++) {
            const size_t sizes[] = {0, 1, 114, 1000, sizeof plain};
            for (size_t k = 0; k < 5; k++) {
                tlsr_piece_t pieces[2] = {{plain, sizes[k] / 3},
                                          {plain + sizes[k] / 3, sizes[k] - sizes[k] / 3}};
                size_t want = tlsr_seal(s, &shared, TLSR_CT_APP, pieces, 2, a);
                assert_int_equal(want, TLSR_HEADER + sizes[k] + 1 + TLSR_TAG);
                /* Another connection's record on the shared context between. */
                assert_true(tlsr_seal(s, &other, TLSR_CT_APP, pieces, 1, b) > 0);
                assert_int_equal(tlsr_seal_own(ctx, &own, TLSR_CT_APP, pieces, 2, b), want);
                assert_memory_equal(a, b, want);
                assert_int_equal(own.seq, shared.seq);
            }
            static const uint8_t update[5] = {24, 0, 0, 1, 0};
            tlsr_piece_t u = {update, sizeof update};
            size_t want = tlsr_seal(s, &shared, TLSR_CT_HANDSHAKE, &u, 1, a);
            assert_int_equal(tlsr_seal_own(ctx, &own, TLSR_CT_HANDSHAKE, &u, 1, b), want);
            assert_memory_equal(a, b, want);
            assert_int_equal(tlsr_dir_update(&shared, s), 0);
            assert_int_equal(tlsr_dir_update(&own, s), 0);
            assert_int_equal(tlsr_aead_rekey(ctx, &own), 0);
        }
        /* The sequence number's limit holds here too. */
        own.seq = UINT64_MAX;
        tlsr_piece_t p = {plain, 10};
        assert_int_equal(tlsr_seal_own(ctx, &own, TLSR_CT_APP, &p, 1, b), 0);
        tlsr_aead_free(ctx);
    }
    tlsr_aead_free(NULL);
    tls_dir_t sd;
    dir_from(&sd, S_AP_SECRET);
    sd.seq = 1;
    tlsr_aead_t *ctx = tlsr_aead_new(TLSR_AES_128_GCM_SHA256, &sd);
    assert_non_null(ctx);
    uint8_t payload_bytes[50];
    payload(payload_bytes);
    tlsr_piece_t p = {payload_bytes, sizeof payload_bytes};
    uint8_t want[128];
    size_t wlen = unhex(S_APP_REC, want, sizeof want);
    assert_int_equal(tlsr_seal_own(ctx, &sd, TLSR_CT_APP, &p, 1, a), wlen);
    assert_memory_equal(a, want, wlen);
    tlsr_aead_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_label_rfc8448),
        cmocka_unit_test(test_open_client_record_rfc8448),
        cmocka_unit_test(test_seal_server_record_rfc8448),
        cmocka_unit_test(test_changed_byte_yields_nothing),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_suites_round_trip_key_update_and_wrap),
        cmocka_unit_test(test_own_context_seals_the_same_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
