/* history.c - history rules and the per-topic ring (see history.h). */
#include "core/history.h"

#include "core/xmsg.h"
#include "shared/units.h"
#include "shared/util.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SIZE 100

#define fail err_printf

int history_parse_pattern(json_t *v, const char *where, char *out, size_t *len, char *err,
                          size_t errlen)
{
    const char *why = "not a string";
    if (!json_is_string(v) || wsb_topic_check(json_string_value(v), json_string_length(v),
                                              WSB_TOPIC_PATTERN, &why) != 0) {
        return fail(err, errlen, "%s.pattern: expected a topic pattern: %s", where, why);
    }
    *len = json_string_length(v);
    memcpy(out, json_string_value(v), *len);
    out[*len] = '\0';
    return 0;
}

int history_parse_ttl(json_t *v, uint64_t *out_ms)
{
    if (json_is_string(v)) {
        return units_parse_duration(json_string_value(v), out_ms);
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) <= (json_int_t)30 * 86400) {
        *out_ms = (uint64_t)json_integer_value(v) * 1000;
        return 0;
    }
    return -1;
}

int history_rule_parse(json_t *obj, const char *where, bool with_pattern, history_rule_t *r,
                       char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        return fail(err, errlen, "%s: expected an object such as {%s\"size\":100}", where,
                    with_pattern ? "\"pattern\":\"chat.>\"," : "");
    }
    memset(r, 0, sizeof *r);
    r->size = DEFAULT_SIZE;
    const char *key;
    json_t *v;
    bool has_pattern = false;
    json_object_foreach(obj, key, v)
    {
        if (with_pattern && strcmp(key, "pattern") == 0) {
            if (history_parse_pattern(v, where, r->pattern, &r->pattern_len, err, errlen) != 0) {
                return -1;
            }
            has_pattern = true;
        } else if (strcmp(key, "size") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > HISTORY_MAX_SIZE) {
                return fail(err, errlen,
                            "%s.size: expected an integer from 1 to %d (messages kept)", where,
                            HISTORY_MAX_SIZE);
            }
            r->size = (uint32_t)json_integer_value(v);
        } else if (strcmp(key, "ttl") == 0) {
            if (history_parse_ttl(v, &r->ttl_ms) != 0) {
                return fail(err, errlen,
                            "%s.ttl: expected a duration such as 300 or \"300s\", "
                            "\"5m\" (0 = no age limit)",
                            where);
            }
        } else if (strcmp(key, "slow_consumer") == 0) {
            const char *s = json_is_string(v) ? json_string_value(v) : "";
            if (strcmp(s, "drop") == 0) {
                r->drop_slow = true;
            } else if (strcmp(s, "close") == 0) {
                r->drop_slow = false;
            } else {
                return fail(err, errlen, "%s.slow_consumer: expected \"close\" or \"drop\"", where);
            }
        } else {
            return fail(err, errlen,
                        "%s: unknown field \"%s\" (expected %ssize, ttl, slow_consumer)", where,
                        key, with_pattern ? "pattern, " : "");
        }
    }
    if (with_pattern && !has_pattern) {
        return fail(err, errlen, "%s: \"pattern\" is required", where);
    }
    return 0;
}

int history_rules_list(const char *json, const char *name, const char *example, json_t **out,
                       char *err, size_t errlen)
{
    *out = NULL;
    if (json == NULL || json[0] == '\0') {
        return 0;
    }
    json_error_t jerr;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return fail(err, errlen, "%s: not valid JSON: %s", name, jerr.text);
    }
    if (!json_is_array(root)) {
        json_decref(root);
        return fail(err, errlen, "%s: expected a list of rules such as %s", name, example);
    }
    if (json_array_size(root) > HISTORY_MAX_RULES) {
        json_decref(root);
        return fail(err, errlen, "%s: at most %d rules (topics and history together)", name,
                    HISTORY_MAX_RULES);
    }
    *out = root;
    return 0;
}

