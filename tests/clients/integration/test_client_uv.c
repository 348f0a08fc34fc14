/*
 * test_client_uv.c - the C client on libuv against the real wsbroker.
 *
 * Each test starts its own broker ($WSBROKER_BIN, --host 127.0.0.1
 * --port 0 --port-file) and stops it by PID with SIGTERM, expecting exit 0
 * and no sanitizer report in its stderr. Waits are bounded: the loop runs
 * in non-blocking turns until a condition holds or a deadline passes.
 * At the end of each test the clients are freed and the loop must close
 * with no handle left (the adapter released everything).
 */
#define _DEFAULT_SOURCE 1

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four headers above first. */
#include "wsb/client.h"

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

/* ---- the broker process ---- */

typedef struct {
    pid_t pid;
    int port;
    char dir[64];
    char port_file[96];
    char log_file[96];
} broker_t;

/* Brokers started and not yet stopped, so a failed test (cmocka jumps out
 * of it) still stops its processes in teardown. */
static broker_t *live_brokers[4];

static void track(broker_t *b, bool alive)
{
    for (size_t i = 0; i < 4; i++) {
        if (alive ? live_brokers[i] == NULL : live_brokers[i] == b) {
            live_brokers[i] = alive ? b : NULL;
            return;
        }
    }
}

static broker_t broker_pool[2];
static size_t broker_next;

static broker_t *broker_slot(void)
{
    broker_t *b = &broker_pool[broker_next++ % 2];
    memset(b, 0, sizeof(*b));
    return b;
}

static double now_s(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void broker_start_on(broker_t *b, int port, const char *extra)
{
    const char *bin = getenv("WSBROKER_BIN");
    if (bin == NULL || access(bin, X_OK) != 0) {
        fail_msg("WSBROKER_BIN must name the wsbroker binary (got %s)", bin ? bin : "nothing");
    }
    if (b->dir[0] == '\0') {
        (void)snprintf(b->dir, sizeof(b->dir), "/tmp/wsb-client-uv-XXXXXX");
        assert_non_null(mkdtemp(b->dir));
    }
    (void)snprintf(b->port_file, sizeof(b->port_file), "%s/port", b->dir);
    (void)snprintf(b->log_file, sizeof(b->log_file), "%s/stderr", b->dir);
    (void)unlink(b->port_file);
    char port_s[16];
    (void)snprintf(port_s, sizeof(port_s), "%d", port);
    /* posix_spawn takes char *const[]: the arguments live in writable arrays. */
    static char args[24][160];
    char *argv[25];
    const char *fixed[] = {
        bin,          "--host",      "127.0.0.1", "--port",     port_s, "--port-file",
        b->port_file, "--log-level", "warn",      "--web-root", ""};
    int argc = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        (void)snprintf(args[argc], sizeof(args[argc]), "%s", fixed[i]);
        argv[argc] = args[argc];
        argc++;
    }
    char extra_copy[768] = "";
    if (extra != NULL) {
        (void)snprintf(extra_copy, sizeof(extra_copy), "%s", extra);
        for (char *tok = strtok(extra_copy, " "); tok != NULL && argc < 24;
             tok = strtok(NULL, " ")) {
            (void)snprintf(args[argc], sizeof(args[argc]), "%s", tok);
            argv[argc] = args[argc];
            argc++;
        }
    }
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(
        posix_spawn_file_actions_addopen(&fa, 2, b->log_file, O_WRONLY | O_CREAT | O_APPEND, 0600),
        0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0), 0);
    int rc = posix_spawn(&b->pid, bin, &fa, NULL, argv, environ);
    (void)posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    track(b, true);
    double deadline = now_s() + 10.0;
    while (now_s() < deadline) {
        FILE *f = fopen(b->port_file, "r");
        if (f != NULL) {
            int p = 0;
            int n = fscanf(f, "%d", &p);
            (void)fclose(f);
            if (n == 1 && p > 0) {
                b->port = p;
                return;
            }
        }
        int st;
        if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
            fail_msg("wsbroker exited at start (status %d); see %s", st, b->log_file);
        }
        (void)usleep(10000);
    }
    fail_msg("wsbroker did not write %s within 10 s", b->port_file);
}

static void broker_start(broker_t *b, const char *extra)
{
    broker_start_on(b, 0, extra);
}

