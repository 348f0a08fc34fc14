/*
 * test_ws_frame.c - RFC 6455 frame codec.
 *
 * Every parse goes through drive(): the input is fed in scripted pieces (whole,
 * split at a point, one byte at a time, seeded random chunks), each piece
 * copied to the end of a guard page, and every callback is recorded into a
 * text trace. Consecutive data slices are merged in the trace, so any split
 * of the same input must give the same trace. With stop_every, every callback
 * returns STOP and the driver re-feeds the rest, which must change nothing.
 */
/* guard.h needs MAP_ANONYMOUS, which strict _POSIX_C_SOURCE hides on glibc. */
#define _DEFAULT_SOURCE 1

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h, included below, needs the four headers above first. */
#include "guard.h"
#include "wsb/common.h"
#include "wsb/utf8.h"
#include "wsb/ws_frame.h"

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STOP 7

static const uint8_t RFC_KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- trace recorder ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    bool merge_data; /* merge consecutive data slices (split-independent trace) */
    bool last_data;  /* the previous event was a data slice */
    bool stop_every; /* every callback returns STOP */
    long stop_at;    /* the event with this index returns stop_value (-1: none) */
    int stop_value;
    long events;      /* callbacks so far */
    int msg_opcode;   /* message in progress per the callbacks, 0 if none */
    uint64_t msg_len; /* data bytes of it so far */
    uint64_t max;     /* the parser's max_message_size */
    wsb_utf8_t utf8;  /* text data so far must be a valid prefix */
} recorder_t;

static void rec_init(recorder_t *r)
{
    memset(r, 0, sizeof(*r));
    r->merge_data = true;
    r->stop_at = -1;
    r->cap = 256;
    r->buf = malloc(r->cap);
    assert_non_null(r->buf);
    r->buf[0] = '\0';
}

static void rec_raw(recorder_t *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        while (r->len + n + 1 > r->cap) {
            r->cap *= 2;
        }
        r->buf = realloc(r->buf, r->cap);
        assert_non_null(r->buf);
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

static void rec_str(recorder_t *r, const char *s)
{
    rec_raw(r, s, strlen(s));
}

static void rec_hex(recorder_t *r, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    if (n == 0 || p == NULL) { /* NULL with n > 0 already failed an assert */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char h[2] = {digits[p[i] >> 4], digits[p[i] & 15]};
        rec_raw(r, h, 2);
    }
}

/* Counts the event and returns what the callback should return. */
static int rec_event(recorder_t *r)
{
    long idx = r->events++;
    if (r->stop_every) {
        return STOP;
    }
    return idx == r->stop_at ? r->stop_value : 0;
}

static int on_begin_cb(void *ud, int opcode)
{
    recorder_t *r = ud;
    char s[16];
    assert_int_equal(r->msg_opcode, 0);
    assert_true(opcode == WSB_WS_OP_TEXT || opcode == WSB_WS_OP_BINARY);
    r->msg_opcode = opcode;
    r->msg_len = 0;
    wsb_utf8_init(&r->utf8);
    (void)snprintf(s, sizeof(s), "|B%d", opcode);
    rec_str(r, s);
    r->last_data = false;
    return rec_event(r);
}

static int on_data_cb(void *ud, const uint8_t *data, size_t len)
{
    recorder_t *r = ud;
    assert_int_not_equal(r->msg_opcode, 0);
    assert_true(len > 0);
    r->msg_len += len;
    if (r->max != 0) {
        assert_true(r->msg_len <= r->max);
    }
    if (r->msg_opcode == WSB_WS_OP_TEXT) {
        assert_int_equal(wsb_utf8_feed(&r->utf8, data, len), 0);
    }
    if (!(r->merge_data && r->last_data)) {
        rec_str(r, "|D");
    }
    rec_hex(r, data, len);
    r->last_data = true;
    return rec_event(r);
}

static int on_end_cb(void *ud)
{
    recorder_t *r = ud;
    assert_int_not_equal(r->msg_opcode, 0);
    if (r->msg_opcode == WSB_WS_OP_TEXT) {
        assert_true(wsb_utf8_complete(&r->utf8));
    }
    r->msg_opcode = 0;
    rec_str(r, "|E");
    r->last_data = false;
    return rec_event(r);
}

static int control_event(recorder_t *r, const char *tag, const uint8_t *payload, size_t len)
{
    assert_true(len <= WSB_WS_MAX_CONTROL_PAYLOAD);
    assert_true(len == 0 || payload != NULL);
    rec_str(r, tag);
    rec_hex(r, payload, len);
    r->last_data = false;
    return rec_event(r);
}

static int on_ping_cb(void *ud, const uint8_t *payload, size_t len)
{
    return control_event(ud, "|P", payload, len);
}

static int on_pong_cb(void *ud, const uint8_t *payload, size_t len)
{
    return control_event(ud, "|O", payload, len);
}

static int on_close_cb(void *ud, int code, const uint8_t *reason, size_t len)
{
    char tag[24];
    assert_true(wsb_utf8_valid(reason, len));
    assert_true(code == WSB_WS_CLOSE_NO_STATUS || wsb_ws_close_code_valid(code));
    (void)snprintf(tag, sizeof(tag), "|C%d:", code);
    return control_event(ud, tag, reason, len);
}

static const wsb_ws_parser_callbacks_t rec_callbacks = {
    .on_message_begin = on_begin_cb,
    .on_message_data = on_data_cb,
    .on_message_end = on_end_cb,
    .on_ping = on_ping_cb,
    .on_pong = on_pong_cb,
    .on_close = on_close_cb,
};

/* ---- driver ---- */

typedef struct {
    wsb_ws_role_t role;
    uint64_t max;
    uint8_t rsv_mask;
    bool stop_every;
    bool no_merge;
} cfg_t;

static int expected_error(int close_code)
{
    switch (close_code) {
    case 1002:
        return WSB_EPROTO;
    case 1007:
        return WSB_EUTF8;
    case 1009:
        return WSB_ETOOBIG;
    default:
        fail_msg("unexpected close code %d", close_code);
        return 0;
    }
}

/* Feeds `input` in the pieces delimited by the sorted `cuts` and returns the
 * trace (caller frees). It ends in "|=OK" or "|=ERR<close code>". */
static char *drive(const cfg_t *cfg, const uint8_t *input, size_t len, const size_t *cuts,
                   size_t ncuts)
{
    recorder_t r;
    wsb_ws_parser_t p;
    int rc = 0;
    size_t start = 0;

    rec_init(&r);
    r.stop_every = cfg->stop_every;
    r.merge_data = !cfg->no_merge;
    r.max = cfg->max;
    wsb_ws_parser_init(&p, cfg->role, cfg->max, &rec_callbacks, &r);
    p.rsv_mask = cfg->rsv_mask;

    /* One guard mapping per run; each piece is copied so that it ends right
     * before the inaccessible page. */
    guard_buf_t g;
    uint8_t *guard_end = guard_copy(&g, input, len) + len;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        size_t piece = end - start;
        uint8_t *chunk = guard_end - piece;
        memcpy(chunk, input + start, piece);
        size_t off = 0;
        for (;;) {
            size_t consumed = (size_t)-1;
            long before = r.events;
            rc = wsb_ws_parser_feed(&p, chunk + off, piece - off, &consumed);
            assert_true(consumed <= piece - off);
            if (rc == STOP) {
                /* Stopped right after a callback: exactly one event ran. */
                assert_true(cfg->stop_every);
                assert_int_equal(r.events, before + 1);
                off += consumed;
                continue;
            }
            if (rc == 0) {
                assert_int_equal(consumed, piece - off);
            }
            break;
        }
        start = end;
    }
    guard_free(&g);

    if (rc != 0) {
        long before = r.events;
        uint8_t more[6] = {0x81, 0x80, 1, 2, 3, 4};
        size_t consumed;
        assert_int_equal(rc, expected_error(p.close_code));
        assert_non_null(p.error);
        /* The parser stays failed and calls nothing more. */
        assert_int_equal(wsb_ws_parser_feed(&p, more, sizeof(more), &consumed), rc);
        assert_int_equal(wsb_ws_parser_feed(&p, NULL, 0, NULL), rc);
        assert_int_equal(r.events, before);
        char s[32];
        (void)snprintf(s, sizeof(s), "|=ERR%d", p.close_code);
        rec_str(&r, s);
    } else {
        assert_int_equal(p.close_code, 0);
        assert_null(p.error);
        rec_str(&r, "|=OK");
    }
    return r.buf;
}

