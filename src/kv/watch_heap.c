/* watch_heap: parked watchers ordered by deadline (a binary min-heap with
 * each watcher's position kept in it), so one hub thread serves every
 * long-poll timeout and stream progress tick.
 *
 * Must never: own the watchers, or hold one that is not parked with a
 * deadline (the hub removes it when it unparks).
 */
#include "kv/watch_int.h"

#include <stdlib.h>

static void place(watch_heap *h, size_t i, watch_watcher *w)
{
    h->items[i] = w;
    w->heap_idx = i;
}

static void sift_up(watch_heap *h, size_t i)
{
    watch_watcher *w = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->deadline <= w->deadline)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, w);
}

static void sift_down(watch_heap *h, size_t i)
{
    watch_watcher *w = h->items[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->items[c + 1]->deadline < h->items[c]->deadline)
            c++;
        if (w->deadline <= h->items[c]->deadline)
            break;
        place(h, i, h->items[c]);
        i = c;
    }
    place(h, i, w);
}

int watch_heap_push(watch_heap *h, watch_watcher *w)
{
    if (xgrow(&h->items, &h->cap, h->n, sizeof *h->items) < 0)
        return -1;
    place(h, h->n++, w);
    sift_up(h, h->n - 1);
    return 0;
}

void watch_heap_remove(watch_heap *h, watch_watcher *w)
{
    size_t i = w->heap_idx;
    if (i == WATCH_NO_HEAP || i >= h->n || h->items[i] != w)
        return;
    w->heap_idx = WATCH_NO_HEAP;
    watch_watcher *last = h->items[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    sift_down(h, i);
    sift_up(h, last->heap_idx);
}

watch_watcher *watch_heap_top(const watch_heap *h) { return h->n ? h->items[0] : NULL; }

void watch_heap_free(watch_heap *h)
{
    free(h->items);
    h->items = NULL;
    h->n = h->cap = 0;
}
