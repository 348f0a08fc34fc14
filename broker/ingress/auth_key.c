/* auth_key.c - API key check for RESP AUTH (see auth_key.h). */
#include "ingress/auth_key.h"

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
