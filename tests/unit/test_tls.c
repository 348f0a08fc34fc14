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

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static tls_server_t *server;
static SSL_CTX *client_ctx;

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

static void handshake(pair_t *p)
{
    p->tc = tls_conn_new(server);
    assert_non_null(p->tc);
    p->cli = SSL_new(client_ctx);
    assert_non_null(p->cli);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_whole),
        cmocka_unit_test(test_round_trip_byte_at_a_time),
        cmocka_unit_test(test_round_trip_random_chunks),
        cmocka_unit_test(test_take_out_in_pieces),
        cmocka_unit_test(test_split_record_and_close_notify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
