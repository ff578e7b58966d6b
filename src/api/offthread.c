/* offthread: a request that waits for work done on a thread of its own —
 * the store's backup copy, a defragment — so that neither the node loop
 * nor an HTTP thread blocks on it. The request is suspended
 * (api_wait_external) and woken when the work is done; the job outlives
 * whichever of the two ends last.
 *
 * Must never: let the thread touch a request that is gone (the job's lock
 * and r->ext_free see to that), or free the work's state while the thread
 * still runs.
 */
#include "api/api_int.h"

#include <stdlib.h>

typedef struct {
    pthread_mutex_t mu;
    int refs;    /* the request's and the thread's */
    api_req *r;  /* NULL once the request is gone */
    api *a;
    api_work_fn work;
    void (*state_free)(void *state);
    int rc;
    void *state;
} job;

static void job_unref(job *j)
{
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last)
        return;
    if (j->state_free)
        j->state_free(j->state);
    free(j->state);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static void *job_main(void *arg)
{
    job *j = arg;
    j->rc = j->work(j->a, j->state);
    pthread_mutex_lock(&j->mu);
    if (j->r)
        api_wake(j->r);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    return NULL;
}

/* r->ext_free: the request is going; the thread must not wake it. */
static void job_detach(api_req *r)
{
    job *j = r->ext;
    pthread_mutex_lock(&j->mu);
    j->r = NULL;
    pthread_mutex_unlock(&j->mu);
    r->ext = NULL;
    job_unref(j);
}

static bool start_thread(job *j)
{
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return false;
    bool ok = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
              pthread_create(&t, &attr, job_main, j) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

void api_offthread(api_req *r, size_t state_size, void (*state_free)(void *state),
                   api_work_fn work, api_handler_fn then)
{
    job *j = calloc(1, sizeof *j);
    void *state = calloc(1, state_size ? state_size : 1);
    if (!j || !state || pthread_mutex_init(&j->mu, NULL) != 0) {
        free(j);
        free(state);
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return;
    }
    j->refs = 1;
    j->r = r;
    j->a = r->a;
    j->work = work;
    j->state_free = state_free;
    j->state = state;
    r->ext = j;
    r->ext_free = job_detach;
    if (!api_wait_external(r, then))
        return; /* answered 503 (stopping) */
    j->refs = 2;
    if (!start_thread(j)) {
        j->refs = 1;
        j->rc = KV_ERR_INTERNAL;
        api_wake(r);
    }
}

void *api_offthread_state(api_req *r, int *rc)
{
    job *j = r->ext;
    *rc = j->rc;
    return j->state;
}
