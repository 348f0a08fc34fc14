/*
 * client_uv.c - the libuv adapter of the client core (the only file of
 * clients/c that includes uv.h).
 *
 * One adapter per client. It owns a uv_timer_t for the life of the client
 * and one uv_tcp_t per connection attempt; a new uv_tcp_t is initialised
 * only after the previous one's close callback, so the handle's memory is
 * reused safely. The host is resolved with uv_getaddrinfo and each address
 * is tried in turn ("localhost" may give ::1 before 127.0.0.1).
 *
 * Lifetime: the core calls the cleanup hook from wsb_client_free(); the
 * adapter then forgets the client, closes its handles and frees itself in
 * the last close callback. A name lookup still running is orphaned: it
 * frees itself when it ends, but keeps the loop alive until then.
 *
 * Writes: at most one uv_write in flight. Its buffer is taken from the core
 * (wsb_client_io_take_output) and freed in the write callback; output that
 * accumulates meanwhile goes out in one write when it completes, so a burst
 * of requests costs few syscalls.
 *
 * TLS (wss://): a wsb_tls_t (tls_client.c, OpenSSL over memory BIOs) sits
 * between the socket and the core, which sees plaintext only. After the TCP
 * connect the adapter runs the TLS handshake and reports the transport as
 * connected only when it has completed. Reads feed the ciphertext in and
 * hand every decrypted chunk to the core; writes encrypt what the core
 * gives and write the ciphertext, still one uv_write at a time (handshake
 * records, and alerts OpenSSL produces while reading, go out the same way).
 * A flushing close sends close_notify after the last output, then shuts the
 * socket down. The read buffer is reused for plaintext once the ciphertext
 * is copied into OpenSSL, so TLS costs no buffer of its own here.
 */
#include "wsb/client.h"
#include "wsb/tls_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum { TCP_NONE = 0, TCP_CONNECTING, TCP_OPEN, TCP_SHUTTING, TCP_CLOSING };

#define READ_BUF_SIZE (64 * 1024)

typedef struct {
    wsb_client_t *client; /* NULL after cleanup */
    uv_loop_t *loop;
    uv_timer_t timer;
    bool timer_open;
    uv_timer_t defer; /* reports the end of an attempt aborted while resolving */
    bool defer_open;
    uv_getaddrinfo_t *gai; /* the lookup in progress, NULL if none */
    struct addrinfo *addrs;
    struct addrinfo *next_addr;
    uv_tcp_t tcp;
    int tcp_state;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uint8_t *wbuf;
    bool writing;
    bool use_tls;  /* this attempt is wss:// */
    bool tls_open; /* TLS handshake completed: the core has been told connected */
    uv_shutdown_t shutdown_req;
    bool flush_close;   /* close once the output is written */
    bool abort;         /* the core asked to close this attempt */
    bool retry_connect; /* the tcp handle closes to try the next address */
    int end_status;     /* what ended the transport (0: requested close) */
    char end_reason[384];
    /* TLS: the context lives as long as the adapter (made at the first
     * wss:// connect); the session as long as one TCP connection. */
    wsb_tls_ctx_t *tls_ctx;
    wsb_tls_t *tls;
    char host[256];
    uint8_t rbuf[READ_BUF_SIZE];
} adapter_t;

static void maybe_free(adapter_t *a)
{
    if (a->client == NULL && !a->timer_open && !a->defer_open && a->tcp_state == TCP_NONE) {
        uv_freeaddrinfo(a->addrs);
        wsb_tls_free(a->tls);
        wsb_tls_ctx_free(a->tls_ctx);
        free(a);
    }
}

static void set_end(adapter_t *a, int status, const char *what)
{
    if (a->end_status != 0) {
        return;
    }
    a->end_status = status;
    (void)snprintf(a->end_reason, sizeof(a->end_reason), "%s: %s", what, uv_strerror(status));
}

