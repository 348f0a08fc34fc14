/*
 * guard_page.h - test helper for tests/clients: copies bytes so that they end
 * right before a PROT_NONE page, so a parser that reads one byte past its
 * input faults at once instead of reading garbage (picohttpparser's trick).
 * Define _DEFAULT_SOURCE before any system header (MAP_ANONYMOUS).
 */
#ifndef WSB_TEST_GUARD_PAGE_H
#define WSB_TEST_GUARD_PAGE_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    void *map;
    size_t map_len;
    unsigned char *data; /* data[len - 1] is the last accessible byte */
} guard_page_t;

/* Returns the copy; aborts the test binary when mmap fails (no memory). */
static inline unsigned char *guard_page_copy(guard_page_t *g, const void *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page + 1;
    g->map_len = pages * page;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED) {
        abort();
    }
    unsigned char *guard = (unsigned char *)g->map + (pages - 1) * page;
    if (mprotect(guard, page, PROT_NONE) != 0) {
        abort();
    }
    g->data = guard - len;
    if (len > 0) {
        memcpy(g->data, src, len);
    }
    return g->data;
}

static inline void guard_page_free(guard_page_t *g)
{
    (void)munmap(g->map, g->map_len);
    g->map = NULL;
}

#endif
