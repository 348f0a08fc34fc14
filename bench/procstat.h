/*
 * procstat.h - a process's CPU time and resident memory from /proc (Linux).
 *
 * Used for the broker (--broker-pid): CPU seconds are the figure that stays
 * comparable when the load generator shares the machine. CPU times have the
 * kernel's tick resolution (10 ms with the usual USER_HZ of 100).
 */
#ifndef WSB_BENCH_PROCSTAT_H
#define WSB_BENCH_PROCSTAT_H

#include <stdint.h>

typedef struct {
    double user_s;    /* CPU seconds in user mode, all threads */
    double system_s;  /* CPU seconds in the kernel on its behalf */
    uint64_t rss_kib; /* resident set size */
    uint32_t threads;
} procstat_t;

/* Reads /proc/PID/stat and /proc/PID/statm. 0, or -1 when the process is gone
 * or the files cannot be parsed (errno from the open). */
int procstat_read(int pid, procstat_t *out);

/* This process's CPU seconds (user + system, all threads) so far. */
double procstat_self_cpu_s(void);

/* Parses the text of /proc/PID/stat (exposed for the unit test): the fields
 * after the command name, which may itself contain spaces and ')'. */
int procstat_parse_stat(const char *text, double ticks_per_s, procstat_t *out);

#endif
