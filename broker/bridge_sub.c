/* bridge_sub.c - the bridge's subscriber connection to Redis (see bridge_sub.h). */
#include "bridge_sub.h"

#include "util.h"

#include <errno.h>
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

static void on_poll(uv_poll_t *p, int status, int events)
{
    bridge_sub_t *bs = p->data;
    if (bs->closing) {
        return;
    }
    if (status < 0) {
        fail(bs, uv_strerror(status));
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
        abort(); /* only fails on OOM: the broker's allocation policy */
    }
    if (!bs->want_write) {
        bs->want_write = true;
        update_poll(bs);
    }
}
