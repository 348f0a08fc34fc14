/* envelope.c - the federation envelope's one encoder and decoder (see envelope.h). */
#include "cluster/envelope.h"

#include "core/inbox_name.h"
#include "core/xmsg.h"
#include "shared/util.h"
#include "wsb/message.h"
#include "wsb/topic.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {"v":1,"node":"","topic":"","epoch":"","seq":,"data":} and a NUL: 50 bytes,
 * plus 20 digits of seq. */
#define ENVELOPE_FIXED 80
/* ,"from": around a stamp. */
#define ENVELOPE_FROM_FIXED 8
/* "reply_to":"", around an inbox. */
#define ENVELOPE_REPLY_FIXED 16

size_t envelope_head_max(size_t node_len, size_t topic_len, size_t from_len)
{
    return ENVELOPE_FIXED + 2 * node_len + 2 * topic_len +
           (from_len > 0 ? ENVELOPE_FROM_FIXED + from_len : 0);
}

size_t envelope_encoded_max(size_t node_len, size_t topic_len, size_t from_len, size_t reply_len,
                            size_t data_len)
{
    return envelope_head_max(node_len, topic_len, from_len) +
           (reply_len > 0 ? ENVELOPE_REPLY_FIXED + 2 * reply_len : 0) + data_len;
}

/* {"v":1,"node":N,"topic":T[,"from":F]," : what both kinds start with. */
static size_t put_head(char *out, const char *node_id, wsb_str_t topic, wsb_str_t from_json)
{
    static const char v[] = "{\"v\":1,\"node\":\"";
    static const char t[] = "\",\"topic\":\"";
    size_t n = 0;
    memcpy(out, v, sizeof v - 1);
    n += sizeof v - 1;
    n += topic_json_escape(out + n, node_id, strlen(node_id));
    memcpy(out + n, t, sizeof t - 1);
    n += sizeof t - 1;
    n += topic_json_escape(out + n, topic.p, topic.len);
    static const char next[] = "\",\""; /* the topic's end, the next key's start */
    if (from_json.len > 0) {
        static const char f[] = "\",\"from\":";
        memcpy(out + n, f, sizeof f - 1);
        n += sizeof f - 1;
        memcpy(out + n, from_json.p, from_json.len);
        n += from_json.len;
        memcpy(out + n, next + 1, sizeof next - 2); /* ," */
        return n + sizeof next - 2;
    }
    memcpy(out + n, next, sizeof next - 1);
    return n + sizeof next - 1;
}

size_t envelope_encode(char *out, const char *node_id, wsb_str_t topic, uint64_t seq,
                       wsb_str_t from_json, wsb_str_t reply_to, wsb_str_t data_json)
{
    size_t n = put_head(out, node_id, topic, from_json);
    if (reply_to.len > 0) {
        static const char r[] = "reply_to\":\"";
        memcpy(out + n, r, sizeof r - 1);
        n += sizeof r - 1;
        n += topic_json_escape(out + n, reply_to.p, reply_to.len);
        memcpy(out + n, "\",\"", 3);
        n += 3;
    }
    n += (size_t)sprintf(out + n, "seq\":%" PRIu64 ",\"data\":", seq);
    memcpy(out + n, data_json.p, data_json.len);
    n += data_json.len;
    out[n++] = '}';
    out[n] = '\0';
    return n;
}

size_t envelope_head_clustered(char *out, const char *node_id, wsb_str_t topic, wsb_str_t from_json)
{
    size_t n = put_head(out, node_id, topic, from_json);
    memcpy(out + n, "epoch\":\"", 9); /* the NUL included */
    return n + 8;
}

int envelope_decode(const char *p, size_t len, envelope_t *out)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    json_t *root = json_loadb(p, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    json_t *node = json_object_get(root, "node");
    json_t *topic = json_object_get(root, "topic");
    json_t *seq = json_object_get(root, "seq");
    json_t *data = json_object_get(root, "data");
    const char *why = NULL;
    if (!json_is_object(root) || !json_is_string(node) || !json_is_string(topic) ||
        !json_is_integer(seq) || json_integer_value(seq) < 0 || data == NULL ||
        wsb_topic_check(json_string_value(topic), json_string_length(topic), WSB_TOPIC_EXACT,
                        &why) != 0) {
        json_decref(root);
        return -1;
    }
    out->root = root;
    out->node = (wsb_str_t){json_string_value(node), json_string_length(node)};
    out->topic = (wsb_str_t){json_string_value(topic), json_string_length(topic)};
    out->seq = (uint64_t)json_integer_value(seq);
    json_t *epoch = json_object_get(root, "epoch");
    out->epoch = WSB_STR_NULL;
    if (json_is_string(epoch) && json_string_length(epoch) > 0 &&
        json_string_length(epoch) <= XMSG_EPOCH_MAX) {
        out->epoch = (wsb_str_t){json_string_value(epoch), json_string_length(epoch)};
    }
    /* A request's inbox; anything else in that place is dropped (the
     * message is then a plain publish). */
    json_t *reply_to = json_object_get(root, "reply_to");
    out->reply_to = WSB_STR_NULL;
    if (json_is_string(reply_to) && json_string_length(reply_to) > INBOX_PREFIX_LEN &&
        inbox_is(json_string_value(reply_to), json_string_length(reply_to)) &&
        wsb_topic_check(json_string_value(reply_to), json_string_length(reply_to), WSB_TOPIC_EXACT,
                        &why) == 0) {
        out->reply_to = (wsb_str_t){json_string_value(reply_to), json_string_length(reply_to)};
    }
    out->data_json = wsb_msg_dump_value(data, &out->data_len);
    if (out->data_json == NULL) {
        wsb_oom("envelope data");
    }
    /* The origin stamps an object {"client","user"}; anything else in that
     * place is dropped, not passed on to subscribers. */
    json_t *from = json_object_get(root, "from");
    if (json_is_object(from)) {
        out->from_json = wsb_msg_dump_value(from, &out->from_len);
        if (out->from_json == NULL) {
            abort(); /* ENOMEM: the broker's allocation policy */
        }
    }
    return 0;
}

void envelope_clear(envelope_t *e)
{
    free(e->from_json);
    free(e->data_json);
    json_decref(e->root);
    memset(e, 0, sizeof(*e));
}