/* Reports the end of the transport. The client may be freed inside (its
 * callbacks run); `a` stays valid because its handles close asynchronously. */
static void report_closed(adapter_t *a)
{
    uv_freeaddrinfo(a->addrs);
    a->addrs = NULL;
    a->next_addr = NULL;
    if (a->client != NULL) {
        int status = a->abort && a->end_status == 0 ? 0 : a->end_status;
        wsb_client_io_closed(a->client, status, a->end_status != 0 ? a->end_reason : NULL);
    }
}

static void on_tcp_closed(uv_handle_t *h);

static void close_tcp(adapter_t *a)
{
    if (a->tcp_state != TCP_NONE && a->tcp_state != TCP_CLOSING) {
        a->tcp_state = TCP_CLOSING;
        uv_close((uv_handle_t *)&a->tcp, on_tcp_closed);
    }
}

static void try_next_address(adapter_t *a);

static void on_tcp_closed(uv_handle_t *h)
{
    adapter_t *a = h->data;
    a->tcp_state = TCP_NONE;
    wsb_tls_free(a->tls);
    a->tls = NULL;
    a->tls_open = false;
    if (a->client == NULL) {
        maybe_free(a);
        return;
    }
    if (a->retry_connect && !a->abort && a->next_addr != NULL) {
        a->retry_connect = false;
        a->end_status = 0;
        try_next_address(a);
        return;
    }
    a->retry_connect = false;
    report_closed(a);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    adapter_t *a = h->data;
    (void)suggested;
    buf->base = (char *)a->rbuf;
    buf->len = sizeof(a->rbuf);
}

static void kick_write(adapter_t *a);

/* A TLS failure ends the transport with WSB_ETLS and OpenSSL's reason. */
static void tls_fail(adapter_t *a, int status, const char *why)
{
    if (a->end_status == 0) {
        a->end_status = status;
        (void)snprintf(a->end_reason, sizeof(a->end_reason), "%s", why);
    }
    close_tcp(a);
}

/* The core may close the transport or free the client from any call into
 * it: stop handing it bytes then. */
static bool tls_can_go_on(const adapter_t *a)
{
    return a->client != NULL && (a->tcp_state == TCP_OPEN || a->tcp_state == TCP_SHUTTING);
}

/* Runs the handshake as far as it goes; true once it has completed and the
 * core has been told. */
static bool tls_handshake_step(adapter_t *a)
{
    if (a->tls_open) {
        return true;
    }
    int rc = wsb_tls_handshake(a->tls);
    if (rc == WSB_ETLS) {
        tls_fail(a, WSB_ETLS, wsb_tls_error(a->tls));
        return false;
    }
    kick_write(a); /* the handshake's own records */
    if (rc != 0 || a->tcp_state != TCP_OPEN) {
        return false;
    }
    a->tls_open = true;
    wsb_client_io_connected(a->client);
    return tls_can_go_on(a);
}

/* Ciphertext arrived in a->rbuf: OpenSSL copies it, so the same buffer then
 * receives the plaintext, record by record. */
static void tls_input(adapter_t *a, const uint8_t *data, size_t len)
{
    if (wsb_tls_feed(a->tls, data, len) != 0) {
        tls_fail(a, WSB_ENOMEM, "out of memory");
        return;
    }
    if (!tls_handshake_step(a)) {
        return;
    }
    for (;;) {
        long n = wsb_tls_read(a->tls, a->rbuf, sizeof(a->rbuf));
        if (n > 0) {
            wsb_client_io_read(a->client, a->rbuf, (size_t)n);
            if (!tls_can_go_on(a)) {
                return;
            }
            continue;
        }
        if (n == 0) {
            tls_fail(a, UV_EOF, "the broker closed the TLS connection (close_notify)");
            return;
        }
        if (n != WSB_EAGAIN) {
            tls_fail(a, WSB_ETLS, wsb_tls_error(a->tls));
            return;
        }
        break;
    }
    kick_write(a); /* anything OpenSSL produced while reading (alerts) */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    adapter_t *a = s->data;
    if (nread > 0) {
        if (a->client == NULL) {
            return;
        }
        if (a->tls != NULL) {
            tls_input(a, (const uint8_t *)buf->base, (size_t)nread);
        } else {
            wsb_client_io_read(a->client, (uint8_t *)buf->base, (size_t)nread);
        }
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            if (a->end_status == 0) {
                a->end_status = UV_EOF;
                (void)snprintf(a->end_reason, sizeof(a->end_reason),
                               "the broker closed the TCP connection");
            }
        } else {
            set_end(a, (int)nread, "reading from the broker");
        }
        close_tcp(a);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    adapter_t *a = req->data;
    (void)status;
    close_tcp(a);
}

