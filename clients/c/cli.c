/*
 * cli.c - wsbroker-cli: subscribe and publish from the shell, on the C
 * client library (wsb/client.h) and libuv: arguments, the client's
 * callbacks, the deadline and signals, and main. `wsbroker-cli --help` is
 * the manual; cli.h lists the exit statuses.
 */
#include "cli.h"

#include "wsb/topic.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

void cli_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)fputs(PROG ": ", stderr);
    (void)vfprintf(stderr, fmt, ap);
    (void)fputc('\n', stderr);
    va_end(ap);
}

void cli_say_failed(const char *what, const wsb_client_error_t *e)
{
    if (e->status == WSB_ESERVER) {
        cli_say("%s failed: %s: %s", what, e->code, e->message);
    } else {
        cli_say("%s failed: %s", what, e->message);
    }
}

void cli_verbose(const app_t *app, const char *fmt, ...)
{
    if (!app->a.verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)fputs(PROG ": ", stderr);
    (void)vfprintf(stderr, fmt, ap);
    (void)fputc('\n', stderr);
    va_end(ap);
}

/* ---- shutting down ------------------------------------------------------ */

void cli_set_exit(app_t *app, int status)
{
    if (!app->exit_set) {
        app->exit_status = status;
        app->exit_set = true;
    }
}

static void close_aux(app_t *app)
{
    if (app->deadline_open) {
        app->deadline_open = false;
        uv_close((uv_handle_t *)&app->deadline, NULL);
    }
    if (app->signals_open) {
        app->signals_open = false;
        uv_close((uv_handle_t *)&app->sigint, NULL);
        uv_close((uv_handle_t *)&app->sigterm, NULL);
    }
    cli_input_close(app);
    cli_exec_stop(app);
}

/* Ends the run cleanly: a close handshake, then on_closed frees the client
 * and the loop runs out of handles. */
void cli_finish(app_t *app, int status)
{
    cli_set_exit(app, status);
    if (app->finishing) {
        return;
    }
    app->finishing = true;
    close_aux(app);
    if (app->client != NULL && wsb_client_close(app->client) != 0) {
        wsb_client_free(app->client);
        app->client = NULL;
    }
}

/* Ends the run at once (timeout): no close handshake to wait for. */
static void abort_now(app_t *app, int status)
{
    cli_set_exit(app, status);
    app->finishing = true;
    close_aux(app);
    if (app->client != NULL) {
        wsb_client_free(app->client);
        app->client = NULL;
    }
}

/* ---- output --------------------------------------------------------------- */

void cli_put_json_string(FILE *f, wsb_str_t s)
{
    (void)fputc('"', f);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (ch == '"' || ch == '\\') {
            (void)fputc('\\', f);
            (void)fputc(ch, f);
        } else if (ch < 0x20) {
            (void)fprintf(f, "\\u%04x", ch);
        } else {
            (void)fputc(ch, f);
        }
    }
    (void)fputc('"', f);
}

/* Flushes what was printed; a failed write ends the run with 1 (false). */
bool cli_flush_stdout(app_t *app)
{
    if (fflush(stdout) == 0 && !ferror(stdout)) {
        return true;
    }
    /* A closed pipe (| head) ends the command quietly. */
    if (errno != EPIPE) {
        cli_say("cannot write to standard output: %s", strerror(errno));
    }
    cli_finish(app, EXIT_FAIL);
    return false;
}

/* ---- client callbacks ------------------------------------------------------ */

static void on_open(wsb_client_t *c, const wsb_client_welcome_t *w, void *ud)
{
    app_t *app = ud;
    (void)c;
    cli_verbose(app, "connected to %s (client %s, node %s, broker %s)", app->a.url, w->client_id,
                w->node_id, w->version);
    if (app->a.mode == MODE_REQ) {
        cli_req_opened(app);
    }
}

