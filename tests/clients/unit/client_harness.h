/*
 * client_harness.h - test harness for the client core (test_client_core.c,
 * test_client_requests.c): a fake adapter whose want_write hook takes the
 * core's output at once, a fake server that reads it with the broker's own
 * HTTP parser, handshake check and (server-role) frame parser, and a
 * recorder of every callback. Include first; it includes cmocka.h.
 *
 * Traces: h->trace gets one line per client callback ("open ...",
 * "msg ...", "ack ...", "rerr ...", "cerr ...", "disc ...", "closed"),
 * h->sent one line per frame the client sent ("TEXT {...}", "PING x",
 * "PONG x", "CLOSE code reason"), so any split of the same input must give
 * the same text.
 */
#ifndef WSB_TEST_CLIENT_HARNESS_H
#define WSB_TEST_CLIENT_HARNESS_H

#define _DEFAULT_SOURCE 1

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four headers above first. */
#include "client_internal.h"
#include "wsb/client.h"
#include "wsb/ws_frame.h"

#include <cmocka.h>
#include <stdbool.h>

typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
} bytes_t;

#define WELCOME                                                                                    \
    "{\"type\":\"welcome\",\"protocol\":1,\"client_id\":\"c1\",\"node_id\":\"n1\","                \
    "\"version\":\"0.1.0\",\"limits\":{\"max_message_size\":65536,\"max_subscriptions\":1000,"     \
    "\"ping_interval_ms\":25000}}"

typedef struct {
    wsb_client_t *c;
    int connects;
    char host[64];
    unsigned port;
    int connect_rc;
    int closes;
    bool close_flush;
    bool timer_armed;
    uint64_t timer_ms;
    int cleanups;
    bytes_t wire; /* everything the client wrote */
    size_t wire_off;
    wsb_ws_parser_t srv; /* server-role parser of the client's frames */
    bytes_t srv_msg;
    bytes_t sent;  /* decoded client frames, one line each */
    bytes_t trace; /* callbacks, one line each */
    int64_t reconnect_ms;
    /* behaviour switches for callbacks */
    bool free_on_message;
    bool close_on_message;
    bool publish_on_ack;
    bool free_on_disconnect;
} harness_t;

enum { FEED_WHOLE = 0, FEED_SPLIT, FEED_BYTES, FEED_RANDOM };

/* Byte buffers; always NUL-terminated for strstr/printing. */
void bytes_add(bytes_t *b, const void *p, size_t n);
void bytes_clear(bytes_t *b);
void bytes_printf(bytes_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Unmasked server frames appended to `b`. */
void srv_frame(bytes_t *b, bool fin, int opcode, const void *payload, size_t len);
void srv_text(bytes_t *b, const char *json);
void srv_close(bytes_t *b, int code, const char *reason);

/* The fake server: reads the upgrade request from what the client wrote
 * (the broker's own parser and check) and appends its 101 to `out`. */
void srv_accept(harness_t *h, bytes_t *out);
/* Decodes the client's frames written since the last call into h->sent. */
void srv_read(harness_t *h);

/* Per-request callbacks that record "ack ..." / "rerr ..." lines. */
extern const wsb_client_reply_cb_t reply_cb;
void r_ack(wsb_client_t *c, const wsb_client_ack_t *a, void *ud);

/* The fake adapter's hooks, with `h` as their data. */
wsb_client_io_t harness_io(harness_t *h);

/* Options for ws://127.0.0.1:8080/ws with the library's defaults. */
wsb_client_options_t default_opts(void);
harness_t *h_new_opts(const wsb_client_options_t *o);
harness_t *h_new(void);
/* Frees the client (if still alive) and the harness. */
void h_free(harness_t *h);

/* Feeds bytes in pieces (FEED_*; arg: the split point or the seed), each
 * copied to the end of a guard page; stops once the client is freed. */
void h_feed(harness_t *h, const uint8_t *p, size_t len, int mode, size_t arg);
void h_feed_bytes(harness_t *h, const bytes_t *b);
void h_feed_text(harness_t *h, const char *json);
/* connect -> transport up -> 101 + welcome: the client is open. */
void h_open(harness_t *h);

void assert_contains(const bytes_t *b, const char *needle);
void assert_lacks(const bytes_t *b, const char *needle);

#endif
