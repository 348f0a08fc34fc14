/* static_files.c - files below the web root, refusing every way out of it, from a bounded
 * per-worker cache filled on the threadpool (see static_files.h). */
#define _GNU_SOURCE 1 /* O_PATH, syscall() for openat2 */
#include "ingress/static_files.h"

#include "ingress/ingress.h"
#include "net/conn.h"
#include "shared/frame_buf.h"
#include "shared/util.h"
#include "wsb/http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".htm", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".ico", "image/x-icon"},
    {".webp", "image/webp"},
    {".txt", "text/plain; charset=utf-8"},
    {".md", "text/markdown; charset=utf-8"},
    {".wasm", "application/wasm"},
    {".woff2", "font/woff2"},
    {".ts", "text/plain; charset=utf-8"},
};

const char *static_content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot != NULL && (slash == NULL || dot > slash)) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (strcasecmp(dot, types[i].ext) == 0) {
                return types[i].type;
            }
        }
    }
    return "application/octet-stream";
}

static void plain(conn_t *c, int status, const char *text, bool keep_alive)
{
    conn_http_respond(c, status, "text/plain; charset=utf-8", text, strlen(text), keep_alive, NULL);
}

/* True when every segment of the decoded absolute path is a plain name: no
 * ".", "..", hidden names (".git", ".env") or backslashes. */
static bool safe_path(const char *path)
{
    if (path[0] != '/') {
        return false;
    }
    const char *seg = path + 1;
    while (*seg != '\0') {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n > 0 && seg[0] == '.') {
            return false;
        }
        if (memchr(seg, '\\', n) != NULL) {
            return false;
        }
        if (end == NULL) {
            break;
        }
        seg = end + 1;
    }
    return true;
}

typedef struct static_read_s static_read_t;

/* One cached file: the identity it was read with and its contents. */
typedef struct static_entry_s {
    struct static_entry_s *prev, *next; /* LRU order, most recently used first */
    frame_buf_t *body;                  /* the cache's reference */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    char path[]; /* the key: root + decoded request path (+ index.html) */
} static_entry_t;

struct static_cache_s {
    static_entry_t *head, *tail;
    static_read_t *reads; /* in progress on the threadpool */
    size_t bytes;         /* sum of the cached file sizes */
    size_t count;
};

/* A connection waiting for a file read: c->static_load. Freed with its read. */
struct static_load_s {
    conn_t *conn; /* NULL once the connection closed (static_cancel) */
    struct static_load_s *next;
    bool head, keep_alive;
};

/* A file read on the threadpool, shared by every connection that asks for
 * the same path meanwhile (ten requests for a new 15 MiB file read it once
 * and share one buffer). Freed by its after-work callback. */
struct static_read_s {
    uv_work_t work;
    ingress_ctx_t *ctx;
    struct static_read_s *next; /* the cache's reads in progress */
    static_load_t *waiters;
    const char *root;
    int status; /* 200, or the error status to answer */
    frame_buf_t *body;
    struct stat st;
    char full[PATH_MAX];
};

static bool below_root(const char *root, const char *resolved)
{
    size_t n = strlen(root);
    return strncmp(resolved, root, n) == 0 && (resolved[n] == '/' || resolved[n] == '\0');
}

static bool same_file(const static_entry_t *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static void entry_unlink(static_cache_t *cache, static_entry_t *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        cache->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        cache->tail = e->prev;
    }
    e->prev = e->next = NULL;
}

static void entry_push_front(static_cache_t *cache, static_entry_t *e)
{
    e->prev = NULL;
    e->next = cache->head;
    if (cache->head != NULL) {
        cache->head->prev = e;
    } else {
        cache->tail = e;
    }
    cache->head = e;
}

/* Frees an entry already off the list. */
static void entry_free(static_cache_t *cache, static_entry_t *e)
{
    cache->bytes -= (size_t)e->size;
    cache->count--;
    frame_buf_unref(e->body); /* queued responses keep their own references */
    free(e);
}

static void entry_drop(static_cache_t *cache, static_entry_t *e)
{
    entry_unlink(cache, e);
    entry_free(cache, e);
}

/* Drops the least recently used entry (the list is not empty). */
static void evict_tail(static_cache_t *cache)
{
    static_entry_t *e = cache->tail;
    cache->tail = e->prev;
    if (cache->tail != NULL) {
        cache->tail->next = NULL;
    } else {
        cache->head = NULL;
    }
    entry_free(cache, e);
}

static static_entry_t *cache_find(static_cache_t *cache, const char *path)
{
    for (static_entry_t *e = cache != NULL ? cache->head : NULL; e != NULL; e = e->next) {
        if (strcmp(e->path, path) == 0) {
            return e;
        }
    }
    return NULL;
}

/* The worker's cache, created on first use. */
static static_cache_t *cache_of(ingress_ctx_t *s)
{
    if (s->static_cache == NULL) {
        s->static_cache = xcalloc(1, sizeof(*s->static_cache));
    }
    return s->static_cache;
}

/* Caches `body` (a reference is taken) for `path`, replacing an older
 * version and evicting the least recently used entries to stay in bounds. */
