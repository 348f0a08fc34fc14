/* chist_redis.c - seq and history of clustered topics in Redis (see chist_redis.h). */
#include "cluster/chist_redis.h"

#include "cluster/envelope.h"
#include "cluster/redis_cluster.h"
#include "cluster/stream_redis.h"
#include "core/chist.h"
#include "core/xqueue.h"
#include "shared/log.h"
#include "shared/util.h"
#include "wsb/topic.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

_Static_assert(CHIST_MAX_ARGS >= STREAM_REDIS_ARGS, "room for a stream op's arguments");

/* ---- the scripts ------------------------------------------------------------------------- */

/* KEYS: hash, stream. ARGV: channel, envelope head, data, epoch candidate,
 * size, ttl_ms, publish command: PUBLISH, SPUBLISH (redis.sharded), or
 * SPUBLISH+PUBLISH (sharded, with wildcard subscribers served by the classic
 * bus as for any publish in that mode), the topic index (a sorted set of
 * every topic name, all scores 0, read by chist_pattern_script), the topic. Stream fields are t
 * (ms) then e (envelope): an entry's field list is {"t", t, "e", envelope}. */
const char chist_publish_script[] =
    "local meta, stream = KEYS[1], KEYS[2]\n"
    "local size, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local epoch = redis.call('HGET', meta, 'e')\n"
    "if not epoch then\n"
    "  epoch = ARGV[4]\n"
    "  redis.call('DEL', stream)\n"
    "  redis.call('HSET', meta, 'e', epoch, 's', 0)\n"
    "end\n"
    "local seq = redis.call('HINCRBY', meta, 's', 1)\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local env = ARGV[2] .. epoch .. '\",\"seq\":' .. seq .. ',\"data\":' .. ARGV[3] .. '}'\n"
    "redis.call('XADD', stream, 'MAXLEN', '~', size, seq .. '-0', 't', now, 'e', env)\n"
    "if ttl > 0 then\n"
    "  local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)\n"
    "  if #old > 0 and tonumber(old[1][2][2]) + ttl < now then\n"
    "    local batch = redis.call('XRANGE', stream, '-', '+', 'COUNT', 256)\n"
    "    local keep = seq\n"
    "    for i = 1, #batch do\n"
    "      if tonumber(batch[i][2][2]) + ttl >= now then\n"
    "        keep = tonumber(string.match(batch[i][1], '^(%d+)'))\n"
    "        break\n"
    "      end\n"
    "    end\n"
    "    redis.call('XTRIM', stream, 'MINID', keep)\n"
    "  end\n"
    "  redis.call('PEXPIRE', meta, ttl)\n"
    "  redis.call('PEXPIRE', stream, ttl)\n"
    "end\n"
    "if ARGV[7] == 'SPUBLISH+PUBLISH' then\n"
    "  redis.call('SPUBLISH', ARGV[1], env)\n"
    "  redis.call('PUBLISH', ARGV[1], env)\n"
    "else\n"
    "  redis.call(ARGV[7], ARGV[1], env)\n"
    "end\n"
    "if ARGV[8] ~= '' then redis.call('ZADD', ARGV[8], 0, ARGV[9]) end\n"
    "return {seq, epoch}\n";

/* KEYS: hash, stream. ARGV: epoch candidate, size, ttl_ms, mode (p: position,
 * s: since, l: last N), since epoch, since seq or N. Returns {epoch, seq,
 * recovered (-1: not asked, 0, 1), envelope...}. */
const char chist_read_script[] =
    "local meta, stream = KEYS[1], KEYS[2]\n"
    "local size, ttl, mode = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]\n"
    "local epoch = redis.call('HGET', meta, 'e')\n"
    "local seq = 0\n"
    "if not epoch then\n"
    "  epoch = ARGV[1]\n"
    "  redis.call('DEL', stream)\n"
    "  redis.call('HSET', meta, 'e', epoch, 's', 0)\n"
    "  if ttl > 0 then redis.call('PEXPIRE', meta, ttl) end\n"
    "else\n"
    "  seq = tonumber(redis.call('HGET', meta, 's'))\n"
    "end\n"
    "local res = {epoch, seq, -1}\n"
    "if mode == 'p' then return res end\n"
    "local now = 0\n"
    "if ttl > 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "end\n"
    "if mode == 'l' then\n"
    "  local n = tonumber(ARGV[6])\n"
    "  if n > size then n = size end\n"
    "  if n <= 0 or seq == 0 then return res end\n"
    "  local lo = seq - n + 1\n"
    "  if lo < 1 then lo = 1 end\n"
    "  local r = redis.call('XREVRANGE', stream, '+', lo .. '-0', 'COUNT', n)\n"
    "  for i = #r, 1, -1 do\n"
    "    if ttl == 0 or tonumber(r[i][2][2]) + ttl >= now then res[#res + 1] = r[i][2][4] end\n"
    "  end\n"
    "  return res\n"
    "end\n"
    "local since = tonumber(ARGV[6])\n"
    "res[3] = 0\n"
    "if ARGV[5] ~= epoch or since == nil or since > seq then return res end\n"
    "if since == seq then res[3] = 1 return res end\n"
    "if since + size < seq then return res end\n"
    "local r = redis.call('XRANGE', stream, (since + 1) .. '-0', '+')\n"
    "if #r ~= seq - since or r[1][1] ~= (since + 1) .. '-0' then return res end\n"
    "if ttl > 0 and tonumber(r[1][2][2]) + ttl < now then return res end\n"
    "res[3] = 1\n"
    "for i = 1, #r do res[#res + 1] = r[i][2][4] end\n"
    "return res\n";

