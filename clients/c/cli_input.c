/*
 * cli_input.c - `wsbroker-cli pub TOPIC -`: standard input, one JSON value
 * per line, published in order with flow control.
 *
 * A pipe or a tty is read as a libuv stream; a regular file (or /dev/null)
 * cannot be polled, so it is read with read(2) from an idle handle, one chunk
 * per loop turn (it never blocks). Reading stops while STDIN_WINDOW publishes
 * await their ack or the client's queue is half full, and resumes as acks
 * arrive, so memory stays bounded whatever the input's size. Bytes read but
 * not yet published wait in app->buf (at most one chunk plus one line).
 */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_input_close(app_t *app)
{
    if (app->in_open) {
        app->in_open = false;
        app->in_reading = false;
        uv_close((uv_handle_t *)&app->in, NULL);
    }
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
    if (!cli_json_ok(what, p, n)) {
        app->in_failed = true;
        cli_set_exit(app, EXIT_USAGE);
        return false;
    }
    int64_t rc = wsb_client_publish(app->client, app->a.topic, p, n, &cli_pub_reply, app);
    if (rc == WSB_ETOOBIG) {
        cli_say("%s: the message (%zu bytes) is larger than the limit (64 KiB, or the broker's if "
                "smaller)",
                what, n);
    } else if (rc < 0) {
        cli_say("%s: %s", what, wsb_client_strerror((int)rc));
    }
    if (rc < 0) {
        app->in_failed = true;
        cli_set_exit(app, rc == WSB_ETOOBIG ? EXIT_USAGE : EXIT_FAIL);
        return false;
    }
    app->pending++;
    return true;
}

/* Consumes complete lines from the buffer while the window has room. At
 * end of input the last line may lack its newline. */
void cli_input_process(app_t *app)
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
    /* A line that cannot fit a message is refused before it is complete, but
     * only past twice the limit: up to there the whole line is read and
     * refused as one message, whatever sizes the reads of the pipe came in. */
    if (!app->in_failed && !app->in_eof && app->buf_len > 2 * (size_t)MAX_DATA_BYTES &&
        memchr(app->buf, '\n', app->buf_len) == NULL) {
        cli_say("standard input line %lu is longer than %u bytes", app->line_no + 1,
                (unsigned)MAX_DATA_BYTES);
        app->in_failed = true;
        cli_set_exit(app, EXIT_USAGE);
    }
    if (app->in_failed) {
        cli_input_close(app);
    } else if (app->pending < STDIN_WINDOW && memchr(app->buf, '\n', app->buf_len) == NULL) {
        in_start(app);
    } else {
        in_stop(app);
    }
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
            cli_say("out of memory reading standard input");
            app->in_failed = true;
            cli_set_exit(app, EXIT_FAIL);
        }
    } else if (n < 0) {
        if (n != UV_EOF) {
            cli_say("reading standard input: %s", uv_strerror((int)n));
            cli_set_exit(app, EXIT_FAIL);
        }
        app->in_eof = true;
        cli_input_close(app);
    }
    cli_maybe_finish_pub(app);
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

int cli_input_open(app_t *app)
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
        cli_say("cannot read standard input: %s", uv_strerror(rc));
        return rc;
    }
    app->in.pipe.data = app;
    app->in_open = true;
    in_start(app);
    return 0;
}