static char *drive_whole(const cfg_t *cfg, const uint8_t *input, size_t len)
{
    return drive(cfg, input, len, NULL, 0);
}

static void expect_trace(const cfg_t *cfg, const uint8_t *input, size_t len, const char *want)
{
    char *got = drive_whole(cfg, input, len);
    if (strcmp(got, want) != 0) {
        fail_msg("trace\n  got  %s\n  want %s", got, want);
    }
    free(got);
}

static uint64_t rng_state;

static uint32_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* A data slice is passed on as soon as it is known to be valid, so when a
 * message fails part way (bad UTF-8 in the middle of a frame), how much of it
 * was delivered depends on where the input was split. Traces are therefore
 * compared without the data events after the last message begin when they
 * end in an error. (The recorder checks that delivered text is always valid.) */
static char *normalized(const char *trace)
{
    char *out = strdup(trace);
    assert_non_null(out);
    if (strstr(trace, "|=ERR") == NULL) {
        return out;
    }
    const char *last_begin = NULL;
    for (const char *q = strstr(trace, "|B"); q != NULL; q = strstr(q + 1, "|B")) {
        last_begin = q;
    }
    if (last_begin == NULL) {
        return out;
    }
    size_t n = (size_t)(last_begin - trace);
    for (const char *q = last_begin; *q != '\0';) {
        const char *next = strchr(q + 1, '|');
        size_t ev = next != NULL ? (size_t)(next - q) : strlen(q);
        if (q[1] != 'D') {
            memcpy(out + n, q, ev);
            n += ev;
        }
        q += ev;
    }
    out[n] = '\0';
    return out;
}

static void check_same(const char *what, size_t at, const char *got, const char *want)
{
    char *g = normalized(got), *w = normalized(want);
    if (strcmp(g, w) != 0) {
        fail_msg("%s (at %zu): trace differs\n  got  %s\n  want %s", what, at, got, want);
    }
    free(g);
    free(w);
}

/* The split-independence check: whole, every 2-piece split, one byte at a
 * time and random chunks all give the whole-input trace, both with callbacks
 * that continue and with callbacks that stop at every event. Returns the
 * trace (caller frees). */
static char *check_all_splits(const cfg_t *base, const uint8_t *input, size_t len, bool three_way)
{
    char *want = drive_whole(base, input, len);
    size_t *cuts = malloc((len + 1) * sizeof(size_t));
    assert_non_null(cuts);

    for (int stop = 0; stop <= 1; stop++) {
        cfg_t cfg = *base;
        cfg.stop_every = stop != 0;
        char *got = drive_whole(&cfg, input, len);
        check_same("whole", 0, got, want);
        free(got);

        for (size_t k = 0; k <= len; k++) {
            got = drive(&cfg, input, len, &k, 1);
            check_same("split", k, got, want);
            free(got);
        }
        if (three_way) {
            for (size_t a = 1; a < len; a++) {
                for (size_t b = a; b < len; b++) {
                    size_t two[2] = {a, b};
                    got = drive(&cfg, input, len, two, 2);
                    check_same("3-way split", a * 1000 + b, got, want);
                    free(got);
                }
            }
        }
        for (size_t i = 1; i < len; i++) {
            cuts[i - 1] = i;
        }
        got = drive(&cfg, input, len, cuts, len > 0 ? len - 1 : 0);
        check_same("byte at a time", 0, got, want);
        free(got);

        rng_state = 0x2545F4914F6CDD1Dull + len;
        for (int iter = 0; iter < 200; iter++) {
            size_t n = 0, at = 0;
            while (at < len) {
                at += 1 + rng() % (rng() % 4 == 0 ? 64 : 9);
                if (at < len) {
                    cuts[n++] = at;
                }
            }
            got = drive(&cfg, input, len, cuts, n);
            check_same("random chunks", (size_t)iter, got, want);
            free(got);
        }
    }
    free(cuts);
    return want;
}

/* ---- frame builders ---- */

typedef struct {
    uint8_t buf[80000];
    size_t len;
} bytes_t;

static void put(bytes_t *b, const void *p, size_t n)
{
    assert_true(b->len + n <= sizeof(b->buf));
    if (n > 0) {
        memcpy(b->buf + b->len, p, n);
    }
    b->len += n;
}

static void put_byte(bytes_t *b, uint8_t v)
{
    put(b, &v, 1);
}

/* A well-formed frame through the serializer; masked frames get a key that
 * differs from frame to frame. */
static void put_frame(bytes_t *b, bool fin, int op, const void *payload, size_t n, bool masked)
{
    uint8_t key[4] = {(uint8_t)(0x37 + b->len), 0xfa, (uint8_t)(0x21 ^ n), 0x3d};
    int rc = wsb_ws_build_frame(b->buf + b->len, sizeof(b->buf) - b->len, fin, op, payload, n,
                                masked ? key : NULL);
    assert_true(rc > 0);
    b->len += (size_t)rc;
}

/* A frame with a hand-made header: b0, the 7-bit length field and the
 * extended length bytes as given (for malformed headers), then the key (if
 * masked) and the masked payload. */
static void put_raw(bytes_t *b, uint8_t b0, uint8_t len7, const uint8_t *ext, size_t next,
                    bool masked, const void *payload, size_t n)
{
    put_byte(b, b0);
    put_byte(b, (uint8_t)(len7 | (masked ? 0x80 : 0)));
    put(b, ext, next);
    if (masked) {
        put(b, RFC_KEY, 4);
    }
    size_t at = b->len;
    put(b, payload, n);
    if (masked) {
        wsb_ws_mask(b->buf + at, n, RFC_KEY, 0);
    }
}

static const cfg_t SERVER = {.role = WSB_WS_ROLE_SERVER};
static const cfg_t CLIENT = {.role = WSB_WS_ROLE_CLIENT};

/* ---- RFC 6455 section 5.7 examples ---- */

