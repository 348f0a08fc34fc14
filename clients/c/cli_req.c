/*
 * cli_req.c - wsbroker-cli's request/reply commands (PROTOCOL.md 3.7):
 * req sends one request and prints its reply's data; reply answers every
 * request on a pattern with a fixed JSON value. The request's wait is the
 * broker's (timeout_ms); the CLI only keeps a safety deadline behind it.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REQ_DEFAULT_TIMEOUT_MS 5000u /* the broker's default timeout_ms */
#define REQ_GRACE_MS           1000u /* the broker's answer may take this long to arrive */

/* --timeout as the request's timeout_ms; 0 (the broker's default) without. */
static uint32_t req_timeout_ms(const args_t *a)
{
    if (a->timeout <= 0) {
        return 0;
    }
    double ms = ceil(a->timeout * 1000.0);
    return ms < 1 ? 1u : (uint32_t)ms;
}

static void on_req_reply(wsb_client_t *c, const wsb_client_ack_t *ack, void *ud)
{
    app_t *app = ud;
    (void)c;
    (void)fwrite(ack->data.p, 1, ack->data.len, stdout);
    (void)fputc('\n', stdout);
    if (!cli_flush_stdout(app)) {
        return;
    }
    if (app->a.verbose) {
        char *from = ack->from != NULL ? json_dumps(ack->from, JSON_COMPACT) : NULL;
        cli_verbose(app, "reply to %s from %s", app->a.topic, from != NULL ? from : "null");
        free(from);
    }
    cli_finish(app, EXIT_OK);
}

static void on_req_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    app_t *app = ud;
    (void)c;
    if (e->status == WSB_ECANCELED) {
        return; /* this program freed the client */
    }
    const char *code = e->status == WSB_ESERVER ? e->code : "";
    if (strcmp(code, "no_responders") == 0) {
        cli_say("request to '%s' failed: no_responders: nobody subscribes to the topic",
                app->a.topic);
        cli_finish(app, EXIT_NO_REPLY);
    } else if (strcmp(code, "timeout") == 0) {
        cli_say("request to '%s' failed: timeout: no reply within %lu ms", app->a.topic,
                (unsigned long)app->req_timeout_ms);
        cli_finish(app, EXIT_TIMEOUT);
    } else {
        char what[320];
        (void)snprintf(what, sizeof(what), "request to '%s'", app->a.topic);
        cli_say_failed(what, e);
        cli_finish(app, EXIT_FAIL);
    }
}

static const wsb_client_reply_cb_t req_reply = {on_req_reply, on_req_error};

int cli_req_start(app_t *app)
{
    const args_t *a = &app->a;
    uint32_t ms = req_timeout_ms(a);
    app->req_timeout_ms = ms != 0 ? ms : REQ_DEFAULT_TIMEOUT_MS;
    int64_t rc =
        wsb_client_request(app->client, a->topic, a->json, strlen(a->json), ms, &req_reply, app);
    if (rc < 0) {
        cli_say("request to '%s': %s%s", a->topic, wsb_client_strerror((int)rc),
                rc == WSB_ETOOBIG ? " (the limit is 64 KiB)" : "");
        return EXIT_USAGE;
    }
    return -1;
}

void cli_req_opened(app_t *app)
{
    /* The broker ends every request itself (reply, no_responders or
     * timeout), counting from when it reads it; this deadline only catches
     * a broker that never does. */
    uint64_t ms = (uint64_t)app->req_timeout_ms + REQ_GRACE_MS;
    app->a.timeout = (double)ms / 1000.0; /* as on_deadline reports it */
    cli_arm_deadline(app, ms);
}

/* ---- reply ---------------------------------------------------------------- */

static void on_answer_ack(wsb_client_t *c, const wsb_client_ack_t *ack, void *ud)
{
    app_t *app = ud;
    (void)c;
    (void)ack;
    app->pending--;
    app->received++;
    if (app->a.count > 0 && app->received >= app->a.count) {
        cli_finish(app, app->any_refused ? EXIT_FAIL : EXIT_OK);
    }
}

static void on_answer_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    app_t *app = ud;
    (void)c;
    app->pending--;
    if (e->status == WSB_ECANCELED) {
        return; /* this program freed the client */
    }
    /* One failed answer (say, rate_limited) does not stop the responder. */
    app->any_refused = true;
    char what[320];
    (void)snprintf(what, sizeof(what), "reply to '%s'", e->topic);
    cli_say_failed(what, e);
}

const wsb_client_reply_cb_t cli_answer_reply = {on_answer_ack, on_answer_error};

bool cli_reply_wants(const app_t *app, const wsb_client_message_t *m)
{
    return m->reply_to.p != NULL &&
           (app->a.count == 0 || app->received + (long)app->pending < app->a.count);
}

void cli_reply_answer(app_t *app, const wsb_client_message_t *m)
{
    if (app->a.exec != NULL) {
        cli_exec_answer(app, m);
        return;
    }
    int64_t rc = wsb_client_publish(app->client, m->reply_to.p, app->a.json, strlen(app->a.json),
                                    &cli_answer_reply, app);
    if (rc < 0) {
        app->any_refused = true;
        cli_say("reply to '%s': %s", m->reply_to.p, wsb_client_strerror((int)rc));
        return;
    }
    app->pending++;
}
