/*
 * router.h - publish path: validate, assign the per-topic seq, serialize the
 * `message` frame once, and queue it to every matching session.
 *
 * Sequence numbers: each topic has a counter that starts at 1 and increases
 * by one per accepted publish on this node. The table is bounded
 * (ROUTER_MAX_TOPICS entries, least recently published evicted first), so a
 * topic idle long enough to be evicted starts again at 1; the history
 * feature adds epochs so clients can tell.
 */
#ifndef WSB_BROKER_ROUTER_H
#define WSB_BROKER_ROUTER_H

#include "wsb/common.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct server_s server_t;
typedef struct router_s router_t;

#define ROUTER_MAX_TOPICS 65536

router_t *router_new(server_t *s);
void router_free(router_t *r);

/*
 * Publishes `data` (any JSON value) to the valid, non-reserved exact topic.
 * Sets *seq. Returns the number of sessions the message was queued to.
 */
size_t router_publish(router_t *r, wsb_str_t topic, const json_t *data, uint64_t *seq);

/* Number of topics in the sequence table (gauge). */
size_t router_topic_count(const router_t *r);

#endif
