/*
 * ws_frame.c - RFC 6455 frame parser and serializer.
 *
 * The parser is a small state machine driven by wsb_ws_parser_feed():
 *
 *   HEADER   collect the 2..14 header bytes; the first two are validated as
 *            soon as they are known, the rest when the header is complete.
 *            When the whole header is already in the caller's buffer it is
 *            decoded in place and never copied.
 *   DATA     payload of a TEXT/BINARY/CONTINUATION frame: unmask the bytes at
 *            hand in place, validate UTF-8 for text, pass them on. Once
 *            frame_pos == frame_len the state stays DATA until the frame-end
 *            step (on_message_end for a FIN frame) has run; that step needs no
 *            input, so it also runs on a feed of 0 bytes.
 *   CONTROL  payload of a PING/PONG/CLOSE frame. When the whole payload is in
 *            the caller's buffer it is unmasked and reported in place; only
 *            a payload split across feeds is collected into p->ctl, a
 *            buffer allocated for that frame and released once it has been
 *            reported. Idle connections (thousands per worker) thus carry a
 *            pointer instead of 125 bytes each.
 *   FAILED   terminal; close_code and error say why.
 *
 * The state is always advanced before a callback runs, so when a callback
 * stops the parser nothing has to be undone: the next feed resumes exactly
 * after that callback.
 */
#include "wsb/ws_frame.h"

#include "wsb/common.h"

#include <limits.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

enum { ST_HEADER = 0, ST_DATA, ST_CONTROL, ST_FAILED };

#define FIN_BIT  0x80u
#define RSV_BITS 0x70u
#define MASK_BIT 0x80u

static int error_for(int close_code)
{
    switch (close_code) {
    case WSB_WS_CLOSE_BAD_DATA:
        return WSB_EUTF8;
    case WSB_WS_CLOSE_TOO_BIG:
        return WSB_ETOOBIG;
    case WSB_WS_CLOSE_INTERNAL:
        return WSB_ENOMEM;
    default:
        return WSB_EPROTO;
    }
}

static int fail(wsb_ws_parser_t *p, int close_code, const char *why)
{
    p->close_code = close_code;
    p->error = why;
    p->state = ST_FAILED;
    return error_for(close_code);
}

static bool is_control(unsigned opcode)
{
    return (opcode & 0x8u) != 0;
}

static const wsb_ws_parser_callbacks_t no_callbacks = {0};

void wsb_ws_parser_init(wsb_ws_parser_t *p, wsb_ws_role_t role, uint64_t max_message_size,
                        const wsb_ws_parser_callbacks_t *cb, void *user_data)
{
    memset(p, 0, sizeof(*p));
    p->role = role;
    p->max_message_size = max_message_size;
    p->cb = cb != NULL ? cb : &no_callbacks;
    p->user_data = user_data;
    p->state = ST_HEADER;
    p->hdr_need = 2;
    wsb_utf8_init(&p->utf8);
}

/* Validates the first two header bytes (everything they alone decide) and
 * sets hdr_need to the full header length. */
