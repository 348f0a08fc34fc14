/*
 * ws_frame.h - RFC 6455 WebSocket frame codec. No I/O. One allocation at
 * most: the parser takes a WSB_WS_MAX_CONTROL_PAYLOAD-byte buffer the first
 * time a control frame's payload is split across feeds (freed by
 * wsb_ws_parser_release; out of memory fails the parser with 1011); the
 * builders write into the caller's buffer.
 *
 * Parser: push bytes in with wsb_ws_parser_feed(), split at any boundary; it
 * reports data messages through begin/data/end callbacks and control frames
 * through on_ping/on_pong/on_close. Payload bytes of data frames are unmasked
 * IN PLACE in the caller's buffer and handed to on_message_data as slices of
 * that buffer (borrowed: valid until the callback returns), so a message that
 * arrived in one read is never copied by the parser. Control frame payloads
 * (at most 125 bytes) are collected in the parser itself because they may be
 * split across reads.
 *
 * Validation performed (each failure sets close_code and error, and the parser
 * stays failed: every later feed returns the same error):
 *   - RSV1-3 must be 0 unless allowed by rsv_mask              -> 1002
 *   - with `deflate` (permessage-deflate negotiated): RSV1 only on
 *     the first frame of a data message, never on a continuation
 *     or a control frame                                        -> 1002
 *   - opcodes 3-7 and 0xB-0xF are reserved                      -> 1002
 *   - server role: client frames must be masked; client role:
 *     server frames must not be masked                          -> 1002
 *   - 64-bit length with the most significant bit set           -> 1002
 *   - non-minimal length encodings are accepted (RFC says "must" use the
 *     minimal form for senders; receivers in the wild accept them)
 *   - control frames: FIN set and payload <= 125                -> 1002
 *   - continuation without a message in progress, or a new
 *     TEXT/BINARY while one is in progress                      -> 1002
 *   - total message size above max_message_size (checked at the
 *     frame header, before the payload arrives)                 -> 1009
 *   - text messages: streaming UTF-8 validation, fail fast      -> 1007
 *     (not for a compressed message: its caller validates the
 *     inflated text; its wire size may exceed max_message_size by
 *     deflate's worst-case expansion, the inflated size may not)
 *   - close payload: length 1, a code that may not be sent on
 *     the wire, or a reason that is not UTF-8                   -> 1002 / 1007
 *
 * The parser does not stop by itself after a close frame: a caller that is
 * done with the connection stops feeding it (or returns nonzero from
 * on_close).
 *
 * Ownership: the parser is a plain struct the caller embeds; it holds no heap
 * memory, so there is nothing to free. Slices passed to callbacks point into
 * the caller's buffer (data) or into the parser (control payloads); copy what
 * must outlive the callback, e.g. a message that spans several reads.
 */
#ifndef WSB_WS_FRAME_H
#define WSB_WS_FRAME_H

#include "wsb/utf8.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSB_WS_OP_CONT   0x0
#define WSB_WS_OP_TEXT   0x1
#define WSB_WS_OP_BINARY 0x2
#define WSB_WS_OP_CLOSE  0x8
#define WSB_WS_OP_PING   0x9
#define WSB_WS_OP_PONG   0xA

#define WSB_WS_CLOSE_NORMAL      1000
#define WSB_WS_CLOSE_GOING_AWAY  1001
#define WSB_WS_CLOSE_PROTOCOL    1002
#define WSB_WS_CLOSE_UNSUPPORTED 1003
#define WSB_WS_CLOSE_NO_STATUS   1005 /* never on the wire: "no code received" */
#define WSB_WS_CLOSE_ABNORMAL    1006 /* never on the wire */
#define WSB_WS_CLOSE_BAD_DATA    1007
#define WSB_WS_CLOSE_POLICY      1008
#define WSB_WS_CLOSE_TOO_BIG     1009
#define WSB_WS_CLOSE_INTERNAL    1011
#define WSB_WS_CLOSE_TRY_AGAIN   1013
/* wsbroker's own codes (PROTOCOL.md section 8): 4000-4099 mean "do not
 * reconnect with the same credentials". */
