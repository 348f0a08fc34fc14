/*
 * probe.c - wsbench --probe: sequential measurements on a few blocking
 * connections, in the main thread, reported in the fan-out run's results_t
 * (so every output format works unchanged):
 *
 *   request         a responder subscribes to --topic; a requester sends
 *                   `request`, the responder publishes the same data to the
 *                   message's reply_to, the requester waits for `reply`.
 *                   One round trip at a time until --duration.
 *   http-request    the same, the requester being POST /api/request on one
 *                   keep-alive HTTP connection.
 *   nats-request    the same round trip through a NATS server (text protocol:
 *                   CONNECT, SUB, PUB with a reply subject, MSG), so both
 *                   brokers are measured by the same loop on the same machine.
 *   lastvalue       one message is published to each of --topics topics (a
 *                   history rule must cover them), then --repeat times: a
 *                   fresh connection subscribes to --sub with history:1; the
 *                   time from sending the subscribe to having its ack and
 *                   every replayed message.
 *   lastvalue-exact the same with one history:1 subscribe per exact topic,
 *                   all written at once (what a client does without
 *                   wildcard last value).
 *
 * In the report: "published" = requests (or subscribes), "deliveries" =
 * replies (or replayed messages), latency = round trip (or subscribe time),
 * broker CPU = the broker's (or nats-server's, --broker-pid) during the loop.
 *
 * Both sides of a round trip are served by this one thread: the requester's
 * write, then reading the responder until its message, its reply write, then
 * reading the requester until the reply. Nothing else is in flight, so the
 * round trip is the brokers' two hops plus the kernel's loopback, for both
 * brokers alike. Every wait is bounded (WAIT_NS); a wait that runs out counts
 * as an error and ends the probe.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "probe.h"

#include "procstat.h"
#include "wsb/ws_frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_NS   (10ULL * 1000000000ULL)
#define MSG_CAP   ((size_t)64 * 1024) /* bytes of a message kept (the rest is counted, not kept) */
#define RBUF_CAP  ((size_t)64 * 1024)
#define INBOX_CAP 128

typedef struct pconn_s pconn_t;
typedef void (*on_msg_fn)(pconn_t *c, const char *msg, size_t len);

struct pconn_s {
    int fd;
    bool ws;
    wsb_ws_parser_t parser;
    uint8_t mask[4];
    on_msg_fn on_msg;
    void *ctx;
    char *msg; /* the current WebSocket message (or NATS payload), MSG_CAP bytes */
    size_t msg_len;
    bool failed; /* closed, a protocol error, or a write that failed */
    /* NATS and HTTP: bytes read but not consumed yet */
    char *rbuf;
    size_t rlen;
};

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* ---- sockets ----------------------------------------------------------------------------- */

static int tcp_connect(const struct sockaddr_storage *addr)
{
    socklen_t alen =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)addr, alen) != 0) {
        (void)close(fd);
        return -1;
    }
    return fd;
}

static int write_all(pconn_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0 && !c->failed) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            c->failed = true;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return c->failed ? -1 : 0;
}

