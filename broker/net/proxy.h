/*
 * proxy.h - trusted reverse proxies and the client address they forward.
 *
 * Behind nginx every connection comes from nginx's address, so per-IP limits
 * and logs would see one client. The trusted_proxies key lists the addresses
 * (or CIDR networks) whose X-Forwarded-For header the broker believes; from
 * any other peer the header is ignored, since a client can write anything in
 * it. The client is the rightmost address in the header that is not itself a
 * trusted proxy (each proxy appends the address it got the request from, so
 * everything left of the first untrusted hop may be forged).
 *
 * Addresses are 16 bytes: IPv6, or IPv4 mapped as ::ffff:a.b.c.d, the form
 * conn.c keeps for per-IP counting; an IPv4 network matches mapped addresses.
 *
 * Ownership: proxy_parse_list() returns an array the caller frees with free();
 * config_load() keeps it in config_t (trusted, ntrusted) until config_free().
 * Everything here is pure: no sockets, no loop, no globals.
 */
#ifndef WSB_BROKER_PROXY_H
#define WSB_BROKER_PROXY_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct proxy_net_s {
    uint8_t addr[16]; /* network address, host bits cleared */
    uint8_t prefix;   /* leading bits that must match, 0..128 (IPv4 /n is 96 + n) */
} proxy_net_t;

/* Parses one address ("10.0.0.1", "::1", "[::1]" is refused) into 16 bytes.
 * Surrounding spaces and tabs are not allowed. Returns 0, or -1. */
int proxy_parse_addr(const char *p, size_t len, uint8_t out[16]);

/* True if `len` bytes at `p` are one valid entry: an address, or an address
 * and a prefix length ("10.0.0.0/8", "fd00::/8"). */
bool proxy_entry_valid(const char *p, size_t len);

/* Parses a comma-separated trusted_proxies value ("" = none). Returns 0 with
 * *out (NULL when empty; free() it) and *n, or -1 naming nothing on a bad entry
 * (config_keys.c validates entries first and names the key). */
int proxy_parse_list(const char *spec, proxy_net_t **out, size_t *n);

/* True if `ip` is inside one of the `n` networks. */
bool proxy_is_trusted(const proxy_net_t *nets, size_t n, const uint8_t ip[16]);

/*
 * The client address of a request that arrived from `peer`: when `peer` is
 * trusted, walks the X-Forwarded-For values (`xff`, `nxff` header values in
 * the order received; several headers concatenate) from right to left,
 * skipping trusted addresses, and stores the first untrusted one in `out`.
 * When every hop is trusted the leftmost is the client. An entry that is not
 * an address (garbage, "unknown", a port) stops the walk: the client is then
 * the last hop that was understood, so a malformed header can only make the
 * broker attribute the connection to a proxy, never to a chosen address.
 * Returns true when `out` differs from `peer` (the address was forwarded);
 * false with out = peer when the peer is untrusted or there is no header.
 */
bool proxy_client_addr(const proxy_net_t *nets, size_t n, const uint8_t peer[16],
                       const wsb_str_t *xff, size_t nxff, uint8_t out[16]);

/* Formats a 16-byte address as text (IPv4-mapped as a.b.c.d) into `buf`. */
void proxy_format_addr(const uint8_t ip[16], char *buf, size_t cap);

#endif