/* SIGTERM, then exit 0 within 15 s and a stderr with no sanitizer report. */
static void broker_stop(broker_t *b)
{
    if (b->pid <= 0) {
        return;
    }
    assert_int_equal(kill(b->pid, SIGTERM), 0);
    double deadline = now_s() + 15.0;
    int st = 0;
    pid_t r = 0;
    while ((r = waitpid(b->pid, &st, WNOHANG)) == 0 && now_s() < deadline) {
        (void)usleep(10000);
    }
    if (r == 0) {
        (void)kill(b->pid, SIGKILL);
        (void)waitpid(b->pid, &st, 0);
        b->pid = 0;
        track(b, false);
        fail_msg("wsbroker did not exit within 15 s of SIGTERM");
    }
    b->pid = 0;
    track(b, false);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    FILE *f = fopen(b->log_file, "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strstr(line, "AddressSanitizer") || strstr(line, "runtime error:") ||
                strstr(line, "LeakSanitizer")) {
                (void)fclose(f);
                fail_msg("sanitizer report in the broker's stderr: %s", line);
            }
        }
        (void)fclose(f);
    }
}

static void broker_cleanup(broker_t *b)
{
    broker_stop(b);
    (void)unlink(b->port_file);
    (void)unlink(b->log_file);
    (void)rmdir(b->dir);
}

/* ---- a client under test ---- */

typedef struct {
    wsb_client_t *c;
    int64_t disc_reconnect;
    uint64_t last_seq;
    char *last_data;
    size_t last_data_len;
    uint64_t welcome_max;
    uint64_t msg_seq[4096];
    int opens;
    int disconnects;
    int closed;
    int disc_status;
    int disc_close_code;
    int disc_http;
    int acks;
    int errors;
    int last_error_status;
    int msgs;
    bool free_on_message;
    bool answer_requests; /* a responder: publish {"echo":data} to every reply_to */
    int replies;          /* wsb_client_request() answers */
    char client_id[64];
    char reply_data[256];
    char reply_from[256];
    char disc_reason[256];
    char last_code[64];
    char last_message[256];
    char last_topic[300];
} peer_t;

static void p_open(wsb_client_t *c, const wsb_client_welcome_t *w, void *ud)
{
    peer_t *p = ud;
    (void)c;
    p->opens++;
    p->welcome_max = w->max_message_size;
    (void)snprintf(p->client_id, sizeof(p->client_id), "%s", w->client_id);
    assert_int_equal(w->protocol, 1);
}

static void p_message(wsb_client_t *c, const wsb_client_message_t *m, void *ud)
{
    peer_t *p = ud;
    if (p->msgs < 4096) {
        p->msg_seq[p->msgs] = m->seq;
    }
    p->msgs++;
    (void)snprintf(p->last_topic, sizeof(p->last_topic), "%s", m->topic.p);
    free(p->last_data);
    p->last_data = strdup(m->data.p);
    assert_non_null(p->last_data);
    p->last_data_len = m->data.len;
    if (p->answer_requests && m->reply_to.p != NULL) {
        char answer[300];
        int n = snprintf(answer, sizeof(answer), "{\"echo\":%s}", m->data.p);
        assert_true(n > 0 && (size_t)n < sizeof(answer));
        assert_true(wsb_client_publish(c, m->reply_to.p, answer, (size_t)n, NULL, NULL) == 0);
    }
    if (p->free_on_message) {
        wsb_client_free(c);
        p->c = NULL;
    }
}

static void p_error(wsb_client_t *c, const wsb_client_error_t *e, void *ud)
{
    peer_t *p = ud;
    (void)c;
    p->errors++;
    p->last_error_status = e->status;
    (void)snprintf(p->last_code, sizeof(p->last_code), "%s", e->code ? e->code : "");
    (void)snprintf(p->last_message, sizeof(p->last_message), "%s", e->message);
}

static void p_disconnect(wsb_client_t *c, const wsb_client_disconnect_t *d, void *ud)
{
    peer_t *p = ud;
    (void)c;
    p->disconnects++;
    p->disc_status = d->status;
    p->disc_close_code = d->close_code;
    p->disc_http = d->http_status;
    p->disc_reconnect = d->reconnect_ms;
    (void)snprintf(p->disc_reason, sizeof(p->disc_reason), "%s", d->reason);
}

static void p_closed(wsb_client_t *c, void *ud)
{
    peer_t *p = ud;
    (void)c;
    p->closed++;
}

static const wsb_client_callbacks_t peer_cb = {
    .on_open = p_open,
    .on_message = p_message,
    .on_error = p_error,
    .on_disconnect = p_disconnect,
    .on_closed = p_closed,
};

static void p_ack(wsb_client_t *c, const wsb_client_ack_t *a, void *ud)
{
    peer_t *p = ud;
    (void)c;
    p->acks++;
    if (a->has_seq) {
        p->last_seq = a->seq;
    }
}

