/* config_secret.c - secrets read from files (auth.jwt_secret_file,
 * api_keys_file), so that they do not show in `ps` (see config_keys.h). */
#include "app/config_keys.h"
#include "shared/util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_FILE_MAX ((size_t)64 * 1024)

char *config_read_secret_file(const char *key, const char *path, bool lines_are_list, char *warn,
                              size_t warnlen, char *err, size_t errlen)
{
    warn[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        (void)snprintf(err, errlen, "%s: cannot read \"%s\": %s", key, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        (void)close(fd);
        (void)snprintf(err, errlen, "%s: expected a regular file, got \"%s\"", key, path);
        return NULL;
    }
    if (st.st_size < 0 || (size_t)st.st_size > SECRET_FILE_MAX) {
        (void)close(fd);
        (void)snprintf(err, errlen, "%s: expected a file of at most %zu bytes, got \"%s\" (%lld)",
                       key, SECRET_FILE_MAX, path, (long long)st.st_size);
        return NULL;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        (void)snprintf(warn, warnlen,
                       "%s: \"%s\" is readable by group or others (mode %04o); chmod 600 it", key,
                       path, (unsigned)(st.st_mode & 07777));
    }
    char *text = xmalloc(SECRET_FILE_MAX + 1);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, text + len, SECRET_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            (void)snprintf(err, errlen, "%s: cannot read \"%s\": %s", key, path, strerror(errno));
            (void)close(fd);
            free(text);
            return NULL;
        }
        if (n == 0 || len + (size_t)n > SECRET_FILE_MAX) {
            len += (size_t)n;
            break;
        }
        len += (size_t)n;
    }
    (void)close(fd);
    if (len > SECRET_FILE_MAX) { /* it grew since fstat */
        OPENSSL_cleanse(text, SECRET_FILE_MAX + 1);
        free(text);
        (void)snprintf(err, errlen, "%s: expected a file of at most %zu bytes, got \"%s\"", key,
                       SECRET_FILE_MAX, path);
        return NULL;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
        len--;
    }
    text[len] = '\0';
    if (lines_are_list) {
        /* One entry per line: newlines become commas, blank lines go. */
        size_t out = 0;
        for (size_t i = 0; i < len; i++) {
            if (text[i] == '\n' || text[i] == '\r') {
                if (out > 0 && text[out - 1] != ',') {
                    text[out++] = ',';
                }
                continue;
            }
            text[out++] = text[i];
        }
        len = out;
        text[len] = '\0';
    }
    if (len == 0 || memchr(text, '\0', len) != NULL) {
        OPENSSL_cleanse(text, SECRET_FILE_MAX + 1);
        free(text);
        (void)snprintf(err, errlen, "%s: expected a non-empty text file, got \"%s\"", key, path);
        return NULL;
    }
    return text;
}
