/*
 * fuzz_http.c - libFuzzer target for the HTTP request parser and the
 * WebSocket handshake built on it.
 *
 * Input: byte 0 picks the limits and how the rest is cut into reads; the rest
 * is what a client sends. The text seeds in corpus/http start with a newline
 * (0x0a): reads of 11 bytes, default head and 64 KiB body limits. The session
 * is driven like the broker drives it (feed, handle, reset, feed the rest;
 * stop after an upgrade), each read in its own exact-size heap copy so ASan
 * sees any over-read. Every complete request goes through
 * wsb_handshake_check and the response writers, its URL through the path and
 * query decoders.
 *
 * Invariants: *consumed never exceeds the read; request strings are copied
 * slices laid out in order inside one region no larger than max_header_bytes;
 * statuses come from the documented sets; and the transcript of the session
 * is the same whether the input arrives in one read or in many.
 */
#include "wsb/handshake.h"
#include "wsb/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TRANSCRIPT_MAX 65536

/* An assert that survives NDEBUG builds: a fuzzer must never stop checking. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            (void)fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct {
    char text[TRANSCRIPT_MAX];
    size_t len;
} transcript_t;

static void note(transcript_t *t, const char *s, size_t n)
{
    if (n > sizeof(t->text) - t->len) {
        n = sizeof(t->text) - t->len;
    }
    memcpy(t->text + t->len, s, n);
    t->len += n;
}

static void note_int(transcript_t *t, const char *label, long long v)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%s=%lld;", label, v);
    CHECK(n > 0 && (size_t)n < sizeof(buf));
    note(t, buf, (size_t)n);
}

static void note_str(transcript_t *t, wsb_str_t s)
{
    note_int(t, "len", (long long)s.len);
    if (s.len > 0) {
        note(t, s.p, s.len);
    }
}

/* Written so that the compiler cannot drop the reads in touch(). */
static volatile unsigned touch_sink;

/* Reads every byte of a slice so ASan checks that it lies in live memory. */
static void touch(wsb_str_t s)
{
    unsigned sum = 0;
    for (size_t i = 0; i < s.len; i++) {
        sum += (unsigned char)s.p[i];
    }
    touch_sink += sum;
}

typedef struct {
    const char *lo;
    const char *hi;
    const char *last_end;
} layout_t;

/* Slices are appended to the parser's buffer in request order, so each one
 * starts at or after the end of the previous one. */
static void check_slice(layout_t *l, wsb_str_t s, const char *input, size_t input_len)
{
    CHECK(s.p != NULL || s.len == 0);
    if (s.p == NULL) {
        return;
    }
    CHECK(s.len == 0 || s.p + s.len <= input || s.p >= input + input_len);
    if (l->last_end != NULL) {
        CHECK(s.p >= l->last_end);
    }
    l->last_end = s.p + s.len;
    if (l->lo == NULL || s.p < l->lo) {
        l->lo = s.p;
    }
    if (l->hi == NULL || s.p + s.len > l->hi) {
        l->hi = s.p + s.len;
    }
    touch(s);
}

static void exercise_url(wsb_str_t url)
{
    char out[512];
    static const size_t caps[] = {0, 1, 2, 8, sizeof(out)};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        int n = wsb_http_decode_path(url, out, caps[i]);
        CHECK(n == WSB_EINVAL || n == WSB_ENOSPC || (n >= 0 && (size_t)n < caps[i]));
        if (n >= 0) {
            CHECK(out[n] == '\0');
            CHECK(memchr(out, '\0', (size_t)n) == NULL);
        }
        static const char *const names[] = {"token", "a", "", "since"};
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            int q = wsb_http_query_param(url, names[k], out, caps[i]);
            CHECK(q == WSB_EAGAIN || q == WSB_EINVAL || q == WSB_ENOSPC ||
                  (q >= 0 && (size_t)q < caps[i]));
            if (q >= 0) {
                CHECK(out[q] == '\0');
            }
        }
    }
}