static const wsb_client_reply_cb_t reply = {p_ack, p_error};

/* Records a wsb_client_request() answer: its data and from as JSON text. */
static void p_reply(wsb_client_t *c, const wsb_client_ack_t *a, void *ud)
{
    peer_t *p = ud;
    (void)c;
    p->replies++;
    (void)snprintf(p->reply_data, sizeof(p->reply_data), "%s", a->data.p);
    char *from = a->from != NULL ? json_dumps(a->from, JSON_COMPACT) : NULL;
    (void)snprintf(p->reply_from, sizeof(p->reply_from), "%s", from != NULL ? from : "-");
    free(from);
}

static const wsb_client_reply_cb_t request_reply = {p_reply, p_error};

static uv_loop_t loop;

/* Peers not yet freed, so teardown can free them after a failed test. */
static peer_t *live_peers[8];

static void peer_track(peer_t *p, bool alive)
{
    for (size_t i = 0; i < 8; i++) {
        if (alive ? live_peers[i] == NULL : live_peers[i] == p) {
            live_peers[i] = alive ? p : NULL;
            return;
        }
    }
}

/* Peers and brokers live in static pools, not on a test's stack: cmocka
 * leaves a failed test by longjmp and teardown still reaches them. */
static peer_t peer_pool[8];

static peer_t *peer_new_tls(const char *url, bool reconnect, const char *ca_file, bool insecure)
{
    peer_t *p = NULL;
    for (size_t i = 0; i < 8 && p == NULL; i++) {
        bool used = false;
        for (size_t j = 0; j < 8; j++) {
            used = used || live_peers[j] == &peer_pool[i];
        }
        if (!used) {
            p = &peer_pool[i];
        }
    }
    assert_non_null(p);
    memset(p, 0, sizeof(*p));
    peer_track(p, true);
    wsb_client_options_t o;
    wsb_client_options_init(&o);
    o.url = url;
    o.reconnect = reconnect;
    o.reconnect_min_ms = 50;
    o.reconnect_max_ms = 200;
    o.connect_timeout_ms = 5000;
    o.ca_file = ca_file;
    o.insecure = insecure;
    p->c = wsb_client_new(&o, &peer_cb, p);
    assert_non_null(p->c);
    assert_int_equal(wsb_client_uv_attach(p->c, &loop), 0);
    return p;
}

static peer_t *peer_new(const char *url, bool reconnect)
{
    return peer_new_tls(url, reconnect, NULL, false);
}

static void peer_free(peer_t *p)
{
    peer_track(p, false);
    wsb_client_free(p->c);
    p->c = NULL;
    free(p->last_data);
    p->last_data = NULL;
}

static char *url_for(const broker_t *b, const char *path)
{
    static char url[4][128];
    static int i;
    i = (i + 1) % 4;
    (void)snprintf(url[i], sizeof(url[i]), "ws://127.0.0.1:%d%s", b->port, path);
    return url[i];
}

/* Runs the loop until *counter >= want or `seconds` pass. */
static bool wait_count(const int *counter, int want, double seconds)
{
    double deadline = now_s() + seconds;
    while (*counter < want) {
        if (now_s() > deadline) {
            return false;
        }
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        if (*counter < want) {
            (void)usleep(1000);
        }
    }
    return true;
}

#define WAIT(counter, want)                                                                        \
    do {                                                                                           \
        if (!wait_count(&(counter), (want), 10.0)) {                                               \
            fail_msg("timed out waiting for %s >= %d (is %d)", #counter, (int)(want),              \
                     (int)(counter));                                                              \
        }                                                                                          \
    } while (0)

static int setup(void **state)
{
    (void)state;
    return uv_loop_init(&loop);
}

/* Every client is freed by now (after a failure, teardown frees them): the
 * adapter must leave no handle behind. The wait is bounded so that a leaked
 * handle fails the test instead of hanging it. */
