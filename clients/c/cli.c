/*
 * cli.c - wsbroker-cli: subscribe and publish from the shell, on the C
 * client library (wsb/client.h) and libuv. `wsbroker-cli --help` is the
 * manual; the exit statuses below are a contract scripts rely on.
 *
 *   0  success
 *   1  the broker refused a request, or the connection failed or was lost
 *   2  usage error or invalid input (caught before connecting)
 *   3  --timeout expired
 */
#include "wsb/client.h"
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

#define PROG           "wsbroker-cli"
#define DEFAULT_URL    "ws://127.0.0.1:8080/ws"
#define EXIT_OK        0
#define EXIT_FAIL      1
#define EXIT_USAGE     2
#define EXIT_TIMEOUT   3
#define STDIN_WINDOW   64 /* publishes from stdin awaiting their ack, at most */
#define STDIN_CHUNK    (64 * 1024)
#define MAX_DATA_BYTES WSB_CLIENT_DEFAULT_MAX_MESSAGE_SIZE

/* The manual, in pieces: ISO C only guarantees 4095-byte string literals. */
static const char *const help_text[] = {
    "NAME\n"
    "    wsbroker-cli - publish to and subscribe on a wsbroker from the shell\n"
    "\n",
    "SYNOPSIS\n"
    "    wsbroker-cli [OPTIONS] sub PATTERN...\n"
    "    wsbroker-cli [OPTIONS] pub TOPIC JSON\n"
    "    wsbroker-cli [OPTIONS] pub TOPIC -\n"
    "    wsbroker-cli --help | --version\n"
    "\n",
    "DESCRIPTION\n"
    "    wsbroker-cli speaks the wsbroker WebSocket protocol (version 1) with the\n"
    "    wsbroker C client library.\n"
    "\n"
    "    sub PATTERN...\n"
    "        Subscribes to each pattern and prints every message on standard\n"
    "        output as one JSON line, flushed at once:\n"
    "            {\"topic\":\"prices.btc.usd\",\"seq\":42,\"data\":{\"bid\":1}}\n"
    "        (with \"epoch\" after \"seq\" when the topic keeps history). A\n"
    "        pattern is dot-separated tokens where '*' matches one token and\n"
    "        '>' (last) one or more, as in NATS. Runs until --count messages\n"
    "        arrived, --timeout expires, SIGINT/SIGTERM, or the connection is\n"
    "        lost (without --reconnect). A message matching several patterns\n"
    "        is printed once.\n"
    "\n"
    "    pub TOPIC JSON\n"
    "        Publishes one JSON value (any value: object, array, string,\n"
    "        number, true, false, null) to TOPIC and waits for the broker's\n"
    "        acknowledgement. The topic and the JSON are checked before\n"
    "        connecting. Quote the JSON for the shell; put -- before a value\n"
    "        that starts with '-' (a negative number).\n"
    "\n"
    "    pub TOPIC -\n"
    "        Publishes each line of standard input as one message; each line\n"
    "        must be one JSON value (blank lines are skipped). Lines are sent\n"
    "        in order as they are read (up to 64 awaiting acknowledgement), and\n"
    "        the command ends when input ends and every line is acknowledged.\n"
    "        A line that is not valid JSON stops the input: the lines before it\n"
    "        are published, the command exits 2. A line the broker refuses is\n"
    "        reported on standard error with its line number and the rest go\n"
    "        on; the exit status is then 1.\n"
    "\n"
    "    Errors are printed on standard error as 'wsbroker-cli: ...'; an error\n"
    "    from the broker shows its code and message, e.g.\n"
    "        wsbroker-cli: publish to '$sys.x' failed: forbidden: ...\n"
    "\n",
    "OPTIONS\n"
    "    -u, --url URL\n"
    "        The broker's WebSocket endpoint, ws://HOST[:PORT][/PATH][?QUERY].\n"
    "        Default: $WSBROKER_URL, else " DEFAULT_URL ". (wss:// is\n"
    "        recognised but needs TLS support, not in this version.)\n"
    "    -t, --token TOKEN\n"
    "        Credentials: sent as 'Authorization: Bearer TOKEN' and as the query\n"
    "        parameter token=TOKEN. Default: $WSBROKER_TOKEN, else none.\n"
    "    -n, --count N\n"
    "        sub: exit 0 after printing N messages (N >= 1).\n"
    "    -w, --timeout SECONDS\n"
    "        Give up after SECONDS (fractions allowed) with exit status 3. For\n"
    "        sub without --count, reaching the timeout once subscribed is the\n"
    "        normal end (exit 0). Default: no limit.\n"
    "    --connect-timeout SECONDS\n"
    "        Time allowed to connect and complete the WebSocket handshake, per\n"
    "        attempt. Default: 10.\n"
    "    -r, --reconnect\n"
    "        When the connection is lost, reconnect with exponential backoff\n"
    "        and jitter (250 ms doubling up to 30 s) and subscribe again, instead\n"
    "        of exiting 1. Not after errors a retry would repeat (HTTP 4xx, close\n"
    "        codes 1002, 1003, 1007, 1009).\n"
    "    -v, --verbose\n"
    "        Report connection events on standard error ('connected ...',\n"
    "        'subscribed: PATTERN', 'published to TOPIC: seq N', ...).\n"
    "    -h, --help\n"
    "        Print this manual and exit 0.\n"
    "    -V, --version\n"
    "        Print the version and exit 0.\n"
    "\n",
    "EXIT STATUS\n"
    "    0   success: published and acknowledged; sub received --count\n"
    "        messages, or ran until --timeout or a signal.\n"
    "    1   the broker refused a request (its error code and message are on\n"
    "        standard error), or the connection failed or was lost.\n"
    "    2   usage error or invalid input: unknown option, invalid topic or\n"
    "        pattern, invalid JSON, message over 64 KiB, malformed URL. Nothing\n"
    "        was sent (for pub -, the lines before the invalid one were).\n"
    "    3   --timeout expired first.\n"
    "\n",
    "ENVIRONMENT\n"
    "    WSBROKER_URL, WSBROKER_TOKEN   defaults for --url and --token.\n"
    "\n",
    "EXAMPLES\n"
    "    Print every message on prices.*.usd and orders.> as JSON lines:\n"
    "        wsbroker-cli sub 'prices.*.usd' 'orders.>'\n"
    "\n"
    "    Wait for one message, at most 30 seconds:\n"
    "        wsbroker-cli sub --count 1 --timeout 30 jobs.done\n"
    "\n"
    "    Publish an object and check the result:\n"
    "        wsbroker-cli pub prices.btc.usd '{\"bid\":64000.5}' && echo published\n"
    "\n"
    "    Publish a negative number:\n"
    "        wsbroker-cli pub sensors.t1 -- -3.5\n"
    "\n"
    "    Publish each line of a file, to another broker:\n"
    "        wsbroker-cli --url ws://10.0.0.5:8080/ws pub logs.app - < events.jsonl\n"
    "\n"
    "    Pipe one subscriber's messages into jq:\n"
    "        wsbroker-cli sub 'chat.>' | jq -r .data.text\n",
};

