/* bridge_sub.c - the bridge's subscriber connection to Redis (see bridge_sub.h). */
#include "cluster/bridge_sub.h"

#include "shared/util.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct bridge_sub_s {
    uv_poll_t poll; /* on the context's socket; freed in its close callback */
    redisContext *c;
    bridge_sub_cb_t cb;
    void *user_data;
    bool connected;
    bool want_write; /* commands not yet written */
    bool closing;
};

static void on_poll(uv_poll_t *p, int status, int events);

static void on_poll_closed(uv_handle_t *h)
{
    bridge_sub_t *bs = h->data;
    redisFree(bs->c); /* closes the socket, now that libuv no longer polls it */
    free(bs);
}

void bridge_sub_close(bridge_sub_t *bs)
{
    if (bs->closing) {
        return;
    }
    bs->closing = true;
    uv_close((uv_handle_t *)&bs->poll, on_poll_closed);
}

/* The connection broke: tell the owner once, then close. */
static void fail(bridge_sub_t *bs, const char *why)
{
    if (bs->closing) {
        return;
    }
    bs->cb.on_closed(bs, why, bs->user_data);
    bridge_sub_close(bs);
}

static void update_poll(bridge_sub_t *bs)
{
    if (bs->closing) {
        return;
    }
    int events = UV_READABLE | (bs->want_write || !bs->connected ? UV_WRITABLE : 0);
    if (uv_poll_start(&bs->poll, events, on_poll) != 0) {
        fail(bs, "cannot poll the socket");
    }
}

static void handle_writable(bridge_sub_t *bs)
{
    if (!bs->connected) {
        /* A non-blocking connect completed: its outcome is SO_ERROR. */
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(bs->c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
            soerr = errno;
        }
        if (soerr != 0) {
            fail(bs, strerror(soerr));
            return;
        }
        bs->connected = true;
        bs->cb.on_connected(bs, bs->user_data);
        if (bs->closing) {
            return;
        }
    }
    if (bs->want_write) {
        int done = 0;
        if (redisBufferWrite(bs->c, &done) != REDIS_OK) {
            fail(bs, bs->c->errstr);
            return;
        }
        bs->want_write = done == 0;
    }
    update_poll(bs);
}

static void handle_readable(bridge_sub_t *bs)
{
    if (redisBufferRead(bs->c) != REDIS_OK) {
        fail(bs, bs->c->errstr); /* "Server closed the connection" on EOF */
        return;
    }
    /* Every complete reply the read brought, in order; a partial one waits
     * in the reader for the next read. */
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(bs->c, &reply) != REDIS_OK) {
            fail(bs, bs->c->errstr); /* a protocol error: the stream is lost */
            return;
        }
        if (reply == NULL) {
            break;
        }
        bs->cb.on_reply(bs, reply, bs->user_data);
        freeReplyObject(reply);
        if (bs->closing) {
            return;
        }
    }
}

/* What a poll error means. libuv reports POLLERR (a refused connect, a
 * reset) as UV_EBADF although the socket is fine: its pending error says
 * what happened. */
static const char *poll_error(int fd, int status)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0) {
        return strerror(soerr);
    }
    return uv_strerror(status);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    bridge_sub_t *bs = p->data;
    if (bs->closing) {
        return;
    }
    if (status < 0) {
        fail(bs, poll_error(bs->c->fd, status));
        return;
    }
    if (events & UV_WRITABLE) {
        handle_writable(bs);
    }
    if ((events & UV_READABLE) && !bs->closing && bs->connected) {
        handle_readable(bs);
    }
}

bridge_sub_t *bridge_sub_connect(uv_loop_t *loop, const char *host, unsigned port,
                                 const bridge_sub_cb_t *cb, void *user_data, char *err,
                                 size_t errlen)
{
    redisContext *c = redisConnectNonBlock(host, (int)port);
    if (c == NULL || c->err) {
        (void)snprintf(err, errlen, "%s", c != NULL ? c->errstr : "out of memory");
        if (c != NULL) {
            redisFree(c);
        }
        return NULL;
    }
    bridge_sub_t *bs = xcalloc(1, sizeof(*bs));
    bs->c = c;
    bs->cb = *cb;
    bs->user_data = user_data;
    if (uv_poll_init(loop, &bs->poll, c->fd) != 0) {
        (void)snprintf(err, errlen, "cannot poll the socket");
        redisFree(c);
        free(bs);
        return NULL;
    }
    bs->poll.data = bs;
    update_poll(bs); /* writable once the connect completed (or failed) */
    return bs;
}