static void exercise_request(const wsb_http_request_t *r, size_t max_head, size_t max_body,
                             const char *input, size_t input_len, transcript_t *t)
{
    layout_t l = {NULL, NULL, NULL};
    wsb_str_t method = wsb_http_request_method(r);
    wsb_str_t url = wsb_http_request_url(r);
    CHECK(method.len > 0 && url.len > 0);
    check_slice(&l, method, input, input_len);
    check_slice(&l, url, input, input_len);
    size_t count = wsb_http_request_header_count(r);
    CHECK(count <= WSB_HTTP_MAX_HEADERS);
    CHECK(wsb_http_request_header_at(r, count) == NULL);
    const char *host_error = wsb_http_request_host_error(r);
    CHECK(host_error == NULL || host_error[0] != '\0');
    for (size_t i = 0; i < count; i++) {
        const wsb_http_header_t *h = wsb_http_request_header_at(r, i);
        CHECK(h != NULL && h->name.len > 0);
        check_slice(&l, h->name, input, input_len);
        check_slice(&l, h->value, input, input_len);
    }
    CHECK((size_t)(l.hi - l.lo) <= max_head);
    int version = wsb_http_request_version(r);
    CHECK(version == 10 || version == 11);
    wsb_str_t body = wsb_http_request_body(r);
    CHECK(body.len <= max_body);
    CHECK(body.p != NULL);
    CHECK(body.len == 0 || body.p + body.len <= input || body.p >= input + input_len);
    touch(body);

    note(t, "REQ;", 4);
    note_str(t, method);
    note_str(t, url);
    note_int(t, "v", version);
    note_int(t, "ka", wsb_http_request_keep_alive(r));
    note_int(t, "up", wsb_http_request_is_upgrade(r));
    for (size_t i = 0; i < count; i++) {
        note_str(t, wsb_http_request_header_at(r, i)->name);
        note_str(t, wsb_http_request_header_at(r, i)->value);
    }
    note_str(t, body);

    exercise_url(url);
    (void)wsb_http_request_header_has_token(r, "Connection", "upgrade");

    static const char *const protos[] = {"wsb.v1", "chat", NULL};
    wsb_handshake_t hs;
    int rc = wsb_handshake_check(r, protos, &hs);
    char buf[4096];
    if (rc == 0) {
        CHECK(hs.status == 0 && hs.reason == NULL);
        CHECK(hs.key.len == 24);
        int n = wsb_handshake_response(buf, sizeof(buf), &hs);
        if (hs.subprotocol.len < 1000) {
            CHECK(n > 0 && memcmp(buf, "HTTP/1.1 101 ", 13) == 0);
        } else {
            CHECK(n > 0 || n == WSB_ENOSPC);
        }
        CHECK(wsb_handshake_response(buf, 16, &hs) == WSB_ENOSPC);
        char accept[WSB_WS_ACCEPT_LEN + 1];
        wsb_handshake_accept_key(hs.key, accept);
        CHECK(strlen(accept) == WSB_WS_ACCEPT_LEN);
    } else {
        CHECK(rc == WSB_EHANDSHAKE);
        CHECK(hs.status == 400 || hs.status == 405 || hs.status == 426);
        CHECK(hs.reason != NULL);
        int n = wsb_handshake_error_response(buf, sizeof(buf), hs.status, hs.reason);
        CHECK(n > 0 && (size_t)n < sizeof(buf));
    }
    note_int(t, "hs", hs.status);
    int n = wsb_http_write_head(buf, sizeof(buf), 200, "text/plain", body.len,
                                wsb_http_request_keep_alive(r), NULL);
    CHECK(n > 0);
}

/* Drives a whole session; `cut` is the read size (0: everything at once). */
static void run_session(const uint8_t *in, size_t len, size_t cut, size_t max_head, size_t max_body,
                        transcript_t *t)
{
    wsb_http_request_t *r = wsb_http_request_new(max_head, max_body);
    if (r == NULL) {
        return;
    }
    t->len = 0;
    size_t pos = 0;
    bool done = false;
    while (!done && (pos < len || pos == 0)) {
        size_t n = cut == 0 ? len - pos : (len - pos < cut ? len - pos : cut);
        /* An exact-size heap copy per read, so ASan catches over-reads. */
        char *chunk = malloc(n > 0 ? n : 1);
        CHECK(chunk != NULL);
        if (n > 0) {
            memcpy(chunk, in + pos, n);
        }
        size_t off = 0;
        for (;;) {
            size_t consumed = (size_t)-1;
            int rc = wsb_http_request_feed(r, chunk + off, n - off, &consumed);
            CHECK(consumed <= n - off);
            if (rc == WSB_EAGAIN) {
                CHECK(consumed == n - off);
                break;
            }
            if (rc == WSB_EHTTP) {
                int status = wsb_http_request_status(r);
                CHECK(status == 400 || status == 413 || status == 417 || status == 431 ||
                      status == 505);
                CHECK(wsb_http_request_error(r)[0] != '\0');
                char buf[1024];
                int w = wsb_handshake_error_response(buf, sizeof(buf), status,
                                                     wsb_http_request_error(r));
                CHECK(w > 0);
                note_int(t, "ERR", status);
                done = true;
                break;
            }
            CHECK(rc == 0);
            exercise_request(r, max_head, max_body, chunk, n, t);
            off += consumed;
            if (wsb_http_request_is_upgrade(r)) {
                note(t, "REST;", 5);
                note_str(t, (wsb_str_t){(const char *)in + pos + off, len - pos - off});
                done = true;
                break;
            }
            wsb_http_request_reset(r);
            if (off == n) {
                break;
            }
        }
        free(chunk);
        pos += n;
        if (len == 0) {
            break;
        }
    }
    wsb_http_request_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static transcript_t whole;
    static transcript_t pieces;
    if (size == 0) {
        return 0;
    }
    uint8_t mode = data[0];
    static const size_t heads[] = {WSB_HTTP_DEFAULT_MAX_HEAD, 256, 64, 1024};
    static const size_t bodies[] = {65536, 0, 16, 300};
    size_t max_head = heads[(mode >> 4) & 3];
    size_t max_body = bodies[(mode >> 6) & 3];
    size_t cut = (size_t)(mode & 15) + 1; /* reads of 1..16 bytes */

    run_session(data + 1, size - 1, 0, max_head, max_body, &whole);
    run_session(data + 1, size - 1, cut, max_head, max_body, &pieces);
    CHECK(whole.len == pieces.len && memcmp(whole.text, pieces.text, whole.len) == 0);
    return 0;
}