static const uint8_t rfc_hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                           0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t rfc_fragmented[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
static const uint8_t rfc_ping_unmasked[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};

static void test_rfc_single_frame_unmasked_client(void **state)
{
    (void)state;
    expect_trace(&CLIENT, rfc_hello_unmasked, sizeof(rfc_hello_unmasked), "|B1|D48656c6c6f|E|=OK");
    free(check_all_splits(&CLIENT, rfc_hello_unmasked, sizeof(rfc_hello_unmasked), true));
}

static void test_rfc_single_frame_masked_server(void **state)
{
    (void)state;
    expect_trace(&SERVER, rfc_hello_masked, sizeof(rfc_hello_masked), "|B1|D48656c6c6f|E|=OK");
    free(check_all_splits(&SERVER, rfc_hello_masked, sizeof(rfc_hello_masked), true));
}

static void test_rfc_fragmented(void **state)
{
    (void)state;
    cfg_t raw = CLIENT;
    raw.no_merge = true;
    /* One data slice per frame when the input arrives whole. */
    expect_trace(&raw, rfc_fragmented, sizeof(rfc_fragmented), "|B1|D48656c|D6c6f|E|=OK");
    free(check_all_splits(&CLIENT, rfc_fragmented, sizeof(rfc_fragmented), true));

    bytes_t b = {.len = 0};
    put_frame(&b, false, WSB_WS_OP_TEXT, "Hel", 3, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "lo", 2, true);
    expect_trace(&SERVER, b.buf, b.len, "|B1|D48656c6c6f|E|=OK");
    free(check_all_splits(&SERVER, b.buf, b.len, true));
}

static void test_rfc_ping_pong(void **state)
{
    (void)state;
    expect_trace(&CLIENT, rfc_ping_unmasked, sizeof(rfc_ping_unmasked), "|P48656c6c6f|=OK");
    expect_trace(&SERVER, rfc_pong_masked, sizeof(rfc_pong_masked), "|O48656c6c6f|=OK");
    free(check_all_splits(&SERVER, rfc_pong_masked, sizeof(rfc_pong_masked), true));
}

static void check_binary(const cfg_t *cfg, size_t n, const uint8_t *hdr, size_t hlen)
{
    static bytes_t b;
    b.len = 0;
    uint8_t *payload = malloc(n);
    assert_non_null(payload);
    for (size_t i = 0; i < n; i++) {
        payload[i] = (uint8_t)(i * 7 + 3);
    }
    put(&b, hdr, hlen);
    if (cfg->role == WSB_WS_ROLE_SERVER) {
        put(&b, RFC_KEY, 4);
    }
    size_t at = b.len;
    put(&b, payload, n);
    if (cfg->role == WSB_WS_ROLE_SERVER) {
        wsb_ws_mask(b.buf + at, n, RFC_KEY, 0);
    }

    recorder_t want;
    rec_init(&want);
    rec_str(&want, "|B2|D");
    rec_hex(&want, payload, n);
    rec_str(&want, "|E|=OK");
    char *got = drive_whole(cfg, b.buf, b.len);
    assert_string_equal(got, want.buf);
    free(got);

    /* One byte at a time and a few random chunkings. */
    size_t *cuts = malloc(b.len * sizeof(size_t));
    assert_non_null(cuts);
    for (size_t i = 1; i < b.len; i++) {
        cuts[i - 1] = i;
    }
    got = drive(cfg, b.buf, b.len, cuts, b.len - 1);
    assert_string_equal(got, want.buf);
    free(got);
    rng_state = 42;
    for (int iter = 0; iter < 5; iter++) {
        size_t nc = 0, pos = 0;
        while ((pos += 1 + rng() % 3000) < b.len) {
            cuts[nc++] = pos;
        }
        got = drive(cfg, b.buf, b.len, cuts, nc);
        assert_string_equal(got, want.buf);
        free(got);
    }
    free(cuts);
    free(want.buf);
    free(payload);
}

static void test_rfc_256_and_64k_binary(void **state)
{
    (void)state;
    static const uint8_t h256[] = {0x82, 0x7E, 0x01, 0x00};
    static const uint8_t h256m[] = {0x82, 0xFE, 0x01, 0x00};
    static const uint8_t h64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    static const uint8_t h64km[] = {0x82, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    check_binary(&CLIENT, 256, h256, sizeof(h256));
    check_binary(&SERVER, 256, h256m, sizeof(h256m));
    check_binary(&CLIENT, 65536, h64k, sizeof(h64k));
    check_binary(&SERVER, 65536, h64km, sizeof(h64km));

    /* The serializer writes the same headers. */
    uint8_t out[WSB_WS_MAX_HEADER_LEN];
    assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_BINARY, 256, NULL), 4);
    assert_memory_equal(out, h256, 4);
    assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_BINARY, 65536, NULL), 10);
    assert_memory_equal(out, h64k, 10);
    assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_BINARY, 65536, RFC_KEY), 14);
    assert_memory_equal(out, h64km, 10);
    assert_memory_equal(out + 10, RFC_KEY, 4);
}

/* The unmasked examples are client-bound: a server must refuse them. */
static void test_rfc_unmasked_rejected_by_server(void **state)
{
    (void)state;
    expect_trace(&SERVER, rfc_hello_unmasked, sizeof(rfc_hello_unmasked), "|=ERR1002");
    expect_trace(&SERVER, rfc_fragmented, sizeof(rfc_fragmented), "|=ERR1002");
    expect_trace(&SERVER, rfc_ping_unmasked, sizeof(rfc_ping_unmasked), "|=ERR1002");
    /* Detected from the first two bytes alone. */
    expect_trace(&SERVER, rfc_hello_unmasked, 2, "|=ERR1002");
}

static void test_masked_rejected_by_client(void **state)
{
    (void)state;
    expect_trace(&CLIENT, rfc_hello_masked, sizeof(rfc_hello_masked), "|=ERR1002");
    expect_trace(&CLIENT, rfc_pong_masked, sizeof(rfc_pong_masked), "|=ERR1002");
    expect_trace(&CLIENT, rfc_hello_masked, 2, "|=ERR1002");
}

/* ---- rejections ---- */

static void expect_error_all_splits(const cfg_t *cfg, const bytes_t *b, const char *want)
{
    char *got = check_all_splits(cfg, b->buf, b->len, b->len <= 40);
    if (strcmp(got, want) != 0) {
        fail_msg("trace\n  got  %s\n  want %s", got, want);
    }
    free(got);
}

static void test_rsv_bits(void **state)
{
    (void)state;
    for (unsigned bit = 0x10; bit <= 0x40; bit <<= 1) {
        bytes_t b = {.len = 0};
        put_raw(&b, (uint8_t)(0x81 | bit), 2, NULL, 0, true, "hi", 2);
        expect_error_all_splits(&SERVER, &b, "|=ERR1002");

        /* Allowed once an extension claims the bit, refused otherwise. */
        cfg_t ext = SERVER;
        ext.rsv_mask = (uint8_t)bit;
        expect_trace(&ext, b.buf, b.len, "|B1|D6869|E|=OK");
        ext.rsv_mask = (uint8_t)(0x70 & ~bit);
        expect_trace(&ext, b.buf, b.len, "|=ERR1002");
    }
}

static void test_reserved_opcodes(void **state)
{
    (void)state;
    static const uint8_t reserved[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof(reserved); i++) {
        bytes_t b = {.len = 0};
        put_raw(&b, (uint8_t)(0x80 | reserved[i]), 1, NULL, 0, true, "x", 1);
        expect_trace(&SERVER, b.buf, b.len, "|=ERR1002");
        expect_trace(&SERVER, b.buf, 2, "|=ERR1002");
        /* Non-FIN too, and in client role. */
        b.len = 0;
        put_raw(&b, reserved[i], 1, NULL, 0, false, "x", 1);
        expect_trace(&CLIENT, b.buf, b.len, "|=ERR1002");
    }
}

static void test_length_msb_set(void **state)
{
    (void)state;
    static const uint8_t ext[8] = {0x80, 0, 0, 0, 0, 0, 0, 5};
    bytes_t b = {.len = 0};
    put_raw(&b, 0x82, 127, ext, 8, true, "hello", 5);
    expect_error_all_splits(&SERVER, &b, "|=ERR1002");
    /* Refused at the header, before the payload. */
    expect_trace(&SERVER, b.buf, 14, "|=ERR1002");
    /* Also when a size limit would otherwise answer 1009. */
    cfg_t limited = SERVER;
    limited.max = 100;
    expect_trace(&limited, b.buf, 14, "|=ERR1002");
}

static void test_control_frame_too_long(void **state)
{
    (void)state;
    uint8_t payload[126];
    memset(payload, 'p', sizeof(payload));
    static const uint8_t ext126[2] = {0, 126};
    static const uint8_t ext125[2] = {0, 125};
    for (uint8_t op = 0x8; op <= 0xA; op++) {
        bytes_t b = {.len = 0};
        put_raw(&b, (uint8_t)(0x80 | op), 126, ext126, 2, true, payload, 126);
        expect_trace(&SERVER, b.buf, b.len, "|=ERR1002");
        expect_trace(&SERVER, b.buf, 2, "|=ERR1002");
        /* Even a small length in a 16-bit field: the 7-bit field says > 125. */
        b.len = 0;
        put_raw(&b, (uint8_t)(0x80 | op), 126, ext125, 2, true, payload, 125);
        expect_trace(&SERVER, b.buf, b.len, "|=ERR1002");
    }
    /* 125 bytes is fine. */
    bytes_t b = {.len = 0};
    put_raw(&b, 0x89, 125, NULL, 0, true, payload, 125);
    char *got = check_all_splits(&SERVER, b.buf, b.len, false);
    assert_int_equal(strncmp(got, "|P7070", 6), 0);
    assert_int_equal(strlen(got), 2 + 250 + 4);
    free(got);
}

