/* redis_sentinel.c - the Redis master found and followed through Redis
 * Sentinel (see redis_sentinel.h). */
#include "cluster/redis_sentinel.h"

#include "cluster/bridge_sub.h"
#include "shared/log.h"
#include "shared/util.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A sentinel answers from memory: one that takes longer is as good as down. */
#define ASK_TIMEOUT_MS   2000
#define ROUND_BACKOFF_MS 100

typedef struct {
    char host[SENTINEL_HOST_MAX + 1];
    unsigned port;
} endpoint_t;

typedef enum {
    IDLE = 0, /* waiting for the next round (timer) or stopped */
    ASKING,   /* connected or connecting: awaiting the master's address */
    WATCHING, /* answered: subscribed to +switch-master */
} phase_t;

struct sentinel_s {
    sentinel_config_t cfg;
    sentinel_cb_t cb;
    void *user_data;
    uv_loop_t *loop;
    endpoint_t sentinels[SENTINEL_MAX];
    unsigned nsentinels;
    unsigned next;    /* the sentinel asked next */
    unsigned tried;   /* sentinels that failed in this round */
    unsigned pending; /* replies awaited before the address: AUTH */
    phase_t phase;
    bridge_sub_t *bs;
    uv_timer_t timer; /* the ask timeout, or the wait between rounds */
    bool timer_init;
    bool stopping;
    uint64_t backoff_ms;
    endpoint_t master;
    bool have_master;
    pthread_mutex_t lock; /* guards addr, read by other threads */
    char addr[SENTINEL_HOST_MAX + 10];
};

static bool parse_port(const char *p, size_t len, unsigned *port)
{
    if (len == 0 || len > 5) {
        return false;
    }
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *port = v;
    return v > 0 && v <= 65535;
}

/* "host:port" or "[v6]:port" (`len` bytes) into `out`; false when malformed. */
static bool parse_endpoint(const char *p, size_t len, endpoint_t *out)
{
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--) {
        if (p[i - 1] == ':') {
            colon = p + i - 1;
            break;
        }
    }
    if (colon == NULL) {
        return false;
    }
    const char *host = p;
    size_t hlen = (size_t)(colon - p);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    } else if (memchr(host, ':', hlen) != NULL) {
        return false; /* an IPv6 address needs its brackets */
    }
    if (hlen == 0 || hlen > SENTINEL_HOST_MAX || memchr(host, ',', hlen) != NULL) {
        return false;
    }
    unsigned port = 0;
    if (!parse_port(colon + 1, len - (size_t)(colon + 1 - p), &port)) {
        return false;
    }
    if (out != NULL) {
        memcpy(out->host, host, hlen);
        out->host[hlen] = '\0';
        out->port = port;
    }
    return true;
}

/* Splits `list` into `out` (room for SENTINEL_MAX; NULL: only count). */
static int split_list(const char *list, endpoint_t *out)
{
    int n = 0;
    if (list[0] == '\0') {
        return 0;
    }
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == SENTINEL_MAX || !parse_endpoint(p, len, out != NULL ? &out[n] : NULL)) {
            return -1;
        }
        n++;
        if (comma == NULL) {
            return n;
        }
        p = comma + 1;
    }
}

int sentinel_parse_list(const char *list)
{
    return split_list(list, NULL);
}

