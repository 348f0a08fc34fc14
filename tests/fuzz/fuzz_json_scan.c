/*
 * fuzz_json_scan.c - the strict JSON scanner against jansson, differentially.
 *
 * For every input, in both modes the broker uses (any top-level value, as
 * for WebSocket and RESP messages, and object-or-array, as for HTTP bodies):
 *   - the scanner accepts exactly when json_loadb() with the broker's flags
 *     (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL [| JSON_DECODE_ANY]) does;
 *     the one documented difference, jansson skipping one NUL byte right
 *     after a number or a literal, is modelled: such a byte the scanner
 *     refuses is deleted and the scan repeated, which must then agree;
 *   - on acceptance, the top-level kind, every wanted top-level member
 *     (presence, kind and value) and, through the walker, the whole tree
 *     (names decoded, strings decoded, integers, reals) equal jansson's;
 *   - every member's raw span, parsed on its own by jansson, is the same
 *     value: the bytes a publish forwards are one valid JSON value;
 *   - a refusal is WSB_EINVAL with an offset inside the input and a
 *     printable reason.
 */
#include "wsb/common.h"
#include "wsb/json_scan.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static const char *const keys[] = {"type",  "topic",   "id",         "data", "token",
                                   "since", "history", "timeout_ms", "",     "\xc3\xa9"};
#define NKEYS (sizeof keys / sizeof keys[0])

static void same_value(wsb_json_value_t v, const json_t *j);

static void same_string(wsb_json_value_t v, const char *s, size_t len)
{
    char *buf = malloc(v.raw.len + 1);
    check(buf != NULL);
    wsb_str_t d = wsb_json_string(v, buf);
    check(d.len == len && memcmp(d.p, s, len) == 0);
    free(buf);
}

static void same_object(wsb_json_value_t v, const json_t *j)
{
    wsb_json_iter_t it;
    wsb_json_iter_init(&it, v);
    wsb_json_value_t name;
    wsb_json_value_t val;
    size_t n = 0;
    while (wsb_json_iter_next(&it, &name, &val)) {
        check(name.kind == WSB_JSON_STRING);
        char *buf = malloc(name.raw.len + 1);
        check(buf != NULL);
        wsb_str_t key = wsb_json_string(name, buf);
        const json_t *jv = json_object_getn(j, key.p, key.len);
        free(buf);
        check(jv != NULL);
        same_value(val, jv);
        n++;
    }
    check(n == json_object_size(j));
}

static void same_array(wsb_json_value_t v, const json_t *j)
{
    wsb_json_iter_t it;
    wsb_json_iter_init(&it, v);
    wsb_json_value_t val;
    size_t n = 0;
    while (wsb_json_iter_next(&it, NULL, &val)) {
        check(n < json_array_size(j));
        same_value(val, json_array_get(j, n));
        n++;
    }
    check(n == json_array_size(j));
}

static void same_value(wsb_json_value_t v, const json_t *j)
{
    switch (v.kind) {
    case WSB_JSON_OBJECT:
        check(json_is_object(j));
        same_object(v, j);
        break;
    case WSB_JSON_ARRAY:
        check(json_is_array(j));
        same_array(v, j);
        break;
    case WSB_JSON_STRING:
        check(json_is_string(j));
        same_string(v, json_string_value(j), json_string_length(j));
        break;
    case WSB_JSON_INTEGER:
        check(json_is_integer(j) && wsb_json_integer(v) == json_integer_value(j));
        break;
    case WSB_JSON_REAL: {
        check(json_is_real(j));
        char *z = malloc(v.raw.len + 1);
        check(z != NULL);
        memcpy(z, v.raw.p, v.raw.len);
        z[v.raw.len] = '\0';
        check(strtod(z, NULL) == json_real_value(j));
        free(z);
        break;
    }
    case WSB_JSON_TRUE:
        check(json_is_true(j));
        break;
    case WSB_JSON_FALSE:
        check(json_is_false(j));
        break;
    case WSB_JSON_NULL:
        check(json_is_null(j));
        break;
    default:
        abort();
    }
}

/* The span alone is one JSON value equal to jansson's. */
static void span_parses(wsb_json_value_t v, const json_t *j)
{
    json_t *again = json_loadb(v.raw.p, v.raw.len,
                               JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    check(again != NULL && json_equal(again, j));
    json_decref(again);
}

static bool alnum(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void one_mode(const uint8_t *data, size_t size, unsigned flags)
{
    /* Exact-size heap copies so ASan sees any read past the end. */
    char *in = malloc(size + (size == 0));
    check(in != NULL);
    if (size > 0) {
        memcpy(in, data, size);
    }
    size_t jflags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;
    if (flags & WSB_JSON_ANY) {
        jflags |= JSON_DECODE_ANY;
    }
    json_error_t jerr;
    json_t *root = json_loadb(in, size, jflags, &jerr);

    wsb_json_value_t members[NKEYS];
    wsb_json_value_t rv;
    wsb_json_error_t err;
    size_t n = size;
    size_t last = 0;
    int rc;
    for (;;) {
        rc = wsb_json_scan(in, n, flags, keys, NKEYS, members, &rv, &err);
        if (rc == WSB_EINVAL) {
            check(err.offset <= n && err.reason != NULL);
            for (const char *r = err.reason; *r != '\0'; r++) {
                check(*r >= 0x20 && *r <= 0x7E);
            }
        }
        /* jansson's lost NUL (json_scan.h): delete it and compare again. */
        if (rc != WSB_EINVAL || root == NULL || err.offset <= last || err.offset >= n ||
            in[err.offset] != '\0' || !alnum((uint8_t)in[err.offset - 1])) {
            break;
        }
        memmove(in + err.offset, in + err.offset + 1, n - err.offset - 1);
        n--;
        last = err.offset;
        char *exact = malloc(n + (n == 0));
        check(exact != NULL);
        memcpy(exact, in, n);
        free(in);
        in = exact;
    }
    check(rc == 0 || rc == WSB_EINVAL);
    check((rc == 0) == (root != NULL));
    if (rc == 0) {
        check(rv.raw.len > 0);
        same_value(rv, root);
        span_parses(rv, root);
        for (size_t i = 0; i < NKEYS; i++) {
            const json_t *jm = json_is_object(root) ? json_object_get(root, keys[i]) : NULL;
            check((members[i].kind == WSB_JSON_NONE) == (jm == NULL));
            if (jm != NULL) {
                same_value(members[i], jm);
                span_parses(members[i], jm);
                check(wsb_json_string_is(members[i], keys[i]) ==
                      (json_is_string(jm) && strcmp(json_string_value(jm), keys[i]) == 0 &&
                       json_string_length(jm) == strlen(keys[i])));
            }
        }
        /* The walker's lookup agrees with the scanner's. */
        wsb_json_value_t walked[NKEYS];
        wsb_json_members(rv, keys, NKEYS, walked);
        for (size_t i = 0; i < NKEYS; i++) {
            check(walked[i].kind == members[i].kind && walked[i].raw.len == members[i].raw.len &&
                  walked[i].raw.p == members[i].raw.p);
        }
    }
    json_decref(root);
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_mode(data, size, WSB_JSON_ANY);
    one_mode(data, size, 0);
    return 0;
}
