/*
 * test_xmsg.c - the compressed variant of a published message
 * (xmsg_deflated_buf): built once per worker and shared, RSV1 set, inflating
 * to the plain frame's payload; plain when below min_size, beyond a client's
 * window, or for a replay; and its lifetime independent of the plain frame's
 * (a queue may hold only the compressed one). Run under ASan for the frees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h, included below, needs the four headers above first. */
#include "core/xmsg.h"
#include "wsb/ws_deflate.h"
#include "wsb/ws_frame.h"

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static xmsg_t *message(size_t data_len, unsigned nworkers)
{
    char *data = malloc(data_len + 2);
    data[0] = '"';
    for (size_t i = 0; i < data_len; i++) {
        data[1 + i] = "abcdefgh"[i % 8];
    }
    data[data_len + 1] = '"';
    xmsg_t *m =
        xmsg_new((wsb_str_t){"t", 1}, 1, WSB_STR_NULL, (wsb_str_t){data, data_len + 2}, nworkers);
    free(data);
    xmsg_set_refs(m, nworkers);
    return m;
}

static size_t header_len(const uint8_t *f)
{
    unsigned len7 = f[1] & 0x7Fu;
    return len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
}

static void test_compressed_once_and_shared(void **state)
{
    (void)state;
    xmsg_t *m = message(2000, 2);
    frame_buf_t *w0 = xmsg_worker_buf(m, 0);
    frame_buf_t *w1 = xmsg_worker_buf(m, 1);
    xmsg_deflate_stats_t st;
    frame_buf_t *z = xmsg_deflated_buf(w0, 128, 15, &st);
    assert_ptr_not_equal(z, w0);
    assert_true(st.in_bytes > 2000 && st.out_bytes < st.in_bytes);
    assert_true((z->bytes[0] & WSB_WS_RSV1) != 0);
    assert_int_equal(z->bytes[0] & 0x0F, WSB_WS_OP_TEXT);
    assert_ptr_equal(z->shared, m); /* queue filters (conflation, gaps) see the message */
    /* The second subscriber of the worker: the same frame, no compression. */
    assert_ptr_equal(xmsg_deflated_buf(w0, 128, 15, &st), z);
    assert_int_equal(st.in_bytes, 0);
    /* Another worker compresses its own. */
    frame_buf_t *z1 = xmsg_deflated_buf(w1, 128, 15, &st);
    assert_ptr_not_equal(z1, z);
    assert_true(st.in_bytes > 0);
    /* It inflates to the plain frame's payload. */
    size_t zh = header_len(z->bytes);
    size_t ph = header_len(w0->bytes);
    wsb_pmd_inflater_t *inf = wsb_pmd_inflater_new();
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(wsb_pmd_inflate(inf, z->bytes + zh, z->len - zh, 0, true, &out, &out_len), 0);
    assert_int_equal(out_len, w0->len - ph);
    assert_memory_equal(out, w0->bytes + ph, out_len);
    free(out);
    wsb_pmd_inflater_free(inf);

    /* A queue holds the compressed frame past the plain one's last reference. */
    frame_buf_ref(z);
    frame_buf_unref(w0); /* worker 0's slot released */
    frame_buf_unref(w1); /* worker 1's: the message lives on through z */
    assert_true((z->bytes[0] & WSB_WS_RSV1) != 0);
    frame_buf_unref(z); /* the last reference frees the message */
}