/* KEYS: the topic index. ARGV: prefix, lex min, lex max (the pattern's
 * literal prefix), pattern, N, cap, scan. The index entries in the range
 * (at most `scan`) that match the pattern (wsbroker's rules: '*' one token,
 * '>' one or more) and still have a hash (entries whose topic expired are
 * removed) and a message: {count, then per topic: topic, epoch, seq, k,
 * its last k <= N envelopes oldest first}, or {-1} when more than `cap`
 * topics match or more than `scan` entries are in the range. */
const char chist_pattern_script[] =
    "local idx, prefix = KEYS[1], ARGV[1]\n"
    "local n, cap, scan = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "local pat = {}\n"
    "for t in string.gmatch(ARGV[4], '[^.]+') do pat[#pat + 1] = t end\n"
    "local function match(topic)\n"
    "  local i = 1\n"
    "  for t in string.gmatch(topic, '[^.]+') do\n"
    "    local p = pat[i]\n"
    "    if p == nil then return false end\n"
    "    if p == '>' then return true end\n"
    "    if p ~= '*' and p ~= t then return false end\n"
    "    i = i + 1\n"
    "  end\n"
    "  return i == #pat + 1\n"
    "end\n"
    "local names = redis.call('ZRANGEBYLEX', idx, ARGV[2], ARGV[3], 'LIMIT', 0, scan + 1)\n"
    "if #names > scan then return {-1} end\n"
    "local res = {0}\n"
    "local k = 0\n"
    "for _, t in ipairs(names) do\n"
    "  if match(t) then\n"
    "    local meta = prefix .. 'hist:' .. t\n"
    "    local e = redis.call('HGET', meta, 'e')\n"
    "    if not e then\n"
    "      redis.call('ZREM', idx, t)\n"
    "    else\n"
    "      local s = tonumber(redis.call('HGET', meta, 's'))\n"
    "      if s and s > 0 then\n"
    "        k = k + 1\n"
    "        if k > cap then return {-1} end\n"
    "        local r = redis.call('XREVRANGE', prefix .. 'stream:' .. t, '+', '-', 'COUNT', n)\n"
    "        res[#res + 1] = t\n"
    "        res[#res + 1] = e\n"
    "        res[#res + 1] = s\n"
    "        res[#res + 1] = #r\n"
    "        for i = #r, 1, -1 do res[#res + 1] = r[i][2][4] end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "res[1] = k\n"
    "return res\n";

/* ---- ops ----------------------------------------------------------------------------------- */

/* ---- arguments ------------------------------------------------------------------------------ */

/* Records the next argument (which points into the op or the scratch area). */
static void add_arg(chist_args_t *a, const char *p, size_t len)
{
    a->argv[a->argc] = p;
    a->argvlen[a->argc] = len;
    a->argc++;
}

static char *put(chist_args_t *a, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats a number into the scratch area (64 bytes reserved per number). */
static char *put(chist_args_t *a, size_t *used, const char *fmt, ...)
{
    char *p = a->scratch + *used;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p, 64, fmt, ap);
    va_end(ap);
    *used += (size_t)n + 1;
    return p;
}

/* EVALSHA sha <nkeys>, with a scratch area of `cap` bytes. */
static void begin_args(chist_args_t *a, size_t cap, const char *sha, const char *nkeys)
{
    memset(a, 0, sizeof *a);
    a->scratch = xmalloc(cap);
    add_arg(a, "EVALSHA", 7);
    add_arg(a, sha, strlen(sha));
    add_arg(a, nkeys, strlen(nkeys));
}

