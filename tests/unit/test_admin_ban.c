/*
 * test_admin_ban.c - users banned through POST /api/disconnect
 * (broker/core/admin_ban.h): a ban holds until its end and not after, bans
 * are per exact user, a later ban replaces the end of an earlier one, the
 * table is bounded (expired entries are reused, live ones never dropped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "core/admin_ban.h"

#include <cmocka.h>

#define U(s) ((wsb_str_t){(s), sizeof(s) - 1})

static void test_ban_holds_until_its_end(void **state)
{
    (void)state;
    admin_ban_t *b = admin_ban_new(4);
    assert_int_equal(admin_ban_left_ms(b, U("mallory"), 1000), 0);
    assert_true(admin_ban_add(b, U("mallory"), 6000, 1000));
    assert_int_equal(admin_ban_left_ms(b, U("mallory"), 1000), 5000);
    assert_int_equal(admin_ban_left_ms(b, U("mallory"), 5999), 1);
    assert_int_equal(admin_ban_left_ms(b, U("mallory"), 6000), 0); /* over at its end */
    assert_int_equal(admin_ban_left_ms(b, U("malloryx"), 1000), 0);
    assert_int_equal(admin_ban_left_ms(b, U("Mallory"), 1000), 0); /* exact names */
    assert_int_equal(admin_ban_left_ms(b, U("mallor"), 1000), 0);
    assert_int_equal(admin_ban_left_ms(b, (wsb_str_t){NULL, 0}, 1000), 0);
    assert_int_equal(admin_ban_left_ms(NULL, U("mallory"), 1000), 0);
    /* A second ban sets the end, longer or shorter. */
    assert_true(admin_ban_add(b, U("mallory"), 9000, 2000));
    assert_int_equal(admin_ban_left_ms(b, U("mallory"), 8000), 1000);
    assert_true(admin_ban_add(b, U("mallory"), 2000, 2000)); /* ban_s 0 lifts it */
    assert_int_equal(admin_ban_left_ms(b, U("mallory"), 2000), 0);
    admin_ban_free(b);
}

static void test_table_is_bounded_and_reuses_expired_entries(void **state)
{
    (void)state;
    admin_ban_t *b = admin_ban_new(2);
    assert_true(admin_ban_add(b, U("a"), 100, 0));
    assert_true(admin_ban_add(b, U("b"), 500, 0));
    assert_false(admin_ban_add(b, U("c"), 500, 50)); /* full of live bans */
    assert_int_equal(admin_ban_count(b, 50), 2);
    assert_int_equal(admin_ban_left_ms(b, U("a"), 50), 50); /* nothing was dropped */
    assert_true(admin_ban_add(b, U("c"), 500, 100));        /* a's ban ended: its place */
    assert_int_equal(admin_ban_left_ms(b, U("c"), 100), 400);
    assert_int_equal(admin_ban_left_ms(b, U("b"), 100), 400);
    assert_int_equal(admin_ban_count(b, 100), 2);
    assert_true(admin_ban_add(b, U("b"), 900, 100)); /* an existing user needs no place */
    char longest[129];
    memset(longest, 'x', sizeof longest);
    assert_false(admin_ban_add(b, (wsb_str_t){longest, 129}, 900, 100)); /* over 128 bytes */
    assert_false(admin_ban_add(b, (wsb_str_t){longest, 0}, 900, 100));
    admin_ban_free(b);
    admin_ban_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ban_holds_until_its_end),
        cmocka_unit_test(test_table_is_bounded_and_reuses_expired_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
