/* test_tls.c - the broker's TLS session (net/tls.c) against an in-process
 * OpenSSL client: handshake fed whole, one byte at a time and in seeded random
 * chunks; application data both ways intact, ciphertext taken out by copy in
 * small pieces and detached whole; and the memory contract of an idle
 * connection: no staging buffer is held once nothing is pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs the headers above first. */
#include "net/tls.h"
#include "net/tls_record.h"

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static tls_server_t *server;
static SSL_CTX *client_ctx;

/* The test client's application traffic secret (its key log), so that tests
 * can forge records a real client would never send. */
static uint8_t client_secret[48];
static size_t client_secret_len;

static void client_keylog(const SSL *ssl, const char *line)
{
    (void)ssl;
    static const char label[] = "CLIENT_TRAFFIC_SECRET_0 ";
    if (strncmp(line, label, sizeof label - 1) != 0) {
        return;
    }
    const char *hex = strrchr(line, ' ') + 1;
    client_secret_len = strlen(hex) / 2;
    for (size_t i = 0; i < client_secret_len && i < sizeof client_secret; i++) {
        unsigned v = 0;
        (void)sscanf(hex + 2 * i, "%2x", &v);
        client_secret[i] = (uint8_t)v;
    }
}

static void write_key_and_cert(const char *key_path, const char *cert_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400L));
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"localhost", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    assert_int_equal(fclose(f), 0);
    f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int setup(void **state)
{
    (void)state;
    char dir[] = "/tmp/wsb-test-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cert_path[64];
    char key_path[64];
    (void)snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    (void)snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    write_key_and_cert(key_path, cert_path);
    tls_files_t files = {.cert = cert_path, .key = key_path, .ca = ""};
    char err[512];
    server = tls_server_new(&files, err, sizeof(err));
    (void)unlink(cert_path);
    (void)unlink(key_path);
    (void)rmdir(dir);
    if (server == NULL) {
        fail_msg("%s", err);
    }
    client_ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(client_ctx);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_keylog_callback(client_ctx, client_keylog);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tls_server_free(server);
    SSL_CTX_free(client_ctx);
    return 0;
}

/* One connection: the broker's side and a client over memory BIOs. */
typedef struct {
    tls_conn_t *tc;
    SSL *cli;
    uint8_t plain[1 << 20]; /* what the server decrypted */
    size_t plain_len;
    unsigned seed; /* 0: feed whole; 1: one byte at a time; else random chunks */
} pair_t;

static size_t chunk_len(pair_t *p, size_t left)
{
    if (p->seed == 0) {
        return left;
    }
    if (p->seed == 1) {
        return 1;
    }
    size_t n = 1 + (size_t)rand_r(&p->seed) % 3000;
    return n < left ? n : left;
}

/* Client ciphertext -> server (in chunks), decrypting what it can. */
static void client_to_server(pair_t *p)
{
    BIO *wbio = SSL_get_wbio(p->cli);
    uint8_t buf[65536];
    int n;
    while ((n = BIO_read(wbio, buf, sizeof(buf))) > 0) {
        size_t off = 0;
        while (off < (size_t)n) {
            size_t len = chunk_len(p, (size_t)n - off);
            assert_int_equal(tls_conn_feed(p->tc, buf + off, len), 0);
            off += len;
            long r;
            while ((r = tls_conn_read(p->tc, p->plain + p->plain_len,
                                      sizeof(p->plain) - p->plain_len)) > 0) {
                p->plain_len += (size_t)r;
            }
            assert_int_equal(r, TLS_AGAIN);
        }
    }
}

/* Server ciphertext -> client, taken out the way conn.c does (detached). */
static void server_to_client(pair_t *p)
{
    size_t len = 0;
    uint8_t *bytes = tls_conn_detach_out(p->tc, &len);
    assert_int_equal(tls_conn_out_pending(p->tc), 0);
    if (bytes != NULL) {
        assert_int_equal(BIO_write(SSL_get_rbio(p->cli), bytes, (int)len), (int)len);
        free(bytes);
    } else {
        assert_int_equal(len, 0);
    }
}