static void on_message(wsb_client_t *c, const wsb_client_message_t *m, void *ud)
{
    app_t *app = ud;
    (void)c;
    bool answer = app->a.mode == MODE_REPLY && cli_reply_wants(app, m);
    if ((app->a.mode != MODE_SUB && !answer) || app->finishing) {
        return;
    }
    (void)fputs("{\"topic\":", stdout);
    cli_put_json_string(stdout, m->topic);
    (void)printf(",\"seq\":%llu", (unsigned long long)m->seq);
    if (m->epoch.p != NULL) {
        (void)fputs(",\"epoch\":", stdout);
        cli_put_json_string(stdout, m->epoch);
    }
    if (m->from != NULL) {
        char *from = json_dumps(m->from, JSON_COMPACT);
        if (from != NULL) {
            (void)printf(",\"from\":%s", from);
            free(from);
        }
    }
    if (m->reply_to.p != NULL) {
        (void)fputs(",\"reply_to\":", stdout);
        cli_put_json_string(stdout, m->reply_to);
    }
    (void)fputs(",\"data\":", stdout);
    (void)fwrite(m->data.p, 1, m->data.len, stdout);
    (void)fputs("}\n", stdout);
    if (!cli_flush_stdout(app)) {
        return;
    }
    if (answer) {
        cli_reply_answer(app, m);
        return;
    }
    app->received++;
    if (app->a.count > 0 && app->received >= app->a.count) {
        cli_finish(app, EXIT_OK);
    }
}

static void on_client_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    app_t *app = ud;
    (void)c;
    if (e->status == WSB_ESERVER) {
        cli_say("error from the broker%s%s%s: %s: %s", e->topic ? " (topic '" : "",
                e->topic ? e->topic : "", e->topic ? "')" : "", e->code, e->message);
    } else {
        cli_say("%s", e->message);
    }
    if (e->topic != NULL && (app->a.mode == MODE_SUB || app->a.mode == MODE_REPLY)) {
        /* A resubscription failed: the subscriber would silently miss data. */
        cli_finish(app, EXIT_FAIL);
    }
}

static void on_disconnect(wsb_client_t *c, const wsb_client_disconnect_t *d, void *ud)
{
    app_t *app = ud;
    (void)c;
    if (app->finishing) {
        return;
    }
    const char *what = d->was_open ? "connection lost" : "cannot connect";
    if (d->reconnect_ms >= 0) {
        cli_verbose(app, "%s: %s; reconnecting in %lld ms", what, d->reason,
                    (long long)d->reconnect_ms);
        return;
    }
    cli_say("%s to %s: %s", what, app->a.url, d->reason);
    cli_finish(app, EXIT_FAIL);
}

static void on_closed(wsb_client_t *c, void *ud)
{
    app_t *app = ud;
    wsb_client_free(c);
    app->client = NULL;
}

/* ---- sub -------------------------------------------------------------------- */

static void on_sub_ack(wsb_client_t *c, const wsb_client_ack_t *ack, void *ud)
{
    app_t *app = ud;
    (void)c;
    (void)ack;
    app->subs_acked++;
    if (app->subs_acked <= app->a.npatterns) {
        cli_verbose(app, "subscribed: %s", app->a.patterns[app->subs_acked - 1]);
    }
}

static void on_sub_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    app_t *app = ud;
    (void)c;
    if (e->status == WSB_ECANCELED) {
        return; /* this program freed the client */
    }
    char what[320];
    (void)snprintf(what, sizeof(what), "subscribe '%s'", e->topic);
    cli_say_failed(what, e);
    cli_finish(app, EXIT_FAIL);
}

static const wsb_client_reply_cb_t sub_reply = {on_sub_ack, on_sub_error};

/* ---- presence --------------------------------------------------------------- */

static void put_cstring(FILE *f, const char *s)
{
    if (s == NULL) {
        (void)fputs("null", f);
    } else {
        cli_put_json_string(f, (wsb_str_t){s, strlen(s)});
    }
}

static void on_presence_ack(wsb_client_t *c, const wsb_client_ack_t *ack, void *ud)
{
    app_t *app = ud;
    (void)c;
    if (app->a.stats) {
        (void)fputs("{\"topic\":", stdout);
        put_cstring(stdout, app->a.topic);
        (void)printf(",\"clients\":%llu,\"users\":%llu}\n", (unsigned long long)ack->clients,
                     (unsigned long long)ack->users);
    } else {
        for (size_t i = 0; i < ack->nmembers; i++) {
            (void)fputs("{\"client\":", stdout);
            put_cstring(stdout, ack->members[i].client);
            (void)fputs(",\"user\":", stdout);
            put_cstring(stdout, ack->members[i].user);
            (void)fputs("}\n", stdout);
        }
    }
    if (!cli_flush_stdout(app)) {
        return;
    }
    cli_verbose(app, "%s: %zu member(s)", app->a.topic,
                app->a.stats ? (size_t)ack->clients : ack->nmembers);
    cli_finish(app, EXIT_OK);
}