/* The pattern read: EVALSHA sha 1 <P>topics P min max pattern N cap scan. */
static void build_pattern_args(const chist_op_t *op, const char *sha, const char *prefix,
                               chist_args_t *a)
{
    size_t pl = strlen(prefix);
    size_t tl = op->topic_len;
    size_t cap = 3 * (pl + tl + 16) + (size_t)3 * 64;
    begin_args(a, cap, sha, "1");
    size_t used = 0;
    char *k = a->scratch + used;
    int n = snprintf(k, cap - used, "%stopics", prefix);
    add_arg(a, k, (size_t)n);
    used += (size_t)n + 1;
    add_arg(a, prefix, pl);
    /* The literal tokens before the first wildcard bound the range. */
    size_t lit = 0;
    for (size_t i = 0; i <= tl; i++) {
        if (i == tl || op->topic[i] == '.') {
            size_t start = lit == 0 ? 0 : lit + 1;
            bool wild = i - start == 1 && (op->topic[start] == '*' || op->topic[start] == '>');
            if (wild) {
                break;
            }
            lit = i;
        }
    }
    if (lit == 0 || lit == tl) {
        add_arg(a, "-", 1); /* a wildcard first (a pattern has one somewhere) */
        add_arg(a, "+", 1);
    } else {
        k = a->scratch + used;
        n = snprintf(k, cap - used, "[%.*s.", (int)lit, op->topic);
        add_arg(a, k, (size_t)n);
        used += (size_t)n + 1;
        k = a->scratch + used;
        n = snprintf(k, cap - used, "(%.*s/", (int)lit, op->topic); /* '/' follows '.' */
        add_arg(a, k, (size_t)n);
        used += (size_t)n + 1;
    }
    add_arg(a, op->topic, tl);
    char *num = put(a, &used, "%u", op->last_n);
    add_arg(a, num, strlen(num));
    num = put(a, &used, "%u", op->cap);
    add_arg(a, num, strlen(num));
    num = put(a, &used, "%llu", (unsigned long long)op->cap * CHIST_PATTERN_SCAN_FACTOR);
    add_arg(a, num, strlen(num));
}

void chist_build_args(const chist_op_t *op, const char *sha, const char *prefix,
                      const char *node_id, const char *publish_cmd, bool cluster, chist_args_t *a)
{
    if (op->kind == CHIST_READ && op->mode == CHIST_READ_PATTERN) {
        build_pattern_args(op, sha, prefix, a);
        return;
    }
    size_t pl = strlen(prefix);
    size_t tl = op->topic_len;
    /* Two keys and a channel (prefix + topic + 7), the envelope head
     * (escaped topic, node id, ~40), numbers (64 each). */
    size_t cap = 4 * RC_TAG_NAME_MAX(pl, tl, 16) +
                 envelope_head_max(strlen(node_id), tl, op->from_len) + (size_t)6 * 64;
    begin_args(a, cap, sha, "2");
    size_t used = 0;
    char *k = a->scratch + used;
    /* A Redis Cluster: the topic's keys and channel carry the topic as
     * their hash tag, so the script's keys and SPUBLISH are in one slot. */
    size_t n = cluster ? rc_tag_name(k, prefix, op->topic, tl, "hist", 4)
                       : (size_t)snprintf(k, cap - used, "%shist:%s", prefix, op->topic);
    add_arg(a, k, n);
    used += n + 1;
    k = a->scratch + used;
    n = cluster ? rc_tag_name(k, prefix, op->topic, tl, "stream", 6)
                : (size_t)snprintf(k, cap - used, "%sstream:%s", prefix, op->topic);
    add_arg(a, k, n);
    used += n + 1;
    if (op->kind == CHIST_PUBLISH) {
        k = a->scratch + used;
        n = cluster ? rc_tag_name(k, prefix, op->topic, tl, "", 0)
                    : (size_t)snprintf(k, cap - used, "%s%s", prefix, op->topic);
        add_arg(a, k, n);
        used += n + 1;
        char *head = a->scratch + used;
        /* The publisher's stamp (a "publisher" rule) rides in the head:
         * every node's frame and every replay from the stream carry it. */
        size_t hl = envelope_head_clustered(head, node_id, (wsb_str_t){op->topic, tl},
                                            (wsb_str_t){op->from, op->from_len});
        add_arg(a, head, hl);
        used += hl + 1;
        add_arg(a, op->data, op->data_len);
        add_arg(a, op->epoch_new, strlen(op->epoch_new));
        char *num = put(a, &used, "%u", op->size);
        add_arg(a, num, strlen(num));
        num = put(a, &used, "%llu", (unsigned long long)op->ttl_ms);
        add_arg(a, num, strlen(num));
        add_arg(a, publish_cmd, strlen(publish_cmd));
        /* No index on a Redis Cluster: it would be a key in another slot,
         * and wildcard subscriptions, its only reader, are refused there. */
        k = a->scratch + used;
        n = cluster ? 0 : (size_t)snprintf(k, cap - used, "%stopics", prefix);
        add_arg(a, k, n);
        add_arg(a, op->topic, tl);
        return;
    }
    add_arg(a, op->epoch_new, strlen(op->epoch_new));
    char *num = put(a, &used, "%u", op->size);
    add_arg(a, num, strlen(num));
    num = put(a, &used, "%llu", (unsigned long long)op->ttl_ms);
    add_arg(a, num, strlen(num));
    static const char *const modes[] = {"p", "s", "l"};
    add_arg(a, modes[op->mode], 1);
    add_arg(a, op->since_epoch, strlen(op->since_epoch));
    num = put(a, &used, "%llu",
              (unsigned long long)(op->mode == CHIST_READ_LAST ? op->last_n : op->since_seq));
    add_arg(a, num, strlen(num));
}

