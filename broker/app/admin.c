/* admin.c - runs an admin API query (ingress/admin_api.h) on every worker's
 * own thread and hands the parts back to the worker that took the request:
 * each worker owns its connections, so none reads another's.
 *
 * Each worker has a mailbox (worker.h: admin_async, admin_lock, a list of
 * messages). A job carries one message per worker and one for the return;
 * the last worker to answer posts the return to the job's origin, which
 * merges (admin_api_finish) and frees the job. At most ADMIN_JOBS_MAX jobs
 * are in flight in the process; a worker whose mailbox closed (shutdown)
 * counts as answered with nothing. */
#include "app/broker.h"
#include "app/worker.h"
#include "ingress/admin_api.h"
#include "shared/util.h"

#include <stdatomic.h>
#include <stdlib.h>

#define ADMIN_JOBS_MAX 32

typedef struct admin_job_s admin_job_t;

typedef struct admin_msg_s {
    struct admin_msg_s *next;
    admin_job_t *job;
    bool done; /* the return to the origin */
} admin_msg_t;

struct admin_job_s {
    admin_query_t q;
    admin_wait_t *wait;
    worker_t *origin;
    unsigned n;
    _Atomic unsigned left; /* workers not done yet */
    json_t **parts;        /* [n] */
    admin_msg_t *msgs;     /* [n + 1]: one per worker, then the return */
};

static _Atomic unsigned jobs_in_flight;

static void job_free(admin_job_t *job)
{
    for (unsigned i = 0; i < job->n; i++) {
        json_decref(job->parts[i]);
    }
    free(job->parts);
    free(job->msgs);
    free(job);
    atomic_fetch_sub(&jobs_in_flight, 1);
}

static void worker_done(admin_job_t *job);

/* Queues `m` for `w`'s thread; false when its mailbox is closed. */
static bool post(worker_t *w, admin_msg_t *m)
{
    pthread_mutex_lock(&w->admin_lock);
    bool open = !w->admin_closed;
    if (open) {
        m->next = NULL;
        if (w->admin_tail != NULL) {
            w->admin_tail->next = m;
        } else {
            w->admin_head = m;
        }
        w->admin_tail = m;
        uv_async_send(&w->admin_async);
    }
    pthread_mutex_unlock(&w->admin_lock);
    return open;
}

static void post_work(worker_t *w, admin_msg_t *m)
{
    if (!post(w, m)) {
        worker_done(m->job); /* shutting down: its part stays NULL */
    }
}

/* One worker's part is in (any thread). The last sends the job home. */
static void worker_done(admin_job_t *job)
{
    if (atomic_fetch_sub(&job->left, 1) != 1) {
        return;
    }
    if (!post(job->origin, &job->msgs[job->n])) {
        /* The origin is gone (shutdown), and with it the connection. */
        admin_api_detach(job->wait);
        admin_api_finish(job->wait, &job->q, job->parts, job->n);
        job_free(job);
    }
}

static void run(worker_t *w, admin_msg_t *m)
{
    admin_job_t *job = m->job;
    if (m->done) {
        admin_api_finish(job->wait, &job->q, job->parts, job->n);
        job_free(job);
        return;
    }
    job->parts[w->index] = admin_api_part(&w->ingress, &w->net, &job->q);
    worker_done(job);
}

static void on_admin(uv_async_t *a)
{
    worker_t *w = a->data;
    pthread_mutex_lock(&w->admin_lock);
    admin_msg_t *m = w->admin_head;
    w->admin_head = w->admin_tail = NULL;
    pthread_mutex_unlock(&w->admin_lock);
    while (m != NULL) {
        admin_msg_t *next = m->next; /* run() may free the job holding m */
        run(w, m);
        m = next;
    }
}

bool worker_admin(ingress_ctx_t *ctx, const admin_query_t *q, admin_wait_t *wait)
{
    worker_t *w = ctx->owner;
    broker_t *b = w->env->process;
    if (w->net.shutting_down || atomic_fetch_add(&jobs_in_flight, 1) >= ADMIN_JOBS_MAX) {
        if (!w->net.shutting_down) {
            atomic_fetch_sub(&jobs_in_flight, 1);
        }
        return false;
    }
    admin_job_t *job = xcalloc(1, sizeof *job);
    job->q = *q;
    job->wait = wait;
    job->origin = w;
    job->n = b->nworkers;
    atomic_init(&job->left, b->nworkers);
    job->parts = xcalloc(b->nworkers, sizeof *job->parts);
    job->msgs = xcalloc(b->nworkers + 1, sizeof *job->msgs);
    for (unsigned i = 0; i <= b->nworkers; i++) {
        job->msgs[i].job = job;
        job->msgs[i].done = i == b->nworkers;
    }
    for (unsigned i = 0; i < b->nworkers; i++) {
        post_work(b->workers[i], &job->msgs[i]);
    }
    return true;
}

void admin_worker_init(worker_t *w)
{
    pthread_mutex_init(&w->admin_lock, NULL);
    uv_async_init(&w->loop, &w->admin_async, on_admin);
    w->admin_async.data = w;
}

void admin_worker_close(worker_t *w, uv_close_cb cb)
{
    pthread_mutex_lock(&w->admin_lock);
    w->admin_closed = true;
    pthread_mutex_unlock(&w->admin_lock);
    uv_close((uv_handle_t *)&w->admin_async, cb);
}

void admin_worker_free(worker_t *w)
{
    if (w->admin_async.loop == NULL) {
        return; /* never opened */
    }
    /* What is still queued: this worker's part is nothing now, and a
     * return waiting here has nobody to answer. */
    admin_msg_t *m = w->admin_head;
    w->admin_head = w->admin_tail = NULL;
    while (m != NULL) {
        admin_msg_t *next = m->next;
        if (m->done) {
            admin_api_detach(m->job->wait);
            admin_api_finish(m->job->wait, &m->job->q, m->job->parts, m->job->n);
            job_free(m->job);
        } else {
            worker_done(m->job);
        }
        m = next;
    }
    pthread_mutex_destroy(&w->admin_lock);
}
