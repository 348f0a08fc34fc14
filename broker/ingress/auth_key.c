/* auth_key.c - API key check for RESP AUTH (see auth_key.h). */
#include "ingress/auth_key.h"

#include <strings.h>

wsb_str_t auth_request_key(const wsb_http_request_t *req)
{
    wsb_str_t h = wsb_http_request_header(req, "X-API-Key");
    if (h.p != NULL) {
        return h;
    }
    h = wsb_http_request_header(req, "Authorization");
    if (h.p != NULL && h.len > 7 && strncasecmp(h.p, "Bearer ", 7) == 0) {
        return (wsb_str_t){h.p + 7, h.len - 7};
    }
    return WSB_STR_NULL;
}

bool auth_api_keys_configured(const auth_t *a)
{
    return a->cfg.napikeys > 0;
}

auth_key_result_t auth_check_api_key(const auth_t *a, const char *key, size_t len,
                                     const apikey_t **entry)
{
    if (!auth_api_keys_configured(a)) {
        return AUTH_KEY_NONE_CONFIGURED;
    }
    const apikey_t *k = apikey_lookup(a->cfg.apikeys, a->cfg.napikeys, key, len);
    if (k == NULL) {
        return AUTH_KEY_BAD;
    }
    *entry = k;
    return AUTH_KEY_OK;
}
