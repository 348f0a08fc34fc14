/*
 * cli_exec.c - wsbroker-cli reply --exec CMD: each request runs
 * `/bin/sh -c CMD` with the request's data (one JSON line) on its standard
 * input and the topic as $1; what it prints on standard output, when it
 * exits 0 and that is one JSON value, is published to the request's
 * reply_to. Anything else (a non-zero exit, a signal, no JSON, more than 64
 * KiB) answers nothing: the requester gets the broker's timeout, and the
 * reason is printed on standard error.
 *
 * Bounds: at most EXEC_MAX_JOBS commands run at once (a request beyond is
 * not answered); each command's output is kept up to MAX_DATA_BYTES. A job
 * owns three handles (process, stdin pipe, stdout pipe) and is freed in the
 * last close callback.
 */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define EXEC_MAX_JOBS 16

struct cli_job_s {
    struct cli_job_s *next;
    app_t *app;
    uv_process_t proc;
    uv_pipe_t in;
    uv_pipe_t out;
    uv_write_t wr;
    char *input; /* the request's data and a newline */
    char *reply_to;
    char *topic;
    char *buf; /* the command's output */
    size_t len;
    bool overflow;
    bool exited;
    int64_t exit_status;
    int term_signal;
    int closed; /* handles closed, of 3 */
};

static void job_unlink(app_t *app, cli_job_t *j)
{
    for (cli_job_t **p = &app->jobs; *p != NULL; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            app->njobs--;
            return;
        }
    }
}

/* All three handles are closed: answer (or say why not) and free. */
static void job_done(cli_job_t *j)
{
    app_t *app = j->app;
    job_unlink(app, j);
    app->pending--; /* the job; a publish below counts again */
    while (j->len > 0 && strchr(" \t\r\n", j->buf[j->len - 1]) != NULL) {
        j->len--;
    }
    if (app->finishing || app->client == NULL) {
        /* Ending: the answer could not be sent anyway. */
    } else if (!j->exited || j->term_signal != 0 || j->exit_status != 0) {
        app->any_refused = true;
        cli_say("--exec for a request on '%s' %s %d; not answered", j->topic,
                j->term_signal != 0 ? "was killed by signal" : "exited with status",
                j->term_signal != 0 ? j->term_signal : (int)j->exit_status);
    } else if (j->overflow) {
        app->any_refused = true;
        cli_say("--exec for a request on '%s' printed more than 64 KiB; not answered", j->topic);
    } else if (cli_json_ok("the --exec output", j->buf, j->len)) {
        int64_t rc =
            wsb_client_publish(app->client, j->reply_to, j->buf, j->len, &cli_answer_reply, app);
        if (rc < 0) {
            app->any_refused = true;
            cli_say("reply to '%s': %s", j->reply_to, wsb_client_strerror((int)rc));
        } else {
            app->pending++;
        }
    } else {
        app->any_refused = true;
    }
    free(j->input);
    free(j->reply_to);
    free(j->topic);
    free(j->buf);
    free(j);
}

static void on_job_closed(uv_handle_t *h)
{
    cli_job_t *j = h->data;
    if (++j->closed == 3) {
        job_done(j);
    }
}

static void close_once(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, on_job_closed);
    }
}

/* The command runs in its own process group (UV_PROCESS_DETACHED): the
 * whole group is stopped, so a grandchild cannot hold the output pipe. */
static void kill_job(cli_job_t *j)
{
    if (!j->exited && j->proc.pid > 0) {
        (void)kill(-j->proc.pid, SIGTERM);
    }
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    cli_job_t *j = p->data;
    j->exited = true;
    j->exit_status = status;
    j->term_signal = sig;
    close_once((uv_handle_t *)p);
}

static void on_written(uv_write_t *w, int status)
{
    cli_job_t *j = w->data;
    (void)status; /* a command that does not read its input may still answer */
    close_once((uv_handle_t *)&j->in);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    cli_job_t *j = h->data;
    (void)hint;
    /* One byte more than the limit tells an overflow from a full answer. */
    *b = uv_buf_init(j->buf + j->len, (unsigned)(MAX_DATA_BYTES + 1 - j->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    cli_job_t *j = s->data;
    (void)b;
    if (n > 0) {
        j->len += (size_t)n;
        if (j->len > MAX_DATA_BYTES) {
            j->overflow = true;
            kill_job(j);
            close_once((uv_handle_t *)s);
        }
    } else if (n < 0) {
        close_once((uv_handle_t *)s); /* EOF or an error */
    }
}

void cli_exec_answer(app_t *app, const wsb_client_message_t *m)
{
    if (app->njobs >= EXEC_MAX_JOBS) {
        app->any_refused = true;
        cli_say("%d --exec commands running; the request on '%s' is not answered", EXEC_MAX_JOBS,
                m->topic.p);
        return;
    }
    cli_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->input = malloc(m->data.len + 1)) == NULL ||
        (j->buf = malloc(MAX_DATA_BYTES + 1)) == NULL ||
        (j->reply_to = strdup(m->reply_to.p)) == NULL || (j->topic = strdup(m->topic.p)) == NULL) {
        cli_say("out of memory: the request on '%s' is not answered", m->topic.p);
        if (j != NULL) {
            free(j->input);
            free(j->buf);
            free(j->reply_to);
            free(j);
        }
        return;
    }
    memcpy(j->input, m->data.p, m->data.len);
    j->input[m->data.len] = '\n';
    j->app = app;
    (void)uv_pipe_init(&app->loop, &j->in, 0);
    (void)uv_pipe_init(&app->loop, &j->out, 0);
    j->proc.data = j->in.data = j->out.data = j->wr.data = j;
    /* uv_spawn takes char **: the fixed words live in writable arrays. */
    static char sh[] = "/bin/sh";
    static char dash_c[] = "-c";
    static char name[] = PROG;
    char *args[] = {sh, dash_c, app->a.exec, name, j->topic, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&j->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&j->out},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    uv_process_options_t o = {
        .exit_cb = on_exit_cb,
        .file = args[0],
        .args = args,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    j->next = app->jobs;
    app->jobs = j;
    app->njobs++;
    app->pending++;
    int rc = uv_spawn(&app->loop, &j->proc, &o);
    if (rc != 0) {
        cli_say("cannot run --exec: %s", uv_strerror(rc));
        j->exited = true;
        j->exit_status = 127;
        uv_close((uv_handle_t *)&j->proc, on_job_closed);
        close_once((uv_handle_t *)&j->in);
        close_once((uv_handle_t *)&j->out);
        return;
    }
    uv_buf_t b = uv_buf_init(j->input, (unsigned)(m->data.len + 1));
    if (uv_write(&j->wr, (uv_stream_t *)&j->in, &b, 1, on_written) != 0) {
        close_once((uv_handle_t *)&j->in);
    }
    if (uv_read_start((uv_stream_t *)&j->out, on_alloc, on_read) != 0) {
        close_once((uv_handle_t *)&j->out);
    }
}

void cli_exec_stop(app_t *app)
{
    for (cli_job_t *j = app->jobs; j != NULL; j = j->next) {
        kill_job(j);
        close_once((uv_handle_t *)&j->in);
        close_once((uv_handle_t *)&j->out);
    }
}
