/*
 * nats_wire.h - the few pieces of the NATS text protocol a wsbench fan-out
 * run needs (`--url nats://`): a PUB command carrying wsbench's timestamped
 * payload, and an incremental reader of what the server sends (MSG, PING,
 * PONG, +OK, -ERR, INFO) that reports each message's send time.
 *
 * The payload of a NATS message is the same "t=<13 digits>;xx…" text that
 * wsbench publishes as a JSON string to wsbroker (without the quotes), so
 * `--payload` means the same bytes of data on both brokers.
 *
 * Pure: no allocation, no clock, no I/O. A reader is a fixed struct (about
 * 300 bytes); a line split across reads is copied into it, a complete one is
 * parsed in place.
 */
#ifndef WSB_BENCH_NATS_WIRE_H
#define WSB_BENCH_NATS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest server line kept whole: "MSG " + a 256-byte subject + sid, reply
 * and size. Longer lines (INFO) are recognized by their first bytes. */
#define NATS_LINE_CAP 288

/* Upper bound of nats_pub()'s output. */
size_t nats_pub_max(size_t subject_len, uint32_t payload_len);

/* Writes "PUB <subject> <n>\r\n<payload>\r\n" and, with `ping`, "PING\r\n"
 * (whose PONG acknowledges the publish: the server handles one connection's
 * commands in order). Returns the length, or 0 when `cap` is too small or
 * payload_len < 16. */
size_t nats_pub(char *out, size_t cap, const char *subject, size_t subject_len,
                uint32_t payload_len, uint64_t t_ns, bool ping);

typedef struct {
    /* Each returns 0 to go on, non-zero to stop reading (the connection closes). */
    int (*on_msg)(void *user_data, bool has_time, uint64_t t_ns);
    int (*on_ping)(void *user_data);
    int (*on_pong)(void *user_data);
    int (*on_err)(void *user_data);  /* -ERR */
    int (*on_info)(void *user_data); /* INFO (NULL: ignored) */
} nats_rx_cb_t;

typedef struct {
    uint32_t payload_left; /* bytes of the current MSG's payload (and CRLF) still to come */
    uint16_t line_len;
    uint8_t head_len; /* bytes of the current payload's start kept in head */
    bool in_payload;
    bool line_long; /* the current line outgrew `line`: only its start is kept */
    char head[16];  /* "t=<13 digits>;" */
    char line[NATS_LINE_CAP];
} nats_rx_t;

void nats_rx_init(nats_rx_t *rx);

/* Reads `len` bytes. Returns 0, 1 when a callback asked to stop, or -1 on a
 * malformed MSG line (a broken server). */
int nats_rx_feed(nats_rx_t *rx, const uint8_t *data, size_t len, const nats_rx_cb_t *cb,
                 void *user_data);

#endif