typedef enum { MODE_SUB = 1, MODE_PUB } mode_t_;

typedef struct {
    mode_t_ mode;
    const char *url;
    const char *token;
    long count;
    double timeout;
    double connect_timeout;
    bool reconnect;
    bool verbose;
    char **patterns;
    int npatterns;
    const char *topic;
    const char *json;
    bool from_stdin;
} args_t;

typedef struct {
    args_t a;
    uv_loop_t loop;
    wsb_client_t *client;
    uv_timer_t deadline;
    bool deadline_open;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    bool signals_open;
    int exit_status;
    bool exit_set;
    bool finishing;
    /* sub */
    long received;
    int subs_acked;
    /* pub */
    size_t pending; /* publishes awaiting their reply */
    bool any_refused;
    /* pub - : standard input */
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
        uv_idle_t idle; /* a regular file: read synchronously, one chunk per turn */
    } in;
    bool in_open;
    bool in_is_file;
    bool in_reading;
    bool in_eof;
    bool in_failed; /* an invalid line stopped the input */
    char *buf;      /* bytes read but not yet consumed as lines */
    size_t buf_len;
    size_t buf_cap;
    unsigned long line_no;
} app_t;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)fputs(PROG ": ", stderr);
    (void)vfprintf(stderr, fmt, ap);
    (void)fputc('\n', stderr);
    va_end(ap);
}