static void test_plain_when_it_does_not_qualify(void **state)
{
    (void)state;
    xmsg_t *m = message(1000, 1);
    frame_buf_t *w = xmsg_worker_buf(m, 0);
    xmsg_deflate_stats_t st;
    assert_ptr_equal(xmsg_deflated_buf(w, 5000, 15, &st), w); /* below min_size */
    assert_int_equal(st.in_bytes, 0);
    assert_ptr_equal(xmsg_deflated_buf(w, 0, 9, &st), w); /* longer than a 512-byte window */
    frame_buf_t *replay = xmsg_replay_buf(m);
    assert_ptr_equal(xmsg_deflated_buf(replay, 0, 15, &st), replay);
    frame_buf_unref(replay);
    assert_ptr_not_equal(xmsg_deflated_buf(w, 0, 15, &st), w);
    frame_buf_unref(w);

    /* Incompressible (a few bytes without repeats): tried once, then plain
     * without trying again. */
    json_t *ev = json_pack("{s:i}", "a", 1);
    xmsg_t *r = xmsg_new_event((wsb_str_t){"t", 1}, ev, 1);
    json_decref(ev);
    xmsg_set_refs(r, 1);
    frame_buf_t *rw = xmsg_worker_buf(r, 0);
    assert_ptr_equal(xmsg_deflated_buf(rw, 0, 15, &st), rw);
    assert_true(st.in_bytes > 0);
    assert_ptr_equal(xmsg_deflated_buf(rw, 0, 15, &st), rw);
    assert_int_equal(st.in_bytes, 0);
    frame_buf_unref(rw);
}

/* The SSE event (xmsg_sse_buf): built once per worker and shared, the
 * frame's JSON on one data line, a replay's built for itself, and its
 * lifetime independent of the worker frame's. */
static void test_sse_event_once_per_worker(void **state)
{
    (void)state;
    xmsg_t *m = xmsg_new((wsb_str_t){"a.b", 3}, 7, (wsb_str_t){"0123456789ab", 12},
                         (wsb_str_t){"{\"k\":\n 1}", 9}, 2);
    xmsg_set_refs(m, 2);
    frame_buf_t *w0 = xmsg_worker_buf(m, 0);
    frame_buf_t *w1 = xmsg_worker_buf(m, 1);
    frame_buf_t *e = xmsg_sse_buf(w0);
    static const char want[] = "event: message\nid: 0123456789ab:7\ndata: "
                               "{\"type\":\"message\",\"topic\":\"a.b\",\"seq\":7,"
                               "\"epoch\":\"0123456789ab\",\"data\":{\"k\":  1}}\n\n";
    assert_int_equal(e->len, sizeof(want) - 1);
    assert_memory_equal(e->bytes, want, sizeof(want) - 1);
    assert_ptr_equal(e->shared, m);
    frame_buf_t *again = xmsg_sse_buf(w0);
    assert_ptr_equal(again, e); /* the worker's second SSE subscriber: no new copy */
    frame_buf_t *other = xmsg_sse_buf(w1);
    assert_ptr_not_equal(other, e);       /* another worker builds its own */
    frame_buf_t *rb = xmsg_replay_buf(m); /* takes its own reference */
    frame_buf_t *re = xmsg_sse_buf(rb);
    assert_ptr_not_equal(re, e);
    assert_memory_equal(re->bytes, want, sizeof(want) - 1);
    frame_buf_unref(rb);
    frame_buf_unref(again);
    frame_buf_unref(other);
    frame_buf_unref(w0);
    frame_buf_unref(w1);
    /* The caller's references outlive both worker frames. */
    assert_memory_equal(e->bytes, want, sizeof(want) - 1);
    frame_buf_unref(e);
    frame_buf_unref(re);
}

/* A one-worker message of `topic` with data `data` (a JSON text). */
static xmsg_t *message_on(const char *topic, const char *data)
{
    xmsg_t *m = xmsg_new((wsb_str_t){topic, strlen(topic)}, 1, WSB_STR_NULL,
                         (wsb_str_t){data, strlen(data)}, 1);
    xmsg_set_refs(m, 1);
    return m;
}

/* Issue 17 item 1: the frames of a run of one topic go, from the second on,
 * one after the other into one chunk, each worker frame_buf pointing there
 * and holding a reference on it; another topic ends the run; conflated,
 * drop_slow and event messages and large frames stay apart. The chunk
 * outlives the chunker's close while a frame on it is held. */