int history_rules_parse(const char *json, history_rules_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_t *root;
    if (history_rules_list(json, "history",
                           "[{\"pattern\":\"chat.>\",\"size\":100,\"ttl\":\"300s\"}]", &root, err,
                           errlen) != 0) {
        return -1;
    }
    int rc = 0;
    size_t i;
    json_t *v;
    json_array_foreach(root, i, v)
    {
        char where[32];
        (void)snprintf(where, sizeof where, "history[%zu]", i);
        rc = history_rule_parse(v, where, true, &out->rules[i], err, errlen);
        if (rc != 0) {
            break;
        }
        out->n++;
    }
    json_decref(root);
    if (rc != 0) {
        memset(out, 0, sizeof *out);
    }
    return rc;
}

int history_rules_match(const history_rules_t *r, wsb_str_t topic)
{
    for (unsigned i = 0; i < r->n; i++) {
        if (wsb_topic_matches(r->rules[i].pattern, r->rules[i].pattern_len, topic.p, topic.len)) {
            /* A size-0 rule keeps no history and shadows the rules after it
             * (a topics rule without history, topic_rules.h). */
            return r->rules[i].size > 0 ? (int)i : -1;
        }
    }
    return -1;
}

/* ---- ring ----------------------------------------------------------------------------------- */

void history_ring_init(history_ring_t *r, uint32_t cap)
{
    memset(r, 0, sizeof *r);
    r->cap = cap;
}

static history_entry_t *at(const history_ring_t *r, uint32_t i)
{
    return &r->entries[(r->head + i) % r->cap];
}

static void drop_oldest(history_ring_t *r)
{
    history_entry_t *e = at(r, 0);
    r->bytes -= e->msg->frame_len;
    xmsg_unref(e->msg);
    e->msg = NULL;
    r->head = (r->head + 1) % r->cap;
    r->count--;
}

void history_ring_clear(history_ring_t *r)
{
    while (r->count > 0) {
        drop_oldest(r);
    }
    free(r->entries);
    r->entries = NULL;
    r->head = 0;
}

void history_ring_append(history_ring_t *r, xmsg_t *m, uint64_t now_ms)
{
    if (r->entries == NULL) {
        r->entries = xcalloc(r->cap, sizeof(history_entry_t));
        r->head = 0;
    }
    if (r->count == r->cap) {
        drop_oldest(r);
    }
    history_entry_t *e = at(r, r->count);
    e->msg = m;
    e->time_ms = now_ms;
    r->count++;
    r->bytes += m->frame_len;
}

/* An idle topic gives its storage back; the next append reallocates. */
static void release_if_empty(history_ring_t *r)
{
    if (r->count == 0 && r->entries != NULL) {
        free(r->entries);
        r->entries = NULL;
        r->head = 0;
    }
}

void history_ring_drop_oldest(history_ring_t *r)
{
    drop_oldest(r);
    release_if_empty(r);
}

uint32_t history_ring_expire(history_ring_t *r, uint64_t ttl_ms, uint64_t now_ms)
{
    uint32_t n = 0;
    /* Entries are in append order, so the oldest are in front. */
    while (ttl_ms != 0 && r->count > 0 && now_ms - at(r, 0)->time_ms > ttl_ms) {
        drop_oldest(r);
        n++;
    }
    release_if_empty(r);
    return n;
}

uint64_t history_ring_first_seq(const history_ring_t *r)
{
    return r->count > 0 ? at(r, 0)->msg->seq : 0;
}

size_t history_ring_read(const history_ring_t *r, uint64_t after, size_t max, xmsg_t **out)
{
    if (r->count == 0 || max == 0) {
        return 0;
    }
    uint64_t first = at(r, 0)->msg->seq;
    uint32_t skip = 0;
    if (after >= first) {
        uint64_t s = after - first + 1;
        skip = s >= r->count ? r->count : (uint32_t)s;
    }
    size_t avail = r->count - skip;
    if (avail > max) {
        skip += (uint32_t)(avail - max);
        avail = max;
    }
    for (size_t i = 0; i < avail; i++) {
        xmsg_t *m = at(r, skip + (uint32_t)i)->msg;
        xmsg_ref(m);
        out[i] = m;
    }
    return avail;
}
