/*
 * fuzz_ws_frame.c - libFuzzer target for the RFC 6455 frame codec.
 *
 * Input byte 0 selects the configuration:
 *   bit 0      role (0 server, 1 client)
 *   bits 1-2   max_message_size: unlimited, 16, 125 or 4096
 *   bits 3-5   how the chunked run splits the input (see chunk_size)
 *   bit 6      callbacks stop the parser at every event (re-fed by the driver)
 * The rest is fed to the parser twice: whole, and in chunks. Both runs must
 * produce the same trace of callbacks (modulo how much of a failing message
 * was delivered before the failure, see normalize()), and every callback
 * checks the parser's promises: data only inside a message and never after
 * an error, never an empty slice, text always a valid UTF-8 prefix and
 * complete at the end, message size within the limit, close codes and
 * reasons valid, *consumed within bounds. The whole-input trace must also
 * equal the one an independent reference (reference() below: the RFC 6455
 * rules applied frame by frame, its own UTF-8 decoder) derives, so a rule the
 * parser forgets (the 64-bit length's top bit, the masking rule of a role, a
 * reserved opcode or RSV bit, a close code) is a finding, not only a crash.
 *
 * Round trip: the same bytes also script a conversation of well-formed
 * frames (fragmented messages, control frames in between, close payloads
 * from wsb_ws_close_payload) built with the serializer; parsing it back must
 * give exactly the events it was built from.
 */
#include "wsb/common.h"
#include "wsb/utf8.h"
#include "wsb/ws_frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            (void)fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define STOP 5

/* ---- event trace: records of [type][u32 length][bytes], data merged ---- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    size_t last;    /* offset of the last record */
    bool last_data; /* the last record is a data record */
} trace_t;

static void trace_reserve(trace_t *t, size_t n)
{
    if (t->len + n <= t->cap) {
        return;
    }
    size_t cap = t->cap == 0 ? 256 : t->cap;
    while (t->len + n > cap) {
        cap *= 2;
    }
    t->buf = realloc(t->buf, cap);
    CHECK(t->buf != NULL);
    t->cap = cap;
}

static void trace_add(trace_t *t, uint8_t type, const uint8_t *p, size_t n)
{
    uint32_t n32 = (uint32_t)n;
    if (type == 'D' && t->last_data) {
        uint32_t have;
        memcpy(&have, t->buf + t->last + 1, 4);
        have += n32;
        memcpy(t->buf + t->last + 1, &have, 4);
    } else {
        trace_reserve(t, 5);
        t->last = t->len;
        t->buf[t->len] = type;
        memcpy(t->buf + t->len + 1, &n32, 4);
        t->len += 5;
    }
    trace_reserve(t, n);
    if (n > 0) {
        memcpy(t->buf + t->len, p, n);
    }
    t->len += n;
    t->last_data = type == 'D';
}

/* Drops the data records after the last message begin of a trace that ends
 * in an error: a slice is passed on as soon as it is known valid, so how much
 * of a message that fails part way was delivered depends on the chunking. */
static size_t normalize(trace_t *t)
{
    size_t pos = 0, last_begin = (size_t)-1;
    bool error = false;
    while (pos < t->len) {
        uint32_t n;
        memcpy(&n, t->buf + pos + 1, 4);
        if (t->buf[pos] == 'B') {
            last_begin = pos;
        }
        if (t->buf[pos] == 'X') {
            error = true;
        }
        pos += 5 + n;
    }
    if (!error || last_begin == (size_t)-1) {
        return t->len;
    }
    size_t out = last_begin;
    pos = last_begin;
    while (pos < t->len) {
        uint32_t n;
        memcpy(&n, t->buf + pos + 1, 4);
        if (t->buf[pos] != 'D') {
            memmove(t->buf + out, t->buf + pos, 5 + n);
            out += 5 + n;
        }
        pos += 5 + n;
    }
    return out;
}

/* ---- recorder callbacks with the parser's promises as checks ---- */

typedef struct {
    trace_t trace;
    uint64_t max;
    bool stop_every;
    bool failed; /* the parser has reported an error */
    int msg_opcode;
    uint64_t msg_len;
    wsb_utf8_t utf8;
} rec_t;

static int event(rec_t *r)
{
    CHECK(!r->failed);
    return r->stop_every ? STOP : 0;
}

