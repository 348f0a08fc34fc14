/*
 * fuzz_resp.c - fuzzer for the RESP2 request parser.
 *
 * The input is parsed as a pipelined stream twice: whole, and fed in chunks
 * whose sizes come from the first byte (the broker's way: unconsumed bytes
 * are kept and more appended). Both must yield the same commands and the
 * same final result; every view must lie inside the input and respect the
 * bounds. The sanitizers catch any over-read.
 */
#include "wsb/common.h"
#include "wsb/resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 16

static const wsb_resp_limits_t lim = {
    .max_args = MAX_ARGS, .max_bulk = 512, .max_inline = 256, .max_request = 2048};

/* FNV-1a over every command's arguments, so two runs can be compared. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ULL;
    }
    return h;
}

static uint64_t run(const uint8_t *data, size_t size, size_t chunk, int *final_rc)
{
    uint8_t *buf = malloc(size + 1);
    size_t have = 0, fed = 0;
    uint64_t h = 1469598103934665603ULL;
    int rc = WSB_EAGAIN;
    while (fed < size) {
        size_t n = chunk < size - fed ? chunk : size - fed;
        memcpy(buf + have, data + fed, n);
        have += n;
        fed += n;
        for (;;) {
            wsb_str_t argv[MAX_ARGS];
            size_t argc = 0, used = 0;
            const char *why = NULL;
            rc = wsb_resp_parse((const char *)buf, have, &lim, argv, &argc, &used, &why);
            if (rc != 0) {
                if (rc != WSB_EAGAIN && why == NULL) {
                    abort();
                }
                break;
            }
            if (used == 0 || used > have || argc > MAX_ARGS) {
                abort();
            }
            for (size_t i = 0; i < argc; i++) {
                const uint8_t *p = (const uint8_t *)argv[i].p;
                if (p < buf || p + argv[i].len > buf + used || argv[i].len > lim.max_bulk) {
                    abort();
                }
                h = mix(h, &argv[i].len, sizeof(argv[i].len));
                h = mix(h, p, argv[i].len);
            }
            h = mix(h, "|", 1);
            memmove(buf, buf + used, have - used);
            have -= used;
        }
        if (rc != 0 && rc != WSB_EAGAIN) {
            break;
        }
    }
    free(buf);
    *final_rc = rc;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t chunk = (size_t)(data[0] % 17) + 1;
    int rc_whole = 0, rc_chunks = 0;
    uint64_t a = run(data + 1, size - 1, size, &rc_whole);
    uint64_t b = run(data + 1, size - 1, chunk, &rc_chunks);
    /* Bounds are checked on what has arrived, so a chunked run may stop on a
     * bound or protocol error at the same point; the commands before it agree. */
    if (rc_whole == rc_chunks && a != b) {
        abort();
    }
    return 0;
}
