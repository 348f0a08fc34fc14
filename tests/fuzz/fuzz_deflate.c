/*
 * fuzz_deflate.c - permessage-deflate codec and negotiation (ws_deflate.c).
 *
 * Input: one mode byte, then the rest.
 *   even: the rest is a Sec-WebSocket-Extensions value. An accepted offer's
 *         response line, read back as an offer, must be accepted with the
 *         same parameters (the response is itself a valid offer).
 *   odd:  the rest is a compressed message. Inflating it with a 4 KiB bound
 *         must give at most 4 KiB or WSB_ETOOBIG / WSB_EUTF8, never more;
 *         what inflates must compress and inflate back to itself.
 */
#include "wsb/common.h"
#include "wsb/ws_deflate.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define BOUND 4096

static void negotiation(const uint8_t *data, size_t size)
{
    wsb_pmd_params_t p;
    wsb_str_t v = {(const char *)data, size};
    if (wsb_pmd_negotiate_values(&v, 1, &p) != 1) {
        return;
    }
    CHECK(p.server_max_window_bits >= 8 && p.server_max_window_bits <= 15);
    char line[256];
    int n = wsb_pmd_response_header(line, sizeof(line), &p);
    CHECK(n > 0);
    const char *prefix = "Sec-WebSocket-Extensions: ";
    CHECK(strncmp(line, prefix, strlen(prefix)) == 0);
    wsb_str_t back = {line + strlen(prefix), (size_t)n - strlen(prefix) - 2};
    wsb_pmd_params_t q;
    CHECK(wsb_pmd_negotiate_values(&back, 1, &q) == 1);
    CHECK(q.client_no_context_takeover == p.client_no_context_takeover);
    CHECK(q.server_max_window_bits == p.server_max_window_bits);
    CHECK(q.server_max_window_bits_set == p.server_max_window_bits_set);
}

static void codec(const uint8_t *data, size_t size)
{
    wsb_pmd_inflater_t *z = wsb_pmd_inflater_new();
    CHECK(z != NULL);
    uint8_t *out = NULL;
    size_t len = 0;
    int rc = wsb_pmd_inflate(z, data, size, BOUND, true, &out, &len);
    wsb_pmd_inflater_free(z);
    if (rc != 0) {
        CHECK(rc == WSB_ETOOBIG || rc == WSB_EUTF8);
        CHECK(out == NULL);
        return;
    }
    CHECK(len <= BOUND);
    wsb_pmd_deflater_t *d = wsb_pmd_deflater_new(6);
    CHECK(d != NULL);
    size_t cap = wsb_pmd_deflate_bound(len);
    uint8_t *c = malloc(cap);
    CHECK(c != NULL);
    size_t clen = 0;
    CHECK(wsb_pmd_deflate(d, out, len, c, cap, &clen) == 0);
    wsb_pmd_deflater_free(d);
    z = wsb_pmd_inflater_new();
    uint8_t *again = NULL;
    size_t alen = 0;
    CHECK(wsb_pmd_inflate(z, c, clen, BOUND, true, &again, &alen) == 0);
    CHECK(alen == len && memcmp(again, out, len) == 0);
    wsb_pmd_inflater_free(z);
    free(again);
    free(c);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        negotiation(data + 1, size - 1);
    } else {
        codec(data + 1, size - 1);
    }
    return 0;
}
