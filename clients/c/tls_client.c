/* tls_client.c - client-side TLS over OpenSSL memory BIOs (see wsb/tls_client.h). */
#include "wsb/tls_client.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wsb_tls_ctx_s {
    SSL_CTX *ctx;
    bool insecure;
};

struct wsb_tls_s {
    SSL *ssl; /* owns the two memory BIOs: ciphertext from and for the transport */
    bool insecure;
    bool sent_close_notify;
    char host[256];
    char alpn[32]; /* set when the handshake completes */
    char error[512];
};

/* OpenSSL's reason for the last failure, and the error queue cleared so a
 * stale entry never explains a later failure. */
static void take_openssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        (void)snprintf(buf, cap, "unknown error");
    } else {
        ERR_error_string_n(e, buf, cap);
    }
    ERR_clear_error();
}

wsb_tls_ctx_t *wsb_tls_ctx_new(const char *ca_file, bool insecure, char *err, size_t errlen)
{
    char reason[256];
    wsb_tls_ctx_t *tc = calloc(1, sizeof(*tc));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (tc == NULL || ctx == NULL) {
        (void)snprintf(err, errlen, "TLS: cannot create a context (out of memory)");
        goto fail;
    }
    (void)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Idle connections give their record buffers back (wsbench holds many). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char alpn[] = "\x08http/1.1";
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0) {
        (void)snprintf(err, errlen, "TLS: cannot set ALPN (out of memory)");
        goto fail;
    }
    if (!insecure) {
        int ok = ca_file != NULL && ca_file[0] != '\0'
                     ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            take_openssl_reason(reason, sizeof(reason));
            if (ca_file != NULL && ca_file[0] != '\0') {
                (void)snprintf(err, errlen, "ca_file: cannot load \"%s\": %s", ca_file, reason);
            } else {
                (void)snprintf(err, errlen, "TLS: cannot load the system CA store: %s", reason);
            }
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    tc->ctx = ctx;
    tc->insecure = insecure;
    return tc;
fail:
    SSL_CTX_free(ctx);
    free(tc);
    return NULL;
}

void wsb_tls_ctx_free(wsb_tls_ctx_t *ctx)
{
    if (ctx == NULL) {
        return;
    }
    SSL_CTX_free(ctx->ctx);
    free(ctx);
}

static bool is_ip_literal(const char *host)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

wsb_tls_t *wsb_tls_new(wsb_tls_ctx_t *ctx, const char *host)
{
    size_t hlen = strlen(host);
    if (hlen == 0 || hlen >= sizeof(((wsb_tls_t *)0)->host)) {
        return NULL;
    }
    wsb_tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    memcpy(t->host, host, hlen + 1);
    t->insecure = ctx->insecure;
    t->ssl = SSL_new(ctx->ctx); /* takes a reference on the context */
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        goto fail;
    }
    /* An empty memory BIO reports "retry" instead of end of file. */
    BIO_set_mem_eof_return(rbio, -1);
    BIO_set_mem_eof_return(wbio, -1);
    SSL_set_bio(t->ssl, rbio, wbio); /* owned by ssl from here on */
    bool ip = is_ip_literal(host);
    if (!ip && SSL_set_tlsext_host_name(t->ssl, host) != 1) {
        goto fail;
    }
    if (!t->insecure) {
        X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
                    : X509_VERIFY_PARAM_set1_host(param, host, hlen);
        if (ok != 1) {
            goto fail;
        }
        /* No partial wildcards ("w*.example.com"), as browsers do. */
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    SSL_set_connect_state(t->ssl);
    return t;
fail:
    ERR_clear_error();
    SSL_free(t->ssl);
    free(t);
    return NULL;
}

void wsb_tls_free(wsb_tls_t *t)
{
    if (t == NULL) {
        return;
    }
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
}

int wsb_tls_feed(wsb_tls_t *t, const uint8_t *data, size_t len)
{
    while (len > 0) {
        int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
        int n = BIO_write(SSL_get_rbio(t->ssl), data, chunk);
        if (n <= 0) {
            (void)snprintf(t->error, sizeof(t->error), "TLS: out of memory");
            return WSB_ENOMEM;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Fills t->error for a failed handshake: the verification result when that
 * is what failed (the common case worth a clear message), else OpenSSL's. */
static void describe_failure(wsb_tls_t *t, bool handshake)
{
    long vr = SSL_get_verify_result(t->ssl);
    if (handshake && !t->insecure && vr != X509_V_OK) {
        const char *hint =
            vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH
                ? "the certificate does not name this host"
                : "the broker's certificate is not trusted: give its CA with "
                  "ca_file (--cafile), or insecure (--insecure) for tests";
        (void)snprintf(t->error, sizeof(t->error),
                       "TLS handshake with %.100s failed: certificate verify failed: %s (%s)",
                       t->host, X509_verify_cert_error_string(vr), hint);
        ERR_clear_error();
        return;
    }
    char reason[256];
    take_openssl_reason(reason, sizeof(reason));
    (void)snprintf(t->error, sizeof(t->error), "TLS %s with %.100s failed: %.200s",
                   handshake ? "handshake" : "record", t->host, reason);
}

/* Maps an SSL_* result that is not success. */
static int ssl_failure(wsb_tls_t *t, int rc, bool handshake)
{
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* a memory BIO never fills, but be safe */
        return WSB_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        describe_failure(t, handshake);
        return WSB_ETLS;
    }
}

int wsb_tls_handshake(wsb_tls_t *t)
{
    if (SSL_is_init_finished(t->ssl)) {
        return 0;
    }
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        const unsigned char *p = NULL;
        unsigned int len = 0;
        SSL_get0_alpn_selected(t->ssl, &p, &len);
        if (p != NULL && len < sizeof(t->alpn)) {
            memcpy(t->alpn, p, len);
            t->alpn[len] = '\0';
        }
        return 0;
    }
    rc = ssl_failure(t, rc, true);
    return rc == 0 ? WSB_ETLS : rc; /* close_notify during the handshake */
}

long wsb_tls_read(wsb_tls_t *t, uint8_t *buf, size_t cap)
{
    if (!SSL_is_init_finished(t->ssl)) {
        return WSB_EAGAIN;
    }
    int want = cap > INT32_MAX ? INT32_MAX : (int)cap;
    int n = SSL_read(t->ssl, buf, want);
    if (n > 0) {
        return n;
    }
    return ssl_failure(t, n, false);
}

int wsb_tls_write(wsb_tls_t *t, const uint8_t *data, size_t len)
{
    if (!SSL_is_init_finished(t->ssl)) {
        return WSB_EAGAIN;
    }
    while (len > 0) {
        int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
        int n = SSL_write(t->ssl, data, chunk);
        if (n <= 0) {
            describe_failure(t, false);
            return WSB_ETLS;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

size_t wsb_tls_pending(const wsb_tls_t *t)
{
    return BIO_ctrl_pending(SSL_get_wbio(t->ssl));
}

size_t wsb_tls_take(wsb_tls_t *t, uint8_t *buf, size_t cap)
{
    int want = cap > INT32_MAX ? INT32_MAX : (int)cap;
    int n = BIO_read(SSL_get_wbio(t->ssl), buf, want);
    return n > 0 ? (size_t)n : 0;
}

void wsb_tls_close_notify(wsb_tls_t *t)
{
    if (t->sent_close_notify || !SSL_is_init_finished(t->ssl)) {
        return;
    }
    t->sent_close_notify = true;
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
}

const char *wsb_tls_alpn(const wsb_tls_t *t)
{
    return t->alpn;
}

const char *wsb_tls_error(const wsb_tls_t *t)
{
    return t->error;
}
