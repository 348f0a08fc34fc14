/* test_outq.c - the outbound queue: order, partial writes, in-flight slices,
 * dropping, growth past the inline ring and reference counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs the headers above first. */
#include "net/outq.h"
#include "shared/frame_buf.h"

#include <cmocka.h>

static frame_buf_t *make(const char *text)
{
    return frame_buf_copy(text, strlen(text));
}

/* Concatenates what outq_iov would hand to the kernel. */
static size_t gather(const outq_t *q, char *out, size_t cap)
{
    uv_buf_t bufs[64];
    size_t total = 0;
    unsigned n = outq_iov(q, bufs, 64, &total);
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        assert_true(off + bufs[i].len <= cap);
        memcpy(out + off, bufs[i].base, bufs[i].len);
        off += bufs[i].len;
    }
    assert_int_equal(off, total);
    out[off] = '\0';
    return off;
}

static void test_order_and_partial_consume(void **state)
{
    (void)state;
    outq_t q;
    outq_init(&q);
    frame_buf_t *a = make("hello ");
    frame_buf_t *b = make("world");
    outq_push(&q, frame_buf_ref(a), 0, a->len);
    outq_push(&q, frame_buf_ref(b), 0, b->len);
    assert_int_equal(outq_bytes(&q), 11);
    char out[64];
    gather(&q, out, sizeof(out));
    assert_string_equal(out, "hello world");
    outq_consume(&q, 3); /* a partial write inside the first slice */
    gather(&q, out, sizeof(out));
    assert_string_equal(out, "lo world");
    outq_consume(&q, 3); /* ends exactly at a slice boundary: a is released */
    assert_int_equal(a->refcnt, 1);
    gather(&q, out, sizeof(out));
    assert_string_equal(out, "world");
    outq_consume(&q, 5);
    assert_int_equal(outq_bytes(&q), 0);
    assert_int_equal(b->refcnt, 1);
    outq_clear(&q);
    frame_buf_unref(a);
    frame_buf_unref(b);
}

static void test_inflight_and_drop_pending(void **state)
{
    (void)state;
    outq_t q;
    outq_init(&q);
    frame_buf_t *fb = make("0123456789");
    for (int i = 0; i < 3; i++) {
        outq_push(&q, frame_buf_ref(fb), (uint32_t)i, 2);
    }
    uv_buf_t bufs[8];
    size_t total = 0;
    unsigned n = outq_iov(&q, bufs, 2, &total); /* max 2 slices */
    assert_int_equal(n, 2);
    assert_int_equal(total, 4);
    outq_mark_inflight(&q, n, total);
    assert_int_equal(outq_pending_bytes(&q), 2);
    /* Slices queued behind the write in flight are the only ones gathered. */
    outq_push(&q, frame_buf_ref(fb), 8, 2);
    char out[32];
    gather(&q, out, sizeof(out));
    assert_string_equal(out, "2389");
    /* A slow consumer loses what is not in flight; the write in flight stays. */
    assert_int_equal(outq_drop_pending(&q), 4);
    assert_int_equal(outq_bytes(&q), 4);
    assert_int_equal(fb->refcnt, 3);
    outq_complete_inflight(&q);
    assert_int_equal(outq_bytes(&q), 0);
    assert_int_equal(fb->refcnt, 1);
    outq_clear(&q); /* an emptied queue keeps its heap ring until trimmed */
    frame_buf_unref(fb);
}

static bool same_buf(const frame_buf_t *fb, void *user_data)
{
    return fb == user_data;
}

/* Conflation's primitive: the newest whole, unsent slice of a key goes, the
 * rest keeps its order; a slice in flight or partly written never goes. */
