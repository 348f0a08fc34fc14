/*
 * static_files.h - serve files below a web root, safely.
 *
 * The decoded path must not contain "." or ".." segments or NUL, the file is
 * opened with O_NOFOLLOW | O_NONBLOCK, and the realpath of the result must
 * still lie below the web root's realpath (a symlink out of the root is
 * refused). Only regular files are served; "/" and directories map to
 * index.html inside them.
 */
#ifndef WSB_BROKER_STATIC_FILES_H
#define WSB_BROKER_STATIC_FILES_H

#include "wsb/common.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct conn_s conn_t;

#define STATIC_MAX_FILE_SIZE ((uint64_t)16 * 1024 * 1024)

/* Serves `url` (the raw request target) from `root` (a realpath) on `c`.
 * `head` sends the headers only. */
void static_serve(conn_t *c, const char *root, wsb_str_t url, bool head, bool keep_alive);

/* The Content-Type for a file name by its extension. */
const char *static_content_type(const char *path);

#endif
