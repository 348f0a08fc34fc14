/*
 * inbox.h - request inboxes (core/request.h) as the fan-out and the publish
 * path see them: the "_inbox." name space, inbox names, and the probe that
 * counts a request's responders across workers.
 *
 * Inbox names are "_inbox." + 32 hex digits from the CSPRNG (128 bits:
 * unguessable). The probe rides on the request's message (xmsg_t.probe,
 * freed with it): every worker counts, after matching the topic against
 * its own trie (or after missing the message for a full inbox), and the
 * last one, when no worker matched, pushes a {"type":"no_responders"} event
 * for the inbox into the requester's worker's inbox.
 */
#ifndef WSB_BROKER_CORE_INBOX_H
#define WSB_BROKER_CORE_INBOX_H

#include "core/inbox_name.h"

#include <stdbool.h>
#include <stddef.h>

#define INBOX_RANDOM ((size_t)16) /* bytes: 32 hex digits */
#define INBOX_LEN    (INBOX_PREFIX_LEN + 2 * INBOX_RANDOM)

typedef struct core_s core_t;
typedef struct core_worker_s core_worker_t;
typedef struct xmsg_s xmsg_t;
typedef struct request_probe_s request_probe_t;

/* A fresh, unguessable inbox name (NUL-terminated). */
void inbox_make(char out[INBOX_LEN + 1]);

/* A probe for a request of worker `w` answered on `inbox` (INBOX_LEN
 * bytes); the message that carries it frees it. Aborts on OOM. */
request_probe_t *inbox_probe_new(const core_worker_t *w, const char *inbox);

/* Worker drained (or, full, dropped) the request message `m`, and
 * `matches` of its subscribers matched it. Any thread. */
void inbox_probe_count(core_t *c, xmsg_t *m, size_t matches);

#endif
