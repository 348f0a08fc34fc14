/*
 * static_files.h - serve files below a web root, safely, from a bounded cache.
 *
 * Safety: the decoded path must not contain "." or ".." segments, hidden
 * names, backslashes or NUL. The file is opened relative to a descriptor of
 * the web root with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so no
 * component of the path (a symlinked directory included) may lead out of the
 * root, and no check-then-open race exists. An absolute symlink that points
 * back inside the root is resolved with realpath() and the result opened with
 * RESOLVE_NO_SYMLINKS (a link swapped in meanwhile fails the open). Kernels
 * without openat2 (before 5.6) get the realpath() check and O_NOFOLLOW. Only
 * regular files are served; "/" and directories map to index.html inside them.
 *
 * Memory and the loop: each worker keeps a cache of file contents as shared
 * frame_bufs (every response queues a reference, not a copy), keyed by path
 * and checked against stat() on every request (device, inode, size, mtime,
 * ctime: a changed file is read again). The cache holds at most
 * STATIC_CACHE_BYTES and STATIC_CACHE_ENTRIES per worker, least recently used
 * first out; an entry evicted while queued lives until its last write. Files
 * are read on libuv's threadpool, never on the loop: the response is deferred
 * (the connection's later requests wait, as behind a deferred publish) until
 * the read is done. Files over STATIC_MAX_FILE_SIZE are refused with 403.
 */
#ifndef WSB_BROKER_STATIC_FILES_H
#define WSB_BROKER_STATIC_FILES_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct conn_s conn_t;
typedef struct static_cache_s static_cache_t;
typedef struct static_load_s static_load_t;

#define STATIC_MAX_FILE_SIZE ((uint64_t)16 * 1024 * 1024)
#define STATIC_CACHE_BYTES   ((size_t)32 * 1024 * 1024)
#define STATIC_CACHE_ENTRIES 256

/* Serves `url` (the raw request target) from `root` (a realpath) on `c`.
 * `head` sends the headers only. Answers at once from the cache, or starts a
 * read on the threadpool and sets c->static_load (see conn_http_defer). */
void static_serve(conn_t *c, const char *root, wsb_str_t url, bool head, bool keep_alive);

/* The connection of a pending read is closing: the read finishes unowned and
 * its result is dropped. Clears c->static_load. */
void static_cancel(conn_t *c);

/* Frees a worker's cache (NULL is fine): the references queued responses
 * hold keep their buffers alive. */
void static_cache_free(static_cache_t *cache);

/* The Content-Type for a file name by its extension. */
const char *static_content_type(const char *path);

#endif