/* Waits until `fd` is readable or `deadline` passed: 1 readable, 0 not. */
static int wait_readable(int fd, uint64_t deadline)
{
    uint64_t now = now_ns();
    if (now >= deadline) {
        return 0;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ms = (int)((deadline - now) / 1000000ULL) + 1;
    int rc = poll(&p, 1, ms);
    return rc > 0 ? 1 : 0;
}

/* ---- WebSocket --------------------------------------------------------------------------- */

static int ws_begin(void *user, int opcode)
{
    pconn_t *c = user;
    (void)opcode;
    c->msg_len = 0;
    return 0;
}

static int ws_data(void *user, const uint8_t *data, size_t len)
{
    pconn_t *c = user;
    size_t take = len < MSG_CAP - 1 - c->msg_len ? len : MSG_CAP - 1 - c->msg_len;
    memcpy(c->msg + c->msg_len, data, take);
    c->msg_len += take;
    return 0;
}

static int ws_end(void *user)
{
    pconn_t *c = user;
    c->msg[c->msg_len] = '\0';
    if (c->on_msg != NULL) {
        c->on_msg(c, c->msg, c->msg_len);
    }
    return 0;
}

static int ws_ping(void *user, const uint8_t *payload, size_t len);

static int ws_close(void *user, int code, const uint8_t *reason, size_t len)
{
    pconn_t *c = user;
    (void)code;
    (void)reason;
    (void)len;
    c->failed = true;
    return 1;
}

static const wsb_ws_parser_callbacks_t ws_cb = {
    .on_message_begin = ws_begin,
    .on_message_data = ws_data,
    .on_message_end = ws_end,
    .on_ping = ws_ping,
    .on_close = ws_close,
};

static int ws_send(pconn_t *c, int opcode, const void *payload, size_t len)
{
    size_t cap = len + WSB_WS_MAX_HEADER_LEN;
    uint8_t *frame = malloc(cap);
    if (frame == NULL) {
        c->failed = true;
        return -1;
    }
    int n = wsb_ws_build_frame(frame, cap, true, opcode, payload, len, c->mask);
    int rc = n < 0 ? -1 : write_all(c, frame, (size_t)n);
    free(frame);
    return rc;
}

static int ws_ping(void *user, const uint8_t *payload, size_t len)
{
    pconn_t *c = user;
    (void)ws_send(c, WSB_WS_OP_PONG, payload, len);
    return 0;
}

static int ws_text(pconn_t *c, const char *json, size_t len)
{
    return ws_send(c, WSB_WS_OP_TEXT, json, len);
}

static void conn_free(pconn_t *c)
{
    if (c->fd >= 0) {
        (void)close(c->fd);
    }
    if (c->ws) {
        wsb_ws_parser_release(&c->parser);
    }
    free(c->msg);
    free(c->rbuf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* Reads once (waiting until `deadline`) and feeds what came: WebSocket frames
 * to the parser, anything else into rbuf. 0 when something was read. */
static int conn_read(pconn_t *c, uint64_t deadline)
{
    if (c->failed || wait_readable(c->fd, deadline) != 1) {
        return -1;
    }
    if (c->ws) {
        uint8_t buf[RBUF_CAP];
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            c->failed = n == 0 || errno != EINTR;
            return c->failed ? -1 : 0;
        }
        if (wsb_ws_parser_feed(&c->parser, buf, (size_t)n, NULL) < 0) {
            c->failed = true;
            return -1;
        }
        return 0;
    }
    if (c->rlen == RBUF_CAP) {
        c->failed = true; /* a line or a body we do not expect */
        return -1;
    }
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF_CAP - c->rlen, 0);
    if (n <= 0) {
        c->failed = n == 0 || errno != EINTR;
        return c->failed ? -1 : 0;
    }
    c->rlen += (size_t)n;
    return 0;
}

static int conn_open(pconn_t *c, const bench_t *b, bool ws)
{
    memset(c, 0, sizeof(*c));
    c->fd = tcp_connect(&b->addr);
    c->msg = malloc(MSG_CAP);
    c->rbuf = malloc(RBUF_CAP);
    if (c->fd < 0 || c->msg == NULL || c->rbuf == NULL) {
        return -1;
    }
    if (!ws) {
        return 0;
    }
    /* The upgrade: the same request as the fan-out run's; the response is
     * read into rbuf, the bytes after it go to the frame parser. */
    c->ws = true;
    wsb_ws_parser_init(&c->parser, WSB_WS_ROLE_CLIENT, 0, &ws_cb, c);
    if (wsb_ws_random_mask(c->mask) != 0 || write_all(c, b->request, b->request_len) != 0) {
        return -1;
    }
    uint64_t deadline = now_ns() + WAIT_NS;
    char *end = NULL;
    while ((end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4)) == NULL) {
        if (c->rlen == RBUF_CAP || wait_readable(c->fd, deadline) != 1) {
            return -1;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF_CAP - c->rlen, 0);
        if (n <= 0) {
            return -1;
        }
        c->rlen += (size_t)n;
    }
    size_t head = (size_t)(end - c->rbuf) + 4;
    if (strncmp(c->rbuf, "HTTP/1.1 101 ", 13) != 0 ||
        memmem(c->rbuf, head, b->accept, strlen(b->accept)) == NULL) {
        return -1;
    }
    if (c->rlen > head &&
        wsb_ws_parser_feed(&c->parser, (uint8_t *)c->rbuf + head, c->rlen - head, NULL) < 0) {
        return -1;
    }
    c->rlen = 0;
    return 0;
}