static void handshake_with(pair_t *p, int max_version, const char *suite)
{
    p->tc = tls_conn_new(server);
    assert_non_null(p->tc);
    p->cli = SSL_new(client_ctx);
    assert_non_null(p->cli);
    if (max_version != 0) {
        assert_int_equal(SSL_set_max_proto_version(p->cli, max_version), 1);
    }
    if (suite != NULL) {
        assert_int_equal(SSL_set_ciphersuites(p->cli, suite), 1);
    }
    BIO *r = BIO_new(BIO_s_mem());
    BIO *w = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(r, -1);
    BIO_set_mem_eof_return(w, -1);
    SSL_set_bio(p->cli, r, w);
    SSL_set_connect_state(p->cli);
    for (int i = 0;
         i < 10 && (SSL_is_init_finished(p->cli) == 0 || !tls_conn_handshake_done(p->tc)); i++) {
        (void)SSL_do_handshake(p->cli);
        client_to_server(p);
        server_to_client(p);
    }
    assert_true(SSL_is_init_finished(p->cli));
    assert_true(tls_conn_handshake_done(p->tc));
}

static void handshake(pair_t *p)
{
    handshake_with(p, 0, NULL);
}

static void pair_free(pair_t *p)
{
    SSL_free(p->cli);
    tls_conn_free(p->tc);
}

static void fill(uint8_t *buf, size_t len, unsigned salt)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)((i * 31u + salt) ^ (i >> 8));
    }
}

/* Client reads until it has `len` bytes or the ciphertext runs out. */
static size_t client_read_all(pair_t *p, uint8_t *out, size_t len)
{
    size_t got = 0;
    int n;
    while (got < len && (n = SSL_read(p->cli, out + got, (int)(len - got))) > 0) {
        got += (size_t)n;
    }
    return got;
}

static void round_trip(unsigned seed)
{
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->seed = seed;
    handshake(p);

    /* Client -> server: 100 KB spans several records and feeds. */
    size_t up_len = (size_t)100 * 1000;
    uint8_t *up = malloc(up_len);
    assert_non_null(up);
    fill(up, up_len, 7);
    assert_int_equal(SSL_write(p->cli, up, (int)up_len), (int)up_len);
    client_to_server(p);
    assert_int_equal(p->plain_len, up_len);
    assert_memory_equal(p->plain, up, up_len);

    /* Server -> client: several writes, then all ciphertext detached at once. */
    size_t down_len = (size_t)150 * 1000;
    uint8_t *down = malloc(down_len);
    uint8_t *back = malloc(down_len);
    assert_non_null(down);
    assert_non_null(back);
    fill(down, down_len, 3);
    const size_t record = (size_t)16 * 1024;
    for (size_t off = 0; off < down_len; off += record) {
        size_t n = down_len - off < record ? down_len - off : record;
        assert_int_equal(tls_conn_write(p->tc, down + off, n), (long)n);
    }
    assert_true(tls_conn_out_pending(p->tc) > down_len);
    server_to_client(p);
    assert_int_equal(client_read_all(p, back, down_len), down_len);
    assert_memory_equal(back, down, down_len);

    /* Idle: nothing pending, so no staging memory is held either way. */
    assert_int_equal(tls_conn_out_pending(p->tc), 0);
    assert_int_equal(tls_conn_staged_bytes(p->tc), 0);

    free(up);
    free(down);
    free(back);
    pair_free(p);
    free(p);
}

static void test_round_trip_whole(void **state)
{
    (void)state;
    round_trip(0);
}

static void test_round_trip_byte_at_a_time(void **state)
{
    (void)state;
    round_trip(1);
}

static void test_round_trip_random_chunks(void **state)
{
    (void)state;
    for (unsigned seed = 2; seed < 6; seed++) {
        round_trip(seed);
    }
}

/* The copying take-out in small pieces, interleaved with more writes: the
 * stream stays in order, and the buffer goes away once it is drained. */