static void test_drop_last_matching(void **state)
{
    (void)state;
    outq_t q;
    outq_init(&q);
    frame_buf_t *a = make("A1");
    frame_buf_t *b = make("B1");
    frame_buf_t *c = make("C1");
    outq_push(&q, frame_buf_ref(a), 0, a->len);
    outq_push(&q, frame_buf_ref(b), 0, b->len);
    outq_push(&q, frame_buf_ref(a), 0, a->len);
    outq_push(&q, frame_buf_ref(c), 0, c->len);
    char out[32];
    /* The newest A goes, the older one (say, in flight later) stays. */
    assert_int_equal(outq_drop_last_matching(&q, same_buf, a), 2);
    gather(&q, out, sizeof(out));
    assert_string_equal(out, "A1B1C1");
    assert_int_equal(outq_bytes(&q), 6);
    assert_int_equal(a->refcnt, 2);
    /* The first slice partly written: it is not a whole frame any more. */
    outq_consume(&q, 1);
    assert_int_equal(outq_drop_last_matching(&q, same_buf, a), 0);
    assert_int_equal(a->refcnt, 2);
    /* In flight: B is gathered into the write, C is still pending. */
    uv_buf_t bufs[4];
    size_t total = 0;
    unsigned n = outq_iov(&q, bufs, 2, &total);
    outq_mark_inflight(&q, n, total);
    assert_int_equal(outq_drop_last_matching(&q, same_buf, b), 0);
    assert_int_equal(outq_drop_last_matching(&q, same_buf, c), 2);
    assert_int_equal(c->refcnt, 1);
    assert_int_equal(outq_pending_bytes(&q), 0);
    assert_int_equal(outq_drop_last_matching(&q, same_buf, c), 0);
    outq_complete_inflight(&q);
    assert_int_equal(outq_bytes(&q), 0);
    assert_int_equal(a->refcnt, 1);
    assert_int_equal(b->refcnt, 1);
    outq_clear(&q);
    frame_buf_unref(a);
    frame_buf_unref(b);
    frame_buf_unref(c);
}

static void test_growth_and_shrink(void **state)
{
    (void)state;
    outq_t q;
    outq_init(&q);
    frame_buf_t *fb = make("abcdefghijklmnopqrstuvwxyz");
    /* Wrap the inline ring first, then grow past it. */
    outq_push(&q, frame_buf_ref(fb), 0, 1);
    outq_push(&q, frame_buf_ref(fb), 1, 1);
    outq_consume(&q, 1);
    for (uint32_t i = 2; i < 26; i++) {
        outq_push(&q, frame_buf_ref(fb), i, 1);
    }
    assert_true(q.ring != q.inline_ring);
    char out[64];
    gather(&q, out, sizeof(out));
    assert_string_equal(out, "bcdefghijklmnopqrstuvwxyz");
    outq_consume(&q, 25);
    assert_true(q.ring != q.inline_ring); /* kept while the connection is busy */
    outq_push(&q, frame_buf_ref(fb), 0, 1);
    outq_trim(&q); /* not empty: nothing happens */
    assert_true(q.ring != q.inline_ring);
    outq_consume(&q, 1);
    outq_trim(&q); /* idle: the heap ring goes back */
    assert_true(q.ring == q.inline_ring);
    assert_int_equal(fb->refcnt, 1);
    outq_push(&q, frame_buf_ref(fb), 0, 26);
    outq_clear(&q);
    assert_int_equal(fb->refcnt, 1);
    frame_buf_unref(fb);
}

static void test_adopt_headroom(void **state)
{
    (void)state;
    frame_buf_t *fb = frame_buf_new(5);
    assert_ptr_equal(fb->bytes, (uint8_t *)fb + FRAME_BUF_HEADROOM);
    assert_int_equal((uintptr_t)fb->bytes % 16, 0);
    assert_int_equal(fb->len, 5);
    assert_int_equal(fb->refcnt, 1);
    frame_buf_unref(fb);
}

/* Frames a, b, c of one chunk (frame_buf.h `backing`), each holding a
 * reference on it, as xmsg.h's chunks make them. */
static bool match_any(const frame_buf_t *fb, void *user_data)
{
    (void)fb;
    (void)user_data;
    return true;
}