static void test_fragmented_control_frame(void **state)
{
    (void)state;
    for (uint8_t op = 0x8; op <= 0xA; op++) {
        bytes_t b = {.len = 0};
        put_raw(&b, op, 0, NULL, 0, true, NULL, 0);
        expect_error_all_splits(&SERVER, &b, "|=ERR1002");
    }
}

static void test_continuation_without_start(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, true, WSB_WS_OP_CONT, "x", 1, true);
    expect_error_all_splits(&SERVER, &b, "|=ERR1002");

    /* Also right after a complete message. */
    b.len = 0;
    put_frame(&b, true, WSB_WS_OP_TEXT, "a", 1, true);
    put_frame(&b, false, WSB_WS_OP_CONT, "b", 1, true);
    expect_error_all_splits(&SERVER, &b, "|B1|D61|E|=ERR1002");
}

static void test_new_data_frame_inside_fragmented_message(void **state)
{
    (void)state;
    for (int op = WSB_WS_OP_TEXT; op <= WSB_WS_OP_BINARY; op++) {
        bytes_t b = {.len = 0};
        put_frame(&b, false, WSB_WS_OP_TEXT, "a", 1, true);
        put_frame(&b, true, op, "b", 1, true);
        expect_error_all_splits(&SERVER, &b, "|B1|D61|=ERR1002");
    }
}

static void test_oversize_message(void **state)
{
    (void)state;
    cfg_t limited = SERVER;
    limited.max = 10;

    /* A single frame one byte over: refused with only the header fed. */
    uint8_t payload[300];
    memset(payload, 'z', sizeof(payload));
    bytes_t b = {.len = 0};
    put_frame(&b, true, WSB_WS_OP_BINARY, payload, 11, true);
    expect_trace(&limited, b.buf, 6, "|=ERR1009");
    expect_error_all_splits(&limited, &b, "|=ERR1009");

    /* Exactly the limit is accepted. */
    b.len = 0;
    put_frame(&b, true, WSB_WS_OP_BINARY, payload, 10, true);
    expect_trace(&limited, b.buf, b.len, "|B2|D7a7a7a7a7a7a7a7a7a7a|E|=OK");

    /* Across fragments: 6 + 4 fits, 6 + 5 does not; the first fragment is
     * delivered, the second refused at its header. */
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, payload, 6, true);
    put_frame(&b, true, WSB_WS_OP_CONT, payload, 4, true);
    put_frame(&b, false, WSB_WS_OP_TEXT, payload, 6, true);
    size_t second = b.len;
    put_frame(&b, true, WSB_WS_OP_CONT, payload, 5, true);
    expect_error_all_splits(&limited, &b, "|B1|D7a7a7a7a7a7a7a7a7a7a|E|B1|D7a7a7a7a7a7a|=ERR1009");
    expect_trace(&limited, b.buf, second + 6,
                 "|B1|D7a7a7a7a7a7a7a7a7a7a|E|B1|D7a7a7a7a7a7a|=ERR1009");

    /* Control frames do not count towards the message size. */
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, payload, 9, true);
    put_frame(&b, true, WSB_WS_OP_PING, payload, 100, true);
    put_frame(&b, true, WSB_WS_OP_CONT, payload, 1, true);
    char *got = drive_whole(&limited, b.buf, b.len);
    assert_non_null(strstr(got, "|E|=OK"));
    free(got);

    /* Large lengths in 16- and 64-bit fields, limit enforced without payload. */
    static const uint8_t ext16[2] = {0x01, 0x2c};
    static const uint8_t ext64[8] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    b.len = 0;
    put_raw(&b, 0x82, 126, ext16, 2, true, NULL, 0);
    expect_trace(&limited, b.buf, b.len, "|=ERR1009");
    b.len = 0;
    put_raw(&b, 0x81, 127, ext64, 8, true, NULL, 0);
    expect_trace(&limited, b.buf, b.len, "|=ERR1009");

    /* max_message_size 0 means unlimited: the 2^63-1 header is accepted and
     * the message begins. */
    expect_trace(&SERVER, b.buf, b.len, "|B1|=OK");
}

/* The limit may change between feeds; lowering it below what a message in
 * progress already has fails its next frame instead of wrapping around. */
static void test_limit_lowered_mid_message(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, false, WSB_WS_OP_BINARY, "abcdef", 6, true);
    size_t first = b.len;
    put_frame(&b, true, WSB_WS_OP_CONT, NULL, 0, true);
    recorder_t r;
    rec_init(&r);
    wsb_ws_parser_t p;
    wsb_ws_parser_init(&p, WSB_WS_ROLE_SERVER, 100, &rec_callbacks, &r);
    assert_int_equal(wsb_ws_parser_feed(&p, b.buf, first, NULL), 0);
    p.max_message_size = 3;
    assert_int_equal(wsb_ws_parser_feed(&p, b.buf + first, b.len - first, NULL), WSB_ETOOBIG);
    assert_int_equal(p.close_code, 1009);
    assert_string_equal(r.buf, "|B2|D616263646566");
    free(r.buf);
}

static void test_bad_utf8_text(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};

    /* An impossible byte: nothing of the frame is delivered. */
    put_frame(&b, true, WSB_WS_OP_TEXT, "ab\xff", 3, true);
    expect_error_all_splits(&SERVER, &b, "|B1|=ERR1007");

    /* A code point split across fragments is fine... */
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, "\xe2", 1, true);
    put_frame(&b, false, WSB_WS_OP_CONT, "\x82", 1, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "\xac!", 2, true);
    expect_error_all_splits(&SERVER, &b, "|B1|De282ac21|E|=OK");

    /* ...but a surrogate split across fragments fails at its second byte,
     * and 0xF4 0x90 (above U+10FFFF) likewise. */
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, "ok\xed", 3, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "\xa0\x80", 2, true);
    expect_error_all_splits(&SERVER, &b, "|B1|D6f6bed|=ERR1007");
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, "\xf4", 1, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "\x90\x80\x80", 3, true);
    expect_error_all_splits(&SERVER, &b, "|B1|Df4|=ERR1007");

    /* Fail fast: the error comes with the bad byte, before the rest of the
     * frame or of the message has arrived. */
    uint8_t long_text[100];
    memset(long_text, 'a', sizeof(long_text));
    long_text[3] = 0xff;
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, long_text, sizeof(long_text), true);
    expect_trace(&SERVER, b.buf, 6 + 4, "|B1|=ERR1007"); /* header (6) + "aaa\xff" */
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, "ok\xe2\x28", 4, true);
    expect_trace(&SERVER, b.buf, b.len, "|B1|=ERR1007"); /* first fragment, FIN not seen */

    /* Overlong and C0/C1 leads. */
    b.len = 0;
    put_frame(&b, true, WSB_WS_OP_TEXT, "\xc0\xaf", 2, true);
    expect_trace(&SERVER, b.buf, b.len, "|B1|=ERR1007");

    /* Binary messages are not checked. */
    b.len = 0;
    put_frame(&b, true, WSB_WS_OP_BINARY, "\xff\xed\xa0", 3, true);
    expect_trace(&SERVER, b.buf, b.len, "|B2|Dffeda0|E|=OK");
}

