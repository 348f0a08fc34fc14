/*
 * report.h - wsbench's results and their three renderings: a human summary,
 * one JSON object, and one row of a Markdown table (with its header), which
 * the scenario runner stacks into the table in bench/RESULTS.md.
 */
#ifndef WSB_BENCH_REPORT_H
#define WSB_BENCH_REPORT_H

#include "hist.h"
#include "options.h"
#include "procstat.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const opts_t *o;
    uint32_t threads;
    /* connections */
    uint64_t subs_ready, pubs_ready;
    uint64_t fail_connect, fail_handshake, fail_subscribe, fail_timeout;
    uint64_t disconnects, errors, bad_payload;
    double ramp_s; /* from start to every connection ready or failed */
    /* traffic */
    uint64_t published, acked, expected, received, bytes_in;
    double publish_s;           /* run start to the last publisher finishing */
    double deliver_s;           /* run start to the last delivery */
    uint64_t churn_ops, events; /* --churn: requests acked, join/leave frames received */
    uint64_t listener_events;   /* ... by the subscribers that do not churn */
    const hist_t *latency;
    /* CPU and memory */
    double self_cpu_s; /* wsbench, all threads, during the run */
    bool broker;       /* --broker-pid given and readable */
    int broker_pid;
    procstat_t broker_start;     /* before the first connection */
    procstat_t broker_connected; /* after the ramp and --hold */
    procstat_t broker_run_start;
    procstat_t broker_run_end;
    uint64_t broker_rss_peak_kib;
} results_t;

/* Derived figures, shared by every rendering. */
typedef struct {
    uint64_t failures;
    int64_t loss; /* expected - received (--churn: join/leave frames the listeners
                   * were owed - received); negative means duplicates */
    double deliveries_per_s;
    double publish_per_s;
    double payload_bytes_per_s;
    double wire_bytes_per_s;
    double broker_cpu_s;              /* during the run */
    double broker_cpu_s_per_m;        /* broker CPU seconds per million deliveries */
    double deliveries_per_broker_cpu; /* deliveries per broker CPU-second */
    double rss_per_conn_bytes;        /* (connected - start) / ready connections */
    double self_cpu_s_per_m;          /* wsbench CPU seconds per million deliveries */
    double churn_ops_per_s;           /* --churn: join/leave events caused per second */
    double events_per_s;              /* join/leave frames received per second */
    double broker_cpu_us_per_op;      /* broker CPU microseconds per churn op */
    double broker_cpu_us_per_event;   /* ... per join/leave frame delivered */
} derived_t;

void report_derive(const results_t *r, derived_t *d);

/* True when --strict would pass: no failure, no loss, no disconnect, no error. */
bool report_clean(const results_t *r, const derived_t *d);

void report_human(FILE *f, const results_t *r);
void report_json(FILE *f, const results_t *r);
void report_row(FILE *f, const results_t *r);
void report_row_header(FILE *f);

#endif