static int check_start(wsb_ws_parser_t *p, uint8_t b0, uint8_t b1)
{
    unsigned opcode = b0 & 0x0Fu;
    unsigned len7 = b1 & 0x7Fu;
    bool masked = (b1 & MASK_BIT) != 0;

    if ((b0 & RSV_BITS & ~(unsigned)p->rsv_mask) != 0) {
        return fail(p, WSB_WS_CLOSE_PROTOCOL, "RSV bit set that no negotiated extension defines");
    }
    /* permessage-deflate (RFC 7692 6.1): RSV1 is the "compressed" flag of a
     * message, so it belongs on its first frame only. */
    if (p->deflate && (b0 & WSB_WS_RSV1) != 0 && (opcode == WSB_WS_OP_CONT || is_control(opcode))) {
        return fail(p, WSB_WS_CLOSE_PROTOCOL,
                    opcode == WSB_WS_OP_CONT ? "RSV1 set on a continuation frame"
                                             : "RSV1 set on a control frame");
    }
    switch (opcode) {
    case WSB_WS_OP_CONT:
        if (p->msg_opcode == 0) {
            return fail(p, WSB_WS_CLOSE_PROTOCOL,
                        "continuation frame without a message to continue");
        }
        break;
    case WSB_WS_OP_TEXT:
    case WSB_WS_OP_BINARY:
        if (p->msg_opcode != 0) {
            return fail(p, WSB_WS_CLOSE_PROTOCOL,
                        "new data frame while a fragmented message is in progress");
        }
        break;
    case WSB_WS_OP_CLOSE:
    case WSB_WS_OP_PING:
    case WSB_WS_OP_PONG:
        if ((b0 & FIN_BIT) == 0) {
            return fail(p, WSB_WS_CLOSE_PROTOCOL, "fragmented control frame");
        }
        if (len7 > WSB_WS_MAX_CONTROL_PAYLOAD) {
            return fail(p, WSB_WS_CLOSE_PROTOCOL, "control frame payload above 125 bytes");
        }
        break;
    default:
        return fail(p, WSB_WS_CLOSE_PROTOCOL, "reserved opcode");
    }
    if (p->role == WSB_WS_ROLE_SERVER && !masked) {
        return fail(p, WSB_WS_CLOSE_PROTOCOL, "unmasked frame from a client");
    }
    if (p->role == WSB_WS_ROLE_CLIENT && masked) {
        return fail(p, WSB_WS_CLOSE_PROTOCOL, "masked frame from a server");
    }
    p->hdr_need = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0));
    return 0;
}

/* Decodes a complete header `h` (already checked by check_start), applies the
 * checks that need the extended length, and enters the payload state. May
 * call on_message_begin; its return value is returned. */
static int begin_frame(wsb_ws_parser_t *p, const uint8_t *h)
{
    unsigned len7 = h[1] & 0x7Fu;
    uint64_t len = len7;
    size_t at = 2;

    if (len7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
    } else if (len7 == 127) {
        len = 0;
        for (size_t i = 2; i < 10; i++) {
            len = len << 8 | h[i];
        }
        if ((len >> 63) != 0) {
            return fail(p, WSB_WS_CLOSE_PROTOCOL,
                        "64-bit payload length with the most significant bit set");
        }
        at = 10;
    }
    p->fin = (h[0] & FIN_BIT) != 0;
    p->opcode = h[0] & 0x0Fu;
    p->masked = (h[1] & MASK_BIT) != 0;
    if (p->masked) {
        memcpy(p->mask, h + at, 4);
    }
    p->frame_len = len;
    p->frame_pos = 0;
    p->hdr_have = 0;
    p->hdr_need = 2;

    if (is_control(p->opcode)) {
        p->state = ST_CONTROL;
        return 0;
    }
    if (p->opcode != WSB_WS_OP_CONT) {
        p->msg_compressed = p->deflate && (h[0] & WSB_WS_RSV1) != 0;
    }
    /* msg_len counts the payload of the message's earlier frames (0 for a
     * new message). The first test keeps the subtraction from wrapping when
     * the caller lowered the limit in the middle of a message. A compressed
     * message may be a little larger on the wire than inflated (stored
     * blocks: 5 bytes per 16 KiB, and the frame of a few bytes more); its
     * inflated size is bounded by the caller. */
    uint64_t limit = p->max_message_size;
    if (limit != 0 && p->msg_compressed) {
        limit += limit / 1024 + 64;
    }
    if (limit != 0 && (p->msg_len > limit || len > limit - p->msg_len)) {
        return fail(p, WSB_WS_CLOSE_TOO_BIG, "message larger than max_message_size");
    }
    p->state = ST_DATA;
    if (p->opcode != WSB_WS_OP_CONT) {
        p->msg_opcode = p->opcode;
        p->msg_len = 0;
        wsb_utf8_init(&p->utf8);
        if (p->cb->on_message_begin != NULL) {
            return p->cb->on_message_begin(p->user_data, p->opcode);
        }
    }
    return 0;
}

