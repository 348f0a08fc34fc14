/*
 * resp_session.h - the RESP ingress: a listener that speaks RESP2 so that
 * any Redis client can publish into the broker and subscribe to it (off
 * unless resp.port is set).
 *
 * It runs on worker 0's loop (one listening socket; RESP is for backend
 * services, not for fan-out to many clients). A RESP subscriber is a trie
 * subscriber (subscriber.h) of worker 0 like a WebSocket session, so it receives what is published
 * on any worker or, through the Redis bridge, any node.
 *
 * Commands: PUBLISH, PING, ECHO, AUTH, HELLO [2], QUIT, RESET, SELECT 0,
 * CLIENT (SETNAME/SETINFO accepted), COMMAND (COUNT, DOCS, INFO, the list),
 * SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE. Errors are RESP error
 * lines; a protocol error is answered and the connection closed (the stream
 * cannot be resynchronised), as Redis does.
 *
 * Bounds: a request at most max_message_size + 64 KiB, a bulk string at most
 * max_message_size, 1024 arguments, inline lines 64 KiB; unsent output at
 * most max_outbound_bytes: a subscriber beyond it is disconnected (slow
 * consumer), a client whose replies pile up stops being read until it reads.
 *
 * Ownership: the listener belongs to worker 0 (worker_t.resp); connections
 * are freed in their close callbacks.
 */
#ifndef WSB_BROKER_RESP_SESSION_H
#define WSB_BROKER_RESP_SESSION_H

#include "core/topic_trie.h"
#include "core/xmsg.h"

#include <stdbool.h>

typedef struct worker_s worker_t;
typedef struct resp_listener_s resp_listener_t;

/* Binds resp.host:resp.port on worker `s`'s loop, logs
 * "msg=listening proto=resp addr=..." and writes resp.port_file. Returns 0,
 * or -1 after logging why. Main thread, before the loop runs. */
int resp_listener_start(worker_t *s);

/* Stops accepting; every RESP connection stops being read and loses its
 * subscriptions, gets what is queued for it written, then is closed (the
 * server's drain waits for them, bounded by shutdown_timeout). Idempotent. */
void resp_listener_shutdown(worker_t *s);

/* Closes every RESP connection now, written or not (shutdown timeout). */
void resp_listener_close_all(worker_t *s);

/* Frees the listener after its loop ended. */
void resp_listener_free(worker_t *s);

/* Writes what RESP connections queued this loop turn (the server's flush). */
void resp_flush_dirty(worker_t *s);

/* True while some RESP publisher is paused for inbox pressure. */
bool resp_publishers_paused(const worker_t *s);

/* Resumes the RESP publishers paused for inbox pressure (worker.c's pressure
 * timer, once every inbox is back under its low mark). */
void resp_resume_publishers(worker_t *s);

/* Open RESP connections (a gauge). */
size_t resp_connection_count(const worker_t *s);

#endif
