/* static_files.c - files below the web root, refusing every way out of it (see static_files.h). */
#include "static_files.h"

#include "conn.h"
#include "frame_buf.h"
#include "wsb/http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

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

static bool below_root(const char *root, const char *resolved)
{
    size_t n = strlen(root);
    return strncmp(resolved, root, n) == 0 && (resolved[n] == '/' || resolved[n] == '\0');
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
    /* A directory without a trailing slash is served its index too. */
    struct stat st;
    size_t flen = strlen(full);
    if (stat(full, &st) == 0 && S_ISDIR(st.st_mode) &&
        snprintf(full + flen, sizeof(full) - flen, "/index.html") >= (int)(sizeof(full) - flen)) {
        plain(c, 414, "path too long\n", keep_alive);
        return;
    }
    char resolved[PATH_MAX];
    if (realpath(full, resolved) == NULL) {
        plain(c, 404, "not found\n", keep_alive);
        return;
    }
    if (!below_root(root, resolved)) {
        plain(c, 403, "forbidden\n", keep_alive);
        return;
    }
    /* Open what was checked, refusing a symlink swapped in meanwhile. */
    int fd = open(resolved, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        plain(c, errno == ENOENT ? 404 : 403, errno == ENOENT ? "not found\n" : "forbidden\n",
              keep_alive);
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        (void)close(fd);
        plain(c, 404, "not found\n", keep_alive);
        return;
    }
    if ((uint64_t)st.st_size > STATIC_MAX_FILE_SIZE) {
        (void)close(fd);
        plain(c, 403, "file too large to serve\n", keep_alive);
        return;
    }
    size_t size = (size_t)st.st_size;
    char head_buf[512];
    int hl = wsb_http_write_head(head_buf, sizeof(head_buf), 200, static_content_type(resolved),
                                 size, keep_alive, "Cache-Control: no-cache\r\n");
    size_t body = head ? 0 : size;
    frame_buf_t *fb = frame_buf_new((size_t)hl + body);
    memcpy(fb->bytes, head_buf, (size_t)hl);
    /* Web roots are small local files (the demo page); a blocking read here is
     * bounded by STATIC_MAX_FILE_SIZE and happens once per request. */
    size_t got = 0;
    while (got < body) {
        ssize_t n = read(fd, fb->bytes + hl + got, body - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    (void)close(fd);
    if (got < body) {
        frame_buf_unref(fb);
        plain(c, 500, "read error\n", false);
        return;
    }
    conn_http_respond_buf(c, fb, keep_alive);
}
