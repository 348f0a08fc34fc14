/*
 * tls.h - TLS termination with OpenSSL memory BIOs: the event loop moves the
 * bytes, OpenSSL never touches a socket, so nothing blocks.
 *
 * tls_server_t holds the current SSL_CTX (certificate, key, optional client
 * CA) shared by every worker. tls_server_reload() builds a new context and
 * swaps it under a mutex: handshakes that start afterwards use the new pair,
 * established connections keep the context they were created with (each SSL
 * holds a reference), so a reload drops nothing.
 *
 * tls_conn_t is one connection's SSL object with two in-memory BIOs:
 *   read path:  tls_conn_feed(ciphertext) -> tls_conn_read(plaintext)...
 *   write path: tls_conn_write(plaintext) -> tls_conn_detach_out(ciphertext)
 * The caller bounds the ciphertext it lets accumulate (tls_conn_out_pending).
 * Idle cost: the BIOs' buffers exist only while they hold bytes (freed when
 * drained) and OpenSSL releases its record buffers between records
 * (SSL_MODE_RELEASE_BUFFERS).
 *
 * Record mode: when the handshake ends with TLS 1.3 and AES-128-GCM,
 * AES-256-GCM or ChaCha20-Poly1305, the SSL object (~14 KB even when idle)
 * is freed and net/tls_record.c protects the records with the application
 * traffic secrets (taken from OpenSSL's key log callback, never logged):
 * an idle connection then holds ~400 bytes of keys and counters (plus, while
 * it writes many records per second, its own ~1 KB keyed write context:
 * tls_conn_heartbeat). The peer
 * may send data, alerts and KeyUpdate after that; anything else closes with
 * an alert. TLS 1.2 (and any other suite) stays on OpenSSL throughout.
 *
 * Policy: TLS 1.2 minimum; OpenSSL's default cipher lists minus anything
 * without forward secrecy or authenticated encryption; renegotiation refused;
 * ALPN selects "http/1.1" when offered (a client offering only other
 * protocols proceeds without ALPN); SNI is accepted (one certificate serves
 * every name). With a CA file, client certificates are required and checked.
 *
 * Only this file includes <openssl/ssl.h> (CONVENTIONS.md).
 */
#ifndef WSB_BROKER_TLS_H
#define WSB_BROKER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tls_server_s tls_server_t;
typedef struct tls_conn_s tls_conn_t;

/* The files of a TLS listener (tls.cert, tls.key, tls.ca; "" = no CA):
 * paths borrowed for the call. */
typedef struct {
    const char *cert;
    const char *key;
    const char *ca;
} tls_files_t;

/* Loads the certificate chain and key (and the CA list, which then asks for
 * client certificates). NULL with `err` naming the file and the OpenSSL
 * reason on failure. Owner: the broker, tls_server_free(). */
tls_server_t *tls_server_new(const tls_files_t *files, char *err, size_t errlen);

/* Reloads the files into a new context for new handshakes. 0, or -1 with
 * `err` set (the old context stays in use). Any thread. */
int tls_server_reload(tls_server_t *ts, const tls_files_t *files, char *err, size_t errlen);

void tls_server_free(tls_server_t *ts);

/* A server-side TLS session on the current context. NULL on OOM. Owner: the
 * connection, tls_conn_free(). */
tls_conn_t *tls_conn_new(tls_server_t *ts);
void tls_conn_free(tls_conn_t *tc);

/* Hands ciphertext read from the socket to OpenSSL. 0 or -1 (OOM). */
int tls_conn_feed(tls_conn_t *tc, const uint8_t *data, size_t len);

#define TLS_AGAIN (-1) /* no plaintext until more ciphertext arrives */
#define TLS_EOF   (-2) /* the peer sent close_notify */
#define TLS_FATAL (-3) /* handshake failure, bad record, renegotiation attempt... */

/* Decrypts into `buf` (runs the handshake first). Returns the bytes
 * (> 0), TLS_AGAIN, TLS_EOF or TLS_FATAL (tls_conn_error() says why). */
long tls_conn_read(tls_conn_t *tc, uint8_t *buf, size_t cap);

/* Encrypts `len` bytes: returns len (all taken), 0 when the handshake has
 * not finished yet (call again after more reads), or TLS_FATAL. */
long tls_conn_write(tls_conn_t *tc, const uint8_t *data, size_t len);

/* A piece of plaintext for tls_conn_writev. */
typedef struct {
    const uint8_t *base;
    size_t len;
} tls_iov_t;

/* Encrypts a prefix of the iovecs' bytes, in as few records as the 2^14
 * limit allows (up to 64 KiB per call in record mode, one record's worth on
 * OpenSSL's path): returns how many bytes were taken (call again with the
 * rest), 0 before the handshake has finished, or TLS_FATAL. */
long tls_conn_writev(tls_conn_t *tc, const tls_iov_t *iov, unsigned n);

/* Once per heartbeat (app/worker.c): a record-mode connection that sealed
 * more than a few records since the last call keeps (or got) its own keyed
 * write context; one that went quiet frees it, so an idle connection holds
 * none. */
void tls_conn_heartbeat(tls_conn_t *tc);

/* True while the connection seals with its own write context (tests). */
bool tls_conn_write_ctx_owned(const tls_conn_t *tc);

/* True once the connection runs on the broker's own record layer. */
bool tls_conn_record_mode(const tls_conn_t *tc);

/* Ciphertext waiting to be written to the socket. */
size_t tls_conn_out_pending(const tls_conn_t *tc);

/* Moves up to `cap` bytes of that ciphertext into `buf`; returns how many. */
size_t tls_conn_take_out(tls_conn_t *tc, uint8_t *buf, size_t cap);

/* Hands over all pending ciphertext without a copy: returns a malloc'd
 * buffer of `*len` bytes that the caller now owns (free()), or NULL with
 * `*len` 0 when nothing is pending. The connection keeps no buffer after. */
uint8_t *tls_conn_detach_out(tls_conn_t *tc, size_t *len);

/* Queues close_notify (idempotent). */
void tls_conn_close_notify(tls_conn_t *tc);

/* Bytes of staging buffer the connection holds (ciphertext in both
 * directions, capacity rather than content): 0 whenever nothing is pending.
 * Memory accounting and tests. */
size_t tls_conn_staged_bytes(const tls_conn_t *tc);

bool tls_conn_handshake_done(const tls_conn_t *tc);

/* The last failure, for debug logs (a static or thread-local string). */
const char *tls_conn_error(const tls_conn_t *tc);

#endif
