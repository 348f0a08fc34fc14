/*
 * auth_key.h - the one place RESP AUTH asks whether a key is an accepted
 * API key (the api_keys table, apikey.h). Without keys configured, AUTH
 * answers as Redis does without a password and RESP is open (it binds to
 * 127.0.0.1 by default); with keys, a RESP connection must AUTH before
 * PUBLISH or SUBSCRIBE, and publishes only where its key may.
 */
#ifndef WSB_BROKER_AUTH_KEY_H
#define WSB_BROKER_AUTH_KEY_H

#include "core/apikey.h"
#include "core/auth.h"
#include "wsb/http.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    AUTH_KEY_NONE_CONFIGURED = 0, /* no keys: everyone may publish/subscribe */
    AUTH_KEY_OK = 1,
    AUTH_KEY_BAD = 2
} auth_key_result_t;

/* True when API keys are configured (RESP then requires AUTH). */
bool auth_api_keys_configured(const auth_t *a);

/* Checks `key` (`len` bytes, not NUL-terminated) against the API keys in
 * constant time; on AUTH_KEY_OK *entry is the key's entry (borrowed from the
 * configuration). */
auth_key_result_t auth_check_api_key(const auth_t *a, const char *key, size_t len,
                                     const apikey_t **entry);

/* The API key an HTTP request carries: "X-API-Key: KEY", else
 * "Authorization: Bearer KEY" (a view into the request; {NULL,0}: none).
 * The HTTP API and the admin API read their credentials here. */
wsb_str_t auth_request_key(const wsb_http_request_t *req);

#endif
