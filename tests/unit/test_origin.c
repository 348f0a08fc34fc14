/*
 * test_origin.c - the Origin allowlist (auth_origin_allowed): exact entries,
 * wildcard entries, and origins crafted so that a loose match would accept
 * another site.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four headers above first. */
#include "app/config.h"
#include "core/auth.h"

#include <cmocka.h>
#include <string.h>

static bool allowed(const char *list, const char *origin)
{
    config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    char buf[256];
    strncpy(buf, list, sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    cfg.allowed_origins = buf;
    wsb_str_t o = {origin, origin != NULL ? strlen(origin) : 0};
    return auth_origin_allowed(&cfg, o);
}

static void test_exact(void **state)
{
    (void)state;
    const char *list = "https://a.example,http://localhost:8080";
    assert_true(allowed(list, "https://a.example"));
    assert_true(allowed(list, "HTTPS://A.EXAMPLE"));
    assert_true(allowed(list, "http://localhost:8080"));
    assert_false(allowed(list, "https://a.example.evil"));
    assert_false(allowed(list, "http://a.example"));
    assert_false(allowed(list, "http://localhost:8081"));
    assert_true(allowed("", "https://anything.example"));
}

static void test_wildcard_hosts(void **state)
{
    (void)state;
    const char *list = "https://*.example.org";
    assert_true(allowed(list, "https://a.example.org"));
    assert_true(allowed(list, "https://a-b.c9.example.org"));
    assert_true(allowed(list, "https://A.Example.Org"));
    assert_false(allowed(list, "https://example.org"));
    assert_false(allowed(list, "http://a.example.org"));
    assert_false(allowed(list, "https://a.example.org:444"));
    assert_true(allowed("https://*.example.org:8443", "https://a.example.org:8443"));
    assert_false(allowed("https://*.example.org:8443", "https://a.example.org"));
}

/* The audit's bypass and its relatives: the star must not cover characters
 * that end the host for a URL parser. */
static void test_wildcard_refuses_non_label_characters(void **state)
{
    (void)state;
    const char *list = "https://*.example.org";
    static const char *const bad[] = {
        "https://evil.com#.example.org",  "https://evil.com?.example.org",
        "https://evil.com\\.example.org", "https://evil.com/.example.org",
        "https://evil.com@.example.org",  "https://u@evil.com:1.example.org",
        "https://evil.com:1.example.org", "https://evil.com%2f.example.org",
        "https://evil_com.example.org",   "https://evil com.example.org",
        "https://..example.org",          "https://a..b.example.org",
        "https://.a.example.org",         "https://evil.com\t.example.org",
        "https://\xc3\xa9.example.org",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (allowed(list, bad[i])) {
            fail_msg("allowed: %s", bad[i]);
        }
    }
}

static void test_missing_origin(void **state)
{
    (void)state;
    config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.allowed_origins = (char *)"https://a.example";
    assert_false(auth_origin_allowed(&cfg, WSB_STR_NULL));
    cfg.allow_missing_origin = true;
    assert_true(auth_origin_allowed(&cfg, WSB_STR_NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact),
        cmocka_unit_test(test_wildcard_hosts),
        cmocka_unit_test(test_wildcard_refuses_non_label_characters),
        cmocka_unit_test(test_missing_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
