/* config_redis_url.c - the redis:// URL of redis.url taken apart (see config.h). */
#include "app/config.h"
#include "shared/units.h"

#include <stdlib.h>
#include <string.h>

/* ---- redis:// URLs --------------------------------------------------------- */

static int parse_small_uint(const char *s, unsigned max, unsigned *out)
{
    uint64_t v = 0;
    if (units_parse_uint(s, &v) != 0 || v > max) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

bool config_redis_on(const config_t *cfg)
{
    return cfg->redis_url[0] != '\0' || cfg->redis_sentinels[0] != '\0' ||
           cfg->redis_cluster[0] != '\0';
}

int config_parse_redis_url(const char *url, redis_url_t *out)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(url, scheme, sizeof scheme - 1) != 0 ||
        strlen(url) - (sizeof scheme - 1) >= sizeof out->buf) {
        return -1;
    }
    char *p = out->buf;
    size_t n = strlen(url) - (sizeof scheme - 1);
    memcpy(p, url + sizeof scheme - 1, n + 1); /* length checked above */
    char *slash = strchr(p, '/');
    if (slash != NULL) {
        *slash = '\0';
        if (slash[1] != '\0' && parse_small_uint(slash + 1, 1000000, &out->db) != 0) {
            return -1;
        }
    }
    char *at = strrchr(p, '@');
    if (at != NULL) {
        *at = '\0';
        char *colon = strchr(p, ':');
        if (colon == NULL) {
            return -1; /* "user@host" without a password: ambiguous, refused */
        }
        *colon = '\0';
        out->user = p[0] != '\0' ? p : NULL;
        out->password = colon + 1;
        p = at + 1;
    }
    char *port = NULL;
    if (p[0] == '[') {
        char *close = strchr(p, ']');
        if (close == NULL) {
            return -1;
        }
        *close = '\0';
        p++;
        if (close[1] == ':') {
            port = close + 2;
        } else if (close[1] != '\0') {
            return -1;
        }
    } else {
        char *colon = strchr(p, ':');
        if (colon != NULL) {
            *colon = '\0';
            port = colon + 1;
        }
    }
    if (port != NULL && (parse_small_uint(port, 65535, &out->port) != 0 || out->port == 0)) {
        return -1;
    }
    out->host = p[0] != '\0' ? p : "127.0.0.1";
    return 0;
}