static bool is_type(const char *msg, const char *type)
{
    char want[40];
    int n = snprintf(want, sizeof(want), "{\"type\":\"%s\"", type);
    return strncmp(msg, want, (size_t)n) == 0;
}

/* Copies the string member `name` (no escapes expected) into out. */
static bool find_str(const char *msg, const char *name, char *out, size_t cap)
{
    char key[40];
    (void)snprintf(key, sizeof(key), "\"%s\":\"", name);
    const char *p = strstr(msg, key);
    if (p == NULL) {
        return false;
    }
    p += strlen(key);
    const char *q = strchr(p, '"');
    if (q == NULL || (size_t)(q - p) >= cap) {
        return false;
    }
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return true;
}

/* The probe's data: a JSON string of --payload bytes. */
static char *make_data(const opts_t *o)
{
    char *d = malloc((size_t)o->payload + 3);
    if (d != NULL) {
        d[0] = '"';
        memset(d + 1, 'x', o->payload);
        d[o->payload + 1] = '"';
        d[o->payload + 2] = '\0';
    }
    return d;
}

/* ---- the run's bookkeeping ---------------------------------------------------------------- */

typedef struct {
    const bench_t *b;
    results_t *r;
    hist_t *hist;
    double cpu0;
    uint64_t t0;
} run_t;

static void run_begin(run_t *run)
{
    const opts_t *o = &run->b->o;
    if (o->broker_pid > 0) {
        (void)procstat_read(o->broker_pid, &run->r->broker_connected);
        run->r->broker_run_start = run->r->broker_connected;
    }
    run->cpu0 = procstat_self_cpu_s();
    run->t0 = now_ns();
}

static void run_end(run_t *run)
{
    const opts_t *o = &run->b->o;
    results_t *r = run->r;
    if (o->broker_pid > 0) {
        (void)procstat_read(o->broker_pid, &r->broker_run_end);
        r->broker_rss_peak_kib = r->broker_run_end.rss_kib;
    }
    r->self_cpu_s = procstat_self_cpu_s() - run->cpu0;
    r->publish_s = (double)(now_ns() - run->t0) / 1e9;
    r->deliver_s = r->publish_s;
}

/* Both sides are connected: the clock and the broker's CPU start; returns
 * when the round trips stop (--duration). */
static uint64_t round_trips_begin(run_t *run)
{
    run->r->subs_ready = 1;
    run->r->pubs_ready = 1;
    run_begin(run);
    return run->t0 + (uint64_t)(run->b->o.duration * 1e9);
}

/* Counts a round trip that started at t0: a sample when it got its reply,
 * else an error (which ends the probe: false). */
static bool round_trip_done(results_t *r, hist_t *h, bool replied, uint64_t t0)
{
    uint64_t t1 = now_ns();
    if (!replied) {
        r->errors++;
        return false;
    }
    r->acked++;
    r->expected++;
    r->received++;
    hist_record(h, t1 - t0);
    return true;
}

/* ---- request/reply over wsbroker ---------------------------------------------------------- */

