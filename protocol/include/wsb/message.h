/*
 * message.h - wire protocol v1: JSON messages in WebSocket text frames.
 *
 * Parsing: wsb_msg_parse() turns one client text message into a typed
 * wsb_msg_t or a stable error code (the strings in WSB_ERR_*, listed in
 * protocol/PROTOCOL.md). No tree is built (protocol/json_scan.h validates
 * in one pass): a parsed message's slices, `data` included, borrow from the
 * input (or, for a string with escapes, from a decoded copy the message
 * owns) and stay valid while the input is and until wsb_msg_free().
 *
 * Building: every server frame is built as ONE complete, unmasked WebSocket
 * text frame (header + JSON) in one malloc'd buffer that starts with
 * `headroom` bytes the caller may use for its own header (the broker keeps a
 * refcount there; they are left uninitialised). The frame itself starts at
 * buf + headroom; free(buf) releases it. A `message` frame is identical for
 * every subscriber, so the broker builds it once per publish and shares it.
 * Frames use the minimal length encoding (2, 4 or 10 header bytes) and are
 * always valid UTF-8: strings are JSON-escaped, and a byte that is not valid
 * UTF-8 in a string argument is written as U+FFFD.
 */
#ifndef WSB_MESSAGE_H
#define WSB_MESSAGE_H

#include "wsb/common.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSB_PROTOCOL_VERSION 1

/* Largest "history" a subscribe may ask for (the broker also caps it by what
 * the topic keeps). */
#define WSB_MAX_HISTORY 1000000

/* request: "timeout_ms" when absent, and the largest accepted. */
#define WSB_REQUEST_TIMEOUT_DEFAULT_MS 5000
#define WSB_REQUEST_TIMEOUT_MAX_MS     60000

/* Stable error codes (the "code" field of an error reply). */
#define WSB_ERR_BAD_JSON       "bad_json"       /* not JSON, or not a JSON object */
#define WSB_ERR_BAD_TYPE       "bad_type"       /* "type" missing, not a string, or unknown */
#define WSB_ERR_MISSING_FIELD  "missing_field"  /* a required field is absent */
#define WSB_ERR_BAD_FIELD      "bad_field"      /* a field has the wrong JSON type or range */
#define WSB_ERR_BAD_TOPIC      "bad_topic"      /* topic/pattern breaks the grammar or limits */
#define WSB_ERR_BAD_SINCE      "bad_since"      /* malformed "since", or since on a pattern */
#define WSB_ERR_FORBIDDEN      "forbidden"      /* e.g. publishing to a reserved "$" topic */
#define WSB_ERR_TOO_LARGE      "too_large"      /* over a size limit */
#define WSB_ERR_LIMIT          "limit_exceeded" /* e.g. too many subscriptions */
#define WSB_ERR_NOT_SUBSCRIBED "not_subscribed"
#define WSB_ERR_RATE_LIMITED   "rate_limited"
#define WSB_ERR_INTERNAL       "internal"
#define WSB_ERR_UNAVAILABLE    "unavailable"   /* clustered history topic while Redis is down */
#define WSB_ERR_UNAUTHORIZED   "unauthorized"  /* auth: token refused, or not authenticated yet */
#define WSB_ERR_NOT_AVAILABLE  "not_available" /* presence asked on a topic without presence */
#define WSB_ERR_NO_RESPONDERS  "no_responders" /* request: nobody subscribes to the topic */
#define WSB_ERR_TIMEOUT        "timeout"       /* request: no reply within timeout_ms */

typedef enum {
    WSB_MSG_SUBSCRIBE = 1,
    WSB_MSG_UNSUBSCRIBE,
    WSB_MSG_PUBLISH,
    WSB_MSG_PING,
    WSB_MSG_AUTH,
    WSB_MSG_PRESENCE,       /* who is subscribed to an exact topic */
    WSB_MSG_PRESENCE_STATS, /* how many */
    WSB_MSG_REQUEST         /* publish expecting one reply (request/reply) */
} wsb_msg_type_t;

