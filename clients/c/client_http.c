/* client_http.c - URL parsing, the upgrade request and the response head
 * parser of the client's opening handshake (see client_http.h). */
#include "client_http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_why(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t cap, const char *fmt, ...)
{
    if (why == NULL || cap == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static char *dup_range(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int lower(int ch)
{
    return (ch >= 'A' && ch <= 'Z') ? ch + ('a' - 'A') : ch;
}

static bool prefix_nocase(const char *s, const char *lit)
{
    for (; *lit != '\0'; s++, lit++) {
        if (lower((unsigned char)*s) != lower((unsigned char)*lit)) {
            return false;
        }
    }
    return true;
}

void wsb__url_free(wsb__url_t *u)
{
    if (u == NULL) {
        return;
    }
    free(u->host);
    free(u->host_header);
    free(u->target);
    memset(u, 0, sizeof(*u));
}

bool wsb__header_safe(const char *s, bool space)
{
    if (s == NULL || *s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch > 0x7E || ch < 0x20 || (ch == 0x20 && !space)) {
            return false;
        }
    }
    return true;
}

/* A host name or IPv4 address: letters, digits, '-', '.', '_' (the last for
 * names some resolvers accept). Anything else (spaces, '@', '%') is refused
 * rather than passed to the resolver and the Host header. */
static bool host_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

static bool ipv6_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') || (ch >= '0' && ch <= '9') ||
           ch == ':' || ch == '.';
}

static int parse_port(const char *p, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5) {
        return WSB_EINVAL;
    }
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return WSB_EINVAL;
        }
        v = v * 10u + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535u) {
        return WSB_EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

int wsb__url_parse(const char *url, wsb__url_t *u, char *why, size_t cap)
{
    memset(u, 0, sizeof(*u));
    if (url == NULL || *url == '\0') {
        set_why(why, cap, "the URL is empty (expected ws://host[:port]/path)");
        return WSB_EINVAL;
    }
    if (!wsb__header_safe(url, false)) {
        set_why(why, cap, "URL '%.200s' contains a space, a control or a non-ASCII character", url);
        return WSB_EINVAL;
    }
    const char *p;
    if (prefix_nocase(url, "ws://")) {
        p = url + 5;
    } else if (prefix_nocase(url, "wss://")) {
        u->tls = true;
        p = url + 6;
    } else {
        set_why(why, cap, "URL '%.200s' must start with ws:// or wss://", url);
        return WSB_EINVAL;
    }
    size_t auth_len = strcspn(p, "/?#");
    const char *rest = p + auth_len;
    if (memchr(p, '@', auth_len) != NULL) {
        set_why(why, cap, "URL '%.200s': user information (user@host) is not supported", url);
        return WSB_EINVAL;
    }
    const char *host = p;
    size_t host_len;
    const char *port_p = NULL;
    size_t port_len = 0;
    bool ipv6 = false;
    if (auth_len > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', auth_len);
        if (close == NULL || close == p + 1) {
            set_why(why, cap, "URL '%.200s': an IPv6 address must be written [addr]", url);
            return WSB_EINVAL;
        }
        host = p + 1;
        host_len = (size_t)(close - host);
        for (size_t i = 0; i < host_len; i++) {
            if (!ipv6_char_ok(host[i])) {
                set_why(why, cap, "URL '%.200s': invalid character in the IPv6 address", url);
                return WSB_EINVAL;
            }
        }
        ipv6 = true;
        const char *after = close + 1;
        if (after < p + auth_len) {
            if (*after != ':') {
                set_why(why, cap, "URL '%.200s': unexpected text after ']'", url);
                return WSB_EINVAL;
            }
            port_p = after + 1;
            port_len = (size_t)(p + auth_len - port_p);
        }
    } else {
        const char *colon = memchr(p, ':', auth_len);
        host_len = colon ? (size_t)(colon - p) : auth_len;
        if (colon != NULL) {
            port_p = colon + 1;
            port_len = (size_t)(p + auth_len - port_p);
        }
        for (size_t i = 0; i < host_len; i++) {
            if (!host_char_ok(host[i])) {
                set_why(why, cap, "URL '%.200s': invalid character '%c' in the host", url, host[i]);
                return WSB_EINVAL;
            }
        }
    }
    if (host_len == 0) {
        set_why(why, cap, "URL '%.200s' has no host", url);
        return WSB_EINVAL;
    }
    if (host_len > 253) {
        set_why(why, cap, "URL host is longer than 253 characters");
        return WSB_EINVAL;
    }
    u->port = u->tls ? 443 : 80;
    if (port_p != NULL && parse_port(port_p, port_len, &u->port) != 0) {
        set_why(why, cap, "URL '%.200s': the port must be a number from 1 to 65535", url);
        return WSB_EINVAL;
    }
    size_t target_len = strcspn(rest, "#");
    bool default_port = u->port == (u->tls ? 443 : 80);
    char hh[300];
    int n =
        snprintf(hh, sizeof(hh), "%s%.*s%s", ipv6 ? "[" : "", (int)host_len, host, ipv6 ? "]" : "");
    if (!default_port && n > 0) {
        (void)snprintf(hh + n, sizeof(hh) - (size_t)n, ":%u", (unsigned)u->port);
    }
    u->host = dup_range(host, host_len);
    u->host_header = dup_range(hh, strlen(hh));
    if (target_len == 0 || rest[0] == '?') {
        /* "ws://h" and "ws://h?x" both mean the path "/". */
        u->target = malloc(target_len + 2);
        if (u->target != NULL) {
            u->target[0] = '/';
            memcpy(u->target + 1, rest, target_len);
            u->target[target_len + 1] = '\0';
        }
    } else {
        u->target = dup_range(rest, target_len);
    }
    if (u->host == NULL || u->host_header == NULL || u->target == NULL) {
        wsb__url_free(u);
        return WSB_ENOMEM;
    }
    return 0;
}

/* Query-component percent-encoding: unreserved characters stay, every other
 * byte becomes %XX. */
static size_t pct_encode(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        if (keep) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    return n;
}

char *wsb__upgrade_request(const wsb__url_t *u, const char *key, const char *token,
                           const char *origin, size_t *len)
{
    size_t tlen = token ? strlen(token) : 0;
    size_t olen = origin ? strlen(origin) : 0;
    size_t cap = strlen(u->target) + strlen(u->host_header) + strlen(key) + 4 * tlen + olen + 256;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "GET %s", u->target);
    if (token != NULL) {
        n += (size_t)snprintf(buf + n, cap - n, "%ctoken=", strchr(u->target, '?') ? '&' : '?');
        n += pct_encode(buf + n, token);
    }
    n += (size_t)snprintf(buf + n, cap - n,
                          " HTTP/1.1\r\n"
                          "Host: %s\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Key: %s\r\n"
                          "Sec-WebSocket-Version: 13\r\n",
                          u->host_header, key);
    if (token != NULL) {
        n += (size_t)snprintf(buf + n, cap - n, "Authorization: Bearer %s\r\n", token);
    }
    if (origin != NULL) {
        n += (size_t)snprintf(buf + n, cap - n, "Origin: %s\r\n", origin);
    }
    n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    *len = n;
    return buf;
}

