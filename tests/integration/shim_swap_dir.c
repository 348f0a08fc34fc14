/* shim_swap_dir.c - an LD_PRELOAD library for the broker under test that makes
 * the "check, then open" race deterministic: it swaps a directory below the
 * web root for a symlink to somewhere else exactly once, at the latest moment
 * a check by path could have been made before the file is opened.
 *
 *   SHIM_SWAP_DIR  absolute, canonical path of the directory to swap
 *   SHIM_SWAP_TO   what the symlink put in its place points to
 *
 * The swap (rename SHIM_SWAP_DIR to SHIM_SWAP_DIR.orig, then symlink
 * SHIM_SWAP_TO as SHIM_SWAP_DIR) happens on the first of:
 *   - realpath() returning a path at or below SHIM_SWAP_DIR: right after it,
 *     so whatever the caller checked on the result is stale when it opens;
 *   - an open (open, open64, openat, openat64, or the openat2 system call
 *     through syscall()) of a path at or below SHIM_SWAP_DIR: right before it,
 *     so every check made before the open saw the real directory.
 * Any thread may trigger it (the broker reads files on the libuv threadpool);
 * an atomic flag makes it happen once per process. Without SHIM_SWAP_DIR the
 * shim only forwards. A failed swap is reported on stderr; the test sees the
 * directory was not replaced and fails. Built without sanitizers: it is
 * preloaded ahead of the broker's runtime. */
#undef _FORTIFY_SOURCE /* the shim defines open() itself */
#define _GNU_SOURCE 1  /* RTLD_NEXT, open64, syscall() */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_flag swapped = ATOMIC_FLAG_INIT;

/* dlsym's object pointer as a function pointer, without the cast ISO C
 * leaves undefined. */
static void next_symbol(const char *name, void *fn_ptr, size_t size)
{
    void *sym = dlsym(RTLD_NEXT, name);
    if (sym == NULL) {
        static const char msg[] = "shim_swap_dir: a libc symbol is missing\n";
        (void)write(2, msg, sizeof(msg) - 1);
        abort();
    }
    memcpy(fn_ptr, &sym, size);
}

#define NEXT(fn, name)                                                                             \
    do {                                                                                           \
        if ((fn) == NULL) {                                                                        \
            next_symbol(name, &(fn), sizeof(fn));                                                  \
        }                                                                                          \
    } while (0)

static void report(const char *what)
{
    char msg[PATH_MAX + 128];
    int n = snprintf(msg, sizeof(msg), "shim_swap_dir: %s failed\n", what);
    if (n > 0) {
        (void)write(2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    }
}

/* True when `path` is SHIM_SWAP_DIR or names something below it. */
static bool in_swap_dir(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Swaps the directory if `path` (absolute, or relative to `dirfd`) is at or
 * below it and no swap happened yet. */
static void maybe_swap(int dirfd, const char *path)
{
    const char *dir = getenv("SHIM_SWAP_DIR");
    const char *to = getenv("SHIM_SWAP_TO");
    if (dir == NULL || to == NULL || path == NULL || dir[0] != '/') {
        return;
    }
    char full[PATH_MAX * 2];
    if (path[0] == '/') {
        if (!in_swap_dir(dir, path)) {
            return;
        }
    } else {
        char base[PATH_MAX];
        ssize_t n;
        if (dirfd == AT_FDCWD) {
            n = getcwd(base, sizeof(base)) != NULL ? (ssize_t)strlen(base) : -1;
        } else {
            char link[64];
            (void)snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
            n = readlink(link, base, sizeof(base) - 1);
        }
        if (n < 0) {
            return;
        }
        base[n] = '\0';
        (void)snprintf(full, sizeof(full), "%s/%s", base, path);
        if (!in_swap_dir(dir, full)) {
            return;
        }
    }
    if (atomic_flag_test_and_set(&swapped)) {
        return;
    }
    char moved[PATH_MAX];
    (void)snprintf(moved, sizeof(moved), "%s.orig", dir);
    if (rename(dir, moved) != 0) {
        report("rename");
    } else if (symlink(to, dir) != 0) {
        report("symlink");
    }
}

char *realpath(const char *restrict path, char *restrict resolved)
{
    static char *(*next)(const char *restrict, char *restrict);
    NEXT(next, "realpath");
    char *r = next(path, resolved);
    if (r != NULL) {
        maybe_swap(AT_FDCWD, r);
    }
    return r;
}

/* The mode argument exists only with O_CREAT or O_TMPFILE. */
static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    static int (*next)(int, const char *, int, ...);
    NEXT(next, "openat64");
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    maybe_swap(dirfd, path);
    return next(dirfd, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return openat64(AT_FDCWD, path, flags, mode);
}

/* On 64-bit Linux the plain names are the same calls (O_LARGEFILE is implied);
 * a build without 64-bit file offsets links against these. */
int open(const char *path, int flags, ...) __attribute__((alias("open64")));
int openat(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat64")));

/* Every system call made through syscall() is forwarded with six arguments
 * (the most any takes; the kernel ignores the rest). openat2's arguments are
 * read with the types its caller passed: (int dirfd, const char *path, ...). */
long syscall(long number, ...)
{
    static long (*next)(long, ...);
    NEXT(next, "syscall");
    va_list ap;
    va_start(ap, number);
#ifdef SYS_openat2
    if (number == SYS_openat2) {
        va_list typed;
        va_copy(typed, ap);
        int dirfd = va_arg(typed, int);
        const char *path = va_arg(typed, const char *);
        va_end(typed);
        maybe_swap(dirfd, path);
    }
#endif
    long a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = va_arg(ap, long);
    }
    va_end(ap);
    return next(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
