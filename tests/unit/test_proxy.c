/*
 * test_proxy.c - trusted_proxies parsing and matching, and which address of
 * an X-Forwarded-For chain the broker believes (proxy.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four headers above first. */
#include "net/proxy.h"

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

static void addr(const char *text, uint8_t out[16])
{
    assert_int_equal(proxy_parse_addr(text, strlen(text), out), 0);
}

static const char *fmt(const uint8_t ip[16])
{
    static char buf[64];
    proxy_format_addr(ip, buf, sizeof(buf));
    return buf;
}

static void test_addresses(void **state)
{
    (void)state;
    uint8_t ip[16];
    addr("10.1.2.3", ip);
    assert_string_equal(fmt(ip), "10.1.2.3");
    addr("::1", ip);
    assert_string_equal(fmt(ip), "::1");
    addr("2001:db8::7", ip);
    assert_string_equal(fmt(ip), "2001:db8::7");
    /* An IPv4-mapped IPv6 address is the IPv4 address. */
    addr("::ffff:192.0.2.1", ip);
    assert_string_equal(fmt(ip), "192.0.2.1");

    static const char *const bad[] = {"",
                                      "10.1.2",
                                      "10.1.2.3.4",
                                      "256.1.1.1",
                                      " 10.1.2.3",
                                      "10.1.2.3 ",
                                      "[::1]",
                                      "10.1.2.3:80",
                                      "unknown",
                                      "_hidden",
                                      "::g",
                                      "1.2.3.4/8",
                                      "01234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(proxy_parse_addr(bad[i], strlen(bad[i]), ip), -1);
    }
}

static void test_entries(void **state)
{
    (void)state;
    static const char *const good[] = {"127.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "192.0.2.1/32",
                                       "::1",       "fd00::/8",   "::/0",      "::1/128"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(proxy_entry_valid(good[i], strlen(good[i])));
    }
    static const char *const bad[] = {"10.0.0.0/33",  "::/129", "10.0.0.0/",   "10.0.0.0/-1",
                                      "10.0.0.0/8/8", "/8",     "10.0.0.0/ 8", "10.0.0.0/1234",
                                      "localhost",    ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(proxy_entry_valid(bad[i], strlen(bad[i])));
    }
}