static void verbose(const app_t *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void verbose(const app_t *app, const char *fmt, ...)
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

static void set_exit(app_t *app, int status)
{
    if (!app->exit_set) {
        app->exit_status = status;
        app->exit_set = true;
    }
}

static void close_input(app_t *app)
{
    if (app->in_open) {
        app->in_open = false;
        app->in_reading = false;
        uv_close((uv_handle_t *)&app->in, NULL);
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
    close_input(app);
}

/* Ends the run cleanly: a close handshake, then on_closed frees the client
 * and the loop runs out of handles. */
static void finish(app_t *app, int status)
{
    set_exit(app, status);
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
    set_exit(app, status);
    app->finishing = true;
    close_aux(app);
    if (app->client != NULL) {
        wsb_client_free(app->client);
        app->client = NULL;
    }
}

/* ---- output --------------------------------------------------------------- */

static void put_json_string(FILE *f, wsb_str_t s)
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

/* ---- client callbacks ------------------------------------------------------ */

static void on_open(wsb_client_t *c, const wsb_client_welcome_t *w, void *ud)
{
    app_t *app = ud;
    (void)c;
    verbose(app, "connected to %s (client %s, node %s, broker %s)", app->a.url, w->client_id,
            w->node_id, w->version);
}

static void on_message(wsb_client_t *c, const wsb_client_message_t *m, void *ud)
{
    app_t *app = ud;
    (void)c;
    if (app->a.mode != MODE_SUB || app->finishing) {
        return;
    }
    (void)fputs("{\"topic\":", stdout);
    put_json_string(stdout, m->topic);
    (void)printf(",\"seq\":%llu", (unsigned long long)m->seq);
    if (m->epoch.p != NULL) {
        (void)fputs(",\"epoch\":", stdout);
        put_json_string(stdout, m->epoch);
    }
    (void)fputs(",\"data\":", stdout);
    (void)fwrite(m->data.p, 1, m->data.len, stdout);
    (void)fputs("}\n", stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        /* A closed pipe (| head) ends the command quietly. */
        if (errno != EPIPE) {
            say("cannot write to standard output: %s", strerror(errno));
        }
        finish(app, EXIT_FAIL);
        return;
    }
    app->received++;
    if (app->a.count > 0 && app->received >= app->a.count) {
        finish(app, EXIT_OK);
    }
}

static void on_client_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    app_t *app = ud;
    (void)c;
    if (e->status == WSB_ESERVER) {
        say("error from the broker%s%s%s: %s: %s", e->topic ? " (topic '" : "",
            e->topic ? e->topic : "", e->topic ? "')" : "", e->code, e->message);
    } else {
        say("%s", e->message);
    }
    if (e->topic != NULL && app->a.mode == MODE_SUB) {
        /* A resubscription failed: the subscriber would silently miss data. */
        finish(app, EXIT_FAIL);
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
        verbose(app, "%s: %s; reconnecting in %lld ms", what, d->reason,
                (long long)d->reconnect_ms);
        return;
    }
    say("%s to %s: %s", what, app->a.url, d->reason);
    finish(app, EXIT_FAIL);
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
        verbose(app, "subscribed: %s", app->a.patterns[app->subs_acked - 1]);
    }
}

static void on_sub_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    app_t *app = ud;
    (void)c;
    if (e->status == WSB_ECANCELED) {
        return; /* this program freed the client */
    }
    if (e->status == WSB_ESERVER) {
        say("subscribe '%s' failed: %s: %s", e->topic, e->code, e->message);
    } else {
        say("subscribe '%s' failed: %s", e->topic, e->message);
    }
    finish(app, EXIT_FAIL);
}

static const wsb_client_reply_cb_t sub_reply = {on_sub_ack, on_sub_error};

/* ---- pub -------------------------------------------------------------------- */

static void maybe_finish_pub(app_t *app);

static void on_pub_ack(wsb_client_t *c, const wsb_client_ack_t *ack, void *ud)
{
    app_t *app = ud;
    (void)c;
    app->pending--;
    if (ack->has_seq) {
        verbose(app, "published to %s: seq %llu", app->a.topic, (unsigned long long)ack->seq);
    }
    maybe_finish_pub(app);
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
    if (e->status == WSB_ESERVER) {
        say("publish to '%s'%s failed: %s: %s", app->a.topic, where, e->code, e->message);
    } else {
        say("publish to '%s'%s failed: %s", app->a.topic, where, e->message);
    }
    maybe_finish_pub(app);
}

