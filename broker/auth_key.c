/* auth_key.c - API key check for RESP AUTH (see auth_key.h). */
#include "auth_key.h"

bool auth_api_keys_configured(const config_t *cfg)
{
    /* Wired to the API key table when it exists (issue 8). */
    (void)cfg;
    return false;
}

auth_key_result_t auth_check_api_key(const config_t *cfg, const char *key, size_t len)
{
    (void)key;
    (void)len;
    if (!auth_api_keys_configured(cfg)) {
        return AUTH_KEY_NONE_CONFIGURED;
    }
    return AUTH_KEY_BAD;
}
