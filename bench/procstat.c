/* procstat.c - /proc/PID/stat and statm (see procstat.h). */
#include "procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    (void)fclose(f);
    buf[n] = '\0';
    return n > 0 ? 0 : -1;
}

int procstat_parse_stat(const char *text, double ticks_per_s, procstat_t *out)
{
    /* "pid (comm) state ppid ..." - comm may hold anything, so parse from the
     * last ')'. Field 3 (state) is then the first token. */
    const char *p = strrchr(text, ')');
    if (p == NULL) {
        return -1;
    }
    p++;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    long nthreads = 0;
    int field = 3;
    while (*p != '\0' && field <= 20) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        char *end = NULL;
        if (field == 14) {
            utime = strtoull(p, &end, 10);
        } else if (field == 15) {
            stime = strtoull(p, &end, 10);
        } else if (field == 20) {
            nthreads = strtol(p, &end, 10);
        }
        p += strcspn(p, " ");
        field++;
    }
    if (field <= 20) {
        return -1;
    }
    out->user_s = (double)utime / ticks_per_s;
    out->system_s = (double)stime / ticks_per_s;
    out->threads = nthreads > 0 ? (uint32_t)nthreads : 0;
    return 0;
}

int procstat_read(int pid, procstat_t *out)
{
    char path[64];
    char buf[1024];
    memset(out, 0, sizeof(*out));
    (void)snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_file(path, buf, sizeof(buf)) != 0) {
        return -1;
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (procstat_parse_stat(buf, hz > 0 ? (double)hz : 100.0, out) != 0) {
        return -1;
    }
    (void)snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    if (read_file(path, buf, sizeof(buf)) != 0) {
        return -1;
    }
    unsigned long long size = 0;
    unsigned long long resident = 0;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) {
        return -1;
    }
    long page = sysconf(_SC_PAGESIZE);
    out->rss_kib = resident * (unsigned long long)(page > 0 ? page : 4096) / 1024;
    return 0;
}

double procstat_self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}
