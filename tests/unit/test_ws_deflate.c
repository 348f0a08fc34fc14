/*
 * test_ws_deflate.c - permessage-deflate (RFC 7692): the offer matrix of the
 * negotiation, the codec's round trip, and the inflate bound that stops a
 * zip bomb; plus the frame parser's RSV1 rules with the extension.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h, included below, needs the four headers above first. */
#include "wsb/common.h"
#include "wsb/ws_deflate.h"
#include "wsb/ws_frame.h"

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- negotiation ---- */

typedef struct {
    const char *offer;    /* one header value; "|" separates header lines */
    int accepted;         /* expected return */
    const char *response; /* expected response line when accepted */
} offer_case_t;

static int negotiate(const char *offer, wsb_pmd_params_t *p)
{
    wsb_str_t values[4];
    size_t n = 0;
    const char *s = offer;
    for (;;) {
        const char *bar = strchr(s, '|');
        size_t len = bar ? (size_t)(bar - s) : strlen(s);
        values[n++] = (wsb_str_t){s, len};
        if (bar == NULL || n == 4) {
            break;
        }
        s = bar + 1;
    }
    return wsb_pmd_negotiate_values(values, n, p);
}

#define PMD "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover"

static const offer_case_t offers[] = {
    {"permessage-deflate", 1, PMD "\r\n"},
    {"permessage-deflate; client_max_window_bits", 1, PMD "\r\n"},
    {"permessage-deflate; client_max_window_bits=10", 1, PMD "\r\n"},
    {"permessage-deflate; client_max_window_bits=\"12\"", 1, PMD "\r\n"},
    {"PerMessage-Deflate; Server_No_Context_Takeover", 1, PMD "\r\n"},
    {"permessage-deflate; client_no_context_takeover", 1, PMD "; client_no_context_takeover\r\n"},
    {"permessage-deflate; server_max_window_bits=10", 1, PMD "; server_max_window_bits=10\r\n"},
    {"permessage-deflate; server_max_window_bits=8; client_no_context_takeover", 1,
     PMD "; client_no_context_takeover; server_max_window_bits=8\r\n"},
    {"permessage-deflate ; server_max_window_bits = 15 ", 1, PMD "; server_max_window_bits=15\r\n"},
    /* declined offers */
    {"", 0, NULL},
    {"x-webkit-deflate-frame", 0, NULL},
    {"permessage-deflate; server_max_window_bits", 0, NULL},    /* value required */
    {"permessage-deflate; server_max_window_bits=16", 0, NULL}, /* 8..15 */
    {"permessage-deflate; server_max_window_bits=7", 0, NULL},
    {"permessage-deflate; server_max_window_bits=010", 0, NULL},
    {"permessage-deflate; client_max_window_bits=16", 0, NULL},
    {"permessage-deflate; client_max_window_bits=abc", 0, NULL},
    {"permessage-deflate; server_no_context_takeover=1", 0, NULL},
    {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", 0, NULL},
    {"permessage-deflate; unknown_param", 0, NULL},
    {"permessage-deflate; server_max_window_bits=\"1\\0\"", 0, NULL},
    {"permessage-deflate;", 0, NULL},       /* syntax: empty parameter */
    {"permessage-deflate; a=\"x", 0, NULL}, /* unterminated quoted string */
    /* several offers: the first acceptable wins */
    {"permessage-deflate; server_max_window_bits=20, permessage-deflate; "
     "client_no_context_takeover",
     1, PMD "; client_no_context_takeover\r\n"},
    {"foo; bar=\"a,b\", permessage-deflate; server_max_window_bits=9", 1,
     PMD "; server_max_window_bits=9\r\n"},
    {"permessage-deflate; server_max_window_bits=12, permessage-deflate", 1,
     PMD "; server_max_window_bits=12\r\n"},
    {"foo|permessage-deflate; client_no_context_takeover", 1,
     PMD "; client_no_context_takeover\r\n"}, /* on a second header line */
    {"permessage-deflate; bogus|permessage-deflate", 1, PMD "\r\n"},
    {",, permessage-deflate", 1, PMD "\r\n"},
};

static void test_offer_matrix(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(offers) / sizeof(offers[0]); i++) {
        wsb_pmd_params_t p;
        memset(&p, 0xAA, sizeof(p));
        int rc = negotiate(offers[i].offer, &p);
        if (rc != offers[i].accepted) {
            fail_msg("offer \"%s\": got %d, want %d", offers[i].offer, rc, offers[i].accepted);
        }
        if (rc == 1) {
            char line[256];
            int n = wsb_pmd_response_header(line, sizeof(line), &p);
            assert_true(n > 0);
            if (strcmp(line, offers[i].response) != 0) {
                fail_msg("offer \"%s\": response \"%s\"", offers[i].offer, line);
            }
        }
    }
}

