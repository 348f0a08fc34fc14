/*
 * conn_internal.h - what the connection's files share inside net/ (conn.c:
 * lifecycle, reads, writes, timers; conn_accept.c: accept and admission;
 * conn_http.c: the HTTP phase). Not for other modules: conn.h is the
 * contract.
 */
#ifndef WSB_BROKER_CONN_INTERNAL_H
#define WSB_BROKER_CONN_INTERNAL_H

typedef struct conn_s conn_t;

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* conn.c */

/* The handlers app/ registered (conn_set_handlers, conn.h). */
extern const struct conn_handlers_s *conn_ingress;

/* True while the HTTP requests read are not parsed but held: a response is
 * owed (Redis, a file read) or the replies are over their bounds. */
bool conn_http_holding(const conn_t *c);

/* The RESP session of a connection just admitted (the RESP handlers' open). */
void *conn_resp_open(conn_t *c);

/* Starts or stops reading as the connection's state wants (see conn.c). */
void conn_update_reading(conn_t *c);

/* Sets the connection's one deadline, `ms` from now (0: none). */
void conn_timer_in(conn_t *c, uint64_t ms);

/* The peer's address as 16 bytes (IPv4 mapped). 0, or -1 when unknown. */
int conn_socket_ip(conn_t *c, uint8_t ip[16]);

/* conn_http.c */

/* Parses HTTP bytes (`data` modified in place) and answers or upgrades. */
void conn_http_feed(conn_t *c, char *data, size_t len);

/* Re-reads what was held once nothing holds the requests any more. */
void conn_http_unblock(conn_t *c);

#endif