static void start_shutdown(adapter_t *a)
{
    a->tcp_state = TCP_SHUTTING;
    a->shutdown_req.data = a;
    if (uv_shutdown(&a->shutdown_req, (uv_stream_t *)&a->tcp, on_shutdown) != 0) {
        close_tcp(a);
    }
}

static void on_write(uv_write_t *req, int status)
{
    adapter_t *a = req->data;
    a->writing = false;
    free(a->wbuf);
    a->wbuf = NULL;
    if (status < 0) {
        if (status != UV_ECANCELED) {
            set_end(a, status, "writing to the broker");
            close_tcp(a);
        }
        return;
    }
    kick_write(a);
}

/* TLS: encrypts what the core has to send, then takes the ciphertext
 * (handshake records and alerts included) as one malloc'd buffer. NULL when
 * there is nothing to write; on a failure the transport is closing. */
static uint8_t *tls_output(adapter_t *a, size_t *len)
{
    *len = 0;
    if (a->tls_open) {
        size_t plain_len = 0;
        uint8_t *plain = wsb_client_io_take_output(a->client, &plain_len);
        if (plain != NULL) {
            int rc = wsb_tls_write(a->tls, plain, plain_len);
            free(plain);
            if (rc != 0) {
                tls_fail(a, WSB_ETLS, wsb_tls_error(a->tls));
                return NULL;
            }
        } else if (a->flush_close) {
            wsb_tls_close_notify(a->tls); /* after the last output, once */
        }
    }
    size_t n = wsb_tls_pending(a->tls);
    if (n == 0) {
        return NULL;
    }
    uint8_t *p = malloc(n);
    if (p == NULL) {
        tls_fail(a, WSB_ENOMEM, "out of memory");
        return NULL;
    }
    *len = wsb_tls_take(a->tls, p, n);
    return p;
}

static void kick_write(adapter_t *a)
{
    if (a->writing || a->client == NULL || a->tcp_state != TCP_OPEN) {
        return;
    }
    size_t len = 0;
    uint8_t *p = a->tls != NULL ? tls_output(a, &len) : wsb_client_io_take_output(a->client, &len);
    if (a->tcp_state != TCP_OPEN) {
        free(p); /* a TLS failure is closing the connection */
        return;
    }
    if (p == NULL) {
        if (a->flush_close) {
            start_shutdown(a);
        }
        return;
    }
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
    a->write_req.data = a;
    int rc = uv_write(&a->write_req, (uv_stream_t *)&a->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(p);
        set_end(a, rc, "writing to the broker");
        close_tcp(a);
        return;
    }
    a->wbuf = p;
    a->writing = true;
}

