/*
 * sys_events.h - messages the broker itself publishes on reserved `$sys`
 * topics (PROTOCOL.md "$sys topics"):
 *
 *   $sys.node.<id>.stats     the node's statistics (app/sys_stats.c, every
 *                            sys.stats_interval)
 *   $sys.conn.connect        {"client","user","node"} when a WebSocket
 *   $sys.conn.disconnect     session starts / ends (sys.conn_events)
 *
 * They go through the one publish path (pubsub.h) like any message: local
 * fan-out, history when a rule keeps it, and the Redis bridge, so a
 * subscriber on any node sees every node's events. Clients cannot publish to
 * `$` topics (the ingresses refuse them); the broker's own publishes carry no
 * credentials and are not counted as published messages (they would inflate
 * the rates they report). Runs on the calling worker's thread; never inside
 * a fan-out walk.
 */
#ifndef WSB_BROKER_CORE_SYS_EVENTS_H
#define WSB_BROKER_CORE_SYS_EVENTS_H

#include "wsb/common.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct worker_s worker_t;

/* Publishes `data` (borrowed) to the reserved `topic` (NUL-terminated) as
 * the broker. A topic under a clustered history rule is not published (the
 * broker has no session to wait for Redis's seq): returns false then. */
bool sys_publish(worker_t *w, const char *topic, const json_t *data);

/* Publishes $sys.conn.connect (connect true) or $sys.conn.disconnect with
 * {"client":client,"user":user or null,"node":<node id>}, unless
 * sys.conn_events is off. `user` may be {NULL,0}. */
void sys_conn_event(worker_t *w, bool connect, const char *client, wsb_str_t user);

#endif
