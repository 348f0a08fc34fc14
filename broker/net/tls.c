/* tls.c - OpenSSL over memory BIOs, context reload (see tls.h). */
#include "net/tls.h"

#include "net/tls_record.h"

#include <openssl/crypto.h>
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

/* After a TLS 1.3 handshake with one of tls_record.h's suites, the SSL
 * object is freed and the connection keeps only this (see "record mode"
 * below). Before that, the key log callback fills the secrets here. */
typedef struct {
    tls_dir_t rd, wr;
    tlsr_suite_t suite;
    uint8_t have;          /* HAVE_* bits: secrets the key log gave */
    uint8_t secret_len[2]; /* their lengths [rd, wr] */
    uint8_t empty_run;     /* consecutive empty application records */
    bool key_update_owed;  /* the peer asked: our KeyUpdate goes out next */
    uint32_t wr_after;     /* records OpenSSL wrote under the write secret */
    uint16_t plain_off;    /* undelivered content of the record at in.off: */
    uint16_t plain_end;    /*   [plain_off, plain_end) from the record start */
    uint32_t period_seals; /* records sealed since the last heartbeat */
    tlsr_aead_t *own_wr;   /* the write key's own context while hot, or NULL */
} rec_state_t;

#define HAVE_RD 1
#define HAVE_WR 2

struct tls_conn_s {
    SSL *ssl;    /* owns both BIOs, which point back at this struct; NULL in record mode */
    stage_t in;  /* ciphertext from the socket not yet read */
    stage_t out; /* ciphertext produced, not yet taken for the socket */
    const char *error;
    bool sent_close_notify;
    bool dead; /* record mode: a fatal error or the peer's close_notify */
    rec_state_t rec;
};

/* OpenSSL's memory BIO never gives memory back: its buffer stays at the
 * largest burst it ever held (the handshake flight, a 64 KiB socket read, a
 * fan-out burst), per connection, for the connection's lifetime. These two
 * minimal BIOs read from and write to the connection's stage_t buffers
 * instead, which are freed whenever they run empty. */
static BIO_METHOD *stage_method;
static pthread_once_t stage_method_once = PTHREAD_ONCE_INIT;

/* Room for `n` more bytes at the end (amortized doubling; at least one
 * full record's worth): a pointer to it, or NULL on OOM. */
static uint8_t *stage_reserve(stage_t *st, size_t n)
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
                return NULL;
            }
            st->data = grown;
            st->cap = want;
        }
    }
    return st->data + st->len;
}

/* Appends. false on OOM. */
static bool stage_append(stage_t *st, const void *bytes, size_t n)
{
    uint8_t *dst = stage_reserve(st, n);
    if (dst == NULL) {
        return false;
    }
    memcpy(dst, bytes, n);
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

/* The application traffic secrets, from OpenSSL's key log callback (the
 * only way OpenSSL 3.0 gives them out): kept in the connection for the
 * record layer, never written anywhere. The line is
 * "<LABEL> <client random hex> <secret hex>". */
static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

static void keylog_cb(const SSL *ssl, const char *line)
{
    tls_conn_t *tc = SSL_get_app_data(ssl);
    if (tc == NULL) {
        return;
    }
    static const char rd_label[] = "CLIENT_TRAFFIC_SECRET_0 ";
    static const char wr_label[] = "SERVER_TRAFFIC_SECRET_0 ";
    int dir = -1;
    if (strncmp(line, rd_label, sizeof rd_label - 1) == 0) {
        dir = 0;
    } else if (strncmp(line, wr_label, sizeof wr_label - 1) == 0) {
        dir = 1;
    } else {
        return;
    }
    const char *hex = strrchr(line, ' ');
    if (hex == NULL) {
        return;
    }
    hex++;
    size_t n = strlen(hex) / 2;
    if (n != 32 && n != 48) {
        return;
    }
    tls_dir_t *d = dir == 0 ? &tc->rec.rd : &tc->rec.wr;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            OPENSSL_cleanse(d->secret, sizeof d->secret);
            return;
        }
        d->secret[i] = (uint8_t)(hi << 4 | lo);
    }
    tc->rec.secret_len[dir] = (uint8_t)n;
    tc->rec.have |= dir == 0 ? HAVE_RD : HAVE_WR;
    if (dir == 1) {
        tc->rec.wr_after = 0;
    }
}

