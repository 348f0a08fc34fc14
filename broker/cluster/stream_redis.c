/* stream_redis.c - clustered streams in Redis (see stream_redis.h). */
#include "cluster/stream_redis.h"

#include "cluster/envelope.h"
#include "cluster/redis_cluster.h"
#include "core/xmsg.h"
#include "shared/util.h"
#include "wsb/topic.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shared by both scripts: Redis's clock in ms, and an entry's seq. */
#define LUA_NOW                                                                                    \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
#define LUA_SEQ_OF "local function seq_of(id) return tonumber(string.match(id, '^(%d+)')) end\n"

/* KEYS: hash, stream. ARGV: channel, envelope head, data, epoch candidate,
 * size, ttl_ms, publish command (as chist_publish_script), topic. Entry
 * fields: {"t", t, "k", topic, "e", envelope}. */
const char stream_redis_publish_script[] =
    "local meta, stream = KEYS[1], KEYS[2]\n"
    "local size, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])\n" LUA_SEQ_OF
    "local epoch = redis.call('HGET', meta, 'e')\n"
    "if not epoch then\n"
    "  epoch = ARGV[4]\n"
    "  redis.call('DEL', stream)\n"
    "  redis.call('HSET', meta, 'e', epoch, 's', 0)\n"
    "end\n"
    "local seq = redis.call('HINCRBY', meta, 's', 1)\n" LUA_NOW
    "local env = ARGV[2] .. epoch .. '\",\"seq\":' .. seq .. ',\"data\":' .. ARGV[3] .. '}'\n"
    "redis.call('XADD', stream, 'MAXLEN', '~', size, seq .. '-0', 't', now, 'k', ARGV[8], 'e', "
    "env)\n"
    "if ttl > 0 then\n"
    "  local keep = nil\n"
    "  local lo = '-'\n"
    "  while keep == nil do\n"
    "    local batch = redis.call('XRANGE', stream, lo, '+', 'COUNT', 256)\n"
    "    if #batch == 0 then keep = seq break end\n"
    "    for i = 1, #batch do\n"
    "      if tonumber(batch[i][2][2]) + ttl >= now then keep = seq_of(batch[i][1]) break end\n"
    "    end\n"
    "    if keep == nil then lo = (seq_of(batch[#batch][1]) + 1) .. '-0' end\n"
    "  end\n"
    "  redis.call('XTRIM', stream, 'MINID', keep)\n"
    "end\n"
    "if ARGV[7] == 'SPUBLISH+PUBLISH' then\n"
    "  redis.call('SPUBLISH', ARGV[1], env)\n"
    "  redis.call('PUBLISH', ARGV[1], env)\n"
    "else\n"
    "  redis.call(ARGV[7], ARGV[1], env)\n"
    "end\n"
    "return {seq, epoch}\n";

/* KEYS: hash, stream. ARGV: epoch candidate, size, ttl_ms, mode (p: position,
 * s: since, l: last N), since epoch, since seq or N, pattern, max_bytes.
 * Returns {epoch, seq, recovered (-1: not asked, 0, 1), envelope...}. The
 * pattern is matched as wsb_topic_matches does: "*" one token, ">" one or
 * more (the rest); the broker checks every envelope again. */