/* Reads header bytes from data[*pos..len). Returns 0 with the frame begun, a
 * callback's stop value or an error; *pos == len with the state still HEADER
 * means more input is needed. */
static int read_header(wsb_ws_parser_t *p, const uint8_t *data, size_t len, size_t *pos)
{
    size_t avail = len - *pos;
    size_t take;
    int rc;

    /* Common case: the whole header is in this buffer; decode it in place. */
    if (p->hdr_have == 0 && avail >= 2) {
        const uint8_t *h = data + *pos;
        rc = check_start(p, h[0], h[1]);
        if (rc != 0) {
            return rc;
        }
        if (avail >= p->hdr_need) {
            *pos += p->hdr_need;
            return begin_frame(p, h);
        }
    }

    /* The header is split across feeds: collect it in p->hdr. */
    if (p->hdr_have < 2) {
        take = 2u - p->hdr_have;
        take = take < avail ? take : avail;
        memcpy(p->hdr + p->hdr_have, data + *pos, take);
        p->hdr_have = (uint8_t)(p->hdr_have + take);
        *pos += take;
        avail -= take;
        if (p->hdr_have < 2) {
            return 0;
        }
        rc = check_start(p, p->hdr[0], p->hdr[1]);
        if (rc != 0) {
            return rc;
        }
    }
    take = (size_t)(p->hdr_need - p->hdr_have);
    take = take < avail ? take : avail;
    memcpy(p->hdr + p->hdr_have, data + *pos, take);
    p->hdr_have = (uint8_t)(p->hdr_have + take);
    *pos += take;
    if (p->hdr_have < p->hdr_need) {
        return 0;
    }
    return begin_frame(p, p->hdr);
}

/* A data frame's payload is complete: finish the message if it was the last
 * frame. The state goes back to HEADER before on_message_end runs. */
static int end_data_frame(wsb_ws_parser_t *p)
{
    p->state = ST_HEADER;
    if (!p->fin) {
        return 0;
    }
    if (p->msg_opcode == WSB_WS_OP_TEXT && !p->msg_compressed && !wsb_utf8_complete(&p->utf8)) {
        return fail(p, WSB_WS_CLOSE_BAD_DATA, "text message ends inside a UTF-8 sequence");
    }
    p->msg_opcode = 0;
    p->msg_len = 0;
    if (p->cb->on_message_end != NULL) {
        return p->cb->on_message_end(p->user_data);
    }
    return 0;
}