static void test_response_too_small(void **state)
{
    (void)state;
    wsb_pmd_params_t p = {.server_max_window_bits = 15};
    char line[16];
    assert_int_equal(wsb_pmd_response_header(line, sizeof(line), &p), WSB_ENOSPC);
}

/* ---- codec ---- */

static void test_roundtrip(void **state)
{
    (void)state;
    wsb_pmd_deflater_t *d = wsb_pmd_deflater_new(6);
    wsb_pmd_inflater_t *z = wsb_pmd_inflater_new();
    assert_non_null(d);
    assert_non_null(z);
    const char *msgs[] = {"", "a", "{\"type\":\"message\",\"topic\":\"t\",\"data\":[1,2,3,1,2,3]}"};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 3; i++) {
            size_t len = strlen(msgs[i]);
            size_t cap = wsb_pmd_deflate_bound(len);
            uint8_t *c = malloc(cap);
            size_t clen = 0;
            assert_int_equal(wsb_pmd_deflate(d, (const uint8_t *)msgs[i], len, c, cap, &clen), 0);
            /* The sync flush's tail is stripped (RFC 7692 7.2.1). */
            assert_false(clen >= 4 && memcmp(c + clen - 4, "\0\0\xff\xff", 4) == 0);
            uint8_t *out = NULL;
            size_t olen = 0;
            /* Round 0 resets after each message; round 1 keeps the context,
             * which the same stream of independent messages must survive. */
            assert_int_equal(wsb_pmd_inflate(z, c, clen, 1000, round == 0, &out, &olen), 0);
            assert_int_equal(olen, len);
            assert_memory_equal(out, msgs[i], len);
            free(out);
            free(c);
        }
    }
    uint8_t small[4];
    size_t clen = 0;
    assert_int_equal(wsb_pmd_deflate(d, (const uint8_t *)"abcdefgh", 8, small, 4, &clen),
                     WSB_ENOSPC);
    wsb_pmd_deflater_free(d);
    wsb_pmd_inflater_free(z);
}

/* RFC 7692 7.2.3.1's example: "Hello" compressed, and the same with
 * context takeover (the second message refers back into the first). */