void chist_args_free(chist_args_t *a)
{
    free(a->scratch);
    a->scratch = NULL;
}

/* ---- replies ------------------------------------------------------------------------------ */

static bool reply_u64(const redisReply *r, uint64_t *out)
{
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
        *out = (uint64_t)r->integer;
        return true;
    }
    return false;
}

static bool reply_epoch(const redisReply *r, char *out)
{
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > XMSG_EPOCH_MAX) {
        return false;
    }
    memcpy(out, r->str, r->len);
    out[r->len] = '\0';
    return true;
}

int chist_parse_publish_reply(const redisReply *r, chist_op_t *op)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        !reply_u64(r->element[0], &op->seq) || op->seq == 0 ||
        !reply_epoch(r->element[1], op->epoch)) {
        return -1;
    }
    return 0;
}

/* One stored envelope as the message a live subscriber got: the same
 * parse and re-serialization as the bridge's live path, so replayed frames
 * are byte for byte the live ones. NULL when it is not an envelope of
 * `op`'s topic and epoch. */
static xmsg_t *envelope_msg(const chist_op_t *op, const char *p, size_t len)
{
    envelope_t env;
    if (envelope_decode(p, len, &env) != 0) {
        return NULL;
    }
    xmsg_t *m = NULL;
    if (env.topic.len == op->topic_len && memcmp(env.topic.p, op->topic, op->topic_len) == 0 &&
        env.seq > 0 && env.epoch.len == strlen(op->epoch) &&
        memcmp(env.epoch.p, op->epoch, env.epoch.len) == 0) {
        m = xmsg_new_from(env.topic, env.seq, env.epoch, (wsb_str_t){env.from_json, env.from_len},
                          (wsb_str_t){env.data_json, env.data_len}, 0);
        xmsg_set_refs(m, 1);
    }
    envelope_clear(&env);
    return m;
}

int chist_parse_read_reply(const redisReply *r, chist_op_t *op)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        !reply_epoch(r->element[0], op->epoch) || !reply_u64(r->element[1], &op->seq) ||
        r->element[2]->type != REDIS_REPLY_INTEGER) {
        return -1;
    }
    long long rec = r->element[2]->integer;
    op->recovered = op->mode == CHIST_READ_SINCE ? (rec == 1 ? 1 : 0) : -1;
    size_t n = r->elements - 3;
    if (n == 0) {
        return 0;
    }
    op->msgs = xcalloc(n, sizeof(xmsg_t *));
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[3 + i];
        xmsg_t *m = e->type == REDIS_REPLY_STRING ? envelope_msg(op, e->str, e->len) : NULL;
        /* A replay is the consecutive seqs after since, up to the position. */
        bool in_order = m != NULL && m->seq <= op->seq &&
                        (op->mode != CHIST_READ_SINCE || m->seq == op->since_seq + 1 + i) &&
                        (i == 0 || m->seq > op->msgs[i - 1]->seq);
        if (!in_order) {
            if (m != NULL) {
                xmsg_unref(m);
            }
            chist_op_drop_replay(op);
            return -1;
        }
        op->msgs[op->nmsgs++] = m;
    }
    return 0;
}

/* Drops a partial result (an invalid reply is refused whole). */
static int pattern_reply_invalid(chist_op_t *op)
{
    chist_op_drop_replay(op);
    for (size_t k = 0; k < op->npos; k++) {
        free(op->pos[k].topic);
    }
    free(op->pos);
    op->pos = NULL;
    op->npos = 0;
    return -1;
}

/* One topic of a pattern reply at r->element[*i]: its position, then its
 * envelopes (checked as envelope_msg does, against a scratch op). */