static const wsb_client_reply_cb_t pub_reply = {on_pub_ack, on_pub_error};

/* Checks a JSON text the way the library will; prints why it is invalid. */
static bool json_ok(const char *what, const char *text, size_t len)
{
    json_error_t err;
    json_t *v =
        json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (v == NULL) {
        say("%s is not valid JSON: %s (line %d, column %d)", what, err.text, err.line, err.column);
        return false;
    }
    json_decref(v);
    return true;
}

static void in_stop(app_t *app);
static void in_start(app_t *app);

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') {
            return false;
        }
    }
    return true;
}

/* Publishes one stdin line. Returns false when input must stop. */
static bool publish_line(app_t *app, const char *p, size_t n)
{
    char what[64];
    (void)snprintf(what, sizeof(what), "standard input line %lu", app->line_no);
    if (!json_ok(what, p, n)) {
        app->in_failed = true;
        set_exit(app, EXIT_USAGE);
        return false;
    }
    int64_t rc = wsb_client_publish(app->client, app->a.topic, p, n, &pub_reply, app);
    if (rc == WSB_ETOOBIG) {
        say("%s: the message (%zu bytes) is larger than the limit (64 KiB, or the broker's if "
            "smaller)",
            what, n);
    } else if (rc < 0) {
        say("%s: %s", what, wsb_client_strerror((int)rc));
    }
    if (rc < 0) {
        app->in_failed = true;
        set_exit(app, rc == WSB_ETOOBIG ? EXIT_USAGE : EXIT_FAIL);
        return false;
    }
    app->pending++;
    return true;
}

/* Consumes complete lines from the buffer while the window has room. At
 * end of input the last line may lack its newline. */
static void process_lines(app_t *app)
{
    size_t off = 0;
    while (!app->in_failed && app->pending < STDIN_WINDOW &&
           wsb_client_queued_bytes(app->client) < WSB_CLIENT_DEFAULT_MAX_QUEUE_BYTES / 2) {
        char *nl = memchr(app->buf + off, '\n', app->buf_len - off);
        size_t n;
        if (nl != NULL) {
            n = (size_t)(nl - (app->buf + off));
        } else if (app->in_eof && off < app->buf_len) {
            n = app->buf_len - off;
        } else {
            break;
        }
        app->line_no++;
        const char *line = app->buf + off;
        off += n + (nl != NULL ? 1 : 0);
        if (n > 0 && line[n - 1] == '\r') {
            n--;
        }
        if (!blank(line, n) && !publish_line(app, line, n)) {
            break;
        }
    }
    memmove(app->buf, app->buf + off, app->buf_len - off);
    app->buf_len -= off;
    if (!app->in_failed && !app->in_eof && app->buf_len > MAX_DATA_BYTES &&
        memchr(app->buf, '\n', app->buf_len) == NULL) {
        say("standard input line %lu is longer than %u bytes", app->line_no + 1,
            (unsigned)MAX_DATA_BYTES);
        app->in_failed = true;
        set_exit(app, EXIT_USAGE);
    }
    if (app->in_failed) {
        close_input(app);
    } else if (app->pending < STDIN_WINDOW && memchr(app->buf, '\n', app->buf_len) == NULL) {
        in_start(app);
    } else {
        in_stop(app);
    }
}

static void maybe_finish_pub(app_t *app)
{
    if (app->finishing) {
        return;
    }
    if (app->a.from_stdin) {
        if (!app->in_failed) {
            process_lines(app);
        }
        bool input_done = app->in_failed || (app->in_eof && app->buf_len == 0);
        if (!input_done || app->pending > 0) {
            return;
        }
    } else if (app->pending > 0) {
        return;
    }
    finish(app, app->any_refused ? EXIT_FAIL : EXIT_OK);
}

static int buf_append(app_t *app, const char *p, size_t n)
{
    if (app->buf_len + n > app->buf_cap) {
        size_t cap = app->buf_cap ? app->buf_cap : STDIN_CHUNK;
        while (cap < app->buf_len + n) {
            cap *= 2;
        }
        char *b = realloc(app->buf, cap);
        if (b == NULL) {
            return WSB_ENOMEM;
        }
        app->buf = b;
        app->buf_cap = cap;
    }
    memcpy(app->buf + app->buf_len, p, n);
    app->buf_len += n;
    return 0;
}

