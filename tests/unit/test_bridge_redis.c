/*
 * test_bridge_redis.c - the pure parts of the Redis bridge: wsbroker patterns
 * to Redis channels and globs, and redis:// URLs (config_parse_redis_url);
 * and the publishing connection's libuv attachment (bridge_sub_attach_async)
 * against a loopback peer that resets or refuses the connection.
 */
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* cmocka.h needs these three first, in this order. */
// clang-format off
#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "app/config.h"
#include "cluster/bridge_redis.h"
#include "cluster/bridge_sub.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

static void check_name(const char *pattern, const char *want, bool want_glob)
{
    char out[600];
    bool glob = !want_glob;
    size_t n = bridge_redis_name("wsb:", pattern, strlen(pattern), out, &glob);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
    assert_int_equal(glob, want_glob);
}

static void test_names(void **state)
{
    (void)state;
    check_name("a.b.c", "wsb:a.b.c", false);
    check_name("a.*.c", "wsb:a.*.c", true);
    check_name("a.>", "wsb:a.*", true);
    check_name("*", "wsb:*", true);
    /* Literal glob characters are escaped in a glob, kept as-is in a channel. */
    check_name("a?.[x].*", "wsb:a\\?.\\[x\\].*", true);
    check_name("a?.[x]", "wsb:a?.[x]", false);
    check_name("a\\b.>", "wsb:a\\\\b.*", true);
}

/* The globs a node makes, matched as Redis matches them: what a request's
 * receiver count subtracts for the node's own subscriptions (PROTOCOL.md
 * 13.3). The glob of "a.*.c" also matches "a.x.y.c" in Redis. */
static void glob_case(const char *pattern, const char *chan, bool want)
{
    char g[2 * 256 + 80];
    bool is_glob = false;
    size_t n = bridge_redis_name("wsb:", pattern, strlen(pattern), g, &is_glob);
    assert_int_equal(bridge_glob_match(g, n, chan, strlen(chan)), want);
}

static void test_glob_match(void **state)
{
    (void)state;
    glob_case("a.*.c", "wsb:a.b.c", true);
    glob_case("a.*.c", "wsb:a.x.y.c", true); /* looser than the pattern, as in Redis */
    glob_case("a.*.c", "wsb:a.b.d", false);
    glob_case("a.*.c", "wsb:a.c", false);
    glob_case(">", "wsb:anything.at.all", true);
    glob_case(">", "wsb:", true);
    glob_case("a.>", "wsb:a.b", true);
    glob_case("a.>", "wsb:b.a", false);
    glob_case("*.*", "wsb:ab", false); /* the dot is literal */
    glob_case("*.*", "wsb:a.b", true);
    glob_case("x?.*", "wsb:x?.1", true); /* escaped: a literal '?' */
    glob_case("x?.*", "wsb:xy.1", false);
    glob_case("x[1].*", "wsb:x[1].z", true);
    glob_case("x[1].*", "wsb:x1.z", false);
    glob_case("a\\b.*", "wsb:a\\b.z", true);
    glob_case("*.b.*.d", "wsb:1.b.2.b.3.d", true); /* backtracking past a first try */
    glob_case("*.b.*.d", "wsb:1.b.2.b.3.e", false);
    /* Exact channels never contain a wildcard: as globs they match only themselves. */
    glob_case("a.b", "wsb:a.b", true);
    glob_case("a.b", "wsb:a.bc", false);
}

