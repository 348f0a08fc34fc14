/*
 * bridge_sub.h - the Redis bridge's subscriber connection: hiredis's
 * non-blocking context (connect, command buffer, RESP reader) under a
 * uv_poll_t of ours, with every reply handed to one callback in arrival
 * order.
 *
 * Why not hiredis's async API: 0.14 routes a subscribed connection's replies
 * by command name and knows only SUBSCRIBE and PSUBSCRIBE. A sharded
 * subscription (SSUBSCRIBE, Redis 7) is filed as an ordinary command, so its
 * "smessage" pushes are taken as the reply of whatever command is pending,
 * dropped when none is, or trip an assert when the connection has no classic
 * subscription. Every reply on this connection is a push or a confirmation
 * the bridge recognises by its first element, so it needs no routing at all.
 *
 * Part of the bridge (bridge_redis.c): the only other file that sees hiredis.
 * One loop (the bridge thread's); not thread-safe.
 *
 * It also drives the publishing connection's hiredis async context
 * (bridge_sub_attach_async below).
 *
 * Lifetime: bridge_sub_connect() -> callbacks -> bridge_sub_close(). After
 * on_closed, or after bridge_sub_close() returns, no callback runs again and
 * the handle must not be used; it is freed once libuv closed its poll handle.
 */
#ifndef WSB_BROKER_BRIDGE_SUB_H
#define WSB_BROKER_BRIDGE_SUB_H

#include <stddef.h>
#include <uv.h>

typedef struct bridge_sub_s bridge_sub_t;
struct redisReply;

typedef struct {
    /* The TCP connection is up. */
    void (*on_connected)(bridge_sub_t *bs, void *user_data);
    /* A reply or push, valid until the callback returns. The callback may
     * queue commands and may call bridge_sub_close(). */
    void (*on_reply)(bridge_sub_t *bs, const struct redisReply *reply, void *user_data);
    /* Connecting failed or the connection was lost (`why` says which). Not
     * called after bridge_sub_close(). */
    void (*on_closed)(bridge_sub_t *bs, const char *why, void *user_data);
} bridge_sub_cb_t;

/* Starts connecting to host:port (resolved here, blocking, as hiredis does)
 * on `loop`. Returns the connection, or NULL with the reason in `err`.
 * Owner: the caller, released with bridge_sub_close(). Aborts on OOM. */
bridge_sub_t *bridge_sub_connect(uv_loop_t *loop, const char *host, unsigned port,
                                 const bridge_sub_cb_t *cb, void *user_data, char *err,
                                 size_t errlen);

/* Queues one command (sent once connected). Never fails: a connection that
 * breaks reports it through on_closed. */
void bridge_sub_command(bridge_sub_t *bs, int argc, const char **argv, const size_t *argvlen);

/* Closes the connection; no callback runs afterwards. Safe inside callbacks. */
void bridge_sub_close(bridge_sub_t *bs);

struct redisAsyncContext;

/* Attaches a hiredis async context (the bridge's publishing connection) to
 * `loop`, in place of hiredis 0.14's libuv adapter, which ignores poll
 * errors: libuv reports a reset connection or a refused connect as a poll
 * error (and stops polling), so through that adapter the context never
 * learned that its connection was gone, and the replies it waited for never
 * came. Here a poll error is read through hiredis, which then disconnects
 * (the disconnect or connect callback runs; pending callbacks get NULL).
 * Returns 0, or -1 when the context already has an event library or its
 * socket cannot be polled (the caller frees the context). The attachment is
 * released by hiredis when it frees the context. Aborts on OOM. */
int bridge_sub_attach_async(struct redisAsyncContext *ac, uv_loop_t *loop);

#endif