void wsb__resp_init(wsb__resp_t *r)
{
    r->len = 0;
    r->done = false;
    r->status = 0;
    r->upgrade_websocket = false;
    r->connection_upgrade = false;
    r->accept_count = 0;
    r->accept = WSB_STR_NULL;
    r->has_extensions = false;
    r->has_protocol = false;
    r->content_length = -1;
}

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static wsb_str_t trim(const char *p, size_t n)
{
    while (n > 0 && is_ows(p[0])) {
        p++;
        n--;
    }
    while (n > 0 && (is_ows(p[n - 1]) || p[n - 1] == '\r')) {
        n--;
    }
    return (wsb_str_t){p, n};
}

/* True if the comma-separated list `v` holds `token` (case-insensitive). */
static bool has_token(wsb_str_t v, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < v.len) {
        size_t j = i;
        while (j < v.len && v.p[j] != ',') {
            j++;
        }
        wsb_str_t item = trim(v.p + i, j - i);
        if (item.len == tl && wsb_str_eq_nocase(item, token)) {
            return true;
        }
        i = j + 1;
    }
    return false;
}

static bool token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int parse_status_line(wsb__resp_t *r, const char *line, size_t n, char *why, size_t cap)
{
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (n < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' ||
        line[8] != ' ') {
        set_why(why, cap, "the response does not start with an HTTP/1.x status line");
        return WSB_EHTTP;
    }
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9') {
            set_why(why, cap, "the response status is not a 3-digit number");
            return WSB_EHTTP;
        }
        st = st * 10 + (line[i] - '0');
    }
    if (n > 12 && line[12] != ' ') {
        set_why(why, cap, "the response status is not a 3-digit number");
        return WSB_EHTTP;
    }
    r->status = st;
    return 0;
}

static int parse_content_length(wsb_str_t v, int64_t *out)
{
    if (v.len == 0 || v.len > 15) {
        return WSB_EINVAL;
    }
    int64_t x = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') {
            return WSB_EINVAL;
        }
        x = x * 10 + (v.p[i] - '0');
    }
    *out = x;
    return 0;
}