static void on_connect(uv_connect_t *req, int status)
{
    adapter_t *a = req->data;
    if (a->tcp_state != TCP_CONNECTING) {
        return; /* closing already (abort or cleanup): on_tcp_closed reports */
    }
    if (status < 0 || a->client == NULL || a->abort) {
        if (status < 0) {
            set_end(a, status, "connecting to the broker");
            a->retry_connect = true;
        }
        close_tcp(a);
        return;
    }
    a->tcp_state = TCP_OPEN;
    a->end_status = 0;
    uv_freeaddrinfo(a->addrs);
    a->addrs = NULL;
    a->next_addr = NULL;
    (void)uv_tcp_nodelay(&a->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read);
    if (rc != 0) {
        set_end(a, rc, "reading from the broker");
        close_tcp(a);
        return;
    }
    if (!a->use_tls) {
        wsb_client_io_connected(a->client);
        return;
    }
    a->tls = wsb_tls_new(a->tls_ctx, a->host);
    if (a->tls == NULL) {
        tls_fail(a, WSB_ETLS,
                 "cannot start a TLS session (out of memory, or a host name "
                 "that cannot be verified)");
        return;
    }
    (void)tls_handshake_step(a); /* sends the ClientHello */
}

static void try_next_address(adapter_t *a)
{
    while (a->next_addr != NULL) {
        struct addrinfo *ai = a->next_addr;
        a->next_addr = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) {
            continue;
        }
        int rc = uv_tcp_init(a->loop, &a->tcp);
        if (rc != 0) {
            set_end(a, rc, "creating a socket");
            break;
        }
        a->tcp.data = a;
        a->tcp_state = TCP_CONNECTING;
        a->connect_req.data = a;
        rc = uv_tcp_connect(&a->connect_req, &a->tcp, ai->ai_addr, on_connect);
        if (rc != 0) {
            set_end(a, rc, "connecting to the broker");
            a->retry_connect = true;
            close_tcp(a);
        }
        return;
    }
    if (a->end_status == 0) {
        a->end_status = UV_EADDRNOTAVAIL;
        (void)snprintf(a->end_reason, sizeof(a->end_reason), "no usable address for the host");
    }
    report_closed(a);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    adapter_t *a = req->data;
    free(req);
    if (a == NULL) {
        /* Orphaned by an abort or the cleanup, which did not wait for it. */
        uv_freeaddrinfo(res);
        return;
    }
    a->gai = NULL;
    if (status < 0) {
        uv_freeaddrinfo(res);
        set_end(a, status, "cannot resolve the broker's host");
        report_closed(a);
        return;
    }
    a->addrs = res;
    a->next_addr = res;
    try_next_address(a);
}

/* ---- hooks ------------------------------------------------------------ */

static void on_defer(uv_timer_t *t);

