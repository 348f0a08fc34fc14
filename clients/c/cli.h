/*
 * cli.h - private to wsbroker-cli: its constants, its state, and what
 * cli.c (commands, the client's callbacks, main), cli_input.c (pub -:
 * standard input, line by line, with flow control) and cli_help.c (the
 * manual) share.
 *
 * Exit statuses (a contract scripts rely on):
 *   0  success
 *   1  the broker refused a request, or the connection failed or was lost
 *   2  usage error or invalid input (caught before connecting)
 *   3  --timeout expired; req: the broker's `timeout` (no reply in time)
 *   4  req: no_responders (nobody subscribes to the topic)
 */
#ifndef WSB_CLI_H
#define WSB_CLI_H

#include "wsb/client.h"

#include <stdbool.h>
#include <stdio.h>
#include <uv.h>

#define PROG           "wsbroker-cli"
#define DEFAULT_URL    "ws://127.0.0.1:8080/ws"
#define EXIT_OK        0
#define EXIT_FAIL      1
#define EXIT_USAGE     2
#define EXIT_TIMEOUT   3
#define EXIT_NO_REPLY  4  /* req: no_responders */
#define STDIN_WINDOW   64 /* publishes from stdin awaiting their ack, at most */
#define STDIN_CHUNK    ((size_t)64 * 1024)
#define MAX_DATA_BYTES WSB_CLIENT_DEFAULT_MAX_MESSAGE_SIZE

typedef enum { MODE_SUB = 1, MODE_PUB, MODE_PRESENCE, MODE_REQ, MODE_REPLY } cli_mode_t;

typedef struct cli_job_s cli_job_t; /* a running reply --exec command (cli_exec.c) */

typedef struct {
    cli_mode_t mode;
    const char *url;
    const char *token;
    const char *ca_file; /* wss:// trust anchors instead of the system store */
    bool insecure;       /* wss:// without certificate verification */
    long count;
    double timeout;
    double connect_timeout;
    bool reconnect;
    bool verbose;
    char **patterns; /* sub; reply: its one PATTERN */
    int npatterns;
    const char *topic;
    const char *json; /* pub, req: the message; reply: the answer */
    char *exec;       /* reply --exec: the command that makes each answer */
    bool from_stdin;
    bool stats; /* presence: the counts instead of the members */
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
    /* req: the request's timeout_ms (the broker's default when not given) */
    uint32_t req_timeout_ms;
    /* pub; reply: its answers */
    size_t pending; /* publishes awaiting their reply (reply: and --exec jobs) */
    cli_job_t *jobs;
    int njobs;
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

/* Prints "wsbroker-cli: MESSAGE\n" on stderr. */
void cli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "wsbroker-cli: WHAT failed: CODE: MESSAGE" for a broker error,
 * "wsbroker-cli: WHAT failed: MESSAGE" for a local one. */
void cli_say_failed(const char *what, const wsb_client_error_t *e);

/* Like cli_say, only with --verbose. */
void cli_verbose(const app_t *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends the run cleanly with `status` (a close handshake first). */
void cli_finish(app_t *app, int status);

/* Flushes standard output; a failed write ends the run with 1 (false). */
bool cli_flush_stdout(app_t *app);

/* Writes `s` as a JSON string. */
void cli_put_json_string(FILE *f, wsb_str_t s);

/* (Re)arms the --timeout deadline to fire in `ms`. */
void cli_arm_deadline(app_t *app, uint64_t ms);

/* cli_req.c: req queues its request (-1 to go on, else the exit status);
 * cli_req_opened() arms its deadline once the connection is open. */
int cli_req_start(app_t *app);
void cli_req_opened(app_t *app);

/* cli_req.c: reply answers `m`: it is a request (it has a reply_to) and
 * --count is not reached counting the answers still in flight. */
bool cli_reply_wants(const app_t *app, const wsb_client_message_t *m);

/* The reply callbacks of reply's answers (they keep app->pending). */
extern const wsb_client_reply_cb_t cli_answer_reply;

/* cli_exec.c: reply --exec runs the command for the request `m`, then
 * publishes its output to m->reply_to; cli_exec_stop() stops them all. */
void cli_exec_answer(app_t *app, const wsb_client_message_t *m);
void cli_exec_stop(app_t *app);

/* cli_req.c: reply publishes its answer to the request `m` (m->reply_to). */
void cli_reply_answer(app_t *app, const wsb_client_message_t *m);

/* Records the exit status; the first one recorded wins. */
void cli_set_exit(app_t *app, int status);

/* True if `text` is one JSON value as the library will check it; otherwise
 * prints why, naming `what`. */
bool cli_json_ok(const char *what, const char *text, size_t len);

/* pub: ends the run once every publish is answered (and, for pub -, the
 * input is done). */
void cli_maybe_finish_pub(app_t *app);

/* The reply callbacks of every publish (they keep app->pending). */
extern const wsb_client_reply_cb_t cli_pub_reply;

/* cli_input.c: opens standard input as a pipe, a tty or a file and starts
 * reading. 0 or a libuv error (printed). */
int cli_input_open(app_t *app);

/* Publishes the complete lines read so far while fewer than STDIN_WINDOW
 * are awaiting their ack, and starts or stops reading accordingly. */
void cli_input_process(app_t *app);

/* Stops reading and closes the input handle (idempotent). */
void cli_input_close(app_t *app);

/* cli_help.c: the manual (wsbroker-cli --help). */
void cli_print_help(FILE *out);

/* `wsbroker-cli token ...` / `wsbroker-cli verify TOKEN ...` (cli_token.c):
 * argv[0] is the command; returns the exit status. */
int cli_token_main(int argc, char **argv);

#endif