typedef struct {
    pconn_t req, resp;
    char inbox[INBOX_CAP];
    bool asked;      /* the responder saw the request */
    bool answered;   /* the requester's request ended (reply or error) */
    bool replied;    /* ... with a reply */
    bool subscribed; /* the responder's subscribe ack */
    const char *data;
    size_t data_len;
    char *frame;
    size_t frame_cap;
} rr_t;

static void rr_responder_msg(pconn_t *c, const char *msg, size_t len)
{
    rr_t *rr = c->ctx;
    (void)len;
    if (is_type(msg, "ack")) {
        rr->subscribed = true;
    } else if (is_type(msg, "message") && find_str(msg, "reply_to", rr->inbox, sizeof(rr->inbox))) {
        rr->asked = true;
        int n =
            snprintf(rr->frame, rr->frame_cap,
                     "{\"type\":\"publish\",\"topic\":\"%s\",\"data\":%s}", rr->inbox, rr->data);
        (void)ws_text(c, rr->frame, (size_t)n);
    } else if (is_type(msg, "error")) {
        c->failed = true;
    }
}

static void rr_requester_msg(pconn_t *c, const char *msg, size_t len)
{
    rr_t *rr = c->ctx;
    (void)len;
    if (is_type(msg, "reply")) {
        rr->answered = true;
        rr->replied = true;
    } else if (is_type(msg, "error")) {
        rr->answered = true;
    }
}

/* Reads `c` until *flag or the deadline. */
static int pump_until(pconn_t *c, const bool *flag, uint64_t deadline)
{
    while (!*flag) {
        if (conn_read(c, deadline) != 0) {
            return -1;
        }
    }
    return 0;
}

/* POST /api/request on `c`, then the responder, then the response. 0 on a
 * 200, 1 on another status, -1 on a failure. */
static int http_round_trip(rr_t *rr, const bench_t *b, const char *body, size_t body_len,
                           uint64_t deadline)
{
    pconn_t *c = &rr->req;
    char head[256];
    int hn = snprintf(head, sizeof(head),
                      "POST /api/request HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: "
                      "application/json\r\nContent-Length: %zu\r\n\r\n",
                      b->o.host, b->o.port, body_len);
    if (write_all(c, head, (size_t)hn) != 0 || write_all(c, body, body_len) != 0) {
        return -1;
    }
    if (pump_until(&rr->resp, &rr->asked, deadline) != 0) {
        return -1;
    }
    for (;;) {
        char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (end != NULL) {
            size_t hlen = (size_t)(end - c->rbuf) + 4;
            *end = '\0';
            const char *cl = strcasestr(c->rbuf, "\r\ncontent-length:");
            size_t blen = cl != NULL ? strtoul(cl + 17, NULL, 10) : 0;
            if (c->rlen >= hlen + blen) {
                int status = strncmp(c->rbuf, "HTTP/1.1 200 ", 13) == 0 ? 0 : 1;
                memmove(c->rbuf, c->rbuf + hlen + blen, c->rlen - hlen - blen);
                c->rlen -= hlen + blen;
                return status;
            }
            *end = '\r';
        }
        if (conn_read(c, deadline) != 0) {
            return -1;
        }
    }
}