static int pattern_topic(const redisReply *r, size_t *i, chist_op_t *op, chist_op_t *one)
{
    const redisReply *t = r->element[*i];
    uint64_t k = 0;
    if (*i + 4 > r->elements || t->type != REDIS_REPLY_STRING || t->len == 0 ||
        t->len > WSB_TOPIC_MAX_LEN ||
        !wsb_topic_matches(op->topic, op->topic_len, t->str, t->len) ||
        !reply_epoch(r->element[*i + 1], one->epoch) || !reply_u64(r->element[*i + 2], &one->seq) ||
        !reply_u64(r->element[*i + 3], &k) || k > op->last_n || k > r->elements - *i - 4) {
        return -1;
    }
    one->topic = t->str; /* envelope_msg compares topic_len bytes */
    one->topic_len = (uint16_t)t->len;
    chist_pos_t *p = &op->pos[op->npos++];
    p->topic = xstrndup(t->str, t->len);
    p->seq = one->seq;
    memcpy(p->epoch, one->epoch, sizeof p->epoch);
    *i += 4;
    for (uint64_t j = 0; j < k; j++, (*i)++) {
        const redisReply *e = r->element[*i];
        xmsg_t *m = e->type == REDIS_REPLY_STRING ? envelope_msg(one, e->str, e->len) : NULL;
        bool in_order =
            m != NULL && m->seq <= one->seq && (j == 0 || m->seq > op->msgs[op->nmsgs - 1]->seq);
        if (!in_order) {
            if (m != NULL) {
                xmsg_unref(m);
            }
            return -1;
        }
        op->msgs[op->nmsgs++] = m;
    }
    return 0;
}

int chist_parse_pattern_reply(const redisReply *r, chist_op_t *op)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        return -1;
    }
    long long ntopics = r->element[0]->integer;
    if (ntopics < 0) {
        op->over_limit = true;
        return 0;
    }
    if ((unsigned long long)ntopics > op->cap || (size_t)ntopics > (r->elements - 1) / 4) {
        return -1;
    }
    if (ntopics == 0) {
        return r->elements == 1 ? 0 : -1;
    }
    op->pos = xcalloc((size_t)ntopics, sizeof(chist_pos_t));
    op->msgs = xcalloc(r->elements, sizeof(xmsg_t *));
    chist_op_t one = {0};
    size_t i = 1;
    for (long long t = 0; t < ntopics; t++) {
        if (pattern_topic(r, &i, op, &one) != 0) {
            return pattern_reply_invalid(op);
        }
    }
    return i == r->elements ? 0 : pattern_reply_invalid(op);
}

bool chist_reply_is_noscript(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR && r->len >= 8 &&
           memcmp(r->str, "NOSCRIPT", 8) == 0;
}

/* ---- the bridge side ---------------------------------------------------------------------- */

/* Laid out by purpose; the queue first (cache-line aligned). */
struct chist_redis_s { // NOLINT(clang-analyzer-optin.performance.Padding)
    xqueue_t inq;      /* ops from the workers; first: its cache-line alignment pads least there */
    chist_channel_state_cb channel_state_cb;
    chist_name_fn name_fn;
    void *channel_state_data;
    const char *prefix;
    const char *node_id;
    const char *publish_cmd; /* the publish script's ARGV[7] */
    uv_async_t *wake;
    size_t queue_size;
    _Atomic size_t inflight;        /* submitted and not yet handed back */
    _Atomic int up;                 /* the publishing connection is ready */
    redisAsyncContext *ac;          /* bridge thread: the publishing connection, or NULL */
    bool loaded;                    /* the scripts' SHA1s are known (and, one server, loaded) */
    unsigned loading;               /* SCRIPT LOAD replies of this load_gen still to come */
    unsigned load_gen;              /* the loads that count; 0: a load nobody waits for */
    redisAsyncContext *reload_ac;   /* Redis Cluster: the master the last reload went to */
    char sha[5][41];                /* publish, read, pattern read; a stream's publish, read */
    chist_op_t *waiting;            /* reads waiting for their channel's SUBSCRIBE (FIFO) */
    chist_op_t *retry, *retry_tail; /* NOSCRIPT: sent again, in order, after the reload */
    /* ---- Redis Cluster (chist_redis_set_cluster): route == NULL with one server ---- */
    chist_route_cb route;
    chist_redirect_cb redirect;
};

#define NSCRIPTS 5
#define HOPS_MAX 3 /* MOVED/ASK redirections followed per op */

chist_redis_t *chist_redis_new(const char *prefix, const char *node_id, const char *publish_cmd,
                               size_t queue_size, void *wake_async,
                               chist_channel_state_cb channel_state_cb, chist_name_fn name_fn,
                               void *user_data)
{
    chist_redis_t *hr = xcalloc(1, sizeof(*hr));
    hr->name_fn = name_fn;
    hr->channel_state_cb = channel_state_cb;
    hr->channel_state_data = user_data;
    hr->prefix = prefix;
    hr->node_id = node_id;
    hr->publish_cmd = publish_cmd;
    hr->wake = wake_async;
    hr->queue_size = queue_size;
    xqueue_init(&hr->inq, queue_size);
    atomic_init(&hr->inflight, 0);
    atomic_init(&hr->up, 0);
    return hr;
}

void chist_redis_set_cluster(chist_redis_t *hr, chist_route_cb route, chist_redirect_cb redirect)
{
    hr->route = route;
    hr->redirect = redirect;
}