typedef struct {
    wsb_msg_type_t type;
    bool has_id;
    int64_t id;      /* 0 .. 2^53-1 (a JSON integer safe in JavaScript) */
    wsb_str_t topic; /* subscribe/unsubscribe: a pattern; publish: an exact topic */
    wsb_str_t data;  /* publish/request: the payload, the bytes of one JSON value as
                      * sent (null too), validated; {NULL,0} otherwise */
    bool has_since;  /* subscribe: "since":{"epoch":"…","seq":N} */
    wsb_str_t since_epoch;
    uint64_t since_seq;
    wsb_str_t token;  /* auth only: the JWT, 1..8192 bytes */
    bool has_history; /* subscribe: "history":N, the last N messages of an exact topic */
    uint32_t history;
    uint32_t timeout_ms; /* request: 1..WSB_REQUEST_TIMEOUT_MAX_MS, default set */
    char *strings;       /* private: decoded escaped strings, owned */
    size_t strings_used; /* private */
} wsb_msg_t;

typedef struct {
    const char *code;  /* one of WSB_ERR_* */
    char message[160]; /* human text naming the field and the rule */
    bool has_id;       /* the request's id, when it could be read, so the */
    int64_t id;        /* error reply can echo it */
} wsb_msg_error_t;

/*
 * Parses one client message (`len` bytes of UTF-8 JSON, the text frame's
 * payload). Rules: a JSON object; "type" one of subscribe, unsubscribe,
 * publish, request, ping, auth, presence, presence_stats; request is
 * checked as publish, plus "timeout_ms" (optional integer
 * 1..WSB_REQUEST_TIMEOUT_MAX_MS, else bad_field; default
 * WSB_REQUEST_TIMEOUT_DEFAULT_MS); "id" optional non-negative integer <= 2^53-1;
 * subscribe and unsubscribe need "topic" (a valid pattern); publish needs "topic" (a valid exact
 * topic, not reserved -> forbidden) and "data" (any value, null too); presence and presence_stats
 * need "topic" (a valid exact topic); "since" only on subscribe, an object with string "epoch"
 * (1..64 bytes) and integer "seq" >= 0, and only for an exact topic (else bad_since; "since" on
 * unsubscribe or publish is bad_since too). "history" only on subscribe
 * (else bad_since), an integer 0..WSB_MAX_HISTORY (else bad_field), on a
 * topic or a pattern, not together with "since" (else bad_since). ping ignores every field but
 * "type" and "id". auth needs "token" (a string of 1..8192 bytes; else
 * missing_field / bad_field). Unknown fields are ignored for forward compatibility.
 * Duplicate keys anywhere are bad_json (as jansson's JSON_REJECT_DUPLICATES), as are
 * NaN/Infinity, integers beyond int64, reals that overflow a double, nesting
 * deeper than 2048 and trailing bytes after the value (json_scan.h).
 * Rules are checked in this order and the first failure is reported: JSON
 * syntax, object, "id", "type", "topic", "data", "since"; once "id" is read,
 * err->has_id/id carry it for the error reply.
 * Returns 0 (fill *out, release with wsb_msg_free), WSB_EINVAL (fill *err;
 * *out needs no free) or WSB_ENOMEM (err->code is "internal"; no free).
 */
int wsb_msg_parse(const char *json, size_t len, wsb_msg_t *out, wsb_msg_error_t *err);
void wsb_msg_free(wsb_msg_t *m); /* NULL-safe; zeroes *m */

/* The wire name of a type ("subscribe", ...). */
const char *wsb_msg_type_name(wsb_msg_type_t t);

/*
 * Builds the shared `message` frame:
 *   {"type":"message","topic":T,"seq":N[,"epoch":E],"data":D}
 * `data_json` must be one serialized JSON value (the broker serializes the
 * publish's data once); it is copied verbatim, not validated; an empty slice
 * is written as null. `topic` and `epoch` are JSON-escaped; an empty `epoch`
 * ({NULL,0}) omits the field. No jansson, one malloc. Returns the buffer (see
 * header comment) and sets *frame_len (header + JSON, without headroom), or
 * NULL on ENOMEM or size_t overflow.
 */
uint8_t *wsb_msg_build_message(wsb_str_t topic, uint64_t seq, wsb_str_t epoch, wsb_str_t data_json,
                               size_t headroom, size_t *frame_len);

/*
 * The same with the publisher's identity (PROTOCOL.md 4.2, topic rules with
 * "publisher"): {"type":"message","topic":T,"seq":N[,"epoch":E],"from":F,"data":D}.
 * `from_json` is one serialized JSON value copied verbatim (the broker
 * builds it); an empty slice omits the field. `data` stays the last field.
 */