/* Validates a complete close payload and reports it. */
static int dispatch_close(wsb_ws_parser_t *p, const uint8_t *payload, size_t len)
{
    int code = WSB_WS_CLOSE_NO_STATUS;

    if (len == 1) {
        return fail(p, WSB_WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload");
    }
    if (len >= 2) {
        code = payload[0] << 8 | payload[1];
        if (!wsb_ws_close_code_valid(code)) {
            return fail(p, WSB_WS_CLOSE_PROTOCOL, "close code that may not be sent on the wire");
        }
        if (!wsb_utf8_valid(payload + 2, len - 2)) {
            return fail(p, WSB_WS_CLOSE_BAD_DATA, "close reason is not valid UTF-8");
        }
        payload += 2;
        len -= 2;
    }
    if (p->cb->on_close != NULL) {
        return p->cb->on_close(p->user_data, code, payload, len);
    }
    return 0;
}

/* The control frame's payload (`payload`, p->ctl or the caller's buffer) is
 * complete: unmask and report it. A collected buffer is detached before the
 * callback runs and freed after it: the callback may free the parser. */
static int end_control_frame(wsb_ws_parser_t *p, uint8_t *payload)
{
    size_t len = (size_t)p->frame_len;
    uint8_t *owned = p->ctl;
    int rc;

    p->ctl = NULL;
    p->state = ST_HEADER;
    if (p->masked) {
        wsb_ws_mask(payload, len, p->mask, 0);
    }
    switch (p->opcode) {
    case WSB_WS_OP_PING:
        rc = p->cb->on_ping != NULL ? p->cb->on_ping(p->user_data, payload, len) : 0;
        break;
    case WSB_WS_OP_PONG:
        rc = p->cb->on_pong != NULL ? p->cb->on_pong(p->user_data, payload, len) : 0;
        break;
    default:
        rc = dispatch_close(p, payload, len);
        break;
    }
    free(owned);
    return rc;
}

void wsb_ws_parser_release(wsb_ws_parser_t *p)
{
    free(p->ctl);
    p->ctl = NULL;
}

int wsb_ws_parser_feed(wsb_ws_parser_t *p, uint8_t *data, size_t len, size_t *consumed)
{
    size_t pos = 0;
    int rc = 0;

    if (p->state == ST_FAILED) {
        rc = error_for(p->close_code);
        goto out;
    }
    for (;;) {
        switch (p->state) {
        case ST_HEADER:
            if (pos == len) {
                goto out;
            }
            rc = read_header(p, data, len, &pos);
            break;

        case ST_DATA: {
            uint64_t left = p->frame_len - p->frame_pos;
            if (left == 0) {
                rc = end_data_frame(p);
                break;
            }
            if (pos == len) {
                goto out;
            }
            size_t n = left < (uint64_t)(len - pos) ? (size_t)left : len - pos;
            uint8_t *slice = data + pos;
            if (p->masked) {
                wsb_ws_mask(slice, n, p->mask, p->frame_pos);
            }
            pos += n;
            p->frame_pos += n;
            p->msg_len += n;
            if (p->msg_opcode == WSB_WS_OP_TEXT && !p->msg_compressed &&
                wsb_utf8_feed(&p->utf8, slice, n) != 0) {
                rc = fail(p, WSB_WS_CLOSE_BAD_DATA, "text message is not valid UTF-8");
                break;
            }
            if (p->cb->on_message_data != NULL) {
                rc = p->cb->on_message_data(p->user_data, slice, n);
            }
            break;
        }

        case ST_CONTROL: {
            /* frame_len <= 125 was checked with the first two header bytes. */
            size_t left = (size_t)(p->frame_len - p->frame_pos);
            if (left > 0 && p->ctl == NULL && len - pos >= left) {
                /* All of it is here: no copy. */
                uint8_t *payload = data + pos;
                pos += left;
                p->frame_pos += left;
                rc = end_control_frame(p, payload);
                break;
            }
            if (left > 0) {
                if (pos == len) {
                    goto out;
                }
                if (p->ctl == NULL) {
                    p->ctl = malloc(WSB_WS_MAX_CONTROL_PAYLOAD);
                    if (p->ctl == NULL) {
                        rc = fail(p, WSB_WS_CLOSE_INTERNAL, "out of memory");
                        break;
                    }
                }
                size_t n = left < len - pos ? left : len - pos;
                memcpy(p->ctl + p->frame_pos, data + pos, n);
                pos += n;
                p->frame_pos += n;
                if (n < left) {
                    goto out;
                }
            }
            /* Collected, or empty: an empty payload is reported from a
             * static byte (`data` may be NULL on a feed of 0 bytes). */
            static uint8_t no_payload[1];
            rc = end_control_frame(p, p->ctl != NULL ? p->ctl : no_payload);
            break;
        }

        default:
            /* ST_FAILED: not reached, fail() makes the loop exit at once;
             * kept so a corrupted state cannot spin here. */
            rc = error_for(p->close_code);
            break;
        }
        if (rc != 0) {
            goto out;
        }
    }
out:
    if (consumed != NULL) {
        *consumed = pos;
    }
    return rc;
}

size_t wsb_ws_header_len(uint64_t payload_len, bool masked)
{
    size_t n = payload_len < 126 ? 2 : payload_len <= 0xFFFF ? 4 : 10;
    return masked ? n + 4 : n;
}

size_t wsb_ws_write_header(uint8_t *out, bool fin, int opcode, uint64_t payload_len,
                           const uint8_t *mask_key)
{
    uint8_t mask_bit = mask_key != NULL ? MASK_BIT : 0;
    size_t n;

    out[0] = (uint8_t)((fin ? FIN_BIT : 0) | ((unsigned)opcode & 0x0Fu));
    if (payload_len < 126) {
        out[1] = (uint8_t)(mask_bit | payload_len);
        n = 2;
    } else if (payload_len <= 0xFFFF) {
        out[1] = (uint8_t)(mask_bit | 126);
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        n = 4;
    } else {
        out[1] = (uint8_t)(mask_bit | 127);
        for (size_t i = 0; i < 8; i++) {
            out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
        }
        n = 10;
    }
    if (mask_key != NULL) {
        memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

void wsb_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint64_t offset)
{
    /* k64 holds the key rotated so that its first byte in memory applies to
     * data[0], repeated twice; it is built in a register, not through a byte
     * array, because eight byte stores followed by one 64-bit load stall on
     * store forwarding, which cost more than the XOR itself on short frames. */
    unsigned rot = (unsigned)(offset & 3u) * 8u;
    uint32_t k32;
    size_t i = 0;

    memcpy(&k32, key, sizeof(k32));
    if (rot != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        k32 = k32 << rot | k32 >> (32u - rot);
#else
        k32 = k32 >> rot | k32 << (32u - rot);
#endif
    }
    uint64_t k64 = (uint64_t)k32 << 32 | k32;

    for (; len - i >= 32; i += 32) {
        uint64_t w[4];
        memcpy(w, data + i, sizeof(w));
        w[0] ^= k64;
        w[1] ^= k64;
        w[2] ^= k64;
        w[3] ^= k64;
        memcpy(data + i, w, sizeof(w));
    }
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, sizeof(w));
        w ^= k64;
        memcpy(data + i, &w, sizeof(w));
    }
    if (len - i >= 4) {
        /* i is a multiple of 8 here, so the key phase is that of data[0]. */
        uint32_t w;
        memcpy(&w, data + i, sizeof(w));
        w ^= k32;
        memcpy(data + i, &w, sizeof(w));
        i += 4;
    }
    for (; i < len; i++) {
        data[i] ^= key[(offset + i) & 3u];
    }
}