typedef struct {
    frame_buf_t *chunk;
    frame_buf_t *f[3];
} chunked_t;

static void chunked_make(chunked_t *x)
{
    x->chunk = frame_buf_copy("aaaBBcccc", 9);
    static const uint32_t at[3] = {0, 3, 5}, len[3] = {3, 2, 4};
    for (int i = 0; i < 3; i++) {
        x->f[i] = frame_buf_new(0); /* a header whose bytes live in the chunk */
        x->f[i]->bytes = x->chunk->bytes + at[i];
        x->f[i]->len = len[i];
        x->f[i]->backing = frame_buf_ref(x->chunk);
    }
}

static void chunked_free(chunked_t *x)
{
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x->f[i]->refcnt, 1);
        frame_buf_unref(x->f[i]->backing);
        frame_buf_unref(x->f[i]);
    }
    assert_int_equal(x->chunk->refcnt, 1);
    frame_buf_unref(x->chunk);
}

/* Issue 17 item 1: consecutive frames of one chunk are one slice (one
 * iovec), with exact byte counts; a gap (a frame this subscriber does not
 * take) or a slice in flight starts a new one; a partial write inside the
 * merged slice keeps the rest; a merged slice is never dropped by a match. */
static void test_chunk_slices_merge(void **state)
{
    (void)state;
    chunked_t x;
    chunked_make(&x);
    outq_t q;
    outq_init(&q);
    for (int i = 0; i < 3; i++) {
        outq_push(&q, frame_buf_ref(x.f[i]), 0, x.f[i]->len);
    }
    uv_buf_t bufs[8];
    size_t total = 0;
    assert_int_equal(outq_iov(&q, bufs, 8, &total), 1);
    assert_int_equal(total, 9);
    assert_int_equal(outq_bytes(&q), 9);
    assert_int_equal(x.f[1]->refcnt, 1); /* the merged ones' references went */
    assert_int_equal(x.f[0]->refcnt, 2); /* the slice holds the first */
    char out[64];
    gather(&q, out, sizeof out);
    assert_string_equal(out, "aaaBBcccc");
    assert_int_equal(outq_drop_matching(&q, match_any, NULL), 0);
    outq_consume(&q, 4); /* a partial write past the first frame */
    gather(&q, out, sizeof out);
    assert_string_equal(out, "Bcccc");
    outq_consume(&q, 5);
    assert_int_equal(outq_bytes(&q), 0);

    /* This subscriber skips b: two slices. */
    outq_push(&q, frame_buf_ref(x.f[0]), 0, x.f[0]->len);
    outq_push(&q, frame_buf_ref(x.f[2]), 0, x.f[2]->len);
    assert_int_equal(outq_iov(&q, bufs, 8, &total), 2);
    gather(&q, out, sizeof out);
    assert_string_equal(out, "aaacccc");
    outq_clear(&q);

    /* The first slice is in flight: what follows does not join it. */
    outq_push(&q, frame_buf_ref(x.f[0]), 0, x.f[0]->len);
    outq_mark_inflight(&q, 1, x.f[0]->len);
    outq_push(&q, frame_buf_ref(x.f[1]), 0, x.f[1]->len);
    outq_push(&q, frame_buf_ref(x.f[2]), 0, x.f[2]->len);
    assert_int_equal(outq_iov(&q, bufs, 8, &total), 1); /* b and c after the flight */
    assert_int_equal(total, 6);
    outq_complete_inflight(&q);
    gather(&q, out, sizeof out);
    assert_string_equal(out, "BBcccc");
    outq_clear(&q);
    chunked_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_partial_consume),
        cmocka_unit_test(test_inflight_and_drop_pending),
        cmocka_unit_test(test_drop_last_matching),
        cmocka_unit_test(test_growth_and_shrink),
        cmocka_unit_test(test_adopt_headroom),
        cmocka_unit_test(test_chunk_slices_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