static int hook_connect(void *data, const char *host, uint16_t port, bool tls)
{
    adapter_t *a = data;
    if (a->gai != NULL || a->tcp_state != TCP_NONE) {
        return WSB_ESTATE;
    }
    a->abort = false;
    a->flush_close = false;
    a->retry_connect = false;
    a->end_status = 0;
    a->end_reason[0] = '\0';
    a->use_tls = tls;
    if (tls) {
        if (strlen(host) >= sizeof(a->host)) {
            return WSB_EINVAL;
        }
        memcpy(a->host, host, strlen(host) + 1);
        if (a->tls_ctx == NULL) {
            const wsb_client_options_t *o = wsb_client_get_options(a->client);
            char err[sizeof(a->end_reason)];
            a->tls_ctx = wsb_tls_ctx_new(o->ca_file, o->insecure, err, sizeof(err));
            if (a->tls_ctx == NULL) {
                /* Reported from the next loop turn, with the reason. */
                a->end_status = WSB_ETLS;
                (void)snprintf(a->end_reason, sizeof(a->end_reason), "%s", err);
                (void)uv_timer_start(&a->defer, on_defer, 0, 0);
                return 0;
            }
        }
    }
    char service[8];
    (void)snprintf(service, sizeof(service), "%u", (unsigned)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    uv_getaddrinfo_t *req = malloc(sizeof(*req));
    if (req == NULL) {
        return WSB_ENOMEM;
    }
    req->data = a;
    int rc = uv_getaddrinfo(a->loop, req, on_resolved, host, service, &hints);
    if (rc != 0) {
        free(req);
        return rc;
    }
    a->gai = req;
    return 0;
}

/* A lookup cannot be interrupted once a thread runs it, and a resolver may
 * take long to give up: the request is orphaned (it frees itself when it
 * completes) so that timeouts and the cleanup never wait for it. */
static void orphan_lookup(adapter_t *a)
{
    if (a->gai != NULL) {
        a->gai->data = NULL;
        (void)uv_cancel((uv_req_t *)a->gai);
        a->gai = NULL;
    }
}

static void on_defer(uv_timer_t *t)
{
    report_closed(t->data);
}

static void hook_want_write(void *data)
{
    kick_write(data);
}

static void hook_close(void *data, bool flush)
{
    adapter_t *a = data;
    a->abort = true;
    if (a->gai != NULL) {
        /* Reported from the next loop turn, never inside the hook. */
        orphan_lookup(a);
        (void)uv_timer_start(&a->defer, on_defer, 0, 0);
        return;
    }
    switch (a->tcp_state) {
    case TCP_CONNECTING:
        a->retry_connect = false;
        close_tcp(a);
        break;
    case TCP_OPEN:
        if (flush) {
            a->flush_close = true;
            if (!a->writing) {
                kick_write(a);
            }
        } else {
            close_tcp(a);
        }
        break;
    case TCP_SHUTTING:
        if (!flush) {
            close_tcp(a);
        }
        break;
    default:
        break;
    }
}

static void on_timer(uv_timer_t *t)
{
    adapter_t *a = t->data;
    if (a->client != NULL) {
        wsb_client_io_timer(a->client);
    }
}

static void hook_timer_start(void *data, uint64_t ms)
{
    adapter_t *a = data;
    (void)uv_timer_start(&a->timer, on_timer, ms, 0);
}

static void hook_timer_stop(void *data)
{
    adapter_t *a = data;
    (void)uv_timer_stop(&a->timer);
}

static void on_timer_closed(uv_handle_t *h)
{
    adapter_t *a = h->data;
    if (h == (uv_handle_t *)&a->timer) {
        a->timer_open = false;
    } else {
        a->defer_open = false;
    }
    maybe_free(a);
}

static void hook_cleanup(void *data)
{
    adapter_t *a = data;
    a->client = NULL;
    if (a->timer_open && !uv_is_closing((uv_handle_t *)&a->timer)) {
        uv_close((uv_handle_t *)&a->timer, on_timer_closed);
    }
    if (a->defer_open && !uv_is_closing((uv_handle_t *)&a->defer)) {
        uv_close((uv_handle_t *)&a->defer, on_timer_closed);
    }
    orphan_lookup(a);
    close_tcp(a);
    maybe_free(a);
}

int wsb_client_uv_attach(wsb_client_t *c, struct uv_loop_s *loop)
{
    adapter_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return WSB_ENOMEM;
    }
    a->loop = loop;
    int rc = uv_timer_init(loop, &a->timer);
    if (rc != 0) {
        free(a);
        return rc;
    }
    a->timer.data = a;
    a->timer_open = true;
    rc = uv_timer_init(loop, &a->defer);
    if (rc != 0) {
        uv_close((uv_handle_t *)&a->timer, on_timer_closed);
        return rc;
    }
    a->defer.data = a;
    a->defer_open = true;
    wsb_client_io_t io = {
        .data = a,
        .tls = true,
        .connect = hook_connect,
        .want_write = hook_want_write,
        .close = hook_close,
        .timer_start = hook_timer_start,
        .timer_stop = hook_timer_stop,
        .cleanup = hook_cleanup,
    };
    rc = wsb_client_attach(c, &io);
    if (rc != 0) {
        uv_close((uv_handle_t *)&a->timer, on_timer_closed);
        uv_close((uv_handle_t *)&a->defer, on_timer_closed);
        return rc;
    }
    a->client = c;
    return 0;
}