static void test_chunk_runs_of_one_topic(void **state)
{
    (void)state;
    xmsg_chunker_t ch;
    memset(&ch, 0, sizeof ch);
    xmsg_t *m[6];
    m[0] = message_on("a", "1");
    m[1] = message_on("a", "22");
    m[2] = message_on("a", "333");
    m[3] = message_on("b", "4");
    m[4] = message_on("a", "5");
    m[5] = message_on("a", "6");
    frame_buf_t *fb[6];
    for (int i = 0; i < 6; i++) {
        xmsg_chunk_place(&ch, m[i], 0);
        fb[i] = xmsg_worker_buf(m[i], 0);
        assert_int_equal(fb[i]->len, m[i]->frame_len);
        assert_memory_equal(fb[i]->bytes, m[i]->frame, m[i]->frame_len);
    }
    assert_null(fb[0]->backing); /* a run's first frame stays in its message */
    assert_non_null(fb[1]->backing);
    assert_ptr_equal(fb[2]->backing, fb[1]->backing);
    assert_ptr_equal(fb[1]->bytes + fb[1]->len, fb[2]->bytes); /* contiguous */
    assert_null(fb[3]->backing);                               /* "b" ends the run of "a" */
    assert_null(fb[4]->backing);                               /* and "a" starts a new one */
    assert_non_null(fb[5]->backing);
    assert_ptr_not_equal(fb[5]->backing, fb[1]->backing);
    frame_buf_t *chunk = fb[1]->backing;
    assert_int_equal(chunk->refcnt, 2); /* fb[1] and fb[2]; the chunker let go */
    xmsg_chunker_close(&ch);
    frame_buf_ref(fb[2]); /* a queue still holds the third frame */
    for (int i = 0; i < 6; i++) {
        frame_buf_unref(fb[i]);
    }
    assert_int_equal(chunk->refcnt, 1);
    assert_memory_equal(fb[2]->bytes + fb[2]->len - 5, ":333}", 5); /* still readable */
    frame_buf_unref(fb[2]); /* frees the message, then the chunk (ASan) */

    /* Not chunked: a conflated topic, a drop_slow topic, an event, a large frame. */
    memset(&ch, 0, sizeof ch);
    for (int kind = 0; kind < 4; kind++) {
        char big[XMSG_CHUNK_FRAME_MAX + 8];
        memset(big, '7', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        for (int i = 0; i < 2; i++) {
            m[i] = kind == 3 ? message_on("c", big) : message_on("c", "1");
            m[i]->conflate = kind == 0;
            m[i]->drop_slow = kind == 1;
            m[i]->event = kind == 2;
            xmsg_chunk_place(&ch, m[i], 0);
            fb[i] = xmsg_worker_buf(m[i], 0);
        }
        assert_null(fb[1]->backing);
        frame_buf_unref(fb[0]);
        frame_buf_unref(fb[1]);
    }
    xmsg_chunker_close(&ch);
}

/* A long run fills chunks of growing size: every frame lands in one, and a
 * new chunk starts when the open one has no room. */
static void test_chunk_grows_by_runs(void **state)
{
    (void)state;
    xmsg_chunker_t ch;
    memset(&ch, 0, sizeof ch);
    enum { N = 200 };
    frame_buf_t *fb[N];
    unsigned chunks = 0;
    for (int i = 0; i < N; i++) {
        xmsg_t *m = message_on("run", "\"0123456789012345678901234567890123456789\"");
        xmsg_chunk_place(&ch, m, 0);
        fb[i] = xmsg_worker_buf(m, 0);
        if (i > 0) {
            assert_non_null(fb[i]->backing);
            if (fb[i]->backing != fb[i - 1]->backing) {
                chunks++;
            } else {
                assert_ptr_equal(fb[i - 1]->bytes + fb[i - 1]->len, fb[i]->bytes);
            }
        }
    }
    /* ~100-byte frames: 1, 2, 4, 8, 16 KiB chunks hold 199 of them. */
    assert_true(chunks >= 4 && chunks <= 6);
    xmsg_chunker_close(&ch);
    for (int i = 0; i < N; i++) {
        frame_buf_unref(fb[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compressed_once_and_shared),
        cmocka_unit_test(test_plain_when_it_does_not_qualify),
        cmocka_unit_test(test_sse_event_once_per_worker),
        cmocka_unit_test(test_chunk_runs_of_one_topic),
        cmocka_unit_test(test_chunk_grows_by_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