static void in_data(app_t *app, const char *p, ssize_t n)
{
    if (n > 0) {
        if (buf_append(app, p, (size_t)n) != 0) {
            say("out of memory reading standard input");
            app->in_failed = true;
            set_exit(app, EXIT_FAIL);
        }
    } else if (n < 0) {
        if (n != UV_EOF) {
            say("reading standard input: %s", uv_strerror((int)n));
            set_exit(app, EXIT_FAIL);
        }
        app->in_eof = true;
        close_input(app);
    }
    maybe_finish_pub(app);
}

static void on_in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char chunk[STDIN_CHUNK];
    buf->base = chunk;
    buf->len = sizeof(chunk);
}

static void on_in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    app_t *app = s->data;
    if (n != 0) {
        in_data(app, buf->base, n);
    }
}

static void on_in_idle(uv_idle_t *h)
{
    app_t *app = h->data;
    static char chunk[STDIN_CHUNK];
    ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) {
        return;
    }
    in_data(app, chunk, n == 0 ? UV_EOF : (n < 0 ? uv_translate_sys_error(errno) : n));
}

static void in_start(app_t *app)
{
    if (!app->in_open || app->in_reading || app->in_eof || app->finishing) {
        return;
    }
    app->in_reading = true;
    if (app->in_is_file) {
        (void)uv_idle_start(&app->in.idle, on_in_idle);
    } else {
        (void)uv_read_start((uv_stream_t *)&app->in.pipe, on_in_alloc, on_in_read);
    }
}

static void in_stop(app_t *app)
{
    if (!app->in_open || !app->in_reading) {
        return;
    }
    app->in_reading = false;
    if (app->in_is_file) {
        (void)uv_idle_stop(&app->in.idle);
    } else {
        (void)uv_read_stop((uv_stream_t *)&app->in.pipe);
    }
}

static int open_input(app_t *app)
{
    int rc;
    switch (uv_guess_handle(STDIN_FILENO)) {
    case UV_TTY:
        rc = uv_tty_init(&app->loop, &app->in.tty, STDIN_FILENO, 1);
        break;
    case UV_NAMED_PIPE:
    case UV_TCP:
        rc = uv_pipe_init(&app->loop, &app->in.pipe, 0);
        if (rc == 0) {
            rc = uv_pipe_open(&app->in.pipe, STDIN_FILENO);
            if (rc != 0) {
                uv_close((uv_handle_t *)&app->in.pipe, NULL);
            }
        }
        break;
    default:
        app->in_is_file = true;
        rc = uv_idle_init(&app->loop, &app->in.idle);
        break;
    }
    if (rc != 0) {
        say("cannot read standard input: %s", uv_strerror(rc));
        return rc;
    }
    app->in.pipe.data = app;
    app->in_open = true;
    in_start(app);
    return 0;
}

/* ---- timers and signals ------------------------------------------------------ */

static void on_deadline(uv_timer_t *t)
{
    app_t *app = t->data;
    if (app->a.mode == MODE_SUB && app->a.count == 0 && app->client != NULL &&
        app->subs_acked >= app->a.npatterns) {
        finish(app, EXIT_OK); /* listened for the whole period */
        return;
    }
    const char *doing = "waiting";
    if (app->client == NULL || wsb_client_state(app->client) != WSB_CLIENT_OPEN) {
        doing = "connecting";
    } else if (app->a.mode == MODE_SUB) {
        doing = app->subs_acked < app->a.npatterns ? "subscribing" : "waiting for messages";
    } else {
        doing = "waiting for the broker's acknowledgement";
    }
    if (app->a.mode == MODE_SUB && app->a.count > 0) {
        say("timed out after %g s %s (%ld of %ld messages received)", app->a.timeout, doing,
            app->received, app->a.count);
    } else {
        say("timed out after %g s %s", app->a.timeout, doing);
    }
    abort_now(app, EXIT_TIMEOUT);
}

