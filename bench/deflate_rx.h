/*
 * deflate_rx.h - wsbench's side of permessage-deflate (--deflate): the offer
 * it sends, and the buffer of a compressed message that is inflated at its
 * end so the usual kind/timestamp scan reads plain JSON. The broker answers
 * server_no_context_takeover, so every message inflates on its own.
 *
 * Ownership: a connection's deflate_rx_t holds a heap buffer only while a
 * compressed message is arriving (deflate_rx_free releases it); the inflater
 * is one per thread, freed when the thread exits.
 */
#ifndef WSBENCH_DEFLATE_RX_H
#define WSBENCH_DEFLATE_RX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEFLATE_RX_OFFER                                                                           \
    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"

typedef struct {
    uint8_t *buf;
    uint32_t len;
    uint32_t cap;
} deflate_rx_t;

/* True when the broker's 101 head (NUL-terminated) accepted the extension. */
bool deflate_rx_accepted(const char *head);

/* Appends compressed bytes of the current message; false on OOM. */
bool deflate_rx_append(deflate_rx_t *z, const uint8_t *data, size_t len);

/* Inflates the collected message into a malloc'd buffer (*out, the caller
 * frees) and empties `z`; false for data that does not inflate. */
bool deflate_rx_finish(deflate_rx_t *z, uint8_t **out, size_t *out_len);

void deflate_rx_free(deflate_rx_t *z);

/* --filler market: replaces the 'x' filler of a publish's data string
 * (`json`, `len` bytes, as payload_publish_json wrote it) with ticker-like
 * text (symbols, prices and volumes, no quote or backslash) that varies with
 * `seed`, so compression ratios are those of real JSON feeds rather than of
 * a run of one letter. */
void deflate_rx_fill_market(char *json, size_t len, uint64_t seed);

#endif