static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < 8; i++) {
        if (live_peers[i] != NULL) {
            peer_free(live_peers[i]);
        }
    }
    for (size_t i = 0; i < 4; i++) {
        if (live_brokers[i] != NULL && live_brokers[i]->pid > 0) {
            (void)kill(live_brokers[i]->pid, SIGKILL);
            (void)waitpid(live_brokers[i]->pid, NULL, 0);
            live_brokers[i] = NULL;
        }
    }
    double deadline = now_s() + 10.0;
    while (uv_loop_alive(&loop) && now_s() < deadline) {
        (void)uv_run(&loop, UV_RUN_NOWAIT);
        (void)usleep(1000);
    }
    if (uv_loop_alive(&loop)) {
        (void)fprintf(stderr, "teardown: the loop still has active handles after 10 s\n");
        return -1;
    }
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_pubsub_ack_error_unsubscribe(void **state)
{
    (void)state;
    peer_t *pub = NULL;
    peer_t *sub = NULL;
    broker_t *b = broker_slot();
    broker_start(b, NULL);
    sub = peer_new(url_for(b, "/ws"), false);
    pub = peer_new(url_for(b, "/ws"), false);
    assert_int_equal(wsb_client_connect(sub->c), 0);
    assert_int_equal(wsb_client_connect(pub->c), 0);
    assert_true(wsb_client_subscribe(sub->c, "a.*", &reply, sub) > 0);
    assert_true(wsb_client_subscribe(sub->c, "a.>", &reply, sub) > 0);
    assert_true(wsb_client_subscribe(sub->c, "sync", &reply, sub) > 0);
    WAIT(sub->acks, 3);
    WAIT(pub->opens, 1);
    assert_int_equal(sub->opens, 1);
    assert_int_equal(wsb_client_subscription_count(sub->c), 3);

    const char *data = "{\"n\":1,\"s\":\"h\\u00e9\",\"a\":[true,null]}";
    assert_true(wsb_client_publish(pub->c, "a.b", data, strlen(data), &reply, pub) > 0);
    WAIT(pub->acks, 1);
    assert_int_equal(pub->last_seq, 1);
    WAIT(sub->msgs, 1);
    assert_string_equal(sub->last_topic, "a.b");
    assert_string_equal(sub->last_data, "{\"n\":1,\"s\":\"h\xc3\xa9\",\"a\":[true,null]}");
    assert_int_equal(sub->msg_seq[0], 1);

    /* The broker refuses a reserved topic: code and message reach the callback. */
    assert_true(wsb_client_publish(pub->c, "$sys.x", "1", 1, &reply, pub) > 0);
    WAIT(pub->errors, 1);
    assert_int_equal(pub->last_error_status, WSB_ESERVER);
    assert_string_equal(pub->last_code, "forbidden");
    assert_non_null(strstr(pub->last_message, "reserved"));

    /* After both unsubscribes are acknowledged, a.b is no longer delivered;
     * "sync" proves the later publish went through. */
    assert_true(wsb_client_unsubscribe(sub->c, "a.*", &reply, sub) > 0);
    assert_true(wsb_client_unsubscribe(sub->c, "a.>", &reply, sub) > 0);
    WAIT(sub->acks, 5);
    assert_int_equal(wsb_client_subscription_count(sub->c), 1);
    assert_true(wsb_client_unsubscribe(sub->c, "never", &reply, sub) > 0);
    WAIT(sub->errors, 1);
    assert_string_equal(sub->last_code, "not_subscribed");
    assert_true(wsb_client_publish(pub->c, "a.b", "2", 1, NULL, NULL) == 0);
    assert_true(wsb_client_publish(pub->c, "sync", "3", 1, &reply, pub) > 0);
    WAIT(sub->msgs, 2);
    assert_string_equal(sub->last_topic, "sync");
    assert_string_equal(sub->last_data, "3");

    assert_int_equal(wsb_client_close(sub->c), 0);
    assert_int_equal(wsb_client_close(pub->c), 0);
    WAIT(sub->closed, 1);
    WAIT(pub->closed, 1);
    assert_int_equal(sub->disc_status, 0);
    assert_int_equal(sub->disc_close_code, 1000);
    assert_int_equal(sub->disconnects, 1);
    peer_free(sub);
    peer_free(pub);
    broker_cleanup(b);
}

static void test_queued_before_connect_and_own_message(void **state)
{
    (void)state;
    peer_t *p = NULL;
    broker_t *b = broker_slot();
    broker_start(b, NULL);
    p = peer_new(url_for(b, "/ws"), false);
    /* Queued while idle: the subscribe goes first, so the publisher gets
     * its own message. */
    assert_true(wsb_client_subscribe(p->c, "self.>", &reply, p) > 0);
    assert_true(wsb_client_publish(p->c, "self.x", "\"me\"", 4, &reply, p) > 0);
    assert_int_equal(wsb_client_pending(p->c), 2);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->acks, 2);
    WAIT(p->msgs, 1);
    assert_string_equal(p->last_data, "\"me\"");
    assert_int_equal(wsb_client_pending(p->c), 0);
    peer_free(p); /* freed while open: no close handshake, no leak */
    broker_cleanup(b);
}