void bridge_sub_command(bridge_sub_t *bs, int argc, const char **argv, const size_t *argvlen)
{
    if (bs->closing) {
        return;
    }
    if (redisAppendCommandArgv(bs->c, argc, argv, argvlen) != REDIS_OK) {
        wsb_oom("redis command"); /* hiredis fails here on ENOMEM only */
    }
    if (!bs->want_write) {
        bs->want_write = true;
        update_poll(bs);
    }
}

/* ---- the publisher's hiredis async context under libuv ---------------------------------- */

/* hiredis's event hooks for one async context; freed in the poll handle's
 * close callback, which may run after the context is gone. */
typedef struct {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    int events;
} async_poll_t;

static void on_async_poll(uv_poll_t *p, int status, int events)
{
    async_poll_t *ap = p->data;
    if (ap->ac == NULL) {
        return;
    }
    if (status < 0) {
        /* POLLERR: libuv stopped the handle and says UV_EBADF. hiredis 0.14's
         * own adapter returns here, so a reset connection was never seen and
         * its pending commands never answered. A read surfaces the socket's
         * error through hiredis (its connect check while connecting), which
         * then disconnects and fails every pending callback. If the read still
         * found data queued before the error, polling goes on for the rest. */
        redisAsyncHandleRead(ap->ac);
        if (ap->ac != NULL && ap->events != 0) {
            (void)uv_poll_start(&ap->poll, ap->events, on_async_poll);
        }
        return;
    }
    if (events & UV_READABLE) {
        redisAsyncHandleRead(ap->ac);
    }
    if (ap->ac != NULL && (events & UV_WRITABLE)) {
        redisAsyncHandleWrite(ap->ac);
    }
}

static void async_set_events(async_poll_t *ap, int events)
{
    ap->events = events;
    if (events != 0) {
        (void)uv_poll_start(&ap->poll, events, on_async_poll);
    } else {
        (void)uv_poll_stop(&ap->poll);
    }
}

/* hiredis's four watch hooks (addRead, delRead, addWrite, delWrite) take only
 * the context's data, so each is its own function; one body makes them: watch
 * (`add`) or stop watching `event`. */
#define ASYNC_WATCH_HOOK(name, event, add)                                                         \
    static void name(void *privdata)                                                               \
    {                                                                                              \
        async_poll_t *ap = privdata;                                                               \
        async_set_events(ap, (add) ? ap->events | (event) : ap->events & ~(event));                \
    }

ASYNC_WATCH_HOOK(async_add_read, UV_READABLE, true)
ASYNC_WATCH_HOOK(async_del_read, UV_READABLE, false)
ASYNC_WATCH_HOOK(async_add_write, UV_WRITABLE, true)
ASYNC_WATCH_HOOK(async_del_write, UV_WRITABLE, false)

static void on_async_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

/* hiredis frees the context: the socket is closed right after this returns,
 * so the handle stops polling now (uv_close does) and is freed later. */
static void async_cleanup(void *privdata)
{
    async_poll_t *ap = privdata;
    ap->ac = NULL;
    uv_close((uv_handle_t *)&ap->poll, on_async_poll_closed);
}

int bridge_sub_attach_async(struct redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL) {
        return -1;
    }
    async_poll_t *ap = xcalloc(1, sizeof(*ap));
    if (uv_poll_init(loop, &ap->poll, ac->c.fd) != 0) {
        free(ap);
        return -1;
    }
    ap->poll.data = ap;
    ap->ac = ac;
    ac->ev.data = ap;
    ac->ev.addRead = async_add_read;
    ac->ev.delRead = async_del_read;
    ac->ev.addWrite = async_add_write;
    ac->ev.delWrite = async_del_write;
    ac->ev.cleanup = async_cleanup;
    return 0;
}