static void on_presence_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    app_t *app = ud;
    (void)c;
    if (e->status == WSB_ECANCELED) {
        return; /* this program freed the client */
    }
    char what[320];
    (void)snprintf(what, sizeof(what), "presence of '%s'", app->a.topic);
    cli_say_failed(what, e);
    cli_finish(app, EXIT_FAIL);
}

static const wsb_client_reply_cb_t presence_reply = {on_presence_ack, on_presence_error};

/* ---- pub -------------------------------------------------------------------- */

static void on_pub_ack(wsb_client_t *c, const wsb_client_ack_t *ack, void *ud)
{
    app_t *app = ud;
    (void)c;
    app->pending--;
    if (ack->has_seq) {
        cli_verbose(app, "published to %s: seq %llu", app->a.topic, (unsigned long long)ack->seq);
    }
    cli_maybe_finish_pub(app);
}

static void on_pub_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    app_t *app = ud;
    (void)c;
    app->pending--;
    if (e->status == WSB_ECANCELED) {
        return; /* this program freed the client */
    }
    app->any_refused = true;
    char where[64] = "";
    if (app->a.from_stdin) {
        (void)snprintf(where, sizeof(where), " (request %llu)", (unsigned long long)e->id);
    }
    char what[384];
    (void)snprintf(what, sizeof(what), "publish to '%s'%s", app->a.topic, where);
    cli_say_failed(what, e);
    cli_maybe_finish_pub(app);
}

const wsb_client_reply_cb_t cli_pub_reply = {on_pub_ack, on_pub_error};

void cli_maybe_finish_pub(app_t *app)
{
    if (app->finishing) {
        return;
    }
    if (app->a.from_stdin) {
        if (!app->in_failed) {
            cli_input_process(app);
        }
        bool input_done = app->in_failed || (app->in_eof && app->buf_len == 0);
        if (!input_done || app->pending > 0) {
            return;
        }
    } else if (app->pending > 0) {
        return;
    }
    cli_finish(app, app->any_refused ? EXIT_FAIL : EXIT_OK);
}

/* Checks a JSON text the way the library will; prints why it is invalid. */
bool cli_json_ok(const char *what, const char *text, size_t len)
{
    json_error_t err;
    json_t *v =
        json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (v == NULL) {
        cli_say("%s is not valid JSON: %s (line %d, column %d)", what, err.text, err.line,
                err.column);
        return false;
    }
    json_decref(v);
    return true;
}

/* ---- timers and signals ------------------------------------------------------ */

static void on_deadline(uv_timer_t *t)
{
    app_t *app = t->data;
    bool listens = app->a.mode == MODE_SUB || app->a.mode == MODE_REPLY;
    if (listens && app->a.count == 0 && app->client != NULL &&
        app->subs_acked >= app->a.npatterns) {
        /* Listened for the whole period (reply: 1 if an answer failed). */
        cli_finish(app, app->any_refused ? EXIT_FAIL : EXIT_OK);
        return;
    }
    const char *doing = "waiting";
    if (app->client == NULL || wsb_client_state(app->client) != WSB_CLIENT_OPEN) {
        doing = "connecting";
    } else if (listens) {
        doing = app->subs_acked < app->a.npatterns ? "subscribing"
                : app->a.mode == MODE_SUB          ? "waiting for messages"
                                                   : "waiting for requests";
    } else if (app->a.mode == MODE_REQ) {
        doing = "waiting for the reply";
    } else if (app->a.mode == MODE_PRESENCE) {
        doing = "waiting for the broker's answer";
    } else {
        doing = "waiting for the broker's acknowledgement";
    }
    if (listens && app->a.count > 0) {
        cli_say("timed out after %g s %s (%ld of %ld %s)", app->a.timeout, doing, app->received,
                app->a.count, app->a.mode == MODE_SUB ? "messages received" : "requests answered");
    } else {
        cli_say("timed out after %g s %s", app->a.timeout, doing);
    }
    abort_now(app, EXIT_TIMEOUT);
}