static void test_request_reply_no_responders_and_timeout(void **state)
{
    (void)state;
    broker_t *b = broker_slot();
    broker_start(b, NULL);
    peer_t *responder = peer_new(url_for(b, "/ws"), false);
    peer_t *silent = peer_new(url_for(b, "/ws"), false);
    peer_t *req = peer_new(url_for(b, "/ws"), false);
    responder->answer_requests = true;
    assert_int_equal(wsb_client_connect(responder->c), 0);
    assert_int_equal(wsb_client_connect(silent->c), 0);
    assert_int_equal(wsb_client_connect(req->c), 0);
    assert_true(wsb_client_subscribe(responder->c, "dev.*.cmd", &reply, responder) > 0);
    assert_true(wsb_client_subscribe(silent->c, "quiet.x", &reply, silent) > 0);
    WAIT(responder->acks, 1);
    WAIT(silent->acks, 1);
    WAIT(req->opens, 1);

    /* The responder gets the request's data with a reply_to, answers it,
     * and the requester gets that answer stamped with the responder. */
    const char *op = "{\"op\":\"reboot\"}";
    assert_true(
        wsb_client_request(req->c, "dev.d7.cmd", op, strlen(op), 5000, &request_reply, req) > 0);
    WAIT(req->replies, 1);
    assert_string_equal(req->reply_data, "{\"echo\":{\"op\":\"reboot\"}}");
    char from[128];
    (void)snprintf(from, sizeof(from), "{\"client\":\"%s\",\"user\":null}", responder->client_id);
    assert_string_equal(req->reply_from, from);
    assert_int_equal(responder->msgs, 1);
    assert_string_equal(responder->last_topic, "dev.d7.cmd");

    /* Nobody subscribes: no_responders at once, as a broker error. */
    assert_true(wsb_client_request(req->c, "dev.none", "1", 1, 60000, &request_reply, req) > 0);
    WAIT(req->errors, 1);
    assert_int_equal(req->last_error_status, WSB_ESERVER);
    assert_string_equal(req->last_code, "no_responders");

    /* A subscriber that never answers: timeout after timeout_ms. */
    assert_true(wsb_client_request(req->c, "quiet.x", "null", 4, 50, &request_reply, req) > 0);
    WAIT(req->errors, 2);
    assert_int_equal(req->last_error_status, WSB_ESERVER);
    assert_string_equal(req->last_code, "timeout");
    WAIT(silent->msgs, 1);
    assert_int_equal(req->replies, 1);
    assert_int_equal(wsb_client_pending(req->c), 0);

    peer_free(req);
    peer_free(silent);
    peer_free(responder);
    broker_cleanup(b);
}

static void test_burst_in_order_and_large_messages(void **state)
{
    (void)state;
    peer_t *pub = NULL;
    peer_t *sub = NULL;
    broker_t *b = broker_slot();
    broker_start(b, NULL);
    sub = peer_new(url_for(b, "/ws"), false);
    pub = peer_new(url_for(b, "/ws"), false);
    assert_int_equal(wsb_client_connect(sub->c), 0);
    assert_int_equal(wsb_client_connect(pub->c), 0);
    assert_true(wsb_client_subscribe(sub->c, "burst", &reply, sub) > 0);
    WAIT(sub->acks, 1);
    WAIT(pub->opens, 1);
    enum { N = 2000 };
    for (int i = 0; i < N; i++) {
        char d[32];
        int n = snprintf(d, sizeof(d), "%d", i);
        assert_true(wsb_client_publish(pub->c, "burst", d, (size_t)n, &reply, pub) > 0);
    }
    WAIT(pub->acks, N);
    WAIT(sub->msgs, N);
    for (int i = 1; i < N; i++) {
        assert_true(sub->msg_seq[i] == sub->msg_seq[i - 1] + 1);
    }
    assert_string_equal(sub->last_data, "1999");

    /* Near the 64 KiB limit: many TCP reads per message on both sides. */
    size_t big_len = 60000;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    big[0] = '"';
    for (size_t i = 1; i < big_len - 1; i++) {
        big[i] = (char)('a' + (int)(i % 26));
    }
    big[big_len - 1] = '"';
    big[big_len] = '\0';
    assert_true(wsb_client_publish(pub->c, "burst", big, big_len, &reply, pub) > 0);
    WAIT(sub->msgs, N + 1);
    assert_int_equal(sub->last_data_len, big_len);
    assert_string_equal(sub->last_data, big);
    /* Over the limit: refused before sending. */
    char *huge = malloc(70001);
    assert_non_null(huge);
    memset(huge, ' ', 70000);
    huge[0] = '0';
    assert_int_equal(wsb_client_publish(pub->c, "burst", huge, 70000, &reply, pub), WSB_ETOOBIG);
    free(huge);
    free(big);
    peer_free(sub);
    peer_free(pub);
    broker_cleanup(b);
}

