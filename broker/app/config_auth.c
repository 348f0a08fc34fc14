/* config_auth.c - the configuration as auth sees it (see config.h). */
#include "app/config.h"

void config_auth(const config_t *cfg, auth_config_t *out)
{
    *out = (auth_config_t){
        .jwt_secret = cfg->auth_jwt_secret,
        .jwt_public_key = cfg->auth_jwt_public_key,
        .require_exp = cfg->auth_require_exp,
        .leeway_ms = cfg->auth_leeway_ms,
        .anonymous_subscribe = cfg->auth_anonymous_subscribe,
        .anonymous_publish = cfg->auth_anonymous_publish,
        .max_connections_per_ip = cfg->max_connections_per_ip,
        .max_handshakes_per_second = cfg->max_handshakes_per_second,
        .allowed_origins = cfg->allowed_origins,
        .allow_missing_origin = cfg->allow_missing_origin,
        .apikeys = cfg->apikeys,
        .napikeys = cfg->napikeys,
        .adminkeys = cfg->adminkeys,
        .nadminkeys = cfg->nadminkeys,
    };
}

bool auth_origin_allowed(const config_t *cfg, wsb_str_t origin)
{
    auth_config_t ac;
    config_auth(cfg, &ac);
    return auth_origin_ok(&ac, origin);
}
