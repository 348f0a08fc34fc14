/*
 * probe.h - wsbench --probe: sequential request/reply round trips (wsbroker's
 * WebSocket and HTTP request, and NATS for comparison) and the time of a
 * last-value subscribe over many topics, on blocking connections in the main
 * thread (see probe.c).
 */
#ifndef WSB_BENCH_PROBE_H
#define WSB_BENCH_PROBE_H

#include "hist.h"
#include "report.h"
#include "wsbench.h"

/* Runs b->o.probe against b->addr and fills `r` (published = requests or
 * subscribes, received = replies or replayed messages) and `h` (round trip or
 * subscribe time, ns). 0 when the probe ran (errors are counted in r), 1 when
 * it could not start (nothing connected or subscribed). */
int probe_run(const bench_t *b, results_t *r, hist_t *h);

#endif
