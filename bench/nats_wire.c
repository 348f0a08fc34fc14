/* nats_wire.c - NATS PUB and the server-line reader (see nats_wire.h). */
#include "nats_wire.h"

#include "payload.h"

#include <stdio.h>
#include <string.h>

size_t nats_pub_max(size_t subject_len, uint32_t payload_len)
{
    /* "PUB " subject " " <10 digits> CRLF payload CRLF "PING" CRLF */
    return 4 + subject_len + 1 + 10 + 2 + payload_len + 2 + 6;
}

size_t nats_pub(char *out, size_t cap, const char *subject, size_t subject_len,
                uint32_t payload_len, uint64_t t_ns, bool ping)
{
    if (payload_len < PAYLOAD_MIN || cap < nats_pub_max(subject_len, payload_len)) {
        return 0;
    }
    if (t_ns > PAYLOAD_TS_MAX) {
        t_ns = PAYLOAD_TS_MAX;
    }
    int n = snprintf(out, cap, "PUB %.*s %u\r\nt=%013llu;", (int)subject_len, subject,
                     (unsigned)payload_len, (unsigned long long)t_ns);
    if (n < 0) {
        return 0;
    }
    size_t len = (size_t)n;
    memset(out + len, 'x', payload_len - PAYLOAD_MIN);
    len += payload_len - PAYLOAD_MIN;
    memcpy(out + len, ping ? "\r\nPING\r\n" : "\r\n", ping ? 8 : 2);
    return len + (ping ? 8 : 2);
}

void nats_rx_init(nats_rx_t *rx)
{
    memset(rx, 0, sizeof(*rx));
}

/* "MSG <subject> <sid> [reply-to] <size>": returns the size, -1 when malformed. */
static long msg_size(const char *line, size_t len)
{
    unsigned fields = 0;
    for (size_t i = 0; i < len; i++) {
        if (line[i] != ' ' && line[i] != '\r' && (i == 0 || line[i - 1] == ' ')) {
            fields++;
        }
    }
    if (fields != 4 && fields != 5) {
        return -1;
    }
    size_t end = len;
    while (end > 0 && (line[end - 1] == '\r' || line[end - 1] == ' ')) {
        end--;
    }
    size_t start = end;
    while (start > 0 && line[start - 1] >= '0' && line[start - 1] <= '9') {
        start--;
    }
    if (start == end || end - start > 9 || start == 0 || line[start - 1] != ' ') {
        return -1;
    }
    long v = 0;
    for (size_t i = start; i < end; i++) {
        v = v * 10 + (line[i] - '0');
    }
    return v;
}

static bool starts(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(line, word, n) == 0;
}

/* One complete line (without its '\n'); `len` may be cut (line_long). */
static int on_line(nats_rx_t *rx, const char *line, size_t len, bool cut, const nats_rx_cb_t *cb,
                   void *ud)
{
    if (starts(line, len, "MSG ")) {
        long size = cut ? -1 : msg_size(line, len);
        if (size < 0) {
            return -1;
        }
        rx->in_payload = true;
        rx->payload_left = (uint32_t)size + 2;
        rx->head_len = 0;
        return 0;
    }
    if (starts(line, len, "PING")) {
        return cb->on_ping(ud) != 0 ? 1 : 0;
    }
    if (starts(line, len, "PONG")) {
        return cb->on_pong(ud) != 0 ? 1 : 0;
    }
    if (starts(line, len, "-ERR")) {
        return cb->on_err(ud) != 0 ? 1 : 0;
    }
    if (starts(line, len, "INFO") && cb->on_info != NULL) {
        return cb->on_info(ud) != 0 ? 1 : 0;
    }
    return 0; /* +OK */
}

/* The payload's start is "t=<13 digits>;": the send time. */
static bool head_time(const char *head, uint64_t *t_ns)
{
    if (head[0] != 't' || head[1] != '=' || head[2 + PAYLOAD_TS_DIGITS] != ';') {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < PAYLOAD_TS_DIGITS; i++) {
        char ch = head[2 + i];
        if (ch < '0' || ch > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(ch - '0');
    }
    *t_ns = v;
    return true;
}

int nats_rx_feed(nats_rx_t *rx, const uint8_t *data, size_t len, const nats_rx_cb_t *cb,
                 void *user_data)
{
    const char *p = (const char *)data;
    const char *end = p + len;
    while (p < end) {
        if (rx->in_payload) {
            /* The payload's first 16 bytes, then skip the rest and the CRLF. */
            size_t avail = (size_t)(end - p);
            if (rx->head_len < sizeof(rx->head) && rx->payload_left > 2) {
                size_t want = sizeof(rx->head) - rx->head_len;
                size_t body_left = rx->payload_left - 2;
                if (want > body_left) {
                    want = body_left;
                }
                if (want > avail) {
                    want = avail;
                }
                memcpy(rx->head + rx->head_len, p, want);
                rx->head_len = (uint8_t)(rx->head_len + want);
            }
            size_t take = avail < rx->payload_left ? avail : rx->payload_left;
            p += take;
            rx->payload_left -= (uint32_t)take;
            if (rx->payload_left > 0) {
                break;
            }
            rx->in_payload = false;
            uint64_t t = 0;
            bool has = rx->head_len == sizeof(rx->head) && head_time(rx->head, &t);
            if (cb->on_msg(user_data, has, t) != 0) {
                return 1;
            }
            continue;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (rx->line_len == 0 && !rx->line_long && nl != NULL) {
            /* Usual case: the whole line is in this read. */
            int rc = on_line(rx, p, (size_t)(nl - p), false, cb, user_data);
            if (rc != 0) {
                return rc;
            }
            p = nl + 1;
            continue;
        }
        const char *stop = nl != NULL ? nl : end;
        size_t n = (size_t)(stop - p);
        size_t room = sizeof(rx->line) - rx->line_len;
        if (n > room) {
            rx->line_long = true;
            n = room;
        }
        memcpy(rx->line + rx->line_len, p, n);
        rx->line_len = (uint16_t)(rx->line_len + n);
        if (nl == NULL) {
            break;
        }
        bool cut = rx->line_long;
        size_t line_len = rx->line_len;
        rx->line_len = 0;
        rx->line_long = false;
        p = nl + 1;
        int rc = on_line(rx, rx->line, line_len, cut, cb, user_data);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