const char stream_redis_read_script[] =
    "local meta, stream = KEYS[1], KEYS[2]\n"
    "local size, ttl, mode = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]\n"
    "local maxb = tonumber(ARGV[8])\n" LUA_SEQ_OF "local epoch = redis.call('HGET', meta, 'e')\n"
    "local seq = 0\n"
    "if not epoch then\n"
    "  epoch = ARGV[1]\n"
    "  redis.call('DEL', stream)\n"
    "  redis.call('HSET', meta, 'e', epoch, 's', 0)\n"
    "else\n"
    "  seq = tonumber(redis.call('HGET', meta, 's'))\n"
    "end\n"
    "local res = {epoch, seq, -1, -1, -1}\n"
    "if mode == 'p' then return res end\n" LUA_NOW "local function split(s)\n"
    "  local v = {}\n"
    "  for tok in string.gmatch(s .. '.', '([^.]*)%.') do v[#v + 1] = tok end\n"
    "  return v\n"
    "end\n"
    "local pt = split(ARGV[7])\n"
    "local function matches(topic)\n"
    "  local tt = split(topic)\n"
    "  for i = 1, #pt do\n"
    "    if pt[i] == '>' then return #tt >= i end\n"
    "    if i > #tt or (pt[i] ~= '*' and pt[i] ~= tt[i]) then return false end\n"
    "  end\n"
    "  return #tt == #pt\n"
    "end\n"
    "local function young(e) return ttl == 0 or tonumber(e[2][2]) + ttl >= now end\n"
    "local bytes = 0\n"
    "if mode == 'l' then\n"
    "  local n = tonumber(ARGV[6])\n"
    "  if n > size then n = size end\n"
    "  local out, scanned, hi = {}, 0, seq\n"
    "  while #out < n and scanned < size and hi >= 1 do\n"
    "    local r = redis.call('XREVRANGE', stream, hi .. '-0', '-', 'COUNT', 256)\n"
    "    if #r == 0 then break end\n"
    "    for i = 1, #r do\n"
    "      local e = r[i]\n"
    "      scanned = scanned + 1\n"
    "      if not young(e) or scanned > size then hi = 0 break end\n"
    "      if matches(e[2][4]) then\n"
    "        bytes = bytes + #e[2][6]\n"
    "        if bytes > maxb and #out > 0 then hi = 0 break end\n"
    "        out[#out + 1] = e[2][6]\n"
    "        if #out >= n then break end\n"
    "      end\n"
    "    end\n"
    "    if hi > 0 then hi = seq_of(r[#r][1]) - 1 end\n"
    "  end\n"
    "  for i = #out, 1, -1 do res[#res + 1] = out[i] end\n"
    "  return res\n"
    "end\n"
    "local since = tonumber(ARGV[6])\n"
    "local same = ARGV[5] == epoch\n"
    "res[3] = 0\n"
    "res[4] = -1\n"
    "res[5] = -1\n"
    "if since == nil or (same and since > seq) then return res end\n"
    "if same and since == seq then res[3] = 1 return res end\n"
    /* The oldest entry held: young, and within the last `size` seqs
     * (MAXLEN ~ may keep more). */
    "local lo = seq - size\n"
    "if lo < 0 then lo = 0 end\n"
    "lo = lo + 1\n"
    "local first = nil\n"
    "while first == nil and lo <= seq do\n"
    "  local r = redis.call('XRANGE', stream, lo .. '-0', '+', 'COUNT', 256)\n"
    "  if #r == 0 then break end\n"
    "  for i = 1, #r do\n"
    "    if young(r[i]) then first = seq_of(r[i][1]) break end\n"
    "  end\n"
    "  if first == nil then lo = seq_of(r[#r][1]) + 1 end\n"
    "end\n"
    "local after = 0\n"
    "if same then after = since end\n"
    "if same and first ~= nil and first <= since + 1 then\n"
    "  res[3] = 1\n"
    "else\n"
    "  res[4] = after\n"
    "  if first ~= nil then res[5] = first - 1 else res[5] = seq end\n"
    "  after = res[5]\n"
    "end\n"
    /* The matching entries after `after`; beyond max_bytes the oldest go
     * (as a log bounded by max_bytes; the newest is always kept) and the
     * loss grows to the last one dropped. */
    "local out, oseq, head, n = {}, {}, 1, 0\n"
    "lo = after + 1\n"
    "while first ~= nil and lo <= seq do\n"
    "  local r = redis.call('XRANGE', stream, lo .. '-0', '+', 'COUNT', 256)\n"
    "  if #r == 0 then break end\n"
    "  for i = 1, #r do\n"
    "    if matches(r[i][2][4]) then\n"
    "      bytes = bytes + #r[i][2][6]\n"
    "      n = n + 1\n"
    "      out[n] = r[i][2][6]\n"
    "      oseq[n] = seq_of(r[i][1])\n"
    "      while bytes > maxb and head < n do\n"
    "        bytes = bytes - #out[head]\n"
    "        res[3] = 0\n"
    "        if res[4] < 0 then res[4] = after end\n"
    "        res[5] = oseq[head]\n"
    "        out[head], oseq[head] = nil, nil\n"
    "        head = head + 1\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  lo = seq_of(r[#r][1]) + 1\n"
    "end\n"
    "for i = head, n do res[#res + 1] = out[i] end\n"
    "return res\n";