int wsb_ws_random_mask(uint8_t key[4])
{
    return RAND_bytes(key, 4) == 1 ? 0 : WSB_EINVAL;
}

int wsb_ws_build_frame(uint8_t *out, size_t cap, bool fin, int opcode, const uint8_t *payload,
                       size_t len, const uint8_t *mask_key)
{
    size_t hlen = wsb_ws_header_len(len, mask_key != NULL);

    if (len > cap || cap - len < hlen || hlen + len > (size_t)INT_MAX) {
        return WSB_ENOSPC;
    }
    /* memmove: the caller may have placed the payload in `out` already. */
    if (len > 0) {
        memmove(out + hlen, payload, len);
    }
    wsb_ws_write_header(out, fin, opcode, len, mask_key);
    if (mask_key != NULL) {
        wsb_ws_mask(out + hlen, len, mask_key, 0);
    }
    return (int)(hlen + len);
}

size_t wsb_ws_close_payload(uint8_t out[WSB_WS_MAX_CONTROL_PAYLOAD], int code, const char *reason)
{
    const size_t room = WSB_WS_MAX_CONTROL_PAYLOAD - 2;
    size_t keep = 0;
    wsb_utf8_t v;

    if (code == 0) {
        return 0;
    }
    out[0] = (uint8_t)((unsigned)code >> 8);
    out[1] = (uint8_t)code;
    if (reason == NULL) {
        return 2;
    }
    /* Keep the longest prefix of at most `room` bytes that ends on a code
     * point boundary; bytes that are not UTF-8 end the reason there, so the
     * peer never receives a close frame it must reject with 1007. */
    wsb_utf8_init(&v);
    for (size_t i = 0; i < room && reason[i] != '\0'; i++) {
        if (wsb_utf8_feed(&v, (const uint8_t *)reason + i, 1) != 0) {
            break;
        }
        if (wsb_utf8_complete(&v)) {
            keep = i + 1;
        }
    }
    memcpy(out + 2, reason, keep);
    return 2 + keep;
}

bool wsb_ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}