static void test_welcome_limit_from_broker(void **state)
{
    (void)state;
    peer_t *p = NULL;
    broker_t *b = broker_slot();
    broker_start(b, "--max-message-size 1KiB");
    p = peer_new(url_for(b, "/ws"), false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->opens, 1);
    assert_int_equal(p->welcome_max, 1024);
    char data[2000];
    memset(data, ' ', sizeof(data));
    data[0] = '1';
    assert_int_equal(wsb_client_publish(p->c, "t", data, sizeof(data), &reply, p), WSB_ETOOBIG);
    assert_true(wsb_client_publish(p->c, "t", data, 500, &reply, p) > 0);
    WAIT(p->acks, 1);
    assert_int_equal(p->disconnects, 0);
    peer_free(p);
    broker_cleanup(b);
}

static void test_reconnect_resubscribes_after_restart(void **state)
{
    (void)state;
    peer_t *pub = NULL;
    peer_t *sub = NULL;
    broker_t *b = broker_slot();
    broker_start(b, NULL);
    int port = b->port;
    sub = peer_new(url_for(b, "/ws"), true);
    assert_int_equal(wsb_client_connect(sub->c), 0);
    assert_true(wsb_client_subscribe(sub->c, "r.>", &reply, sub) > 0);
    WAIT(sub->acks, 1);

    /* SIGTERM: the broker says 1001 (going away) and exits. */
    assert_int_equal(kill(b->pid, SIGTERM), 0);
    WAIT(sub->disconnects, 1);
    assert_int_equal(sub->disc_close_code, 1001);
    assert_true(sub->disc_reconnect >= 0);
    broker_stop(b);
    /* A few refused attempts while nothing listens. */
    WAIT(sub->disconnects, 3);
    assert_true(sub->disc_reconnect >= 0 && sub->disc_reconnect <= 200);
    assert_int_equal(sub->disc_status, UV_ECONNREFUSED);

    broker_start_on(b, port, NULL);
    assert_int_equal(b->port, port);
    WAIT(sub->opens, 2);
    pub = peer_new(url_for(b, "/ws"), false);
    assert_int_equal(wsb_client_connect(pub->c), 0);
    WAIT(pub->opens, 1);
    /* The resubscription is in flight or done; publish until it arrives. */
    double deadline = now_s() + 10.0;
    while (sub->msgs == 0 && now_s() < deadline) {
        assert_true(wsb_client_publish(pub->c, "r.x", "42", 2, NULL, NULL) == 0);
        (void)wait_count(&sub->msgs, 1, 0.05);
    }
    assert_true(sub->msgs >= 1);
    assert_string_equal(sub->last_topic, "r.x");
    assert_int_equal(wsb_client_subscription_count(sub->c), 1);
    peer_free(sub);
    peer_free(pub);
    broker_cleanup(b);
}

static void test_refusals_and_failures(void **state)
{
    (void)state;
    peer_t *p = NULL;
    broker_t *b = broker_slot();
    broker_start(b, NULL);
    /* Wrong path: HTTP 404, not retried even with reconnect on. */
    p = peer_new(url_for(b, "/nope"), true);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->disconnects, 1);
    assert_int_equal(p->disc_status, WSB_EHANDSHAKE);
    assert_int_equal(p->disc_http, 404);
    assert_int_equal(p->disc_reconnect, -1);
    assert_non_null(strstr(p->disc_reason, "HTTP 404"));
    assert_int_equal(wsb_client_state(p->c), WSB_CLIENT_IDLE);
    peer_free(p);

    /* "localhost" may resolve to ::1 first; the broker listens on 127.0.0.1. */
    char url[128];
    (void)snprintf(url, sizeof(url), "ws://localhost:%d/ws", b->port);
    p = peer_new(url, false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->opens, 1);
    peer_free(p);

    /* Nothing listens: connection refused, reported once. */
    int port = b->port;
    broker_cleanup(b);
    (void)snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", port);
    p = peer_new(url, false);
    assert_true(wsb_client_publish(p->c, "q", "1", 1, &reply, p) > 0);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->disconnects, 1);
    assert_int_equal(p->disc_status, UV_ECONNREFUSED);
    assert_int_equal(p->disc_reconnect, -1);
    /* The publish is still queued for a later connect; close cancels it. */
    assert_int_equal(wsb_client_pending(p->c), 1);
    assert_int_equal(wsb_client_close(p->c), 0);
    WAIT(p->closed, 1);
    assert_int_equal(p->last_error_status, WSB_ECANCELED);
    peer_free(p);

    /* An unresolvable name. */
    p = peer_new("ws://no-such-host.invalid:1/ws", false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->disconnects, 1);
    assert_non_null(strstr(p->disc_reason, "resolve"));
    peer_free(p);

    /* wss:// goes through the same TCP path first: refused, not ENOTSUP. */
    p = peer_new("wss://127.0.0.1:1/ws", false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->disconnects, 1);
    assert_int_equal(p->disc_status, UV_ECONNREFUSED);
    peer_free(p);
}

