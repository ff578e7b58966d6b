/* kv_flusher: starts the disk writes of kv.db's write-ahead log off the
 * node thread. kv.db runs with synchronous=NORMAL, so its log is synced
 * only when SQLite checkpoints it — on the node thread, every ~1000 pages —
 * and that sync then wrote megabytes at once: 10-20 ms in which the loop
 * answered nobody (the whole p99 of a PUT at 1 connection). A thread asks
 * the kernel to start writing the log (sync_file_range WRITE: no wait, no
 * durability promise) at most every FLUSH_EVERY_MS while commits happen,
 * so the checkpoint's sync finds little left to write. It sleeps, with no
 * timer, while no commit happens.
 *
 * Must never stand in for a sync (the checkpoint's own fsync is what makes
 * anything durable), never touch SQLite, and never hold the node thread:
 * kv_flusher_note is an atomic add, and a wake-up only when the thread
 * sleeps idle. */
#include "kv/kv_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FLUSH_EVERY_MS 10

struct kv_flusher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;               /* mu */
    atomic_bool idle;        /* waiting for a commit, not for the timer */
    atomic_uint_fast64_t commits;
    atomic_uint_fast64_t passes; /* write-outs started (for the test) */
    char *wal_path;
};

static void write_out(const kv_flusher *f)
{
    int fd = open(f->wal_path, O_RDONLY | O_CLOEXEC); /* by name: SQLite may have made a new log */
    if (fd < 0)
        return;
    sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    close(fd);
}

static void wait_ms(kv_flusher *f, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&f->cv, &f->mu, &ts);
}

static void *flusher_main(void *arg)
{
    kv_flusher *f = arg;
    uint_fast64_t seen = 0;
    pthread_mutex_lock(&f->mu);
    while (!f->stop) {
        uint_fast64_t now = atomic_load(&f->commits);
        if (now == seen) {
            atomic_store(&f->idle, true); /* a commit after this store wakes us */
            if (atomic_load(&f->commits) == seen)
                pthread_cond_wait(&f->cv, &f->mu);
            atomic_store(&f->idle, false);
            continue;
        }
        seen = now;
        pthread_mutex_unlock(&f->mu);
        write_out(f);
        atomic_fetch_add(&f->passes, 1);
        pthread_mutex_lock(&f->mu);
        if (!f->stop)
            wait_ms(f, FLUSH_EVERY_MS);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

kv_flusher *kv_flusher_start(const char *db_path)
{
    kv_flusher *f = calloc(1, sizeof *f);
    size_t len = strlen(db_path) + 5;
    if (!f || !(f->wal_path = malloc(len))) {
        free(f);
        return NULL;
    }
    snprintf(f->wal_path, len, "%s-wal", db_path);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &a);
    pthread_condattr_destroy(&a);
    pthread_mutex_init(&f->mu, NULL);
    if (pthread_create(&f->thread, NULL, flusher_main, f) != 0) {
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
        free(f->wal_path);
        free(f);
        return NULL;
    }
    return f;
}

void kv_flusher_note(kv_flusher *f)
{
    if (!f)
        return;
    atomic_fetch_add(&f->commits, 1);
    if (atomic_load(&f->idle)) { /* only then a wake-up: the thread has no timer running */
        pthread_mutex_lock(&f->mu);
        pthread_cond_signal(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
}

uint64_t kv_flusher_passes(kv_flusher *f) { return f ? (uint64_t)atomic_load(&f->passes) : 0; }

void kv_flusher_stop(kv_flusher *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f->wal_path);
    free(f);
}