static void test_take_out_in_pieces(void **state)
{
    (void)state;
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    handshake(p);
    uint8_t msg[40000];
    uint8_t back[2 * sizeof(msg)];
    fill(msg, sizeof(msg), 11);
    assert_int_equal(tls_conn_write(p->tc, msg, sizeof(msg)), (long)sizeof(msg));
    uint8_t piece[777];
    size_t taken = 0;
    bool wrote_again = false;
    while (tls_conn_out_pending(p->tc) > 0) {
        size_t before = tls_conn_out_pending(p->tc);
        size_t n = tls_conn_take_out(p->tc, piece, sizeof(piece));
        assert_true(n > 0 && n <= sizeof(piece));
        assert_int_equal(tls_conn_out_pending(p->tc), before - n);
        assert_int_equal(BIO_write(SSL_get_rbio(p->cli), piece, (int)n), (int)n);
        taken += n;
        if (!wrote_again && taken > sizeof(msg) / 2) {
            /* More ciphertext appended behind a partly consumed buffer. */
            assert_int_equal(tls_conn_write(p->tc, msg, sizeof(msg)), (long)sizeof(msg));
            wrote_again = true;
        }
    }
    assert_int_equal(tls_conn_staged_bytes(p->tc), 0);
    assert_int_equal(client_read_all(p, back, sizeof(back)), sizeof(back));
    assert_memory_equal(back, msg, sizeof(msg));
    assert_memory_equal(back + sizeof(msg), msg, sizeof(msg));
    pair_free(p);
    free(p);
}

/* A record split across feeds: the partial record stays with OpenSSL, the
 * rest arrives later, and the plaintext is exactly what was sent. */
static void test_split_record_and_close_notify(void **state)
{
    (void)state;
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    handshake(p);
    assert_int_equal(SSL_write(p->cli, "hello", 5), 5);
    uint8_t ct[256];
    int n = BIO_read(SSL_get_wbio(p->cli), ct, sizeof(ct));
    assert_true(n > 6);
    uint8_t out[64];
    assert_int_equal(tls_conn_feed(p->tc, ct, 3), 0);
    assert_int_equal(tls_conn_read(p->tc, out, sizeof(out)), TLS_AGAIN);
    assert_int_equal(tls_conn_feed(p->tc, ct + 3, (size_t)n - 3), 0);
    assert_int_equal(tls_conn_read(p->tc, out, sizeof(out)), 5);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(tls_conn_staged_bytes(p->tc), 0);
    /* close_notify both ways. */
    tls_conn_close_notify(p->tc);
    assert_true(tls_conn_out_pending(p->tc) > 0);
    server_to_client(p);
    assert_int_equal(SSL_read(p->cli, out, sizeof(out)), 0);
    assert_int_equal(SSL_get_error(p->cli, 0), SSL_ERROR_ZERO_RETURN);
    (void)SSL_shutdown(p->cli);
    n = BIO_read(SSL_get_wbio(p->cli), ct, sizeof(ct));
    assert_true(n > 0);
    assert_int_equal(tls_conn_feed(p->tc, ct, (size_t)n), 0);
    assert_int_equal(tls_conn_read(p->tc, out, sizeof(out)), TLS_EOF);
    pair_free(p);
    free(p);
}

/* A few bytes each way after the handshake: what each side wrote is what
 * the other reads. */
static void small_exchange(pair_t *p, const char *up, const char *down)
{
    size_t before = p->plain_len;
    assert_int_equal(SSL_write(p->cli, up, (int)strlen(up)), (int)strlen(up));
    client_to_server(p);
    assert_int_equal(p->plain_len - before, strlen(up));
    assert_memory_equal(p->plain + before, up, strlen(up));
    assert_int_equal(tls_conn_write(p->tc, (const uint8_t *)down, strlen(down)),
                     (long)strlen(down));
    server_to_client(p);
    char back[256];
    assert_int_equal(client_read_all(p, (uint8_t *)back, strlen(down)), strlen(down));
    assert_memory_equal(back, down, strlen(down));
}

