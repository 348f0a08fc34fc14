/* topic_rules.c - the `topics` config list (see topic_rules.h). */
#include "core/topic_rules.h"

#include "core/stream.h"
#include "shared/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPTIONS_HINT "expected pattern, history, presence, join_leave, publisher, conflate, stream"

#define fail err_printf

static int parse_flag(json_t *v, const char *where, const char *key, bool *out, char *err,
                      size_t errlen)
{
    if (!json_is_boolean(v)) {
        return fail(err, errlen, "%s.%s: expected true or false", where, key);
    }
    *out = json_is_true(v);
    return 0;
}

static int parse_pattern(json_t *v, const char *where, topic_rule_t *r, char *err, size_t errlen)
{
    return history_parse_pattern(v, where, r->pattern, &r->pattern_len, err, errlen);
}

static int parse_option(json_t *v, const char *where, const char *key, topic_rule_t *r, char *err,
                        size_t errlen)
{
    if (strcmp(key, "pattern") == 0) {
        return parse_pattern(v, where, r, err, errlen);
    }
    if (strcmp(key, "history") == 0) {
        char hwhere[48];
        (void)snprintf(hwhere, sizeof hwhere, "%s.history", where);
        r->has_history = true;
        return history_rule_parse(v, hwhere, false, &r->history, err, errlen);
    }
    if (strcmp(key, "presence") == 0) {
        return parse_flag(v, where, key, &r->presence, err, errlen);
    }
    if (strcmp(key, "join_leave") == 0) {
        return parse_flag(v, where, key, &r->join_leave, err, errlen);
    }
    if (strcmp(key, "publisher") == 0) {
        return parse_flag(v, where, key, &r->publisher, err, errlen);
    }
    if (strcmp(key, "conflate") == 0) {
        return parse_flag(v, where, key, &r->conflate, err, errlen);
    }
    if (strcmp(key, "stream") == 0) {
        char swhere[48];
        (void)snprintf(swhere, sizeof swhere, "%s.stream", where);
        r->has_stream = true;
        return stream_conf_parse(v, swhere, &r->stream, err, errlen);
    }
    return fail(err, errlen, "%s: unknown option \"%s\" (" OPTIONS_HINT ")", where, key);
}

static int parse_rule(json_t *obj, size_t i, topic_rule_t *r, char *err, size_t errlen)
{
    char where[32];
    (void)snprintf(where, sizeof where, "topics[%zu]", i);
    if (!json_is_object(obj)) {
        return fail(err, errlen,
                    "%s: expected an object such as {\"pattern\":\"chat.>\",\"presence\":true}",
                    where);
    }
    memset(r, 0, sizeof *r);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (parse_option(v, where, key, r, err, errlen) != 0) {
            return -1;
        }
    }
    if (r->pattern_len == 0) {
        return fail(err, errlen, "%s: \"pattern\" is required", where);
    }
    if (r->has_history && r->has_stream) {
        /* A stream is the topics' history: one log, one seq for them all. */
        return fail(err, errlen,
                    "%s: \"stream\" and \"history\" exclude each other (a stream keeps "
                    "the log of all its topics; use its size and ttl)",
                    where);
    }
    if (r->has_history) {
        memcpy(r->history.pattern, r->pattern, r->pattern_len + 1);
        r->history.pattern_len = r->pattern_len;
    }
    return 0;
}

static int parse_topics(const char *json, topic_rules_t *out, char *err, size_t errlen)
{
    json_t *root;
    if (history_rules_list(json, "topics",
                           "[{\"pattern\":\"chat.>\",\"presence\":true,\"join_leave\":true}]",
                           &root, err, errlen) != 0) {
        return -1;
    }
    int rc = 0;
    size_t i;
    json_t *v;
    json_array_foreach(root, i, v)
    {
        rc = parse_rule(v, i, &out->rules[i], err, errlen);
        if (rc != 0) {
            break;
        }
        out->n++;
    }
    json_decref(root);
    return rc;
}