void cli_arm_deadline(app_t *app, uint64_t ms)
{
    if (app->deadline_open) {
        (void)uv_timer_start(&app->deadline, on_deadline, ms, 0);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    app_t *app = s->data;
    cli_verbose(app, "%s received, closing", signum == SIGINT ? "SIGINT" : "SIGTERM");
    if ((app->a.mode == MODE_PUB || app->a.mode == MODE_REPLY) && app->pending > 0) {
        cli_say("interrupted with %zu %s not acknowledged", app->pending,
                app->a.mode == MODE_PUB ? "publish(es)" : "answer(s)");
        cli_finish(app, EXIT_FAIL);
        return;
    }
    cli_finish(app, app->any_refused ? EXIT_FAIL : EXIT_OK);
}

/* ---- arguments ------------------------------------------------------------------- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)fputs(PROG ": ", stderr);
    (void)vfprintf(stderr, fmt, ap);
    (void)fputs("\nTry '" PROG " --help' for more information.\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 || v > 1e7) {
        return false;
    }
    *out = v;
    return true;
}

/* The command and its arguments, after the options. Returns -1 to go on,
 * else the exit status. */
static int parse_command(int rest, char **args, args_t *a)
{
    if (rest < 1) {
        return usage_error("missing command: sub, pub, req, reply or presence");
    }
    if (strcmp(args[0], "sub") == 0) {
        a->mode = MODE_SUB;
        if (rest < 2) {
            return usage_error("sub: missing PATTERN");
        }
        a->patterns = args + 1;
        a->npatterns = rest - 1;
    } else if (strcmp(args[0], "pub") == 0) {
        a->mode = MODE_PUB;
        if (rest != 3) {
            return usage_error("pub: expected TOPIC and JSON (or - for standard input), got %d "
                               "argument(s)",
                               rest - 1);
        }
        a->topic = args[1];
        a->json = args[2];
        a->from_stdin = strcmp(args[2], "-") == 0;
    } else if (strcmp(args[0], "presence") == 0) {
        a->mode = MODE_PRESENCE;
        if (rest != 2) {
            return usage_error("presence: expected one TOPIC, got %d argument(s)", rest - 1);
        }
        a->topic = args[1];
    } else if (strcmp(args[0], "req") == 0 || strcmp(args[0], "reply") == 0) {
        bool req = args[0][2] == 'q';
        a->mode = req ? MODE_REQ : MODE_REPLY;
        if (!req && a->exec != NULL) {
            if (rest != 2) {
                return usage_error("reply --exec: expected PATTERN only, got %d argument(s)",
                                   rest - 1);
            }
        } else if (rest != 3) {
            return usage_error("%s: expected %s and JSON, got %d argument(s)", args[0],
                               req ? "TOPIC" : "PATTERN", rest - 1);
        }
        a->topic = args[1];
        a->json = a->exec != NULL ? NULL : args[2];
        if (!req) {
            a->patterns = args + 1;
            a->npatterns = 1;
        }
    } else {
        return usage_error("unknown command '%s' (expected sub, pub, req, reply or presence)",
                           args[0]);
    }
    if (a->count != 0 && a->mode != MODE_SUB && a->mode != MODE_REPLY) {
        return usage_error("--count applies to sub and reply only");
    }
    if (a->exec != NULL && a->mode != MODE_REPLY) {
        return usage_error("--exec applies to reply only");
    }
    if (a->mode == MODE_REQ && a->timeout * 1000.0 > WSB_CLIENT_MAX_REQUEST_TIMEOUT_MS) {
        return usage_error("req: --timeout %g is over the broker's limit of %u s", a->timeout,
                           WSB_CLIENT_MAX_REQUEST_TIMEOUT_MS / 1000u);
    }
    if (a->stats && a->mode != MODE_PRESENCE) {
        return usage_error("--stats applies to presence only");
    }
    return -1;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"token", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'w'},
        {"connect-timeout", required_argument, NULL, 'C'},
        {"cafile", required_argument, NULL, 'A'},
        {"insecure", no_argument, NULL, 'k'},
        {"reconnect", no_argument, NULL, 'r'},
        {"verbose", no_argument, NULL, 'v'},
        {"stats", no_argument, NULL, 'S'},
        {"exec", required_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof(*a));
    a->url = getenv("WSBROKER_URL");
    if (a->url == NULL || *a->url == '\0') {
        a->url = DEFAULT_URL;
    }
    a->token = getenv("WSBROKER_TOKEN");
    if (a->token != NULL && *a->token == '\0') {
        a->token = NULL;
    }
    a->connect_timeout = WSB_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS / 1000.0;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":u:t:n:w:krvhV", opts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            a->url = optarg;
            break;
        case 't':
            a->token = optarg;
            break;
        case 'n': {
            char *end = NULL;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || v < 1) {
                return usage_error("--count: '%s' is not a whole number >= 1", optarg);
            }
            a->count = v;
            break;
        }
        case 'w':
            if (!parse_seconds(optarg, &a->timeout)) {
                return usage_error("--timeout: '%s' is not a number of seconds > 0", optarg);
            }
            break;
        case 'C':
            if (!parse_seconds(optarg, &a->connect_timeout)) {
                return usage_error("--connect-timeout: '%s' is not a number of seconds > 0",
                                   optarg);
            }
            break;
        case 'A':
            if (access(optarg, R_OK) != 0) {
                return usage_error("--cafile: cannot read '%s': %s", optarg, strerror(errno));
            }
            a->ca_file = optarg;
            break;
        case 'k':
            a->insecure = true;
            break;
        case 'r':
            a->reconnect = true;
            break;
        case 'v':
            a->verbose = true;
            break;
        case 'S':
            a->stats = true;
            break;
        case 'E':
            a->exec = optarg;
            break;
        case 'h':
            cli_print_help(stdout);
            return EXIT_OK;
        case 'V':
            (void)printf("%s %s\n", PROG, WSB_CLI_VERSION);
            return EXIT_OK;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    return parse_command(argc - optind, argv + optind, a);
}