static void test_free_from_callback_and_during_connect(void **state)
{
    (void)state;
    peer_t *p = NULL;
    broker_t *b = broker_slot();
    broker_start(b, NULL);
    p = peer_new(url_for(b, "/ws"), false);
    p->free_on_message = true;
    assert_true(wsb_client_subscribe(p->c, "f", NULL, NULL) > 0);
    assert_true(wsb_client_publish(p->c, "f", "1", 1, NULL, NULL) == 0);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->msgs, 1);
    assert_null(p->c);
    peer_free(p);

    /* Freed while resolving / connecting. */
    p = peer_new(url_for(b, "/ws"), false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    peer_free(p);
    p = peer_new(url_for(b, "/ws"), false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    (void)uv_run(&loop, UV_RUN_NOWAIT);
    peer_free(p);
    (void)uv_run(&loop, UV_RUN_DEFAULT);
    broker_cleanup(b);
}

/* ---- wss:// ---- */

/* Runs a command (argv[0] looked up in PATH) with its output discarded;
 * fails the test unless it exits 0 within its own time. */
static void run_cmd(char *const argv[])
{
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0), 0);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    (void)posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail_msg("%s %s failed (status %d)", argv[0], argv[1], st);
    }
}

/* A self-signed EC P-256 certificate <dir>/<name>.crt (+ .key) whose only
 * subjectAltName is `san`, made with the openssl CLI. */
static void make_cert(const char *dir, const char *name, const char *san)
{
    char crt[160];
    char key[160];
    char ext[96];
    (void)snprintf(crt, sizeof(crt), "%s/%s.crt", dir, name);
    (void)snprintf(key, sizeof(key), "%s/%s.key", dir, name);
    (void)snprintf(ext, sizeof(ext), "subjectAltName=%s", san);
    char *argv[] = {"openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    key,
                    "-out",
                    crt,
                    "-days",
                    "2",
                    "-subj",
                    "/CN=wsb-test",
                    "-addext",
                    ext,
                    NULL};
    run_cmd(argv);
}

static int read_port_file(const char *path)
{
    double deadline = now_s() + 10.0;
    while (now_s() < deadline) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            int p = 0;
            int n = fscanf(f, "%d", &p);
            (void)fclose(f);
            if (n == 1 && p > 0) {
                return p;
            }
        }
        (void)usleep(10000);
    }
    fail_msg("no port in %s within 10 s", path);
    return 0;
}

/* wss:// against the broker's TLS listener: a pub/sub round trip with a
 * message spanning several TLS records, the plain listener alongside; an
 * untrusted certificate and a certificate for another name are refused
 * with WSB_ETLS and a reason that says so, and not retried; --insecure
 * connects anyway. The certificate names only DNS:localhost, so
 * wss://127.0.0.1 is the name-mismatch case. */
