/*
 * guard.h - test helper: place bytes right before an inaccessible page, so a
 * parser that reads one byte past its input faults at once (picohttpparser's
 * trick) instead of silently reading garbage.
 */
#ifndef WSB_TEST_GUARD_H
#define WSB_TEST_GUARD_H

/* MAP_ANONYMOUS is not POSIX: ask glibc for it before any system header.
 * Include this header first. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif

#include <assert.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    void *map;
    size_t map_len;
    unsigned char *data; /* data[len - 1] is the last accessible byte */
} guard_buf_t;

/* Copies `len` bytes of `src` so that they end exactly at a PROT_NONE page. */
static inline unsigned char *guard_copy(guard_buf_t *g, const void *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page + 1;
    g->map_len = pages * page;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert(g->map != MAP_FAILED);
    unsigned char *guard_page = (unsigned char *)g->map + (pages - 1) * page;
    int rc = mprotect(guard_page, page, PROT_NONE);
    assert(rc == 0);
    (void)rc;
    g->data = guard_page - len;
    if (len > 0) {
        memcpy(g->data, src, len);
    }
    return g->data;
}

static inline void guard_free(guard_buf_t *g)
{
    munmap(g->map, g->map_len);
    g->map = NULL;
}

#endif