static void test_truncated_code_point_at_message_end(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, true, WSB_WS_OP_TEXT, "a\xe2\x82", 3, true);
    expect_error_all_splits(&SERVER, &b, "|B1|D61e282|=ERR1007");

    /* Same with the truncation in the last fragment after a ping. */
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, "a", 1, true);
    put_frame(&b, true, WSB_WS_OP_PING, "", 0, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "\xf0\x9f\x98", 3, true);
    expect_error_all_splits(&SERVER, &b, "|B1|D61|P|Df09f98|=ERR1007");
}

static void test_close_frames(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    char want[64];

    /* Empty payload: code 1005, no reason. */
    put_frame(&b, true, WSB_WS_OP_CLOSE, NULL, 0, true);
    expect_error_all_splits(&SERVER, &b, "|C1005:|=OK");

    /* A 1-byte payload. */
    b.len = 0;
    put_frame(&b, true, WSB_WS_OP_CLOSE, "\x03", 1, true);
    expect_error_all_splits(&SERVER, &b, "|=ERR1002");

    /* Codes that may not be sent. */
    static const int bad_codes[] = {0,    999,  1004, 1005, 1006, 1015, 1016,
                                    1999, 2000, 2999, 5000, 5001, 65535};
    for (size_t i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); i++) {
        uint8_t pl[2] = {(uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i]};
        b.len = 0;
        put_frame(&b, true, WSB_WS_OP_CLOSE, pl, 2, true);
        expect_trace(&SERVER, b.buf, b.len, "|=ERR1002");
        assert_false(wsb_ws_close_code_valid(bad_codes[i]));
    }
    static const int good_codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof(good_codes) / sizeof(good_codes[0]); i++) {
        uint8_t pl[4] = {(uint8_t)(good_codes[i] >> 8), (uint8_t)good_codes[i], 'o', 'k'};
        b.len = 0;
        put_frame(&b, true, WSB_WS_OP_CLOSE, pl, 4, true);
        (void)snprintf(want, sizeof(want), "|C%d:6f6b|=OK", good_codes[i]);
        expect_trace(&SERVER, b.buf, b.len, want);
        assert_true(wsb_ws_close_code_valid(good_codes[i]));
    }

    /* A reason that is not UTF-8, or ends inside a code point. */
    b.len = 0;
    put_frame(&b, true, WSB_WS_OP_CLOSE, "\x03\xe8\xff\xfe", 4, true);
    expect_error_all_splits(&SERVER, &b, "|=ERR1007");
    b.len = 0;
    put_frame(&b, true, WSB_WS_OP_CLOSE, "\x03\xe8ok\xe2\x82", 6, true);
    expect_trace(&SERVER, b.buf, b.len, "|=ERR1007");

    /* A valid multi-byte reason, in client role. */
    b.len = 0;
    put_frame(&b, true, WSB_WS_OP_CLOSE, "\x03\xe9\xe2\x82\xac", 5, false);
    expect_error_all_splits(&CLIENT, &b, "|C1001:e282ac|=OK");
}

/* Control frames between the fragments of a message. */
static void test_control_frames_interleaved(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, false, WSB_WS_OP_TEXT, "Hel", 3, true);
    put_frame(&b, true, WSB_WS_OP_PING, "p1", 2, true);
    put_frame(&b, false, WSB_WS_OP_CONT, "l", 1, true);
    put_frame(&b, true, WSB_WS_OP_PONG, NULL, 0, true);
    put_frame(&b, true, WSB_WS_OP_PING, NULL, 0, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "o", 1, true);
    put_frame(&b, true, WSB_WS_OP_CLOSE, "\x03\xe8", 2, true);
    expect_error_all_splits(&SERVER, &b, "|B1|D48656c|P7031|D6c|O|P|D6f|E|C1000:|=OK");
}

/* Mixed multi-frame conversations for the split-independence property. */
static void test_splits_multi_frame_server(void **state)
{
    (void)state;
    static bytes_t b;
    uint8_t blob[300];
    for (size_t i = 0; i < sizeof(blob); i++) {
        blob[i] = (uint8_t)(i ^ 0x5a);
    }
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, "Hel", 3, true);
    put_frame(&b, true, WSB_WS_OP_PING, "ping!", 5, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "lo w\xc3\xb6rld \xe2\x82\xac", 13, true);
    put_frame(&b, true, WSB_WS_OP_BINARY, blob, sizeof(blob), true);
    put_frame(&b, true, WSB_WS_OP_PONG, NULL, 0, true);
    put_frame(&b, true, WSB_WS_OP_TEXT, NULL, 0, true);
    put_frame(&b, false, WSB_WS_OP_BINARY, NULL, 0, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "\x00\x01", 2, true);
    put_frame(&b, true, WSB_WS_OP_CLOSE,
              "\x03\xe8"
              "bye",
              5, true);
    char *trace = check_all_splits(&SERVER, b.buf, b.len, false);
    const char *head = "|B1|D48656c|P70696e6721|D6c6f2077c3b6726c6420e282ac|E|B2|D";
    assert_int_equal(strncmp(trace, head, strlen(head)), 0);
    assert_non_null(strstr(trace, "|E|O|B1|E|B2|D0001|E|C1000:627965|=OK"));
    free(trace);

    /* A short one, checked at every pair of cut points as well. */
    b.len = 0;
    put_frame(&b, false, WSB_WS_OP_TEXT, "\xe2\x82", 2, true);
    put_frame(&b, true, WSB_WS_OP_PING, "x", 1, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "\xac", 1, true);
    put_frame(&b, true, WSB_WS_OP_BINARY, "yz", 2, true);
    trace = check_all_splits(&SERVER, b.buf, b.len, true);
    assert_string_equal(trace, "|B1|De282|P78|Dac|E|B2|D797a|E|=OK");
    free(trace);
}

static void test_splits_multi_frame_client(void **state)
{
    (void)state;
    static bytes_t b;
    static const uint8_t ext64_10[8] = {0, 0, 0, 0, 0, 0, 0, 10};
    static const uint8_t ext16_3[2] = {0, 3};
    b.len = 0;
    put(&b, rfc_hello_unmasked, sizeof(rfc_hello_unmasked));
    put(&b, rfc_fragmented, sizeof(rfc_fragmented));
    put(&b, rfc_ping_unmasked, sizeof(rfc_ping_unmasked));
    /* Non-minimal length encodings are accepted. */
    put_raw(&b, 0x82, 127, ext64_10, 8, false, "0123456789", 10);
    put_raw(&b, 0x81, 126, ext16_3, 2, false, "abc", 3);
    put_frame(&b, true, WSB_WS_OP_CLOSE, "\x0f\xa0", 2, false);
    char *trace = check_all_splits(&CLIENT, b.buf, b.len, true);
    assert_string_equal(trace, "|B1|D48656c6c6f|E|B1|D48656c6c6f|E|P48656c6c6f"
                               "|B2|D30313233343536373839|E|B1|D616263|E|C4000:|=OK");
    free(trace);

    /* Ending in an error after a few good frames. */
    b.len = 0;
    put(&b, rfc_hello_unmasked, sizeof(rfc_hello_unmasked));
    put(&b, rfc_ping_unmasked, sizeof(rfc_ping_unmasked));
    put(&b, rfc_hello_masked, sizeof(rfc_hello_masked));
    put(&b, rfc_hello_unmasked, sizeof(rfc_hello_unmasked));
    trace = check_all_splits(&CLIENT, b.buf, b.len, true);
    assert_string_equal(trace, "|B1|D48656c6c6f|E|P48656c6c6f|=ERR1002");
    free(trace);
}

/* ---- callbacks that stop the parser ---- */

typedef struct {
    long event;
    size_t consumed;
} stop_point_t;

/* Stops at each event in turn with a distinct value: the value comes back
 * unchanged, *consumed is exact, and feeding the rest completes the trace. */