static int probe_request(const bench_t *b, results_t *r, hist_t *h, bool http)
{
    const opts_t *o = &b->o;
    rr_t rr;
    memset(&rr, 0, sizeof(rr));
    rr.req.fd = rr.resp.fd = -1;
    char *data = make_data(o);
    size_t cap = (size_t)o->payload + 512;
    char *body = malloc(cap);
    rr.frame = malloc(cap);
    rr.frame_cap = cap;
    int status = 1;
    if (data == NULL || body == NULL || rr.frame == NULL) {
        goto out;
    }
    rr.data = data;
    char topic[OPTS_TEMPLATE_MAX + 16];
    (void)opts_expand(o->pub_topic, 0, topic, sizeof(topic));
    if (conn_open(&rr.resp, b, true) != 0 || conn_open(&rr.req, b, !http) != 0) {
        r->fail_connect++;
        goto out;
    }
    rr.resp.on_msg = rr_responder_msg;
    rr.resp.ctx = &rr;
    rr.req.on_msg = rr_requester_msg;
    rr.req.ctx = &rr;
    int n = snprintf(body, cap, "{\"type\":\"subscribe\",\"topic\":\"%s\",\"id\":1}", topic);
    if (ws_text(&rr.resp, body, (size_t)n) != 0 ||
        pump_until(&rr.resp, &rr.subscribed, now_ns() + WAIT_NS) != 0) {
        r->fail_subscribe++;
        goto out;
    }
    status = 0;
    run_t run = {.b = b, .r = r, .hist = h};
    uint64_t end = round_trips_begin(&run);
    for (uint64_t id = 1; now_ns() < end; id++) {
        rr.asked = rr.answered = rr.replied = false;
        uint64_t t0 = now_ns();
        uint64_t deadline = t0 + WAIT_NS;
        int rc = 0;
        if (http) {
            n = snprintf(body, cap, "{\"topic\":\"%s\",\"data\":%s,\"timeout_ms\":5000}", topic,
                         data);
            r->published++;
            rc = http_round_trip(&rr, b, body, (size_t)n, deadline);
            rr.replied = rc == 0;
            rc = rc < 0 ? -1 : 0;
        } else {
            n = snprintf(body, cap,
                         "{\"type\":\"request\",\"topic\":\"%s\",\"data\":%s,\"id\":%" PRIu64
                         ",\"timeout_ms\":5000}",
                         topic, data, id);
            r->published++;
            rc = ws_text(&rr.req, body, (size_t)n);
            if (rc == 0) {
                rc = pump_until(&rr.resp, &rr.asked, deadline);
            }
            if (rc == 0) {
                rc = pump_until(&rr.req, &rr.answered, deadline);
            }
        }
        if (!round_trip_done(r, h, rc == 0 && rr.replied, t0)) {
            break;
        }
    }
    run_end(&run);
out:
    conn_free(&rr.req);
    conn_free(&rr.resp);
    free(data);
    free(body);
    free(rr.frame);
    return status;
}

/* ---- request/reply over NATS -------------------------------------------------------------- */

/* The next complete MSG of `c` (skipping INFO, +OK, PONG; answering PING):
 * 1 found (subject, reply subject and payload length in the out-params, the
 * message consumed), 0 needs more bytes, -1 -ERR or garbage. */
static int nats_next_msg(pconn_t *c, char *reply, size_t reply_cap, bool *pong)
{
    for (;;) {
        char *eol = memmem(c->rbuf, c->rlen, "\r\n", 2);
        if (eol == NULL) {
            return 0;
        }
        size_t line_len = (size_t)(eol - c->rbuf);
        size_t consumed = line_len + 2;
        if (line_len >= 4 && memcmp(c->rbuf, "MSG ", 4) == 0) {
            /* MSG <subject> <sid> [reply-to] <#bytes> */
            char line[512];
            if (line_len >= sizeof(line)) {
                return -1;
            }
            memcpy(line, c->rbuf, line_len);
            line[line_len] = '\0';
            char *tok[5];
            int nt = 0;
            for (char *save = NULL, *t = strtok_r(line, " ", &save); t != NULL && nt < 5;
                 t = strtok_r(NULL, " ", &save)) {
                tok[nt++] = t;
            }
            if (nt != 4 && nt != 5) {
                return -1;
            }
            size_t bytes = strtoul(tok[nt - 1], NULL, 10);
            if (c->rlen < consumed + bytes + 2) {
                return 0;
            }
            reply[0] = '\0';
            if (nt == 5) {
                (void)snprintf(reply, reply_cap, "%s", tok[3]);
            }
            c->msg_len = bytes;
            consumed += bytes + 2;
            memmove(c->rbuf, c->rbuf + consumed, c->rlen - consumed);
            c->rlen -= consumed;
            return 1;
        }
        if (line_len >= 4 && memcmp(c->rbuf, "-ERR", 4) == 0) {
            (void)fprintf(stderr, "wsbench: nats: %.*s\n", (int)line_len, c->rbuf);
            return -1;
        }
        if (line_len == 4 && memcmp(c->rbuf, "PING", 4) == 0) {
            (void)write_all(c, "PONG\r\n", 6);
        }
        if (line_len == 4 && memcmp(c->rbuf, "PONG", 4) == 0 && pong != NULL) {
            *pong = true;
        }
        memmove(c->rbuf, c->rbuf + consumed, c->rlen - consumed);
        c->rlen -= consumed;
    }
}

