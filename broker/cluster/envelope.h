/*
 * envelope.h - the federation envelope: the one format in which a message
 * travels between nodes through Redis, encoded and decoded here only.
 *
 *   {"v":1,"node":N,"topic":T[,"from":F][,"reply_to":R],"seq":S,"data":D}
 *       a local publish (bridge_publish): S is the origin node's seq; R,
 *       a request's inbox (core/inbox.h), makes it a request.
 *   {"v":1,"node":N,"topic":T[,"from":F],"epoch":E,"seq":S,"data":D}
 *       a clustered history publish: the publish script (chist_redis.h)
 *       appends E, S (both Redis's) and D to envelope_head_clustered().
 *
 * N and T are JSON-escaped, D is the publish's serialized JSON value, F the
 * publisher's identity {"client","user"} the origin stamped under a
 * "publisher" topic rule (absent otherwise), serialized by the core. The
 * decoder takes any bytes (they come from Redis, where anyone with access
 * may publish): it refuses what is not a JSON object with a string node, a
 * valid exact topic, a non-negative integer seq and a data member; a "from"
 * that is not an object is dropped, and so is a "reply_to" that is not an
 * inbox name (a string that is a valid exact topic whose first token is
 * "_inbox"): the message is then delivered as a plain publish.
 */
#ifndef WSB_BROKER_ENVELOPE_H
#define WSB_BROKER_ENVELOPE_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes envelope_encode() needs at most, and envelope_head_clustered(),
 * the NUL included (from_len: 0 without a "from"). */
size_t envelope_encoded_max(size_t node_len, size_t topic_len, size_t from_len, size_t reply_len,
                            size_t data_len);
size_t envelope_head_max(size_t node_len, size_t topic_len, size_t from_len);

/* Writes the envelope of a local publish into `out` (room for
 * envelope_encoded_max() bytes), NUL-terminated; returns its length.
 * `from_json` (serialized object, copied verbatim) is the "from"; empty:
 * none. `reply_to` (an inbox topic) is the "reply_to"; empty: none. */
size_t envelope_encode(char *out, const char *node_id, wsb_str_t topic, uint64_t seq,
                       wsb_str_t from_json, wsb_str_t reply_to, wsb_str_t data_json);

/* Writes {"v":1,"node":N,"topic":T[,"from":F],"epoch":" into `out` (room
 * for envelope_head_max() bytes), NUL-terminated; returns its length. */
size_t envelope_head_clustered(char *out, const char *node_id, wsb_str_t topic,
                               wsb_str_t from_json);

/* A decoded envelope. The views point into the decoder's JSON tree and are
 * valid until envelope_clear(); data_json is owned by it too. */
typedef struct envelope_s {
    wsb_str_t node;
    wsb_str_t topic; /* a valid exact topic */
    uint64_t seq;
    wsb_str_t epoch;    /* WSB_STR_NULL unless a string of 1..XMSG_EPOCH_MAX bytes */
    wsb_str_t reply_to; /* WSB_STR_NULL unless an inbox topic */
    char *data_json;    /* the data re-serialized the way a local publish does */
    size_t data_len;
    char *from_json; /* "from" re-serialized when an object, else NULL (owned) */
    size_t from_len;
    void *root; /* json_t */
} envelope_t;

/* Decodes `len` bytes at `p`. 0 with *out filled (release it with
 * envelope_clear()), or -1 with nothing to release: not JSON, duplicate
 * keys, a member missing or of the wrong type, a negative seq, an invalid
 * topic. Aborts on OOM. */
int envelope_decode(const char *p, size_t len, envelope_t *out);

void envelope_clear(envelope_t *e);

#endif