uint8_t *wsb_msg_build_message_from(wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                                    wsb_str_t from_json, wsb_str_t data_json, size_t headroom,
                                    size_t *frame_len);

/* The same for a request (request/reply): "reply_to":R (a broker-made
 * inbox topic, empty: omitted) after "from", before "data". */
uint8_t *wsb_msg_build_request_message(wsb_str_t topic, uint64_t seq, wsb_str_t epoch,
                                       wsb_str_t from_json, wsb_str_t reply_to, wsb_str_t data_json,
                                       size_t headroom, size_t *frame_len);

/* Serializes a JSON value compactly (what `data_json` above expects) into an
 * exactly sized malloc'd buffer, NOT NUL-terminated; *len gets its length.
 * Reals use jansson's 17 significant digits (0.1 -> 0.10000000000000001,
 * the same double). NULL on ENOMEM or if `v` is NULL. Caller frees. */
char *wsb_msg_dump_value(const json_t *v, size_t *len);

typedef struct {
    int64_t id;
    bool has_seq; /* publish ack: the message's seq */
    uint64_t seq;
    int recovered;    /* subscribe ack with since: 0/1; -1 omits the field */
    wsb_str_t epoch;  /* subscribe ack on a topic with history; empty omits it */
    wsb_str_t stream; /* subscribe ack inside a stream: its rule's pattern; empty omits it */
} wsb_ack_t;

/* {"type":"ack","id":N[,"seq":S][,"epoch":E][,"stream":P][,"recovered":true|false]};
 * recovered > 0 is true. NULL on ENOMEM. */
uint8_t *wsb_msg_build_ack(const wsb_ack_t *ack, size_t headroom, size_t *frame_len);

/* {"type":"error"[,"id":N],"code":C,"message":M}; NULL code -> "internal",
 * NULL message -> "". NULL on ENOMEM. */
uint8_t *wsb_msg_build_error(bool has_id, int64_t id, const char *code, const char *message,
                             size_t headroom, size_t *frame_len);

/* {"type":"gap","topic":T,"epoch":E,"seq":S}: messages of topic T after
 * seq S were dropped for this connection (slow consumer); recover with
 * since {E,S}. NULL on ENOMEM. */
uint8_t *wsb_msg_build_gap(wsb_str_t topic, wsb_str_t epoch, uint64_t seq, size_t headroom,
                           size_t *frame_len);

typedef struct {
    wsb_str_t topic;  /* the topic, or (stream) the subscription's topic or pattern */
    wsb_str_t stream; /* the stream's rule pattern; empty omits it */
    wsb_str_t epoch;
    uint64_t seq; /* messages after it are lost / dropped */
    bool has_to;  /* the loss ends at `to` (a trimmed stream recovery) */
    uint64_t to;
} wsb_gap_t;

/* {"type":"gap","topic":T[,"stream":P],"epoch":E,"seq":S[,"to":U]}
 * (PROTOCOL.md 4.6). NULL on ENOMEM. */
uint8_t *wsb_msg_build_gap_ex(const wsb_gap_t *gap, size_t headroom, size_t *frame_len);

/* {"type":"pong"[,"id":N]}. NULL on ENOMEM. */
uint8_t *wsb_msg_build_pong(bool has_id, int64_t id, size_t headroom, size_t *frame_len);

typedef struct {
    const char *client_id;
    wsb_str_t user; /* the token's sub; {NULL,0} writes null */
    const char *node_id;
    const char *version;        /* server version string */
    uint64_t max_message_size;  /* bytes */
    uint32_t max_subscriptions; /* per connection */
    uint32_t ping_interval_ms;  /* server keepalive period, 0 = off */
} wsb_welcome_t;

/* {"type":"welcome","protocol":1,"client_id":…,"user":…|null,"node_id":…,"version":…,
 *  "limits":{"max_message_size":…,"max_subscriptions":…,"ping_interval_ms":…}}
 * A NULL string is written as "". NULL on ENOMEM. */
uint8_t *wsb_msg_build_welcome(const wsb_welcome_t *w, size_t headroom, size_t *frame_len);

/* Wraps an arbitrary JSON value in a text frame (for replies added later),
 * serialized with JSON_COMPACT | JSON_ENCODE_ANY. NULL on ENOMEM or NULL obj. */
uint8_t *wsb_msg_build_json(const json_t *obj, size_t headroom, size_t *frame_len);

#endif