/* Reads `c` until a MSG (1) or PONG (when pong != NULL, 2). */
static int nats_wait(pconn_t *c, char *reply, size_t reply_cap, bool *pong, uint64_t deadline)
{
    for (;;) {
        int rc = nats_next_msg(c, reply, reply_cap, pong);
        if (rc != 0) {
            return rc;
        }
        if (pong != NULL && *pong) {
            return 2;
        }
        if (conn_read(c, deadline) != 0) {
            return -1;
        }
    }
}

static int nats_open(pconn_t *c, const bench_t *b, const char *subject, const char *sid)
{
    if (conn_open(c, b, false) != 0) {
        return -1;
    }
    char cmd[512];
    int n = snprintf(cmd, sizeof(cmd),
                     "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,"
                     "\"name\":\"wsbench\",\"lang\":\"c\",\"version\":\"0.1\",\"protocol\":1}\r\n"
                     "SUB %s %s\r\nPING\r\n",
                     subject, sid);
    bool pong = false;
    char reply[INBOX_CAP];
    if (write_all(c, cmd, (size_t)n) != 0 ||
        nats_wait(c, reply, sizeof(reply), &pong, now_ns() + WAIT_NS) != 2) {
        return -1;
    }
    return 0;
}

/* PUB SUBJECT [REPLY] LEN, then LEN bytes of 'x', in one write; `buf` has
 * room for the payload plus 512 bytes. */
static int nats_pub(pconn_t *c, char *buf, const char *subject, const char *reply, uint32_t payload)
{
    int n = snprintf(buf, 512, "PUB %s%s%s %u\r\n", subject, reply[0] != '\0' ? " " : "", reply,
                     payload);
    if (n < 0 || n >= 512) {
        return -1;
    }
    memset(buf + n, 'x', payload);
    buf[(size_t)n + payload] = '\r';
    buf[(size_t)n + payload + 1] = '\n';
    return write_all(c, buf, (size_t)n + payload + 2);
}