static void test_wss_pubsub_and_refused_certificates(void **state)
{
    (void)state;
    broker_t *b = broker_slot();
    (void)snprintf(b->dir, sizeof(b->dir), "/tmp/wsb-client-uv-XXXXXX");
    assert_non_null(mkdtemp(b->dir));
    make_cert(b->dir, "server", "DNS:localhost");
    make_cert(b->dir, "other", "DNS:localhost");
    char extra[640];
    char tls_port_file[96];
    (void)snprintf(tls_port_file, sizeof(tls_port_file), "%s/tlsport", b->dir);
    (void)snprintf(extra, sizeof(extra),
                   "--tls-cert %s/server.crt --tls-key %s/server.key --tls-port 0 "
                   "--tls-port-file %s",
                   b->dir, b->dir, tls_port_file);
    broker_start(b, extra);
    int tls_port = read_port_file(tls_port_file);
    char ca[128];
    char wrong_ca[128];
    char url[96];
    char ip_url[96];
    (void)snprintf(ca, sizeof(ca), "%s/server.crt", b->dir);
    (void)snprintf(wrong_ca, sizeof(wrong_ca), "%s/other.crt", b->dir);
    (void)snprintf(url, sizeof(url), "wss://localhost:%d/ws", tls_port);
    (void)snprintf(ip_url, sizeof(ip_url), "wss://127.0.0.1:%d/ws", tls_port);

    peer_t *sub = peer_new_tls(url, false, ca, false);
    peer_t *pub = peer_new_tls(url, false, ca, false);
    peer_t *plain = peer_new(url_for(b, "/ws"), false);
    assert_int_equal(wsb_client_connect(sub->c), 0);
    assert_int_equal(wsb_client_connect(pub->c), 0);
    assert_int_equal(wsb_client_connect(plain->c), 0);
    assert_true(wsb_client_subscribe(sub->c, "tls.>", &reply, sub) > 0);
    WAIT(sub->acks, 1);
    WAIT(pub->opens, 1);
    WAIT(plain->opens, 1);
    assert_true(wsb_client_publish(pub->c, "tls.a", "{\"v\":1}", 7, &reply, pub) > 0);
    WAIT(pub->acks, 1);
    WAIT(sub->msgs, 1);
    assert_string_equal(sub->last_topic, "tls.a");
    assert_string_equal(sub->last_data, "{\"v\":1}");
    /* 60,000 bytes from the plain listener: several TLS records to the subscriber. */
    enum { BIG = 60000 };
    char *big = malloc(BIG + 3);
    assert_non_null(big);
    big[0] = '"';
    memset(big + 1, 'x', BIG);
    big[BIG + 1] = '"';
    big[BIG + 2] = '\0';
    assert_true(wsb_client_publish(plain->c, "tls.big", big, BIG + 2, &reply, plain) > 0);
    WAIT(sub->msgs, 2);
    assert_int_equal(sub->last_data_len, BIG + 2);
    assert_memory_equal(sub->last_data, big, BIG + 2);
    free(big);
    /* A clean close over TLS: close frame both ways, then close_notify. */
    assert_int_equal(wsb_client_close(sub->c), 0);
    WAIT(sub->closed, 1);
    assert_int_equal(sub->disc_status, 0);
    assert_int_equal(sub->disc_close_code, 1000);
    peer_free(sub);
    peer_free(pub);
    peer_free(plain);

    /* Untrusted: even with reconnect on, a certificate failure is final. */
    peer_t *p = peer_new_tls(url, true, wrong_ca, false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->disconnects, 1);
    assert_int_equal(p->disc_status, WSB_ETLS);
    assert_int_equal(p->disc_reconnect, -1);
    assert_int_equal(p->opens, 0);
    assert_non_null(strstr(p->disc_reason, "certificate verify failed"));
    assert_non_null(strstr(p->disc_reason, "not trusted"));
    peer_free(p);

    /* The right CA, but the certificate does not name 127.0.0.1. */
    p = peer_new_tls(ip_url, false, ca, false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->disconnects, 1);
    assert_int_equal(p->disc_status, WSB_ETLS);
    assert_non_null(strstr(p->disc_reason, "does not name this host"));
    peer_free(p);

    /* A CA file that cannot be loaded ends the attempt with the file's name. */
    p = peer_new_tls(url, false, "/nonexistent/ca.pem", false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->disconnects, 1);
    assert_int_equal(p->disc_status, WSB_ETLS);
    assert_non_null(strstr(p->disc_reason, "/nonexistent/ca.pem"));
    peer_free(p);

    /* insecure skips both checks. */
    p = peer_new_tls(ip_url, false, wrong_ca, true);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->opens, 1);
    peer_free(p);

    /* wss:// to the plain listener: a TLS failure, not a hang. */
    (void)snprintf(url, sizeof(url), "wss://127.0.0.1:%d/ws", b->port);
    p = peer_new_tls(url, false, ca, false);
    assert_int_equal(wsb_client_connect(p->c), 0);
    WAIT(p->disconnects, 1);
    assert_int_equal(p->disc_status, WSB_ETLS);
    peer_free(p);

    (void)uv_run(&loop, UV_RUN_DEFAULT);
    char path[160];
    const char *files[] = {"server.crt", "server.key", "other.crt", "other.key", "tlsport"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", b->dir, files[i]);
        (void)unlink(path);
    }
    broker_cleanup(b);
}

int main(void)
{
    (void)signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pubsub_ack_error_unsubscribe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_before_connect_and_own_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_request_reply_no_responders_and_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_burst_in_order_and_large_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_welcome_limit_from_broker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_resubscribes_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_and_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_from_callback_and_during_connect, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wss_pubsub_and_refused_certificates, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
