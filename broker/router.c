/* router.c - publish across workers and deliver from the inbox (see router.h). */
#include "router.h"

#include "bridge_redis.h"
#include "broker.h"
#include "conn.h"
#include "frame_buf.h"
#include "resp_listener.h"
#include "seqtab.h"
#include "server.h"
#include "session.h"
#include "topic_trie.h"
#include "util.h"
#include "wsb/message.h"
#include "xmsg.h"

#include <stdlib.h>

uint64_t router_publish(server_t *s, conn_t *origin, wsb_str_t topic, const json_t *data)
{
    broker_t *b = s->broker;
    size_t data_len = 0;
    char *data_json = wsb_msg_dump_value(data, &data_len);
    if (data_json == NULL) {
        abort(); /* ENOMEM: the broker's allocation policy */
    }
    METRIC_ADD(s->metrics.messages_published, 1);

    seqtab_shard_t *shard = NULL;
    uint64_t seq = seqtab_lock_next(b->seqtab, topic, &shard);
    xmsg_t *m = xmsg_new(topic, seq, (wsb_str_t){data_json, data_len}, b->nworkers);
    /* Every reference is counted before the first push: a worker may deliver
     * and release its share before this loop ends. */
    xmsg_set_refs(m, b->nworkers);
    for (unsigned i = 0; i < b->nworkers; i++) {
        server_t *w = b->workers[i];
        if (!xqueue_push(&w->inbox, m)) {
            METRIC_ADD(s->metrics.inbox_dropped, 1);
            xmsg_unref(m);
        }
    }
    /* Still under the shard lock: the bridge sends a topic's messages to
     * Redis in seq order. */
    if (b->bridge != NULL) {
        bridge_publish(b->bridge, topic, seq, (wsb_str_t){data_json, data_len});
    }
    seqtab_unlock(shard);
    free(data_json);

    /* The other workers need a wake-up (libuv coalesces sends that arrive
     * before the loop runs). Our own subscribers get the message now, before
     * the publisher's ack is queued, as with a single worker. */
    for (unsigned i = 0; i < b->nworkers; i++) {
        if (i != s->index) {
            uv_async_send(&b->workers[i]->inbox_async);
        }
    }
    router_drain(s);
    if (origin != NULL && server_inbox_pressure(s)) {
        conn_pause_publisher(origin);
    }
    return seq;
}

unsigned router_inject(broker_t *b, wsb_str_t topic, uint64_t seq, wsb_str_t data_json)
{
    xmsg_t *m = xmsg_new(topic, seq, data_json, b->nworkers);
    xmsg_set_refs(m, b->nworkers);
    unsigned dropped = 0;
    /* One producer (the bridge thread) pushes in the order Redis delivered:
     * every worker sees remote messages in that order. */
    for (unsigned i = 0; i < b->nworkers; i++) {
        if (!xqueue_push(&b->workers[i]->inbox, m)) {
            dropped++;
            xmsg_unref(m);
        }
    }
    for (unsigned i = 0; i < b->nworkers; i++) {
        uv_async_send(&b->workers[i]->inbox_async);
    }
    return dropped;
}

typedef struct {
    frame_buf_t *fb;
    xmsg_t *msg;
    server_t *server;
    size_t undelivered; /* matched but not queued: closing or just dropped */
} fanout_t;

static int deliver_cb(trie_client_t *client, void *user_data)
{
    fanout_t *f = user_data;
    if (client->kind == ROUTER_CLIENT_RESP) {
        if (resp_deliver(client, f->msg) != 0) {
            f->undelivered++;
        }
        return 0;
    }
    session_t *s = (session_t *)(void *)client;
    if (session_deliver(s, f->fb) == 0) {
        return 0;
    }
    f->undelivered++;
    if (s->conn->state == CONN_WS) {
        /* Over its outbound bound: this subscriber cannot keep up. Its queued
         * frames are dropped and it is told why; everyone else goes on. */
        METRIC_ADD(f->server->metrics.slow_consumer_closes, 1);
        conn_ws_close(s->conn, WSB_WS_CLOSE_TRY_AGAIN, "slow consumer", true);
    }
    return 0;
}

void router_drain(server_t *s)
{
    unsigned budget = SERVER_INBOX_BATCH;
    xmsg_t *m;
    while (budget > 0 && (m = xqueue_pop(&s->inbox)) != NULL) {
        budget--;
        frame_buf_t *fb = xmsg_worker_buf(m, s->index);
        fanout_t f = {.fb = fb, .msg = m, .server = s, .undelivered = 0};
        s->in_fanout = true;
        size_t n = trie_match(s->trie, m->topic, m->topic_len, deliver_cb, &f);
        s->in_fanout = false;
        METRIC_ADD(s->metrics.messages_delivered, n - f.undelivered);
        frame_buf_unref(fb); /* the worker's own reference; writes hold theirs */
    }
    if (budget == 0) {
        /* More than a batch is waiting: let I/O run, then continue. */
        uv_async_send(&s->inbox_async);
    }
    METRIC_SET(s->metrics.inbox_depth, xqueue_depth(&s->inbox));
}
