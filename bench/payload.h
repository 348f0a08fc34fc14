/*
 * payload.h - what wsbench puts in a message and how it finds it again.
 *
 * The data of every published message is a JSON string of a fixed format,
 * "t=<13 decimal digits>;" followed by 'x' up to the payload size, where the
 * digits are the send time in nanoseconds of the monotonic clock (relative to
 * the run's start, so 13 digits last 2.7 hours). Subscribers find it with a
 * substring search in the first bytes of the broker's frame, without a JSON
 * parse: the broker writes "data" after "type", "topic" and "seq", so the
 * timestamp sits within the first ~80 bytes whatever the payload size.
 *
 * Everything here is pure: no allocation, no clock, no I/O.
 */
#ifndef WSB_BENCH_PAYLOAD_H
#define WSB_BENCH_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#define PAYLOAD_TS_DIGITS 13
#define PAYLOAD_MIN       16 /* "t=" + 13 digits + ";" */
#define PAYLOAD_TS_MAX    UINT64_C(9999999999999)

/* Results of the find functions. */
#define PAYLOAD_FOUND     1
#define PAYLOAD_NEED_MORE 0    /* the bytes so far end before the field does */
#define PAYLOAD_BAD       (-1) /* the field is there but malformed */

/* The server messages wsbench tells apart, by their "type". */
typedef enum {
    KIND_NEED_MORE = 0, /* fewer bytes than the type needs */
    KIND_MESSAGE,
    KIND_ACK,
    KIND_ERROR,
    KIND_WELCOME,
    KIND_PONG,
    KIND_JOIN,  /* join_leave topics: a member subscribed */
    KIND_LEAVE, /* ... or left */
    KIND_OTHER
} msg_kind_t;

/* Upper bound of payload_publish_json's output for these sizes. */
size_t payload_publish_max(size_t topic_len, uint32_t payload_len);

/*
 * Writes {"type":"publish","topic":T,"data":"t=…;xx…","id":ID} into `out`
 * (the topic is copied as is: the caller has checked it needs no escaping).
 * `payload_len` >= PAYLOAD_MIN; t_ns is clamped to PAYLOAD_TS_MAX. Returns
 * the length, or 0 when `cap` is too small.
 */
size_t payload_publish_json(char *out, size_t cap, const char *topic, size_t topic_len,
                            uint32_t payload_len, uint64_t t_ns, uint64_t id);

/* Classifies a server message by the start of its JSON text. */
msg_kind_t payload_kind(const uint8_t *json, size_t len);

/* Finds the send time in a delivered message (the first `len` bytes of it). */
int payload_find_time(const uint8_t *json, size_t len, uint64_t *t_ns);

/* Finds the integer "id" of an ack or error (the first `len` bytes of it). */
int payload_find_id(const uint8_t *json, size_t len, uint64_t *id);

#endif