static void test_list_and_matching(void **state)
{
    (void)state;
    proxy_net_t *nets;
    size_t n;
    assert_int_equal(proxy_parse_list("", &nets, &n), 0);
    assert_null(nets);
    assert_int_equal(n, 0);
    assert_int_equal(proxy_parse_list("10.0.0.0/8,127.0.0.1,172.16.5.9/12,fd00::/8", &nets, &n), 0);
    assert_int_equal(n, 4);
    uint8_t ip[16];
    static const struct {
        const char *ip;
        bool trusted;
    } cases[] = {
        {"10.0.0.0", true},
        {"10.255.255.255", true},
        {"11.0.0.0", false},
        {"9.255.255.255", false},
        {"127.0.0.1", true},
        {"127.0.0.2", false},
        /* host bits of 172.16.5.9/12 are ignored: the network is 172.16.0.0/12 */
        {"172.16.0.1", true},
        {"172.31.255.255", true},
        {"172.32.0.0", false},
        {"fd12::1", true},
        {"fe00::1", false},
        {"::1", false},
        {"::ffff:10.9.9.9", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        addr(cases[i].ip, ip);
        if (proxy_is_trusted(nets, n, ip) != cases[i].trusted) {
            fail_msg("%s: expected %s", cases[i].ip, cases[i].trusted ? "trusted" : "untrusted");
        }
    }
    /* An IPv4 network never matches a plain IPv6 address with the same low bits. */
    addr("::a00:1", ip);
    assert_false(proxy_is_trusted(nets, n, ip));
    free(nets);

    assert_int_equal(proxy_parse_list("0.0.0.0/0", &nets, &n), 0);
    addr("203.0.113.9", ip);
    assert_true(proxy_is_trusted(nets, n, ip));
    addr("2001:db8::1", ip);
    assert_false(proxy_is_trusted(nets, n, ip)); /* /0 of IPv4 is every IPv4 address only */
    free(nets);

    assert_int_equal(proxy_parse_list("10.0.0.1,,10.0.0.2", &nets, &n), -1);
    assert_int_equal(proxy_parse_list("10.0.0.1,", &nets, &n), -1);
    assert_int_equal(proxy_parse_list("10.0.0.1, 10.0.0.2", &nets, &n), -1);
}

/* The client proxy_client_addr picks for `headers` from `peer`. */
static const char *client(const char *trusted, const char *peer, const char *const *headers)
{
    proxy_net_t *nets;
    size_t n;
    assert_int_equal(proxy_parse_list(trusted, &nets, &n), 0);
    wsb_str_t xff[8];
    size_t nxff = 0;
    for (; headers != NULL && headers[nxff] != NULL; nxff++) {
        xff[nxff] = (wsb_str_t){headers[nxff], strlen(headers[nxff])};
    }
    uint8_t p[16], out[16];
    addr(peer, p);
    bool forwarded = proxy_client_addr(nets, n, p, xff, nxff, out);
    assert_true(forwarded == (memcmp(p, out, 16) != 0));
    free(nets);
    return fmt(out);
}

#define H(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_forwarded_for(void **state)
{
    (void)state;
    /* Untrusted peer: the header is the client's own claim and is ignored. */
    assert_string_equal(client("127.0.0.1", "192.0.2.50", H("203.0.113.7")), "192.0.2.50");
    assert_string_equal(client("", "127.0.0.1", H("203.0.113.7")), "127.0.0.1");
    /* Trusted peer without a header: the peer itself. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", H("")), "127.0.0.1");
    /* One hop. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", H("203.0.113.7")), "203.0.113.7");
    assert_string_equal(client("::1", "::1", H(" 2001:db8::9 ")), "2001:db8::9");
    /* The rightmost untrusted hop: what the client wrote on the left is not believed. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", H("6.6.6.6, 203.0.113.7")), "203.0.113.7");
    /* Trusted hops on the right are skipped (a chain of proxies). */
    assert_string_equal(
        client("127.0.0.1,10.0.0.0/8", "127.0.0.1", H("6.6.6.6, 203.0.113.7, 10.1.1.1,10.2.2.2")),
        "203.0.113.7");
    /* Several headers concatenate in order; the last one is nearest. */
    assert_string_equal(client("127.0.0.1,10.0.0.0/8", "127.0.0.1",
                               H("6.6.6.6", "203.0.113.7, 10.1.1.1", "10.2.2.2")),
                        "203.0.113.7");
    /* Every hop trusted: the leftmost is the client. */
    assert_string_equal(client("10.0.0.0/8,127.0.0.1", "127.0.0.1", H("10.3.3.3, 10.1.1.1")),
                        "10.3.3.3");
    /* Garbage stops the walk at the last hop understood: never a chosen address. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", H("unknown")), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", H("6.6.6.6, bogus")), "127.0.0.1");
    assert_string_equal(
        client("127.0.0.1,10.0.0.0/8", "127.0.0.1", H("6.6.6.6, 203.0.113.7:443, 10.1.1.1")),
        "10.1.1.1");
    /* Empty entries are no hops. */
    assert_string_equal(client("127.0.0.1", "127.0.0.1", H(",203.0.113.7,, ,")), "203.0.113.7");
    /* IPv4 clients behind an IPv6 proxy and the reverse. */
    assert_string_equal(client("::1", "::1", H("198.51.100.4")), "198.51.100.4");
    assert_string_equal(client("127.0.0.1", "127.0.0.1", H("2001:db8::1")), "2001:db8::1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_list_and_matching),
        cmocka_unit_test(test_forwarded_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
