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

/* A byte buffer that exists only while it holds bytes: [off, len) is
 * unconsumed; data is freed (NULL) the moment the last byte is consumed, so
 * an idle connection holds no staging memory at all. */
typedef struct {
    uint8_t *data;
    size_t off, len, cap;
} stage_t;

struct tls_conn_s {
    SSL *ssl;    /* owns both BIOs, which point back at this struct */
    stage_t in;  /* ciphertext from the socket not yet read by OpenSSL */
    stage_t out; /* ciphertext OpenSSL produced, not yet taken for the socket */
    const char *error;
    bool sent_close_notify;
};

/* OpenSSL's memory BIO never gives memory back: its buffer stays at the
 * largest burst it ever held (the handshake flight, a 64 KiB socket read, a
 * fan-out burst), per connection, for the connection's lifetime. These two
 * minimal BIOs read from and write to the connection's stage_t buffers
 * instead, which are freed whenever they run empty. */
static BIO_METHOD *stage_method;
static pthread_once_t stage_method_once = PTHREAD_ONCE_INIT;

/* Appends (amortized doubling; at least one full record's worth). false on OOM. */
static bool stage_append(stage_t *st, const void *bytes, size_t n)
{
    if (st->off > 0 && st->off == st->len) {
        st->off = st->len = 0;
    }
    if (n > st->cap - st->len) {
        if (st->off > 0) { /* compact before growing */
            memmove(st->data, st->data + st->off, st->len - st->off);
            st->len -= st->off;
            st->off = 0;
        }
        if (n > st->cap - st->len) {
            size_t want = st->cap > 0 ? st->cap * 2 : 16 * 1024 + 512;
            while (want - st->len < n) {
                want *= 2;
            }
            uint8_t *grown = realloc(st->data, want);
            if (grown == NULL) {
                return false;
            }
            st->data = grown;
            st->cap = want;
        }
    }
    memcpy(st->data + st->len, bytes, n);
    st->len += n;
    return true;
}

static size_t stage_pending(const stage_t *st)
{
    return st->len - st->off;
}

/* Marks `n` bytes consumed; frees the buffer once nothing is left. */
static void stage_consume(stage_t *st, size_t n)
{
    st->off += n;
    if (st->off == st->len) {
        free(st->data);
        *st = (stage_t){0};
    }
}

static int stage_bio_write(BIO *bio, const char *buf, int len)
{
    tls_conn_t *tc = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0) {
        return 0;
    }
    return stage_append(&tc->out, buf, (size_t)len) ? len : -1;
}

static int stage_bio_read(BIO *bio, char *buf, int len)
{
    tls_conn_t *tc = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    size_t avail = stage_pending(&tc->in);
    if (avail == 0) {
        BIO_set_retry_read(bio); /* "no bytes yet", not EOF */
        return -1;
    }
    size_t n = len < 0 ? 0 : (size_t)len < avail ? (size_t)len : avail;
    memcpy(buf, tc->in.data + tc->in.off, n);
    stage_consume(&tc->in, n);
    return (int)n;
}

static long stage_bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    tls_conn_t *tc = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* the caller moves the bytes to the socket */
    case BIO_CTRL_PENDING:
        /* What this BIO has for its reader: ciphertext for OpenSSL (read
         * BIO) or for the socket (write BIO), as a memory BIO says. */
        if (tc == NULL) {
            return 0;
        }
        return (long)stage_pending(bio == SSL_get_rbio(tc->ssl) ? &tc->in : &tc->out);
    default:
        /* BIO_CTRL_WPENDING: nothing is held back inside the BIO itself;
         * the rest (kTLS, dgram, push/pop) does not apply. */
        return 0;
    }
}

static void stage_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsb stage");
    if (m != NULL &&
        (BIO_meth_set_write(m, stage_bio_write) != 1 || BIO_meth_set_read(m, stage_bio_read) != 1 ||
         BIO_meth_set_ctrl(m, stage_bio_ctrl) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    stage_method = m; /* NULL: tls_conn_new fails, as on OOM */
}

static BIO *stage_bio_new(tls_conn_t *tc)
{
    BIO *bio = BIO_new(stage_method);
    if (bio != NULL) {
        BIO_set_data(bio, tc);
        BIO_set_init(bio, 1);
    }
    return bio;
}

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
    /* Idle connections give their 34 KB of record buffers back (and our
     * stage_t buffers are freed when empty, see above). */
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
    (void)pthread_once(&stage_method_once, stage_method_init);
    if (stage_method == NULL) {
        return NULL;
    }
    tls_conn_t *tc = calloc(1, sizeof *tc);
    if (tc == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&ts->lock);
    tc->ssl = SSL_new(ts->ctx); /* takes a reference on the context */
    pthread_mutex_unlock(&ts->lock);
    BIO *rbio = stage_bio_new(tc);
    BIO *wbio = stage_bio_new(tc);
    if (tc->ssl == NULL || rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(tc->ssl);
        free(tc);
        return NULL;
    }
    SSL_set_bio(tc->ssl, rbio, wbio);
    SSL_set_accept_state(tc->ssl);
    return tc;
}

void tls_conn_free(tls_conn_t *tc)
{
    if (tc == NULL) {
        return;
    }
    SSL_free(tc->ssl); /* frees both BIOs */
    free(tc->in.data);
    free(tc->out.data);
    free(tc);
}

int tls_conn_feed(tls_conn_t *tc, const uint8_t *data, size_t len)
{
    if (len > 0 && !stage_append(&tc->in, data, len)) {
        tc->error = "out of memory";
        return -1;
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
    return stage_pending(&tc->out);
}

size_t tls_conn_take_out(tls_conn_t *tc, uint8_t *buf, size_t cap)
{
    size_t n = stage_pending(&tc->out);
    if (n > cap) {
        n = cap;
    }
    if (n > 0) {
        memcpy(buf, tc->out.data + tc->out.off, n);
        stage_consume(&tc->out, n);
    }
    return n;
}

uint8_t *tls_conn_detach_out(tls_conn_t *tc, size_t *len)
{
    *len = stage_pending(&tc->out);
    if (*len == 0) {
        return NULL;
    }
    uint8_t *bytes = tc->out.data;
    if (tc->out.off > 0) {
        memmove(bytes, bytes + tc->out.off, *len);
    }
    tc->out = (stage_t){0};
    return bytes;
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

size_t tls_conn_staged_bytes(const tls_conn_t *tc)
{
    return tc->in.cap + tc->out.cap;
}

bool tls_conn_handshake_done(const tls_conn_t *tc)
{
    return SSL_is_init_finished(tc->ssl) != 0;
}

const char *tls_conn_error(const tls_conn_t *tc)
{
    return tc->error != NULL ? tc->error : "";
}