/* TLS 1.3 with each suite: the broker drops the SSL object and protects the
 * records itself, interoperating with OpenSSL's client both ways (its first
 * record follows OpenSSL's NewSessionTickets); TLS 1.2 stays on OpenSSL. */
static void test_record_mode_per_version_and_suite(void **state)
{
    (void)state;
    const char *suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                            "TLS_CHACHA20_POLY1305_SHA256"};
    for (int i = 0; i < 3; i++) {
        pair_t *p = calloc(1, sizeof(*p));
        assert_non_null(p);
        handshake_with(p, 0, suites[i]);
        assert_true(tls_conn_record_mode(p->tc));
        small_exchange(p, "ping", "pong");
        small_exchange(p, "ping2", "pong2");
        assert_int_equal(tls_conn_staged_bytes(p->tc), 0);
        pair_free(p);
        free(p);
    }
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    handshake_with(p, TLS1_2_VERSION, NULL);
    assert_int_equal(SSL_version(p->cli), TLS1_2_VERSION);
    assert_false(tls_conn_record_mode(p->tc));
    small_exchange(p, "ping", "pong");
    pair_free(p);
    free(p);
}

/* KeyUpdate from the client: the broker takes the new read key; asked to,
 * it sends its own KeyUpdate at once and writes under the new key. */
static void test_key_update_from_client(void **state)
{
    (void)state;
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    handshake(p);
    assert_true(tls_conn_record_mode(p->tc));
    for (int round = 0; round < 3; round++) {
        assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_REQUESTED), 1);
        assert_int_equal(SSL_write(p->cli, "one", 3), 3);
        size_t before = p->plain_len;
        client_to_server(p);
        assert_int_equal(p->plain_len - before, 3);
        /* Our KeyUpdate: one record of a 5-byte handshake message. */
        assert_int_equal(tls_conn_out_pending(p->tc), TLSR_HEADER + 5 + 1 + TLSR_TAG);
        assert_int_equal(tls_conn_write(p->tc, (const uint8_t *)"two", 3), 3);
        server_to_client(p);
        char back[8];
        assert_int_equal(client_read_all(p, (uint8_t *)back, 3), 3);
        assert_memory_equal(back, "two", 3);
    }
    assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    assert_int_equal(SSL_write(p->cli, "three", 5), 5);
    client_to_server(p);
    assert_int_equal(tls_conn_out_pending(p->tc), 0);
    small_exchange(p, "four", "five");
    pair_free(p);
    free(p);
}

/* The client's reason for the alert it received, after reading. */
static int client_alert_reason(pair_t *p)
{
    uint8_t buf[64];
    ERR_clear_error();
    assert_true(SSL_read(p->cli, buf, sizeof(buf)) <= 0);
    int reason = ERR_GET_REASON(ERR_peek_last_error());
    ERR_clear_error();
    return reason;
}

/* A changed byte in a record: no plaintext, bad_record_mac to the peer, and
 * the connection refuses everything after. */
