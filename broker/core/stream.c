/* stream.c - a stream's log, seq and epoch (see stream.h). */
#include "core/stream.h"

#include "core/history.h"
#include "core/seqtab.h"
#include "core/xmsg.h"
#include "shared/units.h"
#include "shared/util.h"
#include "wsb/topic.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define fail err_printf

typedef struct {
    xmsg_t *msg;
    uint64_t time_ms;
} entry_t;

struct stream_s {
    pthread_mutex_t lock;
    stream_conf_t conf;
    char name[WSB_TOPIC_MAX_LEN + 1];
    size_t name_len;
    char epoch[STREAM_EPOCH_LEN + 1];
    uint64_t seq;  /* last seq taken */
    entry_t *ring; /* cap entries; grows by doubling up to conf.size */
    uint32_t cap;
    uint32_t head;    /* index of the oldest entry */
    uint32_t count;   /* entries held; their seqs are seq-count+1 .. seq */
    uint64_t bytes;   /* frames held */
    uint64_t trimmed; /* entries dropped by size, max_bytes or ttl */
};

static int parse_bytes(json_t *v, uint64_t *out)
{
    if (json_is_string(v)) {
        return units_parse_size(json_string_value(v), out);
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    return -1;
}

int stream_conf_parse(json_t *obj, const char *where, stream_conf_t *out, char *err, size_t errlen)
{
    out->size = STREAM_DEFAULT_SIZE;
    out->ttl_ms = 0;
    out->max_bytes = STREAM_DEFAULT_MAX_BYTES;
    out->drop_slow = false;
    if (json_is_true(obj)) {
        return 0; /* "stream": true, every default */
    }
    if (!json_is_object(obj)) {
        return fail(err, errlen,
                    "%s: expected true or an object such as {\"size\":10000,\"ttl\":\"1h\"}",
                    where);
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "size") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > STREAM_MAX_SIZE) {
                return fail(err, errlen,
                            "%s.size: expected an integer from 1 to %d (messages kept)", where,
                            STREAM_MAX_SIZE);
            }
            out->size = (uint32_t)json_integer_value(v);
        } else if (strcmp(key, "ttl") == 0) {
            if (history_parse_ttl(v, &out->ttl_ms) != 0) {
                return fail(err, errlen,
                            "%s.ttl: expected a duration such as 3600 or \"1h\", \"300s\" "
                            "(0 = no age limit)",
                            where);
            }
        } else if (strcmp(key, "max_bytes") == 0) {
            uint64_t b = 0;
            if (parse_bytes(v, &b) != 0 || b < STREAM_MIN_BYTES || b > STREAM_MAX_BYTES) {
                return fail(err, errlen,
                            "%s.max_bytes: expected a size from 1KiB to 1GiB such as \"64MiB\"",
                            where);
            }
            out->max_bytes = b;
        } else if (strcmp(key, "slow_consumer") == 0) {
            const char *how = json_is_string(v) ? json_string_value(v) : "";
            if (strcmp(how, "drop") != 0 && strcmp(how, "close") != 0) {
                return fail(err, errlen, "%s.slow_consumer: expected \"close\" or \"drop\"", where);
            }
            out->drop_slow = strcmp(how, "drop") == 0;
        } else {
            return fail(err, errlen,
                        "%s: unknown field \"%s\" (expected size, ttl, max_bytes, slow_consumer)",
                        where, key);
        }
    }
    return 0;
}

static uint64_t random_u64(void)
{
    uint64_t z = seqtab_random_seed();
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

stream_t *stream_new(const char *pattern, size_t len, const stream_conf_t *conf)
{
    stream_t *s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->conf = *conf;
    if (len > WSB_TOPIC_MAX_LEN) {
        len = WSB_TOPIC_MAX_LEN;
    }
    memcpy(s->name, pattern, len);
    s->name[len] = '\0';
    s->name_len = len;
    uint64_t z = random_u64();
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < STREAM_EPOCH_LEN; i++) {
        s->epoch[i] = hex[(z >> (4 * i)) & 0xf];
    }
    s->epoch[STREAM_EPOCH_LEN] = '\0';
    return s;
}