static void free_list(chist_op_t *op)
{
    while (op != NULL) {
        chist_op_t *next = op->next;
        chist_op_free(op);
        op = next;
    }
}

void chist_redis_free(chist_redis_t *hr)
{
    /* The workers are gone: what is left has no owner any more. */
    chist_op_t *op;
    while ((op = xqueue_pop(&hr->inq)) != NULL) {
        chist_op_free(op);
    }
    xqueue_destroy(&hr->inq);
    free_list(hr->waiting);
    free_list(hr->retry);
    free(hr);
}

int chist_redis_submit(chist_redis_t *hr, chist_op_t *op)
{
    if (!atomic_load_explicit(&hr->up, memory_order_acquire)) {
        return -1;
    }
    if (atomic_fetch_add_explicit(&hr->inflight, 1, memory_order_relaxed) >= hr->queue_size) {
        atomic_fetch_sub_explicit(&hr->inflight, 1, memory_order_relaxed);
        return -1;
    }
    op->hr = hr;
    if (!xqueue_push(&hr->inq, op)) {
        atomic_fetch_sub_explicit(&hr->inflight, 1, memory_order_relaxed);
        return -1;
    }
    uv_async_send(hr->wake);
    return 0;
}

static void complete(chist_redis_t *hr, chist_op_t *op, int status)
{
    op->status = status;
    op->next = NULL;
    atomic_fetch_sub_explicit(&hr->inflight, 1, memory_order_relaxed);
    chist_complete(op);
}

static void fail_list(chist_redis_t *hr, chist_op_t **list)
{
    chist_op_t *op = *list;
    *list = NULL;
    while (op != NULL) {
        chist_op_t *next = op->next;
        complete(hr, op, -1);
        op = next;
    }
}

static void fail_queued(chist_redis_t *hr)
{
    chist_op_t *op;
    while ((op = xqueue_pop(&hr->inq)) != NULL) {
        complete(hr, op, -1);
    }
}

static void start_loading(chist_redis_t *hr, redisAsyncContext *ac, unsigned gen);
static void send_op(chist_redis_t *hr, chist_op_t *op);

/* An op's reply (NULL: lost with its connection `ac`), wherever it came
 * from once redirections were followed. */
static void op_replied(chist_redis_t *hr, redisAsyncContext *ac, chist_op_t *op,
                       const redisReply *reply)
{
    if (reply == NULL) {
        complete(hr, op, -1); /* the connection went away with it */
        return;
    }
    if (chist_reply_is_noscript(reply)) {
        /* The script cache was flushed: everything sent after this op fails
         * the same way until the scripts are loaded again, so resending in
         * reply order keeps each publisher's order. */
        op->next = NULL;
        if (hr->retry_tail != NULL) {
            hr->retry_tail->next = op;
        } else {
            hr->retry = op;
        }
        hr->retry_tail = op;
        if (hr->loaded) {
            log_warn("redis: history scripts missing (SCRIPT FLUSH?): loading them again", NULL);
            hr->loaded = false;
            hr->loading = 0;
            start_loading(hr, ac, ++hr->load_gen);
        } else if (hr->route != NULL && ac != hr->reload_ac) {
            start_loading(hr, ac, hr->load_gen); /* another master flushed too */
        }
        return;
    }
    /* Clustered streams hook: a stream's read is filtered by a pattern. */
    int rc = op->kind == CHIST_PUBLISH        ? chist_parse_publish_reply(reply, op)
             : op->stream[0] != '\0'          ? stream_redis_parse_read_reply(reply, op)
             : op->mode == CHIST_READ_PATTERN ? chist_parse_pattern_reply(reply, op)
                                              : chist_parse_read_reply(reply, op);
    if (rc != 0) {
        log_warn("redis: history script failed", "topic=%s err=%s", log_quote(op->topic),
                 log_quote(reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply"));
    }
    complete(hr, op, rc);
}

static void on_op_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    chist_op_t *op = privdata;
    op_replied(op->hr, ac, op, r);
}

/* The EVALSHA of `op`, by kind. */
static void build_op_args(const chist_redis_t *hr, const chist_op_t *op, chist_args_t *a)
{
    bool cluster = hr->route != NULL;
    if (op->stream[0] != '\0') {
        /* Clustered streams hook: a stream's op runs the stream's scripts. */
        memset(a, 0, sizeof *a);
        a->argc = stream_redis_build_args(op, hr->sha[op->kind == CHIST_PUBLISH ? 3 : 4],
                                          hr->prefix, hr->node_id, hr->publish_cmd, cluster,
                                          a->argv, a->argvlen, &a->scratch);
        return;
    }
    int script = op->kind == CHIST_PUBLISH ? 0 : op->mode == CHIST_READ_PATTERN ? 2 : 1;
    chist_build_args(op, hr->sha[script], hr->prefix, hr->node_id, hr->publish_cmd, cluster, a);
}

/* ---- Redis Cluster: routing and redirections ---- */

/* An op sent to a master, kept with its hop count until its reply. */
typedef struct {
    chist_redis_t *hr;
    chist_op_t *op;
    unsigned hops;
} csend_t;

static void send_cluster(chist_redis_t *hr, chist_op_t *op, redisAsyncContext *to, bool asking,
                         unsigned hops);

static void on_cluster_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    csend_t *cs = privdata;
    chist_redis_t *hr = cs->hr;
    chist_op_t *op = cs->op;
    unsigned hops = cs->hops;
    free(cs);
    const redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        bool ask = false;
        redisAsyncContext *to =
            hr->redirect(hr->channel_state_data, ac, reply->str, reply->len, &ask);
        if (to != NULL && hops < HOPS_MAX) {
            send_cluster(hr, op, to, ask, hops + 1); /* the script did not run: no duplicate */
            return;
        }
    }
    op_replied(hr, ac, op, reply);
}

