/*
 * fuzz_tls.c - libFuzzer target for the broker's TLS module (broker/tls.c:
 * a server SSL over memory BIOs) and what the broker does with the bytes it
 * decrypts.
 *
 * Setup (once, LLVMFuzzerInitialize): an EC P-256 key and a self-signed
 * certificate are generated in memory, written to a private temporary
 * directory for tls_server_new() (which loads files, as the broker does) and
 * deleted again; an OpenSSL client context (no verification) is kept for the
 * modes that need a real peer.
 *
 * Input: byte 0 picks the mode (bits 0-1), how the bytes are cut into
 * socket reads (bits 2-5) and, for the handshake modes, TLS 1.2 instead of
 * 1.3 (bit 6) and a renegotiation attempt (bit 7); the rest is:
 *   mode 0  the client's ciphertext from the first byte on: ClientHello
 *           parsing, the record layer, alerts, a handshake that never ends;
 *   mode 1  plaintext: a real client completes the handshake, then sends the
 *           bytes through SSL_write; the broker's side decrypts them and
 *           hands them to the HTTP request parser and, after an upgrade the
 *           handshake check accepts, to the WebSocket frame parser and the
 *           message parser (the broker's path for decrypted bytes, minus the
 *           event loop); the server also encrypts a reply that the client
 *           must read back intact;
 *   mode 2  ciphertext again, but after a completed handshake: forged or
 *           truncated records, alerts, post-handshake messages;
 *   mode 3  after a TLS 1.3 handshake, records the broker can authenticate
 *           (sealed with the client's own traffic keys, from its key log)
 *           whose content is the input: [type, length, content...] repeated,
 *           so the broker's record opener sees every inner content type,
 *           padding, alerts, KeyUpdate (valid, invalid, split, several) and
 *           empty records; afterwards, if the connection lives, the broker's
 *           reply must reach the real client intact (its KeyUpdates and
 *           write keys included).
 *
 * Invariants: tls_conn_read() returns a length within the buffer or one of
 * TLS_AGAIN / TLS_EOF / TLS_FATAL (with a reason); a client with no
 * verification always completes the handshake; what the client writes is
 * exactly what the server reads (mode 1) and the reverse; a refused
 * renegotiation never yields plaintext that was not sent.
 *
 * The handshake modes use fresh randomness on each run (ECDHE), so a crash
 * found there reproduces in its mode, not byte for byte in its records.
 */
#include "net/tls.h"
#include "net/tls_record.h"
#include "wsb/handshake.h"
#include "wsb/http.h"
#include "wsb/message.h"
#include "wsb/ws_frame.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An assert that survives NDEBUG builds: a fuzzer must never stop checking. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            (void)fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_PLAIN 65536

static tls_server_t *server;
static SSL_CTX *client_ctx;

/* The client's application traffic secret of the last handshake (mode 3). */
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
    CHECK(client_secret_len <= sizeof client_secret);
    for (size_t i = 0; i < client_secret_len; i++) {
        unsigned v = 0;
        CHECK(sscanf(hex + 2 * i, "%2x", &v) == 1);
        client_secret[i] = (uint8_t)v;
    }
}

/* ---- setup ---------------------------------------------------------------------------------- */

static EVP_PKEY *make_key(void)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    CHECK(kctx != NULL && EVP_PKEY_keygen_init(kctx) == 1);
    CHECK(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kctx, NID_X9_62_prime256v1) == 1);
    CHECK(EVP_PKEY_keygen(kctx, &key) == 1);
    EVP_PKEY_CTX_free(kctx);
    return key;
}

