/* hello.c - the smallest complete wsbroker C client: subscribes to hello.>,
 * publishes one message once subscribed, prints it when it comes back, and
 * closes. Build against an installed library:
 *     cc hello.c $(pkg-config --cflags --libs wsbroker-client) -o hello
 *     ./hello ws://127.0.0.1:8080/ws
 * Exit status 0 once the message came back, 1 otherwise. */
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include <wsb/client.h>

static int status = 1;

static void on_error(wsb_client_t *c, const wsb_client_error_t *e, void *app)
{
    (void)app;
    (void)fprintf(stderr, "hello: %s: %s\n", e->code != NULL ? e->code : "local", e->message);
    wsb_client_close(c);
}

static void on_subscribed(wsb_client_t *c, const wsb_client_ack_t *a, void *app)
{
    (void)a;
    (void)app;
    static const char data[] = "{\"text\":\"hello from C\"}";
    wsb_client_reply_cb_t reply = {NULL, on_error};
    (void)wsb_client_publish(c, "hello.world", data, strlen(data), &reply, NULL);
}

static void on_message(wsb_client_t *c, const wsb_client_message_t *m, void *app)
{
    (void)app;
    (void)printf("%.*s %.*s\n", (int)m->topic.len, m->topic.p, (int)m->data.len, m->data.p);
    status = 0;
    wsb_client_close(c);
}

static void on_disconnect(wsb_client_t *c, const wsb_client_disconnect_t *d, void *app)
{
    (void)app;
    if (d->reconnect_ms < 0 && d->status != 0) {
        (void)fprintf(stderr, "hello: %s\n", d->reason);
        wsb_client_close(c);
    }
}

static void on_closed(wsb_client_t *c, void *app)
{
    (void)app;
    wsb_client_free(c);
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    wsb_client_options_t o;
    wsb_client_options_init(&o);
    o.url = argc > 1 ? argv[1] : "ws://127.0.0.1:8080/ws";
    wsb_client_callbacks_t cb = {.on_message = on_message,
                                 .on_error = on_error,
                                 .on_disconnect = on_disconnect,
                                 .on_closed = on_closed};
    wsb_client_t *c = wsb_client_new(&o, &cb, NULL);
    if (c == NULL || wsb_client_uv_attach(c, loop) != 0 || wsb_client_connect(c) != 0) {
        (void)fprintf(stderr, "hello: cannot start the client for %s\n", o.url);
        return 1;
    }
    wsb_client_reply_cb_t subscribed = {on_subscribed, on_error};
    (void)wsb_client_subscribe(c, "hello.>", &subscribed, NULL);
    (void)uv_run(loop, UV_RUN_DEFAULT);
    return status;
}