static void cache_put(ingress_ctx_t *s, const char *path, const struct stat *st, frame_buf_t *body)
{
    static_cache_t *cache = cache_of(s);
    static_entry_t *old = cache_find(cache, path);
    if (old != NULL) {
        entry_drop(cache, old);
    }
    size_t size = (size_t)st->st_size;
    while (cache->tail != NULL &&
           (cache->bytes + size > STATIC_CACHE_BYTES || cache->count >= STATIC_CACHE_ENTRIES)) {
        evict_tail(cache);
    }
    size_t plen = strlen(path);
    static_entry_t *e = xmalloc(sizeof(*e) + plen + 1);
    memcpy(e->path, path, plen + 1);
    e->body = frame_buf_ref(body);
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->ctime = st->st_ctim;
    entry_push_front(cache, e);
    cache->bytes += size;
    cache->count++;
}

void static_cache_free(static_cache_t *cache)
{
    if (cache == NULL) {
        return;
    }
    while (cache->tail != NULL) {
        evict_tail(cache);
    }
    free(cache);
}

/* Queues the 200 response: a head of its own and a reference to `body`. */
static void respond_file(conn_t *c, const char *path, size_t size, frame_buf_t *body, bool head,
                         bool keep_alive)
{
    char head_buf[512];
    int hl = wsb_http_write_head(head_buf, sizeof(head_buf), 200, static_content_type(path), size,
                                 keep_alive, "Cache-Control: no-cache\r\n");
    conn_http_respond_shared(c, frame_buf_copy(head_buf, (size_t)hl),
                             head || size == 0 ? NULL : frame_buf_ref(body), keep_alive);
}

/* ---- opening, on the threadpool ---------------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define WSB_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WSB_TSAN 1
#endif
#endif
#ifndef WSB_TSAN
#define WSB_TSAN 0
#endif

#ifdef SYS_openat2
static int openat2_rel(int dirfd, const char *rel, uint64_t resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC;
    how.resolve = resolve;
    int fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
#if WSB_TSAN
    /* ThreadSanitizer intercepts open() but not syscall(2): it does not see
     * this descriptor being made, so it reports the first use of a reused
     * number as a race with the thread that held that number before. Reopen
     * the very file through its /proc/self/fd link (nothing is resolved
     * again) with open(), which it sees, and close the first with a raw
     * close, which it does not. Sanitizer builds only. */
    if (fd >= 0) {
        char link[32];
        (void)snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        int seen = open(link, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        int saved = errno;
        (void)syscall(SYS_close, fd);
        errno = saved;
        fd = seen;
    }
#endif
    return fd;
}
#endif

/* Before openat2 (Linux < 5.6): resolve, check, then open what was checked
 * refusing a symlink swapped in as its last component. */