static void test_rfc_examples(void **state)
{
    (void)state;
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    static const uint8_t hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    /* 7.2.3.3: a final (BFINAL) block, then the tail starts a new stream. */
    static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    wsb_pmd_inflater_t *z = wsb_pmd_inflater_new();
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(wsb_pmd_inflate(z, hello, sizeof(hello), 0, false, &out, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "Hello", 5);
    free(out);
    assert_int_equal(wsb_pmd_inflate(z, hello2, sizeof(hello2), 0, false, &out, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "Hello", 5);
    free(out);
    wsb_pmd_inflater_free(z);
    z = wsb_pmd_inflater_new();
    assert_int_equal(wsb_pmd_inflate(z, bfinal, sizeof(bfinal), 0, true, &out, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "Hello", 5);
    free(out);
    wsb_pmd_inflater_free(z);
}

/* A zip bomb: 10 MB of zeros compress to ~10 KB; with a 64 KiB bound the
 * inflater stops at the bound and never allocates past it. */
static void test_inflate_bound(void **state)
{
    (void)state;
    size_t big = (size_t)10 * 1000 * 1000;
    uint8_t *zeros = calloc(1, big);
    wsb_pmd_deflater_t *d = wsb_pmd_deflater_new(9);
    size_t cap = wsb_pmd_deflate_bound(big);
    uint8_t *c = malloc(cap);
    size_t clen = 0;
    assert_int_equal(wsb_pmd_deflate(d, zeros, big, c, cap, &clen), 0);
    assert_true(clen < 20000);
    wsb_pmd_inflater_t *z = wsb_pmd_inflater_new();
    uint8_t *out = NULL;
    size_t olen = 0;
    assert_int_equal(wsb_pmd_inflate(z, c, clen, 65536, true, &out, &olen), WSB_ETOOBIG);
    assert_null(out);
    wsb_pmd_inflater_free(z);
    /* Exactly at the bound passes, one byte under fails. */
    assert_int_equal(wsb_pmd_deflate(d, zeros, 65536, c, cap, &clen), 0);
    z = wsb_pmd_inflater_new();
    assert_int_equal(wsb_pmd_inflate(z, c, clen, 65536, true, &out, &olen), 0);
    assert_int_equal(olen, 65536);
    free(out);
    out = NULL;
    assert_int_equal(wsb_pmd_inflate(z, c, clen, 65535, true, &out, &olen), WSB_ETOOBIG);
    assert_null(out);
    wsb_pmd_inflater_free(z);
    wsb_pmd_deflater_free(d);
    free(c);
    free(zeros);
}

static void test_inflate_garbage(void **state)
{
    (void)state;
    /* BTYPE 11 is reserved: not a deflate stream. */
    static const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff};
    wsb_pmd_inflater_t *z = wsb_pmd_inflater_new();
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(wsb_pmd_inflate(z, bad, sizeof(bad), 0, true, &out, &len), WSB_EUTF8);
    assert_null(out);
    wsb_pmd_inflater_free(z);
}

/* ---- the frame parser with the extension ---- */

typedef struct {
    int begins, ends;
    size_t bytes;
} counts_t;

static int on_begin(void *ud, int opcode)
{
    (void)opcode;
    ((counts_t *)ud)->begins++;
    return 0;
}

static int on_data(void *ud, const uint8_t *data, size_t len)
{
    (void)data;
    ((counts_t *)ud)->bytes += len;
    return 0;
}

static int on_end(void *ud)
{
    ((counts_t *)ud)->ends++;
    return 0;
}

static const wsb_ws_parser_callbacks_t cbs = {
    .on_message_begin = on_begin, .on_message_data = on_data, .on_message_end = on_end};

/* A masked client frame (zero mask) with `b0` as its first byte. */
static size_t frame(uint8_t *out, uint8_t b0, const void *payload, size_t len)
{
    out[0] = b0;
    out[1] = (uint8_t)(0x80 | len);
    memset(out + 2, 0, 4);
    memcpy(out + 6, payload, len);
    return 6 + len;
}

static void parser_with(wsb_ws_parser_t *p, counts_t *c, bool deflate, uint64_t max)
{
    memset(c, 0, sizeof(*c));
    wsb_ws_parser_init(p, WSB_WS_ROLE_SERVER, max, &cbs, c);
    if (deflate) {
        p->rsv_mask |= WSB_WS_RSV1;
        p->deflate = true;
    }
}

static void test_parser_rsv1(void **state)
{
    (void)state;
    wsb_ws_parser_t p;
    counts_t c;
    uint8_t buf[256];
    /* Not UTF-8 as compressed bytes: skipped by the parser, flagged. */
    static const uint8_t comp[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};

    /* Negotiated: RSV1 on the first frame (fragmented), plain continuation. */
    parser_with(&p, &c, true, 0);
    size_t n = frame(buf, 0x01 | 0x40, comp, 3);
    n += frame(buf + n, 0x80, comp + 3, 4);
    assert_int_equal(wsb_ws_parser_feed(&p, buf, n, NULL), 0);
    assert_true(p.msg_compressed);
    assert_int_equal(c.ends, 1);
    assert_int_equal(c.bytes, 7);
    /* The next plain message clears the flag. */
    n = frame(buf, 0x81, "hi", 2);
    assert_int_equal(wsb_ws_parser_feed(&p, buf, n, NULL), 0);
    assert_false(p.msg_compressed);

    /* RSV1 on a continuation frame. */
    parser_with(&p, &c, true, 0);
    n = frame(buf, 0x01 | 0x40, comp, 3);
    n += frame(buf + n, 0x80 | 0x40, comp + 3, 4);
    assert_int_equal(wsb_ws_parser_feed(&p, buf, n, NULL), WSB_EPROTO);
    assert_int_equal(p.close_code, 1002);

    /* RSV1 on a control frame. */
    parser_with(&p, &c, true, 0);
    n = frame(buf, 0x89 | 0x40, "", 0);
    assert_int_equal(wsb_ws_parser_feed(&p, buf, n, NULL), WSB_EPROTO);
    assert_int_equal(p.close_code, 1002);

    /* RSV1 without the extension. */
    parser_with(&p, &c, false, 0);
    n = frame(buf, 0x81 | 0x40, comp, sizeof(comp));
    assert_int_equal(wsb_ws_parser_feed(&p, buf, n, NULL), WSB_EPROTO);
    assert_int_equal(p.close_code, 1002);

    /* Without RSV1 a text message is still UTF-8 checked. */
    parser_with(&p, &c, true, 0);
    n = frame(buf, 0x81, comp, sizeof(comp));
    assert_int_equal(wsb_ws_parser_feed(&p, buf, n, NULL), WSB_EUTF8);

    /* The wire bound of a compressed message leaves room for deflate's
     * expansion; a plain one does not. */
    uint8_t payload[100];
    memset(payload, 'a', sizeof(payload));
    parser_with(&p, &c, true, 90);
    n = frame(buf, 0x81 | 0x40, payload, 100);
    assert_int_equal(wsb_ws_parser_feed(&p, buf, n, NULL), 0);
    parser_with(&p, &c, true, 90);
    n = frame(buf, 0x81, payload, 100);
    assert_int_equal(wsb_ws_parser_feed(&p, buf, n, NULL), WSB_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offer_matrix),  cmocka_unit_test(test_response_too_small),
        cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_inflate_bound), cmocka_unit_test(test_inflate_garbage),
        cmocka_unit_test(test_parser_rsv1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