/* Sends `op` to `to`, or (NULL) to the master of its keys' slot. */
static void send_cluster(chist_redis_t *hr, chist_op_t *op, redisAsyncContext *to, bool asking,
                         unsigned hops)
{
    chist_args_t a;
    build_op_args(hr, op, &a);
    if (to == NULL) {
        /* argv[3] is the first key: every key and the channel share its slot. */
        to = hr->route(hr->channel_state_data, rc_keyslot(a.argv[3], a.argvlen[3]));
    }
    if (to == NULL) {
        chist_args_free(&a);
        complete(hr, op, -1); /* its master is down (a failover): unavailable */
        return;
    }
    csend_t *cs = xmalloc(sizeof(*cs));
    *cs = (csend_t){.hr = hr, .op = op, .hops = hops};
    if (asking) {
        (void)redisAsyncCommand(to, NULL, NULL, "ASKING");
    }
    int rc = redisAsyncCommandArgv(to, on_cluster_reply, cs, a.argc, a.argv, a.argvlen);
    chist_args_free(&a);
    if (rc != REDIS_OK) {
        free(cs);
        complete(hr, op, -1);
    }
}

static void send_op(chist_redis_t *hr, chist_op_t *op)
{
    if (hr->route != NULL) {
        send_cluster(hr, op, NULL, false, 0);
        return;
    }
    if (hr->ac == NULL) {
        complete(hr, op, -1);
        return;
    }
    chist_args_t a;
    build_op_args(hr, op, &a);
    int rc = redisAsyncCommandArgv(hr->ac, on_op_reply, op, a.argc, a.argv, a.argvlen);
    chist_args_free(&a);
    if (rc != REDIS_OK) {
        complete(hr, op, -1);
    }
}

/* The channel (exact topic) or glob (pattern read) whose subscription a
 * read waits for, as the bridge names it. */
static size_t op_channel(const chist_redis_t *hr, const chist_op_t *op, char *out)
{
    bool glob = false;
    return hr->name_fn(hr->channel_state_data, op->topic, op->topic_len, out, &glob);
}

/* A read may go once Redis has confirmed the SUBSCRIBE of its channel:
 * every message published after the script ran then reaches this node. */
static void dispatch(chist_redis_t *hr, chist_op_t *op)
{
    if (op->kind == CHIST_PUBLISH) {
        send_op(hr, op);
        return;
    }
    char chan[CHIST_NAME_MAX];
    size_t n = op_channel(hr, op, chan);
    int st = hr->channel_state_cb(hr->channel_state_data, chan, n);
    if (st > 0) {
        send_op(hr, op);
    } else if (st == 0) {
        op->next = NULL;
        chist_op_t **pp = &hr->waiting;
        while (*pp != NULL) {
            pp = &(*pp)->next;
        }
        *pp = op;
    } else {
        complete(hr, op, -1);
    }
}

void chist_redis_drain(chist_redis_t *hr)
{
    if (hr->route == NULL && hr->ac == NULL) {
        fail_queued(hr);
        return;
    }
    if (!hr->loaded) {
        return; /* sent once the scripts are loaded */
    }
    chist_op_t *op;
    while ((op = xqueue_pop(&hr->inq)) != NULL) {
        dispatch(hr, op);
    }
}

/* One SCRIPT LOAD on its way. */
typedef struct {
    chist_redis_t *hr;
    unsigned which; /* index in hr->sha */
    unsigned gen;   /* hr->load_gen it counts for; 0: none */
} load_t;

