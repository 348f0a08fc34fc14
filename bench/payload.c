/* payload.c - wsbench's message format (see payload.h). */
#include "payload.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char PUB_HEAD[] = "{\"type\":\"publish\",\"topic\":\"";
static const char PUB_DATA[] = "\",\"data\":\"";
static const char PUB_ID[] = "\",\"id\":";

size_t payload_publish_max(size_t topic_len, uint32_t payload_len)
{
    return sizeof(PUB_HEAD) + topic_len + sizeof(PUB_DATA) + payload_len + sizeof(PUB_ID) + 21;
}

/* Writes `v` as exactly `width` decimal digits, zero-padded (v must fit). */
static void put_digits(char *out, size_t width, uint64_t v)
{
    for (size_t i = width; i > 0; i--) {
        out[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
}

size_t payload_publish_json(char *out, size_t cap, const char *topic, size_t topic_len,
                            uint32_t payload_len, uint64_t t_ns, uint64_t id)
{
    if (payload_len < PAYLOAD_MIN || cap < payload_publish_max(topic_len, payload_len)) {
        return 0;
    }
    char *w = out;
    memcpy(w, PUB_HEAD, sizeof(PUB_HEAD) - 1);
    w += sizeof(PUB_HEAD) - 1;
    memcpy(w, topic, topic_len);
    w += topic_len;
    memcpy(w, PUB_DATA, sizeof(PUB_DATA) - 1);
    w += sizeof(PUB_DATA) - 1;
    w[0] = 't';
    w[1] = '=';
    put_digits(w + 2, PAYLOAD_TS_DIGITS, t_ns > PAYLOAD_TS_MAX ? PAYLOAD_TS_MAX : t_ns);
    w[2 + PAYLOAD_TS_DIGITS] = ';';
    memset(w + PAYLOAD_MIN, 'x', payload_len - PAYLOAD_MIN);
    w += payload_len;
    memcpy(w, PUB_ID, sizeof(PUB_ID) - 1);
    w += sizeof(PUB_ID) - 1;
    char idbuf[24];
    int n = snprintf(idbuf, sizeof(idbuf), "%llu}", (unsigned long long)id);
    memcpy(w, idbuf, (size_t)n);
    w += n;
    return (size_t)(w - out);
}

/* memmem without _GNU_SOURCE: the needles are short and start with '"',
 * which is rare enough in the haystacks for memchr to skip most bytes. */
static const uint8_t *find(const uint8_t *hay, size_t len, const char *needle, size_t nlen)
{
    const uint8_t *p = hay;
    const uint8_t *end = hay + len;
    while ((size_t)(end - p) >= nlen) {
        p = memchr(p, (unsigned char)needle[0], (size_t)(end - p) - nlen + 1);
        if (p == NULL) {
            return NULL;
        }
        if (memcmp(p, needle, nlen) == 0) {
            return p;
        }
        p++;
    }
    return NULL;
}

static bool starts_with(const uint8_t *p, size_t len, const char *lit, size_t litlen)
{
    return len >= litlen && memcmp(p, lit, litlen) == 0;
}

msg_kind_t payload_kind(const uint8_t *json, size_t len)
{
    static const char type[] = "{\"type\":\"";
    static const struct {
        const char *name;
        size_t len;
        msg_kind_t kind;
    } kinds[] = {
        {"message\"", 8, KIND_MESSAGE}, {"ack\"", 4, KIND_ACK},   {"error\"", 6, KIND_ERROR},
        {"welcome\"", 8, KIND_WELCOME}, {"pong\"", 5, KIND_PONG}, {"join\"", 5, KIND_JOIN},
        {"leave\"", 6, KIND_LEAVE},
    };
    const size_t tl = sizeof(type) - 1;
    if (len == 0) {
        return KIND_NEED_MORE;
    }
    if (len < tl) {
        return memcmp(json, type, len) == 0 ? KIND_NEED_MORE : KIND_OTHER;
    }
    if (memcmp(json, type, tl) != 0) {
        return KIND_OTHER;
    }
    const uint8_t *name = json + tl;
    size_t left = len - tl;
    bool maybe_more = false;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (starts_with(name, left, kinds[i].name, kinds[i].len)) {
            return kinds[i].kind;
        }
        if (left < kinds[i].len && memcmp(name, kinds[i].name, left) == 0) {
            maybe_more = true;
        }
    }
    return maybe_more ? KIND_NEED_MORE : KIND_OTHER;
}

int payload_find_time(const uint8_t *json, size_t len, uint64_t *t_ns)
{
    /* Anchored on '=', which the JSON before "data" (type, topic, seq) rarely
     * contains, so one memchr usually lands on the field: searching for the
     * leading '"' instead stops at every key and value of the prefix. */
    static const char before[] = "\"data\":\"t";
    const size_t bl = sizeof(before) - 1;
    const uint8_t *end = json + len;
    const uint8_t *p = len > bl ? json + bl : end;
    for (;;) {
        p = p < end ? memchr(p, '=', (size_t)(end - p)) : NULL;
        if (p == NULL) {
            return PAYLOAD_NEED_MORE;
        }
        if (memcmp(p - bl, before, bl) == 0) {
            break;
        }
        p++;
    }
    p++;
    if ((size_t)(end - p) < PAYLOAD_TS_DIGITS + 1) {
        return PAYLOAD_NEED_MORE;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < PAYLOAD_TS_DIGITS; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return PAYLOAD_BAD;
        }
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (p[PAYLOAD_TS_DIGITS] != ';') {
        return PAYLOAD_BAD;
    }
    *t_ns = v;
    return PAYLOAD_FOUND;
}

int payload_find_id(const uint8_t *json, size_t len, uint64_t *id)
{
    static const char needle[] = "\"id\":";
    const size_t nl = sizeof(needle) - 1;
    const uint8_t *p = find(json, len, needle, nl);
    if (p == NULL) {
        return PAYLOAD_NEED_MORE;
    }
    p += nl;
    const uint8_t *end = json + len;
    uint64_t v = 0;
    size_t digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (++digits > 16) {
            return PAYLOAD_BAD; /* ids are at most 2^53 - 1 */
        }
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (p == end) {
        return PAYLOAD_NEED_MORE;
    }
    if (digits == 0) {
        return PAYLOAD_BAD;
    }
    *id = v;
    return PAYLOAD_FOUND;
}