static void test_callback_stop_consumed(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, true, WSB_WS_OP_TEXT, "ab", 2, true);        /* 0..8: 6 header + 2 */
    put_frame(&b, true, WSB_WS_OP_PING, "p", 1, true);         /* 8..15 */
    put_frame(&b, true, WSB_WS_OP_BINARY, NULL, 0, true);      /* 15..21 */
    put_frame(&b, false, WSB_WS_OP_TEXT, "c", 1, true);        /* 21..28 */
    put_frame(&b, true, WSB_WS_OP_CONT, "d", 1, true);         /* 28..35 */
    put_frame(&b, true, WSB_WS_OP_CLOSE, "\x03\xe8", 2, true); /* 35..43 */
    assert_int_equal(b.len, 43);
    static const stop_point_t points[] = {
        {0, 6},   /* begin "ab" after its header */
        {1, 8},   /* data "ab" */
        {2, 8},   /* end: needs no byte */
        {3, 15},  /* ping */
        {4, 21},  /* begin binary */
        {5, 21},  /* end binary */
        {6, 27},  /* begin "c" */
        {7, 28},  /* data "c" */
        {8, 35},  /* data "d" */
        {9, 35},  /* end */
        {10, 43}, /* close */
    };
    static const int values[] = {1, 2, 99, -1, 12345};
    const char *want = "|B1|D6162|E|P70|B2|E|B1|D63|D64|E|C1000:|=OK";

    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        int value = values[i % (sizeof(values) / sizeof(values[0]))];
        uint8_t copy[64];
        memcpy(copy, b.buf, b.len);
        recorder_t r;
        rec_init(&r);
        r.merge_data = false;
        r.stop_at = points[i].event;
        r.stop_value = value;
        wsb_ws_parser_t p;
        wsb_ws_parser_init(&p, WSB_WS_ROLE_SERVER, 0, &rec_callbacks, &r);
        size_t consumed = 0;
        int rc = wsb_ws_parser_feed(&p, copy, b.len, &consumed);
        assert_int_equal(rc, value);
        assert_int_equal(consumed, points[i].consumed);
        assert_int_equal(r.events, points[i].event + 1);
        /* Not a failure: the parser is healthy. */
        assert_int_equal(p.close_code, 0);
        size_t rest = 0;
        rc = wsb_ws_parser_feed(&p, copy + consumed, b.len - consumed, &rest);
        assert_int_equal(rc, 0);
        assert_int_equal(rest, b.len - consumed);
        rec_str(&r, "|=OK");
        assert_string_equal(r.buf, want);
        free(r.buf);
    }
}

/* An event that needs no further byte is delivered by a feed of 0 bytes. */
static void test_zero_length_feed_delivers_pending_end(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, true, WSB_WS_OP_TEXT, "hi", 2, true);
    recorder_t r;
    rec_init(&r);
    r.stop_at = 1; /* the data slice */
    r.stop_value = STOP;
    wsb_ws_parser_t p;
    wsb_ws_parser_init(&p, WSB_WS_ROLE_SERVER, 0, &rec_callbacks, &r);
    size_t consumed;
    assert_int_equal(wsb_ws_parser_feed(&p, b.buf, b.len, &consumed), STOP);
    assert_int_equal(consumed, b.len);
    assert_string_equal(r.buf, "|B1|D6869");
    assert_int_equal(wsb_ws_parser_feed(&p, NULL, 0, &consumed), 0);
    assert_int_equal(consumed, 0);
    assert_string_equal(r.buf, "|B1|D6869|E");
    /* Nothing pending now. */
    assert_int_equal(wsb_ws_parser_feed(&p, NULL, 0, NULL), 0);
    assert_int_equal(r.events, 3);
    free(r.buf);
}

static void test_failed_parser_stays_failed(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, true, WSB_WS_OP_TEXT, "\xff", 1, true);
    recorder_t r;
    rec_init(&r);
    wsb_ws_parser_t p;
    wsb_ws_parser_init(&p, WSB_WS_ROLE_SERVER, 0, &rec_callbacks, &r);
    assert_int_equal(wsb_ws_parser_feed(&p, b.buf, b.len, NULL), WSB_EUTF8);
    assert_int_equal(p.close_code, 1007);
    const char *why = p.error;
    assert_non_null(why);
    b.len = 0;
    put_frame(&b, true, WSB_WS_OP_TEXT, "ok", 2, true);
    size_t consumed = 99;
    assert_int_equal(wsb_ws_parser_feed(&p, b.buf, b.len, &consumed), WSB_EUTF8);
    assert_true(consumed <= b.len);
    assert_int_equal(p.close_code, 1007);
    assert_ptr_equal(p.error, why);
    assert_string_equal(r.buf, "|B1");
    free(r.buf);
}

static void test_null_callbacks(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, false, WSB_WS_OP_TEXT, "a", 1, true);
    put_frame(&b, true, WSB_WS_OP_PING, "x", 1, true);
    put_frame(&b, true, WSB_WS_OP_CONT, "b", 1, true);
    put_frame(&b, true, WSB_WS_OP_PONG, "y", 1, true);
    put_frame(&b, true, WSB_WS_OP_CLOSE, "\x03\xe8", 2, true);
    uint8_t copy[128];
    memcpy(copy, b.buf, b.len);

    wsb_ws_parser_t p;
    wsb_ws_parser_init(&p, WSB_WS_ROLE_SERVER, 0, NULL, NULL);
    size_t consumed;
    assert_int_equal(wsb_ws_parser_feed(&p, copy, b.len, &consumed), 0);
    assert_int_equal(consumed, b.len);

    static const wsb_ws_parser_callbacks_t none = {0};
    memcpy(copy, b.buf, b.len);
    wsb_ws_parser_init(&p, WSB_WS_ROLE_SERVER, 0, &none, NULL);
    assert_int_equal(wsb_ws_parser_feed(&p, copy, b.len, NULL), 0);
}

/* A control frame whole in one feed is reported from the caller's buffer
 * (nothing held between feeds); one split across feeds is collected into a
 * buffer the parser owns until it has been reported, or until release. */
static void test_control_payload_buffering(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, true, WSB_WS_OP_PING, "0123456789", 10, true);
    uint8_t copy[64];

    recorder_t r;
    rec_init(&r);
    wsb_ws_parser_t p;
    wsb_ws_parser_init(&p, WSB_WS_ROLE_SERVER, 0, &rec_callbacks, &r);
    memcpy(copy, b.buf, b.len);
    assert_int_equal(wsb_ws_parser_feed(&p, copy, b.len, NULL), 0);
    assert_null(p.ctl);
    /* Unmasked in place: the payload bytes of the caller's buffer are plain. */
    assert_memory_equal(copy + b.len - 10, "0123456789", 10);

    /* Header and 3 payload bytes, then the rest. */
    memcpy(copy, b.buf, b.len);
    assert_int_equal(wsb_ws_parser_feed(&p, copy, b.len - 7, NULL), 0);
    assert_non_null(p.ctl);
    assert_int_equal(wsb_ws_parser_feed(&p, copy + b.len - 7, 7, NULL), 0);
    assert_null(p.ctl);
    assert_string_equal(r.buf, "|P30313233343536373839|P30313233343536373839");

    /* Dropped in the middle of a split frame: release frees the buffer
     * (LeakSanitizer checks) and is idempotent. */
    memcpy(copy, b.buf, b.len);
    assert_int_equal(wsb_ws_parser_feed(&p, copy, b.len - 1, NULL), 0);
    assert_non_null(p.ctl);
    wsb_ws_parser_release(&p);
    assert_null(p.ctl);
    wsb_ws_parser_release(&p);
    free(r.buf);
}

/* Zero-length frames never produce zero-length data slices. */
static void test_empty_frames(void **state)
{
    (void)state;
    bytes_t b = {.len = 0};
    put_frame(&b, true, WSB_WS_OP_TEXT, NULL, 0, true);
    put_frame(&b, false, WSB_WS_OP_BINARY, NULL, 0, true);
    put_frame(&b, false, WSB_WS_OP_CONT, NULL, 0, true);
    put_frame(&b, true, WSB_WS_OP_CONT, NULL, 0, true);
    put_frame(&b, true, WSB_WS_OP_PING, NULL, 0, true);
    put_frame(&b, true, WSB_WS_OP_PONG, NULL, 0, true);
    char *trace = check_all_splits(&SERVER, b.buf, b.len, true);
    assert_string_equal(trace, "|B1|E|B2|E|P|O|=OK");
    free(trace);
}