static bool all_known(const chist_redis_t *hr)
{
    for (unsigned i = 0; i < NSCRIPTS; i++) {
        if (hr->sha[i][0] == '\0') {
            return false;
        }
    }
    return true;
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    load_t l = *(load_t *)privdata;
    free(privdata);
    chist_redis_t *hr = l.hr;
    redisReply *reply = r;
    bool cluster = hr->route != NULL;
    if (!cluster && (reply == NULL || hr->ac != ac)) {
        return; /* lost: chist_redis_set_pub(NULL) failed what waited */
    }
    bool ok = reply != NULL && reply->type == REDIS_REPLY_STRING && reply->len == 40;
    if (ok) {
        /* A script's SHA1 is the same on every server. */
        memcpy(hr->sha[l.which], reply->str, 40);
        hr->sha[l.which][40] = '\0';
    } else if (reply != NULL) {
        log_error("redis: SCRIPT LOAD of the history scripts failed", "err=%s",
                  log_quote(reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply"));
        if (!cluster) {
            return; /* ops wait; the connection's loss or a later reload retries */
        }
    }
    if (l.gen == 0 || l.gen != hr->load_gen || --hr->loading > 0) {
        return;
    }
    if (!all_known(hr)) {
        return; /* Redis Cluster: the next master to come up loads them */
    }
    /* Redis Cluster: a reload lost with its master still ends: what waited
     * is sent again, routed anew (and fails if its master is still down). */
    hr->loaded = true;
    hr->reload_ac = NULL;
    chist_op_t *op = hr->retry;
    hr->retry = hr->retry_tail = NULL;
    while (op != NULL) {
        chist_op_t *next = op->next;
        dispatch(hr, op);
        op = next;
    }
    chist_redis_drain(hr);
}

/* SCRIPT LOAD of every script on `ac`; `gen` 0: nothing waits for them. */
static void start_loading(chist_redis_t *hr, redisAsyncContext *ac, unsigned gen)
{
    static const char *const scripts[NSCRIPTS] = {chist_publish_script, chist_read_script,
                                                  chist_pattern_script, stream_redis_publish_script,
                                                  stream_redis_read_script};
    if (gen != 0) {
        hr->loading += NSCRIPTS;
        hr->reload_ac = ac;
    }
    for (unsigned i = 0; i < NSCRIPTS; i++) {
        load_t *l = xmalloc(sizeof(*l));
        *l = (load_t){.hr = hr, .which = i, .gen = gen};
        if (redisAsyncCommand(ac, on_script_loaded, l, "SCRIPT LOAD %s", scripts[i]) != REDIS_OK) {
            free(l);
            if (gen != 0) {
                hr->loading--;
            }
        }
    }
}

void chist_redis_set_pub(chist_redis_t *hr, redisAsyncContext *ac)
{
    hr->ac = ac;
    hr->loaded = false;
    if (ac != NULL) {
        hr->loading = 0;
        start_loading(hr, ac, ++hr->load_gen);
        atomic_store_explicit(&hr->up, 1, memory_order_release);
        return;
    }
    atomic_store_explicit(&hr->up, 0, memory_order_release);
    fail_queued(hr);
    fail_list(hr, &hr->retry);
    hr->retry_tail = NULL;
    fail_list(hr, &hr->waiting);
}

void chist_redis_shard_up(chist_redis_t *hr, redisAsyncContext *ac)
{
    if (!hr->loaded && hr->loading == 0) {
        start_loading(hr, ac, ++hr->load_gen); /* the first master up: ops wait for it */
    } else {
        /* Pipelined before anything this node sends there: no op can reach
         * this master before its scripts. */
        start_loading(hr, ac, 0);
    }
    atomic_store_explicit(&hr->up, 1, memory_order_release);
}

void chist_redis_sub_lost(chist_redis_t *hr)
{
    /* Only the reads whose channel's connection is gone fail: on a Redis
     * Cluster the other masters' subscriber connections are still up. */
    chist_op_t **pp = &hr->waiting;
    char chan[CHIST_NAME_MAX];
    while (*pp != NULL) {
        chist_op_t *op = *pp;
        size_t n = op_channel(hr, op, chan);
        if (hr->channel_state_cb(hr->channel_state_data, chan, n) < 0) {
            *pp = op->next;
            complete(hr, op, -1);
        } else {
            pp = &op->next;
        }
    }
}

void chist_redis_subscribed(chist_redis_t *hr, const char *name, size_t len)
{
    chist_op_t **pp = &hr->waiting;
    char chan[CHIST_NAME_MAX];
    while (*pp != NULL) {
        chist_op_t *op = *pp;
        size_t n = op_channel(hr, op, chan);
        if (len == n && memcmp(name, chan, n) == 0) {
            *pp = op->next;
            send_op(hr, op);
        } else {
            pp = &op->next;
        }
    }
}

void chist_redis_stop(chist_redis_t *hr)
{
    atomic_store_explicit(&hr->up, 0, memory_order_release);
    hr->ac = NULL;
    fail_queued(hr);
    fail_list(hr, &hr->retry);
    hr->retry_tail = NULL;
    fail_list(hr, &hr->waiting);
}