/* Counts the records OpenSSL writes after deriving the server application
 * secret (its NewSessionTickets): our first record's sequence number. */
static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    (void)buf;
    (void)len;
    (void)arg;
    if (!write_p || content_type != SSL3_RT_HEADER) {
        return;
    }
    tls_conn_t *tc = SSL_get_app_data(ssl);
    if (tc != NULL && (tc->rec.have & HAVE_WR) != 0) {
        tc->rec.wr_after++;
    }
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
    /* The record layer after a TLS 1.3 handshake needs the traffic secrets
     * and how many records OpenSSL sent under them (see record mode). */
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    SSL_CTX_set_msg_callback(ctx, msg_cb);
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
    SSL_set_app_data(tc->ssl, tc);
    SSL_set_accept_state(tc->ssl);
    return tc;
}

void tls_conn_free(tls_conn_t *tc)
{
    if (tc == NULL) {
        return;
    }
    if (tc->ssl == NULL) {
        tlsr_thread_scrub(); /* the AEAD contexts' copy of its last key */
    }
    tlsr_aead_free(tc->rec.own_wr);
    SSL_free(tc->ssl); /* frees both BIOs */
    free(tc->in.data);
    free(tc->out.data);
    OPENSSL_cleanse(&tc->rec, sizeof tc->rec); /* secrets, keys */
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

/* ---- Record mode ---------------------------------------------------------
 * When a handshake ends with TLS 1.3 and one of tls_record.h's suites, the
 * connection drops its SSL object (~14 KB in OpenSSL 3.0 even between
 * records) and protects records itself with the traffic secrets the key log
 * callback gave: an idle connection then holds only rec_state_t. TLS 1.2
 * and other suites stay on OpenSSL's record layer for the whole connection.
 *
 * After the switch the peer may send application data, alerts and
 * KeyUpdate; any other handshake message (or one split across records, which
 * no client does with a 5-byte KeyUpdate) closes the connection with
 * unexpected_message, as does a run of more than MAX_EMPTY_RUN empty records.
 */
#define MAX_EMPTY_RUN  32
#define REKEY_AFTER    ((uint64_t)1 << 24) /* records per write key (RFC 8446 5.5) */
#define WRITEV_PIECES  256
#define WRITEV_RECORDS 4 /* records per tls_conn_writev call: 64 KiB */

/* Hot connections: keying the thread's shared context for every record
 * (AES key schedule and GHASH setup) costs ~450 ns, more than sealing a
 * 100-byte record itself. A connection that seals more than HOT_RECORDS
 * records between two heartbeats gets its own keyed write context (~1 KB)
 * and keeps it while it stays that busy; tls_conn_heartbeat frees it once a
 * period goes by with HOT_RECORDS or fewer, so idle connections hold none. */
#define HOT_RECORDS 8

static void rec_drop_input(tls_conn_t *tc)
{
    if (tc->in.data != NULL) {
        OPENSSL_cleanse(tc->in.data, tc->in.cap);
    }
    free(tc->in.data);
    tc->in = (stage_t){0};
    tc->rec.plain_off = tc->rec.plain_end = 0;
}

/* Seals one record of `pieces` (total `total` bytes) onto the out stage. */
static bool rec_seal_out(tls_conn_t *tc, uint8_t type, const tlsr_piece_t *pieces, size_t n,
                         size_t total)
{
    uint8_t *dst = stage_reserve(&tc->out, TLSR_HEADER + total + 1 + TLSR_TAG);
    if (dst == NULL) {
        return false;
    }
    rec_state_t *r = &tc->rec;
    if (r->period_seals <= HOT_RECORDS && ++r->period_seals > HOT_RECORDS && r->own_wr == NULL) {
        r->own_wr = tlsr_aead_new(r->suite, &r->wr); /* NULL: the shared one serves */
    }
    size_t w = r->own_wr != NULL ? tlsr_seal_own(r->own_wr, &r->wr, type, pieces, n, dst)
                                 : tlsr_seal(r->suite, &r->wr, type, pieces, n, dst);
    if (w == 0) {
        return false;
    }
    tc->out.len += w;
    return true;
}

static bool rec_send_alert(tls_conn_t *tc, uint8_t level, uint8_t desc)
{
    const uint8_t alert[2] = {level, desc};
    tlsr_piece_t p = {alert, sizeof alert};
    return rec_seal_out(tc, TLSR_CT_ALERT, &p, 1, sizeof alert);
}

/* Our KeyUpdate (update_not_requested) under the current write key, then
 * the next write key (RFC 8446 section 4.6.3). */
static bool rec_send_key_update(tls_conn_t *tc)
{
    static const uint8_t msg[5] = {24, 0, 0, 1, 0};
    tlsr_piece_t p = {msg, sizeof msg};
    if (!rec_seal_out(tc, TLSR_CT_HANDSHAKE, &p, 1, sizeof msg) ||
        tlsr_dir_update(&tc->rec.wr, tc->rec.suite) != 0) {
        return false;
    }
    if (tc->rec.own_wr != NULL && tlsr_aead_rekey(tc->rec.own_wr, &tc->rec.wr) != 0) {
        tlsr_aead_free(tc->rec.own_wr); /* the shared context serves */
        tc->rec.own_wr = NULL;
    }
    return true;
}

/* Fatal: sends `alert` (< 0: none), keeps no input, refuses all I/O after. */
static long rec_fatal(tls_conn_t *tc, int alert, const char *why)
{
    tc->error = why;
    if (!tc->dead && alert >= 0 && !tc->sent_close_notify) {
        (void)rec_send_alert(tc, 2, (uint8_t)alert);
    }
    tc->dead = true;
    rec_drop_input(tc);
    return TLS_FATAL;
}

static const char *alert_reason(int alert)
{
    switch (alert) {
    case TLSR_ALERT_BAD_RECORD_MAC:
        return "record authentication failed (bad_record_mac)";
    case TLSR_ALERT_RECORD_OVERFLOW:
        return "record too long (record_overflow)";
    case TLSR_ALERT_DECODE_ERROR:
        return "malformed message (decode_error)";
    case TLSR_ALERT_ILLEGAL_PARAMETER:
        return "bad KeyUpdate (illegal_parameter)";
    case TLSR_ALERT_INTERNAL_ERROR:
        return "internal error";
    default:
        return "unexpected record or message (unexpected_message)";
    }
}

/* Post-handshake messages in one record: only KeyUpdate, whole, last. */
static int rec_handshake(tls_conn_t *tc, const uint8_t *p, size_t len)
{
    if (len == 0) {
        return TLSR_ALERT_UNEXPECTED_MESSAGE;
    }
    size_t pos = 0;
    while (pos < len) {
        if (len - pos < 4) {
            return TLSR_ALERT_UNEXPECTED_MESSAGE;
        }
        size_t mlen = ((size_t)p[pos + 1] << 16) | ((size_t)p[pos + 2] << 8) | p[pos + 3];
        if (p[pos] != 24 || mlen > len - pos - 4) {
            return TLSR_ALERT_UNEXPECTED_MESSAGE;
        }
        if (mlen != 1) {
            return TLSR_ALERT_DECODE_ERROR;
        }
        uint8_t request = p[pos + 4];
        if (request > 1) {
            return TLSR_ALERT_ILLEGAL_PARAMETER;
        }
        if (pos + 5 != len) {
            return TLSR_ALERT_UNEXPECTED_MESSAGE; /* must end the record (4.6.3) */
        }
        if (tlsr_dir_update(&tc->rec.rd, tc->rec.suite) != 0) {
            return TLSR_ALERT_INTERNAL_ERROR;
        }
        if (request == 1) {
            tc->rec.key_update_owed = true; /* several requests, one answer */
        }
        pos += 5;
    }
    return 0;
}

static long rec_read(tls_conn_t *tc, uint8_t *buf, size_t cap)
{
    rec_state_t *r = &tc->rec;
    if (tc->dead) {
        return TLS_FATAL;
    }
    for (;;) {
        if (r->plain_end > r->plain_off && tc->in.data != NULL) {
            size_t n = (size_t)(r->plain_end - r->plain_off);
            if (n > cap) {
                n = cap;
            }
            const uint8_t *rec = tc->in.data + tc->in.off;
            memcpy(buf, rec + r->plain_off, n);
            r->plain_off = (uint16_t)(r->plain_off + n);
            if (r->plain_off == r->plain_end) {
                size_t rl = TLSR_HEADER + (((size_t)rec[3] << 8) | rec[4]);
                r->plain_off = r->plain_end = 0;
                stage_consume(&tc->in, rl);
            }
            return (long)n;
        }
        size_t avail = stage_pending(&tc->in);
        if (avail < TLSR_HEADER || tc->in.data == NULL) {
            break;
        }
        uint8_t *rec = tc->in.data + tc->in.off;
        size_t body = 0;
        int alert = tlsr_record_check(rec, &body);
        if (alert != 0) {
            return rec_fatal(tc, alert, alert_reason(alert));
        }
        if (avail < TLSR_HEADER + body) {
            break;
        }
        size_t clen = 0;
        uint8_t type = 0;
        alert = tlsr_open(r->suite, &r->rd, rec, &clen, &type);
        if (alert != 0) {
            return rec_fatal(tc, alert, alert_reason(alert));
        }
        const uint8_t *content = rec + TLSR_HEADER;
        if (type == TLSR_CT_APP) {
            if (clen == 0) {
                if (++r->empty_run > MAX_EMPTY_RUN) {
                    return rec_fatal(tc, TLSR_ALERT_UNEXPECTED_MESSAGE, "too many empty records");
                }
                stage_consume(&tc->in, TLSR_HEADER + body);
                continue;
            }
            r->empty_run = 0;
            r->plain_off = TLSR_HEADER;
            r->plain_end = (uint16_t)(TLSR_HEADER + clen);
            continue;
        }
        r->empty_run = 0;
        if (type == TLSR_CT_ALERT) {
            if (clen != 2) {
                return rec_fatal(tc, TLSR_ALERT_DECODE_ERROR,
                                 alert_reason(TLSR_ALERT_DECODE_ERROR));
            }
            uint8_t desc = content[1];
            if (desc == 90) { /* user_canceled: close_notify follows */
                stage_consume(&tc->in, TLSR_HEADER + body);
                continue;
            }
            tc->dead = true;
            rec_drop_input(tc);
            if (desc == TLSR_ALERT_CLOSE_NOTIFY) {
                tc->error = "peer sent close_notify";
                return TLS_EOF;
            }
            tc->error = "peer sent a fatal alert";
            return TLS_FATAL;
        }
        if (type == TLSR_CT_HANDSHAKE) {
            alert = rec_handshake(tc, content, clen);
            if (alert != 0) {
                return rec_fatal(tc, alert, alert_reason(alert));
            }
            stage_consume(&tc->in, TLSR_HEADER + body);
            continue;
        }
        return rec_fatal(tc, TLSR_ALERT_UNEXPECTED_MESSAGE,
                         alert_reason(TLSR_ALERT_UNEXPECTED_MESSAGE));
    }
    /* Answer a KeyUpdate request now rather than with the next data: the
     * caller flushes after reading. */
    if (r->key_update_owed && !tc->sent_close_notify) {
        r->key_update_owed = false;
        if (!rec_send_key_update(tc)) {
            return rec_fatal(tc, TLSR_ALERT_INTERNAL_ERROR, "cannot send KeyUpdate");
        }
    }
    return TLS_AGAIN;
}

/* Seals up to WRITEV_RECORDS full records of the iovecs' bytes straight
 * onto the out stage, each record as full as 2^14 allows. */
static long rec_writev(tls_conn_t *tc, const tls_iov_t *iov, unsigned n)
{
    if (tc->dead || tc->sent_close_notify) {
        tc->error = "write after the connection closed";
        return TLS_FATAL;
    }
    if (tc->rec.key_update_owed || tc->rec.wr.seq >= REKEY_AFTER) {
        tc->rec.key_update_owed = false;
        if (!rec_send_key_update(tc)) {
            return rec_fatal(tc, TLSR_ALERT_INTERNAL_ERROR, "cannot send KeyUpdate");
        }
    }
    size_t done = 0;
    unsigned i = 0;
    size_t off = 0;
    for (int recs = 0; recs < WRITEV_RECORDS && i < n; recs++) {
        tlsr_piece_t pieces[WRITEV_PIECES];
        size_t np = 0, total = 0;
        while (i < n && np < WRITEV_PIECES && total < TLSR_MAX_PLAIN) {
            size_t take = iov[i].len - off;
            if (take > TLSR_MAX_PLAIN - total) {
                take = TLSR_MAX_PLAIN - total;
            }
            if (take > 0) {
                pieces[np++] = (tlsr_piece_t){iov[i].base + off, take};
                total += take;
            }
            off += take;
            if (off == iov[i].len) {
                i++;
                off = 0;
            }
        }
        if (total == 0) {
            break;
        }
        if (!rec_seal_out(tc, TLSR_CT_APP, pieces, np, total)) {
            return rec_fatal(tc, TLSR_ALERT_INTERNAL_ERROR, "cannot seal a record");
        }
        done += total;
    }
    return (long)done;
}

/* Right after a completed handshake: switch to record mode when the
 * version, suite and secrets allow; otherwise forget the secrets. */
static void try_record_mode(tls_conn_t *tc)
{
    rec_state_t *r = &tc->rec;
    const SSL_CIPHER *cipher = SSL_get_current_cipher(tc->ssl);
    tlsr_suite_t s =
        cipher != NULL ? tlsr_suite_from_id(SSL_CIPHER_get_id(cipher) & 0xFFFFu) : TLSR_NONE;
    bool ok = SSL_version(tc->ssl) == TLS1_3_VERSION && s != TLSR_NONE &&
              r->have == (HAVE_RD | HAVE_WR) && r->secret_len[0] == tlsr_hash_len(s) &&
              r->secret_len[1] == tlsr_hash_len(s) && SSL_has_pending(tc->ssl) == 0 &&
              !tc->sent_close_notify;
    uint32_t wseq = r->wr_after;
    if (ok && tlsr_dir_init(&r->rd, s, r->rd.secret) == 0 &&
        tlsr_dir_init(&r->wr, s, r->wr.secret) == 0) {
        r->wr.seq = wseq; /* OpenSSL's NewSessionTickets used the first ones */
        r->suite = s;
        SSL_free(tc->ssl); /* its tickets are already on the out stage */
        tc->ssl = NULL;
        return;
    }
    OPENSSL_cleanse(r, sizeof *r);
}

long tls_conn_read(tls_conn_t *tc, uint8_t *buf, size_t cap)
{
    if (tc->ssl == NULL) {
        return rec_read(tc, buf, cap);
    }
    if (!SSL_is_init_finished(tc->ssl)) {
        int rc = SSL_do_handshake(tc->ssl);
        if (rc != 1) {
            return ssl_failure(tc, rc);
        }
        try_record_mode(tc);
        if (tc->ssl == NULL) {
            return rec_read(tc, buf, cap);
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
    if (tc->ssl == NULL) {
        size_t done = 0;
        while (done < len) {
            tls_iov_t one = {data + done, len - done};
            long w = rec_writev(tc, &one, 1);
            if (w < 0) {
                return w;
            }
            done += (size_t)w;
        }
        return (long)done;
    }
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

long tls_conn_writev(tls_conn_t *tc, const tls_iov_t *iov, unsigned n)
{
    if (tc->ssl == NULL) {
        return rec_writev(tc, iov, n);
    }
    /* OpenSSL's path: gather up to one record's worth, so that a burst of
     * small frames still becomes one record. */
    static _Thread_local uint8_t gather[TLSR_MAX_PLAIN];
    size_t staged = 0;
    for (unsigned i = 0; i < n && staged < sizeof gather; i++) {
        size_t take = iov[i].len;
        if (take > sizeof gather - staged) {
            take = sizeof gather - staged;
        }
        memcpy(gather + staged, iov[i].base, take);
        staged += take;
    }
    return tls_conn_write(tc, gather, staged);
}

void tls_conn_heartbeat(tls_conn_t *tc)
{
    rec_state_t *r = &tc->rec;
    if (r->own_wr != NULL && r->period_seals <= HOT_RECORDS) {
        tlsr_aead_free(r->own_wr);
        r->own_wr = NULL;
    }
    r->period_seals = 0;
}

bool tls_conn_write_ctx_owned(const tls_conn_t *tc)
{
    return tc->rec.own_wr != NULL;
}

bool tls_conn_record_mode(const tls_conn_t *tc)
{
    return tc->ssl == NULL;
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
    if (tc->ssl == NULL) {
        if (!tc->sent_close_notify && !tc->dead) {
            tc->sent_close_notify = true;
            (void)rec_send_alert(tc, 1, TLSR_ALERT_CLOSE_NOTIFY);
        }
        return;
    }
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
    return tc->ssl == NULL || SSL_is_init_finished(tc->ssl) != 0;
}

const char *tls_conn_error(const tls_conn_t *tc)
{
    return tc->error != NULL ? tc->error : "";
}