static void drop_oldest(stream_t *s)
{
    s->trimmed++;
    entry_t *e = &s->ring[s->head];
    s->bytes -= e->msg->frame_len;
    xmsg_unref(e->msg);
    e->msg = NULL;
    s->head = (s->head + 1) % s->cap;
    s->count--;
}

void stream_free(stream_t *s)
{
    if (s == NULL) {
        return;
    }
    while (s->count > 0) {
        drop_oldest(s);
    }
    free(s->ring);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const char *stream_name(const stream_t *s, size_t *len)
{
    if (len != NULL) {
        *len = s->name_len;
    }
    return s->name;
}

void stream_lock(stream_t *s)
{
    pthread_mutex_lock(&s->lock);
}

void stream_unlock(stream_t *s)
{
    pthread_mutex_unlock(&s->lock);
}

const char *stream_epoch(const stream_t *s)
{
    return s->epoch;
}

uint64_t stream_seq(const stream_t *s)
{
    return s->seq;
}

uint64_t stream_next(stream_t *s)
{
    return ++s->seq;
}

uint32_t stream_count(const stream_t *s)
{
    return s->count;
}

uint64_t stream_first_seq(const stream_t *s)
{
    return s->count > 0 ? s->seq - s->count + 1 : 0;
}

static void expire_locked(stream_t *s, uint64_t now_ms)
{
    if (s->conf.ttl_ms == 0) {
        return;
    }
    while (s->count > 0 && now_ms >= s->ring[s->head].time_ms &&
           now_ms - s->ring[s->head].time_ms > s->conf.ttl_ms) {
        drop_oldest(s);
    }
}

/* Makes room for one more entry: grows the ring (up to conf.size) or drops
 * the oldest when it holds conf.size already. */
static void make_room(stream_t *s)
{
    if (s->count == s->conf.size) {
        drop_oldest(s);
        return;
    }
    if (s->count < s->cap) {
        return;
    }
    uint32_t ncap = s->cap < 16 ? 16 : s->cap * 2;
    if (ncap > s->conf.size) {
        ncap = s->conf.size;
    }
    entry_t *n = xmalloc(sizeof(entry_t) * ncap);
    for (uint32_t i = 0; i < s->count; i++) {
        n[i] = s->ring[(s->head + i) % s->cap];
    }
    free(s->ring);
    s->ring = n;
    s->cap = ncap;
    s->head = 0;
}

void stream_append(stream_t *s, xmsg_t *m, uint64_t now_ms)
{
    make_room(s);
    uint32_t tail = (s->head + s->count) % s->cap;
    s->ring[tail].msg = m;
    s->ring[tail].time_ms = now_ms;
    s->count++;
    s->bytes += m->frame_len;
    /* The newest message always stays (max_bytes >= 1 KiB may still be less
     * than one frame): a position is only ever lost to an older one. */
    while (s->count > 1 && s->bytes > s->conf.max_bytes) {
        drop_oldest(s);
    }
    expire_locked(s, now_ms);
}

void stream_expire(stream_t *s, uint64_t now_ms)
{
    stream_lock(s);
    expire_locked(s, now_ms);
    stream_unlock(s);
}

/* Entries from index `from` (0: the oldest held) on matching `pattern`,
 * the last `max` of them, stored as new references. */
static void collect(const stream_t *s, uint32_t from, wsb_str_t pattern, size_t max, xmsg_t ***out,
                    size_t *n)
{
    *out = NULL;
    *n = 0;
    /* Walk back from the newest to find where the last `max` matches begin. */
    size_t found = 0;
    uint32_t start = s->count;
    for (uint32_t i = s->count; i > from && found < max; i--) {
        const xmsg_t *m = s->ring[(s->head + i - 1) % s->cap].msg;
        if (wsb_topic_matches(pattern.p, pattern.len, m->topic, m->topic_len)) {
            found++;
            start = i - 1;
        }
    }
    if (found == 0) {
        return;
    }
    xmsg_t **v = xmalloc(sizeof(xmsg_t *) * found);
    size_t k = 0;
    for (uint32_t i = start; i < s->count && k < found; i++) {
        xmsg_t *m = s->ring[(s->head + i) % s->cap].msg;
        if (wsb_topic_matches(pattern.p, pattern.len, m->topic, m->topic_len)) {
            xmsg_ref(m);
            v[k++] = m;
        }
    }
    *out = v;
    *n = k;
}

void stream_recover(stream_t *s, wsb_str_t epoch, uint64_t since, wsb_str_t pattern,
                    uint64_t now_ms, stream_recovery_t *r, xmsg_t ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    memset(r, 0, sizeof(*r));
    expire_locked(s, now_ms);
    bool same_epoch =
        epoch.len == STREAM_EPOCH_LEN && memcmp(epoch.p, s->epoch, STREAM_EPOCH_LEN) == 0;
    if (same_epoch && since > s->seq) {
        return; /* ahead of the stream: nothing is known to be lost */
    }
    if (same_epoch && since == s->seq) {
        r->recovered = true;
        return;
    }
    uint64_t first = stream_first_seq(s); /* 0: nothing held */
    uint64_t after = same_epoch ? since : 0;
    if (same_epoch && s->count > 0 && first <= since + 1) {
        r->recovered = true;
    } else {
        /* Lost: the seqs after `after` that the log no longer holds. */
        r->gap = true;
        r->gap_seq = after;
        r->gap_to = s->count > 0 ? first - 1 : s->seq;
        after = r->gap_to;
    }
    if (s->count > 0 && after < s->seq) {
        collect(s, (uint32_t)(after + 1 - first), pattern, SIZE_MAX, out, n);
    }
}

bool stream_since(stream_t *s, wsb_str_t epoch, uint64_t since, wsb_str_t pattern, uint64_t now_ms,
                  xmsg_t ***out, size_t *n)
{
    stream_recovery_t r;
    stream_recover(s, epoch, since, pattern, now_ms, &r, out, n);
    if (!r.recovered) {
        for (size_t i = 0; i < *n; i++) {
            xmsg_unref((*out)[i]);
        }
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return r.recovered;
}

bool stream_drops_slow(const stream_t *s)
{
    return s->conf.drop_slow;
}

void stream_last(stream_t *s, wsb_str_t pattern, size_t max, uint64_t now_ms, xmsg_t ***out,
                 size_t *n)
{
    expire_locked(s, now_ms);
    collect(s, 0, pattern, max, out, n);
}

void stream_render_metrics(stream_t *const *streams, unsigned n, sbuf_t *o)
{
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        {"wsbroker_stream_messages", "gauge", "Messages held in a stream's log."},
        {"wsbroker_stream_bytes", "gauge", "Bytes of frames held in a stream's log."},
        {"wsbroker_stream_seq", "gauge", "A stream's last seq."},
        {"wsbroker_stream_trimmed_total", "counter",
         "Messages dropped from a stream's log by its size, max_bytes or ttl."},
    };
    for (size_t k = 0; k < sizeof series / sizeof series[0]; k++) {
        sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", series[k].name, series[k].help,
                    series[k].name, series[k].type);
        for (unsigned i = 0; streams != NULL && i < n; i++) {
            stream_t *s = streams[i];
            if (s == NULL) {
                continue;
            }
            stream_lock(s);
            uint64_t v = k == 0 ? s->count : k == 1 ? s->bytes : k == 2 ? s->seq : s->trimmed;
            stream_unlock(s);
            char label[2 * WSB_TOPIC_MAX_LEN + 1];
            seqtab_label_escape(s->name, label, sizeof label);
            sbuf_printf(o, "%s{stream=\"%s\"} %" PRIu64 "\n", series[k].name, label, v);
        }
    }
}