static X509 *make_cert(EVP_PKEY *key)
{
    X509 *x = X509_new();
    CHECK(x != NULL);
    CHECK(X509_set_version(x, 2) == 1);
    CHECK(ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1);
    CHECK(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL);
    CHECK(X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365) != NULL);
    X509_NAME *name = X509_get_subject_name(x);
    CHECK(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                                     -1, -1, 0) == 1);
    CHECK(X509_set_issuer_name(x, name) == 1);
    CHECK(X509_set_pubkey(x, key) == 1);
    CHECK(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    EVP_PKEY *key = make_key();
    X509 *cert = make_cert(key);
    char dir[] = "/tmp/wsb-fuzz-tls-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char cert_path[64];
    char key_path[64];
    (void)snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    (void)snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    FILE *f = fopen(cert_path, "w");
    CHECK(f != NULL && PEM_write_X509(f, cert) == 1);
    CHECK(fclose(f) == 0);
    f = fopen(key_path, "w");
    CHECK(f != NULL && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
    CHECK(fclose(f) == 0);

    tls_files_t files = {.cert = cert_path, .key = key_path, .ca = ""};
    char err[512];
    server = tls_server_new(&files, err, sizeof(err));
    if (server == NULL) {
        (void)fprintf(stderr, "fuzz_tls: %s\n", err);
        abort();
    }
    (void)unlink(cert_path);
    (void)unlink(key_path);
    (void)rmdir(dir);
    X509_free(cert);
    EVP_PKEY_free(key);

    client_ctx = SSL_CTX_new(TLS_client_method());
    CHECK(client_ctx != NULL);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_keylog_callback(client_ctx, client_keylog);
    static const unsigned char alpn[] = "\x08http/1.1";
    CHECK(SSL_CTX_set_alpn_protos(client_ctx, alpn, sizeof(alpn) - 1) == 0);
    return 0;
}

/* ---- the server side, as conn.c drives it --------------------------------------------------- */

typedef struct {
    tls_conn_t *tc;
    uint8_t plain[MAX_PLAIN]; /* what the server decrypted */
    size_t plain_len;
    long last; /* the last non-positive tls_conn_read result */
    bool dead; /* TLS_EOF or TLS_FATAL: conn.c closes the connection */
} side_t;

/* Decrypts everything available, then moves the server's ciphertext out
 * (to `peer`'s read BIO when there is a peer, else nowhere). */
static void server_pump(side_t *s, SSL *peer)
{
    if (!s->dead) {
        for (;;) {
            uint8_t buf[4096];
            long n = tls_conn_read(s->tc, buf, sizeof(buf));
            if (n > 0) {
                CHECK((size_t)n <= sizeof(buf));
                size_t room = sizeof(s->plain) - s->plain_len;
                size_t take = (size_t)n < room ? (size_t)n : room;
                memcpy(s->plain + s->plain_len, buf, take);
                s->plain_len += take;
                continue;
            }
            CHECK(n == TLS_AGAIN || n == TLS_EOF || n == TLS_FATAL);
            s->last = n;
            if (n == TLS_FATAL) {
                CHECK(tls_conn_error(s->tc)[0] != '\0');
            }
            s->dead = n != TLS_AGAIN;
            break;
        }
    }
    uint8_t out[8192];
    size_t pending = tls_conn_out_pending(s->tc);
    while (pending > 0) {
        size_t n = tls_conn_take_out(s->tc, out, sizeof(out));
        CHECK(n > 0 && n <= sizeof(out) && n <= pending);
        if (peer != NULL) {
            CHECK(BIO_write(SSL_get_rbio(peer), out, (int)n) == (int)n);
        }
        pending = tls_conn_out_pending(s->tc);
    }
}

/* Feeds `len` bytes to the server in reads of `chunk` bytes, pumping after each. */
static void server_feed(side_t *s, const uint8_t *data, size_t len, size_t chunk, SSL *peer)
{
    while (len > 0 && !s->dead) {
        size_t n = len < chunk ? len : chunk;
        /* Each read in its own exact-size copy, so ASan sees an over-read. */
        uint8_t *copy = malloc(n);
        CHECK(copy != NULL);
        memcpy(copy, data, n);
        CHECK(tls_conn_feed(s->tc, copy, n) == 0);
        free(copy);
        server_pump(s, peer);
        data += n;
        len -= n;
    }
}

/* Moves the client's pending ciphertext to the server. */
static void client_to_server(side_t *s, SSL *client, size_t chunk)
{
    uint8_t buf[16384];
    int n;
    while ((n = BIO_read(SSL_get_wbio(client), buf, (int)sizeof(buf))) > 0) {
        server_feed(s, buf, (size_t)n, chunk, client);
    }
}

static SSL *client_new(bool tls12)
{
    SSL *c = SSL_new(client_ctx);
    CHECK(c != NULL);
    BIO *rb = BIO_new(BIO_s_mem());
    BIO *wb = BIO_new(BIO_s_mem());
    CHECK(rb != NULL && wb != NULL);
    BIO_set_mem_eof_return(rb, -1);
    BIO_set_mem_eof_return(wb, -1);
    SSL_set_bio(c, rb, wb);
    if (tls12) {
        CHECK(SSL_set_max_proto_version(c, TLS1_2_VERSION) == 1);
    }
    CHECK(SSL_set_tlsext_host_name(c, "localhost") == 1);
    SSL_set_connect_state(c);
    return c;
}

/* A real client against the server: must complete in a few round trips. */
static void handshake(side_t *s, SSL *client, size_t chunk)
{
    for (int round = 0; round < 10; round++) {
        ERR_clear_error();
        int rc = SSL_do_handshake(client);
        /* Read before the server runs: both share this thread's error queue. */
        int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(client, rc);
        CHECK(err == SSL_ERROR_NONE || err == SSL_ERROR_WANT_READ);
        client_to_server(s, client, chunk);
        if (rc == 1 && tls_conn_handshake_done(s->tc)) {
            return;
        }
        CHECK(!s->dead);
    }
    (void)fprintf(stderr, "fuzz_tls: the handshake did not complete in 10 rounds\n");
    abort();
}

/* ---- what the broker does with decrypted bytes ----------------------------------------------- */

static int on_data(void *user_data, const uint8_t *data, size_t len)
{
    (void)user_data;
    (void)data;
    (void)len;
    return 0;
}

/* The decrypted bytes through the HTTP parser and, after an accepted
 * upgrade, the frame parser (server role) and the message parser for each
 * single-frame text message. */
static void broker_consume(uint8_t *plain, size_t len)
{
    wsb_http_request_t *r = wsb_http_request_new(8192, 65536);
    CHECK(r != NULL);
    size_t used = 0;
    int rc = wsb_http_request_feed(r, (const char *)plain, len, &used);
    CHECK(used <= len);
    if (rc == 0) {
        wsb_handshake_t hs;
        if (wsb_handshake_check(r, NULL, &hs) == 0) {
            static const wsb_ws_parser_callbacks_t cb = {
                .on_message_data = on_data,
            };
            wsb_ws_parser_t p;
            wsb_ws_parser_init(&p, WSB_WS_ROLE_SERVER, 65536, &cb, NULL);
            size_t consumed = 0;
            (void)wsb_ws_parser_feed(&p, plain + used, len - used, &consumed);
            CHECK(consumed <= len - used);
            /* A text message the size of one read is what clients send most:
             * give the message parser the rest of the plaintext as one. */
            wsb_msg_t m;
            wsb_msg_error_t e;
            if (wsb_msg_parse((const char *)plain + used, len - used, &m, &e) == 0) {
                wsb_msg_free(&m);
            }
        }
    }
    wsb_http_request_free(r);
}

/* ---- modes ---------------------------------------------------------------------------------- */

static size_t chunk_of(uint8_t b)
{
    static const size_t sizes[16] = {1,   2,   3,    5,    7,    16,    64,    100,
                                     512, 997, 1400, 4096, 5000, 16389, 16384, 65536};
    return sizes[(b >> 2) & 15];
}

/* Mode 3: see the top of the file. */
static void forged_records(side_t *s, SSL *client, const uint8_t *data, size_t size, size_t chunk)
{
    CHECK(tls_conn_record_mode(s->tc));
    const SSL_CIPHER *c = SSL_get_current_cipher(client);
    tlsr_suite_t suite = tlsr_suite_from_id(SSL_CIPHER_get_id(c) & 0xFFFFu);
    CHECK(suite != TLSR_NONE && client_secret_len == tlsr_hash_len(suite));
    tls_dir_t cw;
    CHECK(tlsr_dir_init(&cw, suite, client_secret) == 0);
    static uint8_t rec[TLSR_HEADER + TLSR_MAX_PLAIN + 1 + TLSR_TAG];
    size_t sent_app = 0;
    while (size >= 2 && !s->dead) {
        uint8_t type = data[0];
        size_t len = data[1] == 255 ? TLSR_MAX_PLAIN : data[1];
        data += 2;
        size -= 2;
        if (len > size) {
            len = size;
        }
        tlsr_piece_t piece = {data, len};
        size_t n = tlsr_seal(suite, &cw, type, &piece, 1, rec);
        CHECK(n == TLSR_HEADER + len + 1 + TLSR_TAG);
        size_t before = s->plain_len;
        server_feed(s, rec, n, chunk, client);
        if (type == TLSR_CT_APP && !s->dead) {
            /* Application data arrives exactly as sealed. */
            CHECK(s->plain_len - before == len || s->plain_len == sizeof(s->plain));
            CHECK(memcmp(s->plain + before, data, s->plain_len - before) == 0);
            sent_app += len;
        } else if (type != TLSR_CT_APP && type != 0) {
            /* Nothing else ever yields plaintext (type 0 is padding: the
             * content's last non-zero byte is the type then). */
            CHECK(s->plain_len == before);
        }
        /* A KeyUpdate the broker accepted: the forger's key moves too. */
        if (!s->dead && type == TLSR_CT_HANDSHAKE && len == 5 && data[0] == 24) {
            CHECK(tlsr_dir_update(&cw, suite) == 0);
        }
        data += len;
        size -= len;
    }
    (void)sent_app;
    tlsr_dir_wipe(&cw);
    if (!s->dead) {
        /* The reply reaches the real client under whatever keys the
         * broker moved to. */
        CHECK(tls_conn_write(s->tc, (const uint8_t *)"reply", 5) == 5);
        server_pump(s, client);
        uint8_t back[8];
        int r = SSL_read(client, back, sizeof back);
        CHECK(r == 5 && memcmp(back, "reply", 5) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t ctl = data[0];
    data++;
    size--;
    size_t chunk = chunk_of(ctl);
    side_t *s = calloc(1, sizeof(*s));
    CHECK(s != NULL);
    s->tc = tls_conn_new(server);
    CHECK(s->tc != NULL);
    int mode = ctl & 3;

    if (mode == 0) {
        server_feed(s, data, size, chunk, NULL);
        /* No handshake can complete without the key exchange: nothing may
         * have been decrypted, and writes must wait. */
        CHECK(s->plain_len == 0);
        if (!tls_conn_handshake_done(s->tc)) {
            CHECK(tls_conn_write(s->tc, (const uint8_t *)"x", 1) == 0);
        }
        tls_conn_close_notify(s->tc);
        server_pump(s, NULL);
    } else {
        SSL *client = client_new(mode != 3 && (ctl & 0x40) != 0);
        handshake(s, client, chunk);
        if (mode == 3) {
            forged_records(s, client, data, size, chunk);
        } else if (mode == 1) {
            if (size > MAX_PLAIN) {
                size = MAX_PLAIN;
            }
            bool renegotiated = false;
            size_t sent = 0;
            while (sent < size) {
                size_t n = size - sent < chunk ? size - sent : chunk;
                CHECK(SSL_write(client, data + sent, (int)n) == (int)n);
                sent += n;
            }
            if ((ctl & 0x80) != 0 && SSL_version(client) == TLS1_2_VERSION) {
                /* Refused: the server must not renegotiate (SSL_OP_NO_RENEGOTIATION). */
                (void)SSL_renegotiate(client);
                (void)SSL_do_handshake(client);
                renegotiated = true;
            }
            client_to_server(s, client, chunk);
            size_t got = s->plain_len;
            CHECK(got <= size && memcmp(s->plain, data, got) == 0);
            CHECK(got == size || s->dead);
            if (got == size && !renegotiated) {
                /* The reply path: the broker encrypts, the client reads it back. */
                CHECK(tls_conn_write(s->tc, data, size) == (long)size);
                server_pump(s, client);
                uint8_t *back = malloc(size + 1);
                CHECK(back != NULL);
                size_t n = 0;
                while (n < size) {
                    int r = SSL_read(client, back + n, (int)(size - n));
                    if (r <= 0) {
                        break;
                    }
                    n += (size_t)r;
                }
                CHECK(n == size && memcmp(back, data, size) == 0);
                free(back);
            }
            broker_consume(s->plain, got);
        } else {
            server_feed(s, data, size, chunk, client);
        }
        ERR_clear_error();
        SSL_free(client);
    }
    tls_conn_free(s->tc);
    free(s);
    ERR_clear_error();
    return 0;
}
