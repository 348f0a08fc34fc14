/* test_payload.c - the message format: publish frames, what subscribers
 * find in the broker's frames, fed whole and cut at every length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "payload.h"

#include <cmocka.h>

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

static void test_publish_json(void **state)
{
    (void)state;
    char out[256];
    size_t n = payload_publish_json(out, sizeof(out), "bench.0", 7, 20, 1234567, 42);
    out[n] = '\0';
    assert_string_equal(out, "{\"type\":\"publish\",\"topic\":\"bench.0\","
                             "\"data\":\"t=0000001234567;xxxx\",\"id\":42}");
    /* The minimum payload has no filler; the timestamp is clamped. */
    n = payload_publish_json(out, sizeof(out), "a", 1, PAYLOAD_MIN, UINT64_MAX, 1);
    out[n] = '\0';
    assert_string_equal(out, "{\"type\":\"publish\",\"topic\":\"a\","
                             "\"data\":\"t=9999999999999;\",\"id\":1}");
    /* Refusals: payload too small, output too small. */
    assert_int_equal(payload_publish_json(out, sizeof(out), "a", 1, PAYLOAD_MIN - 1, 0, 1), 0);
    assert_int_equal(payload_publish_json(out, 40, "a", 1, 64, 0, 1), 0);
    /* The bound holds for the largest id. */
    char big[512];
    n = payload_publish_json(big, sizeof(big), "bench.topic", 11, 300, 5, UINT64_MAX);
    assert_true(n > 0 && n <= payload_publish_max(11, 300));
}

static void test_kind(void **state)
{
    (void)state;
    assert_int_equal(payload_kind(u8("{\"type\":\"message\",\"topic\""), 26), KIND_MESSAGE);
    assert_int_equal(payload_kind(u8("{\"type\":\"ack\",\"id\":1}"), 21), KIND_ACK);
    assert_int_equal(payload_kind(u8("{\"type\":\"error\",\"code\""), 22), KIND_ERROR);
    assert_int_equal(payload_kind(u8("{\"type\":\"welcome\","), 18), KIND_WELCOME);
    assert_int_equal(payload_kind(u8("{\"type\":\"pong\"}"), 15), KIND_PONG);
    assert_int_equal(payload_kind(u8("{\"type\":\"join\",\"topic\""), 22), KIND_JOIN);
    assert_int_equal(payload_kind(u8("{\"type\":\"leave\",\"topic\""), 23), KIND_LEAVE);
    assert_int_equal(payload_kind(u8("{\"type\":\"joined\"}"), 17), KIND_OTHER);
    assert_int_equal(payload_kind(u8("{\"type\":\"later\"}"), 16), KIND_OTHER);
    assert_int_equal(payload_kind(u8("[1,2]"), 5), KIND_OTHER);
    /* Every proper prefix of a known type asks for more. */
    const char *msg = "{\"type\":\"message\"";
    for (size_t n = 0; n < strlen(msg); n++) {
        assert_int_equal(payload_kind(u8(msg), n), KIND_NEED_MORE);
    }
    assert_int_equal(payload_kind(u8("{\"type\":\"ac"), 11), KIND_NEED_MORE);
    assert_int_equal(payload_kind(u8("{\"typo"), 6), KIND_OTHER);
}

static void test_find_time(void **state)
{
    (void)state;
    const char *frame = "{\"type\":\"message\",\"topic\":\"bench.data\",\"seq\":17,\"data\":\"t="
                        "0000000000099;xxxx\"}";
    uint64_t t = 0;
    assert_int_equal(payload_find_time(u8(frame), strlen(frame), &t), PAYLOAD_FOUND);
    assert_int_equal(t, 99);
    /* Cut anywhere before the ';': more is needed; from there on it is found. */
    const char *semi = strchr(strstr(frame, "t="), ';');
    size_t need = (size_t)(semi - frame) + 1;
    for (size_t n = 0; n < strlen(frame); n++) {
        t = 0;
        int r = payload_find_time(u8(frame), n, &t);
        assert_int_equal(r, n < need ? PAYLOAD_NEED_MORE : PAYLOAD_FOUND);
        if (r == PAYLOAD_FOUND) {
            assert_int_equal(t, 99);
        }
    }
    const char *bad = "{\"type\":\"message\",\"seq\":1,\"data\":\"t=00000000x0099;\"}";
    assert_int_equal(payload_find_time(u8(bad), strlen(bad), &t), PAYLOAD_BAD);
    const char *nosemi = "{\"type\":\"message\",\"seq\":1,\"data\":\"t=0000000000099x\"}";
    assert_int_equal(payload_find_time(u8(nosemi), strlen(nosemi), &t), PAYLOAD_BAD);
    const char *other = "{\"type\":\"message\",\"seq\":1,\"data\":{\"x\":1}}";
    assert_int_equal(payload_find_time(u8(other), strlen(other), &t), PAYLOAD_NEED_MORE);
}

static void test_roundtrip_through_broker_format(void **state)
{
    (void)state;
    /* What a publish turns into: the broker copies "data" verbatim. */
    char pub[256];
    size_t n = payload_publish_json(pub, sizeof(pub), "x.y", 3, 64, 8765432109876ULL, 3);
    pub[n] = '\0';
    const char *data = strstr(pub, "\"data\":");
    const char *end = strstr(pub, ",\"id\":");
    char msg[300];
    int m = snprintf(msg, sizeof(msg), "{\"type\":\"message\",\"topic\":\"x.y\",\"seq\":5,%.*s}",
                     (int)(end - data), data);
    uint64_t t = 0;
    assert_int_equal(payload_find_time(u8(msg), (size_t)m, &t), PAYLOAD_FOUND);
    assert_int_equal(t, 8765432109876ULL);
}

static void test_find_id(void **state)
{
    (void)state;
    uint64_t id = 0;
    const char *ack = "{\"type\":\"ack\",\"id\":9007199254740991,\"seq\":3}";
    assert_int_equal(payload_find_id(u8(ack), strlen(ack), &id), PAYLOAD_FOUND);
    assert_int_equal(id, 9007199254740991ULL);
    const char *tail = "{\"type\":\"ack\",\"id\":12}";
    assert_int_equal(payload_find_id(u8(tail), strlen(tail), &id), PAYLOAD_FOUND);
    assert_int_equal(id, 12);
    /* Cut inside the number: the next byte might be another digit. */
    assert_int_equal(payload_find_id(u8(tail), strlen(tail) - 1, &id), PAYLOAD_NEED_MORE);
    assert_int_equal(payload_find_id(u8(tail), 10, &id), PAYLOAD_NEED_MORE);
    const char *none = "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"x\"}";
    assert_int_equal(payload_find_id(u8(none), strlen(none), &id), PAYLOAD_NEED_MORE);
    const char *notnum = "{\"type\":\"ack\",\"id\":\"7\"}";
    assert_int_equal(payload_find_id(u8(notnum), strlen(notnum), &id), PAYLOAD_BAD);
    const char *huge = "{\"type\":\"ack\",\"id\":123456789012345678}";
    assert_int_equal(payload_find_id(u8(huge), strlen(huge), &id), PAYLOAD_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_json), cmocka_unit_test(test_kind),
        cmocka_unit_test(test_find_time),    cmocka_unit_test(test_roundtrip_through_broker_format),
        cmocka_unit_test(test_find_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
