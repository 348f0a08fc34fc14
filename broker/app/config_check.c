/* config_check.c - `wsbroker --check-config`: what a start does with the
 * configuration short of binding ports, and the effective configuration
 * with the source of each value (see config.h). */
#include "app/config.h"
#include "app/config_keys.h"
#include "core/auth.h"
#include "net/tls.h"

#include <string.h>

/* Keys whose values are never printed. */
static const char *const secret_keys[] = {"auth.jwt_secret", "api_keys", "admin_keys",
                                          "redis.sentinel_password", "redis.password"};

static const char *const source_names[] = {
    [CONFIG_SRC_DEFAULT] = "default",
    [CONFIG_SRC_FILE] = "file",
    [CONFIG_SRC_ENV] = "env",
    [CONFIG_SRC_FLAG] = "flag",
};

static bool is_secret(const key_def_t *k)
{
    for (size_t i = 0; i < sizeof secret_keys / sizeof secret_keys[0]; i++) {
        if (strcmp(k->name, secret_keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* redis://user:PASSWORD@host -> redis://user:<redacted>@host, in place. */
static void redact_url_password(char *buf, size_t len)
{
    char *scheme = strstr(buf, "://");
    char *at = scheme != NULL ? strrchr(scheme, '@') : NULL;
    if (at == NULL) {
        return;
    }
    char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
    if (colon == NULL || colon + 1 == at) {
        return;
    }
    char rest[512];
    (void)snprintf(rest, sizeof rest, "%s", at);
    (void)snprintf(colon + 1, len - (size_t)(colon + 1 - buf), "<redacted>%s", rest);
}

int config_key_source(const config_t *cfg, const char *name)
{
    const key_def_t *k = config_find_key(name);
    return k != NULL ? cfg->key_source[k - config_keys] : -1;
}

void config_print_effective(const config_t *cfg, FILE *out)
{
    if (cfg->config_file != NULL) {
        (void)fprintf(out, "config = \"%s\" (%s)\n", cfg->config_file,
                      source_names[cfg->config_file_source]);
    } else {
        (void)fprintf(out, "config = \"\" (default)\n");
    }
    for (size_t i = 0; i < config_nkeys; i++) {
        const key_def_t *k = &config_keys[i];
        char value[1024];
        config_format_value(cfg, k, value, sizeof value);
        if (is_secret(k) && strcmp(value, "\"\"") != 0) {
            (void)snprintf(value, sizeof value, "<redacted>");
        } else if (k->offset == OFF(redis_url)) {
            redact_url_password(value, sizeof value);
        }
        unsigned src = cfg->key_source[i];
        (void)fprintf(out, "%s = %s (%s)\n", k->name, value,
                      src < sizeof source_names / sizeof source_names[0] ? source_names[src]
                                                                         : "default");
    }
}

int config_check(const config_t *cfg, FILE *out, char *err, size_t errlen)
{
    /* The keys and files a start loads before binding (broker_init). */
    auth_config_t acfg;
    auth_t auth;
    memset(&auth, 0, sizeof auth);
    config_auth(cfg, &acfg);
    int rc = auth_init(&auth, &acfg, err, errlen);
    auth_free(&auth); /* also after a failed init (auth.h: auth_init ran) */
    if (rc != 0) {
        return -1;
    }
    if (cfg->tls_cert[0] != '\0') {
        tls_files_t files = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca};
        tls_server_t *tls = tls_server_new(&files, err, errlen);
        if (tls == NULL) {
            return -1;
        }
        tls_server_free(tls);
    }
    config_print_effective(cfg, out);
    return 0;
}