static void test_urls(void **state)
{
    (void)state;
    redis_url_t u;
    assert_int_equal(config_parse_redis_url("redis://127.0.0.1:6380/0", &u), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_null(u.password);
    assert_int_equal(config_parse_redis_url("redis://", &u), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(config_parse_redis_url("redis://:s3cret@db.local", &u), 0);
    assert_string_equal(u.host, "db.local");
    assert_null(u.user);
    assert_string_equal(u.password, "s3cret");
    assert_int_equal(config_parse_redis_url("redis://bob:pw@[::1]:7000/3", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 3);
    const char *bad[] = {"http://x",      "redis://h:0",  "redis://h:70000", "redis://h:x",
                         "redis://bob@h", "redis://[::1", "redis://h/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_redis_url(bad[i], &u) == 0) {
            fail_msg("accepted %s", bad[i]);
        }
    }
}

/* ---- the publishing connection under libuv ---------------------------------------------- */

typedef struct {
    int connect_calls, connect_status;
    int disconnect_calls, disconnect_status;
    int null_replies;
} async_state_t;

static void on_test_connect(const redisAsyncContext *ac, int status)
{
    async_state_t *st = ac->data;
    st->connect_calls++;
    st->connect_status = status;
}

static void on_test_disconnect(const redisAsyncContext *ac, int status)
{
    async_state_t *st = ac->data;
    st->disconnect_calls++;
    st->disconnect_status = status;
}

static void on_test_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    async_state_t *st = privdata;
    if (reply == NULL) {
        st->null_replies++;
    }
}

/* A loopback TCP socket bound to a free port; listening or not. */
static int loopback_socket(bool listening, unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    if (listening) {
        assert_int_equal(listen(fd, 1), 0);
    }
    return fd;
}

/* Waits, without a timeout, until `fd` reports one of `events` (POLLERR and
 * POLLHUP always count): the condition the loop is then run against is
 * already true in the kernel, so one loop pass must see it. */
static void wait_fd(int fd, short events)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    while (poll(&pfd, 1, -1) != 1) {
    }
}

static redisAsyncContext *attached_context(uv_loop_t *loop, unsigned port, async_state_t *st)
{
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", (int)port);
    assert_non_null(ac);
    assert_int_equal(ac->err, 0);
    ac->data = st;
    assert_int_equal(bridge_sub_attach_async(ac, loop), 0);
    assert_int_equal(bridge_sub_attach_async(ac, loop), -1); /* attached once */
    redisAsyncSetConnectCallback(ac, on_test_connect);
    redisAsyncSetDisconnectCallback(ac, on_test_disconnect);
    /* What the bridge sends first; it also makes hiredis 0.14 connect. */
    assert_int_equal(redisAsyncCommand(ac, on_test_reply, st, "PING"), REDIS_OK);
    return ac;
}

/* Nothing is left on the loop: the attachment freed itself. */
static void close_loop(uv_loop_t *loop)
{
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* Regression: Redis killed while a command was unread in its socket resets
 * the publishing connection; libuv reports that as a poll error, which
 * hiredis 0.14's libuv adapter ignored, so the connection's loss went
 * unnoticed and the publish waiting for its reply was never answered. */
static void test_async_reset_is_a_disconnect(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    unsigned port = 0;
    int lfd = loopback_socket(true, &port);
    async_state_t st = {0};
    redisAsyncContext *ac = attached_context(&loop, port, &st);
    int fd = ac->c.fd;
    int srv = accept(lfd, NULL, NULL);
    assert_true(srv >= 0);
    while (st.connect_calls == 0) {
        (void)uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(st.connect_status, REDIS_OK);
    wait_fd(srv, POLLIN); /* the PING arrived; left unread, as in a killed Redis */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(srv, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    assert_int_equal(close(srv), 0); /* RST */
    wait_fd(fd, POLLIN);
    (void)uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(st.null_replies, 1);
    assert_int_equal(st.disconnect_calls, 1);
    assert_int_equal(st.disconnect_status, REDIS_ERR);
    close_loop(&loop);
    assert_int_equal(close(lfd), 0);
}

/* The same poll error while connecting (nothing listens): the connect
 * callback reports the failure at once, not after the bridge's timeout. */
static void test_async_refused_connect_fails(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    unsigned port = 0;
    int closed_port = loopback_socket(false, &port); /* bound, not listening: refused */
    async_state_t st = {0};
    redisAsyncContext *ac = attached_context(&loop, port, &st);
    wait_fd(ac->c.fd, POLLOUT);
    (void)uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(st.connect_calls, 1);
    assert_int_equal(st.connect_status, REDIS_ERR);
    assert_int_equal(st.null_replies, 1);
    assert_int_equal(st.disconnect_calls, 0); /* never connected */
    close_loop(&loop);
    assert_int_equal(close(closed_port), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_glob_match),
        cmocka_unit_test(test_async_reset_is_a_disconnect),
        cmocka_unit_test(test_async_refused_connect_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
