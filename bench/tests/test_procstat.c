/* test_procstat.c - /proc parsing: a command name with spaces and ')', and
 * this very process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

/* cmocka.h needs the headers above first. */
#include "procstat.h"

#include <cmocka.h>

static void test_parse_stat(void **state)
{
    (void)state;
    /* Fields 14 (utime) = 250, 15 (stime) = 50, 20 (threads) = 3. */
    const char *text = "1234 (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100 2000 300";
    procstat_t ps;
    assert_int_equal(procstat_parse_stat(text, 100.0, &ps), 0);
    assert_true(ps.user_s == 2.5);
    assert_true(ps.system_s == 0.5);
    assert_int_equal(ps.threads, 3);
    assert_int_equal(procstat_parse_stat("1234 (x) S 1 2 3", 100.0, &ps), -1);
    assert_int_equal(procstat_parse_stat("no parenthesis", 100.0, &ps), -1);
}

static void test_read_self(void **state)
{
    (void)state;
    procstat_t ps;
    assert_int_equal(procstat_read((int)getpid(), &ps), 0);
    assert_true(ps.rss_kib > 0);
    assert_true(ps.threads >= 1);
    assert_true(ps.user_s >= 0 && ps.system_s >= 0);
    /* pid 0 has no /proc entry. */
    assert_int_equal(procstat_read(0, &ps), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_stat),
        cmocka_unit_test(test_read_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
