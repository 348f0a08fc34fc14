/* admin.c - runs an admin API query (ingress/admin_api.h) on every worker's
 * own thread and hands the parts back to the worker that took the request:
 * each worker owns its connections, so none reads another's. In a
 * federated cluster the query also goes to the other nodes through Redis
 * (the admin bus, bridge_redis.h) and their answers are merged in.
 *
 * Each worker has a mailbox (worker.h: admin_async, admin_lock, a list of
 * messages). A job carries one message per worker and one for the return;
 * the last worker to answer posts the return to the job's origin, which
 * makes the node's body (admin_api_node_body). A local request then waits,
 * in a cluster, for the other nodes' bodies (posted to the origin's mailbox
 * by the bridge thread, found by job id) until every node known to be
 * alive answered or ADMIN_CLUSTER_TIMEOUT_MS passed, merges and answers
 * (admin_api_finish). A query from another node is run on this node's
 * workers the same way, with worker 0 as origin, and its body is sent back.
 *
 * Bounds: at most ADMIN_JOBS_MAX jobs in flight in the process (beyond, a
 * request gets 503 and a remote query no answer); at most ADMIN_NODES_MAX
 * other nodes' bodies per job. A worker whose mailbox closed (shutdown)
 * counts as answered with nothing. */
#include "app/broker.h"
#include "app/worker.h"
#include "cluster/bridge_redis.h"
#include "core/admin_ban.h"
#include "ingress/admin_api.h"
#include "shared/log.h"
#include "shared/util.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_JOBS_MAX           32
#define ADMIN_NODES_MAX          64
#define ADMIN_CLUSTER_TIMEOUT_MS 1000
#define ADMIN_NODE_FORGET_MS     60000 /* a node silent this long is not waited for */

typedef struct admin_job_s admin_job_t;

typedef enum { MSG_WORK = 0, MSG_DONE, MSG_REMOTE } msg_kind_t;

typedef struct admin_msg_s {
    struct admin_msg_s *next;
    admin_job_t *job; /* MSG_WORK, MSG_DONE */
    msg_kind_t kind;
    uint64_t job_id; /* MSG_REMOTE: the job the body is for (it may be gone) */
    json_t *body;    /* MSG_REMOTE: another node's body (owned) */
} admin_msg_t;

struct admin_job_s {
    admin_query_t q;
    admin_wait_t *wait; /* NULL: a query from another node */
    worker_t *origin;
    unsigned n;
    _Atomic unsigned left; /* workers not done yet */
    json_t **parts;        /* [n] */
    admin_msg_t *msgs;     /* [n + 1]: one per worker, then the return */
    /* A local request in a cluster (origin thread, pending list). */
    uint64_t id;
    unsigned expected; /* other nodes known alive when it started */
    bool cluster;
    bool local_done;
    json_t *bodies;    /* this node's body first, then the others' */
    uv_timer_t *timer; /* the cluster timeout; freed in its close callback */
    admin_job_t *pending_next;
    /* A query from another node: where its answer goes. */
    char reply_node[65];
    uint64_t reply_id;
};

static _Atomic unsigned jobs_in_flight;
static _Atomic uint64_t next_job_id;

/* Local requests waiting for other nodes, and the nodes heard from. */
static pthread_mutex_t cluster_lock = PTHREAD_MUTEX_INITIALIZER;
static admin_job_t *pending;
static struct {
    char name[65];
    uint64_t seen_ms;
} known[ADMIN_NODES_MAX];
static unsigned nknown;

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void job_free(admin_job_t *job)
{
    for (unsigned i = 0; i < job->n; i++) {
        json_decref(job->parts[i]);
    }
    json_decref(job->bodies);
    free(job->parts);
    free(job->msgs);
    free(job);
    atomic_fetch_sub(&jobs_in_flight, 1);
}

/* ---- mailboxes --------------------------------------------------------------------------- */

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

/* The job cannot be answered (its origin's mailbox closed): nobody waits. */
static void abandon(admin_job_t *job)
{
    if (job->wait != NULL) {
        admin_api_detach(job->wait);
        admin_api_finish(job->wait, &job->q, NULL, 0);
    }
    job_free(job);
}

/* One worker's part is in (any thread). The last sends the job home. */
static void worker_done(admin_job_t *job)
{
    if (atomic_fetch_sub(&job->left, 1) != 1) {
        return;
    }
    if (!post(job->origin, &job->msgs[job->n])) {
        abandon(job); /* the origin is gone (shutdown), and with it the connection */
    }
}

/* ---- the cluster -------------------------------------------------------------------------- */

