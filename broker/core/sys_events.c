/* sys_events.c - the broker's own publishes on `$sys` topics (see sys_events.h). */
#include "core/sys_events.h"

#include "core/pubsub.h"

#include <string.h>

bool sys_publish(core_worker_t *w, const char *topic, const json_t *data)
{
    wsb_str_t t = {topic, strlen(topic)};
    pubsub_publish_t req = {.topic = t, .data = data, .ingress = PUBSUB_SYS};
    pubsub_published_t out;
    return pubsub_publish(w, &req, &out) == PUBSUB_OK;
}

void sys_conn_event(core_worker_t *w, bool connect, const char *client, wsb_str_t user,
                    const char *node)
{
    json_t *data = json_object();
    json_object_set_new(data, "client", json_string(client));
    json_t *u = user.len > 0 ? json_stringn(user.p, user.len) : NULL;
    json_object_set_new(data, "user", u != NULL ? u : json_null());
    json_object_set_new(data, "node", json_string(node));
    (void)sys_publish(w, connect ? "$sys.conn.connect" : "$sys.conn.disconnect", data);
    json_decref(data);
}