#define WSB_WS_CLOSE_INVALID_TOKEN      4001
#define WSB_WS_CLOSE_TOKEN_EXPIRED      4002
#define WSB_WS_CLOSE_ORIGIN_NOT_ALLOWED 4003
/* Closed through POST /api/disconnect; a banned user's upgrades get it too. */
#define WSB_WS_CLOSE_DISCONNECTED 4008
/* 4100-4199: try again later, with backoff (the same credentials may work). */
#define WSB_WS_CLOSE_TOO_MANY_CONNECTIONS 4100

#define WSB_WS_MAX_CONTROL_PAYLOAD 125
#define WSB_WS_MAX_HEADER_LEN      14   /* 2 + 8 (length) + 4 (mask) */
#define WSB_WS_RSV1                0x40 /* first header byte: permessage-deflate's bit */

typedef enum { WSB_WS_ROLE_SERVER = 0, WSB_WS_ROLE_CLIENT = 1 } wsb_ws_role_t;

/*
 * Callbacks. Each returns 0 to continue; any other value stops parsing at
 * once and is returned by wsb_ws_parser_feed() unchanged (use positive values
 * so they cannot be confused with WSB_E* codes). Any callback may be NULL.
 */
typedef struct {
    /* A TEXT or BINARY message starts (its first frame header was read). */
    int (*on_message_begin)(void *user_data, int opcode);
    /* Unmasked payload bytes of the current message, in order. For text the
     * bytes passed so far are valid UTF-8 prefixes (a code point may still be
     * split at the end of a slice). Zero-length slices are never reported. */
    int (*on_message_data)(void *user_data, const uint8_t *data, size_t len);
    /* The current message is complete (FIN frame fully received; a text
     * message is complete UTF-8). */
    int (*on_message_end)(void *user_data);
    int (*on_ping)(void *user_data, const uint8_t *payload, size_t len);
    int (*on_pong)(void *user_data, const uint8_t *payload, size_t len);
    /* A valid close frame. `code` is WSB_WS_CLOSE_NO_STATUS (1005) when the
     * frame had no payload. The reason is valid UTF-8. */
    int (*on_close)(void *user_data, int code, const uint8_t *reason, size_t len);
} wsb_ws_parser_callbacks_t;

/* One per connection: members are ordered by size, not by group, so that
 * the struct has no padding holes (112 bytes on LP64). */
typedef struct {
    /* --- configuration (set by init; may be changed between feeds) --- */
    uint64_t max_message_size; /* 0 = unlimited */
    const wsb_ws_parser_callbacks_t *cb;
    void *user_data;
    wsb_ws_role_t role;
    uint8_t rsv_mask; /* RSV bits an extension claims (0x40 = RSV1), 0 by default;
                         allowed on every frame, the extension checks the rest */
    bool deflate;     /* permessage-deflate: RSV1 marks a compressed message (set
                         rsv_mask's 0x40 too) */

    /* --- result of a failure --- */
    const char *error; /* static text naming the violation, NULL while healthy */
    int close_code;    /* 0 while healthy; 1002, 1007 or 1009 after an error */

    /* --- private state --- */
    int state;
    uint64_t frame_len; /* payload length of the frame being read */
    uint64_t frame_pos; /* payload bytes of it consumed so far */
    uint64_t msg_len;   /* payload bytes of the message so far */
    uint8_t *ctl;       /* a control payload split across feeds; NULL otherwise */
    int msg_opcode;     /* TEXT/BINARY of the message in progress, 0 if none */
    wsb_utf8_t utf8;
    uint8_t hdr[WSB_WS_MAX_HEADER_LEN];
    uint8_t hdr_have;
    uint8_t hdr_need;
    uint8_t opcode; /* opcode of the frame being read */
    bool fin;
    bool masked;
    bool msg_compressed; /* with `deflate`: the message in progress (or the last
                            one, until the next begins) had RSV1 set */
    uint8_t mask[4];
} wsb_ws_parser_t;