int topic_rules_parse(const char *topics_json, const char *history_json, topic_rules_t *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (parse_topics(topics_json, out, err, errlen) != 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    history_rules_t hist;
    if (history_rules_parse(history_json, &hist, err, errlen) != 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    if (out->n + hist.n > TOPIC_RULES_MAX) {
        memset(out, 0, sizeof *out);
        return fail(err, errlen, "topics, history: at most %d rules together, got %u",
                    TOPIC_RULES_MAX, out->n + hist.n);
    }
    for (unsigned i = 0; i < hist.n; i++) {
        topic_rule_t *r = &out->rules[out->n++];
        memset(r, 0, sizeof *r);
        memcpy(r->pattern, hist.rules[i].pattern, hist.rules[i].pattern_len + 1);
        r->pattern_len = hist.rules[i].pattern_len;
        r->has_history = true;
        r->history = hist.rules[i];
    }
    return 0;
}

const topic_rule_t *topic_rules_match(const topic_rules_t *r, wsb_str_t topic)
{
    for (unsigned i = 0; i < r->n; i++) {
        if (wsb_topic_matches(r->rules[i].pattern, r->rules[i].pattern_len, topic.p, topic.len)) {
            return &r->rules[i];
        }
    }
    return NULL;
}

void topic_rules_history(const topic_rules_t *r, history_rules_t *out)
{
    memset(out, 0, sizeof *out);
    unsigned last = 0; /* one past the last rule with history */
    for (unsigned i = 0; i < r->n; i++) {
        if (r->rules[i].has_history) {
            last = i + 1;
        }
    }
    for (unsigned i = 0; i < last; i++) {
        history_rule_t *h = &out->rules[i];
        if (r->rules[i].has_history) {
            *h = r->rules[i].history;
        } else {
            memcpy(h->pattern, r->rules[i].pattern, r->rules[i].pattern_len + 1);
            h->pattern_len = r->rules[i].pattern_len;
            h->size = 0; /* shadows the history rules after it */
        }
    }
    out->n = last;
}

bool topic_rules_conflate(const topic_rules_t *r, wsb_str_t topic)
{
    const topic_rule_t *rule = r != NULL ? topic_rules_match(r, topic) : NULL;
    return rule != NULL && rule->conflate;
}

int topic_rules_index(const topic_rules_t *r, wsb_str_t topic)
{
    const topic_rule_t *rule = r != NULL ? topic_rules_match(r, topic) : NULL;
    return rule != NULL ? (int)(rule - r->rules) : -1;
}

bool topic_rules_any_presence(const topic_rules_t *r)
{
    for (unsigned i = 0; i < r->n; i++) {
        if (r->rules[i].presence || r->rules[i].join_leave) {
            return true;
        }
    }
    return false;
}

stream_t **topic_rules_streams_new(const topic_rules_t *r)
{
    stream_t **v = NULL;
    for (unsigned i = 0; i < r->n; i++) {
        if (r->rules[i].has_stream) {
            if (v == NULL) {
                v = xcalloc(r->n, sizeof(stream_t *));
            }
            v[i] = stream_new(r->rules[i].pattern, r->rules[i].pattern_len, &r->rules[i].stream);
        }
    }
    return v;
}

void topic_rules_streams_free(const topic_rules_t *r, stream_t **streams)
{
    if (streams == NULL) {
        return;
    }
    for (unsigned i = 0; i < r->n; i++) {
        stream_free(streams[i]);
    }
    free(streams);
}

stream_t *topic_rules_stream_of(const topic_rules_t *r, stream_t *const *streams, wsb_str_t topic)
{
    if (streams == NULL) {
        return NULL;
    }
    int i = topic_rules_index(r, topic);
    return i >= 0 ? streams[i] : NULL;
}

stream_t *topic_rules_stream_within(const topic_rules_t *r, stream_t *const *streams,
                                    wsb_str_t pattern)
{
    if (streams == NULL) {
        return NULL;
    }
    for (unsigned i = 0; i < r->n; i++) {
        const topic_rule_t *rule = &r->rules[i];
        if (wsb_topic_covers(rule->pattern, rule->pattern_len, pattern.p, pattern.len)) {
            return streams[i];
        }
    }
    return NULL;
}
