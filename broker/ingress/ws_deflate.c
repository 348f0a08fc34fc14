/* ws_deflate.c - permessage-deflate (RFC 7692) on a WebSocket session: the
 * shared compressed frame of a published message out, bounded inflation of
 * compressed messages in (see ws_session.h). The negotiation is
 * ws_upgrade.c's, the codec protocol/ws_deflate.c's, the compress-once cache
 * core/xmsg.c's. */
#include "wsb/ws_deflate.h"

#include "core/xmsg.h"
#include "ingress/ingress.h"
#include "ingress/ws_session.h"
#include "net/conn.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/util.h"
#include "wsb/utf8.h"

#include <stdlib.h>

struct ws_deflate_s {
    wsb_pmd_inflater_t *inflater; /* NULL until a compressed message arrives */
    bool client_reset;            /* client_no_context_takeover: no context kept */
    uint8_t window_bits;          /* server_max_window_bits the client set (15: none) */
};

void session_enable_deflate(session_t *s, bool client_reset, unsigned window_bits)
{
    struct ws_deflate_s *d = xcalloc(1, sizeof(*d));
    d->client_reset = client_reset;
    d->window_bits = (uint8_t)window_bits;
    session_extra(s)->deflate = d;
    /* RSV1 now means "compressed" on a message's first frame. */
    s->parser.rsv_mask |= WSB_WS_RSV1;
    s->parser.deflate = true;
}

frame_buf_t *session_deflate_frame(session_t *s, frame_buf_t *fb)
{
    const struct ws_deflate_s *d = s->extra != NULL ? s->extra->deflate : NULL;
    if (d == NULL) {
        return fb;
    }
    xmsg_deflate_stats_t st;
    frame_buf_t *out =
        xmsg_deflated_buf(fb, (size_t)s->ctx->cfg->compression_min_size, d->window_bits, &st);
    metrics_t *m = s->ctx->metrics;
    if (st.in_bytes > 0) {
        METRIC_ADD(m->deflate_messages, 1);
        METRIC_ADD(m->deflate_bytes_in, st.in_bytes);
        METRIC_ADD(m->deflate_bytes_out, st.out_bytes);
        METRIC_ADD(m->deflate_ns, st.ns);
    }
    if (out != fb) {
        METRIC_ADD(m->deflate_deliveries, 1);
    }
    return out;
}

int session_inflate(session_t *s, int opcode, const uint8_t *data, size_t len, uint8_t **out,
                    size_t *out_len)
{
    struct ws_deflate_s *d = s->extra->deflate; /* RSV1 is only allowed once enabled */
    if (d->inflater == NULL) {
        d->inflater = wsb_pmd_inflater_new();
        if (d->inflater == NULL) {
            wsb_oom("inflate state");
        }
    }
    uint64_t max = s->ctx->cfg->max_message_size;
    int rc = wsb_pmd_inflate(d->inflater, data, len, max, d->client_reset, out, out_len);
    if (rc == WSB_ENOMEM) {
        wsb_oom("inflate");
    }
    if (rc == 0 && opcode == WSB_WS_OP_TEXT && !wsb_utf8_valid(*out, *out_len)) {
        free(*out);
        *out = NULL;
        rc = WSB_EUTF8;
    }
    /* Without context takeover nothing needs to survive the message; after
     * an error the inflater is unusable. Either way an idle connection then
     * holds no zlib state. */
    if (rc != 0 || d->client_reset) {
        wsb_pmd_inflater_free(d->inflater);
        d->inflater = NULL;
    }
    if (rc == 0) {
        METRIC_ADD(s->ctx->metrics->inflate_messages, 1);
        return 0;
    }
    const char *why = rc == WSB_ETOOBIG ? "message larger than max_message_size after inflation"
                      : opcode == WSB_WS_OP_TEXT && rc == WSB_EUTF8
                          ? "compressed message is not valid deflate data or UTF-8 text"
                          : "compressed message is not valid deflate data";
    int code = rc == WSB_ETOOBIG ? WSB_WS_CLOSE_TOO_BIG : WSB_WS_CLOSE_BAD_DATA;
    log_debug("ws protocol error", "peer=%s code=%d why=%s", conn_peer(s->conn), code,
              log_quote(why));
    conn_t *c = s->conn;
    c->got_peer_close = true;
    conn_ws_close(c, code, why, false);
    conn_linger(c);
    return -1;
}

void session_deflate_free(session_t *s)
{
    struct ws_deflate_s *d = s->extra != NULL ? s->extra->deflate : NULL;
    if (d != NULL) {
        wsb_pmd_inflater_free(d->inflater);
        free(d);
        s->extra->deflate = NULL;
    }
}
