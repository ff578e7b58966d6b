/* watch_int: what the watch hub's own files share — the watcher, the span
 * group (one node of the interval tree), the tree and the deadline heap.
 * Private to src/kv/watch*.c.
 *
 * Must never: be included outside src/kv/watch*.c, or hold an event
 * beyond one group's last read (watch_memo.c): the hub keeps spans,
 * cursors and deadlines; events stay in kv history.
 */
#ifndef RAFTKV_WATCH_INT_H
#define RAFTKV_WATCH_INT_H

#include "kv/kv.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct watch_group watch_group;

struct watch_watcher {
    watch_group *g;               /* its span, shared with equal spans */
    watch_watcher *prev, *next;   /* in g->parked while parked */
    unsigned filters;             /* enum watch_filter bits */
    bool prev_kv;
    watch_wake_fn fn;
    void *ud;
    bool parked;
    int64_t cursor;               /* while parked: first revision wanted */
    uint64_t deadline;            /* while parked: now_ms() to wake at, 0 none */
    size_t heap_idx;              /* WATCH_NO_HEAP unless in the deadline heap */
};
#define WATCH_NO_HEAP ((size_t)-1)

/* Every watcher with an equal span shares one group, so a thousand
 * watchers of one prefix are one tree node. The interval is
 * [key, end) with end exclusive; a single key k is [k, k"\0"); `inf`
 * stands for "every key >= key". Span bytes never change while refs > 0,
 * so watch_fetch may read g->span without the hub's lock. */
struct watch_group {
    uint8_t *key;
    uint32_t key_len;
    uint8_t *end;
    uint32_t end_len;
    bool inf;
    kv_span span;        /* the same span in kv's convention, for kv_history */
    size_t refs;         /* registered watchers */
    watch_watcher *parked;
    /* AVL by (key, end), augmented with the greatest end of the subtree */
    watch_group *left, *right;
    int height;
    const watch_group *max_end;
    watch_shared *memo;  /* the last batch read for these watchers; hub->memo_mu */
};

/* ---- watch_tree.c: interval tree of groups ---- */
/* Compares a point with a group's end: < 0 when the point is before it. */
int watch_end_cmp_point(const watch_group *g, const uint8_t *key, uint32_t len);
/* The group with exactly this interval, or NULL. */
watch_group *watch_tree_find(watch_group *root, const watch_group *probe);
/* Inserts g (whose interval is not in the tree yet); returns the new root. */
watch_group *watch_tree_insert(watch_group *root, watch_group *g);
/* Removes g (which is in the tree); returns the new root. */
watch_group *watch_tree_remove(watch_group *root, watch_group *g);
/* Calls fn for every group whose interval contains key. fn must not
 * change the tree. */
void watch_tree_stab(watch_group *root, const uint8_t *key, uint32_t len,
                     void (*fn)(watch_group *g, void *ctx), void *ctx);

/* ---- watch_heap.c: parked watchers by deadline (a binary min-heap) ---- */
typedef struct {
    watch_watcher **items;
    size_t n, cap;
} watch_heap;
int watch_heap_push(watch_heap *h, watch_watcher *w); /* -1: no memory */
void watch_heap_remove(watch_heap *h, watch_watcher *w);
watch_watcher *watch_heap_top(const watch_heap *h);   /* NULL if empty */
void watch_heap_free(watch_heap *h);

/* ---- watch_memo.c: one read shared by a span's watchers ---- */
/* The group's kept batch (shared, not copied) if it was read for cursor,
 * max_events and w's options with nothing applied since; *epoch gets the
 * epoch to offer a fresh read under (taken before the read begins). */
bool watch_memo_take(watch_hub *h, const watch_watcher *w, int64_t cursor, size_t max_events,
                     watch_batch *out, uint64_t *epoch);
/* Keeps b for the group's other watchers (b becomes shared) when it is
 * worth it and still current. */
void watch_memo_offer(watch_hub *h, const watch_watcher *w, int64_t cursor, size_t max_events,
                      uint64_t epoch, watch_batch *b);
void watch_memo_drop(watch_hub *h, watch_group *g);  /* the group's kept batch */
void watch_memo_advance(watch_hub *h);               /* retires every kept batch */

/* ---- watch_hub.c ---- */
struct watch_hub {
    kv *kv;
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* CLOCK_MONOTONIC: new revision, deadline, stop */
    pthread_t thread;
    bool thread_started;
    bool stop;
    int64_t target;       /* the last revision the node applied */
    int64_t scanned;      /* every event <= scanned was matched against parked watchers */
    watch_group *root;
    size_t n_watchers, n_parked;
    watch_heap heap;
    pthread_mutex_t memo_mu; /* groups' memos, shared batches, epoch; taken alone */
    uint64_t epoch;          /* +1 per watch_notify and watch_wake_all */
};

#endif