static void test_corrupted_record_closes(void **state)
{
    (void)state;
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    handshake(p);
    assert_true(tls_conn_record_mode(p->tc));
    assert_int_equal(SSL_write(p->cli, "secret data", 11), 11);
    uint8_t ct[256];
    int n = BIO_read(SSL_get_wbio(p->cli), ct, sizeof(ct));
    assert_true(n > 10);
    ct[8] ^= 0x40;
    assert_int_equal(tls_conn_feed(p->tc, ct, (size_t)n), 0);
    uint8_t out[64] = {0};
    assert_int_equal(tls_conn_read(p->tc, out, sizeof(out)), TLS_FATAL);
    static const uint8_t zero[64];
    assert_memory_equal(out, zero, sizeof(out));
    assert_int_equal(tls_conn_staged_bytes(p->tc) - tls_conn_out_pending(p->tc) > 0, 1);
    server_to_client(p);
    assert_int_equal(client_alert_reason(p), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
    assert_int_equal(tls_conn_read(p->tc, out, sizeof(out)), TLS_FATAL);
    assert_int_equal(tls_conn_write(p->tc, (const uint8_t *)"x", 1), TLS_FATAL);
    pair_free(p);
    free(p);
}

/* A header announcing 65,535 bytes: refused at the header, not after
 * buffering them, with record_overflow. */
static void test_huge_length_closes(void **state)
{
    (void)state;
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    handshake(p);
    const uint8_t hdr[5] = {23, 3, 3, 0xff, 0xff};
    assert_int_equal(tls_conn_feed(p->tc, hdr, sizeof(hdr)), 0);
    uint8_t out[64];
    assert_int_equal(tls_conn_read(p->tc, out, sizeof(out)), TLS_FATAL);
    server_to_client(p);
    assert_int_equal(client_alert_reason(p), SSL_R_TLSV1_ALERT_RECORD_OVERFLOW);
    pair_free(p);
    free(p);
}

/* Records a real client would not send, sealed with its own keys. */
typedef struct {
    pair_t *p;
    tlsr_suite_t suite;
    tls_dir_t cw;
} forger_t;

static void forger_init(forger_t *f, pair_t *p)
{
    f->p = p;
    const SSL_CIPHER *c = SSL_get_current_cipher(p->cli);
    f->suite = tlsr_suite_from_id(SSL_CIPHER_get_id(c) & 0xFFFFu);
    assert_int_not_equal(f->suite, TLSR_NONE);
    assert_int_equal(client_secret_len, tlsr_hash_len(f->suite));
    assert_int_equal(tlsr_dir_init(&f->cw, f->suite, client_secret), 0);
}

static long forge(forger_t *f, uint8_t type, const void *bytes, size_t len)
{
    uint8_t rec[TLSR_HEADER + 64 + 1 + TLSR_TAG];
    tlsr_piece_t piece = {bytes, len};
    size_t n = tlsr_seal(f->suite, &f->cw, type, &piece, 1, rec);
    assert_true(n > 0);
    assert_int_equal(tls_conn_feed(f->p->tc, rec, n), 0);
    uint8_t out[64];
    return tls_conn_read(f->p->tc, out, sizeof(out));
}

static void test_forged_post_handshake_records(void **state)
{
    (void)state;
    static const uint8_t ticket[] = {4, 0, 0, 4, 0, 0, 0, 0};
    static const uint8_t bad_update[] = {24, 0, 0, 1, 2};
    static const uint8_t update_then_more[] = {24, 0, 0, 1, 0, 24, 0, 0, 1, 0};
    static const uint8_t split_update[] = {24, 0, 0};
    static const uint8_t long_alert[] = {1, 0, 0};
    static const uint8_t close_notify[] = {1, 0};
    static const uint8_t cancel[] = {1, 90};
    static const uint8_t fatal_alert[] = {2, 40};
    struct {
        int type;
        int alert; /* what the client then reads, 0: none */
        const uint8_t *bytes;
        size_t len;
        long want;
    } cases[] = {
        {TLSR_CT_HANDSHAKE, SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE, ticket, sizeof ticket, TLS_FATAL},
        {TLSR_CT_HANDSHAKE, SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER, bad_update, sizeof bad_update,
         TLS_FATAL},
        {TLSR_CT_HANDSHAKE, SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE, update_then_more,
         sizeof update_then_more, TLS_FATAL},
        {TLSR_CT_HANDSHAKE, SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE, split_update, sizeof split_update,
         TLS_FATAL},
        {TLSR_CT_ALERT, SSL_R_TLSV1_ALERT_DECODE_ERROR, long_alert, sizeof long_alert, TLS_FATAL},
        {20, SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE, close_notify, sizeof close_notify, TLS_FATAL},
        {TLSR_CT_ALERT, 0, close_notify, sizeof close_notify, TLS_EOF},
        {TLSR_CT_ALERT, 0, fatal_alert, sizeof fatal_alert, TLS_FATAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pair_t *p = calloc(1, sizeof(*p));
        assert_non_null(p);
        handshake(p);
        forger_t f;
        forger_init(&f, p);
        /* user_canceled is a warning: the connection goes on. */
        assert_int_equal(forge(&f, TLSR_CT_ALERT, cancel, sizeof cancel), TLS_AGAIN);
        long got = forge(&f, (uint8_t)cases[i].type, cases[i].bytes, cases[i].len);
        if (got != cases[i].want) {
            fail_msg("case %zu: got %ld", i, got);
        }
        if (cases[i].alert != 0) {
            server_to_client(p);
            assert_int_equal(client_alert_reason(p), cases[i].alert);
        } else {
            assert_int_equal(tls_conn_out_pending(p->tc), 0);
        }
        pair_free(p);
        free(p);
    }
    /* Empty application records: a short run is fine, a long one closes. */
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    handshake(p);
    forger_t f;
    forger_init(&f, p);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(forge(&f, TLSR_CT_APP, "", 0), TLS_AGAIN);
    }
    assert_int_equal(forge(&f, TLSR_CT_APP, "x", 1), 1);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(forge(&f, TLSR_CT_APP, "", 0), TLS_AGAIN);
    }
    assert_int_equal(forge(&f, TLSR_CT_APP, "", 0), TLS_FATAL);
    pair_free(p);
    free(p);
}