/* ---- serializer ---- */

static void test_header_len(void **state)
{
    (void)state;
    static const struct {
        uint64_t len;
        size_t hlen;
    } cases[] = {{0, 2},     {1, 2},      {125, 2},    {126, 4},       {127, 4},
                 {65535, 4}, {65536, 10}, {70000, 10}, {1u << 31, 10}, {(1ull << 63) - 1, 10}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(wsb_ws_header_len(cases[i].len, false), cases[i].hlen);
        assert_int_equal(wsb_ws_header_len(cases[i].len, true), cases[i].hlen + 4);
        uint8_t out[WSB_WS_MAX_HEADER_LEN];
        assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_BINARY, cases[i].len, NULL),
                         cases[i].hlen);
        assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_BINARY, cases[i].len, RFC_KEY),
                         cases[i].hlen + 4);
        assert_true(out[1] & 0x80);
        assert_memory_equal(out + cases[i].hlen, RFC_KEY, 4);
    }
}

static void test_write_header_bytes(void **state)
{
    (void)state;
    uint8_t out[WSB_WS_MAX_HEADER_LEN];
    assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_TEXT, 5, NULL), 2);
    assert_memory_equal(out, rfc_hello_unmasked, 2);
    assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_TEXT, 5, RFC_KEY), 6);
    assert_memory_equal(out, rfc_hello_masked, 6);
    assert_int_equal(wsb_ws_write_header(out, false, WSB_WS_OP_TEXT, 3, NULL), 2);
    assert_memory_equal(out, rfc_fragmented, 2);
    assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_CONT, 2, NULL), 2);
    assert_memory_equal(out, rfc_fragmented + 5, 2);
    assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_PING, 5, NULL), 2);
    assert_memory_equal(out, rfc_ping_unmasked, 2);
    static const uint8_t h126[] = {0x82, 0x7E, 0x00, 0x7E};
    assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_BINARY, 126, NULL), 4);
    assert_memory_equal(out, h126, 4);
    static const uint8_t hbig[] = {0x82, 0x7F, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    assert_int_equal(wsb_ws_write_header(out, true, WSB_WS_OP_BINARY, 0x0123456789abcdefull, NULL),
                     10);
    assert_memory_equal(out, hbig, 10);
}

static void test_build_frame(void **state)
{
    (void)state;
    uint8_t out[64];
    int n = wsb_ws_build_frame(out, sizeof(out), true, WSB_WS_OP_TEXT, (const uint8_t *)"Hello", 5,
                               RFC_KEY);
    assert_int_equal(n, sizeof(rfc_hello_masked));
    assert_memory_equal(out, rfc_hello_masked, sizeof(rfc_hello_masked));
    n = wsb_ws_build_frame(out, sizeof(out), true, WSB_WS_OP_PONG, (const uint8_t *)"Hello", 5,
                           RFC_KEY);
    assert_int_equal(n, sizeof(rfc_pong_masked));
    assert_memory_equal(out, rfc_pong_masked, sizeof(rfc_pong_masked));
    n = wsb_ws_build_frame(out, sizeof(out), true, WSB_WS_OP_TEXT, (const uint8_t *)"Hello", 5,
                           NULL);
    assert_int_equal(n, sizeof(rfc_hello_unmasked));
    assert_memory_equal(out, rfc_hello_unmasked, sizeof(rfc_hello_unmasked));

    /* Capacity: exact fits, one less does not. */
    assert_int_equal(wsb_ws_build_frame(out, 11, true, 1, (const uint8_t *)"Hello", 5, RFC_KEY),
                     11);
    assert_int_equal(wsb_ws_build_frame(out, 10, true, 1, (const uint8_t *)"Hello", 5, RFC_KEY),
                     WSB_ENOSPC);
    assert_int_equal(wsb_ws_build_frame(out, 1, true, 1, NULL, 0, NULL), WSB_ENOSPC);
    assert_int_equal(wsb_ws_build_frame(out, 2, true, 1, NULL, 0, NULL), 2);
    assert_int_equal(wsb_ws_build_frame(out, 1, true, 1, (const uint8_t *)"x", (size_t)-1, NULL),
                     WSB_ENOSPC);

    /* The payload may already sit where the frame goes. */
    memcpy(out, rfc_hello_unmasked + 2, 5);
    n = wsb_ws_build_frame(out, sizeof(out), true, WSB_WS_OP_TEXT, out, 5, RFC_KEY);
    assert_int_equal(n, sizeof(rfc_hello_masked));
    assert_memory_equal(out, rfc_hello_masked, sizeof(rfc_hello_masked));
    memcpy(out + 6, rfc_hello_unmasked + 2, 5);
    n = wsb_ws_build_frame(out, sizeof(out), true, WSB_WS_OP_TEXT, out + 6, 5, RFC_KEY);
    assert_int_equal(n, sizeof(rfc_hello_masked));
    assert_memory_equal(out, rfc_hello_masked, sizeof(rfc_hello_masked));
}

/* Masking in pieces at any offset equals masking at once, for any alignment
 * of the data pointer, and matches the byte-by-byte definition. */
static void test_mask_offsets(void **state)
{
    (void)state;
    uint8_t base[200], naive[200], pieces[200 + 8];
    static const uint8_t key[4] = {0x01, 0x80, 0xfe, 0x5a};
    for (size_t i = 0; i < sizeof(base); i++) {
        base[i] = (uint8_t)(i * 31 + 7);
    }
    for (size_t len = 0; len <= 100; len++) {
        for (size_t start_off = 0; start_off < 4; start_off++) {
            for (size_t i = 0; i < len; i++) {
                naive[i] = base[i] ^ key[(start_off + i) & 3];
            }
            for (size_t cut = 0; cut <= len; cut += (len < 20 ? 1 : 7)) {
                for (size_t align = 0; align < 8; align += 3) {
                    uint8_t *d = pieces + align;
                    memcpy(d, base, len);
                    wsb_ws_mask(d, cut, key, start_off);
                    wsb_ws_mask(d + cut, len - cut, key, start_off + cut);
                    assert_memory_equal(d, naive, len);
                    /* Masking is its own inverse. */
                    wsb_ws_mask(d, len, key, start_off);
                    assert_memory_equal(d, base, len);
                }
            }
        }
    }
    /* Large offsets only matter modulo 4. */
    memcpy(pieces, base, 16);
    wsb_ws_mask(pieces, 16, key, (1ull << 40) + 2);
    for (size_t i = 0; i < 16; i++) {
        assert_int_equal(pieces[i], base[i] ^ key[(i + 2) & 3]);
    }
}

static void test_random_mask(void **state)
{
    (void)state;
    uint8_t keys[8][4];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(wsb_ws_random_mask(keys[i]), 0);
    }
    bool all_same = true;
    for (int i = 1; i < 8; i++) {
        all_same = all_same && memcmp(keys[i], keys[0], 4) == 0;
    }
    assert_false(all_same);
}