/* Checks everything that can be checked before connecting. */
static int validate(const args_t *a)
{
    const char *why = NULL;
    if (a->mode == MODE_SUB || a->mode == MODE_REPLY) {
        for (int i = 0; i < a->npatterns; i++) {
            const char *p = a->patterns[i];
            if (wsb_topic_check(p, strlen(p), WSB_TOPIC_PATTERN, &why) != 0) {
                cli_say("invalid pattern '%s': %s", p, why);
                return EXIT_USAGE;
            }
        }
        if (a->mode == MODE_REPLY && a->exec == NULL &&
            !cli_json_ok("the reply", a->json, strlen(a->json))) {
            return EXIT_USAGE;
        }
        return -1;
    }
    if (wsb_topic_check(a->topic, strlen(a->topic), WSB_TOPIC_EXACT, &why) != 0) {
        cli_say("invalid topic '%s': %s", a->topic, why);
        return EXIT_USAGE;
    }
    if (((a->mode == MODE_PUB && !a->from_stdin) || a->mode == MODE_REQ) &&
        !cli_json_ok("the message", a->json, strlen(a->json))) {
        return EXIT_USAGE;
    }
    return -1;
}

static const wsb_client_callbacks_t client_cb = {
    .on_open = on_open,
    .on_message = on_message,
    .on_error = on_client_error,
    .on_disconnect = on_disconnect,
    .on_closed = on_closed,
};

/* Creates the client and queues the requests (still before connecting, so
 * a request the library refuses is a usage error with nothing sent). */