static void note_node(const char *node, uint64_t t)
{
    unsigned i = 0;
    while (i < nknown && strcmp(known[i].name, node) != 0) {
        i++;
    }
    if (i == nknown) {
        if (nknown == ADMIN_NODES_MAX) {
            return;
        }
        (void)snprintf(known[nknown++].name, sizeof known[0].name, "%s", node);
    }
    known[i].seen_ms = t;
}

/* Other nodes heard from lately: how many answers to wait for. */
static unsigned nodes_expected(uint64_t t)
{
    unsigned alive = 0;
    for (unsigned i = 0; i < nknown; i++) {
        alive += t < known[i].seen_ms + ADMIN_NODE_FORGET_MS;
    }
    return alive;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

/* Origin thread: answers once this node's body is in and every node
 * expected answered, or the timeout passed (`timed_out`). */
static void maybe_finish(admin_job_t *job, bool timed_out)
{
    if (!job->local_done) {
        return;
    }
    if (job->cluster) {
        pthread_mutex_lock(&cluster_lock);
        /* Knowing no other node yet, wait for whoever answers. */
        bool all = job->expected > 0 && json_array_size(job->bodies) > job->expected;
        if (!all && !timed_out) {
            pthread_mutex_unlock(&cluster_lock);
            return;
        }
        for (admin_job_t **p = &pending; *p != NULL; p = &(*p)->pending_next) {
            if (*p == job) {
                *p = job->pending_next;
                break;
            }
        }
        pthread_mutex_unlock(&cluster_lock);
        uv_timer_stop(job->timer);
        uv_close((uv_handle_t *)job->timer, on_timer_closed);
    }
    size_t nb = json_array_size(job->bodies);
    json_t **bodies = xcalloc(nb + 1, sizeof(json_t *));
    for (size_t i = 0; i < nb; i++) {
        bodies[i] = json_array_get(job->bodies, i);
    }
    admin_api_finish(job->wait, &job->q, bodies, (unsigned)nb);
    free(bodies);
    job_free(job);
}

static void on_cluster_timeout(uv_timer_t *t)
{
    maybe_finish(t->data, true);
}

static json_t *query_json(const admin_query_t *q)
{
    char after[128] = "";
    if (q->has_after) {
        (void)snprintf(after, sizeof after, "%s/%u.%" PRIu64, q->after_node, q->after_worker,
                       q->after_no);
    }
    return json_pack("{s:i,s:i,s:s,s:s,s:s,s:i}", "kind", (int)q->kind, "limit", (int)q->limit,
                     "after", after, "client", q->client, "user", q->user, "ban_s", (int)q->ban_s);
}

/* A query from another node's envelope; false when it is malformed. */
static bool query_from_json(json_t *j, admin_query_t *q)
{
    memset(q, 0, sizeof *q);
    json_int_t kind = json_integer_value(json_object_get(j, "kind"));
    json_int_t limit = json_integer_value(json_object_get(j, "limit"));
    json_int_t ban = json_integer_value(json_object_get(j, "ban_s"));
    const char *after = json_string_value(json_object_get(j, "after"));
    const char *client = json_string_value(json_object_get(j, "client"));
    const char *user = json_string_value(json_object_get(j, "user"));
    if (kind < ADMIN_TOPICS || kind > ADMIN_DISCONNECT || limit < 0 || limit > ADMIN_PAGE_MAX ||
        ban < 0 || ban > (json_int_t)ADMIN_BAN_MAX_S || after == NULL || client == NULL ||
        user == NULL || strlen(client) >= sizeof q->client || strlen(user) >= sizeof q->user ||
        strlen(after) >= 128) {
        return false;
    }
    q->kind = (admin_kind_t)kind;
    q->limit = (uint32_t)limit;
    q->ban_s = (uint32_t)ban;
    memcpy(q->client, client, strlen(client) + 1);
    memcpy(q->user, user, strlen(user) + 1);
    if (after[0] != '\0') {
        const char *slash = strrchr(after, '/');
        unsigned w = 0;
        unsigned long long no = 0;
        if (slash == NULL || (size_t)(slash - after) >= sizeof q->after_node ||
            sscanf(slash + 1, "%u.%llu", &w, &no) != 2) {
            return false;
        }
        memcpy(q->after_node, after, (size_t)(slash - after));
        q->has_after = true;
        q->after_worker = w;
        q->after_no = no;
    }
    return kind != ADMIN_DISCONNECT || client[0] != '\0' || user[0] != '\0';
}

/* Sends this node's body for a query from another node. */
static void send_answer(broker_t *b, admin_job_t *job, json_t *body)
{
    if (job->q.kind == ADMIN_CONNECTIONS) {
        /* The answer must fit one envelope: keep a prefix of the list and
         * say so ("_more"); the merge then ends the page there. */
        json_t *list = json_object_get(body, "connections");
        size_t max = bridge_admin_max(b->bridge) - 512;
        char *text;
        while ((text = json_dumps(body, JSON_COMPACT)) != NULL && strlen(text) > max &&
               json_array_size(list) > 0) {
            free(text);
            json_array_remove(list, json_array_size(list) - 1);
            json_object_set_new(body, "_more", json_true());
        }
        free(text);
    }
    json_t *env = json_pack("{s:i,s:s,s:s,s:I,s:O}", "v", 1, "op", "a", "to", job->reply_node, "id",
                            (json_int_t)job->reply_id, "body", body);
    char *text = env != NULL ? json_dumps(env, JSON_COMPACT) : NULL;
    if (text == NULL || !bridge_admin_send(b->bridge, text, strlen(text))) {
        log_warn("admin: answer not sent", "to=%s", log_quote(job->reply_node));
    }
    free(text);
    json_decref(env);
}

/* ---- running jobs ----------------------------------------------------------------------- */

static void run_done(worker_t *w, admin_job_t *job)
{
    json_t *body = admin_api_node_body(&w->ingress, &job->q, job->parts, job->n);
    if (job->wait == NULL) {
        send_answer(w->env->process, job, body);
        json_decref(body);
        job_free(job);
        return;
    }
    json_array_insert_new(job->bodies, 0, body);
    job->local_done = true;
    maybe_finish(job, false);
}

/* Origin thread: another node's body for job `id`, unless it ended. */
static void run_remote(admin_msg_t *m)
{
    pthread_mutex_lock(&cluster_lock);
    admin_job_t *job = pending;
    while (job != NULL && job->id != m->job_id) {
        job = job->pending_next;
    }
    if (job != NULL && json_array_size(job->bodies) <= ADMIN_NODES_MAX) {
        json_array_append(job->bodies, m->body);
    }
    pthread_mutex_unlock(&cluster_lock);
    json_decref(m->body);
    free(m);
    if (job != NULL) {
        maybe_finish(job, false);
    }
}

static void run(worker_t *w, admin_msg_t *m)
{
    if (m->kind == MSG_REMOTE) {
        run_remote(m);
    } else if (m->kind == MSG_DONE) {
        run_done(w, m->job);
    } else {
        admin_job_t *job = m->job;
        job->parts[w->index] = admin_api_part(&w->ingress, &w->net, &job->q);
        worker_done(job);
    }
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

/* A job for `q` with `origin` as its home (taken: jobs_in_flight). */
static admin_job_t *job_new(broker_t *b, const admin_query_t *q, worker_t *origin)
{
    admin_job_t *job = xcalloc(1, sizeof *job);
    job->q = *q;
    job->origin = origin;
    job->n = b->nworkers;
    atomic_init(&job->left, b->nworkers);
    job->parts = xcalloc(b->nworkers, sizeof(json_t *));
    job->msgs = xcalloc(b->nworkers + 1, sizeof *job->msgs);
    job->bodies = json_array();
    for (unsigned i = 0; i <= b->nworkers; i++) {
        job->msgs[i].job = job;
        job->msgs[i].kind = i == b->nworkers ? MSG_DONE : MSG_WORK;
    }
    return job;
}

static void job_start(broker_t *b, admin_job_t *job)
{
    for (unsigned i = 0; i < b->nworkers; i++) {
        post_work(b->workers[i], &job->msgs[i]);
    }
}

static bool take_slot(void)
{
    if (atomic_fetch_add(&jobs_in_flight, 1) >= ADMIN_JOBS_MAX) {
        atomic_fetch_sub(&jobs_in_flight, 1);
        return false;
    }
    return true;
}

bool worker_admin(ingress_ctx_t *ctx, const admin_query_t *q, admin_wait_t *wait)
{
    worker_t *w = ctx->owner;
    broker_t *b = w->env->process;
    if (w->net.shutting_down || !take_slot()) {
        return false;
    }
    admin_job_t *job = job_new(b, q, w);
    job->wait = wait;
    if (b->bridge != NULL) {
        job->cluster = true;
        job->id = atomic_fetch_add(&next_job_id, 1) + 1;
        json_t *env = json_pack("{s:i,s:s,s:s,s:I,s:o}", "v", 1, "op", "q", "node", b->node_id,
                                "id", (json_int_t)job->id, "q", query_json(q));
        char *text = json_dumps(env, JSON_COMPACT);
        json_decref(env);
        if (text == NULL || !bridge_admin_send(b->bridge, text, strlen(text))) {
            job->cluster = false; /* Redis is away: this node answers alone */
        }
        free(text);
    }
    if (job->cluster) {
        job->timer = xcalloc(1, sizeof *job->timer);
        uv_timer_init(&w->loop, job->timer);
        job->timer->data = job;
        uv_timer_start(job->timer, on_cluster_timeout, ADMIN_CLUSTER_TIMEOUT_MS, 0);
        pthread_mutex_lock(&cluster_lock);
        job->expected = nodes_expected(now_ms());
        job->pending_next = pending;
        pending = job;
        pthread_mutex_unlock(&cluster_lock);
    }
    job_start(b, job);
    return true;
}

/* Bridge thread: an envelope on the admin bus. */
static void on_bus(void *user_data, const char *text, size_t len)
{
    broker_t *b = user_data;
    json_t *env = json_loadb(text, len, 0, NULL);
    const char *op = json_string_value(json_object_get(env, "op"));
    json_t *id = json_object_get(env, "id");
    if (op == NULL || !json_is_integer(id)) {
        json_decref(env);
        return;
    }
    if (strcmp(op, "q") == 0) {
        const char *from = json_string_value(json_object_get(env, "node"));
        admin_query_t q;
        if (from != NULL && strcmp(from, b->node_id) != 0 && strlen(from) < 65 &&
            query_from_json(json_object_get(env, "q"), &q) && take_slot()) {
            if (q.kind == ADMIN_DISCONNECT && q.ban_s > 0) {
                uint64_t t = now_ms();
                (void)admin_ban_add(b->workers[0]->env->auth->bans,
                                    (wsb_str_t){q.user, strlen(q.user)},
                                    t + (uint64_t)q.ban_s * 1000, t);
            }
            admin_job_t *job = job_new(b, &q, b->workers[0]);
            (void)snprintf(job->reply_node, sizeof job->reply_node, "%s", from);
            job->reply_id = (uint64_t)json_integer_value(id);
            job_start(b, job);
        }
    } else if (strcmp(op, "a") == 0) {
        const char *to = json_string_value(json_object_get(env, "to"));
        json_t *body = json_object_get(env, "body");
        const char *node = json_string_value(json_object_get(body, "node"));
        if (to != NULL && strcmp(to, b->node_id) == 0 && json_is_object(body) && node != NULL) {
            pthread_mutex_lock(&cluster_lock);
            note_node(node, now_ms()); /* a late answer still makes the node known */
            admin_job_t *job = pending;
            while (job != NULL && job->id != (uint64_t)json_integer_value(id)) {
                job = job->pending_next;
            }
            worker_t *origin = job != NULL ? job->origin : NULL;
            pthread_mutex_unlock(&cluster_lock);
            if (origin != NULL) {
                admin_msg_t *m = xcalloc(1, sizeof *m);
                m->kind = MSG_REMOTE;
                m->job_id = (uint64_t)json_integer_value(id);
                m->body = json_incref(body);
                if (!post(origin, m)) {
                    json_decref(m->body);
                    free(m);
                }
            }
        }
    }
    json_decref(env);
}

void admin_cluster_init(broker_t *b)
{
    if (b->bridge != NULL) {
        bridge_admin_hook(b->bridge, on_bus, b);
    }
}

/* ---- the worker's mailbox ----------------------------------------------------------------- */

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
    /* This worker's requests still waiting for other nodes: their timers
     * (this thread's) close now. One whose own part is in ends here; the
     * others end when their last part finds the mailbox closed (abandon),
     * or in admin_worker_free when it is queued already. */
    admin_job_t *ended = NULL;
    pthread_mutex_lock(&cluster_lock);
    for (admin_job_t **p = &pending; *p != NULL;) {
        admin_job_t *job = *p;
        if (job->origin != w) {
            p = &job->pending_next;
            continue;
        }
        *p = job->pending_next;
        job->cluster = false;
        uv_timer_stop(job->timer);
        uv_close((uv_handle_t *)job->timer, on_timer_closed);
        if (job->local_done) {
            job->pending_next = ended;
            ended = job;
        }
    }
    pthread_mutex_unlock(&cluster_lock);
    while (ended != NULL) {
        admin_job_t *next = ended->pending_next;
        abandon(ended);
        ended = next;
    }
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
        if (m->kind == MSG_REMOTE) {
            json_decref(m->body);
            free(m);
        } else if (m->kind == MSG_DONE) {
            abandon(m->job);
        } else {
            worker_done(m->job);
        }
        m = next;
    }
    pthread_mutex_destroy(&w->admin_lock);
}