static int on_begin(void *ud, int opcode)
{
    rec_t *r = ud;
    uint8_t op = (uint8_t)opcode;
    CHECK(r->msg_opcode == 0);
    CHECK(opcode == WSB_WS_OP_TEXT || opcode == WSB_WS_OP_BINARY);
    r->msg_opcode = opcode;
    r->msg_len = 0;
    wsb_utf8_init(&r->utf8);
    trace_add(&r->trace, 'B', &op, 1);
    return event(r);
}

static int on_data(void *ud, const uint8_t *p, size_t n)
{
    rec_t *r = ud;
    CHECK(r->msg_opcode != 0);
    CHECK(n > 0);
    r->msg_len += n;
    CHECK(r->max == 0 || r->msg_len <= r->max);
    if (r->msg_opcode == WSB_WS_OP_TEXT) {
        CHECK(wsb_utf8_feed(&r->utf8, p, n) == 0);
    }
    trace_add(&r->trace, 'D', p, n);
    return event(r);
}

static int on_end(void *ud)
{
    rec_t *r = ud;
    CHECK(r->msg_opcode != 0);
    if (r->msg_opcode == WSB_WS_OP_TEXT) {
        CHECK(wsb_utf8_complete(&r->utf8));
    }
    r->msg_opcode = 0;
    trace_add(&r->trace, 'E', NULL, 0);
    return event(r);
}

static int on_ping(void *ud, const uint8_t *p, size_t n)
{
    rec_t *r = ud;
    CHECK(n <= WSB_WS_MAX_CONTROL_PAYLOAD);
    trace_add(&r->trace, 'P', p, n);
    return event(r);
}

static int on_pong(void *ud, const uint8_t *p, size_t n)
{
    rec_t *r = ud;
    CHECK(n <= WSB_WS_MAX_CONTROL_PAYLOAD);
    trace_add(&r->trace, 'O', p, n);
    return event(r);
}

static int on_close(void *ud, int code, const uint8_t *reason, size_t n)
{
    rec_t *r = ud;
    uint8_t rec[2 + WSB_WS_MAX_CONTROL_PAYLOAD];
    CHECK(n <= WSB_WS_MAX_CONTROL_PAYLOAD - 2);
    CHECK(code == WSB_WS_CLOSE_NO_STATUS || wsb_ws_close_code_valid(code));
    CHECK(code != WSB_WS_CLOSE_NO_STATUS || n == 0);
    CHECK(wsb_utf8_valid(reason, n));
    rec[0] = (uint8_t)(code >> 8);
    rec[1] = (uint8_t)code;
    if (n > 0) {
        memcpy(rec + 2, reason, n);
    }
    trace_add(&r->trace, 'C', rec, 2 + n);
    return event(r);
}

static const wsb_ws_parser_callbacks_t callbacks = {
    .on_message_begin = on_begin,
    .on_message_data = on_data,
    .on_message_end = on_end,
    .on_ping = on_ping,
    .on_pong = on_pong,
    .on_close = on_close,
};

/* ---- driver ---- */

typedef struct {
    wsb_ws_role_t role;
    uint64_t max;
    unsigned chunk_mode;
    bool stop_every;
} cfg_t;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* Length of the next chunk at offset `at` for the chunked run. */
static size_t chunk_size(unsigned mode, size_t at, uint64_t seed)
{
    switch (mode) {
    case 0:
        return 1;
    case 1:
        return 2;
    case 2:
        return 3;
    case 3:
        return 7;
    case 4:
        return 14;
    default:
        return 1 + (size_t)(mix(seed + at) % (mode == 5 ? 5 : mode == 6 ? 40 : 300));
    }
}

static int expected_error(int close_code)
{
    switch (close_code) {
    case WSB_WS_CLOSE_PROTOCOL:
        return WSB_EPROTO;
    case WSB_WS_CLOSE_BAD_DATA:
        return WSB_EUTF8;
    case WSB_WS_CLOSE_TOO_BIG:
        return WSB_ETOOBIG;
    default:
        /* A failure's close code is 1002, 1007 or 1009. */
        CHECK(close_code == WSB_WS_CLOSE_PROTOCOL);
        return 0;
    }
}

/* Feeds one chunk, re-feeding after each callback stop. Returns 0 or the
 * parser's error. */