/* Plaintext of one record handed out in pieces smaller than the record. */
static void test_record_read_in_small_pieces(void **state)
{
    (void)state;
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    handshake(p);
    uint8_t msg[10000];
    fill(msg, sizeof(msg), 5);
    assert_int_equal(SSL_write(p->cli, msg, sizeof(msg)), (int)sizeof(msg));
    uint8_t ct[12000];
    int n = BIO_read(SSL_get_wbio(p->cli), ct, sizeof(ct));
    assert_int_equal(tls_conn_feed(p->tc, ct, (size_t)n), 0);
    uint8_t back[sizeof(msg)];
    size_t got = 0;
    long r;
    while ((r = tls_conn_read(p->tc, back + got, 333)) > 0) {
        assert_true(r <= 333);
        got += (size_t)r;
    }
    assert_int_equal(r, TLS_AGAIN);
    assert_int_equal(got, sizeof(msg));
    assert_memory_equal(back, msg, sizeof(msg));
    assert_int_equal(tls_conn_staged_bytes(p->tc), 0);
    pair_free(p);
    free(p);
}

/* tls_conn_writev: many small pieces become full records, in order. */
static void test_writev_fills_records(void **state)
{
    (void)state;
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    handshake(p);
    static uint8_t data[100000];
    fill(data, sizeof(data), 9);
    tls_iov_t iov[1000];
    for (int i = 0; i < 1000; i++) {
        iov[i] = (tls_iov_t){data + (size_t)i * 100, 100};
    }
    size_t done = 0;
    unsigned first = 0;
    while (done < sizeof(data)) {
        /* Resume where the last call stopped (as conn.c does via outq). */
        tls_iov_t rest[1000];
        unsigned k = 0;
        for (unsigned i = first; i < 1000; i++) {
            rest[k++] = iov[i];
        }
        size_t skip = done - (size_t)first * 100;
        rest[0].base += skip;
        rest[0].len -= skip;
        long w = tls_conn_writev(p->tc, rest, k);
        assert_true(w > 0);
        done += (size_t)w;
        first = (unsigned)(done / 100);
    }
    /* 100,000 bytes in ceil(100000 / 16384) = 7 records. */
    assert_int_equal(tls_conn_out_pending(p->tc),
                     sizeof(data) + (size_t)7 * (TLSR_HEADER + 1 + TLSR_TAG));
    server_to_client(p);
    static uint8_t back[sizeof(data)];
    assert_int_equal(client_read_all(p, back, sizeof(back)), sizeof(back));
    assert_memory_equal(back, data, sizeof(data));
    pair_free(p);
    free(p);
}