/* Serialize, parse back, compare, for every length class and both roles. */
static void test_round_trip(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536, 70001};
    static uint8_t payload[70001];
    static uint8_t frame[70001 + WSB_WS_MAX_HEADER_LEN];
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)('a' + i % 26);
    }
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        for (int masked = 0; masked <= 1; masked++) {
            for (int op = WSB_WS_OP_TEXT; op <= WSB_WS_OP_BINARY; op++) {
                size_t n = lens[li];
                uint8_t key[4];
                assert_int_equal(wsb_ws_random_mask(key), 0);
                int flen = wsb_ws_build_frame(frame, sizeof(frame), true, op, payload, n,
                                              masked ? key : NULL);
                assert_int_equal((size_t)flen, wsb_ws_header_len(n, masked) + n);

                recorder_t r;
                rec_init(&r);
                wsb_ws_parser_t p;
                wsb_ws_parser_init(&p, masked ? WSB_WS_ROLE_SERVER : WSB_WS_ROLE_CLIENT, 0,
                                   &rec_callbacks, &r);
                assert_int_equal(wsb_ws_parser_feed(&p, frame, (size_t)flen, NULL), 0);
                recorder_t want;
                rec_init(&want);
                char b[8];
                (void)snprintf(b, sizeof(b), "|B%d", op);
                rec_str(&want, b);
                if (n > 0) {
                    rec_str(&want, "|D");
                    rec_hex(&want, payload, n);
                }
                rec_str(&want, "|E");
                assert_string_equal(r.buf, want.buf);
                /* Unmasked in place: the buffer now holds the plain payload. */
                assert_memory_equal(frame + wsb_ws_header_len(n, masked), payload, n);
                free(r.buf);
                free(want.buf);
            }
        }
    }
    /* Control frames. */
    for (int op = WSB_WS_OP_CLOSE; op <= WSB_WS_OP_PONG; op++) {
        int flen = wsb_ws_build_frame(frame, sizeof(frame), true, op,
                                      (const uint8_t *)"\x03\xe8"
                                                       "abc",
                                      5, RFC_KEY);
        assert_int_equal(flen, 11);
        recorder_t r;
        rec_init(&r);
        wsb_ws_parser_t p;
        wsb_ws_parser_init(&p, WSB_WS_ROLE_SERVER, 0, &rec_callbacks, &r);
        assert_int_equal(wsb_ws_parser_feed(&p, frame, (size_t)flen, NULL), 0);
        const char *want = op == WSB_WS_OP_CLOSE  ? "|C1000:616263"
                           : op == WSB_WS_OP_PING ? "|P03e8616263"
                                                  : "|O03e8616263";
        assert_string_equal(r.buf, want);
        free(r.buf);
    }
}

/* ---- close payload builder ---- */

static void parse_close(const uint8_t *payload, size_t len, const char *want)
{
    uint8_t frame[WSB_WS_MAX_CONTROL_PAYLOAD + WSB_WS_MAX_HEADER_LEN];
    int flen =
        wsb_ws_build_frame(frame, sizeof(frame), true, WSB_WS_OP_CLOSE, payload, len, RFC_KEY);
    assert_true(flen > 0);
    char *got = drive_whole(&SERVER, frame, (size_t)flen);
    assert_string_equal(got, want);
    free(got);
}

static void test_close_payload(void **state)
{
    (void)state;
    uint8_t out[WSB_WS_MAX_CONTROL_PAYLOAD];
    char reason[300];
    static const char grin[5] = {'\xf0', '\x9f', '\x98', '\x80', '\0'}; /* U+1F600 */
    static const char e_acute[3] = {'\xc3', '\xa9', '\0'};              /* U+00E9 */

    assert_int_equal(wsb_ws_close_payload(out, 0, "ignored"), 0);
    assert_int_equal(wsb_ws_close_payload(out, 1000, NULL), 2);
    assert_memory_equal(out, "\x03\xe8", 2);
    assert_int_equal(wsb_ws_close_payload(out, 1001, ""), 2);
    assert_int_equal(wsb_ws_close_payload(out, 4321, "bye"), 5);
    assert_memory_equal(out,
                        "\x10\xe1"
                        "bye",
                        5);
    parse_close(out, 5, "|C4321:627965|=OK");

    /* Long ASCII: cut to 123 bytes of reason. */
    memset(reason, 'a', 200);
    reason[200] = '\0';
    assert_int_equal(wsb_ws_close_payload(out, 1008, reason), 125);
    assert_memory_equal(out + 2, reason, 123);

    /* A 3-byte character that fits exactly, and one that would straddle the
     * limit at each of its bytes. */
    for (size_t prefix = 118; prefix <= 123; prefix++) {
        memset(reason, 'a', prefix);
        memcpy(reason + prefix,
               "\xe2\x82\xac"
               "z",
               5);
        size_t n = wsb_ws_close_payload(out, 1011, reason);
        size_t want_reason =
            prefix + 3 <= 123 ? (prefix + 4 <= 123 ? prefix + 4 : prefix + 3) : prefix;
        assert_int_equal(n, 2 + want_reason);
        assert_true(wsb_utf8_valid(out + 2, n - 2));
        assert_memory_equal(out + 2, reason, want_reason);
    }
    /* A 4-byte character at the boundary. */
    memset(reason, 'b', 121);
    memcpy(reason + 121, grin, sizeof(grin));
    assert_int_equal(wsb_ws_close_payload(out, 1000, reason), 2 + 121);
    memset(reason, 'b', 119);
    memcpy(reason + 119, grin, sizeof(grin));
    assert_int_equal(wsb_ws_close_payload(out, 1000, reason), 125);

    /* Bytes that are not UTF-8 end the reason. */
    assert_int_equal(wsb_ws_close_payload(out, 1000,
                                          "ok\xff"
                                          "more"),
                     4);
    assert_int_equal(wsb_ws_close_payload(out, 1000, "ok\xe2\x82"), 4);
    assert_int_equal(wsb_ws_close_payload(out, 1000, "ok\xed\xa0\x80"), 4);

    /* Whatever it builds, the parser accepts. */
    memset(reason, 'c', 122);
    memcpy(reason + 122, e_acute, sizeof(e_acute));
    size_t n = wsb_ws_close_payload(out, 3000, reason);
    assert_int_equal(n, 124);
    recorder_t want;
    rec_init(&want);
    rec_str(&want, "|C3000:");
    rec_hex(&want, out + 2, n - 2);
    rec_str(&want, "|=OK");
    parse_close(out, n, want.buf);
    free(want.buf);
}

static void test_close_code_valid(void **state)
{
    (void)state;
    for (int code = -5; code < 70000; code++) {
        bool want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                    (code >= 3000 && code <= 4999);
        assert_int_equal(wsb_ws_close_code_valid(code), want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_single_frame_unmasked_client),
        cmocka_unit_test(test_rfc_single_frame_masked_server),
        cmocka_unit_test(test_rfc_fragmented),
        cmocka_unit_test(test_rfc_ping_pong),
        cmocka_unit_test(test_rfc_256_and_64k_binary),
        cmocka_unit_test(test_rfc_unmasked_rejected_by_server),
        cmocka_unit_test(test_masked_rejected_by_client),
        cmocka_unit_test(test_rsv_bits),
        cmocka_unit_test(test_reserved_opcodes),
        cmocka_unit_test(test_length_msb_set),
        cmocka_unit_test(test_control_frame_too_long),
        cmocka_unit_test(test_fragmented_control_frame),
        cmocka_unit_test(test_continuation_without_start),
        cmocka_unit_test(test_new_data_frame_inside_fragmented_message),
        cmocka_unit_test(test_oversize_message),
        cmocka_unit_test(test_limit_lowered_mid_message),
        cmocka_unit_test(test_bad_utf8_text),
        cmocka_unit_test(test_truncated_code_point_at_message_end),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_control_frames_interleaved),
        cmocka_unit_test(test_splits_multi_frame_server),
        cmocka_unit_test(test_splits_multi_frame_client),
        cmocka_unit_test(test_callback_stop_consumed),
        cmocka_unit_test(test_zero_length_feed_delivers_pending_end),
        cmocka_unit_test(test_failed_parser_stays_failed),
        cmocka_unit_test(test_null_callbacks),
        cmocka_unit_test(test_empty_frames),
        cmocka_unit_test(test_header_len),
        cmocka_unit_test(test_write_header_bytes),
        cmocka_unit_test(test_build_frame),
        cmocka_unit_test(test_mask_offsets),
        cmocka_unit_test(test_random_mask),
        cmocka_unit_test(test_control_payload_buffering),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_close_payload),
        cmocka_unit_test(test_close_code_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