static void on_signal(uv_signal_t *s, int signum)
{
    app_t *app = s->data;
    verbose(app, "%s received, closing", signum == SIGINT ? "SIGINT" : "SIGTERM");
    if (app->a.mode == MODE_PUB && app->pending > 0) {
        say("interrupted with %zu publish(es) not acknowledged", app->pending);
        finish(app, EXIT_FAIL);
        return;
    }
    finish(app, EXIT_OK);
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

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"token", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'w'},
        {"connect-timeout", required_argument, NULL, 'C'},
        {"reconnect", no_argument, NULL, 'r'},
        {"verbose", no_argument, NULL, 'v'},
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
    while ((ch = getopt_long(argc, argv, ":u:t:n:w:rvhV", opts, NULL)) != -1) {
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
        case 'r':
            a->reconnect = true;
            break;
        case 'v':
            a->verbose = true;
            break;
        case 'h':
            for (size_t i = 0; i < sizeof(help_text) / sizeof(help_text[0]); i++) {
                (void)fputs(help_text[i], stdout);
            }
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
    int rest = argc - optind;
    char **args = argv + optind;
    if (rest < 1) {
        return usage_error("missing command: sub or pub");
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
        if (a->count != 0) {
            return usage_error("--count applies to sub only");
        }
        a->topic = args[1];
        a->json = args[2];
        a->from_stdin = strcmp(args[2], "-") == 0;
    } else {
        return usage_error("unknown command '%s' (expected sub or pub)", args[0]);
    }
    return -1;
}

/* Checks everything that can be checked before connecting. */
static int validate(const args_t *a)
{
    const char *why = NULL;
    if (a->mode == MODE_SUB) {
        for (int i = 0; i < a->npatterns; i++) {
            const char *p = a->patterns[i];
            if (wsb_topic_check(p, strlen(p), WSB_TOPIC_PATTERN, &why) != 0) {
                say("invalid pattern '%s': %s", p, why);
                return EXIT_USAGE;
            }
        }
        return -1;
    }
    if (wsb_topic_check(a->topic, strlen(a->topic), WSB_TOPIC_EXACT, &why) != 0) {
        say("invalid topic '%s': %s", a->topic, why);
        return EXIT_USAGE;
    }
    if (!a->from_stdin && !json_ok("the message", a->json, strlen(a->json))) {
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
    o.connect_timeout_ms = (uint32_t)(a->connect_timeout * 1000.0);
    o.reconnect = a->reconnect;
    char why[256];
    if (wsb_client_options_check(&o, why, sizeof(why)) != 0) {
        say("%s", why);
        return EXIT_USAGE;
    }
    app->client = wsb_client_new(&o, &client_cb, app);
    if (app->client == NULL || wsb_client_uv_attach(app->client, &app->loop) != 0) {
        say("out of memory");
        return EXIT_FAIL;
    }
    if (a->mode == MODE_SUB) {
        for (int i = 0; i < a->npatterns; i++) {
            int64_t rc = wsb_client_subscribe(app->client, a->patterns[i], &sub_reply, app);
            if (rc < 0) {
                say("subscribe '%s': %s", a->patterns[i], wsb_client_strerror((int)rc));
                return EXIT_USAGE;
            }
        }
    } else if (!a->from_stdin) {
        int64_t rc =
            wsb_client_publish(app->client, a->topic, a->json, strlen(a->json), &pub_reply, app);
        if (rc < 0) {
            say("publish to '%s': %s%s", a->topic, wsb_client_strerror((int)rc),
                rc == WSB_ETOOBIG ? " (the limit is 64 KiB)" : "");
            return EXIT_USAGE;
        }
        app->pending = 1;
    }
    int rc = wsb_client_connect(app->client);
    if (rc == WSB_ENOTSUP) {
        say("%s: wss:// is not supported by this version (no TLS yet); use ws://", a->url);
        return EXIT_USAGE;
    }
    if (rc != 0) {
        say("cannot connect to %s: %s", a->url,
            rc > -30000 ? uv_strerror(rc) : wsb_client_strerror(rc));
        return EXIT_FAIL;
    }
    if (a->mode == MODE_PUB && a->from_stdin && open_input(app) != 0) {
        return EXIT_FAIL;
    }
    return -1;
}

static void start_aux(app_t *app)
{
    if (app->a.timeout > 0) {
        (void)uv_timer_init(&app->loop, &app->deadline);
        app->deadline.data = app;
        app->deadline_open = true;
        (void)uv_timer_start(&app->deadline, on_deadline, (uint64_t)(app->a.timeout * 1000.0), 0);
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
        say("cannot create the event loop");
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
        say("event loop closed with handles open");
    }
    free(app.buf);
    if (app.in_is_file || app.a.from_stdin) {
        uv_tty_reset_mode();
    }
    return app.exit_status;
}
