/*
 * tls_client.h - client-side TLS over OpenSSL memory BIOs, for transports
 * that move the bytes themselves (the C client's libuv adapter, wsbench).
 *
 * OpenSSL never touches a socket here: the transport hands the ciphertext it
 * read to wsb_tls_feed() and writes what wsb_tls_take() gives it, so nothing
 * blocks and partial reads and writes are the transport's ordinary business.
 *
 *   handshake:  wsb_tls_handshake() until 0, writing wsb_tls_take() output
 *               after every call and feeding every read;
 *   read path:  wsb_tls_feed(ciphertext), then wsb_tls_read() until WSB_EAGAIN;
 *   write path: wsb_tls_write(plaintext), then wsb_tls_take() and write it.
 *
 * Policy. TLS 1.2 minimum, OpenSSL's default cipher suites, ALPN "http/1.1"
 * offered. The peer is verified by default: its chain against the system
 * store (or only against `ca_file` when one is given), and its name against
 * the host of the URL (a DNS name or an IP address literal; SNI is sent for
 * names only, as RFC 6066 says). `insecure` skips both checks: tests and
 * development only.
 *
 * Ownership. wsb_tls_ctx_new() returns a context owned by the caller
 * (wsb_tls_ctx_free()); sessions hold their own reference to it, so the
 * context may be freed while sessions live. wsb_tls_new() returns a session
 * owned by the caller (wsb_tls_free()). A context may be shared by sessions
 * of several threads; one session belongs to one thread.
 *
 * This file and tls_client.c are the only ones of the client that see
 * OpenSSL; the transports see these opaque types only.
 */
#ifndef WSB_TLS_CLIENT_H
#define WSB_TLS_CLIENT_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The TLS handshake failed or a record could not be decrypted: a bad or
 * untrusted certificate, a name mismatch, no common protocol, a bad record.
 * wsb_tls_error() says which. (In the client's range, see wsb/client.h.) */
#define WSB_ETLS (-30108)

typedef struct wsb_tls_ctx_s wsb_tls_ctx_t;
typedef struct wsb_tls_s wsb_tls_t;

/*
 * A client context. `ca_file` (PEM, may be NULL) replaces the system store
 * as the trust anchors; `insecure` turns verification off. Returns NULL with
 * a sentence in `err` (NUL-terminated, cut to `errlen`) naming the file and
 * OpenSSL's reason when the CA file cannot be loaded, or on OOM.
 */
wsb_tls_ctx_t *wsb_tls_ctx_new(const char *ca_file, bool insecure, char *err, size_t errlen);

/* Drops the caller's reference. NULL is a no-op. */
void wsb_tls_ctx_free(wsb_tls_ctx_t *ctx);

/*
 * A session that connects to `host` (a DNS name, or an IPv4 / IPv6 literal
 * without brackets): SNI and the name checked in the certificate. Returns
 * NULL on OOM or when `host` cannot be used as a name to verify.
 */
wsb_tls_t *wsb_tls_new(wsb_tls_ctx_t *ctx, const char *host);

/* NULL is a no-op. */
void wsb_tls_free(wsb_tls_t *t);

/* Hands ciphertext read from the transport to OpenSSL. 0 or WSB_ENOMEM. */
int wsb_tls_feed(wsb_tls_t *t, const uint8_t *data, size_t len);

/*
 * Runs the handshake as far as the fed bytes allow. Returns 0 once it is
 * complete (and on every later call), WSB_EAGAIN while it needs more input
 * (write wsb_tls_take() output first: the ClientHello comes from the first
 * call), or WSB_ETLS (wsb_tls_error() names the cause, e.g. the
 * certificate verification failure).
 */
int wsb_tls_handshake(wsb_tls_t *t);

/*
 * Decrypts into `buf` (the handshake must be complete). Returns the bytes
 * (> 0), 0 when the peer sent close_notify (end of stream), WSB_EAGAIN
 * when no complete record is buffered, or WSB_ETLS.
 */
long wsb_tls_read(wsb_tls_t *t, uint8_t *buf, size_t cap);

/*
 * Encrypts all `len` bytes into the output (the handshake must be
 * complete). Returns 0, WSB_EAGAIN before the handshake has completed
 * (nothing taken), or WSB_ETLS.
 */
int wsb_tls_write(wsb_tls_t *t, const uint8_t *data, size_t len);

/* Ciphertext waiting to be written to the transport. */
size_t wsb_tls_pending(const wsb_tls_t *t);

/* Moves up to `cap` bytes of that ciphertext into `buf`; returns how many. */
size_t wsb_tls_take(wsb_tls_t *t, uint8_t *buf, size_t cap);

/* Queues close_notify once the handshake has completed (idempotent). */
void wsb_tls_close_notify(wsb_tls_t *t);

/* The negotiated ALPN protocol ("http/1.1") or "" when none was agreed. */
const char *wsb_tls_alpn(const wsb_tls_t *t);

/* The last failure as a sentence ("" when none); valid until the next call
 * on `t`. */
const char *wsb_tls_error(const wsb_tls_t *t);

#ifdef __cplusplus
}
#endif

#endif