sentinel_t *sentinel_new(const sentinel_config_t *cfg, const sentinel_cb_t *cb, void *user_data)
{
    sentinel_t *s = xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    s->cb = *cb;
    s->user_data = user_data;
    int n = split_list(cfg->sentinels, s->sentinels);
    s->nsentinels = n > 0 ? (unsigned)n : 0; /* validated at load: never empty here */
    s->backoff_ms = ROUND_BACKOFF_MS;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void sentinel_addr(sentinel_t *s, char *buf, size_t len)
{
    pthread_mutex_lock(&s->lock);
    (void)snprintf(buf, len, "%s", s->addr);
    pthread_mutex_unlock(&s->lock);
}

bool sentinel_master(const sentinel_t *s, const char **host, unsigned *port)
{
    if (!s->have_master) {
        return false;
    }
    *host = s->master.host;
    *port = s->master.port;
    return true;
}

bool sentinel_role_is_master(const struct redisReply *reply)
{
    const redisReply *r = reply;
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len == 6 &&
           memcmp(r->element[0]->str, "master", 6) == 0;
}

static void ask_next(sentinel_t *s);
static void give_up_on(sentinel_t *s, const char *why);

/* The ask timeout (a hung sentinel), or the wait before the next question. */
static void on_timer(uv_timer_t *t)
{
    sentinel_t *s = t->data;
    if (s->stopping) {
        return;
    }
    if (s->phase == ASKING) {
        give_up_on(s, "no answer in time"); /* comes back here, IDLE, at once */
        return;
    }
    ask_next(s);
}

/* The sentinel being asked failed (`why`, logged): the next one, or a new
 * round after the backoff when every one failed. */
static void give_up_on(sentinel_t *s, const char *why)
{
    const endpoint_t *e = &s->sentinels[s->next];
    if (why != NULL && !s->stopping) {
        log_warn("redis sentinel: unusable", "sentinel=%s port=%u err=%s", e->host, e->port,
                 log_quote(why));
    }
    if (s->bs != NULL) {
        bridge_sub_close(s->bs);
        s->bs = NULL;
    }
    uv_timer_stop(&s->timer);
    s->phase = IDLE;
    s->next = (s->next + 1) % s->nsentinels;
    s->tried++;
    if (!s->stopping) {
        uv_timer_start(&s->timer, on_timer, 0, 0); /* not from inside this connection's callback */
    }
}

/* A host name or address as a sentinel announces it; anything else (quotes,
 * spaces, control bytes) is refused before it reaches a log, /healthz or a
 * metric label. */
static bool is_host(const char *host, size_t hlen)
{
    if (hlen == 0 || hlen > SENTINEL_HOST_MAX) {
        return false;
    }
    for (size_t i = 0; i < hlen; i++) {
        char c = host[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static void set_master(sentinel_t *s, const char *host, size_t hlen, unsigned port)
{
    if (!is_host(host, hlen) || port == 0 || port > 65535) {
        log_warn("redis sentinel: master address refused", "name=%s",
                 log_quote(s->cfg.master_name));
        return;
    }
    bool same = s->have_master && s->master.port == port && strlen(s->master.host) == hlen &&
                memcmp(s->master.host, host, hlen) == 0;
    if (same) {
        return;
    }
    memcpy(s->master.host, host, hlen);
    s->master.host[hlen] = '\0';
    s->master.port = port;
    s->have_master = true;
    pthread_mutex_lock(&s->lock);
    bool v6 = memchr(host, ':', hlen) != NULL;
    (void)snprintf(s->addr, sizeof s->addr, v6 ? "[%s]:%u" : "%s:%u", s->master.host, port);
    pthread_mutex_unlock(&s->lock);
    log_info("redis sentinel: master", "name=%s addr=%s", log_quote(s->cfg.master_name), s->addr);
    s->cb.on_switch(s->user_data, s->master.host, port);
}

/* "<name> <old-ip> <old-port> <new-ip> <new-port>" */
static void on_switch_message(sentinel_t *s, const char *msg, size_t len)
{
    const char *f[5];
    size_t fl[5];
    size_t n = 0;
    const char *p = msg, *end = msg + len;
    while (p < end && n < 5) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *stop = sp != NULL ? sp : end;
        f[n] = p;
        fl[n] = (size_t)(stop - p);
        n++;
        p = sp != NULL ? sp + 1 : end;
    }
    unsigned port = 0;
    if (n != 5 || p != end || fl[0] != strlen(s->cfg.master_name) ||
        memcmp(f[0], s->cfg.master_name, fl[0]) != 0 || !parse_port(f[4], fl[4], &port)) {
        return; /* another master's, or not understood */
    }
    char shown[2 * SENTINEL_HOST_MAX + 64];
    (void)snprintf(shown, sizeof shown, "%.*s", (int)(len < sizeof shown ? len : sizeof shown - 1),
                   msg);
    log_info("redis sentinel: +switch-master", "msg=%s", log_quote(shown));
    set_master(s, f[3], fl[3], port);
}

static bool is_str(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return r->type == REDIS_REPLY_STRING && r->len == n && memcmp(r->str, s, n) == 0;
}

static void on_reply(bridge_sub_t *bs, const redisReply *reply, void *user_data)
{
    (void)bs;
    sentinel_t *s = user_data;
    if (s->phase == ASKING && s->pending > 0) {
        s->pending--;
        if (reply->type == REDIS_REPLY_ERROR) {
            give_up_on(s, reply->str);
        }
        return;
    }
    if (s->phase == ASKING) {
        /* The address, then (below) the subscription's confirmation. */
        if (reply->type == REDIS_REPLY_ERROR) {
            give_up_on(s, reply->str);
            return;
        }
        unsigned port = 0;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_STRING ||
            !parse_port(reply->element[1]->str, reply->element[1]->len, &port)) {
            give_up_on(s, reply->type == REDIS_REPLY_NIL ? "master name unknown"
                                                         : "unexpected answer");
            return;
        }
        uv_timer_stop(&s->timer);
        s->phase = WATCHING;
        s->tried = 0;
        s->backoff_ms = ROUND_BACKOFF_MS;
        set_master(s, reply->element[0]->str, reply->element[0]->len, port);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        give_up_on(s, reply->str); /* the SUBSCRIBE refused */
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        is_str(reply->element[0], "message") && is_str(reply->element[1], "+switch-master") &&
        reply->element[2]->type == REDIS_REPLY_STRING) {
        on_switch_message(s, reply->element[2]->str, reply->element[2]->len);
    }
}

static void on_connected(bridge_sub_t *bs, void *user_data)
{
    (void)bs;
    (void)user_data;
}

static void on_closed(bridge_sub_t *bs, const char *why, void *user_data)
{
    (void)bs;
    sentinel_t *s = user_data;
    bool was_watching = s->phase == WATCHING;
    give_up_on(s, why); /* its close comes first; bridge_sub's own is then a no-op */
    if (was_watching) {
        s->tried = 0; /* a new round: the one that answered is gone */
    }
}

static void ask_next(sentinel_t *s)
{
    static const bridge_sub_cb_t callbacks = {on_connected, on_reply, on_closed};
    if (s->stopping) {
        return;
    }
    if (s->tried >= s->nsentinels) {
        /* Every sentinel failed: wait, then a new round. */
        s->tried = 0;
        uint64_t wait = s->backoff_ms;
        s->backoff_ms =
            s->backoff_ms * 2 > s->cfg.backoff_max_ms ? s->cfg.backoff_max_ms : s->backoff_ms * 2;
        log_warn("redis sentinel: no sentinel answered", "name=%s retry_ms=%llu",
                 log_quote(s->cfg.master_name), (unsigned long long)wait);
        uv_timer_start(&s->timer, on_timer, wait, 0);
        return;
    }
    const endpoint_t *e = &s->sentinels[s->next];
    char err[160];
    s->bs = bridge_sub_connect(s->loop, e->host, e->port, &callbacks, s, err, sizeof(err));
    if (s->bs == NULL) {
        give_up_on(s, err);
        return;
    }
    s->phase = ASKING;
    s->pending = 0;
    if (s->cfg.password != NULL) {
        const char *argv[2] = {"AUTH", s->cfg.password};
        size_t lens[2] = {4, strlen(s->cfg.password)};
        bridge_sub_command(s->bs, 2, argv, lens);
        s->pending++;
    }
    const char *get[3] = {"SENTINEL", "get-master-addr-by-name", s->cfg.master_name};
    size_t get_lens[3] = {8, strlen(get[1]), strlen(s->cfg.master_name)};
    bridge_sub_command(s->bs, 3, get, get_lens);
    const char *sub[2] = {"SUBSCRIBE", "+switch-master"};
    size_t sub_lens[2] = {9, strlen(sub[1])};
    bridge_sub_command(s->bs, 2, sub, sub_lens);
    uv_timer_start(&s->timer, on_timer, ASK_TIMEOUT_MS, 0);
}

void sentinel_start(sentinel_t *s, uv_loop_t *loop)
{
    s->loop = loop;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->timer_init = true;
    ask_next(s);
}

void sentinel_master_lost(sentinel_t *s)
{
    if (s->stopping || s->phase != WATCHING) {
        return; /* a round is under way, or waits for its backoff */
    }
    /* Ask the sentinel that answered last again, on a new connection (the
     * watching one is subscribed: it can ask nothing). */
    if (s->bs != NULL) {
        bridge_sub_close(s->bs);
        s->bs = NULL;
    }
    s->phase = IDLE;
    s->tried = 0;
    ask_next(s);
}

void sentinel_stop(sentinel_t *s)
{
    s->stopping = true;
    if (s->bs != NULL) {
        bridge_sub_close(s->bs);
        s->bs = NULL;
    }
    if (s->timer_init) {
        uv_timer_stop(&s->timer);
        uv_close((uv_handle_t *)&s->timer, NULL); /* freed in sentinel_free, after the loop ran */
    }
}

void sentinel_free(sentinel_t *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}