/* The arguments being built: argv/argvlen of the caller, and the scratch
 * area the numbers and names are written into. */
typedef struct {
    const char **argv;
    size_t *argvlen;
    int argc;
    char *scratch;
    size_t used, cap;
} args_t;

static void add_arg(args_t *a, const char *p, size_t len)
{
    a->argv[a->argc] = p;
    a->argvlen[a->argc] = len;
    a->argc++;
}

/* Writes prefix + mid + name + end into the scratch area and records it as
 * the next argument. */
static void add_name(args_t *a, const char *prefix, const char *mid, const char *name,
                     const char *end)
{
    char *p = a->scratch + a->used;
    int n = snprintf(p, a->cap - a->used, "%s%s%s%s", prefix, mid, name, end);
    add_arg(a, p, (size_t)n);
    a->used += (size_t)n + 1;
}

/* Writes prefix "{" tag "}" rest (rc_tag_name) as the next argument. */
static void add_tagged(args_t *a, const char *prefix, const char *tag, size_t tag_len,
                       const char *rest, size_t rest_len)
{
    char *p = a->scratch + a->used;
    size_t n = rc_tag_name(p, prefix, tag, tag_len, rest, rest_len);
    add_arg(a, p, n);
    a->used += n + 1;
}

static void add_u64(args_t *a, uint64_t v)
{
    char *p = a->scratch + a->used;
    int n = snprintf(p, a->cap - a->used, "%llu", (unsigned long long)v);
    add_arg(a, p, (size_t)n);
    a->used += (size_t)n + 1;
}

int stream_redis_build_args(const chist_op_t *op, const char *sha, const char *prefix,
                            const char *node_id, const char *publish_cmd, bool cluster,
                            const char **argv, size_t *argvlen, char **scratch)
{
    size_t pl = strlen(prefix);
    size_t sl = strlen(op->stream);
    size_t tl = op->topic_len;
    args_t a = {.argv = argv, .argvlen = argvlen};
    a.cap = 2 * RC_TAG_NAME_MAX(pl, sl, 16) + RC_TAG_NAME_MAX(pl, sl, tl) +
            envelope_head_max(strlen(node_id), tl, op->from_len) + (size_t)6 * 32;
    a.scratch = xmalloc(a.cap);
    *scratch = a.scratch;
    add_arg(&a, "EVALSHA", 7);
    add_arg(&a, sha, strlen(sha));
    add_arg(&a, "2", 1);
    if (cluster) {
        /* A Redis Cluster: the rule is the hash tag of both keys and of the
         * channel of every topic in the stream (bridge_redis.h), so the
         * script's keys and its SPUBLISH are in one slot. */
        add_tagged(&a, prefix, op->stream, sl, "rule.hist", 9);
        add_tagged(&a, prefix, op->stream, sl, "rule.stream", 11);
    } else {
        add_name(&a, prefix, "hist:{", op->stream, "}");
        add_name(&a, prefix, "stream:{", op->stream, "}");
    }
    if (op->kind == CHIST_PUBLISH) {
        if (cluster) {
            add_tagged(&a, prefix, op->stream, sl, op->topic, tl);
        } else {
            add_name(&a, prefix, "", op->topic, "");
        }
        char *head = a.scratch + a.used;
        size_t hl = envelope_head_clustered(head, node_id, (wsb_str_t){op->topic, tl},
                                            (wsb_str_t){op->from, op->from_len});
        add_arg(&a, head, hl);
        a.used += hl + 1;
        add_arg(&a, op->data, op->data_len);
        add_arg(&a, op->epoch_new, strlen(op->epoch_new));
        add_u64(&a, op->size);
        add_u64(&a, op->ttl_ms);
        add_arg(&a, publish_cmd, strlen(publish_cmd));
        add_arg(&a, op->topic, tl);
        return a.argc;
    }
    add_arg(&a, op->epoch_new, strlen(op->epoch_new));
    add_u64(&a, op->size);
    add_u64(&a, op->ttl_ms);
    static const char *const modes[] = {"p", "s", "l"};
    add_arg(&a, modes[op->mode], 1);
    add_arg(&a, op->since_epoch, strlen(op->since_epoch));
    add_u64(&a, op->mode == CHIST_READ_LAST ? op->last_n : op->since_seq);
    add_arg(&a, op->topic, tl);
    add_u64(&a, op->max_bytes);
    return a.argc;
}