/* Prepares `p`. `cb` must outlive the parser; NULL means no callbacks. */
void wsb_ws_parser_init(wsb_ws_parser_t *p, wsb_ws_role_t role, uint64_t max_message_size,
                        const wsb_ws_parser_callbacks_t *cb, void *user_data);

/* Frees what the parser holds between feeds (the buffer of a control frame
 * split across reads). Call it when the parser is dropped; it may be reused
 * after wsb_ws_parser_init. */
void wsb_ws_parser_release(wsb_ws_parser_t *p);

/*
 * Parses `len` bytes of `data` (which it may modify: payloads are unmasked in
 * place). Returns:
 *   0               all bytes consumed (*consumed == len) and every event
 *                   they complete reported;
 *   a callback's nonzero value: stopped right after that callback; *consumed
 *                   counts the bytes used so far, the rest may be fed again.
 *                   Feed the rest even when it is empty (len 0): an event that
 *                   needs no further byte may still be pending, e.g.
 *                   on_message_end after the on_message_data that stopped;
 *   WSB_EPROTO / WSB_ETOOBIG / WSB_EUTF8: the peer violated the protocol;
 *                   p->close_code and p->error say how to close.
 *   WSB_ENOMEM:     no memory for a split control frame (close_code 1011). No callback
 *                   runs after the violation is detected; *consumed is then
 *                   only known to be <= len.
 * `consumed` may be NULL. `data` may be NULL when `len` is 0.
 */
int wsb_ws_parser_feed(wsb_ws_parser_t *p, uint8_t *data, size_t len, size_t *consumed);

/* Number of header bytes for a frame with `payload_len` bytes (2 to 14). */
size_t wsb_ws_header_len(uint64_t payload_len, bool masked);

/*
 * Writes a frame header into `out` (room for WSB_WS_MAX_HEADER_LEN bytes)
 * with the minimal length encoding and returns its length (payload_len must
 * be below 2^63; only the low 4 bits of opcode are used). `mask_key` NULL
 * means unmasked (server to client); otherwise the MASK bit and key are
 * written and the caller masks the payload with wsb_ws_mask().
 */
size_t wsb_ws_write_header(uint8_t *out, bool fin, int opcode, uint64_t payload_len,
                           const uint8_t *mask_key);

/* XORs `len` bytes with the 4-byte key, starting at key position `offset`
 * (the payload offset of data[0]), so a payload may be masked in pieces. */
void wsb_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset);

/* Fills `key` with 4 random bytes from OpenSSL's CSPRNG. 0 or WSB_EINVAL. */
int wsb_ws_random_mask(uint8_t key[4]);

/*
 * Writes a complete frame (header + payload, masked when mask_key != NULL)
 * into `out`. `payload` may overlap `out` (it is moved, then masked); it may
 * be NULL when `len` is 0. Returns its length, or WSB_ENOSPC if `cap` is too
 * small or the frame would not fit in an int.
 */
int wsb_ws_build_frame(uint8_t *out, size_t cap, bool fin, int opcode, const uint8_t *payload,
                       size_t len, const uint8_t *mask_key);

/*
 * Builds a close payload (2-byte code + reason) into `out` (125 bytes). The
 * reason (NUL-terminated, may be NULL) is cut at a code point boundary so the
 * payload fits, and before its first byte that is not valid UTF-8, so the
 * frame is always one the peer accepts. Returns its length. code 0 means
 * "no status" and yields an empty payload; any other code must satisfy
 * wsb_ws_close_code_valid() (it is written as given).
 */
size_t wsb_ws_close_payload(uint8_t out[WSB_WS_MAX_CONTROL_PAYLOAD], int code, const char *reason);

/* True if `code` may appear in a close frame on the wire (RFC 6455 7.4):
 * 1000-1003, 1007-1011 (and 1012-1014 registered later), 3000-4999. */
bool wsb_ws_close_code_valid(int code);

#endif