static int parse_field(wsb__resp_t *r, const char *line, size_t n, char *why, size_t cap)
{
    const char *colon = memchr(line, ':', n);
    if (colon == NULL || colon == line) {
        set_why(why, cap, "malformed header line in the response");
        return WSB_EHTTP;
    }
    wsb_str_t name = {line, (size_t)(colon - line)};
    for (size_t i = 0; i < name.len; i++) {
        if (!token_char(name.p[i])) {
            set_why(why, cap, "malformed header name in the response");
            return WSB_EHTTP;
        }
    }
    wsb_str_t value = trim(colon + 1, n - name.len - 1);
    if (wsb_str_eq_nocase(name, "upgrade")) {
        r->upgrade_websocket = r->upgrade_websocket || has_token(value, "websocket");
    } else if (wsb_str_eq_nocase(name, "connection")) {
        r->connection_upgrade = r->connection_upgrade || has_token(value, "upgrade");
    } else if (wsb_str_eq_nocase(name, "sec-websocket-accept")) {
        if (r->accept_count++ == 0) {
            r->accept = value;
        }
    } else if (wsb_str_eq_nocase(name, "sec-websocket-extensions")) {
        r->has_extensions = true;
    } else if (wsb_str_eq_nocase(name, "sec-websocket-protocol")) {
        r->has_protocol = true;
    } else if (wsb_str_eq_nocase(name, "content-length")) {
        if (parse_content_length(value, &r->content_length) != 0) {
            r->content_length = -1;
        }
    }
    return 0;
}

static int parse_head(wsb__resp_t *r, char *why, size_t cap)
{
    const char *p = r->head;
    const char *end = r->head + r->len;
    bool first = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            nl = end;
        }
        size_t n = (size_t)(nl - p);
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        if (n == 0) {
            break; /* the blank line */
        }
        if (first) {
            int rc = parse_status_line(r, p, n, why, cap);
            if (rc != 0) {
                return rc;
            }
            first = false;
        } else if (is_ows(p[0])) {
            set_why(why, cap, "obsolete header line folding in the response");
            return WSB_EHTTP;
        } else {
            int rc = parse_field(r, p, n, why, cap);
            if (rc != 0) {
                return rc;
            }
        }
        p = nl + 1;
    }
    if (first) {
        set_why(why, cap, "the response has no status line");
        return WSB_EHTTP;
    }
    return 0;
}

int wsb__resp_feed(wsb__resp_t *r, const uint8_t *data, size_t len, size_t *consumed, char *why,
                   size_t cap)
{
    size_t i = 0;
    if (r->done) {
        if (consumed != NULL) {
            *consumed = 0;
        }
        return 0;
    }
    while (i < len) {
        if (r->len == sizeof(r->head)) {
            if (consumed != NULL) {
                *consumed = i;
            }
            set_why(why, cap, "the response head is longer than %d bytes", WSB__RESP_MAX_HEAD);
            return WSB_EHTTP;
        }
        char ch = (char)data[i++];
        r->head[r->len++] = ch;
        /* The head ends with an empty line: CRLF CRLF, tolerating bare LFs. */
        if (ch == '\n' && (r->len >= 2 && (r->head[r->len - 2] == '\n' ||
                                           (r->len >= 3 && r->head[r->len - 2] == '\r' &&
                                            r->head[r->len - 3] == '\n')))) {
            r->done = true;
            if (consumed != NULL) {
                *consumed = i;
            }
            return parse_head(r, why, cap);
        }
    }
    if (consumed != NULL) {
        *consumed = i;
    }
    return WSB_EAGAIN;
}

int wsb__resp_check_upgrade(const wsb__resp_t *r, const char *expected_accept, char *why,
                            size_t cap)
{
    if (r->status != 101) {
        set_why(why, cap, "the broker answered HTTP %d instead of 101", r->status);
        return WSB_EHANDSHAKE;
    }
    if (!r->upgrade_websocket) {
        set_why(why, cap, "the 101 response lacks 'Upgrade: websocket'");
        return WSB_EHANDSHAKE;
    }
    if (!r->connection_upgrade) {
        set_why(why, cap, "the 101 response lacks 'Connection: Upgrade'");
        return WSB_EHANDSHAKE;
    }
    if (r->accept_count != 1) {
        set_why(why, cap, "the 101 response has %d Sec-WebSocket-Accept fields (expected 1)",
                r->accept_count);
        return WSB_EHANDSHAKE;
    }
    if (!wsb_str_eq(r->accept, expected_accept)) {
        set_why(why, cap, "Sec-WebSocket-Accept '%.*s' does not match the key (expected '%s')",
                (int)(r->accept.len > 60 ? 60 : r->accept.len), r->accept.p, expected_accept);
        return WSB_EHANDSHAKE;
    }
    if (r->has_extensions) {
        set_why(why, cap, "the broker selected an extension although none was offered");
        return WSB_EHANDSHAKE;
    }
    if (r->has_protocol) {
        set_why(why, cap, "the broker selected a subprotocol although none was offered");
        return WSB_EHANDSHAKE;
    }
    return 0;
}

void wsb__base64_16(const uint8_t in[16], char out[WSB__WS_KEY_LEN + 1])
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= 15; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    /* 15 bytes done; the 16th makes two characters and "==". */
    uint32_t v = (uint32_t)in[15] << 16;
    out[o++] = tbl[(v >> 18) & 63];
    out[o++] = tbl[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
    out[o] = '\0';
}