static int probe_nats(const bench_t *b, results_t *r, hist_t *h)
{
    const opts_t *o = &b->o;
    pconn_t req, resp;
    memset(&req, 0, sizeof(req));
    memset(&resp, 0, sizeof(resp));
    req.fd = resp.fd = -1;
    char topic[OPTS_TEMPLATE_MAX + 16];
    (void)opts_expand(o->pub_topic, 0, topic, sizeof(topic));
    uint8_t rnd[4];
    char inbox[64];
    (void)wsb_ws_random_mask(rnd);
    (void)snprintf(inbox, sizeof(inbox), "_INBOX.wsbench%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                   rnd[3]);
    char inbox_sub[80];
    (void)snprintf(inbox_sub, sizeof(inbox_sub), "%s.*", inbox);
    size_t cap = (size_t)o->payload + 512;
    char *cmd = malloc(cap);
    int status = 1;
    if (cmd == NULL) {
        goto out;
    }
    if (nats_open(&resp, b, topic, "1") != 0 || nats_open(&req, b, inbox_sub, "1") != 0) {
        r->fail_connect++;
        goto out;
    }
    status = 0;
    run_t run = {.b = b, .r = r, .hist = h};
    uint64_t end = round_trips_begin(&run);
    char reply[INBOX_CAP];
    char subject[INBOX_CAP];
    for (uint64_t id = 1; now_ns() < end; id++) {
        uint64_t t0 = now_ns();
        uint64_t deadline = t0 + WAIT_NS;
        /* The request: PUB with a reply subject and --payload bytes of 'x',
         * the same data as the wsbroker probes'. */
        (void)snprintf(subject, sizeof(subject), "%s.%" PRIu64, inbox, id);
        r->published++;
        int rc = nats_pub(&req, cmd, topic, subject, o->payload);
        if (rc == 0 && nats_wait(&resp, reply, sizeof(reply), NULL, deadline) == 1 &&
            reply[0] != '\0') {
            rc = nats_pub(&resp, cmd, reply, "", o->payload);
            if (rc == 0) {
                rc = nats_wait(&req, reply, sizeof(reply), NULL, deadline) == 1 ? 0 : -1;
            }
        } else {
            rc = -1;
        }
        if (!round_trip_done(r, h, rc == 0, t0)) {
            break;
        }
    }
    run_end(&run);
out:
    conn_free(&req);
    conn_free(&resp);
    free(cmd);
    return status;
}

/* ---- last value on wildcards -------------------------------------------------------------- */

typedef struct {
    uint64_t acks;
    uint64_t messages;
    uint64_t errors;
    uint64_t want_acks;
    uint64_t want_messages;
    bool done;
} lv_t;

static void lv_msg(pconn_t *c, const char *msg, size_t len)
{
    lv_t *lv = c->ctx;
    (void)len;
    if (is_type(msg, "ack")) {
        lv->acks++;
    } else if (is_type(msg, "message")) {
        lv->messages++;
    } else if (is_type(msg, "error")) {
        lv->errors++;
        (void)fprintf(stderr, "wsbench: lastvalue: %s\n", msg);
    }
    lv->done = lv->errors > 0 || (lv->acks >= lv->want_acks && lv->messages >= lv->want_messages);
}

/* Writes `count` frames, each made by fmt with the topic of template `tmpl`
 * for n = 0..count-1, in one write. */
static int send_each_topic(pconn_t *c, const char *kind, const char *tmpl, uint32_t count,
                           const char *extra, const char *data)
{
    size_t frame_max = WSB_WS_MAX_HEADER_LEN + 512 + (data != NULL ? strlen(data) : 0);
    uint8_t *buf = malloc((size_t)count * frame_max);
    if (buf == NULL) {
        return -1;
    }
    size_t used = 0;
    for (uint32_t k = 0; k < count; k++) {
        char topic[OPTS_TEMPLATE_MAX + 16];
        char json[1024];
        (void)opts_expand(tmpl, k, topic, sizeof(topic));
        int n = snprintf(json, sizeof(json), "{\"type\":\"%s\",\"topic\":\"%s\",\"id\":%u%s%s%s}",
                         kind, topic, k + 1, extra, data != NULL ? ",\"data\":" : "",
                         data != NULL ? data : "");
        if (n < 0 || (size_t)n >= sizeof(json)) {
            free(buf);
            return -1;
        }
        int fl = wsb_ws_build_frame(buf + used, frame_max, true, WSB_WS_OP_TEXT, (uint8_t *)json,
                                    (size_t)n, c->mask);
        if (fl < 0) {
            free(buf);
            return -1;
        }
        used += (size_t)fl;
    }
    int rc = write_all(c, buf, used);
    free(buf);
    return rc;
}

static int probe_lastvalue(const bench_t *b, results_t *r, hist_t *h, bool exact)
{
    const opts_t *o = &b->o;
    pconn_t pub, sub;
    memset(&pub, 0, sizeof(pub));
    memset(&sub, 0, sizeof(sub));
    pub.fd = sub.fd = -1;
    lv_t lv;
    memset(&lv, 0, sizeof(lv));
    char *data = make_data(o);
    int status = 1;
    if (data == NULL || conn_open(&pub, b, true) != 0) {
        r->fail_connect++;
        goto out;
    }
    /* One message on each topic: its last value. */
    pub.on_msg = lv_msg;
    pub.ctx = &lv;
    lv.want_acks = o->topics;
    if (send_each_topic(&pub, "publish", o->pub_topic, o->topics, "", data) != 0) {
        r->errors++;
        goto out;
    }
    while (!lv.done) {
        if (conn_read(&pub, now_ns() + WAIT_NS) != 0) {
            r->errors++;
            goto out;
        }
    }
    if (lv.errors > 0) {
        r->errors += lv.errors;
        goto out;
    }
    r->pubs_ready = 1;
    status = 0;
    run_t run = {.b = b, .r = r, .hist = h};
    run_begin(&run);
    char sub_json[OPTS_TEMPLATE_MAX + 128];
    char pattern[OPTS_TEMPLATE_MAX + 16];
    (void)opts_expand(o->patterns[0], 0, pattern, sizeof(pattern));
    int sn = snprintf(sub_json, sizeof(sub_json),
                      "{\"type\":\"subscribe\",\"topic\":\"%s\",\"id\":1,\"history\":1}", pattern);
    for (uint32_t i = 0; i < o->repeat; i++) {
        if (conn_open(&sub, b, true) != 0) {
            r->fail_connect++;
            break;
        }
        memset(&lv, 0, sizeof(lv));
        sub.on_msg = lv_msg;
        sub.ctx = &lv;
        lv.want_acks = exact ? o->topics : 1;
        lv.want_messages = o->topics;
        /* The welcome is read before the clock starts. */
        while (lv.acks + lv.messages == 0 && !sub.failed && sub.msg_len == 0) {
            if (conn_read(&sub, now_ns() + WAIT_NS) != 0) {
                break;
            }
        }
        uint64_t t0 = now_ns();
        int rc = exact ? send_each_topic(&sub, "subscribe", o->pub_topic, o->topics,
                                         ",\"history\":1", NULL)
                       : ws_text(&sub, sub_json, (size_t)sn);
        r->published++;
        while (rc == 0 && !lv.done) {
            rc = conn_read(&sub, t0 + WAIT_NS);
        }
        uint64_t t1 = now_ns();
        r->expected += o->topics;
        r->received += lv.messages;
        if (rc != 0 || lv.errors > 0) {
            r->errors += lv.errors > 0 ? lv.errors : 1;
            conn_free(&sub);
            break;
        }
        r->acked++;
        hist_record(h, t1 - t0);
        conn_free(&sub);
    }
    r->subs_ready = r->acked > 0 ? 1 : 0;
    run_end(&run);
out:
    conn_free(&pub);
    conn_free(&sub);
    free(data);
    return status;
}

int probe_run(const bench_t *b, results_t *r, hist_t *h)
{
    if (b->o.broker_pid > 0) {
        (void)procstat_read(b->o.broker_pid, &r->broker_start);
    }
    r->threads = 1;
    switch (b->o.probe) {
    case PROBE_REQUEST:
        return probe_request(b, r, h, false);
    case PROBE_HTTP_REQUEST:
        return probe_request(b, r, h, true);
    case PROBE_NATS_REQUEST:
        return probe_nats(b, r, h);
    case PROBE_LASTVALUE:
        return probe_lastvalue(b, r, h, false);
    case PROBE_LASTVALUE_EXACT:
        return probe_lastvalue(b, r, h, true);
    case PROBE_NONE:
        break;
    }
    return 1;
}
