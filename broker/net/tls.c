/* tls.c - OpenSSL over memory BIOs, context reload (see tls.h). */
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_server_s {
    pthread_mutex_t lock; /* guards ctx: swapped by reload, read by tls_conn_new */
    SSL_CTX *ctx;
};

struct tls_conn_s {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the socket (owned by ssl) */
    BIO *wbio; /* ciphertext for the socket (owned by ssl) */
    const char *error;
    bool sent_close_notify;
};

static const char *openssl_reason(void)
{
    static _Thread_local char buf[256];
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        return "unknown error";
    }
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

/* ALPN: "http/1.1" when the client offers it; otherwise no ALPN at all
 * rather than a fatal alert, so clients that offer only h2 still fall back. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char http11[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, http11, sizeof http11 - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *build_ctx(const tls_files_t *files, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        (void)snprintf(err, errlen, "tls: cannot create a context: %s", openssl_reason());
        return NULL;
    }
    (void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    /* TLS 1.2: ECDHE with AEAD ciphers only (TLS 1.3's suites are all fine). */
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1") != 1) {
        (void)snprintf(err, errlen, "tls: cipher list refused: %s", openssl_reason());
        goto fail;
    }
    /* Key exchange: X25519 and the NIST curves browsers offer. Finite-field
     * groups (ffdhe2048, ...) are slower for the same strength and invite
     * small-group downgrades; OpenSSL 3 offers them in TLS 1.3 by default. */
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
        (void)snprintf(err, errlen, "tls: key exchange groups refused: %s", openssl_reason());
        goto fail;
    }
    /* Idle connections give their 34 KB of record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, files->cert) != 1) {
        (void)snprintf(err, errlen, "tls.cert: cannot load \"%s\": %s", files->cert,
                       openssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, files->key, SSL_FILETYPE_PEM) != 1) {
        (void)snprintf(err, errlen, "tls.key: cannot load \"%s\": %s", files->key,
                       openssl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        (void)snprintf(err, errlen, "tls.key: \"%s\" does not match tls.cert \"%s\"", files->key,
                       files->cert);
        goto fail;
    }
    if (files->ca[0] != '\0') {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(files->ca);
        if (SSL_CTX_load_verify_locations(ctx, files->ca, NULL) != 1 || names == NULL) {
            (void)snprintf(err, errlen, "tls.ca: cannot load \"%s\": %s", files->ca,
                           openssl_reason());
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

tls_server_t *tls_server_new(const tls_files_t *files, char *err, size_t errlen)
{
    SSL_CTX *ctx = build_ctx(files, err, errlen);
    if (ctx == NULL) {
        return NULL;
    }
    tls_server_t *ts = calloc(1, sizeof *ts);
    if (ts == NULL) {
        SSL_CTX_free(ctx);
        (void)snprintf(err, errlen, "tls: out of memory");
        return NULL;
    }
    pthread_mutex_init(&ts->lock, NULL);
    ts->ctx = ctx;
    return ts;
}

int tls_server_reload(tls_server_t *ts, const tls_files_t *files, char *err, size_t errlen)
{
    SSL_CTX *ctx = build_ctx(files, err, errlen);
    if (ctx == NULL) {
        return -1;
    }
    pthread_mutex_lock(&ts->lock);
    SSL_CTX *old = ts->ctx;
    ts->ctx = ctx;
    pthread_mutex_unlock(&ts->lock);
    SSL_CTX_free(old); /* live connections hold their own references */
    return 0;
}

void tls_server_free(tls_server_t *ts)
{
    if (ts == NULL) {
        return;
    }
    SSL_CTX_free(ts->ctx);
    pthread_mutex_destroy(&ts->lock);
    free(ts);
}

tls_conn_t *tls_conn_new(tls_server_t *ts)
{
    tls_conn_t *tc = calloc(1, sizeof *tc);
    if (tc == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&ts->lock);
    tc->ssl = SSL_new(ts->ctx); /* takes a reference on the context */
    pthread_mutex_unlock(&ts->lock);
    tc->rbio = BIO_new(BIO_s_mem());
    tc->wbio = BIO_new(BIO_s_mem());
    if (tc->ssl == NULL || tc->rbio == NULL || tc->wbio == NULL) {
        BIO_free(tc->rbio);
        BIO_free(tc->wbio);
        SSL_free(tc->ssl);
        free(tc);
        return NULL;
    }
    /* An empty memory BIO reports "retry" instead of EOF. */
    BIO_set_mem_eof_return(tc->rbio, -1);
    BIO_set_mem_eof_return(tc->wbio, -1);
    SSL_set_bio(tc->ssl, tc->rbio, tc->wbio);
    SSL_set_accept_state(tc->ssl);
    return tc;
}

void tls_conn_free(tls_conn_t *tc)
{
    if (tc == NULL) {
        return;
    }
    SSL_free(tc->ssl); /* frees both BIOs */
    free(tc);
}

int tls_conn_feed(tls_conn_t *tc, const uint8_t *data, size_t len)
{
    while (len > 0) {
        int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
        int n = BIO_write(tc->rbio, data, chunk);
        if (n <= 0) {
            tc->error = "out of memory";
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Maps an SSL_read/SSL_write/SSL_do_handshake result that is not success. */
static long ssl_failure(tls_conn_t *tc, int rc)
{
    int e = SSL_get_error(tc->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* a memory BIO never fills, but be safe */
        return TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_EOF;
    default:
        tc->error = openssl_reason();
        return TLS_FATAL;
    }
}

long tls_conn_read(tls_conn_t *tc, uint8_t *buf, size_t cap)
{
    if (!SSL_is_init_finished(tc->ssl)) {
        int rc = SSL_do_handshake(tc->ssl);
        if (rc != 1) {
            return ssl_failure(tc, rc);
        }
    }
    int want = cap > INT32_MAX ? INT32_MAX : (int)cap;
    int n = SSL_read(tc->ssl, buf, want);
    if (n > 0) {
        return n;
    }
    return ssl_failure(tc, n);
}

long tls_conn_write(tls_conn_t *tc, const uint8_t *data, size_t len)
{
    if (!SSL_is_init_finished(tc->ssl)) {
        return 0;
    }
    size_t done = 0;
    while (done < len) {
        size_t left = len - done;
        int chunk = left > INT32_MAX ? INT32_MAX : (int)left;
        int n = SSL_write(tc->ssl, data + done, chunk);
        if (n <= 0) {
            long f = ssl_failure(tc, n);
            return f == TLS_AGAIN ? (long)done : TLS_FATAL;
        }
        done += (size_t)n;
    }
    return (long)done;
}

size_t tls_conn_out_pending(const tls_conn_t *tc)
{
    return BIO_ctrl_pending(tc->wbio);
}

size_t tls_conn_take_out(tls_conn_t *tc, uint8_t *buf, size_t cap)
{
    int want = cap > INT32_MAX ? INT32_MAX : (int)cap;
    int n = BIO_read(tc->wbio, buf, want);
    return n > 0 ? (size_t)n : 0;
}

void tls_conn_close_notify(tls_conn_t *tc)
{
    if (tc->sent_close_notify || !SSL_is_init_finished(tc->ssl)) {
        return;
    }
    tc->sent_close_notify = true;
    (void)SSL_shutdown(tc->ssl);
    ERR_clear_error();
}

bool tls_conn_handshake_done(const tls_conn_t *tc)
{
    return SSL_is_init_finished(tc->ssl) != 0;
}

const char *tls_conn_error(const tls_conn_t *tc)
{
    return tc->error != NULL ? tc->error : "";
}