static int start(app_t *app)
{
    const args_t *a = &app->a;
    wsb_client_options_t o;
    wsb_client_options_init(&o);
    o.url = a->url;
    o.token = a->token;
    o.ca_file = a->ca_file;
    o.insecure = a->insecure;
    o.connect_timeout_ms = (uint32_t)(a->connect_timeout * 1000.0);
    o.reconnect = a->reconnect;
    char why[256];
    if (wsb_client_options_check(&o, why, sizeof(why)) != 0) {
        cli_say("%s", why);
        return EXIT_USAGE;
    }
    app->client = wsb_client_new(&o, &client_cb, app);
    if (app->client == NULL || wsb_client_uv_attach(app->client, &app->loop) != 0) {
        cli_say("out of memory");
        return EXIT_FAIL;
    }
    if (a->mode == MODE_SUB || a->mode == MODE_REPLY) {
        for (int i = 0; i < a->npatterns; i++) {
            int64_t rc = wsb_client_subscribe(app->client, a->patterns[i], &sub_reply, app);
            if (rc < 0) {
                cli_say("subscribe '%s': %s", a->patterns[i], wsb_client_strerror((int)rc));
                return EXIT_USAGE;
            }
        }
    } else if (a->mode == MODE_PRESENCE) {
        int64_t rc = a->stats
                         ? wsb_client_presence_stats(app->client, a->topic, &presence_reply, app)
                         : wsb_client_presence(app->client, a->topic, &presence_reply, app);
        if (rc < 0) {
            cli_say("presence of '%s': %s", a->topic, wsb_client_strerror((int)rc));
            return EXIT_USAGE;
        }
    } else if (a->mode == MODE_REQ) {
        int st = cli_req_start(app);
        if (st >= 0) {
            return st;
        }
    } else if (!a->from_stdin) {
        int64_t rc = wsb_client_publish(app->client, a->topic, a->json, strlen(a->json),
                                        &cli_pub_reply, app);
        if (rc < 0) {
            cli_say("publish to '%s': %s%s", a->topic, wsb_client_strerror((int)rc),
                    rc == WSB_ETOOBIG ? " (the limit is 64 KiB)" : "");
            return EXIT_USAGE;
        }
        app->pending = 1;
    }
    int rc = wsb_client_connect(app->client);
    if (rc != 0) {
        cli_say("cannot connect to %s: %s", a->url,
                rc > -30000 ? uv_strerror(rc) : wsb_client_strerror(rc));
        return EXIT_FAIL;
    }
    if (a->mode == MODE_PUB && a->from_stdin && cli_input_open(app) != 0) {
        return EXIT_FAIL;
    }
    return -1;
}

static void start_aux(app_t *app)
{
    (void)uv_timer_init(&app->loop, &app->deadline);
    app->deadline.data = app;
    app->deadline_open = true;
    /* req counts its time from the open connection (cli_req_opened()). */
    if (app->a.timeout > 0 && app->a.mode != MODE_REQ) {
        cli_arm_deadline(app, (uint64_t)(app->a.timeout * 1000.0));
    }
    (void)uv_signal_init(&app->loop, &app->sigint);
    (void)uv_signal_init(&app->loop, &app->sigterm);
    app->sigint.data = app;
    app->sigterm.data = app;
    app->signals_open = true;
    (void)uv_signal_start(&app->sigint, on_signal, SIGINT);
    (void)uv_signal_start(&app->sigterm, on_signal, SIGTERM);
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(size_t *)arg)++;
}

static bool has_handles(uv_loop_t *loop)
{
    size_t n = 0;
    uv_walk(loop, count_handle, &n);
    return n > 0;
}

int main(int argc, char **argv)
{
    static app_t app; /* holds the stdin handles; zeroed */
    if (argc > 1 && (strcmp(argv[1], "token") == 0 || strcmp(argv[1], "verify") == 0)) {
        return cli_token_main(argc - 1, argv + 1);
    }
    int st = parse_args(argc, argv, &app.a);
    if (st >= 0) {
        return st;
    }
    st = validate(&app.a);
    if (st >= 0) {
        return st;
    }
    /* Writes to a socket the broker closed must fail with EPIPE, not kill. */
    (void)signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&app.loop) != 0) {
        cli_say("cannot create the event loop");
        return EXIT_FAIL;
    }
    st = start(&app);
    if (st >= 0) {
        abort_now(&app, st);
    } else {
        start_aux(&app);
    }
    /* Run until the client is freed and every handle closed. A name lookup
     * still running in libuv's thread pool (an unreachable resolver) does
     * not hold the exit: the adapter orphaned it. */
    while (uv_run(&app.loop, UV_RUN_ONCE) != 0) {
        if (app.finishing && app.client == NULL && !has_handles(&app.loop)) {
            break;
        }
    }
    if (uv_loop_close(&app.loop) == UV_EBUSY && has_handles(&app.loop)) {
        cli_say("event loop closed with handles open");
    }
    free(app.buf);
    if (app.in_is_file || app.a.from_stdin) {
        uv_tty_reset_mode();
    }
    return app.exit_status;
}
