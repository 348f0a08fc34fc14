/* sys_events.c - the broker's own publishes on `$sys` topics (see sys_events.h). */
#include "core/sys_events.h"

#include "app/broker.h"
#include "app/worker.h"
#include "cluster/history_ops.h"
#include "core/pubsub.h"

#include <string.h>

bool sys_publish(worker_t *w, const char *topic, const json_t *data)
{
    wsb_str_t t = {topic, strlen(topic)};
    if (cluster_rule(w->broker, t) >= 0) {
        return false;
    }
    pubsub_publish_t req = {.topic = t, .data = data, .ingress = PUBSUB_SYS};
    pubsub_published_t out;
    return pubsub_publish(w, &req, &out) == PUBSUB_OK;
}

void sys_conn_event(worker_t *w, bool connect, const char *client, wsb_str_t user)
{
    if (!w->cfg->sys_conn_events) {
        return;
    }
    json_t *data = json_object();
    json_object_set_new(data, "client", json_string(client));
    json_t *u = user.len > 0 ? json_stringn(user.p, user.len) : NULL;
    json_object_set_new(data, "user", u != NULL ? u : json_null());
    json_object_set_new(data, "node", json_string(w->broker->node_id));
    (void)sys_publish(w, connect ? "$sys.conn.connect" : "$sys.conn.disconnect", data);
    json_decref(data);
}
