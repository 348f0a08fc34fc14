/*
 * test_bridge_redis.c - the pure parts of the Redis bridge: wsbroker patterns
 * to Redis channels and globs, and redis:// URLs (config_parse_redis_url).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs these three first, in this order. */
// clang-format off
#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "bridge_redis.h"
#include "config.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