static int feed_chunk(wsb_ws_parser_t *p, rec_t *r, uint8_t *chunk, size_t n)
{
    size_t off = 0;
    for (;;) {
        size_t consumed = (size_t)-1;
        int rc = wsb_ws_parser_feed(p, n > 0 ? chunk + off : NULL, n - off, &consumed);
        CHECK(consumed <= n - off);
        if (rc == STOP) {
            CHECK(r->stop_every);
            off += consumed;
            continue;
        }
        if (rc == 0) {
            CHECK(consumed == n - off);
            CHECK(p->close_code == 0 && p->error == NULL);
            return 0;
        }
        CHECK(rc == expected_error(p->close_code));
        CHECK(p->error != NULL);
        return rc;
    }
}

/* Runs the parser over `input` (modified: unmasked in place) and returns the
 * trace, which ends in an 'X' record holding the close code after an error. */
static trace_t run(const cfg_t *cfg, uint8_t *input, size_t len, bool chunked, uint64_t seed)
{
    rec_t r;
    wsb_ws_parser_t p;
    int rc = 0;

    memset(&r, 0, sizeof(r));
    r.max = cfg->max;
    r.stop_every = cfg->stop_every;
    wsb_ws_parser_init(&p, cfg->role, cfg->max, &callbacks, &r);
    if (!chunked) {
        rc = feed_chunk(&p, &r, input, len);
    } else {
        for (size_t at = 0; at < len && rc == 0;) {
            size_t n = chunk_size(cfg->chunk_mode, at, seed);
            n = n < len - at ? n : len - at;
            rc = feed_chunk(&p, &r, input + at, n);
            at += n;
        }
    }
    if (rc != 0) {
        uint8_t more[6] = {0x81, 0x80, 0, 0, 0, 0};
        uint8_t code[2] = {(uint8_t)(p.close_code >> 8), (uint8_t)p.close_code};
        r.failed = true;
        /* Stays failed, calls nothing. */
        CHECK(wsb_ws_parser_feed(&p, more, sizeof(more), NULL) == rc);
        CHECK(wsb_ws_parser_feed(&p, NULL, 0, NULL) == rc);
        trace_add(&r.trace, 'X', code, 2);
    }
    wsb_ws_parser_release(&p);
    return r.trace;
}

/* ---- reference: RFC 6455 rules applied frame by frame to the whole input ----
 *
 * Written from the RFC, not from ws_frame.c: it walks the complete input as a
 * sequence of frames and emits the trace the parser must produce (the rules
 * are listed in ws_frame.h). Its UTF-8 checks decode code points the textbook
 * way; a text prefix is valid when some completion of its last, unfinished
 * sequence is a valid code point, which is what "fail fast" means. */

/* Decodes the code point of the n-byte sequence s with `have` bytes present,
 * the missing ones replaced by `fill`. */