static int open_checked(const char *root, const char *full)
{
    char resolved[PATH_MAX];
    if (realpath(full, resolved) == NULL) {
        return -1;
    }
    if (!below_root(root, resolved)) {
        errno = EACCES;
        return -1;
    }
    return open(resolved, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
}

/* Opens `full` (root + "/" + a relative path) so that no step of its
 * resolution leaves the root. Returns the fd, or -1 with errno set. */
static int open_beneath(const char *root, const char *full)
{
#ifdef SYS_openat2
    int dirfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        return -1;
    }
    const char *rel = full + strlen(root) + 1;
    int fd = openat2_rel(dirfd, rel, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
    if (fd < 0 && errno == EXDEV) {
        /* An escape, or an absolute symlink (RESOLVE_BENEATH refuses those
         * even when they point back inside). Resolve it; if the result is
         * below the root, open exactly that path with no symlink allowed on
         * the way, so a link swapped in after the check fails the open. */
        char resolved[PATH_MAX];
        if (realpath(full, resolved) == NULL || !below_root(root, resolved) ||
            resolved[strlen(root)] != '/') {
            errno = EACCES;
        } else {
            fd = openat2_rel(dirfd, resolved + strlen(root) + 1,
                             RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
        }
    }
    int saved = errno;
    (void)close(dirfd);
    errno = saved;
    if (fd >= 0 || errno != ENOSYS) {
        return fd;
    }
#endif
    return open_checked(root, full);
}

static void load_work_cb(uv_work_t *w)
{
    static_read_t *ld = w->data;
    int fd = open_beneath(ld->root, ld->full);
    if (fd < 0) {
        ld->status = errno == ENOENT || errno == ENOTDIR ? 404 : 403;
        return;
    }
    if (fstat(fd, &ld->st) != 0 || !S_ISREG(ld->st.st_mode)) {
        ld->status = 404;
    } else if ((uint64_t)ld->st.st_size > STATIC_MAX_FILE_SIZE) {
        ld->status = 413;
    } else {
        size_t size = (size_t)ld->st.st_size;
        frame_buf_t *fb = frame_buf_new(size);
        size_t got = 0;
        while (got < size) {
            ssize_t n = read(fd, fb->bytes + got, size - got);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            got += (size_t)n;
        }
        if (got == size) {
            ld->body = fb;
            ld->status = 200;
        } else {
            frame_buf_unref(fb); /* its refcount is this thread's alone until handed over */
            ld->status = 500;
        }
    }
    (void)close(fd);
}

/* Answers one waiting connection with the read's result. */
static void answer(conn_t *c, const static_read_t *rd, const static_load_t *w)
{
    c->head_request = w->head; /* conn_http_respond leaves a HEAD's body out */
    switch (rd->status) {
    case 200:
        respond_file(c, rd->full, (size_t)rd->st.st_size, rd->body, w->head, w->keep_alive);
        break;
    case 404:
        plain(c, 404, "not found\n", w->keep_alive);
        break;
    case 413:
        plain(c, 403, "file too large to serve\n", w->keep_alive);
        break;
    case 500:
        plain(c, 500, "read error\n", false);
        break;
    default:
        plain(c, 403, "forbidden\n", w->keep_alive);
        break;
    }
    c->head_request = false;
}

static void load_done_cb(uv_work_t *work, int status)
{
    static_read_t *rd = work->data;
    static_cache_t *cache = rd->ctx->static_cache;
    for (static_read_t **pp = &cache->reads; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == rd) {
            *pp = rd->next;
            break;
        }
    }
    if (status != 0 && rd->status == 200) {
        rd->status = 500;
    }
    if (rd->status == 200) {
        cache_put(rd->ctx, rd->full, &rd->st, rd->body);
    }
    while (rd->waiters != NULL) {
        static_load_t *w = rd->waiters;
        rd->waiters = w->next;
        conn_t *c = w->conn;
        if (c != NULL) {
            c->static_load = NULL;
            answer(c, rd, w);
        }
        free(w);
        if (c != NULL) {
            conn_http_resume(c); /* may ask for this file again: it is cached now */
        }
    }
    if (rd->body != NULL) {
        frame_buf_unref(rd->body);
    }
    free(rd);
}

void static_cancel(conn_t *c)
{
    if (c->static_load != NULL) {
        c->static_load->conn = NULL;
        c->static_load = NULL;
    }
}

void static_serve(conn_t *c, const char *root, wsb_str_t url, bool head, bool keep_alive)
{
    char path[1024];
    int plen = wsb_http_decode_path(url, path, sizeof(path));
    if (plen < 0 || memchr(path, '\0', (size_t)plen) != NULL) {
        plain(c, 400, "bad path\n", keep_alive);
        return;
    }
    path[plen] = '\0';
    if (!safe_path(path)) {
        plain(c, 403, "forbidden\n", keep_alive);
        return;
    }
    char full[PATH_MAX];
    const char *index = (plen > 0 && path[plen - 1] == '/') ? "index.html" : "";
    if (snprintf(full, sizeof(full), "%s%s%s", root, path, index) >= (int)sizeof(full)) {
        plain(c, 414, "path too long\n", keep_alive);
        return;
    }
    /* A directory without a trailing slash is served its index too. stat()
     * here is a metadata lookup; the contents are read off the loop. */
    struct stat st;
    size_t flen = strlen(full);
    int sr = stat(full, &st);
    if (sr == 0 && S_ISDIR(st.st_mode)) {
        if (snprintf(full + flen, sizeof(full) - flen, "/index.html") >=
            (int)(sizeof(full) - flen)) {
            plain(c, 414, "path too long\n", keep_alive);
            return;
        }
        sr = stat(full, &st);
    }
    if (sr != 0 && errno == ENOENT) {
        plain(c, 404, "not found\n", keep_alive);
        return;
    }
    /* Only what was read through open_beneath() is ever cached, and an entry
     * is used only while the path still names that very file (a link changed
     * to point elsewhere names another inode and is opened afresh). */
    static_cache_t *cache = ingress_ctx(c)->static_cache;
    static_entry_t *e = sr == 0 ? cache_find(cache, full) : NULL;
    if (e != NULL && same_file(e, &st)) {
        entry_unlink(cache, e);
        entry_push_front(cache, e);
        respond_file(c, full, (size_t)e->size, e->body, head, keep_alive);
        return;
    }
    static_read_t *rd = NULL;
    for (rd = cache != NULL ? cache->reads : NULL; rd != NULL; rd = rd->next) {
        if (strcmp(rd->full, full) == 0) {
            break;
        }
    }
    if (rd == NULL) {
        rd = xcalloc(1, sizeof(*rd));
        rd->work.data = rd;
        rd->ctx = ingress_ctx(c);
        rd->root = root;
        memcpy(rd->full, full, strlen(full) + 1);
        if (uv_queue_work(rd->ctx->core->loop, &rd->work, load_work_cb, load_done_cb) != 0) {
            free(rd);
            plain(c, 500, "read error\n", false);
            return;
        }
        cache = cache_of(ingress_ctx(c));
        rd->next = cache->reads;
        cache->reads = rd;
    }
    static_load_t *ld = xcalloc(1, sizeof(*ld));
    ld->conn = c;
    ld->head = head;
    ld->keep_alive = keep_alive;
    ld->next = rd->waiters;
    rd->waiters = ld;
    c->static_load = ld;
    conn_http_defer(c);
}