/* One stored envelope as the message live subscribers got (the bridge's
 * parse and re-serialization), or NULL when it is not one of the read's
 * stream epoch and subscription, or out of order after `prev`. */
static xmsg_t *replay_msg(const chist_op_t *op, const redisReply *e, uint64_t prev)
{
    envelope_t env;
    if (e->type != REDIS_REPLY_STRING || envelope_decode(e->str, e->len, &env) != 0) {
        return NULL;
    }
    xmsg_t *m = NULL;
    uint64_t floor = op->gap ? op->gap_to : op->mode == CHIST_READ_SINCE ? op->since_seq : 0;
    if (wsb_topic_matches(op->topic, op->topic_len, env.topic.p, env.topic.len) && env.seq > prev &&
        env.seq > floor && env.seq <= op->seq && env.epoch.len == strlen(op->epoch) &&
        memcmp(env.epoch.p, op->epoch, env.epoch.len) == 0) {
        m = xmsg_new_from(env.topic, env.seq, env.epoch, (wsb_str_t){env.from_json, env.from_len},
                          (wsb_str_t){env.data_json, env.data_len}, 0);
        xmsg_set_refs(m, 1);
    }
    envelope_clear(&env);
    return m;
}

/* The read script's reply header: {epoch, seq, recovered, gap seq, gap to}. */
#define READ_HEAD 5

/* The gap of a `since` read's reply (gap seq, gap to; -1 for none) into
 * op->gap*: the `since` seq in the stream's epoch or 0 in another, up to a
 * seq at most the position. 0 or -1 (inconsistent). */
static int parse_gap(const redisReply *gs, const redisReply *gt, chist_op_t *op)
{
    if (gs->type != REDIS_REPLY_INTEGER || gt->type != REDIS_REPLY_INTEGER) {
        return -1;
    }
    if (gs->integer < 0 && gt->integer < 0) {
        return 0;
    }
    bool same = strcmp(op->since_epoch, op->epoch) == 0;
    uint64_t expect = same ? op->since_seq : 0;
    if (op->mode != CHIST_READ_SINCE || op->recovered == 1 || gs->integer < 0 || gt->integer < 0 ||
        (uint64_t)gs->integer != expect || (uint64_t)gt->integer < (uint64_t)gs->integer ||
        (uint64_t)gt->integer > op->seq) {
        return -1;
    }
    op->gap = true;
    op->gap_seq = (uint64_t)gs->integer;
    op->gap_to = (uint64_t)gt->integer;
    return 0;
}

int stream_redis_parse_read_reply(const redisReply *r, chist_op_t *op)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < READ_HEAD ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len == 0 ||
        r->element[0]->len > XMSG_EPOCH_MAX || r->element[1]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->integer < 0 || r->element[2]->type != REDIS_REPLY_INTEGER) {
        return -1;
    }
    memcpy(op->epoch, r->element[0]->str, r->element[0]->len);
    op->epoch[r->element[0]->len] = '\0';
    op->seq = (uint64_t)r->element[1]->integer;
    op->recovered = op->mode == CHIST_READ_SINCE ? (r->element[2]->integer == 1 ? 1 : 0) : -1;
    op->gap = false;
    if (parse_gap(r->element[3], r->element[4], op) != 0) {
        return -1;
    }
    size_t n = r->elements - READ_HEAD;
    if (n == 0) {
        return 0;
    }
    op->msgs = xcalloc(n, sizeof(xmsg_t *));
    for (size_t i = 0; i < n; i++) {
        xmsg_t *m = replay_msg(op, r->element[READ_HEAD + i], i > 0 ? op->msgs[i - 1]->seq : 0);
        if (m == NULL) {
            chist_op_drop_replay(op);
            return -1;
        }
        op->msgs[op->nmsgs++] = m;
    }
    return 0;
}