static uint32_t ref_cp(const uint8_t *s, size_t n, size_t have, uint8_t fill)
{
    static const uint8_t lead_bits[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t c = s[0] & lead_bits[n];
    for (size_t i = 1; i < n; i++) {
        c = c << 6 | ((i < have ? s[i] : fill) & 0x3Fu);
    }
    return c;
}

/* Returns true when s[0..len) is valid UTF-8, or (complete false) a valid
 * prefix of some valid UTF-8 text. */
static bool ref_utf8(const uint8_t *s, size_t len, bool complete)
{
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;
    while (i < len) {
        size_t n = s[i] < 0x80             ? 1
                   : (s[i] & 0xE0) == 0xC0 ? 2
                   : (s[i] & 0xF0) == 0xE0 ? 3
                   : (s[i] & 0xF8) == 0xF0 ? 4
                                           : 0;
        if (n == 0) {
            return false;
        }
        size_t have = len - i < n ? len - i : n;
        for (size_t k = 1; k < have; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        if (have < n && complete) {
            return false;
        }
        /* The smallest and largest code points the sequence can still be. */
        uint32_t lo = ref_cp(s + i, n, have, 0x80), hi = ref_cp(s + i, n, have, 0xBF);
        if (hi < min_for_len[n] || lo > 0x10FFFF || (lo >= 0xD800 && hi <= 0xDFFF)) {
            return false;
        }
        i += have;
    }
    return true;
}

static bool ref_close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* The trace the parser must give for `in` (not modified). */
static trace_t reference(const cfg_t *cfg, const uint8_t *in, size_t len)
{
    trace_t t = {0};
    uint8_t *text = NULL; /* the text message so far, for UTF-8 prefix checks */
    size_t text_len = 0;
    int msg_op = 0;       /* TEXT/BINARY in progress, 0 if none */
    uint64_t msg_len = 0; /* its payload bytes so far */
    int close_code = 0;
    size_t pos = 0;

    while (close_code == 0 && len - pos >= 2) {
        unsigned b0 = in[pos], b1 = in[pos + 1];
        unsigned op = b0 & 0x0Fu, len7 = b1 & 0x7Fu;
        bool fin = (b0 & 0x80u) != 0, masked = (b1 & 0x80u) != 0;
        bool control = op >= 8;
        if ((b0 & 0x70u) != 0 || (op > 2 && op < 8) || op > 10 || (op == 0 && msg_op == 0) ||
            ((op == 1 || op == 2) && msg_op != 0) || (control && (!fin || len7 > 125)) ||
            masked != (cfg->role == WSB_WS_ROLE_SERVER)) {
            close_code = WSB_WS_CLOSE_PROTOCOL;
            break;
        }
        size_t hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
        if (len - pos < hlen) {
            break;
        }
        uint64_t plen = len7;
        if (len7 >= 126) {
            plen = 0;
            for (size_t i = 2; i < (len7 == 126 ? 4u : 10u); i++) {
                plen = plen << 8 | in[pos + i];
            }
        }
        if (plen >> 63 != 0) {
            close_code = WSB_WS_CLOSE_PROTOCOL;
            break;
        }
        const uint8_t *key = in + pos + hlen - 4;
        pos += hlen;
        size_t have = len - pos < plen ? len - pos : (size_t)plen;
        uint8_t *payload = malloc(have + 1);
        CHECK(payload != NULL);
        for (size_t i = 0; i < have; i++) {
            payload[i] = masked ? in[pos + i] ^ key[i & 3] : in[pos + i];
        }
        pos += have;
        if (control) {
            if (have < plen) {
                free(payload);
                break;
            }
            if (op == WSB_WS_OP_CLOSE) {
                unsigned code = have >= 2 ? (unsigned)payload[0] << 8 | payload[1] : 1005;
                uint8_t rec[WSB_WS_MAX_CONTROL_PAYLOAD];
                if (have == 1 || (have >= 2 && !ref_close_code_ok(code))) {
                    close_code = WSB_WS_CLOSE_PROTOCOL;
                } else if (have > 2 && !ref_utf8(payload + 2, have - 2, true)) {
                    close_code = WSB_WS_CLOSE_BAD_DATA;
                } else {
                    rec[0] = (uint8_t)(code >> 8);
                    rec[1] = (uint8_t)code;
                    if (have > 2) {
                        memcpy(rec + 2, payload + 2, have - 2);
                    }
                    trace_add(&t, 'C', rec, have > 2 ? have : 2);
                }
            } else {
                trace_add(&t, op == WSB_WS_OP_PING ? 'P' : 'O', payload, have);
            }
            free(payload);
            continue;
        }
        if (op != 0) {
            msg_op = (int)op;
            msg_len = 0;
            text_len = 0;
        }
        if (cfg->max != 0 && plen > cfg->max - msg_len) {
            close_code = WSB_WS_CLOSE_TOO_BIG;
            free(payload);
            break;
        }
        if (op != 0) {
            uint8_t op8 = (uint8_t)op;
            trace_add(&t, 'B', &op8, 1);
        }
        msg_len += plen;
        if (msg_op == WSB_WS_OP_TEXT) {
            uint8_t *grown = realloc(text, text_len + have + 1);
            CHECK(grown != NULL);
            text = grown;
            memcpy(text + text_len, payload, have);
            text_len += have;
            if (!ref_utf8(text, text_len, false)) {
                close_code = WSB_WS_CLOSE_BAD_DATA;
            }
        }
        if (close_code == 0 && have > 0) {
            trace_add(&t, 'D', payload, have);
        }
        free(payload);
        if (close_code != 0 || have < plen) {
            break;
        }
        if (fin) {
            if (msg_op == WSB_WS_OP_TEXT && !ref_utf8(text, text_len, true)) {
                close_code = WSB_WS_CLOSE_BAD_DATA;
                break;
            }
            trace_add(&t, 'E', NULL, 0);
            msg_op = 0;
        }
    }
    if (close_code != 0) {
        uint8_t code[2] = {(uint8_t)(close_code >> 8), (uint8_t)close_code};
        trace_add(&t, 'X', code, 2);
    }
    free(text);
    return t;
}

static void fuzz_parser(const uint8_t *data, size_t size)
{
    static const uint64_t maxes[4] = {0, 16, 125, 4096};
    cfg_t cfg = {
        .role = (data[0] & 1) ? WSB_WS_ROLE_CLIENT : WSB_WS_ROLE_SERVER,
        .max = maxes[(data[0] >> 1) & 3],
        .chunk_mode = (data[0] >> 3) & 7u,
        .stop_every = (data[0] & 0x40) != 0,
    };
    size_t len = size - 1;
    uint8_t *whole = malloc(len + 1);
    uint8_t *pieces = malloc(len + 1);
    CHECK(whole != NULL && pieces != NULL);
    memcpy(whole, data + 1, len);
    memcpy(pieces, data + 1, len);

    cfg_t plain = cfg;
    plain.stop_every = false;
    trace_t a = run(&plain, whole, len, false, 0);
    trace_t b = run(&cfg, pieces, len, true, size);
    trace_t want = reference(&cfg, data + 1, len);
    size_t an = normalize(&a), bn = normalize(&b), wn = normalize(&want);
    CHECK(an == bn);
    CHECK(an == 0 || memcmp(a.buf, b.buf, an) == 0);
    /* The parser follows the RFC's rules, as the reference applies them. */
    CHECK(an == wn);
    CHECK(an == 0 || memcmp(a.buf, want.buf, an) == 0);
    free(a.buf);
    free(b.buf);
    free(want.buf);
    free(whole);
    free(pieces);
}

/* ---- round trip through the serializer ---- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} reader_t;

static uint8_t next_byte(reader_t *rd)
{
    return rd->pos < rd->len ? rd->p[rd->pos++] : 0;
}

#define RT_MAX_FRAME_BYTES ((size_t)65536)
#define RT_MAX_MESSAGE     ((size_t)2048)

/* Builds a valid UTF-8 text from fuzz bytes: ASCII as is, other bytes pick
 * a code point of 2, 3 or 4 bytes. */
static size_t make_text(reader_t *rd, uint8_t *out, size_t want)
{
    size_t n = 0;
    while (n + 4 <= want && rd->pos < rd->len) {
        uint8_t b = next_byte(rd);
        if (b < 0x80) {
            out[n++] = b;
            continue;
        }
        uint32_t cp;
        switch (b % 3) {
        case 0:
            cp = 0x80u + (uint32_t)(b & 0x7F) * 13u;
            break;
        case 1:
            cp = 0x800u + (uint32_t)b * 251u;
            if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            break;
        default:
            cp = 0x10000u + (uint32_t)b * 4111u;
            break;
        }
        if (cp < 0x800) {
            out[n++] = (uint8_t)(0xC0 | cp >> 6);
            out[n++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[n++] = (uint8_t)(0xE0 | cp >> 12);
            out[n++] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
            out[n++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else {
            out[n++] = (uint8_t)(0xF0 | cp >> 18);
            out[n++] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
            out[n++] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
            out[n++] = (uint8_t)(0x80 | (cp & 0x3F));
        }
    }
    return n;
}

static void append_frame(uint8_t *wire, size_t *wire_len, bool fin, int op, const uint8_t *payload,
                         size_t n, bool masked, reader_t *rd)
{
    uint8_t key[4] = {next_byte(rd), next_byte(rd), next_byte(rd), next_byte(rd)};
    int rc = wsb_ws_build_frame(wire + *wire_len, RT_MAX_FRAME_BYTES + 256 - *wire_len, fin, op,
                                payload, n, masked ? key : NULL);
    CHECK(rc > 0);
    CHECK((size_t)rc == wsb_ws_header_len(n, masked) + n);
    *wire_len += (size_t)rc;
}

/* Appends a control frame chosen by the script, and its expected event. */
static void append_control(uint8_t *wire, size_t *wire_len, trace_t *want, bool masked,
                           reader_t *rd)
{
    static const int codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                1010, 1011, 1012, 1013, 1014, 3000, 4999};
    uint8_t payload[WSB_WS_MAX_CONTROL_PAYLOAD];
    uint8_t kind = next_byte(rd) % 3;
    size_t n = next_byte(rd) % (WSB_WS_MAX_CONTROL_PAYLOAD + 1);

    if (kind == 2) {
        char reason[160];
        size_t rn = n < sizeof(reason) - 1 ? n : sizeof(reason) - 1;
        for (size_t i = 0; i < rn; i++) {
            reason[i] = (char)next_byte(rd);
        }
        reason[rn] = '\0';
        uint8_t pick = next_byte(rd);
        int code = pick == 0 ? 0 : codes[pick % (sizeof(codes) / sizeof(codes[0]))];
        size_t pn = wsb_ws_close_payload(payload, code, reason);
        CHECK(pn <= WSB_WS_MAX_CONTROL_PAYLOAD);
        CHECK(code != 0 || pn == 0);
        append_frame(wire, wire_len, true, WSB_WS_OP_CLOSE, payload, pn, masked, rd);
        uint8_t rec[WSB_WS_MAX_CONTROL_PAYLOAD];
        rec[0] = (uint8_t)((code == 0 ? WSB_WS_CLOSE_NO_STATUS : code) >> 8);
        rec[1] = (uint8_t)(code == 0 ? WSB_WS_CLOSE_NO_STATUS : code);
        if (pn > 2) {
            memcpy(rec + 2, payload + 2, pn - 2);
        }
        trace_add(want, 'C', rec, pn > 2 ? pn : 2);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        payload[i] = next_byte(rd);
    }
    append_frame(wire, wire_len, true, kind == 0 ? WSB_WS_OP_PING : WSB_WS_OP_PONG, payload, n,
                 masked, rd);
    trace_add(want, kind == 0 ? 'P' : 'O', payload, n);
}

static void fuzz_round_trip(const uint8_t *data, size_t size)
{
    static uint8_t wire[RT_MAX_FRAME_BYTES + 256];
    static uint8_t msg[RT_MAX_MESSAGE];
    reader_t rd = {data + 1, size - 1, 0};
    bool masked = (data[0] & 1) == 0; /* frames for a server are masked */
    size_t wire_len = 0;
    trace_t want = {0};

    while (rd.pos < rd.len && wire_len + 4 * RT_MAX_MESSAGE < RT_MAX_FRAME_BYTES) {
        uint8_t what = next_byte(&rd);
        if (what % 4 == 0) {
            append_control(wire, &wire_len, &want, masked, &rd);
            continue;
        }
        /* A data message of up to RT_MAX_MESSAGE bytes in 1..4 fragments,
         * split anywhere (also inside a code point), controls in between. */
        bool text = (what & 4) != 0;
        size_t target = ((size_t)next_byte(&rd) << 3 | (what >> 5)) % RT_MAX_MESSAGE;
        size_t n;
        if (text) {
            n = make_text(&rd, msg, target);
            CHECK(wsb_utf8_valid(msg, n));
        } else {
            n = 0;
            while (n < target && rd.pos < rd.len) {
                msg[n++] = next_byte(&rd);
            }
        }
        uint8_t op = text ? WSB_WS_OP_TEXT : WSB_WS_OP_BINARY;
        trace_add(&want, 'B', &op, 1);
        size_t frags = 1 + (what >> 3) % 4, at = 0;
        for (size_t f = 0; f < frags; f++) {
            bool last = f + 1 == frags;
            size_t piece = last ? n - at : (n - at == 0 ? 0 : next_byte(&rd) % (n - at + 1));
            append_frame(wire, &wire_len, last, f == 0 ? op : WSB_WS_OP_CONT, msg + at, piece,
                         masked, &rd);
            if (piece > 0) {
                trace_add(&want, 'D', msg + at, piece);
            }
            at += piece;
            if (!last && (next_byte(&rd) & 1)) {
                append_control(wire, &wire_len, &want, masked, &rd);
            }
        }
        trace_add(&want, 'E', NULL, 0);
    }

    cfg_t cfg = {
        .role = masked ? WSB_WS_ROLE_SERVER : WSB_WS_ROLE_CLIENT,
        .max = RT_MAX_MESSAGE,
        .chunk_mode = (data[0] >> 3) & 7u,
        .stop_every = (data[0] & 0x40) != 0,
    };
    static uint8_t copy[RT_MAX_FRAME_BYTES + 256];
    memcpy(copy, wire, wire_len);
    trace_t got = run(&cfg, copy, wire_len, false, 0);
    CHECK(got.len == want.len);
    CHECK(want.len == 0 || memcmp(got.buf, want.buf, want.len) == 0);
    free(got.buf);
    memcpy(copy, wire, wire_len);
    got = run(&cfg, copy, wire_len, true, size);
    CHECK(got.len == want.len);
    CHECK(want.len == 0 || memcmp(got.buf, want.buf, want.len) == 0);
    free(got.buf);
    free(want.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    fuzz_parser(data, size);
    fuzz_round_trip(data, size);
    return 0;
}