/* One record from the broker, read back by the client. */
static void one_record_down(pair_t *p, const uint8_t *msg, size_t len)
{
    assert_int_equal(tls_conn_write(p->tc, msg, len), (long)len);
    server_to_client(p);
    uint8_t back[256];
    assert_true(len <= sizeof back);
    assert_int_equal(client_read_all(p, back, len), len);
    assert_memory_equal(back, msg, len);
}

/* A connection that writes many records between two heartbeats seals with
 * its own keyed context (the records still open at the client, a KeyUpdate
 * in between included); a heartbeat period with few records frees it, and
 * the connection goes on with the shared one. An idle one never gets one. */
static void test_hot_connection_owns_its_write_context(void **state)
{
    (void)state;
    const char *suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                            "TLS_CHACHA20_POLY1305_SHA256"};
    for (int si = 0; si < 3; si++) {
        pair_t *p = calloc(1, sizeof(*p));
        assert_non_null(p);
        handshake_with(p, 0, suites[si]);
        assert_true(tls_conn_record_mode(p->tc));
        uint8_t msg[114];
        fill(msg, sizeof msg, (unsigned)si);
        /* A few records per period: never hot. */
        for (int period = 0; period < 3; period++) {
            for (int i = 0; i < 3; i++) {
                one_record_down(p, msg, sizeof msg);
            }
            tls_conn_heartbeat(p->tc);
            assert_false(tls_conn_write_ctx_owned(p->tc));
        }
        /* Many: hot from the ninth record of the period on. */
        int i = 0;
        while (!tls_conn_write_ctx_owned(p->tc)) {
            assert_true(i++ < 9);
            msg[0] = (uint8_t)i;
            one_record_down(p, msg, sizeof msg);
        }
        for (int k = 0; k < 20; k++) {
            msg[1] = (uint8_t)k;
            one_record_down(p, msg, sizeof msg);
        }
        /* The client asks for our KeyUpdate: sent, then the own context
         * seals under the new key. */
        assert_int_equal(SSL_key_update(p->cli, SSL_KEY_UPDATE_REQUESTED), 1);
        assert_int_equal(SSL_write(p->cli, "k", 1), 1);
        client_to_server(p);
        assert_true(tls_conn_write_ctx_owned(p->tc));
        for (int k = 0; k < 20; k++) {
            msg[2] = (uint8_t)k;
            one_record_down(p, msg, sizeof msg);
        }
        /* Busy periods keep it. */
        tls_conn_heartbeat(p->tc);
        assert_true(tls_conn_write_ctx_owned(p->tc));
        for (int k = 0; k < 9; k++) {
            one_record_down(p, msg, sizeof msg);
        }
        tls_conn_heartbeat(p->tc);
        assert_true(tls_conn_write_ctx_owned(p->tc));
        /* A quiet one frees it; the connection still works. */
        one_record_down(p, msg, sizeof msg);
        tls_conn_heartbeat(p->tc);
        assert_false(tls_conn_write_ctx_owned(p->tc));
        small_exchange(p, "still", "there");
        assert_false(tls_conn_write_ctx_owned(p->tc));
        pair_free(p);
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_whole),
        cmocka_unit_test(test_round_trip_byte_at_a_time),
        cmocka_unit_test(test_round_trip_random_chunks),
        cmocka_unit_test(test_take_out_in_pieces),
        cmocka_unit_test(test_split_record_and_close_notify),
        cmocka_unit_test(test_record_mode_per_version_and_suite),
        cmocka_unit_test(test_key_update_from_client),
        cmocka_unit_test(test_corrupted_record_closes),
        cmocka_unit_test(test_huge_length_closes),
        cmocka_unit_test(test_forged_post_handshake_records),
        cmocka_unit_test(test_record_read_in_small_pieces),
        cmocka_unit_test(test_writev_fills_records),
        cmocka_unit_test(test_hot_connection_owns_its_write_context),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
